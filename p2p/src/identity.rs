//! The node's long-lived ed25519 identity: created on first start in the data directory with
//! owner-only permissions; the node ID is its public key.

use std::io::Write;
use std::path::{Path, PathBuf};

use cairn_chain::Keypair;
use cairn_chain::keys::PublicKey;

/// A node ID: the node's ed25519 public key (lowercase hex outside the wire).
pub type NodeId = PublicKey;

/// File name of the node key inside the data directory.
pub const KEY_FILE: &str = "node.key";

/// Why the node key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Reading or writing the key file failed.
    #[error("node key {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The key file does not hold a key.
    #[error("node key {0}: not 64 hex characters (delete it to make a new identity)")]
    Malformed(PathBuf),
}

/// The node's key pair.
#[derive(Clone)]
pub struct NodeIdentity {
    key: Keypair,
}

impl NodeIdentity {
    /// Loads `dir/node.key`, creating it (mode 0600) if absent.
    pub fn load_or_create(dir: &Path) -> Result<NodeIdentity, IdentityError> {
        let path = dir.join(KEY_FILE);
        let io = |source| IdentityError::Io { path: path.clone(), source };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mut seed = [0u8; 32];
                hex::decode_to_slice(text.trim(), &mut seed).map_err(|_| IdentityError::Malformed(path.clone()))?;
                Ok(NodeIdentity { key: Keypair::from_seed(seed) })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Keypair::generate();
                write_secret(&path, &hex::encode(key.seed())).map_err(io)?;
                Ok(NodeIdentity { key })
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The node ID.
    pub fn node_id(&self) -> NodeId {
        self.key.public()
    }

    /// The key pair (the transport derives its certificate from it).
    pub fn keypair(&self) -> &Keypair {
        &self.key
    }
}

/// Writes `contents` to a new file readable only by its owner.
pub fn write_secret(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_created_owner_only_and_reloaded() {
        let dir = std::env::temp_dir().join(format!("cairn-id-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = NodeIdentity::load_or_create(&dir).unwrap();
        let b = NodeIdentity::load_or_create(&dir).unwrap();
        assert_eq!(a.node_id(), b.node_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
