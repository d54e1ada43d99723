//! The block download schedule of a catch-up sync, shared by every peer: which blocks are
//! wanted (from verified headers, in chain order), which peer was asked for which, and which
//! have arrived and wait to be imported in order.
//!
//! Pure bookkeeping (no I/O, no clock of its own), so its rules are unit-tested here:
//! - only the first [`WINDOW`] wanted blocks are asked for, and none while [`MAX_BUFFERED`]
//!   bytes of arrived blocks wait, so memory stays bounded however far behind we start;
//! - each peer has at most [`REQUESTS_PER_PEER`] requests out, answered in order (one stream);
//!   what an answer leaves out goes back to the queue for any peer;
//! - a peer whose oldest request is older than the stall limit, or that goes away, gives its
//!   requests back: they are reassigned to the others.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use cairn_chain::{Block, Hash, Header};

use crate::identity::NodeId;

/// How many wanted blocks, from the oldest, may be asked for or held at once.
pub const WINDOW: usize = 1024;
/// Arrived-but-not-imported bytes above which nothing more is asked for.
pub const MAX_BUFFERED: usize = 64 << 20;
/// Most `GetBlocks` requests one peer has outstanding.
pub const REQUESTS_PER_PEER: usize = 2;
/// Most wanted hashes queued from headers (asking for more headers waits below this).
pub const MAX_WANTED: usize = 4 * crate::sync::MAX_HEADERS;

enum Slot {
    Queued,
    Asked,
    Got(Box<Block>, NodeId),
}

/// One wanted block.
struct Wanted {
    hash: Hash,
    slot: Slot,
    /// The peer whose headers listed it (its best chain holds it).
    listed_by: NodeId,
    /// Peers whose answer left it out: not asked for it again.
    lacked_by: Vec<NodeId>,
}

/// Most peers remembered per block as lacking it.
const MAX_LACKED: usize = 16;

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

/// One outstanding `GetBlocks`.
struct Request {
    hashes: Vec<Hash>,
    sent: Instant,
}

/// Why a header batch was not taken.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadersRejected {
    /// Not from the peer we asked, or nothing asked.
    Unsolicited,
    /// Headers do not follow each other (parent hash, height): a protocol violation.
    NotAChain,
    /// The batch does not continue the queued download (another branch): ignored.
    Disconnected,
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
    /// Outstanding block requests per peer, oldest first.
    requests: HashMap<NodeId, VecDeque<Request>>,
    /// The peer asked for headers, and when.
    headers: Option<(NodeId, Instant)>,
    /// The last header batch was full: the peer has more after it.
    more: bool,
    /// What the header peer claimed when asked (checked against what it sends).
    claim: Option<Claim>,
    /// Bytes of arrived blocks not yet taken.
    buffered: usize,
}

impl Download {
    /// Whether a sync is in progress (blocks wanted or headers asked for).
    pub fn is_active(&self) -> bool {
        !self.slots.is_empty() || self.headers.is_some()
    }

    /// Height of the last wanted block, if any.
    pub fn last_height(&self) -> Option<u64> {
        (!self.slots.is_empty()).then(|| self.base + self.slots.len() as u64 - 1)
    }

    /// Hash of the last wanted block: a header request continues after it.
    pub fn last_hash(&self) -> Option<Hash> {
        self.slots.back().map(|w| w.hash)
    }

    /// Whether the last header batch was full (more headers to ask for).
    pub fn more(&self) -> bool {
        self.more
    }

    /// Whether a header request may go out now: none outstanding and room for more.
    pub fn wants_headers(&self) -> bool {
        self.headers.is_none() && self.slots.len() < MAX_WANTED
    }

    /// Records a header request to `peer`.
    pub fn asked_headers(&mut self, peer: NodeId, now: Instant) {
        self.headers = Some((peer, now));
        self.claim = None;
    }

    /// Records what the outstanding header request relies on.
    pub fn claimed(&mut self, claim: Claim) {
        self.claim = Some(claim);
    }

    /// The claim the last header answer was asked on (taken once).
    pub fn take_claim(&mut self) -> Option<Claim> {
        self.claim.take()
    }

    /// Whether `peer` has block requests outstanding (an answer from it is expected).
    pub fn has_requests(&self, peer: &NodeId) -> bool {
        self.requests.contains_key(peer)
    }

    /// Whether `peer` is the one asked for headers.
    pub fn headers_from(&self, peer: &NodeId) -> bool {
        self.headers.is_some_and(|(p, _)| p == *peer)
    }

    /// Takes a header batch from `peer`: every header must follow the one before it; the
    /// first new one (after any we already `have`) must follow the last queued block, or,
    /// with nothing queued, a stored block (`parent_stored`). Returns how many were queued.
    pub fn on_headers(
        &mut self,
        peer: NodeId,
        headers: &[Header],
        full: bool,
        have: impl Fn(&Hash) -> bool,
        parent_stored: impl Fn(&Hash) -> bool,
    ) -> Result<usize, HeadersRejected> {
        if !self.headers_from(&peer) {
            return Err(HeadersRejected::Unsolicited);
        }
        self.headers = None;
        for pair in headers.windows(2) {
            if pair[1].prev_hash != pair[0].hash() || pair[1].height != pair[0].height.wrapping_add(1) {
                return Err(HeadersRejected::NotAChain);
            }
        }
        let hashes: Vec<Hash> = headers.iter().map(Header::hash).collect();
        let skip = hashes.iter().take_while(|h| have(h) || self.index.contains_key(h)).count();
        let fresh = &headers[skip..];
        let Some(first) = fresh.first() else {
            self.more = full;
            return Ok(0);
        };
        let connects = match self.slots.back() {
            Some(last) => first.prev_hash == last.hash && Some(first.height) == self.last_height().map(|h| h + 1),
            None => parent_stored(&first.prev_hash),
        };
        if !connects {
            self.more = false;
            return Err(HeadersRejected::Disconnected);
        }
        if self.slots.is_empty() {
            self.base = first.height;
        }
        for (h, hash) in fresh.iter().zip(&hashes[skip..]) {
            self.index.insert(*hash, h.height);
            self.slots.push_back(Wanted { hash: *hash, slot: Slot::Queued, listed_by: peer, lacked_by: Vec::new() });
        }
        self.more = full;
        Ok(fresh.len())
    }

    /// Up to `max` queued blocks within the window for `peer` (whose best height is
    /// `peer_height`), marked asked; `None` if it has enough out, or nothing fits. Blocks it
    /// left out of an earlier answer are not asked of it again. With [`MAX_BUFFERED`] bytes
    /// waiting, only blocks before the first arrived one are handed out: the import waits on
    /// them, and they are what drains the buffer.
    pub fn assign(&mut self, peer: NodeId, peer_height: u64, max: usize, now: Instant) -> Option<Vec<Hash>> {
        if self.requests.get(&peer).is_some_and(|r| r.len() >= REQUESTS_PER_PEER) {
            return None;
        }
        let full = self.buffered >= MAX_BUFFERED;
        let mut hashes = Vec::new();
        for (i, w) in self.slots.iter_mut().enumerate().take(WINDOW) {
            if self.base + i as u64 > peer_height || hashes.len() == max || (full && matches!(w.slot, Slot::Got(..))) {
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
        self.requests.entry(peer).or_default().push_back(Request { hashes: hashes.clone(), sent: now });
        Some(hashes)
    }

    /// Takes `peer`'s answer to its oldest request: the blocks it asked for are kept, what
    /// it left out is queued again for anyone. Returns how many blocks were kept, or `None`
    /// if nothing was asked of it (an unsolicited answer).
    pub fn on_blocks(&mut self, peer: NodeId, blocks: Vec<Block>) -> Option<usize> {
        let queue = self.requests.get_mut(&peer)?;
        let req = queue.pop_front()?;
        if queue.is_empty() {
            self.requests.remove(&peer);
        }
        let mut kept = 0;
        for block in blocks {
            let hash = block.hash();
            if !req.hashes.contains(&hash) {
                continue;
            }
            let size = block.encoded_len();
            if let Some(w) = self.wanted_mut(&hash)
                && matches!(w.slot, Slot::Asked)
            {
                w.slot = Slot::Got(Box::new(block), peer);
                self.buffered += size;
                kept += 1;
            }
        }
        for hash in &req.hashes {
            if let Some(w) = self.wanted_mut(hash)
                && matches!(w.slot, Slot::Asked)
            {
                w.slot = Slot::Queued;
                if w.lacked_by.len() < MAX_LACKED {
                    w.lacked_by.push(peer);
                }
            }
        }
        Some(kept)
    }

    /// Takes back `peer`'s newest request (it could not be sent).
    pub fn unassign_last(&mut self, peer: &NodeId) {
        let Some(queue) = self.requests.get_mut(peer) else { return };
        let Some(req) = queue.pop_back() else { return };
        if queue.is_empty() {
            self.requests.remove(peer);
        }
        for hash in &req.hashes {
            self.requeue(hash);
        }
    }

    /// Gives back everything `peer` was asked (it left or stalled): queued for the others.
    pub fn release(&mut self, peer: &NodeId) {
        if let Some(queue) = self.requests.remove(peer) {
            for req in queue {
                for hash in &req.hashes {
                    self.requeue(hash);
                }
            }
        }
        if self.headers_from(peer) {
            self.headers = None;
        }
    }

    /// Whether `peer` has had a request (blocks or headers) out for longer than `limit`.
    pub fn stalled(&self, peer: &NodeId, limit: Duration, now: Instant) -> bool {
        let old = |t: Instant| now.saturating_duration_since(t) > limit;
        self.requests.get(peer).and_then(|q| q.front()).is_some_and(|r| old(r.sent))
            || self.headers.is_some_and(|(p, t)| p == *peer && old(t))
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

    /// Forgets the whole schedule (an invalid block, or a branch that did not connect).
    /// Outstanding requests are forgotten too: late answers count as unsolicited.
    pub fn reset(&mut self) {
        *self = Download::default();
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

    fn chain(n: u64) -> Vec<Block> {
        let mut prev = Hash([7; 32]);
        (1..=n)
            .map(|height| {
                let header = Header {
                    version: cairn_chain::block::HEADER_VERSION,
                    height,
                    prev_hash: prev,
                    tx_root: Hash::ZERO,
                    timestamp: height,
                    target: Target::MAX,
                    farmer: Address([0; 32]),
                    nonce: 0,
                };
                prev = header.hash();
                Block { header, transactions: Vec::new() }
            })
            .collect()
    }

    fn peer(b: u8) -> NodeId {
        cairn_chain::PublicKey([b; 32])
    }

    fn queued(n: u64) -> (Download, Vec<Block>) {
        let blocks = chain(n);
        let headers: Vec<Header> = blocks.iter().map(|b| b.header.clone()).collect();
        let mut d = Download::default();
        d.asked_headers(peer(1), Instant::now());
        assert_eq!(d.on_headers(peer(1), &headers, false, |_| false, |h| *h == Hash([7; 32])), Ok(n as usize));
        (d, blocks)
    }

    #[test]
    fn parallel_ranges_and_in_order_import() {
        let (mut d, blocks) = queued(200);
        let now = Instant::now();
        let a = d.assign(peer(1), 1000, 64, now).unwrap();
        let b = d.assign(peer(2), 1000, 64, now).unwrap();
        assert_eq!(a[0], blocks[0].hash());
        assert_eq!(b[0], blocks[64].hash(), "the second peer gets the next range");
        // The later range arrives first: nothing is ready until the first does.
        assert_eq!(d.on_blocks(peer(2), blocks[64..128].to_vec()), Some(64));
        assert!(d.take_ready(1000, usize::MAX).is_empty());
        assert_eq!(d.on_blocks(peer(1), blocks[..64].to_vec()), Some(64));
        let ready = d.take_ready(1000, usize::MAX);
        assert_eq!(ready.len(), 128);
        assert!(ready.iter().zip(&blocks).all(|(got, want)| got.block.hash() == want.hash()));
        assert_eq!(ready[0].served_by, peer(1));
        assert_eq!(ready[64].served_by, peer(2));
        assert_eq!(ready[64].listed_by, peer(1), "listed by the header peer");
    }

    #[test]
    fn stalled_or_departed_peer_ranges_are_reassigned() {
        let (mut d, blocks) = queued(100);
        let t0 = Instant::now();
        let a = d.assign(peer(1), 1000, 64, t0).unwrap();
        let later = t0 + Duration::from_secs(10);
        assert!(d.stalled(&peer(1), Duration::from_secs(5), later));
        assert!(!d.stalled(&peer(2), Duration::from_secs(5), later));
        d.release(&peer(1));
        let b = d.assign(peer(2), 1000, 64, later).unwrap();
        assert_eq!(a, b, "the stalled peer's range goes to another peer");
        // A late answer from the released peer is unsolicited.
        assert_eq!(d.on_blocks(peer(1), blocks[..64].to_vec()), None);
    }

    #[test]
    fn blocks_left_out_of_an_answer_are_asked_again() {
        let (mut d, blocks) = queued(10);
        let now = Instant::now();
        d.assign(peer(1), 1000, 64, now).unwrap();
        assert_eq!(d.on_blocks(peer(1), blocks[..4].to_vec()), Some(4));
        assert!(d.assign(peer(1), 1000, 64, now).is_none(), "not asked again for what it lacked");
        let again = d.assign(peer(2), 1000, 64, now).unwrap();
        assert_eq!(again, blocks[4..].iter().map(Block::hash).collect::<Vec<_>>());
        // Blocks nobody asked for are not taken.
        assert_eq!(d.on_blocks(peer(3), blocks.clone()), None);
    }

    #[test]
    fn a_full_buffer_still_hands_out_what_the_import_waits_for() {
        let (mut d, blocks) = queued(300);
        let now = Instant::now();
        let front = d.assign(peer(1), 1000, 64, now).unwrap();
        d.assign(peer(2), 1000, 64, now).unwrap();
        assert_eq!(d.on_blocks(peer(2), blocks[64..128].to_vec()), Some(64));
        d.buffered = MAX_BUFFERED; // as if those were large blocks
        assert!(d.assign(peer(3), 1000, 64, now).is_none(), "nothing past the arrived blocks while full");
        // The front's peer stalls and is released: its range goes out again despite the cap.
        d.release(&peer(1));
        assert_eq!(d.assign(peer(3), 1000, 64, now).unwrap(), front);
        // Taking is bounded by bytes (past the first block).
        assert_eq!(d.on_blocks(peer(3), blocks[..64].to_vec()), Some(64));
        assert_eq!(d.take_ready(1000, 1).len(), 1);
    }

    #[test]
    fn a_request_that_could_not_be_sent_is_taken_back() {
        let (mut d, _) = queued(200);
        let now = Instant::now();
        let first = d.assign(peer(1), 1000, 64, now).unwrap();
        d.assign(peer(1), 1000, 64, now).unwrap();
        d.unassign_last(&peer(1));
        assert!(d.has_requests(&peer(1)), "the first request stays out");
        assert_ne!(d.assign(peer(2), 1000, 64, now).unwrap(), first);
    }

    #[test]
    fn peers_get_only_what_they_have_and_requests_are_bounded() {
        let (mut d, _) = queued(300);
        let now = Instant::now();
        assert!(d.assign(peer(1), 0, 64, now).is_none(), "a peer below the range gets nothing");
        assert_eq!(d.assign(peer(1), 10, 64, now).unwrap().len(), 10);
        assert!(d.assign(peer(1), 1000, 64, now).is_some());
        assert!(d.assign(peer(1), 1000, 64, now).is_none(), "at most REQUESTS_PER_PEER out");
    }

    #[test]
    fn window_bounds_what_is_asked() {
        let (mut d, _) = queued(WINDOW as u64 + 500);
        let now = Instant::now();
        let mut asked = 0;
        for p in 0..100u8 {
            while let Some(h) = d.assign(peer(p), u64::MAX, 64, now) {
                asked += h.len();
                if d.requests.get(&peer(p)).is_some_and(|r| r.len() >= REQUESTS_PER_PEER) {
                    break;
                }
            }
        }
        assert_eq!(asked, WINDOW);
    }

    #[test]
    fn header_batches_must_chain_and_connect() {
        let blocks = chain(20);
        let headers: Vec<Header> = blocks.iter().map(|b| b.header.clone()).collect();
        let mut d = Download::default();
        assert_eq!(d.on_headers(peer(1), &headers, false, |_| false, |_| true), Err(HeadersRejected::Unsolicited));
        d.asked_headers(peer(1), Instant::now());
        let mut broken = headers.clone();
        broken.swap(3, 4);
        assert_eq!(d.on_headers(peer(1), &broken, false, |_| false, |_| true), Err(HeadersRejected::NotAChain));
        d.asked_headers(peer(1), Instant::now());
        assert_eq!(d.on_headers(peer(1), &headers[5..], false, |_| false, |_| false), Err(HeadersRejected::Disconnected));
        d.asked_headers(peer(1), Instant::now());
        // Already-stored headers at the front are skipped.
        let have: Vec<Hash> = blocks[..5].iter().map(Block::hash).collect();
        assert_eq!(d.on_headers(peer(1), &headers, true, |h| have.contains(h), |h| *h == blocks[4].hash()), Ok(15));
        assert!(d.more());
        assert_eq!(d.last_hash(), Some(blocks[19].hash()));
        // The next batch continues after the last queued block.
        let next = chain(25);
        d.asked_headers(peer(2), Instant::now());
        let next: Vec<Header> = next.iter().map(|b| b.header.clone()).collect();
        assert_eq!(d.on_headers(peer(2), &next, false, |h| have.contains(h), |_| false), Ok(5));
        assert_eq!(d.last_height(), Some(25));
    }
}
