//! Physical storage: an async key/value interface with atomic multi-entry writes.
//!
//! Backends know nothing of encryption; the barrier sits above them. Every
//! change that touches several entries (init, and later rekey, rotation and
//! migration) is one [`Batch`], which a backend applies entirely or not at all.

#[cfg(feature = "failpoints")]
pub mod failpoint;
mod file;
mod inmem;
pub mod migrate;
mod postgres;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

pub use file::{FORMAT_VERSION, FileBackend, LOCK_FILE};
pub use inmem::InmemBackend;
/// A TLS client verifier that accepts any server certificate (signatures
/// still checked): PostgreSQL's `sslmode=require`, and diagnose's health
/// question to a running daemon.
pub use postgres::Unverified as UnverifiedServer;
pub use postgres::{
    Change, DEFAULT_LEASE_TTL, Election, Identity, PostgresBackend, Renewal, Term, connect_once,
    fence_sql, listen,
};

use crate::config::StorageConfig;

/// Where the lifecycle keeps the seal config, outside the barrier; here so
/// that `diagnose`, which may not import the lifecycle, reads the same path.
pub const SEAL_CONFIG_PATH: &str = "core/seal-config";
/// Where the lifecycle keeps the root key (Shamir-encrypted, or KMS
/// envelopes), outside the barrier; shared as [`SEAL_CONFIG_PATH`] is.
pub const ROOT_KEY_PATH: &str = "core/root-key";
use crate::error::Error;

/// One change inside a [`Batch`].
#[derive(Clone, PartialEq, Eq)]
pub enum Op {
    /// Write `value` at `key`, replacing what was there.
    Put {
        /// Storage key (a logical path such as `core/keyring`).
        key: String,
        /// Bytes to store.
        value: Vec<u8>,
    },
    /// Remove `key`; removing a missing key is not an error.
    Delete {
        /// Storage key.
        key: String,
    },
    /// Fail the whole batch with [`StorageError::Conflict`] if `key` exists.
    RequireAbsent {
        /// Storage key.
        key: String,
    },
    /// Remove every entry (a snapshot restore clears the store, then puts
    /// the snapshot's entries, in one batch).
    Clear,
}

/// A group of changes applied atomically: after a crash either all of them
/// are visible or none is.
#[derive(Clone, Default)]
pub struct Batch {
    ops: Vec<Op>,
    /// Made by [`Batch::first_write`].
    first: bool,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a write.
    pub fn put(&mut self, key: impl Into<String>, value: Vec<u8>) -> &mut Self {
        self.ops.push(Op::Put {
            key: key.into(),
            value,
        });
        self
    }

    /// Adds a removal.
    pub fn delete(&mut self, key: impl Into<String>) -> &mut Self {
        self.ops.push(Op::Delete { key: key.into() });
        self
    }

    /// Removes every entry; later operations of the batch apply after it.
    pub fn clear(&mut self) -> &mut Self {
        self.ops.push(Op::Clear);
        self
    }

    /// Makes the batch conditional on `key` not existing yet.
    pub fn require_absent(&mut self, key: impl Into<String>) -> &mut Self {
        self.ops.push(Op::RequireAbsent { key: key.into() });
        self
    }

    /// Makes this the store's first write (init's), conditional on `key`,
    /// which every initialized store holds, not existing yet. With HA it
    /// may be written by a node that holds no term, since no node can be
    /// active before it: every other write of a node without a term is
    /// refused ([`StorageError::NotActive`]).
    pub fn first_write(&mut self, key: impl Into<String>) -> &mut Self {
        self.first = true;
        self.require_absent(key)
    }

    /// Whether this is the store's first write ([`Batch::first_write`]).
    pub fn is_first_write(&self) -> bool {
        self.first
    }

    /// The changes, in order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// True when the batch has no changes.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A [`Op::RequireAbsent`] precondition did not hold; nothing was written.
    #[error("storage key {0} already exists")]
    Conflict(String),
    /// The backend failed (I/O error, corrupt file, a table of the wrong shape).
    #[error("storage failed: {0}")]
    Backend(String),
    /// The database cannot be reached now (down, restarting, the network);
    /// nothing was written. A retry later may succeed.
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    /// The HA fence refused the write: another node took a newer term.
    /// Nothing was written; not retried.
    #[error("this node is no longer the active node; the write was not made")]
    NotActive,
    /// The connection failed at or after COMMIT: the write may have
    /// committed (within this node's term) or not.
    #[error("the write may or may not have been made; read it back ({0})")]
    OutcomeUnknown(String),
}

impl From<StorageError> for Error {
    fn from(err: StorageError) -> Self {
        match err {
            StorageError::NotActive | StorageError::Unavailable(_) => {
                Error::Unavailable(err.to_string())
            }
            _ => Error::Internal(err.to_string()),
        }
    }
}

/// Why a backend could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another process holds the directory lock.
    #[error("storage directory {path} is in use by another strongroom process (pid {pid})")]
    Locked {
        /// The storage directory.
        path: PathBuf,
        /// The process holding the lock, as it recorded itself.
        pid: String,
    },
    /// The data was written by a newer strongroom.
    #[error(
        "storage at {path} was written by a newer strongroom (storage format {found}; this build reads format {supported} and older)"
    )]
    NewerFormat {
        /// The data file.
        path: PathBuf,
        /// Format version found on disk.
        found: u32,
        /// Newest format this build understands.
        supported: u32,
    },
    /// The PostgreSQL database could not be used (unreachable, refused,
    /// missing tables, a newer format).
    #[error("cannot open storage in PostgreSQL at {target}: {reason}")]
    Database {
        /// The connection URL, password redacted.
        target: String,
        /// What went wrong, one sentence.
        reason: String,
    },
    /// The store was not closed cleanly (a crash, a kill, a power loss):
    /// it can only be opened for writing, which repairs it. Read-only
    /// readers (`strongroom diagnose`) get this instead of redb's error.
    #[error(
        "the store at {path} was not closed cleanly (its process stopped without closing it); the daemon repairs it when it next opens it"
    )]
    NotClosedCleanly {
        /// The data file.
        path: PathBuf,
    },
    /// The directory or database could not be opened.
    #[error("cannot open storage at {path}: {reason}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// A storage backend.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The backend's name as Status reports it (`file`, `inmem`, `postgresql`).
    fn kind(&self) -> &'static str;

    /// Reads one entry.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError>;

    /// Every key that starts with `prefix`, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError>;

    /// Applies `batch` atomically and durably.
    async fn write(&self, batch: Batch) -> Result<(), StorageError>;

    /// Every entry, sorted by key, as of one instant (a consistent view even
    /// while writes continue): what a snapshot holds.
    async fn export(&self) -> Result<Vec<(String, Vec<u8>)>, StorageError>;
}

/// Opens the backend the config names.
pub async fn open(config: &StorageConfig) -> Result<Arc<dyn Backend>, OpenError> {
    Ok(match config {
        StorageConfig::Postgresql(pg) => Arc::new(PostgresBackend::open(pg).await?),
        StorageConfig::Inmem => Arc::new(InmemBackend::new()),
        StorageConfig::File { path, cache_size } => {
            Arc::new(FileBackend::open_with_cache(path, *cache_size)?)
        }
    })
}

pub mod contract {
    //! Behaviour every backend must have: the unit tests run it against
    //! the file and in-memory backends, the integration tests against
    //! PostgreSQL (so it is public; nothing in the daemon calls it).

    use super::*;

    /// Panics at the first behaviour `backend` gets wrong.
    #[allow(clippy::unwrap_used)]
    pub async fn check(backend: &dyn Backend) {
        assert_eq!(backend.get("a").await.unwrap(), None);

        let mut batch = Batch::new();
        batch
            .put("core/a", b"1".to_vec())
            .put("core/b", b"2".to_vec())
            .put("kv/x", b"3".to_vec());
        backend.write(batch).await.unwrap();
        assert_eq!(
            backend.get("core/a").await.unwrap().as_deref(),
            Some(&b"1"[..])
        );
        assert_eq!(
            backend.list("core/").await.unwrap(),
            vec!["core/a", "core/b"]
        );
        assert_eq!(backend.list("").await.unwrap().len(), 3);

        // A failed precondition writes nothing, not even the ops before it.
        let mut batch = Batch::new();
        batch
            .put("core/c", b"new".to_vec())
            .require_absent("core/a");
        assert!(
            matches!(backend.write(batch).await, Err(StorageError::Conflict(k)) if k == "core/a")
        );
        assert_eq!(backend.get("core/c").await.unwrap(), None);

        let mut batch = Batch::new();
        batch
            .delete("core/a")
            .delete("missing")
            .put("core/b", b"22".to_vec());
        backend.write(batch).await.unwrap();
        assert_eq!(backend.get("core/a").await.unwrap(), None);
        assert_eq!(
            backend.get("core/b").await.unwrap().as_deref(),
            Some(&b"22"[..])
        );

        assert_eq!(
            backend.export().await.unwrap(),
            vec![
                ("core/b".to_string(), b"22".to_vec()),
                ("kv/x".to_string(), b"3".to_vec())
            ]
        );
        // Clear, then puts: the store holds exactly the puts.
        let mut batch = Batch::new();
        batch.clear().put("snap/1", b"s".to_vec());
        backend.write(batch).await.unwrap();
        assert_eq!(
            backend.export().await.unwrap(),
            vec![("snap/1".to_string(), b"s".to_vec())]
        );
    }
}
