//! The RPC's TCP listener: at most [`MAX_CONNECTIONS`] connections at once (past that, new
//! ones wait in the kernel's listen backlog until one closes: each open connection costs
//! ~100 KB, measured), and every connection gets a write timeout, so a client that stops
//! reading (an `/events` subscriber that never reads, a response nobody drains) is closed
//! after [`WRITE_TIMEOUT`] without progress instead of holding its connection for ever.
//! hyper itself has neither; the timer lives in the connection's I/O instead.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// How long a write may make no progress before the connection is closed.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(20);
/// Open RPC connections at once: every event subscriber ([`super::events::MAX_SUBSCRIBERS`])
/// and room for others beside them.
pub const MAX_CONNECTIONS: usize = super::events::MAX_SUBSCRIBERS + 256;

/// A [`TcpListener`] whose connections time out stalled writes.
pub struct TimedListener {
    inner: TcpListener,
    timeout: Duration,
    slots: Arc<Semaphore>,
}

impl TimedListener {
    /// Wraps a bound listener: at most `max` connections at once.
    pub fn new(inner: TcpListener, timeout: Duration, max: usize) -> TimedListener {
        TimedListener { inner, timeout, slots: Arc::new(Semaphore::new(max)) }
    }
}

impl axum::serve::Listener for TimedListener {
    type Io = TimedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TimedStream, SocketAddr) {
        // The semaphore is never closed, so this waits for a slot and never fails.
        let slot = loop {
            if let Ok(p) = self.slots.clone().acquire_owned().await {
                break p;
            }
        };
        loop {
            match self.inner.accept().await {
                Ok((s, a)) => {
                    let _ = s.set_nodelay(true);
                    return (TimedStream { inner: s, timeout: self.timeout, stalled: None, _slot: slot }, a);
                }
                // Out of file descriptors and the like: wait a little rather than spin (what
                // axum's own TcpListener does).
                Err(e) => {
                    tracing::debug!(target: "rpc", "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A connection whose writes fail with `TimedOut` after making no progress for its timeout.
pub struct TimedStream {
    inner: TcpStream,
    timeout: Duration,
    /// Armed while a write is pending.
    stalled: Option<Pin<Box<Sleep>>>,
    /// Its place among the listener's connections, given back when it closes.
    _slot: OwnedSemaphorePermit,
}

impl TimedStream {
    /// Runs a write; a pending one arms the timer, progress disarms it.
    fn timed<T>(&mut self, cx: &mut Context<'_>, op: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match op(Pin::new(&mut self.inner), cx) {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let timeout = self.timeout;
                let sleep = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + timeout)));
                ready!(sleep.as_mut().poll(cx));
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "client not reading")))
            }
        }
    }
}

impl AsyncRead for TimedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TimedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.timed(cx, |s, cx| s.poll_write(cx, buf))
    }
    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        self.timed(cx, |s, cx| s.poll_write_vectored(cx, bufs))
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.timed(cx, |s, cx| s.poll_flush(cx))
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::serve::Listener;
    use tokio::io::AsyncWriteExt;

    /// A peer that never reads: the writer's buffers fill, then the write fails with
    /// `TimedOut` once the timeout passes without progress.
    #[tokio::test]
    async fn a_write_to_a_peer_that_never_reads_times_out() {
        let mut l = TimedListener::new(TcpListener::bind("127.0.0.1:0").await.unwrap(), Duration::from_millis(300), 4);
        let addr = l.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (mut s, _) = l.accept().await;
        let chunk = vec![0u8; 64 * 1024];
        let started = std::time::Instant::now();
        let err = loop {
            if let Err(e) = s.write_all(&chunk).await {
                break e;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "writes never stalled");
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    /// Past the bound, a connection waits for one to close.
    #[tokio::test]
    async fn connections_past_the_bound_wait_for_a_slot() {
        let mut l = TimedListener::new(TcpListener::bind("127.0.0.1:0").await.unwrap(), WRITE_TIMEOUT, 2);
        let addr = l.local_addr().unwrap();
        let _clients: Vec<TcpStream> = futures_util::future::join_all((0..3).map(|_| TcpStream::connect(addr))).await.into_iter().map(Result::unwrap).collect();
        let first = l.accept().await;
        let _second = l.accept().await;
        assert!(tokio::time::timeout(Duration::from_millis(200), l.accept()).await.is_err(), "a third while two are open");
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), l.accept()).await.expect("a slot freed by a close");
    }
}
