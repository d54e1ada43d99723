//! The simulated network: connections between nodes, each a pair of ordered byte streams (one
//! QUIC stream each way, as the real transport has), with latency, bandwidth, loss and
//! partitions.
//!
//! # The link model
//! - **Latency**: per pair of nodes, drawn once from the range (the same after a reconnect).
//! - **Bandwidth**: a message of `n` bytes occupies its direction of the link and its sender's
//!   uplink for `n / min(link, uplink)` seconds; messages queue behind each other, so a
//!   megabyte block sent to sixteen peers leaves over seconds, as it does from a real node.
//! - **Loss**: the transport is reliable QUIC, so a lost packet is not a lost message but a
//!   retransmission: a message of `p` packets (1,200 bytes each) sees at least one loss with
//!   probability `1 - (1 - loss)^p`, and then arrives one retransmission later (three one-way
//!   latencies: the gap is noticed about one round trip after the loss, and the repair takes
//!   one more way). Arrivals on a stream stay in order, so a stall holds back what follows it
//!   (head-of-line blocking on the one stream, as on the real connection).
//! - **Partitions**: nodes in different groups reach each other not at all: messages and
//!   close notices are dropped. The connections are not cut by the simulator: the real
//!   `PeerProtocol`'s ping timeout ends them (as QUIC's idle timeout would), and dials across
//!   time out in the real `Handshake`. This is loss beyond any threshold, which QUIC turns
//!   into a dead connection.

use std::collections::HashMap;

use rand::Rng;

use crate::engine::{MS, Time, mix};

/// One connection's id.
pub type ConnId = u64;

/// Link settings.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// One-way latency range (drawn per pair of nodes).
    pub latency: (Time, Time),
    /// Bytes per second of one link direction.
    pub link_bw: f64,
    /// Bytes per second a node can send in all (shared by its links).
    pub uplink_bw: f64,
    /// Probability that a 1,200-byte packet is lost (and retransmitted).
    pub loss: f64,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig { latency: (50 * MS, 200 * MS), link_bw: 50e6 / 8.0, uplink_bw: 100e6 / 8.0, loss: 0.0 }
    }
}

/// One connection: `ends[0]` dialled `ends[1]`; direction 0 is dialer → listener.
pub struct Conn {
    /// Dialer, listener.
    pub ends: [usize; 2],
    /// One-way latency.
    pub latency: Time,
    free_at: [Time; 2],
    last_arrival: [Time; 2],
}

/// Every connection, each node's uplink and partition group.
pub struct Net {
    /// The settings.
    pub cfg: NetConfig,
    conns: HashMap<ConnId, Conn>,
    next: ConnId,
    uplink_free: Vec<Time>,
    group: Vec<u32>,
    seed: u64,
}

impl Net {
    /// A network of `n` nodes, not partitioned.
    pub fn new(cfg: NetConfig, n: usize, seed: u64) -> Net {
        Net { cfg, conns: HashMap::new(), next: 1, uplink_free: vec![0; n], group: vec![0; n], seed }
    }

    /// Room for one more node.
    pub fn add_node(&mut self) {
        self.uplink_free.push(0);
        self.group.push(0);
    }

    /// One-way latency between two nodes.
    pub fn latency(&self, a: usize, b: usize) -> Time {
        let (lo, hi) = self.cfg.latency;
        let key = ((a.min(b) as u64) << 32) | b.max(a) as u64;
        lo + mix(self.seed ^ 0x6c61_7465, key) % (hi - lo).max(1)
    }

    /// Opens a connection from `dialer` to `listener`. The QUIC and TLS handshake take one
    /// round trip before the first message leaves.
    pub fn open(&mut self, dialer: usize, listener: usize, now: Time) -> ConnId {
        let id = self.next;
        self.next += 1;
        let latency = self.latency(dialer, listener);
        let ready = now + 2 * latency;
        self.conns.insert(id, Conn { ends: [dialer, listener], latency, free_at: [ready, ready], last_arrival: [0, 0] });
        id
    }

    /// The connection, if open.
    pub fn conn(&self, id: ConnId) -> Option<&Conn> {
        self.conns.get(&id)
    }

    /// Forgets a connection (either end closed it).
    pub fn close(&mut self, id: ConnId) {
        self.conns.remove(&id);
    }

    /// Whether two nodes can reach each other now.
    pub fn reachable(&self, a: usize, b: usize) -> bool {
        self.group.get(a) == self.group.get(b)
    }

    /// Puts nodes in partition groups (`groups[i]` for node `i`; all equal heals).
    pub fn set_groups(&mut self, groups: Vec<u32>) {
        self.group = groups;
    }

    /// Sends `size` bytes from `from` on `conn` at `at`: the receiver and when it has them, or
    /// `None` if they never arrive (closed connection, partition).
    pub fn route(&mut self, conn: ConnId, from: usize, size: usize, at: Time, rng: &mut impl Rng) -> Option<(usize, Time)> {
        let c = self.conns.get_mut(&conn)?;
        let dir = usize::from(c.ends[0] != from);
        let to = c.ends[1 - dir];
        if self.group.get(from) != self.group.get(to) {
            return None;
        }
        let bw = self.cfg.link_bw.min(self.cfg.uplink_bw);
        let busy = (size as f64 / bw * 1e9) as Time;
        let up = &mut self.uplink_free[from];
        let depart = at.max(c.free_at[dir]).max(*up);
        c.free_at[dir] = depart + busy;
        *up = depart + busy;
        let mut arrive = depart + busy + c.latency;
        if self.cfg.loss > 0.0 {
            let packets = (size / 1200 + 1) as i32;
            let p_any = 1.0 - (1.0 - self.cfg.loss).powi(packets);
            if rng.gen_bool(p_any.clamp(0.0, 1.0)) {
                arrive += 3 * c.latency;
            }
        }
        arrive = arrive.max(c.last_arrival[dir]);
        c.last_arrival[dir] = arrive;
        Some((to, arrive))
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::engine::SECOND;

    fn net(loss: f64) -> Net {
        let cfg = NetConfig { latency: (100 * MS, 100 * MS + 1), link_bw: 1e6, uplink_bw: 1e6, loss };
        Net::new(cfg, 3, 1)
    }

    #[test]
    fn messages_queue_behind_each_other_and_arrive_in_order() {
        let mut n = net(0.0);
        let mut rng = StdRng::seed_from_u64(1);
        let c = n.open(0, 1, 0);
        // Ready after one round trip; a 1 MB message then takes a second on a 1 MB/s link.
        let (to, first) = n.route(c, 0, 1_000_000, 0, &mut rng).unwrap();
        assert_eq!(to, 1);
        assert_eq!(first, 200 * MS + SECOND + 100 * MS);
        let (_, second) = n.route(c, 0, 10, 0, &mut rng).unwrap();
        assert!(second > first, "a small message waits behind the big one");
        // The uplink is shared: a message to another peer waits too.
        let c2 = n.open(0, 2, 0);
        let (_, other) = n.route(c2, 0, 10, 0, &mut rng).unwrap();
        assert!(other >= first - 100 * MS);
    }

    #[test]
    fn partitions_drop_and_loss_delays_but_keeps_order() {
        let mut n = net(0.5);
        let mut rng = StdRng::seed_from_u64(2);
        let c = n.open(0, 1, 0);
        let mut last = 0;
        for _ in 0..50 {
            let (_, t) = n.route(c, 0, 5_000, 0, &mut rng).unwrap();
            assert!(t >= last, "arrivals stay in order");
            last = t;
        }
        n.set_groups(vec![0, 1, 0]);
        assert!(n.route(c, 0, 10, 0, &mut rng).is_none());
        assert!(!n.reachable(0, 1));
        n.close(c);
        n.set_groups(vec![0, 0, 0]);
        assert!(n.route(c, 0, 10, 0, &mut rng).is_none(), "closed");
    }
}
