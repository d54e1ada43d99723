//! `cairn node`: run a node until Ctrl-C or SIGTERM.

use anyhow::Context;

use super::NodeArgs;
use crate::Node;
use crate::config::{Overrides, resolve};

pub async fn run(a: NodeArgs) -> anyhow::Result<()> {
    // Installed before the node starts: a signal during start-up is kept and handled once the
    // node is up (a clean shutdown), instead of killing the process mid-start.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).context("installing SIGINT handler")?;
    let config = resolve(Overrides {
        config: a.config,
        name: a.name,
        chain: a.chain,
        data_dir: a.data_dir,
        p2p_port: a.p2p_port,
        rpc_port: a.rpc_port,
        rpc_bind: a.rpc_bind,
        peers: a.peers,
        no_mdns: a.no_mdns,
        farm: a.farm,
        farm_threads: a.farm_threads,
        exempt_loopback: a.exempt_loopback,
        blocks_only: a.blocks_only,
        rpc_token: a.rpc_token,
        rpc_cors: a.rpc_cors,
        address_index: a.address_index,
    })?;
    let node = Node::start(config).await?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    node.span().in_scope(|| tracing::info!(target: "node", "shutting down"));
    node.shutdown().await;
    Ok(())
}
