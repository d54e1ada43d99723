//! The sans-IO sync download schedule (`p2p/src/sync/download.rs`) fed arbitrary peer
//! events: peers joining and leaving, header requests and batches (from a main chain, a fork,
//! or broken), announcements, block assignments, blocks delivered (asked for or not, right or
//! wrong), not-found answers, clock ticks, imports of what is ready and resets.
//!
//! Invariants: nothing panics; at most `MAX_WANTED` blocks wanted; an assignment is at most
//! the asked number of distinct hashes; blocks come out of `take_ready` in chain order (each
//! the child of the one before), at most the asked number.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use cairn_chain::{Block, Hash, Header};
use cairn_fuzz::Pool;
use cairn_p2p::config::MAX_HEADERS;
use cairn_p2p::sync::download::{Claim, Download, HeadersFrom, MAX_WANTED};
use libfuzzer_sys::fuzz_target;

/// The main chain's headers (height = index) and a fork from height [`FORK_AT`].
struct Chains {
    main: Vec<Header>,
    fork: Vec<Header>,
    /// Every header of both by hash: an honest answer looks its blocks up here (a scan hashing
    /// up to 3,000 headers per block was 80% of this target's time).
    by_hash: HashMap<Hash, Header>,
}

const MAIN_LEN: u64 = 2_600;
const FORK_AT: u64 = 50;
const FORK_LEN: u64 = 400;

fn chains() -> &'static Chains {
    static C: OnceLock<Chains> = OnceLock::new();
    C.get_or_init(|| {
        let main = cairn_fuzz::chain_headers(0, MAIN_LEN);
        let mut fork = Vec::new();
        let mut prev = main[FORK_AT as usize].clone();
        for _ in 0..FORK_LEN {
            let h = Header { height: prev.height + 1, prev_hash: prev.hash(), farmer: cairn_chain::Address([9; 32]), ..prev.clone() };
            fork.push(h.clone());
            prev = h;
        }
        let by_hash = main.iter().chain(&fork).map(|h| (h.hash(), h.clone())).collect();
        Chains { main, fork, by_hash }
    })
}

fn header(fork: bool, i: u16) -> &'static Header {
    let c = chains();
    if fork { &c.fork[usize::from(i) % c.fork.len()] } else { &c.main[usize::from(i) % c.main.len()] }
}

#[derive(Arbitrary, Debug)]
enum Event {
    AddPeer(Pool),
    RemovePeer(Pool),
    /// Ask for headers if the schedule wants to (claiming more work or not).
    AskHeaders(Pool, bool, Option<[u8; 2]>),
    /// A header batch: `n` headers from `from` (main chain or fork), optionally with one
    /// swapped out of order.
    Headers {
        peer: Pool,
        fork: bool,
        from: u16,
        n: u16,
        full: bool,
        broken: Option<u16>,
    },
    Announced(Pool, bool, u16),
    Assign(Pool, u8),
    /// Blocks by index into the chains.
    Blocks(Pool, Vec<(bool, u16)>),
    /// The blocks of the peer's first assignment, in order (as an honest peer answers).
    Answer(Pool, u8),
    NotFound(Pool, Vec<(bool, u16)>),
    UnassignLast(Pool),
    Tick(u16, bool),
    TakeReady(u8, u32),
    Reset,
}

fn block_of(h: &Header) -> Block {
    Block { header: h.clone(), transactions: Vec::new() }
}

fuzz_target!(|events: Vec<Event>| {
    let mut d = Download::default();
    let mut now = Instant::now();
    // What our store holds: the main chain's first header, then whatever was imported.
    let mut stored: HashSet<Hash> = HashSet::from([chains().main[0].hash()]);
    let mut assigned: Vec<(Pool, Vec<Hash>)> = Vec::new();
    for ev in &events {
        match ev {
            Event::AddPeer(p) => d.add_peer(p.node()),
            Event::RemovePeer(p) => {
                d.remove_peer(&p.node());
            }
            Event::AskHeaders(p, more_work, claim) => {
                if let Some(from) = d.headers_wanted(&p.node(), *more_work) {
                    if let HeadersFrom::After(h) = from {
                        assert!(d.last_hash() == Some(h) || !stored.contains(&h) || d.wanted() > 0);
                    }
                    let claim = claim.map(|c| if c[0] == 0 { Claim::Orphan } else { Claim::Work(cairn_chain::Work::from_bytes([c[1]; 32])) });
                    d.asked_headers(p.node(), from, claim, now);
                }
            }
            Event::Headers { peer, fork, from, n, full, broken } => {
                let n = usize::from(*n) % (MAX_HEADERS + 1);
                let mut batch: Vec<Header> = (0..n).map(|i| header(*fork, from.wrapping_add(i as u16)).clone()).collect();
                if let Some(b) = broken
                    && n > 1
                {
                    batch.swap(usize::from(*b) % n, 0);
                }
                let _ = d.on_headers(peer.node(), &batch, *full, |h| stored.contains(h), |h| stored.contains(h));
            }
            Event::Announced(p, fork, i) => d.announced(&p.node(), &header(*fork, *i).hash()),
            Event::Assign(p, max) => {
                if let Some(hashes) = d.assign(p.node(), usize::from(*max), now) {
                    assert!(hashes.len() <= usize::from(*max), "assigned more than asked");
                    let distinct: HashSet<_> = hashes.iter().collect();
                    assert_eq!(distinct.len(), hashes.len(), "an assignment repeats a hash");
                    assigned.push((*p, hashes));
                }
            }
            Event::Blocks(p, v) => {
                let blocks = v.iter().map(|(f, i)| block_of(header(*f, *i))).collect();
                let _ = d.on_blocks(p.node(), blocks, now);
            }
            Event::Answer(p, k) => {
                let Some(i) = assigned.iter().position(|(q, _)| q.node() == p.node()) else { continue };
                let (_, hashes) = assigned.remove(i);
                let c = chains();
                let blocks = hashes.iter().take(usize::from(*k).max(1)).filter_map(|h| c.by_hash.get(h)).map(block_of).collect();
                let _ = d.on_blocks(p.node(), blocks, now);
            }
            Event::NotFound(p, v) => {
                let hashes: Vec<Hash> = v.iter().map(|(f, i)| header(*f, *i).hash()).collect();
                d.on_not_found(&p.node(), &hashes);
            }
            Event::UnassignLast(p) => d.unassign_last(&p.node()),
            Event::Tick(ms, alternatives) => {
                now += Duration::from_millis(u64::from(*ms) * 4);
                let _ = d.tick(now, |_| *alternatives);
            }
            Event::TakeReady(max, max_bytes) => {
                let ready = d.take_ready(usize::from(*max), *max_bytes as usize);
                assert!(ready.len() <= usize::from(*max));
                for pair in ready.windows(2) {
                    assert_eq!(pair[1].block.header.prev_hash, pair[0].block.hash(), "ready blocks out of chain order");
                }
                for r in &ready {
                    stored.insert(r.block.hash());
                }
                if !ready.is_empty() {
                    d.tip_moved();
                }
            }
            Event::Reset => d.reset(),
        }
        assert!(d.wanted() <= MAX_WANTED, "{} blocks wanted", d.wanted());
    }
});
