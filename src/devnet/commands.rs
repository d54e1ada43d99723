//! The commands a running devnet reads from stdin, one per line.

/// What `help` prints.
pub const HELP: &str = "\
commands (one per line):
  status                 every node in full: node ID, addresses, height, best hash, peers, mempool
  stop N                 stop node N (it flushes; its data dir and ports are kept)
  start N                restart stopped node N with the same data dir, key and ports
  add                    start a fresh node peered with the others; it syncs from them
  partition 1 / 2 3      split into groups ('/' between groups, unnamed nodes form one more
                         group); nodes in different groups disconnect and refuse each other
  heal                   end the partition and reconnect the groups
  help                   this list
  quit                   stop every node and exit (as Ctrl-C does)";

/// A parsed command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `help`.
    Help,
    /// `status`.
    Status,
    /// `stop N`.
    Stop(usize),
    /// `start N`.
    Start(usize),
    /// `add`.
    Add,
    /// `partition A B / C …`: the named groups, in order.
    Partition(Vec<Vec<usize>>),
    /// `heal`.
    Heal,
    /// `quit` (also `exit`).
    Quit,
}

/// Parses one line: `Ok(None)` for a blank line, `Err` with a one-line message for anything
/// else that is not a command.
pub fn parse(line: &str) -> Result<Option<Command>, String> {
    let line = line.trim();
    let (word, rest) = line.split_once(char::is_whitespace).map_or((line, ""), |(w, r)| (w, r.trim()));
    let none = |c: Command| if rest.is_empty() { Ok(Some(c)) } else { Err(format!("{word} takes no arguments")) };
    match word.to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "help" | "?" => none(Command::Help),
        "status" => none(Command::Status),
        "add" => none(Command::Add),
        "heal" => none(Command::Heal),
        "quit" | "exit" => none(Command::Quit),
        "stop" => node_number(word, rest).map(|n| Some(Command::Stop(n))),
        "start" => node_number(word, rest).map(|n| Some(Command::Start(n))),
        "partition" => groups(rest).map(|g| Some(Command::Partition(g))),
        _ => Err(format!("unknown command {word:?} (type help for the list)")),
    }
}

fn number(s: &str) -> Result<usize, String> {
    s.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| format!("{s:?} is not a node number"))
}

fn node_number(word: &str, rest: &str) -> Result<usize, String> {
    match rest.split_whitespace().collect::<Vec<_>>()[..] {
        [n] => number(n),
        _ => Err(format!("usage: {word} N")),
    }
}

/// `1 / 2 3` (or `1/2,3`): groups of node numbers split by `/`.
fn groups(rest: &str) -> Result<Vec<Vec<usize>>, String> {
    const USAGE: &str = "usage: partition 1 / 2 3  ('/' between groups)";
    if rest.is_empty() {
        return Err(USAGE.into());
    }
    rest.split('/')
        .map(|g| {
            let members = g.split(|c: char| c.is_whitespace() || c == ',').filter(|s| !s.is_empty()).map(number).collect::<Result<Vec<_>, _>>()?;
            if members.is_empty() { Err(format!("empty group: {USAGE}")) } else { Ok(members) }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(parse("  "), Ok(None));
        assert_eq!(parse("help"), Ok(Some(Command::Help)));
        assert_eq!(parse("STOP 2"), Ok(Some(Command::Stop(2))));
        assert_eq!(parse("start  3 "), Ok(Some(Command::Start(3))));
        assert_eq!(parse("add"), Ok(Some(Command::Add)));
        assert_eq!(parse("partition 1 / 2 3"), Ok(Some(Command::Partition(vec![vec![1], vec![2, 3]]))));
        assert_eq!(parse("partition 1/2,3/4"), Ok(Some(Command::Partition(vec![vec![1], vec![2, 3], vec![4]]))));
        assert_eq!(parse("heal"), Ok(Some(Command::Heal)));
        assert_eq!(parse("exit"), Ok(Some(Command::Quit)));
    }

    #[test]
    fn mistakes_are_one_line() {
        for bad in ["frobnicate", "stop", "stop x", "stop 0", "stop 1 2", "add 3", "partition", "partition 1 / / 2", "partition a / b"] {
            let e = parse(bad).unwrap_err();
            assert!(!e.contains('\n') && !e.is_empty(), "{bad}: {e}");
        }
        assert!(parse("frobnicate now").unwrap_err().contains("unknown command"));
    }
}
