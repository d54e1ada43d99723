//! The sync task's part (sync/mod.rs): announcements, compact blocks, headers, single blocks,
//! orphans, the import as a synchronous loop over `Download::take_ready`, dispatch, and the
//! announcement of a new tip.

use super::*;

impl Node {
    /// Sends a request of the sync task to a registered peer (recorded by its machine first,
    /// as `PeerCmd::Send` is).
    pub(super) fn send_to(&mut self, w: &mut World, id: &NodeId, m: Message) -> bool {
        let Some(conn) = self.by_id.get(id).copied() else { return false };
        if let Some(up) = self.up_mut(id) {
            up.proto.on_send(&m);
        }
        self.send(w, conn, &m);
        true
    }

    pub(super) fn remember_source(&mut self, hash: Hash, id: NodeId) {
        self.sources.insert(hash, id);
    }

    pub(super) fn on_new_block(&mut self, w: &mut World, id: NodeId, height: u64, hash: Hash) {
        self.download.announced(&id, &hash);
        if self.chain.has_block(&hash) {
            w.metrics.count("duplicate_block");
        } else if self.download.wanted() == 0 || height > self.download.last_height().unwrap_or(0) {
            if let Some(wait) = w.cfg.one_get_block {
                // The proposal: one request in flight per block, the next announcer after
                // `wait` (or once the one asked has left).
                if let Some((peer, since)) = self.asked_block.get(&hash)
                    && self.clock < since + wait
                    && self.by_id.contains_key(peer)
                {
                    return;
                }
                self.asked_block.insert(hash, (id, self.clock));
            }
            self.send_to(w, &id, Message::GetBlock(BlockId::Hash(hash)));
        }
    }

    pub(super) fn take_compact(&mut self, w: &mut World, id: NodeId, compact: CompactBlock) {
        let (height, hash) = (compact.header.height, compact.header.hash());
        self.download.announced(&id, &hash);
        if self.rebuilding.contains(&hash) {
            return;
        }
        if self.chain.has_block(&hash) {
            w.metrics.count("duplicate_block");
            return;
        }
        if self.download.wanted() > 0 && height <= self.download.last_height().unwrap_or(0) {
            return;
        }
        if self.chain.total_work_of(&compact.header.prev_hash).is_none() {
            self.send_to(w, &id, Message::GetBlock(BlockId::Hash(hash)));
            return;
        }
        let Some(made) = w.factory.made.get(&hash).cloned() else {
            self.fetch_whole(w, id, hash);
            return;
        };
        let since = w.since[self.idx];
        match w.cfg.fidelity {
            Fidelity::Full => {
                // The relayed mempool, or (without the relay) the mempool model's.
                let modelled = if w.cfg.tx_relay { Vec::new() } else { w.factory.mempool_for(self.idx, since, &made, self.clock) };
                let relayed: Vec<(&cairn_chain::TxId, &Transaction)> = self.mempool.iter().map(|i| w.factory.tx(*i)).collect();
                self.cost(REBUILD_COST_PER_TX * (modelled.len() + relayed.len()) as Time);
                let partial = Partial::rebuild(&compact, modelled.iter().map(|(i, t)| (i, t)).chain(relayed));
                match partial.finish() {
                    Ok(Some(block)) => {
                        w.metrics.count("compact_rebuilt");
                        self.take_block(w, id, Arc::new(block));
                    }
                    Ok(None) => {
                        let indexes = partial.missing();
                        self.wait_for_txs(w, id, hash, partial, indexes);
                    }
                    Err(_) => self.fetch_whole(w, id, hash),
                }
            }
            Fidelity::Light => {
                // The rebuild's outcome from the mempool model, at its modelled cost; a block
                // whose root its transactions do not give fails the real `finish`.
                if !made.valid {
                    self.fetch_whole(w, id, hash);
                    return;
                }
                let n = made.block.transactions.len() as u64;
                self.cost(REBUILD_COST_PER_TX * n);
                let indexes: Vec<u32> = (0..n).filter(|i| !w.factory.has_tx(self.idx, since, made.tx_first + i, self.clock)).map(|i| i as u32).collect();
                if indexes.is_empty() {
                    w.metrics.count("compact_rebuilt");
                    self.take_block(w, id, made.block.clone());
                } else {
                    // An empty `Partial` keeps the real `Rebuilding`'s bookkeeping (bound,
                    // expiry, the sender's departure); the slots are counted here.
                    let partial = Partial::rebuild(&CompactBlock { header: compact.header, nonce: 0, short_ids: Vec::new() }, std::iter::empty());
                    self.light_missing.insert(hash, indexes.clone());
                    self.wait_for_txs(w, id, hash, partial, indexes);
                }
            }
        }
    }

    pub(super) fn wait_for_txs(&mut self, w: &mut World, id: NodeId, hash: Hash, partial: Partial, indexes: Vec<u32>) {
        if let Some((pushed, peer)) = self.rebuilding.wait(hash, id, partial, self.inst(w)) {
            self.light_missing.remove(&pushed);
            self.fetch_whole(w, peer, pushed);
        }
        if !self.send_to(w, &id, Message::GetBlockTxs { hash, indexes }) {
            self.rebuilding.take(&hash, &id);
        }
    }

    pub(super) fn on_block_txs(&mut self, w: &mut World, id: NodeId, hash: Hash, txs: Vec<Transaction>, count: usize) {
        let Some(mut waiting) = self.rebuilding.take(&hash, &id) else { return };
        let rebuilt = match w.cfg.fidelity {
            Fidelity::Full => waiting.partial.fill(txs).and_then(|()| waiting.partial.finish()).ok().flatten().map(Arc::new),
            Fidelity::Light => {
                let want = self.light_missing.remove(&hash).map_or(usize::MAX, |v| v.len());
                if count == want { w.factory.made.get(&hash).map(|m| m.block.clone()) } else { None }
            }
        };
        match rebuilt {
            Some(block) => {
                w.metrics.count("compact_fetched_missing");
                self.take_block(w, id, block);
            }
            None => self.fetch_whole(w, id, hash),
        }
    }

    pub(super) fn fetch_whole(&mut self, w: &mut World, id: NodeId, hash: Hash) {
        w.metrics.count("compact_fell_back");
        self.send_to(w, &id, Message::GetBlock(BlockId::Hash(hash)));
    }

    pub(super) fn take_headers(&mut self, w: &mut World, id: NodeId, headers: Vec<Header>, full: bool, cut: bool) {
        if !self.download.headers_from(&id) {
            return;
        }
        let mut stored = std::collections::HashSet::new();
        for h in &headers {
            let hash = h.hash();
            if !self.chain.has_block(&hash) {
                break;
            }
            stored.insert(hash);
        }
        let parent_stored = headers.get(stored.len()).is_some_and(|first| self.chain.has_block(&first.prev_hash));
        let all_stored = stored.len() == headers.len();
        match self.download.on_headers(id, &headers, full, |h| stored.contains(h), |_| parent_stored) {
            Ok(t) => {
                if t.queued == 0 && !t.showed_anything && !full && !cut && all_stored && self.unbacked(t.claim) {
                    self.judge(w, id, Misbehaviour::UnbackedWorkClaim);
                }
            }
            Err(HeadersRejected::NotAChain) => {
                self.judge(w, id, Misbehaviour::InvalidHeaderChain);
            }
            Err(HeadersRejected::Unsolicited) => {}
        }
    }

    pub(super) fn unbacked(&self, claim: Option<Claim>) -> bool {
        if self.download.wanted() > 0 {
            return false;
        }
        match claim {
            Some(Claim::Work(work)) => work > self.chain.tip().work,
            Some(Claim::Orphan) => !self.orphans.is_empty(),
            None => false,
        }
    }

    /// Stores a block and records when this node first had it.
    pub(super) fn submit(&mut self, w: &mut World, block: Arc<Block>) -> Result<Submitted, BlockError> {
        let hash = block.hash();
        let valid = w.factory.made.get(&hash).map(|m| m.valid);
        self.cost(BLOCK_COST + BLOCK_COST_PER_TX * block.transactions.len() as Time);
        let now_ms = self.now_ms(w);
        let r = self.chain.submit(block.clone(), valid, now_ms);
        if matches!(r, Ok(Submitted::Connected | Submitted::SideChain)) {
            w.metrics.stored(hash, self.idx, self.clock);
        }
        if matches!(r, Ok(Submitted::Connected)) && w.cfg.tx_relay {
            self.confirmed(w, &block);
        }
        r
    }

    pub(super) fn take_block(&mut self, w: &mut World, id: NodeId, block: Arc<Block>) {
        let hash = block.hash();
        self.remember_source(hash, id);
        match self.submit(w, block.clone()) {
            Ok(Submitted::Connected | Submitted::SideChain) => self.release_orphans(w, vec![hash]),
            Ok(Submitted::AlreadyKnown) => w.metrics.count("duplicate_block"),
            Err(BlockError::UnknownParent(_)) => {
                self.orphans.insert((*block).clone(), id);
                self.ask_headers(w, id, HeadersFrom::Tip, Some(Claim::Orphan));
            }
            Err(e) => self.blame(w, id, &e),
        }
    }

    pub(super) fn blame(&mut self, w: &mut World, id: NodeId, e: &BlockError) {
        if let Verdict::Punish(kind) = block_verdict(e, false) {
            self.judge(w, id, kind);
        }
    }

    pub(super) fn release_orphans(&mut self, w: &mut World, parents: Vec<Hash>) {
        let mut work = parents;
        while let Some(parent) = work.pop() {
            if self.orphans.is_empty() {
                return;
            }
            for (block, peer) in self.orphans.take_children(&parent) {
                if !self.by_id.contains_key(&peer) {
                    continue;
                }
                let hash = block.hash();
                self.remember_source(hash, peer);
                match self.submit(w, Arc::new(block)) {
                    Ok(Submitted::Connected | Submitted::SideChain) => work.push(hash),
                    Ok(Submitted::AlreadyKnown) => {}
                    Err(e) => self.blame(w, peer, &e),
                }
            }
        }
    }

    /// The import pipeline as one synchronous loop: ready blocks in order, committed until
    /// one fails (its server is blamed for a failed check, its lister for a failed connect,
    /// as `Failure::blame` does), then the schedule starts over.
    pub(super) fn import(&mut self, w: &mut World) {
        loop {
            let ready = self.download.take_ready(MAX_BLOCKS_PER_REQUEST, MAX_BUFFERED);
            if ready.is_empty() {
                return;
            }
            let mut connected = Vec::new();
            let mut failed = false;
            for r in ready {
                let hash = r.block.hash();
                self.remember_source(hash, r.served_by);
                match self.submit(w, Arc::new(r.block)) {
                    Ok(Submitted::Connected | Submitted::SideChain) => connected.push(hash),
                    Ok(Submitted::AlreadyKnown) => w.metrics.count("duplicate_block"),
                    Err(e) => {
                        let culprit = if matches!(e, BlockError::BadHeight { .. } | BlockError::UnknownParent(_)) { r.listed_by } else { r.served_by };
                        self.blame(w, culprit, &e);
                        failed = true;
                        break;
                    }
                }
            }
            self.release_orphans(w, connected);
            if failed {
                self.download.reset();
                return;
            }
        }
    }

    pub(super) fn peer_ids(&self) -> Vec<NodeId> {
        self.by_id.keys().copied().collect()
    }

    /// Hands out block ranges and header requests (the sync task's `dispatch`).
    pub(super) fn dispatch(&mut self, w: &mut World) {
        let now = self.inst(w);
        let mut ids = self.peer_ids();
        // Quickest first, as the real one; ties in node-ID order (the real order there is a
        // hash map's, which a replayable run cannot use). With nothing wanted, `assign` has
        // nothing to give: skipped (the same outcome, without its cost after every event).
        let assigning = self.download.wanted() > 0;
        if assigning {
            ids.sort_by_key(|id| (self.download.timeout(id), *id));
        }
        for id in ids.iter().filter(|_| assigning) {
            while let Some(hashes) = self.download.assign(*id, MAX_BLOCKS_PER_REQUEST, now) {
                if !self.send_to(w, id, Message::GetBlocks(hashes)) {
                    self.download.unassign_last(id);
                    break;
                }
            }
        }
        let tip = self.chain.tip().work;
        for id in &ids {
            let Some((work, asked_for)) = self.up_mut(id).map(|u| (u.work, u.asked_for)) else { continue };
            let more = work > tip;
            let from = self.download.headers_wanted(id, more).or_else(|| {
                let idle = self.download.wanted() == 0;
                (more && work > asked_for && idle && !self.download.headers_from(id)).then_some(HeadersFrom::Tip)
            });
            if let Some(from) = from {
                let claim = (from == HeadersFrom::Tip).then_some(Claim::Work(work));
                if from == HeadersFrom::Tip
                    && let Some(up) = self.up_mut(id)
                {
                    up.asked_for = work;
                }
                self.ask_headers(w, *id, from, claim);
            }
        }
    }

    pub(super) fn ask_headers(&mut self, w: &mut World, id: NodeId, from: HeadersFrom, claim: Option<Claim>) {
        if self.download.headers_from(&id) || !self.by_id.contains_key(&id) {
            return;
        }
        let locator = match from {
            HeadersFrom::After(h) => vec![h],
            HeadersFrom::Tip => {
                let mut l = self.chain.locator();
                if let Some(last) = self.download.last_hash() {
                    l.insert(0, last);
                }
                l.truncate(MAX_LOCATOR);
                l
            }
        };
        if self.send_to(w, &id, Message::GetHeaders { locator, max: MAX_HEADERS as u32 }) {
            self.download.asked_headers(id, from, claim, self.inst(w));
        }
    }

    /// Announces a new tip to every peer but its source: a compact block when it extends the
    /// tip announced before and no catch-up runs, else `new_block` (the sync task's
    /// `announce_tip`; `compact: false` in the run's settings gives the whole-block relay).
    pub(super) fn announce_tip(&mut self, w: &mut World) {
        if self.hostile == Some(Hostile::Stall) {
            return;
        }
        let importing = self.download.is_active();
        if !importing {
            self.download.tip_moved();
        }
        let tip = self.chain.tip();
        let source = self.sources.get(&tip.hash).copied();
        let previous = self.announced.replace(tip.hash);
        let mut message = Message::NewBlock { height: tip.height, hash: tip.hash };
        if w.cfg.compact
            && !importing
            && previous.is_some()
            && self.by_id.keys().any(|id| Some(*id) != source)
            && let Some(made) = w.factory.made.get(&tip.hash).cloned()
            && Some(made.block.header.prev_hash) == previous
        {
            message = compact_message(w, &made);
        }
        for id in self.peer_ids() {
            if Some(id) != source {
                self.send_to(w, &id, message.clone());
            }
        }
    }
}
