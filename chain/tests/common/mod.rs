//! Helpers for chain tests: a chain in a temporary RocksDB store or in memory on a test spec,
//! and block building on a synthetic clock (one block time per block, so the retarget stays
//! put).
#![allow(dead_code)]

use cairn_chain::block::merkle_root;
use cairn_chain::{AccountSource, Address, Block, Chain, ChainSpec, Hash, Header, Keypair, Outcome, Store, Transaction};

/// The devnet spec with a real retarget and small limits so every rule is reachable.
pub fn test_spec() -> ChainSpec {
    let mut s = ChainSpec::devnet();
    s.chain_id = "cairn-test".into();
    s.fixed_target = false;
    s.pow_limit = s.initial_target;
    s.block_time_ms = 1000;
    s.retarget_window = 5;
    s.max_block_txs = 4;
    s.max_block_bytes = (Header::ENCODED_LEN + 4 + 3 * Transaction::ENCODED_LEN) as u32;
    s.max_reorg_depth = 3;
    s
}

/// Which store a [`TestChain`] keeps its chain in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    RocksDb,
    Memory,
}

/// Runs each named test body (`fn name(backend: Backend)`) against both store backends, as
/// the tests `name::rocksdb` and `name::memory`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn rocksdb() {
                super::$name($crate::common::Backend::RocksDb)
            }
            #[test]
            fn memory() {
                super::$name($crate::common::Backend::Memory)
            }
        }
    )*};
}

pub struct TestChain {
    pub chain: Chain,
    pub store: Store,
    _dir: Option<tempfile::TempDir>,
}

impl TestChain {
    /// A chain in a temporary RocksDB store.
    pub fn new(spec: ChainSpec) -> Self {
        Self::on(Backend::RocksDb, spec)
    }

    /// A chain in a store of the given backend.
    pub fn on(backend: Backend, spec: ChainSpec) -> Self {
        let (mut store, dir) = match backend {
            Backend::RocksDb => {
                let dir = tempfile::tempdir().unwrap();
                (Store::open(dir.path(), &spec.chain_id, spec.genesis().hash()).unwrap(), Some(dir))
            }
            Backend::Memory => (Store::memory(&spec.chain_id, spec.genesis().hash()), None),
        };
        store.set_sync_writes(false);
        let chain = Chain::open(store.clone(), spec).unwrap();
        TestChain { chain, store, _dir: dir }
    }

    pub fn genesis(&self) -> Hash {
        self.chain.genesis_hash()
    }

    /// The time the next block is due: one block time after the tip.
    pub fn next_time(&self) -> u64 {
        self.chain.tip().header.timestamp + self.chain.spec().block_time_ms
    }

    /// A valid, mined block on the tip with `txs`.
    pub fn make_block(&self, farmer: Address, txs: Vec<Transaction>) -> Block {
        let header = self.chain.template(farmer, &txs, self.next_time()).unwrap();
        Block { header: mine(header), transactions: txs }
    }

    /// Submits at the block's own timestamp.
    pub fn submit(&mut self, block: Block) -> Result<Outcome, cairn_chain::BlockError> {
        let now = block.header.timestamp.max(self.next_time());
        self.chain.submit(block, now)
    }

    /// Builds, submits and expects a block on the tip.
    pub fn extend(&mut self, farmer: Address, txs: Vec<Transaction>) -> Block {
        let b = self.make_block(farmer, txs);
        match self.submit(b.clone()) {
            Ok(Outcome::Connected { .. }) => b,
            other => panic!("block not connected: {other:?}"),
        }
    }

    /// A signed transfer from `key` with its next nonce on this chain (plus `skip`).
    pub fn transfer(&self, key: &Keypair, to: Address, amount: u64, skip: u64) -> Transaction {
        let nonce = self.store.account(&key.address()).unwrap().nonce + skip;
        Transaction::signed(key, self.genesis(), to, amount, 1, nonce)
    }
}

/// Varies the nonce until the header meets its target.
pub fn mine(mut h: Header) -> Header {
    while !h.target.is_met_by(&h.hash()) {
        h.nonce += 1;
    }
    h
}

/// Recomputes the Merkle root and re-mines after a test edited a block.
pub fn reseal(mut b: Block) -> Block {
    b.header.tx_root = merkle_root(&b.tx_ids());
    b.header = mine(b.header);
    b
}

pub fn dev(n: u32) -> Keypair {
    ChainSpec::devnet().dev_key(n).unwrap()
}

/// Re-mines without touching the root (to test a wrong root with a valid proof).
pub fn mine_only(mut b: Block) -> Block {
    b.header = mine(b.header);
    b
}
