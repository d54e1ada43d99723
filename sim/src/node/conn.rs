//! Connections and the peer manager's part: dialing, the handshake shell (connection.rs),
//! admission, registration, judgement through `Bans`, closing (manager/mod.rs).

use super::*;

impl Node {
    /// Dials `to`: the real dialer's handshake machine on a new connection.
    pub fn dial(&mut self, w: &mut World, to: usize) {
        let conn = w.net.open(self.idx, to, self.clock);
        let (hs, first) = Handshake::dialer(self.hello(w), self.id, w.ids[to], self.inst(w), w.cfg.handshake_timeout);
        self.sides.insert(conn, Side { remote: to, remote_id: w.ids[to], outbound: true, phase: Phase::Hs(Box::new(hs)) });
        self.carry_hs(w, conn, first);
    }

    /// A frame arrived on `conn`.
    pub fn on_deliver(&mut self, w: &mut World, conn: ConnId, payload: Payload) {
        if !self.sides.contains_key(&conn) {
            // The first frame of an inbound connection starts its listener handshake.
            let Some(c) = w.net.conn(conn) else { return };
            if c.ends[1] != self.idx {
                return;
            }
            let remote = c.ends[0];
            let hs = Handshake::listener(self.hello(w), self.id, w.ids[remote], self.inst(w), w.cfg.handshake_timeout);
            self.sides.insert(conn, Side { remote, remote_id: w.ids[remote], outbound: false, phase: Phase::Hs(Box::new(hs)) });
        }
        let msg = match payload {
            Payload::Msg(m) => Ok(m),
            Payload::Frame(b) => cairn_p2p::wire::decode(&b),
        };
        let inst = self.inst(w);
        let Some(side) = self.sides.get_mut(&conn) else { return };
        match &mut side.phase {
            Phase::Hs(hs) => {
                let acts = hs.on_message(msg, inst);
                self.carry_hs(w, conn, acts);
            }
            Phase::Up(up) => {
                let acts = match msg {
                    Ok(m) => up.proto.on_message(m, inst),
                    Err(e) => up.proto.on_wire_error(&e, inst),
                };
                self.carry_out(w, conn, acts);
            }
        }
    }

    /// The other end closed `conn` (its close frame, or QUIC's idle timeout after a crash).
    pub fn on_closed(&mut self, w: &mut World, conn: ConnId) {
        if self.sides.contains_key(&conn) {
            let inst = self.inst(w);
            let acts = match self.sides.get_mut(&conn).map(|s| &mut s.phase) {
                Some(Phase::Hs(hs)) => hs.on_message(Err(WireError::Closed), inst).into_iter().map(Either::Hs).collect(),
                Some(Phase::Up(up)) => up.proto.on_wire_error(&WireError::Closed, inst).into_iter().map(Either::Peer).collect(),
                None => Vec::new(),
            };
            for a in acts {
                match a {
                    Either::Hs(a) => self.carry_hs(w, conn, vec![a]),
                    Either::Peer(a) => self.carry_out(w, conn, vec![a]),
                }
            }
            // Whatever the machine said, the connection is gone.
            self.drop_side(w, conn);
        }
    }

    /// Ends `conn`: an optional `Reject` first (as the real shells send), then the QUIC close,
    /// which reaches the other end after the link's latency (if it can reach it at all).
    pub(super) fn close(&mut self, w: &mut World, conn: ConnId, reject: Option<(RejectReason, String)>) {
        let Some(side) = self.sides.get(&conn) else { return };
        let remote = side.remote;
        if let Some((reason, detail)) = reject {
            self.send(w, conn, &Message::Reject { reason, detail });
        }
        w.close_conn(conn, self.idx, remote, self.clock, None);
        self.drop_side(w, conn);
    }

    /// Forgets a connection: the sync task's `PeerDown`, and a dial that never registered
    /// backs off.
    pub(super) fn drop_side(&mut self, w: &mut World, conn: ConnId) {
        let Some(side) = self.sides.remove(&conn) else { return };
        w.net.close(conn);
        match side.phase {
            Phase::Up(_) => {
                if self.by_id.get(&side.remote_id) == Some(&conn) {
                    self.by_id.remove(&side.remote_id);
                    self.rebuilding.peer_gone(&side.remote_id);
                    self.download.remove_peer(&side.remote_id);
                    self.relay_peer_gone(w, &side.remote_id);
                }
            }
            Phase::Hs(_) if side.outbound => {
                let f = self.failures.entry(side.remote).or_insert((0, 0));
                f.0 += 1;
                let backoff = (SECOND << f.0.min(9)).min(300 * SECOND);
                f.1 = self.clock + backoff;
            }
            Phase::Hs(_) => {}
        }
    }

    /// The manager's admission of a peer whose `Hello` passed the checks.
    pub(super) fn admit(&self, w: &World, side: (&NodeId, bool)) -> Result<(), Refusal> {
        let (id, outbound) = side;
        if self.bans.is_banned(id, self.now_ms(w)) {
            return Err(Refusal::new(RejectReason::Banned, "banned"));
        }
        if self.by_id.contains_key(id) {
            return Err(Refusal::new(RejectReason::AlreadyConnected, "already connected"));
        }
        let inbound = self.sides.values().filter(|s| !s.outbound && matches!(s.phase, Phase::Up(_))).count();
        if !outbound && inbound >= w.cfg.max_inbound {
            return Err(Refusal::new(RejectReason::TooManyPeers, "no inbound slot"));
        }
        Ok(())
    }

    pub(super) fn carry_hs(&mut self, w: &mut World, conn: ConnId, actions: Vec<HsAction>) {
        let mut todo: VecDeque<HsAction> = actions.into();
        while let Some(a) = todo.pop_front() {
            let Some(side) = self.sides.get(&conn) else { return };
            let (remote_id, outbound) = (side.remote_id, side.outbound);
            match a {
                HsAction::Send(m) => self.send(w, conn, &m),
                HsAction::Admit(_) => {
                    let r = self.admit(w, (&remote_id, outbound));
                    let inst = self.inst(w);
                    if let Some(Side { phase: Phase::Hs(hs), .. }) = self.sides.get_mut(&conn) {
                        todo.extend(hs.admitted(r, inst));
                    }
                }
                HsAction::Done(hello) => self.register(w, conn, hello),
                HsAction::Refuse { refusal, misbehaviour, send_reject } => {
                    if let Some(kind) = misbehaviour {
                        self.penalize(w, remote_id, kind);
                    }
                    let reject = send_reject.then(|| (refusal.reason, refusal.detail.clone()));
                    self.close(w, conn, reject);
                }
                HsAction::RefusedByPeer(_) | HsAction::Lost(_) => self.close(w, conn, None),
            }
        }
    }

    /// Registration after a finished handshake, then the peer task's start.
    pub(super) fn register(&mut self, w: &mut World, conn: ConnId, hello: Hello) {
        let Some(side) = self.sides.get(&conn) else { return };
        let (remote_id, outbound, remote) = (side.remote_id, side.outbound, side.remote);
        if self.by_id.contains_key(&remote_id) || self.bans.is_banned(&remote_id, self.now_ms(w)) {
            self.close(w, conn, Some((RejectReason::AlreadyConnected, "already connected".into())));
            return;
        }
        let cfg = ProtocolConfig { max_block_txs: w.factory.spec.max_block_txs as usize, ..ProtocolConfig::from(&w.p2p) };
        let seed = w.eng.rng.r#gen();
        let (proto, first) = PeerProtocol::new(cfg, outbound, self.inst(w), seed);
        let work = Work::from_bytes(hello.total_work);
        if let Some(s) = self.sides.get_mut(&conn) {
            s.phase = Phase::Up(Box::new(Up { proto, work, asked_for: Work::ZERO }));
        }
        self.failures.remove(&remote);
        self.by_id.insert(remote_id, conn);
        self.download.add_peer(remote_id);
        self.download.announced(&remote_id, &hello.best_hash);
        self.relay_peer_up(w, remote_id);
        self.carry_out(w, conn, first);
    }

    /// The manager's `penalize`: points through `Bans`; at the threshold the peer is banned
    /// and cut off. Returns whether it is still in good standing.
    pub(super) fn penalize(&mut self, w: &mut World, id: NodeId, kind: Misbehaviour) -> bool {
        let now_ms = self.now_ms(w);
        let (_, ban) = self.bans.penalize(id, kind.points(), kind.code(), now_ms, BAN_MS);
        w.metrics.misbehaved(kind.code());
        if ban.is_some() {
            w.metrics.banned(self.idx, w.index_of(&id), kind.code());
            if let Some(conn) = self.by_id.get(&id).copied() {
                self.close(w, conn, Some((RejectReason::Banned, kind.code().into())));
            }
            return false;
        }
        true
    }

    /// The sync task's `judge`: also ends the connection for the kinds that always do.
    pub(super) fn judge(&mut self, w: &mut World, id: NodeId, kind: Misbehaviour) -> bool {
        let good = self.penalize(w, id, kind);
        if good
            && kind.disconnects()
            && let Some(conn) = self.by_id.get(&id).copied()
        {
            self.close(w, conn, Some((RejectReason::ProtocolViolation, kind.code().into())));
        }
        good && !kind.disconnects()
    }

    /// The manager's `dial_more`: below the outbound target, dial known nodes at random (not
    /// ourselves, not connected, not banned, not backing off).
    pub(super) fn dial_more(&mut self, w: &mut World) {
        if self.clock < self.next_dial {
            return;
        }
        self.next_dial = self.clock + w.p2p.dial_interval.as_nanos() as Time;
        let outbound = self.sides.values().filter(|s| s.outbound).count();
        let want = w.cfg.target_outbound.saturating_sub(outbound);
        let n = w.ids.len();
        let now_ms = self.now_ms(w);
        for _ in 0..want {
            for _ in 0..20 {
                let to = w.eng.rng.gen_range(0..n);
                let busy = to == self.idx
                    || self.sides.values().any(|s| s.remote == to)
                    || self.bans.is_banned(&w.ids[to], now_ms)
                    || self.failures.get(&to).is_some_and(|(_, until)| *until > self.clock)
                    || !w.known[to];
                if !busy {
                    self.dial(w, to);
                    break;
                }
            }
        }
    }

    /// Optional outbound rotation (not in the real node; a proposal the partition scenario
    /// measures): every `rotate_every`, one outbound peer is dropped so a new one is dialled.
    pub(super) fn rotate(&mut self, w: &mut World) {
        let Some(every) = w.cfg.rotate_every else { return };
        if self.clock < self.next_rotate {
            return;
        }
        self.next_rotate = self.clock + every;
        let outbound: Vec<ConnId> = self.sides.iter().filter(|(_, s)| s.outbound && matches!(s.phase, Phase::Up(_))).map(|(c, _)| *c).collect();
        if outbound.len() >= w.cfg.target_outbound {
            let conn = outbound[w.eng.rng.gen_range(0..outbound.len())];
            self.close(w, conn, Some((RejectReason::Disconnected, "rotated".into())));
        }
    }
}
