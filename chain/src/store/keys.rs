//! Key encodings whose byte order matters.

/// Height index key: big-endian, so RocksDB's byte order is height order.
pub fn height_key(height: u64) -> [u8; 8] {
    height.to_be_bytes()
}

/// Address index key: the address, then the height and position (big-endian), so an
/// address's entries are contiguous and in chain order.
pub fn address_tx_key(address: &[u8; 32], height: u64, index: u32) -> [u8; 44] {
    let mut k = [0u8; 44];
    k[..32].copy_from_slice(address);
    k[32..40].copy_from_slice(&height.to_be_bytes());
    k[40..].copy_from_slice(&index.to_be_bytes());
    k
}
