//! What the node's handlers rely on: each refusal's code, per-entry errors of an array, the
//! query message axum used to give, bounded messages, and views that round-trip.

use cairn_chain::keys::{DEV_SEED, dev_keypair};
use cairn_chain::{Address, Hash, Transaction};
use serde_json::{Value, json};

use crate::body::{BanRequest, BanWho, FarmRequest, Submission, parse_json, parse_submission};
use crate::error::{CODES, MAX_MESSAGE_CHARS, Rejection};
use crate::query::{BlockId, HistoryQuery, RangeQuery, limit, parse_block_id, parse_cursor, parse_query};
use crate::views::TxView;

fn tx(nonce: u64) -> Transaction {
    Transaction::signed(&dev_keypair(DEV_SEED, 0), Hash([1; 32]), Address([2; 32]), 5, 1, nonce)
}

fn tx_json(nonce: u64) -> Value {
    serde_json::to_value(TxView::from(&tx(nonce))).unwrap()
}

#[test]
fn json_syntax_and_shape_errors_have_their_codes() {
    assert_eq!(parse_json::<Value>(b"{").unwrap_err().code, "invalid_json");
    assert_eq!(parse_json::<Value>(b"").unwrap_err().code, "invalid_json");
    assert_eq!(parse_json::<FarmRequest>(br#"{"count":"x","farmer":"zz"}"#).unwrap_err().code, "invalid_request");
}

/// `parse_submission` of a JSON value's text.
fn submission(v: Value, max: usize) -> Result<Submission, crate::error::RequestError> {
    parse_submission(&serde_json::to_vec(&v).unwrap(), max)
}

#[test]
fn a_submission_is_one_transaction_or_an_array_with_a_result_per_entry() {
    let one = submission(tx_json(0), 3).unwrap();
    assert!(matches!(one, Submission::One(t) if t == tx(0)));
    let mut mismatch = tx_json(1);
    mismatch["txid"] = json!(Hash([9; 32]));
    let body = json!([tx_json(0), {"garbage": 1}, mismatch]);
    let Submission::Many(entries) = submission(body, 3).unwrap() else { panic!("an array") };
    let codes: Vec<_> = entries.iter().map(|e| e.as_ref().map(|t| t.nonce).map_err(|e| e.code)).collect();
    assert_eq!(codes, vec![Ok(0), Err("invalid_request"), Err("txid_mismatch")]);
    let too_many = submission(json!([1, 2, 3, 4]), 3).unwrap_err();
    assert_eq!((too_many.rejection, too_many.code), (Rejection::TooLarge, "too_many_transactions"));
    assert_eq!(submission(json!("x"), 3).unwrap_err().code, "invalid_request");
    // Read from the text: whitespace around an array, escapes inside an entry, and JSON that
    // breaks anywhere (in an entry too) is invalid_json with nothing read.
    let text = serde_json::to_string(&tx_json(2)).unwrap().replacen("\"fee\"", "\"f\\u0065e\"", 1);
    let Submission::Many(entries) = parse_submission(format!(" \n[{text} ]\t").as_bytes(), 3).unwrap() else { panic!("an array") };
    assert!(matches!(&entries[..], [Ok(t)] if *t == tx(2)));
    assert_eq!(parse_submission(b"[{\"chain\": ]", 3).unwrap_err().code, "invalid_json");
    assert_eq!(parse_submission(b"[1, 2", 3).unwrap_err().code, "invalid_json");
    assert_eq!(parse_submission(b"{\"chain\"", 3).unwrap_err().code, "invalid_json");
    assert_eq!(parse_submission(b"", 3).unwrap_err().code, "invalid_json");
    let Submission::Many(entries) = parse_submission(b"[]", 3).unwrap() else { panic!("an array") };
    assert!(entries.is_empty());
}

/// Well-formed JSON past what a `serde_json::Value` holds (nesting deeper than its 128 levels, a
/// number past `f64`, a lone surrogate escape) is one entry that fails alone: the array is split
/// by JSON's grammar, and only the entry is read into a transaction (the fuzz target found the
/// array's entries counted differently from a `Value`'s when it checked against one).
#[test]
fn entries_past_what_a_json_tree_holds_fail_alone() {
    let valid = serde_json::to_string(&tx_json(0)).unwrap();
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    for odd in [deep.as_str(), "1e999", "-1e400", "\"\\ud800\"", "{\"fee\": 1e999}"] {
        let body = format!("[{odd}, {valid}]");
        let Submission::Many(entries) = parse_submission(body.as_bytes(), 3).unwrap() else { panic!("an array") };
        assert_eq!(entries.len(), 2, "{odd}");
        assert_eq!(entries[0].as_ref().unwrap_err().code, "invalid_request", "{odd}");
        assert!(matches!(&entries[1], Ok(t) if *t == tx(0)), "{odd}");
    }
}

#[test]
fn the_round_one_form_and_a_wrong_from_are_read_as_before() {
    let mut v = tx_json(0);
    let key = v["public_key"].clone();
    v.as_object_mut().unwrap().remove("public_key");
    v["from"] = key;
    assert!(matches!(submission(v, 1).unwrap(), Submission::One(t) if t == tx(0)));
    let mut wrong = tx_json(0);
    wrong["from"] = json!(Hash([3; 32]));
    assert_eq!(submission(wrong, 1).unwrap_err().code, "invalid_request");
}

#[test]
fn queries_read_as_axum_read_them() {
    let q: HistoryQuery = parse_query("limit=5&before=3-1").unwrap();
    assert_eq!((q.limit, q.before.as_deref()), (Some(5), Some("3-1")));
    let e = parse_query::<RangeQuery>("from=x").unwrap_err();
    assert_eq!((e.code, e.message.as_str()), ("invalid_query", "Failed to deserialize query string: from: invalid digit found in string"));
    assert_eq!(parse_query::<HistoryQuery>("bogus=1").unwrap_err().code, "invalid_query");
    assert_eq!(parse_query::<RangeQuery>("").unwrap_err().code, "invalid_query");
    assert_eq!(limit(None, 50, 100), Ok(50));
    assert_eq!(limit(Some(0), 50, 100).unwrap_err().code, "invalid_limit");
    assert_eq!(limit(Some(101), 50, 100).unwrap_err().code, "invalid_limit");
}

#[test]
fn cursors_and_block_ids() {
    assert_eq!(parse_cursor("12-3"), Ok((12, 3)));
    for bad in ["12", "a-b", "-1", "1-", "1-2-3", "99999999999999999999-1", "1-4294967296", "+1-2"] {
        assert_eq!(parse_cursor(bad).unwrap_err().code, "invalid_cursor", "{bad}");
    }
    assert_eq!(parse_block_id("7"), Ok(BlockId::Height(7)));
    assert_eq!(parse_block_id(&Hash([4; 32]).to_string()), Ok(BlockId::Hash(Hash([4; 32]))));
    assert_eq!(parse_block_id("99999999999999999999").unwrap_err().code, "invalid_height");
    assert_eq!(parse_block_id("xyz").unwrap_err().code, "invalid_block_id");
    assert_eq!(parse_block_id("").unwrap_err().code, "invalid_block_id");
}

#[test]
fn farm_and_ban_requests() {
    let farmer = Address([5; 32]).to_string();
    assert_eq!(FarmRequest { count: 2, farmer: farmer.clone() }.parse(10), Ok((Address([5; 32]), 2)));
    assert_eq!(FarmRequest { count: 0, farmer: farmer.clone() }.parse(10).unwrap_err().code, "invalid_count");
    assert_eq!(FarmRequest { count: 2, farmer: "zz".into() }.parse(10).unwrap_err().code, "invalid_address");
    let ban = |v: Value| serde_json::from_value::<BanRequest>(v).unwrap();
    let ok = ban(json!({"ip": "10.0.0.0/8", "duration_s": 60, "reason": "  spam "}));
    let parsed = ok.parse().unwrap();
    assert_eq!((parsed.who, parsed.secs, parsed.reason), (BanWho::Ip("10.0.0.0/8"), 60, "spam"));
    assert_eq!(ban(json!({})).parse().unwrap_err().code, "invalid_request");
    assert_eq!(ban(json!({"node_id": "zz"})).parse().unwrap_err().code, "invalid_node_id");
    assert_eq!(ban(json!({"ip": "1.2.3.4", "duration_s": 0})).parse().unwrap_err().code, "invalid_duration");
    assert_eq!(ban(json!({"ip": "1.2.3.4", "duration_s": 1.5})).parse().unwrap_err().code, "invalid_duration");
    assert_eq!(ban(json!({"ip": "1.2.3.4", "reason": "a\u{7}"})).parse().unwrap_err().code, "invalid_reason");
}

/// A message quoting a huge input is cut at the bound; every code is listed in `CODES`.
#[test]
fn messages_are_bounded() {
    let mut v = tx_json(0);
    v["amount"] = json!("x".repeat(100_000));
    let e = submission(v, 1).unwrap_err();
    assert_eq!(e.code, "invalid_request");
    assert!(e.message.chars().count() <= MAX_MESSAGE_CHARS + 1, "{}", e.message.len());
    assert!(CODES.contains(&e.code));
}
