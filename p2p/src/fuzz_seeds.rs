//! The committed seed corpora of the fuzz targets that read raw bytes (`fuzz/corpus/`): a few
//! valid encodings each, so libFuzzer starts past the decoders' first checks. This test makes
//! them and fails if the committed files differ (a protocol or spec change), saying how to
//! write them again: `CAIRN_WRITE_FUZZ_SEEDS=1 cargo test --release -p cairn-p2p fuzz_seeds`.
//! Structured targets (`arbitrary` inputs) start from nothing: libFuzzer finds their shapes.

use std::path::Path;

use bytes::{Bytes, BytesMut};
use cairn_chain::block::merkle_root;
use cairn_chain::compact::CompactBlock;
use cairn_chain::keys::{DEV_SEED, dev_keypair};
use cairn_chain::{Block, ChainSpec, Hash, Transaction};
use tokio_util::codec::Encoder;

use crate::config::{HANDSHAKE_FRAME_LIMIT, PROTOCOL_VERSION};
use crate::wire::{BlockId, Hello, Message, codec, encode};

/// Every seed: (target, file name, bytes).
fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let spec = ChainSpec::devnet();
    let genesis = spec.genesis();
    let g = genesis.hash();
    let key = dev_keypair(DEV_SEED, 0);
    let txs: Vec<Transaction> = (0..2).map(|n| Transaction::signed(&key, g, dev_keypair(DEV_SEED, 1).address(), 5, 1, n)).collect();
    let mut header = genesis.header.clone();
    header.height = 1;
    header.prev_hash = g;
    header.tx_root = merkle_root(&txs.iter().map(Transaction::id).collect::<Vec<Hash>>());
    let block = Block { header, transactions: txs.clone() };
    let hello = Hello {
        protocol_version: PROTOCOL_VERSION,
        chain_id: spec.chain_id.clone(),
        genesis: g,
        listen_port: 9000,
        best_height: 1,
        best_hash: block.hash(),
        total_work: [1; 32],
        user_agent: "cairn/0.1.0 (alice)".into(),
    };
    let compact = CompactBlock::of(&block, 7);
    // A stream of frames after a mode byte (0: the handshake's limit, 1: the chain's).
    let frames = |mode: u8, msgs: &[Message]| {
        let mut out = BytesMut::from(&[mode][..]);
        let mut c = codec(if mode == 0 { HANDSHAKE_FRAME_LIMIT } else { usize::MAX >> 1 });
        for m in msgs {
            c.encode(encode(m), &mut out).expect("seed frames");
        }
        out.to_vec()
    };
    let chain_msgs = vec![
        Message::HelloAck,
        Message::Ping(1),
        Message::GetStatus,
        Message::Status { best_height: 1, best_hash: block.hash(), total_work: [1; 32] },
        Message::GetHeaders { locator: vec![g], max: 2000 },
        Message::Headers(vec![Bytes::copy_from_slice(&genesis.header.encode()), Bytes::copy_from_slice(&block.header.encode())]),
        Message::GetBlocks(vec![block.hash()]),
        Message::Blocks(vec![Bytes::from(block.encode())]),
        Message::BlockData(Some(Bytes::from(genesis.encode()))),
        Message::GetBlock(BlockId::Height(1)),
        Message::Transactions(txs.iter().map(|t| Bytes::from(t.encode())).collect()),
        Message::TxIds(vec![txs[0].id()]),
        Message::CompactBlock { header: Bytes::copy_from_slice(&block.header.encode()), nonce: 7, short_ids: Bytes::from(compact.encode_short_ids()) },
        Message::GetBlockTxs { hash: block.hash(), indexes: vec![0, 1] },
        Message::BlockTxs { hash: block.hash(), txs: vec![Bytes::from(txs[1].encode())] },
        Message::NotFound(vec![g]),
    ];
    let with_mode = |mode: u8, bytes: Vec<u8>| [vec![mode], bytes].concat();
    vec![
        ("wire_frames", "seed-handshake", frames(0, &[Message::Hello(hello)])),
        ("wire_frames", "seed-chain", frames(1, &chain_msgs)),
        ("tx_decode", "seed-tx", txs[0].encode()),
        ("block_decode", "seed-genesis", with_mode(0, genesis.encode())),
        ("block_decode", "seed-block", with_mode(0, block.encode())),
        ("block_decode", "seed-header", with_mode(0, block.header.encode().to_vec())),
    ]
}

#[test]
fn fuzz_seeds_are_committed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let write = std::env::var_os("CAIRN_WRITE_FUZZ_SEEDS").is_some();
    for (target, name, bytes) in seeds() {
        let path = root.join(target).join(name);
        if write {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        } else {
            let committed = std::fs::read(&path).unwrap_or_default();
            assert!(committed == bytes, "{} is missing or stale: CAIRN_WRITE_FUZZ_SEEDS=1 cargo test --release -p cairn-p2p fuzz_seeds", path.display());
        }
    }
}
