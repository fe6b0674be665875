//! Snapshots: a consistent copy of the store as stored (every entry still
//! encrypted), taken while serving, and its restore.
//!
//! ```text
//! file    = content ‖ HMAC-SHA256(snapshot key, content)   (format 3 on)
//!         ‖ SHA-256 of everything before it
//! content = magic "SRSNAP\0\x01" ‖ header length (u32 BE) ‖ header (JSON)
//!         ‖ count × { key length (u32 BE) ‖ key ‖ value length (u32 BE) ‖ value }
//! header  = { format, created_unix, cluster_id, seal_type, entries, strongroom_version }
//! ```
//!
//! The SHA-256 finds a truncated or damaged file before anything else; the
//! MAC (`snapshot_mac.rs`) finds an altered one. A format 2 file has no MAC
//! and is restored only when the operator says so.
//!
//! A restored store unseals with the shares, or the KMS key, it was taken
//! under. Restore is one storage transaction (clear, then every entry), so a
//! crash leaves the old store or the restored one. The first unseal after a
//! restore starts a new keyring term: the restored active term may have
//! encrypted more after the snapshot was taken than its count says.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::auto_unseal::{AutoUnsealState, AutoUnsealStatus};
use super::rotation::RESTORED_PATH;
use super::seal_config::{ROOT_KEY_PATH, SEAL_CONFIG_PATH, SealConfig};
use super::snapshot_mac::{self, MAC_LEN, PendingCheck, RestoreMarker};
use super::{KmsReport, Lifecycle, Progress, State};
use crate::barrier::KEYRING_PATH;
use crate::error::Error;
use crate::failpoint;
use crate::secret::{SecretKey, ct_eq};
use crate::storage::Batch;
use crate::time::now_unix;

const MAGIC: &[u8; 8] = b"SRSNAP\0\x01";
/// The snapshot format written: 3 adds the MAC to format 2 (storage format
/// 2, versioned KV); formats 1 and 2 are still read when the operator
/// accepts a snapshot without a MAC (format 1's unversioned secrets are
/// upgraded at the first unseal after the restore), and a build that reads
/// only older formats refuses a newer one instead of misreading it.
const FORMAT: u32 = 3;
/// The first format with a MAC.
const FIRST_AUTHENTICATED: u32 = 3;
/// The oldest snapshot format this build reads.
const OLDEST_FORMAT: u32 = 1;
const DIGEST_LEN: usize = 32;
/// How long a restore waits for requests that still hold the old keys.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What a snapshot says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotHeader {
    /// Format of the file.
    pub format: u32,
    /// When it was taken, Unix seconds.
    pub created_unix: u64,
    /// The store's cluster id.
    pub cluster_id: String,
    /// The seal it was taken under.
    pub seal_type: String,
    /// Number of entries.
    pub entries: u64,
    /// The strongroom that took it.
    pub strongroom_version: String,
}

/// A parsed snapshot, checked for this daemon and ready to restore.
pub struct Snapshot {
    header: SnapshotHeader,
    entries: Vec<(String, Vec<u8>)>,
    config: SealConfig,
    /// awskms: the key its root-key envelope names.
    kms_key_arn: String,
    /// The header's bytes and the MAC, for the check at the first unseal;
    /// `None` for a snapshot without a MAC, or one checked already.
    check: Option<(Vec<u8>, [u8; MAC_LEN])>,
}

/// The part of a snapshot file its MAC covers: the marker, the header
/// (as bytes, so the check after a restore rebuilds it exactly) and the
/// entries in order.
pub(super) fn content(header: &[u8], entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let size: usize = entries.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + size + MAC_LEN + DIGEST_LEN);
    out.extend_from_slice(MAGIC);
    push_prefixed(&mut out, header);
    for (key, value) in entries {
        push_prefixed(&mut out, key.as_bytes());
        push_prefixed(&mut out, value);
    }
    out
}

/// The file: content, its MAC under `key` (`None`: a file of an older
/// format, for tests), and the checksum.
fn encode(
    header: &SnapshotHeader,
    entries: &[(String, Vec<u8>)],
    key: Option<&SecretKey>,
) -> Vec<u8> {
    // Serialising plain strings and integers cannot fail.
    let header = serde_json::to_vec(header).unwrap_or_default();
    let mut out = content(&header, entries);
    if let Some(key) = key {
        let mac = snapshot_mac::mac(key, &out);
        out.extend_from_slice(&mac);
    }
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

fn push_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    // Entries are bounded by the request size limit, far below 4 GiB.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

fn decode(bytes: &[u8]) -> Result<Snapshot, Error> {
    let bad = |reason: &str| {
        Error::InvalidArgument(format!(
            "the file is not a strongroom snapshot this build can restore: {reason}"
        ))
    };
    let body_len = bytes
        .len()
        .checked_sub(DIGEST_LEN)
        .filter(|&n| n >= MAGIC.len())
        .ok_or_else(|| bad("it is too short"))?;
    let (body, digest) = bytes.split_at(body_len);
    if !body.starts_with(MAGIC) {
        return Err(bad("it does not start with the snapshot marker"));
    }
    if Sha256::digest(body).as_slice() != digest {
        return Err(bad(
            "its checksum does not match (the file is truncated or damaged)",
        ));
    }
    // The MAC's place depends on the format, which is in the header: read
    // the header first, from the content whatever its end.
    let format = header_format(&body[MAGIC.len()..]).ok_or_else(|| bad("it has no header"))?;
    let (body, mac) = if format >= FIRST_AUTHENTICATED {
        let split = body
            .len()
            .checked_sub(MAC_LEN)
            .filter(|&n| n >= MAGIC.len())
            .ok_or_else(|| bad("it is too short"))?;
        let (content, mac) = body.split_at(split);
        let mac: [u8; MAC_LEN] = mac.try_into().map_err(|_| bad("it is too short"))?;
        (content, Some(mac))
    } else {
        (body, None)
    };
    let mut rest = &body[MAGIC.len()..];
    let mut take = |what: &str| -> Result<Option<&[u8]>, Error> {
        if rest.is_empty() {
            return Ok(None);
        }
        let truncated = || bad(&format!("{what} is truncated"));
        let (len, tail) = rest.split_first_chunk::<4>().ok_or_else(truncated)?;
        let len = u32::from_be_bytes(*len) as usize;
        let (value, tail) = tail.split_at_checked(len).ok_or_else(truncated)?;
        rest = tail;
        Ok(Some(value))
    };
    let header_bytes = take("the header")?.ok_or_else(|| bad("it has no header"))?;
    let header: SnapshotHeader = serde_json::from_slice(header_bytes)
        .map_err(|e| bad(&format!("its header is not readable: {e}")))?;
    let check = mac.map(|mac| (header_bytes.to_vec(), mac));
    if !(OLDEST_FORMAT..=FORMAT).contains(&header.format) {
        return Err(bad(&format!(
            "it has format {}, and this build reads formats {OLDEST_FORMAT} to {FORMAT}",
            header.format
        )));
    }
    let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
    while let Some(key) = take("an entry")? {
        let key = std::str::from_utf8(key)
            .map_err(|_| bad("an entry's key is not UTF-8"))?
            .to_string();
        let value = take("an entry")?
            .ok_or_else(|| bad("an entry is truncated"))?
            .to_vec();
        if entries.last().is_some_and(|(last, _)| *last >= key) {
            return Err(bad("its entries are not in order"));
        }
        entries.push((key, value));
    }
    if entries.len() as u64 != header.entries {
        return Err(bad("its entry count does not match its header"));
    }
    let find = |path: &str| {
        entries
            .binary_search_by(|(k, _)| k.as_str().cmp(path))
            .ok()
            .map(|i| entries[i].1.as_slice())
    };
    let config = find(SEAL_CONFIG_PATH)
        .ok_or_else(|| bad("it has no seal config (it was taken before init?)"))?;
    let config = SealConfig::decode(config).map_err(|e| bad(&e))?;
    for path in [ROOT_KEY_PATH, KEYRING_PATH] {
        if find(path).is_none() {
            return Err(bad(&format!("it has no {path}")));
        }
    }
    Ok(Snapshot {
        header,
        entries,
        config,
        kms_key_arn: String::new(),
        check,
    })
}

/// The `format` of the header at the start of `rest`, if it reads.
fn header_format(rest: &[u8]) -> Option<u32> {
    #[derive(Deserialize)]
    struct Format {
        format: u32,
    }
    let (len, tail) = rest.split_first_chunk::<4>()?;
    let header = tail.get(..u32::from_be_bytes(*len) as usize)?;
    serde_json::from_slice::<Format>(header)
        .ok()
        .map(|f| f.format)
}

impl Lifecycle {
    /// A consistent copy of the whole store, still encrypted, taken while
    /// serving.
    pub async fn snapshot_save(&self) -> Result<Vec<u8>, Error> {
        let config = self.seal_config().ok_or(Error::NotInitialized)?;
        let key = snapshot_mac::key(&*self.barrier()?).await?;
        tracing::info!("snapshot started");
        let entries = self.store_entries().await?;
        let header = SnapshotHeader {
            format: FORMAT,
            created_unix: now_unix(),
            cluster_id: config.cluster_id.clone(),
            seal_type: config.seal_type.clone(),
            entries: entries.len() as u64,
            strongroom_version: env!("CARGO_PKG_VERSION").into(),
        };
        let file = encode(&header, &entries, Some(&key));
        tracing::info!(
            entries = header.entries,
            bytes = file.len(),
            "snapshot taken"
        );
        Ok(file)
    }

    /// Every stored entry, in order, but the restore marker: it is this
    /// node's, not the store's, so snapshots and their check leave it out.
    pub(super) async fn store_entries(&self) -> Result<Vec<(String, Vec<u8>)>, Error> {
        let mut entries = self.storage.export().await?;
        entries.retain(|(path, _)| path != RESTORED_PATH);
        Ok(entries)
    }

    /// True once init has run: a restore then needs `sudo` on
    /// `sys/snapshot-restore` (before, anyone who can reach the daemon could
    /// initialize it anyway).
    pub fn is_initialized(&self) -> bool {
        self.seal_config().is_some()
    }

    /// Reads and checks a snapshot file for this daemon, changing nothing:
    /// no seal migration pending, the file whole and in order, taken under
    /// this daemon's seal type, with a MAC unless `accept_unauthenticated`.
    /// A snapshot of this very store (same cluster, unsealed, its snapshot
    /// key at hand) has its MAC checked here; any other's is checked at the
    /// first unseal after the restore.
    pub async fn check_snapshot(
        &self,
        file: &[u8],
        accept_unauthenticated: bool,
    ) -> Result<Snapshot, Error> {
        if let Some(migration) = self.migration() {
            return Err(Error::FailedPrecondition(format!(
                "a seal migration ({}) is pending; finish it (or take the old seal block out of the config) before restoring a snapshot",
                migration.describe()
            )));
        }
        let mut snapshot = decode(file)?;
        // A snapshot of one awskms seal restores under several seals: it
        // opens with the seal that holds its key and is rewrapped for all.
        if !self.seal_fits(&snapshot.config.seal_type) {
            return Err(Error::InvalidArgument(format!(
                "the snapshot was taken under the {} seal, but this daemon uses the {} seal; restore it on a daemon configured like the one it came from",
                snapshot.config.seal_type,
                self.seal.name()
            )));
        }
        match &snapshot.check {
            None if !accept_unauthenticated => {
                return Err(Error::InvalidArgument(format!(
                    "the snapshot has format {}, which has no MAC, so nothing proves it was not altered; restore it only if you trust the file, with --accept-unauthenticated",
                    snapshot.header.format
                )));
            }
            None => tracing::warn!(
                format = snapshot.header.format,
                "restoring a snapshot without a MAC, as the operator asked"
            ),
            Some((header, mac)) => {
                if let Some(key) = self.own_snapshot_key(&snapshot.config).await? {
                    let content = content(header, &snapshot.entries);
                    if !ct_eq(&snapshot_mac::mac(&key, &content), mac) {
                        return Err(Error::InvalidArgument(
                            "the snapshot's MAC does not match this store's snapshot key: the file was altered after it was taken, so nothing was restored".into(),
                        ));
                    }
                    snapshot.check = None;
                }
            }
        }

        if self.seal.is_auto() {
            let blob = snapshot
                .entries
                .iter()
                .find(|(k, _)| k == ROOT_KEY_PATH)
                .map(|(_, v)| v.as_slice())
                .unwrap_or_default();
            snapshot.kms_key_arn = super::seals::stored_key_arn(blob)
                .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        }
        Ok(snapshot)
    }

    /// This store's snapshot key, when it is open and made the snapshot
    /// whose seal config is `theirs`.
    async fn own_snapshot_key(&self, theirs: &SealConfig) -> Result<Option<SecretKey>, Error> {
        let Ok(barrier) = self.barrier() else {
            return Ok(None);
        };
        if self
            .seal_config()
            .is_none_or(|ours| ours.cluster_id != theirs.cluster_id)
        {
            return Ok(None);
        }
        snapshot_mac::read_key(&barrier).await
    }

    /// Replaces the whole store with a checked snapshot; the daemon is
    /// sealed afterwards and unseals with the snapshot's shares or KMS key.
    pub async fn snapshot_restore(&self, snapshot: Snapshot) -> Result<SnapshotHeader, Error> {
        let Ok(_key_ops) = self.key_ops.try_lock() else {
            return Err(Error::FailedPrecondition(
                "another key operation is running; restore when it has finished".into(),
            ));
        };
        tracing::info!(
            entries = snapshot.header.entries,
            taken_unix = snapshot.header.created_unix,
            cluster_id = %snapshot.header.cluster_id,
            "snapshot restore: sealing and replacing the store"
        );
        // With HA the node keeps its term until the store is replaced: the
        // restore's write is fenced by it (role.rs).
        let _restoring = self.restoring();
        self.seal_for_restore().await?;

        let mut batch = Batch::new();
        batch.clear();
        for (key, value) in &snapshot.entries {
            batch.put(key.clone(), value.clone());
        }
        let check = snapshot.check.as_ref().map(|(header, mac)| PendingCheck {
            header: hex::encode(header),
            mac: hex::encode(mac),
        });
        batch.put(RESTORED_PATH, RestoreMarker::new(check).encode());
        failpoint::scope("restore", self.storage.write(batch)).await?;

        if self.seal.is_auto() {
            *self.report() = KmsReport {
                auto_unseal: AutoUnsealStatus {
                    state: AutoUnsealState::InProgress,
                    ..AutoUnsealStatus::default()
                },
                key_arn: snapshot.kms_key_arn,
                ..KmsReport::default()
            };
        }
        self.set_state(State::Sealed {
            config: Arc::new(snapshot.config),
            progress: Progress::default(),
        });
        tracing::info!(
            entries = snapshot.header.entries,
            "snapshot restored; the daemon is sealed and unseals with the keys the snapshot was taken under"
        );
        Ok(snapshot.header)
    }

    /// Seals and waits until no request holds the old keys, so nothing is
    /// written under them after the store is replaced.
    async fn seal_for_restore(&self) -> Result<(), Error> {
        let Ok(barrier) = self.barrier() else {
            return Ok(());
        };
        self.seal_now();
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        while Arc::strong_count(&barrier) > 1 {
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::FailedPrecondition(
                    "requests that hold the keys were still running after 5 s; the daemon is sealed and nothing was restored".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::{Phase, testing};
    use crate::storage::{Backend, InmemBackend};

    async fn open_lifecycle() -> (Arc<Lifecycle>, Arc<dyn Backend>) {
        let storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
        (testing::open_shamir(Arc::clone(&storage)).await, storage)
    }

    /// What the restore action runs: the check, then the restore.
    async fn restore(lifecycle: &Lifecycle, file: &[u8]) -> Result<SnapshotHeader, Error> {
        let snapshot = lifecycle.check_snapshot(file, false).await?;
        lifecycle.snapshot_restore(snapshot).await
    }

    #[tokio::test]
    async fn a_snapshot_restores_into_a_new_store_and_unseals_with_its_keys() {
        let (lifecycle, _) = open_lifecycle().await;
        let (key, _) = testing::unsealed_one_of_one(&lifecycle).await;
        lifecycle
            .barrier()
            .unwrap()
            .put("test/a", b"1")
            .await
            .unwrap();
        let file = lifecycle.snapshot_save().await.unwrap();
        lifecycle
            .barrier()
            .unwrap()
            .put("test/b", b"later")
            .await
            .unwrap();

        let (fresh, storage) = open_lifecycle().await;
        assert!(!fresh.is_initialized(), "a restore needs no token");
        let header = restore(&fresh, &file).await.unwrap();
        assert_eq!(header.seal_type, "shamir");
        assert_eq!(fresh.phase(), Phase::Sealed);
        assert!(storage.get(RESTORED_PATH).await.unwrap().is_some());
        fresh.unseal(&key).await.unwrap();
        let barrier = fresh.barrier().unwrap();
        assert_eq!(barrier.get("test/a").await.unwrap().unwrap().expose(), b"1");
        assert!(barrier.get("test/b").await.unwrap().is_none());
        // A restore waits for every holder of the keys to let go.
        drop(barrier);

        // An initialized daemon (whose restore needs sudo: the gate's
        // tests check it) is sealed by a restore.
        assert!(fresh.is_initialized());
        restore(&fresh, &file).await.unwrap();
        assert_eq!(fresh.phase(), Phase::Sealed);
    }

    #[tokio::test]
    async fn damaged_snapshots_are_refused_and_change_nothing() {
        let (lifecycle, storage) = open_lifecycle().await;
        testing::unsealed_one_of_one(&lifecycle).await;
        let file = lifecycle.snapshot_save().await.unwrap();
        let before = storage.export().await.unwrap();

        let mut flipped = file.clone();
        flipped[20] ^= 1;
        for (bad, says) in [
            (&file[..file.len() - 1], "checksum"),
            (&flipped[..], "checksum"),
            (
                &b"not a snapshot at all, just some text......"[..],
                "marker",
            ),
            (&[][..], "too short"),
        ] {
            let err = restore(&lifecycle, bad).await.unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
            assert!(err.to_string().contains(says), "{err}");
        }
        assert_eq!(lifecycle.phase(), Phase::Unsealed);
        assert_eq!(storage.export().await.unwrap(), before);

        // A snapshot without init data, with a valid checksum.
        let header = SnapshotHeader {
            format: FORMAT,
            created_unix: 0,
            cluster_id: String::new(),
            seal_type: "shamir".into(),
            entries: 1,
            strongroom_version: String::new(),
        };
        let key = SecretKey::generate();
        let empty = encode(&header, &[("kv/x".into(), b"y".to_vec())], Some(&key));
        let err = restore(&lifecycle, &empty).await.unwrap_err();
        assert!(err.to_string().contains("no seal config"), "{err}");
    }
}
