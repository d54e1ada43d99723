//! The one signature rule every code path applies.
//!
//! # Correctness
//! Ed25519 implementations disagree on edge cases: non-canonical point encodings, small-order
//! keys, and points with a torsion component. A single verifier using the cofactorless equation
//! `[S]B = R + [k]A` and a batch verifier using random linear combinations can give *different*
//! answers for the same signature when `R` or `A` carries torsion, so two nodes (or one node on
//! its single and batch paths) could split on a block.
//!
//! Cairn's rule is **ZIP-215** (as specified for Zcash, implemented by `ed25519-zebra`):
//! - `A` and `R` may be any encodings that decompress (non-canonical ones included);
//! - `S` must be canonical (`S < ℓ`);
//! - the check is the *cofactored* equation `[8][S]B = [8]R + [8][k]A`.
//!
//! Because the equation is cofactored, batch verification (which multiplies the combined
//! equation by 8 too) accepts exactly the same set as single verification. Every signature
//! produced by a standard RFC 8032 signer is valid under this rule. The test
//! `torsion_vector_agrees_on_both_paths` pins this down with a crafted signature whose `R` has a
//! small-order component: cofactorless verifiers reject it, ZIP-215 accepts it on both paths.

use ed25519_zebra::{Signature, VerificationKey, VerificationKeyBytes, batch};

use crate::keys::{PublicKey, SignatureBytes};

/// Verifies one signature under the ZIP-215 rule.
pub fn verify(key: &PublicKey, msg: &[u8], sig: &SignatureBytes) -> bool {
    let Ok(vk) = VerificationKey::try_from(key.0) else {
        return false;
    };
    vk.verify(&Signature::from_bytes(&sig.0), msg).is_ok()
}

/// Verifies many signatures at once under the same rule; `true` only if every one is valid.
///
/// About twice as fast per signature as [`verify`]; on `false` the caller finds the culprit with
/// [`verify`] one by one (the answers agree by construction).
pub fn verify_batch<'a, I>(items: I) -> bool
where
    I: IntoIterator<Item = (&'a PublicKey, &'a [u8], &'a SignatureBytes)>,
{
    let mut verifier = batch::Verifier::new();
    for (key, msg, sig) in items {
        let vkb = VerificationKeyBytes::from(key.0);
        verifier.queue((vkb, Signature::from_bytes(&sig.0), &msg));
    }
    // The batch's random coefficients need a CSPRNG the signer cannot predict; the thread's
    // (ChaCha, seeded and reseeded from the OS) gives them without a system call each, as
    // `OsRng` made (two per signature).
    verifier.verify(rand::thread_rng()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Keypair;
    use curve25519_dalek::{constants::ED25519_BASEPOINT_POINT, edwards::CompressedEdwardsY, scalar::Scalar};
    use sha2::{Digest, Sha512};

    #[test]
    fn standard_signatures_verify_on_both_paths() {
        let k = Keypair::generate();
        let sig = k.sign(b"hello");
        assert!(verify(&k.public(), b"hello", &sig));
        assert!(!verify(&k.public(), b"hellO", &sig));
        let pk = k.public();
        assert!(verify_batch([(&pk, &b"hello"[..], &sig)]));
        assert!(!verify_batch([(&pk, &b"hellO"[..], &sig)]));
    }

    /// A signature `(R + T, S)` where `T` has order 8: valid under the cofactored equation,
    /// invalid under the cofactorless one. ZIP-215 must accept it on the single and batch paths
    /// alike, and with any number of companions in the batch.
    #[test]
    fn torsion_vector_agrees_on_both_paths() {
        // A point of order 8 (from the Ed25519 small-order list).
        let t = CompressedEdwardsY(const_hex::decode("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a").unwrap().try_into().unwrap())
            .decompress()
            .unwrap();
        assert!(!t.is_torsion_free());

        let a = Scalar::from_bytes_mod_order([7u8; 32]);
        let pk = PublicKey((ED25519_BASEPOINT_POINT * a).compress().to_bytes());
        let msg = b"crafted torsion vector";
        let r = Scalar::from_bytes_mod_order([9u8; 32]);
        let big_r = (ED25519_BASEPOINT_POINT * r + t).compress();
        let k = Scalar::from_hash(Sha512::new().chain_update(big_r.as_bytes()).chain_update(pk.0).chain_update(msg));
        let s = r + k * a;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(big_r.as_bytes());
        sig[32..].copy_from_slice(s.as_bytes());
        let sig = SignatureBytes(sig);

        // A strict cofactorless verifier rejects it...
        let dalek_vk = ed25519_dalek::VerifyingKey::from_bytes(&pk.0).unwrap();
        assert!(dalek_vk.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(&sig.0)).is_err());
        // ...Cairn's rule accepts it, identically on every path.
        assert!(verify(&pk, msg, &sig));
        assert!(verify_batch([(&pk, &msg[..], &sig)]));
        let other = Keypair::generate();
        let osig = other.sign(b"x");
        let opk = other.public();
        for _ in 0..16 {
            assert!(verify_batch([(&pk, &msg[..], &sig), (&opk, &b"x"[..], &osig)]));
        }
        // A non-canonical S (S + ℓ) is rejected on both paths.
        let mut bad = sig;
        let l_plus_s = {
            let mut v = s.to_bytes();
            // add ℓ = 2^252 + 27742317777372353535851937790883648493 byte-wise
            let l: [u8; 32] = const_hex::decode("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010").unwrap().try_into().unwrap();
            let mut carry = 0u16;
            for i in 0..32 {
                let x = v[i] as u16 + l[i] as u16 + carry;
                v[i] = x as u8;
                carry = x >> 8;
            }
            v
        };
        bad.0[32..].copy_from_slice(&l_plus_s);
        assert!(!verify(&pk, msg, &bad));
        assert!(!verify_batch([(&pk, &msg[..], &bad)]));
    }
}
