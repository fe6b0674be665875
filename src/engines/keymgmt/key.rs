//! A key of the Key Management engine as stored (`keymgmt/key/<name>`
//! behind the barrier): versions of 32 bytes made by strongroom, which only
//! leave it wrapped for a KMS import. These keys rotate only when told to:
//! every version must be distributed.

use serde::{Deserialize, Serialize};

use super::super::material::Material;
use crate::error::Error;
use crate::secret::SecretKey;
use crate::text;
use crate::time::now_unix;

/// Where the keys are stored.
pub(super) const PREFIX: &str = "keymgmt/key/";

/// The one type AWS KMS imports as a symmetric key.
pub const AES256_GCM96: &str = "aes256-gcm96";

/// Most versions a key may have.
pub const MAX_VERSIONS: u32 = 1_000;

#[derive(Serialize, Deserialize)]
pub(super) struct StoredVersion {
    pub(super) created_unix: u64,
    material: Material,
}

impl StoredVersion {
    fn generate() -> Self {
        Self {
            created_unix: now_unix(),
            material: Material(SecretKey::generate()),
        }
    }

    /// The version's material, for the wrap of an import.
    pub(super) fn material(&self) -> &SecretKey {
        &self.material.0
    }
}

#[derive(Serialize, Deserialize)]
pub(super) struct StoredKey {
    #[serde(rename = "type")]
    pub(super) key_type: String,
    pub(super) created_unix: u64,
    pub(super) deletion_allowed: bool,
    /// Versions below this are disabled where distributed; 0: all enabled.
    pub(super) min_enabled_version: u32,
    /// Version 1 first.
    pub(super) versions: Vec<StoredVersion>,
}

/// How a key is made (Vault's `type` and `deletion_allowed`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySpec {
    /// `aes256-gcm96`.
    pub key_type: String,
    /// Deleting the key is allowed.
    pub deletion_allowed: bool,
}

/// A change to a key; `None` leaves a setting as it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyUpdate {
    /// Versions below it are disabled where distributed; 0: all enabled.
    pub min_enabled_version: Option<u32>,
    /// Deleting the key is allowed.
    pub deletion_allowed: Option<bool>,
}

/// Vault's write of a key: `None` leaves a setting as it is (or, for a new
/// key, as its default: `aes256-gcm96`, deletion not allowed, all enabled).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyWrite {
    /// The type, only when the key is made.
    pub key_type: Option<String>,
    /// Deleting the key is allowed.
    pub deletion_allowed: Option<bool>,
    /// Versions below it are disabled where distributed; 0: all enabled.
    pub min_enabled_version: Option<u32>,
}

/// What a read of a key shows: never material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key's name.
    pub name: String,
    /// Its type.
    pub key_type: String,
    /// Deleting it is allowed.
    pub deletion_allowed: bool,
    /// Versions below it are disabled where distributed; 0: all enabled.
    pub min_enabled_version: u32,
    /// The newest version.
    pub latest_version: u32,
    /// Each version's creation time, version 1 first.
    pub versions: Vec<u64>,
}

/// Refuses a type other than the one AWS KMS imports.
fn check_type(key_type: &str) -> Result<(), Error> {
    if key_type == AES256_GCM96 {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!(
        "type {} cannot be distributed to AWS KMS, which imports symmetric keys only: use \"{AES256_GCM96}\"",
        text::quote(key_type)
    )))
}

impl KeyWrite {
    /// Checks the settings given before anything is looked up (so a
    /// malformed request is refused, and bounded, before its audit line).
    pub fn check_given(&self) -> Result<(), Error> {
        self.key_type.as_deref().map_or(Ok(()), check_type)
    }
}

impl StoredKey {
    /// A new key of `spec` with version 1.
    pub(super) fn create(spec: &KeySpec) -> Result<Self, Error> {
        check_type(&spec.key_type)?;
        Ok(Self {
            key_type: spec.key_type.clone(),
            created_unix: now_unix(),
            deletion_allowed: spec.deletion_allowed,
            min_enabled_version: 0,
            versions: vec![StoredVersion::generate()],
        })
    }

    pub(super) fn latest_version(&self) -> u32 {
        u32::try_from(self.versions.len()).unwrap_or(u32::MAX)
    }

    /// Adds a version.
    pub(super) fn rotate(&mut self, name: &str) -> Result<(), Error> {
        if self.latest_version() >= MAX_VERSIONS {
            return Err(Error::FailedPrecondition(format!(
                "key {} has {MAX_VERSIONS} versions, the most a key may have",
                text::quote(name)
            )));
        }
        self.versions.push(StoredVersion::generate());
        Ok(())
    }

    /// Applies `update`, refused as a whole when a setting is out of range.
    pub(super) fn update(&mut self, name: &str, update: KeyUpdate) -> Result<(), Error> {
        if let Some(min) = update.min_enabled_version {
            if min > self.latest_version() {
                return Err(Error::InvalidArgument(format!(
                    "min_enabled_version {min} is above key {}'s newest version, {}; use 0 to enable every version",
                    text::quote(name),
                    self.latest_version()
                )));
            }
            self.min_enabled_version = min;
        }
        if let Some(allowed) = update.deletion_allowed {
            self.deletion_allowed = allowed;
        }
        Ok(())
    }

    pub(super) fn info(&self, name: &str) -> KeyInfo {
        KeyInfo {
            name: name.to_string(),
            key_type: self.key_type.clone(),
            deletion_allowed: self.deletion_allowed,
            min_enabled_version: self.min_enabled_version,
            latest_version: self.latest_version(),
            versions: self.versions.iter().map(|v| v.created_unix).collect(),
        }
    }
}

/// The policy path of key `name` (the API's `keymgmt/key/<name>`).
pub fn policy_path(name: &str) -> String {
    format!("keymgmt/key/{name}")
}

/// Where key `name` is stored.
pub(super) fn storage_path(name: &str) -> String {
    format!("{PREFIX}{name}")
}
