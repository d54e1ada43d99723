//! The sans-IO peer protocol machine (`p2p/src/peer/protocol.rs`) fed an arbitrary sequence
//! of received messages (structured, or raw frames through `wire::decode`), stream errors,
//! our own requests (`on_send`, which make answers solicited) and clock ticks.
//!
//! Invariants: nothing panics; after a `Close` the machine is closed and says nothing more;
//! nothing is forwarded past the protocol's count limits (addresses, transactions, IDs,
//! headers, blocks asked, locators, indexes).
#![no_main]

use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use cairn_fuzz::Msg;
use cairn_p2p::config::{MAX_BLOCKS_PER_REQUEST, MAX_HEADERS, MAX_LOCATOR, MAX_PEERS_PER_MESSAGE, MAX_TX_IDS_PER_MESSAGE, MAX_TXS_PER_MESSAGE};
use cairn_p2p::peer::protocol::{Action, PeerProtocol, ProtocolConfig, Serve, ToSync};
use cairn_p2p::wire::{self, WireError};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Event {
    Receive(Msg),
    Frame(Vec<u8>),
    StreamError(u8),
    Send(Msg),
    Tick(u16),
}

#[derive(Arbitrary, Debug)]
struct Input {
    outbound: bool,
    nonce_seed: u8,
    msg_burst: u8,
    max_block_txs: u16,
    events: Vec<Event>,
}

fn check(actions: &[Action], closed_before: bool, p: &PeerProtocol, max_block_txs: usize) {
    if closed_before {
        assert!(actions.is_empty(), "actions after Close: {actions:?}");
    }
    let mut closed = closed_before;
    for a in actions {
        assert!(!closed || matches!(a, Action::Close(_) | Action::Misbehaved(_)), "action after Close: {a:?}");
        match a {
            Action::Close(_) => closed = true,
            Action::Learn(v) => assert!(v.len() <= MAX_PEERS_PER_MESSAGE, "learn {}", v.len()),
            Action::Transactions(v) => assert!(v.len() <= MAX_TXS_PER_MESSAGE, "transactions {}", v.len()),
            Action::Announced(v) => assert!(v.len() <= MAX_TX_IDS_PER_MESSAGE, "announced {}", v.len()),
            Action::Serve(Serve::Headers { locator, .. }) => assert!(locator.len() <= MAX_LOCATOR, "locator {}", locator.len()),
            Action::Serve(Serve::Blocks(v)) => assert!(v.len() <= MAX_BLOCKS_PER_REQUEST, "get_blocks {}", v.len()),
            Action::Serve(Serve::Txs(v)) => assert!(v.len() <= MAX_TX_IDS_PER_MESSAGE, "get_txs {}", v.len()),
            Action::Serve(Serve::BlockTxs { indexes, .. }) => assert!(indexes.len() <= max_block_txs, "indexes {}", indexes.len()),
            Action::Sync(ToSync::Headers(v)) => assert!(v.len() <= MAX_HEADERS, "headers {}", v.len()),
            Action::Sync(ToSync::Blocks(v)) => assert!(v.len() <= MAX_BLOCKS_PER_REQUEST, "blocks {}", v.len()),
            Action::Sync(ToSync::NotFound(v)) => assert!(v.len() <= MAX_BLOCKS_PER_REQUEST, "not_found {}", v.len()),
            Action::Sync(ToSync::BlockTxs { txs, .. }) => assert!(txs.len() <= max_block_txs, "block_txs {}", txs.len()),
            _ => {}
        }
    }
    assert_eq!(closed, p.is_closed(), "closed state disagrees with the actions");
}

fuzz_target!(|input: Input| {
    let start = Instant::now();
    let mut now = start;
    let max_block_txs = usize::from(input.max_block_txs);
    let cfg = ProtocolConfig {
        ping_interval: Duration::from_secs(10),
        ping_timeout: Duration::from_secs(30),
        msg_rate: 100,
        msg_burst: u32::from(input.msg_burst) + 1,
        get_peers_min_interval: Duration::from_secs(60),
        max_block_txs,
    };
    let (mut p, first) = PeerProtocol::new(cfg, input.outbound, now, u64::from(input.nonce_seed));
    check(&first, false, &p, max_block_txs);
    for ev in &input.events {
        let closed = p.is_closed();
        let actions = match ev {
            Event::Receive(m) => p.on_message(m.message(), now),
            Event::Frame(bytes) => match wire::decode(bytes) {
                Ok(m) => p.on_message(m, now),
                Err(e) => p.on_wire_error(&e, now),
            },
            Event::StreamError(k) => {
                let e = match k % 3 {
                    0 => WireError::Closed,
                    1 => WireError::FrameTooLarge(4096),
                    _ => WireError::Io(std::io::Error::other("reset")),
                };
                p.on_wire_error(&e, now)
            }
            Event::Send(m) => {
                p.on_send(&m.message());
                Vec::new()
            }
            Event::Tick(ms) => {
                now += Duration::from_millis(u64::from(*ms) * 10);
                let out = p.tick(now);
                assert!(p.is_closed() || p.next_tick() > now, "next tick not in the future");
                out
            }
        };
        check(&actions, closed, &p, max_block_txs);
    }
});
