//! `cairn farm`: an outside farmer. Fetches a template, searches nonces on N threads, and
//! starts over on a fresh template whenever the node's tip moves.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use cairn_chain::{Address, Hash, Header};
use serde::Deserialize;
use serde_json::Value;

use super::{FarmArgs, RpcClient};
use crate::farm::miner::mine;
use cairn_rpc_types::{BlockView, TxView};

/// How often the tip is polled while searching.
const TIP_POLL: Duration = Duration::from_millis(250);

#[derive(Deserialize)]
struct TemplateView {
    header: Header,
    transactions: Vec<TxView>,
}

#[derive(Deserialize)]
struct StatusView {
    best_hash: Hash,
    #[serde(default)]
    block_time_ms: Option<u64>,
}

/// `cairn farm`: paced at the chain's block time unless `--no-pacing`; Ctrl-C or SIGTERM stop
/// it within a second, whatever it is doing (waiting, searching, talking to the node).
pub async fn run(a: FarmArgs) -> anyhow::Result<()> {
    let farmer: Address = a.farmer.parse().map_err(|e| anyhow::anyhow!("--farmer: malformed address: {e}"))?;
    let threads = a.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let client = RpcClient::new(&a.rpc)?;
    // Installed once: a listener made anew on every loop (as before) missed signals between.
    let stop = tokio_util::sync::CancellationToken::new();
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let stopper = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        stopper.cancel();
    });
    tokio::select! {
        r = farm(&client, farmer, threads, &a, &stop) => r,
        _ = stop.cancelled() => Ok(()),
    }
}

async fn farm(client: &RpcClient, farmer: Address, threads: usize, a: &FarmArgs, stop: &tokio_util::sync::CancellationToken) -> anyhow::Result<()> {
    let status: StatusView = client.get("/status").await?;
    let pace = if a.no_pacing { None } else { status.block_time_ms.map(Duration::from_millis) };
    match pace {
        Some(p) => eprintln!("farming to {farmer} every {} ms (the chain's block time; --no-pacing for as fast as possible)", p.as_millis()),
        None => eprintln!("farming to {farmer} as fast as the node takes blocks"),
    }
    let mut accepted = 0u64;
    let mut next_at = tokio::time::Instant::now();
    while a.blocks.is_none_or(|n| accepted < n) {
        tokio::time::sleep_until(next_at).await;
        let t: TemplateView = client.get(&format!("/farm/template?farmer={farmer}")).await?;
        let flag = Arc::new(AtomicBool::new(false));
        let header = t.header.clone();
        let search_stop = flag.clone();
        let started = std::time::Instant::now();
        let mut search = tokio::task::spawn_blocking(move || mine(&header, threads, &search_stop));
        // The search thread stops when we do (Ctrl-C drops this future; the guard raises the flag).
        let _guard = StopOnDrop(flag.clone());
        let found = loop {
            tokio::select! {
                r = &mut search => break r.context("search thread")?,
                _ = tokio::time::sleep(TIP_POLL) => {
                    let s: StatusView = client.get("/status").await?;
                    if s.best_hash != t.header.prev_hash {
                        flag.store(true, Ordering::Relaxed);
                    }
                }
            }
        };
        if stop.is_cancelled() {
            return Ok(());
        }
        let Some(header) = found else { continue }; // tip moved: fresh template
        let elapsed = started.elapsed();
        let hashes = header.nonce.wrapping_sub(t.header.nonce).saturating_add(1);
        let txs = t.transactions.len();
        let block = BlockView { hash: None, header, transactions: t.transactions };
        match client.post::<_, Value>("/blocks", &block).await {
            Ok(v) if v["status"] == "connected" => {
                accepted += 1;
                let rate = hashes as f64 / elapsed.as_secs_f64().max(1e-6);
                println!("{} {} txs={txs} hashrate={}", v["height"], v["hash"].as_str().unwrap_or(""), human_rate(rate));
                if let Some(p) = pace {
                    next_at = tokio::time::Instant::now() + p;
                }
            }
            Ok(_) => {}
            Err(e) => eprintln!("block refused: {e:#}"),
        }
    }
    Ok(())
}

/// Raises the search's stop flag when dropped (the farmer was interrupted mid-search).
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Hashes a second, readable: `812 H/s`, `3.4 MH/s`.
fn human_rate(r: f64) -> String {
    match r {
        r if r >= 1e9 => format!("{:.1} GH/s", r / 1e9),
        r if r >= 1e6 => format!("{:.1} MH/s", r / 1e6),
        r if r >= 1e3 => format!("{:.1} kH/s", r / 1e3),
        r => format!("{r:.0} H/s"),
    }
}
