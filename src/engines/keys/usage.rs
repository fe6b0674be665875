//! Counting encryptions per key version. AES-GCM with random 96-bit nonces
//! stays safe for about 2^32 encryptions under one key: each version's
//! count is reserved in storage ahead of use (a crash over-counts, never
//! under-counts), and a version near the bound is replaced by a new one.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use zeroize::Zeroizing;

use super::stored::{NamedKey, StoredKey, StoredVersion, not_found, read_stored, storage_path};
use super::{Keys, MAX_VERSIONS};
use crate::barrier::Barrier;
use crate::error::Error;

/// Encryptions reserved per storage write.
#[cfg(not(test))]
pub(super) const RESERVE_BLOCK: u64 = 1 << 20;
#[cfg(test)]
pub(super) const RESERVE_BLOCK: u64 = 4;
/// Encryptions one version makes before a new version takes over: 2^32
/// (AES-GCM with random 96-bit nonces, NIST SP 800-38D), less a margin for
/// the calls in flight while a reservation is written.
#[cfg(not(test))]
pub(super) const ENCRYPTIONS_PER_VERSION: u64 = (1 << 32) - (1 << 24);
#[cfg(test)]
pub(super) const ENCRYPTIONS_PER_VERSION: u64 = 10;

impl Keys {
    /// Counts `n` encryptions by `key`'s newest version; returns the key to
    /// encrypt with. Past the reservation it writes a new one; past
    /// [`ENCRYPTIONS_PER_VERSION`] it adds a version first (an automatic
    /// rotation), so no version exceeds the AES-GCM random-nonce bound.
    pub(super) async fn count_encryptions(
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
            stored.versions.push(StoredVersion::generate());
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
}
