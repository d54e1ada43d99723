//! What the p2p layer needs from the node, implemented here: the chain's identity and tip
//! (over the chain service's watch channel) and persistence of the address book and bans
//! (over the RocksDB store's `peers` and `bans` column families, as JSON values).

use std::net::SocketAddr;
use std::sync::Arc;

use cairn_chain::compact::{CompactBlock, Partial};
use cairn_chain::store::{CF_BANS, CF_PEERS};
use cairn_chain::{Block, BlockError, CheckResult, CheckedBlock, Hash, Header, Store, Transaction, TxError};
use cairn_p2p::ports::{Ban, BanTarget, ChainInfo, KnownPeer, PeerStore, PeerStoreError, TipSummary};
use cairn_p2p::ports::{BoxFuture, Submitted};
use tokio::sync::{broadcast, watch};

use crate::chain_service::ChainHandle;

/// The chain, as the p2p layer sees it.
pub struct ChainBridge {
    chain: ChainHandle,
    tips: watch::Receiver<TipSummary>,
}

fn summary(t: &crate::chain_service::Tip) -> TipSummary {
    TipSummary { height: t.height, hash: t.hash, total_work: t.total_work }
}

impl ChainBridge {
    /// Bridges `chain`; forwards its tip changes (needs a runtime).
    pub fn new(chain: ChainHandle) -> Self {
        let mut rx = chain.watch_tip();
        let (tx, tips) = watch::channel(summary(&rx.borrow()));
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let t = summary(&rx.borrow_and_update());
                if tx.send(t).is_err() {
                    return;
                }
            }
        });
        ChainBridge { chain, tips }
    }
}

fn submitted(a: crate::chain_service::Accepted) -> Submitted {
    match a {
        crate::chain_service::Accepted::Connected => Submitted::Connected,
        crate::chain_service::Accepted::SideChain => Submitted::SideChain,
        crate::chain_service::Accepted::AlreadyKnown => Submitted::AlreadyKnown,
    }
}

fn logged<T>(what: &str, r: Result<T, crate::chain_service::ServiceError>) -> Option<T> {
    r.map_err(|e| tracing::debug!(target: "p2p::sync", "{what}: {e}")).ok()
}

impl ChainInfo for ChainBridge {
    fn chain_id(&self) -> String {
        self.chain.spec().chain_id.clone()
    }
    fn genesis(&self) -> Hash {
        self.chain.genesis()
    }
    fn tip(&self) -> TipSummary {
        summary(&self.chain.tip())
    }
    fn max_block_txs(&self) -> usize {
        self.chain.spec().max_block_txs as usize
    }
    fn max_block_bytes(&self) -> usize {
        self.chain.spec().max_block_bytes as usize
    }
    fn total_work_of(&self, hash: Hash) -> BoxFuture<Option<cairn_chain::Work>> {
        let c = self.chain.clone();
        Box::pin(async move { logged("total_work_of", c.total_work_of(hash).await).flatten() })
    }
    fn watch_tip(&self) -> Option<watch::Receiver<TipSummary>> {
        Some(self.tips.clone())
    }
    fn new_transactions(&self) -> Option<broadcast::Receiver<Arc<[Transaction]>>> {
        Some(self.chain.subscribe_txs())
    }
    fn pending_transactions(&self, max: usize) -> BoxFuture<Vec<Transaction>> {
        let c = self.chain.clone();
        Box::pin(async move { logged("pending transactions", c.pending(max).await).unwrap_or_default() })
    }
    fn pending_ids(&self, skip: usize, max: usize) -> BoxFuture<Vec<Hash>> {
        let c = self.chain.clone();
        Box::pin(async move { logged("pending ids", c.pending_ids(skip, max).await).unwrap_or_default() })
    }
    fn pending_by_ids(&self, ids: Vec<Hash>) -> BoxFuture<Vec<Transaction>> {
        let c = self.chain.clone();
        Box::pin(async move { logged("pending by ids", c.pending_by_ids(ids).await).unwrap_or_default() })
    }
    fn lacking_txs(&self, ids: Vec<Hash>) -> BoxFuture<Vec<Hash>> {
        let c = self.chain.clone();
        Box::pin(async move { logged("lacking transactions", c.lacking(ids).await).unwrap_or_default() })
    }
    fn rebuild(&self, compact: CompactBlock) -> BoxFuture<Option<Partial>> {
        let c = self.chain.clone();
        Box::pin(async move { logged("rebuild", c.rebuild(compact).await) })
    }
    fn compact_block(&self, hash: Hash, nonce: u64) -> BoxFuture<Option<CompactBlock>> {
        let c = self.chain.clone();
        Box::pin(async move { logged("compact block", c.compact_block(hash, nonce).await).flatten() })
    }
    fn block(&self, hash: Hash) -> BoxFuture<Option<Block>> {
        let c = self.chain.clone();
        Box::pin(async move { logged("block", c.block(hash).await).flatten() })
    }
    fn block_at(&self, height: u64) -> BoxFuture<Option<Block>> {
        let c = self.chain.clone();
        Box::pin(async move { logged("block_at", c.block_at(height).await).flatten() })
    }
    fn has_block(&self, hash: Hash) -> BoxFuture<bool> {
        let c = self.chain.clone();
        Box::pin(async move { logged("has_block", c.has_block(hash).await).unwrap_or(false) })
    }
    fn submit_block(&self, block: Block) -> BoxFuture<Result<Submitted, BlockError>> {
        let c = self.chain.clone();
        Box::pin(async move {
            match c.submit_block(block).await {
                Ok(r) => r.map(submitted),
                Err(e) => Err(BlockError::Store(e.to_string())),
            }
        })
    }
    fn check_header(&self, header: &Header) -> Result<(), BlockError> {
        cairn_chain::check_header_alone(self.chain.spec(), header, crate::chain_service::now_ms())
    }
    fn check_blocks(&self, blocks: Vec<Block>) -> BoxFuture<Vec<CheckResult>> {
        let c = self.chain.clone();
        Box::pin(async move { c.check_blocks(blocks).await })
    }
    fn submit_checked(&self, blocks: Vec<CheckedBlock>) -> BoxFuture<Vec<Result<Submitted, BlockError>>> {
        let c = self.chain.clone();
        Box::pin(async move {
            match c.submit_checked(blocks).await {
                Ok(list) => list.into_iter().map(|r| r.map(submitted)).collect(),
                Err(e) => vec![Err(BlockError::Store(e.to_string()))],
            }
        })
    }
    fn submit_tx(&self, tx: Transaction) -> BoxFuture<Result<(), TxError>> {
        let c = self.chain.clone();
        Box::pin(async move {
            match c.submit_tx(tx).await {
                Ok(r) => r.map(|_| ()),
                Err(e) => Err(TxError::Store(e.to_string())),
            }
        })
    }
    fn submit_txs(&self, txs: Vec<Transaction>) -> BoxFuture<Vec<Result<(), TxError>>> {
        let c = self.chain.clone();
        Box::pin(async move {
            let n = txs.len();
            match c.submit_relayed(txs).await {
                Ok(r) => r.into_iter().map(|r| r.map(|_| ())).collect(),
                Err(e) => vec![Err(TxError::Store(e.to_string())); n],
            }
        })
    }
    fn locator(&self) -> BoxFuture<Vec<Hash>> {
        let c = self.chain.clone();
        Box::pin(async move { logged("locator", c.locator().await).unwrap_or_default() })
    }
    fn headers_after(&self, locator: Vec<Hash>, max: usize) -> BoxFuture<Vec<Header>> {
        let c = self.chain.clone();
        Box::pin(async move { logged("headers_after", c.headers_after(locator, max).await).unwrap_or_default() })
    }
}

/// Address book and bans in RocksDB.
pub struct StoreBridge(pub Store);

fn err(e: impl std::fmt::Display) -> PeerStoreError {
    PeerStoreError(e.to_string())
}

impl StoreBridge {
    fn put<T: serde::Serialize>(&self, cf: &'static str, key: &[u8], value: &T) -> Result<(), PeerStoreError> {
        let mut b = self.0.batch();
        b.put_raw(cf, key, &serde_json::to_vec(value).map_err(err)?);
        self.0.write(b).map_err(err)
    }
    fn delete(&self, cf: &'static str, key: &[u8]) -> Result<(), PeerStoreError> {
        let mut b = self.0.batch();
        b.delete_raw(cf, key);
        self.0.write(b).map_err(err)
    }
    fn load<T: serde::de::DeserializeOwned>(&self, cf: &'static str, max: usize) -> Result<Vec<T>, PeerStoreError> {
        let mut out = Vec::new();
        for (k, v) in self.0.raw_entries(cf, max).map_err(err)? {
            match serde_json::from_slice(&v) {
                Ok(x) => out.push(x),
                Err(e) => tracing::warn!(target: "p2p::peers", key = %String::from_utf8_lossy(&k), "skipping unreadable {cf} entry: {e}"),
            }
        }
        Ok(out)
    }
}

impl PeerStore for StoreBridge {
    fn load_peers(&self, max: usize) -> Result<Vec<KnownPeer>, PeerStoreError> {
        self.load(CF_PEERS, max)
    }
    fn save_peer(&self, peer: &KnownPeer) -> Result<(), PeerStoreError> {
        self.put(CF_PEERS, peer.addr.to_string().as_bytes(), peer)
    }
    fn remove_peer(&self, addr: &SocketAddr) -> Result<(), PeerStoreError> {
        self.delete(CF_PEERS, addr.to_string().as_bytes())
    }
    fn load_bans(&self) -> Result<Vec<Ban>, PeerStoreError> {
        self.load(CF_BANS, 100_000)
    }
    fn save_ban(&self, ban: &Ban) -> Result<(), PeerStoreError> {
        self.put(CF_BANS, &ban.target.key(), ban)
    }
    fn remove_ban(&self, target: &BanTarget) -> Result<(), PeerStoreError> {
        self.delete(CF_BANS, &target.key())
    }
}
