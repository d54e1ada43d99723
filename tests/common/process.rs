//! Running the real `cairn` binary as a child process: shared by the integration tests
//! (`tests/it/support.rs`) and the benchmarks (`benches/sync.rs`) through `#[path]`.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

/// The `cairn` binary under test (`CAIRN_BIN` runs another build, e.g. an older one for a
/// benchmark's "before" figures).
pub fn cairn() -> std::process::Command {
    let bin = std::env::var_os("CAIRN_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_cairn").into());
    let mut c = std::process::Command::new(bin);
    c.env("NO_COLOR", "1").env_remove("RUST_LOG");
    c
}

/// Starts a real `cairn node` process on port 0 (plus `extra` args) and returns it with its
/// RPC URL, read from its log.
pub fn spawn_node(data: &Path, extra: &[&str]) -> (std::process::Child, String) {
    let (child, url, _) = spawn_node_addrs(data, extra);
    (child, url)
}

/// As [`spawn_node`], also returning its `ID@host:port` peer address, read from its log.
pub fn spawn_node_addrs(data: &Path, extra: &[&str]) -> (std::process::Child, String, String) {
    use std::io::{BufRead, BufReader};
    let mut child = cairn()
        .args(["node", "--no-mdns", "--rpc-port", "0", "--p2p-port", "0", "--data-dir"])
        .arg(data)
        .args(extra)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn cairn");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    // `CAIRN_TEST_LOGS=1` passes the node's log on, each line led by its process ID.
    let echo = std::env::var_os("CAIRN_TEST_LOGS").is_some().then(|| child.id());
    std::thread::spawn(move || {
        let mut peer = None;
        let mut sent = false;
        // Keeps reading to the end, so the node never blocks on a full pipe.
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(pid) = echo {
                eprintln!("[{pid}] {line}");
            }
            if let Some(i) = line.find("peers connect with --peers ") {
                peer = Some(line[i + "peers connect with --peers ".len()..].trim().to_string());
            }
            if !sent && let Some(i) = line.find("RPC listening on ") {
                let _ = tx.send((line[i + "RPC listening on ".len()..].trim().to_string(), peer.clone().unwrap_or_default()));
                sent = true;
            }
        }
    });
    let (url, peer) = rx.recv_timeout(Duration::from_secs(30)).expect("node printed its RPC address within 30 s");
    (child, url, peer)
}
