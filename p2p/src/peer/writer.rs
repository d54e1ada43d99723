//! A peer's writer: sends the peer task's messages in order from a task of its own, so the
//! peer task keeps reading (and answering pings) while a send waits for the peer's
//! flow-control window.
//!
//! With one task doing both, two nodes each sending the other more than a stream window while
//! neither read — both answering the other's `get_txs` under load — waited on each other until
//! the send timeout cut the link: under a sustained relay load that dropped honest links.
//!
//! # Bounds
//! At most [`OUTBOX_BYTES`] of encoded messages wait (a larger frame waits alone). When the
//! outbox is full, gossip (`tx_ids`, `get_txs`) and answers to `get_txs` are dropped (the
//! relay asks again elsewhere, and re-announces): the peer task never waits on them, so two
//! nodes answering each other's requests faster than the other reads cannot block each
//! other's reading. Other messages wait for room — the peer is not reading what it asked
//! for. A frame that takes longer than the ping timeout to leave ends the connection as
//! `peer_timeout` ("peer not reading").

use std::time::Duration;

use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::wire::{Message, WireError, WireTx, encode};

/// Encoded bytes that may wait in one peer's outbox (a few hundred `transactions` answers, or
/// a few hundred blocks of a small chain).
pub(crate) const OUTBOX_BYTES: usize = 8 << 20;

/// Most messages waiting in one peer's outbox, whatever their size.
const OUTBOX_MESSAGES: usize = 4096;

/// Why the writer stopped sending.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// A frame did not leave within the ping timeout: the peer is not reading.
    Timeout(&'static str),
    /// The stream failed (the peer went away), or the message was too large to send.
    Wire(WireError),
    /// The writer was stopped, or ended without saying why.
    Stopped,
}

/// One message waiting, holding its share of the byte budget until it is written.
struct Queued {
    body: Bytes,
    kind: &'static str,
    _room: OwnedSemaphorePermit,
}

/// The peer task's handle on its writer.
pub(crate) struct Outbox {
    queue: mpsc::Sender<Queued>,
    room: Arc<Semaphore>,
    limit: usize,
    stop: CancellationToken,
    task: Option<JoinHandle<(WireTx, Result<(), WriteError>)>>,
}

impl Outbox {
    /// Starts the writer on `tx`; each frame must leave within `within`.
    pub(crate) fn start(tx: WireTx, within: Duration) -> Outbox {
        let (queue, rx) = mpsc::channel(OUTBOX_MESSAGES);
        let stop = CancellationToken::new();
        let limit = tx.limit();
        let task = tokio::spawn(write_loop(tx, rx, stop.clone(), within));
        Outbox { queue, room: Arc::new(Semaphore::new(OUTBOX_BYTES)), limit, stop, task: Some(task) }
    }

    /// Queues a message, waiting for room. `Err` once the writer has ended (with its reason).
    pub(crate) async fn send(&mut self, m: &Message) -> Result<(), WriteError> {
        let body = encode(m);
        if body.len() > self.limit {
            return Err(WriteError::Wire(WireError::FrameTooLarge(self.limit)));
        }
        let share = body.len().clamp(1, OUTBOX_BYTES) as u32;
        let Ok(room) = self.room.clone().acquire_many_owned(share).await else { return Err(WriteError::Stopped) };
        if self.queue.send(Queued { body, kind: m.kind(), _room: room }).await.is_err() {
            return Err(self.ended().await);
        }
        Ok(())
    }

    /// Queues a message only if the outbox has room now: `Ok(false)` when it is full (the
    /// message is dropped). For gossip and its answers, which a full outbox must never make
    /// the peer task wait for: two nodes each waiting for room to answer the other, neither
    /// reading, would deadlock again, only later.
    pub(crate) fn try_send(&mut self, m: &Message) -> Result<bool, WriteError> {
        let body = encode(m);
        if body.len() > self.limit {
            return Err(WriteError::Wire(WireError::FrameTooLarge(self.limit)));
        }
        let share = body.len().clamp(1, OUTBOX_BYTES) as u32;
        let Ok(room) = self.room.clone().try_acquire_many_owned(share) else { return Ok(false) };
        match self.queue.try_send(Queued { body, kind: m.kind(), _room: room }) {
            Ok(()) => Ok(true),
            Err(mpsc::error::TrySendError::Full(_)) => Ok(false),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(WriteError::Stopped),
        }
    }

    /// Waits until the writer ends, and says why (pending forever once that was said).
    pub(crate) async fn ended(&mut self) -> WriteError {
        let Some(task) = self.task.as_mut() else { return std::future::pending().await };
        let r = task.await;
        self.task = None;
        match r {
            Ok((_, Err(e))) => e,
            _ => WriteError::Stopped,
        }
    }

    /// Stops the writer (what was still queued is dropped) and gives back the sending half,
    /// for last words; `None` if the writer had failed.
    pub(crate) async fn stop(mut self) -> Option<WireTx> {
        self.stop.cancel();
        let task = self.task.take()?;
        match task.await {
            Ok((tx, Ok(()))) => Some(tx),
            _ => None,
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Writes queued messages in order until stopped, the queue closes, or a send fails.
async fn write_loop(mut tx: WireTx, mut queue: mpsc::Receiver<Queued>, stop: CancellationToken, within: Duration) -> (WireTx, Result<(), WriteError>) {
    loop {
        let q = tokio::select! {
            biased;
            _ = stop.cancelled() => return (tx, Ok(())),
            q = queue.recv() => match q {
                Some(q) => q,
                None => return (tx, Ok(())),
            },
        };
        // Dropping the send part-way (stop) leaves the frame whole in the buffer: last words
        // still follow a whole frame.
        let r = tokio::select! {
            biased;
            _ = stop.cancelled() => return (tx, Ok(())),
            r = tokio::time::timeout(within, tx.send_body(q.body)) => r,
        };
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return (tx, Err(WriteError::Wire(e))),
            Err(_) => return (tx, Err(WriteError::Timeout(q.kind))),
        }
    }
}
