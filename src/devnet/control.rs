//! The stdin commands of a running devnet: stop, start, add, partition, heal, status, help.
//! Each runs to completion on the runner task before the next status refresh.

use std::ops::ControlFlow;
use std::time::Duration;

use tokio::task::JoinSet;

use super::MAX_NODES;
use super::commands::{self, Command, HELP};
use super::partition::Partition;
use super::runner::Devnet;
use super::slot::Slot;
use super::status;

/// When groups rejoin, each node redials at most this many nodes it was cut off from at once;
/// its maintenance loop finds the rest.
const REJOIN_DIALS: usize = 4;
/// How long rejoining waits for those dials.
const REJOIN_TIMEOUT: Duration = Duration::from_secs(10);

impl Devnet {
    /// Runs one stdin line.
    pub(super) async fn handle(&mut self, line: &str) -> ControlFlow<()> {
        let parsed = commands::parse(line);
        if let Ok(Some(c)) = &parsed {
            tracing::info!(target: "devnet", command = ?c, "command");
        }
        let result = match parsed {
            Ok(None) => return ControlFlow::Continue(()),
            Ok(Some(Command::Quit)) => return ControlFlow::Break(()),
            Ok(Some(Command::Help)) => Ok(HELP.to_string()),
            Ok(Some(Command::Status)) => {
                let rows = self.rows();
                let (panel, _) = self.render();
                Ok(format!("{}\n{}", status::addresses(&rows).join("\n"), panel.join("\n")))
            }
            Ok(Some(Command::Stop(n))) => self.stop_node(n).await,
            Ok(Some(Command::Start(n))) => self.start_node(n).await,
            Ok(Some(Command::Add)) => self.add_node().await,
            Ok(Some(Command::Partition(groups))) => {
                let all: Vec<usize> = (1..=self.slots.len()).collect();
                match Partition::new(&groups, &all) {
                    Ok(p) => {
                        let text = p.to_string();
                        self.set_partition(Some(p)).await;
                        Ok(format!("partitioned: {text} (nodes in different groups disconnect and refuse each other until heal)"))
                    }
                    Err(e) => Err(e),
                }
            }
            Ok(Some(Command::Heal)) => match self.partition {
                None => Err("not partitioned".to_string()),
                Some(_) => {
                    self.set_partition(None).await;
                    Ok("healed: one network again (the chain with the most work wins)".to_string())
                }
            },
            Err(e) => Err(e),
        };
        match result {
            Ok(text) => self.screen.say(&text),
            Err(e) => self.screen.error(&e),
        }
        ControlFlow::Continue(())
    }

    fn slot_index(&self, n: usize) -> Result<usize, String> {
        (1..=self.slots.len()).contains(&n).then(|| n - 1).ok_or_else(|| format!("no node {n} (nodes are 1 to {})", self.slots.len()))
    }

    async fn stop_node(&mut self, n: usize) -> Result<String, String> {
        let i = self.slot_index(n)?;
        if !self.slots[i].is_running() {
            return Err(format!("node {n} is already stopped"));
        }
        // Workers let go of the node's chain first, so its store closes.
        self.workers.stop().await;
        self.slots[i].stop().await;
        self.replan().await;
        Ok(format!("node {n} stopped (data dir and ports kept; start {n} brings it back)"))
    }

    async fn start_node(&mut self, n: usize) -> Result<String, String> {
        let i = self.slot_index(n)?;
        if self.slots[i].is_running() {
            return Err(format!("node {n} is already running"));
        }
        let blocked = self.blocked_for(n);
        self.slots[i].start(blocked).await.map_err(|e| e.to_string())?;
        self.replan().await;
        Ok(format!("node {n} started again: RPC {} (it catches up from its peers)", self.slots[i].rpc_url()))
    }

    async fn add_node(&mut self) -> Result<String, String> {
        if self.slots.len() >= MAX_NODES {
            return Err(format!("a devnet has at most {MAX_NODES} nodes"));
        }
        let n = self.add_slot().await.map_err(|e| e.to_string())?;
        self.replan().await;
        let rows = self.rows();
        let line = rows.get(n - 1).map(status::address_line).unwrap_or_default();
        Ok(format!("node {n} added (it syncs from the others):\n{line}"))
    }

    /// Switches to partition `new` (or heals with `None`): applies the deny sets, redials
    /// the pairs that may talk again, and re-plans the farmers.
    async fn set_partition(&mut self, new: Option<Partition>) {
        let old = std::mem::replace(&mut self.partition, new);
        self.apply_partition().await;
        if let Some(old) = old {
            self.rejoin(&old).await;
        }
        self.replan().await;
    }

    /// Redials, right away, running pairs that `old` kept apart and the current partition
    /// does not (their redial timers may have backed off meanwhile).
    async fn rejoin(&self, old: &Partition) {
        let mut dials = JoinSet::new();
        for s in self.slots.iter().filter(|s| s.is_running()) {
            let Some(node) = &s.node else { continue };
            let targets = self
                .slots
                .iter()
                .filter(|t| t.number < s.number && t.is_running() && old.separated(s.number, t.number))
                .filter(|t| self.partition.as_ref().is_none_or(|p| !p.separated(s.number, t.number)))
                .filter_map(Slot::pinned_address)
                .take(REJOIN_DIALS);
            for target in targets {
                let p2p = node.p2p().clone();
                dials.spawn(async move {
                    if let Err(e) = p2p.connect(&target).await {
                        tracing::debug!(target: "devnet", %target, "rejoin dial failed: {e}");
                    }
                });
            }
        }
        let _ = tokio::time::timeout(REJOIN_TIMEOUT, async { while dials.join_next().await.is_some() {} }).await;
        dials.abort_all();
    }
}
