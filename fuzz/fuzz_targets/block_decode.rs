//! Raw bytes as a header and as a block (with the transaction limit from the first byte):
//! decoding never panics, what decodes re-encodes to exactly the same bytes, and the stateless
//! checks (`check_header_alone`, `check_stateless`, `check_blocks`) of whatever decodes never
//! panic and agree with each other.
#![no_main]

use std::sync::OnceLock;

use cairn_chain::{ChainSpec, check_blocks, check_header_alone, check_stateless};
use libfuzzer_sys::fuzz_target;

fn spec() -> &'static ChainSpec {
    static SPEC: OnceLock<ChainSpec> = OnceLock::new();
    SPEC.get_or_init(ChainSpec::devnet)
}

fuzz_target!(|data: &[u8]| {
    let Some((&limit, data)) = data.split_first() else { return };
    if data.len() == cairn_chain::Header::ENCODED_LEN
        && let Some(h) = cairn_fuzz::header_canonical(data)
    {
        let _ = check_header_alone(spec(), &h, h.timestamp);
    }
    let max = if limit == 0 { cairn_fuzz::MAX_TXS } else { usize::from(limit) };
    if let Some(b) = cairn_fuzz::block_canonical(data, max) {
        let genesis = cairn_fuzz::genesis();
        let alone = check_stateless(spec(), &genesis, &b).map_err(|e| e.code());
        let batch = check_blocks(spec(), &genesis, vec![b], None);
        assert_eq!(alone, batch[0].as_ref().map(drop).map_err(|f| f.1.code()), "check_blocks disagrees with check_stateless");
    }
});
