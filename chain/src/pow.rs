//! Proof of work: targets, work, the proof check and the per-block retarget.

use std::fmt;
use std::str::FromStr;

use primitive_types::{U256, U512};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::hash::{Hash, HexError, decode_hex};

/// A difficulty target: a block is valid when its header hash, read as a 256-bit big-endian
/// number, is at most the target. Encoded as 32 bytes big-endian (hex in JSON and specs).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Target(pub [u8; 32]);

impl Target {
    /// The easiest possible target: every hash satisfies it.
    pub const MAX: Target = Target([0xff; 32]);

    fn value(&self) -> U256 {
        U256::from_big_endian(&self.0)
    }

    fn from_value(v: U256) -> Target {
        Target(v.to_big_endian())
    }

    /// Whether `hash` meets this target.
    pub fn is_met_by(&self, hash: &Hash) -> bool {
        // Big-endian byte arrays compare like the numbers they encode.
        hash.0 <= self.0
    }

    /// Expected number of hashes to meet this target: `2^256 / (target + 1)`.
    pub fn work(&self) -> Work {
        let t = self.value();
        if t == U256::MAX {
            return Work(U256::one());
        }
        // (2^256 - 1 - t) / (t + 1) + 1 == floor(2^256 / (t + 1)), without needing 2^256.
        Work(((!t) / (t + U256::one())).saturating_add(U256::one()))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(const_hex::Buffer::<32>::new().format(&self.0))
    }
}
impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({self})")
    }
}
impl FromStr for Target {
    type Err = HexError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        decode_hex::<32>(s).map(Target)
    }
}
impl Serialize for Target {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::hash::serialize_fixed(&self.0, s)
    }
}
impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::hash::deserialize_fixed::<32, D>(d).map(Target)
    }
}

/// Cumulative proof of work; fork choice follows the most of it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Debug)]
pub struct Work(pub U256);

impl Work {
    /// No work.
    pub const ZERO: Work = Work(U256::zero());

    /// `self + other`, saturating (2^256 hashes will never be done).
    pub fn saturating_add(self, other: Work) -> Work {
        Work(self.0.saturating_add(other.0))
    }
    /// 32 bytes big-endian.
    pub fn to_bytes(self) -> [u8; 32] {
        self.0.to_big_endian()
    }
    /// From 32 bytes big-endian.
    pub fn from_bytes(b: [u8; 32]) -> Work {
        Work(U256::from_big_endian(&b))
    }
}

impl fmt::Display for Work {
    /// Decimal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// How far one retarget may move the target: at most this factor easier or harder.
pub const MAX_RETARGET_FACTOR: u64 = 4;

/// The target a child of `parent_target` must carry, given how long the last blocks took.
///
/// `actual_ms` is the time between the window's first and last block, `expected_ms` what it
/// should have been (`blocks × block time`). The new target is `parent × actual / expected`,
/// moved by at most [`MAX_RETARGET_FACTOR`] either way, and never easier than `limit`.
pub fn retarget(parent_target: Target, actual_ms: u64, expected_ms: u64, limit: Target) -> Target {
    let expected = expected_ms.max(1);
    let actual = actual_ms.clamp(expected / MAX_RETARGET_FACTOR, expected.saturating_mul(MAX_RETARGET_FACTOR)).max(1);
    let scaled: U512 = parent_target.value().full_mul(U256::from(actual)) / U512::from(expected);
    let new = U256::try_from(scaled).unwrap_or(U256::MAX);
    let new = new.min(limit.value()).max(U256::one());
    Target::from_value(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_of_targets() {
        assert_eq!(Target::MAX.work(), Work(U256::one()));
        let mut t = [0xff; 32];
        t[0] = 0x0f; // 2^252 - 1 → work 16
        assert_eq!(Target(t).work(), Work(U256::from(16)));
        assert!(Target([0; 32]).work() > Target(t).work());
    }

    #[test]
    fn retarget_moves_toward_block_time_within_bounds() {
        let mut t = [0xff; 32];
        t[0] = 0x0f;
        let base = Target(t);
        // Blocks came twice as fast as wanted: target halves (harder).
        let harder = retarget(base, 500, 1000, Target::MAX);
        assert!(harder < base);
        // Ten times too slow: eased by at most 4×.
        let easier = retarget(base, 10_000, 1000, Target::MAX);
        assert!(easier > base);
        assert_eq!(easier, retarget(base, 4000, 1000, Target::MAX));
        // Never easier than the limit.
        assert_eq!(retarget(Target::MAX, 10_000, 1000, base), base);
        // On time: unchanged.
        assert_eq!(retarget(base, 1000, 1000, Target::MAX), base);
    }
}
