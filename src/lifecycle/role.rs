//! With HA (docs/HA.md): the active and standby roles beside the seal
//! state. An unsealed node stands by ([`State::Standby`]: its keys in
//! memory, serving nothing) until the election (`crate::ha`) gives it the
//! role; [`Lifecycle::take_over`] then reloads what another node may have
//! changed and opens the barrier for service, and [`Lifecycle::step_down`]
//! goes back to standing by. Who is active is told by the election too
//! ([`Lifecycle::set_leader`]); this module only keeps it for Status and
//! for the sentence a standby answers with.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use super::migrate::Migrated;
use super::seal_config::{RECOVERY_KEY_PATH, ROOT_KEY_PATH, SEAL_CONFIG_PATH, SEAL_MIGRATED_PATH};
use super::state::{HaStatus, Leader, State};
use super::{Lifecycle, Migration, SealConfig};
use crate::barrier::{Barrier, BarrierError, KEYRING_PATH, entry};
use crate::error::Error;
use crate::metrics;
use crate::seal::Seal;
use crate::seal::envelope::Purpose;
use crate::secret::SecretKey;
use crate::storage::{Batch, Change};

/// The path an advertisement is encrypted for (its AAD); it is stored in
/// the lease row, never at this path.
const ADVERTISEMENT_PATH: &str = "core/ha-advertisement";

/// What a node configured for the seal a migration left says.
const MIGRATED_ELSEWHERE: &str = "the active node migrated the seal; this node sealed itself: restart it with the new seal block in its config";

fn sealed_meanwhile() -> Error {
    Error::FailedPrecondition(
        "this node was sealed during the take-over; it does not take the role".into(),
    )
}

/// Marks a snapshot restore under way until dropped.
pub(super) struct Restoring<'a>(&'a AtomicBool);

impl Drop for Restoring<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// What a node with HA keeps about the roles.
pub(super) struct Ha {
    /// What this node advertises when it takes the role.
    own: Leader,
    /// The active node as last seen (this node when it is active).
    leader: Mutex<Option<Leader>>,
    /// Shamir: the unseal key the shares entered here combined into, kept
    /// while unsealed so a take-over can read a root key that the active
    /// node rotated meanwhile (the shares stay; rotate-root re-encrypts
    /// the new root key under this key). Dropped with the other keys.
    unseal_key: Mutex<Option<SecretKey>>,
    /// A snapshot restore is under way: sealed, but still writing.
    restoring: AtomicBool,
    /// While active: the local deadline of the lease.
    deadline: Mutex<Option<Instant>>,
    /// A seal migration whose KMS calls are made and whose one write waits
    /// for this node's take-over.
    migration: Mutex<Option<PendingMigration>>,
    /// When this node was last unsealed into standby, Unix seconds.
    standby_since_unix: std::sync::atomic::AtomicU64,
}

/// A seal migration ready to be written.
struct PendingMigration {
    migration: Migration,
    key_arn: Option<String>,
    batch: Batch,
    /// The stored seal data (configuration, root and recovery key
    /// entries) before it was prepared: the take-over writes the batch only
    /// if it is unchanged (no rekey, rotate-root, rewrap, restore or other
    /// migration since).
    from: SealData,
    /// The seal configuration the batch writes (found stored: the batch
    /// was written already, by this node or another).
    to: SealConfig,
}

/// The entries that say how the store is sealed, as stored.
#[derive(Default, PartialEq, Eq)]
pub(super) struct SealData {
    config: Option<Vec<u8>>,
    root_key: Option<Vec<u8>>,
    recovery_key: Option<Vec<u8>>,
}

impl Ha {
    pub(super) fn new(own: Leader) -> Self {
        Self {
            own,
            leader: Mutex::new(None),
            unseal_key: Mutex::new(None),
            restoring: AtomicBool::new(false),
            deadline: Mutex::new(None),
            migration: Mutex::new(None),
            standby_since_unix: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn unseal_key(&self) -> std::sync::MutexGuard<'_, Option<SecretKey>> {
        self.unseal_key
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn leader(&self) -> Option<Leader> {
        self.leader
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_leader(&self, leader: Option<Leader>) {
        *self.leader.lock().unwrap_or_else(PoisonError::into_inner) = leader;
    }
}

impl Lifecycle {
    /// Whether this node takes part in HA: an unseal makes it a standby.
    pub fn is_ha(&self) -> bool {
        self.ha.is_some()
    }

    /// A snapshot restore is under way on this node: it is sealed, but the
    /// election must keep its term until the restore has written the store.
    pub fn is_restoring(&self) -> bool {
        self.ha
            .as_ref()
            .is_some_and(|ha| ha.restoring.load(Ordering::SeqCst))
    }

    /// Marks a restore under way until the guard is dropped.
    pub(super) fn restoring(&self) -> Option<Restoring<'_>> {
        let ha = self.ha.as_ref()?;
        ha.restoring.store(true, Ordering::SeqCst);
        Some(Restoring(&ha.restoring))
    }

    /// What this node advertises when active; `None` without HA.
    pub fn advertised(&self) -> Option<Leader> {
        self.ha.as_ref().map(|ha| ha.own.clone())
    }

    /// The active node as last seen; `None` without HA or when no node
    /// holds the role.
    pub fn leader(&self) -> Option<Leader> {
        self.ha.as_ref().and_then(Ha::leader)
    }

    /// This node's advertisement for the lease row, encrypted and
    /// authenticated by the barrier (the keys every unsealed node of the
    /// cluster holds), so that whoever can write the database cannot send
    /// standbys, or the clients they name the active node to, elsewhere.
    /// `None` when this node holds no keys.
    pub fn seal_advertisement(&self, plaintext: &[u8]) -> Option<Vec<u8>> {
        let barrier = self.local_barrier().ok()?;
        Some(barrier.encrypt(ADVERTISEMENT_PATH, plaintext))
    }

    /// An advertisement read from the lease row, if this node's keys open
    /// it (a node that is sealed, or that holds an older keyring than the
    /// writer's, names no active node until they do).
    pub fn open_advertisement(&self, sealed: &[u8]) -> Option<crate::secret::SecretBytes> {
        let barrier = match &*self.read() {
            State::Standby { barrier, .. } | State::Unsealed { barrier, .. } => Arc::clone(barrier),
            _ => return None,
        };
        barrier
            .decrypt(ADVERTISEMENT_PATH, sealed)
            .inspect_err(|e| tracing::debug!(error = %e, "an HA advertisement did not open"))
            .ok()
    }

    /// The election saw `leader` holding the role (`None`: nobody holds it).
    pub fn set_leader(&self, leader: Option<Leader>) {
        if let Some(ha) = &self.ha {
            ha.set_leader(leader);
        }
    }

    /// Status's HA part; `None` without HA.
    pub(super) fn ha_status(&self) -> Option<HaStatus> {
        let ha = self.ha.as_ref()?;
        let is_self = matches!(&*self.read(), State::Unsealed { .. });
        Some(HaStatus {
            is_self,
            leader: ha.leader(),
        })
    }

    /// The barrier for a node-local call (a seal): the open one, or a
    /// standby's, which only reads (a standby writes nothing).
    pub fn local_barrier(&self) -> Result<Arc<Barrier>, Error> {
        match &*self.read() {
            State::Standby { barrier, .. } => Ok(Arc::clone(barrier)),
            _ => self.barrier(),
        }
    }

    /// What a standby answers to a call only the active node serves.
    pub(super) fn standby_error(&self) -> Error {
        let leader = self.ha.as_ref().and_then(Ha::leader);
        Error::Unavailable(match leader {
            Some(leader) => format!(
                "this node is a standby; the active node is at {}: send the call there",
                leader.api_addr
            ),
            None => "this node is a standby and no node is active yet; retry in a moment".into(),
        })
    }

    /// The election gave this node the role (its term is set in storage):
    /// reloads the seal configuration and the keyring that another node
    /// may have changed, runs every component's opening hooks, and serves.
    /// `active_since_unix_ms` is when the take-over committed. When the
    /// keys it holds no longer open the store (a restore, a rekey and a
    /// root rotation while it stood by) the node seals itself and says so;
    /// on any error the caller gives the role back, and a node sealed
    /// meanwhile (an operator, SIGTERM) stays sealed.
    pub async fn take_over(&self, active_since_unix_ms: u64) -> Result<(), Error> {
        let _key_ops = self.key_ops.lock().await;
        let root_key = match &*self.read() {
            State::Standby { barrier, .. } => barrier.root_key().clone(),
            _ => return Err(sealed_meanwhile()),
        };
        if !self.write_pending_migration().await? {
            self.refuse_after_a_migration().await?;
        }
        let (config, barrier) = match self.reload(root_key).await {
            Ok(opened) => opened,
            // The database or KMS failed under the take-over: the node
            // stands by and tries again.
            Err(e @ (Error::Unavailable(_) | Error::KmsUnavailable(_))) => return Err(e),
            Err(e) => {
                let message = format!(
                    "this node took the active role but could not open the store with the keys it holds ({e}); it sealed itself: unseal it again"
                );
                tracing::error!("{message}");
                self.seal_now();
                return Err(Error::Unavailable(message));
            }
        };
        // Whatever a component read while this node stood by (a seal's
        // caller's policies) may be stale now: forget it before opening.
        for hook in &self.hooks {
            hook.closed();
        }
        if let Err(e) = self.opening(&barrier).await {
            for hook in &self.hooks {
                hook.closed();
            }
            tracing::error!(error = %e, "the store could not be opened for service after the take-over; this node stands by again");
            return Err(e);
        }
        let Some(ha) = &self.ha else {
            return Err(Error::Internal("take-over without HA".into()));
        };
        // A seal (an operator's, SIGTERM's, a restore heard) may have come
        // while the store was read: it is never undone here.
        let serving = State::Unsealed {
            config,
            barrier: Arc::new(barrier),
        };
        if !self.set_state_if(|s| matches!(s, State::Standby { .. }), serving) {
            for hook in &self.hooks {
                hook.closed();
            }
            return Err(sealed_meanwhile());
        }
        ha.set_leader(Some(Leader {
            active_since_unix_ms,
            ..ha.own.clone()
        }));
        metrics::took_over();
        tracing::info!("active: this node serves every call");
        Ok(())
    }

    /// With a seal migration prepared on this node: its one write, now that
    /// the node holds a term (the other nodes, sealed under the old seal,
    /// hear of it and seal themselves).
    /// True when it wrote one.
    async fn write_pending_migration(&self) -> Result<bool, Error> {
        let Some(ha) = &self.ha else {
            return Ok(false);
        };
        let pending = ha
            .migration
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(pending) = pending else {
            return Ok(false);
        };
        // The term fences every other writer out: what is read now stays
        // true until this write.
        match self.migration_still_applies(&pending).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!("the prepared seal migration is in the store already");
                self.migrated_report(pending.key_arn);
                return Ok(true);
            }
            Err(stale) => {
                let message = format!(
                    "the seal migration prepared on this node no longer applies ({stale}); it was dropped and this node sealed itself: enter the keys with `strongroom unseal --migrate` again"
                );
                tracing::error!("{message}");
                self.seal_now();
                return Err(Error::FailedPrecondition(message));
            }
        }
        // The marker that tells the other nodes, with the time of this
        // write, behind the barrier (no database writer can forge it). This
        // node's config is the new seal's: the marker is not news to it
        // (set first: its own notification may come back before the write
        // returns).
        let at = crate::time::now_unix();
        let mut batch = pending.batch.clone();
        let barrier = self.local_barrier()?;
        batch.put(
            SEAL_MIGRATED_PATH,
            barrier.encrypt(SEAL_MIGRATED_PATH, at.to_string().as_bytes()),
        );
        ha.standby_since_unix.store(at, Ordering::SeqCst);
        if let Err(e) = self.storage.write(batch).await {
            // Kept for the next take-over: nothing was written.
            *ha.migration.lock().unwrap_or_else(PoisonError::into_inner) = Some(pending);
            return Err(e.into());
        }
        self.migrated_report(pending.key_arn);
        tracing::info!(
            migration = pending.migration.describe(),
            "seal migration complete: this node took the active role and wrote the new seal. Remove the old seal block from the config, and restart the other nodes with the new one"
        );
        Ok(true)
    }

    /// A node that stood by before the last seal migration holds the old
    /// seal's config (even for a migration between two KMS keys, which
    /// the seal type does not show): it seals rather than take the role.
    async fn refuse_after_a_migration(&self) -> Result<(), Error> {
        let Some(ha) = &self.ha else {
            return Ok(());
        };
        let Some(sealed) = self.storage.get(SEAL_MIGRATED_PATH).await? else {
            return Ok(());
        };
        // Behind the barrier: a marker these keys do not open (forged, or
        // under a keyring term this node does not hold yet) is no proof.
        let migrated = self
            .local_barrier()
            .ok()
            .and_then(|barrier| barrier.decrypt(SEAL_MIGRATED_PATH, &sealed).ok())
            .and_then(|plain| {
                std::str::from_utf8(plain.expose())
                    .ok()?
                    .trim()
                    .parse::<u64>()
                    .ok()
            });
        match migrated {
            Some(at) if at > ha.standby_since_unix.load(Ordering::SeqCst) => {
                tracing::warn!("{MIGRATED_ELSEWHERE}");
                self.seal_now();
                Err(Error::FailedPrecondition(MIGRATED_ELSEWHERE.into()))
            }
            _ => Ok(()),
        }
    }

    /// The seal configuration, root key and recovery key entries as
    /// stored now.
    pub(super) async fn stored_seal_data(&self) -> Result<SealData, Error> {
        Ok(SealData {
            config: self.storage.get(SEAL_CONFIG_PATH).await?,
            root_key: self.storage.get(ROOT_KEY_PATH).await?,
            recovery_key: self.storage.get(RECOVERY_KEY_PATH).await?,
        })
    }

    /// Whether a prepared migration is still to be written: `Ok(true)` if
    /// the stored seal data is what it was prepared against, `Ok(false)` if
    /// the stored configuration is already the one it writes (written by
    /// an earlier take-over whose answer was lost, or by another node).
    async fn migration_still_applies(&self, pending: &PendingMigration) -> Result<bool, String> {
        let now = self.stored_seal_data().await.map_err(|e| e.to_string())?;
        if now == pending.from {
            return Ok(true);
        }
        let written = now
            .config
            .as_deref()
            .and_then(|c| SealConfig::decode(c).ok())
            .is_some_and(|c| c == pending.to);
        match written {
            true => Ok(false),
            false => Err("the stored seal data changed since (a rekey, rotate-root, rewrap, restore or another migration)".into()),
        }
    }

    /// A seal migration is prepared here and waits for the take-over.
    pub(super) fn migration_prepared(&self) -> bool {
        self.ha.as_ref().is_some_and(|ha| {
            ha.migration
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some()
        })
    }

    /// Forgets a prepared migration (at a seal: its keys go too).
    pub(super) fn drop_prepared_migration(&self) {
        if let Some(ha) = &self.ha {
            *ha.migration.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }

    /// With HA, after a quorum of old keys for a seal migration: the node
    /// stands by holding the keys and the migration's batch, which its
    /// take-over writes.
    pub(super) fn stand_by_to_migrate(
        &self,
        migration: Migration,
        from: SealData,
        migrated: Migrated,
        batch: Batch,
    ) {
        if let Some(ha) = &self.ha {
            *ha.migration.lock().unwrap_or_else(PoisonError::into_inner) = Some(PendingMigration {
                migration,
                key_arn: migrated.key_arn.clone(),
                batch,
                from,
                to: migrated.config.clone(),
            });
        }
        tracing::info!(
            migration = migration.describe(),
            "seal migration prepared; it is written when this node takes the active role (step the active node down, or stop it)"
        );
        self.stand_by(Arc::new(migrated.config), migrated.barrier);
    }

    /// The seal configuration and the keyring as stored now, opened with
    /// `root_key`, or, when the active node rotated the root key meanwhile,
    /// with the stored root key read again: under the unseal key this node
    /// holds (Shamir), or by one KMS Decrypt (awskms).
    async fn reload(&self, root_key: SecretKey) -> Result<(Arc<SealConfig>, Barrier), Error> {
        let stored = self
            .storage
            .get(SEAL_CONFIG_PATH)
            .await?
            .ok_or_else(|| Error::Internal("the store has no seal configuration".into()))?;
        let config = SealConfig::decode(&stored).map_err(Error::Internal)?;
        if !self.seal_fits(&config.seal_type) {
            return Err(Error::FailedPrecondition(format!(
                "the store is sealed by {} and this node's config names {}: restart it with the store's seal block",
                config.seal_type,
                self.seal.name()
            )));
        }
        let barrier = match Barrier::unlock(Arc::clone(&self.storage), root_key).await {
            Ok(barrier) => barrier,
            Err(BarrierError::Storage(e)) => return Err(e.into()),
            Err(first) => {
                let root_key = self.stored_root_key(&config).await.map_err(|e| match e {
                    // Unavailable now: the take-over is tried again later.
                    Error::Unavailable(_) | Error::KmsUnavailable(_) => e,
                    e => Error::Internal(format!(
                        "the keyring does not open with this node's root key ({first}), and the stored root key could not be read again: {e}"
                    )),
                })?;
                tracing::info!("the root key was rotated while this node stood by; read it again");
                Barrier::unlock(Arc::clone(&self.storage), root_key)
                    .await
                    .map_err(|e| match e {
                        BarrierError::Storage(e) => e.into(),
                        e => Error::Internal(e.to_string()),
                    })?
            }
        };
        Ok((Arc::new(config), barrier))
    }

    /// The root key as stored now.
    async fn stored_root_key(&self, config: &SealConfig) -> Result<SecretKey, Error> {
        match &self.seal {
            Seal::AwsKms(_) | Seal::Multi(_) => self
                .open_stored_key(Purpose::RootKey, &config.cluster_id)
                .await
                .map(|(key, _)| key),
            Seal::Shamir => {
                let unseal_key = self
                    .ha
                    .as_ref()
                    .and_then(|ha| ha.unseal_key().clone())
                    .ok_or_else(|| {
                        Error::FailedPrecondition(
                            "this node holds no unseal key (it was unsealed before a rekey, or by another path)".into(),
                        )
                    })?;
                let blob =
                    self.storage.get(ROOT_KEY_PATH).await?.ok_or_else(|| {
                        Error::Internal(format!("storage has no {ROOT_KEY_PATH}"))
                    })?;
                let opened = entry::open(&unseal_key, ROOT_KEY_PATH, &blob).map_err(|_| {
                    Error::FailedPrecondition(
                        "the stored root key does not open with this node's unseal key (the store was rekeyed while this node stood by)".into(),
                    )
                })?;
                SecretKey::from_slice(opened.expose()).ok_or_else(|| {
                    Error::Internal("the stored root key has the wrong length".into())
                })
            }
        }
    }

    /// With HA and Shamir: keeps the unseal key the entered shares made.
    pub(super) fn hold_unseal_key(&self, unseal_key: SecretKey) {
        if let Some(ha) = &self.ha {
            *ha.unseal_key() = Some(unseal_key);
        }
    }

    /// Drops the unseal key held for take-overs (at a seal).
    pub(super) fn drop_unseal_key(&self) {
        if let Some(ha) = &self.ha {
            *ha.unseal_key() = None;
        }
    }

    /// The role is gone (another node took it, the lease ran out, or this
    /// node gave it up): stop serving at once and stand by, keys kept. A
    /// quorum operation in progress is cancelled with its shares.
    pub fn step_down(&self) {
        self.set_lease_deadline(None);
        let (config, barrier) = match &*self.read() {
            State::Unsealed { config, barrier } => (Arc::clone(config), Arc::clone(barrier)),
            _ => return,
        };
        // A seal that came meanwhile stays.
        let standby = State::Standby { config, barrier };
        if !self.set_state_if(|s| matches!(s, State::Unsealed { .. }), standby) {
            return;
        }
        if !self.attempts().is_empty() {
            tracing::warn!(
                "a quorum operation was in progress and is cancelled: this node is no longer active; start it again on the active node"
            );
        }
        self.attempts().clear();
        if let Some(ha) = &self.ha {
            ha.set_leader(None);
        }
        metrics::stepped_down();
        tracing::warn!("standing by: this node is no longer the active node");
    }

    /// The active node's local deadline (docs/HA.md, Renewal): past it,
    /// the node answers nothing as active, whether or not the election
    /// loop has run since (a paused process wakes up to it).
    pub fn set_lease_deadline(&self, deadline: Option<Instant>) {
        if let Some(ha) = &self.ha {
            *ha.deadline.lock().unwrap_or_else(PoisonError::into_inner) = deadline;
        }
    }

    /// Refuses a call on an active node whose local deadline passed.
    pub(super) fn check_lease(&self) -> Result<(), Error> {
        let Some(ha) = &self.ha else {
            return Ok(());
        };
        let deadline = *ha.deadline.lock().unwrap_or_else(PoisonError::into_inner);
        match deadline {
            Some(deadline) if Instant::now() >= deadline => Err(Error::Unavailable(
                "this node's lease on the active role ran out and it is stepping down; retry in a moment".into(),
            )),
            _ => Ok(()),
        }
    }

    /// What a standby hears the active node changed (PostgreSQL NOTIFY):
    /// it drops what its components cached (a seal's caller's policies)
    /// and, when the keyring changed, reads it again, so a token made
    /// under a new term is readable here; after a snapshot restore it
    /// seals itself, since the store may no longer open with its keys.
    /// The active node ignores it.
    pub async fn heard(&self, change: &Change) {
        if !matches!(&*self.read(), State::Standby { .. }) {
            return;
        }
        match change {
            Change::Restored => {
                // Anyone who may connect to the database can NOTIFY: seal
                // only for a restore the store itself records since this
                // node stood by.
                if !self.restored_since_standby().await {
                    tracing::warn!(
                        "a restore notification came without a new restore recorded in the store; ignored"
                    );
                    return;
                }
                tracing::warn!(
                    "the active node restored a snapshot; this node sealed itself: unseal it again (with the snapshot's keys if they differ)"
                );
                self.seal_now();
            }
            Change::Paths(paths) => {
                for hook in &self.hooks {
                    hook.closed();
                }
                if paths.iter().any(|p| p == SEAL_MIGRATED_PATH || p == "*")
                    && !self.migration_prepared()
                    && self.refuse_after_a_migration().await.is_err()
                {
                    return;
                }
                if paths.iter().any(|p| p == SEAL_CONFIG_PATH || p == "*") {
                    self.follow_seal_config().await;
                }
                if paths.iter().any(|p| p == KEYRING_PATH || p == "*") {
                    self.refresh_standby_keyring().await;
                }
            }
            Change::Missed => {
                for hook in &self.hooks {
                    hook.closed();
                }
                if !self.migration_prepared() && self.refuse_after_a_migration().await.is_err() {
                    return;
                }
                self.follow_seal_config().await;
                self.refresh_standby_keyring().await;
            }
            // The election loop names the new active node.
            Change::Leader(_) => {}
        }
    }

    /// A standby reads the seal configuration the active node changed: a
    /// rekey's new shares are taken in; a seal migrated to another type
    /// seals this node, whose config names the old one.
    async fn follow_seal_config(&self) {
        let stored = match self.storage.get(SEAL_CONFIG_PATH).await {
            Ok(Some(stored)) => stored,
            _ => return,
        };
        let Ok(config) = SealConfig::decode(&stored) else {
            return;
        };
        // A node with a migration prepared waits for its take-over, which
        // checks the store again.
        if !matches!(&*self.read(), State::Standby { .. }) || self.migration_prepared() {
            return;
        }
        if !self.seal_fits(&config.seal_type) {
            tracing::warn!(seal = %config.seal_type, "{MIGRATED_ELSEWHERE}");
            self.seal_now();
            return;
        }
        self.replace_seal_config(config);
    }

    /// A standby reads the keyring again with the root key it holds (a
    /// root key rotated meanwhile is left to the take-over).
    async fn refresh_standby_keyring(&self) {
        let _key_ops = self.key_ops.lock().await;
        let root_key = match &*self.read() {
            State::Standby { barrier, .. } => barrier.root_key().clone(),
            _ => return,
        };
        // As at a take-over: a root key rotated meanwhile is read again.
        match self.reload(root_key).await {
            Ok((config, barrier)) => {
                let standby = State::Standby {
                    config,
                    barrier: Arc::new(barrier),
                };
                self.set_state_if(|s| matches!(s, State::Standby { .. }), standby);
            }
            Err(e) => {
                tracing::debug!(error = %e, "a standby could not read the keyring again; the take-over will try again")
            }
        }
    }

    /// An operator's step-down: the active node stops serving and stands by;
    /// the election sees it and gives the role back. Refused without HA.
    pub fn give_up_role(&self) -> Result<(), Error> {
        if !self.is_ha() {
            return Err(Error::FailedPrecondition(
                "step-down needs HA (storage \"postgresql\" with ha_enabled); this node runs alone"
                    .into(),
            ));
        }
        self.barrier()?;
        tracing::info!("step-down requested by an operator");
        self.step_down();
        Ok(())
    }

    /// Whether the store records a snapshot restore made after this node
    /// stood by (the restore marker's time, by the active node's clock; a
    /// few seconds of skew are allowed for).
    async fn restored_since_standby(&self) -> bool {
        let Some(ha) = &self.ha else {
            return false;
        };
        let since = ha.standby_since_unix.load(Ordering::SeqCst);
        match self.storage.get(super::rotation::RESTORED_PATH).await {
            Ok(Some(raw)) => {
                super::snapshot_mac::RestoreMarker::decode(&raw)
                    .restored_unix
                    .saturating_add(5)
                    >= since
            }
            _ => false,
        }
    }

    /// With HA, where an unseal leaves the node: standing by, the
    /// components not opened yet (that is the take-over's work).
    pub(super) fn stand_by(&self, config: Arc<SealConfig>, barrier: Barrier) {
        if let Some(ha) = &self.ha {
            ha.standby_since_unix
                .store(crate::time::now_unix(), Ordering::SeqCst);
        }
        self.set_state(State::Standby {
            config,
            barrier: Arc::new(barrier),
        });
        tracing::info!("unsealed; standing by until this node takes the active role");
    }
}
