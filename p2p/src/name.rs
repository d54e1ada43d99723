//! A node's human-readable name (`--name alice`): a label for people, shown in `/status`,
//! in peers' `/p2p/peers`, in the mDNS TXT records and in log lines. It proves nothing and is
//! not unique; the node ID is the identity.
//!
//! On the wire it is not a `Hello` field (the `Hello` encoding is fixed): the `user_agent`
//! carries it as a BIP14-style comment, `cairn/0.1.0 (alice)` ([`user_agent`]), and a peer's
//! name is read back from there ([`from_user_agent`]).

/// Longest name, in characters (all ASCII, so also bytes).
pub const MAX_NAME_LEN: usize = 32;

/// Why a name is not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The empty string.
    #[error("empty node name")]
    Empty,
    /// More than [`MAX_NAME_LEN`] characters.
    #[error("node name of {0} characters: at most {MAX_NAME_LEN}")]
    TooLong(usize),
    /// A character outside `[A-Za-z0-9._-]`.
    #[error("node name {0:?}: only letters, digits, '.', '_' and '-' are allowed")]
    BadCharacter(String),
}

/// Checks a node name: 1 to [`MAX_NAME_LEN`] characters of `[A-Za-z0-9._-]`.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    let len = name.chars().count();
    if len == 0 {
        Err(NameError::Empty)
    } else if len > MAX_NAME_LEN {
        Err(NameError::TooLong(len))
    } else if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        Err(NameError::BadCharacter(name.chars().take(MAX_NAME_LEN + 8).collect()))
    } else {
        Ok(())
    }
}

/// This build's user agent: `cairn/VERSION`, with the node's name as a trailing comment
/// when it has one (`cairn/0.1.0 (alice)`).
pub fn user_agent(name: Option<&str>) -> String {
    let base = format!("cairn/{}", env!("CARGO_PKG_VERSION"));
    match name {
        Some(n) => format!("{base} ({n})"),
        None => base,
    }
}

/// A peer's name from its user agent: the text inside a trailing ` (...)`, if it is a valid
/// name ([`validate_name`]); anything else is no name, never an error.
pub fn from_user_agent(user_agent: &str) -> Option<String> {
    let inner = user_agent.strip_suffix(')')?;
    let (_, name) = inner.rsplit_once(" (")?;
    validate_name(name).ok()?;
    Some(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_and_plain() {
        for ok in ["alice", "node1", "a", "A.b_c-9", &"x".repeat(32)] {
            assert_eq!(validate_name(ok), Ok(()), "{ok}");
        }
        assert_eq!(validate_name(""), Err(NameError::Empty));
        assert_eq!(validate_name(&"x".repeat(33)), Err(NameError::TooLong(33)));
        for bad in ["bad name!", "a b", "a/b", "(x)", "é", "a\n", "ali\u{0}ce", "naïve"] {
            assert!(matches!(validate_name(bad), Err(NameError::BadCharacter(_))), "{bad:?}");
        }
        // A long name of multibyte characters is refused by its length in characters.
        assert_eq!(validate_name(&"é".repeat(40)), Err(NameError::TooLong(40)));
    }

    #[test]
    fn the_name_rides_in_the_user_agent() {
        let v = env!("CARGO_PKG_VERSION");
        assert_eq!(user_agent(None), format!("cairn/{v}"));
        assert_eq!(user_agent(Some("alice")), format!("cairn/{v} (alice)"));
        assert_eq!(from_user_agent(&user_agent(Some("alice"))).as_deref(), Some("alice"));
        assert_eq!(from_user_agent(&user_agent(None)), None);
        assert_eq!(from_user_agent("other/2.0 (linux) (bob.2)").as_deref(), Some("bob.2"), "the last comment");
        for junk in ["", "cairn/0.1.0", "(alice)", "cairn/0.1.0 ()", "cairn/0.1.0 (bad name!)", "cairn/0.1.0 (alice", "cairn/0.1.0 (alice) ", "x (é)"] {
            assert_eq!(from_user_agent(junk), None, "{junk:?}");
        }
        assert_eq!(from_user_agent(&format!("x ({})", "a".repeat(33))), None);
    }
}
