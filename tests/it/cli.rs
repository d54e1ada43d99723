//! The `cairn` binary as a user drives it: keys, wallet, outside farmer, continuous farming,
//! one-line startup errors, clean shutdown.

use std::process::{Command, Output};

use cairn::config::NodeConfig;
use cairn_chain::{Address, Keypair};

use crate::support::*;

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run cairn")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keygen_wallet_and_outside_farmer() {
    let n = start_node().await;
    let url = n.rpc.base.clone();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("me.key");
    let out = run(cairn().args(["keygen", "--out"]).arg(&key));
    assert!(out.status.success());
    let me: Address = stdout(&out).parse().expect("keygen prints the address");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }

    // Two sends in a row from dev:0 before any block: the second uses the next pending nonce.
    for amount in ["100", "250"] {
        let out = run(cairn().args(["wallet", "send", "--rpc", &url, "--key", "dev:0", "--to", &me.to_string(), "--amount", amount]));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(stdout(&out).len(), 64, "send prints the txid");
    }

    // The outside farmer includes them.
    let out = run(cairn().args(["farm", "--rpc", &url, "--farmer", &me.to_string(), "--blocks", "3", "--threads", "2", "--no-pacing"]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout(&out).lines().count(), 3);
    assert_eq!(n.rpc.height().await, 3);
    let reward = cairn_chain::ChainSpec::devnet().block_reward;
    let out = run(cairn().args(["wallet", "balance", "--rpc", &url, &me.to_string()]));
    assert_eq!(stdout(&out), (350 + 3 * reward + 2).to_string(), "transfers + rewards + fees");

    // Spending from a key file.
    let other = Keypair::generate().address().to_string();
    let out = run(cairn().args(["wallet", "send", "--rpc", &url, "--to", &other, "--amount", "7", "--key"]).arg(&key));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Mistakes are one-line errors.
    assert!(error_line(&run(cairn().args(["wallet", "send", "--rpc", &url, "--key", "dev:999", "--to", &other, "--amount", "1"]))).contains("dev:999"));
    assert!(error_line(&run(cairn().args(["wallet", "balance", "--rpc", &url, "zz"]))).contains("malformed address"));
    let broke = dir.path().join("broke.key");
    run(cairn().args(["keygen", "--out"]).arg(&broke));
    let e = error_line(&run(cairn().args(["wallet", "send", "--rpc", &url, "--to", &other, "--amount", "1", "--key"]).arg(&broke)));
    assert!(e.contains("insufficient balance"), "{e}");
    n.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn farm_flag_farms_at_the_block_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = NodeConfig::for_tests(dir.path().join("data"));
    config.chain.block_time_ms = 150;
    let farmer = Address([0xfa; 32]);
    config.farm = Some(farmer);
    let node = cairn::Node::start(config).await.unwrap();
    let rpc = Rpc::new(format!("http://{}", node.rpc_addr()));
    wait_for("five farmed blocks", 30, || async { (rpc.height().await >= 5).then_some(()) }).await;
    let (_, v) = rpc.get("/blocks?from=1&limit=5").await;
    let ts: Vec<u64> = v["blocks"].as_array().unwrap().iter().map(|b| b["header"]["timestamp"].as_u64().unwrap()).collect();
    for w in ts.windows(2) {
        assert!(w[1] - w[0] >= 150, "blocks closer than the block time: {ts:?}");
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_errors_are_one_line_and_sigterm_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let e = error_line(&run(cairn().args(["node", "--config"]).arg(dir.path().join("nope.toml"))));
    assert!(e.contains("nope.toml"), "{e}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "rpc_port = \"high\"\n").unwrap();
    let e = error_line(&run(cairn().args(["node", "--config"]).arg(&bad)));
    assert!(e.contains("bad.toml") && e.contains("line 1, column 12") && e.contains("expected u16"), "{e}");
    assert!(!run(cairn().args(["node", "--bogus-flag"])).status.success());
    // A bad value from the environment names the variable, not the flag.
    let e = error_line(&run(cairn().arg("node").env("CAIRN_RPC_PORT", "high")));
    assert!(e.contains("CAIRN_RPC_PORT") && e.contains("\"high\""), "{e}");

    // A node runs; a second on the same RPC port fails to start; SIGTERM stops the first cleanly.
    let (mut child, url) = spawn_node(&data, &[]);
    let port = url.rsplit(':').next().unwrap().to_string();
    let other = dir.path().join("other");
    let e = error_line(&run(cairn().args(["node", "--no-mdns", "--p2p-port", "0", "--rpc-port", &port, "--data-dir"]).arg(&other)));
    assert!(e.contains(&port) && e.contains("RPC"), "{e}");
    assert_eq!(e.matches("os error").count(), 1, "the OS error is said once: {e}");
    assert!(!other.exists(), "a failed start leaves no data dir behind");
    // The same data dir while it is in use.
    let e = error_line(&run(cairn().args(["node", "--no-mdns", "--p2p-port", "0", "--rpc-port", "0", "--data-dir"]).arg(&data)));
    assert!(e.contains("in use"), "{e}");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = wait_exit(&mut child, 20);
    assert!(status.success(), "SIGTERM exit: {status:?}");

    // A data dir of another chain names both chains.
    let mut spec = cairn_chain::spec::DEVNET_SPEC.replace("chain_id = \"cairn-devnet\"", "chain_id = \"cairn-other\"");
    spec.push('\n');
    let spec_path = dir.path().join("other.toml");
    std::fs::write(&spec_path, spec).unwrap();
    let e = error_line(&run(cairn().args(["node", "--no-mdns", "--p2p-port", "0", "--rpc-port", "0", "--chain"]).arg(&spec_path).arg("--data-dir").arg(&data)));
    assert!(e.contains("cairn-devnet") && e.contains("cairn-other") && e.matches("genesis").count() == 2, "{e}");
}

#[test]
fn bad_names_are_one_line_config_errors_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = || {
        let mut c = cairn();
        c.args(["node", "--no-mdns", "--p2p-port", "0", "--rpc-port", "0", "--data-dir"]).arg(&data);
        c
    };
    let e = error_line(&run(node().args(["--name", "bad name!"])));
    assert!(e.contains("--name") && e.contains("bad name!"), "{e}");
    let e = error_line(&run(node().env("CAIRN_NAME", "x".repeat(33))));
    assert!(e.contains("CAIRN_NAME") && e.contains("33 characters"), "{e}");
    let file = dir.path().join("named.toml");
    std::fs::write(&file, "name = \"bad name!\"\n").unwrap();
    let e = error_line(&run(node().arg("--config").arg(&file)));
    assert!(e.contains("named.toml") && e.contains("name:"), "{e}");
    assert!(!data.exists(), "a refused config created the data dir");
}

#[test]
fn a_named_node_logs_its_name_on_every_line() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    for format in ["text", "json"] {
        let dir = tempfile::tempdir().unwrap();
        let mut child = cairn()
            .args(["--log-format", format, "node", "--name", "alice", "--no-mdns", "--p2p-port", "0", "--rpc-port", "0", "--data-dir"])
            .arg(dir.path().join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn cairn");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("RPC listening on") {
                    let _ = tx.send(());
                }
                lines.push(line);
            }
            lines
        });
        rx.recv_timeout(std::time::Duration::from_secs(30)).expect("the node started within 30 s");
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        assert!(wait_exit(&mut child, 20).success());
        let lines = reader.join().unwrap();
        assert!(lines.iter().any(|l| l.contains("node stopped")), "{format}: {lines:#?}");
        for l in &lines {
            if format == "text" {
                assert!(l.contains("node{node_name=alice}"), "text line without the name: {l}");
            } else {
                let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
                assert_eq!(v["span"]["node_name"], "alice", "JSON line without the name: {l}");
            }
        }
    }
}

/// `cairn peers`, `peers add`, `peers remove`, `peers addresses`, `ban`, `bans`, `unban`
/// against two real node processes; `--rpc` takes `HOST:PORT`; bad input is one clear line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_and_ban_commands() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, url_a, _) = crate::support::spawn_node_addrs(&dir.path().join("a"), &["--name", "alice"]);
    let (mut b, _, addr_b) = crate::support::spawn_node_addrs(&dir.path().join("b"), &["--name", "bob"]);
    let hostport = url_a.trim_start_matches("http://").to_string();
    let ok = |args: &[&str]| {
        let out = run(cairn().args(args).args(["--rpc", &hostport]));
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        stdout(&out)
    };
    let connected = ok(&["peers", "add", &addr_b]);
    assert!(connected.starts_with("connected to "), "{connected}");
    let b_id = connected.trim().trim_start_matches("connected to ").to_string();
    let table = ok(&["peers"]);
    assert!(table.contains("bob") && table.contains("outbound") && table.contains("1 peer(s)"), "{table}");
    let json: serde_json::Value = serde_json::from_str(&ok(&["peers", "--json"])).expect("--json is JSON");
    assert_eq!(json["peers"][0]["name"], "bob");
    assert!(ok(&["peers", "addresses"]).contains("manual"));
    // Ban a network and the peer; list; lift.
    let banned = ok(&["ban", "10.9.0.0/16", "--duration", "2h", "--reason", "noisy"]);
    assert!(banned.starts_with("banned 10.9.0.0/16 for ") && banned.contains("h"), "{banned}");
    assert!(ok(&["ban", &b_id]).contains("1 peer(s) disconnected"));
    let bans = ok(&["bans"]);
    assert!(bans.contains("10.9.0.0/16") && bans.contains("noisy") && bans.contains(&b_id), "{bans}");
    assert!(ok(&["unban", "10.9.0.0/16"]).starts_with("unbanned 10.9.0.0/16"));
    assert!(ok(&["unban", &b_id]).starts_with("unbanned"));
    assert_eq!(ok(&["bans"]), "no bans");
    assert!(ok(&["peers", "remove", &b_id]).starts_with("removed"));
    // Bad input: one line naming the problem, and nothing changes.
    let e = error_line(&run(cairn().args(["ban", "300.1.2.3", "--rpc", &hostport])));
    assert!(e.contains("invalid_ip"), "{e}");
    let e = error_line(&run(cairn().args(["ban", "10.0.0.1", "--duration", "5y", "--rpc", &hostport])));
    assert!(e.contains("unknown unit"), "{e}");
    let e = error_line(&run(cairn().args(["unban", "10.0.0.1", "--rpc", &hostport])));
    assert!(e.contains("not_found"), "{e}");
    assert_eq!(ok(&["bans"]), "no bans");
    for c in [&mut a, &mut b] {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Every chain read and action from the command line, readable and `--json`, reaching the
/// node by URL, `HOST:PORT` or `CAIRN_RPC`; `keygen` never prints the address of a key it did
/// not write; `key show` reads a key file back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_commands_read_and_act_through_the_rpc() {
    let n = start_node().await;
    let url = n.rpc.base.clone();
    let hostport = url.trim_start_matches("http://").to_string();
    let ok = |o: Output| {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        stdout(&o)
    };
    let json = |o: Output| -> serde_json::Value { serde_json::from_str(&ok(o)).expect("--json prints JSON") };

    // Farm by HOST:PORT, read status through CAIRN_RPC.
    let hashes = ok(run(cairn().args(["farm-now", "2", "--rpc", &hostport])));
    assert_eq!(hashes.lines().count(), 2);
    let status = ok(run(cairn().arg("status").env("CAIRN_RPC", &url)));
    assert!(status.contains("height    2"), "{status}");
    assert_eq!(json(run(cairn().args(["status", "--json"]).env("CAIRN_RPC", &hostport)))["height"], 2);

    // Send, see it pending in the mempool and as a transaction; farm it; read its block.
    let to = Keypair::generate().address().to_string();
    let txid = ok(run(cairn().args(["send", "--rpc", &url, "--key", "dev:2", "--to", &to, "--amount", "42"])));
    assert_eq!(txid.len(), 64);
    let mempool = ok(run(cairn().args(["mempool", "--rpc", &url])));
    assert!(mempool.starts_with("1 pending") && mempool.contains(&txid), "{mempool}");
    let pending = json(run(cairn().args(["tx", &txid, "--json", "--rpc", &url])));
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["transaction"]["from"], dev(2).address().to_string(), "from is the sender's address");
    assert_eq!(pending["transaction"]["public_key"], hex::encode(dev(2).public().as_bytes()));
    ok(run(cairn().args(["farm-now", "--rpc", &url])));
    let tx = ok(run(cairn().args(["tx", &txid, "--rpc", &url])));
    assert!(tx.contains("confirmed") && tx.contains(&format!("from      {}", dev(2).address())), "{tx}");
    let block = ok(run(cairn().args(["block", "3", "--rpc", &url])));
    assert!(block.contains("txs       1") && block.contains(&txid), "{block}");
    assert_eq!(json(run(cairn().args(["block", "3", "--json", "--rpc", &url])))["header"]["height"], 3);
    assert_eq!(ok(run(cairn().args(["balance", &to, "--rpc", &url]))), "42");
    assert_eq!(json(run(cairn().args(["balance", &to, "--json", "--rpc", &url])))["balance"], 42);
    assert_eq!(json(run(cairn().args(["mempool", "--json", "--rpc", &url])))["count"], 0);

    // Mistakes are one-line errors.
    assert!(error_line(&run(cairn().args(["block", "999", "--rpc", &url]))).contains("not_found"));
    assert!(error_line(&run(cairn().args(["balance", "zz", "--rpc", &url]))).contains("malformed address"));
    assert!(!run(cairn().args(["--log-format", "yaml", "status"])).status.success(), "an unknown log format is refused");

    // keygen writes first, refuses to overwrite, and then prints nothing on stdout.
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("me.key");
    let me = ok(run(cairn().args(["keygen", "--out"]).arg(&key)));
    assert_eq!(ok(run(cairn().args(["key", "show"]).arg(&key))), me);
    let again = run(cairn().args(["keygen", "--out"]).arg(&key));
    assert!(!again.status.success() && again.stdout.is_empty(), "no address for a key that was not written");
    assert!(error_line(&again).contains("exists"));
    assert_eq!(ok(run(cairn().args(["key", "show"]).arg(&key))), me, "the key is untouched");
    let lost = run(cairn().args(["keygen", "--out"]).arg(dir.path().join("missing/dir/k.key")));
    assert!(!lost.status.success() && lost.stdout.is_empty());
    let replaced = ok(run(cairn().args(["keygen", "--force", "--out"]).arg(&key)));
    assert_ne!(replaced, me);
    assert_eq!(ok(run(cairn().args(["key", "show"]).arg(&key))), replaced);

    // Completions and the man page come from the same definitions.
    assert!(ok(run(cairn().args(["completions", "bash"]))).contains("farm-now"));
    assert!(ok(run(cairn().arg("man"))).contains(".TH cairn"));
    n.node.shutdown().await;
}

/// An RPC bound beyond loopback refuses requests without the bearer token (the cookie the node
/// writes in its data dir), takes them with it, leaves `/health` open, and the CLI reads the
/// cookie from `--data-dir`; the cookie is gone after shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exposed_rpc_needs_the_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut c = NodeConfig::for_tests(data.clone());
    c.rpc_addr = "0.0.0.0:0".parse().unwrap();
    let node = cairn::Node::start(c).await.expect("node starts");
    let url = format!("http://127.0.0.1:{}", node.rpc_addr().port());
    let cookie = std::fs::read_to_string(data.join(".cookie")).expect("a cookie in the data dir");
    let http = reqwest::Client::new();
    let status = |auth: Option<String>, path: &'static str| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let mut req = http.get(format!("{url}{path}"));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            req.send().await.unwrap().status().as_u16()
        }
    };
    assert_eq!(status(None, "/status").await, 401);
    assert_eq!(status(Some("Bearer wrong".into()), "/status").await, 401);
    assert_eq!(status(Some(format!("Bearer {}", cookie.trim())), "/status").await, 200);
    assert_eq!(status(None, "/health").await, 200, "probes need no token");
    // The dashboard's page and files are open (the page asks for the token); what it reads is not.
    assert_eq!(status(None, "/").await, 200);
    assert_eq!(status(None, "/ui/app.js").await, 200);
    assert_eq!(status(None, "/events").await, 401);
    assert_eq!(status(None, "/devnet/network").await, 401);
    let refused = run(cairn().args(["status", "--rpc", &url]).current_dir(dir.path()).env_remove("CAIRN_RPC_TOKEN"));
    assert!(error_line(&refused).contains("unauthorized"));
    let out = run(cairn().args(["status", "--rpc", &url, "--data-dir"]).arg(&data).env_remove("CAIRN_RPC_TOKEN"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(cairn().args(["status", "--rpc", &url]).env("CAIRN_RPC_TOKEN", cookie.trim()));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    node.shutdown().await;
    assert!(!data.join(".cookie").exists(), "the cookie is removed at shutdown");
}

/// `cairn farm` farms at the chain's block time (2 s on the devnet), prints a line per block,
/// and stops within a second of Ctrl-C (SIGINT), even while it waits between blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outside_farmer_is_paced_and_stops_on_ctrl_c() {
    use std::io::{BufRead, BufReader};
    let n = start_node().await;
    let farmer = Keypair::generate().address().to_string();
    let mut child = cairn()
        .args(["farm", "--rpc", &n.rpc.base, "--farmer", &farmer, "--threads", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn cairn farm");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send((std::time::Instant::now(), line));
        }
    });
    let (t1, first) = rx.recv_timeout(std::time::Duration::from_secs(20)).expect("a first block");
    let (t2, second) = rx.recv_timeout(std::time::Duration::from_secs(20)).expect("a second block");
    assert!(first.starts_with("1 ") && first.contains("txs=0") && first.contains("hashrate="), "{first}");
    assert!(second.starts_with("2 "), "{second}");
    // Paced: about the 2 s block time apart (loosely: a loaded machine is late, never early).
    assert!(t2 - t1 >= std::time::Duration::from_millis(1500), "blocks {:?} apart", t2 - t1);
    // Ctrl-C while it waits for the next block: gone within a second.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "cairn farm still running 1 s after SIGINT");
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert!(status.success(), "{status:?}");
    n.node.shutdown().await;
}

/// SIGTERM while the built-in farmer searches (two threads, with transfers queued) stops the
/// node within a second, and the farmed blocks are there after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_farming_exits_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let farmer = Keypair::generate().address().to_string();
    let (mut child, url) = spawn_node(&data, &["--farm", &farmer, "--farm-threads", "2"]);
    let rpc = Rpc::new(url);
    let genesis: cairn_chain::Hash = rpc.get("/status").await.1["genesis_hash"].as_str().unwrap().parse().unwrap();
    let txs: Vec<serde_json::Value> = (0..200)
        .map(|n| {
            let tx = cairn_chain::Transaction::signed(&dev(1), genesis, Address([7; 32]), 1, 1, n);
            serde_json::to_value(cairn_rpc_types::views::TxView::from(&tx)).unwrap()
        })
        .collect();
    let (code, _) = rpc.post("/txs", &serde_json::Value::Array(txs)).await;
    assert_eq!(code, 200);
    let height = wait_for("a farmed block", 30, || {
        let rpc = rpc.clone();
        async move { rpc.try_get("/status").await?.1["height"].as_u64().filter(|h| *h >= 1) }
    })
    .await;
    let started = std::time::Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let exit = wait_exit(&mut child, 20);
    let took = started.elapsed();
    println!("SIGTERM while farming: exited in {} ms", took.as_millis());
    assert!(exit.success(), "exit on SIGTERM while farming: {exit:?}");
    assert!(took < std::time::Duration::from_millis(1500), "SIGTERM while farming took {took:?}");

    let (mut child, url) = spawn_node(&data, &[]);
    let after = Rpc::new(url).get("/status").await.1["height"].as_u64().unwrap();
    assert!(after >= height, "restarted at {after}, had farmed {height}");
    child.kill().unwrap();
    child.wait().unwrap();
}
