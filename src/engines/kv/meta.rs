//! What is kept about a path (its versions, its own settings) and the
//! store-wide kv settings, as stored behind the barrier.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::barrier::Barrier;
use crate::config::MAX_KV_VERSIONS;
use crate::error::Error;
use crate::storage::Batch;
use crate::text;

const META_PREFIX: &str = "kv-meta/";
const DATA_PREFIX: &str = "kv-data/";
/// The store-wide settings written through `secret/config`.
const CONFIG_KEY: &str = "kv-config";

/// Most custom metadata entries on one path, as Vault's.
pub const MAX_CUSTOM_KEYS: usize = 64;
/// Longest custom metadata key, in bytes, as Vault's.
pub const MAX_CUSTOM_KEY_LEN: usize = 128;
/// Longest custom metadata value, in bytes, as Vault's.
pub const MAX_CUSTOM_VALUE_LEN: usize = 512;

/// What is kept about one version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// When it was written.
    pub created_unix: u64,
    /// When it was soft-deleted; 0: it was not.
    pub deleted_unix: u64,
    /// Its data is gone for good.
    pub destroyed: bool,
}

/// A path's metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// The newest version written (it may be deleted or destroyed); 0
    /// when only the metadata was written.
    pub current_version: u64,
    /// When the path's first version (or its metadata) was written.
    pub created_unix: u64,
    /// When its newest version (or its metadata) was written.
    pub updated_unix: u64,
    /// Every version still kept, oldest first.
    pub versions: BTreeMap<u64, VersionInfo>,
    /// The most versions this path keeps; 0: the store's setting.
    #[serde(default)]
    pub max_versions: u32,
    /// Writes of this path must give check-and-set.
    #[serde(default)]
    pub cas_required: bool,
    /// The operator's notes about the path (not secret).
    #[serde(default)]
    pub custom_metadata: BTreeMap<String, String>,
    /// How many times the metadata itself was written.
    #[serde(default)]
    pub metadata_version: u64,
}

impl Metadata {
    /// A path with nothing written yet, at `now`.
    pub(super) fn new(now: u64) -> Self {
        Self {
            current_version: 0,
            created_unix: now,
            updated_unix: now,
            versions: BTreeMap::new(),
            max_versions: 0,
            cas_required: false,
            custom_metadata: BTreeMap::new(),
            metadata_version: 0,
        }
    }

    /// The oldest version kept; 0 when none.
    pub fn oldest_version(&self) -> u64 {
        self.versions.keys().next().copied().unwrap_or(0)
    }
}

/// The store-wide settings of `secret/config`; 0 and false defer to the
/// `kv` block of the configuration file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// The most versions a path keeps; 0: `kv { max_versions }`.
    pub max_versions: u32,
    /// Every write must give check-and-set.
    pub cas_required: bool,
}

/// Refuses a `max_versions` over [`MAX_KV_VERSIONS`] (0: the default).
pub fn check_max_versions(max: u32) -> Result<(), Error> {
    if max > MAX_KV_VERSIONS {
        return Err(Error::InvalidArgument(format!(
            "max_versions is {max}; the most is {MAX_KV_VERSIONS}"
        )));
    }
    Ok(())
}

/// A change of a path's own settings; `None` keeps what is there.
#[derive(Clone, Debug, Default)]
pub struct MetadataUpdate {
    /// See [`Metadata::max_versions`].
    pub max_versions: Option<u32>,
    /// See [`Metadata::cas_required`].
    pub cas_required: Option<bool>,
    /// Replaces the custom metadata.
    pub custom_metadata: Option<BTreeMap<String, String>>,
}

impl MetadataUpdate {
    /// Checks `max_versions` and the custom metadata against Vault's
    /// limits.
    pub fn check(&self) -> Result<(), Error> {
        if let Some(max) = self.max_versions {
            check_max_versions(max)?;
        }
        let Some(custom) = &self.custom_metadata else {
            return Ok(());
        };
        if custom.len() > MAX_CUSTOM_KEYS {
            return Err(Error::InvalidArgument(format!(
                "custom_metadata has {} keys; the limit is {MAX_CUSTOM_KEYS}",
                custom.len()
            )));
        }
        for (key, value) in custom {
            if key.is_empty() || key.len() > MAX_CUSTOM_KEY_LEN {
                return Err(Error::InvalidArgument(format!(
                    "custom_metadata key {} must be 1 to {MAX_CUSTOM_KEY_LEN} bytes",
                    text::quote(key)
                )));
            }
            if value.len() > MAX_CUSTOM_VALUE_LEN {
                return Err(Error::InvalidArgument(format!(
                    "the custom_metadata value of {} is longer than {MAX_CUSTOM_VALUE_LEN} bytes",
                    text::quote(key)
                )));
            }
            if let Err(why) = text::check_chars(key).and_then(|()| text::check_chars(value)) {
                return Err(Error::InvalidArgument(format!(
                    "custom_metadata entry {} is not valid: {why}",
                    text::quote(key)
                )));
            }
        }
        Ok(())
    }

    /// Applies the change to `meta`.
    pub(super) fn apply(self, meta: &mut Metadata) {
        if let Some(max) = self.max_versions {
            meta.max_versions = max;
        }
        if let Some(required) = self.cas_required {
            meta.cas_required = required;
        }
        if let Some(custom) = self.custom_metadata {
            meta.custom_metadata = custom;
        }
        meta.metadata_version += 1;
    }
}

/// A JSON merge patch of a path's own settings (Vault's PATCH of
/// `metadata/<path>`); `None` keeps a setting.
#[derive(Clone, Debug, Default)]
pub struct MetadataPatch {
    /// See [`Metadata::max_versions`]; 0 puts back the store's.
    pub max_versions: Option<u32>,
    /// See [`Metadata::cas_required`].
    pub cas_required: Option<bool>,
    /// Removes every custom metadata entry before the ones below apply.
    pub clear_custom: bool,
    /// Entries set (`Some`) or removed (`None`).
    pub custom_metadata: BTreeMap<String, Option<String>>,
}

impl MetadataPatch {
    /// Checks the entries the patch sets against Vault's limits (the
    /// number of entries is checked on the merged result).
    pub fn check(&self) -> Result<(), Error> {
        // Removals too: a patch of 100k keys set to null would otherwise
        // pass, and its audit line hold every one.
        if self.custom_metadata.len() > 2 * MAX_CUSTOM_KEYS {
            return Err(Error::InvalidArgument(format!(
                "the patch names {} custom_metadata keys; the most is {}",
                self.custom_metadata.len(),
                2 * MAX_CUSTOM_KEYS
            )));
        }
        if let Some(key) = self
            .custom_metadata
            .keys()
            .find(|key| key.is_empty() || key.len() > MAX_CUSTOM_KEY_LEN)
        {
            return Err(Error::InvalidArgument(format!(
                "custom_metadata key {} must be 1 to {MAX_CUSTOM_KEY_LEN} bytes",
                text::quote(key)
            )));
        }
        MetadataUpdate {
            max_versions: self.max_versions,
            cas_required: None,
            custom_metadata: Some(
                self.custom_metadata
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
                    .collect(),
            ),
        }
        .check()
    }

    /// The change the patch makes to `meta`'s settings, as a whole update.
    pub(super) fn merged(self, meta: &Metadata) -> MetadataUpdate {
        let mut custom = if self.clear_custom {
            BTreeMap::new()
        } else {
            meta.custom_metadata.clone()
        };
        for (key, value) in self.custom_metadata {
            match value {
                Some(value) => custom.insert(key, value),
                None => custom.remove(&key),
            };
        }
        MetadataUpdate {
            max_versions: self.max_versions,
            cas_required: self.cas_required,
            custom_metadata: Some(custom),
        }
    }
}

pub(super) fn meta_key(path: &str) -> String {
    format!("{META_PREFIX}{path}")
}

pub(super) fn meta_prefix() -> &'static str {
    META_PREFIX
}

pub(super) fn data_key(path: &str, version: u64) -> String {
    format!("{DATA_PREFIX}{version}/{path}")
}

pub(super) async fn read_meta(barrier: &Barrier, path: &str) -> Result<Option<Metadata>, Error> {
    let Some(stored) = barrier.get(&meta_key(path)).await? else {
        return Ok(None);
    };
    serde_json::from_slice(stored.expose())
        .map(Some)
        .map_err(|e| {
            Error::Internal(format!(
                "the metadata of kv path {shown_path} is damaged: {e}",
                shown_path = crate::text::quote(path)
            ))
        })
}

pub(super) async fn existing_meta(barrier: &Barrier, path: &str) -> Result<Metadata, Error> {
    read_meta(barrier, path).await?.ok_or_else(|| {
        Error::NotFound(format!(
            "no secret at kv path {shown_path}",
            shown_path = crate::text::quote(path)
        ))
    })
}

pub(super) fn put_meta(barrier: &Barrier, batch: &mut Batch, path: &str, meta: &Metadata) {
    let key = meta_key(path);
    // Serialising numbers, booleans and strings cannot fail.
    let encoded = serde_json::to_vec(meta).unwrap_or_default();
    batch.put(key.clone(), barrier.encrypt(&key, &encoded));
}

pub(super) async fn read_config(barrier: &Barrier) -> Result<Config, Error> {
    let Some(stored) = barrier.get(CONFIG_KEY).await? else {
        return Ok(Config::default());
    };
    serde_json::from_slice(stored.expose())
        .map_err(|e| Error::Internal(format!("the kv settings (secret/config) are damaged: {e}")))
}

pub(super) async fn write_config(barrier: &Barrier, config: &Config) -> Result<(), Error> {
    let encoded = serde_json::to_vec(config).unwrap_or_default();
    barrier.put(CONFIG_KEY, &encoded).await?;
    Ok(())
}
