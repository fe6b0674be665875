//! Snapshots are authenticated: an HMAC-SHA256 over the file under a key
//! kept behind the barrier (`core/snapshot-mac-key`), made at the first
//! snapshot and kept across root-key and keyring rotations, as the audit
//! salt is. The key travels inside every snapshot, encrypted like any
//! entry, so a restored copy can check its own file once it is unsealed.
//!
//! - Restoring into the running store that made the snapshot (same cluster,
//!   unsealed, key present): the MAC is checked before anything is written.
//! - Restoring anywhere else (disaster recovery): the restore records the
//!   file's header and MAC in the restore marker, and the first unseal of
//!   the restored copy recomputes the MAC over what is stored, with the key
//!   the snapshot brought, before any component reads or writes through the
//!   barrier; a mismatch refuses the unseal.
//!
//! What it stops: entries spliced into a snapshot (revoked tokens from an
//! older one, say), removed or reordered, with the plain checksum
//! recomputed. What it does not: an old, unaltered snapshot of the same
//! store restored on purpose (a rollback), which the operator may want.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::Lifecycle;
use super::rotation::RESTORED_PATH;
use crate::barrier::Barrier;
use crate::error::Error;
use crate::secret::{SecretKey, ct_eq};
use crate::storage::Batch;
use crate::time::now_unix;

/// Where the snapshot key is kept, behind the barrier.
const KEY_PATH: &str = "core/snapshot-mac-key";
/// Bytes of a MAC.
pub(super) const MAC_LEN: usize = 32;

/// The key of the open store; `None` if no snapshot was ever taken.
pub(super) async fn read_key(barrier: &Barrier) -> Result<Option<SecretKey>, Error> {
    let Some(stored) = barrier.get(KEY_PATH).await? else {
        return Ok(None);
    };
    SecretKey::from_slice(stored.expose())
        .map(Some)
        .ok_or_else(|| Error::Internal("the stored snapshot key is damaged".into()))
}

/// The key of the open store, made and stored on first use.
pub(super) async fn key(barrier: &Barrier) -> Result<SecretKey, Error> {
    if let Some(key) = read_key(barrier).await? {
        return Ok(key);
    }
    let key = SecretKey::generate();
    let mut batch = Batch::new();
    batch
        .require_absent(KEY_PATH)
        .put(KEY_PATH, barrier.encrypt(KEY_PATH, key.expose()));
    match barrier.write(batch).await {
        Ok(()) => Ok(key),
        // Another snapshot made it first.
        Err(_) => read_key(barrier)
            .await?
            .ok_or_else(|| Error::Internal("the snapshot key could not be stored".into())),
    }
}

/// The MAC of `content` under `key`.
pub(super) fn mac(key: &SecretKey, content: &[u8]) -> [u8; MAC_LEN] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.expose())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(content);
    mac.finalize().into_bytes().into()
}

/// What the restore marker (`core/restored`) holds: when, and the check
/// the first unseal still owes.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct RestoreMarker {
    /// When the restore ran.
    pub restored_unix: u64,
    /// The snapshot's header as it was in the file, and its MAC, hex;
    /// `None` once checked, or for a snapshot restored without a MAC.
    pub check: Option<PendingCheck>,
}

/// The parts of a restored file the first unseal checks the store against.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct PendingCheck {
    /// The header's bytes, hex.
    pub header: String,
    /// The MAC, hex.
    pub mac: String,
}

impl RestoreMarker {
    /// A marker for a restore now, owing `check`.
    pub(super) fn new(check: Option<PendingCheck>) -> Self {
        Self {
            restored_unix: now_unix(),
            check,
        }
    }

    pub(super) fn encode(&self) -> Vec<u8> {
        // Plain strings and integers always serialise.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A marker written by an older build (a timestamp) owes no check.
    pub(super) fn decode(bytes: &[u8]) -> Self {
        serde_json::from_slice(bytes).unwrap_or_default()
    }
}

impl Lifecycle {
    /// At an unseal, before any component uses `barrier`: if the store was
    /// restored from a snapshot not checked yet, recomputes the snapshot's
    /// MAC over what is stored with the key the snapshot brought, and
    /// refuses to open on a mismatch. Once it matched, the marker says so
    /// (one write), so later writes do not fail the check again.
    pub(super) async fn check_restored(&self, barrier: &Barrier) -> Result<(), Error> {
        let Some(raw) = self.storage.get(RESTORED_PATH).await? else {
            return Ok(());
        };
        let mut marker = RestoreMarker::decode(&raw);
        let Some(check) = marker.check.take() else {
            return Ok(());
        };
        let refused = |why: &str| {
            Error::FailedPrecondition(format!(
                "the restored snapshot does not pass its check ({why}), so the store stays sealed: its entries were changed after it was taken. Restore an unaltered snapshot"
            ))
        };
        let header = hex::decode(&check.header).map_err(|_| refused("damaged marker"))?;
        let expected = hex::decode(&check.mac).map_err(|_| refused("damaged marker"))?;
        let key = read_key(barrier)
            .await?
            .ok_or_else(|| refused("it carries no snapshot key"))?;
        let entries = self.store_entries().await?;
        let content = super::snapshot::content(&header, &entries);
        if !ct_eq(&mac(&key, &content), &expected) {
            tracing::error!(
                "a restored snapshot failed its MAC check at unseal; the store stays sealed"
            );
            return Err(refused("its MAC does not match"));
        }
        let mut batch = Batch::new();
        batch.put(RESTORED_PATH, marker.encode());
        self.storage.write(batch).await?;
        tracing::info!("the restored snapshot passed its MAC check");
        Ok(())
    }
}
