//! Per-node log files for nodes that share one process (`cairn devnet --dir DIR` writes node
//! K's lines to `DIR/nodeK/node.log` as well as to the terminal).
//!
//! [`NodeLogFiles`] is a tracing layer installed next to the terminal one: it finds the
//! node span (`node{node_name=…}`, see [`crate::node::SPAN_TARGET`]) an event belongs to and,
//! if a file was [`attach`]ed for that name, appends the line there. Without any file attached
//! it costs one atomic load per event.
//!
//! The file table is global because the subscriber is: tracing calls layers from every
//! thread, so the table sits behind a mutex (held for one buffered write; files are few:
//! one per devnet node).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

static FILES: OnceLock<Mutex<HashMap<String, std::fs::File>>> = OnceLock::new();
static ANY: AtomicBool = AtomicBool::new(false);

/// Appends the log lines of the node named `name` to `path` from now on (created if missing).
pub fn attach(name: &str, path: &Path) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    let files = FILES.get_or_init(Default::default);
    if let Ok(mut f) = files.lock() {
        f.insert(name.to_string(), file);
        ANY.store(true, Ordering::Relaxed);
    }
    Ok(())
}

/// The node name recorded on a node span.
struct NodeName(String);

/// The tracing layer that writes each node's lines to its attached file.
pub struct NodeLogFiles;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for NodeLogFiles {
    fn on_new_span(&self, attrs: &tracing::span::Attributes<'_>, id: &tracing::span::Id, ctx: Context<'_, S>) {
        if attrs.metadata().target() != crate::node::SPAN_TARGET {
            return;
        }
        let mut v = Fields::default();
        attrs.record(&mut v);
        if let (Some(name), Some(span)) = (v.node_name, ctx.span(id)) {
            span.extensions_mut().insert(NodeName(name));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if !ANY.load(Ordering::Relaxed) {
            return;
        }
        let Some(scope) = ctx.event_scope(event) else { return };
        let Some(name) = scope.from_root().find_map(|s| s.extensions().get::<NodeName>().map(|n| n.0.clone())) else { return };
        let Some(files) = FILES.get() else { return };
        let Ok(mut files) = files.lock() else { return };
        let Some(file) = files.get_mut(&name) else { return };
        let mut line = String::new();
        let _ = SystemTime.format_time(&mut tracing_subscriber::fmt::format::Writer::new(&mut line));
        let meta = event.metadata();
        let _ = write!(line, " {:>5} {}: ", meta.level(), meta.target());
        let mut v = Fields::default();
        event.record(&mut v);
        line.push_str(&v.message);
        line.push_str(&v.rest);
        line.push('\n');
        // A full disk or a removed file loses log lines, never the node.
        let _ = file.write_all(line.as_bytes());
    }
}

/// An event's message and other fields (`key=value`), or a node span's name.
#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
    node_name: Option<String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            "node_name" => self.node_name = Some(format!("{value:?}")),
            name => {
                let _ = write!(self.rest, " {name}={value:?}");
            }
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message.push_str(value),
            "node_name" => self.node_name = Some(value.to_string()),
            name => {
                let _ = write!(self.rest, " {name}={value}");
            }
        }
    }
}
