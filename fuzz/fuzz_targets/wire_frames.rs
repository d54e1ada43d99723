//! Raw bytes from a peer's stream: the frame codec (4-byte length, limit checked before any
//! buffering), then each frame through `wire::decode`, then each chain payload through the
//! chain's decoders.
//!
//! Invariants: nothing panics; no frame longer than the limit is produced; a decoded message
//! re-encodes to bytes that decode to the same message and re-encode to themselves (bincode's
//! varints accept non-minimal forms, so the envelope is canonical only after one re-encoding —
//! wire messages are never hashed); the re-encoding is never longer than the frame; every chain
//! payload that decodes re-encodes to exactly its bytes.
#![no_main]

use bytes::BytesMut;
use cairn_p2p::config::{FRAME_OVERHEAD, HANDSHAKE_FRAME_LIMIT};
use cairn_p2p::wire;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else { return };
    // Before the handshake, or after it with the devnet's block limit.
    let limit = if mode & 1 == 0 { HANDSHAKE_FRAME_LIMIT } else { 1_048_576 + FRAME_OVERHEAD };
    let mut codec = wire::codec(limit);
    let mut buf = BytesMut::from(data);
    loop {
        match codec.decode(&mut buf) {
            Ok(Some(frame)) => {
                assert!(frame.len() <= limit, "a frame over the limit was produced");
                let Ok(m) = wire::decode(&frame) else { continue };
                let again = wire::encode(&m);
                assert!(again.len() <= frame.len(), "re-encoding is longer than the frame");
                let m2 = wire::decode(&again).expect("a re-encoded message decodes");
                assert_eq!(m, m2, "decode → encode → decode changed the message");
                assert_eq!(wire::encode(&m2), again, "the encoding is not canonical after one round");
                cairn_fuzz::check_payloads(&m);
            }
            Ok(None) => break,
            // A frame over the limit ends the connection.
            Err(_) => break,
        }
    }
});
