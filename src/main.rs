//! The `cairn` binary: parses arguments, sets up logging, runs the command.

use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

fn main() {
    // glibc's allocator, tuned before any thread starts, so resident memory follows live data
    // through a long sync: at most two arenas (otherwise up to 8 per core, each keeping what was
    // freed into it: blocks decoded on one worker, checked on a blocking thread, dropped on the
    // chain thread), and a fixed mmap threshold, so large buffers (RocksDB memtable arena
    // blocks, compaction buffers, network frames) go back to the system when freed instead of
    // leaving holes in the heap (by default the threshold rises to the largest freed chunk).
    // 256 KiB, not glibc's 128 KiB: a relayed message of 1000 transactions (~190 KB), one of
    // 4096 IDs (~130 KB) and a batch verification's tables (~100-130 KB) come and go
    // thousands of times a second under load, and as mappings each cost page faults and
    // zeroed pages (~5% of a loaded 3-node machine's CPU in a profile).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 10);
    }
    let cli = match cairn::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => cairn::cli::exit_on_parse_error(e),
    };
    // The node's span (its name on every line) whatever RUST_LOG selects.
    let with_span = |filter: EnvFilter| match format!("{}=error", cairn::node::SPAN_TARGET).parse::<tracing_subscriber::filter::Directive>() {
        Ok(d) => filter.add_directive(d),
        Err(_) => filter,
    };
    let filter = with_span(EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(cli.command.default_log_filter())));
    // A devnet node's file keeps what a single node logs (`info`), whatever the terminal shows
    // under the devnet's panel; RUST_LOG sets both.
    let file_filter = with_span(EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new("info")));
    // Colours only for a terminal (a log file or a pipe gets plain text) and never under NO_COLOR.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    // The terminal's lines, and each devnet node's own file (`cairn devnet --dir`).
    let terminal = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    let logs = tracing_subscriber::registry().with(cairn::node_log::NodeLogFiles.with_filter(file_filter));
    if cli.log_format == cairn::cli::LogFormat::Json {
        logs.with(terminal.json().with_filter(filter)).init();
    } else {
        logs.with(terminal.with_filter(filter)).init();
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(cairn::cli::run(cli)) {
        eprintln!("error: {}", cairn::cli::one_line(&e));
        std::process::exit(1);
    }
}
