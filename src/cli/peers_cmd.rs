//! `cairn peers`, `cairn bans`, `cairn ban`, `cairn unban`: the operator's control of peers
//! over the node's RPC (`/p2p/peers`, `/p2p/bans`, `/p2p/addresses`). Human-readable tables
//! by default, the RPC's JSON with `--json`.

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::{PeersCommand, RpcArgs};

/// `cairn peers [list|add|remove|addresses]`.
pub async fn peers(rpc: &RpcArgs, command: Option<PeersCommand>) -> anyhow::Result<()> {
    let client = rpc.client()?;
    match command.unwrap_or(PeersCommand::List) {
        PeersCommand::List => {
            let v: Value = client.get("/p2p/peers").await?;
            if rpc.json {
                return print_json(&v);
            }
            print!("{}", peers_table(&v, now_ms()));
        }
        PeersCommand::Add { address } => {
            let v: Value = client.post("/p2p/peers", &json!({ "address": address })).await?;
            if rpc.json {
                return print_json(&v);
            }
            println!("connected to {}", v["node_id"].as_str().unwrap_or("?"));
        }
        PeersCommand::Remove { node_id } => {
            let v: Value = client.delete(&format!("/p2p/peers/{}", node_id.trim())).await?;
            if rpc.json {
                return print_json(&v);
            }
            println!("removed {} (not redialled unless added again)", v["removed"].as_str().unwrap_or(&node_id));
        }
        PeersCommand::Addresses => {
            let v: Value = client.get("/p2p/addresses").await?;
            if rpc.json {
                return print_json(&v);
            }
            print!("{}", addresses_table(&v, now_ms()));
        }
    }
    Ok(())
}

/// `cairn bans`.
pub async fn bans(rpc: &RpcArgs) -> anyhow::Result<()> {
    let v: Value = rpc.client()?.get("/p2p/bans").await?;
    if rpc.json {
        return print_json(&v);
    }
    print!("{}", bans_table(&v, now_ms()));
    Ok(())
}

/// `cairn ban TARGET [--duration D] [--reason R]`.
pub async fn ban(rpc: &RpcArgs, target: &str, duration: Option<&str>, reason: Option<&str>) -> anyhow::Result<()> {
    let mut body = json!({});
    let target = target.trim();
    if target.len() == 64 && target.bytes().all(|b| b.is_ascii_hexdigit()) {
        body["node_id"] = json!(target);
    } else {
        body["ip"] = json!(target);
    }
    if let Some(d) = duration {
        body["duration_s"] = json!(parse_duration(d)?);
    }
    if let Some(r) = reason {
        body["reason"] = json!(r);
    }
    let v: Value = rpc.client()?.post("/p2p/bans", &body).await?;
    if rpc.json {
        return print_json(&v);
    }
    let b = &v["ban"];
    let who = b["node_id"].as_str().or(b["ip"].as_str()).unwrap_or(target);
    let until = b["until_ms"].as_u64().unwrap_or(0);
    println!("banned {who} for {} ({} peer(s) disconnected)", human_span(until.saturating_sub(now_ms())), v["disconnected"].as_u64().unwrap_or(0));
    Ok(())
}

/// `cairn unban TARGET`.
pub async fn unban(rpc: &RpcArgs, target: &str) -> anyhow::Result<()> {
    // A CIDR's `/` travels as `%2F` in the path.
    let path = format!("/p2p/bans/{}", target.trim().replace('/', "%2F"));
    let v: Value = rpc.client()?.delete(&path).await?;
    if rpc.json {
        return print_json(&v);
    }
    println!("unbanned {}", v["unbanned"].as_str().unwrap_or(target));
    Ok(())
}

pub(super) fn print_json(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v).context("printing JSON")?);
    Ok(())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// `3600`, `90s`, `30m`, `24h`, `7d` → seconds.
pub fn parse_duration(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().with_context(|| format!("duration {s:?}: expected a number with an optional unit s, m, h or d (e.g. 3600, 30m, 24h, 7d)"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("duration {s:?}: unknown unit {unit:?} (use s, m, h or d)"),
    };
    let secs = n.checked_mul(mult).with_context(|| format!("duration {s:?} is too long"))?;
    if secs == 0 {
        bail!("duration {s:?}: must be at least one second");
    }
    Ok(secs)
}

/// `3d4h`, `5h2m`, `4m10s`, `12s`: the two largest units.
pub fn human_span(ms: u64) -> String {
    let s = ms / 1000;
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) => format!("{m}m{sec}s"),
        (0, _, _) => format!("{h}h{m}m"),
        _ => format!("{d}d{h}h"),
    }
}

fn short(id: &str) -> String {
    if id.len() > 12 { format!("{}…", &id[..12]) } else { id.to_string() }
}

/// Renders rows as left-aligned columns.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(header.iter().map(|h| h.to_string()).collect::<Vec<_>>()).chain(rows.iter().cloned()) {
        let line: Vec<String> = r.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = width[i])).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The peer list as a table.
pub fn peers_table(v: &Value, now: u64) -> String {
    let empty = Vec::new();
    let peers = v["peers"].as_array().unwrap_or(&empty);
    let rows: Vec<Vec<String>> = peers
        .iter()
        .map(|p| {
            vec![
                short(p["node_id"].as_str().unwrap_or("?")),
                text(&p["name"]),
                text(&p["direction"]),
                text(&p["address"]),
                text(&p["best_height"]),
                p["ping_ms"].as_u64().map_or("-".into(), |ms| format!("{ms}ms")),
                text(&p["score"]),
                human_span(now.saturating_sub(p["connected_since"].as_u64().unwrap_or(now))),
            ]
        })
        .collect();
    let inbound = peers.iter().filter(|p| p["direction"] == "inbound").count();
    let mut out = table(&["NODE", "NAME", "DIR", "ADDRESS", "HEIGHT", "PING", "SCORE", "UP"], &rows);
    out.push_str(&format!("{} peer(s): {inbound} inbound, {} outbound\n", peers.len(), peers.len() - inbound));
    out
}

/// The bans as a table.
pub fn bans_table(v: &Value, now: u64) -> String {
    let empty = Vec::new();
    let bans = v["bans"].as_array().unwrap_or(&empty);
    if bans.is_empty() {
        return "no bans\n".into();
    }
    let rows: Vec<Vec<String>> = bans
        .iter()
        .map(|b| {
            let who = b["node_id"].as_str().map(str::to_string).or(b["ip"].as_str().map(str::to_string)).unwrap_or_default();
            vec![who, text(&b["reason"]), format!("in {}", human_span(b["until_ms"].as_u64().unwrap_or(now).saturating_sub(now)))]
        })
        .collect();
    table(&["BANNED", "REASON", "ENDS"], &rows)
}

/// The address book as a table.
pub fn addresses_table(v: &Value, now: u64) -> String {
    let empty = Vec::new();
    let list = v["addresses"].as_array().unwrap_or(&empty);
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|a| {
            let next = a["next_attempt_ms"].as_u64().unwrap_or(now);
            vec![
                text(&a["address"]),
                a["node_id"].as_str().map_or("-".into(), short),
                text(&a["source"]),
                a["last_success_ms"].as_u64().map_or("never".into(), |t| format!("{} ago", human_span(now.saturating_sub(t)))),
                text(&a["failures"]),
                if next <= now { "now".into() } else { format!("in {}", human_span(next - now)) },
            ]
        })
        .collect();
    let mut out = table(&["ADDRESS", "NODE", "SOURCE", "LAST SUCCESS", "FAILURES", "NEXT DIAL"], &rows);
    out.push_str(&format!("{} address(es)\n", list.len()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3600").unwrap(), 3600);
        assert_eq!(parse_duration("30m").unwrap(), 1800);
        assert_eq!(parse_duration("24h").unwrap(), 86_400);
        assert_eq!(parse_duration("7d").unwrap(), 604_800);
        for bad in ["", "h", "1y", "-5", "0", "1.5h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(human_span(90_061_000), "1d1h");
        assert_eq!(human_span(61_000), "1m1s");
    }

    #[test]
    fn tables() {
        let v = json!({"peers": [{"node_id": "ab".repeat(32), "name": "node2", "direction": "inbound", "address": "127.0.0.1:9", "best_height": 7, "ping_ms": 3, "score": 0, "connected_since": 1_000}]});
        let t = peers_table(&v, 61_000);
        assert!(t.contains("node2") && t.contains("3ms") && t.contains("1m0s") && t.contains("1 peer(s): 1 inbound, 0 outbound"), "{t}");
        let b = json!({"bans": [{"ip": "10.0.0.0/24", "reason": "spam", "until_ms": 3_601_000}]});
        let t = bans_table(&b, 1_000);
        assert!(t.contains("10.0.0.0/24") && t.contains("spam") && t.contains("in 1h0m"), "{t}");
        assert_eq!(bans_table(&json!({"bans": []}), 0), "no bans\n");
        let a = json!({"addresses": [{"address": "10.0.0.1:9090", "node_id": null, "source": "learned", "last_success_ms": null, "failures": 2, "next_attempt_ms": 5_000}]});
        let t = addresses_table(&a, 1_000);
        assert!(t.contains("learned") && t.contains("never") && t.contains("in 4s"), "{t}");
    }
}
