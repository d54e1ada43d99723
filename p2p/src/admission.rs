//! Who may start a handshake: the checks the accept path runs on a new inbound connection
//! before any TLS work, as a sans-IO policy (addresses and an injected `now` in, a
//! [`Decision`] out).
//!
//! In order:
//! 1. a banned address (an IP ban, or a ban of its network) is refused before TLS;
//! 2. the default loopback addresses (`127.0.0.1`, `::1`) are exempt from the rest when
//!    [`Limits::exempt_loopback`] is set (the default), so a devnet of many nodes on one
//!    machine works; other `127.x.y.z` addresses count like any host, so one machine can
//!    still play many distinct hosts (tests, a hostile client beside honest nodes);
//! 3. an address QUIC has not validated is asked to `retry` first (one round trip, no TLS, no
//!    state kept): the rate limit then counts the real sender, so nobody can spend another
//!    host's budget by spoofing its address;
//! 4. a token bucket per IP ([`Limits::rate`] per [`Limits::period`], burst [`Limits::burst`])
//!    refuses a handshake flood before TLS;
//! 5. at most [`Limits::max_per_ip`] inbound connections (handshakes under way included) from
//!    one IP and [`Limits::max_per_subnet`] from one subnet ([`crate::netgroup::subnet`]):
//!    these are refused with the typed `too_many_from_address` close, which needs the TLS
//!    handshake (QUIC can carry an application's reason only after it), a cost the rate
//!    limit bounds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::handshake::Refusal;
use crate::netgroup::{canonical, subnet};
use crate::ratelimit::TokenBucket;
use crate::wire::RejectReason;

/// Most IPs whose handshake rate is tracked. When full, the bucket with the most tokens left
/// (the least active address) is forgotten: it is the one whose loss forgives least.
pub const MAX_RATE_BUCKETS: usize = 8192;

/// The limits (from [`crate::config::P2pConfig`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most inbound connections from one IP.
    pub max_per_ip: usize,
    /// Most inbound connections from one subnet (IPv4 /24, IPv6 /64).
    pub max_per_subnet: usize,
    /// New inbound handshakes allowed per IP per `period`.
    pub rate: u32,
    /// The rate's period.
    pub period: Duration,
    /// Handshakes an IP may start at once.
    pub burst: u32,
    /// `127.0.0.1` and `::1` skip the limits (and are never banned automatically).
    pub exempt_loopback: bool,
}

/// What to do with a new inbound connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go on with the handshake; the IP's count holds it until [`Admission::ended`].
    Accept,
    /// Ask the client to validate its address first (QUIC `retry`).
    Retry,
    /// Refuse before any TLS work (QUIC `CONNECTION_REFUSED`; no reason travels).
    Refuse(Refusal),
    /// Complete TLS only to close with this typed reason.
    Close(Refusal),
}

/// The handshake-rate buckets and the handshakes under way, per IP.
pub struct Admission {
    limits: Limits,
    buckets: HashMap<IpAddr, TokenBucket>,
    handshaking: HashMap<IpAddr, usize>,
}

impl Admission {
    /// No history yet.
    pub fn new(limits: Limits) -> Self {
        Admission { limits, buckets: HashMap::new(), handshaking: HashMap::new() }
    }

    /// Whether `ip` skips the limits and automatic IP bans.
    pub fn exempt(&self, ip: IpAddr) -> bool {
        self.limits.exempt_loopback && crate::netgroup::is_localhost(ip)
    }

    /// Judges a new inbound connection from `ip`. `validated`: QUIC has proven the client owns
    /// its address (or can no longer ask it to). `banned`: the address is banned.
    /// `connected`: the IPs of the inbound peers connected now.
    pub fn incoming(&mut self, ip: IpAddr, validated: bool, banned: bool, connected: impl Iterator<Item = IpAddr>, now: Instant) -> Decision {
        let ip = canonical(ip);
        if banned {
            return Decision::Refuse(Refusal::new(RejectReason::Banned, format!("address {ip} is banned")));
        }
        if self.exempt(ip) {
            return Decision::Accept;
        }
        if !validated {
            return Decision::Retry;
        }
        if !self.take_token(ip, now) {
            return Decision::Refuse(Refusal::new(
                RejectReason::TooManyFromAddress,
                format!("more than {} new connections from {ip} per {}s", self.limits.rate, self.limits.period.as_secs()),
            ));
        }
        let (mut from_ip, mut from_subnet) = (0, 0);
        let net = subnet(ip);
        // Exempt peers (a devnet on 127.0.0.1) do not use up their neighbours' budgets.
        let exempt = self.limits.exempt_loopback;
        let counted = connected.map(canonical).filter(|c| !(exempt && crate::netgroup::is_localhost(*c)));
        for c in counted.chain(self.handshaking.iter().flat_map(|(h, n)| std::iter::repeat_n(*h, *n))) {
            from_ip += usize::from(c == ip);
            from_subnet += usize::from(net.contains(&c));
        }
        if from_ip >= self.limits.max_per_ip {
            return Decision::Close(Refusal::new(
                RejectReason::TooManyFromAddress,
                format!("{from_ip} inbound connections from {ip}, at most {}", self.limits.max_per_ip),
            ));
        }
        if from_subnet >= self.limits.max_per_subnet {
            return Decision::Close(Refusal::new(
                RejectReason::TooManyFromAddress,
                format!("{from_subnet} inbound connections from {net}, at most {}", self.limits.max_per_subnet),
            ));
        }
        *self.handshaking.entry(ip).or_default() += 1;
        Decision::Accept
    }

    /// A handshake [`Decision::Accept`]ed for `ip` ended (the peer joined the table, where it
    /// is counted from now on, or it failed).
    pub fn ended(&mut self, ip: IpAddr) {
        let ip = canonical(ip);
        if let Some(n) = self.handshaking.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.handshaking.remove(&ip);
            }
        }
    }

    fn take_token(&mut self, ip: IpAddr, now: Instant) -> bool {
        let l = &self.limits;
        if !self.buckets.contains_key(&ip) && self.buckets.len() >= MAX_RATE_BUCKETS {
            self.buckets.retain(|_, b| !b.is_full(now));
            if self.buckets.len() >= MAX_RATE_BUCKETS
                && let Some(k) = self.buckets.keys().next().copied()
            {
                // Every address used its budget recently: forget an arbitrary one (HashMap
                // order is randomised per process, so an attacker cannot aim it).
                self.buckets.remove(&k);
            }
        }
        self.buckets.entry(ip).or_insert_with(|| TokenBucket::new(l.rate, l.period, l.burst, now)).take(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits { max_per_ip: 4, max_per_subnet: 16, rate: 10, period: Duration::from_secs(60), burst: 20, exempt_loopback: true }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn reason(d: &Decision) -> Option<RejectReason> {
        match d {
            Decision::Refuse(r) | Decision::Close(r) => Some(r.reason),
            _ => None,
        }
    }

    #[test]
    fn bans_first_then_the_address_is_validated() {
        let mut a = Admission::new(limits());
        let t = Instant::now();
        let d = a.incoming(ip("10.0.0.1"), true, true, std::iter::empty(), t);
        assert!(matches!(d, Decision::Refuse(ref r) if r.reason == RejectReason::Banned), "{d:?}");
        assert_eq!(a.incoming(ip("10.0.0.1"), false, false, std::iter::empty(), t), Decision::Retry);
        assert_eq!(a.incoming(ip("10.0.0.1"), true, false, std::iter::empty(), t), Decision::Accept);
        // The default loopback address skips the limits (not a ban); other 127.x hosts do not.
        assert_eq!(a.incoming(ip("127.0.0.1"), false, false, std::iter::empty(), t), Decision::Accept);
        assert!(matches!(a.incoming(ip("127.0.0.1"), true, true, std::iter::empty(), t), Decision::Refuse(_)));
        assert_eq!(a.incoming(ip("127.0.0.2"), false, false, std::iter::empty(), t), Decision::Retry);
        assert!(!a.exempt(ip("127.0.0.2")));
        assert!(!Admission::new(Limits { exempt_loopback: false, ..limits() }).exempt(ip("127.0.0.1")));
        assert!(a.exempt(ip("::1")) && a.exempt(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn at_most_four_from_one_ip_and_sixteen_from_one_subnet() {
        let mut a = Admission::new(Limits { exempt_loopback: false, ..limits() });
        let t = Instant::now();
        // Two connected, two handshaking: the fifth is refused with the typed close.
        let connected = [ip("127.0.0.2"), ip("127.0.0.2")];
        assert_eq!(a.incoming(ip("127.0.0.2"), true, false, connected.into_iter(), t), Decision::Accept);
        assert_eq!(a.incoming(ip("127.0.0.2"), true, false, connected.into_iter(), t), Decision::Accept);
        let d = a.incoming(ip("127.0.0.2"), true, false, connected.into_iter(), t);
        assert!(matches!(&d, Decision::Close(r) if r.reason == RejectReason::TooManyFromAddress && r.detail.contains("127.0.0.2")), "{d:?}");
        // A handshake ends: room again.
        a.ended(ip("127.0.0.2"));
        assert_eq!(a.incoming(ip("127.0.0.2"), true, false, connected.into_iter(), t), Decision::Accept);
        // The subnet: 16 from 10.1.2.0/24 over many IPs, then no more from that /24.
        let mut a = Admission::new(limits());
        let many: Vec<IpAddr> = (1..=16).map(|i| ip(&format!("10.1.2.{i}"))).collect();
        let local = std::iter::repeat_n(ip("127.0.0.1"), 40);
        assert_eq!(a.incoming(ip("127.0.0.2"), true, false, local, t), Decision::Accept, "exempt peers are not counted against a neighbour");
        let d = a.incoming(ip("10.1.2.200"), true, false, many.clone().into_iter(), t);
        assert!(matches!(&d, Decision::Close(r) if r.detail.contains("10.1.2.0/24")), "{d:?}");
        assert_eq!(a.incoming(ip("10.1.3.1"), true, false, many.into_iter(), t), Decision::Accept, "another subnet");
    }

    #[test]
    fn a_handshake_flood_is_refused_before_tls_at_the_rate() {
        let mut a = Admission::new(limits());
        let t = Instant::now();
        let mut accepted = 0;
        for _ in 0..30 {
            let d = a.incoming(ip("10.9.9.9"), true, false, std::iter::empty(), t);
            match d {
                Decision::Accept => {
                    accepted += 1;
                    a.ended(ip("10.9.9.9"));
                }
                Decision::Refuse(r) => assert_eq!(r.reason, RejectReason::TooManyFromAddress),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(accepted, 20, "the burst");
        assert!(matches!(a.incoming(ip("10.9.9.9"), true, false, std::iter::empty(), t + Duration::from_secs(5)), Decision::Refuse(_)));
        assert_eq!(a.incoming(ip("10.9.9.9"), true, false, std::iter::empty(), t + Duration::from_secs(6)), Decision::Accept, "10 a minute");
        assert_eq!(a.incoming(ip("10.9.9.10"), true, false, std::iter::empty(), t), Decision::Accept, "another IP has its own budget");
        assert_eq!(reason(&Decision::Accept), None);
    }

    #[test]
    fn the_rate_table_stays_bounded() {
        let mut a = Admission::new(limits());
        let t = Instant::now();
        for i in 0..(MAX_RATE_BUCKETS as u32 + 100) {
            let addr = IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
            a.incoming(addr, true, false, std::iter::empty(), t);
            a.ended(addr);
        }
        assert!(a.buckets.len() <= MAX_RATE_BUCKETS);
        assert!(a.handshaking.is_empty());
    }
}
