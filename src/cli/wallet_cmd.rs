//! `cairn keygen` and `cairn wallet balance|send`.

use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use cairn_chain::{Address, ChainSpec, Hash, Keypair, Transaction};
use serde::Deserialize;
use serde_json::Value;

use super::{RpcClient, TransferArgs};
use cairn_rpc_types::TxView;

/// `cairn keygen [--out FILE [--force]]`: the key is written (and synced) before its address
/// is printed, so `ME=$(cairn keygen --out me.key)` never captures the address of a lost key.
/// An existing file is kept unless `--force`; then the new key replaces it atomically.
pub fn keygen(out: Option<PathBuf>, force: bool) -> anyhow::Result<()> {
    let key = Keypair::generate();
    let secret = hex::encode(key.seed());
    match out {
        Some(path) => {
            write_key(&path, &secret, force)?;
            println!("{}", key.address());
            eprintln!("secret key written to {} (owner-only)", path.display());
        }
        None => {
            println!("{}", key.address());
            println!("secret: {secret}");
        }
    }
    Ok(())
}

fn write_key(path: &std::path::Path, secret: &str, force: bool) -> anyhow::Result<()> {
    let shown = path.display();
    if !force {
        if path.exists() {
            bail!("{shown} exists; nothing was written (--force replaces it)");
        }
        return cairn_p2p::identity::write_secret(path, secret).map_err(|e| {
            // Never leave a half-written key behind.
            let _ = std::fs::remove_file(path);
            anyhow!("writing key file {shown}: {e}")
        });
    }
    let tmp = path.with_file_name(format!(".{}.{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("key"), std::process::id()));
    let written = cairn_p2p::identity::write_secret(&tmp, secret).and_then(|()| std::fs::rename(&tmp, path));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow!("writing key file {shown}: {e}")
    })
}

/// `cairn key show FILE`: the address of a key file (or dev:N).
pub fn show(file: &str) -> anyhow::Result<()> {
    println!("{}", load_key(file)?.address());
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

/// Signs a transfer with the sender's next nonce and sends it; returns the txid.
pub async fn send(client: &RpcClient, t: &TransferArgs) -> anyhow::Result<String> {
    let key = load_key(&t.key)?;
    let to: Address = t.to.trim().parse().map_err(|e| anyhow!("--to: malformed address: {e}"))?;
    let (amount, fee) = (t.amount, t.fee);
    let status: Value = client.get("/status").await?;
    let chain: Hash = status["genesis_hash"].as_str().unwrap_or_default().parse().map_err(|_| anyhow!("node status has no genesis_hash"))?;
    let acct: AccountView = client.get(&format!("/accounts/{}", key.address())).await?;
    if acct.balance < amount.saturating_add(fee) {
        bail!("insufficient balance: {} has {}, needs {}", key.address(), acct.balance, amount.saturating_add(fee));
    }
    let tx = Transaction::signed(&key, chain, to, amount, fee, acct.next_nonce);
    let r: Value = client.post("/txs", &TxView::from(&tx)).await?;
    Ok(r["txid"].as_str().unwrap_or_default().to_string())
}
