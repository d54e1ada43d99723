//! What the p2p layer needs from the node, implemented here: the chain's identity and tip
//! (over the chain service's watch channel) and persistence of the address book and bans
//! (over the RocksDB store's `peers` and `bans` column families, as JSON values).

use std::net::SocketAddr;

use cairn_chain::Store;
use cairn_chain::store::{CF_BANS, CF_PEERS};
use cairn_p2p::NodeId;
use cairn_p2p::ports::{Ban, ChainInfo, KnownPeer, PeerStore, PeerStoreError, TipSummary};

use crate::chain_service::ChainHandle;

/// The chain, as the p2p layer sees it.
pub struct ChainBridge(pub ChainHandle);

impl ChainInfo for ChainBridge {
    fn chain_id(&self) -> String {
        self.0.spec().chain_id.clone()
    }
    fn genesis(&self) -> cairn_chain::Hash {
        self.0.genesis()
    }
    fn tip(&self) -> TipSummary {
        let t = self.0.tip();
        TipSummary { height: t.height, hash: t.hash, total_work: t.total_work }
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
        self.put(CF_BANS, &ban.node_id.0, ban)
    }
    fn remove_ban(&self, node_id: &NodeId) -> Result<(), PeerStoreError> {
        self.delete(CF_BANS, &node_id.0)
    }
}
