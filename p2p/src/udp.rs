//! The endpoint's UDP socket, read one datagram at a time (no receive offload).
//!
//! quinn sizes an endpoint's receive buffer for the socket's generic receive offload (GRO):
//! 32 reads of up to 64 coalesced 1,472-byte segments, 3 MiB held for the node's life, an
//! eighth of an idle node's memory and ~5% of a syncing one's. A node's traffic (blocks and
//! transactions, a few MB/s) gains nothing measurable from GRO, whose point is fewer system
//! calls at gigabits, so the socket turns it off and tells quinn it receives one segment per
//! datagram: the buffer is 46 KiB. Sending keeps segmentation offload (GSO), which costs no
//! memory.

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, Runtime, UdpPoller};

/// `socket`, wrapped for `runtime` with receive offload off.
pub(crate) fn wrap(socket: UdpSocket, runtime: &Arc<dyn Runtime>) -> io::Result<Arc<dyn AsyncUdpSocket>> {
    // The same socket under another descriptor, to set the option after quinn has set its own.
    let handle = socket.try_clone()?;
    let inner = runtime.wrap_udp_socket(socket)?;
    gro_off(&handle)?;
    Ok(Arc::new(NoGro { inner }))
}

/// Turns off UDP generic receive offload: each read returns one datagram.
#[cfg(target_os = "linux")]
fn gro_off(socket: &UdpSocket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let off: libc::c_int = 0;
    // SAFETY: `socket` owns a valid descriptor for the whole call; the option value is a
    // c_int that lives across the call, and its size is passed with it.
    let r = unsafe {
        libc::setsockopt(socket.as_raw_fd(), libc::SOL_UDP, libc::UDP_GRO, (&raw const off).cast(), std::mem::size_of::<libc::c_int>() as libc::socklen_t)
    };
    // A kernel without UDP GRO (before 5.0) never coalesces: nothing to turn off.
    if r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::ENOPROTOOPT) { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Elsewhere nothing to turn off: of the Unix systems, quinn-udp coalesces received
/// datagrams only on Linux.
#[cfg(not(target_os = "linux"))]
fn gro_off(_socket: &UdpSocket) -> io::Result<()> {
    Ok(())
}

/// quinn's socket, reporting one segment per received datagram.
struct NoGro {
    inner: Arc<dyn AsyncUdpSocket>,
}

impl fmt::Debug for NoGro {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoGro").field("inner", &self.inner).finish()
    }
}

impl AsyncUdpSocket for NoGro {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        self.inner.try_send(transmit)
    }

    fn poll_recv(&self, cx: &mut Context, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta]) -> Poll<io::Result<usize>> {
        self.inner.poll_recv(cx, bufs, meta)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        1
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wrapped socket says one segment per datagram (quinn sizes its buffer by it), and on
    /// Linux the kernel has receive offload off, so no read can bring more than that.
    #[tokio::test]
    async fn the_socket_reads_one_datagram_at_a_time() {
        let runtime = quinn::default_runtime().expect("tokio runtime");
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        #[cfg(target_os = "linux")]
        let handle = socket.try_clone().expect("clone");
        let wrapped = wrap(socket, &runtime).expect("wrap");
        assert_eq!(wrapped.max_receive_segments(), 1);
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let mut on: libc::c_int = -1;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: a valid descriptor, and an output buffer of the size passed.
            let r = unsafe { libc::getsockopt(handle.as_raw_fd(), libc::SOL_UDP, libc::UDP_GRO, (&raw mut on).cast(), &mut len) };
            assert!(r != 0 || on == 0, "UDP_GRO is still on ({on})");
        }
    }
}
