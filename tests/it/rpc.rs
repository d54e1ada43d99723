//! The RPC end to end with a real HTTP client: farm, transfer, every error code.

use cairn_chain::{Address, Keypair, Transaction};
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn farm_send_and_see_balances_move() {
    let n = start_node().await;
    let rpc = &n.rpc;
    let farmer = Keypair::generate().address();
    assert_eq!(rpc.farm(100, &farmer).await.len(), 100);
    assert_eq!(rpc.height().await, 100);
    let reward = cairn_chain::ChainSpec::devnet().block_reward;
    assert_eq!(rpc.balance(&farmer).await, 100 * reward);

    // Several sends in a row from one key before a block: next_nonce counts pending ones.
    let to = Keypair::generate().address();
    let key = dev(0);
    let mut ids = Vec::new();
    for i in 0..3 {
        let (_, acct) = rpc.get(&format!("/accounts/{}", key.address())).await;
        let nonce = acct["next_nonce"].as_u64().unwrap();
        assert_eq!(nonce, i);
        let tx = Transaction::signed(&key, devnet_genesis(), to, 1000 + i, 5, nonce);
        let (s, v) = rpc.post("/txs", &tx_json(&tx)).await;
        assert_eq!(s, 202, "{v}");
        ids.push(v["txid"].as_str().unwrap().to_string());
    }
    let (s, v) = rpc.get(&format!("/txs/{}", ids[0])).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("pending")));
    let before = rpc.balance(&key.address()).await;
    rpc.farm(1, &farmer).await;
    assert_eq!(rpc.balance(&to).await, 1000 + 1001 + 1002);
    assert_eq!(rpc.balance(&key.address()).await, before - 3003 - 15);
    assert_eq!(rpc.balance(&farmer).await, 101 * reward + 15, "fees go to the farmer");
    let (s, v) = rpc.get(&format!("/txs/{}", ids[2])).await;
    assert_eq!((s, v["status"].as_str(), v["height"].as_u64()), (200, Some("confirmed"), Some(101)));

    // Blocks by height and hash, ranges.
    let (s, b) = rpc.get("/blocks/101").await;
    assert_eq!(s, 200);
    assert_eq!(b["transactions"].as_array().unwrap().len(), 3);
    let (s, b2) = rpc.get(&format!("/blocks/{}", b["hash"].as_str().unwrap())).await;
    assert_eq!((s, &b2), (200, &b));
    let (s, r) = rpc.get("/blocks?from=95&limit=1000").await;
    assert_eq!((s, r["count"].as_u64()), (200, Some(7)));
    let m = rpc.http_text("/metrics").await;
    assert!(m.contains("cairn_height 101") && m.contains("cairn_rpc_requests_total"), "{m}");
    n.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_has_its_code() {
    let n = start_node().await;
    let rpc = &n.rpc;
    let farmer = Keypair::generate().address();
    rpc.farm(2, &farmer).await;
    let g = devnet_genesis();
    let key = dev(1);
    let to = Keypair::generate().address();

    // Transactions.
    let good = Transaction::signed(&key, g, to, 10, 1, 0);
    let mut forged = good.clone();
    forged.amount = 11;
    let cases: Vec<(Transaction, u16, &str)> = vec![
        (forged, 422, "bad_signature"),
        (Transaction::signed(&key, cairn_chain::Hash::digest(b"other chain"), to, 10, 1, 0), 422, "wrong_chain"),
        (Transaction::signed(&key, g, to, 10, 1, 5), 422, "nonce_too_high"),
        (Transaction::signed(&Keypair::generate(), g, to, 10, 1, 0), 422, "insufficient_balance"),
        (Transaction::signed(&key, g, to, u64::MAX, 1, 0), 422, "overflow"),
    ];
    for (tx, status, expected) in cases {
        let (s, v) = rpc.post("/txs", &tx_json(&tx)).await;
        assert_eq!((s, code(&v)), (status, expected), "{v}");
    }
    assert_eq!(rpc.post("/txs", &tx_json(&good)).await.0, 202);
    let (s, v) = rpc.post("/txs", &tx_json(&good)).await;
    assert_eq!((s, code(&v)), (409, "already_known"));
    rpc.farm(1, &farmer).await;
    let (s, v) = rpc.post("/txs", &tx_json(&Transaction::signed(&key, g, to, 99, 1, 0))).await;
    assert_eq!((s, code(&v)), (422, "nonce_too_low"));
    let mut with_txid = tx_json(&Transaction::signed(&key, g, to, 5, 1, 1));
    with_txid["txid"] = json!("00".repeat(32));
    assert_eq!(code(&rpc.post("/txs", &with_txid).await.1), "txid_mismatch");

    // Blocks.
    let (_, t) = rpc.get(&format!("/farm/template?farmer={farmer}")).await;
    let template: Value = t.clone();
    let block_with = |f: &dyn Fn(&mut Value)| {
        let mut b = json!({"header": template["header"].clone(), "transactions": template["transactions"].clone()});
        f(&mut b);
        b
    };
    // A header whose hash misses the target (devnet target: 1 in 16 hashes pass).
    let unmined = (0u64..64)
        .map(|nonce| block_with(&|b| b["header"]["nonce"] = json!(nonce)))
        .find(|b| {
            let v: cairn_rpc_types::views::BlockView = serde_json::from_value(b.clone()).unwrap();
            let h = v.into_block().unwrap().header;
            !h.target.is_met_by(&h.hash())
        })
        .unwrap();
    let (s, v) = rpc.post("/blocks", &unmined).await;
    assert_eq!((s, code(&v)), (422, "bad_proof"), "{v}");
    let mined = |mut b: Value| {
        let view: cairn_rpc_types::views::BlockView = serde_json::from_value(b.clone()).unwrap();
        let header = view.into_block().unwrap().header;
        let found = cairn::farm::miner::mine(&header, 1, &std::sync::atomic::AtomicBool::new(false)).unwrap();
        b["header"]["nonce"] = json!(found.nonce);
        b
    };
    let cases: Vec<(Value, &str)> = vec![
        (mined(block_with(&|b| b["header"]["prev_hash"] = json!("11".repeat(32)))), "unknown_parent"),
        (mined(block_with(&|b| b["header"]["tx_root"] = json!("22".repeat(32)))), "bad_merkle_root"),
        (mined(block_with(&|b| b["header"]["height"] = json!(77))), "bad_height"),
        (mined(block_with(&|b| b["header"]["version"] = json!(9))), "bad_version"),
        (mined(block_with(&|b| b["header"]["timestamp"] = json!(1))), "timestamp_too_old"),
        (mined(block_with(&|b| b["header"]["timestamp"] = json!(u64::MAX / 2))), "timestamp_in_future"),
        (mined(block_with(&|b| b["header"]["target"] = json!(format!("00{}", "f".repeat(62))))), "bad_target"),
    ];
    for (b, expected) in cases {
        let (s, v) = rpc.post("/blocks", &b).await;
        assert_eq!((s, code(&v)), (422, expected), "{v}");
    }
    // A good block is accepted; resubmitting it is harmless.
    let good_block = mined(block_with(&|_| {}));
    let (s, v) = rpc.post("/blocks", &good_block).await;
    assert_eq!((s, v["status"].as_str()), (201, Some("connected")), "{v}");
    let (s, v) = rpc.post("/blocks", &good_block).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("already_known")), "{v}");

    // Malformed requests.
    for (path, body, status, expected) in [
        ("/blocks", b"not json".to_vec(), 400, "invalid_json"),
        ("/blocks", b"{}".to_vec(), 400, "invalid_request"),
        ("/txs", br#"{"garbage":1}"#.to_vec(), 400, "invalid_request"),
        ("/farm/blocks", br#"{"count":"x","farmer":"zz"}"#.to_vec(), 400, "invalid_request"),
        ("/farm/blocks", format!(r#"{{"count":0,"farmer":"{farmer}"}}"#).into_bytes(), 400, "invalid_count"),
        ("/farm/blocks", br#"{"count":1,"farmer":"zz"}"#.to_vec(), 400, "invalid_address"),
    ] {
        let (s, v) = rpc.post_raw(path, body).await;
        assert_eq!((s, code(&v)), (status, expected), "{path}: {v}");
    }
    // Oversized bodies: declared by Content-Length, or streamed without one.
    let big = vec![b'a'; 9 << 20];
    for path in ["/txs", "/blocks", "/farm/blocks"] {
        let (s, v) = rpc.raw(&format!("POST {path} HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}", big.len()), &big).await;
        assert_eq!((s, code(&v)), (413, "body_too_large"), "{path}: {v}");
    }
    // `/txs` takes arrays of up to 10,000 transactions: its limit is 8 MiB.
    let mut chunked = format!("{:x}\r\n", 9 << 20).into_bytes();
    chunked.extend(vec![b'a'; 9 << 20]);
    chunked.extend(b"\r\n0\r\n\r\n");
    let (s, v) = rpc.raw("POST /txs HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked", &chunked).await;
    assert_eq!((s, code(&v)), (413, "body_too_large"), "chunked: {v}");
    for (path, status, expected) in [
        ("/blocks/99999999", 404, "not_found"),
        ("/blocks/zz", 400, "invalid_block_id"),
        (&*format!("/txs/{}", "ab".repeat(32)), 404, "not_found"),
        ("/txs/xyz", 400, "invalid_txid"),
        ("/accounts/nothex", 400, "invalid_address"),
        ("/blocks?from=x", 400, "invalid_query"),
        ("/nowhere", 404, "not_found"),
    ] {
        let (s, v) = rpc.get(path).await;
        assert_eq!((s, code(&v)), (status, expected), "{path}: {v}");
    }
    // An address never seen is a valid, empty account.
    let fresh = Address([7; 32]);
    let (s, v) = rpc.get(&format!("/accounts/{fresh}")).await;
    assert_eq!((s, v["balance"].as_u64(), v["nonce"].as_u64()), (200, Some(0), Some(0)));
    // Rejections are counted by reason, and the node still serves.
    let m = rpc.http_text("/metrics").await;
    assert!(m.contains(r#"cairn_blocks_rejected_total{reason="bad_proof"} 1"#), "{m}");
    assert_eq!(rpc.get("/health").await.0, 200);
    n.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_transactions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = cairn::Node::start(cairn::config::NodeConfig::for_tests(data.clone())).await.unwrap();
    let rpc = Rpc::new(format!("http://{}", node.rpc_addr()));
    let key = dev(2);
    let mut ids = Vec::new();
    for nonce in 0..12 {
        let tx = Transaction::signed(&key, devnet_genesis(), Address([9; 32]), 1 + nonce, 1, nonce);
        let (s, v) = rpc.post("/txs", &tx_json(&tx)).await;
        assert_eq!(s, 202, "{v}");
        ids.push(v["txid"].as_str().unwrap().to_string());
    }
    node.shutdown().await;
    // Persisted in txid order, restored in nonce order: every one is back.
    let node = cairn::Node::start(cairn::config::NodeConfig::for_tests(data)).await.unwrap();
    let rpc = Rpc::new(format!("http://{}", node.rpc_addr()));
    for id in &ids {
        let (s, v) = rpc.get(&format!("/txs/{id}")).await;
        assert_eq!((s, v["status"].as_str()), (200, Some("pending")), "{id} lost");
    }
    rpc.farm(1, &Address([0xfa; 32])).await;
    assert_eq!(rpc.balance(&Address([9; 32])).await, (1..=12).sum::<u64>());
    node.shutdown().await;
}

/// Transactions show `from` as the sender's address and the key as `public_key`; a client may
/// send either form (the round-1 one has the key in `from`), and a `from` that is not the
/// key's address is refused. `GET /mempool` counts and lists what is pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_name_the_sender_by_address() {
    let n = start_node().await;
    let k = dev(7);
    let tx = |nonce: u64| cairn_chain::Transaction::signed(&k, devnet_genesis(), cairn_chain::Address([3; 32]), 5, 1, nonce);
    let shown = tx_json(&tx(0));
    assert_eq!(shown["from"], k.address().to_string());
    assert_eq!(shown["public_key"], hex::encode(k.public().as_bytes()));
    assert_eq!(n.rpc.post("/txs", &shown).await.0, 202, "the form the node shows is accepted");
    // The round-1 form: the key in `from`, no `public_key`.
    let mut old = tx_json(&tx(1));
    old["from"] = old["public_key"].take();
    old.as_object_mut().unwrap().remove("public_key");
    assert_eq!(n.rpc.post("/txs", &old).await.0, 202, "{old}");
    // A `from` that is not the key's address.
    let mut wrong = tx_json(&tx(2));
    wrong["from"] = serde_json::json!(cairn_chain::Address([9; 32]).to_string());
    let (s, v) = n.rpc.post("/txs", &wrong).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("invalid_request")), "{v}");
    let (s, v) = n.rpc.get("/mempool?limit=1").await;
    assert_eq!(s, 200);
    assert_eq!(v["count"], 2);
    assert_eq!(v["transactions"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["transactions"][0]["nonce"], 0, "each sender's in nonce order");
    assert_eq!(n.rpc.get("/mempool?limit=x").await.0, 400);
    n.node.shutdown().await;
}

/// `/metrics` is valid Prometheus text (`promtool check metrics`, when installed: the test
/// suite's setup installs it) with today's names, the histograms, process metrics and build
/// info.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_with_histograms_process_and_build_info() {
    let n = start_node().await;
    n.rpc.farm(2, &Keypair::generate().address()).await;
    let text = n.rpc.http_text("/metrics").await;
    for name in [
        "cairn_height 2",
        "cairn_blocks_accepted_total 2",
        "cairn_rpc_requests_total{method=\"POST\",route=\"/farm/blocks\",status=\"200\"} 1",
        "cairn_rpc_request_duration_seconds_bucket{method=\"POST\",route=\"/farm/blocks\",le=\"+Inf\"} 1",
        "cairn_block_import_seconds_count 2",
        "cairn_sync_batch_seconds_count 0",
        "cairn_block_propagation_seconds_count 0",
        "cairn_block_announce_to_accept_seconds_count 0",
        "cairn_p2p_peers{direction=\"inbound\"} 0",
        "cairn_sigcache_entries",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        &format!("cairn_build_info{{version=\"{}\",commit=\"", env!("CARGO_PKG_VERSION")),
    ] {
        assert!(text.contains(name), "no {name} in:\n{text}");
    }
    // The shipped Grafana dashboard asks only for metrics the node exports (refusal families
    // appear with their first refusal).
    let dash = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/grafana-dashboard.json")).unwrap();
    let dash: Value = serde_json::from_str(&dash).expect("the dashboard is JSON");
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if !(word.starts_with("cairn_") || word.starts_with("process_")) {
                    continue;
                }
                let family = word.strip_suffix("_bucket").unwrap_or(word);
                let known_empty = ["cairn_transactions_rejected_total", "cairn_blocks_rejected_total"].contains(&family);
                assert!(known_empty || text.contains(&format!("# TYPE {family} ")), "the dashboard's {word} is not exported");
            }
        }
    }
    match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Err(e) => println!("promtool not run ({e}); scripts/setup.sh --test installs it"),
        Ok(mut child) => {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "promtool: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        }
    }
    n.node.shutdown().await;
}

/// `GET /openapi.json` is an OpenAPI 3.1 document with every route of the router (read from
/// its source, so a new route without its `#[utoipa::path]` fails here), each with its
/// responses and the shared error body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_covers_every_route() {
    let n = start_node().await;
    let (s, doc) = n.rpc.get("/openapi.json").await;
    assert_eq!(s, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let router = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/rpc/mod.rs")).unwrap();
    let mut routes = 0;
    for line in router.lines().filter(|l| l.trim_start().starts_with(".route(\"")) {
        let path = line.split('"').nth(1).unwrap().replace("{*", "{");
        let methods: Vec<&str> = ["get(", "post(", "delete("].into_iter().filter(|m| line.contains(m)).collect();
        for m in methods {
            let method = m.trim_end_matches('(');
            let op = &doc["paths"][&path][method];
            assert!(op.is_object(), "{method} {path} is not in /openapi.json");
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path} has no responses");
            routes += 1;
        }
    }
    assert!(routes >= 20, "read {routes} routes from the router");
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    n.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_served_from_the_binary_with_a_strict_policy() {
    let n = start_node().await;
    let get = |path: &str| reqwest::get(format!("{}{path}", n.rpc.base));
    for (path, kind) in [("/", "text/html"), ("/ui/app.js", "text/javascript"), ("/ui/style.css", "text/css"), ("/ui/favicon.svg", "image/svg+xml")] {
        let r = get(path).await.expect("GET");
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers();
        assert!(h["content-type"].to_str().unwrap().starts_with(kind), "{path}: {:?}", h["content-type"]);
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("default-src 'none'") && !csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["cache-control"], "no-cache");
        // A revalidation with the ETag is answered without the body.
        let etag = h["etag"].to_str().unwrap().to_string();
        let again = reqwest::Client::new().get(format!("{}{path}", n.rpc.base)).header("if-none-match", &etag).send().await.unwrap();
        assert_eq!(again.status(), 304, "{path}");
    }
    let page = get("/").await.unwrap().text().await.unwrap();
    assert!(page.contains("/ui/app.js") && page.contains("<main id=\"view\">"), "{page}");
    let (s, v) = n.rpc.get("/ui/nothing.js").await;
    assert_eq!((s, code(&v)), (404, "not_found"));
    // Outside `cairn devnet` there is no network view.
    let (s, v) = n.rpc.get("/devnet/network").await;
    assert_eq!((s, code(&v)), (404, "not_found"));
    n.node.shutdown().await;
}
