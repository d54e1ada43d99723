//! The canonical byte encoding: the only bytes Cairn ever hashes, signs or sends.
//!
//! # Rules
//! - Unsigned integers are fixed width, little-endian (`u32`, `u64`).
//! - Hashes, addresses, public keys and signatures are their raw bytes, fixed length.
//! - A difficulty target is its 32 bytes, big-endian (so a hash compares to it bytewise).
//! - A list is a `u32` little-endian count followed by its items; a decoder checks the
//!   count against a caller-given maximum *before* it reserves anything.
//! - Structures are their fields in declaration order with no padding, tags or lengths.
//!
//! Every encoding is bijective: `decode(encode(x)) == x`, and decoding refuses trailing bytes,
//! so one value has exactly one encoding and one hash.

/// Why some bytes are not a canonical encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended in the middle of a field.
    #[error("unexpected end of input reading {0}")]
    Truncated(&'static str),
    /// Bytes were left over after the value.
    #[error("{0} trailing bytes after the value")]
    Trailing(usize),
    /// A list announced more items than the limit allows.
    #[error("{what}: count {count} exceeds the limit {max}")]
    TooMany {
        /// What list it was.
        what: &'static str,
        /// The announced count.
        count: u64,
        /// The limit.
        max: u64,
    },
    /// A field held a value outside its domain.
    #[error("invalid {0}")]
    Invalid(&'static str),
}

/// Appends canonical fields to a byte buffer.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// A writer with room for `cap` bytes.
    pub fn with_capacity(cap: usize) -> Self {
        Writer { buf: Vec::with_capacity(cap) }
    }
    /// Appends a `u32`, little-endian.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends a `u64`, little-endian.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends raw bytes (a fixed-length field).
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }
    /// Appends a length-prefixed UTF-8 string.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.u32(u32::try_from(s.len()).unwrap_or(u32::MAX)).bytes(s.as_bytes())
    }
    /// The bytes written.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads canonical fields from a byte slice, never panicking on short or hostile input.
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads from `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }
    /// Takes `n` raw bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::Truncated(what));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }
    /// Takes a fixed-size array.
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }
    /// Takes a little-endian `u32`.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    /// Takes a little-endian `u64`.
    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    /// Takes a list count and checks it against `max` before anything is allocated.
    pub fn count(&mut self, max: usize, what: &'static str) -> Result<usize, DecodeError> {
        let n = self.u32(what)?;
        if n as u64 > max as u64 {
            return Err(DecodeError::TooMany { what, count: n as u64, max: max as u64 });
        }
        Ok(n as usize)
    }
    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }
    /// Fails if anything is left.
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.rest.len() {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }
}
