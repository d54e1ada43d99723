//! Opening connections, both ways: the accept loop, the dial task, and the I/O shell around
//! the sans-IO [`Handshake`] machine. A connection that completes the handshake joins the
//! peer table through the peer manager ([`ManagerMsg::Register`]) and its task becomes the
//! peer task ([`crate::peer::run_peer`]).
//!
//! Every handshake runs in its own task, under the machine's deadline (a timeout closes with
//! the typed `handshake_timeout` code) and the service's cancellation (shutdown ends it at
//! once), with the small pre-handshake frame limit.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument;

use crate::addrbook::Expect;
use crate::admission::Decision;
use crate::channels::{ConnectError, Direction, Joining, ManagerMsg, Registration};
use crate::ctx::{Ctx, short};
use crate::handshake::{Handshake, HsAction, Refusal};
use crate::identity::NodeId;
use crate::tls::{SERVER_NAME, peer_node_id};
use crate::wire::{Hello, Message, RejectReason, Wire};

/// How long a refusal's last words (the `Reject` message) may take before the close.
const GOODBYE: Duration = Duration::from_millis(200);

/// Accepts connections until shutdown; each handshake runs in a task of its own, at most
/// `2 × max_inbound + 16` at once (beyond that a stranger is refused before any TLS work).
pub(crate) async fn accept_loop(ctx: Arc<Ctx>) {
    let handshakes = Arc::new(tokio::sync::Semaphore::new(ctx.cfg.max_inbound.saturating_mul(2).saturating_add(16)));
    loop {
        let incoming = tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            i = ctx.endpoint.accept() => match i {
                Some(i) => i,
                None => return,
            },
        };
        let Ok(permit) = handshakes.clone().try_acquire_owned() else {
            ctx.metrics.rejected(RejectReason::TooManyPeers, crate::metrics::Side::Local);
            incoming.refuse();
            continue;
        };
        ctx.tasks.spawn(inbound(ctx.clone(), incoming, permit));
    }
}

/// An inbound connection: the manager's admission checks (before any TLS work), TLS, then
/// the handshake as listener, then the peer task.
async fn inbound(ctx: Arc<Ctx>, incoming: quinn::Incoming, permit: tokio::sync::OwnedSemaphorePermit) {
    let remote = incoming.remote_address();
    // A client QUIC cannot ask to retry again has proven its address as far as it can.
    let validated = incoming.remote_address_validated() || !incoming.may_retry();
    let decision = ctx.manager.ask(|reply| ManagerMsg::Incoming { addr: remote, validated, reply }).await;
    let close = match decision {
        None => return incoming.ignore(),
        Some(Decision::Accept) => None,
        Some(Decision::Retry) => {
            // No TLS, no state: the client answers with a token proving its address.
            if let Err(e) = incoming.retry() {
                e.into_incoming().refuse();
            }
            return;
        }
        Some(Decision::Refuse(r)) => {
            tracing::debug!(target: "p2p::handshake", %remote, "refused before TLS: {}: {}", r.reason.code(), r.detail);
            return incoming.refuse();
        }
        // Completes TLS only so the refusal can say why (QUIC carries no reason before).
        Some(Decision::Close(r)) => Some(r),
    };
    let ip = remote.ip();
    if let Some(r) = close {
        let conn = tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            _ = tokio::time::sleep(ctx.cfg.handshake_timeout) => return,
            c = incoming => c,
        };
        if let Ok(conn) = conn {
            conn.close(r.reason.close_code(), format!("{}: {}", r.reason.code(), r.detail).as_bytes());
        }
        return;
    }
    let accepted = handshake_inbound(&ctx, incoming, permit, remote).await;
    // Counted by the manager from Incoming until here (then as a peer in its table).
    ctx.manager.send(ManagerMsg::HandshakeEnded(ip)).await;
    if let Some((id, conn, wire, reg, hello)) = accepted {
        let span = tracing::info_span!(target: "p2p::peer", "peer", peer = %short(&id), dir = "inbound");
        crate::peer::run_peer(ctx.clone(), id, conn, wire, reg, Direction::Inbound, hello).instrument(span).await;
    }
}

/// A registered inbound connection, ready to become a peer task.
type Accepted = (NodeId, quinn::Connection, Wire, Registration, Hello);

/// TLS and the listener's handshake; a registered connection comes back.
async fn handshake_inbound(ctx: &Arc<Ctx>, incoming: quinn::Incoming, permit: tokio::sync::OwnedSemaphorePermit, remote: SocketAddr) -> Option<Accepted> {
    let deadline = tokio::time::Instant::now() + ctx.cfg.handshake_timeout;
    let conn = tokio::select! {
        _ = ctx.cancel.cancelled() => return None,
        _ = tokio::time::sleep_until(deadline) => {
            ctx.metrics.rejected(RejectReason::Timeout, crate::metrics::Side::Local);
            return None;
        }
        c = incoming => match c {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(target: "p2p::handshake", %remote, "TLS handshake failed: {e}");
                return None;
            }
        },
    };
    let id = peer_node_id(&conn)?;
    let hs = Handshake::listener(ctx.hello(), ctx.node_id, id, Instant::now(), deadline.saturating_duration_since(tokio::time::Instant::now()));
    // The dialer opens the one stream; waiting for it counts against the same deadline.
    let stream = tokio::select! {
        _ = ctx.cancel.cancelled() => {
            close_shutting_down(&conn);
            return None;
        }
        _ = tokio::time::sleep_until(deadline) => None,
        s = conn.accept_bi() => s.ok(),
    };
    let Some((send, recv)) = stream else {
        if tokio::time::Instant::now() >= deadline {
            let r = Refusal::new(RejectReason::Timeout, "no stream opened in time");
            refuse(ctx, &conn, None, Some(&id), &r).await;
        }
        return None;
    };
    let mut wire = Wire::new(send, recv);
    let mut reserved = false;
    let outcome = drive(ctx, &conn, &mut wire, hs, Vec::new(), id, Direction::Inbound, false, &mut reserved).await;
    let hello = match outcome {
        Ok(h) => h,
        Err(_) => {
            release(ctx, reserved).await;
            return None;
        }
    };
    // The handshake is over: its slot goes back before the connection lives on.
    drop(permit);
    let listen = SocketAddr::new(remote.ip(), hello.listen_port);
    match register(ctx, &conn, &wire, &hello, id, Direction::Inbound, listen, reserved).await {
        Ok(reg) => Some((id, conn, wire, reg, hello)),
        Err(r) => {
            refuse(ctx, &conn, Some(&mut wire), Some(&id), &r).await;
            None
        }
    }
}

/// Gives back an inbound slot reservation (the handshake ended without registering).
async fn release(ctx: &Ctx, reserved: bool) {
    if reserved {
        ctx.manager.send(ManagerMsg::Release).await;
    }
}

/// A dial started by the manager: the outcome goes back to it ([`ManagerMsg::Dialled`]), and
/// a connection that registers becomes the peer task.
pub(crate) async fn dial_task(ctx: Arc<Ctx>, addr: SocketAddr, expect: Expect, manual: bool) {
    match dial(&ctx, addr, expect, manual).await {
        Ok(Dialled::Connected(c)) => {
            let Connected { id, conn, wire, reg, hello } = *c;
            ctx.manager.send(ManagerMsg::Dialled { addr, result: Ok(id) }).await;
            let span = tracing::info_span!(target: "p2p::peer", "peer", peer = %short(&id), dir = "outbound");
            crate::peer::run_peer(ctx.clone(), id, conn, wire, reg, Direction::Outbound, hello).instrument(span).await;
        }
        Ok(Dialled::AlreadyConnected(id)) => {
            ctx.manager.send(ManagerMsg::Dialled { addr, result: Ok(id) }).await;
        }
        Err(e) => {
            ctx.manager.send(ManagerMsg::Dialled { addr, result: Err(e) }).await;
        }
    }
}

/// A registered outbound connection, ready to become a peer task.
struct Connected {
    id: NodeId,
    conn: quinn::Connection,
    wire: Wire,
    reg: Registration,
    hello: Hello,
}

/// What a dial achieved.
enum Dialled {
    Connected(Box<Connected>),
    /// That node is connected already (the dial counts as a success).
    AlreadyConnected(NodeId),
}

/// Dials `addr` and runs the handshake as dialer. `manual`: the operator's dial.
async fn dial(ctx: &Arc<Ctx>, addr: SocketAddr, expect: Expect, manual: bool) -> Result<Dialled, ConnectError> {
    let deadline = tokio::time::Instant::now() + ctx.cfg.handshake_timeout;
    let connecting = ctx.endpoint.connect(addr, SERVER_NAME).map_err(|e| ConnectError::Unreachable(format!("{addr}: {e}")))?;
    let conn = tokio::select! {
        _ = ctx.cancel.cancelled() => return Err(ConnectError::Unreachable(format!("{addr}: shutting down"))),
        _ = tokio::time::sleep_until(deadline) => return Err(ConnectError::Timeout),
        c = connecting => c.map_err(|e| ConnectError::Unreachable(format!("{addr}: {e}")))?,
    };
    let id = peer_node_id(&conn).ok_or_else(|| ConnectError::Unreachable(format!("{addr}: no peer certificate")))?;
    let early = |r: Refusal| {
        let conn = conn.clone();
        async move {
            refuse(ctx, &conn, None, Some(&id), &r).await;
            Err(ConnectError::Refused { reason: r.reason, detail: r.detail, by_peer: false })
        }
    };
    if let Some(pinned) = expect.pinned
        && pinned != id
    {
        return early(Refusal::new(RejectReason::NodeIdMismatch, format!("{addr} pinned to {pinned}, answered as {id}"))).await;
    }
    if let Some(known) = expect.known
        && known != id
    {
        // Not pinned by the operator: most likely the node there was reinstalled (its data
        // dir wiped). Taken; the book remembers the new key once the handshake succeeds.
        tracing::info!(target: "p2p::handshake", %addr, %known, presented = %id, "the node at this address has a new key; taking it");
    }
    if id == ctx.node_id {
        return early(Refusal::new(RejectReason::SelfConnection, format!("{addr} is this node ({id})"))).await;
    }
    // Before any protocol exchange: a node we are connected to already, or may not take.
    let pre = ctx.manager.ask(|reply| ManagerMsg::Admit { id, direction: Direction::Outbound, manual, reply }).await;
    match pre {
        None => return Err(ConnectError::Unreachable(format!("{addr}: shutting down"))),
        Some(Err(r)) if r.reason == RejectReason::AlreadyConnected => {
            conn.close(r.reason.close_code(), format!("{}: {}", r.reason.code(), r.detail).as_bytes());
            return Ok(Dialled::AlreadyConnected(id));
        }
        Some(Err(r)) => return early(r).await,
        Some(Ok(())) => {}
    }
    let stream = tokio::select! {
        _ = ctx.cancel.cancelled() => {
            close_shutting_down(&conn);
            return Err(ConnectError::Unreachable(format!("{addr}: shutting down")));
        }
        _ = tokio::time::sleep_until(deadline) => None,
        s = conn.open_bi() => Some(s),
    };
    let (send, recv) = match stream {
        Some(Ok(s)) => s,
        Some(Err(e)) => return Err(lost(&conn, e.to_string())),
        None => {
            let r = Refusal::new(RejectReason::Timeout, "no stream opened in time");
            refuse(ctx, &conn, None, Some(&id), &r).await;
            return Err(ConnectError::Timeout);
        }
    };
    let mut wire = Wire::new(send, recv);
    let (hs, first) = Handshake::dialer(ctx.hello(), ctx.node_id, id, Instant::now(), deadline.saturating_duration_since(tokio::time::Instant::now()));
    let mut reserved = false;
    let hello = drive(ctx, &conn, &mut wire, hs, first, id, Direction::Outbound, manual, &mut reserved).await?;
    match register(ctx, &conn, &wire, &hello, id, Direction::Outbound, addr, false).await {
        Ok(reg) => Ok(Dialled::Connected(Box::new(Connected { id, conn, wire, reg, hello }))),
        Err(r) => {
            refuse(ctx, &conn, Some(&mut wire), Some(&id), &r).await;
            Err(ConnectError::Refused { reason: r.reason, detail: r.detail, by_peer: false })
        }
    }
}

/// Runs the handshake machine over the stream until it finishes.
#[allow(clippy::too_many_arguments)]
async fn drive(
    ctx: &Ctx,
    conn: &quinn::Connection,
    wire: &mut Wire,
    mut hs: Handshake,
    first: Vec<HsAction>,
    id: NodeId,
    direction: Direction,
    manual: bool,
    reserved: &mut bool,
) -> Result<Hello, ConnectError> {
    let mut actions = first;
    loop {
        // Actions can produce more (the manager's answer to `Admit`): run until none are left.
        while !actions.is_empty() {
            for action in std::mem::take(&mut actions) {
                match action {
                    HsAction::Send(m) => {
                        let sent = tokio::select! {
                            _ = ctx.cancel.cancelled() => None,
                            r = tokio::time::timeout_at(hs.deadline().into(), wire.send(&m)) => Some(r),
                        };
                        match sent {
                            None => {
                                close_shutting_down(conn);
                                return Err(ConnectError::Unreachable("shutting down".into()));
                            }
                            Some(Ok(Ok(()))) => {}
                            Some(Ok(Err(e))) => return Err(lost(conn, e.to_string())),
                            Some(Err(_)) => actions.extend(hs.tick(Instant::now().max(hs.deadline()))),
                        }
                    }
                    HsAction::Admit(_) => {
                        let r = ctx
                            .manager
                            .ask(|reply| ManagerMsg::Admit { id, direction, manual, reply })
                            .await
                            .unwrap_or_else(|| Err(Refusal::new(RejectReason::ShuttingDown, "shutting down")));
                        if r.is_ok() && direction == Direction::Inbound {
                            *reserved = true;
                        }
                        actions.extend(hs.admitted(r, Instant::now()));
                    }
                    HsAction::Done(hello) => return Ok(hello),
                    HsAction::Refuse { mut refusal, misbehaviour, send_reject } => {
                        // Judged first: if the points ban it, the refusal says so.
                        if let Some(kind) = misbehaviour
                            && ctx.manager.judge_at(id, kind, conn.remote_address().ip()).await == crate::channels::Standing::Banned
                        {
                            refusal = Refusal::new(RejectReason::Banned, format!("{}: {}", kind.code(), refusal.detail));
                        }
                        refuse(ctx, conn, send_reject.then_some(&mut *wire), Some(&id), &refusal).await;
                        return Err(ConnectError::Refused { reason: refusal.reason, detail: refusal.detail, by_peer: false });
                    }
                    HsAction::RefusedByPeer(r) => {
                        ctx.refused(Some(&id), conn.remote_address(), &r, true);
                        conn.close(quinn::VarInt::from_u32(0), b"refused");
                        return Err(ConnectError::Refused { reason: r.reason, detail: r.detail, by_peer: true });
                    }
                    HsAction::Lost(why) => {
                        // The other side went away; it may have said why in its close.
                        if let Some(r) = close_refusal(conn) {
                            ctx.refused(Some(&id), conn.remote_address(), &r, true);
                            return Err(ConnectError::Refused { reason: r.reason, detail: r.detail, by_peer: true });
                        }
                        return Err(lost(conn, why));
                    }
                }
            }
        }
        if hs.is_finished() {
            return Err(ConnectError::Unreachable("handshake ended".into()));
        }
        let got = tokio::select! {
            _ = ctx.cancel.cancelled() => {
                close_shutting_down(conn);
                return Err(ConnectError::Unreachable("shutting down".into()));
            }
            _ = tokio::time::sleep_until(hs.deadline().into()) => None,
            m = wire.recv() => Some(m),
        };
        actions = match got {
            None => hs.tick(Instant::now()),
            Some(m) => hs.on_message(m, Instant::now()),
        };
    }
}

/// The connection failed mid-handshake; the peer may have said why in its close.
fn lost(conn: &quinn::Connection, why: String) -> ConnectError {
    match close_refusal(conn) {
        Some(r) => ConnectError::Refused { reason: r.reason, detail: r.detail, by_peer: true },
        None => ConnectError::Unreachable(format!("{}: {why}", conn.remote_address())),
    }
}

/// Asks the manager to put a confirmed connection in the peer table.
#[allow(clippy::too_many_arguments)]
async fn register(
    ctx: &Ctx,
    conn: &quinn::Connection,
    wire: &Wire,
    hello: &Hello,
    id: NodeId,
    direction: Direction,
    listen: SocketAddr,
    reserved: bool,
) -> Result<Registration, Refusal> {
    let joining = Box::new(Joining {
        id,
        direction,
        conn: conn.clone(),
        listen,
        best_height: hello.best_height,
        user_agent: hello.user_agent.clone(),
        bytes_in: wire.bytes_in.clone(),
        bytes_out: wire.bytes_out.clone(),
        reserved,
    });
    ctx.manager.ask(|reply| ManagerMsg::Register { joining, reply }).await.unwrap_or_else(|| Err(Refusal::new(RejectReason::ShuttingDown, "shutting down")))
}

/// Tells the peer why (if the stream is usable), waits briefly for it to read that, then
/// closes with the reason's code and text.
pub(crate) async fn refuse(ctx: &Ctx, conn: &quinn::Connection, wire: Option<&mut Wire>, peer: Option<&NodeId>, r: &Refusal) {
    ctx.refused(peer, conn.remote_address(), r, false);
    if let Some(w) = wire {
        let goodbye = async {
            let _ = w.send(&Message::Reject { reason: r.reason, detail: r.detail.clone() }).await;
            w.finish().await;
            conn.closed().await;
        };
        let _ = tokio::time::timeout(GOODBYE, goodbye).await;
    }
    conn.close(r.reason.close_code(), format!("{}: {}", r.reason.code(), r.detail).as_bytes());
}

fn close_shutting_down(conn: &quinn::Connection) {
    conn.close(RejectReason::ShuttingDown.close_code(), format!("{}: node shutting down", RejectReason::ShuttingDown.code()).as_bytes());
}

/// Reads the reason a peer gave when it closed the connection, if it gave one.
pub(crate) fn close_refusal(conn: &quinn::Connection) -> Option<Refusal> {
    match conn.close_reason()? {
        quinn::ConnectionError::ApplicationClosed(c) => {
            let text = String::from_utf8_lossy(&c.reason).into_owned();
            let code = text.split(':').next().unwrap_or("");
            RejectReason::ALL.iter().find(|r| r.code() == code).map(|r| Refusal::new(*r, text.clone()))
        }
        _ => None,
    }
}
