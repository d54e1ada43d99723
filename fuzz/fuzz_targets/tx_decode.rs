//! Raw bytes as a transaction: decoding never panics, and what decodes re-encodes to exactly
//! the same bytes (its ID is the hash of them); the signature check on garbage never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(tx) = cairn_fuzz::tx_canonical(data) {
        let _ = tx.verify_signature();
        let _ = tx.sender();
    }
});
