//! Where an address sits in the network: its network group (IPv4 /16, IPv6 /32, as Bitcoin
//! Core groups addresses without an ASN map) for eviction and outbound diversity, and its
//! subnet (IPv4 /24, IPv6 /64) for the per-subnet inbound limit.
//!
//! An attacker gets many addresses in one subnet far more cheaply than addresses spread over
//! many groups, so limits and protections keyed by these make a Sybil attack cost more.

use std::net::IpAddr;

use ipnet::IpNet;

/// The address with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) turned back into IPv4, so
/// one host is one key whichever socket family it came in on.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` is the default loopback address, `127.0.0.1` or `::1` (where a devnet of
/// many nodes runs); other `127.x.y.z` addresses are not.
pub fn is_localhost(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => v4 == std::net::Ipv4Addr::LOCALHOST,
        IpAddr::V6(v6) => v6 == std::net::Ipv6Addr::LOCALHOST,
    }
}

/// The network of `ip` with `v4`/`v6` prefix bits (the address canonicalised first).
fn prefix(ip: IpAddr, v4: u8, v6: u8) -> IpNet {
    let ip = canonical(ip);
    let len = if ip.is_ipv4() { v4 } else { v6 };
    // The prefix lengths are constants within range, so this cannot fail; a host net is the
    // harmless fallback.
    IpNet::new(ip, len).map(|n| n.trunc()).unwrap_or_else(|_| IpNet::from(ip))
}

/// The network group: IPv4 /16, IPv6 /32.
pub fn group(ip: IpAddr) -> IpNet {
    prefix(ip, 16, 32)
}

/// The subnet the per-subnet inbound limit counts: IPv4 /24, IPv6 /64.
pub fn subnet(ip: IpAddr) -> IpNet {
    prefix(ip, 24, 64)
}

/// The single-host network of `ip` (what a ban of one address covers).
pub fn host(ip: IpAddr) -> IpNet {
    IpNet::from(canonical(ip))
}

/// How a ban's or a group's network reads: a lone host as its address, else CIDR notation.
pub fn display(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() { net.addr().to_string() } else { net.to_string() }
}

/// Parses an address or a CIDR network (`10.0.0.7`, `10.0.0.0/24`, `2001:db8::/32`). The host
/// bits of a CIDR are cleared (`10.0.0.7/24` is `10.0.0.0/24`).
pub fn parse(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(host(ip));
    }
    match s.parse::<IpNet>() {
        Ok(net) => Ok(match canonical(net.addr()) {
            // `::ffff:a.b.c.d/120` is the IPv4 /24 it maps.
            IpAddr::V4(v4) if net.addr().is_ipv6() => IpNet::new(IpAddr::V4(v4), net.prefix_len().saturating_sub(96)).map_err(|e| e.to_string())?.trunc(),
            _ => net.trunc(),
        }),
        Err(_) => Err(format!("{s:?} is not an IP address or CIDR network (e.g. 10.0.0.7 or 10.0.0.0/24)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn groups_and_subnets() {
        assert_eq!(group(ip("10.1.2.3")).to_string(), "10.1.0.0/16");
        assert_eq!(subnet(ip("10.1.2.3")).to_string(), "10.1.2.0/24");
        assert_eq!(group(ip("2001:db8:1:2::5")).to_string(), "2001:db8::/32");
        assert_eq!(subnet(ip("2001:db8:1:2::5")).to_string(), "2001:db8:1:2::/64");
        assert_eq!(group(ip("::ffff:10.1.2.3")), group(ip("10.1.2.3")), "a mapped address is its IPv4 host");
        assert_eq!(host(ip("::ffff:10.1.2.3")), host(ip("10.1.2.3")));
        assert_eq!(display(&host(ip("10.1.2.3"))), "10.1.2.3");
        assert_eq!(display(&subnet(ip("10.1.2.3"))), "10.1.2.0/24");
        assert!(is_localhost(ip("127.0.0.1")) && is_localhost(ip("::1")) && is_localhost(ip("::ffff:127.0.0.1")));
        assert!(!is_localhost(ip("127.0.0.2")) && !is_localhost(ip("10.0.0.1")));
    }

    #[test]
    fn parsing_addresses_and_networks() {
        assert_eq!(parse("10.0.0.7").map(|n| display(&n)), Ok("10.0.0.7".into()));
        assert_eq!(parse(" 10.0.0.7/24 ").map(|n| display(&n)), Ok("10.0.0.0/24".into()));
        assert_eq!(parse("2001:db8::1").map(|n| display(&n)), Ok("2001:db8::1".into()));
        assert_eq!(parse("::ffff:10.0.0.7/120").map(|n| display(&n)), Ok("10.0.0.0/24".into()));
        for bad in ["", "10.0.0", "10.0.0.7/33", "10.0.0.0/", "node", "1.2.3.4:80", "::/129"] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
