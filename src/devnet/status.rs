//! What the devnet shows: a snapshot of every node ([`Row`]), network-wide rates
//! ([`Rates`]), and their renderings — the live panel, one plain line a second for logs, and
//! the table of node IDs and addresses.

use std::collections::VecDeque;
use std::fmt::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cairn_chain::Hash;
use cairn_p2p::NodeId;

/// Rates are averaged over this much recent time: long enough to smooth a 2 s block time,
/// short enough to show a partition or a stopped farmer within seconds.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);

/// One node as shown.
#[derive(Clone, Debug)]
pub struct Row {
    /// 1-based number.
    pub number: usize,
    /// Its node ID, once it has run.
    pub node_id: Option<NodeId>,
    /// P2P address.
    pub p2p: SocketAddr,
    /// RPC URL.
    pub rpc: String,
    /// Its partition group (1-based), while partitioned.
    pub group: Option<usize>,
    /// `None` while stopped.
    pub live: Option<Live>,
}

/// A running node's state.
#[derive(Clone, Debug)]
pub struct Live {
    /// Best height.
    pub height: u64,
    /// Best block hash.
    pub best: Hash,
    /// Connected peers.
    pub peers: usize,
    /// Catching up from a peer.
    pub syncing: bool,
    /// Pending transactions.
    pub mempool: u64,
}

/// Network-wide figures.
#[derive(Clone, Debug, Default)]
pub struct Network {
    /// Since start.
    pub uptime: Duration,
    /// New best-chain blocks a second (over [`RATE_WINDOW`]).
    pub blocks_per_s: f64,
    /// Transactions in those blocks a second: confirmed tx/s, network-wide.
    pub txs_per_s: f64,
    /// Whether the built-in farmers run.
    pub farming: bool,
    /// The load, if any.
    pub load: Option<Load>,
    /// The partition, as `1 / 2 3`.
    pub partition: Option<String>,
}

/// The transaction load as shown.
#[derive(Clone, Debug, Default)]
pub struct Load {
    /// Transfers a second asked for.
    pub rate: u32,
    /// Transfers the entry node accepted so far.
    pub sent: u64,
    /// Transfers accepted a second (over [`RATE_WINDOW`]): below `rate` when the nodes or
    /// the blocks cannot keep up.
    pub sent_per_s: f64,
    /// Transfers refused so far (a sender or the mempool full, or a stale nonce).
    pub refused: u64,
    /// (senders funded, senders): the load starts once a block has funded them all.
    pub funded: (u64, u64),
}

/// Counts blocks and their transactions as the network's best height grows.
#[derive(Debug)]
pub struct Rates {
    /// The highest height counted so far.
    counted: u64,
    blocks: u64,
    txs: u64,
    /// (when, blocks, transactions, load transfers accepted), all counted since the start.
    samples: VecDeque<(Instant, u64, u64, u64)>,
}

impl Rates {
    /// Starts counting above `height` (what the chain already had is not "new").
    pub fn new(height: u64) -> Rates {
        Rates { counted: height, blocks: 0, txs: 0, samples: VecDeque::new() }
    }

    /// The highest height counted so far.
    pub fn counted(&self) -> u64 {
        self.counted
    }

    /// Records the best height now and the transactions of the blocks above the last one
    /// counted, and the load's accepted transfers so far (`sent`). A lower height (the
    /// leading node stopped) counts nothing, and blocks are counted again only above the
    /// highest height seen.
    pub fn record(&mut self, now: Instant, height: u64, new_txs: u64, sent: u64) {
        self.blocks += height.saturating_sub(self.counted);
        self.txs += new_txs;
        self.counted = self.counted.max(height);
        self.samples.push_back((now, self.blocks, self.txs, sent));
        while self.samples.front().is_some_and(|(t, ..)| now.duration_since(*t) > RATE_WINDOW) {
            self.samples.pop_front();
        }
    }

    /// (blocks/s, confirmed transactions/s, load transfers accepted/s) over the window.
    pub fn per_second(&self) -> (f64, f64, f64) {
        match (self.samples.front(), self.samples.back()) {
            (Some((t0, b0, x0, s0)), Some((t1, b1, x1, s1))) if t1 > t0 => {
                let dt = t1.duration_since(*t0).as_secs_f64();
                ((b1 - b0) as f64 / dt, (x1 - x0) as f64 / dt, s1.saturating_sub(*s0) as f64 / dt)
            }
            _ => (0.0, 0.0, 0.0),
        }
    }
}

fn short(h: &Hash) -> String {
    h.to_string()[..8].to_string()
}

fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn summary(rows: &[Row], net: &Network) -> String {
    let running = rows.iter().filter(|r| r.live.is_some()).count();
    let mut s =
        format!("devnet {} | {running}/{} nodes up | blocks/s {:.2} | confirmed tx/s {:.1}", clock(net.uptime), rows.len(), net.blocks_per_s, net.txs_per_s);
    s.push_str(if net.farming { " | farming" } else { " | not farming" });
    if let Some(l) = &net.load {
        if l.funded.0 < l.funded.1 {
            let _ = write!(s, " | load {}/s: funding senders ({}/{} funded, needs a block)", l.rate, l.funded.0, l.funded.1);
        } else {
            let _ = write!(s, " | load {}/s asked, {:.0}/s accepted, {} sent, {} refused", l.rate, l.sent_per_s, l.sent, l.refused);
        }
    }
    if let Some(p) = &net.partition {
        let _ = write!(s, " | partition {p}");
    }
    s
}

/// A column of the panel: its header, width, alignment and cell.
struct Column {
    header: &'static str,
    width: usize,
    right: bool,
    cell: fn(&Row) -> String,
}

/// A running node's cell, `-` while it is stopped.
fn live_cell(r: &Row, f: fn(&Live) -> String) -> String {
    r.live.as_ref().map_or_else(|| "-".to_string(), f)
}

/// The panel's columns in display order, with the order they are kept in when the terminal is
/// narrow (lower first): node, height, peers, mempool, best, sync, RPC, group, P2P.
fn columns() -> [(u8, Column); 9] {
    [
        (0, Column { header: "node", width: 4, right: true, cell: |r| r.number.to_string() }),
        (1, Column { header: "height", width: 8, right: true, cell: |r| live_cell(r, |l| l.height.to_string()) }),
        (4, Column { header: "best", width: 8, right: false, cell: |r| r.live.as_ref().map_or_else(|| "stopped".to_string(), |l| short(&l.best)) }),
        (2, Column { header: "peers", width: 5, right: true, cell: |r| live_cell(r, |l| l.peers.to_string()) }),
        (5, Column { header: "sync", width: 7, right: false, cell: |r| live_cell(r, |l| if l.syncing { "syncing".into() } else { "-".into() }) }),
        (3, Column { header: "mempool", width: 7, right: true, cell: |r| live_cell(r, |l| l.mempool.to_string()) }),
        (7, Column { header: "group", width: 5, right: true, cell: |r| r.group.map_or_else(|| "-".to_string(), |g| g.to_string()) }),
        (8, Column { header: "P2P", width: 21, right: false, cell: |r| r.p2p.to_string() }),
        (6, Column { header: "RPC", width: 22, right: false, cell: |r| r.rpc.clone() }),
    ]
}

/// The live panel for a terminal `width` columns wide: a summary line, a header, one line per
/// node, a hint. Columns that do not fit are dropped, least useful first (P2P, group, RPC,
/// sync, …); the summary and the hint are cut at the edge.
pub fn panel(rows: &[Row], net: &Network, width: usize) -> Vec<String> {
    let mut cols = columns();
    cols.sort_by_key(|(keep, _)| *keep);
    // Take columns by priority while they fit (two spaces between columns).
    let mut used = 0;
    let mut kept: Vec<u8> = Vec::new();
    for (keep, c) in &cols {
        let need = if kept.is_empty() { c.width } else { c.width + 2 };
        if used + need <= width || kept.is_empty() {
            used += need;
            kept.push(*keep);
        }
    }
    let shown: Vec<Column> = columns().into_iter().filter(|(keep, _)| kept.contains(keep)).map(|(_, c)| c).collect();
    let render = |cells: Vec<String>| -> String {
        let parts: Vec<String> =
            shown.iter().zip(cells).map(|(c, v)| if c.right { format!("{v:>w$}", w = c.width) } else { format!("{v:<w$}", w = c.width) }).collect();
        parts.join("  ").trim_end().to_string()
    };
    let cut = |l: String| -> String { l.chars().take(width).collect() };
    let mut out = vec![cut(summary(rows, net)), render(shown.iter().map(|c| c.header.to_string()).collect())];
    for r in rows {
        out.push(render(shown.iter().map(|c| (c.cell)(r)).collect()));
    }
    out.push(cut("commands: status, stop N, start N, add, partition 1 / 2 3, heal, help, quit; Ctrl-C stops".to_string()));
    out
}

/// One plain line (stdout is not a terminal): readable in a log, one a second.
pub fn line(rows: &[Row], net: &Network) -> String {
    let mut s = summary(rows, net);
    for r in rows {
        match &r.live {
            Some(l) => {
                let _ = write!(s, " | {}: h={} {} peers={} mempool={}", r.number, l.height, short(&l.best), l.peers, l.mempool);
                if l.syncing {
                    s.push_str(" syncing");
                }
            }
            None => {
                let _ = write!(s, " | {}: stopped", r.number);
            }
        }
    }
    s
}

/// The table of prefunded dev accounts printed at start (as anvil prints its accounts): the
/// `--key dev:N` name, the address and the genesis balance. Empty if the spec has none.
pub fn accounts(spec: &cairn_chain::ChainSpec) -> Vec<String> {
    let Some(dev) = &spec.dev_accounts else { return Vec::new() };
    let mut out = vec![
        format!("dev accounts (keys from the seed published in the chain spec: never hold value with them)"),
        format!("{:<7}  {:<64}  balance", "key", "address"),
    ];
    for i in 0..dev.count.min(16) {
        if let Some(k) = spec.dev_key(i) {
            out.push(format!("{:<7}  {}  {}", format!("dev:{i}"), k.address(), dev.balance));
        }
    }
    if dev.count > 16 {
        out.push(format!("… and {} more (dev:16 to dev:{})", dev.count - 16, dev.count - 1));
    }
    out
}

/// The table printed at start and by `status`: node, full node ID, P2P address, RPC URL.
pub fn addresses(rows: &[Row]) -> Vec<String> {
    let mut out = vec![format!("{:>4}  {:<64}  {:<21}  RPC", "node", "node ID", "P2P")];
    for r in rows {
        out.push(address_line(r));
    }
    out
}

/// One node's line of [`addresses`].
pub fn address_line(r: &Row) -> String {
    let id = r.node_id.map_or_else(|| "-".to_string(), |id| id.to_string());
    format!("{:>4}  {:<64}  {:<21}  {}", r.number, id, r.p2p.to_string(), r.rpc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: usize, live: bool) -> Row {
        Row {
            number: n,
            node_id: None,
            p2p: SocketAddr::from(([127, 0, 0, 1], 40000 + n as u16 * 2)),
            rpc: format!("http://127.0.0.1:{}", 40001 + n as u16 * 2),
            group: None,
            live: live.then_some(Live { height: 42, best: Hash([0xab; 32]), peers: 2, syncing: n == 2, mempool: 7 }),
        }
    }

    #[test]
    fn plain_line_names_every_node_and_no_url() {
        let net = Network { uptime: Duration::from_secs(3725), blocks_per_s: 0.5, farming: true, ..Default::default() };
        let l = line(&[row(1, true), row(2, true), row(3, false)], &net);
        assert!(l.starts_with("devnet 01:02:05 | 2/3 nodes up | blocks/s 0.50 | confirmed tx/s 0.0 | farming"), "{l}");
        assert!(l.contains("| 1: h=42 abababab peers=2 mempool=7 |") && l.contains("syncing | 3: stopped"), "{l}");
        assert!(!l.contains("http"), "status lines must not look like RPC URLs: {l}");
    }

    #[test]
    fn load_shows_funding_then_rates() {
        let mut net = Network { load: Some(Load { rate: 20_000, funded: (3, 313), ..Default::default() }), ..Default::default() };
        assert!(line(&[row(1, true)], &net).contains("| load 20000/s: funding senders (3/313 funded"));
        net.load = Some(Load { rate: 20_000, sent: 90_000, sent_per_s: 18_000.4, refused: 5, funded: (313, 313) });
        let l = line(&[row(1, true)], &net);
        assert!(l.contains("| load 20000/s asked, 18000/s accepted, 90000 sent, 5 refused |"), "{l}");
    }

    #[test]
    fn panel_has_a_line_per_node() {
        let net = Network { partition: Some("1 / 2".into()), ..Default::default() };
        let p = panel(&[row(1, true), row(2, false)], &net, 200);
        assert_eq!(p.len(), 5);
        assert!(p[0].ends_with("| partition 1 / 2"), "{}", p[0]);
        assert!(p[3].contains("stopped") && p[3].contains("http://127.0.0.1:40005"), "{}", p[3]);
        assert!(p[1].contains("P2P") && p[1].contains("group"), "{}", p[1]);
    }

    #[test]
    fn the_dev_accounts_are_listed_with_their_keys() {
        let a = accounts(&cairn_chain::ChainSpec::devnet());
        assert_eq!(a.len(), 2 + 16);
        let dev0 = cairn_chain::ChainSpec::devnet().dev_key(0).unwrap().address().to_string();
        assert!(a[2].starts_with("dev:0") && a[2].contains(&dev0), "{}", a[2]);
    }

    #[test]
    fn a_narrow_terminal_drops_columns_by_priority() {
        let rows = [row(1, true), row(2, false)];
        for width in [40, 60, 80, 100] {
            let p = panel(&rows, &Network::default(), width);
            assert!(p.iter().all(|l| l.chars().count() <= width), "{width}: {p:#?}");
            assert!(p[1].starts_with("node    height") && p[1].contains("peers") && p[1].contains("mempool"), "{width}: {}", p[1]);
        }
        let p80 = panel(&rows, &Network::default(), 80);
        assert!(p80[1].contains("RPC") && !p80[1].contains("P2P"), "80 columns keep the RPC URL, drop P2P: {}", p80[1]);
        assert!(p80[2].contains("http://127.0.0.1:40003"), "{}", p80[2]);
    }

    #[test]
    fn rates_count_growth_only() {
        let t = Instant::now();
        let mut r = Rates::new(10);
        r.record(t, 10, 0, 0);
        r.record(t + Duration::from_secs(2), 12, 6, 8);
        assert_eq!(r.per_second(), (1.0, 3.0, 4.0));
        // The leader stopped: the height seen drops; nothing is subtracted or counted twice.
        r.record(t + Duration::from_secs(4), 11, 0, 8);
        r.record(t + Duration::from_secs(6), 12, 0, 12);
        assert_eq!(r.per_second(), (2.0 / 6.0, 1.0, 2.0));
        assert_eq!(r.counted(), 12);
    }
}
