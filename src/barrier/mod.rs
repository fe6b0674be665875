//! The barrier: every entry above the seal passes through it, encrypted with
//! the keyring's active term on the way down and decrypted by its own term on
//! the way up.
//!
//! A [`Barrier`] exists only while the daemon is unsealed; sealing drops it,
//! and with it the root key and the keyring, whose memory is zeroed.

pub mod entry;
mod hooks;
pub mod keyring;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use entry::EntryError;
pub use hooks::Hooks;
pub use keyring::{Keyring, KeyringError};

use crate::error::Error;
use crate::metrics;
use crate::secret::{SecretBytes, SecretKey};
use crate::storage::{Backend, Batch, StorageError};

/// Where the keyring is stored, encrypted by the root key.
pub const KEYRING_PATH: &str = "core/keyring";
/// Where the encryption counts of the keyring's terms are stored (through the
/// barrier). The active term's count is a reservation: the stored number is
/// at least the encryptions made, so a crash can only overcount.
pub const USAGE_PATH: &str = "core/keyring-usage";

/// One term as `key-status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermUsage {
    /// The term number.
    pub term: u32,
    /// When it was installed, Unix seconds.
    pub installed_unix: u64,
    /// Encryptions made under it (the active term: so far).
    pub encryptions: u64,
    /// It encrypts new writes.
    pub active: bool,
}

/// The stored form of [`USAGE_PATH`]: encryptions per term.
#[derive(Default, Serialize, Deserialize)]
struct Usage {
    terms: BTreeMap<u32, u64>,
}

/// Why a barrier operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BarrierError {
    /// The storage below failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// An entry did not decrypt.
    #[error("entry {path}: {source}")]
    Entry {
        /// The entry's path.
        path: String,
        /// Why.
        source: EntryError,
    },
    /// An entry names a term the keyring does not have.
    #[error("entry {path} is encrypted with term {term}, which the keyring does not have")]
    UnknownTerm {
        /// The entry's path.
        path: String,
        /// The term in its header.
        term: u32,
    },
    /// The keyring decrypted but could not be decoded.
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    /// There is no keyring in storage.
    #[error("storage has no keyring at {KEYRING_PATH}")]
    MissingKeyring,
    /// The stored encryption counts could not be decoded.
    #[error("the keyring usage record at {USAGE_PATH} is damaged: {0}")]
    Usage(String),
}

impl From<BarrierError> for Error {
    fn from(err: BarrierError) -> Self {
        match err {
            BarrierError::Storage(e) => e.into(),
            other => Error::Internal(format!("stored data could not be read: {other}")),
        }
    }
}

/// The unsealed barrier: the root key, the keyring, and the storage they guard.
pub struct Barrier {
    storage: Arc<dyn Backend>,
    root_key: SecretKey,
    keyring: Keyring,
    /// Encryptions under the active term. Shared by every `Barrier` value
    /// with this keyring (a new root key keeps the count going).
    encryptions: Arc<AtomicU64>,
    /// Final encryption counts of the earlier terms.
    retired: BTreeMap<u32, u64>,
}

impl Barrier {
    /// A barrier over `storage` with keys in hand (at init).
    pub fn new(storage: Arc<dyn Backend>, root_key: SecretKey, keyring: Keyring) -> Self {
        Self {
            storage,
            root_key,
            keyring,
            encryptions: Arc::new(AtomicU64::new(0)),
            retired: BTreeMap::new(),
        }
    }

    /// Reads the keyring from storage and opens it with the root key; the
    /// active term's count resumes from its stored reservation.
    pub async fn unlock(
        storage: Arc<dyn Backend>,
        root_key: SecretKey,
    ) -> Result<Self, BarrierError> {
        let sealed = storage
            .get(KEYRING_PATH)
            .await?
            .ok_or(BarrierError::MissingKeyring)?;
        let keyring = open_keyring(&root_key, &sealed)?;
        let mut barrier = Self::new(storage, root_key, keyring);
        if let Some(stored) = barrier.get(USAGE_PATH).await? {
            let mut usage: Usage = serde_json::from_slice(stored.expose())
                .map_err(|e| BarrierError::Usage(e.to_string()))?;
            let active = barrier.keyring.active().0;
            let count = usage.terms.remove(&active).unwrap_or(0);
            barrier.encryptions.fetch_add(count, Ordering::Relaxed);
            barrier.retired = usage.terms;
        }
        Ok(barrier)
    }

    /// The root key, for wrapping it again under a new seal key.
    pub fn root_key(&self) -> &SecretKey {
        &self.root_key
    }

    /// The keyring encrypted by the root key, for storage at [`KEYRING_PATH`].
    pub fn sealed_keyring(&self) -> Vec<u8> {
        entry::seal(
            &self.root_key,
            entry::TERM_KEY_ENCRYPTION,
            KEYRING_PATH,
            &self.keyring.encode(),
        )
    }

    /// The same keys with the keyring under a new root key: write
    /// [`Barrier::sealed_keyring`] of the result to put it in force.
    pub fn with_root_key(&self, root_key: SecretKey) -> Self {
        Self {
            storage: Arc::clone(&self.storage),
            root_key,
            keyring: self.keyring.clone(),
            encryptions: Arc::clone(&self.encryptions),
            retired: self.retired.clone(),
        }
    }

    /// The same root key with a new keyring term that encrypts from now on.
    /// The current term's count is retired with it.
    pub fn with_new_term(&self) -> Self {
        let mut retired = self.retired.clone();
        retired.insert(self.keyring.active().0, self.encryptions());
        Self {
            storage: Arc::clone(&self.storage),
            root_key: self.root_key.clone(),
            keyring: self.keyring.with_new_term(),
            encryptions: Arc::new(AtomicU64::new(0)),
            retired,
        }
    }

    /// The active term and when it was installed (Unix seconds).
    pub fn active_term(&self) -> (u32, u64) {
        let (term, key) = self.keyring.active();
        (term, key.installed_unix)
    }

    /// Encryptions under the active term so far.
    pub fn encryptions(&self) -> u64 {
        self.encryptions.load(Ordering::Relaxed)
    }

    /// Every term with its install time and encryption count, oldest first.
    pub fn term_usage(&self) -> Vec<TermUsage> {
        let active = self.keyring.active().0;
        self.keyring
            .installed()
            .map(|(term, installed_unix)| TermUsage {
                term,
                installed_unix,
                encryptions: if term == active {
                    self.encryptions()
                } else {
                    self.retired.get(&term).copied().unwrap_or(0)
                },
                active: term == active,
            })
            .collect()
    }

    /// Adds the usage record to `batch`, counting `reserve` encryptions
    /// ahead for the active term (0 records the exact count). Returns the
    /// count recorded for the active term.
    pub fn record_usage(&self, batch: &mut Batch, reserve: u64) -> u64 {
        let mut usage = Usage {
            terms: self.retired.clone(),
        };
        // This entry's own encryption is counted before the record is made.
        let encrypting = self.encryptions() + 1;
        let recorded = encrypting.saturating_add(reserve);
        usage.terms.insert(self.keyring.active().0, recorded);
        // Serialising integers cannot fail.
        let encoded = serde_json::to_vec(&usage).unwrap_or_default();
        batch.put(USAGE_PATH, self.encrypt(USAGE_PATH, &encoded));
        recorded
    }

    /// Encrypts `plaintext` for `path` with the active term.
    pub fn encrypt(&self, path: &str, plaintext: &[u8]) -> Vec<u8> {
        self.encryptions.fetch_add(1, Ordering::Relaxed);
        let (term, key) = self.keyring.active();
        entry::seal(&key.key, term, path, plaintext)
    }

    /// Decrypts an entry read from `path` with the term named in its header.
    pub fn decrypt(&self, path: &str, sealed: &[u8]) -> Result<SecretBytes, BarrierError> {
        let entry_error = |source| BarrierError::Entry {
            path: path.to_string(),
            source,
        };
        let term = entry::term_of(sealed).map_err(entry_error)?;
        let key = self
            .keyring
            .key(term)
            .ok_or_else(|| BarrierError::UnknownTerm {
                path: path.to_string(),
                term,
            })?;
        entry::open(key, path, sealed).map_err(entry_error)
    }

    /// Reads and decrypts one entry.
    pub async fn get(&self, path: &str) -> Result<Option<SecretBytes>, BarrierError> {
        let started = Instant::now();
        let entry = match self.storage.get(path).await? {
            Some(sealed) => self.decrypt(path, &sealed).map(Some),
            None => Ok(None),
        };
        metrics::barrier("get", started);
        entry
    }

    /// Encrypts and writes one entry.
    pub async fn put(&self, path: &str, plaintext: &[u8]) -> Result<(), BarrierError> {
        let started = Instant::now();
        let mut batch = Batch::new();
        batch.put(path, self.encrypt(path, plaintext));
        self.storage.write(batch).await?;
        metrics::barrier("put", started);
        Ok(())
    }

    /// Removes one entry.
    pub async fn delete(&self, path: &str) -> Result<(), BarrierError> {
        let started = Instant::now();
        let mut batch = Batch::new();
        batch.delete(path);
        self.storage.write(batch).await?;
        metrics::barrier("delete", started);
        Ok(())
    }

    /// Every path under `prefix`, sorted. Paths are not secret.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, BarrierError> {
        let started = Instant::now();
        let paths = self.storage.list(prefix).await?;
        metrics::barrier("list", started);
        Ok(paths)
    }

    /// Writes a batch whose values were encrypted with [`Barrier::encrypt`].
    pub async fn write(&self, batch: Batch) -> Result<(), BarrierError> {
        let started = Instant::now();
        self.storage.write(batch).await?;
        metrics::barrier("write", started);
        Ok(())
    }
}

/// Decrypts and decodes a keyring blob.
pub fn open_keyring(root_key: &SecretKey, sealed: &[u8]) -> Result<Keyring, BarrierError> {
    let plaintext =
        entry::open(root_key, KEYRING_PATH, sealed).map_err(|source| BarrierError::Entry {
            path: KEYRING_PATH.to_string(),
            source,
        })?;
    Ok(Keyring::decode(plaintext.expose())?)
}

#[cfg(test)]
impl Barrier {
    /// An open barrier over empty in-memory storage, for unit tests.
    pub(crate) fn in_memory() -> Self {
        Self::new(
            Arc::new(crate::storage::InmemBackend::new()),
            SecretKey::generate(),
            Keyring::generate(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::InmemBackend;

    async fn barrier() -> Barrier {
        let storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
        let root_key = SecretKey::generate();
        let barrier = Barrier::new(storage.clone(), root_key.clone(), Keyring::generate());
        let mut batch = Batch::new();
        batch.put(KEYRING_PATH, barrier.sealed_keyring());
        storage.write(batch).await.unwrap();
        Barrier::unlock(storage, root_key).await.unwrap()
    }

    #[tokio::test]
    async fn put_get_round_trip_through_a_reopened_keyring() {
        let barrier = barrier().await;
        barrier.put("kv/a", b"value").await.unwrap();
        assert_eq!(
            barrier.get("kv/a").await.unwrap().unwrap().expose(),
            b"value"
        );
        assert!(barrier.get("kv/none").await.unwrap().is_none());
        barrier.delete("kv/a").await.unwrap();
        assert!(barrier.get("kv/a").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn ciphertext_is_not_plaintext() {
        let barrier = barrier().await;
        let sealed = barrier.encrypt("kv/a", b"plain secret value");
        assert!(!sealed.windows(5).any(|w| w == b"plain"));
    }

    #[tokio::test]
    async fn entries_cannot_move_between_paths() {
        let barrier = barrier().await;
        let sealed = barrier.encrypt("kv/a", b"x");
        assert!(matches!(
            barrier.decrypt("kv/b", &sealed),
            Err(BarrierError::Entry {
                source: EntryError::Authentication,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn an_unknown_term_is_named() {
        let barrier = barrier().await;
        let mut sealed = barrier.encrypt("kv/a", b"x");
        sealed[..4].copy_from_slice(&5u32.to_be_bytes());
        assert!(matches!(
            barrier.decrypt("kv/a", &sealed),
            Err(BarrierError::UnknownTerm { term: 5, .. })
        ));
    }

    #[tokio::test]
    async fn rotation_keeps_old_terms_readable_and_counts_persist() {
        let barrier = barrier().await;
        barrier.put("kv/old", b"one").await.unwrap();
        let rotated = barrier.with_new_term();
        assert_eq!(rotated.active_term().0, 2);
        let mut batch = Batch::new();
        batch.put(KEYRING_PATH, rotated.sealed_keyring());
        rotated.record_usage(&mut batch, 0);
        rotated.write(batch).await.unwrap();
        rotated.put("kv/new", b"two").await.unwrap();
        assert_eq!(
            entry::term_of(&rotated.storage.get("kv/new").await.unwrap().unwrap()).unwrap(),
            2
        );

        let root_key = rotated.root_key().clone();
        let mut batch = Batch::new();
        let recorded = rotated.record_usage(&mut batch, 100);
        rotated.write(batch).await.unwrap();
        assert_eq!(recorded, rotated.encryptions() + 100);

        let reopened = Barrier::unlock(Arc::clone(&rotated.storage), root_key)
            .await
            .unwrap();
        assert_eq!(
            reopened.get("kv/old").await.unwrap().unwrap().expose(),
            b"one"
        );
        assert_eq!(
            reopened.get("kv/new").await.unwrap().unwrap().expose(),
            b"two"
        );
        let usage = reopened.term_usage();
        assert_eq!(usage.len(), 2);
        // Term 1: the put of kv/old. Term 2: resumes from the reservation.
        assert_eq!(
            (usage[0].term, usage[0].encryptions, usage[0].active),
            (1, 1, false)
        );
        assert_eq!(
            (usage[1].term, usage[1].encryptions, usage[1].active),
            (2, recorded, true)
        );
    }

    #[tokio::test]
    async fn a_new_root_key_reencrypts_the_keyring_only() {
        let barrier = barrier().await;
        barrier.put("kv/a", b"x").await.unwrap();
        let new_root = SecretKey::generate();
        let moved = barrier.with_root_key(new_root.clone());
        assert!(open_keyring(&barrier.root_key, &moved.sealed_keyring()).is_err());
        let mut batch = Batch::new();
        batch.put(KEYRING_PATH, moved.sealed_keyring());
        moved.write(batch).await.unwrap();
        let reopened = Barrier::unlock(Arc::clone(&moved.storage), new_root)
            .await
            .unwrap();
        assert_eq!(reopened.get("kv/a").await.unwrap().unwrap().expose(), b"x");
        moved.encrypt("kv/b", b"y");
        assert_eq!(
            barrier.encryptions(),
            moved.encryptions(),
            "the count is shared"
        );
    }

    #[tokio::test]
    async fn the_wrong_root_key_does_not_open_the_keyring() {
        let barrier = barrier().await;
        let sealed = barrier.sealed_keyring();
        assert!(open_keyring(&SecretKey::generate(), &sealed).is_err());
        assert!(open_keyring(&barrier.root_key, &sealed).is_ok());
    }
}
