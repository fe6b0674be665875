//! Versioned key/value secrets (maps of strings) at slash-separated paths,
//! behind the barrier, as Vault's kv-v2 keeps them.
//!
//! Storage layout:
//! - `kv-meta/<path>`: the path's metadata (JSON): its current version and
//!   every version still kept, with creation, deletion and destruction marks;
//! - `kv-data/<version>/<path>`: one version's data (JSON map).
//!
//! Stores written before versioning kept one unversioned secret at
//! `kv/<path>`; `upgrade_unversioned` turns each into version 1 at unseal.
//!
//! A write is one storage transaction: the new metadata, the new version's
//! data, and the removal of versions pruned past `max_versions`. Writers of
//! one path are serialised by a lock striped over paths, so check-and-set
//! compares against the version the write will replace.
//!
//! Paths reach [`Kv`]'s methods checked by [`validate_path`]: every action
//! on `kv/` declares it, and the gate runs it before authenticating.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use async_trait::async_trait;

use crate::access::{Capability, Session};
use crate::barrier::{Barrier, Hooks};
pub use crate::config::KvSettings;
use crate::error::Error;
use crate::secret::SecretString;
use crate::storage::Batch;
use crate::text;
use crate::time::now_unix;

const META_PREFIX: &str = "kv-meta/";
const DATA_PREFIX: &str = "kv-data/";
/// Where stores written before versioning kept their secrets.
const UNVERSIONED_PREFIX: &str = "kv/";
/// Longest accepted path, in bytes.
pub const MAX_PATH_LEN: usize = 512;
/// Most fields in one secret.
pub const MAX_FIELDS: usize = 1000;
/// Longest accepted field name, in bytes.
pub const MAX_FIELD_NAME_LEN: usize = 256;
/// Locks striped over paths: writers of different paths rarely wait.
const WRITE_STRIPES: usize = 64;

/// One field of a secret: a name and its (secret) value.
pub type Secret = BTreeMap<String, SecretString>;

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
    /// The newest version written (it may be deleted or destroyed).
    pub current_version: u64,
    /// When the path's first version was written.
    pub created_unix: u64,
    /// When its newest version was written.
    pub updated_unix: u64,
    /// Every version still kept, oldest first.
    pub versions: BTreeMap<u64, VersionInfo>,
}

impl Metadata {
    /// The oldest version kept; 0 when none.
    pub fn oldest_version(&self) -> u64 {
        self.versions.keys().next().copied().unwrap_or(0)
    }
}

/// One version read back.
pub struct Versioned {
    /// The data.
    pub data: Secret,
    /// Its version number.
    pub version: u64,
    /// When it was written.
    pub created_unix: u64,
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

/// Checks a secret path: non-empty, at most [`MAX_PATH_LEN`] bytes,
/// segments separated by single slashes, no `.` or `..`, no control,
/// bidi or invisible characters ([`text::forbidden_char`]). The error
/// quotes a bounded prefix of the path.
pub fn validate_path(path: &str) -> Result<(), Error> {
    let bad = |why: &str| {
        Err(Error::InvalidArgument(format!(
            "kv path {} is not valid: {why}",
            text::quote(path)
        )))
    };
    if path.is_empty() {
        return Err(Error::InvalidArgument("the kv path is empty".into()));
    }
    if path.len() > MAX_PATH_LEN {
        return bad(&format!("it is longer than {MAX_PATH_LEN} bytes"));
    }
    if let Err(why) = text::check_chars(path) {
        return bad(&why);
    }
    for segment in path.split('/') {
        match segment {
            "" => return bad("it has an empty segment (a leading, trailing or doubled slash)"),
            "." | ".." => return bad("it has a . or .. segment"),
            _ => {}
        }
    }
    Ok(())
}

/// Normalises a list prefix: "" for the top, otherwise a valid path plus "/".
pub fn folder(prefix: &str) -> Result<String, Error> {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    validate_path(trimmed)?;
    Ok(format!("{trimmed}/"))
}

fn meta_key(path: &str) -> String {
    format!("{META_PREFIX}{path}")
}

fn data_key(path: &str, version: u64) -> String {
    format!("{DATA_PREFIX}{version}/{path}")
}

async fn read_meta(barrier: &Barrier, path: &str) -> Result<Option<Metadata>, Error> {
    let Some(stored) = barrier.get(&meta_key(path)).await? else {
        return Ok(None);
    };
    serde_json::from_slice(stored.expose())
        .map(Some)
        .map_err(|e| Error::Internal(format!("the metadata of kv path {path:?} is damaged: {e}")))
}

async fn existing_meta(barrier: &Barrier, path: &str) -> Result<Metadata, Error> {
    read_meta(barrier, path)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no secret at kv path {path:?}")))
}

fn put_meta(barrier: &Barrier, batch: &mut Batch, path: &str, meta: &Metadata) {
    let key = meta_key(path);
    // Serialising numbers and booleans cannot fail.
    let encoded = serde_json::to_vec(meta).unwrap_or_default();
    batch.put(key.clone(), barrier.encrypt(&key, &encoded));
}

/// Encodes a secret's fields as JSON, zeroized when dropped.
fn encode(secret: &Secret) -> zeroize::Zeroizing<Vec<u8>> {
    let plain: BTreeMap<&str, &str> = secret
        .iter()
        .map(|(k, v)| (k.as_str(), v.expose()))
        .collect();
    zeroize::Zeroizing::new(serde_json::to_vec(&plain).unwrap_or_default())
}

fn decode(path: &str, bytes: &[u8]) -> Result<Secret, Error> {
    let plain: BTreeMap<String, String> = serde_json::from_slice(bytes)
        .map_err(|e| Error::Internal(format!("the data of kv path {path:?} is damaged: {e}")))?;
    Ok(plain
        .into_iter()
        .map(|(k, v)| (k, SecretString::new(v)))
        .collect())
}

/// Turns every secret of a store written before versioning into version 1
/// of its path, in one transaction. Runs at each unseal, before requests are
/// served; once done it costs one empty range scan.
async fn upgrade_unversioned(barrier: &Barrier) -> Result<(), Error> {
    let keys = barrier.list(UNVERSIONED_PREFIX).await?;
    if keys.is_empty() {
        return Ok(());
    }
    let now = now_unix();
    let mut batch = Batch::new();
    for key in &keys {
        let path = &key[UNVERSIONED_PREFIX.len()..];
        // Already versioned (an upgrade that raced this one): keep it.
        if read_meta(barrier, path).await?.is_some() {
            batch.delete(key.clone());
            continue;
        }
        let Some(stored) = barrier.get(key).await? else {
            continue;
        };
        let secret = decode(path, stored.expose())?;
        let data = data_key(path, 1);
        batch.put(data.clone(), barrier.encrypt(&data, &encode(&secret)));
        let meta = Metadata {
            current_version: 1,
            created_unix: now,
            updated_unix: now,
            versions: BTreeMap::from([(
                1,
                VersionInfo {
                    created_unix: now,
                    deleted_unix: 0,
                    destroyed: false,
                },
            )]),
        };
        put_meta(barrier, &mut batch, path, &meta);
        batch.delete(key.clone());
    }
    barrier.write(batch).await?;
    tracing::info!(
        secrets = keys.len(),
        "kv secrets written before versioning are now version 1 of their paths"
    );
    Ok(())
}

/// Which versions a delete, undelete or destroy is about.
fn chosen(path: &str, versions: &[u64], meta: &Metadata) -> Result<Vec<u64>, Error> {
    let mut chosen = Vec::new();
    for &version in versions {
        if !meta.versions.contains_key(&version) {
            return Err(Error::NotFound(format!(
                "kv path {path:?} has no version {version}{}",
                kept(meta)
            )));
        }
        chosen.push(version);
    }
    Ok(chosen)
}

/// " (versions kept: 3 to 12)", or "" when none is.
fn kept(meta: &Metadata) -> String {
    match (
        meta.versions.keys().next(),
        meta.versions.keys().next_back(),
    ) {
        (Some(first), Some(last)) if first == last => format!(" (version kept: {first})"),
        (Some(first), Some(last)) => format!(" (versions kept: {first} to {last})"),
        _ => String::new(),
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

    /// Checks a secret before anything else is done with it: 1 to
    /// [`MAX_FIELDS`] fields, names of 1 to [`MAX_FIELD_NAME_LEN`] bytes
    /// without control, bidi or invisible characters, no value over
    /// `max_value_size`.
    pub fn check_secret(&self, path: &str, secret: &Secret) -> Result<(), Error> {
        if secret.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "the secret for kv path {path:?} has no fields; write at least one name=value"
            )));
        }
        if secret.len() > MAX_FIELDS {
            return Err(Error::InvalidArgument(format!(
                "the secret has {} fields; the limit is {MAX_FIELDS}",
                secret.len()
            )));
        }
        for name in secret.keys() {
            let why = if name.is_empty() {
                "is empty".to_string()
            } else if name.len() > MAX_FIELD_NAME_LEN {
                format!("is longer than {MAX_FIELD_NAME_LEN} bytes")
            } else if let Err(why) = text::check_chars(name) {
                why.replacen("it contains", "contains", 1)
            } else {
                continue;
            };
            return Err(Error::InvalidArgument(format!(
                "secret field name {} {why}",
                text::quote(name)
            )));
        }
        if let Some((name, _)) = secret
            .iter()
            .find(|(_, v)| v.expose().len() > self.settings.max_value_size)
        {
            return Err(Error::InvalidArgument(format!(
                "field {name:?} of kv path {path:?} is larger than the {} byte limit (kv {{ max_value_size }})",
                self.settings.max_value_size
            )));
        }
        Ok(())
    }

    /// Writes a new version of the secret at `path`. `cas`: `None` always
    /// writes; `Some(0)` only creates; `Some(v)` writes only if the current
    /// version is `v`. Needs `create` for a new path, `update` for an
    /// existing one, decided under the path's lock. Returns the new version.
    pub async fn put(
        &self,
        session: &Session,
        path: &str,
        secret: &Secret,
        cas: Option<u64>,
    ) -> Result<u64, Error> {
        self.check_secret(path, secret)?;
        let barrier = session.barrier()?;
        let _guard = self.writes.of(path).lock().await;
        let meta = read_meta(barrier, path).await?;
        session.require(if meta.is_some() {
            Capability::Update
        } else {
            Capability::Create
        })?;
        let current = meta.as_ref().map_or(0, |m| m.current_version);
        match cas {
            Some(0) if meta.is_some() => {
                return Err(Error::FailedPrecondition(format!(
                    "check-and-set failed: cas = 0 writes only a new secret, but kv path {path:?} is at version {current}"
                )));
            }
            Some(expected) if expected != current => {
                return Err(Error::FailedPrecondition(format!(
                    "check-and-set failed: the write expected version {expected} of kv path {path:?}, but the current version is {current}"
                )));
            }
            _ => {}
        }
        let now = now_unix();
        let version = current + 1;
        let mut meta = meta.unwrap_or(Metadata {
            current_version: 0,
            created_unix: now,
            updated_unix: now,
            versions: BTreeMap::new(),
        });
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
        batch.put(key.clone(), barrier.encrypt(&key, &encode(secret)));
        let keep = usize::try_from(self.settings.max_versions).unwrap_or(usize::MAX);
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
        Ok(version)
    }

    /// Reads a version of the secret at `path` (`version` 0: the current
    /// one).
    pub async fn get(
        &self,
        session: &Session,
        path: &str,
        version: u64,
    ) -> Result<Versioned, Error> {
        let barrier = session.barrier()?;
        let meta = existing_meta(barrier, path).await?;
        let version = if version == 0 {
            meta.current_version
        } else {
            version
        };
        let info = meta.versions.get(&version).ok_or_else(|| {
            Error::NotFound(format!(
                "kv path {path:?} has no version {version}{}",
                kept(&meta)
            ))
        })?;
        if info.destroyed {
            return Err(Error::NotFound(format!(
                "version {version} of kv path {path:?} was destroyed"
            )));
        }
        if info.deleted_unix != 0 {
            return Err(Error::NotFound(format!(
                "version {version} of kv path {path:?} is deleted; `strongroom kv undelete --versions {version} {path}` restores it"
            )));
        }
        let stored = barrier
            .get(&data_key(path, version))
            .await?
            .ok_or_else(|| {
                Error::Internal(format!(
                    "version {version} of kv path {path:?} is in its metadata but its data is missing"
                ))
            })?;
        Ok(Versioned {
            data: decode(path, stored.expose())?,
            version,
            created_unix: info.created_unix,
        })
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
    /// data for good, as `mark` says.
    pub async fn mark(
        &self,
        session: &Session,
        path: &str,
        versions: &[u64],
        mark: Mark,
    ) -> Result<(), Error> {
        Self::check_versions(mark, versions)?;
        let barrier = session.barrier()?;
        let _guard = self.writes.of(path).lock().await;
        let mut meta = existing_meta(barrier, path).await?;
        let versions = if versions.is_empty() {
            vec![meta.current_version]
        } else {
            chosen(path, versions, &meta)?
        };
        let now = now_unix();
        let mut batch = Batch::new();
        for version in versions {
            let Some(info) = meta.versions.get_mut(&version) else {
                // The current version of a path whose versions were all pruned.
                continue;
            };
            match mark {
                Mark::Delete if info.deleted_unix == 0 => info.deleted_unix = now,
                Mark::Undelete => info.deleted_unix = 0,
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
        let full = format!("{META_PREFIX}{}", folder(prefix)?);
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
        upgrade_unversioned(barrier).await
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
mod tests {
    use std::sync::Arc;

    use super::*;

    fn secret(pairs: &[(&str, &str)]) -> Secret {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), SecretString::new((*v).to_string())))
            .collect()
    }

    #[test]
    fn paths_are_validated() {
        for good in ["a", "app/db", "a-b_c.d/e f"] {
            assert!(validate_path(good).is_ok(), "{good}");
        }
        for bad in ["", "/a", "a/", "a//b", "a/../b", ".", "a\u{0}b"] {
            assert!(validate_path(bad).is_err(), "{bad:?}");
        }
        assert!(validate_path(&"a".repeat(MAX_PATH_LEN + 1)).is_err());
        assert_eq!(folder("").unwrap(), "");
        assert_eq!(folder("app").unwrap(), "app/");
        assert_eq!(folder("app/").unwrap(), "app/");
    }

    #[tokio::test]
    async fn versions_are_kept_pruned_and_marked() {
        let kv = Kv::new(KvSettings::default());
        let root = Session::root_for_tests(Arc::new(Barrier::in_memory()), "kv/app/db");
        for i in 1..=12u64 {
            let v = kv
                .put(&root, "app/db", &secret(&[("n", &i.to_string())]), None)
                .await
                .unwrap();
            assert_eq!(v, i);
        }
        let meta = kv.metadata(&root, "app/db").await.unwrap();
        assert_eq!(meta.current_version, 12);
        assert_eq!(meta.oldest_version(), 3, "10 kept by default");
        let err = kv.get(&root, "app/db", 2).await.err().unwrap();
        assert!(err.to_string().contains("versions kept: 3 to 12"), "{err}");

        kv.mark(&root, "app/db", &[], Mark::Delete).await.unwrap();
        assert!(matches!(
            kv.get(&root, "app/db", 0).await,
            Err(Error::NotFound(_))
        ));
        assert_eq!(
            kv.get(&root, "app/db", 11).await.unwrap().data["n"].expose(),
            "11"
        );
        kv.mark(&root, "app/db", &[12], Mark::Undelete)
            .await
            .unwrap();
        assert_eq!(kv.get(&root, "app/db", 0).await.unwrap().version, 12);
        kv.mark(&root, "app/db", &[12], Mark::Destroy)
            .await
            .unwrap();
        let err = kv.get(&root, "app/db", 0).await.err().unwrap();
        assert!(err.to_string().contains("destroyed"), "{err}");

        let err = kv
            .put(&root, "app/db", &secret(&[("n", "x")]), Some(5))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "check-and-set failed: the write expected version 5 of kv path \"app/db\", but the current version is 12"
        );
        assert_eq!(
            kv.put(&root, "app/db", &secret(&[("n", "x")]), Some(12))
                .await
                .unwrap(),
            13
        );
        kv.delete_metadata(&root, "app/db").await.unwrap();
        assert!(kv.list(&root, "app").await.unwrap().is_empty());
        assert!(matches!(
            kv.metadata(&root, "app/db").await,
            Err(Error::NotFound(_))
        ));
    }
}
