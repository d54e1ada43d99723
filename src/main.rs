//! The `cairn` binary: parses arguments, sets up logging, runs the command.

use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() {
    let cli = match cairn::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => cairn::cli::exit_on_parse_error(e),
    };
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(cli.command.default_log_filter()));
    // The node's span (its name on every line) whatever RUST_LOG selects.
    let filter = match format!("{}=error", cairn::node::SPAN_TARGET).parse::<tracing_subscriber::filter::Directive>() {
        Ok(d) => filter.add_directive(d),
        Err(_) => filter,
    };
    // Colours only for a terminal (a log file or a pipe gets plain text) and never under NO_COLOR.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if cli.log_format == cairn::cli::LogFormat::Json {
        logs.json().init();
    } else {
        logs.init();
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
