//! The state machine: `uninitialized → sealed ⇄ unsealed`.
//!
//! [`Core`] owns the seal state and the unsealed [`Barrier`]. Status reads
//! only memory (a read lock and a few copies), so it stays cheap under load.
//! Init, unseal and seal are serialised by one async lifecycle lock; the state
//! lock is never held across an await.

pub mod acl;
mod auth;
mod auto_unseal;
mod error;
mod init;
mod keyring;
pub mod keys;
pub mod kv;
mod migrate;
mod policy;
mod quorum;
mod recipients;
mod salt;
pub mod seal_config;
mod snapshot;
pub mod token;
mod unseal;
mod wrap;

/// Set-ups shared by the unit tests of the core's modules.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use super::{Core, InitParams, Options, Seal};
    use crate::storage::Backend;

    /// A Shamir-sealed core on `storage`, default options.
    pub async fn open_shamir(storage: Arc<dyn Backend>) -> Arc<Core> {
        Core::open(storage, Seal::Shamir, Options::default())
            .await
            .unwrap()
    }

    /// Inits `core` with one share and unseals it: (the share in hex, the
    /// root token).
    pub async fn unsealed_one_of_one(core: &Core) -> (String, String) {
        let init = core
            .init_and_confirm(InitParams::shamir(1, 1))
            .await
            .unwrap();
        let key = hex::encode(init.shares[0].expose());
        core.unseal(&key).await.unwrap();
        (key, init.root_token.expose().to_string())
    }
}

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::{Mutex, watch};

pub use acl::Capability;
pub use auth::{Caller, Identity, Subject};
pub use auto_unseal::{AutoUnsealState, AutoUnsealStatus};
pub use error::CoreError;
pub(crate) use init::random_uuid as random_id;
pub use init::{InitParams, InitResult};
pub use keyring::{KeyStatus, RotationPolicy};
pub use migrate::Migration;
pub use quorum::{
    Completed, OTP_LEN, Operation, QuorumOutcome, QuorumStatus, RekeyParams, RekeyTarget,
    decode_token,
};
pub use seal_config::SealConfig;
pub use snapshot::SnapshotHeader;
pub use unseal::UnsealOutcome;

use crate::barrier::Barrier;
use crate::seal::Seal;
use crate::seal::envelope::{Envelope, Purpose};
use crate::secret::SecretBytes;
use crate::storage::Backend;
use seal_config::{ROOT_KEY_PATH, SEAL_CONFIG_PATH};

/// The coarse seal state, published to health checks and systemd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Init has not run.
    Uninitialized,
    /// Initialized, keys not in memory.
    Sealed,
    /// The barrier is open.
    Unsealed,
}

impl Phase {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Uninitialized => "uninitialized",
            Phase::Sealed => "sealed",
            Phase::Unsealed => "unsealed",
        }
    }
}

/// What Status reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Seal type.
    pub seal_type: &'static str,
    /// Init has run.
    pub initialized: bool,
    /// Keys are not in memory.
    pub sealed: bool,
    /// Shares needed.
    pub threshold: u32,
    /// Shares issued.
    pub shares: u32,
    /// Shares entered so far.
    pub progress: u32,
    /// Identifies the unseal attempt under way; empty when none.
    pub nonce: String,
    /// strongroom's version.
    pub version: &'static str,
    /// Storage backend name.
    pub storage_type: &'static str,
    /// Cluster name.
    pub cluster_name: String,
    /// Cluster id, made at init.
    pub cluster_id: String,
    /// The shares are recovery shares (an auto-unseal seal).
    pub recovery_seal: bool,
    /// The ARN of the KMS key that wraps the stored keys (awskms, once known).
    pub kms_key_arn: String,
    /// Auto-unseal progress (awskms only).
    pub auto_unseal: Option<AutoUnsealStatus>,
    /// Conditions an operator should act on while the daemon still works.
    pub warnings: Vec<String>,
    /// A seal migration is pending.
    pub migration: bool,
}

/// Shares entered towards the threshold, and the attempt's nonce.
#[derive(Default)]
struct Progress {
    shares: Vec<SecretBytes>,
    nonce: String,
}

enum State {
    Uninitialized,
    Sealed {
        config: Arc<SealConfig>,
        progress: Progress,
    },
    Unsealed {
        config: Arc<SealConfig>,
        barrier: Arc<Barrier>,
    },
}

/// What the awskms seal reports beside the seal state.
#[derive(Default)]
struct KmsReport {
    auto_unseal: AutoUnsealStatus,
    /// ARN of the key that wraps the stored keys.
    key_arn: String,
    /// The wrapping key is disabled or pending deletion, or its check failed.
    key_health: Option<String>,
    /// The configured key is in another account or region than the stored one.
    key_move: Option<String>,
}

/// What the config says beside the seal and storage.
#[derive(Clone, Default)]
pub struct Options {
    /// Overrides the cluster name recorded at init.
    pub cluster_name: Option<String>,
    /// When the keyring rotates by itself.
    pub rotation: RotationPolicy,
    /// The KMS of a seal block marked `disabled = true`: the seal a
    /// migration leaves.
    pub migrate_from: Option<Arc<dyn crate::seal::kms::Kms>>,
    /// The `kv` block.
    pub kv: kv::KvSettings,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("cluster_name", &self.cluster_name)
            .field("rotation", &self.rotation)
            .field("kv", &self.kv)
            .field(
                "migrate_from",
                &self.migrate_from.as_ref().map(|k| k.key_id().to_string()),
            )
            .finish()
    }
}

/// The daemon's core.
pub struct Core {
    storage: Arc<dyn Backend>,
    seal: Seal,
    /// The seal a migration leaves (a block with `disabled = true`).
    old_kms: Option<Arc<dyn crate::seal::kms::Kms>>,
    /// The migration pending, until a quorum of old shares performs it.
    migration: std::sync::Mutex<Option<Migration>>,
    cluster_name: Option<String>,
    rotation: RotationPolicy,
    state: RwLock<State>,
    /// Serialises the operations that change keys or the seal state (init,
    /// unseal, rotations, rekey, restore). Sealing never waits for it.
    lifecycle: Mutex<()>,
    phase: watch::Sender<Phase>,
    kms_report: std::sync::Mutex<KmsReport>,
    /// The active term's encryption count as last stored (a reservation).
    usage_recorded: AtomicU64,
    /// Quorum operations under way (rekey, rotate-root, generate-root).
    attempts: std::sync::Mutex<quorum::Attempts>,
    /// An init made and waiting for its receiver's confirmation.
    pending_init: std::sync::Mutex<Option<init::PendingInit>>,
    /// Parsed policies.
    policy_cache: std::sync::Mutex<policy::PolicyCache>,
    /// Serialises policy writes (create-or-update is read, then write).
    policy_writes: Mutex<()>,
    /// Serialises token changes: uses spent, renewals, revocations, and
    /// children made while their parent might be revoked.
    token_writes: Mutex<()>,
    /// The `kv` block.
    kv: kv::KvSettings,
    /// Serialises the writers of each kv path.
    kv_writes: kv::WriteLocks,
    /// Named encryption keys, as read.
    key_cache: std::sync::Mutex<keys::KeyCache>,
    /// Serialises changes to named keys.
    key_writes: Mutex<()>,
    /// The audit salt, once read after unseal.
    audit_salt: std::sync::Mutex<Option<Arc<crate::secret::SecretKey>>>,
    /// Serialises making the audit salt.
    salt_init: Mutex<()>,
}

impl Core {
    /// Reads the seal config from `storage` to learn whether init has run.
    /// Refuses storage initialized under another seal type than `seal`.
    pub async fn open(
        storage: Arc<dyn Backend>,
        seal: Seal,
        options: Options,
    ) -> Result<Arc<Self>, CoreError> {
        let mut report = KmsReport::default();
        let mut migration = None;
        let state = match storage.get(SEAL_CONFIG_PATH).await? {
            None => {
                if options.migrate_from.is_some() {
                    tracing::warn!(
                        "the store is not initialized, so the seal block with disabled = true has nothing to migrate from; it is ignored"
                    );
                }
                State::Uninitialized
            }
            Some(bytes) => {
                let config = SealConfig::decode(&bytes).map_err(CoreError::Internal)?;
                migration = migrate::decide(&config, &seal, options.migrate_from.is_some())?;
                if config.is_recovery() {
                    let blob = storage.get(ROOT_KEY_PATH).await?.ok_or_else(|| {
                        CoreError::Internal(format!(
                            "storage has a seal config but no {ROOT_KEY_PATH}; the stored seal data is damaged"
                        ))
                    })?;
                    report.key_arn = Envelope::decode(Purpose::RootKey, &blob)
                        .map_err(|e| CoreError::Internal(e.to_string()))?
                        .key_arn;
                }
                State::Sealed {
                    config: Arc::new(config),
                    progress: Progress::default(),
                }
            }
        };
        let phase = match state {
            State::Uninitialized => Phase::Uninitialized,
            _ => Phase::Sealed,
        };
        if matches!(seal, Seal::AwsKms(_)) && phase == Phase::Sealed {
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
            lifecycle: Mutex::new(()),
            phase: watch::Sender::new(phase),
            kms_report: std::sync::Mutex::new(report),
            usage_recorded: AtomicU64::new(0),
            attempts: std::sync::Mutex::default(),
            pending_init: std::sync::Mutex::default(),
            policy_cache: std::sync::Mutex::default(),
            policy_writes: Mutex::new(()),
            token_writes: Mutex::new(()),
            kv: options.kv,
            kv_writes: kv::WriteLocks::default(),
            key_cache: std::sync::Mutex::default(),
            key_writes: Mutex::new(()),
            audit_salt: std::sync::Mutex::default(),
            salt_init: Mutex::new(()),
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

    fn set_state(&self, state: State) {
        let phase = match &state {
            State::Uninitialized => Phase::Uninitialized,
            State::Sealed { .. } => Phase::Sealed,
            State::Unsealed { .. } => Phase::Unsealed,
        };
        *self.write() = state;
        self.policy_cache().clear();
        self.key_cache().clear();
        *self.salt_cache() = None;
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
            recovery_seal: matches!(self.seal, Seal::AwsKms(_)),
            kms_key_arn: String::new(),
            auto_unseal: None,
            warnings: Vec::new(),
            migration: false,
        };
        if matches!(self.seal, Seal::AwsKms(_)) {
            let report = self.report();
            status.auto_unseal = Some(report.auto_unseal.clone());
            status.kms_key_arn.clone_from(&report.key_arn);
            status.warnings = [&report.key_health, &report.key_move]
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
            State::Unsealed { config, .. } => {
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
            status
                .warnings
                .push(self.migration_warning(migration, unseal::share_noun(config)));
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
            State::Sealed { config, .. } | State::Unsealed { config, .. } => {
                Some(Arc::clone(config))
            }
        }
    }

    /// Puts a seal config that was just written to storage in force.
    fn replace_seal_config(&self, new: SealConfig) {
        match &mut *self.write() {
            State::Uninitialized => {}
            State::Sealed { config, .. } | State::Unsealed { config, .. } => {
                *config = Arc::new(new);
            }
        }
    }

    /// The open barrier, or the reason there is none.
    pub fn barrier(&self) -> Result<Arc<Barrier>, CoreError> {
        match &*self.read() {
            State::Unsealed { barrier, .. } => Ok(Arc::clone(barrier)),
            State::Sealed { .. } => Err(CoreError::Sealed),
            State::Uninitialized => Err(CoreError::NotInitialized),
        }
    }

    /// Seals: drops the barrier, so the root key and keyring are zeroed once
    /// in-flight requests holding them finish. Needs `sudo` on `sys/seal`. Does not
    /// wait for the lifecycle lock: sealing must never queue behind a KMS call.
    pub async fn seal(&self, caller: &Caller) -> Result<(), CoreError> {
        self.authorize(caller, "sys/seal", Capability::Sudo).await?;
        self.seal_and_record().await;
        Ok(())
    }

    /// Seals without a token check: the shutdown path. An awskms daemon
    /// stays sealed until a quorum of recovery shares or a restart, and an
    /// auto-unseal attempt still in flight is told to drop its result.
    pub fn seal_now(&self) {
        if matches!(self.seal, Seal::AwsKms(_)) {
            // Before the state changes: an attempt that finishes in between
            // sees either the barrier still open or this stop.
            self.report().auto_unseal = AutoUnsealStatus::stopped();
        }
        let config = match &*self.read() {
            State::Unsealed { config, .. } => Arc::clone(config),
            _ => return,
        };
        // Shares entered for quorum operations go with the keys.
        self.attempts().clear();
        self.set_state(State::Sealed {
            config,
            progress: Progress::default(),
        });
        tracing::info!("sealed: root key and keyring dropped from memory");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::InmemBackend;

    async fn core() -> Arc<Core> {
        testing::open_shamir(Arc::new(InmemBackend::new())).await
    }

    #[tokio::test]
    async fn a_new_store_is_uninitialized() {
        let core = core().await;
        let status = core.status();
        assert!(!status.initialized);
        assert!(status.sealed);
        assert_eq!(core.phase(), Phase::Uninitialized);
        assert_eq!(core.barrier().err(), Some(CoreError::NotInitialized));
    }

    #[tokio::test]
    async fn init_unseal_seal_cycle() {
        let core = core().await;
        let init = core
            .init_and_confirm(InitParams::shamir(5, 3))
            .await
            .unwrap();
        assert_eq!(init.shares.len(), 5);
        assert_eq!(core.phase(), Phase::Sealed);
        assert_eq!(
            core.init_and_confirm(InitParams::default()).await.err(),
            Some(CoreError::AlreadyInitialized)
        );

        for (i, share) in init.shares.iter().take(3).enumerate() {
            let outcome = core.unseal(&hex::encode(share.expose())).await.unwrap();
            assert!(!outcome.duplicate);
            assert_eq!(outcome.status.sealed, i < 2);
        }
        assert_eq!(core.phase(), Phase::Unsealed);
        let token = init.root_token.expose().to_string();
        let caller = Caller::with_token(&token);
        assert!(
            core.authorize(&caller, "sys/seal", Capability::Sudo)
                .await
                .is_ok()
        );
        assert!(matches!(
            core.seal(&Caller::default()).await,
            Err(CoreError::Unauthenticated(_))
        ));
        core.seal(&caller).await.unwrap();
        assert_eq!(core.phase(), Phase::Sealed);
        assert_eq!(core.barrier().err(), Some(CoreError::Sealed));
    }
}
