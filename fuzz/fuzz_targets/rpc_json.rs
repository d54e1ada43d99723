//! The RPC's request parsing (`cairn-rpc-types`), through exactly the functions the node's
//! handlers call: request bodies (`parse_json`, then `POST /txs`'s one-or-many
//! `parse_submission`, `POST /blocks`'s `BlockView::into_block`, the farming and p2p
//! requests), query strings (`parse_query` into each endpoint's query, then its limits,
//! cursor and hex values) and path parameters (block IDs, hex values, cursors).
//!
//! The first byte picks what the rest is (mode mod 8: 0 `POST /txs`, 1 `POST /blocks`,
//! 2 `POST /farm/blocks`, 3 `POST /p2p/bans`, 4 `POST /p2p/peers`, 5 a query string, 6 a path
//! parameter, 7 JSON built with `arbitrary` in the shape of transactions and blocks, sent to
//! the body of mode `next byte mod 5`). Seeds: `cargo test -p cairn-rpc-types fuzz_seeds`.
//!
//! Checked: nothing panics; every refusal is a `RequestError` with a listed code, a non-empty
//! message within its bound, and 413 only for too many transactions; an array answers one
//! result per entry; whatever parses round-trips (a transaction or block shown as JSON reads
//! back the same; a cursor or height printed reads back the same).
#![no_main]

use arbitrary::Unstructured;
use cairn_chain::keys::{DEV_SEED, PublicKey, dev_keypair};
use cairn_chain::{Address, Hash, Transaction, TxId};
use cairn_rpc_types::body::{AddPeer, BanRequest, FarmRequest, Submission, parse_json, parse_submission};
use cairn_rpc_types::error::{CODES, MAX_MESSAGE_CHARS, Rejection};
use cairn_rpc_types::query::{
    BlockId, EventsQuery, HistoryQuery, MempoolQuery, RangeQuery, TemplateQuery, limit, parse_block_id, parse_cursor, parse_hex, parse_query,
};
use cairn_rpc_types::{BlockView, RequestError, TxView};
use libfuzzer_sys::fuzz_target;
use serde::de::IgnoredAny;
use serde_json::{Map, Value, json};

/// `POST /txs`'s batch bound here (the node's is 10,000): small, so the bound is reached.
const MAX_BATCH: usize = 8;
/// `POST /farm/blocks`'s count bound here.
const MAX_FARM: u64 = 10_000;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 8 {
        7 => {
            let mut u = Unstructured::new(rest);
            let target = u.arbitrary::<u8>().unwrap_or(0) % 5;
            let value = json_value(&mut u, 0);
            body(target, &serde_json::to_vec(&value).expect("a Value serialises"));
        }
        6 => path(&String::from_utf8_lossy(rest)),
        5 => query(&String::from_utf8_lossy(rest)),
        m => body(m, rest),
    }
});

/// Checks what every refusal must be.
fn refused(e: &RequestError) {
    assert!(CODES.contains(&e.code), "unlisted code {}", e.code);
    assert!(!e.message.is_empty(), "{}: empty message", e.code);
    assert!(e.message.chars().count() <= MAX_MESSAGE_CHARS + 1, "{}: message of {} characters", e.code, e.message.chars().count());
    assert_eq!(e.rejection == Rejection::TooLarge, e.code == "too_many_transactions", "{}: {:?}", e.code, e.rejection);
}

fn body(target: u8, bytes: &[u8]) {
    match target {
        0 => match parse_submission(bytes, MAX_BATCH) {
            Err(e) => refused(&e),
            Ok(Submission::One(tx)) => tx_round_trip(&tx),
            Ok(Submission::Many(results)) => {
                // Counted by serde's own skipping of values (JSON's grammar), and by a
                // `Value` where one holds the body: one fails on JSON it cannot hold (nesting
                // past 128, numbers past f64, lone surrogates) that is still an entry here.
                let skipped = parse_json::<Vec<IgnoredAny>>(bytes).ok().map(|v| v.len());
                assert_eq!(Some(results.len()), skipped, "one result per entry of a well-formed array");
                if let Ok(Value::Array(tree)) = parse_json::<Value>(bytes) {
                    assert_eq!(results.len(), tree.len(), "one result per entry of the array's tree");
                }
                for r in &results {
                    match r {
                        Ok(tx) => tx_round_trip(tx),
                        Err(e) => refused(e),
                    }
                }
            }
        },
        1 => match parse_json::<BlockView>(bytes).and_then(BlockView::into_block) {
            Err(e) => refused(&e),
            Ok(block) => {
                let again = serde_json::to_vec(&BlockView::from(&block)).expect("a view serialises");
                let back = parse_json::<BlockView>(&again).and_then(BlockView::into_block).expect("a shown block reads back");
                assert_eq!(back, block);
            }
        },
        2 => match parse_json::<FarmRequest>(bytes).and_then(|r| r.parse(MAX_FARM)) {
            Err(e) => refused(&e),
            Ok((_, count)) => assert!((1..=MAX_FARM).contains(&count)),
        },
        3 => match parse_json::<BanRequest>(bytes) {
            Err(e) => refused(&e),
            Ok(r) => match r.parse() {
                Err(e) => refused(&e),
                Ok(ban) => assert!(ban.secs >= 1 && !ban.reason.is_empty() && !ban.reason.chars().any(char::is_control)),
            },
        },
        _ => {
            if let Err(e) = parse_json::<AddPeer>(bytes) {
                refused(&e);
            }
        }
    }
}

/// A transaction that parsed reads back the same once shown.
fn tx_round_trip(tx: &Transaction) {
    let shown = serde_json::to_vec(&TxView::from(tx)).expect("a view serialises");
    match parse_submission(&shown, MAX_BATCH).expect("a shown transaction reads back") {
        Submission::One(back) => assert_eq!(&back, tx),
        Submission::Many(_) => panic!("an object read as an array"),
    }
}

/// Every endpoint's query, as its handler reads it.
fn query(q: &str) {
    match parse_query::<MempoolQuery>(q) {
        Ok(m) => ok_or_refused(limit(m.limit, 100, 1000)),
        Err(e) => refused(&e),
    }
    match parse_query::<HistoryQuery>(q) {
        Ok(h) => {
            ok_or_refused(limit(h.limit, 50, 100));
            if let Some(c) = h.before.as_deref() {
                cursor(c);
            }
        }
        Err(e) => refused(&e),
    }
    match parse_query::<RangeQuery>(q) {
        Ok(_) => {}
        Err(e) => refused(&e),
    }
    match parse_query::<TemplateQuery>(q) {
        Ok(t) => ok_or_refused(parse_hex::<Address>(&t.farmer, "farmer address", "invalid_address")),
        Err(e) => refused(&e),
    }
    if let Err(e) = parse_query::<EventsQuery>(q) {
        refused(&e);
    }
}

/// Every path parameter, as its handler reads it.
fn path(p: &str) {
    match parse_block_id(p) {
        Ok(BlockId::Height(h)) => assert_eq!(parse_block_id(&h.to_string()), Ok(BlockId::Height(h))),
        // Hex is read in either case (the chain's decoder), shown in lower case.
        Ok(BlockId::Hash(hash)) => assert_eq!(hash.to_string(), p.to_ascii_lowercase()),
        Err(e) => refused(&e),
    }
    ok_or_refused(parse_hex::<Address>(p, "address", "invalid_address"));
    ok_or_refused(parse_hex::<TxId>(p, "txid", "invalid_txid"));
    ok_or_refused(parse_hex::<PublicKey>(p, "node ID", "invalid_node_id"));
    cursor(p);
}

fn cursor(c: &str) {
    match parse_cursor(c) {
        Ok((h, i)) => assert_eq!(parse_cursor(&format!("{h}-{i}")), Ok((h, i))),
        Err(e) => refused(&e),
    }
}

fn ok_or_refused<T>(r: Result<T, RequestError>) {
    if let Err(e) = r {
        refused(&e);
    }
}

/// Keys the views and requests know, so built objects often have the right shape.
const KEYS: &[&str] = &[
    "txid",
    "chain",
    "from",
    "public_key",
    "to",
    "amount",
    "fee",
    "nonce",
    "signature",
    "hash",
    "header",
    "transactions",
    "version",
    "height",
    "prev_hash",
    "tx_root",
    "timestamp",
    "target",
    "farmer",
    "count",
    "node_id",
    "ip",
    "duration_s",
    "reason",
    "address",
];

/// A valid transaction's JSON view (signed once).
fn valid_tx() -> &'static Value {
    static TX: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    TX.get_or_init(|| {
        let tx = Transaction::signed(&dev_keypair(DEV_SEED, 0), Hash([1; 32]), Address([2; 32]), 5, 1, 0);
        serde_json::to_value(TxView::from(&tx)).expect("a view serialises")
    })
}

/// JSON in the shape of the RPC's requests: valid transactions with a field changed, objects
/// of known keys, hex of the right lengths, numbers at the edges; depth at most 4.
fn json_value(u: &mut Unstructured<'_>, depth: u8) -> Value {
    // Past depth 4, leaves only (0–4).
    let pick = u.arbitrary::<u8>().unwrap_or(0) % if depth >= 4 { 5 } else { 9 };
    match pick {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary().unwrap_or(false)),
        2 => match u.arbitrary::<u8>().unwrap_or(0) % 4 {
            0 => json!(u.arbitrary::<u64>().unwrap_or(0)),
            1 => json!(u.arbitrary::<i64>().unwrap_or(0)),
            2 => json!(u.arbitrary::<f64>().ok().filter(|f| f.is_finite()).unwrap_or(0.5)),
            _ => json!(u64::MAX),
        },
        3 => {
            let n = [0usize, 1, 63, 64, 65, 128][usize::from(u.arbitrary::<u8>().unwrap_or(0) % 6)];
            let byte = u.arbitrary::<u8>().unwrap_or(0);
            Value::String(hex_digits(byte, n))
        }
        4 => Value::String(u.arbitrary::<String>().unwrap_or_default()),
        5 => {
            // A valid transaction with one field replaced (or none).
            let mut tx = valid_tx().clone();
            let key = KEYS[usize::from(u.arbitrary::<u8>().unwrap_or(0)) % KEYS.len()];
            if u.arbitrary().unwrap_or(false) {
                let v = json_value(u, depth + 1);
                tx[key] = v;
            } else if let Some(o) = tx.as_object_mut() {
                o.remove(key);
            }
            tx
        }
        6 => Value::Array((0..u.arbitrary::<u8>().unwrap_or(0) % 12).map(|_| json_value(u, depth + 1)).collect()),
        7 => {
            let mut o = Map::new();
            for _ in 0..u.arbitrary::<u8>().unwrap_or(0) % 10 {
                let key = KEYS[usize::from(u.arbitrary::<u8>().unwrap_or(0)) % KEYS.len()].to_string();
                o.insert(key, json_value(u, depth + 1));
            }
            Value::Object(o)
        }
        _ => {
            // A block of valid-looking parts: a header object and transactions.
            let header = json_value(u, depth + 1);
            let txs: Vec<Value> = (0..u.arbitrary::<u8>().unwrap_or(0) % 4).map(|_| valid_tx().clone()).collect();
            json!({"header": header, "transactions": txs})
        }
    }
}

/// `n` hex digits, varied by `seed` (upper case for odd seeds: not accepted).
fn hex_digits(seed: u8, n: usize) -> String {
    let digits = if seed.is_multiple_of(2) { b"0123456789abcdef" } else { b"0123456789ABCDEF" };
    (0..n).map(|i| char::from(digits[(usize::from(seed) + i) % 16])).collect()
}
