//! Devnet ports: the `--base-port` plan (node k: P2P `P + 2(k-1)`, RPC `P + 2(k-1) + 1`) and
//! the check that a planned pair is free before a node tries it.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};

use super::DevnetError;

/// One node's two ports; 0 asks the OS for a free one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ports {
    /// QUIC (UDP).
    pub p2p: u16,
    /// HTTP RPC (TCP).
    pub rpc: u16,
}

/// The ports of node `number` (1-based) under `--base-port base`, or `None` when they do not
/// fit in 1..=65535.
pub fn for_node(base: u16, number: usize) -> Option<Ports> {
    let p2p = u32::from(base).checked_add(2 * u32::try_from(number.checked_sub(1)?).ok()?)?;
    let rpc = p2p + 1;
    (base > 0 && rpc <= u32::from(u16::MAX)).then_some(Ports { p2p: p2p as u16, rpc: rpc as u16 })
}

/// The ports of the first `nodes` nodes under `--base-port base`, or `None` if any does not fit.
pub fn planned(base: u16, nodes: usize) -> Option<Vec<Ports>> {
    (1..=nodes).map(|k| for_node(base, k)).collect()
}

/// Checks that node `number`'s fixed ports can be bound on loopback right now (port 0 is
/// always free). A check, not a reservation: the node binds them a moment later.
pub fn check_free(number: usize, ports: Ports) -> Result<(), DevnetError> {
    let at = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    if ports.p2p != 0 {
        UdpSocket::bind(at(ports.p2p)).map_err(|error| DevnetError::PortInUse { port: ports.p2p, what: "UDP, P2P", node: number, error })?;
    }
    if ports.rpc != 0 {
        TcpListener::bind(at(ports.rpc)).map_err(|error| DevnetError::PortInUse { port: ports.rpc, what: "TCP, RPC", node: number, error })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_is_two_ports_per_node_and_stays_in_range() {
        assert_eq!(for_node(40000, 1), Some(Ports { p2p: 40000, rpc: 40001 }));
        assert_eq!(for_node(40000, 3), Some(Ports { p2p: 40004, rpc: 40005 }));
        assert_eq!(for_node(65534, 1), Some(Ports { p2p: 65534, rpc: 65535 }));
        assert_eq!(for_node(65534, 2), None);
        assert_eq!(for_node(65535, 1), None);
        assert_eq!(for_node(0, 1), None);
        assert_eq!(planned(65530, 3).map(|p| p.len()), Some(3));
        assert!(planned(65530, 4).is_none());
    }

    #[test]
    fn a_busy_port_is_named() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let e = check_free(2, Ports { p2p: 0, rpc: port }).unwrap_err().to_string();
        assert!(e.contains(&port.to_string()) && e.contains("RPC") && e.contains("node 2"), "{e}");
        assert!(check_free(1, Ports::default()).is_ok());
    }
}
