//! `GET /events`: Server-Sent Events of the best chain (`block`, `reorg`), the mempool (`tx`)
//! and peers (`peer`), filtered with `?types=block,reorg`.
//!
//! One [`EventHub`] task per node subscribes to the chain, transaction and peer broadcasts and
//! renders each event's JSON once, however many subscribers there are; it publishes the
//! rendered events on one bounded broadcast. One forwarding task per subscriber moves those
//! (shared, `Arc`) into that subscriber's bounded buffer ([`CLIENT_BUFFER`] entries; a `tx`
//! entry is one accepted batch). The node never waits for a subscriber:
//! - transactions are only buffered while [`TX_ROOM`] entries stay free (else counted and told
//!   as `event: lagged` with `missed_txs` once there is room), so a flood of transactions cannot
//!   crowd out the chain;
//! - a block, reorg or peer event that finds the buffer full cuts the subscriber off (its
//!   stream ends after what is buffered; a client that does not read at all is closed by the
//!   RPC's write timeout, see [`super::listener`]);
//! - at most [`MAX_SUBSCRIBERS`] at once; more get 503 `too_many_subscribers`.
//!
//! Memory per subscriber is bounded by its buffer of pointers; the rendered events are shared.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use cairn_chain::Transaction;
use cairn_rpc_types::query::EventsQuery;
use futures_util::Stream;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::RpcState;
use super::error::ApiError;
use super::extract::Query;
use crate::chain_service::ChainHandle;
use crate::events::ChainEvent;

/// Subscribers at once.
pub const MAX_SUBSCRIBERS: usize = 1024;
/// Entries buffered per subscriber.
pub const CLIENT_BUFFER: usize = 256;
/// Free entries a `tx` batch leaves for the chain and peer events.
pub const TX_ROOM: usize = 64;
/// Rendered events the hub's broadcast holds for the slowest forwarder.
const HUB_EVENTS: usize = 1024;
/// How often an idle stream sends a comment (keeps proxies from closing it, finds dead
/// clients).
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The kinds of event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Block,
    Reorg,
    Tx,
    Peer,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Block => "block",
            Kind::Reorg => "reorg",
            Kind::Tx => "tx",
            Kind::Peer => "peer",
        }
    }
}

/// An event rendered once for every subscriber: its kind and its JSON data, one per
/// transaction for a `tx` batch.
#[derive(Debug)]
pub struct Rendered {
    kind: Kind,
    data: Box<[Box<str>]>,
}

impl Rendered {
    fn one(kind: Kind, data: &impl serde::Serialize) -> Rendered {
        Rendered { kind, data: Box::new([serde_json::to_string(data).unwrap_or_default().into_boxed_str()]) }
    }

    fn txs(batch: &[Transaction]) -> Rendered {
        let data = batch
            .iter()
            .map(|t| {
                json!({"txid": t.id(), "from": t.from.address(), "to": t.to, "amount": t.amount, "fee": t.fee, "nonce": t.nonce}).to_string().into_boxed_str()
            })
            .collect();
        Rendered { kind: Kind::Tx, data }
    }
}

/// The node's one renderer of events (see the module doc). Cheap to clone.
#[derive(Clone)]
pub struct EventHub {
    out: broadcast::Sender<Arc<Rendered>>,
}

impl EventHub {
    /// Starts the hub's task; it ends with `shutdown` or when its sources close.
    pub fn start(chain: &ChainHandle, p2p: &cairn_p2p::P2p, shutdown: CancellationToken) -> EventHub {
        let (out, _) = broadcast::channel(HUB_EVENTS);
        let hub = EventHub { out: out.clone() };
        let (mut chain, mut txs, mut peers) = (chain.subscribe_events(), chain.subscribe_txs(), p2p.subscribe_events());
        tokio::spawn(async move {
            loop {
                let rendered = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    r = chain.recv() => match r {
                        Ok(e) => Rendered::one(match e { ChainEvent::Block(_) => Kind::Block, ChainEvent::Reorg(_) => Kind::Reorg }, &e),
                        Err(RecvError::Lagged(n)) => {
                            tracing::warn!(target: "rpc", missed = n, "event hub fell behind the chain's events");
                            continue;
                        }
                        Err(RecvError::Closed) => return,
                    },
                    r = peers.recv() => match r {
                        Ok(e) => Rendered::one(Kind::Peer, &e),
                        Err(RecvError::Lagged(_)) => continue,
                        Err(RecvError::Closed) => return,
                    },
                    r = txs.recv() => match r {
                        // Rendered only while someone listens (a batch can be 10,000).
                        Ok(batch) if out.receiver_count() > 0 => Rendered::txs(&batch),
                        Ok(_) | Err(RecvError::Lagged(_)) => continue,
                        Err(RecvError::Closed) => return,
                    },
                };
                // Nobody subscribed is fine.
                let _ = out.send(Arc::new(rendered));
            }
        });
        hub
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<Rendered>> {
        self.out.subscribe()
    }
}

/// Which event types a subscriber wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Types {
    block: bool,
    reorg: bool,
    tx: bool,
    peer: bool,
}

impl Types {
    const ALL: Types = Types { block: true, reorg: true, tx: true, peer: true };

    /// `block,reorg,...`; an unknown or empty name is a 400 `invalid_event_type`.
    pub fn parse(s: &str) -> Result<Types, ApiError> {
        let mut t = Types { block: false, reorg: false, tx: false, peer: false };
        for name in s.split(',') {
            match name.trim() {
                "block" => t.block = true,
                "reorg" => t.reorg = true,
                "tx" => t.tx = true,
                "peer" => t.peer = true,
                other => {
                    return Err(ApiError::bad_request(
                        "invalid_event_type",
                        format!(
                            "unknown event type {:?}: expected a comma-separated list of block, reorg, tx, peer",
                            other.chars().take(40).collect::<String>()
                        ),
                    ));
                }
            }
        }
        Ok(t)
    }

    fn wants(self, kind: Kind) -> bool {
        match kind {
            Kind::Block => self.block,
            Kind::Reorg => self.reorg,
            Kind::Tx => self.tx,
            Kind::Peer => self.peer,
        }
    }

    /// Whether it wants anything but transactions (which may be dropped; the rest may not).
    fn wants_all_of(self) -> bool {
        self.block || self.reorg || self.peer
    }
}

/// One buffered entry.
#[derive(Debug)]
enum Entry {
    Event(Arc<Rendered>),
    Lagged(u64),
}

/// `GET /events`.
#[utoipa::path(get, path = "/events", tag = "node", params(("types" = Option<String>, Query, description = "Comma-separated: block, reorg, tx, peer (default all)")), responses((status = 200, description = "Server-Sent Events: block, reorg, tx, peer, lagged", content_type = "text/event-stream", body = String), (status = 400, description = "Malformed input", body = crate::rpc::openapi::ErrorBody), (status = 503, description = "Too many subscribers", body = crate::rpc::openapi::ErrorBody)))]
pub async fn events(State(s): State<RpcState>, Query(q): Query<EventsQuery>) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let types = q.types.as_deref().map_or(Ok(Types::ALL), Types::parse)?;
    let permit = s.subscribers.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "too_many_subscribers", format!("{MAX_SUBSCRIBERS} event subscribers already; try again later"))
    })?;
    let (tx, rx) = mpsc::channel(CLIENT_BUFFER);
    let events = s.events.subscribe();
    let shutdown = s.shutdown.clone();
    tokio::spawn(async move {
        let _permit = permit;
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = forward(types, events, &tx) => {}
        }
    });
    // A `tx` entry gives one SSE event per transaction, in turn.
    let stream = futures_util::stream::unfold((rx, None::<(Arc<Rendered>, usize)>), |(mut rx, current)| async move {
        let (r, i) = match current {
            Some((r, i)) if i < r.data.len() => (r, i),
            _ => match rx.recv().await? {
                Entry::Event(r) => (r, 0),
                Entry::Lagged(n) => {
                    let e = Event::default().event("lagged").data(json!({"missed_txs": n}).to_string());
                    return Some((Ok(e), (rx, None)));
                }
            },
        };
        let e = match r.data.get(i) {
            Some(d) => Event::default().event(r.kind.name()).data(&**d),
            None => Event::default().comment("empty"),
        };
        Some((Ok(e), (rx, Some((r, i + 1)))))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// Moves the subscriber's events into its buffer until it is gone or must be cut off.
async fn forward(types: Types, mut events: broadcast::Receiver<Arc<Rendered>>, out: &mpsc::Sender<Entry>) {
    let mut missed: u64 = 0;
    loop {
        let r = tokio::select! {
            _ = out.closed() => return,
            r = events.recv() => r,
        };
        let event = match r {
            Ok(e) if !types.wants(e.kind) => continue,
            Ok(e) if e.kind == Kind::Tx && out.capacity() <= TX_ROOM => {
                missed += e.data.len() as u64;
                continue;
            }
            Ok(e) => e,
            // Fell behind the hub's ring: if what it missed may have been a block, a reorg or
            // a peer event, the subscriber is cut off (those are never dropped silently).
            Err(RecvError::Lagged(_)) if types.wants_all_of() => return,
            Err(RecvError::Lagged(n)) => {
                missed += n;
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        if missed > 0 && out.capacity() > TX_ROOM && out.try_send(Entry::Lagged(missed)).is_ok() {
            missed = 0;
        }
        if out.try_send(Entry::Event(event)).is_err() {
            // Full (the client reads too slowly) or gone.
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(height: u64) -> Arc<Rendered> {
        Arc::new(Rendered::one(Kind::Block, &json!({"height": height})))
    }

    /// A subscriber whose buffer is full when a block comes is cut off: the forwarder ends
    /// (dropping its sender, so the stream ends after what is buffered) instead of waiting.
    #[tokio::test]
    async fn a_full_buffer_cuts_the_subscriber_off() {
        let (hub, events) = broadcast::channel(64);
        let (out, mut buffered) = mpsc::channel(4);
        let types = Types::parse("block").unwrap();
        let forwarder = tokio::spawn(async move { forward(types, events, &out).await });
        for h in 0..10 {
            hub.send(block(h)).unwrap();
        }
        tokio::time::timeout(Duration::from_secs(10), forwarder).await.expect("the forwarder ended").unwrap();
        let mut got = Vec::new();
        while let Some(Entry::Event(e)) = buffered.recv().await {
            got.push(e.data[0].to_string());
        }
        assert_eq!(got, ["{\"height\":0}", "{\"height\":1}", "{\"height\":2}", "{\"height\":3}"], "what was buffered, then the end");
    }

    /// Transactions never crowd out blocks: a batch that would leave fewer than TX_ROOM free
    /// entries is counted, told as `lagged` once there is room, and blocks still pass.
    #[tokio::test]
    async fn transactions_past_the_room_are_counted_not_buffered() {
        let (hub, events) = broadcast::channel(64);
        let (out, mut buffered) = mpsc::channel(TX_ROOM + 2);
        let forwarder = tokio::spawn(async move { forward(Types::ALL, events, &out).await });
        let batch = Arc::new(Rendered { kind: Kind::Tx, data: vec!["{}".into(); 3].into_boxed_slice() });
        for _ in 0..5 {
            hub.send(batch.clone()).unwrap();
        }
        hub.send(block(7)).unwrap();
        let mut kinds = Vec::new();
        for _ in 0..3 {
            kinds.push(match tokio::time::timeout(Duration::from_secs(10), buffered.recv()).await.unwrap().unwrap() {
                Entry::Event(e) => e.kind.name().to_string(),
                Entry::Lagged(n) => format!("lagged {n}"),
            });
        }
        assert_eq!(kinds, ["tx", "tx", "block"], "two batches fit above the room, three (9 transactions) were counted");
        // Room again: the count is told before the next event.
        hub.send(block(8)).unwrap();
        let next = tokio::time::timeout(Duration::from_secs(10), buffered.recv()).await.unwrap().unwrap();
        assert!(matches!(next, Entry::Lagged(9)), "{next:?}");
        forwarder.abort();
    }

    #[test]
    fn types_parse_known_names_and_refuse_others() {
        assert_eq!(Types::parse("block,reorg").unwrap(), Types { block: true, reorg: true, tx: false, peer: false });
        assert_eq!(Types::parse("peer").unwrap(), Types { block: false, reorg: false, tx: false, peer: true });
        assert_eq!(Types::parse("block,bogus").unwrap_err().code(), "invalid_event_type");
        assert_eq!(Types::parse("").unwrap_err().code(), "invalid_event_type");
    }
}
