//! `GET /events`: Server-Sent Events of the best chain (`block`, `reorg`), the mempool (`tx`)
//! and peers (`peer`), filtered with `?types=block,reorg`.
//!
//! One forwarding task per subscriber moves events from the node's broadcasts into that
//! subscriber's bounded buffer ([`CLIENT_BUFFER`] entries; a `tx` entry is one accepted batch).
//! The node never waits for a subscriber:
//! - transactions are only buffered while [`TX_ROOM`] entries stay free (else counted and told
//!   as `event: lagged` with `missed_txs` once there is room), so a flood of transactions cannot
//!   crowd out the chain;
//! - a block, reorg or peer event that finds the buffer full cuts the subscriber off (its
//!   stream ends after what is buffered; a client that does not read at all is closed by the
//!   RPC's write timeout, see [`super::listener`]);
//! - at most [`MAX_SUBSCRIBERS`] at once; more get 503 `too_many_subscribers`.
//!
//! Memory per subscriber is bounded by its buffer; the broadcasts' rings are shared.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use cairn_chain::Transaction;
use cairn_p2p::PeerEvent;
use futures_util::Stream;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};

use super::RpcState;
use super::error::ApiError;
use super::extract::Query;
use crate::events::ChainEvent;

/// Subscribers at once.
pub const MAX_SUBSCRIBERS: usize = 1024;
/// Entries buffered per subscriber.
pub const CLIENT_BUFFER: usize = 256;
/// Free entries a `tx` batch leaves for the chain and peer events.
pub const TX_ROOM: usize = 64;
/// How often an idle stream sends a comment (keeps proxies from closing it, finds dead
/// clients).
const KEEP_ALIVE: Duration = Duration::from_secs(15);

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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    #[serde(default)]
    types: Option<String>,
}

/// One buffered entry.
enum Entry {
    Chain(ChainEvent),
    Peer(PeerEvent),
    Txs(Arc<[Transaction]>),
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
    let chain = (types.block || types.reorg).then(|| s.chain.subscribe_events());
    let txs = types.tx.then(|| s.chain.subscribe_txs());
    let peers = types.peer.then(|| s.p2p.subscribe_events());
    let shutdown = s.shutdown.clone();
    tokio::spawn(async move {
        let _permit = permit;
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = forward(types, chain, txs, peers, &tx) => {}
        }
    });
    // A batch of transactions is rendered one event at a time (batches are shared with every
    // other subscriber; the rendered text is not).
    let stream = futures_util::stream::unfold((rx, None::<(Arc<[Transaction]>, usize)>), |(mut rx, batch)| async move {
        if let Some((b, i)) = batch
            && let Some(t) = b.get(i)
        {
            let e = tx_event(t);
            return Some((Ok(e), (rx, Some((b, i + 1)))));
        }
        let e = match rx.recv().await? {
            Entry::Txs(b) => {
                let e = b.first().map(tx_event).unwrap_or_else(|| Event::default().comment("empty"));
                return Some((Ok(e), (rx, Some((b, 1)))));
            }
            other => render(other),
        };
        Some((Ok(e), (rx, None)))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// Moves events into the subscriber's buffer until it is gone or must be cut off.
async fn forward(
    types: Types,
    mut chain: Option<broadcast::Receiver<ChainEvent>>,
    mut txs: Option<broadcast::Receiver<Arc<[Transaction]>>>,
    mut peers: Option<broadcast::Receiver<PeerEvent>>,
    out: &mpsc::Sender<Entry>,
) {
    let mut missed: u64 = 0;
    loop {
        let entry = tokio::select! {
            _ = out.closed() => return,
            r = recv(&mut chain) => match r {
                Ok(e) if (e.kind() == "block" && types.block) || (e.kind() == "reorg" && types.reorg) => Entry::Chain(e),
                Ok(_) => continue,
                // Fell behind the node's own ring: events are lost, so is the subscriber.
                Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return,
            },
            r = recv(&mut peers) => match r {
                Ok(e) => Entry::Peer(e),
                Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return,
            },
            r = recv(&mut txs) => match r {
                Ok(batch) => {
                    if out.capacity() <= TX_ROOM {
                        missed += batch.len() as u64;
                        continue;
                    }
                    Entry::Txs(batch)
                }
                Err(RecvError::Lagged(n)) => {
                    missed += n;
                    continue;
                }
                Err(RecvError::Closed) => return,
            },
        };
        if missed > 0 && out.capacity() > TX_ROOM && out.try_send(Entry::Lagged(missed)).is_ok() {
            missed = 0;
        }
        if out.try_send(entry).is_err() {
            // Full (the client reads too slowly) or gone.
            return;
        }
    }
}

/// The next message of an optional subscription (never, when not subscribed).
async fn recv<T: Clone>(r: &mut Option<broadcast::Receiver<T>>) -> Result<T, RecvError> {
    match r {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

fn event(name: &str, data: &impl serde::Serialize) -> Event {
    Event::default().event(name).data(serde_json::to_string(data).unwrap_or_default())
}

/// `event: tx`.
fn tx_event(t: &Transaction) -> Event {
    event("tx", &json!({"txid": t.id(), "from": t.from.address(), "to": t.to, "amount": t.amount, "fee": t.fee, "nonce": t.nonce}))
}

/// The SSE event of a buffered chain, peer or lagged entry.
fn render(entry: Entry) -> Event {
    match entry {
        Entry::Chain(e) => event(e.kind(), &e),
        Entry::Peer(e) => event("peer", &e),
        Entry::Lagged(n) => event("lagged", &json!({"missed_txs": n})),
        Entry::Txs(b) => b.first().map(tx_event).unwrap_or_else(|| Event::default().comment("empty")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(height: u64) -> ChainEvent {
        let h = cairn_chain::Hash([height as u8; 32]);
        ChainEvent::Block(crate::events::BlockEvent { height, hash: h, prev_hash: h, txs: 0, farmer: cairn_chain::Address([0; 32]), timestamp: 0 })
    }

    /// A subscriber whose buffer is full when a block comes is cut off: the forwarder ends
    /// (dropping its sender, so the stream ends after what is buffered) instead of waiting.
    #[tokio::test]
    async fn a_full_buffer_cuts_the_subscriber_off() {
        let (chain_tx, chain_rx) = broadcast::channel(64);
        let (out, mut buffered) = mpsc::channel(4);
        let types = Types::parse("block").unwrap();
        let forwarder = tokio::spawn(async move { forward(types, Some(chain_rx), None, None, &out).await });
        for h in 0..10 {
            chain_tx.send(block(h)).unwrap();
        }
        tokio::time::timeout(Duration::from_secs(10), forwarder).await.expect("the forwarder ended").unwrap();
        let mut got = Vec::new();
        while let Some(Entry::Chain(ChainEvent::Block(b))) = buffered.recv().await {
            got.push(b.height);
        }
        assert_eq!(got, [0, 1, 2, 3], "what was buffered, then the end");
    }

    /// Transactions never crowd out blocks: a batch that would leave fewer than TX_ROOM free
    /// entries is counted, and told as `lagged` once there is room, and blocks still pass.
    #[tokio::test]
    async fn transactions_past_the_room_are_counted_not_buffered() {
        let (chain_tx, chain_rx) = broadcast::channel(64);
        let (txs_tx, txs_rx) = broadcast::channel::<Arc<[Transaction]>>(64);
        let (out, mut buffered) = mpsc::channel(TX_ROOM + 2);
        let forwarder = tokio::spawn(async move { forward(Types::ALL, Some(chain_rx), Some(txs_rx), None, &out).await });
        let batch: Arc<[Transaction]> = Arc::from(Vec::new());
        for _ in 0..5 {
            txs_tx.send(batch.clone()).unwrap();
        }
        // Two batches fit above the room; the rest are counted (as batches of 0 here).
        tokio::time::sleep(Duration::from_millis(50)).await;
        chain_tx.send(block(7)).unwrap();
        let mut kinds = Vec::new();
        for _ in 0..3 {
            kinds.push(match tokio::time::timeout(Duration::from_secs(10), buffered.recv()).await.unwrap().unwrap() {
                Entry::Txs(_) => "tx",
                Entry::Chain(_) => "block",
                Entry::Lagged(_) => "lagged",
                Entry::Peer(_) => "peer",
            });
        }
        assert_eq!(kinds, ["tx", "tx", "block"]);
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
