//! A LAN made of Linux network namespaces: one namespace holds a bridge, every host is a
//! namespace whose `eth0` (one end of a veth pair) is plugged into it, addressed in
//! 10.213.N.0/24. Each host runs one real `cairn node` process (or avahi), driven through
//! its RPC with `curl` inside the namespace.
//!
//! Names are unique per test run (`cairn-netns-<pid>-<n>-…`), so tests run in parallel; every
//! namespace and process is removed by a `Drop` guard, also when a test fails, and leftovers of
//! a killed run (its pid gone) are swept when the next one starts. Where namespaces cannot be
//! made (not root, no `ip`), [`Lan::new`] prints why and returns `None`, and the test passes
//! as skipped.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Namespace name prefix of this harness (the sweep only touches names with it).
const PREFIX: &str = "cairn-netns-";

/// The RPC and P2P ports a node uses on a host of its own (a namespace has ports of its own).
pub const RPC_PORT: u16 = 8080;
pub const P2P_PORT: u16 = 9090;

/// Prints a line that shows even when the test harness captures output (a skip, a figure):
/// writes to stderr directly, not through the captured `print!` macros.
pub fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Polls `probe` every 100 ms until it returns `Some`, failing loudly after `secs` seconds.
pub fn wait_until<T>(what: &str, secs: u64, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {secs} s waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs a command; its stdout, or a message with its stderr.
pub fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0]).args(&args[1..]).stdin(Stdio::null()).output().map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("`{}` failed ({}): {}", args.join(" "), out.status, String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Runs a command that must succeed.
fn must(args: &[&str]) -> String {
    run(args).unwrap_or_else(|e| panic!("{e}"))
}

/// Deletes namespaces left by harness runs whose process is gone (a run killed before its
/// guards ran).
fn sweep_stale() {
    let Ok(list) = run(&["ip", "netns", "list"]) else { return };
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) = name.strip_prefix(PREFIX).and_then(|rest| rest.split('-').next()).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run(&["ip", "netns", "del", name]);
        }
    }
}

/// Whether this machine can make namespaces (probed once per run); if not, prints why.
fn namespaces_available(test: &str) -> bool {
    static PROBE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let probed = PROBE.get_or_init(|| {
        let probe = format!("{PREFIX}{}-probe", std::process::id());
        run(&["ip", "netns", "add", &probe])?;
        run(&["ip", "netns", "del", &probe]).map(|_| ())
    });
    if let Err(e) = probed {
        say(&format!("SKIPPED {test}: cannot create network namespaces here (needs root and iproute2): {e}"));
    }
    probed.is_ok()
}

/// One LAN: a bridge namespace and the host namespaces plugged into it.
pub struct Lan {
    tag: String,
    subnet: u8,
    bridge: String,
    hosts: Vec<String>,
    /// Scratch space: data dirs, logs, config files.
    pub dir: tempfile::TempDir,
}

/// A host on a [`Lan`]: its namespace and address.
#[derive(Clone, Debug)]
pub struct Host {
    /// Namespace name.
    pub ns: String,
    /// Address of its `eth0`.
    pub ip: Ipv4Addr,
}

impl Host {
    /// Runs `args` inside this host's namespace.
    pub fn exec(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["ip", "netns", "exec", &self.ns];
        all.extend_from_slice(args);
        run(&all)
    }
    /// Takes the host's link down (`up = false`) or brings it back.
    pub fn link(&self, up: bool) {
        must(&["ip", "-n", &self.ns, "link", "set", "eth0", if up { "up" } else { "down" }]);
    }
}

impl Lan {
    /// A new, empty LAN, or `None` (with a printed reason) where namespaces cannot be made.
    pub fn new(test: &str) -> Option<Lan> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        if !namespaces_available(test) {
            return None;
        }
        sweep_stale();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{PREFIX}{}-{n}", std::process::id());
        let bridge = format!("{tag}-br");
        let lan = Lan { subnet: (n % 250) as u8, bridge: bridge.clone(), hosts: Vec::new(), dir: tempfile::tempdir().unwrap(), tag };
        must(&["ip", "netns", "add", &bridge]);
        must(&["ip", "-n", &bridge, "link", "add", "br0", "type", "bridge"]);
        must(&["ip", "-n", &bridge, "link", "set", "br0", "up"]);
        Some(lan)
    }

    /// A new namespace with loopback up; its number.
    fn namespace(&mut self) -> (String, usize) {
        let i = self.hosts.len() + 1;
        let ns = format!("{}-h{i}", self.tag);
        must(&["ip", "netns", "add", &ns]);
        // Registered at once, so the guard removes it even if the rest fails.
        self.hosts.push(ns.clone());
        must(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        (ns, i)
    }

    /// Plugs a new host into the bridge.
    pub fn host(&mut self) -> Host {
        let (ns, i) = self.namespace();
        let port = format!("p{i}");
        must(&["ip", "link", "add", "name", "eth0", "netns", &ns, "type", "veth", "peer", "name", &port, "netns", &self.bridge]);
        must(&["ip", "-n", &self.bridge, "link", "set", &port, "master", "br0", "up"]);
        let ip = Ipv4Addr::new(10, 213, self.subnet, i as u8);
        must(&["ip", "-n", &ns, "addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
        must(&["ip", "-n", &ns, "link", "set", "eth0", "up", "multicast", "on"]);
        Host { ns, ip }
    }

    /// A host with no network but loopback (a laptop offline), not on the bridge.
    pub fn lone_host(&mut self) -> Host {
        Host { ns: self.namespace().0, ip: Ipv4Addr::LOCALHOST }
    }

    /// Starts `cairn node` (ports 8080/9090, no `--peers`) on a new host, with `args` and `env`
    /// added, and waits until it answers `/health`.
    pub fn node(&mut self, name: &str, args: &[&str], env: &[(&str, &str)]) -> NsNode {
        let host = self.host();
        self.node_on(&host, name, (RPC_PORT, P2P_PORT), args, env)
    }

    /// Starts `cairn node` on `host` with the given (RPC, P2P) ports.
    pub fn node_on(&mut self, host: &Host, name: &str, ports: (u16, u16), args: &[&str], env: &[(&str, &str)]) -> NsNode {
        let host = host.clone();
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log");
        let out = std::fs::File::create(&log).unwrap();
        let (rpc, p2p) = (ports.0.to_string(), ports.1.to_string());
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &host.ns, env!("CARGO_BIN_EXE_cairn"), "node", "--rpc-port", &rpc, "--p2p-port", &p2p, "--data-dir"])
            .arg(dir.join("data"))
            .args(args)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info,p2p::mdns=debug")
            .env_remove("CAIRN_NO_MDNS")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        // `ip netns exec` execs the command: the child is the node itself.
        let child = cmd.spawn().expect("spawn ip netns exec cairn");
        let mut node = NsNode { name: name.to_string(), host, rpc_port: ports.0, child, log, started: Instant::now() };
        wait_until(&format!("node {name} to answer /health"), 30, || {
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!("node {name} exited ({status}):\n{}", node.log_tail(20));
            }
            node.get("/health").map(|_| ())
        });
        node
    }

    /// A chain spec like the shipped devnet's but with another chain ID; returns its path.
    pub fn foreign_spec(&self) -> PathBuf {
        let text: String = cairn_chain::spec::DEVNET_SPEC
            .lines()
            .map(|l| if l.trim_start().starts_with("chain_id") { "chain_id = \"cairn-devnet-foreign\"".to_string() } else { l.to_string() })
            .collect::<Vec<_>>()
            .join("\n");
        let path = self.dir.path().join("foreign.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in self.hosts.iter().rev().chain([&self.bridge]) {
            if let Err(e) = run(&["ip", "netns", "del", ns]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// A `cairn node` process in its own namespace.
pub struct NsNode {
    pub name: String,
    pub host: Host,
    rpc_port: u16,
    child: Child,
    log: PathBuf,
    /// When the process was started.
    pub started: Instant,
}

impl NsNode {
    fn curl(&self, extra: &[&str], path: &str) -> Option<String> {
        let url = format!("http://127.0.0.1:{}{path}", self.rpc_port);
        let mut args = vec!["curl", "-sf", "--max-time", "10"];
        args.extend_from_slice(extra);
        args.push(&url);
        self.host.exec(&args).ok()
    }
    /// GET a JSON body (`None` if the node does not answer 2xx).
    pub fn get(&self, path: &str) -> Option<Value> {
        serde_json::from_str(&self.curl(&[], path)?).ok()
    }
    /// POST a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Option<Value> {
        serde_json::from_str(&self.curl(&["-H", "content-type: application/json", "-d", &body.to_string()], path)?).ok()
    }
    /// `/status`.
    pub fn status(&self) -> Value {
        self.get("/status").unwrap_or_else(|| panic!("node {} answers /status", self.name))
    }
    pub fn node_id(&self) -> String {
        self.status()["node_id"].as_str().unwrap().to_string()
    }
    pub fn best(&self) -> Option<String> {
        Some(self.get("/status")?["best_hash"].as_str()?.to_string())
    }
    /// Node IDs of the connected peers, sorted.
    pub fn peer_ids(&self) -> Option<Vec<String>> {
        let v = self.get("/p2p/peers")?;
        let mut ids: Vec<String> = v["peers"].as_array()?.iter().filter_map(|p| Some(p["node_id"].as_str()?.to_string())).collect();
        ids.sort();
        Some(ids)
    }
    pub fn peer_count(&self) -> Option<usize> {
        self.peer_ids().map(|p| p.len())
    }
    /// Farms `count` blocks with the built-in farmer.
    pub fn farm(&self, count: u64) -> Vec<String> {
        let farmer = cairn_chain::ChainSpec::devnet().dev_key(0).unwrap().address().to_string();
        let v = self.post("/farm/blocks", &serde_json::json!({"count": count, "farmer": farmer})).expect("farm");
        v["hashes"].as_array().unwrap().iter().map(|h| h.as_str().unwrap().to_string()).collect()
    }
    /// `/metrics` text.
    pub fn metrics(&self) -> String {
        self.curl(&[], "/metrics").unwrap_or_default()
    }
    /// A sample's value: `series` is the name with its labels as rendered; absent = 0.
    pub fn metric(&self, series: &str) -> f64 {
        self.metrics().lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
    }
    /// The whole log.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
    /// Sends SIGTERM and waits (bounded) for a clean exit.
    pub fn stop(&mut self) -> ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        wait_until(&format!("node {} to exit after SIGTERM", self.name), 20, || self.child.try_wait().ok().flatten())
    }
}

impl Drop for NsNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- node {} ({}, {}) log tail ----\n{}", self.name, self.host.ns, self.host.ip, self.log_tail(40));
        }
    }
}

/// Seconds since midnight (UTC) of a log line's leading RFC 3339 timestamp.
pub fn log_time(line: &str) -> Option<f64> {
    let time = line.split_whitespace().next()?.split('T').nth(1)?.trim_end_matches('Z');
    let mut parts = time.split(':');
    let (h, m, s): (f64, f64, f64) = (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
    Some(h * 3600.0 + m * 60.0 + s)
}

/// A system D-Bus and avahi-daemon on a host of their own, in private mount and PID
/// namespaces: their own `/run` (pid files and the bus socket never meet the machine's or
/// another test's daemons), and killing the holder process ends them all.
pub struct Avahi {
    holder: Child,
    /// Host PID of the PID namespace's init (for `nsenter`).
    init: u32,
}

/// A service `avahi-browse -rpt` resolved.
#[derive(Clone, Debug)]
pub struct Browsed {
    pub instance: String,
    pub address: String,
    pub port: u16,
    /// TXT strings, `key=value`.
    pub txt: Vec<String>,
}

impl Avahi {
    /// Starts the daemons on a new host of `lan`; `None` (with a printed reason) if avahi is
    /// not installed.
    pub fn start(lan: &mut Lan, test: &str) -> Option<Avahi> {
        for tool in ["dbus-daemon", "avahi-daemon", "avahi-browse", "nsenter", "unshare"] {
            if run(&["sh", "-c", &format!("command -v {tool}")]).is_err() {
                say(&format!("SKIPPED the avahi part of {test}: {tool} is not installed (scripts/setup.sh installs it)"));
                return None;
            }
        }
        let host = lan.host();
        let log = std::fs::File::create(lan.dir.path().join("avahi.log")).unwrap();
        let script = "mount -t tmpfs tmpfs /run && mkdir -p /run/dbus /run/avahi-daemon \
                      && dbus-daemon --system --fork && avahi-daemon -D --no-drop-root --no-chroot && exec sleep infinity";
        // `--kill-child`: when the holder (unshare) is killed, its child, the PID namespace's
        // init, gets SIGKILL, and with it every process in the namespace.
        let holder = Command::new("ip")
            .args(["netns", "exec", &host.ns, "unshare", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc", "sh", "-c", script])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn unshare");
        let holder_pid = holder.id();
        let mut avahi = Avahi { holder, init: 0 };
        avahi.init = wait_until("the avahi namespace's init", 10, || {
            if let Ok(Some(s)) = avahi.holder.try_wait() {
                panic!("dbus/avahi start failed ({s}): {}", std::fs::read_to_string(lan.dir.path().join("avahi.log")).unwrap_or_default());
            }
            let children = std::fs::read_to_string(format!("/proc/{holder_pid}/task/{holder_pid}/children")).ok()?;
            children.split_whitespace().next()?.parse().ok()
        });
        Some(avahi)
    }

    /// Resolved `_cairn._udp` services, as `avahi-browse -rpt` (a cache dump plus one
    /// round of queries) lists them; empty while avahi is still starting.
    pub fn browse(&self) -> Vec<Browsed> {
        let init = self.init.to_string();
        let Ok(out) = run(&["timeout", "10", "nsenter", "-t", &init, "-m", "-n", "avahi-browse", "-rpt", "_cairn._udp"]) else {
            return Vec::new();
        };
        out.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.splitn(10, ';').collect();
                if f.len() < 10 || f[0] != "=" || f[2] != "IPv4" {
                    return None;
                }
                let txt = f[9].split("\" \"").map(|s| s.trim_matches('"').to_string()).collect();
                Some(Browsed { instance: f[3].to_string(), address: f[7].to_string(), port: f[8].parse().ok()?, txt })
            })
            .collect()
    }

    /// The service whose TXT `node=` is `node_id`, if avahi lists it.
    pub fn find(&self, node_id: &str) -> Option<Browsed> {
        let want = format!("node={node_id}");
        self.browse().into_iter().find(|b| b.txt.contains(&want))
    }
}

impl Drop for Avahi {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}
