//! Property tests: canonical encodings round-trip and reject anything else; decoders never
//! panic; a reorg leaves exactly the state of building on the winning branch directly.

mod common;

use cairn_chain::keys::{PublicKey, SignatureBytes};
use cairn_chain::{AccountSource, Address, Block, Hash, Header, Target, Transaction};
use common::*;
use proptest::prelude::*;

fn arb_tx() -> impl Strategy<Value = Transaction> {
    (any::<[u8; 32]>(), any::<[u8; 32]>(), any::<[u8; 32]>(), any::<u64>(), any::<u64>(), any::<u64>(), prop::collection::vec(any::<u8>(), 64)).prop_map(
        |(c, f, t, amount, fee, nonce, sig)| Transaction {
            chain: Hash(c),
            from: PublicKey(f),
            to: Address(t),
            amount,
            fee,
            nonce,
            signature: SignatureBytes(sig.try_into().unwrap()),
        },
    )
}

fn arb_header() -> impl Strategy<Value = Header> {
    (any::<u32>(), any::<u64>(), any::<[u8; 32]>(), any::<[u8; 32]>(), any::<u64>(), any::<[u8; 32]>(), any::<u64>(), any::<[u8; 32]>()).prop_map(
        |(version, height, p, r, timestamp, t, nonce, f)| Header {
            version,
            height,
            prev_hash: Hash(p),
            tx_root: Hash(r),
            timestamp,
            target: Target(t),
            nonce,
            farmer: Address(f),
        },
    )
}

proptest! {
    #[test]
    fn transaction_round_trip(tx in arb_tx()) {
        let bytes = tx.encode();
        prop_assert_eq!(bytes.len(), Transaction::ENCODED_LEN);
        // The allocation-free encoding the ID is hashed from is the same bytes.
        let fixed = tx.to_bytes();
        prop_assert_eq!(fixed.as_slice(), bytes.as_slice());
        prop_assert_eq!(tx.id(), Hash::digest(&bytes));
        prop_assert_eq!(Transaction::decode(&bytes).unwrap(), tx);
        prop_assert!(Transaction::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        prop_assert!(Transaction::decode(&longer).is_err());
    }

    #[test]
    fn header_round_trip(h in arb_header()) {
        let bytes = h.encode();
        prop_assert_eq!(Header::decode(&bytes).unwrap(), h);
    }

    #[test]
    fn block_round_trip(header in arb_header(), txs in prop::collection::vec(arb_tx(), 0..6)) {
        let b = Block { header, transactions: txs };
        let bytes = b.encode();
        prop_assert_eq!(bytes.len(), b.encoded_len());
        prop_assert_eq!(Block::decode(&bytes, 10).unwrap(), b.clone());
        if !b.transactions.is_empty() {
            prop_assert!(Block::decode(&bytes, b.transactions.len() - 1).is_err(), "count limit enforced");
        }
    }

    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let _ = Block::decode(&bytes, 1000);
        let _ = Transaction::decode(&bytes);
        let _ = Header::decode(&bytes);
        let _ = cairn_chain::state::Undo::decode(&bytes);
    }
}

/// A random branch: for each block, transfers `(dev key, recipient, amount)`.
fn arb_branch(max_len: usize) -> impl Strategy<Value = Vec<Vec<(u32, u8, u64)>>> {
    prop::collection::vec(prop::collection::vec((0u32..4, 0u8..4, 1u64..1_000_000), 0..3), 1..=max_len)
}

fn build(t: &mut TestChain, farmer: Address, branch: &[Vec<(u32, u8, u64)>]) -> Vec<Block> {
    branch
        .iter()
        .map(|transfers| {
            // Several transfers from one key in a block take consecutive nonces.
            let mut used = std::collections::HashMap::new();
            let txs = transfers
                .iter()
                .map(|(k, to, amount)| {
                    let skip = used.entry(*k).or_insert(0u64);
                    let tx = t.transfer(&dev(*k), Address([*to; 32]), *amount, *skip);
                    *skip += 1;
                    tx
                })
                .collect();
            t.extend(farmer, txs)
        })
        .collect()
}

fn addresses() -> Vec<Address> {
    let mut v: Vec<Address> = (0..4).map(|k| dev(k).address()).collect();
    v.extend((0..4u8).map(|b| Address([b; 32])));
    v.extend([Address([0xaa; 32]), Address([0xbb; 32])]);
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Build prefix+A on X, prefix+B (longer) on Y; feed B to X: X reorgs, and its tip and
    /// every account equal Y's. Then extend A past B: X reorgs back and equals a chain built on
    /// prefix+A' directly.
    #[test]
    fn state_after_reorg_equals_state_built_directly(
        prefix in arb_branch(3), a in arb_branch(3), extra in arb_branch(3), more in arb_branch(2), in_memory in any::<bool>(),
    ) {
        let mut spec = test_spec();
        spec.max_reorg_depth = 100;
        spec.max_block_bytes = 1 << 20;
        // The chain that reorganises keeps its store in either backend; the others in RocksDB.
        let mut x = TestChain::on(if in_memory { Backend::Memory } else { Backend::RocksDb }, spec.clone());
        let mut y = TestChain::new(spec.clone());
        let mut z = TestChain::new(spec);
        let fa = Address([0xaa; 32]);
        let fb = Address([0xbb; 32]);
        let prefix_blocks = build(&mut y, fa, &prefix);
        for b in &prefix_blocks {
            x.submit(b.clone()).unwrap();
            z.submit(b.clone()).unwrap();
        }
        let a_blocks = build(&mut x, fa, &a);
        for b in &a_blocks {
            z.submit(b.clone()).unwrap();
        }
        // B is longer than A: it wins.
        let mut b_branch = a.clone();
        b_branch.extend(extra.iter().cloned());
        let b_blocks = build(&mut y, fb, &b_branch);
        for b in &b_blocks {
            x.submit(b.clone()).unwrap();
        }
        prop_assert_eq!(x.chain.tip().hash, y.chain.tip().hash);
        for addr in addresses() {
            prop_assert_eq!(x.store.account(&addr).unwrap(), y.store.account(&addr).unwrap());
        }
        // Extend A (on z, which never saw B) until it beats B, then feed that to x.
        let need = b_blocks.len() - a_blocks.len() + 1;
        let mut a2: Vec<_> = more.into_iter().cycle().take(need).collect();
        a2.truncate(need);
        let a2_blocks = build(&mut z, fa, &a2);
        for b in a_blocks.iter().chain(&a2_blocks) {
            let _ = x.submit(b.clone()).unwrap();
        }
        prop_assert_eq!(x.chain.tip().hash, z.chain.tip().hash);
        for addr in addresses() {
            prop_assert_eq!(x.store.account(&addr).unwrap(), z.store.account(&addr).unwrap());
        }
        // The transaction index follows the best chain exactly.
        for b in prefix_blocks.iter().chain(&a_blocks).chain(&b_blocks).chain(&a2_blocks) {
            for tx in &b.transactions {
                prop_assert_eq!(x.store.tx_location(&tx.id()).unwrap(), z.store.tx_location(&tx.id()).unwrap());
            }
        }
    }
}
