//! One task per connected peer: owns the connection's framed stream, answers heartbeats and
//! address requests, enforces per-peer rate limits, and penalises protocol violations.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::config::{BAN_THRESHOLD, MAX_PEERS_PER_MESSAGE};
use crate::identity::NodeId;
use crate::service::{Direction, Inner, now_ms};
use crate::sync::Flow;
use crate::wire::{Message, PeerAddress, RejectReason, Wire, WireError};

/// What other tasks can ask of a peer task.
#[derive(Debug)]
pub enum PeerCmd {
    /// Send a message.
    Send(Message),
    /// Close the connection with this reason.
    Disconnect(&'static str),
}

/// Live counters of one peer, shared with the peer table.
pub struct PeerStats {
    /// Best height it announced.
    pub best_height: AtomicU64,
    /// Bytes received.
    pub bytes_in: Arc<AtomicU64>,
    /// Bytes sent.
    pub bytes_out: Arc<AtomicU64>,
    /// Last message time (ms).
    pub last_seen_ms: AtomicU64,
    /// Blocks it served to our catch-up sync.
    pub blocks_served: AtomicU64,
}

/// Token bucket: `rate` tokens a second, at most `burst` saved up.
struct RateLimit {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl RateLimit {
    fn new(rate: u32, burst: u32) -> Self {
        RateLimit { tokens: burst as f64, rate: rate as f64, burst: burst as f64, last: Instant::now() }
    }
    fn allow(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Sends under a deadline: a peer that stops reading (QUIC flow control) cannot park the
/// task, which must keep its heartbeat and its inbox alive.
async fn send(wire: &mut Wire, m: &Message, within: Duration) -> Result<(), String> {
    match tokio::time::timeout(within, wire.send(m)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("send of {} timed out (peer not reading)", m.kind())),
    }
}

/// Gives a peer's download requests back when its task ends. If a new connection replaced
/// this one, the requests it made meanwhile go too (their answers are then ignored and the
/// blocks asked again): cheaper than leaving this one's, which would never be answered.
struct ReleaseOnDrop {
    inner: Arc<Inner>,
    id: NodeId,
}

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        crate::sync::peer_gone(&self.inner, &self.id);
    }
}

/// Why a peer task ended.
enum End {
    Local(&'static str),
    Remote(String),
    Violation(&'static str, u32),
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_peer(
    inner: Arc<Inner>,
    id: NodeId,
    conn: quinn::Connection,
    mut wire: Wire,
    mut inbox: mpsc::Receiver<PeerCmd>,
    stats: Arc<PeerStats>,
    direction: Direction,
    remote_work: [u8; 32],
) {
    // However the task ends (even by a panic), its download requests go to the others.
    let _requests = ReleaseOnDrop { inner: inner.clone(), id };
    let cfg = &inner.cfg;
    let mut limit = RateLimit::new(cfg.msg_rate, cfg.msg_burst);
    let mut heartbeat = tokio::time::interval(cfg.ping_interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.tick().await;
    let mut outstanding: Option<(u64, Instant)> = None;
    let mut last_get_peers: Option<Instant> = None;
    // A `Peers` message is only taken as the answer to our own `GetPeers`.
    let mut asked_peers = false;
    if direction == Direction::Outbound && send(&mut wire, &Message::GetPeers, cfg.ping_timeout).await.is_ok() {
        asked_peers = true;
    }
    let remote_height = stats.best_height.load(Ordering::Relaxed);
    if let Flow::Reply(m) = crate::sync::on_connect(&inner, id, remote_height, remote_work).await {
        let _ = send(&mut wire, &m, cfg.ping_timeout).await;
    }
    let end = loop {
        tokio::select! {
            biased;
            _ = inner.cancel.cancelled() => break End::Local("shutting down"),
            cmd = inbox.recv() => match cmd {
                Some(PeerCmd::Send(m)) => {
                    asked_peers |= matches!(m, Message::GetPeers);
                    if let Err(e) = send(&mut wire, &m, cfg.ping_timeout).await {
                        break End::Remote(e);
                    }
                }
                Some(PeerCmd::Disconnect(why)) => break End::Local(why),
                None => break End::Local("peer table dropped the peer"),
            },
            _ = heartbeat.tick() => {
                if inner.download().stalled(&id, cfg.ping_timeout, Instant::now()) {
                    // A peer that stops serving a sync is dropped; others carry on.
                    break End::Local("sync stalled");
                }
                if let Some((_, sent)) = outstanding {
                    if sent.elapsed() >= cfg.ping_timeout {
                        break End::Local("ping timeout");
                    }
                } else {
                    let nonce = inner.next_nonce();
                    outstanding = Some((nonce, Instant::now()));
                    if let Err(e) = send(&mut wire, &Message::Ping(nonce), cfg.ping_timeout).await {
                        break End::Remote(e);
                    }
                }
                // Ask for its tip each beat: a missed announcement is caught up here.
                if let Err(e) = send(&mut wire, &Message::GetStatus, cfg.ping_timeout).await {
                    break End::Remote(e);
                }
            }
            msg = wire.recv() => {
                let msg = match msg {
                    Ok(m) => m,
                    Err(WireError::FrameTooLarge(_)) => break End::Violation("oversized_frame", 100),
                    Err(WireError::Decode(_)) => break End::Violation("undecodable_message", 50),
                    Err(WireError::Closed) => break End::Remote("stream closed".into()),
                    Err(WireError::Io(e)) => break End::Remote(e.to_string()),
                };
                stats.last_seen_ms.store(now_ms(), Ordering::Relaxed);
                if let Message::NewBlock { height, .. } = &msg {
                    stats.best_height.fetch_max(*height, Ordering::Relaxed);
                }
                if !limit.allow() {
                    // Over the rate: drop the message; sustained floods end in a ban.
                    if inner.penalize(id, 5, "rate_limited") >= BAN_THRESHOLD {
                        break End::Violation("rate_limited", 0);
                    }
                    continue;
                }
                match msg {
                    Message::Ping(n) => {
                        if let Err(e) = send(&mut wire, &Message::Pong(n), cfg.ping_timeout).await {
                            break End::Remote(e);
                        }
                    }
                    Message::Pong(n) => {
                        if outstanding.is_some_and(|(want, _)| want == n) {
                            outstanding = None;
                        }
                    }
                    Message::GetPeers => {
                        // Too soon after the last one: ignored (honest nodes can race here);
                        // a flood is caught by the message rate limit.
                        if last_get_peers.is_some_and(|t| t.elapsed() < cfg.get_peers_min_interval) {
                            continue;
                        }
                        last_get_peers = Some(Instant::now());
                        let list = peers_for(&inner, &id);
                        if let Err(e) = send(&mut wire, &Message::Peers(list), cfg.ping_timeout).await {
                            break End::Remote(e);
                        }
                    }
                    Message::Peers(list) => {
                        if list.len() > MAX_PEERS_PER_MESSAGE {
                            break End::Violation("oversized_peer_list", 50);
                        }
                        if !asked_peers {
                            // Unsolicited: ignored, so a peer cannot stream addresses at us.
                            inner.penalize(id, 10, "unsolicited_peers");
                            continue;
                        }
                        asked_peers = false;
                        inner.learn(list.into_iter().map(|p| p.addr));
                    }
                    Message::GetStatus => {
                        let tip = inner.chain.tip();
                        let m = Message::Status { best_height: tip.height, best_hash: tip.hash, total_work: tip.total_work.to_bytes() };
                        if let Err(e) = send(&mut wire, &m, cfg.ping_timeout).await {
                            break End::Remote(e);
                        }
                    }
                    Message::Status { best_height, total_work, .. } => {
                        stats.best_height.fetch_max(best_height, Ordering::Relaxed);
                        if let Flow::Reply(r) = crate::sync::on_status(&inner, id, best_height, total_work).await
                            && let Err(e) = send(&mut wire, &r, cfg.ping_timeout).await
                        {
                            break End::Remote(e);
                        }
                    }
                    Message::Hello(_) | Message::HelloAck => break End::Violation("second_handshake", 50),
                    Message::Reject { reason, detail } => {
                        break End::Remote(format!("{}: {}", reason.code(), detail.chars().take(200).collect::<String>()));
                    }
                    m @ (Message::NewBlock { .. }
                    | Message::GetBlock(_)
                    | Message::BlockData(_)
                    | Message::GetHeaders { .. }
                    | Message::Headers(_)
                    | Message::GetBlocks(_)
                    | Message::Blocks(_)
                    | Message::Transactions(_)) => match crate::sync::handle(&inner, id, m).await {
                        Flow::Continue => {}
                        Flow::Reply(r) => {
                            if let Err(e) = send(&mut wire, &r, cfg.ping_timeout).await {
                                break End::Remote(e);
                            }
                        }
                        Flow::Violation(kind, points) => break End::Violation(kind, points),
                    },
                }
            }
        }
    };
    inner.unregister(&id, conn.stable_id());
    match end {
        End::Local(why) => {
            tracing::info!(target: "p2p::peer", peer = %id, "disconnecting: {why}");
            let code = match why {
                "shutting down" => RejectReason::ShuttingDown,
                crate::service::BLOCKED => RejectReason::Blocked,
                _ => RejectReason::ProtocolViolation,
            };
            let _ = send(&mut wire, &Message::Reject { reason: code, detail: why.to_string() }, Duration::from_millis(500)).await;
            let _ = tokio::time::timeout(Duration::from_millis(500), wire.finish()).await;
            let _ = tokio::time::timeout(Duration::from_millis(200), conn.closed()).await;
            conn.close(code.close_code(), format!("{}: {why}", code.code()).as_bytes());
        }
        End::Remote(why) => {
            tracing::info!(target: "p2p::peer", peer = %id, "peer disconnected: {why}");
            conn.close(quinn::VarInt::from_u32(0), b"closed");
        }
        End::Violation(kind, points) => {
            if points > 0 {
                inner.penalize(id, points, kind);
            }
            tracing::warn!(target: "p2p::peer", peer = %id, kind, "closing connection: protocol violation");
            conn.close(RejectReason::ProtocolViolation.close_code(), format!("protocol_violation: {kind}").as_bytes());
        }
    }
}

/// Addresses to give a peer: the listen addresses of our other peers, then proven book
/// entries, at most [`MAX_PEERS_PER_MESSAGE`].
fn peers_for(inner: &Inner, asker: &NodeId) -> Vec<PeerAddress> {
    let st = inner.lock();
    let mut out: Vec<PeerAddress> = st
        .peers
        .iter()
        .filter(|(id, _)| *id != asker)
        .map(|(id, p)| PeerAddress { node_id: Some(*id), addr: p.listen_address })
        .take(MAX_PEERS_PER_MESSAGE)
        .collect();
    let room = MAX_PEERS_PER_MESSAGE - out.len();
    let known: Vec<PeerAddress> = st.book.sample(room).into_iter().filter(|p| !out.iter().any(|o| o.addr == p.addr)).collect();
    out.extend(known);
    out
}
