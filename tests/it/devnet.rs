//! `cairn devnet` as a user drives it: a real process, its RPC URLs read from its output,
//! commands on its stdin, Ctrl-C (SIGINT) to stop it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Mutex};

use cairn_chain::Address;
use serde_json::Value;

use crate::support::*;

/// A running `cairn devnet` with its output collected line by line (stdout and stderr).
struct Devnet {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Devnet {
    fn spawn(args: &[&str]) -> Devnet {
        let mut child =
            cairn().arg("devnet").args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn cairn devnet");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
        for stream in [out, err] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(l);
                }
            });
        }
        let stdin = child.stdin.take();
        Devnet { child, stdin, lines }
    }

    fn send(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{command}").expect("write a command");
        stdin.flush().unwrap();
    }

    fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits for an output line containing `text` that was not there before `after` lines.
    async fn line(&self, text: &str, after: usize, secs: u64) -> String {
        wait_for(&format!("a line with {text:?}"), secs, || async { self.lines.lock().unwrap().iter().skip(after).find(|l| l.contains(text)).cloned() }).await
    }

    fn lines_so_far(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// (`ID@P2P address`, RPC URL) of nodes 1..=n, from the address table lines
    /// (`N  ID  P2P  http://…`).
    async fn table(&self, n: usize) -> Vec<(String, String)> {
        wait_for(&format!("{n} nodes in the address table"), 60, || async {
            let mut nodes = BTreeMap::new();
            for l in self.lines.lock().unwrap().iter() {
                let words: Vec<&str> = l.split_whitespace().collect();
                if let [number, id, p2p, url] = words[..]
                    && id.len() == 64
                    && url.starts_with("http://127.0.0.1:")
                    && let Ok(number) = number.parse::<usize>()
                {
                    nodes.insert(number, (format!("{id}@{p2p}"), url.to_string()));
                }
            }
            (nodes.len() >= n).then(|| nodes.into_values().take(n).collect::<Vec<_>>())
        })
        .await
    }

    /// RPC clients of nodes 1..=n.
    async fn rpcs(&self, n: usize) -> Vec<Rpc> {
        self.table(n).await.into_iter().map(|(_, url)| Rpc::new(url)).collect()
    }

    fn interrupt(&self) {
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
    }

    /// Waits for a clean exit (status 0).
    fn exits_cleanly(&mut self, secs: u64) {
        drop(self.stdin.take());
        let status = wait_exit(&mut self.child, secs);
        assert!(status.success(), "devnet exit {status:?}; output:\n{}", self.output());
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

async fn status(rpc: &Rpc) -> Option<(u64, String, u64)> {
    let (_, v) = rpc.try_get("/status").await?;
    Some((v["height"].as_u64()?, v["best_hash"].as_str()?.to_string(), v["peers"].as_u64()?))
}

/// Waits until every node has the same best block at `min_height` or above; returns it.
async fn one_chain(rpcs: &[Rpc], min_height: u64, secs: u64) -> (u64, String) {
    wait_for(&format!("one chain at height >= {min_height}"), secs, || async {
        let mut seen = Vec::new();
        for r in rpcs {
            let (h, best, _) = status(r).await?;
            seen.push((h, best));
        }
        (seen.iter().all(|s| *s == seen[0]) && seen[0].0 >= min_height).then(|| seen[0].clone())
    })
    .await
}

async fn peers(rpc: &Rpc) -> u64 {
    status(rpc).await.map_or(u64::MAX, |s| s.2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_farming_nodes_agree_and_ctrl_c_stops_everything() {
    let mut d = Devnet::spawn(&["--nodes", "3", "--farm", "--tx-rate", "20"]);
    let table = d.table(3).await;
    let rpcs: Vec<Rpc> = table.iter().map(|(_, url)| Rpc::new(url.clone())).collect();
    // The same, growing chain on all three (the farmer runs at the 2 s block time).
    let (h, _) = one_chain(&rpcs, 2, 60).await;
    one_chain(&rpcs, h + 1, 30).await;
    // The load's transfers are confirmed everywhere: dev:1 has sent some.
    let dev1 = dev(1).address();
    wait_for("load transfers confirmed on every node", 60, || async {
        for r in &rpcs {
            let (_, v) = r.try_get(&format!("/accounts/{dev1}")).await?;
            v["nonce"].as_u64().filter(|n| *n > 0)?;
        }
        Some(())
    })
    .await;
    // Ctrl-C: exit 0, no node answers any more, every port is free again.
    d.interrupt();
    d.exits_cleanly(30);
    for (r, (p2p, _)) in rpcs.iter().zip(&table) {
        assert!(r.try_get("/health").await.is_none(), "{} still answers after Ctrl-C", r.base);
        let addr = p2p.split_once('@').unwrap().1;
        std::net::UdpSocket::bind(addr).unwrap_or_else(|e| panic!("P2P port {addr} still taken: {e}"));
    }
}

/// The value after `label` in a status line, e.g. `confirmed tx/s 1234.5`.
fn figure(line: &str, label: &str) -> Option<f64> {
    line.split(" | ").find_map(|part| part.strip_prefix(label)?.trim().split([' ', '/', ',']).next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_on_the_loadtest_chain_is_confirmed_at_fresh_addresses() {
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/config/loadtest.toml");
    let mut d = Devnet::spawn(&["--nodes", "2", "--farm", "--chain", spec, "--block-time", "500", "--tx-rate", "2000"]);
    let rpcs = d.rpcs(2).await;
    for r in &rpcs {
        assert_eq!(r.get("/status").await.1["chain_id"], "cairn-loadtest");
    }
    // The senders are funded in the first block, then the load's transfers fill blocks (at
    // the 500 ms block time) and the status counts them.
    let line = wait_for("confirmed load transfers in the status", 90, || async {
        let lines = d.lines.lock().unwrap();
        lines.iter().rev().find(|l| l.contains("asked") && figure(l, "confirmed tx/s").is_some_and(|x| x > 0.0)).cloned()
    })
    .await;
    println!("{line}");
    // A block's transfers go to addresses that had nothing before: fresh, one per transfer.
    let to = wait_for("a block with load transfers", 60, || async {
        let tip = status(&rpcs[0]).await?.0;
        for h in (1..=tip).rev() {
            let (_, b) = rpcs[0].try_get(&format!("/blocks/{h}")).await?;
            let to: Vec<String> =
                b["transactions"].as_array()?.iter().filter(|t| t["amount"] == 1).filter_map(|t| t["to"].as_str().map(String::from)).collect();
            if to.len() > 10 {
                return Some(to);
            }
        }
        None
    })
    .await;
    let distinct: std::collections::HashSet<&String> = to.iter().collect();
    assert_eq!(distinct.len(), to.len(), "a recipient was paid twice in one block");
    d.send("quit");
    d.exits_cleanly(60);
}

/// With `--dir`, each node also logs to `DIR/nodeK/node.log`, at `info` whatever the terminal
/// under the panel shows: its own lines only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_node_logs_its_own_lines_to_its_file_under_dir() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("net");
    let mut d = Devnet::spawn(&["--nodes", "2", "--dir", dir.to_str().unwrap()]);
    let rpcs = d.rpcs(2).await;
    rpcs[0].farm(3, &Address([0xfa; 32])).await;
    one_chain(&rpcs, 3, 30).await;
    let read = |k: usize| std::fs::read_to_string(dir.join(format!("node{k}/node.log"))).unwrap_or_default();
    for k in [1, 2] {
        wait_for(&format!("node{k}'s file has the tip"), 20, || async { read(k).contains("new tip height=3").then_some(()) }).await;
    }
    // Each file has its own node's RPC address and not the other's.
    let (one, two) = (read(1), read(2));
    let port = |r: &Rpc| r.base.rsplit(':').next().unwrap().to_string();
    let (p1, p2) = (port(&rpcs[0]), port(&rpcs[1]));
    assert!(one.lines().any(|l| l.contains("RPC listening") && l.contains(&p1)), "{one}");
    assert!(!one.lines().any(|l| l.contains("RPC listening") && l.contains(&p2)), "node2's line in node1's file: {one}");
    assert!(two.lines().any(|l| l.contains("RPC listening") && l.contains(&p2)), "{two}");
    d.interrupt();
    d.exits_cleanly(10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_node_catches_up_and_a_stopped_node_comes_back() {
    let mut d = Devnet::spawn(&["--nodes", "2"]);
    let rpcs = d.rpcs(2).await;
    let farmer = Address([0xfa; 32]);
    rpcs[0].farm(20, &farmer).await;
    one_chain(&rpcs, 20, 30).await;

    let before = d.lines_so_far();
    d.send("add");
    d.line("node 3 added", before, 30).await;
    let rpcs = d.rpcs(3).await;
    let (h, best) = one_chain(&rpcs, 20, 60).await;
    assert_eq!(h, 20, "the fresh node caught up to the tip {best}");
    // Nodes are named by their number, the added one too.
    for (k, r) in rpcs.iter().enumerate() {
        assert_eq!(r.get("/status").await.1["name"], format!("node{}", k + 1));
    }

    // Stop node 2: its RPC goes away; the others go on; it comes back on the same ports with
    // the same key and its own data (it is at 20 the moment it answers, before any sync).
    let id_before = rpcs[1].get("/status").await.1["node_id"].clone();
    let before = d.lines_so_far();
    d.send("stop 2");
    d.line("node 2 stopped", before, 30).await;
    assert!(rpcs[1].try_get("/health").await.is_none(), "a stopped node still answers");
    rpcs[0].farm(5, &farmer).await;
    d.send("start 2");
    d.line("node 2 started again", before, 30).await;
    let (_, v) = rpcs[1].get("/status").await;
    assert_eq!(v["node_id"], id_before, "node 2 came back with another key");
    assert_eq!(v["name"], "node2");
    assert!(v["height"].as_u64().unwrap() >= 20, "node 2 came back without its data: {v}");
    one_chain(&rpcs, 25, 60).await;

    d.send("quit");
    d.exits_cleanly(30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_then_heal_gives_one_chain() {
    let mut d = Devnet::spawn(&["--nodes", "3"]);
    let table = d.table(3).await;
    let rpcs: Vec<Rpc> = table.iter().map(|(_, url)| Rpc::new(url.clone())).collect();
    wait_for("a full mesh", 30, || async {
        for r in &rpcs {
            (peers(r).await == 2).then_some(())?;
        }
        Some(())
    })
    .await;

    let before = d.lines_so_far();
    d.send("partition 1 / 2 3");
    d.line("partitioned: 1 / 2 3", before, 30).await;
    wait_for("node 1 cut off", 30, || async { (peers(&rpcs[0]).await == 0 && peers(&rpcs[1]).await == 1).then_some(()) }).await;
    // Each side farms its own chain; node 2's side farms more.
    rpcs[0].farm(2, &Address([0x01; 32])).await;
    rpcs[1].farm(4, &Address([0x02; 32])).await;
    let (h, side_b) = one_chain(&rpcs[1..], 4, 30).await;
    assert_eq!(h, 4);
    let (h1, side_a, _) = status(&rpcs[0]).await.unwrap();
    assert_eq!(h1, 2);
    assert_ne!(side_a, side_b);
    // The dashboard's network view (any node serves it) shows the groups and the fork.
    wait_for("the network view shows the partition and both branches", 30, || async {
        let (_, v) = rpcs[2].try_get("/devnet/network").await?;
        (v["partition"] == serde_json::json!([[1], [2, 3]])).then_some(())?;
        let tips: Vec<&str> = v["nodes"].as_array()?.iter().filter_map(|n| n["tip"].as_str()).collect();
        (tips == [side_a.as_str(), side_b.as_str(), side_b.as_str()]).then_some(())?;
        let peers: Vec<&Value> = v["nodes"].as_array()?.iter().map(|n| &n["peers"]).collect();
        (peers == [&serde_json::json!([]), &serde_json::json!([3]), &serde_json::json!([2])]).then_some(())
    })
    .await;
    // Nodes of different groups refuse each other while partitioned (not a ban).
    let (code, v) = rpcs[0].post("/p2p/peers", &serde_json::json!({"address": table[1].0})).await;
    assert_eq!((code, v["error"]["code"].as_str()), (409, Some("blocked")), "{v}");
    assert_eq!(rpcs[0].get("/p2p/peers").await.1["bans"].as_array().map(Vec::len), Some(0));

    let before = d.lines_so_far();
    d.send("heal");
    d.line("healed", before, 30).await;
    let (h, best) = one_chain(&rpcs, 4, 30).await;
    assert_eq!((h, &best), (4, &side_b), "the chain with the most work won");
    // The tree keeps node 1's two blocks as a stale branch; every node follows node 2's.
    wait_for("the network view shows the stale branch", 30, || async {
        let (_, v) = rpcs[0].try_get("/devnet/network").await?;
        v["partition"].is_null().then_some(())?;
        let blocks = v["blocks"].as_array()?;
        let stale = blocks.iter().filter(|b| b["best_of"] == serde_json::json!([])).count();
        let tip = blocks.iter().find(|b| b["hash"] == side_b.as_str())?;
        (stale == 2 && tip["best_of"] == serde_json::json!([1, 2, 3]) && blocks.len() == 7).then_some(())
    })
    .await;

    d.send("quit");
    d.exits_cleanly(30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_one_line_and_leaves_nothing_running() {
    let run = |args: &[&str]| cairn().arg("devnet").args(args).stdin(Stdio::null()).output().expect("run cairn devnet");
    assert!(error_line(&run(&["--nodes", "0"])).contains("--nodes 0"));
    assert!(error_line(&run(&["--nodes", "33"])).contains("1 to 32"));
    assert!(error_line(&run(&["--tx-rate", "0"])).contains("--tx-rate"));
    assert!(error_line(&run(&["--tx-rate", "100001"])).contains("1 to 100000"));
    assert!(error_line(&run(&["--block-time", "5"])).contains("--block-time 5"));
    let e = error_line(&run(&["--chain", "/nonexistent/spec.toml"]));
    assert!(e.contains("/nonexistent/spec.toml"), "{e}");
    assert!(error_line(&run(&["--base-port", "65535"])).contains("--base-port"));
    // A port of the range is taken: node 1's RPC port (base + 1).
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let e = error_line(&run(&["--nodes", "1", "--base-port", &(port - 1).to_string()]));
    assert!(e.contains("in use"), "{e}");

    // An unknown command is one error line; the devnet keeps running and answers the next.
    let mut d = Devnet::spawn(&["--nodes", "1"]);
    let rpcs = d.rpcs(1).await;
    d.send("frobnicate 7");
    let e = d.line("unknown command", 0, 30).await;
    assert!(e.starts_with("error: ") && e.contains("frobnicate"), "{e}");
    let before = d.lines_so_far();
    d.send("stop 9");
    assert!(d.line("no node 9", before, 30).await.starts_with("error: "));
    d.send("help");
    d.line("partition 1 / 2 3", before, 30).await;
    let (_, v): (u16, Value) = rpcs[0].get("/health").await;
    assert_eq!(v["status"], "ok");
    d.send("quit");
    d.exits_cleanly(30);
}
