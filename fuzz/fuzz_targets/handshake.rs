//! The sans-IO handshake machine (`p2p/src/handshake.rs`), either role, fed an arbitrary
//! sequence of messages (structured, or raw frames through `wire::decode`), stream errors,
//! admission answers and clock ticks.
//!
//! Invariants: nothing panics; at most one final action (`Done`, `Refuse`, `RefusedByPeer`,
//! `Lost`), after which the machine is finished and says nothing more; `Done` only after the
//! peer manager admitted the peer (and, for a listener, after the dialer's `HelloAck`); a
//! peer's refusal detail is cut to `MAX_PEER_DETAIL` characters; ours stay short too.
#![no_main]

use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use cairn_fuzz::{Msg, Pool, local_hello, node};
use cairn_p2p::handshake::{Handshake, HsAction, MAX_PEER_DETAIL, Refusal};
use cairn_p2p::wire::{self, Message, RejectReason, WireError};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Event {
    Message(Msg),
    Frame(Vec<u8>),
    StreamError(u8),
    Admitted(Option<u8>),
    Tick(u16),
}

#[derive(Arbitrary, Debug)]
struct Input {
    dialer: bool,
    /// Which node the connection's TLS key says the peer is (0 is ourselves).
    remote: Pool,
    timeout_ms: u16,
    events: Vec<Event>,
}

fuzz_target!(|input: Input| {
    let start = Instant::now();
    let mut now = start;
    let timeout = Duration::from_millis(u64::from(input.timeout_ms) + 1);
    let (local_id, remote_id) = (node(0), input.remote.node());
    let (mut hs, first) = if input.dialer {
        Handshake::dialer(local_hello(), local_id, remote_id, now, timeout)
    } else {
        (Handshake::listener(local_hello(), local_id, remote_id, now, timeout), Vec::new())
    };
    let mut finished = false;
    let mut admit_asked = false;
    let mut admitted_ok = false;
    let mut acked = false;
    let mut check = |actions: Vec<HsAction>, hs: &Handshake, admitted_ok: bool, acked: bool, admit_asked: &mut bool| {
        for a in &actions {
            assert!(!finished, "an action after the final one: {a:?}");
            match a {
                HsAction::Done(_) => {
                    assert!(admitted_ok, "Done before admission");
                    assert!(input.dialer || acked, "listener Done before HelloAck");
                    finished = true;
                }
                HsAction::Refuse { refusal, .. } => {
                    assert!(refusal.detail.chars().count() <= 2 * MAX_PEER_DETAIL, "long refusal detail");
                    finished = true;
                }
                HsAction::RefusedByPeer(r) => {
                    assert!(r.detail.chars().count() <= MAX_PEER_DETAIL, "peer's detail not cut");
                    finished = true;
                }
                HsAction::Lost(_) => finished = true,
                HsAction::Admit(_) => {
                    assert!(!*admit_asked, "Admit asked twice");
                    *admit_asked = true;
                }
                HsAction::Send(_) => {}
            }
        }
        assert_eq!(finished, hs.is_finished(), "finished state disagrees with the actions");
    };
    check(first, &hs, false, false, &mut admit_asked);
    for ev in &input.events {
        let actions = match ev {
            Event::Message(m) => {
                let m = m.message();
                acked |= matches!(m, Message::HelloAck) && admitted_ok;
                hs.on_message(Ok(m), now)
            }
            Event::Frame(bytes) => {
                let m = wire::decode(bytes);
                acked |= matches!(m, Ok(Message::HelloAck)) && admitted_ok;
                hs.on_message(m, now)
            }
            Event::StreamError(k) => {
                let e = match k % 4 {
                    0 => WireError::Closed,
                    1 => WireError::FrameTooLarge(4096),
                    2 => WireError::Decode("x".repeat(usize::from(*k) * 10)),
                    _ => WireError::Io(std::io::Error::other("reset")),
                };
                hs.on_message(Err(e), now)
            }
            Event::Admitted(r) => {
                let r = match r {
                    None => Ok(()),
                    Some(i) => Err(Refusal::new(RejectReason::ALL[usize::from(*i) % RejectReason::ALL.len()], "no")),
                };
                let waiting = admit_asked && !hs.is_finished() && now < hs.deadline();
                let out = hs.admitted(r.clone(), now);
                admitted_ok |= waiting && r.is_ok() && !out.is_empty();
                out
            }
            Event::Tick(ms) => {
                now += Duration::from_millis(u64::from(*ms));
                hs.tick(now)
            }
        };
        check(actions, &hs, admitted_ok, acked, &mut admit_asked);
    }
});
