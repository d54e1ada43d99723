//! The `chain_submit` target's world: two small chain specs with an easy proof of work (one with
//! a pinned target, one that retargets), a pool of transactions signed once per spec, and the
//! byte script the target reads, with its writer (the committed seeds are written in it).
//!
//! # Why a byte script
//! Every field is one byte read through `arbitrary`'s `Unstructured` (0 once the input is
//! used up), so an input is a plain sequence of choices: libFuzzer's mutations map to small
//! changes of the blocks, and a seed is a few bytes written by [`Action::write`], the mirror of
//! [`Script::read`] next to it.
//!
//! # Why a pool of signed transactions
//! Signing costs ~20 µs and verifying ~25 µs: blocks draw their transactions from a pool signed
//! once ([`World::get`]), by reference, and the chain's signature cache vouches for the pool's
//! signatures when the input asks for it, so only mutated transactions are verified again.

use std::sync::OnceLock;

use arbitrary::Unstructured;
use cairn_chain::keys::{DEV_SEED, dev_keypair};
use cairn_chain::pow::Target;
use cairn_chain::spec::Alloc;
use cairn_chain::{Address, ChainSpec, Hash, Header, Keypair, Transaction, TxId};

/// Accounts funded at genesis (the devnet's first keys), which send every transaction.
pub const SENDERS: usize = 4;
/// Nonces 0..NONCES of each sender are signed in advance (a longer branch runs out: its
/// transactions then reuse the last nonce and are refused).
pub const NONCES: u64 = 12;
/// Each sender's balance at genesis.
pub const BALANCE: u64 = 1_000_000;
/// Transaction kinds of the pool: [`KIND_SMALL`], [`KIND_OVERSPEND`], [`KIND_OVERFLOW`],
/// [`KIND_WRONG_CHAIN`].
pub const KINDS: usize = 4;
/// A transfer well within the balance.
pub const KIND_SMALL: usize = 0;
/// More than the sender ever holds.
pub const KIND_OVERSPEND: usize = 1;
/// An amount whose sum with the fee overflows.
pub const KIND_OVERFLOW: usize = 2;
/// Signed for another chain.
pub const KIND_WRONG_CHAIN: usize = 3;
/// Recipients a transaction may pay: two outside addresses, or the next sender.
pub const RECIPIENTS: usize = 3;
/// Most blocks' worth of header hashes spent looking for a valid proof (a target the input
/// made hard is then left unmet: the block is refused for its proof).
pub const MINE_TRIES: u64 = 256;

/// Blocks' farmers.
pub const FARMERS: [Address; 2] = [Address([0xf1; 32]), Address([0xf2; 32])];
/// Outside recipients.
pub const OUTSIDERS: [Address; 2] = [Address([0xa1; 32]), Address([0xa2; 32])];

/// One spec and what was signed for it.
pub struct World {
    /// The spec.
    pub spec: ChainSpec,
    /// Its genesis hash.
    pub genesis: Hash,
    /// The senders' keys.
    pub keys: Vec<Keypair>,
    /// `[sender][kind][recipient][nonce]`, flattened.
    txs: Vec<Transaction>,
    /// Every pool transaction's ID (for the signature cache).
    pub ids: Vec<TxId>,
}

impl World {
    /// The pool's transaction from `sender` (mod [`SENDERS`]) of `kind` to `recipient` with
    /// `nonce` (clamped to the last signed one).
    pub fn get(&self, sender: usize, kind: usize, recipient: usize, nonce: u64) -> &Transaction {
        let nonce = nonce.min(NONCES - 1) as usize;
        let i = (((sender % SENDERS) * KINDS + kind % KINDS) * RECIPIENTS + recipient % RECIPIENTS) * NONCES as usize + nonce;
        &self.txs[i]
    }

    /// Every address value can reach: senders, outsiders, farmers.
    pub fn universe(&self) -> Vec<Address> {
        let mut v: Vec<Address> = self.keys.iter().map(Keypair::address).collect();
        v.extend(OUTSIDERS);
        v.extend(FARMERS);
        v
    }

    /// The sum of every balance at genesis.
    pub fn genesis_supply(&self) -> u64 {
        BALANCE * SENDERS as u64
    }
}

/// The spec: the devnet's, small, funding `keys`. `retarget`: the target follows block times
/// (window 5) from an easy limit; else it is pinned there. Either way about one hash in two
/// meets it.
fn spec(retarget: bool, keys: &[Keypair]) -> ChainSpec {
    let mut s = ChainSpec::devnet();
    s.chain_id = if retarget { "fuzz-retarget".into() } else { "fuzz-fixed".into() };
    let mut easy = [0xff; 32];
    easy[0] = 0x7f;
    s.initial_target = Target(easy);
    s.pow_limit = Target(easy);
    s.fixed_target = !retarget;
    s.retarget_window = 5;
    s.block_time_ms = 1000;
    s.block_reward = 50;
    // Six transactions pass the count limit but only five fit the byte limit: both reachable.
    s.max_block_txs = 6;
    s.max_block_bytes = (Header::ENCODED_LEN + 4 + 5 * Transaction::ENCODED_LEN) as u32;
    s.max_reorg_depth = 3;
    s.max_future_drift_ms = 15_000;
    // Explicit allocations, not dev accounts: `Chain::open` derives dev accounts' keys (two
    // base-point multiplications each, every iteration); an allocation is just an address.
    s.dev_accounts = None;
    s.alloc = keys.iter().map(|k| Alloc { address: k.address(), balance: BALANCE }).collect();
    s
}

fn build(retarget: bool) -> World {
    let keys: Vec<Keypair> = (0..SENDERS as u32).map(|i| dev_keypair(DEV_SEED, i)).collect();
    let spec = spec(retarget, &keys);
    let genesis = spec.genesis().hash();
    let elsewhere = Hash::digest(b"another chain");
    let mut txs = Vec::with_capacity(SENDERS * KINDS * RECIPIENTS * NONCES as usize);
    for (s, key) in keys.iter().enumerate() {
        let recipients: [Address; RECIPIENTS] = [OUTSIDERS[0], OUTSIDERS[1], keys[(s + 1) % SENDERS].address()];
        for kind in 0..KINDS {
            for to in recipients {
                for nonce in 0..NONCES {
                    let (chain, amount) = match kind {
                        KIND_SMALL => (genesis, 1000),
                        KIND_OVERSPEND => (genesis, 2 * BALANCE),
                        KIND_OVERFLOW => (genesis, u64::MAX),
                        _ => (elsewhere, 1000),
                    };
                    txs.push(Transaction::signed(key, chain, to, amount, 1, nonce));
                }
            }
        }
    }
    let ids = txs.iter().map(Transaction::id).collect();
    World { spec, genesis, keys, txs, ids }
}

/// The world of a pinned target (`false`) or a retargeting one (`true`), built once.
pub fn world(retarget: bool) -> &'static World {
    static FIXED: OnceLock<World> = OnceLock::new();
    static RETARGET: OnceLock<World> = OnceLock::new();
    if retarget { RETARGET.get_or_init(|| build(true)) } else { FIXED.get_or_init(|| build(false)) }
}

/// A transaction of a block: which pool entry, and how it is bent.
#[derive(Clone, Copy, Debug, Default)]
pub struct TxPlan {
    /// Sender (mod 4), then kind and recipient (`/ 4`, mod 12).
    pub pick: u8,
    /// Mod 8: 0–3 the sender's next nonce on the parent's branch; 4 one past it (a gap); 5 one
    /// before it (used); 6 the block's previous transaction again; 7 the next nonce with its
    /// amount changed after signing (a bad signature).
    pub how: u8,
}

/// One block to build and submit.
#[derive(Clone, Debug, Default)]
pub struct BlockPlan {
    /// 0: the tip; 254: the block built last; 255: an unknown parent; else a block accepted so
    /// far, genesis first (`parent - 1`, mod their number).
    pub parent: u8,
    /// The farmer (mod 2).
    pub farmer: u8,
    /// Time since the parent, in half block times (mod 4, plus 1).
    pub gap: u8,
    /// Mod 16: 0–5 none; 6 wrong Merkle root; 7 proof not met; 8 timestamp at the median
    /// past; 9 wrong height; 10 wrong version; 11 wrong target; 12 too many transactions;
    /// 13 first and last transaction swapped; 14 first transaction twice; 15 timestamp past
    /// the allowed drift.
    pub mutation: u8,
    /// The mutation's argument.
    pub arg: u8,
    /// 0 mod 8: submitted at a clock before the block's time (beyond the drift); else at the
    /// block's time.
    pub now: u8,
    /// Its transactions (at most 8).
    pub txs: Vec<TxPlan>,
}

/// What the target does next.
#[derive(Clone, Debug)]
pub enum Action {
    /// Build a block and `Chain::submit` it.
    Submit(BlockPlan),
    /// Build consecutive blocks (each on the one before; the first as its plan says), check
    /// them together and commit them as a sync does (`check_blocks`, `Chain::submit_run`).
    Run(Vec<BlockPlan>),
    /// Submit a block built before again (mod their number).
    Resubmit(u8),
}

/// A whole input.
#[derive(Clone, Debug, Default)]
pub struct Script {
    /// Bit 0: the chain skips the pool's signatures (its signature cache holds them); bit 1:
    /// the retargeting spec.
    pub flags: u8,
    /// The actions, in order.
    pub actions: Vec<Action>,
}

/// Most actions of one input (each builds at most four blocks).
pub const MAX_ACTIONS: usize = 48;

fn byte(u: &mut Unstructured<'_>) -> u8 {
    // An exhausted input reads as zeros (arbitrary's rule for integers).
    u.arbitrary().unwrap_or(0)
}

impl BlockPlan {
    fn read(u: &mut Unstructured<'_>) -> BlockPlan {
        let mut p = BlockPlan { parent: byte(u), farmer: byte(u), gap: byte(u), mutation: byte(u), arg: byte(u), now: byte(u), txs: Vec::new() };
        let n = byte(u) % 9;
        for _ in 0..n {
            p.txs.push(TxPlan { pick: byte(u), how: byte(u) });
        }
        p
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend([self.parent, self.farmer, self.gap, self.mutation, self.arg, self.now, self.txs.len() as u8]);
        for t in &self.txs {
            out.extend([t.pick, t.how]);
        }
    }
}

impl Script {
    /// Reads a script: a flags byte, then actions (tag mod 4: 0–1 submit, 2 run of 1–4
    /// blocks, 3 resubmit) until the input ends or [`MAX_ACTIONS`].
    pub fn read(data: &[u8]) -> Script {
        let mut u = Unstructured::new(data);
        let flags = byte(&mut u);
        let mut actions = Vec::new();
        while !u.is_empty() && actions.len() < MAX_ACTIONS {
            let action = match byte(&mut u) % 4 {
                0 | 1 => Action::Submit(BlockPlan::read(&mut u)),
                2 => {
                    let n = 1 + byte(&mut u) % 4;
                    Action::Run((0..n).map(|_| BlockPlan::read(&mut u)).collect())
                }
                _ => Action::Resubmit(byte(&mut u)),
            };
            actions.push(action);
        }
        Script { flags, actions }
    }

    /// The bytes [`Script::read`] reads back as this script.
    pub fn write(&self) -> Vec<u8> {
        let mut out = vec![self.flags];
        for a in &self.actions {
            a.write(&mut out);
        }
        out
    }
}

impl Action {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Action::Submit(p) => {
                out.push(0);
                p.write(out);
            }
            Action::Run(ps) => {
                out.extend([2, (ps.len() as u8).saturating_sub(1)]);
                for p in ps {
                    p.write(out);
                }
            }
            Action::Resubmit(i) => out.extend([3, *i]),
        }
    }
}

/// The committed seeds of `chain_submit`: (file name, script).
pub fn seeds() -> Vec<(&'static str, Script)> {
    // Transfers from every sender with its next nonce, to each recipient in turn.
    let transfers = |n: u8| -> Vec<TxPlan> { (0..n).map(|i| TxPlan { pick: (i % 4) + 4 * (i % 3) * 4, how: 0 }).collect() };
    let valid = |txs: u8| BlockPlan { gap: 1, now: 1, txs: transfers(txs), ..BlockPlan::default() };
    let on = |parent: u8| BlockPlan { parent, farmer: 1, gap: 1, now: 1, ..BlockPlan::default() };
    let linear: Vec<Action> = (0..6).map(|i| Action::Submit(valid(i % 5))).collect();
    // Three blocks on the tip, then a branch from genesis that outgrows them (a reorg three
    // deep), and one more block on each branch.
    let mut reorg = vec![Action::Submit(valid(2)), Action::Submit(valid(3)), Action::Submit(valid(1)), Action::Submit(on(1))];
    reorg.extend((0..3).map(|_| Action::Submit(on(254))));
    reorg.extend([Action::Submit(on(4)), Action::Submit(valid(1))]);
    let mut run = vec![Action::Run((0..4).map(|i| valid(i + 1)).collect())];
    run.push(Action::Run(vec![valid(2), BlockPlan { mutation: 6, ..valid(1) }, valid(1)]));
    let mut bad = vec![Action::Submit(valid(2))];
    bad.extend((6..16).map(|m| Action::Submit(BlockPlan { mutation: m, arg: 1, ..valid(3) })));
    bad.extend((4..8).map(|how| Action::Submit(BlockPlan { txs: vec![TxPlan { pick: 1, how }, TxPlan { pick: 1, how }], ..valid(0) })));
    bad.push(Action::Resubmit(0));
    vec![
        ("seed-linear", Script { flags: 1, actions: linear.clone() }),
        ("seed-linear-retarget", Script { flags: 3, actions: linear }),
        ("seed-reorg", Script { flags: 1, actions: reorg }),
        ("seed-run", Script { flags: 0, actions: run }),
        ("seed-mutations", Script { flags: 1, actions: bad }),
    ]
}
