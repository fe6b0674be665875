//! The barrier: every entry above the seal passes through it, encrypted with
//! the keyring's active term on the way down and decrypted by its own term on
//! the way up.
//!
//! A [`Barrier`] exists only while the daemon is unsealed; sealing drops it,
//! and with it the root key and the keyring, whose memory is zeroed.

pub mod entry;
pub mod keyring;

use std::sync::Arc;

pub use entry::EntryError;
pub use keyring::{Keyring, KeyringError};

use crate::secret::{SecretBytes, SecretKey};
use crate::storage::{Backend, Batch, StorageError};

/// Where the keyring is stored, encrypted by the root key.
pub const KEYRING_PATH: &str = "core/keyring";

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
}

/// The unsealed barrier: the root key, the keyring, and the storage they guard.
pub struct Barrier {
    storage: Arc<dyn Backend>,
    root_key: SecretKey,
    keyring: Keyring,
}

impl Barrier {
    /// A barrier over `storage` with keys in hand (at init).
    pub fn new(storage: Arc<dyn Backend>, root_key: SecretKey, keyring: Keyring) -> Self {
        Self {
            storage,
            root_key,
            keyring,
        }
    }

    /// Reads the keyring from storage and opens it with the root key.
    pub async fn unlock(
        storage: Arc<dyn Backend>,
        root_key: SecretKey,
    ) -> Result<Self, BarrierError> {
        let sealed = storage
            .get(KEYRING_PATH)
            .await?
            .ok_or(BarrierError::MissingKeyring)?;
        let keyring = open_keyring(&root_key, &sealed)?;
        Ok(Self::new(storage, root_key, keyring))
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

    /// Encrypts `plaintext` for `path` with the active term.
    pub fn encrypt(&self, path: &str, plaintext: &[u8]) -> Vec<u8> {
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
        match self.storage.get(path).await? {
            Some(sealed) => self.decrypt(path, &sealed).map(Some),
            None => Ok(None),
        }
    }

    /// Encrypts and writes one entry.
    pub async fn put(&self, path: &str, plaintext: &[u8]) -> Result<(), BarrierError> {
        let mut batch = Batch::new();
        batch.put(path, self.encrypt(path, plaintext));
        self.write(batch).await
    }

    /// Removes one entry.
    pub async fn delete(&self, path: &str) -> Result<(), BarrierError> {
        let mut batch = Batch::new();
        batch.delete(path);
        self.write(batch).await
    }

    /// Every path under `prefix`, sorted. Paths are not secret.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, BarrierError> {
        Ok(self.storage.list(prefix).await?)
    }

    /// Writes a batch whose values were encrypted with [`Barrier::encrypt`].
    pub async fn write(&self, batch: Batch) -> Result<(), BarrierError> {
        Ok(self.storage.write(batch).await?)
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
    async fn the_wrong_root_key_does_not_open_the_keyring() {
        let barrier = barrier().await;
        let sealed = barrier.sealed_keyring();
        assert!(open_keyring(&SecretKey::generate(), &sealed).is_err());
        assert!(open_keyring(&barrier.root_key, &sealed).is_ok());
    }
}
