//! What hostile nodes do beyond the honest glue (see [`crate::Hostile`]).

use super::*;

impl Node {
    /// A hostile node's extra behaviour, each beat.
    pub(super) fn misbehave(&mut self, w: &mut World) {
        match self.hostile {
            Some(Hostile::AnnounceNoServe) if w.eng.rng.gen_bool(0.1) => {
                let tip = self.chain.tip();
                let fake = Hash(w.eng.rng.r#gen());
                let work = tip.work.saturating_add(Work::from_bytes([0x10; 32]));
                for id in self.peer_ids() {
                    self.send_to(w, &id, Message::NewBlock { height: tip.height + 1, hash: fake });
                    self.send_to(w, &id, Message::Status { best_height: tip.height + 100, best_hash: fake, total_work: work.to_bytes() });
                }
            }
            Some(Hostile::Spam) => {
                // Unsolicited pongs: each costs a token, and over the rate a point.
                for id in self.peer_ids() {
                    for _ in 0..1500 {
                        let n = w.eng.rng.r#gen();
                        self.send_to(w, &id, Message::Pong(n));
                    }
                }
            }
            _ => {}
        }
    }
}
