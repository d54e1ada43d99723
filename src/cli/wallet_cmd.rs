//! `cairn keygen` and `cairn wallet balance|send`.

use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use cairn_chain::{Address, ChainSpec, Hash, Keypair, Transaction};
use serde::Deserialize;
use serde_json::Value;

use super::RpcClient;
use crate::rpc::views::TxView;

pub fn keygen(out: Option<PathBuf>) -> anyhow::Result<()> {
    let key = Keypair::generate();
    println!("{}", key.address());
    match out {
        Some(path) => {
            cairn_p2p::identity::write_secret(&path, &hex::encode(key.seed())).with_context(|| format!("writing key file {}", path.display()))?;
            eprintln!("secret key written to {} (owner-only)", path.display());
        }
        None => println!("secret: {}", hex::encode(key.seed())),
    }
    Ok(())
}

/// Loads `--key`: `dev:N` (the shipped devnet's N-th account) or a key file of 64 hex chars.
pub fn load_key(spec: &str) -> anyhow::Result<Keypair> {
    if let Some(n) = spec.strip_prefix("dev:") {
        let n: u32 = n.parse().map_err(|_| anyhow!("--key {spec}: N must be a number"))?;
        return ChainSpec::devnet().dev_key(n).ok_or_else(|| anyhow!("--key {spec}: the devnet has fewer dev accounts"));
    }
    let text = std::fs::read_to_string(spec).with_context(|| format!("reading key file {spec}"))?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut seed).map_err(|_| anyhow!("key file {spec}: not 64 hex characters"))?;
    Ok(Keypair::from_seed(seed))
}

#[derive(Deserialize)]
struct AccountView {
    balance: u64,
    next_nonce: u64,
}

pub async fn balance(rpc: &str, address: &str) -> anyhow::Result<()> {
    let address: Address = address.parse().map_err(|e| anyhow!("malformed address: {e}"))?;
    let a: AccountView = RpcClient::new(rpc)?.get(&format!("/accounts/{address}")).await?;
    println!("{}", a.balance);
    Ok(())
}

pub async fn send(rpc: &str, key: &str, to: &str, amount: u64, fee: u64) -> anyhow::Result<()> {
    let key = load_key(key)?;
    let to: Address = to.parse().map_err(|e| anyhow!("--to: malformed address: {e}"))?;
    let client = RpcClient::new(rpc)?;
    let status: Value = client.get("/status").await?;
    let chain: Hash = status["genesis_hash"].as_str().unwrap_or_default().parse().map_err(|_| anyhow!("node status has no genesis_hash"))?;
    let acct: AccountView = client.get(&format!("/accounts/{}", key.address())).await?;
    if acct.balance < amount.saturating_add(fee) {
        bail!("insufficient balance: {} has {}, needs {}", key.address(), acct.balance, amount.saturating_add(fee));
    }
    let tx = Transaction::signed(&key, chain, to, amount, fee, acct.next_nonce);
    let r: Value = client.post("/txs", &TxView::from(&tx)).await?;
    println!("{}", r["txid"].as_str().unwrap_or_default());
    Ok(())
}
