//! Compact blocks (`chain/src/compact.rs`): a block of arbitrary transactions made compact
//! with an arbitrary salt, its short IDs through the wire encoding, rebuilt from an arbitrary
//! candidate set (some of the block's transactions, decoys, duplicates), the missing slots
//! filled with the right transactions or arbitrary ones, and raw short-ID bytes decoded.
//!
//! Invariants: nothing panics; short IDs round-trip exactly; `missing` lists exactly the
//! empty slots, ascending; a rebuild filled with the block's own transactions finishes as
//! exactly the block; a finished block always matches its header's Merkle root; a rebuild is
//! never wrong silently (a wrong fill ends in `RootMismatch` or a block with that root).
#![no_main]

use arbitrary::Arbitrary;
use cairn_chain::block::merkle_root;
use cairn_chain::compact::{CompactBlock, NotRebuilt, Partial};
use cairn_chain::{Block, Hash, Transaction};
use cairn_fuzz::FuzzTx;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    txs: Vec<FuzzTx>,
    nonce: u64,
    /// Which of the block's transactions the receiver has (bit per transaction, cycled).
    have: Vec<bool>,
    decoys: Vec<FuzzTx>,
    /// Fill with these instead of the right transactions.
    wrong_fill: Option<Vec<FuzzTx>>,
    raw_short_ids: Vec<u8>,
    max: u16,
}

fuzz_target!(|input: Input| {
    // Raw bytes as short IDs.
    if let Ok(ids) = CompactBlock::decode_short_ids(&input.raw_short_ids, usize::from(input.max)) {
        assert!(ids.len() <= usize::from(input.max));
        let c = CompactBlock { header: cairn_fuzz::chain_header(0), nonce: 0, short_ids: ids };
        assert_eq!(c.encode_short_ids(), input.raw_short_ids);
    }

    let transactions: Vec<Transaction> = input.txs.iter().take(256).map(FuzzTx::tx).collect();
    let mut header = cairn_fuzz::chain_header(1);
    let ids: Vec<Hash> = transactions.iter().map(Transaction::id).collect();
    header.tx_root = merkle_root(&ids);
    let block = Block { header, transactions };
    let compact = CompactBlock::of(&block, input.nonce);
    let wire = compact.encode_short_ids();
    let decoded = CompactBlock::decode_short_ids(&wire, block.transactions.len()).expect("own short IDs decode");
    assert_eq!(decoded, compact.short_ids);

    let decoys: Vec<(Hash, Transaction)> = input.decoys.iter().take(64).map(|t| t.tx()).map(|t| (t.id(), t)).collect();
    let had: Vec<(Hash, Transaction)> = block
        .transactions
        .iter()
        .enumerate()
        .filter(|(i, _)| !input.have.is_empty() && input.have[i % input.have.len()])
        .map(|(_, t)| (t.id(), t.clone()))
        .collect();
    let candidates = had.iter().chain(&decoys).map(|(id, t)| (id, t));
    let mut partial = Partial::rebuild(&compact, candidates);
    let missing = partial.missing();
    assert!(missing.windows(2).all(|w| w[0] < w[1]), "missing not ascending");
    assert!(missing.iter().all(|&i| (i as usize) < block.transactions.len()));
    match &input.wrong_fill {
        None => {
            let fill: Vec<Transaction> = missing.iter().map(|&i| block.transactions[i as usize].clone()).collect();
            partial.fill(fill).expect("the right count fills");
            // Decoys can only take a slot by a short-ID collision, which the root then catches.
            match partial.finish() {
                Ok(Some(b)) => assert_eq!(b, block, "a rebuild finished as another block"),
                Ok(None) => panic!("slots still missing after a fill"),
                Err(NotRebuilt::RootMismatch) => {}
                Err(e) => panic!("unexpected {e}"),
            }
        }
        Some(wrong) => {
            let wrong: Vec<Transaction> = wrong.iter().take(300).map(FuzzTx::tx).collect();
            let n = wrong.len();
            match partial.fill(wrong) {
                Ok(()) => {
                    assert_eq!(n, missing.len());
                    if let Ok(Some(b)) = partial.finish() {
                        let ids: Vec<Hash> = b.transactions.iter().map(Transaction::id).collect();
                        assert_eq!(merkle_root(&ids), b.header.tx_root, "finished block does not match its root");
                    }
                }
                Err(NotRebuilt::WrongCount { want, got }) => assert!(want == missing.len() && got == n && want != got),
                Err(e) => panic!("unexpected {e}"),
            }
        }
    }
});
