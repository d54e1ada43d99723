//! `cairn status`, `block`, `tx`, `balance`, `send`, `mempool`, `farm-now`: every chain read
//! and action of the RPC from the command line (bitcoin-cli's and cast's conventions: the
//! node's answer as readable lines, the RPC's JSON with `--json`).

use std::fmt::Write;

use anyhow::anyhow;
use cairn_chain::{Address, ChainSpec};
use serde_json::{Value, json};

use super::RpcArgs;
use super::peers_cmd::print_json;

/// GETs `path` and prints the JSON (`--json`) or `render`'s text.
async fn show(rpc: &RpcArgs, path: &str, render: fn(&Value) -> String) -> anyhow::Result<()> {
    let v: Value = rpc.client()?.get(path).await?;
    if rpc.json {
        return print_json(&v);
    }
    print!("{}", render(&v));
    Ok(())
}

/// `cairn status`.
pub async fn status(rpc: &RpcArgs) -> anyhow::Result<()> {
    show(rpc, "/status", status_text).await
}

fn status_text(v: &Value) -> String {
    let mut out = String::new();
    let s = |k: &str| v[k].as_str().map(str::to_string).unwrap_or_else(|| v[k].to_string());
    let _ = writeln!(out, "chain     {} (genesis {})", s("chain_id"), s("genesis_hash"));
    let _ = writeln!(out, "height    {}", s("height"));
    let _ = writeln!(out, "tip       {}", s("best_hash"));
    let _ = writeln!(out, "work      {}", s("total_work"));
    let _ = writeln!(out, "peers     {}{}", s("peers"), if v["syncing"].as_bool() == Some(true) { " (syncing)" } else { "" });
    let name = v["name"].as_str().map(|n| format!(" ({n})")).unwrap_or_default();
    let _ = writeln!(out, "node      {}{name}", s("node_id"));
    let _ = writeln!(out, "version   {}", s("version"));
    out
}

/// `cairn block <height|hash>`.
pub async fn block(rpc: &RpcArgs, id: &str) -> anyhow::Result<()> {
    show(rpc, &format!("/blocks/{}", id.trim()), block_text).await
}

fn block_text(v: &Value) -> String {
    let mut out = String::new();
    let h = &v["header"];
    let txs = v["transactions"].as_array().map(Vec::as_slice).unwrap_or_default();
    let _ = writeln!(out, "block     {}", v["hash"].as_str().unwrap_or("?"));
    let _ = writeln!(out, "height    {}", h["height"]);
    let _ = writeln!(out, "parent    {}", h["prev_hash"].as_str().unwrap_or("?"));
    let _ = writeln!(out, "time      {} ms", h["timestamp"]);
    let _ = writeln!(out, "farmer    {}", h["farmer"].as_str().unwrap_or("?"));
    let _ = writeln!(out, "nonce     {}", h["nonce"]);
    let _ = writeln!(out, "tx root   {}", h["tx_root"].as_str().unwrap_or("?"));
    let _ = writeln!(out, "txs       {}", txs.len());
    for tx in txs {
        let _ = writeln!(out, "  {}", tx_line(tx));
    }
    out
}

/// One transaction on a line: `txid  from → to  amount (fee f, nonce n)`.
fn tx_line(tx: &Value) -> String {
    format!(
        "{}  {} -> {}  {} (fee {}, nonce {})",
        tx["txid"].as_str().unwrap_or("?"),
        tx["from"].as_str().unwrap_or("?"),
        tx["to"].as_str().unwrap_or("?"),
        tx["amount"],
        tx["fee"],
        tx["nonce"]
    )
}

/// `cairn tx <txid>`.
pub async fn tx(rpc: &RpcArgs, txid: &str) -> anyhow::Result<()> {
    let v: Value = rpc.client()?.get(&format!("/txs/{}", txid.trim())).await?;
    if rpc.json {
        return print_json(&v);
    }
    let t = &v["transaction"];
    let mut out = String::new();
    let _ = writeln!(out, "tx        {}", v["txid"].as_str().unwrap_or("?"));
    match v["status"].as_str() {
        Some("confirmed") => {
            let _ = writeln!(out, "status    confirmed in block {} at height {}", v["block_hash"].as_str().unwrap_or("?"), v["height"]);
        }
        Some(other) => {
            let _ = writeln!(out, "status    {other}");
        }
        None => {}
    }
    for (k, label) in [("from", "from"), ("public_key", "key"), ("to", "to"), ("amount", "amount"), ("fee", "fee"), ("nonce", "nonce")] {
        let value = t[k].as_str().map(str::to_string).unwrap_or_else(|| t[k].to_string());
        let _ = writeln!(out, "{label:<9} {value}");
    }
    print!("{out}");
    Ok(())
}

/// `cairn balance <address>`.
pub async fn balance(rpc: &RpcArgs, address: &str) -> anyhow::Result<()> {
    let address: Address = address.trim().parse().map_err(|e| anyhow!("malformed address {address:?}: {e}"))?;
    let v: Value = rpc.client()?.get(&format!("/accounts/{address}")).await?;
    if rpc.json {
        return print_json(&v);
    }
    println!("{}", v["balance"]);
    let pending = v["next_nonce"].as_u64().unwrap_or(0).saturating_sub(v["nonce"].as_u64().unwrap_or(0));
    eprintln!("nonce {}, {pending} pending", v["nonce"]);
    Ok(())
}

/// `cairn mempool [--limit N]`.
pub async fn mempool(rpc: &RpcArgs, limit: usize) -> anyhow::Result<()> {
    let v: Value = rpc.client()?.get(&format!("/mempool?limit={limit}")).await?;
    if rpc.json {
        return print_json(&v);
    }
    let txs = v["transactions"].as_array().map(Vec::as_slice).unwrap_or_default();
    let count = v["count"].as_u64().unwrap_or(0);
    println!("{count} pending{}", if (txs.len() as u64) < count { format!(" (first {} shown)", txs.len()) } else { String::new() });
    for tx in txs {
        println!("  {}", tx_line(tx));
    }
    Ok(())
}

/// `cairn farm-now [N] [--farmer A]`: the node farms N blocks at once.
pub async fn farm_now(rpc: &RpcArgs, count: u64, farmer: Option<&str>) -> anyhow::Result<()> {
    let farmer: Address = match farmer {
        Some(a) => a.trim().parse().map_err(|e| anyhow!("--farmer: malformed address {a:?}: {e}"))?,
        None => ChainSpec::devnet().dev_key(0).map(|k| k.address()).ok_or_else(|| anyhow!("no dev account 0"))?,
    };
    let v: Value = rpc.client()?.post("/farm/blocks", &json!({"count": count, "farmer": farmer})).await?;
    if rpc.json {
        return print_json(&v);
    }
    for h in v["hashes"].as_array().map(Vec::as_slice).unwrap_or_default() {
        println!("{}", h.as_str().unwrap_or("?"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_status_and_block() {
        let status = json!({"chain_id": "c", "genesis_hash": "aa", "node_id": "bb", "name": "alice", "version": "0.1.0", "height": 7,
            "best_hash": "cc", "total_work": "99", "peers": 2, "syncing": true});
        let text = status_text(&status);
        assert!(text.contains("height    7\n") && text.contains("peers     2 (syncing)\n") && text.contains("node      bb (alice)\n"), "{text}");
        let block = json!({"hash": "h", "header": {"height": 3, "prev_hash": "p", "timestamp": 5, "farmer": "f", "nonce": 9, "tx_root": "r"},
            "transactions": [{"txid": "t", "from": "a", "to": "b", "amount": 10, "fee": 1, "nonce": 0}]});
        let text = block_text(&block);
        assert!(text.contains("txs       1\n  t  a -> b  10 (fee 1, nonce 0)\n"), "{text}");
    }
}
