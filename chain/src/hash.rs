//! 32-byte BLAKE3 digests and the hex form they take everywhere outside the wire.

use std::collections::VecDeque;

use foldhash::{HashSet, HashSetExt};

/// Error for a string that is not 64 lowercase-or-uppercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected} hex characters, got {got:?}")]
pub struct HexError {
    /// How many hex characters the type needs.
    pub expected: usize,
    /// What was given (truncated to a sane length for messages).
    pub got: String,
}

pub(crate) fn decode_hex<const N: usize>(s: &str) -> Result<[u8; N], HexError> {
    let err = || HexError { expected: N * 2, got: s.chars().take(80).collect() };
    if s.len() != N * 2 {
        return Err(err());
    }
    let mut out = [0u8; N];
    const_hex::decode_to_slice(s, &mut out).map_err(|_| err())?;
    Ok(out)
}

/// Serde for fixed-size byte fields: lowercase hex in human-readable formats (JSON, TOML),
/// raw bytes in binary ones (the wire). The hex is formed on the stack (every transaction in
/// and out of the RPC carries four of these).
pub fn serialize_fixed<const N: usize, S: serde::Serializer>(bytes: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() { s.serialize_str(const_hex::Buffer::<N>::new().format(bytes)) } else { s.serialize_bytes(bytes) }
}

/// The inverse of [`serialize_fixed`]; refuses any other length.
pub fn deserialize_fixed<'de, const N: usize, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; N], D::Error> {
    struct V<const N: usize>;
    impl<const N: usize> serde::de::Visitor<'_> for V<N> {
        type Value = [u8; N];
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{} hex characters or {} bytes", N * 2, N)
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<[u8; N], E> {
            decode_hex::<N>(s).map_err(E::custom)
        }
        fn visit_bytes<E: serde::de::Error>(self, b: &[u8]) -> Result<[u8; N], E> {
            b.try_into().map_err(|_| E::invalid_length(b.len(), &self))
        }
    }
    if d.is_human_readable() { d.deserialize_str(V::<N>) } else { d.deserialize_bytes(V::<N>) }
}

/// Defines a fixed-size byte newtype with lowercase-hex `Display`, `FromStr` and serde.
macro_rules! hex_bytes {
    ($(#[$m:meta])* $name:ident, $len:expr) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $len]);

        impl Default for $name {
            fn default() -> Self {
                $name([0; $len])
            }
        }
        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;
            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }
        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(::const_hex::Buffer::<$len>::new().format(&self.0))
            }
        }
        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{}({})", stringify!($name), ::const_hex::encode(&self.0[..6]))
            }
        }
        impl ::std::str::FromStr for $name {
            type Err = $crate::hash::HexError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $crate::hash::decode_hex::<$len>(s).map(Self)
            }
        }
        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                $crate::hash::serialize_fixed(&self.0, s)
            }
        }
        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::hash::deserialize_fixed::<$len, D>(d).map(Self)
            }
        }
    };
}
pub(crate) use hex_bytes;

hex_bytes!(
    /// A BLAKE3 digest: block hashes, transaction IDs, Merkle roots, the genesis hash.
    Hash, 32
);

impl Hash {
    /// All zeroes: the empty Merkle root.
    pub const ZERO: Hash = Hash([0; 32]);

    /// BLAKE3 of `data`.
    pub fn digest(data: &[u8]) -> Hash {
        Hash(*blake3::hash(data).as_bytes())
    }
}

/// A bounded set of hashes, forgetting the oldest first.
pub struct BoundedSet {
    set: HashSet<Hash>,
    order: VecDeque<Hash>,
    cap: usize,
}

impl BoundedSet {
    /// An empty set of at most `cap` hashes.
    pub fn new(cap: usize) -> Self {
        BoundedSet { set: HashSet::new(), order: VecDeque::new(), cap }
    }
    /// Adds `h`; at the bound the oldest goes.
    pub fn insert(&mut self, h: Hash) {
        if self.set.insert(h) {
            self.order.push_back(h);
            if self.order.len() > self.cap
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }
    /// Whether `h` is held.
    pub fn contains(&self, h: &Hash) -> bool {
        self.set.contains(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_errors() {
        let h = Hash::digest(b"cairn");
        let s = h.to_string();
        assert_eq!(s.len(), 64);
        assert_eq!(s.parse::<Hash>().unwrap(), h);
        assert!("zz".parse::<Hash>().is_err());
        assert!(format!("{s}00").parse::<Hash>().is_err());
        assert!(s.replace('a', "g").parse::<Hash>().is_err() || !s.contains('a'));
        assert_eq!(s.to_uppercase().parse::<Hash>().unwrap(), h, "either case");
        assert!(format!("0x{}", &s[2..]).parse::<Hash>().is_err(), "no 0x prefix");
        assert!(format!("0x{s}").parse::<Hash>().is_err(), "no 0x prefix");
        // JSON: lowercase hex, and back.
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, format!("\"{s}\""));
        assert_eq!(serde_json::from_str::<Hash>(&json).unwrap(), h);
        assert_eq!(format!("{h:?}"), format!("Hash({})", &s[..12]));
    }
}
