//! The `cairn` command line (DESIGN §5). `main.rs` parses [`Cli`] and calls [`run`].

mod chain_cmd;
mod client;
mod devnet_cmd;
mod farm_cmd;
mod node_cmd;
mod peers_cmd;
mod wallet_cmd;

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use client::RpcClient;

/// Cairn: a blockchain full node for people who run their own chains.
#[derive(Parser, Debug)]
#[command(name = "cairn", version, about)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, env = "CAIRN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written (to stderr).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a node.
    Node(NodeArgs),
    /// Run a whole local network in this process: nodes, a farmer, live status, commands.
    Devnet(DevnetArgs),
    /// Farm blocks against a node's RPC (an outside farmer), at the chain's block time; a line
    /// per block (height, hash, transactions, hash rate).
    Farm(FarmArgs),
    /// The node's chain, tip and peers.
    Status {
        #[command(flatten)]
        rpc: RpcArgs,
    },
    /// A block, by height or hash.
    Block {
        #[command(flatten)]
        rpc: RpcArgs,
        /// A height (digits) or a block hash (64 hex).
        id: String,
    },
    /// A transaction by ID, and where it is (pending, or its block).
    Tx {
        #[command(flatten)]
        rpc: RpcArgs,
        /// The transaction ID.
        txid: String,
    },
    /// An address's balance (its nonce and pending count on stderr).
    Balance {
        #[command(flatten)]
        rpc: RpcArgs,
        /// The address.
        address: String,
    },
    /// Sign a transfer with a key file (or dev:N) and send it; prints the txid.
    Send {
        #[command(flatten)]
        rpc: RpcArgs,
        #[command(flatten)]
        transfer: TransferArgs,
    },
    /// Pending transactions.
    Mempool {
        #[command(flatten)]
        rpc: RpcArgs,
        /// How many to list (at most 1000).
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Have the node farm blocks now; prints their hashes.
    FarmNow {
        #[command(flatten)]
        rpc: RpcArgs,
        /// How many blocks.
        #[arg(default_value_t = 1)]
        count: u64,
        /// Address paid the rewards [default: dev account 0's].
        #[arg(long)]
        farmer: Option<String>,
    },
    /// Make a new key; prints its address once the key is safe.
    Keygen {
        /// Write the secret key here (owner-only) before printing anything; without it the
        /// secret is printed.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace an existing file at --out.
        #[arg(long, requires = "out")]
        force: bool,
    },
    /// Key files.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `cairn man > cairn.1`.
    Man,
    /// Balances and transfers.
    Wallet {
        #[command(subcommand)]
        command: WalletCommand,
    },
    /// Connected peers (`cairn peers`), and `add`, `remove`, `addresses`.
    Peers {
        #[command(flatten)]
        rpc: RpcArgs,
        #[command(subcommand)]
        command: Option<PeersCommand>,
    },
    /// The bans in force.
    Bans {
        #[command(flatten)]
        rpc: RpcArgs,
    },
    /// Ban a node (its 64-hex node ID) or an address (an IP or a CIDR network, e.g.
    /// 10.0.0.0/24): disconnects it at once.
    Ban {
        #[command(flatten)]
        rpc: RpcArgs,
        /// Node ID, IP address or CIDR network.
        target: String,
        /// How long: seconds, or with a unit (30m, 24h, 7d) [default: 24h].
        #[arg(long)]
        duration: Option<String>,
        /// Why (shown in `cairn bans`).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift a ban.
    Unban {
        #[command(flatten)]
        rpc: RpcArgs,
        /// Node ID, IP address or CIDR network, as `cairn bans` shows it.
        target: String,
    },
}

/// `cairn key` commands.
#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Print the address of a key file (or dev:N).
    Show {
        /// The key file, or dev:N.
        file: String,
    },
}

/// A transfer to sign and send.
#[derive(clap::Args, Debug)]
pub struct TransferArgs {
    /// Secret key file, or dev:N for the N-th prefunded devnet account.
    #[arg(long)]
    pub key: String,
    /// Recipient address.
    #[arg(long)]
    pub to: String,
    /// Amount.
    #[arg(long)]
    pub amount: u64,
    /// Fee.
    #[arg(long, default_value_t = 1)]
    pub fee: u64,
}

/// How to reach a node's RPC, and how to print its answer.
#[derive(clap::Args, Debug)]
pub struct RpcArgs {
    /// The node's RPC: a URL or HOST:PORT.
    #[arg(long, global = true, env = "CAIRN_RPC", default_value = "http://127.0.0.1:8080")]
    pub rpc: String,
    /// Print the RPC's JSON answer instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Bearer token for an RPC that requires one [default: read from the node's .cookie].
    #[arg(long, global = true, env = "CAIRN_RPC_TOKEN", hide_env_values = true)]
    pub rpc_token: Option<String>,
    /// The node's data dir, to read its RPC cookie from [default: ./cairn-data if it has one].
    #[arg(long, global = true, env = "CAIRN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

impl RpcArgs {
    /// A client for the node, with the token (given, or the data dir's cookie) if any.
    pub fn client(&self) -> anyhow::Result<RpcClient> {
        let token = match &self.rpc_token {
            Some(t) => Some(t.clone()),
            None => {
                let dir = self.data_dir.clone().unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_DATA_DIR));
                let cookie = dir.join(crate::rpc::auth::COOKIE_FILE);
                match std::fs::read_to_string(&cookie) {
                    Ok(t) => Some(t.trim().to_string()),
                    // No cookie: an open (loopback) RPC; naming a data dir without one is a mistake.
                    Err(e) if self.data_dir.is_some() => anyhow::bail!("reading the RPC cookie {}: {e}", cookie.display()),
                    Err(_) => None,
                }
            }
        };
        Ok(RpcClient::new(&self.rpc)?.with_token(token))
    }
}

/// `cairn peers` commands.
#[derive(Subcommand, Debug)]
pub enum PeersCommand {
    /// Connected peers (the default).
    List,
    /// Dial a peer now ([NODEID@]HOST:PORT); it is kept and redialled.
    Add {
        /// [NODEID@]HOST:PORT (with NODEID@ the key is pinned).
        address: String,
    },
    /// Disconnect a peer and forget its addresses: it is not redialled unless added again
    /// (if it dials us, it is accepted unless banned: use `cairn ban` to keep it out).
    Remove {
        /// Its node ID.
        node_id: String,
    },
    /// The address book: where peers may be, where each address came from, dial history.
    Addresses,
}

/// `cairn node` flags; each also reads a `CAIRN_*` variable (flag > env > file > default).
#[derive(clap::Args, Debug, Default)]
pub struct NodeArgs {
    /// Config file (TOML; see config/node.toml).
    #[arg(long, env = "CAIRN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Chain spec file [default: the shipped config/devnet.toml].
    #[arg(long, env = "CAIRN_CHAIN")]
    pub chain: Option<PathBuf>,
    /// A human-readable name for this node, shown to its peers, on the LAN and in its logs:
    /// 1 to 32 of A-Z a-z 0-9 . _ - [default: none].
    #[arg(long, env = "CAIRN_NAME")]
    pub name: Option<String>,
    /// Data directory [default: ./cairn-data].
    #[arg(long, env = "CAIRN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// P2P (QUIC, UDP) port [default: 9090].
    #[arg(long, env = "CAIRN_P2P_PORT")]
    pub p2p_port: Option<u16>,
    /// RPC port [default: 8080].
    #[arg(long, env = "CAIRN_RPC_PORT")]
    pub rpc_port: Option<u16>,
    /// Address the RPC binds [default: 127.0.0.1].
    #[arg(long, env = "CAIRN_RPC_BIND")]
    pub rpc_bind: Option<IpAddr>,
    /// Peers to connect to: [NODEID@]HOST:PORT, comma-separated.
    #[arg(long, env = "CAIRN_PEERS", value_delimiter = ',')]
    pub peers: Option<Vec<String>>,
    /// Turn off mDNS discovery on the LAN (neither advertise nor browse).
    /// `CAIRN_NO_MDNS` takes 1/0, true/false, yes/no, on/off.
    #[arg(long, env = "CAIRN_NO_MDNS", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_mdns: bool,
    /// Farm continuously (at the chain's block time) to this address.
    #[arg(long, env = "CAIRN_FARM", value_name = "ADDRESS")]
    pub farm: Option<String>,
    /// Threads for the built-in farmer [default: 1].
    #[arg(long, env = "CAIRN_FARM_THREADS")]
    pub farm_threads: Option<usize>,
    /// Whether peers at 127.0.0.1 and ::1 skip the per-address inbound limits, the handshake
    /// rate limit and automatic IP bans (true/false) [default: true, so a devnet on one
    /// machine works; other 127.x addresses always count as distinct hosts].
    #[arg(long, env = "CAIRN_EXEMPT_LOOPBACK", value_name = "BOOL", value_parser = clap::builder::BoolishValueParser::new())]
    pub exempt_loopback: Option<bool>,
    /// Relay blocks only: announce no transactions to peers and fetch none from their
    /// announcements (RPC submissions still enter the mempool and are farmed).
    #[arg(long, env = "CAIRN_BLOCKS_ONLY")]
    pub blocks_only: bool,
    /// Bearer token the RPC requires [default: none on loopback; beyond it (--rpc-bind) a
    /// random one in DATA_DIR/.cookie]. Prefer the env var or the config file to the flag
    /// (other users can read a process's arguments).
    #[arg(long, env = "CAIRN_RPC_TOKEN", hide_env_values = true)]
    pub rpc_token: Option<String>,
    /// Origins whose web pages may read the RPC (CORS for GET), comma-separated; `*` for
    /// any [default: any when the RPC is on loopback, none beyond]
    #[arg(long, env = "CAIRN_RPC_CORS", value_delimiter = ',', value_name = "ORIGINS")]
    pub rpc_cors: Option<Vec<String>>,
    /// Keep the address index, which `GET /accounts/{address}/txs` reads (two more index
    /// entries per transaction in each block's write) [default: true]
    #[arg(long, env = "CAIRN_ADDRESS_INDEX", value_name = "BOOL")]
    pub address_index: Option<bool>,
}

/// `cairn devnet` flags. While it runs, stdin takes commands (`help` lists them): stop N,
/// start N, add, partition 1 / 2 3, heal, status, quit.
#[derive(clap::Args, Debug)]
pub struct DevnetArgs {
    /// Nodes to start (1 to 32).
    #[arg(long, default_value_t = crate::devnet::DEFAULT_NODES)]
    pub nodes: usize,
    /// Farm at the chain's block time (one farmer per partition group), paying dev:0.
    #[arg(long)]
    pub farm: bool,
    /// Also send this many transfers a second (1 to 100000), signed on all cores, from senders
    /// funded by the dev accounts to fresh addresses.
    #[arg(long, value_name = "R")]
    pub tx_rate: Option<u32>,
    /// Run every node on this chain spec file (e.g. config/loadtest.toml) [default: the
    /// embedded config/devnet.toml].
    #[arg(long, value_name = "FILE")]
    pub chain: Option<PathBuf>,
    /// Override the spec's block time on every node, ms (100 to 3600000); a different chain,
    /// as the genesis hash commits to it.
    #[arg(long, value_name = "MS")]
    pub block_time: Option<u64>,
    /// Keep the nodes' data in DIR/node1, DIR/node2, … (reused next time) instead of a
    /// temporary dir removed at exit.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Fixed ports: node k uses P2P port P+2(k-1) and RPC port P+2(k-1)+1 [default: free
    /// ports, kept across a node's restarts].
    #[arg(long, value_name = "P")]
    pub base_port: Option<u16>,
}

impl Command {
    /// The log level when `RUST_LOG` is unset: a devnet's nodes share one log, so only
    /// warnings (reorgs, misbehaviour, failures) unless asked.
    pub fn default_log_filter(&self) -> &'static str {
        match self {
            Command::Devnet(_) => "warn",
            _ => "info",
        }
    }
}

/// `cairn farm` flags.
#[derive(clap::Args, Debug)]
pub struct FarmArgs {
    /// The node's RPC URL, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "CAIRN_RPC")]
    pub rpc: String,
    /// Address credited with rewards and fees.
    #[arg(long)]
    pub farmer: String,
    /// Stop after this many accepted blocks [default: run until interrupted].
    #[arg(long)]
    pub blocks: Option<u64>,
    /// Search threads [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Farm as fast as the node takes blocks, not at the chain's block time.
    #[arg(long)]
    pub no_pacing: bool,
}

/// `cairn wallet` commands.
#[derive(Subcommand, Debug)]
pub enum WalletCommand {
    /// Print an address's balance.
    Balance {
        /// The node's RPC URL.
        #[arg(long, env = "CAIRN_RPC")]
        rpc: String,
        /// The address.
        address: String,
    },
    /// Send a transfer; prints the txid (as `cairn send`).
    Send {
        /// The node's RPC URL.
        #[arg(long, env = "CAIRN_RPC")]
        rpc: String,
        #[command(flatten)]
        transfer: TransferArgs,
    },
}

/// An error and its causes on one line, each said once: a cause whose text its context already
/// quotes (an OS error inside "cannot listen …: <OS error>") is not repeated.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string().replace('\n', " ");
        if line.contains(text.trim()) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(text.trim());
    }
    line
}

/// Exits on a command-line error. A bad value that came from a `CAIRN_*` variable (not from
/// the flag itself) is reported under the variable's name.
pub fn exit_on_parse_error(e: clap::Error) -> ! {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if matches!(e.kind(), ErrorKind::InvalidValue | ErrorKind::ValueValidation)
        && let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg)
        && let Some(long) = arg.split_whitespace().next().and_then(|a| a.strip_prefix("--"))
        && !std::env::args().any(|a| a == format!("--{long}") || a.starts_with(&format!("--{long}=")))
        && let Some(var) = env_of(&<Cli as clap::CommandFactory>::command(), long)
        && let Some(value) = std::env::var_os(&var)
    {
        let detail = std::error::Error::source(&e).map(|s| format!(": {s}")).unwrap_or_default();
        eprintln!("error: invalid value {:?} in {var} (for --{long}){detail}", value.to_string_lossy());
        std::process::exit(2);
    }
    e.exit()
}

/// The environment variable of flag `--long`, in any subcommand.
fn env_of(cmd: &clap::Command, long: &str) -> Option<String> {
    let here = cmd.get_arguments().find(|a| a.get_long() == Some(long)).and_then(|a| a.get_env()).map(|v| v.to_string_lossy().into_owned());
    here.or_else(|| cmd.get_subcommands().find_map(|c| env_of(c, long)))
}

/// Writes generated text to stdout; a reader that stops early (`| head`) is not an error.
fn print_bytes(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    match std::io::stdout().write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Runs a parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Node(args) => node_cmd::run(args).await,
        Command::Devnet(args) => devnet_cmd::run(args).await,
        Command::Farm(args) => farm_cmd::run(args).await,
        Command::Status { rpc } => chain_cmd::status(&rpc).await,
        Command::Block { rpc, id } => chain_cmd::block(&rpc, &id).await,
        Command::Tx { rpc, txid } => chain_cmd::tx(&rpc, &txid).await,
        Command::Balance { rpc, address } => chain_cmd::balance(&rpc, &address).await,
        Command::Send { rpc, transfer } => {
            let txid = wallet_cmd::send(&rpc.client()?, &transfer).await?;
            if rpc.json {
                return peers_cmd::print_json(&serde_json::json!({ "txid": txid }));
            }
            println!("{txid}");
            Ok(())
        }
        Command::Mempool { rpc, limit } => chain_cmd::mempool(&rpc, limit).await,
        Command::FarmNow { rpc, count, farmer } => chain_cmd::farm_now(&rpc, count, farmer.as_deref()).await,
        Command::Keygen { out, force } => wallet_cmd::keygen(out, force),
        Command::Key { command: KeyCommand::Show { file } } => wallet_cmd::show(&file),
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut <Cli as clap::CommandFactory>::command(), "cairn", &mut out);
            print_bytes(&out)
        }
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(&mut out)?;
            print_bytes(&out)
        }
        Command::Wallet { command: WalletCommand::Balance { rpc, address } } => wallet_cmd::balance(&rpc, &address).await,
        Command::Wallet { command: WalletCommand::Send { rpc, transfer } } => {
            println!("{}", wallet_cmd::send(&RpcClient::new(&rpc)?, &transfer).await?);
            Ok(())
        }
        Command::Peers { rpc, command } => peers_cmd::peers(&rpc, command).await,
        Command::Bans { rpc } => peers_cmd::bans(&rpc).await,
        Command::Ban { rpc, target, duration, reason } => peers_cmd::ban(&rpc, &target, duration.as_deref(), reason.as_deref()).await,
        Command::Unban { rpc, target } => peers_cmd::unban(&rpc, &target).await,
    }
}
