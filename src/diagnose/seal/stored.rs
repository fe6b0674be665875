//! What the store says about its seals, read outside the barrier (the seal
//! config and the root key's envelopes are stored in the clear, holding
//! nothing secret): nothing is decrypted and nothing is written.

use std::path::Path;

use crate::config::{Config, PostgresConfig, StorageConfig};
use crate::seal::envelope::{Envelope, Purpose};
use crate::seal::set::EnvelopeSet;
use crate::storage::{FORMAT_VERSION, FileBackend, ROOT_KEY_PATH, SEAL_CONFIG_PATH, connect_once};

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

/// Reads the seal config and the root key's envelope of `config`'s storage,
/// read-only: nothing is created, locked or raised to a newer format.
pub async fn read(config: &Config) -> Stored {
    let entries = match &config.storage.value {
        StorageConfig::Inmem => {
            return Stored::Uninitialized("inmem storage starts empty at every start".into());
        }
        StorageConfig::File { path, .. } => file_entries(path),
        StorageConfig::Postgresql(pg) => postgres_entries(pg).await,
    };
    let (seal_config, root_key) = match entries {
        Ok(entries) => entries,
        Err(stored) => return stored,
    };
    let Some(seal_config) = seal_config else {
        return Stored::Uninitialized("the store is not initialized yet".into());
    };
    let Some((seal_type, cluster_id)) = seal_fields(&seal_config) else {
        return Stored::Unknown(format!(
            "{SEAL_CONFIG_PATH} is not a seal config this build reads"
        ));
    };
    let root = if seal_type == crate::seal::SHAMIR {
        Root::Shamir
    } else {
        match root_key {
            Some(blob) => envelope_keys(&blob),
            None => Root::Unreadable(format!("the store has no {ROOT_KEY_PATH}")),
        }
    };
    Stored::Initialized {
        seal_type,
        cluster_id,
        root,
    }
}

/// The seal config and root key, when the store can be read as it is.
type Entries = Result<(Option<Vec<u8>>, Option<Vec<u8>>), Stored>;

/// Whether a store of `found` format can be read as this build reads it.
fn format_readable(found: Option<u32>) -> Result<(), Stored> {
    match found {
        Some(FORMAT_VERSION) => Ok(()),
        Some(found) => Err(Stored::Unknown(format!(
            "the store has storage format {found}, not {FORMAT_VERSION}, the one this build reads; diagnose does not read its seal entries (the daemon raises an older format at its start)"
        ))),
        None => Err(Stored::Unknown(
            "the store records no storage format yet; diagnose does not read its seal entries (the daemon sets the format at its start)".into(),
        )),
    }
}

/// A file store's entries, read-only and without its lock.
fn file_entries(dir: &Path) -> Entries {
    if !FileBackend::holds_store(dir) {
        return Err(Stored::Uninitialized(format!(
            "{} holds no store yet",
            dir.display()
        )));
    }
    // A running daemon keeps the database open: ask it, not its files.
    if let Ok(Some(pid)) = FileBackend::lock_holder(dir) {
        return Err(Stored::Unknown(format!(
            "a running strongroom (pid {pid}) holds the store in {}; `strongroom status` names the key each seal wraps the root key with",
            dir.display()
        )));
    }
    let unknown = |e: crate::storage::OpenError| Stored::Unknown(e.to_string());
    format_readable(FileBackend::stored_format(dir).map_err(unknown)?)?;
    let seal_config = FileBackend::read_entry(dir, SEAL_CONFIG_PATH).map_err(unknown)?;
    let root_key = FileBackend::read_entry(dir, ROOT_KEY_PATH).map_err(unknown)?;
    Ok((seal_config, root_key))
}

/// A PostgreSQL store's entries, with plain SELECTs on one connection.
async fn postgres_entries(pg: &PostgresConfig) -> Entries {
    let client = connect_once(pg).await.map_err(Stored::Unknown)?;
    let plain = |e: tokio_postgres::Error| Stored::Unknown(crate::config::with_causes(&e));
    let (table, meta) = (&pg.table, format!("{}_meta", pg.table));
    // The names are checked identifiers (config/parse).
    let there: Option<String> = client
        .query_one(&format!("SELECT to_regclass('{meta}')::text"), &[])
        .await
        .map_err(plain)?
        .try_get(0)
        .map_err(plain)?;
    if there.is_none() {
        return Err(Stored::Uninitialized(format!(
            "table {meta} does not exist: no store yet"
        )));
    }
    let found: Option<i32> = client
        .query_opt(
            &format!("SELECT value FROM {meta} WHERE name = 'format_version'"),
            &[],
        )
        .await
        .map_err(plain)?
        .map(|row| row.try_get(0))
        .transpose()
        .map_err(plain)?;
    format_readable(found.and_then(|f| u32::try_from(f).ok()))?;
    let get = format!("SELECT value FROM {table} WHERE key = $1");
    let mut values = Vec::with_capacity(2);
    for key in [SEAL_CONFIG_PATH, ROOT_KEY_PATH] {
        let value: Option<Vec<u8>> = client
            .query_opt(&get, &[&key])
            .await
            .map_err(plain)?
            .map(|row| row.try_get(0))
            .transpose()
            .map_err(plain)?;
        values.push(value);
    }
    let root_key = values.pop().flatten();
    Ok((values.pop().flatten(), root_key))
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
    fn only_this_builds_format_is_read() {
        assert_eq!(format_readable(Some(FORMAT_VERSION)), Ok(()));
        for found in [Some(FORMAT_VERSION - 1), Some(FORMAT_VERSION + 1), None] {
            assert!(
                matches!(format_readable(found), Err(Stored::Unknown(_))),
                "{found:?}"
            );
        }
    }

    #[test]
    fn an_unreadable_envelope_says_why() {
        assert!(matches!(envelope_keys(&[9, 0]), Root::Unreadable(_)));
    }
}
