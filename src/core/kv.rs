//! Versioned key/value secrets (maps of strings) at slash-separated paths,
//! behind the barrier, as Vault's kv-v2 keeps them.
//!
//! Storage layout:
//! - `kv-meta/<path>`: the path's metadata (JSON): its current version and
//!   every version still kept, with creation, deletion and destruction marks;
//! - `kv-data/<version>/<path>`: one version's data (JSON map).
//!
//! Stores written before versioning kept one unversioned secret at
//! `kv/<path>`; [`upgrade_unversioned`] turns each into version 1 at unseal.
//!
//! A write is one storage transaction: the new metadata, the new version's
//! data, and the removal of versions pruned past `max_versions`. Writers of
//! one path are serialised by a lock striped over paths, so check-and-set
//! compares against the version the write will replace.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::auth::Caller;
use super::{Capability, Core, CoreError};
use crate::barrier::Barrier;
use crate::barrier::keyring::now_unix;
use crate::secret::SecretString;
use crate::storage::Batch;

const META_PREFIX: &str = "kv-meta/";
const DATA_PREFIX: &str = "kv-data/";
/// Where stores written before versioning kept their secrets.
const UNVERSIONED_PREFIX: &str = "kv/";
/// Longest accepted path, in bytes.
pub const MAX_PATH_LEN: usize = 512;
/// Versions kept per path by default (Vault's default).
pub const DEFAULT_MAX_VERSIONS: u32 = 10;
/// The largest value of one field by default, in bytes.
pub const DEFAULT_MAX_VALUE_SIZE: usize = 1024 * 1024;
/// Locks striped over paths: writers of different paths rarely wait.
const WRITE_STRIPES: usize = 64;

/// The `kv` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvSettings {
    /// Versions kept per path; older ones are removed by the write that
    /// goes past the limit.
    pub max_versions: u32,
    /// The largest value of one field, in bytes.
    pub max_value_size: usize,
}

impl Default for KvSettings {
    fn default() -> Self {
        Self {
            max_versions: DEFAULT_MAX_VERSIONS,
            max_value_size: DEFAULT_MAX_VALUE_SIZE,
        }
    }
}

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
pub(super) struct WriteLocks([tokio::sync::Mutex<()>; WRITE_STRIPES]);

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
/// segments separated by single slashes, no `.` or `..`, no control characters.
pub fn validate_path(path: &str) -> Result<(), CoreError> {
    let bad = |why: &str| {
        Err(CoreError::InvalidArgument(format!(
            "kv path {path:?} is not valid: {why}"
        )))
    };
    if path.is_empty() {
        return Err(CoreError::InvalidArgument("the kv path is empty".into()));
    }
    if path.len() > MAX_PATH_LEN {
        return bad(&format!("it is longer than {MAX_PATH_LEN} bytes"));
    }
    if path.chars().any(char::is_control) {
        return bad("it contains control characters");
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
fn folder(prefix: &str) -> Result<String, CoreError> {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    validate_path(trimmed)?;
    Ok(format!("{trimmed}/"))
}

/// The policy path of a kv path.
fn policy_path(path: &str) -> String {
    format!("kv/{path}")
}

fn meta_key(path: &str) -> String {
    format!("{META_PREFIX}{path}")
}

fn data_key(path: &str, version: u64) -> String {
    format!("{DATA_PREFIX}{version}/{path}")
}

async fn read_meta(barrier: &Barrier, path: &str) -> Result<Option<Metadata>, CoreError> {
    let Some(stored) = barrier.get(&meta_key(path)).await? else {
        return Ok(None);
    };
    serde_json::from_slice(stored.expose())
        .map(Some)
        .map_err(|e| {
            CoreError::Internal(format!("the metadata of kv path {path:?} is damaged: {e}"))
        })
}

async fn existing_meta(barrier: &Barrier, path: &str) -> Result<Metadata, CoreError> {
    read_meta(barrier, path)
        .await?
        .ok_or_else(|| CoreError::NotFound(format!("no secret at kv path {path:?}")))
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

fn decode(path: &str, bytes: &[u8]) -> Result<Secret, CoreError> {
    let plain: BTreeMap<String, String> = serde_json::from_slice(bytes).map_err(|e| {
        CoreError::Internal(format!("the data of kv path {path:?} is damaged: {e}"))
    })?;
    Ok(plain
        .into_iter()
        .map(|(k, v)| (k, SecretString::new(v)))
        .collect())
}

/// Turns every secret of a store written before versioning into version 1
/// of its path, in one transaction. Runs at each unseal, before requests are
/// served; once done it costs one empty range scan.
pub(super) async fn upgrade_unversioned(barrier: &Barrier) -> Result<(), CoreError> {
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
fn chosen(path: &str, versions: &[u64], meta: &Metadata) -> Result<Vec<u64>, CoreError> {
    let mut chosen = Vec::new();
    for &version in versions {
        if !meta.versions.contains_key(&version) {
            return Err(CoreError::NotFound(format!(
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

impl Core {
    /// The `kv` block in force.
    pub fn kv_settings(&self) -> KvSettings {
        self.kv
    }

    /// Writes a new version of the secret at `path`. `cas`: `None` always
    /// writes; `Some(0)` only creates; `Some(v)` writes only if the current
    /// version is `v`. Needs `create` for a new path, `update` for an
    /// existing one. Returns the new version.
    pub async fn kv_put(
        &self,
        caller: &Caller,
        path: &str,
        secret: &Secret,
        cas: Option<u64>,
    ) -> Result<u64, CoreError> {
        validate_path(path)?;
        self.check_secret(path, secret)?;
        let (barrier, subject) = self.authenticate(caller).await?;
        let _guard = self.kv_writes.of(path).lock().await;
        let meta = read_meta(&barrier, path).await?;
        let needed = if meta.is_some() {
            Capability::Update
        } else {
            Capability::Create
        };
        subject.require(&policy_path(path), needed)?;
        let current = meta.as_ref().map_or(0, |m| m.current_version);
        match cas {
            Some(0) if meta.is_some() => {
                return Err(CoreError::FailedPrecondition(format!(
                    "check-and-set failed: cas = 0 writes only a new secret, but kv path {path:?} is at version {current}"
                )));
            }
            Some(expected) if expected != current => {
                return Err(CoreError::FailedPrecondition(format!(
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
        let keep = usize::try_from(self.kv.max_versions).unwrap_or(usize::MAX);
        while meta.versions.len() > keep {
            let Some((old, info)) = meta.versions.pop_first() else {
                break;
            };
            if !info.destroyed {
                batch.delete(data_key(path, old));
            }
        }
        put_meta(&barrier, &mut batch, path, &meta);
        barrier.write(batch).await?;
        Ok(version)
    }

    fn check_secret(&self, path: &str, secret: &Secret) -> Result<(), CoreError> {
        if secret.is_empty() {
            return Err(CoreError::InvalidArgument(format!(
                "the secret for kv path {path:?} has no fields; write at least one name=value"
            )));
        }
        if secret.keys().any(String::is_empty) {
            return Err(CoreError::InvalidArgument(
                "secret field names must not be empty".into(),
            ));
        }
        if let Some((name, _)) = secret
            .iter()
            .find(|(_, v)| v.expose().len() > self.kv.max_value_size)
        {
            return Err(CoreError::InvalidArgument(format!(
                "field {name:?} of kv path {path:?} is larger than the {} byte limit (kv {{ max_value_size }})",
                self.kv.max_value_size
            )));
        }
        Ok(())
    }

    /// Reads a version of the secret at `path` (`version` 0: the current
    /// one). Needs `read`.
    pub async fn kv_get(
        &self,
        caller: &Caller,
        path: &str,
        version: u64,
    ) -> Result<Versioned, CoreError> {
        validate_path(path)?;
        let (barrier, _) = self
            .authorize(caller, &policy_path(path), Capability::Read)
            .await?;
        let meta = existing_meta(&barrier, path).await?;
        let version = if version == 0 {
            meta.current_version
        } else {
            version
        };
        let info = meta.versions.get(&version).ok_or_else(|| {
            CoreError::NotFound(format!(
                "kv path {path:?} has no version {version}{}",
                kept(&meta)
            ))
        })?;
        if info.destroyed {
            return Err(CoreError::NotFound(format!(
                "version {version} of kv path {path:?} was destroyed"
            )));
        }
        if info.deleted_unix != 0 {
            return Err(CoreError::NotFound(format!(
                "version {version} of kv path {path:?} is deleted; `strongroom kv undelete --versions {version} {path}` restores it"
            )));
        }
        let stored = barrier
            .get(&data_key(path, version))
            .await?
            .ok_or_else(|| {
                CoreError::Internal(format!(
                    "version {version} of kv path {path:?} is in its metadata but its data is missing"
                ))
            })?;
        Ok(Versioned {
            data: decode(path, stored.expose())?,
            version,
            created_unix: info.created_unix,
        })
    }

    /// Soft-deletes versions (none given: the current one); `undelete`
    /// brings them back. Needs `delete`.
    pub async fn kv_delete(
        &self,
        caller: &Caller,
        path: &str,
        versions: &[u64],
    ) -> Result<(), CoreError> {
        self.kv_mark(caller, path, versions, Mark::Delete).await
    }

    /// Restores soft-deleted versions. Needs `update`.
    pub async fn kv_undelete(
        &self,
        caller: &Caller,
        path: &str,
        versions: &[u64],
    ) -> Result<(), CoreError> {
        self.kv_mark(caller, path, versions, Mark::Undelete).await
    }

    /// Removes versions' data for good. Needs `delete` and `sudo`.
    pub async fn kv_destroy(
        &self,
        caller: &Caller,
        path: &str,
        versions: &[u64],
    ) -> Result<(), CoreError> {
        self.kv_mark(caller, path, versions, Mark::Destroy).await
    }

    async fn kv_mark(
        &self,
        caller: &Caller,
        path: &str,
        versions: &[u64],
        mark: Mark,
    ) -> Result<(), CoreError> {
        validate_path(path)?;
        if versions.is_empty() && mark != Mark::Delete {
            return Err(CoreError::InvalidArgument(format!(
                "name the versions to {}, such as --versions 1,2",
                mark.verb()
            )));
        }
        let (barrier, subject) = self.authenticate(caller).await?;
        for capability in mark.capabilities() {
            subject.require(&policy_path(path), *capability)?;
        }
        let _guard = self.kv_writes.of(path).lock().await;
        let mut meta = existing_meta(&barrier, path).await?;
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
        put_meta(&barrier, &mut batch, path, &meta);
        barrier.write(batch).await?;
        Ok(())
    }

    /// The metadata of `path`. Needs `read`.
    pub async fn kv_metadata(&self, caller: &Caller, path: &str) -> Result<Metadata, CoreError> {
        validate_path(path)?;
        let (barrier, _) = self
            .authorize(caller, &policy_path(path), Capability::Read)
            .await?;
        existing_meta(&barrier, path).await
    }

    /// Removes the path: every version and its metadata, in one
    /// transaction. Needs `delete` and `sudo`.
    pub async fn kv_delete_metadata(&self, caller: &Caller, path: &str) -> Result<(), CoreError> {
        validate_path(path)?;
        let (barrier, subject) = self.authenticate(caller).await?;
        for capability in Mark::Destroy.capabilities() {
            subject.require(&policy_path(path), *capability)?;
        }
        let _guard = self.kv_writes.of(path).lock().await;
        let meta = existing_meta(&barrier, path).await?;
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

    /// The names directly under `prefix`; sub-folders end in `/`. Needs
    /// `list` on `kv/<prefix>/`.
    pub async fn kv_list(&self, caller: &Caller, prefix: &str) -> Result<Vec<String>, CoreError> {
        let folder = folder(prefix)?;
        let (barrier, _) = self
            .authorize(caller, &policy_path(&folder), Capability::List)
            .await?;
        let full = format!("{META_PREFIX}{folder}");
        let mut names = BTreeSet::new();
        for key in barrier.list(&full).await? {
            let rest = &key[full.len()..];
            match rest.split_once('/') {
                Some((dir, _)) => names.insert(format!("{dir}/")),
                None => names.insert(rest.to_string()),
            };
        }
        Ok(names.into_iter().collect())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    Delete,
    Undelete,
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

    fn capabilities(self) -> &'static [Capability] {
        match self {
            Mark::Delete => &[Capability::Delete],
            Mark::Undelete => &[Capability::Update],
            Mark::Destroy => &[Capability::Delete, Capability::Sudo],
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::core::testing;
    use crate::storage::InmemBackend;

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
        let core = testing::open_shamir(Arc::new(InmemBackend::new())).await;
        let (_, token) = testing::unsealed_one_of_one(&core).await;
        let root = Caller::with_token(&token);
        for i in 1..=12u64 {
            let v = core
                .kv_put(&root, "app/db", &secret(&[("n", &i.to_string())]), None)
                .await
                .unwrap();
            assert_eq!(v, i);
        }
        let meta = core.kv_metadata(&root, "app/db").await.unwrap();
        assert_eq!(meta.current_version, 12);
        assert_eq!(meta.oldest_version(), 3, "10 kept by default");
        let err = core.kv_get(&root, "app/db", 2).await.err().unwrap();
        assert!(err.to_string().contains("versions kept: 3 to 12"), "{err}");

        core.kv_delete(&root, "app/db", &[]).await.unwrap();
        assert!(matches!(
            core.kv_get(&root, "app/db", 0).await,
            Err(CoreError::NotFound(_))
        ));
        assert_eq!(
            core.kv_get(&root, "app/db", 11).await.unwrap().data["n"].expose(),
            "11"
        );
        core.kv_undelete(&root, "app/db", &[12]).await.unwrap();
        assert_eq!(core.kv_get(&root, "app/db", 0).await.unwrap().version, 12);
        core.kv_destroy(&root, "app/db", &[12]).await.unwrap();
        let err = core.kv_get(&root, "app/db", 0).await.err().unwrap();
        assert!(err.to_string().contains("destroyed"), "{err}");

        let err = core
            .kv_put(&root, "app/db", &secret(&[("n", "x")]), Some(5))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "check-and-set failed: the write expected version 5 of kv path \"app/db\", but the current version is 12"
        );
        assert_eq!(
            core.kv_put(&root, "app/db", &secret(&[("n", "x")]), Some(12))
                .await
                .unwrap(),
            13
        );
        core.kv_delete_metadata(&root, "app/db").await.unwrap();
        assert!(core.kv_list(&root, "app").await.unwrap().is_empty());
        assert!(matches!(
            core.kv_metadata(&root, "app/db").await,
            Err(CoreError::NotFound(_))
        ));
    }
}
