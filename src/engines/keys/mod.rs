//! Named encryption keys: envelope encryption as a service, the job AWS KMS
//! does for AWS services (Vault's transit engine).
//!
//! A key has versions, each an AES-256-GCM key. Encrypt uses the newest;
//! Decrypt uses the version the ciphertext names, if it is not below the
//! key's `min_decryption_version`. Ciphertexts read
//! `sr:v<N>:<base64(nonce ‖ ciphertext ‖ tag)>` (gRPC) or `vault:v<N>:…`
//! (Vault's HTTP API), the same bytes under either label; the
//! authenticated data is the key's name, the version and the caller's
//! `context`, so a ciphertext decrypts only under the key and version it
//! names, with the same context. A key created with `derived = true`
//! derives its key from each request's context (`derive.rs`), which every
//! request must then give; on Vault's API a key that is not derived
//! ignores the context, as Vault's transit does ([`Surface`]).
//!
//! A key is stored at `keys/<name>` behind the barrier, material included,
//! and cached in memory once read (emptied when the seal state changes). A
//! key's material never leaves the daemon: ReadKey shows versions and times.
//!
//! Names reach [`Keys`]' methods checked by [`validate_name`]: every action
//! on `transit/` declares it, and the gate runs it before authenticating.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use zeroize::Zeroizing;

use crate::access::{Capability, Session};
use crate::barrier::{Barrier, Hooks};
use crate::error::Error;
use crate::text;
use crate::time::now_unix;
use stored::{NamedKey, PREFIX, StoredKey, StoredVersion, read_stored, storage_path};

mod ciphertext;
mod crypt;
mod derive;
mod stored;
mod usage;

pub use ciphertext::{Encrypted, Surface};
pub use crypt::EncryptOptions;

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
    /// Each request's context derives the key it uses.
    pub derived: bool,
    /// Each version's creation time, version 1 first.
    pub versions: Vec<u64>,
}

/// How a key is made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyOptions {
    /// Each request's context derives the key it uses (Vault's `derived`).
    pub derived: bool,
}

/// What Create does when the name is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfExists {
    /// Refuse (gRPC's CreateKey).
    Refuse,
    /// Leave the key as it is and answer its info (a key the caller
    /// wanted, made meanwhile by another).
    Keep,
    /// As `Keep` when the session holds this capability on the key, else
    /// refused (Vault's `POST transit/keys/:name`, which a client may
    /// repeat, and which needs `update` on an existing key). Decided under
    /// the write lock, so a key made meanwhile is never answered to a
    /// caller who could only make it.
    KeepIf(Capability),
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
    pub async fn create(
        &self,
        session: &Session,
        name: &str,
        options: KeyOptions,
        if_exists: IfExists,
    ) -> Result<KeyInfo, Error> {
        let barrier = session.barrier()?;
        let _guard = self.writes.lock().await;
        if barrier.get(&storage_path(name)).await?.is_some() {
            match if_exists {
                IfExists::Keep => return Ok(info(name, &read_stored(barrier, name).await?)),
                IfExists::KeepIf(capability) => {
                    session.require(capability)?;
                    return Ok(info(name, &read_stored(barrier, name).await?));
                }
                IfExists::Refuse => {}
            }
            return Err(Error::FailedPrecondition(format!(
                "a key named {name:?} already exists; `strongroom keys rotate {name}` adds a version"
            )));
        }
        let now = now_unix();
        let stored = StoredKey {
            created_unix: now,
            min_decryption_version: 1,
            deletion_allowed: false,
            derived: options.derived,
            versions: vec![StoredVersion::generate()],
        };
        let info = info(name, &stored);
        self.store(barrier, name, Some(stored)).await?;
        tracing::info!(key = name, derived = options.derived, "key created");
        Ok(info)
    }

    /// Key `name`, made first with `create` when it does not exist and
    /// the caller may create it (`create` on the call's path), as Vault's
    /// transit makes a key on the first encryption with it.
    async fn key_or_create<'s>(
        &self,
        session: &'s Session,
        name: &str,
        create: Option<KeyOptions>,
    ) -> Result<(&'s Barrier, Arc<NamedKey>), Error> {
        match (self.key_for(session, name).await, create) {
            (Err(Error::NotFound(_)), Some(options)) => {
                session.require(Capability::Create)?;
                self.create(session, name, options, IfExists::Keep).await?;
                self.key_for(session, name).await
            }
            (found, _) => found,
        }
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
        derived: stored.derived,
        versions: stored.versions.iter().map(|v| v.created_unix).collect(),
    }
}

#[cfg(test)]
mod tests;
