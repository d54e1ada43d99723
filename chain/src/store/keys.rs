//! Key encodings whose byte order matters.

/// Height index key: big-endian, so RocksDB's byte order is height order.
pub fn height_key(height: u64) -> [u8; 8] {
    height.to_be_bytes()
}
