//! `cairn devnet`: wires stdin and signals to [`crate::devnet::run`].

use std::io::{BufRead, IsTerminal, Read};

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::DevnetArgs;
use crate::devnet::DevnetOptions;

/// Command lines queued before the reader waits for the devnet to take them.
const COMMAND_QUEUE: usize = 16;
/// Longest command line read; a longer one is refused whole.
const MAX_LINE: usize = 1024;

pub async fn run(a: DevnetArgs) -> anyhow::Result<()> {
    let opts =
        DevnetOptions { nodes: a.nodes, farm: a.farm, tx_rate: a.tx_rate, chain: a.chain, block_time_ms: a.block_time, dir: a.dir, base_port: a.base_port };
    opts.validate()?;
    // Handlers first: a Ctrl-C while the nodes start is kept and acted on once they run.
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let stop = CancellationToken::new();
    let stopper = stop.clone();
    let signals = tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        eprintln!("stopping the devnet (Ctrl-C again to exit at once)");
        stopper.cancel();
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        eprintln!("error: interrupted twice; exiting without a clean shutdown");
        std::process::exit(130);
    });
    let lines = read_stdin()?;
    let result = crate::devnet::run(opts, lines, stop).await;
    signals.abort();
    // The last lines reach the terminal (unless nobody reads it: then exit anyway).
    let _ = tokio::task::spawn_blocking(|| crate::devnet::screen::drain(std::time::Duration::from_secs(2))).await;
    Ok(result?)
}

/// Reads stdin lines on a thread of its own (a blocking read on the runtime's blocking pool
/// could not be cancelled and would hold up exit). EOF closes the channel: the devnet keeps
/// running without commands. On a terminal the line is edited with rustyline (arrows, history).
fn read_stdin() -> anyhow::Result<mpsc::Receiver<String>> {
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        std::thread::Builder::new().name("devnet-prompt".into()).spawn(move || edit_lines(tx)).context("starting the prompt")?;
        return Ok(rx);
    }
    std::thread::Builder::new()
        .name("devnet-stdin".into())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match (&mut stdin).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if buf.len() > MAX_LINE {
                    // Skip the rest of the line.
                    while !buf.ends_with(b"\n") {
                        buf.clear();
                        match (&mut stdin).take(MAX_LINE as u64).read_until(b'\n', &mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                    }
                    eprintln!("error: command line longer than {MAX_LINE} bytes, ignored");
                    continue;
                }
                if tx.blocking_send(String::from_utf8_lossy(&buf).into_owned()).is_err() {
                    return;
                }
            }
        })
        .context("starting the stdin reader")?;
    Ok(rx)
}

/// The prompt on a terminal: line editing and an in-memory history. The terminal is in raw
/// mode while a line is edited, so Ctrl-C arrives as a key, not a signal: it is raised as
/// SIGINT, which stops the devnet as the signal would.
fn edit_lines(tx: mpsc::Sender<String>) {
    use rustyline::error::ReadlineError;
    let Ok(mut editor) = rustyline::DefaultEditor::new() else {
        eprintln!("error: no line editor on this terminal; commands are not read");
        return;
    };
    loop {
        match editor.readline("") {
            Ok(line) if line.len() > MAX_LINE => eprintln!("error: command line longer than {MAX_LINE} bytes, ignored"),
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                if tx.blocking_send(line).is_err() {
                    return;
                }
            }
            Err(ReadlineError::Interrupted) => {
                // SAFETY: raise(3) sends a signal to this process; the tokio handler takes it.
                unsafe { libc::raise(libc::SIGINT) };
            }
            Err(_) => return, // Ctrl-D, or the terminal went away
        }
    }
}
