//! Node configuration: defaults < config file < `CAIRN_*` environment < flags.
//!
//! The flags and their environment variables are declared in [`crate::cli::NodeArgs`] (clap
//! gives flags precedence over the environment); this module layers the config file and the
//! defaults underneath and loads the chain spec.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use std::time::Duration;

use cairn_chain::spec::SpecError;
use cairn_chain::{Address, ChainSpec, MempoolLimits};
use cairn_p2p::P2pConfig;
use serde::Deserialize;

/// The shipped seed list (`config/seed_peers.toml`), embedded.
pub const SEED_PEERS: &str = include_str!("../config/seed_peers.toml");

/// Default P2P port.
pub const DEFAULT_P2P_PORT: u16 = 9090;
/// Default RPC port.
pub const DEFAULT_RPC_PORT: u16 = 8080;
/// Default data directory (relative to the working directory).
pub const DEFAULT_DATA_DIR: &str = "cairn-data";

/// Why a configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("config file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The config file is not valid.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The chain spec could not be loaded.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A value is malformed.
    #[error("{0}")]
    Invalid(String),
}

/// The config file (TOML). Every key is optional; unknown keys are an error, so a typo is
/// never silently ignored. Relative paths are relative to the file's directory.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The node's human-readable name: 1 to 32 of `[A-Za-z0-9._-]` (see
    /// [`cairn_p2p::name`]).
    pub name: Option<String>,
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// Chain spec file.
    pub chain: Option<PathBuf>,
    /// P2P (QUIC) port.
    pub p2p_port: Option<u16>,
    /// RPC port.
    pub rpc_port: Option<u16>,
    /// Address the RPC binds (default 127.0.0.1).
    pub rpc_bind: Option<IpAddr>,
    /// Address the P2P endpoint binds (default 0.0.0.0).
    pub p2p_bind: Option<IpAddr>,
    /// Peers to connect to, `[NODEID@]HOST:PORT`.
    pub peers: Option<Vec<String>>,
    /// mDNS discovery on the LAN.
    pub mdns: Option<bool>,
    /// Farm continuously to this address.
    pub farm: Option<String>,
    /// Threads for the built-in farmer.
    pub farm_threads: Option<usize>,
    /// Mempool capacity (transactions).
    pub mempool_max_txs: Option<usize>,
    /// Seed peer list file (default: the shipped `config/seed_peers.toml`).
    pub seed_peers: Option<PathBuf>,
    /// Most inbound peers.
    pub max_inbound: Option<usize>,
    /// Outbound peers to keep.
    pub target_outbound: Option<usize>,
    /// Most outbound peers.
    pub max_outbound: Option<usize>,
    /// Most inbound peers from one IP [default: 4].
    pub max_inbound_per_ip: Option<usize>,
    /// Most inbound peers from one /24 (IPv6 /64) [default: 16].
    pub max_inbound_per_subnet: Option<usize>,
    /// New inbound handshakes allowed per IP per minute [default: 10]...
    pub handshakes_per_minute: Option<u32>,
    /// ...and at once [default: 20].
    pub handshake_burst: Option<u32>,
    /// Peers at 127.0.0.1 and ::1 skip the per-address limits, the handshake rate and
    /// automatic IP bans [default: true, so a devnet on one machine works].
    pub exempt_loopback: Option<bool>,
    /// Relay blocks only: announce and fetch no transactions [default: false].
    pub blocks_only: Option<bool>,
    /// The RPC's bearer token [default: none; beyond loopback a cookie file is made].
    pub rpc_token: Option<String>,
    /// Origins whose pages may read the RPC (CORS, GET only): `["*"]` for any [default: any
    /// when the RPC is on loopback, none beyond].
    pub rpc_cors: Option<Vec<String>>,
    /// Keep the address index (`GET /accounts/{a}/txs`) [default: true].
    pub address_index: Option<bool>,
}

/// `seed_peers.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedFile {
    seeds: Vec<String>,
}

/// Parses a seed list; `name` labels errors.
pub fn parse_seeds(text: &str, name: &Path) -> Result<Vec<String>, ConfigError> {
    let f: SeedFile = toml::from_str(text).map_err(|e| ConfigError::Parse { path: name.into(), message: cairn_chain::spec::toml_error(text, &e) })?;
    for s in &f.seeds {
        cairn_p2p::service::parse_peer(s).map_err(|e| ConfigError::Parse { path: name.into(), message: e.to_string() })?;
    }
    Ok(f.seeds)
}

impl FileConfig {
    /// Loads a config file, naming it in any error.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.into(), source })?;
        let mut cfg: FileConfig =
            toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.into(), message: cairn_chain::spec::toml_error(&text, &e) })?;
        if let Some(name) = &cfg.name {
            cairn_p2p::validate_name(name).map_err(|e| ConfigError::Parse { path: path.into(), message: format!("name: {e}") })?;
        }
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [&mut cfg.data_dir, &mut cfg.chain, &mut cfg.seed_peers].into_iter().flatten() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(cfg)
    }
}

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Data directory (RocksDB, node key).
    pub data_dir: PathBuf,
    /// The chain spec.
    pub chain: ChainSpec,
    /// Where the RPC listens.
    pub rpc_addr: SocketAddr,
    /// Where the P2P endpoint listens.
    pub p2p_addr: SocketAddr,
    /// Peers to connect to.
    pub peers: Vec<String>,
    /// Farm continuously to this address.
    pub farm: Option<Address>,
    /// Farmer threads.
    pub farm_threads: usize,
    /// Mempool limits.
    pub mempool: MempoolLimits,
    /// P2P limits and intervals.
    pub p2p: P2pConfig,
    /// Seed peers.
    pub seeds: Vec<String>,
    /// The RPC's bearer token; `None`: a cookie beyond loopback, open on loopback
    /// ([`crate::rpc::auth`]).
    pub rpc_token: Option<String>,
    /// Inside `cairn devnet`: the devnet's network view, served at `GET /devnet/network`.
    pub devnet_network: Option<crate::devnet::network::NetworkFeed>,
    /// Origins allowed to read the RPC from a browser (CORS, GET and HEAD); `*` is any.
    pub rpc_cors: Vec<String>,
    /// Keep the address index: two more index entries per transaction in each block's batch,
    /// for `GET /accounts/{a}/txs`.
    pub address_index: bool,
}

impl NodeConfig {
    /// A config on the shipped devnet with the given data dir, every port 0 (tests).
    pub fn for_tests(data_dir: PathBuf) -> NodeConfig {
        let chain = ChainSpec::devnet();
        NodeConfig {
            data_dir,
            mempool: MempoolLimits::for_spec(&chain),
            chain,
            rpc_addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            p2p_addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            peers: Vec::new(),
            farm: None,
            farm_threads: 1,
            p2p: P2pConfig {
                handshake_timeout: Duration::from_secs(3),
                ping_interval: Duration::from_millis(500),
                ping_timeout: Duration::from_secs(3),
                dial_interval: Duration::from_millis(200),
                backoff_base: Duration::from_millis(200),
                backoff_max: Duration::from_secs(2),
                peer_exchange_interval: Duration::from_millis(500),
                get_peers_min_interval: Duration::from_millis(100),
                // Many in-process nodes share one host: they must not find each other (or
                // every other test's nodes) on the LAN. The netns tests cover mDNS.
                mdns: false,
                ..P2pConfig::default()
            },
            seeds: Vec::new(),
            rpc_token: None,
            devnet_network: None,
            rpc_cors: vec!["*".into()],
            address_index: true,
        }
    }
}

/// Values given on the command line or in the environment (already merged by clap).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--name`.
    pub name: Option<String>,
    /// `--chain`.
    pub chain: Option<PathBuf>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--p2p-port`.
    pub p2p_port: Option<u16>,
    /// `--rpc-port`.
    pub rpc_port: Option<u16>,
    /// `--rpc-bind`.
    pub rpc_bind: Option<IpAddr>,
    /// `--peers`.
    pub peers: Option<Vec<String>>,
    /// `--no-mdns`.
    pub no_mdns: bool,
    /// `--farm`.
    pub farm: Option<String>,
    /// `--farm-threads`.
    pub farm_threads: Option<usize>,
    /// `--exempt-loopback`.
    pub exempt_loopback: Option<bool>,
    /// `--blocks-only`.
    pub blocks_only: bool,
    /// `--rpc-token`.
    pub rpc_token: Option<String>,
    /// `--rpc-cors`.
    pub rpc_cors: Option<Vec<String>>,
    /// `--address-index`.
    pub address_index: Option<bool>,
}

/// Builds the node config: flags/env override the file, the file overrides defaults.
pub fn resolve(o: Overrides) -> Result<NodeConfig, ConfigError> {
    let file = match &o.config {
        Some(p) => FileConfig::load(p)?,
        None => FileConfig::default(),
    };
    let chain = match o.chain.or(file.chain) {
        Some(p) => ChainSpec::load(&p)?,
        None => ChainSpec::devnet(),
    };
    let farm = match o.farm.or(file.farm) {
        Some(a) => Some(a.parse::<Address>().map_err(|e| ConfigError::Invalid(format!("--farm: malformed address: {e}")))?),
        None => None,
    };
    if let Some(name) = &o.name {
        cairn_p2p::validate_name(name).map_err(|e| ConfigError::Invalid(format!("--name (CAIRN_NAME): {e}")))?;
    }
    let threads = o.farm_threads.or(file.farm_threads).unwrap_or(1);
    if threads == 0 || threads > 256 {
        return Err(ConfigError::Invalid("farm threads must be 1 to 256".into()));
    }
    let seeds = match &file.seed_peers {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Io { path: p.clone(), source })?;
            parse_seeds(&text, p)?
        }
        None => parse_seeds(SEED_PEERS, Path::new("<embedded seed_peers.toml>"))?,
    };
    let defaults = P2pConfig::default();
    let p2p = P2pConfig {
        max_inbound: file.max_inbound.unwrap_or(defaults.max_inbound),
        target_outbound: file.target_outbound.unwrap_or(defaults.target_outbound),
        max_outbound: file.max_outbound.unwrap_or(defaults.max_outbound),
        max_frame: chain.max_block_bytes as usize + cairn_p2p::config::FRAME_OVERHEAD,
        mdns: !o.no_mdns && file.mdns.unwrap_or(defaults.mdns),
        max_inbound_per_ip: file.max_inbound_per_ip.unwrap_or(defaults.max_inbound_per_ip),
        max_inbound_per_subnet: file.max_inbound_per_subnet.unwrap_or(defaults.max_inbound_per_subnet),
        handshakes_per_minute: file.handshakes_per_minute.unwrap_or(defaults.handshakes_per_minute),
        handshake_burst: file.handshake_burst.unwrap_or(defaults.handshake_burst),
        exempt_loopback: o.exempt_loopback.or(file.exempt_loopback).unwrap_or(defaults.exempt_loopback),
        name: o.name.or(file.name),
        blocks_only: o.blocks_only || file.blocks_only.unwrap_or(defaults.blocks_only),
        ..defaults
    };
    if p2p.target_outbound > p2p.max_outbound {
        return Err(ConfigError::Invalid("target_outbound must not exceed max_outbound".into()));
    }
    for (key, v) in [
        ("max_inbound_per_ip", p2p.max_inbound_per_ip as u64),
        ("max_inbound_per_subnet", p2p.max_inbound_per_subnet as u64),
        ("handshakes_per_minute", u64::from(p2p.handshakes_per_minute)),
        ("handshake_burst", u64::from(p2p.handshake_burst)),
    ] {
        if v == 0 {
            return Err(ConfigError::Invalid(format!("{key} must be at least 1 (0 would refuse every inbound peer)")));
        }
    }
    if file.mempool_max_txs == Some(0) {
        return Err(ConfigError::Invalid("mempool_max_txs must be at least 1 (0 would refuse every transaction)".into()));
    }
    let defaults = MempoolLimits::for_spec(&chain);
    let mempool = MempoolLimits { max_txs: file.mempool_max_txs.unwrap_or(defaults.max_txs), ..defaults };
    let rpc_addr =
        SocketAddr::new(o.rpc_bind.or(file.rpc_bind).unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)), o.rpc_port.or(file.rpc_port).unwrap_or(DEFAULT_RPC_PORT));
    let rpc_cors = o.rpc_cors.or(file.rpc_cors).unwrap_or_else(|| if rpc_addr.ip().is_loopback() { vec!["*".into()] } else { Vec::new() });
    for origin in &rpc_cors {
        check_origin(origin)?;
    }
    Ok(NodeConfig {
        data_dir: o.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
        rpc_addr,
        p2p_addr: SocketAddr::new(file.p2p_bind.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), o.p2p_port.or(file.p2p_port).unwrap_or(DEFAULT_P2P_PORT)),
        peers: o.peers.or(file.peers).unwrap_or_default(),
        farm,
        farm_threads: threads,
        mempool,
        p2p,
        seeds,
        chain,
        rpc_token: o.rpc_token.or(file.rpc_token).filter(|t| !t.is_empty()),
        devnet_network: None,
        rpc_cors,
        address_index: o.address_index.or(file.address_index).unwrap_or(true),
    })
}

/// A CORS origin: `*`, or `scheme://host[:port]` with nothing after it.
fn check_origin(origin: &str) -> Result<(), ConfigError> {
    let bad = || ConfigError::Invalid(format!("rpc_cors origin {origin:?} is not `*` nor `scheme://host[:port]` (e.g. http://localhost:3000)"));
    if origin == "*" {
        return Ok(());
    }
    let (scheme, rest) = origin.split_once("://").ok_or_else(bad)?;
    let host_ok = !rest.is_empty() && !rest.contains(['/', '?', '#', ' ', '@']) && rest.is_ascii();
    if !(scheme == "http" || scheme == "https") || !host_ok {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn precedence_flag_over_file_over_default() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = write(dir.path(), "node.toml", "rpc_port = 7000\np2p_port = 7001\nmdns = false\ndata_dir = \"d\"\n");
        let c = resolve(Overrides { config: Some(cfg.clone()), rpc_port: Some(7100), ..Default::default() }).unwrap();
        assert_eq!(c.rpc_addr.port(), 7100, "flag beats file");
        assert_eq!(c.p2p_addr.port(), 7001, "file beats default");
        assert!(!c.p2p.mdns, "mdns = false in the file");
        assert_eq!(c.data_dir, dir.path().join("d"), "file paths are relative to the file");
        let d = resolve(Overrides::default()).unwrap();
        assert!(d.p2p.mdns, "mDNS on by default");
        assert!(!resolve(Overrides { no_mdns: true, ..Default::default() }).unwrap().p2p.mdns, "--no-mdns");
        assert!(!NodeConfig::for_tests(dir.path().into()).p2p.mdns, "in-process test nodes never use mDNS");
        assert_eq!((d.rpc_addr.port(), d.p2p_addr.port()), (DEFAULT_RPC_PORT, DEFAULT_P2P_PORT));
        assert_eq!(d.rpc_addr.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST), "RPC on loopback by default");
    }

    #[test]
    fn shipped_loadtest_spec_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/loadtest.toml");
        let c = resolve(Overrides { chain: Some(path.clone()), ..Default::default() }).unwrap();
        let (spec, devnet) = (&c.chain, ChainSpec::devnet());
        assert_eq!(spec.chain_id, "cairn-loadtest");
        assert_eq!((spec.max_block_txs, spec.max_block_bytes), (50_000, 16 * 1024 * 1024));
        assert_eq!(spec.dev_accounts, devnet.dev_accounts, "the devnet's prefunded accounts");
        assert_eq!(spec.block_time_ms, devnet.block_time_ms);
        assert_ne!(spec.genesis().hash(), devnet.genesis().hash(), "a chain of its own");
        assert!(c.p2p.max_frame > spec.max_block_bytes as usize, "a full block fits in a frame");
        assert_eq!(c.mempool.max_txs, 100_000, "the mempool holds two full blocks");
        assert_eq!(resolve(Overrides::default()).unwrap().mempool.max_txs, 20_000, "at least 20,000");
        let mut same_rules = spec.clone();
        (same_rules.chain_id, same_rules.max_block_txs, same_rules.max_block_bytes) = (devnet.chain_id.clone(), devnet.max_block_txs, devnet.max_block_bytes);
        assert_eq!(same_rules, devnet, "otherwise the devnet's rules");
        assert_eq!(ChainSpec::load(&path).unwrap(), *spec);
    }

    #[test]
    fn broken_files_name_file_and_problem() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = write(dir.path(), "bad.toml", "rpc_prot = 1\n");
        let e = resolve(Overrides { config: Some(cfg), ..Default::default() }).unwrap_err().to_string();
        assert!(e.contains("bad.toml") && e.contains("rpc_prot"), "{e}");
        let e = resolve(Overrides { config: Some(dir.path().join("missing.toml")), ..Default::default() }).unwrap_err().to_string();
        assert!(e.contains("missing.toml"), "{e}");
        let spec = write(dir.path(), "spec.toml", "chain_id = \"x\"\n");
        let e = resolve(Overrides { chain: Some(spec), ..Default::default() }).unwrap_err().to_string();
        assert!(e.contains("spec.toml") && e.contains("missing field"), "{e}");
        let e = resolve(Overrides { farm: Some("xyz".into()), ..Default::default() }).unwrap_err().to_string();
        assert!(e.contains("--farm"), "{e}");
        let zero = write(dir.path(), "zero.toml", "max_inbound_per_ip = 0\n");
        let e = resolve(Overrides { config: Some(zero), ..Default::default() }).unwrap_err().to_string();
        assert!(e.contains("max_inbound_per_ip"), "{e}");
        let neg = write(dir.path(), "neg.toml", "max_inbound_per_subnet = -1\n");
        let e = resolve(Overrides { config: Some(neg), ..Default::default() }).unwrap_err().to_string();
        assert!(e.contains("neg.toml") && e.contains("max_inbound_per_subnet"), "{e}");
        let empty = write(dir.path(), "empty.toml", "mempool_max_txs = 0\n");
        let e = resolve(Overrides { config: Some(empty), ..Default::default() }).unwrap_err().to_string();
        assert!(e.contains("mempool_max_txs"), "{e}");
    }

    #[test]
    fn admission_limits_layer_like_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let d = resolve(Overrides::default()).unwrap();
        assert_eq!((d.p2p.max_inbound_per_ip, d.p2p.max_inbound_per_subnet, d.p2p.exempt_loopback), (4, 16, true));
        let cfg = write(dir.path(), "n.toml", "max_inbound_per_ip = 2\nmax_inbound_per_subnet = 5\nexempt_loopback = false\nhandshakes_per_minute = 3\n");
        let c = resolve(Overrides { config: Some(cfg.clone()), ..Default::default() }).unwrap();
        assert_eq!((c.p2p.max_inbound_per_ip, c.p2p.max_inbound_per_subnet, c.p2p.exempt_loopback, c.p2p.handshakes_per_minute), (2, 5, false, 3));
        let c = resolve(Overrides { config: Some(cfg), exempt_loopback: Some(true), ..Default::default() }).unwrap();
        assert!(c.p2p.exempt_loopback, "the flag beats the file");
    }

    #[test]
    fn name_from_flag_or_file_and_bad_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(resolve(Overrides::default()).unwrap().p2p.name, None, "no name unless given");
        let cfg = write(dir.path(), "named.toml", "name = \"alice\"\n");
        let c = resolve(Overrides { config: Some(cfg.clone()), ..Default::default() }).unwrap();
        assert_eq!(c.p2p.name.as_deref(), Some("alice"), "from the file");
        let c = resolve(Overrides { config: Some(cfg), name: Some("bob".into()), ..Default::default() }).unwrap();
        assert_eq!(c.p2p.name.as_deref(), Some("bob"), "the flag beats the file");
        let long = "x".repeat(33);
        for bad in ["bad name!", long.as_str(), ""] {
            let e = resolve(Overrides { name: Some(bad.into()), ..Default::default() }).unwrap_err().to_string();
            assert!(e.contains("--name") && e.contains("CAIRN_NAME"), "{e}");
            let file = write(dir.path(), "bad-name.toml", &format!("name = {bad:?}\n"));
            let e = resolve(Overrides { config: Some(file), ..Default::default() }).unwrap_err().to_string();
            assert!(e.contains("bad-name.toml") && e.contains("name:"), "{e}");
        }
    }

    #[test]
    fn cors_defaults_to_any_on_loopback_and_none_beyond() {
        assert_eq!(resolve(Overrides::default()).unwrap().rpc_cors, vec!["*".to_string()]);
        let exposed = resolve(Overrides { rpc_bind: Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), ..Default::default() }).unwrap();
        assert!(exposed.rpc_cors.is_empty(), "beyond loopback only configured origins");
        let set = resolve(Overrides { rpc_cors: Some(vec!["https://a.example:8443".into()]), ..Default::default() }).unwrap();
        assert_eq!(set.rpc_cors, vec!["https://a.example:8443".to_string()]);
        for bad in ["a.example", "ftp://a.example", "http://a.example/path", "http://"] {
            let e = resolve(Overrides { rpc_cors: Some(vec![bad.into()]), ..Default::default() }).unwrap_err().to_string();
            assert!(e.contains("rpc_cors") && e.contains(bad), "{bad}: {e}");
        }
    }
}
