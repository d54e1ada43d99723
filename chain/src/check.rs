//! The stateless rules: what a block or header alone can show, with no chain context and no
//! store (version, proof, target, size, Merkle root, duplicates, chain binding, signatures).
//! Pure and thread-safe, so callers run them in parallel; [`CheckedBlock`] is the proof that
//! they ran. The p2p layer and the fuzz targets use it too.

use foldhash::{HashSet, HashSetExt};

use crate::block::{Block, HEADER_VERSION, Header, merkle_root};
use crate::error::{BlockError, TxError};
use crate::hash::Hash;
use crate::sigcache::SigCache;
use crate::spec::ChainSpec;
use crate::tx::{Transaction, TxId};

/// The outcome of [`CheckedBlock::check`]: the checked block, or the block's hash and why it
/// failed.
pub type CheckResult = Result<CheckedBlock, Box<(Hash, BlockError)>>;

/// A block that passed [`check_stateless`]; only [`CheckedBlock::check`] makes one, so
/// `Chain::submit_checked` can skip those checks (they ran in parallel elsewhere).
#[derive(Clone, Debug)]
pub struct CheckedBlock {
    pub(crate) block: Block,
    pub(crate) hash: Hash,
    /// The genesis (so the chain) it was checked for.
    pub(crate) genesis: Hash,
    /// Its transaction IDs, as the check computed them (the commit indexes them).
    pub(crate) ids: Vec<TxId>,
}

impl CheckedBlock {
    /// Runs [`check_stateless`]: pure, thread-safe, and the expensive part of validation
    /// (proof, Merkle root, every signature), so callers run it in parallel.
    pub fn check(spec: &ChainSpec, genesis: &Hash, block: Block) -> CheckResult {
        Self::check_with(spec, genesis, block, None)
    }

    /// As [`CheckedBlock::check`], skipping signatures the mempool verified already (`cache`).
    pub fn check_with(spec: &ChainSpec, genesis: &Hash, block: Block, cache: Option<&SigCache>) -> CheckResult {
        let hash = block.hash();
        match check_stateless_ids(spec, genesis, &block, cache) {
            Ok(ids) => Ok(CheckedBlock { block, hash, genesis: *genesis, ids }),
            Err(e) => Err(Box::new((hash, e))),
        }
    }
    /// The block.
    pub fn block(&self) -> &Block {
        &self.block
    }
    /// Its hash.
    pub fn hash(&self) -> Hash {
        self.hash
    }
}

/// Checks what a header alone can show, before its body is fetched: version, proof, a target
/// the spec allows (exactly the pinned one, or no easier than `pow_limit`), and a timestamp
/// not beyond the allowed drift. The rest (height, parent's retarget, median time) is checked
/// when the block connects.
pub fn check_header_alone(spec: &ChainSpec, h: &Header, now_ms: u64) -> Result<(), BlockError> {
    if h.version != HEADER_VERSION {
        return Err(BlockError::BadVersion(h.version));
    }
    if !h.target.is_met_by(&h.hash()) {
        return Err(BlockError::BadProof);
    }
    let allowed = if spec.fixed_target { h.target == spec.initial_target } else { h.target <= spec.pow_limit };
    if !allowed {
        let expected = if spec.fixed_target { spec.initial_target } else { spec.pow_limit };
        return Err(BlockError::BadTarget { expected: expected.to_string(), got: h.target.to_string() });
    }
    if h.timestamp > now_ms.saturating_add(spec.max_future_drift_ms) {
        return Err(BlockError::TimestampInFuture { got: h.timestamp, now: now_ms, max_drift_ms: spec.max_future_drift_ms });
    }
    Ok(())
}

/// Checks everything about a block that needs no chain context: version, size, proof, Merkle
/// root, duplicate transactions, chain binding and every signature (batched). Pure and
/// thread-safe, so callers may run it in parallel before `Chain::submit`.
pub fn check_stateless(spec: &ChainSpec, genesis: &Hash, block: &Block) -> Result<(), BlockError> {
    check_stateless_with(spec, genesis, block, None)
}

/// As [`check_stateless`]; a transaction whose ID is in `cache` (its signature was verified
/// when it entered the mempool) is not verified again. The cache only saves work: the answer is
/// the same with or without it.
pub fn check_stateless_with(spec: &ChainSpec, genesis: &Hash, block: &Block, cache: Option<&SigCache>) -> Result<(), BlockError> {
    check_stateless_ids(spec, genesis, block, cache).map(drop)
}

/// As [`check_stateless_with`], returning the block's transaction IDs.
fn check_stateless_ids(spec: &ChainSpec, genesis: &Hash, block: &Block, cache: Option<&SigCache>) -> Result<Vec<TxId>, BlockError> {
    let todo = check_structure(spec, genesis, block, cache)?;
    if todo.signatures.is_empty() || verify_all(&[(block, &todo)]) {
        // A block checked alone is a new block on the live path: copies of its transactions
        // may be on their way into the mempool meanwhile (relayed, their signatures about to be
        // verified), and find theirs verified. Catch-up sync (`check_blocks`) does not do this:
        // its blocks' transactions are nobody's pending ones.
        if let Some(c) = cache {
            c.insert(todo.signatures.iter().map(|i| todo.ids[*i]));
        }
        return Ok(todo.ids);
    }
    find_bad_signature(block, &todo)?;
    Ok(todo.ids)
}

/// Signatures to verify in one batch across blocks: past this many, a run of blocks is split
/// into several batches. Large batches share the work per signature (one multiscalar
/// multiplication, each distinct key decompressed once, Pippenger's method past ~190 points);
/// beyond a few thousand the gain is small and the batch's memory (~200 B a signature) is not.
const CROSS_BLOCK_BATCH: usize = 4096;

/// What [`check_structure`] left for the signature check: block positions to verify (those
/// not vouched for by the cache) and the block's transaction IDs.
struct SignatureWork {
    signatures: Vec<usize>,
    ids: Vec<crate::tx::TxId>,
}

/// Every check of [`check_stateless_with`] but the signatures, which it returns to verify.
fn check_structure(spec: &ChainSpec, genesis: &Hash, block: &Block, cache: Option<&SigCache>) -> Result<SignatureWork, BlockError> {
    let h = &block.header;
    if h.version != HEADER_VERSION {
        return Err(BlockError::BadVersion(h.version));
    }
    // Cheapest first: the proof costs one hash and stops junk before any other work.
    if !h.target.is_met_by(&block.hash()) {
        return Err(BlockError::BadProof);
    }
    if block.transactions.len() > spec.max_block_txs as usize {
        return Err(BlockError::TooManyTransactions { count: block.transactions.len(), max: spec.max_block_txs });
    }
    let size = block.encoded_len();
    if size > spec.max_block_bytes as usize {
        return Err(BlockError::TooLarge { size, max: spec.max_block_bytes });
    }
    let ids = block.tx_ids();
    let computed = merkle_root(&ids);
    if computed != h.tx_root {
        return Err(BlockError::BadMerkleRoot { computed, got: h.tx_root });
    }
    let mut seen = HashSet::with_capacity(ids.len());
    for id in &ids {
        if !seen.insert(*id) {
            return Err(BlockError::DuplicateTransaction(*id));
        }
    }
    for (index, tx) in block.transactions.iter().enumerate() {
        if tx.chain != *genesis {
            return Err(BlockError::Transaction { index, id: ids[index], error: TxError::WrongChain { expected: *genesis, got: tx.chain } });
        }
    }
    if block.transactions.is_empty() {
        return Ok(SignatureWork { signatures: Vec::new(), ids });
    }
    let cached = cache.map_or_else(|| vec![false; ids.len()], |c| c.take(&ids));
    let signatures: Vec<usize> = (0..ids.len()).filter(|i| !cached[*i]).collect();
    if let Some(c) = cache
        && !signatures.is_empty()
    {
        c.count_verified(signatures.len());
    }
    Ok(SignatureWork { signatures, ids })
}

/// Verifies the listed signatures of every block as one batch: `true` only if all are valid.
fn verify_all(work: &[(&Block, &SignatureWork)]) -> bool {
    let msgs: Vec<(&Transaction, Vec<u8>)> =
        work.iter().flat_map(|(b, w)| w.signatures.iter().map(|i| &b.transactions[*i])).map(|tx| (tx, tx.signing_message())).collect();
    crate::signature::verify_batch(msgs.iter().map(|(tx, m)| (&tx.from, m.as_slice(), &tx.signature)))
}

/// The first transaction of `block` (among `todo`) whose signature is invalid, as the block's
/// error; `Ok` if there is none (the rule is the same on the batch and single paths, so after
/// a failed batch there is one).
fn find_bad_signature(block: &Block, todo: &SignatureWork) -> Result<(), BlockError> {
    for &index in &todo.signatures {
        let tx = &block.transactions[index];
        if !crate::signature::verify(&tx.from, &tx.signing_message(), &tx.signature) {
            return Err(BlockError::Transaction { index, id: todo.ids[index], error: TxError::BadSignature });
        }
    }
    Ok(())
}

/// [`CheckedBlock::check_with`] of many blocks, with their signatures verified in batches
/// across blocks (up to [`CROSS_BLOCK_BATCH`] signatures each). The results are exactly those
/// of checking each block alone: a failed batch is checked again block by block.
pub fn check_blocks(spec: &ChainSpec, genesis: &Hash, blocks: Vec<Block>, cache: Option<&SigCache>) -> Vec<CheckResult> {
    let mut out: Vec<CheckResult> = Vec::with_capacity(blocks.len());
    // Blocks whose structure passed, waiting for their signatures: (position in `out`, work).
    let mut pending: Vec<(usize, SignatureWork)> = Vec::new();
    let mut pending_sigs = 0;
    let mut blocks = blocks.into_iter().peekable();
    while let Some(block) = blocks.next() {
        let hash = block.hash();
        match check_structure(spec, genesis, &block, cache) {
            Ok(work) => {
                pending_sigs += work.signatures.len();
                let ids = work.ids.clone();
                pending.push((out.len(), work));
                out.push(Ok(CheckedBlock { block, hash, genesis: *genesis, ids }));
            }
            Err(e) => out.push(Err(Box::new((hash, e)))),
        }
        if pending_sigs >= CROSS_BLOCK_BATCH || blocks.peek().is_none() {
            settle_signatures(&mut out, std::mem::take(&mut pending));
            pending_sigs = 0;
        }
    }
    out
}

/// Verifies the signatures of the `pending` blocks of `out` in one batch; if it fails, block
/// by block, turning each block with a bad signature into its error.
fn settle_signatures(out: &mut [CheckResult], pending: Vec<(usize, SignatureWork)>) {
    let all: Vec<(&Block, &SignatureWork)> = pending.iter().filter_map(|(i, w)| out[*i].as_ref().ok().map(|c| (&c.block, w))).collect();
    if all.iter().all(|(_, w)| w.signatures.is_empty()) || verify_all(&all) {
        return;
    }
    for (i, work) in &pending {
        let failed = match &out[*i] {
            Ok(c) if !verify_all(&[(&c.block, work)]) => find_bad_signature(&c.block, work).err().map(|e| (c.hash, e)),
            _ => None,
        };
        if let Some(failed) = failed {
            out[*i] = Err(Box::new(failed));
        }
    }
}
