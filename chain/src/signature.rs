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

use std::sync::{LazyLock, Mutex};

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use ed25519_zebra::{Signature, VerificationKey};
use foldhash::{HashMap, HashMapExt};
use rand::RngCore;
use sha2::{Digest, Sha512};

use crate::generations::Generations;
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
///
/// The equation is `ed25519-zebra`'s batch equation (ZIP-215):
/// `[8]([-Σ zᵢsᵢ]B + Σ [zᵢ]Rᵢ + Σ_A [Σ_{i: Aᵢ=A} zᵢkᵢ]A) = 0` with random 128-bit `zᵢ` and
/// `kᵢ = SHA-512(Rᵢ ‖ Aᵢ ‖ Mᵢ)`; every `R` and `A` must decompress and every `s` be canonical.
/// It is written out here for one reason: decompressing a point (a field exponentiation) is
/// about half of a batch's cost, and a sender's key is the same point in every batch, so keys
/// come from [`KEYS`] (decompressed once per process while they stay in it). The tests check it
/// against `ed25519-zebra`'s own batch verifier.
pub fn verify_batch<'a, I>(items: I) -> bool
where
    I: IntoIterator<Item = (&'a PublicKey, &'a [u8], &'a SignatureBytes)>,
{
    let items = items.into_iter();
    // Each distinct key once, with the sum of its signatures' zᵢkᵢ.
    let mut key_index: HashMap<[u8; 32], usize> = HashMap::with_capacity(items.size_hint().0);
    let mut keys: Vec<[u8; 32]> = Vec::new();
    let mut a_coeffs: Vec<Scalar> = Vec::new();
    let mut rs: Vec<EdwardsPoint> = Vec::with_capacity(items.size_hint().0);
    let mut r_coeffs: Vec<Scalar> = Vec::with_capacity(items.size_hint().0);
    let mut b_coeff = Scalar::ZERO;
    // The batch's random coefficients need a CSPRNG the signer cannot predict; the thread's
    // (ChaCha, seeded and reseeded from the OS) gives them without a system call each.
    let mut rng = rand::thread_rng();
    for (key, msg, sig) in items {
        let (r_bytes, s_bytes): ([u8; 32], [u8; 32]) = match (sig.0[..32].try_into(), sig.0[32..].try_into()) {
            (Ok(r), Ok(s)) => (r, s),
            _ => return false,
        };
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
            return false;
        };
        let Some(r) = CompressedEdwardsY(r_bytes).decompress() else {
            return false;
        };
        let k = Scalar::from_hash(Sha512::new().chain_update(r_bytes).chain_update(key.0).chain_update(msg));
        let mut z = [0u8; 16];
        rng.fill_bytes(&mut z);
        let z = Scalar::from(u128::from_le_bytes(z));
        b_coeff -= z * s;
        rs.push(r);
        r_coeffs.push(z);
        let i = *key_index.entry(key.0).or_insert_with(|| {
            keys.push(key.0);
            a_coeffs.push(Scalar::ZERO);
            keys.len() - 1
        });
        a_coeffs[i] += z * k;
    }
    let Some(a_points) = KEYS.points(&keys) else {
        return false;
    };
    let check = EdwardsPoint::vartime_multiscalar_mul(
        std::iter::once(&b_coeff).chain(&a_coeffs).chain(&r_coeffs),
        std::iter::once(&ED25519_BASEPOINT_POINT).chain(&a_points).chain(&rs),
    );
    check.mul_by_cofactor().is_identity()
}

/// Decompressed public keys, shared by every verifying thread.
static KEYS: LazyLock<KeyCache> = LazyLock::new(|| KeyCache::new(KEY_CACHE_HALF));

/// Keys per generation of [`KEYS`]: two generations of 4,096 hold ~8,000 senders' points
/// (~200 bytes each with their map entry: at most ~1.6 MiB).
const KEY_CACHE_HALF: usize = 4096;

/// Public keys as curve points, bounded ([`Generations`]: a key evicted costs one
/// decompression later). Only keys that decompress enter it; a point is a pure function of
/// its 32 bytes, so an entry is never stale.
///
/// Shared lock: the verifiers run on several threads at once (intake's batches on the blocking
/// pool, a block's chunks in parallel); each batch takes it twice (to look its keys up, then to
/// add those it decompressed), for a few microseconds against the milliseconds the batch's
/// verification takes, and decompresses outside it.
struct KeyCache {
    inner: Mutex<Generations<[u8; 32], EdwardsPoint>>,
}

impl KeyCache {
    fn new(half: usize) -> KeyCache {
        KeyCache { inner: Mutex::new(Generations::new(half)) }
    }

    /// Each key's point, in order; `None` if one does not decompress.
    fn points(&self, keys: &[[u8; 32]]) -> Option<Vec<EdwardsPoint>> {
        let mut found: Vec<Option<EdwardsPoint>> = match self.inner.lock() {
            Ok(mut g) => keys.iter().map(|k| g.get(k)).collect(),
            // A panic while holding it (none is possible in these few map operations) would
            // only cost the cache.
            Err(_) => vec![None; keys.len()],
        };
        let mut fresh = Vec::new();
        for (key, point) in keys.iter().zip(found.iter_mut()) {
            if point.is_none() {
                let p = CompressedEdwardsY(*key).decompress()?;
                *point = Some(p);
                fresh.push((*key, p));
            }
        }
        if !fresh.is_empty()
            && let Ok(mut g) = self.inner.lock()
        {
            for (key, point) in fresh {
                g.insert(key, point);
            }
        }
        found.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Keypair;
    use ed25519_zebra::{VerificationKeyBytes, batch};
    use rand::Rng;

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

    /// Bytes that are not the encoding of any curve point (about half of all 32-byte strings).
    fn not_a_point(seed: u8) -> [u8; 32] {
        (0..=255u8).map(|i| [seed ^ i; 32]).find(|b| CompressedEdwardsY(*b).decompress().is_none()).expect("half of all encodings fail")
    }

    /// `s + ℓ`: the same scalar, non-canonical.
    fn plus_l(s: [u8; 32]) -> [u8; 32] {
        let l: [u8; 32] = const_hex::decode("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010").unwrap().try_into().unwrap();
        let mut v = s;
        let mut carry = 0u16;
        for i in 0..32 {
            let x = v[i] as u16 + l[i] as u16 + carry;
            v[i] = x as u8;
            carry = x >> 8;
        }
        v
    }

    /// The batch equation written out here answers as `ed25519-zebra`'s batch verifier and as
    /// single verification do, on valid batches and on batches with one bad signature of every
    /// kind (wrong message, R or S changed, S not canonical, R or A not a point), with keys
    /// repeated within a batch and across batches (so from the key cache).
    #[test]
    fn batch_agrees_with_ed25519_zebra_and_single_verification() {
        let keys: Vec<Keypair> = (0..6).map(|_| Keypair::generate()).collect();
        let mut rng = rand::thread_rng();
        for round in 0..240u32 {
            let n = rng.gen_range(1..24);
            let mut items: Vec<(PublicKey, Vec<u8>, SignatureBytes)> = (0..n)
                .map(|i| {
                    let k = &keys[rng.gen_range(0..keys.len())];
                    let msg = format!("transfer {round}.{i}").into_bytes();
                    let sig = k.sign(&msg);
                    (k.public(), msg, sig)
                })
                .collect();
            let bad = rng.gen_range(0..n);
            let kind = round % 8;
            match kind {
                0 | 1 => {}
                2 => items[bad].1.push(b'!'),
                3 => items[bad].2.0[rng.gen_range(0..32)] ^= 1 << rng.gen_range(0..8),
                4 => items[bad].2.0[32 + rng.gen_range(0..31)] ^= 1 << rng.gen_range(0..8),
                5 => {
                    let s: [u8; 32] = items[bad].2.0[32..].try_into().unwrap();
                    items[bad].2.0[32..].copy_from_slice(&plus_l(s));
                }
                6 => items[bad].2.0[..32].copy_from_slice(&not_a_point(round as u8)),
                _ => items[bad].0 = PublicKey(not_a_point(round as u8)),
            }
            let ours = verify_batch(items.iter().map(|(k, m, s)| (k, m.as_slice(), s)));
            let mut zebra = batch::Verifier::new();
            for (k, m, s) in &items {
                zebra.queue((VerificationKeyBytes::from(k.0), Signature::from_bytes(&s.0), m));
            }
            let zebra = zebra.verify(rand::thread_rng()).is_ok();
            let single = items.iter().all(|(k, m, s)| verify(k, m, s));
            assert_eq!((ours, ours), (zebra, single), "round {round}, kind {kind}");
            assert_eq!(ours, kind < 2, "round {round}, kind {kind}");
        }
    }

    /// The key cache gives each key's own point, keeps at most two generations, moves a hit in
    /// the old one to the current one, and never takes in bytes that are not a point.
    #[test]
    fn key_cache_is_bounded_and_exact() {
        let cache = KeyCache::new(2);
        let keys: Vec<[u8; 32]> = (0..5).map(|_| Keypair::generate().public().0).collect();
        let point = |k: &[u8; 32]| CompressedEdwardsY(*k).decompress().unwrap();
        let held = |c: &KeyCache| c.inner.lock().unwrap().len();
        assert_eq!(cache.points(&keys[..2]).unwrap(), vec![point(&keys[0]), point(&keys[1])]);
        assert_eq!(held(&cache), 2);
        assert_eq!(cache.points(&keys[2..4]).unwrap(), vec![point(&keys[2]), point(&keys[3])]);
        assert_eq!(held(&cache), 4, "the full generation became the old one");
        // keys[0] is in the old generation: a hit moves it (and rotates once more).
        assert_eq!(cache.points(&keys[..1]).unwrap(), vec![point(&keys[0])]);
        assert_eq!(held(&cache), 3, "keys[1] went with the oldest generation");
        assert!(cache.points(&[keys[4], not_a_point(1)]).is_none(), "one key that is not a point fails the batch");
        let g = cache.inner.lock().unwrap();
        assert!(!g.contains(&not_a_point(1)));
        assert!(!g.contains(&keys[4]), "a failed batch adds nothing");
        assert!(g.len() <= 4);
    }
}
