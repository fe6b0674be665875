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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use async_trait::async_trait;

use crate::access::Session;
use crate::barrier::{Barrier, Hooks};
use crate::error::Error;
use crate::secret::{SecretBytes, SecretKey, fill_random};
use crate::time::now_unix;

const PREFIX: &str = "keys/";
const CIPHERTEXT_PREFIX: &str = "sr:v";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Longest accepted key name.
pub const MAX_NAME_LEN: usize = 128;
/// Most versions a key may have (each rotation adds one).
pub const MAX_VERSIONS: u32 = 10_000;
/// The most items one batch call takes.
pub const MAX_BATCH: usize = 10_000;
/// Encryptions reserved per storage write.
#[cfg(not(test))]
const RESERVE_BLOCK: u64 = 1 << 20;
#[cfg(test)]
const RESERVE_BLOCK: u64 = 4;
/// Encryptions one version makes before a new version takes over: 2^32
/// (AES-GCM with random 96-bit nonces, NIST SP 800-38D), less a margin for
/// the calls in flight while a reservation is written.
#[cfg(not(test))]
const ENCRYPTIONS_PER_VERSION: u64 = (1 << 32) - (1 << 24);
#[cfg(test)]
const ENCRYPTIONS_PER_VERSION: u64 = 10;

/// One version's material, serialised as hex from zeroizing memory.
struct Material(SecretKey);

impl Serialize for Material {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = Zeroizing::new(hex::encode(self.0.expose()));
        serializer.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for Material {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Material;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("64 hex digits")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Material, E> {
                let mut bytes = Zeroizing::new([0u8; 32]);
                hex::decode_to_slice(text, bytes.as_mut())
                    .map_err(|_| E::custom("key material is not 64 hex digits"))?;
                SecretKey::from_slice(bytes.as_ref())
                    .map(Material)
                    .ok_or_else(|| E::custom("key material has the wrong length"))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[derive(Serialize, Deserialize)]
struct StoredVersion {
    created_unix: u64,
    key: Material,
    /// Encryptions this version may have made: a reservation written ahead
    /// of use, so a crash over-counts and never under-counts.
    #[serde(default)]
    reserved: u64,
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    created_unix: u64,
    min_decryption_version: u32,
    deletion_allowed: bool,
    /// Version 1 first.
    versions: Vec<StoredVersion>,
}

/// A key as served: ciphers ready for each version.
struct NamedKey {
    stored: StoredKey,
    ciphers: Vec<Aes256Gcm>,
    /// Encryptions by the newest version so far (at least).
    encryptions: AtomicU64,
}

impl NamedKey {
    /// A key as read from storage: its newest version is assumed to have
    /// used its whole reservation.
    fn new(stored: StoredKey) -> Self {
        let used = stored.versions.last().map_or(0, |v| v.reserved);
        Self::counted(stored, used)
    }

    /// A key whose newest version has made `used` encryptions.
    fn counted(stored: StoredKey, used: u64) -> Self {
        let ciphers = stored
            .versions
            .iter()
            .map(|v| Aes256Gcm::new(v.key.0.expose().into()))
            .collect();
        Self {
            stored,
            ciphers,
            encryptions: AtomicU64::new(used),
        }
    }

    fn reserved(&self) -> u64 {
        self.stored.versions.last().map_or(0, |v| v.reserved)
    }

    fn latest(&self) -> u32 {
        u32::try_from(self.stored.versions.len()).unwrap_or(u32::MAX)
    }
}

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

/// The result of Encrypt and of each GenerateDataKey.
pub struct Encrypted {
    /// `sr:v<N>:<base64>`.
    pub ciphertext: String,
    /// The version that encrypted it.
    pub version: u32,
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

/// Checks a key name: 1 to 128 letters, digits, `-`, `_` or `.`.
pub fn validate_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "key name {name:?} is not valid: use 1 to {MAX_NAME_LEN} letters, digits, '-', '_' or '.'"
        )))
    }
}

fn storage_path(name: &str) -> String {
    format!("{PREFIX}{name}")
}

fn aad(name: &str, version: u32, context: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(name.len() + 5 + context.len());
    aad.extend_from_slice(name.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&version.to_be_bytes());
    aad.extend_from_slice(context);
    aad
}

/// Reads and decodes key `name`; a key without versions is damaged.
async fn read_stored(barrier: &Barrier, name: &str) -> Result<StoredKey, Error> {
    let stored = barrier
        .get(&storage_path(name))
        .await?
        .ok_or_else(|| not_found(name))?;
    let stored: StoredKey = serde_json::from_slice(stored.expose())
        .map_err(|e| Error::Internal(format!("the stored key {name:?} is damaged: {e}")))?;
    if stored.versions.is_empty() {
        return Err(Error::Internal(format!(
            "the stored key {name:?} is damaged: it has no versions"
        )));
    }
    Ok(stored)
}

fn not_found(name: &str) -> Error {
    Error::NotFound(format!("no key is named {name:?}"))
}

fn encrypt_with(key: &NamedKey, name: &str, plaintext: &[u8], context: &[u8]) -> Encrypted {
    let version = key.latest();
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce);
    let mut body = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
    body.extend_from_slice(&nonce);
    body.extend_from_slice(plaintext);
    let tag = key.ciphers[key.ciphers.len() - 1]
        .encrypt_inout_detached(
            &Nonce::from(nonce),
            &aad(name, version, context),
            body[NONCE_LEN..].as_mut().into(),
        )
        // AES-GCM refuses only plaintexts over 64 GiB; requests are far smaller.
        .unwrap_or_else(|_| unreachable!("AES-GCM plaintext limit exceeded"));
    body.extend_from_slice(&tag);
    Encrypted {
        ciphertext: format!("{CIPHERTEXT_PREFIX}{version}:{}", STANDARD.encode(&body)),
        version,
    }
}

fn decrypt_with(
    key: &NamedKey,
    name: &str,
    ciphertext: &str,
    context: &[u8],
) -> Result<SecretBytes, Error> {
    let malformed = || {
        Error::InvalidArgument(
            "the ciphertext is not a strongroom ciphertext: expected sr:v<N>:<base64>".into(),
        )
    };
    let (version, encoded) = ciphertext
        .strip_prefix(CIPHERTEXT_PREFIX)
        .and_then(|rest| rest.split_once(':'))
        .ok_or_else(malformed)?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    let version: u32 = version.parse().map_err(|_| malformed())?;
    let body = STANDARD.decode(encoded).map_err(|_| malformed())?;
    if body.len() < NONCE_LEN + TAG_LEN {
        return Err(malformed());
    }
    if version == 0 || version > key.latest() {
        return Err(Error::InvalidArgument(format!(
            "the ciphertext names version {version} of key {name:?}, which has versions 1 to {}",
            key.latest()
        )));
    }
    if version < key.stored.min_decryption_version {
        return Err(Error::FailedPrecondition(format!(
            "version {version} of key {name:?} is below its min_decryption_version {}, so it no longer decrypts; lower the minimum, or rewrap ciphertexts before raising it",
            key.stored.min_decryption_version
        )));
    }
    let (nonce, rest) = body.split_at(NONCE_LEN);
    let (sealed, tag) = rest.split_at(rest.len() - TAG_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| malformed())?;
    let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| malformed())?;
    let mut plaintext = SecretBytes::new(sealed.to_vec());
    key.ciphers[version as usize - 1]
        .decrypt_inout_detached(
            &Nonce::from(nonce),
            &aad(name, version, context),
            plaintext.expose_mut().as_mut_slice().into(),
            &Tag::from(tag),
        )
        .map_err(|_| {
            Error::InvalidArgument(format!(
                "the ciphertext does not decrypt under key {name:?}: it was altered, or the context differs from the one it was encrypted with"
            ))
        })?;
    Ok(plaintext)
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

    /// Counts `n` encryptions by `key`'s newest version; returns the key to
    /// encrypt with. Past the reservation it writes a new one; past
    /// [`ENCRYPTIONS_PER_VERSION`] it adds a version first (an automatic
    /// rotation), so no version exceeds the AES-GCM random-nonce bound.
    async fn count_encryptions(
        &self,
        barrier: &Barrier,
        name: &str,
        key: Arc<NamedKey>,
        n: u64,
    ) -> Result<Arc<NamedKey>, Error> {
        let used = key.encryptions.fetch_add(n, Ordering::Relaxed) + n;
        if used <= key.reserved() {
            return Ok(key);
        }
        let _guard = self.writes.lock().await;
        // Another call may have reserved (or rotated) meanwhile.
        if let Some(current) = self.cache().keys.get(name).cloned()
            && !Arc::ptr_eq(&current, &key)
        {
            let used = current.encryptions.fetch_add(n, Ordering::Relaxed) + n;
            if used <= current.reserved() {
                return Ok(current);
            }
        }
        let mut stored = read_stored(barrier, name).await?;
        let counted = stored.versions.last().map_or(0, |v| v.reserved).max(used);
        let (counted, reason) = if counted.saturating_add(RESERVE_BLOCK) > ENCRYPTIONS_PER_VERSION {
            if stored.versions.len() >= MAX_VERSIONS as usize {
                return Err(Error::FailedPrecondition(format!(
                    "key {name:?} has made the most encryptions its {MAX_VERSIONS} versions may make; make a new key"
                )));
            }
            stored.versions.push(StoredVersion {
                created_unix: now_unix(),
                key: Material(SecretKey::generate()),
                reserved: 0,
            });
            (
                n,
                "automatic rotation: the newest version reached its encryption limit",
            )
        } else {
            (counted, "")
        };
        if let Some(latest) = stored.versions.last_mut() {
            latest.reserved = counted + RESERVE_BLOCK;
        }
        let version = stored.versions.len();
        self.store_counted(barrier, name, stored, counted).await?;
        if !reason.is_empty() {
            tracing::warn!(key = name, version, reason, "key rotated");
        }
        self.cache()
            .keys
            .get(name)
            .cloned()
            .ok_or_else(|| not_found(name))
    }

    /// Writes `stored` and caches it with its newest version at `used`.
    async fn store_counted(
        &self,
        barrier: &Barrier,
        name: &str,
        stored: StoredKey,
        used: u64,
    ) -> Result<(), Error> {
        // Serialising numbers and hex strings cannot fail.
        let encoded = Zeroizing::new(serde_json::to_vec(&stored).unwrap_or_default());
        barrier.put(&storage_path(name), &encoded).await?;
        let mut cache = self.cache();
        cache.generation += 1;
        cache
            .keys
            .insert(name.to_string(), Arc::new(NamedKey::counted(stored, used)));
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
            versions: vec![StoredVersion {
                created_unix: now,
                key: Material(SecretKey::generate()),
                reserved: 0,
            }],
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
            stored.versions.push(StoredVersion {
                created_unix: now_unix(),
                key: Material(SecretKey::generate()),
                reserved: 0,
            });
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
