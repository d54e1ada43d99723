//! The committed seed corpus of the `rpc_json` fuzz target (`fuzz/corpus/rpc_json/`): one
//! well-formed request per thing it reads, so libFuzzer starts past the JSON syntax. Each seed
//! is a mode byte, then the body, query string or path parameter; the modes are those of
//! `fuzz/fuzz_targets/rpc_json.rs` (0 `POST /txs`, 1 `POST /blocks`, 2 `POST /farm/blocks`,
//! 3 `POST /p2p/bans`, 4 `POST /p2p/peers`, 5 a query string, 6 a path parameter). This test
//! fails if the committed files differ, saying how to write them again:
//! `CAIRN_WRITE_FUZZ_SEEDS=1 cargo test --release -p cairn-rpc-types fuzz_seeds`.

use std::path::Path;

use cairn_chain::block::merkle_root;
use cairn_chain::keys::{DEV_SEED, dev_keypair};
use cairn_chain::{Address, ChainSpec, Transaction};
use serde_json::json;

use crate::views::{BlockView, TxView};

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let g = ChainSpec::devnet().genesis().hash();
    let key = dev_keypair(DEV_SEED, 0);
    let to = dev_keypair(DEV_SEED, 1).address();
    let txs = vec![Transaction::signed(&key, g, to, 5, 1, 0), Transaction::signed(&key, g, to, 7, 2, 1)];
    // Well formed, not valid: the parsers never see a chain.
    let mut block = ChainSpec::devnet().genesis();
    block.header.tx_root = merkle_root(&txs.iter().map(Transaction::id).collect::<Vec<_>>());
    block.transactions.clone_from(&txs);
    let with_mode = |mode: u8, bytes: Vec<u8>| [vec![mode], bytes].concat();
    let json = |mode: u8, v: serde_json::Value| with_mode(mode, serde_json::to_vec(&v).expect("JSON"));
    let tx_views: Vec<_> = txs.iter().map(TxView::from).collect();
    vec![
        ("seed-tx", json(0, json!(tx_views[0]))),
        ("seed-txs", json(0, json!([tx_views[0], {"garbage": 1}, tx_views[1]]))),
        ("seed-block", json(1, json!(BlockView::from(&block)))),
        ("seed-farm", json(2, json!({"count": 3, "farmer": Address([7; 32])}))),
        ("seed-ban", json(3, json!({"node_id": key.public(), "duration_s": 60, "reason": "spam"}))),
        ("seed-peer", json(4, json!({"address": "127.0.0.1:9000"}))),
        ("seed-query", with_mode(5, b"limit=5&before=12-3&from=1&farmer=00&types=block,tx".to_vec())),
        ("seed-path", with_mode(6, g.to_string().into_bytes())),
    ]
}

#[test]
fn fuzz_seeds_are_committed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/rpc_json");
    let write = std::env::var_os("CAIRN_WRITE_FUZZ_SEEDS").is_some();
    for (name, bytes) in seeds() {
        let path = root.join(name);
        if write {
            std::fs::create_dir_all(&root).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        } else {
            let committed = std::fs::read(&path).unwrap_or_default();
            assert!(committed == bytes, "{} is missing or stale: CAIRN_WRITE_FUZZ_SEEDS=1 cargo test --release -p cairn-rpc-types fuzz_seeds", path.display());
        }
    }
}
