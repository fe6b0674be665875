//! Named encryption keys: envelope encryption as a service, the job AWS KMS
//! does for AWS services (Vault's transit engine).
//!
//! A key has versions, each an AES-256-GCM key. Encrypt uses the newest;
//! Decrypt uses the version the ciphertext names, if it is not below the
//! key's `min_decryption_version`. Ciphertexts read
//! `sr:v<N>:<base64(nonce ‖ ciphertext ‖ tag)>`; the authenticated data is
//! the key's name, the version and the caller's `context`, so a ciphertext
//! decrypts only under the key and version it names, with the same context.
//!
//! A key is stored at `keys/<name>` behind the barrier, material included,
//! and cached in memory once read (emptied when the seal state changes). A
//! key's material never leaves the daemon: ReadKey shows versions and times.
//!
//! Names reach [`Keys`]' methods checked by [`validate_name`]: every action
//! on `keys/` declares it, and the gate runs it before authenticating.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use zeroize::Zeroizing;

use crate::access::Session;
use crate::barrier::{Barrier, Hooks};
use crate::error::Error;
use crate::secret::{SecretBytes, fill_random};
use crate::text;
use crate::time::now_unix;
use ciphertext::{decrypt_with, encrypt_with};
use stored::{NamedKey, PREFIX, StoredKey, StoredVersion, read_stored, storage_path};

mod ciphertext;
mod stored;
mod usage;

pub use ciphertext::Encrypted;

/// Longest accepted key name.
pub const MAX_NAME_LEN: usize = 128;
/// Most versions a key may have (each rotation adds one).
pub const MAX_VERSIONS: u32 = 10_000;
/// The most items one batch call takes.
pub const MAX_BATCH: usize = 10_000;
/// What ReadKey shows: never key material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key's name.
    pub name: String,
    /// When version 1 was made.
    pub created_unix: u64,
    /// The version Encrypt uses.
    pub latest_version: u32,
    /// Versions below this refuse to decrypt.
    pub min_decryption_version: u32,
    /// DeleteKey is allowed.
    pub deletion_allowed: bool,
    /// Each version's creation time, version 1 first.
    pub versions: Vec<u64>,
}

/// A change to a key's configuration; `None` leaves a setting as it is.
#[derive(Clone, Copy, Debug, Default)]
pub struct KeyConfig {
    /// Versions below this refuse to decrypt.
    pub min_decryption_version: Option<u32>,
    /// DeleteKey is allowed.
    pub deletion_allowed: Option<bool>,
}

/// Parsed keys by name; `generation` changes with every write, so a reader
/// that loaded a key before a write does not cache the old one.
#[derive(Default)]
struct KeyCache {
    generation: u64,
    keys: HashMap<String, Arc<NamedKey>>,
}

/// Checks a key name: 1 to 128 letters, digits, `-`, `_` or `.`, not `.`
/// or `..` (a name is a path segment in policies and in the HTTP API).
pub fn validate_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "key name {} is not valid: use 1 to {MAX_NAME_LEN} letters, digits, '-', '_' or '.', other than . and ..",
            text::quote(name)
        )))
    }
}

/// One item of a batch: its result or its error, as one sentence.
pub type ItemResult<T> = Result<T, String>;

/// Named keys: a cache of the keys read (with their encryption counts),
/// and the lock that serialises changes to them.
#[derive(Default)]
pub struct Keys {
    cache: Mutex<KeyCache>,
    writes: tokio::sync::Mutex<()>,
}

impl Keys {
    fn cache(&self) -> MutexGuard<'_, KeyCache> {
        // A poisoned lock means a thread panicked while holding it; the
        // cache is still a valid map.
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Loads `name` (from the cache when it is there).
    async fn load(&self, barrier: &Barrier, name: &str) -> Result<Arc<NamedKey>, Error> {
        let generation = {
            let cache = self.cache();
            if let Some(key) = cache.keys.get(name) {
                return Ok(Arc::clone(key));
            }
            cache.generation
        };
        let key = Arc::new(NamedKey::new(read_stored(barrier, name).await?));
        let mut cache = self.cache();
        if cache.generation == generation {
            cache.keys.insert(name.to_string(), Arc::clone(&key));
        }
        Ok(key)
    }

    /// The call's barrier and key `name`.
    async fn key_for<'s>(
        &self,
        session: &'s Session,
        name: &str,
    ) -> Result<(&'s Barrier, Arc<NamedKey>), Error> {
        let barrier = session.barrier()?;
        let key = self.load(barrier, name).await?;
        Ok((barrier, key))
    }

    /// Writes `stored` and puts it in the cache (`None`: deletes it).
    async fn store(
        &self,
        barrier: &Barrier,
        name: &str,
        stored: Option<StoredKey>,
    ) -> Result<(), Error> {
        match &stored {
            Some(stored) => {
                // Serialising numbers and hex strings cannot fail.
                let encoded = Zeroizing::new(serde_json::to_vec(stored).unwrap_or_default());
                barrier.put(&storage_path(name), &encoded).await?;
            }
            None => barrier.delete(&storage_path(name)).await?,
        }
        let mut cache = self.cache();
        cache.generation += 1;
        match stored {
            Some(stored) => {
                cache
                    .keys
                    .insert(name.to_string(), Arc::new(NamedKey::new(stored)));
            }
            None => {
                cache.keys.remove(name);
            }
        }
        Ok(())
    }

    /// Makes key `name` with one version.
    pub async fn create(&self, session: &Session, name: &str) -> Result<KeyInfo, Error> {
        let barrier = session.barrier()?;
        let _guard = self.writes.lock().await;
        if barrier.get(&storage_path(name)).await?.is_some() {
            return Err(Error::FailedPrecondition(format!(
                "a key named {name:?} already exists; `strongroom keys rotate {name}` adds a version"
            )));
        }
        let now = now_unix();
        let stored = StoredKey {
            created_unix: now,
            min_decryption_version: 1,
            deletion_allowed: false,
            versions: vec![StoredVersion::generate()],
        };
        let info = info(name, &stored);
        self.store(barrier, name, Some(stored)).await?;
        tracing::info!(key = name, "key created");
        Ok(info)
    }

    /// Encrypts with the newest version.
    pub async fn encrypt(
        &self,
        session: &Session,
        name: &str,
        plaintext: &[u8],
        context: &[u8],
    ) -> Result<Encrypted, Error> {
        let (barrier, key) = self.key_for(session, name).await?;
        let key = self.count_encryptions(barrier, name, key, 1).await?;
        Ok(encrypt_with(&key, name, plaintext, context))
    }

    /// Decrypts a ciphertext of this key.
    pub async fn decrypt(
        &self,
        session: &Session,
        name: &str,
        ciphertext: &str,
        context: &[u8],
    ) -> Result<SecretBytes, Error> {
        let (_, key) = self.key_for(session, name).await?;
        decrypt_with(&key, name, ciphertext, context)
    }

    /// Re-encrypts a ciphertext under the newest version without returning
    /// the plaintext.
    pub async fn rewrap(
        &self,
        session: &Session,
        name: &str,
        ciphertext: &str,
        context: &[u8],
    ) -> Result<Encrypted, Error> {
        let (barrier, key) = self.key_for(session, name).await?;
        let plaintext = decrypt_with(&key, name, ciphertext, context)?;
        let key = self.count_encryptions(barrier, name, key, 1).await?;
        Ok(encrypt_with(&key, name, plaintext.expose(), context))
    }

    /// Checks a data key's size: 128, 256 or 512 bits (0: 256). Returns the bits.
    pub fn data_key_bits(bits: u32) -> Result<u32, Error> {
        let bits = if bits == 0 { 256 } else { bits };
        if ![128, 256, 512].contains(&bits) {
            return Err(Error::InvalidArgument(format!(
                "a data key has 128, 256 or 512 bits, not {bits}"
            )));
        }
        Ok(bits)
    }

    /// A fresh data key of `bits` (128, 256 or 512), returned in plaintext
    /// and encrypted under the newest version.
    pub async fn data_key(
        &self,
        session: &Session,
        name: &str,
        bits: u32,
        context: &[u8],
    ) -> Result<(SecretBytes, Encrypted), Error> {
        let bits = Self::data_key_bits(bits)?;
        let (barrier, key) = self.key_for(session, name).await?;
        let key = self.count_encryptions(barrier, name, key, 1).await?;
        let mut data_key = SecretBytes::new(vec![0u8; bits as usize / 8]);
        fill_random(data_key.expose_mut());
        let wrapped = encrypt_with(&key, name, data_key.expose(), context);
        Ok((data_key, wrapped))
    }

    /// Checks the size of a batch: at most [`MAX_BATCH`] items.
    pub fn check_batch(len: usize) -> Result<(), Error> {
        if len > MAX_BATCH {
            return Err(Error::InvalidArgument(format!(
                "a batch has at most {MAX_BATCH} items, this one has {len}"
            )));
        }
        Ok(())
    }

    /// Encrypts each item; one failure does not stop the others.
    pub async fn batch_encrypt(
        &self,
        session: &Session,
        name: &str,
        items: &[(SecretBytes, Vec<u8>)],
    ) -> Result<Vec<ItemResult<Encrypted>>, Error> {
        Self::check_batch(items.len())?;
        let (barrier, key) = self.key_for(session, name).await?;
        let n = u64::try_from(items.len()).unwrap_or(u64::MAX);
        let key = self.count_encryptions(barrier, name, key, n).await?;
        Ok(items
            .iter()
            .map(|(plaintext, context)| Ok(encrypt_with(&key, name, plaintext.expose(), context)))
            .collect())
    }

    /// Decrypts each item; each failure is that item's error.
    pub async fn batch_decrypt(
        &self,
        session: &Session,
        name: &str,
        items: &[(String, Vec<u8>)],
    ) -> Result<Vec<ItemResult<SecretBytes>>, Error> {
        Self::check_batch(items.len())?;
        let (_, key) = self.key_for(session, name).await?;
        Ok(items
            .iter()
            .map(|(ciphertext, context)| {
                decrypt_with(&key, name, ciphertext, context).map_err(|e| e.to_string())
            })
            .collect())
    }

    /// Adds a version; Encrypt uses it from now on.
    pub async fn rotate(&self, session: &Session, name: &str) -> Result<KeyInfo, Error> {
        self.change(session, name, |stored| {
            if stored.versions.len() >= MAX_VERSIONS as usize {
                return Err(Error::FailedPrecondition(format!(
                    "key {name:?} has {MAX_VERSIONS} versions, the most a key may have"
                )));
            }
            stored.versions.push(StoredVersion::generate());
            Ok(())
        })
        .await
    }

    /// Changes `min_decryption_version` and `deletion_allowed`.
    pub async fn update_config(
        &self,
        session: &Session,
        name: &str,
        config: KeyConfig,
    ) -> Result<KeyInfo, Error> {
        self.change(session, name, |stored| {
            if let Some(min) = config.min_decryption_version {
                let latest = u32::try_from(stored.versions.len()).unwrap_or(u32::MAX);
                if min == 0 || min > latest {
                    return Err(Error::InvalidArgument(format!(
                        "min_decryption_version must be between 1 and the latest version {latest}, got {min}"
                    )));
                }
                stored.min_decryption_version = min;
            }
            if let Some(allowed) = config.deletion_allowed {
                stored.deletion_allowed = allowed;
            }
            Ok(())
        })
        .await
    }

    async fn change(
        &self,
        session: &Session,
        name: &str,
        change: impl FnOnce(&mut StoredKey) -> Result<(), Error>,
    ) -> Result<KeyInfo, Error> {
        let barrier = session.barrier()?;
        let _guard = self.writes.lock().await;
        let mut stored = read_stored(barrier, name).await?;
        change(&mut stored)?;
        let info = info(name, &stored);
        self.store(barrier, name, Some(stored)).await?;
        tracing::info!(
            key = name,
            latest_version = info.latest_version,
            min_decryption_version = info.min_decryption_version,
            "key changed"
        );
        Ok(info)
    }

    /// A key's versions and settings, never its material.
    pub async fn read(&self, session: &Session, name: &str) -> Result<KeyInfo, Error> {
        let (_, key) = self.key_for(session, name).await?;
        Ok(info(name, &key.stored))
    }

    /// Every key name, sorted.
    pub async fn list(&self, session: &Session) -> Result<Vec<String>, Error> {
        Ok(session
            .barrier()?
            .list(PREFIX)
            .await?
            .into_iter()
            .map(|p| p[PREFIX.len()..].to_string())
            .collect())
    }

    /// Deletes a key and every version, when its config allows.
    pub async fn delete(&self, session: &Session, name: &str) -> Result<(), Error> {
        let barrier = session.barrier()?;
        let _guard = self.writes.lock().await;
        // Read under the lock: a config change just before must count.
        let stored = read_stored(barrier, name).await?;
        if !stored.deletion_allowed {
            return Err(Error::FailedPrecondition(format!(
                "key {name:?} does not allow deletion; `strongroom keys config {name} --deletion-allowed true` allows it first"
            )));
        }
        self.store(barrier, name, None).await?;
        tracing::info!(key = name, "key deleted");
        Ok(())
    }
}

#[async_trait]
impl Hooks for Keys {
    fn closed(&self) {
        let mut cache = self.cache();
        cache.generation += 1;
        cache.keys.clear();
    }
}

fn info(name: &str, stored: &StoredKey) -> KeyInfo {
    KeyInfo {
        name: name.to_string(),
        created_unix: stored.created_unix,
        latest_version: u32::try_from(stored.versions.len()).unwrap_or(u32::MAX),
        min_decryption_version: stored.min_decryption_version,
        deletion_allowed: stored.deletion_allowed,
        versions: stored.versions.iter().map(|v| v.created_unix).collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn root() -> Session {
        Session::root_for_tests(Arc::new(Barrier::in_memory()), "keys/test")
    }

    #[tokio::test]
    async fn a_version_that_reaches_its_encryption_limit_is_rotated() {
        // In unit tests a version makes 10 encryptions, reserved 4 at a time.
        let keys = Keys::default();
        let root = root();
        keys.create(&root, "busy").await.unwrap();
        let mut ciphertexts = Vec::new();
        for i in 0..25u8 {
            ciphertexts.push(keys.encrypt(&root, "busy", &[i], b"").await.unwrap());
        }
        let versions: Vec<u32> = ciphertexts.iter().map(|c| c.version).collect();
        assert_eq!(
            versions.iter().filter(|v| **v == 1).count(),
            10,
            "{versions:?}"
        );
        assert_eq!(
            versions.iter().filter(|v| **v == 2).count(),
            10,
            "{versions:?}"
        );
        assert_eq!(keys.read(&root, "busy").await.unwrap().latest_version, 3);
        for (i, c) in ciphertexts.iter().enumerate() {
            let plain = keys
                .decrypt(&root, "busy", &c.ciphertext, b"")
                .await
                .unwrap();
            assert_eq!(plain.expose(), &[u8::try_from(i).unwrap()]);
        }
        // Read again from storage (as after a restart), a version resumes
        // from its reservation: over-counted, never under-counted.
        let barrier = root.barrier().unwrap();
        let reserved = read_stored(barrier, "busy").await.unwrap().versions[2].reserved;
        keys.closed();
        keys.encrypt(&root, "busy", b"x", b"").await.unwrap();
        let after = read_stored(barrier, "busy").await.unwrap().versions[2].reserved;
        assert!(after > reserved, "{after} > {reserved}");
    }

    #[tokio::test]
    async fn encrypt_rotate_min_version_rewrap() {
        let keys = Keys::default();
        let root = root();
        keys.create(&root, "app").await.unwrap();
        let old = keys.encrypt(&root, "app", b"hello", b"ctx").await.unwrap();
        assert!(old.ciphertext.starts_with("sr:v1:"), "{}", old.ciphertext);
        keys.rotate(&root, "app").await.unwrap();
        let plain = keys
            .decrypt(&root, "app", &old.ciphertext, b"ctx")
            .await
            .unwrap();
        assert_eq!(plain.expose(), b"hello");
        let err = keys
            .decrypt(&root, "app", &old.ciphertext, b"other")
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("context differs"), "{err}");
        keys.update_config(
            &root,
            "app",
            KeyConfig {
                min_decryption_version: Some(2),
                deletion_allowed: None,
            },
        )
        .await
        .unwrap();
        let err = keys
            .decrypt(&root, "app", &old.ciphertext, b"ctx")
            .await
            .err()
            .unwrap();
        assert!(matches!(err, Error::FailedPrecondition(_)), "{err}");
        assert!(
            keys.rewrap(&root, "app", &old.ciphertext, b"ctx")
                .await
                .is_err()
        );
        keys.update_config(
            &root,
            "app",
            KeyConfig {
                min_decryption_version: Some(1),
                deletion_allowed: None,
            },
        )
        .await
        .unwrap();
        let new = keys
            .rewrap(&root, "app", &old.ciphertext, b"ctx")
            .await
            .unwrap();
        assert_eq!(new.version, 2);
        let plain = keys
            .decrypt(&root, "app", &new.ciphertext, b"ctx")
            .await
            .unwrap();
        assert_eq!(plain.expose(), b"hello");
        // A ciphertext relabelled with another version fails authentication.
        let relabelled = new.ciphertext.replacen("sr:v2:", "sr:v1:", 1);
        assert!(
            keys.decrypt(&root, "app", &relabelled, b"ctx")
                .await
                .is_err()
        );
        assert_eq!(keys.read(&root, "app").await.unwrap().versions.len(), 2);
    }
}
