//! The handshake: what makes two nodes compatible ([`check`]), and the hello exchange as a
//! sans-IO state machine ([`Handshake`]).
//!
//! The machine owns no socket, task or clock: the connection's shell feeds it frames, the peer
//! manager's admission answer and the time, and carries out the [`HsAction`]s it returns. So
//! every path (each refusal, a timeout in each state, garbage, a peer that walks away) is
//! tested in microseconds with virtual time, and the shell holds no protocol decisions.

use std::time::{Duration, Instant};

use crate::identity::NodeId;
use crate::verdict::Misbehaviour;
use crate::wire::{Hello, Message, RejectReason, WireError};

/// A refusal with both sides' values, for logs and the RPC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The reason.
    pub reason: RejectReason,
    /// Human detail naming both values.
    pub detail: String,
}

impl Refusal {
    /// A refusal.
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Refusal { reason, detail: detail.into() }
    }
}

/// Checks a remote `Hello` (from node `remote_id`) against ours. The refusal's detail is read
/// on both sides (our log, the peer's error), so it names the nodes by role, never "here".
pub fn check(local: &Hello, local_id: &NodeId, remote: &Hello, remote_id: &NodeId) -> Result<(), Refusal> {
    if local_id == remote_id {
        return Err(Refusal::new(RejectReason::SelfConnection, format!("connected to own node ID {local_id}")));
    }
    if local.protocol_version != remote.protocol_version {
        return Err(Refusal::new(
            RejectReason::IncompatibleVersion,
            format!("the refusing node speaks protocol version {}, the refused node {}", local.protocol_version, remote.protocol_version),
        ));
    }
    if local.chain_id != remote.chain_id {
        return Err(Refusal::new(
            RejectReason::WrongChain,
            format!("the refusing node is on chain '{}', the refused node on '{}'", local.chain_id, remote.chain_id.chars().take(64).collect::<String>()),
        ));
    }
    if local.genesis != remote.genesis {
        return Err(Refusal::new(
            RejectReason::WrongGenesis,
            format!("the refusing node's genesis is {}, the refused node's {}", local.genesis, remote.genesis),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The handshake as a sans-IO state machine.
// ---------------------------------------------------------------------------------------------

/// Most characters of a peer's own refusal detail kept: it is the peer's text, shown in logs
/// and the RPC, and an honest detail names two values in well under this.
pub const MAX_PEER_DETAIL: usize = 300;

/// Most characters of anything else the peer controls (a decode error quoting its bytes, a
/// message kind) put into a refusal detail of ours.
const MAX_QUOTED: usize = 200;

/// Which end of the connection this node is: the dialer speaks first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// We opened the connection: send `Hello`, check the answer, confirm with `HelloAck`.
    Dialer,
    /// The peer opened it: check its `Hello`, answer with ours, wait for `HelloAck`.
    Listener,
}

/// What the shell must do for the handshake machine, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HsAction {
    /// Send this message on the stream.
    Send(Message),
    /// Ask the peer manager (async, done by the shell) whether this node may join now (bans,
    /// limits, duplicates; for a listener it also reserves an inbound slot). The shell answers
    /// with [`Handshake::admitted`].
    Admit(Hello),
    /// The handshake succeeded: the shell registers the connection (which may still refuse).
    Done(Hello),
    /// Refuse: the shell sends `Message::Reject { reason, detail }` if `send_reject` (best
    /// effort), then closes the QUIC connection with `refusal.reason.close_code()` and reason
    /// text `"<code>: <detail>"`; it reports `misbehaviour` (if any) to the peer manager.
    Refuse {
        /// Why, for both sides' logs and the RPC.
        refusal: Refusal,
        /// What to hold against the peer; `None` when it merely does not fit (another chain,
        /// no slot) or is just slow.
        misbehaviour: Option<Misbehaviour>,
        /// Whether a `Reject` can still be sent: not after a bad frame, where the stream is out
        /// of step and the peer would not read it as a message.
        send_reject: bool,
    },
    /// The peer refused us (its `Reject` message, detail cut to [`MAX_PEER_DETAIL`]); the shell
    /// closes quietly.
    RefusedByPeer(Refusal),
    /// The stream ended or failed before the handshake finished: the peer went away (or the
    /// network did). Nothing is held against it; the shell closes quietly. (A dialer may still
    /// find a refusal in the QUIC close reason: the listener can refuse by closing.)
    Lost(String),
}

/// Where the handshake stands.
#[derive(Clone, Debug)]
enum State {
    /// Waiting for the peer's `Hello` (the dialer has sent its own).
    AwaitHello,
    /// The peer's `Hello` passed [`check`]; waiting for the peer manager's answer.
    AwaitAdmission(Hello),
    /// Listener only: our `Hello` is sent; waiting for the dialer's `HelloAck`.
    AwaitAck(Hello),
    /// Done, refused, refused by the peer or lost: no more actions, ever.
    Finished,
}

impl State {
    /// What the machine waits for, for refusal details.
    fn awaiting(&self) -> &'static str {
        match self {
            State::AwaitHello => "hello",
            State::AwaitAdmission(_) => "admission",
            State::AwaitAck(_) => "hello_ack",
            State::Finished => "nothing",
        }
    }
}

/// The hello exchange of one connection, without I/O: the shell feeds it frames
/// ([`Handshake::on_message`]), the peer manager's admission ([`Handshake::admitted`]) and time
/// ([`Handshake::tick`]), and carries out the [`HsAction`]s it returns.
///
/// ```text
/// dialer                                    listener
///   Send(Hello) ───────── Hello ─────────▶  check → Admit
///                                           admitted(Ok) → Send(Hello)
///   check → Admit  ◀────── Hello ─────────
///   admitted(Ok) → Send(HelloAck), Done ─ HelloAck ─▶ Done
/// ```
///
/// # Correctness
/// The whole exchange has one deadline, set at the start, so a peer cannot stretch it by
/// trickling messages; it also runs while the manager decides. Every path ends in exactly one
/// of `Done`, `Refuse`, `RefusedByPeer` or `Lost`, after which the machine is finished and
/// returns nothing more, so the shell can feed it whatever still arrives.
#[derive(Clone, Debug)]
pub struct Handshake {
    role: Role,
    state: State,
    local: Hello,
    local_id: NodeId,
    remote_id: NodeId,
    timeout: Duration,
    deadline: Instant,
}

impl Handshake {
    /// Dialer: returns the machine and its first actions (`[Send(Hello(local))]`).
    pub fn dialer(local: Hello, local_id: NodeId, remote_id: NodeId, now: Instant, timeout: Duration) -> (Handshake, Vec<HsAction>) {
        let hs = Handshake::new(Role::Dialer, local, local_id, remote_id, now, timeout);
        let first = vec![HsAction::Send(Message::Hello(hs.local.clone()))];
        (hs, first)
    }

    /// Listener: waits for the dialer's `Hello`; nothing to send first.
    pub fn listener(local: Hello, local_id: NodeId, remote_id: NodeId, now: Instant, timeout: Duration) -> Handshake {
        Handshake::new(Role::Listener, local, local_id, remote_id, now, timeout)
    }

    fn new(role: Role, local: Hello, local_id: NodeId, remote_id: NodeId, now: Instant, timeout: Duration) -> Self {
        Handshake { role, state: State::AwaitHello, local, local_id, remote_id, timeout, deadline: now + timeout }
    }

    /// A frame arrived (or failed to decode: pass the [`WireError`]).
    pub fn on_message(&mut self, msg: Result<Message, WireError>, now: Instant) -> Vec<HsAction> {
        if self.is_finished() {
            return Vec::new();
        }
        // A frame that arrives after the deadline, before the shell's timer fired, is late all
        // the same: the outcome must not depend on which of the two the shell saw first.
        if now >= self.deadline {
            return self.tick(now);
        }
        let msg = match msg {
            Ok(m) => m,
            Err(e @ (WireError::FrameTooLarge(_) | WireError::Decode(_))) => {
                let detail = format!("bad frame while awaiting {}: {}", self.state.awaiting(), quote(&e.to_string()));
                return self.violation(detail, false);
            }
            Err(e @ (WireError::Closed | WireError::Io(_))) => {
                self.state = State::Finished;
                return vec![HsAction::Lost(e.to_string())];
            }
        };
        if let Message::Reject { reason, detail } = msg {
            self.state = State::Finished;
            let detail: String = detail.chars().take(MAX_PEER_DETAIL).collect();
            return vec![HsAction::RefusedByPeer(Refusal::new(reason, detail))];
        }
        match (std::mem::replace(&mut self.state, State::Finished), msg) {
            (State::AwaitHello, Message::Hello(remote)) => match check(&self.local, &self.local_id, &remote, &self.remote_id) {
                Ok(()) => {
                    self.state = State::AwaitAdmission(remote.clone());
                    vec![HsAction::Admit(remote)]
                }
                Err(refusal) => self.refuse(refusal, None, true),
            },
            (State::AwaitAck(remote), Message::HelloAck) => vec![HsAction::Done(remote)],
            (state, other) => {
                let detail = match state {
                    State::AwaitAdmission(_) => format!("expected no message before our answer, got {}", other.kind()),
                    _ => format!("expected {}, got {}", state.awaiting(), other.kind()),
                };
                self.violation(detail, true)
            }
        }
    }

    /// The peer manager's answer to [`HsAction::Admit`]. Ignored unless the machine is waiting
    /// for it.
    pub fn admitted(&mut self, r: Result<(), Refusal>, now: Instant) -> Vec<HsAction> {
        if !matches!(self.state, State::AwaitAdmission(_)) {
            return Vec::new();
        }
        if now >= self.deadline {
            return self.tick(now);
        }
        let State::AwaitAdmission(remote) = std::mem::replace(&mut self.state, State::Finished) else {
            return Vec::new();
        };
        match (r, self.role) {
            (Err(refusal), _) => self.refuse(refusal, None, true),
            (Ok(()), Role::Dialer) => vec![HsAction::Send(Message::HelloAck), HsAction::Done(remote)],
            (Ok(()), Role::Listener) => {
                self.state = State::AwaitAck(remote);
                vec![HsAction::Send(Message::Hello(self.local.clone()))]
            }
        }
    }

    /// Time passes: past the deadline, an unfinished handshake is refused with
    /// [`RejectReason::Timeout`] (once; nothing is held against the peer, which may just be
    /// slow or far away).
    pub fn tick(&mut self, now: Instant) -> Vec<HsAction> {
        if self.is_finished() || now < self.deadline {
            return Vec::new();
        }
        let detail = format!("handshake not finished within {:?} (awaiting {})", self.timeout, self.state.awaiting());
        self.refuse(Refusal::new(RejectReason::Timeout, detail), None, true)
    }

    /// When the handshake times out: the shell calls [`Handshake::tick`] then (or later).
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Done, refused, refused by the peer or lost: no more actions, ever.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Finished)
    }

    /// Which end this node is.
    pub fn role(&self) -> Role {
        self.role
    }

    fn violation(&mut self, detail: String, send_reject: bool) -> Vec<HsAction> {
        let refusal = Refusal::new(RejectReason::ProtocolViolation, detail);
        self.refuse(refusal, Some(Misbehaviour::HandshakeViolation), send_reject)
    }

    fn refuse(&mut self, refusal: Refusal, misbehaviour: Option<Misbehaviour>, send_reject: bool) -> Vec<HsAction> {
        self.state = State::Finished;
        vec![HsAction::Refuse { refusal, misbehaviour, send_reject }]
    }
}

/// Peer-controlled text cut to [`MAX_QUOTED`] characters.
fn quote(s: &str) -> String {
    s.chars().take(MAX_QUOTED).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_chain::Hash;
    use cairn_chain::keys::PublicKey;

    const TIMEOUT: Duration = Duration::from_secs(5);
    const US: NodeId = PublicKey([1; 32]);
    const THEM: NodeId = PublicKey([2; 32]);

    fn hello(port: u16) -> Hello {
        Hello {
            protocol_version: 1,
            chain_id: "cairn-test".into(),
            genesis: Hash::digest(b"genesis"),
            listen_port: port,
            best_height: 7,
            best_hash: Hash::digest(b"tip"),
            total_work: [3; 32],
            user_agent: "cairn/test".into(),
        }
    }

    fn ours() -> Hello {
        hello(9000)
    }

    fn theirs() -> Hello {
        hello(9001)
    }

    /// The stages a handshake can wait in.
    #[derive(Clone, Copy, Debug)]
    enum Stage {
        Hello,
        Admission,
        Ack,
    }

    /// Every (role, stage) pair the machine can wait in.
    const WAITS: [(Role, Stage); 5] = [
        (Role::Dialer, Stage::Hello),
        (Role::Dialer, Stage::Admission),
        (Role::Listener, Stage::Hello),
        (Role::Listener, Stage::Admission),
        (Role::Listener, Stage::Ack),
    ];

    fn start(role: Role, t0: Instant) -> Handshake {
        match role {
            Role::Dialer => Handshake::dialer(ours(), US, THEM, t0, TIMEOUT).0,
            Role::Listener => Handshake::listener(ours(), US, THEM, t0, TIMEOUT),
        }
    }

    /// A machine waiting in `stage`, driven there at `t0`.
    fn waiting(role: Role, stage: Stage, t0: Instant) -> Handshake {
        let mut hs = start(role, t0);
        if matches!(stage, Stage::Admission | Stage::Ack) {
            assert_eq!(hs.on_message(Ok(Message::Hello(theirs())), t0), vec![HsAction::Admit(theirs())]);
        }
        if matches!(stage, Stage::Ack) {
            assert_eq!(hs.admitted(Ok(()), t0), vec![HsAction::Send(Message::Hello(ours()))]);
        }
        assert!(!hs.is_finished());
        hs
    }

    fn refused(reason: RejectReason, misbehaviour: Option<Misbehaviour>, send_reject: bool, actions: &[HsAction]) -> Refusal {
        match actions {
            [HsAction::Refuse { refusal, misbehaviour: m, send_reject: s }] => {
                assert_eq!((refusal.reason, *m, *s), (reason, misbehaviour, send_reject), "{actions:?}");
                refusal.clone()
            }
            other => panic!("expected one refusal, got {other:?}"),
        }
    }

    /// Feeds everything a finished machine could still be given; it must stay silent.
    fn assert_silent(hs: &mut Handshake, now: Instant) {
        assert!(hs.is_finished());
        assert_eq!(hs.on_message(Ok(Message::Hello(theirs())), now), vec![]);
        assert_eq!(hs.on_message(Ok(Message::HelloAck), now), vec![]);
        assert_eq!(hs.on_message(Ok(Message::Ping(1)), now), vec![]);
        let reject = Message::Reject { reason: RejectReason::Banned, detail: "late".into() };
        assert_eq!(hs.on_message(Ok(reject), now), vec![]);
        assert_eq!(hs.on_message(Err(WireError::Decode("junk".into())), now), vec![]);
        assert_eq!(hs.on_message(Err(WireError::Closed), now), vec![]);
        assert_eq!(hs.admitted(Ok(()), now), vec![]);
        assert_eq!(hs.tick(now), vec![]);
        assert_eq!(hs.tick(now + TIMEOUT * 10), vec![]);
    }

    #[test]
    fn dialer_happy_path() {
        let t0 = Instant::now();
        let (mut hs, first) = Handshake::dialer(ours(), US, THEM, t0, TIMEOUT);
        assert_eq!(hs.role(), Role::Dialer);
        assert_eq!(first, vec![HsAction::Send(Message::Hello(ours()))]);
        assert_eq!(hs.deadline(), t0 + TIMEOUT);
        let t1 = t0 + Duration::from_millis(40);
        assert_eq!(hs.on_message(Ok(Message::Hello(theirs())), t1), vec![HsAction::Admit(theirs())]);
        assert_eq!(hs.tick(t1), vec![], "not due");
        assert_eq!(hs.admitted(Ok(()), t1 + Duration::from_millis(1)), vec![HsAction::Send(Message::HelloAck), HsAction::Done(theirs())]);
        assert_silent(&mut hs, t1);
    }

    #[test]
    fn listener_happy_path() {
        let t0 = Instant::now();
        let mut hs = Handshake::listener(ours(), US, THEM, t0, TIMEOUT);
        assert_eq!(hs.role(), Role::Listener);
        assert_eq!(hs.tick(t0), vec![], "a listener speaks second");
        let t1 = t0 + Duration::from_millis(10);
        assert_eq!(hs.on_message(Ok(Message::Hello(theirs())), t1), vec![HsAction::Admit(theirs())]);
        assert_eq!(hs.admitted(Ok(()), t1), vec![HsAction::Send(Message::Hello(ours()))]);
        assert_eq!(hs.on_message(Ok(Message::HelloAck), t1 + Duration::from_millis(30)), vec![HsAction::Done(theirs())]);
        assert_silent(&mut hs, t1);
    }

    #[test]
    fn incompatible_hellos_are_refused_without_blame_on_both_roles() {
        let other_chain = Hello { chain_id: "other".into(), ..theirs() };
        let other_genesis = Hello { genesis: Hash::digest(b"another genesis"), ..theirs() };
        let other_version = Hello { protocol_version: 2, ..theirs() };
        let cases = [
            (other_chain, THEM, RejectReason::WrongChain),
            (other_genesis, THEM, RejectReason::WrongGenesis),
            (other_version, THEM, RejectReason::IncompatibleVersion),
            (theirs(), US, RejectReason::SelfConnection),
        ];
        for role in [Role::Dialer, Role::Listener] {
            for (remote, remote_id, reason) in cases.clone() {
                let t0 = Instant::now();
                let mut hs = match role {
                    Role::Dialer => Handshake::dialer(ours(), US, remote_id, t0, TIMEOUT).0,
                    Role::Listener => Handshake::listener(ours(), US, remote_id, t0, TIMEOUT),
                };
                let r = refused(reason, None, true, &hs.on_message(Ok(Message::Hello(remote)), t0));
                assert!(!r.detail.is_empty(), "{role:?} {reason:?}: the detail names both values");
                assert_silent(&mut hs, t0);
            }
        }
    }

    #[test]
    fn refused_admission_is_sent_to_the_peer_without_blame() {
        for role in [Role::Dialer, Role::Listener] {
            let t0 = Instant::now();
            let mut hs = waiting(role, Stage::Admission, t0);
            let no_slot = Refusal::new(RejectReason::TooManyPeers, "64 inbound connections");
            let r = refused(RejectReason::TooManyPeers, None, true, &hs.admitted(Err(no_slot.clone()), t0));
            assert_eq!(r, no_slot, "{role:?}");
            assert_silent(&mut hs, t0);
        }
    }

    #[test]
    fn admission_answers_nobody_asked_for_are_ignored() {
        let t0 = Instant::now();
        for (role, stage) in [(Role::Dialer, Stage::Hello), (Role::Listener, Stage::Hello), (Role::Listener, Stage::Ack)] {
            let mut hs = waiting(role, stage, t0);
            assert_eq!(hs.admitted(Ok(()), t0), vec![], "{role:?} {stage:?}");
            assert_eq!(hs.admitted(Err(Refusal::new(RejectReason::Banned, "x")), t0), vec![], "{role:?} {stage:?}");
            assert!(!hs.is_finished());
        }
    }

    #[test]
    fn the_peers_reject_ends_quietly_in_every_state_with_its_detail_cut() {
        for (role, stage) in WAITS {
            let t0 = Instant::now();
            let mut hs = waiting(role, stage, t0);
            let detail = "é".repeat(5000);
            let actions = hs.on_message(Ok(Message::Reject { reason: RejectReason::Banned, detail }), t0);
            let [HsAction::RefusedByPeer(r)] = actions.as_slice() else { panic!("{role:?} {stage:?}: {actions:?}") };
            assert_eq!(r.reason, RejectReason::Banned);
            assert_eq!(r.detail.chars().count(), MAX_PEER_DETAIL);
            assert_silent(&mut hs, t0);
        }
    }

    #[test]
    fn an_unexpected_message_is_a_handshake_violation_in_every_state() {
        let cases = [
            (Role::Dialer, Stage::Hello, Message::Ping(1), "expected hello, got ping"),
            (Role::Dialer, Stage::Hello, Message::HelloAck, "expected hello, got hello_ack"),
            (Role::Dialer, Stage::Admission, Message::HelloAck, "expected no message before our answer, got hello_ack"),
            (Role::Listener, Stage::Hello, Message::GetPeers, "expected hello, got get_peers"),
            (Role::Listener, Stage::Admission, Message::HelloAck, "expected no message before our answer, got hello_ack"),
            (Role::Listener, Stage::Ack, Message::Hello(theirs()), "expected hello_ack, got hello"),
            (Role::Listener, Stage::Ack, Message::GetStatus, "expected hello_ack, got get_status"),
        ];
        for (role, stage, msg, detail) in cases {
            let t0 = Instant::now();
            let mut hs = waiting(role, stage, t0);
            let actions = hs.on_message(Ok(msg), t0);
            let r = refused(RejectReason::ProtocolViolation, Some(Misbehaviour::HandshakeViolation), true, &actions);
            assert_eq!(r.detail, detail, "{role:?} {stage:?}");
            assert_silent(&mut hs, t0);
        }
    }

    #[test]
    fn garbage_is_a_handshake_violation_and_no_reject_is_sent_into_a_broken_stream() {
        for (role, stage) in WAITS {
            let junk = [WireError::FrameTooLarge(4096), WireError::Decode("x".repeat(10_000))];
            for e in junk {
                let t0 = Instant::now();
                let mut hs = waiting(role, stage, t0);
                let actions = hs.on_message(Err(e), t0);
                let r = refused(RejectReason::ProtocolViolation, Some(Misbehaviour::HandshakeViolation), false, &actions);
                assert!(r.detail.len() < 300, "{role:?} {stage:?}: peer text is cut: {}", r.detail.len());
                assert_silent(&mut hs, t0);
            }
        }
    }

    #[test]
    fn a_peer_that_goes_away_is_lost_not_punished() {
        for (role, stage) in WAITS {
            for e in [WireError::Closed, WireError::Io(std::io::Error::other("connection reset"))] {
                let t0 = Instant::now();
                let mut hs = waiting(role, stage, t0);
                let actions = hs.on_message(Err(e), t0);
                assert!(matches!(actions.as_slice(), [HsAction::Lost(_)]), "{role:?} {stage:?}: {actions:?}");
                assert_silent(&mut hs, t0);
            }
        }
    }

    #[test]
    fn a_timeout_in_every_state_refuses_once() {
        for (role, stage) in WAITS {
            let t0 = Instant::now();
            let mut hs = waiting(role, stage, t0);
            assert_eq!(hs.tick(t0 + TIMEOUT - Duration::from_millis(1)), vec![], "{role:?} {stage:?}: not yet");
            let r = refused(RejectReason::Timeout, None, true, &hs.tick(t0 + TIMEOUT));
            assert_eq!(r.reason.code(), "handshake_timeout");
            assert_eq!(hs.tick(t0 + TIMEOUT * 2), vec![], "{role:?} {stage:?}: only once");
            assert_silent(&mut hs, t0 + TIMEOUT);
        }
    }

    #[test]
    fn the_deadline_is_not_moved_by_progress() {
        let t0 = Instant::now();
        let mut hs = waiting(Role::Listener, Stage::Hello, t0);
        let t1 = t0 + TIMEOUT - Duration::from_millis(10);
        assert_eq!(hs.on_message(Ok(Message::Hello(theirs())), t1), vec![HsAction::Admit(theirs())]);
        assert_eq!(hs.admitted(Ok(()), t1), vec![HsAction::Send(Message::Hello(ours()))]);
        assert_eq!(hs.deadline(), t0 + TIMEOUT);
        refused(RejectReason::Timeout, None, true, &hs.tick(t0 + TIMEOUT));
    }

    #[test]
    fn a_frame_or_answer_after_the_deadline_is_late_whatever_the_shell_saw_first() {
        let t0 = Instant::now();
        let late = t0 + TIMEOUT;
        let mut hs = waiting(Role::Listener, Stage::Ack, t0);
        refused(RejectReason::Timeout, None, true, &hs.on_message(Ok(Message::HelloAck), late));
        assert_silent(&mut hs, late);

        let mut hs = waiting(Role::Dialer, Stage::Admission, t0);
        refused(RejectReason::Timeout, None, true, &hs.admitted(Ok(()), late));
        assert_silent(&mut hs, late);
    }
}
