//! A named key as stored behind the barrier (`keys/<name>`, JSON with the
//! material as hex) and as served (ciphers ready for each version).

use std::sync::atomic::AtomicU64;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::KeyInit;
use serde::{Deserialize, Serialize};

use super::super::material::Material;
use crate::barrier::Barrier;
use crate::error::Error;
use crate::secret::SecretKey;
use crate::time::now_unix;

/// Where the keys are stored.
pub(super) const PREFIX: &str = "keys/";

#[derive(Serialize, Deserialize)]
pub(super) struct StoredVersion {
    pub(super) created_unix: u64,
    key: Material,
    /// Encryptions this version may have made: a reservation written ahead
    /// of use, so a crash over-counts and never under-counts.
    #[serde(default)]
    pub(super) reserved: u64,
}

#[derive(Serialize, Deserialize)]
pub(super) struct StoredKey {
    pub(super) created_unix: u64,
    pub(super) min_decryption_version: u32,
    pub(super) deletion_allowed: bool,
    /// Each request's context derives the key it uses (Vault's `derived`);
    /// absent in keys stored before it existed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) derived: bool,
    /// Version 1 first.
    pub(super) versions: Vec<StoredVersion>,
}

impl StoredVersion {
    /// A new version with fresh material, made now.
    pub(super) fn generate() -> Self {
        Self {
            created_unix: now_unix(),
            key: Material(SecretKey::generate()),
            reserved: 0,
        }
    }
}

/// A key as served: ciphers ready for each version.
pub(super) struct NamedKey {
    pub(super) stored: StoredKey,
    pub(super) ciphers: Vec<Aes256Gcm>,
    /// Encryptions by the newest version so far (at least).
    pub(super) encryptions: AtomicU64,
}

impl NamedKey {
    /// A key as read from storage: its newest version is assumed to have
    /// used its whole reservation.
    pub(super) fn new(stored: StoredKey) -> Self {
        let used = stored.versions.last().map_or(0, |v| v.reserved);
        Self::counted(stored, used)
    }

    /// A key whose newest version has made `used` encryptions.
    pub(super) fn counted(stored: StoredKey, used: u64) -> Self {
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

    pub(super) fn reserved(&self) -> u64 {
        self.stored.versions.last().map_or(0, |v| v.reserved)
    }

    /// Version `index + 1`'s material, for keys derived from it.
    pub(super) fn material(&self, index: usize) -> &[u8] {
        self.stored.versions[index].key.0.expose()
    }

    pub(super) fn latest(&self) -> u32 {
        u32::try_from(self.stored.versions.len()).unwrap_or(u32::MAX)
    }
}

pub(super) fn storage_path(name: &str) -> String {
    format!("{PREFIX}{name}")
}

/// Reads and decodes key `name`; a key without versions is damaged.
pub(super) async fn read_stored(barrier: &Barrier, name: &str) -> Result<StoredKey, Error> {
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

pub(super) fn not_found(name: &str) -> Error {
    Error::NotFound(format!("no key is named {name:?}"))
}
