//! The peer task's part (peer/task.rs): carrying out the `PeerProtocol`'s actions, serving
//! from the chain, decoding and the checks alone before the sync sees anything.

use super::*;

impl Node {
    pub(super) fn carry_out(&mut self, w: &mut World, conn: ConnId, actions: Vec<Action>) {
        for a in actions {
            let Some(side) = self.sides.get(&conn) else { return };
            let id = side.remote_id;
            match a {
                Action::Send(m) => self.send(w, conn, &m),
                Action::Serve(s) => self.serve(w, conn, s),
                Action::Sync(m) => {
                    if let Err(kind) = self.sync_data(w, id, m) {
                        self.penalize(w, id, kind);
                        self.close(w, conn, Some((RejectReason::ProtocolViolation, kind.code().into())));
                    }
                }
                Action::Transactions(list) => {
                    if let Err(kind) = self.took_txs(w, id, list) {
                        self.penalize(w, id, kind);
                        self.close(w, conn, Some((RejectReason::ProtocolViolation, kind.code().into())));
                    }
                }
                Action::Announced(ids) => self.announced_txs(w, id, ids),
                // Addresses: every node knows every other (see `dial_more`).
                Action::Learn(_) => {}
                Action::GivePeers => {
                    let list: Vec<PeerAddress> = self
                        .sides
                        .values()
                        .filter(|s| matches!(s.phase, Phase::Up(_)))
                        .take(8)
                        .map(|s| PeerAddress { node_id: Some(s.remote_id), addr: addr_of(s.remote) })
                        .collect();
                    self.send(w, conn, &Message::Peers(list));
                }
                Action::Misbehaved(kind) => {
                    if !self.penalize(w, id, kind) {
                        return;
                    }
                }
                Action::Close(Close::Violation(kind)) => {
                    self.penalize(w, id, kind);
                    self.close(w, conn, Some((RejectReason::ProtocolViolation, kind.code().into())));
                }
                Action::Close(Close::Local(why)) => {
                    let code = if why == PING_TIMEOUT { RejectReason::PeerTimeout } else { RejectReason::ProtocolViolation };
                    self.close(w, conn, Some((code, why.into())));
                }
                Action::Close(Close::Remote(_)) => self.close(w, conn, None),
            }
        }
    }

    /// Answers a request from the chain (the peer task's `serve`), as the node's misbehaviour
    /// allows.
    pub(super) fn serve(&mut self, w: &mut World, conn: ConnId, s: Serve) {
        match (self.hostile, &s) {
            (Some(Hostile::Stall), Serve::Status) => {}
            (Some(Hostile::Stall), _) => return,
            (Some(Hostile::AnnounceNoServe), Serve::Block(_)) => return self.send(w, conn, &Message::BlockData(None)),
            _ => {}
        }
        let answer = match s {
            Serve::Status => {
                let tip = self.chain.tip();
                Message::Status { best_height: tip.height, best_hash: tip.hash, total_work: tip.work.to_bytes() }
            }
            Serve::Block(id) => {
                let hash = match id {
                    BlockId::Hash(h) => Some(h),
                    BlockId::Height(n) => self.chain.hash_at(n),
                };
                Message::BlockData(hash.and_then(|h| self.encoded(w, &h)))
            }
            Serve::Headers { locator, max } => {
                let headers = self.chain.headers_after(&locator, (max as usize).min(MAX_HEADERS));
                Message::Headers(headers.iter().map(|h| Bytes::copy_from_slice(&h.encode())).collect())
            }
            Serve::Blocks(hashes) => {
                let budget = w.factory.spec.max_block_bytes as usize;
                let (mut out, mut missing, mut size) = (Vec::new(), Vec::new(), 0);
                for h in hashes {
                    let Some(b) = self.encoded(w, &h) else {
                        missing.push(h);
                        continue;
                    };
                    if !out.is_empty() && size + b.len() > budget {
                        break;
                    }
                    size += b.len();
                    out.push(b);
                }
                if !missing.is_empty() {
                    self.send(w, conn, &Message::NotFound(missing));
                }
                Message::Blocks(out)
            }
            Serve::Txs(ids) => return self.serve_txs(w, conn, ids),
            Serve::BlockTxs { hash, indexes } => {
                let block = self.chain.block(&hash).or_else(|| self.stash.get(&hash).map(|m| m.block.clone()));
                let txs = block
                    .and_then(|b| indexes.iter().map(|i| b.transactions.get(*i as usize).map(|tx| Bytes::from(tx.encode()))).collect::<Option<Vec<_>>>())
                    .unwrap_or_default();
                Message::BlockTxs { hash, txs }
            }
        };
        self.send(w, conn, &answer);
    }

    pub(super) fn encoded(&self, w: &World, hash: &Hash) -> Option<Bytes> {
        if !self.chain.has_block(hash) && !self.stash.contains_key(hash) {
            return None;
        }
        w.factory.made.get(hash).map(|m| m.encoded.clone())
    }

    /// A block from its bytes: decoded for real in Full fidelity; in Light, its header is
    /// decoded and the body taken from the registry (the same block, without a megabyte copy).
    pub(super) fn block_of(&self, w: &World, bytes: &[u8]) -> Result<Block, Misbehaviour> {
        let max = w.factory.spec.max_block_txs as usize;
        match w.cfg.fidelity {
            Fidelity::Full => Block::decode(bytes, max).map_err(|_| Misbehaviour::UndecodableChainData),
            Fidelity::Light => {
                let header = bytes.get(..Header::ENCODED_LEN).and_then(|b| Header::decode(b).ok()).ok_or(Misbehaviour::UndecodableChainData)?;
                w.factory.made.get(&header.hash()).map(|m| (*m.block).clone()).ok_or(Misbehaviour::UndecodableChainData)
            }
        }
    }

    pub(super) fn arc_block_of(&self, w: &World, bytes: &[u8]) -> Result<Arc<Block>, Misbehaviour> {
        if w.cfg.fidelity == Fidelity::Light {
            let header = bytes.get(..Header::ENCODED_LEN).and_then(|b| Header::decode(b).ok()).ok_or(Misbehaviour::UndecodableChainData)?;
            return w.factory.made.get(&header.hash()).map(|m| m.block.clone()).ok_or(Misbehaviour::UndecodableChainData);
        }
        self.block_of(w, bytes).map(Arc::new)
    }

    /// What a header alone shows (the peer task's `header_taken`): `Err` punishes, `Ok(false)`
    /// drops it unpunished.
    pub(super) fn header_taken(&self, w: &World, h: &Header) -> Result<bool, Misbehaviour> {
        match cairn_chain::check_header_alone(&w.factory.spec, h, self.now_ms(w)) {
            Ok(()) => Ok(true),
            Err(e) => match block_verdict(&e, true) {
                Verdict::Punish(kind) => Err(kind),
                Verdict::NotYetValid | Verdict::Blameless => Ok(false),
            },
        }
    }

    /// Decodes and checks chain data alone, then hands it to the sync glue (the peer task's
    /// `sync`).
    pub(super) fn sync_data(&mut self, w: &mut World, id: NodeId, m: ToSync) -> Result<(), Misbehaviour> {
        match m {
            ToSync::Status { best_height: _, best_hash, total_work } => {
                if let Some(up) = self.up_mut(&id) {
                    up.work = Work::from_bytes(total_work);
                }
                self.download.announced(&id, &best_hash);
            }
            ToSync::NewBlock { height, hash } => self.on_new_block(w, id, height, hash),
            ToSync::NotFound(hashes) => self.download.on_not_found(&id, &hashes),
            ToSync::Headers(list) => {
                let full = list.len() == MAX_HEADERS;
                let (mut headers, mut cut) = (Vec::<Header>::with_capacity(list.len()), false);
                for bytes in &list {
                    let h = Header::decode(bytes).map_err(|_| Misbehaviour::UndecodableChainData)?;
                    if let Some(prev) = headers.last()
                        && (h.prev_hash != prev.hash() || h.height != prev.height.wrapping_add(1))
                    {
                        return Err(Misbehaviour::InvalidHeaderChain);
                    }
                    if !self.header_taken(w, &h)? {
                        cut = true;
                        break;
                    }
                    headers.push(h);
                }
                self.take_headers(w, id, headers, full, cut);
            }
            ToSync::Blocks(list) => {
                let blocks = list.iter().map(|b| self.block_of(w, b)).collect::<Result<Vec<_>, _>>()?;
                if let Some(taken) = self.download.on_blocks(id, blocks, self.inst(w))
                    && taken.withheld > 0
                {
                    self.judge(w, id, Misbehaviour::WithheldBlocks);
                }
            }
            ToSync::CompactBlock { header, nonce, short_ids } => {
                let header = Header::decode(&header).map_err(|_| Misbehaviour::UndecodableChainData)?;
                let short_ids = match w.cfg.fidelity {
                    Fidelity::Full => {
                        CompactBlock::decode_short_ids(&short_ids, w.factory.spec.max_block_txs as usize).map_err(|_| Misbehaviour::UndecodableChainData)?
                    }
                    Fidelity::Light => Vec::new(),
                };
                if self.header_taken(w, &header)? {
                    self.take_compact(w, id, CompactBlock { header, nonce, short_ids });
                }
            }
            ToSync::BlockTxs { hash, txs } => {
                // Light fidelity counts the transactions without decoding them (honest answers).
                let count = txs.len();
                let txs = match w.cfg.fidelity {
                    Fidelity::Full => {
                        txs.iter().map(|b| Transaction::decode(b)).collect::<Result<Vec<_>, _>>().map_err(|_| Misbehaviour::UndecodableChainData)?
                    }
                    Fidelity::Light => Vec::new(),
                };
                self.on_block_txs(w, id, hash, txs, count);
            }
            ToSync::BlockData { block, requested } => {
                let b = self.arc_block_of(w, &block)?;
                let hash = b.hash();
                if !self.header_taken(w, &b.header)? {
                    return Ok(());
                }
                let asked = match requested {
                    Some(BlockId::Hash(h)) => h == hash,
                    Some(BlockId::Height(n)) => n == b.header.height,
                    None => false,
                };
                let parent = self.chain.total_work_of(&b.header.prev_hash);
                if !asked && !cairn_p2p::peer::unrequested_block_wanted(parent, b.header.target.work(), self.chain.tip().work) {
                    return Ok(());
                }
                self.take_block(w, id, b);
            }
        }
        Ok(())
    }

    pub(super) fn up_mut(&mut self, id: &NodeId) -> Option<&mut Up> {
        let conn = self.by_id.get(id)?;
        match &mut self.sides.get_mut(conn)?.phase {
            Phase::Up(up) => Some(up),
            Phase::Hs(_) => None,
        }
    }
}
