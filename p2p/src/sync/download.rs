//! The block download schedule of a catch-up sync, as a sans-IO state machine owned by the
//! sync task: which blocks are wanted (from checked headers, in chain order), which peer has
//! shown it has which, which peer was asked for which, and which have arrived and wait to be
//! imported in order. Time is always an argument (`now`), so every rule is tested here with
//! virtual time.
//!
//! # Trusting no claim
//! A peer is asked for a block only if its own headers (or a hash it announced that matches a
//! header we hold) showed that its best chain contains it: [`PeerSync::known`], the highest
//! wanted height it has shown. Heights and work in `Hello`, `Status` or `NewBlock` only decide
//! whom to ask for headers, never whom to ask for blocks. Wanted blocks form one chain, so a
//! peer known at height `k` has every wanted block up to `k`.
//!
//! # Bounds and stalls
//! - Only the first [`WINDOW`] wanted blocks are asked for, and none past an arrived one while
//!   [`MAX_BUFFERED`] bytes wait, so memory stays bounded however far behind we start; at most
//!   [`MAX_WANTED`] hashes are queued from headers.
//! - Each peer has at most [`REQUESTS_PER_PEER`] requests out, answered in order (one stream).
//! - A peer that delivers nothing for its stall timeout ([`STALL_MIN`], doubling per stall up
//!   to [`STALL_MAX`], halving again as it delivers; Bitcoin Core's 2 s → 64 s) loses its
//!   requests to the others. Blocks nobody else has shown stay with it, unless another peer
//!   offers more work: then what only it has shown is dropped from the schedule, so headers it
//!   never serves cannot hold the sync. A peer that leaves takes its evidence with it, and the
//!   same cut applies.
//! - An answer cut short by the frame budget is not a refusal: what it left out is asked
//!   again. Only a `NotFound` says a peer lacks a block, and one for a block its own headers
//!   listed is [`Misbehaviour::WithheldBlocks`](crate::verdict::Misbehaviour::WithheldBlocks).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use cairn_chain::{Block, Hash, Header};

use crate::identity::NodeId;

/// How many wanted blocks, from the oldest, may be asked for or held at once.
pub const WINDOW: usize = 1024;
/// Arrived-but-not-imported bytes above which nothing more is asked for. The import holds up
/// to three runs besides (two being checked, one committing: ~380 small blocks), so this only
/// covers the time to the next arrival; more only costs memory (a node syncing small blocks
/// held the whole window, ~10 MiB, once checks outpaced commits; at 4 MiB, then 2 MiB, a
/// 20,000-block sync peaked ~3 MiB higher each time, no faster). A block larger than this is
/// still fetched (one at a time: nothing past an arrived block is asked for while this many
/// bytes wait).
pub const MAX_BUFFERED: usize = 1 << 20;
/// Most `GetBlocks` requests one peer has outstanding.
pub const REQUESTS_PER_PEER: usize = 2;
/// Most wanted hashes queued from headers (asking for more headers waits below this).
pub const MAX_WANTED: usize = 4 * crate::config::MAX_HEADERS;
/// First stall timeout of a peer: a range not delivered within it goes to another peer.
pub const STALL_MIN: Duration = Duration::from_secs(2);
/// Longest stall timeout (a slow peer that keeps stalling is still used, ever more patiently).
pub const STALL_MAX: Duration = Duration::from_secs(64);
/// A header request unanswered this long is given up (the peer may be asked again).
pub const HEADERS_TIMEOUT: Duration = Duration::from_secs(10);
/// Most peers remembered per block as lacking it.
const MAX_LACKED: usize = 16;
/// Most `NotFound` hashes held per peer until the `Blocks` answer they precede.
const MAX_NOT_FOUND: usize = crate::config::MAX_BLOCKS_PER_REQUEST;

enum Slot {
    Queued,
    Asked,
    Got(Box<Block>, NodeId),
}

/// One wanted block.
struct Wanted {
    hash: Hash,
    slot: Slot,
    /// The peer whose headers first listed it.
    listed_by: NodeId,
    /// Peers that said `NotFound` for it: not asked for it again.
    lacked_by: Vec<NodeId>,
}

/// A block ready to import, with who listed it and who served it.
pub struct Ready {
    /// The block.
    pub block: Block,
    /// The peer that sent the body.
    pub served_by: NodeId,
    /// The peer whose header chain listed it.
    pub listed_by: NodeId,
}

/// Why a header request went out: what the peer is expected to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// It claimed this much total work (more than ours).
    Work(cairn_chain::Work),
    /// It sent a block whose parent we lack: it must show the ancestors.
    Orphan,
}

/// Where a header request should start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadersFrom {
    /// From our chain's locator, after the schedule's last block if there is one.
    Tip,
    /// Right after this wanted block (a continuation).
    After(Hash),
}

/// One outstanding `GetBlocks`. Answers come in order, so a request stays queued until its
/// answer comes, even after it was given up (a stall, a reset): it is then only `abandoned`,
/// its blocks asked of others, and its late answer still pairs with it (and what it brings is
/// still taken).
struct Request {
    hashes: Vec<Hash>,
    abandoned: bool,
}

/// What the schedule knows of one peer.
struct PeerSync {
    /// Highest wanted height this peer has shown it has.
    known: Option<u64>,
    requests: VecDeque<Request>,
    /// Outstanding header request: when, and what it relied on.
    headers: Option<(Instant, Option<Claim>)>,
    /// Its last header batch was full: it has more after it.
    more: bool,
    /// The schedule epoch of its last header request from our tip.
    asked_epoch: Option<u64>,
    /// Current stall timeout.
    timeout: Duration,
    /// When it last delivered a block (or was first asked).
    last_progress: Option<Instant>,
    /// `NotFound` hashes waiting for the `Blocks` answer they precede.
    not_found: Vec<Hash>,
}

impl PeerSync {
    fn new() -> Self {
        PeerSync {
            known: None,
            requests: VecDeque::new(),
            headers: None,
            more: false,
            asked_epoch: None,
            timeout: STALL_MIN,
            last_progress: None,
            not_found: Vec::new(),
        }
    }
}

/// What a header batch did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HeadersTaken {
    /// New blocks queued.
    pub queued: usize,
    /// Whether it showed anything we did not have stored (queued, or matching wanted blocks).
    pub showed_anything: bool,
    /// The claim the request relied on.
    pub claim: Option<Claim>,
}

/// Why a header batch was not taken.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadersRejected {
    /// Not from a peer we asked, or nothing asked.
    Unsolicited,
    /// Headers do not follow each other (parent hash, height): a protocol violation.
    NotAChain,
}

/// What a `Blocks` answer did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BlocksTaken {
    /// Blocks kept for import.
    pub kept: usize,
    /// Blocks it said `NotFound` for although its own headers had listed them.
    pub withheld: usize,
}

/// A peer whose oldest request went unanswered for its stall timeout.
#[derive(Debug, PartialEq, Eq)]
pub struct Stall {
    /// The peer.
    pub peer: NodeId,
    /// Wanted blocks dropped because only it had shown them (and another peer offers more
    /// work).
    pub dropped: usize,
    /// Its new timeout.
    pub timeout: Duration,
}

/// The download schedule.
#[derive(Default)]
pub struct Download {
    /// Wanted blocks in chain order; heights are `base..`.
    slots: VecDeque<Wanted>,
    /// Height of `slots[0]`.
    base: u64,
    /// Hash → height, for every slot.
    index: HashMap<Hash, u64>,
    peers: HashMap<NodeId, PeerSync>,
    /// Bytes of arrived blocks not yet taken.
    buffered: usize,
    /// Bumped whenever wanted blocks are dropped: peers may be asked for headers afresh.
    epoch: u64,
}

impl Download {
    /// Whether a sync is in progress (blocks wanted or headers asked for).
    pub fn is_active(&self) -> bool {
        !self.slots.is_empty() || self.peers.values().any(|p| p.headers.is_some())
    }

    /// Height of the last wanted block, if any.
    pub fn last_height(&self) -> Option<u64> {
        (!self.slots.is_empty()).then(|| self.base + self.slots.len() as u64 - 1)
    }

    /// Hash of the last wanted block: a header request from our tip continues after it.
    pub fn last_hash(&self) -> Option<Hash> {
        self.slots.back().map(|w| w.hash)
    }

    /// Wanted blocks (queued, asked or arrived).
    pub fn wanted(&self) -> usize {
        self.slots.len()
    }

    /// A peer joins (its requests and evidence start empty).
    pub fn add_peer(&mut self, peer: NodeId) {
        self.peers.entry(peer).or_insert_with(PeerSync::new);
    }

    /// A peer leaves: its requests go back to the queue, and what only it had shown is
    /// dropped. Returns how many wanted blocks were dropped.
    pub fn remove_peer(&mut self, peer: &NodeId) -> usize {
        let Some(p) = self.peers.remove(peer) else { return 0 };
        for req in p.requests {
            for hash in &req.hashes {
                self.requeue(hash);
            }
        }
        self.cut_to_reach()
    }

    /// What `peer` has shown it has (for tests and logs).
    pub fn known(&self, peer: &NodeId) -> Option<u64> {
        self.peers.get(peer).and_then(|p| p.known)
    }

    /// Whether `peer` has block requests outstanding.
    pub fn has_requests(&self, peer: &NodeId) -> bool {
        self.peers.get(peer).is_some_and(|p| !p.requests.is_empty())
    }

    /// `peer`'s current stall timeout (the sync hands out ranges to the quickest peers first).
    pub fn timeout(&self, peer: &NodeId) -> Duration {
        self.peers.get(peer).map_or(STALL_MAX, |p| p.timeout)
    }

    /// Whether `peer` has a header request outstanding.
    pub fn headers_from(&self, peer: &NodeId) -> bool {
        self.peers.get(peer).is_some_and(|p| p.headers.is_some())
    }

    /// Whether and from where to ask `peer` for headers now. `more_work`: it claims more work
    /// than our tip. A peer is asked from our tip once per schedule epoch; after that only to
    /// continue a full batch.
    pub fn headers_wanted(&self, peer: &NodeId, more_work: bool) -> Option<HeadersFrom> {
        let p = self.peers.get(peer)?;
        if p.headers.is_some() {
            return None;
        }
        // Room for a whole batch: a continuation is only asked for when all of it can be queued.
        let room = self.slots.len() + crate::config::MAX_HEADERS <= MAX_WANTED;
        if more_work && p.asked_epoch != Some(self.epoch) && (room || self.slots.is_empty()) {
            return Some(HeadersFrom::Tip);
        }
        if !p.more {
            return None;
        }
        match (p.known, self.last_height()) {
            (Some(k), Some(last)) if k == last && room => self.slots.back().map(|w| HeadersFrom::After(w.hash)),
            (Some(k), Some(last)) if k < last => self.hash_at(k).map(HeadersFrom::After),
            _ => None,
        }
    }

    /// Our tip moved. With no blocks wanted, a new epoch starts: peers that still claim more
    /// work than the new tip are asked for headers again (a liar costs one request, and one
    /// penalty, per tip; a running schedule is not disturbed).
    pub fn tip_moved(&mut self) {
        if self.slots.is_empty() {
            self.epoch += 1;
        }
    }

    /// Records a header request to `peer`.
    pub fn asked_headers(&mut self, peer: NodeId, from: HeadersFrom, claim: Option<Claim>, now: Instant) {
        let epoch = self.epoch;
        let p = self.peers.entry(peer).or_insert_with(PeerSync::new);
        p.headers = Some((now, claim));
        if from == HeadersFrom::Tip {
            p.asked_epoch = Some(epoch);
        }
    }

    /// A hash `peer` announced (`NewBlock`, `Status`): if it is a wanted block, the peer has
    /// shown it has it and everything before it.
    pub fn announced(&mut self, peer: &NodeId, hash: &Hash) {
        if let Some(&h) = self.index.get(hash)
            && let Some(p) = self.peers.get_mut(peer)
        {
            p.known = Some(p.known.map_or(h, |k| k.max(h)));
        }
    }

    /// Takes a header batch from `peer`: every header must follow the one before it. Headers
    /// matching wanted blocks raise what the peer has shown; after any we already `have`
    /// stored or want, the first new one must follow the last wanted block or, with nothing
    /// wanted, a stored block (`parent_stored`), and then the new ones are queued. A batch on
    /// another branch only counts as evidence.
    pub fn on_headers(
        &mut self,
        peer: NodeId,
        headers: &[Header],
        full: bool,
        have: impl Fn(&Hash) -> bool,
        parent_stored: impl Fn(&Hash) -> bool,
    ) -> Result<HeadersTaken, HeadersRejected> {
        let Some((_, claim)) = self.peers.get_mut(&peer).and_then(|p| p.headers.take()) else {
            return Err(HeadersRejected::Unsolicited);
        };
        for pair in headers.windows(2) {
            if pair[1].prev_hash != pair[0].hash() || pair[1].height != pair[0].height.wrapping_add(1) {
                return Err(HeadersRejected::NotAChain);
            }
        }
        let mut taken = HeadersTaken { claim, ..Default::default() };
        let hashes: Vec<Hash> = headers.iter().map(Header::hash).collect();
        let mut known = None;
        let mut skip = 0;
        for hash in &hashes {
            if let Some(&height) = self.index.get(hash) {
                known = Some(height);
                taken.showed_anything = true;
            } else if !have(hash) {
                break;
            }
            skip += 1;
        }
        let fresh = &headers[skip..];
        let mut more = full;
        if let Some(first) = fresh.first() {
            let connects = match self.slots.back() {
                Some(last) => first.prev_hash == last.hash && Some(first.height) == self.last_height().map(|h| h + 1),
                None => parent_stored(&first.prev_hash),
            };
            // Its chain holds the block the first new header follows.
            if let Some(&h) = self.index.get(&first.prev_hash) {
                known = Some(known.map_or(h, |k: u64| k.max(h)));
            }
            let room = MAX_WANTED.saturating_sub(self.slots.len());
            if connects && room > 0 {
                if self.slots.is_empty() {
                    self.base = first.height;
                }
                let n = fresh.len().min(room);
                for (h, hash) in fresh[..n].iter().zip(&hashes[skip..skip + n]) {
                    self.index.insert(*hash, h.height);
                    self.slots.push_back(Wanted { hash: *hash, slot: Slot::Queued, listed_by: peer, lacked_by: Vec::new() });
                    known = Some(h.height);
                }
                more |= n < fresh.len();
                taken.queued = n;
                taken.showed_anything = true;
            } else if !connects {
                // Another branch than the one being fetched: only evidence counts.
                more = false;
            }
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            if let Some(k) = known {
                p.known = Some(p.known.map_or(k, |old| old.max(k)));
            }
            p.more = more;
        }
        Ok(taken)
    }

    /// Up to `max` queued blocks within the window that `peer` has shown it has, marked
    /// asked; `None` if it has enough out, or nothing fits. Blocks it said it lacks are not
    /// asked of it again. With [`MAX_BUFFERED`] bytes waiting, only blocks before the first
    /// arrived one are handed out: the import waits on them, and they drain the buffer.
    pub fn assign(&mut self, peer: NodeId, max: usize, now: Instant) -> Option<Vec<Hash>> {
        let p = self.peers.get(&peer)?;
        if p.requests.len() >= REQUESTS_PER_PEER {
            return None;
        }
        let known = p.known?;
        let full = self.buffered >= MAX_BUFFERED;
        let mut hashes = Vec::new();
        for (i, w) in self.slots.iter_mut().enumerate().take(WINDOW) {
            if self.base + i as u64 > known || hashes.len() == max || (full && matches!(w.slot, Slot::Got(..))) {
                break;
            }
            if matches!(w.slot, Slot::Queued) && !w.lacked_by.contains(&peer) {
                w.slot = Slot::Asked;
                hashes.push(w.hash);
            }
        }
        if hashes.is_empty() {
            return None;
        }
        let p = self.peers.get_mut(&peer)?;
        if !p.requests.iter().any(|r| !r.abandoned) {
            p.last_progress = Some(now);
        }
        p.requests.push_back(Request { hashes: hashes.clone(), abandoned: false });
        Some(hashes)
    }

    /// `peer` says it lacks these blocks; the `Blocks` answer that follows settles them.
    pub fn on_not_found(&mut self, peer: &NodeId, hashes: &[Hash]) {
        if let Some(p) = self.peers.get_mut(peer)
            && !p.requests.is_empty()
        {
            let room = MAX_NOT_FOUND.saturating_sub(p.not_found.len());
            p.not_found.extend(hashes.iter().take(room));
        }
    }

    /// Takes `peer`'s answer to its oldest request: the blocks it was asked for are kept; what
    /// it said `NotFound` for is marked lacking from it (and, if its headers had shown them,
    /// counted as withheld and its evidence cut below them); what it left out without a word
    /// was cut short by the frame budget and is queued again for anyone. `None` if nothing
    /// was asked of it (an unsolicited answer).
    pub fn on_blocks(&mut self, peer: NodeId, blocks: Vec<Block>, now: Instant) -> Option<BlocksTaken> {
        let p = self.peers.get_mut(&peer)?;
        let req = p.requests.pop_front()?;
        let not_found = std::mem::take(&mut p.not_found);
        let mut taken = BlocksTaken::default();
        let mut delivered = Vec::new();
        for block in blocks {
            let hash = block.hash();
            if !req.hashes.contains(&hash) {
                continue;
            }
            delivered.push(hash);
            let size = block.encoded_len();
            // Taken unless it arrived already (from another peer it went to meanwhile).
            if let Some(w) = self.wanted_mut(&hash)
                && !matches!(w.slot, Slot::Got(..))
            {
                w.slot = Slot::Got(Box::new(block), peer);
                self.buffered += size;
                taken.kept += 1;
            }
        }
        let known = self.peers.get(&peer).and_then(|p| p.known);
        let mut lowest_lacking = None;
        for hash in &req.hashes {
            let Some(&height) = self.index.get(hash) else { continue };
            let lacks = not_found.contains(hash) && !delivered.contains(hash);
            if let Some(w) = self.wanted_mut(hash) {
                // An abandoned request's blocks were asked of others already: left alone.
                if matches!(w.slot, Slot::Asked) && !req.abandoned {
                    w.slot = Slot::Queued;
                }
                if lacks && !w.lacked_by.contains(&peer) && w.lacked_by.len() < MAX_LACKED {
                    w.lacked_by.push(peer);
                }
            }
            if lacks && known.is_some_and(|k| height <= k) {
                taken.withheld += 1;
                lowest_lacking = Some(lowest_lacking.map_or(height, |l: u64| l.min(height)));
            }
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            // Progress is blocks, or a word that it lacks them; an answer with neither (the
            // server always sends at least one block it has) does not keep a staller alive.
            if taken.kept > 0 {
                p.last_progress = Some(now);
                p.timeout = (p.timeout / 2).max(STALL_MIN);
            } else if !not_found.is_empty() && !p.requests.is_empty() {
                p.last_progress = Some(now);
            }
            if let Some(l) = lowest_lacking {
                // Its headers said it had these; its answer says not: believe the answer.
                p.known = l.checked_sub(1).filter(|k| *k >= self.base);
            }
        }
        if lowest_lacking.is_some() {
            self.cut_to_reach();
        }
        Some(taken)
    }

    /// Takes back `peer`'s newest request (it could not be sent).
    pub fn unassign_last(&mut self, peer: &NodeId) {
        let Some(req) = self.peers.get_mut(peer).and_then(|p| p.requests.pop_back()) else { return };
        for hash in &req.hashes {
            self.requeue(hash);
        }
    }

    /// Finds stalled peers: one whose oldest request saw no delivery for its timeout gives
    /// its requests back and has its timeout doubled. If `alternatives` (another peer claims
    /// more work than our tip), what only the stalled peer had shown is dropped. Header
    /// requests unanswered for [`HEADERS_TIMEOUT`] are given up.
    pub fn tick(&mut self, now: Instant, alternatives: impl Fn(&NodeId) -> bool) -> Vec<Stall> {
        let stalled: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.requests.iter().any(|r| !r.abandoned) && p.last_progress.is_some_and(|t| now.saturating_duration_since(t) > p.timeout))
            .map(|(id, _)| *id)
            .collect();
        for p in self.peers.values_mut() {
            if p.headers.is_some_and(|(t, _)| now.saturating_duration_since(t) > HEADERS_TIMEOUT) {
                p.headers = None;
            }
        }
        let mut out = Vec::new();
        for id in stalled {
            let Some(p) = self.peers.get_mut(&id) else { continue };
            let mut given_up = Vec::new();
            for req in p.requests.iter_mut().filter(|r| !r.abandoned) {
                req.abandoned = true;
                given_up.extend(req.hashes.iter().copied());
            }
            p.timeout = (p.timeout * 2).min(STALL_MAX);
            p.last_progress = None;
            let timeout = p.timeout;
            for hash in &given_up {
                self.requeue(hash);
            }
            let mut dropped = 0;
            if alternatives(&id) {
                let others = self.peers.iter().filter(|(o, _)| **o != id).filter_map(|(_, p)| p.known).max();
                if let Some(p) = self.peers.get_mut(&id)
                    && p.known.is_some_and(|k| others.is_none_or(|o| k > o))
                {
                    p.known = others;
                    p.more = false;
                    dropped = self.cut_to_reach();
                    // Not asked from our tip again in the new epoch: the others' headers go
                    // first, and its own only show what it has.
                    let epoch = self.epoch;
                    if let Some(p) = self.peers.get_mut(&id) {
                        p.asked_epoch = Some(epoch);
                    }
                }
            }
            out.push(Stall { peer: id, dropped, timeout });
        }
        out
    }

    /// Arrived blocks at the front, in order: up to `max` blocks, and past `max_bytes` only
    /// to take the first.
    pub fn take_ready(&mut self, max: usize, max_bytes: usize) -> Vec<Ready> {
        let mut out = Vec::new();
        let mut bytes = 0;
        while out.len() < max {
            let size = match self.slots.front() {
                Some(Wanted { slot: Slot::Got(block, _), .. }) => block.encoded_len(),
                _ => break,
            };
            if !out.is_empty() && bytes + size > max_bytes {
                break;
            }
            let Some(Wanted { hash, slot: Slot::Got(block, served_by), listed_by, .. }) = self.slots.pop_front() else { break };
            self.index.remove(&hash);
            self.base += 1;
            self.buffered = self.buffered.saturating_sub(size);
            bytes += size;
            out.push(Ready { block: *block, served_by, listed_by });
        }
        out
    }

    /// Forgets every wanted block (an invalid block, or a run that could not connect).
    /// Outstanding requests are abandoned: their late answers pair with them and bring
    /// nothing.
    pub fn reset(&mut self) {
        self.slots.clear();
        self.index.clear();
        self.buffered = 0;
        self.epoch += 1;
        for p in self.peers.values_mut() {
            p.known = None;
            for r in p.requests.iter_mut() {
                r.abandoned = true;
            }
            p.more = false;
            p.not_found.clear();
        }
    }

    /// Drops the wanted blocks from the first one that no peer has shown and that has not
    /// arrived: nothing past it can be imported. Returns how many were dropped.
    fn cut_to_reach(&mut self) -> usize {
        let reach = self.peers.values().filter_map(|p| p.known).max();
        let cut = self.slots.iter().enumerate().find(|(i, w)| {
            let height = self.base + *i as u64;
            !matches!(w.slot, Slot::Got(..)) && reach.is_none_or(|r| height > r)
        });
        let Some((i, _)) = cut else { return 0 };
        let dropped: Vec<Wanted> = self.slots.drain(i..).collect();
        for w in &dropped {
            self.index.remove(&w.hash);
            if let Slot::Got(b, _) = &w.slot {
                self.buffered = self.buffered.saturating_sub(b.encoded_len());
            }
        }
        // Requests for dropped blocks stay paired with their answers (answers come in order);
        // the dropped hashes in them are ignored when they arrive.
        let last = self.last_height();
        for p in self.peers.values_mut() {
            if p.known.is_some_and(|k| last.is_none_or(|l| k > l)) {
                p.known = last;
            }
        }
        self.epoch += 1;
        dropped.len()
    }

    fn hash_at(&self, height: u64) -> Option<Hash> {
        let i = usize::try_from(height.checked_sub(self.base)?).ok()?;
        self.slots.get(i).map(|w| w.hash)
    }

    fn wanted_mut(&mut self, hash: &Hash) -> Option<&mut Wanted> {
        let height = *self.index.get(hash)?;
        let i = usize::try_from(height.checked_sub(self.base)?).ok()?;
        self.slots.get_mut(i)
    }

    fn requeue(&mut self, hash: &Hash) {
        if let Some(w) = self.wanted_mut(hash)
            && matches!(w.slot, Slot::Asked)
        {
            w.slot = Slot::Queued;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_chain::{Address, Target};

    fn chain_from(prev: Hash, first: u64, n: u64, salt: u64) -> Vec<Block> {
        let mut prev = prev;
        (first..first + n)
            .map(|height| {
                let header = Header {
                    version: cairn_chain::block::HEADER_VERSION,
                    height,
                    prev_hash: prev,
                    tx_root: Hash::ZERO,
                    timestamp: height,
                    target: Target::MAX,
                    farmer: Address([0; 32]),
                    nonce: salt,
                };
                prev = header.hash();
                Block { header, transactions: Vec::new() }
            })
            .collect()
    }

    const GENESIS: Hash = Hash([7; 32]);

    fn chain(n: u64) -> Vec<Block> {
        chain_from(GENESIS, 1, n, 0)
    }

    fn headers(blocks: &[Block]) -> Vec<Header> {
        blocks.iter().map(|b| b.header.clone()).collect()
    }

    fn peer(b: u8) -> NodeId {
        cairn_chain::PublicKey([b; 32])
    }

    /// `p` sends the headers of `blocks` (asked from our tip).
    fn show(d: &mut Download, p: NodeId, blocks: &[Block]) -> HeadersTaken {
        d.add_peer(p);
        d.asked_headers(p, HeadersFrom::Tip, None, Instant::now());
        d.on_headers(p, &headers(blocks), false, |_| false, |h| *h == GENESIS).unwrap()
    }

    fn queued(n: u64, peers: &[u8]) -> (Download, Vec<Block>) {
        let blocks = chain(n);
        let mut d = Download::default();
        for p in peers {
            show(&mut d, peer(*p), &blocks);
        }
        assert_eq!(d.wanted(), n as usize);
        (d, blocks)
    }

    fn hashes(blocks: &[Block]) -> Vec<Hash> {
        blocks.iter().map(Block::hash).collect()
    }

    #[test]
    fn parallel_ranges_and_in_order_import() {
        let (mut d, blocks) = queued(200, &[1, 2]);
        let now = Instant::now();
        let a = d.assign(peer(1), 64, now).unwrap();
        let b = d.assign(peer(2), 64, now).unwrap();
        assert_eq!(a[0], blocks[0].hash());
        assert_eq!(b[0], blocks[64].hash(), "the second peer gets the next range");
        // The later range arrives first: nothing is ready until the first does.
        assert_eq!(d.on_blocks(peer(2), blocks[64..128].to_vec(), now).unwrap().kept, 64);
        assert!(d.take_ready(1000, usize::MAX).is_empty());
        assert_eq!(d.on_blocks(peer(1), blocks[..64].to_vec(), now).unwrap().kept, 64);
        let ready = d.take_ready(1000, usize::MAX);
        assert_eq!(ready.len(), 128);
        assert!(ready.iter().zip(&blocks).all(|(got, want)| got.block.hash() == want.hash()));
        assert_eq!(ready[0].served_by, peer(1));
        assert_eq!(ready[64].served_by, peer(2));
        assert_eq!(ready[64].listed_by, peer(1), "listed by the first header peer");
    }

    #[test]
    fn blocks_are_asked_only_of_peers_whose_headers_showed_them() {
        let (mut d, blocks) = queued(100, &[1]);
        let now = Instant::now();
        d.add_peer(peer(2));
        assert!(d.assign(peer(2), 64, now).is_none(), "a peer that showed nothing is asked nothing, whatever it claims");
        // It announces a hash we want: it has that block and everything before it.
        d.announced(&peer(2), &blocks[9].hash());
        assert_eq!(d.assign(peer(2), 64, now).unwrap(), hashes(&blocks[..10]));
        // A shorter header answer shows a shorter chain.
        d.add_peer(peer(3));
        d.asked_headers(peer(3), HeadersFrom::Tip, None, now);
        d.on_headers(peer(3), &headers(&blocks[..30]), false, |_| false, |h| *h == GENESIS).unwrap();
        assert_eq!(d.known(&peer(3)), Some(30));
        assert_eq!(d.assign(peer(3), 64, now).unwrap(), hashes(&blocks[10..30]));
        // Unsolicited headers are refused.
        assert_eq!(d.on_headers(peer(3), &headers(&blocks), false, |_| false, |_| true), Err(HeadersRejected::Unsolicited));
    }

    #[test]
    fn a_stalled_range_goes_to_another_peer_within_seconds_and_the_timeout_doubles() {
        let (mut d, blocks) = queued(100, &[1, 2]);
        let t0 = Instant::now();
        let a = d.assign(peer(1), 64, t0).unwrap();
        assert!(d.tick(t0 + Duration::from_millis(1900), |_| false).is_empty(), "not yet");
        let stalls = d.tick(t0 + Duration::from_millis(2100), |_| false);
        assert_eq!(stalls, vec![Stall { peer: peer(1), dropped: 0, timeout: 2 * STALL_MIN }]);
        let t1 = t0 + Duration::from_millis(2100);
        assert_eq!(d.assign(peer(2), 64, t1).unwrap(), a, "the stalled peer's range goes to another peer");
        assert_eq!(d.on_blocks(peer(2), blocks[..64].to_vec(), t1).unwrap().kept, 64);
        // A slow peer answers late (nothing here) and stalls again: 4 s this time, then 8 s,
        // ..., at most 64 s.
        assert_eq!(d.on_blocks(peer(1), Vec::new(), t1).unwrap().kept, 0, "a late answer pairs with its abandoned request");
        d.assign(peer(1), 64, t1).unwrap();
        assert!(d.tick(t1 + Duration::from_millis(3900), |_| false).is_empty());
        assert_eq!(d.tick(t1 + Duration::from_millis(4100), |_| false)[0].timeout, 8 * Duration::from_secs(1));
        let mut t = t1 + Duration::from_millis(4100);
        for _ in 0..10 {
            d.on_blocks(peer(1), Vec::new(), t).unwrap();
            d.assign(peer(1), 64, t).unwrap();
            t += STALL_MAX + Duration::from_secs(1);
            d.tick(t, |_| false);
        }
        d.on_blocks(peer(1), Vec::new(), t).unwrap();
        d.assign(peer(1), 64, t).unwrap();
        assert_eq!(d.tick(t + STALL_MAX + Duration::from_secs(1), |_| false)[0].timeout, STALL_MAX);
        // Delivering halves it again.
        let t = t + STALL_MAX * 2;
        d.on_blocks(peer(1), Vec::new(), t).unwrap();
        let asked = d.assign(peer(1), 64, t).unwrap();
        let got: Vec<Block> = blocks.iter().filter(|b| asked.contains(&b.hash())).take(10).cloned().collect();
        assert_eq!(d.on_blocks(peer(1), got, t).unwrap().kept, 10, "cut short: the rest is asked again");
        d.assign(peer(1), 64, t).unwrap();
        assert!(d.tick(t + STALL_MAX / 2 + Duration::from_millis(10), |_| false).len() == 1);
    }

    #[test]
    fn a_stalled_peers_late_answer_is_still_taken_and_never_misread() {
        let (mut d, blocks) = queued(20, &[1, 2]);
        let t0 = Instant::now();
        let first = d.assign(peer(1), 10, t0).unwrap();
        d.tick(t0 + Duration::from_secs(3), |_| false);
        assert_eq!(d.assign(peer(2), 10, t0).unwrap(), first, "reassigned");
        // Peer 1 gets a new range; its late answer to the first still pairs with the first.
        let second = d.assign(peer(1), 10, t0 + Duration::from_secs(3)).unwrap();
        assert_ne!(second, first);
        assert_eq!(d.on_blocks(peer(1), blocks[..10].to_vec(), t0).unwrap().kept, 10, "late, but taken");
        assert_eq!(d.on_blocks(peer(2), blocks[..10].to_vec(), t0).unwrap().kept, 0, "already here");
        assert_eq!(d.on_blocks(peer(1), blocks[10..20].to_vec(), t0).unwrap().kept, 10, "the second answer pairs with the second request");
        assert_eq!(d.take_ready(100, usize::MAX).len(), 20);
        // A NotFound with nothing outstanding is ignored (it cannot taint a later answer).
        let (mut d, blocks) = queued(5, &[1]);
        d.on_not_found(&peer(1), &[blocks[0].hash()]);
        d.assign(peer(1), 10, t0).unwrap();
        assert_eq!(d.on_blocks(peer(1), blocks.clone(), t0).unwrap(), BlocksTaken { kept: 5, withheld: 0 });
        // A NotFound for a block the same answer delivers is not counted as withheld.
        let (mut d, blocks) = queued(5, &[1]);
        d.assign(peer(1), 10, t0).unwrap();
        d.on_not_found(&peer(1), &[blocks[0].hash()]);
        assert_eq!(d.on_blocks(peer(1), blocks.clone(), t0).unwrap(), BlocksTaken { kept: 5, withheld: 0 });
    }

    #[test]
    fn a_lone_slow_peer_is_still_used_when_nobody_else_has_the_blocks() {
        let (mut d, blocks) = queued(10, &[1]);
        let t0 = Instant::now();
        let a = d.assign(peer(1), 64, t0).unwrap();
        let stalls = d.tick(t0 + Duration::from_secs(3), |_| false);
        assert_eq!(stalls[0].dropped, 0, "nobody offers anything else: keep the blocks");
        let again = d.assign(peer(1), 64, t0 + Duration::from_secs(3)).unwrap();
        assert_eq!(a, again);
        assert_eq!(d.on_blocks(peer(1), blocks.clone(), t0 + Duration::from_secs(5)).unwrap().kept, 10);
    }

    #[test]
    fn headers_nobody_serves_are_dropped_when_their_only_source_stalls_or_leaves() {
        // Honest peers 1 and 2 have 20 blocks; peer 9 extends them with 5 it never serves.
        let blocks = chain(20);
        let fake = chain_from(blocks[19].hash(), 21, 5, 99);
        let mut d = Download::default();
        show(&mut d, peer(1), &blocks);
        show(&mut d, peer(2), &blocks);
        d.add_peer(peer(9));
        d.asked_headers(peer(9), HeadersFrom::Tip, None, Instant::now());
        let all: Vec<Block> = blocks.iter().chain(&fake).cloned().collect();
        assert_eq!(d.on_headers(peer(9), &headers(&all), false, |_| false, |h| *h == GENESIS).unwrap().queued, 5);
        let t0 = Instant::now();
        // An honest peer fetches what it has; the attacker gets the tail nobody else has.
        assert_eq!(d.assign(peer(1), 64, t0).unwrap(), hashes(&blocks));
        assert_eq!(d.assign(peer(9), 64, t0).unwrap(), hashes(&fake));
        assert_eq!(d.on_blocks(peer(1), blocks.clone(), t0).unwrap().kept, 20);
        // It sits on them; another peer offers more work: what only it showed is dropped.
        let stalls = d.tick(t0 + Duration::from_secs(3), |p| *p == peer(9));
        assert_eq!(stalls, vec![Stall { peer: peer(9), dropped: 5, timeout: 2 * STALL_MIN }]);
        assert_eq!(d.wanted(), 20);
        assert_eq!(d.last_hash(), Some(blocks[19].hash()));
        assert_eq!(d.headers_wanted(&peer(9), true), None, "the staller is not asked from our tip again this epoch");
        assert_eq!(d.headers_wanted(&peer(2), true), Some(HeadersFrom::Tip), "the others are");
        assert_eq!(d.take_ready(100, usize::MAX).len(), 20, "the honest chain imports");
        assert!(!d.is_active());
        // The same when the only source leaves.
        let (mut d, _) = queued(5, &[1]);
        let more = chain_from(chain(5)[4].hash(), 6, 5, 1);
        d.add_peer(peer(9));
        d.asked_headers(peer(9), HeadersFrom::Tip, None, t0);
        let all: Vec<Block> = chain(5).into_iter().chain(more).collect();
        d.on_headers(peer(9), &headers(&all), false, |_| false, |h| *h == GENESIS).unwrap();
        assert_eq!(d.wanted(), 10);
        assert_eq!(d.remove_peer(&peer(9)), 5);
        assert_eq!(d.wanted(), 5);
    }

    #[test]
    fn an_answer_cut_short_is_asked_again_and_only_not_found_means_lacking() {
        let (mut d, blocks) = queued(10, &[1, 2]);
        let now = Instant::now();
        d.assign(peer(1), 64, now).unwrap();
        // Cut short by the frame budget: no NotFound, nothing held against it.
        let t = d.on_blocks(peer(1), blocks[..4].to_vec(), now).unwrap();
        assert_eq!(t, BlocksTaken { kept: 4, withheld: 0 });
        assert_eq!(d.assign(peer(1), 64, now).unwrap(), hashes(&blocks[4..]), "the rest is asked again of the same peer");
        // This time it says it lacks two blocks its own headers listed.
        d.on_not_found(&peer(1), &[blocks[8].hash(), blocks[9].hash()]);
        let t = d.on_blocks(peer(1), blocks[4..8].to_vec(), now).unwrap();
        assert_eq!(t, BlocksTaken { kept: 4, withheld: 2 });
        assert_eq!(d.known(&peer(1)), Some(8), "its evidence stops below what it lacks");
        assert!(d.assign(peer(1), 64, now).is_none(), "not asked again for what it lacks");
        assert_eq!(d.assign(peer(2), 64, now).unwrap(), hashes(&blocks[8..]));
        // Blocks nobody asked for are not taken.
        assert_eq!(d.on_blocks(peer(3), blocks.clone(), now), None);
    }

    #[test]
    fn a_full_buffer_still_hands_out_what_the_import_waits_for() {
        let (mut d, blocks) = queued(300, &[1, 2, 3]);
        let now = Instant::now();
        let front = d.assign(peer(1), 64, now).unwrap();
        d.assign(peer(2), 64, now).unwrap();
        assert_eq!(d.on_blocks(peer(2), blocks[64..128].to_vec(), now).unwrap().kept, 64);
        d.buffered = MAX_BUFFERED; // as if those were large blocks
        assert!(d.assign(peer(3), 64, now).is_none(), "nothing past the arrived blocks while full");
        // The front's peer leaves: its range goes out again despite the cap.
        d.remove_peer(&peer(1));
        assert_eq!(d.assign(peer(3), 64, now).unwrap(), front);
        // Taking is bounded by bytes (past the first block).
        assert_eq!(d.on_blocks(peer(3), blocks[..64].to_vec(), now).unwrap().kept, 64);
        assert_eq!(d.take_ready(1000, 1).len(), 1);
    }

    #[test]
    fn a_request_that_could_not_be_sent_is_taken_back() {
        let (mut d, _) = queued(200, &[1, 2]);
        let now = Instant::now();
        let first = d.assign(peer(1), 64, now).unwrap();
        d.assign(peer(1), 64, now).unwrap();
        d.unassign_last(&peer(1));
        assert!(d.has_requests(&peer(1)), "the first request stays out");
        assert_ne!(d.assign(peer(2), 64, now).unwrap(), first);
        assert!(d.assign(peer(2), 64, now).is_some());
        assert!(d.assign(peer(2), 64, now).is_none(), "at most REQUESTS_PER_PEER out");
    }

    #[test]
    fn window_bounds_what_is_asked() {
        let ids: Vec<u8> = (0..40).collect();
        let (mut d, _) = queued(WINDOW as u64 + 500, &ids);
        let now = Instant::now();
        let mut asked = 0;
        for p in &ids {
            while let Some(h) = d.assign(peer(*p), 64, now) {
                asked += h.len();
            }
        }
        assert_eq!(asked, WINDOW);
    }

    #[test]
    fn headers_are_continued_only_when_a_whole_batch_fits() {
        let n = (MAX_WANTED - crate::config::MAX_HEADERS + 1) as u64;
        let blocks = chain(n);
        let mut d = Download::default();
        d.add_peer(peer(1));
        d.asked_headers(peer(1), HeadersFrom::Tip, None, Instant::now());
        d.on_headers(peer(1), &headers(&blocks), true, |_| false, |h| *h == GENESIS).unwrap();
        assert_eq!(d.headers_wanted(&peer(1), true), None, "a batch would not fit: wait (no overfetch)");
        assert_eq!(d.take_ready(1, usize::MAX).len(), 0);
        let t = Instant::now();
        let first = d.assign(peer(1), 1, t).unwrap();
        assert_eq!(d.on_blocks(peer(1), vec![blocks[0].clone()], t).unwrap().kept, 1);
        assert_eq!(first.len(), 1);
        assert_eq!(d.take_ready(1, usize::MAX).len(), 1);
        assert_eq!(d.headers_wanted(&peer(1), true), Some(HeadersFrom::After(blocks[n as usize - 1].hash())), "now it fits");
    }

    #[test]
    fn header_batches_must_chain_and_connect() {
        let blocks = chain(20);
        let h = headers(&blocks);
        let mut d = Download::default();
        d.add_peer(peer(1));
        assert_eq!(d.on_headers(peer(1), &h, false, |_| false, |_| true), Err(HeadersRejected::Unsolicited));
        d.asked_headers(peer(1), HeadersFrom::Tip, None, Instant::now());
        let mut broken = h.clone();
        broken.swap(3, 4);
        assert_eq!(d.on_headers(peer(1), &broken, false, |_| false, |_| true), Err(HeadersRejected::NotAChain));
        d.asked_headers(peer(1), HeadersFrom::Tip, None, Instant::now());
        let t = d.on_headers(peer(1), &h[5..], false, |_| false, |_| false).unwrap();
        assert_eq!(t.queued, 0, "does not connect to anything we hold");
        assert!(!t.showed_anything);
        d.asked_headers(peer(1), HeadersFrom::Tip, None, Instant::now());
        // Already-stored headers at the front are skipped.
        let have: Vec<Hash> = hashes(&blocks[..5]);
        assert_eq!(d.on_headers(peer(1), &h, true, |x| have.contains(x), |x| *x == blocks[4].hash()).unwrap().queued, 15);
        assert_eq!(d.last_hash(), Some(blocks[19].hash()));
        // A full batch: it is asked to continue after the last wanted block.
        assert_eq!(d.headers_wanted(&peer(1), true), Some(HeadersFrom::After(blocks[19].hash())));
        // Another peer is asked from our tip once per epoch, and continues from what it showed.
        d.add_peer(peer(2));
        assert_eq!(d.headers_wanted(&peer(2), true), Some(HeadersFrom::Tip));
        assert_eq!(d.headers_wanted(&peer(2), false), None, "no claim of more work, no request");
        d.asked_headers(peer(2), HeadersFrom::Tip, None, Instant::now());
        let next = chain(25);
        assert_eq!(d.on_headers(peer(2), &headers(&next), false, |x| have.contains(x), |_| false).unwrap().queued, 5);
        assert_eq!(d.last_height(), Some(25));
        assert_eq!(d.known(&peer(2)), Some(25));
        assert_eq!(d.headers_wanted(&peer(2), true), None, "asked once this epoch, last batch not full");
        d.tip_moved();
        assert_eq!(d.headers_wanted(&peer(2), true), None, "a running schedule is not disturbed by tip moves");
        assert_eq!(d.take_ready(100, usize::MAX).len(), 0);
        let mut e = Download::default();
        e.add_peer(peer(4));
        e.asked_headers(peer(4), HeadersFrom::Tip, None, Instant::now());
        e.on_headers(peer(4), &[], false, |_| false, |_| false).unwrap();
        assert_eq!(e.headers_wanted(&peer(4), true), None, "nothing shown: not asked again at the same tip");
        e.tip_moved();
        assert_eq!(e.headers_wanted(&peer(4), true), Some(HeadersFrom::Tip), "asked again once our tip moved");
    }
}
