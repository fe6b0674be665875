//! The seal lifecycle: `uninitialized → sealed ⇄ unsealed`, and every
//! operation that changes the keys: init, unseal (by shares, by KMS, by a
//! seal migration), seal, keyring rotation, snapshots, and the quorum
//! operations rekey, rotate-root and generate-root.
//!
//! [`Lifecycle`] owns the seal state and the open [`Barrier`]. Status reads
//! only memory (a read lock and a few copies), so it stays cheap under load.
//! The operations that change keys or the seal state are serialised by one
//! async lock; the state lock is never held across an await. Whoever
//! authorizes a call has done so before it reaches this module (the gate in
//! `api`); nothing here knows callers, policies or transports.
//!
//! The other components keep state read through the barrier; they are
//! told when it opens and closes through their [`Hooks`].

mod auto_unseal;
mod emergency;
mod init;
mod migrate;
mod multiseal;
pub mod quorum;
mod recovery;
mod role;
mod rotation;
pub mod seal_config;
mod seals;
mod snapshot;
mod snapshot_mac;
mod state;
mod unseal;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::{Mutex, watch};

pub use auto_unseal::{AutoUnsealState, AutoUnsealStatus};
pub use emergency::EmergencyKeys;
pub use init::{InitParams, InitResult};
pub use migrate::Migration;
pub use multiseal::SealStatus;
pub use quorum::{
    Completed, Operation, QuorumOutcome, QuorumStatus, RekeyParams, RekeyStatus, RekeyTarget,
};
pub use rotation::{KeyStatus, KeyTerm, RotationPolicy};
pub use seal_config::SealConfig;
pub use snapshot::{Snapshot, SnapshotHeader};
pub use state::{HaStatus, Leader, Phase, Status};
pub use unseal::UnsealOutcome;

use crate::barrier::{Barrier, Hooks};
use crate::error::Error;
use crate::metrics;
use crate::seal::Seal;
use crate::seal::kms::Kms;
use crate::storage::Backend;
use seal_config::{ROOT_KEY_PATH, SEAL_CONFIG_PATH};
use state::{KmsReport, Progress, State};

/// What the config says beside the seal and storage.
#[derive(Clone, Default)]
pub struct Options {
    /// Overrides the cluster name recorded at init.
    pub cluster_name: Option<String>,
    /// When the keyring rotates by itself.
    pub rotation: RotationPolicy,
    /// The KMS of a seal block marked `disabled = true`: the seal a
    /// migration leaves.
    pub migrate_from: Option<Arc<dyn Kms>>,
    /// With HA: the addresses this node advertises when it becomes active.
    /// An unsealed node then stands by until it takes the role.
    pub ha: Option<Leader>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("cluster_name", &self.cluster_name)
            .field("rotation", &self.rotation)
            .field("ha", &self.ha)
            .field(
                "migrate_from",
                &self.migrate_from.as_ref().map(|k| k.key_id().to_string()),
            )
            .finish()
    }
}

/// The seal lifecycle of one store.
pub struct Lifecycle {
    storage: Arc<dyn Backend>,
    seal: Seal,
    /// The seal a migration leaves (a block with `disabled = true`).
    old_kms: Option<Arc<dyn Kms>>,
    /// The migration pending, until a quorum of old shares performs it.
    migration: std::sync::Mutex<Option<Migration>>,
    cluster_name: Option<String>,
    rotation: RotationPolicy,
    state: RwLock<State>,
    /// The components told when the barrier opens and closes.
    hooks: Vec<Arc<dyn Hooks>>,
    /// Serialises the operations that change keys or the seal state (init,
    /// unseal, rotations, rekey, restore). Sealing never waits for it.
    key_ops: Mutex<()>,
    phase: watch::Sender<Phase>,
    kms_report: std::sync::Mutex<KmsReport>,
    /// The active term's encryption count as last stored (a reservation).
    usage_recorded: AtomicU64,
    /// Quorum operations under way (rekey, rotate-root, generate-root).
    attempts: std::sync::Mutex<quorum::Attempts>,
    /// An init made and waiting for its receiver's confirmation.
    pending_init: std::sync::Mutex<init::InitSlot>,
    /// Emergency shares entered so far (several seals), apart from the
    /// recovery keys' progress.
    emergency_progress: std::sync::Mutex<Progress>,
    /// The recovery key opened by a break-glass unseal, until the node seals.
    break_glass_recovery: std::sync::Mutex<Option<emergency::BreakGlass>>,
    /// With HA: this node's role beside the seal state.
    ha: Option<role::Ha>,
    /// Why the store's state could not be read at start (the database is
    /// down, refuses the credentials, lacks its tables); retried until it
    /// answers (`recovery.rs`).
    storage_down: std::sync::Mutex<Option<String>>,
    /// With several seals: a write left a seal without its envelope; the
    /// active node's rewrap runs now rather than at the next health check.
    rewrap_wanted: tokio::sync::Notify,
}

impl Lifecycle {
    /// Reads the seal config from `storage` to learn whether init has run.
    /// Refuses storage initialized under another seal type than `seal`
    /// (unless the config describes a migration). `hooks` are told when the
    /// barrier opens and closes.
    pub async fn open(
        storage: Arc<dyn Backend>,
        seal: Seal,
        options: Options,
        hooks: Vec<Arc<dyn Hooks>>,
    ) -> Result<Arc<Self>, Error> {
        let mut report = KmsReport::default();
        let mut migration = None;
        let mut storage_down = None;
        let stored = match storage.get(SEAL_CONFIG_PATH).await {
            Ok(stored) => stored,
            // The database is down or not ready: up, sealed, retrying.
            Err(crate::storage::StorageError::Unavailable(reason)) => {
                storage_down = Some(reason);
                None
            }
            Err(e) => return Err(e.into()),
        };
        let state = match stored {
            None => {
                if options.migrate_from.is_some() {
                    tracing::warn!(
                        "the store is not initialized, so the seal block with disabled = true has nothing to migrate from; it is ignored"
                    );
                }
                State::Uninitialized
            }
            Some(bytes) => {
                let config = SealConfig::decode(&bytes).map_err(Error::Internal)?;
                migration = migrate::decide(&config, &seal, options.migrate_from.is_some())?;
                if config.is_recovery() {
                    let blob = storage.get(ROOT_KEY_PATH).await?.ok_or_else(|| {
                        Error::Internal(format!(
                            "storage has a seal config but no {ROOT_KEY_PATH}; the stored seal data is damaged"
                        ))
                    })?;
                    report.key_arn =
                        seals::stored_key_arn(&blob).map_err(|e| Error::Internal(e.to_string()))?;
                    (report.wrapped, report.holding) = seals::wrapped_in(&storage, &config).await;
                }
                State::Sealed {
                    config: Arc::new(config),
                    progress: Progress::default(),
                }
            }
        };
        let phase = state.phase();
        if seal.is_auto() && phase == Phase::Sealed {
            report.auto_unseal.state = if migration.is_some() {
                AutoUnsealState::Migration
            } else {
                AutoUnsealState::InProgress
            };
        }
        if let Some(migration) = migration {
            tracing::warn!(
                migration = migration.describe(),
                "a seal migration is pending: the daemon stays sealed until a quorum of the current keys is entered with `strongroom unseal --migrate`"
            );
        }
        Ok(Arc::new(Self {
            storage,
            seal,
            old_kms: options.migrate_from,
            migration: std::sync::Mutex::new(migration),
            cluster_name: options.cluster_name,
            rotation: options.rotation,
            state: RwLock::new(state),
            hooks,
            key_ops: Mutex::new(()),
            phase: watch::Sender::new(phase),
            kms_report: std::sync::Mutex::new(report),
            usage_recorded: AtomicU64::new(0),
            attempts: std::sync::Mutex::default(),
            pending_init: std::sync::Mutex::default(),
            emergency_progress: std::sync::Mutex::default(),
            break_glass_recovery: std::sync::Mutex::default(),
            ha: options.ha.map(role::Ha::new),
            storage_down: std::sync::Mutex::new(storage_down),
            rewrap_wanted: tokio::sync::Notify::new(),
        }))
    }

    fn report(&self) -> std::sync::MutexGuard<'_, KmsReport> {
        self.kms_report
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Follows the seal state as it changes.
    pub fn subscribe(&self) -> watch::Receiver<Phase> {
        self.phase.subscribe()
    }

    /// The current seal state.
    pub fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    /// The storage backend's name.
    pub fn storage_type(&self) -> &'static str {
        self.storage.kind()
    }

    // A poisoned lock means a thread panicked while holding it; the state it
    // guards is still a valid enum value, so carry on with it.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs every component's opening hook on `barrier`, before it serves.
    /// A store restored from a snapshot is checked against the snapshot's
    /// MAC first (`snapshot_mac.rs`).
    async fn opening(&self, barrier: &Barrier) -> Result<(), Error> {
        self.check_restored(barrier).await?;
        for hook in &self.hooks {
            hook.opening(barrier).await?;
        }
        Ok(())
    }

    /// Puts `state` in force. When it closes an open barrier (a seal, a
    /// restore), the components forget what they read through it.
    fn set_state(&self, state: State) {
        let phase = state.phase();
        let previous = std::mem::replace(&mut *self.write(), state);
        self.after_change(&previous, phase);
    }

    /// Puts `state` in force only if the state in force still passes
    /// `expected` (checked and replaced under one lock); false otherwise.
    fn set_state_if(&self, expected: impl Fn(&State) -> bool, state: State) -> bool {
        let phase = state.phase();
        let previous = {
            let mut current = self.write();
            if !expected(&current) {
                return false;
            }
            std::mem::replace(&mut *current, state)
        };
        self.after_change(&previous, phase);
        true
    }

    /// Leaving a state whose barrier components read through (the open
    /// one, or a standby's, which a seal's authorization reads), they
    /// forget what they read; the phase is published.
    fn after_change(&self, previous: &State, phase: Phase) {
        if phase != Phase::Sealed {
            self.drop_emergency_progress();
        }
        if !matches!(phase, Phase::Unsealed | Phase::Standby) {
            self.drop_break_glass();
        }
        if matches!(previous, State::Unsealed { .. } | State::Standby { .. }) {
            for hook in &self.hooks {
                hook.closed();
            }
        }
        self.phase.send_replace(phase);
    }

    /// The seal status. Reads memory only.
    pub fn status(&self) -> Status {
        let state = self.read();
        let mut status = Status {
            seal_type: self.seal.name(),
            initialized: false,
            sealed: true,
            threshold: 0,
            shares: 0,
            progress: 0,
            nonce: String::new(),
            version: env!("CARGO_PKG_VERSION"),
            storage_type: self.storage.kind(),
            cluster_name: self.cluster_name.clone().unwrap_or_default(),
            cluster_id: String::new(),
            recovery_seal: self.seal.is_auto(),
            kms_key_arn: String::new(),
            auto_unseal: None,
            warnings: Vec::new(),
            migration: false,
            ha: self.ha_status(),
            storage_error: self.storage_down().unwrap_or_default(),
            key_health: String::new(),
            seals: Vec::new(),
        };
        if let Seal::Multi(set) = &self.seal {
            let emergency = match &*state {
                State::Uninitialized => None,
                State::Sealed { config, .. }
                | State::Unsealed { config, .. }
                | State::Standby { config, .. } => config.emergency.as_ref(),
            };
            status.seals = self.seal_statuses(set, emergency);
        }
        if self.seal.is_auto() {
            let report = self.report();
            status.auto_unseal = Some(report.auto_unseal.clone());
            status.kms_key_arn.clone_from(&report.key_arn);
            status.key_health = report.key_health.clone().unwrap_or_default();
            status.warnings = [&report.key_health, &report.key_move, &report.seal_note]
                .into_iter()
                .flatten()
                .cloned()
                .collect();
        }
        let config = match &*state {
            State::Uninitialized => return status,
            State::Sealed { config, progress } => {
                status.progress = u32::try_from(progress.shares.len()).unwrap_or(u32::MAX);
                status.nonce.clone_from(&progress.nonce);
                config
            }
            State::Unsealed { config, .. } | State::Standby { config, .. } => {
                status.sealed = false;
                config
            }
        };
        status.initialized = true;
        status.threshold = config.secret_threshold;
        status.shares = config.secret_shares;
        if let Some(migration) = self.migration() {
            // The shares to enter are the old seal's, whatever the new one is.
            status.migration = true;
            status.recovery_seal = config.is_recovery();
            status.warnings.push(if self.migration_prepared() {
                format!(
                    "the seal migration ({}) is prepared and is written when this node takes the active role: step the active node down (`strongroom step-down` there)",
                    migration.describe()
                )
            } else {
                self.migration_warning(migration, unseal::share_noun(config))
            });
        }
        status.cluster_id.clone_from(&config.cluster_id);
        if status.cluster_name.is_empty() {
            status.cluster_name.clone_from(&config.cluster_name);
        }
        status
    }

    /// The seal config in force; `None` before init.
    fn seal_config(&self) -> Option<Arc<SealConfig>> {
        match &*self.read() {
            State::Uninitialized => None,
            State::Sealed { config, .. }
            | State::Unsealed { config, .. }
            | State::Standby { config, .. } => Some(Arc::clone(config)),
        }
    }

    /// Puts a seal config that was just written to storage in force.
    fn replace_seal_config(&self, new: SealConfig) {
        match &mut *self.write() {
            State::Uninitialized => {}
            State::Sealed { config, .. }
            | State::Unsealed { config, .. }
            | State::Standby { config, .. } => *config = Arc::new(new),
        }
    }

    /// The open barrier, or the reason there is none.
    pub fn barrier(&self) -> Result<Arc<Barrier>, Error> {
        match &*self.read() {
            State::Unsealed { barrier, .. } => {
                self.check_lease()?;
                Ok(Arc::clone(barrier))
            }
            State::Standby { .. } => Err(self.standby_error()),
            State::Sealed { .. } => Err(Error::Sealed),
            State::Uninitialized => Err(Error::NotInitialized),
        }
    }

    /// Seals (an operator's Seal, SIGTERM), then records the keyring's
    /// encryption counts. The keys leave the state first; the counts are
    /// written with the barrier this call still holds.
    pub async fn seal(&self) {
        let barrier = self.barrier().ok();
        self.seal_now();
        if let Some(barrier) = barrier {
            self.record_usage_at_seal(&barrier).await;
        }
    }

    /// Seals without recording the encryption count: drops the barrier, so
    /// the root key and keyring are zeroed once in-flight requests holding
    /// them finish. An awskms daemon stays sealed until a quorum of
    /// recovery shares or a restart, and an auto-unseal attempt still in
    /// flight is told to drop its result. Does not wait for the key
    /// operations' lock: sealing must never queue behind a KMS call.
    fn seal_now(&self) {
        if self.seal.is_auto() {
            // Before the state changes: an attempt that finishes in between
            // sees either the barrier still open or this stop.
            self.report().auto_unseal = AutoUnsealStatus::stopped();
        }
        let config = match &*self.read() {
            State::Unsealed { config, .. } | State::Standby { config, .. } => Arc::clone(config),
            _ => return,
        };
        // Shares entered for quorum operations go with the keys.
        self.attempts().clear();
        self.drop_unseal_key();
        self.drop_prepared_migration();
        self.set_state(State::Sealed {
            config,
            progress: Progress::default(),
        });
        metrics::sealed();
        tracing::info!("sealed: root key and keyring dropped from memory");
    }
}

/// Set-ups shared by the unit tests of the lifecycle's modules.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use super::{InitParams, Lifecycle, Options, Seal};
    use crate::storage::Backend;

    /// A Shamir-sealed lifecycle on `storage`, default options, no hooks.
    pub async fn open_shamir(storage: Arc<dyn Backend>) -> Arc<Lifecycle> {
        Lifecycle::open(storage, Seal::Shamir, Options::default(), Vec::new())
            .await
            .unwrap()
    }

    /// Inits `lifecycle` with one share and unseals it: (the share in hex,
    /// the root token).
    pub async fn unsealed_one_of_one(lifecycle: &Lifecycle) -> (String, String) {
        let init = lifecycle
            .init_and_confirm(InitParams::shamir(1, 1))
            .await
            .unwrap();
        let key = hex::encode(init.shares[0].expose());
        lifecycle.unseal(&key).await.unwrap();
        (key, init.root_token.expose().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::InmemBackend;

    async fn lifecycle() -> Arc<Lifecycle> {
        testing::open_shamir(Arc::new(InmemBackend::new())).await
    }

    #[tokio::test]
    async fn a_new_store_is_uninitialized() {
        let lifecycle = lifecycle().await;
        let status = lifecycle.status();
        assert!(!status.initialized);
        assert!(status.sealed);
        assert_eq!(lifecycle.phase(), Phase::Uninitialized);
        assert_eq!(lifecycle.barrier().err(), Some(Error::NotInitialized));
    }

    #[tokio::test]
    async fn init_unseal_seal_cycle() {
        let lifecycle = lifecycle().await;
        let init = lifecycle
            .init_and_confirm(InitParams::shamir(5, 3))
            .await
            .unwrap();
        assert_eq!(init.shares.len(), 5);
        assert_eq!(lifecycle.phase(), Phase::Sealed);
        assert_eq!(
            lifecycle
                .init_and_confirm(InitParams::default())
                .await
                .err(),
            Some(Error::AlreadyInitialized)
        );

        for (i, share) in init.shares.iter().take(3).enumerate() {
            let outcome = lifecycle
                .unseal(&hex::encode(share.expose()))
                .await
                .unwrap();
            assert!(!outcome.duplicate);
            assert_eq!(outcome.status.sealed, i < 2);
        }
        assert_eq!(lifecycle.phase(), Phase::Unsealed);
        lifecycle.seal().await;
        assert_eq!(lifecycle.phase(), Phase::Sealed);
        assert_eq!(lifecycle.barrier().err(), Some(Error::Sealed));
    }
}
