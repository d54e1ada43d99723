//! LAN discovery with mDNS (RFC 6762) and DNS-SD (RFC 6763), through the mdns-sd crate.
//!
//! One job: find peers of this chain on the local network and hand their addresses to the
//! dialer. The node advertises [`MDNS_SERVICE_TYPE`] on its P2P port, with TXT records
//! `proto` (protocol version), `chain` (chain ID), `genesis` (genesis hash, hex), `node`
//! (node ID, hex) and, if the node has one, `name` (its human-readable name,
//! [`crate::name`]), and browses for the same service type. An announcement that is our own,
//! malformed, or of another protocol version, chain or genesis is ignored before any dial
//! (logged at debug, counted by reason in `/metrics`). A compatible one goes into the address
//! book pinned to the announced node ID ([`crate::addrbook::AddressBook::announce`]), and the
//! maintenance loop dials it like any other address: within the outbound limits, skipping
//! banned and connected nodes, with backoff. On a clean shutdown the advertisement is
//! withdrawn (goodbye packets), so peers forget this node at once instead of at TTL expiry.
//!
//! # Which address
//! A resolved service lists every address its host announced: possibly 127.0.0.1 (heard on
//! loopback), IPv6 link-local addresses, or addresses of other networks. [`pick_address`]
//! dials one this host can reach, preferring IPv4 in the subnet of the interface the
//! announcement came in on.
//!
//! # Threads
//! mdns-sd runs its own daemon thread; this task talks to it only through its bounded
//! channels (`try_send` for commands, `recv_async` for events), so nothing blocks the runtime.
//! The daemon ends a browse subscription whose event channel (1000 events) is full; this task
//! only parses and updates the book, so it keeps up, and re-subscribes if it ever ends.
//!
//! # Security
//! Anyone on the LAN can announce anything. TXT values are parsed without panicking and with
//! length limits; they only choose whom to dial: the handshake still checks version, chain
//! and genesis, and TLS proves the pinned node ID. The `name` is only shown: one that is
//! missing or invalid is dropped, never a reason to ignore the announcement. The announcements tracked are bounded
//! ([`MDNS_MAX_TRACKED`]), and so is the address book.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::sync::Arc;

use cairn_chain::Hash;
use mdns_sd::{DaemonEvent, IfKind, ResolvedService, ScopedIp, ServiceDaemon, ServiceEvent, ServiceInfo, TxtProperties, UnregisterStatus};

use crate::config::{MDNS_GOODBYE_REPEAT, MDNS_MAX_TRACKED, MDNS_RESUBSCRIBE_DELAY, MDNS_SERVICE_TYPE, MDNS_WITHDRAW_TIMEOUT};
use crate::ctx::Ctx;
use crate::identity::NodeId;

/// TXT record keys of the advertisement.
pub mod txt {
    /// Protocol version (decimal).
    pub const PROTOCOL: &str = "proto";
    /// Chain ID.
    pub const CHAIN: &str = "chain";
    /// Genesis hash (hex).
    pub const GENESIS: &str = "genesis";
    /// Node ID (hex).
    pub const NODE: &str = "node";
    /// The node's name ([`crate::name`]); only when it has one. Read leniently: an invalid
    /// one is dropped, the announcement kept.
    pub const NAME: &str = "name";
}

/// Longest TXT value read: chain IDs are at most 64 characters, hashes and node IDs 64 hex.
const MAX_TXT_VALUE: usize = 128;

/// Most addresses of one announcement considered (a stranger may list any number).
const MAX_ADDRESSES: usize = 32;

/// What a node says about itself on the LAN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcement {
    /// Protocol version it speaks.
    pub protocol_version: u32,
    /// Its chain ID.
    pub chain_id: String,
    /// Its genesis hash.
    pub genesis: Hash,
    /// Its node ID (pinned when we dial it).
    pub node_id: NodeId,
    /// Its human-readable name, if it announced a valid one.
    pub name: Option<String>,
}

/// Why an announcement is not dialled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Ignored {
    /// A TXT record is missing or malformed, or the port is 0.
    #[error("malformed announcement: {0}")]
    Malformed(String),
    /// It is this node's own advertisement (heard through multicast loopback).
    #[error("our own announcement")]
    Own,
    /// Another protocol version.
    #[error("protocol version {0}")]
    IncompatibleVersion(u32),
    /// Another chain.
    #[error("chain {0:?}")]
    WrongChain(String),
    /// Same chain ID, another genesis.
    #[error("genesis {0}")]
    WrongGenesis(Hash),
    /// None of its addresses is reachable from this host.
    #[error("no address reachable from this host")]
    Unreachable,
    /// Already tracking [`MDNS_MAX_TRACKED`] announcements.
    #[error("tracking too many LAN announcements")]
    TooMany,
}

impl Ignored {
    /// Stable code (the `reason` label of `cairn_p2p_mdns_ignored_total`).
    pub fn code(&self) -> &'static str {
        match self {
            Ignored::Malformed(_) => "malformed",
            Ignored::Own => "self",
            Ignored::IncompatibleVersion(_) => "incompatible_version",
            Ignored::WrongChain(_) => "wrong_chain",
            Ignored::WrongGenesis(_) => "wrong_genesis",
            Ignored::Unreachable => "unreachable",
            Ignored::TooMany => "too_many",
        }
    }
}

impl Announcement {
    /// This node's announcement.
    fn local(inner: &Ctx) -> Announcement {
        Announcement {
            protocol_version: inner.cfg.protocol_version,
            chain_id: inner.chain.chain_id(),
            genesis: inner.chain.genesis(),
            node_id: inner.node_id,
            name: inner.cfg.name.clone(),
        }
    }

    /// The TXT records (key, value).
    pub fn txt(&self) -> Vec<(&'static str, String)> {
        let mut records = vec![
            (txt::PROTOCOL, self.protocol_version.to_string()),
            (txt::CHAIN, self.chain_id.clone()),
            (txt::GENESIS, self.genesis.to_string()),
            (txt::NODE, self.node_id.to_string()),
        ];
        if let Some(name) = &self.name {
            records.push((txt::NAME, name.clone()));
        }
        records
    }

    /// Reads an announcement from TXT records heard on the network.
    pub fn parse(props: &TxtProperties) -> Result<Announcement, Ignored> {
        let field = |key: &str| -> Result<&str, Ignored> {
            let value = props.get_property_val(key).flatten().ok_or_else(|| Ignored::Malformed(format!("no {key}")))?;
            if value.len() > MAX_TXT_VALUE {
                return Err(Ignored::Malformed(format!("{key}: {} bytes", value.len())));
            }
            std::str::from_utf8(value).map_err(|_| Ignored::Malformed(format!("{key}: not UTF-8")))
        };
        let bad = |key: &str, e: &dyn std::fmt::Display| Ignored::Malformed(format!("{key}: {e}"));
        // Optional and only shown: anything but a valid name is no name.
        let name = props
            .get_property_val(txt::NAME)
            .flatten()
            .and_then(|v| std::str::from_utf8(v).ok())
            .filter(|n| crate::name::validate_name(n).is_ok())
            .map(str::to_string);
        Ok(Announcement {
            protocol_version: field(txt::PROTOCOL)?.parse().map_err(|e| bad(txt::PROTOCOL, &e))?,
            chain_id: field(txt::CHAIN)?.to_string(),
            genesis: field(txt::GENESIS)?.parse().map_err(|e| bad(txt::GENESIS, &e))?,
            node_id: field(txt::NODE)?.parse().map_err(|e| bad(txt::NODE, &e))?,
            name,
        })
    }

    /// Whether a node that announced `self` is one `ours` should dial: not itself, and the
    /// same protocol version, chain and genesis (the handshake's rules, checked before dialing).
    pub fn check(&self, ours: &Announcement) -> Result<(), Ignored> {
        if self.node_id == ours.node_id {
            Err(Ignored::Own)
        } else if self.protocol_version != ours.protocol_version {
            Err(Ignored::IncompatibleVersion(self.protocol_version))
        } else if self.chain_id != ours.chain_id {
            Err(Ignored::WrongChain(self.chain_id.chars().take(64).collect()))
        } else if self.genesis != ours.genesis {
            Err(Ignored::WrongGenesis(self.genesis))
        } else {
            Ok(())
        }
    }
}

/// One address of one of this host's interfaces, with its prefix length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalNet {
    /// Interface index.
    pub index: u32,
    /// The interface's address.
    pub ip: IpAddr,
    /// Prefix length of its subnet.
    pub prefix: u8,
}

impl LocalNet {
    /// Whether `ip` is in this subnet.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.ip, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix.min(32))).unwrap_or(0);
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix.min(128))).unwrap_or(0);
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }
}

/// This host's interface addresses (a netlink dump: cheap, but a system call, so callers off
/// the runtime use `spawn_blocking`). An error yields none: every LAN address then ranks as
/// "outside our subnets" and is still dialled.
pub fn local_nets() -> Vec<LocalNet> {
    if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| {
            let (ip, prefix) = match &i.addr {
                if_addrs::IfAddr::V4(a) => (IpAddr::V4(a.ip), a.prefixlen),
                if_addrs::IfAddr::V6(a) => (IpAddr::V6(a.ip), a.prefixlen),
            };
            Some(LocalNet { index: i.index?, ip, prefix })
        })
        .collect()
}

/// An address a resolved service listed, with the interfaces (indices) it was heard on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heard {
    /// The address.
    pub ip: IpAddr,
    /// Interfaces the announcement carrying it came in on.
    pub via: Vec<u32>,
}

/// The addresses of a resolved service, at most [`MAX_ADDRESSES`].
fn heard(addrs: &HashSet<ScopedIp>) -> Vec<Heard> {
    addrs
        .iter()
        .filter_map(|a| match a {
            ScopedIp::V4(v4) => Some(Heard { ip: IpAddr::V4(*v4.addr()), via: v4.interface_ids().iter().map(|i| i.index).collect() }),
            ScopedIp::V6(v6) => Some(Heard { ip: IpAddr::V6(*v6.addr()), via: vec![v6.scope_id().index] }),
            _ => None,
        })
        .take(MAX_ADDRESSES)
        .collect()
}

fn is_link_local_v6(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

/// How good `h` is to dial from an endpoint bound to `endpoint` (lower is better), or `None`
/// if it is unreachable from here.
fn rank(h: &Heard, locals: &[LocalNet], endpoint: IpAddr) -> Option<u8> {
    let ip = h.ip;
    let family_ok = match endpoint {
        // A dual-stack socket reaches both families; an IPv4 one only IPv4.
        IpAddr::V6(e) if e.is_unspecified() => true,
        e => e.is_ipv4() == ip.is_ipv4(),
    };
    let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    if !family_ok || ip.is_unspecified() || ip.is_multicast() || broadcast {
        return None;
    }
    let heard_on_loopback = locals.iter().any(|l| l.ip.is_loopback() && h.via.contains(&l.index));
    if ip.is_loopback() {
        // Only the announcer's own loopback is ours too, if it came in on ours.
        return heard_on_loopback.then_some(2);
    }
    if endpoint.is_loopback() {
        return None;
    }
    let on_arrival_link = locals.iter().any(|l| h.via.contains(&l.index) && l.contains(ip));
    if is_link_local_v6(ip) && !on_arrival_link {
        // Link-local is only meaningful on the link it was heard on, and we have no address there.
        return None;
    }
    let on_some_link = locals.iter().any(|l| !l.ip.is_loopback() && l.contains(ip));
    Some(match (ip.is_ipv4(), on_arrival_link, on_some_link) {
        (true, true, _) => 0,
        (true, false, true) => 1,
        (false, true, _) | (false, false, true) => 3,
        // Not on any of our links: reachable only through a router.
        (true, false, false) => 4,
        (false, false, false) => 5,
    })
}

/// The address to dial among those a resolved service listed: one reachable from an
/// endpoint bound to `endpoint`, preferring IPv4 in the subnet of the interface the
/// announcement came in on, then IPv4 on another local subnet, then loopback (the announcer
/// is on this host), then IPv6 (link-local scoped to the interface it was heard on), then
/// addresses outside every local subnet. Ties go to the lowest address.
pub fn pick_address(heard: &[Heard], port: u16, locals: &[LocalNet], endpoint: IpAddr) -> Option<SocketAddr> {
    let best = heard.iter().filter_map(|h| Some((rank(h, locals, endpoint)?, h))).min_by_key(|(r, h)| (*r, h.ip))?.1;
    match best.ip {
        IpAddr::V6(v6) if is_link_local_v6(best.ip) => Some(SocketAddr::V6(SocketAddrV6::new(v6, port, 0, *best.via.first()?))),
        ip => Some(SocketAddr::new(ip, port)),
    }
}

/// The service this node registers: instance `cairn-<first 16 hex of the node ID>` (DNS
/// labels are at most 63 bytes; 64 bits keep names unique on any LAN, and mdns-sd renames on
/// a conflict anyway), on the endpoint's port. An endpoint bound to every address advertises
/// the host's addresses of the endpoint's family, kept current by mdns-sd.
fn service_info(ours: &Announcement, endpoint: SocketAddr) -> Result<ServiceInfo, mdns_sd::Error> {
    let id = ours.node_id.to_string();
    let name = format!("cairn-{}", &id[..16]);
    let host = format!("{name}.local.");
    let props = ours.txt();
    if !endpoint.ip().is_unspecified() {
        return ServiceInfo::new(MDNS_SERVICE_TYPE, &name, &host, endpoint.ip(), endpoint.port(), &props[..]);
    }
    let mut info = ServiceInfo::new(MDNS_SERVICE_TYPE, &name, &host, "", endpoint.port(), &props[..])?.enable_addr_auto();
    if endpoint.is_ipv4() {
        info.set_interfaces(vec![IfKind::IPv4]);
    }
    Ok(info)
}

/// Browse results: what was announced, what we did with it.
struct Discovery {
    inner: Arc<Ctx>,
    ours: Announcement,
    /// Instance full name → the peer and the address handed to the dialer.
    tracked: HashMap<String, (NodeId, SocketAddr)>,
}

impl Discovery {
    async fn on_event(&mut self, event: ServiceEvent) {
        match event {
            ServiceEvent::ServiceResolved(svc) => self.resolved(&svc).await,
            ServiceEvent::ServiceRemoved(_, fullname) => self.removed(&fullname),
            _ => {}
        }
    }

    async fn resolved(&mut self, svc: &ResolvedService) {
        let locals = tokio::task::spawn_blocking(local_nets).await.unwrap_or_default();
        let (id, addr, new, name) = match self.judge(svc, &locals) {
            Ok(found) => found,
            Err(why) => {
                self.inner.metrics.mdns_ignored(why.code());
                tracing::debug!(target: "p2p::mdns", instance = %svc.fullname, reason = why.code(), "ignoring LAN announcement: {why}");
                return;
            }
        };
        if new {
            self.inner.metrics.mdns_discovered();
            tracing::info!(target: "p2p::mdns", peer = %id, peer_name = name.as_deref(), %addr, instance = %svc.fullname, "discovered peer on the LAN");
        } else {
            // Re-announced (e.g. its link came back): it is there, so retry now if not connected.
            tracing::debug!(target: "p2p::mdns", peer = %id, %addr, "peer announced itself again on the LAN");
        }
        self.inner.manager.discovered(addr, id);
    }

    /// Decides what to dial for a resolved service and tracks it; says whether it is new
    /// (a peer not tracked yet, or at another address or with another key).
    fn judge(&mut self, svc: &ResolvedService, locals: &[LocalNet]) -> Result<(NodeId, SocketAddr, bool, Option<String>), Ignored> {
        let ann = Announcement::parse(&svc.txt_properties)?;
        ann.check(&self.ours)?;
        if svc.port == 0 {
            return Err(Ignored::Malformed("port 0".into()));
        }
        let addr = pick_address(&heard(&svc.addresses), svc.port, locals, self.inner.local_addr.ip()).ok_or(Ignored::Unreachable)?;
        let found = (ann.node_id, addr);
        let new = match self.tracked.get(&svc.fullname) {
            Some(known) => *known != found,
            None if self.tracked.len() >= MDNS_MAX_TRACKED => return Err(Ignored::TooMany),
            None => true,
        };
        self.tracked.insert(svc.fullname.clone(), found);
        Ok((ann.node_id, addr, new, ann.name))
    }

    fn removed(&mut self, fullname: &str) {
        if let Some((id, addr)) = self.tracked.remove(fullname) {
            self.inner.metrics.mdns_removed();
            // Withdrawn (a clean shutdown), expired, or our interface it was heard on went down.
            tracing::info!(target: "p2p::mdns", peer = %id, %addr, "peer's LAN announcement is gone");
            self.inner.manager.withdrawn(addr);
        }
    }
}

/// What woke the discovery loop.
enum Step {
    Stop,
    Service(ServiceEvent),
    BrowseEnded,
    Daemon(Option<DaemonEvent>),
}

/// The discovery task: starts the mDNS daemon, advertises, browses until cancelled, then
/// withdraws the advertisement and stops the daemon. Failing to start is a warning, not an
/// error: the node runs on without LAN discovery.
pub(crate) async fn run(inner: Arc<Ctx>) {
    let daemon = match ServiceDaemon::new() {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(target: "p2p::mdns", "mDNS discovery off: cannot start the mDNS daemon: {e}");
            return;
        }
    };
    let mut monitor = daemon.monitor().ok();
    let ours = Announcement::local(&inner);
    let advertised = advertise(&daemon, &inner, &ours);
    let mut events = match daemon.browse(MDNS_SERVICE_TYPE) {
        Ok(rx) => Some(rx),
        Err(e) => {
            tracing::warn!(target: "p2p::mdns", "cannot browse the LAN for peers: {e}");
            None
        }
    };
    let mut discovery = Discovery { inner: inner.clone(), ours, tracked: HashMap::new() };
    loop {
        let step = tokio::select! {
            biased;
            _ = inner.cancel.cancelled() => Step::Stop,
            e = async { events.as_ref()?.recv_async().await.ok() }, if events.is_some() => e.map_or(Step::BrowseEnded, Step::Service),
            e = async { monitor.as_ref()?.recv_async().await.ok() }, if monitor.is_some() => Step::Daemon(e),
        };
        match step {
            Step::Stop => break,
            Step::Service(e) => discovery.on_event(e).await,
            Step::BrowseEnded => {
                tracing::warn!(target: "p2p::mdns", "mDNS browse subscription ended; subscribing again");
                tokio::select! {
                    _ = inner.cancel.cancelled() => break,
                    _ = tokio::time::sleep(MDNS_RESUBSCRIBE_DELAY) => {}
                }
                events = daemon.browse(MDNS_SERVICE_TYPE).map_err(|e| tracing::warn!(target: "p2p::mdns", "cannot browse the LAN for peers: {e}")).ok();
            }
            Step::Daemon(Some(DaemonEvent::Error(e))) => tracing::warn!(target: "p2p::mdns", "mDNS daemon: {e}"),
            Step::Daemon(Some(DaemonEvent::NameChange(c))) => {
                tracing::info!(target: "p2p::mdns", from = %c.original, to = %c.new_name, "mDNS name conflict on the LAN: renamed")
            }
            Step::Daemon(Some(e)) => tracing::trace!(target: "p2p::mdns", "mDNS daemon: {e:?}"),
            Step::Daemon(None) => monitor = None,
        }
        if events.is_none() && monitor.is_none() {
            // The daemon is gone: nothing more will come; wait for shutdown.
            inner.cancel.cancelled().await;
            break;
        }
    }
    withdraw(&daemon, &inner, advertised).await;
}

/// Registers this node's service; returns its full name if the daemon took it.
fn advertise(daemon: &ServiceDaemon, inner: &Ctx, ours: &Announcement) -> Option<String> {
    let registered = service_info(ours, inner.local_addr).and_then(|info| {
        let name = info.get_fullname().to_string();
        daemon.register(info).map(|()| name)
    });
    match registered {
        Ok(name) => {
            inner.metrics.set_mdns_advertising(true);
            tracing::info!(target: "p2p::mdns", instance = %name, port = inner.local_addr.port(), chain = %ours.chain_id, "advertising on the LAN (mDNS) and browsing for peers");
            Some(name)
        }
        Err(e) => {
            tracing::warn!(target: "p2p::mdns", "cannot advertise on the LAN (mDNS): {e}");
            None
        }
    }
}

/// Withdraws the advertisement (goodbye packets, repeated once by mdns-sd) and stops the
/// daemon, each step bounded in time.
async fn withdraw(daemon: &ServiceDaemon, inner: &Ctx, advertised: Option<String>) {
    if let Some(name) = advertised {
        let answer = match daemon.unregister(&name) {
            Ok(rx) => tokio::time::timeout(MDNS_WITHDRAW_TIMEOUT, rx.recv_async()).await.ok().and_then(Result::ok),
            Err(_) => None,
        };
        inner.metrics.set_mdns_advertising(false);
        match answer {
            Some(UnregisterStatus::OK) => {
                tokio::time::sleep(MDNS_GOODBYE_REPEAT).await;
                tracing::info!(target: "p2p::mdns", instance = %name, "withdrew the LAN advertisement");
            }
            other => tracing::warn!(target: "p2p::mdns", instance = %name, "could not withdraw the LAN advertisement: {other:?}"),
        }
    }
    if let Ok(rx) = daemon.shutdown() {
        let _ = tokio::time::timeout(MDNS_WITHDRAW_TIMEOUT, rx.recv_async()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_chain::keys::PublicKey;

    fn ours() -> Announcement {
        Announcement { protocol_version: 1, chain_id: "devnet".into(), genesis: Hash::digest(b"g"), node_id: PublicKey([1; 32]), name: None }
    }

    /// TXT records as they arrive: length-prefixed strings.
    fn wire(entries: &[&[u8]]) -> TxtProperties {
        let mut raw = Vec::new();
        for e in entries {
            raw.push(e.len() as u8);
            raw.extend_from_slice(e);
        }
        TxtProperties::from(&raw[..])
    }

    fn encoded(a: &Announcement) -> TxtProperties {
        let strings: Vec<Vec<u8>> = a.txt().iter().map(|(k, v)| format!("{k}={v}").into_bytes()).collect();
        wire(&strings.iter().map(Vec::as_slice).collect::<Vec<_>>())
    }

    #[test]
    fn announcement_round_trips_and_is_checked_like_a_handshake() {
        let me = ours();
        let peer = Announcement { node_id: PublicKey([2; 32]), ..me.clone() };
        assert_eq!(Announcement::parse(&encoded(&peer)), Ok(peer.clone()));
        assert_eq!(peer.check(&me), Ok(()));
        assert_eq!(me.check(&me), Err(Ignored::Own));
        let other = Announcement { chain_id: "devnet-foreign".into(), ..peer.clone() };
        assert_eq!(other.check(&me).unwrap_err().code(), "wrong_chain");
        let other = Announcement { genesis: Hash::ZERO, ..peer.clone() };
        assert_eq!(other.check(&me).unwrap_err().code(), "wrong_genesis");
        let other = Announcement { protocol_version: 2, ..peer };
        assert_eq!(other.check(&me).unwrap_err().code(), "incompatible_version");
    }

    #[test]
    fn malformed_txt_records_are_refused_without_panicking() {
        let id = PublicKey([2; 32]).to_string();
        let g = Hash::ZERO.to_string();
        let node = format!("node={id}");
        let genesis = format!("genesis={g}");
        let long = format!("chain={}", "x".repeat(200));
        let cases: Vec<Vec<&[u8]>> = vec![
            vec![],
            vec![b"proto=1", b"chain=devnet", genesis.as_bytes()],
            vec![b"proto=one", b"chain=devnet", genesis.as_bytes(), node.as_bytes()],
            vec![b"proto=99999999999", b"chain=devnet", genesis.as_bytes(), node.as_bytes()],
            vec![b"proto=1", b"chain=\xff\xfe", genesis.as_bytes(), node.as_bytes()],
            vec![b"proto=1", long.as_bytes(), genesis.as_bytes(), node.as_bytes()],
            vec![b"proto=1", b"chain=devnet", b"genesis=zz", node.as_bytes()],
            vec![b"proto=1", b"chain=devnet", genesis.as_bytes(), b"node=abc"],
            vec![b"proto", b"chain", b"genesis", b"node"],
            vec![b"=", b"==", b"proto=1=2", b"\x00\x01"],
        ];
        for c in cases {
            let r = Announcement::parse(&wire(&c));
            assert_eq!(r.as_ref().map_err(Ignored::code), Err("malformed"), "{c:?}: {r:?}");
        }
        // Truncated and garbage raw TXT data.
        for raw in [&b"\x05ab"[..], b"\xff", b"\x00\x00\x00", b"\x04node"] {
            assert!(Announcement::parse(&TxtProperties::from(raw)).is_err());
        }
    }

    fn net(index: u32, ip: &str, prefix: u8) -> LocalNet {
        LocalNet { index, ip: ip.parse().unwrap(), prefix }
    }

    fn h(ip: &str, via: &[u32]) -> Heard {
        Heard { ip: ip.parse().unwrap(), via: via.to_vec() }
    }

    /// lo (1), eth0 (2) on 10.1.0.0/24 and fe80::/64, wlan0 (3) on 192.168.5.0/24.
    fn host() -> Vec<LocalNet> {
        vec![net(1, "127.0.0.1", 8), net(1, "::1", 128), net(2, "10.1.0.7", 24), net(2, "fe80::7", 64), net(3, "192.168.5.2", 24)]
    }

    #[test]
    fn picks_ipv4_on_the_arrival_interface_first() {
        let any4: IpAddr = "0.0.0.0".parse().unwrap();
        let heard = [h("127.0.0.1", &[2]), h("fe80::9", &[2]), h("192.168.5.9", &[2]), h("10.1.0.9", &[2]), h("172.16.0.1", &[2])];
        assert_eq!(pick_address(&heard, 9090, &host(), any4), Some("10.1.0.9:9090".parse().unwrap()));
        // Heard on eth0 but only in wlan0's subnet: still on one of our links.
        let heard = [h("192.168.5.9", &[2]), h("172.16.0.1", &[2])];
        assert_eq!(pick_address(&heard, 1, &host(), any4), Some("192.168.5.9:1".parse().unwrap()));
        // Only a routed address.
        assert_eq!(pick_address(&[h("172.16.0.1", &[2])], 1, &host(), any4), Some("172.16.0.1:1".parse().unwrap()));
    }

    #[test]
    fn loopback_only_from_this_host_and_ipv6_only_from_a_dual_stack_endpoint() {
        let any4: IpAddr = "0.0.0.0".parse().unwrap();
        let any6: IpAddr = "::".parse().unwrap();
        // 127.0.0.1 heard on eth0 is the sender's loopback, not ours.
        assert_eq!(pick_address(&[h("127.0.0.1", &[2])], 1, &host(), any4), None);
        assert_eq!(pick_address(&[h("127.0.0.1", &[1])], 1, &host(), any4), Some("127.0.0.1:1".parse().unwrap()));
        // Only IPv6: unreachable from an IPv4 socket; link-local gets the arrival scope.
        let heard = [h("fe80::9", &[2])];
        assert_eq!(pick_address(&heard, 1, &host(), any4), None);
        assert_eq!(pick_address(&heard, 1, &host(), any6), Some(SocketAddr::V6(SocketAddrV6::new("fe80::9".parse().unwrap(), 1, 0, 2))));
        // Link-local heard on an interface without IPv6: no route.
        assert_eq!(pick_address(&[h("fe80::9", &[3])], 1, &host(), any6), None);
        // IPv4 still wins on a dual-stack endpoint.
        assert_eq!(pick_address(&[h("fe80::9", &[2]), h("10.1.0.9", &[2])], 1, &host(), any6), Some("10.1.0.9:1".parse().unwrap()));
        // An endpoint bound to loopback reaches only loopback.
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(pick_address(&[h("10.1.0.9", &[2])], 1, &host(), lo), None);
        // Junk is never dialled.
        for junk in ["0.0.0.0", "255.255.255.255", "224.0.0.251", "ff02::fb", "::"] {
            assert_eq!(pick_address(&[h(junk, &[2])], 1, &host(), any6), None, "{junk}");
        }
        assert_eq!(pick_address(&[], 1, &host(), any6), None);
    }

    #[test]
    fn subnets() {
        assert!(net(1, "10.1.0.7", 24).contains("10.1.0.200".parse().unwrap()));
        assert!(!net(1, "10.1.0.7", 24).contains("10.1.1.1".parse().unwrap()));
        assert!(net(1, "10.1.0.7", 0).contains("8.8.8.8".parse().unwrap()));
        assert!(net(1, "10.1.0.7", 32).contains("10.1.0.7".parse().unwrap()));
        assert!(!net(1, "10.1.0.7", 200).contains("10.1.0.8".parse().unwrap()));
        assert!(net(1, "fe80::1", 64).contains("fe80::2".parse().unwrap()));
        assert!(!net(1, "fe80::1", 64).contains("10.1.0.7".parse().unwrap()));
    }

    #[test]
    fn service_info_carries_the_txt_records() {
        let me = ours();
        let info = service_info(&me, "0.0.0.0:9090".parse().unwrap()).unwrap();
        assert_eq!(info.get_type(), MDNS_SERVICE_TYPE);
        assert_eq!(info.get_port(), 9090);
        assert!(info.get_fullname().starts_with("cairn-0101010101010101."));
        assert_eq!(Announcement::parse(info.get_properties()), Ok(me.clone()));
        assert!(info.get_property(txt::NAME).is_none(), "no name record for an unnamed node");
        let info = service_info(&me, "10.1.0.7:9091".parse().unwrap()).unwrap();
        assert_eq!(info.get_addresses().iter().copied().collect::<Vec<_>>(), vec!["10.1.0.7".parse::<IpAddr>().unwrap()]);
        // A named node: the instance name still comes from the node ID; the name is a TXT record.
        let named = Announcement { name: Some("alice".into()), ..me };
        let info = service_info(&named, "0.0.0.0:9090".parse().unwrap()).unwrap();
        assert!(info.get_fullname().starts_with("cairn-0101010101010101."));
        assert_eq!(info.get_property_val_str(txt::NAME), Some("alice"));
        assert_eq!(Announcement::parse(info.get_properties()), Ok(named));
    }

    #[test]
    fn the_name_record_round_trips_and_a_bad_one_is_only_dropped() {
        let peer = Announcement { node_id: PublicKey([2; 32]), name: Some("node-2.b_x".into()), ..ours() };
        assert_eq!(Announcement::parse(&encoded(&peer)), Ok(peer.clone()));
        let base: Vec<String> = Announcement { name: None, ..peer.clone() }.txt().iter().map(|(k, v)| format!("{k}={v}")).collect();
        let long = format!("name={}", "x".repeat(200));
        let bad: [&[u8]; 6] = [b"name=bad name!", b"name=", b"name", b"name=\xff\xfe", long.as_bytes(), b"name=(x)"];
        for b in bad {
            let mut entries: Vec<&[u8]> = base.iter().map(|e| e.as_bytes()).collect();
            entries.push(b);
            assert_eq!(Announcement::parse(&wire(&entries)), Ok(Announcement { name: None, ..peer.clone() }), "{b:?}");
        }
    }
}
