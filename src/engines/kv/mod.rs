//! Versioned key/value secrets (JSON objects, [`Document`]) at
//! slash-separated paths, behind the barrier, as Vault's kv-v2 keeps them.
//!
//! Storage layout:
//! - `kv-meta/<path>`: the path's metadata (JSON, [`Metadata`]): its
//!   current version and every version still kept, with creation, deletion
//!   and destruction marks, and the path's own settings;
//! - `kv-data/<version>/<path>`: one version's data (a JSON object);
//! - `kv-config`: the store-wide settings of `secret/config` ([`Config`]).
//!
//! Stores written before versioning kept one unversioned secret at
//! `kv/<path>`; `upgrade_unversioned` turns each into version 1 at unseal.
//!
//! A write is one storage transaction: the new metadata, the new version's
//! data, and the removal of versions pruned past the path's most versions.
//! Writers of one path are serialised by a lock striped over paths, so
//! check-and-set compares against the version the write will replace.
//!
//! Paths reach [`Kv`]'s methods checked by [`validate_path`]: every action
//! on `secret/` declares it, and the gate runs it before authenticating.

mod document;
mod meta;
mod path;
mod rules;
mod upgrade;

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::access::{Capability, Session};
use crate::barrier::{Barrier, Hooks};
pub use crate::config::KvSettings;
use crate::error::Error;
use crate::storage::Batch;
use crate::time::now_unix;

pub use document::{Document, kind, merge_patch};
pub use meta::{Config, Metadata, MetadataPatch, MetadataUpdate, VersionInfo, check_max_versions};
pub use path::{MAX_PATH_LEN, folder, validate_path};

use meta::{data_key, existing_meta, meta_key, put_meta, read_config, read_meta, write_config};
use rules::{check_cas, chosen, kept};

/// Most fields in one secret.
pub const MAX_FIELDS: usize = 1000;
/// Longest accepted field name, in bytes.
pub const MAX_FIELD_NAME_LEN: usize = 256;
/// Locks striped over paths: writers of different paths rarely wait.
const WRITE_STRIPES: usize = 64;
/// Vault's sentence for a write whose check-and-set does not match.
pub const CAS_MISMATCH: &str = "check-and-set parameter did not match the current version";
/// Vault's sentence for a write without check-and-set where it is required.
pub const CAS_REQUIRED: &str = "check-and-set parameter required for this call";

/// One version read back.
pub struct Versioned {
    /// The data.
    pub data: Document,
    /// Its version number.
    pub version: u64,
    /// When it was written.
    pub created_unix: u64,
    /// The path's custom metadata.
    pub custom_metadata: BTreeMap<String, String>,
}

/// What a read finds at a version that exists in the metadata.
pub enum Lookup {
    /// The version's data.
    Live(Versioned),
    /// The version is deleted or destroyed: its marks, no data.
    Gone {
        /// The version.
        version: u64,
        /// Its marks.
        info: VersionInfo,
        /// The path's custom metadata.
        custom_metadata: BTreeMap<String, String>,
    },
}

/// A version just written.
#[derive(Debug)]
pub struct Written {
    /// Its number.
    pub version: u64,
    /// When it was written.
    pub created_unix: u64,
    /// The path's custom metadata.
    pub custom_metadata: BTreeMap<String, String>,
}

/// The per-path write locks.
struct WriteLocks([tokio::sync::Mutex<()>; WRITE_STRIPES]);

impl Default for WriteLocks {
    fn default() -> Self {
        Self(std::array::from_fn(|_| tokio::sync::Mutex::new(())))
    }
}

impl WriteLocks {
    fn of(&self, path: &str) -> &tokio::sync::Mutex<()> {
        let digest = Sha256::digest(path.as_bytes());
        &self.0[usize::from(digest[0]) % WRITE_STRIPES]
    }
}

/// Versioned secrets: the `kv` block's limits and the per-path write locks.
pub struct Kv {
    settings: KvSettings,
    writes: WriteLocks,
}

impl Kv {
    /// The engine with the `kv` block's `settings`.
    pub fn new(settings: KvSettings) -> Self {
        Self {
            settings,
            writes: WriteLocks::default(),
        }
    }

    /// The `kv` block in force.
    pub fn settings(&self) -> KvSettings {
        self.settings
    }

    /// The most versions `meta`'s path keeps: its own setting, else the
    /// store's (`secret/config`), else the `kv` block's.
    pub fn max_versions(&self, meta: &Metadata, config: &Config) -> u32 {
        [meta.max_versions, config.max_versions]
            .into_iter()
            .find(|n| *n > 0)
            .unwrap_or(self.settings.max_versions)
    }

    /// Refuses a secret without fields (strongroom's own API; Vault's
    /// takes an empty object).
    pub fn check_not_empty(path: &str, document: &Document) -> Result<(), Error> {
        if document.object().is_empty() {
            return Err(Error::InvalidArgument(format!(
                "the secret for kv path {shown_path} has no fields; write at least one name=value",
                shown_path = crate::text::quote(path)
            )));
        }
        Ok(())
    }

    /// Checks a secret before anything else is done with it: at most
    /// [`MAX_FIELDS`] fields, names of 1 to [`MAX_FIELD_NAME_LEN`] bytes
    /// without control, bidi or invisible characters, no value and not the
    /// whole document (as JSON) over `max_value_size`.
    pub fn check_document(&self, path: &str, document: &Document) -> Result<(), Error> {
        rules::check_fields(path, document, self.settings.max_value_size)
    }

    /// Writes a new version of the secret at `path`, as [`check_cas`]
    /// allows. Needs `create` for a new path, `update` for an existing
    /// one, decided under the path's lock.
    pub async fn put(
        &self,
        session: &Session,
        path: &str,
        document: &Document,
        cas: Option<u64>,
    ) -> Result<Written, Error> {
        self.check_document(path, document)?;
        let barrier = session.barrier()?;
        let _guard = self.writes.of(path).lock().await;
        let meta = read_meta(barrier, path).await?;
        session.require(if meta.is_some() {
            Capability::Update
        } else {
            Capability::Create
        })?;
        let config = read_config(barrier).await?;
        check_cas(path, meta.as_ref(), &config, cas)?;
        self.write_version(barrier, path, meta, &config, document)
            .await
    }

    /// Merges `patch` (RFC 7386) into the current version of `path` and
    /// writes the result as a new version, as [`check_cas`] allows. The
    /// current version must be readable: a path without one is NOT_FOUND.
    pub async fn patch(
        &self,
        session: &Session,
        path: &str,
        patch: &Map<String, Value>,
        cas: Option<u64>,
    ) -> Result<Written, Error> {
        let barrier = session.barrier()?;
        let _guard = self.writes.of(path).lock().await;
        let meta = existing_meta(barrier, path).await?;
        let config = read_config(barrier).await?;
        check_cas(path, Some(&meta), &config, cas)?;
        let Lookup::Live(current) = self.find(barrier, path, &meta, 0).await? else {
            return Err(Error::NotFound(format!(
                "the current version of kv path {shown_path} is deleted or destroyed; there is nothing to patch",
                shown_path = crate::text::quote(path)
            )));
        };
        let mut merged = Value::Object(current.data.object());
        merge_patch(&mut merged, &Value::Object(patch.clone()));
        let merged = match merged {
            Value::Object(object) => Document::from_object(&object),
            _ => Document::from_object(&Map::new()),
        };
        self.check_document(path, &merged)?;
        self.write_version(barrier, path, Some(meta), &config, &merged)
            .await
    }

    /// Writes `document` as the version after `meta`'s current one,
    /// pruning versions past the path's most, in one transaction.
    async fn write_version(
        &self,
        barrier: &Barrier,
        path: &str,
        meta: Option<Metadata>,
        config: &Config,
        document: &Document,
    ) -> Result<Written, Error> {
        let now = now_unix();
        let mut meta = meta.unwrap_or_else(|| Metadata::new(now));
        let version = meta.current_version + 1;
        meta.current_version = version;
        meta.updated_unix = now;
        meta.versions.insert(
            version,
            VersionInfo {
                created_unix: now,
                deleted_unix: 0,
                destroyed: false,
            },
        );
        let mut batch = Batch::new();
        let key = data_key(path, version);
        batch.put(key.clone(), barrier.encrypt(&key, document.bytes()));
        let keep = usize::try_from(self.max_versions(&meta, config)).unwrap_or(usize::MAX);
        while meta.versions.len() > keep {
            let Some((old, info)) = meta.versions.pop_first() else {
                break;
            };
            if !info.destroyed {
                batch.delete(data_key(path, old));
            }
        }
        put_meta(barrier, &mut batch, path, &meta);
        barrier.write(batch).await?;
        Ok(Written {
            version,
            created_unix: now,
            custom_metadata: meta.custom_metadata,
        })
    }

    /// Reads a version of the secret at `path` (`version` 0: the current
    /// one); a deleted or destroyed version is NOT_FOUND, saying which.
    pub async fn get(
        &self,
        session: &Session,
        path: &str,
        version: u64,
    ) -> Result<Versioned, Error> {
        match self.lookup(session, path, version).await? {
            Lookup::Live(read) => Ok(read),
            Lookup::Gone { version, info, .. } if info.destroyed => Err(Error::NotFound(format!(
                "version {version} of kv path {shown_path} was destroyed",
                shown_path = crate::text::quote(path)
            ))),
            Lookup::Gone { version, .. } => Err(Error::NotFound(format!(
                "version {version} of kv path {shown_path} is deleted; `strongroom kv undelete --versions {version} {path}` restores it",
                shown_path = crate::text::quote(path)
            ))),
        }
    }

    /// As [`Kv::get`], but a deleted or destroyed version is found with its
    /// marks, as Vault's HTTP API answers it. A path or version that does
    /// not exist is NOT_FOUND.
    pub async fn lookup(
        &self,
        session: &Session,
        path: &str,
        version: u64,
    ) -> Result<Lookup, Error> {
        let barrier = session.barrier()?;
        let meta = existing_meta(barrier, path).await?;
        self.find(barrier, path, &meta, version).await
    }

    async fn find(
        &self,
        barrier: &Barrier,
        path: &str,
        meta: &Metadata,
        version: u64,
    ) -> Result<Lookup, Error> {
        let version = if version == 0 {
            meta.current_version
        } else {
            version
        };
        let info = meta.versions.get(&version).ok_or_else(|| {
            Error::NotFound(format!(
                "kv path {shown_path} has no version {version}{}",
                kept(meta),
                shown_path = crate::text::quote(path)
            ))
        })?;
        if info.destroyed || info.deleted_unix != 0 {
            return Ok(Lookup::Gone {
                version,
                info: info.clone(),
                custom_metadata: meta.custom_metadata.clone(),
            });
        }
        let stored = match barrier.get(&data_key(path, version)).await? {
            Some(stored) => stored,
            // Reads take no lock: a write that pruned this version, or a
            // destroy, may have committed since the metadata was read. The
            // metadata as it is now says what happened; a version still
            // live there without its data is damage.
            None => {
                let now = existing_meta(barrier, path).await?;
                match now.versions.get(&version) {
                    Some(again) if !again.destroyed && again.deleted_unix == 0 => {
                        return Err(Error::Internal(format!(
                            "version {version} of kv path {shown_path} is in its metadata but its data is missing",
                            shown_path = crate::text::quote(path)
                        )));
                    }
                    Some(again) => {
                        return Ok(Lookup::Gone {
                            version,
                            info: again.clone(),
                            custom_metadata: now.custom_metadata.clone(),
                        });
                    }
                    None => {
                        return Err(Error::NotFound(format!(
                            "kv path {shown_path} has no version {version}{}",
                            kept(&now),
                            shown_path = crate::text::quote(path)
                        )));
                    }
                }
            }
        };
        Ok(Lookup::Live(Versioned {
            data: Document::stored(path, stored.expose())?,
            version,
            created_unix: info.created_unix,
            custom_metadata: meta.custom_metadata.clone(),
        }))
    }

    /// Checks the versions a delete, undelete or destroy names: every
    /// mark but a delete needs at least one.
    pub fn check_versions(mark: Mark, versions: &[u64]) -> Result<(), Error> {
        if versions.is_empty() && mark != Mark::Delete {
            return Err(Error::InvalidArgument(format!(
                "name the versions to {}, such as --versions 1,2",
                mark.verb()
            )));
        }
        Ok(())
    }

    /// Soft-deletes versions (none given: the current one; `undelete`
    /// brings them back), restores soft-deleted ones, or removes versions'
    /// data for good, as `mark` says. A path or version that does not
    /// exist is NOT_FOUND, and nothing is changed.
    pub async fn mark(
        &self,
        session: &Session,
        path: &str,
        versions: &[u64],
        mark: Mark,
    ) -> Result<(), Error> {
        self.mark_versions(session, path, versions, mark, true)
            .await
    }

    /// As [`Kv::mark`], but as Vault's HTTP API: versions not kept, and a
    /// path that does not exist, are passed over.
    pub async fn mark_kept(
        &self,
        session: &Session,
        path: &str,
        versions: &[u64],
        mark: Mark,
    ) -> Result<(), Error> {
        self.mark_versions(session, path, versions, mark, false)
            .await
    }

    async fn mark_versions(
        &self,
        session: &Session,
        path: &str,
        versions: &[u64],
        mark: Mark,
        strict: bool,
    ) -> Result<(), Error> {
        Self::check_versions(mark, versions)?;
        let barrier = session.barrier()?;
        let _guard = self.writes.of(path).lock().await;
        let mut meta = match read_meta(barrier, path).await? {
            Some(meta) => meta,
            None if !strict => return Ok(()),
            None => {
                return Err(Error::NotFound(format!(
                    "no secret at kv path {shown_path}",
                    shown_path = crate::text::quote(path)
                )));
            }
        };
        let versions = if versions.is_empty() {
            vec![meta.current_version]
        } else {
            chosen(path, versions, &meta, strict)?
        };
        let now = now_unix();
        let mut batch = Batch::new();
        for version in versions {
            let Some(info) = meta.versions.get_mut(&version) else {
                // The current version of a path whose versions were all pruned.
                continue;
            };
            match mark {
                // A destroyed version stays as it is, as Vault's.
                Mark::Delete if info.deleted_unix == 0 && !info.destroyed => {
                    info.deleted_unix = now
                }
                Mark::Undelete if !info.destroyed => info.deleted_unix = 0,
                Mark::Destroy if !info.destroyed => {
                    info.destroyed = true;
                    batch.delete(data_key(path, version));
                }
                _ => {}
            }
        }
        put_meta(barrier, &mut batch, path, &meta);
        barrier.write(batch).await?;
        Ok(())
    }

    /// The metadata of `path`.
    pub async fn metadata(&self, session: &Session, path: &str) -> Result<Metadata, Error> {
        existing_meta(session.barrier()?, path).await
    }

    /// Changes the path's own settings, creating its metadata if it has
    /// none (`create` then, `update` otherwise, decided under the path's
    /// lock).
    pub async fn put_metadata(
        &self,
        session: &Session,
        path: &str,
        update: MetadataUpdate,
    ) -> Result<(), Error> {
        update.check()?;
        let barrier = session.barrier()?;
        let _guard = self.writes.of(path).lock().await;
        let meta = read_meta(barrier, path).await?;
        session.require(if meta.is_some() {
            Capability::Update
        } else {
            Capability::Create
        })?;
        let now = now_unix();
        let mut meta = meta.unwrap_or_else(|| Metadata::new(now));
        update.apply(&mut meta);
        meta.updated_unix = now;
        let mut batch = Batch::new();
        put_meta(barrier, &mut batch, path, &meta);
        barrier.write(batch).await?;
        Ok(())
    }

    /// Merges `patch` into the settings of `path`, which must exist
    /// (NOT_FOUND otherwise, as Vault answers), under the path's lock.
    pub async fn patch_metadata(
        &self,
        session: &Session,
        path: &str,
        patch: MetadataPatch,
    ) -> Result<(), Error> {
        patch.check()?;
        let barrier = session.barrier()?;
        let _guard = self.writes.of(path).lock().await;
        let mut meta = existing_meta(barrier, path).await?;
        let update = patch.merged(&meta);
        update.check()?;
        update.apply(&mut meta);
        meta.updated_unix = now_unix();
        let mut batch = Batch::new();
        put_meta(barrier, &mut batch, path, &meta);
        barrier.write(batch).await?;
        Ok(())
    }

    /// The store-wide settings (`secret/config`).
    pub async fn config(&self, session: &Session) -> Result<Config, Error> {
        read_config(session.barrier()?).await
    }

    /// Replaces the store-wide settings.
    pub async fn set_config(&self, session: &Session, config: Config) -> Result<(), Error> {
        self.update_config(
            session,
            Some(config.max_versions),
            Some(config.cas_required),
        )
        .await
        .map(|_| ())
    }

    /// Changes the store-wide settings given (`None` keeps one), under a
    /// lock so that two changes of different settings both hold; returns
    /// the settings now in force.
    pub async fn update_config(
        &self,
        session: &Session,
        max_versions: Option<u32>,
        cas_required: Option<bool>,
    ) -> Result<Config, Error> {
        if let Some(max) = max_versions {
            meta::check_max_versions(max)?;
        }
        let barrier = session.barrier()?;
        // No secret path starts with a slash: this stripe's key is the config's own.
        let _guard = self.writes.of("/config").lock().await;
        let mut config = read_config(barrier).await?;
        if let Some(max) = max_versions {
            config.max_versions = max;
        }
        if let Some(required) = cas_required {
            config.cas_required = required;
        }
        write_config(barrier, &config).await?;
        Ok(config)
    }

    /// Removes the path: every version and its metadata, in one
    /// transaction.
    pub async fn delete_metadata(&self, session: &Session, path: &str) -> Result<(), Error> {
        let barrier = session.barrier()?;
        let _guard = self.writes.of(path).lock().await;
        let meta = existing_meta(barrier, path).await?;
        let mut batch = Batch::new();
        for (version, info) in &meta.versions {
            if !info.destroyed {
                batch.delete(data_key(path, *version));
            }
        }
        batch.delete(meta_key(path));
        barrier.write(batch).await?;
        Ok(())
    }

    /// The names directly under `prefix`; sub-folders end in `/`.
    pub async fn list(&self, session: &Session, prefix: &str) -> Result<Vec<String>, Error> {
        let full = format!("{}{}", meta::meta_prefix(), folder(prefix)?);
        let mut names = BTreeSet::new();
        for key in session.barrier()?.list(&full).await? {
            let rest = &key[full.len()..];
            match rest.split_once('/') {
                Some((dir, _)) => names.insert(format!("{dir}/")),
                None => names.insert(rest.to_string()),
            };
        }
        Ok(names.into_iter().collect())
    }
}

#[async_trait]
impl Hooks for Kv {
    /// Secrets written before versioning become version 1 of their paths
    /// before the first request.
    async fn opening(&self, barrier: &Barrier) -> Result<(), Error> {
        upgrade::upgrade_unversioned(barrier).await
    }
}

/// What a delete, undelete or destroy does to the versions it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// Soft-delete (`delete`).
    Delete,
    /// Restore a soft-deleted version (`update`).
    Undelete,
    /// Remove the data for good (`delete` and `sudo`).
    Destroy,
}

impl Mark {
    fn verb(self) -> &'static str {
        match self {
            Mark::Delete => "delete",
            Mark::Undelete => "undelete",
            Mark::Destroy => "destroy",
        }
    }
}

#[cfg(test)]
mod tests;
