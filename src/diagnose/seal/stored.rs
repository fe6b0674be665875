//! What the store says about its seals, read outside the barrier (the seal
//! config and the root key's envelopes are stored in the clear, holding
//! nothing secret): nothing is decrypted and nothing is written.

use std::sync::Arc;

use crate::config::{Config, StorageConfig};
use crate::seal::envelope::{Envelope, Purpose};
use crate::seal::set::EnvelopeSet;
use crate::storage::{Backend, FileBackend, OpenError, PostgresBackend};

/// Where the lifecycle keeps the seal config and the root key's envelope
/// (src/lifecycle/seal_config.rs; diagnose may not import the lifecycle).
const SEAL_CONFIG_PATH: &str = "core/seal-config";
const ROOT_KEY_PATH: &str = "core/root-key";

/// The file store's lock file (src/storage/file.rs).
const LOCK_FILE: &str = "strongroom.lock";

/// The page cache diagnose opens a file store with: it reads two entries.
const CACHE_SIZE: usize = 1024 * 1024;

/// What the store holds about its seals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Not initialized yet: init wraps the root key with the configured
    /// seals. The sentence says why diagnose thinks so.
    Uninitialized(String),
    /// Not known: the store could not be read (a running daemon holds it,
    /// say). The sentence says why.
    Unknown(String),
    /// Initialized.
    Initialized {
        /// The seal type init or the last migration recorded: `shamir`,
        /// `awskms` or `multiseal`.
        seal_type: String,
        /// The store's cluster id (in every KMS encryption context).
        cluster_id: String,
        /// Who wraps the root key.
        root: Root,
    },
}

/// Which KMS keys wrap the stored root key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// Shamir: the unseal key encrypts it, no KMS.
    Shamir,
    /// One seal's envelope, naming its key's ARN.
    One(String),
    /// Several seals' envelopes: each seal's name and key ARN.
    Several(Vec<(String, String)>),
    /// The envelope does not parse: the sentence says why.
    Unreadable(String),
}

impl Stored {
    /// The store's cluster id, once initialized.
    pub fn cluster_id(&self) -> Option<&str> {
        match self {
            Self::Initialized { cluster_id, .. } => Some(cluster_id),
            _ => None,
        }
    }
}

/// Reads the seal config and the root key's envelope of `config`'s storage.
pub async fn read(config: &Config) -> Stored {
    let backend: Arc<dyn Backend> = match &config.storage.value {
        StorageConfig::Inmem => {
            return Stored::Uninitialized("inmem storage starts empty at every start".into());
        }
        StorageConfig::File { path, .. } => {
            if !FileBackend::holds_store(path) {
                return Stored::Uninitialized(format!("{} holds no store yet", path.display()));
            }
            // Opening creates a missing lock file: as root, that file would
            // then be root's, and the daemon's own user could not lock it.
            if nix::unistd::geteuid().is_root() && !path.join(LOCK_FILE).exists() {
                return Stored::Unknown(format!(
                    "{} has no {LOCK_FILE}; diagnose, running as root, does not create it",
                    path.display()
                ));
            }
            match FileBackend::open_with_cache(path, CACHE_SIZE) {
                Ok(backend) => Arc::new(backend),
                Err(OpenError::Locked { pid, .. }) => {
                    return Stored::Unknown(format!(
                        "a running strongroom (pid {pid}) holds the store in {}; `strongroom status` names the key each seal wraps the root key with",
                        path.display()
                    ));
                }
                Err(e) => return Stored::Unknown(e.to_string()),
            }
        }
        StorageConfig::Postgresql(pg) => {
            let mut pg = pg.clone();
            // Diagnose creates nothing: missing tables mean no store yet.
            pg.skip_create_table = true;
            match PostgresBackend::open(&pg).await {
                Ok(backend) => Arc::new(backend),
                Err(e) => return Stored::Unknown(e.to_string()),
            }
        }
    };
    let seal_config = match backend.get(SEAL_CONFIG_PATH).await {
        Ok(Some(blob)) => blob,
        Ok(None) => return Stored::Uninitialized("the store is not initialized yet".into()),
        Err(e) => return Stored::Unknown(format!("{SEAL_CONFIG_PATH} cannot be read: {e}")),
    };
    let Some((seal_type, cluster_id)) = seal_fields(&seal_config) else {
        return Stored::Unknown(format!(
            "{SEAL_CONFIG_PATH} is not a seal config this build reads"
        ));
    };
    let root = if seal_type == crate::seal::SHAMIR {
        Root::Shamir
    } else {
        match backend.get(ROOT_KEY_PATH).await {
            Ok(Some(blob)) => envelope_keys(&blob),
            Ok(None) => Root::Unreadable(format!("the store has no {ROOT_KEY_PATH}")),
            Err(e) => Root::Unreadable(format!("{ROOT_KEY_PATH} cannot be read: {e}")),
        }
    };
    Stored::Initialized {
        seal_type,
        cluster_id,
        root,
    }
}

/// The seal type and cluster id of a stored seal config (JSON).
fn seal_fields(blob: &[u8]) -> Option<(String, String)> {
    let value: serde_json::Value = serde_json::from_slice(blob).ok()?;
    Some((
        value.get("type")?.as_str()?.to_string(),
        value.get("cluster_id")?.as_str()?.to_string(),
    ))
}

/// The key ARNs a stored root-key blob names: a set of several seals'
/// envelopes, or one seal's envelope.
fn envelope_keys(blob: &[u8]) -> Root {
    if let Ok(set) = EnvelopeSet::decode(Purpose::RootKey, blob) {
        let seals = set
            .seals()
            .filter_map(|name| Some((name.to_string(), set.get(name)?.key_arn.clone())))
            .collect();
        return Root::Several(seals);
    }
    match Envelope::decode(Purpose::RootKey, blob) {
        Ok(envelope) => Root::One(envelope.key_arn),
        Err(e) => Root::Unreadable(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seal_config_gives_its_type_and_cluster_id() {
        let blob =
            br#"{"format_version": 2, "type": "awskms", "cluster_id": "c-1", "secret_shares": 5}"#;
        assert_eq!(
            seal_fields(blob),
            Some(("awskms".to_string(), "c-1".to_string()))
        );
        assert_eq!(seal_fields(b"not json"), None);
        assert_eq!(seal_fields(br#"{"type": 3}"#), None);
    }

    #[test]
    fn an_unreadable_envelope_says_why() {
        assert!(matches!(envelope_keys(&[9, 0]), Root::Unreadable(_)));
    }
}
