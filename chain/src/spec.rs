//! Chain specs: the consensus parameters and initial balances a chain starts from, and the
//! genesis block derived from them.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::block::{Block, HEADER_VERSION, Header};
use crate::encode::Writer;
use crate::hash::Hash;
use crate::keys::{Address, Keypair, dev_keypair};
use crate::pow::Target;

/// The devnet chain spec shipped in `config/devnet.toml`, embedded so the node runs anywhere.
pub const DEVNET_SPEC: &str = include_str!("../../config/devnet.toml");

/// Why a chain spec could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("chain spec {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The TOML did not parse or did not match the schema.
    #[error("chain spec {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What was wrong, with the line where TOML knows it.
        message: String,
    },
    /// The values parsed but make no sense together.
    #[error("chain spec {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What was wrong.
        message: String,
    },
}

/// Accounts derived from a published seed, funded at genesis so users and tests can spend at
/// once.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DevAccounts {
    /// The seed phrase keys are derived from ([`dev_keypair`]).
    pub seed: String,
    /// How many accounts.
    pub count: u32,
    /// Balance of each.
    pub balance: u64,
}

/// One explicit genesis allocation.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Alloc {
    /// The funded address.
    pub address: Address,
    /// Its balance at genesis.
    pub balance: u64,
}

/// A chain's consensus parameters. Every node of a chain must load the same spec: it
/// determines the genesis hash, and the handshake compares that.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ChainSpec {
    /// Human-readable chain name, e.g. `cairn-devnet`.
    pub chain_id: String,
    /// Genesis timestamp, ms since the Unix epoch.
    pub genesis_timestamp: u64,
    /// Wanted time between blocks, ms.
    pub block_time_ms: u64,
    /// Amount credited to each block's farmer, on top of fees.
    pub block_reward: u64,
    /// Target of the genesis block and the start of the retarget.
    pub initial_target: Target,
    /// Easiest target the retarget may reach.
    #[serde(default = "max_target")]
    pub pow_limit: Target,
    /// If true every block carries `initial_target` (a devnet that farms instantly).
    #[serde(default)]
    pub fixed_target: bool,
    /// How many recent blocks the retarget looks at.
    #[serde(default = "default_window")]
    pub retarget_window: u64,
    /// Maximum transactions in one block.
    pub max_block_txs: u32,
    /// Maximum canonical size of one block, bytes.
    pub max_block_bytes: u32,
    /// How far ahead of the local clock a block timestamp may be, ms.
    pub max_future_drift_ms: u64,
    /// Deepest reorganisation the node will perform.
    pub max_reorg_depth: u64,
    /// Smallest fee the mempool accepts.
    #[serde(default)]
    pub min_fee: u64,
    /// Prefunded accounts derived from a published seed.
    #[serde(default)]
    pub dev_accounts: Option<DevAccounts>,
    /// Explicit genesis balances.
    #[serde(default)]
    pub alloc: Vec<Alloc>,
}

fn max_target() -> Target {
    Target::MAX
}
fn default_window() -> u64 {
    10
}

impl ChainSpec {
    /// The shipped devnet spec.
    pub fn devnet() -> ChainSpec {
        Self::parse(DEVNET_SPEC, "<embedded devnet.toml>").expect("the shipped devnet spec is valid")
    }

    /// Loads a spec file; errors name the file.
    pub fn load(path: &Path) -> Result<ChainSpec, SpecError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Io { path: name.clone(), source })?;
        Self::parse(&text, &name)
    }

    /// Parses and checks spec text; `name` labels errors.
    pub fn parse(text: &str, name: &str) -> Result<ChainSpec, SpecError> {
        let spec: ChainSpec = toml::from_str(text).map_err(|e| SpecError::Parse { path: name.into(), message: toml_error(text, &e) })?;
        spec.check().map_err(|message| SpecError::Invalid { path: name.into(), message })?;
        Ok(spec)
    }

    fn check(&self) -> Result<(), String> {
        if self.chain_id.is_empty() || self.chain_id.len() > 64 {
            return Err("chain_id must be 1 to 64 characters".into());
        }
        if self.block_time_ms == 0 {
            return Err("block_time_ms must be positive".into());
        }
        if self.initial_target > self.pow_limit {
            return Err("initial_target is easier than pow_limit".into());
        }
        if self.retarget_window == 0 {
            return Err("retarget_window must be positive".into());
        }
        if self.max_block_txs == 0 || (self.max_block_bytes as usize) < Header::ENCODED_LEN + 4 {
            return Err("max_block_txs and max_block_bytes must allow a block".into());
        }
        if self.dev_accounts.as_ref().is_some_and(|d| d.count > 10_000) {
            return Err("dev_accounts.count must be at most 10000".into());
        }
        self.balances().map(|_| ())
    }

    /// The `index`-th dev account's key, if the spec has that many.
    pub fn dev_key(&self, index: u32) -> Option<Keypair> {
        let dev = self.dev_accounts.as_ref()?;
        (index < dev.count).then(|| dev_keypair(&dev.seed, index))
    }

    /// Every genesis balance, by address (dev accounts and explicit allocations summed).
    pub fn balances(&self) -> Result<BTreeMap<Address, u64>, String> {
        let mut out = BTreeMap::new();
        let mut credit = |a: Address, v: u64| -> Result<(), String> {
            let slot = out.entry(a).or_insert(0u64);
            *slot = slot.checked_add(v).ok_or_else(|| format!("genesis balance of {a} overflows"))?;
            Ok(())
        };
        if let Some(dev) = &self.dev_accounts {
            for i in 0..dev.count {
                credit(dev_keypair(&dev.seed, i).address(), dev.balance)?;
            }
        }
        for a in &self.alloc {
            credit(a.address, a.balance)?;
        }
        Ok(out)
    }

    /// Canonical encoding of every consensus field and the genesis balances:
    /// `"cairn/spec/v1" | chain_id (u32 len + utf8) | genesis_timestamp | block_time_ms |
    /// block_reward | initial_target | pow_limit | fixed_target u32 | retarget_window |
    /// max_block_txs u32 | max_block_bytes u32 | max_future_drift_ms | max_reorg_depth |
    /// min_fee | balance count u32 | (address | balance)* sorted by address`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.bytes(b"cairn/spec/v1")
            .str(&self.chain_id)
            .u64(self.genesis_timestamp)
            .u64(self.block_time_ms)
            .u64(self.block_reward)
            .bytes(&self.initial_target.0)
            .bytes(&self.pow_limit.0)
            .u32(self.fixed_target as u32)
            .u64(self.retarget_window)
            .u32(self.max_block_txs)
            .u32(self.max_block_bytes)
            .u64(self.max_future_drift_ms)
            .u64(self.max_reorg_depth)
            .u64(self.min_fee);
        let balances = self.balances().unwrap_or_default();
        w.u32(balances.len() as u32);
        for (a, v) in balances {
            w.bytes(&a.0).u64(v);
        }
        w.finish()
    }

    /// The genesis block: no transactions, `prev_hash` = BLAKE3 of the spec's canonical
    /// encoding, so the genesis hash commits to every parameter and balance.
    pub fn genesis(&self) -> Block {
        Block {
            header: Header {
                version: HEADER_VERSION,
                height: 0,
                prev_hash: Hash::digest(&self.encode()),
                tx_root: Hash::ZERO,
                timestamp: self.genesis_timestamp,
                target: self.initial_target,
                nonce: 0,
                farmer: Address::default(),
            },
            transactions: Vec::new(),
        }
    }
}

/// A TOML error on one line: ``line L, column C (`the line`): what`` (the position of its
/// first byte, both counted from 1), instead of the multi-line caret diagram.
pub fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let Some(span) = e.span() else { return e.message().trim().to_string() };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    // The line itself (cut), as the caret diagram would show it.
    let source: String = text.lines().nth(line - 1).unwrap_or("").trim().chars().take(80).collect();
    format!("line {line}, column {column} (`{source}`): {}", e.message().trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devnet_spec_is_valid_and_deterministic() {
        let a = ChainSpec::devnet();
        assert!(a.dev_accounts.as_ref().unwrap().count >= 10);
        assert_eq!(a.genesis().hash(), ChainSpec::devnet().genesis().hash());
        let mut b = a.clone();
        b.chain_id.push_str("-other");
        assert_ne!(a.genesis().hash(), b.genesis().hash());
    }

    #[test]
    fn broken_specs_name_the_problem() {
        let e = ChainSpec::parse("chain_id = 5", "x.toml").unwrap_err().to_string();
        assert!(e.starts_with("chain spec x.toml:"), "{e}");
        let bad = DEVNET_SPEC.replace("block_time_ms = ", "block_time_ms = 0 #");
        let e = ChainSpec::parse(&bad, "y.toml").unwrap_err().to_string();
        assert!(e.contains("block_time_ms"), "{e}");
    }
}
