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
use crate::rpc::views::{BlockView, TxView};

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
}

pub async fn run(a: FarmArgs) -> anyhow::Result<()> {
    let farmer: Address = a.farmer.parse().map_err(|e| anyhow::anyhow!("--farmer: malformed address: {e}"))?;
    let threads = a.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let client = RpcClient::new(&a.rpc)?;
    let mut accepted = 0u64;
    while a.blocks.is_none_or(|n| accepted < n) {
        let t: TemplateView = client.get(&format!("/farm/template?farmer={farmer}")).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let header = t.header.clone();
        let search_stop = stop.clone();
        let mut search = tokio::task::spawn_blocking(move || mine(&header, threads, &search_stop));
        let found = loop {
            tokio::select! {
                r = &mut search => break r.context("search thread")?,
                _ = tokio::time::sleep(TIP_POLL) => {
                    let s: StatusView = client.get("/status").await?;
                    if s.best_hash != t.header.prev_hash {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
                _ = tokio::signal::ctrl_c() => {
                    stop.store(true, Ordering::Relaxed);
                    return Ok(());
                }
            }
        };
        let Some(header) = found else { continue }; // tip moved: fresh template
        let block = BlockView { hash: None, header, transactions: t.transactions };
        match client.post::<_, Value>("/blocks", &block).await {
            Ok(v) if v["status"] == "connected" => {
                accepted += 1;
                println!("{} {}", v["height"], v["hash"].as_str().unwrap_or(""));
            }
            Ok(_) => {}
            Err(e) => eprintln!("block refused: {e:#}"),
        }
    }
    Ok(())
}
