//! `Chain::submit` (and a sync's `check_blocks` + `Chain::submit_run`) on a small chain in
//! memory, fed blocks built from a byte script (`cairn_fuzz::submit`): valid extensions, side
//! branches and reorganisations, and blocks bent one way each (parent, Merkle root, proof,
//! timestamps, height, version, target, size, transaction order, duplicates, nonce gaps,
//! used nonces, overspending, overflow, another chain's or a broken signature).
//!
//! Checked after every step:
//! - a refused block changes nothing observable (tip, best chain, accounts, the persisted
//!   mempool's floor and size) and is not stored; a known block changes nothing;
//! - a side-chain block is stored without moving the tip, and has no more work than it;
//! - a connected block is the new tip, with more work than the old one;
//! - always: the best chain is linked from the tip down to genesis through the height index,
//!   with nothing indexed above the tip; every best-chain transaction is indexed where it is;
//!   the account cache agrees with the store; money is conserved (the balances sum to genesis
//!   plus one reward per block);
//! - at the end, the chain reopened from its store has the same tip and accounts.
#![no_main]

use std::collections::HashMap;
use std::sync::Arc;

use cairn_chain::block::{HEADER_VERSION, merkle_root};
use cairn_chain::store::{HeaderRecord, TxLocation};
use cairn_chain::{AccountSource, Block, BlockError, Chain, Hash, Header, Outcome, SigCache, Store, Transaction};
use cairn_fuzz::submit::{Action, BlockPlan, FARMERS, MINE_TRIES, SENDERS, Script, TxPlan, World, seeds, world};
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        // `CAIRN_WRITE_FUZZ_SEEDS=1 cargo fuzz run chain_submit -- -runs=0` writes the seeds.
        if std::env::var_os("CAIRN_WRITE_FUZZ_SEEDS").is_some() {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/chain_submit");
            std::fs::create_dir_all(&dir).expect("corpus dir");
            for (name, script) in seeds() {
                std::fs::write(dir.join(name), script.write()).expect("seed written");
            }
        }
    },
    |data: &[u8]| {
        let script = Script::read(data);
        let mut t = Tester::new(&script);
        for action in &script.actions {
            t.act(action);
        }
        t.reopen();
    }
);

/// Prints each step's outcome when `CAIRN_FUZZ_TRACE` is set (to see what an input does:
/// `CAIRN_FUZZ_TRACE=1 cargo fuzz run chain_submit INPUT`).
fn trace(line: impl FnOnce() -> String) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("CAIRN_FUZZ_TRACE").is_some()) {
        eprintln!("{}", line());
    }
}

/// An outcome in a word (for [`trace`]).
fn said(r: &Result<Outcome, BlockError>) -> String {
    match r {
        Ok(Outcome::Connected { applied, undone }) => format!("connected (+{} -{})", applied.len(), undone.len()),
        Ok(o) => format!("{o:?}"),
        Err(e) => e.code().to_string(),
    }
}

/// What a refused block must leave as it was.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    tip: HeaderRecord,
    best: Vec<Hash>,
    accounts: Vec<cairn_chain::Account>,
    floor: u64,
    pending: usize,
}

struct Tester {
    w: &'static World,
    chain: Chain,
    store: Store,
    /// Blocks accepted (stored) so far, genesis first.
    known: Vec<Hash>,
    /// Every block built, in order (for resubmission and "the last one").
    built: Vec<Block>,
    /// Each built block's senders' next nonces after it, as far as the builder knows (so a
    /// block built on one not submitted yet, in a run, continues its nonces).
    nonces: HashMap<Hash, [u64; SENDERS]>,
    /// The chain's signature cache, if the input gave it one (a sync's checks read it too).
    cache: Option<Arc<SigCache>>,
}

impl Tester {
    fn new(script: &Script) -> Tester {
        let w = world(script.flags & 2 != 0);
        let store = Store::memory(&w.spec.chain_id, w.genesis);
        let mut chain = Chain::open(store.clone(), w.spec.clone()).expect("a memory store opens");
        let cache = (script.flags & 1 != 0).then(|| {
            let cache = Arc::new(SigCache::new(w.ids.len()));
            cache.insert(w.ids.iter().copied());
            chain.set_sigcache(cache.clone());
            cache
        });
        Tester { w, chain, store, known: vec![w.genesis], built: Vec::new(), nonces: HashMap::from([(w.genesis, [0; SENDERS])]), cache }
    }

    fn act(&mut self, action: &Action) {
        match action {
            Action::Submit(plan) => {
                let parent = self.parent(plan.parent);
                let (block, now) = self.build(plan, parent);
                self.submit(block, now);
            }
            Action::Run(plans) => self.run(plans),
            Action::Resubmit(i) => {
                if self.built.is_empty() {
                    return;
                }
                let block = self.built[usize::from(*i) % self.built.len()].clone();
                let now = block.header.timestamp.max(self.chain.tip().header.timestamp);
                self.submit(block, now);
            }
        }
        self.check_always();
    }

    /// The parent a plan names: `None` for an unknown one (the tip's height and target).
    fn parent(&self, choice: u8) -> Option<HeaderRecord> {
        let hash = match choice {
            0 => return Some(self.chain.tip().clone()),
            255 => return None,
            254 => self.built.last().map_or(self.chain.tip().hash, Block::hash),
            n => self.known[usize::from(n - 1) % self.known.len()],
        };
        // A block built last may not be stored (refused): then it is an unknown parent.
        self.store.header(&hash).expect("memory store reads")
    }

    /// Builds a plan's block on `parent` (`None`: an unknown parent); returns it with the clock
    /// to submit it at.
    fn build(&mut self, plan: &BlockPlan, parent: Option<HeaderRecord>) -> (Block, u64) {
        let spec = &self.w.spec;
        let (parent_hash, parent_header) = match &parent {
            Some(rec) => (rec.hash, rec.header.clone()),
            None => (Hash::digest(&[plan.arg]), self.chain.tip().header.clone()),
        };
        let mut next = match parent.as_ref().and_then(|p| self.nonces.get(&p.hash)) {
            Some(n) => *n,
            None => [0; SENDERS],
        };
        if parent.as_ref().is_some_and(|p| p.hash == self.chain.tip().hash) {
            for (s, n) in next.iter_mut().enumerate() {
                *n = self.chain.account(&self.w.keys[s].address()).expect("memory store reads").nonce;
            }
        }
        let mut txs: Vec<Transaction> = Vec::with_capacity(plan.txs.len() + 8);
        for TxPlan { pick, how } in &plan.txs {
            let sender = usize::from(pick % 4);
            let variant = usize::from(pick / 4) % 12;
            let (kind, recipient) = (variant % 4, variant / 4);
            let n = next[sender];
            let tx = match how % 8 {
                0..=3 => {
                    next[sender] += 1;
                    self.w.get(sender, kind, recipient, n).clone()
                }
                4 => self.w.get(sender, kind, recipient, n + 1).clone(),
                5 => self.w.get(sender, kind, recipient, n.saturating_sub(1)).clone(),
                6 => match txs.last() {
                    Some(prev) => prev.clone(),
                    None => continue,
                },
                _ => {
                    next[sender] += 1;
                    let mut tx = self.w.get(sender, kind, recipient, n).clone();
                    tx.amount ^= 1;
                    tx
                }
            };
            txs.push(tx);
        }
        let m = plan.mutation % 16;
        match m {
            12 => {
                // Past the count limit with distinct transactions.
                let mut i = 0;
                while txs.len() <= spec.max_block_txs as usize {
                    txs.push(self.w.get(usize::from(plan.arg) + i, 0, i / SENDERS, 5 + i as u64 % 5).clone());
                    i += 1;
                }
            }
            13 if txs.len() > 1 => {
                let last = txs.len() - 1;
                txs.swap(0, last);
            }
            14 if !txs.is_empty() => txs.push(txs[0].clone()),
            _ => {}
        }
        let gap = spec.block_time_ms * (1 + u64::from(plan.gap % 4)) / 2;
        let target = match &parent {
            Some(rec) => self.chain.expected_target(rec).unwrap_or(rec.header.target),
            None => parent_header.target,
        };
        let ids: Vec<_> = txs.iter().map(Transaction::id).collect();
        let mut header = Header {
            version: HEADER_VERSION,
            height: parent_header.height + 1,
            prev_hash: parent_hash,
            tx_root: merkle_root(&ids),
            timestamp: parent_header.timestamp + gap,
            target,
            nonce: 0,
            farmer: FARMERS[usize::from(plan.farmer % 2)],
        };
        let drift = spec.max_future_drift_ms;
        match m {
            6 => header.tx_root = Hash::digest(&[plan.arg]),
            8 => {
                if let Some(rec) = &parent {
                    header.timestamp = self.chain.median_time_past(rec).unwrap_or(0).saturating_sub(u64::from(plan.arg % 2));
                }
            }
            9 => header.height = if plan.arg.is_multiple_of(2) { header.height + 1 + u64::from(plan.arg % 5) } else { header.height - 1 },
            10 => header.version = HEADER_VERSION + 1 + u32::from(plan.arg),
            11 => header.target.0[usize::from(plan.arg % 32)] ^= 1 << (plan.arg % 8),
            15 => header.timestamp += drift + 1 + u64::from(plan.arg),
            _ => {}
        }
        // A proof that meets the target, or (mutation 7) one that does not; bounded either way.
        let want_met = m != 7;
        for _ in 0..MINE_TRIES {
            if header.target.is_met_by(&header.hash()) == want_met {
                break;
            }
            header.nonce += 1;
        }
        let mut now = header.timestamp.max(self.chain.tip().header.timestamp);
        if plan.now.is_multiple_of(8) {
            now = header.timestamp.saturating_sub(drift + 1);
        }
        let block = Block { header, transactions: txs };
        self.nonces.insert(block.hash(), next);
        self.built.push(block.clone());
        (block, now)
    }

    fn observe(&self) -> Observed {
        let tip = self.chain.tip().clone();
        let best = (0..=tip.header.height).map(|h| self.store.hash_at(h).expect("memory store reads").unwrap_or(Hash::ZERO)).collect();
        let accounts = self.w.universe().iter().map(|a| self.store.account(a).expect("memory store reads")).collect();
        Observed { tip, best, accounts, floor: self.chain.pool().floor(), pending: self.chain.pool().len() }
    }

    fn submit(&mut self, block: Block, now: u64) {
        let before = self.observe();
        let hash = block.hash();
        let result = self.chain.submit(block.clone(), now);
        trace(|| format!("submit {} at {hash}: {}", block.header.height, said(&result)));
        self.judge(&before, hash, result);
    }

    /// Checks what `result` says happened against the chain.
    fn judge(&mut self, before: &Observed, hash: Hash, result: Result<Outcome, BlockError>) {
        match result {
            Err(e) => {
                assert_eq!(&self.observe(), before, "refused ({e}) yet the chain changed");
                assert!(!self.store.has_block(&hash).expect("memory store reads"), "refused ({e}) yet stored");
                // Codes are stable strings; the message names the rule.
                assert!(!e.code().is_empty() && !e.to_string().is_empty());
            }
            Ok(Outcome::AlreadyKnown) => assert_eq!(&self.observe(), before, "a known block changed the chain"),
            Ok(Outcome::SideChain) => {
                let rec = self.store.header(&hash).expect("memory store reads").expect("a side-chain block is stored");
                assert_eq!(self.chain.tip(), &before.tip, "a side-chain block moved the tip");
                assert!(rec.total_work <= before.tip.total_work, "a side chain with more work did not become best");
                self.accepted(hash);
            }
            Ok(Outcome::Connected { applied, undone }) => {
                let tip = self.chain.tip();
                assert_eq!(applied.last().map(Block::hash), Some(tip.hash), "the last applied block is the tip");
                assert_eq!(tip.hash, hash, "the submitted block is the tip");
                assert!(tip.total_work > before.tip.total_work, "the tip moved to no more work");
                for b in &undone {
                    assert_eq!(before.best.get(b.header.height as usize), Some(&b.hash()), "an undone block was best");
                }
                self.accepted(hash);
            }
        }
    }

    /// Records an accepted block: a parent to choose from.
    fn accepted(&mut self, hash: Hash) {
        self.known.push(hash);
    }

    /// Builds consecutive blocks and commits them as a sync does: checked together, then the
    /// ones before the first failure committed as a run.
    fn run(&mut self, plans: &[BlockPlan]) {
        let mut blocks = Vec::with_capacity(plans.len());
        let mut parent = plans.first().and_then(|p| self.parent(p.parent));
        let mut now = 0;
        for plan in plans {
            let (block, at) = self.build(plan, parent.clone());
            now = now.max(at);
            // The next block's parent (the builder reads only its hash and header).
            parent = Some(HeaderRecord { hash: block.hash(), total_work: block.header.target.work(), header: block.header.clone() });
            blocks.push(block);
        }
        let checked = cairn_chain::check_blocks(&self.w.spec, &self.w.genesis, blocks.clone(), self.cache.as_deref());
        let mut run = Vec::new();
        for (c, b) in checked.into_iter().zip(&blocks) {
            match c {
                Ok(c) => run.push(c),
                Err(failed) => {
                    assert_eq!(failed.0, b.hash(), "a failed check names its block");
                    self.chain.note_stateless_failure(failed.0, &failed.1);
                    break;
                }
            }
        }
        let tried = run.len();
        let results = self.chain.submit_run(run, now);
        trace(|| format!("run of {tried}: {}", results.iter().map(said).collect::<Vec<_>>().join(", ")));
        assert!(results.len() <= tried, "a run answers at most the blocks it was given");
        if let Some(i) = results.iter().position(Result::is_err) {
            assert_eq!(i + 1, results.len(), "a run stops at its first failure");
        }
        for (r, b) in results.iter().zip(&blocks) {
            if r.is_ok() {
                self.accepted(b.hash());
            } else {
                assert!(!self.store.has_block(&b.hash()).expect("memory store reads"), "a refused run block was stored");
            }
        }
    }

    /// What holds after every step.
    fn check_always(&self) {
        let tip = self.chain.tip();
        let read = "memory store reads";
        // The best chain, linked through the height index from the tip down to genesis.
        let mut hash = tip.hash;
        for h in (0..=tip.header.height).rev() {
            assert_eq!(self.store.hash_at(h).expect(read), Some(hash), "height index at {h}");
            let rec = self.store.header(&hash).expect(read).expect("best-chain header stored");
            assert_eq!(rec.header.height, h);
            let body = self.store.body(&hash).expect(read).expect("best-chain body stored");
            for (i, tx) in body.iter().enumerate() {
                let at = self.store.tx_location(&tx.id()).expect(read);
                assert_eq!(at, Some(TxLocation { block: hash, index: i as u32 }), "transaction index");
            }
            hash = rec.header.prev_hash;
        }
        assert_eq!(self.store.hash_at(tip.header.height + 1).expect(read), None, "a height indexed above the tip");
        assert_eq!(self.store.tip_hash().expect(read), Some(tip.hash), "stored tip");
        // Money is conserved: only rewards create it; fees move to the farmer.
        let mut supply: u64 = 0;
        for a in self.w.universe() {
            let stored = self.store.account(&a).expect(read);
            assert_eq!(self.chain.account(&a).expect(read), stored, "account cache of {a}");
            supply = supply.checked_add(stored.balance).expect("balances sum within u64");
        }
        assert_eq!(supply, self.w.genesis_supply() + self.w.spec.block_reward * tip.header.height, "supply at height {}", tip.header.height);
    }

    /// The chain reopened from its store is the same chain.
    fn reopen(&self) {
        let again = Chain::open(self.store.clone(), self.w.spec.clone()).expect("a memory store reopens");
        assert_eq!(again.tip(), self.chain.tip());
        for a in self.w.universe() {
            assert_eq!(again.account(&a).expect("memory store reads"), self.chain.account(&a).expect("memory store reads"));
        }
    }
}
