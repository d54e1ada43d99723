//! Structured messages (every kind, with valid and invalid chain payloads, up to past the
//! count limits): encode → decode gives the same message, the encoding is deterministic, and
//! a message within the post-handshake frame limit goes through the frame codec whole.
#![no_main]

use bytes::BytesMut;
use cairn_fuzz::Msg;
use cairn_p2p::config::FRAME_OVERHEAD;
use cairn_p2p::wire;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};

fuzz_target!(|msgs: Vec<Msg>| {
    let limit = 1_048_576 + FRAME_OVERHEAD;
    let mut codec = wire::codec(limit);
    let mut stream = BytesMut::new();
    let mut sent = Vec::new();
    for msg in &msgs {
        let m = msg.message();
        let body = wire::encode(&m);
        assert_eq!(wire::decode(&body).expect("an encoded message decodes"), m);
        assert_eq!(wire::encode(&m), body);
        cairn_fuzz::check_payloads(&m);
        if body.len() <= limit {
            codec.encode(body, &mut stream).expect("a body within the limit frames");
            sent.push(m);
        }
    }
    for m in sent {
        let frame = codec.decode(&mut stream).expect("own frames decode").expect("a whole frame");
        assert_eq!(wire::decode(&frame).expect("own message"), m);
    }
    assert!(stream.is_empty());
});
