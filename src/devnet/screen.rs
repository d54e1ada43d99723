//! Where the devnet writes. On a terminal the status is a panel pinned to the top of the
//! screen, redrawn in place with ANSI escapes, while messages, logs and what the user types
//! scroll in the region below it. Otherwise (a pipe, a file, `TERM=dumb`) the status is one
//! plain line a second.
//!
//! Only the runner writes here (logs go to stderr by themselves), so nothing interleaves
//! within a redraw except a log line, which lands in the scroll region.
//!
//! The runner never blocks on its output: writes go through a bounded queue to one writer
//! thread, and whatever does not fit (stdout is a pipe nobody reads, a paused pager) is
//! dropped, so Ctrl-C and the commands keep working. [`drain`] waits, for a bounded time, for
//! the last lines at exit.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

/// Writes queued for the output thread before new ones are dropped.
const QUEUED_WRITES: usize = 256;

enum Output {
    Out(Vec<u8>),
    Err(Vec<u8>),
    /// Answers once everything before it is written.
    Flushed(SyncSender<()>),
}

fn writer() -> &'static SyncSender<Output> {
    static WRITER: OnceLock<SyncSender<Output>> = OnceLock::new();
    WRITER.get_or_init(|| {
        let (tx, rx) = sync_channel::<Output>(QUEUED_WRITES);
        let run = move |rx: Receiver<Output>| {
            for w in rx {
                match w {
                    Output::Out(b) => {
                        let mut out = std::io::stdout().lock();
                        let _ = out.write_all(&b);
                        let _ = out.flush();
                    }
                    Output::Err(b) => {
                        let _ = std::io::stderr().lock().write_all(&b);
                    }
                    Output::Flushed(ack) => {
                        let _ = ack.send(());
                    }
                }
            }
        };
        if let Err(e) = std::thread::Builder::new().name("devnet-output".into()).spawn(move || run(rx)) {
            tracing::warn!(target: "devnet", "no output thread ({e}); the devnet's output is lost");
        }
        tx
    })
}

/// Queues a write; dropped if the queue is full (the reader is not keeping up).
fn emit(w: Output) {
    if let Err(TrySendError::Full(_)) = writer().try_send(w) {
        // Dropped: the alternative is a runner stuck on a pipe nobody reads.
    }
}

/// Waits up to `limit` for every queued write to reach stdout/stderr (at exit).
pub fn drain(limit: Duration) {
    let deadline = Instant::now() + limit;
    let (ack, done) = sync_channel(1);
    let mut w = Output::Flushed(ack);
    loop {
        match writer().try_send(w) {
            Ok(()) => break,
            Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                w = back;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => return,
        }
    }
    let _ = done.recv_timeout(deadline.saturating_duration_since(Instant::now()));
}

/// Lines kept for the scroll region below the panel, however many nodes there are.
const MIN_SCROLL_ROWS: usize = 3;

/// The output mode.
pub enum Screen {
    /// Plain lines.
    Plain,
    /// A panel redrawn in place; `height` rows (0 before the first draw) on a terminal of
    /// `rows` rows.
    Live {
        /// Panel rows drawn last time.
        height: usize,
        /// Terminal rows last time.
        rows: usize,
    },
}

impl Screen {
    /// A live panel when stdout is a terminal that understands ANSI, else plain lines.
    pub fn detect() -> Screen {
        let dumb = std::env::var_os("TERM").is_none_or(|t| t == "dumb");
        if std::io::stdout().is_terminal() && !dumb { Screen::Live { height: 0, rows: 0 } } else { Screen::Plain }
    }

    /// A message (may span lines).
    pub fn say(&mut self, text: &str) {
        emit(Output::Out(format!("{text}\n").into_bytes()));
    }

    /// A one-line error; the devnet keeps running.
    pub fn error(&mut self, text: &str) {
        emit(Output::Err(format!("error: {text}\n").into_bytes()));
    }

    /// Shows the status: redraws `panel` in place, or prints `line`.
    pub fn status(&mut self, panel: &[String], line: &str) {
        match self {
            Screen::Plain => self.say(line),
            Screen::Live { height, rows } => {
                let (term_rows, cols) = terminal_size().unwrap_or((24, 80));
                let shown = panel.len().min(term_rows.saturating_sub(MIN_SCROLL_ROWS)).max(1);
                let mut out = String::new();
                if *height == 0 {
                    out.push_str("\x1b[2J"); // first draw: a clean screen
                }
                if shown != *height || term_rows != *rows {
                    // Scroll region below the panel (this homes the cursor: park it at the
                    // bottom, where new lines appear as in a plain terminal).
                    let _ = write!(out, "\x1b[{};{term_rows}r\x1b[{term_rows};1H", shown + 1);
                    (*height, *rows) = (shown, term_rows);
                }
                out.push_str("\x1b7"); // save the cursor (the user may be typing)
                for (i, l) in panel.iter().take(shown).enumerate() {
                    let clipped: String = l.chars().take(cols).collect();
                    let _ = write!(out, "\x1b[{};1H{clipped}\x1b[K", i + 1);
                }
                out.push_str("\x1b8");
                emit(Output::Out(out.into_bytes()));
            }
        }
    }

    /// Gives the terminal back: the whole screen scrolls again.
    pub fn close(&mut self) {
        if let Screen::Live { height, rows } = self
            && *height > 0
        {
            emit(Output::Out(format!("\x1b[r\x1b[{rows};1H\n").into_bytes()));
            *height = 0;
        }
    }
}

/// Columns of the terminal on stdout (200 when it is not one: nothing is cut).
pub fn width() -> usize {
    terminal_size().map_or(200, |(_, cols)| cols)
}

/// (rows, columns) of the terminal on stdout.
fn terminal_size() -> Option<(usize, usize)> {
    let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one `winsize` through the pointer, which is valid for the
    // call; stdout stays open for the process's life.
    let r = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_row > 0 && ws.ws_col > 0).then(|| (usize::from(ws.ws_row), usize::from(ws.ws_col)))
}
