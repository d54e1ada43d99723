//! Addresses, signing keys, and the published devnet accounts.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use crate::hash::{Hash, hex_bytes};

hex_bytes!(
    /// An account address: BLAKE3 of the account's ed25519 public key.
    Address, 32
);

hex_bytes!(
    /// An ed25519 public key (compressed point), as it appears in a transaction.
    PublicKey, 32
);

hex_bytes!(
    /// An ed25519 signature `R || S`.
    SignatureBytes, 64
);

impl PublicKey {
    /// The address this key controls.
    pub fn address(&self) -> Address {
        Address(Hash::digest(&self.0).0)
    }
}

/// A signing key with its public half.
#[derive(Clone)]
pub struct Keypair {
    signing: SigningKey,
}

impl Keypair {
    /// A fresh random key from the OS RNG.
    pub fn generate() -> Self {
        Keypair { signing: SigningKey::generate(&mut rand::rngs::OsRng) }
    }
    /// The key whose 32-byte secret seed is `seed`.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Keypair { signing: SigningKey::from_bytes(&seed) }
    }
    /// The secret seed (store it owner-only).
    pub fn seed(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }
    /// The public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(VerifyingKey::from(&self.signing).to_bytes())
    }
    /// The address this key controls.
    pub fn address(&self) -> Address {
        self.public().address()
    }
    /// Signs `msg` (RFC 8032 Ed25519).
    pub fn sign(&self, msg: &[u8]) -> SignatureBytes {
        SignatureBytes(self.signing.sign(msg).to_bytes())
    }
    /// The underlying dalek key (for PKCS#8 export by the transport).
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }
}

/// The published seed phrase the shipped devnet derives its prefunded accounts from.
/// Anyone can spend these accounts: never fund them on a chain that matters.
pub const DEV_SEED: &str = "cairn devnet: publicly known keys, never hold value";

/// The `index`-th dev key derived from `seed`:
/// `secret = BLAKE3::derive_key("cairn dev account v1", seed || "/" || index)`.
pub fn dev_keypair(seed: &str, index: u32) -> Keypair {
    let material = format!("{seed}/{index}");
    Keypair::from_seed(blake3::derive_key("cairn dev account v1", material.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_keys_are_deterministic_and_distinct() {
        let a = dev_keypair(DEV_SEED, 0);
        assert_eq!(a.address(), dev_keypair(DEV_SEED, 0).address());
        assert_ne!(a.address(), dev_keypair(DEV_SEED, 1).address());
        assert_eq!(Keypair::from_seed(a.seed()).public(), a.public());
    }
}
