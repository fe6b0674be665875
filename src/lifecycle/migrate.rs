//! Seal migration: moving a store between Shamir unseal keys and an AWS KMS
//! key, or between two KMS keys (another key, account or region).
//!
//! The config names the seal to use, and, when leaving awskms, the old seal
//! block marked `disabled = true` (leaving Shamir needs only the new block).
//! The daemon then starts in migration mode: it does not auto-unseal, and
//! Status says `migration = true` and what to do. A quorum of the old shares
//! entered with `strongroom unseal --migrate` performs it, without a token:
//!
//! - Shamir → awskms: the unseal keys become the recovery keys;
//! - awskms → Shamir: the recovery keys become the unseal keys;
//! - awskms → awskms: the recovery keys stay; the root and recovery keys are
//!   wrapped under the new key.
//!
//! Every KMS call comes first, then one storage transaction, so a new seal
//! that cannot be reached is refused before anything changes, and a crash
//! leaves the old seal or the new one in force.

use std::sync::Arc;

use super::auto_unseal::{AutoUnsealState, AutoUnsealStatus};
use super::seal_config::{self, RECOVERY_KEY_PATH, ROOT_KEY_PATH, SEAL_CONFIG_PATH, SealConfig};
use super::{KmsReport, Lifecycle, Phase, State};
use crate::barrier::{Barrier, entry};
use crate::error::Error;
use crate::seal::envelope::Purpose;
use crate::seal::kms::Kms;
use crate::seal::{AWSKMS, MULTISEAL, SHAMIR, Seal, wrap};
use crate::secret::SecretBytes;
use crate::storage::Batch;

/// A seal migration the config asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migration {
    /// Unseal keys become recovery keys; the root key is wrapped by KMS.
    ShamirToAwsKms,
    /// Recovery keys become unseal keys.
    AwsKmsToShamir,
    /// The stored keys move to another KMS key (account, region).
    AwsKmsToAwsKms,
}

impl Migration {
    /// "shamir → awskms", for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::ShamirToAwsKms => "shamir → awskms",
            Self::AwsKmsToShamir => "awskms → shamir",
            Self::AwsKmsToAwsKms => "awskms → awskms (another key)",
        }
    }
}

/// A migration's result, written and ready to be put in force.
pub(super) struct Migrated {
    pub(super) config: SealConfig,
    pub(super) barrier: Barrier,
    /// The new KMS key's ARN (to awskms).
    pub(super) key_arn: Option<String>,
}

/// What the stored seal type and the config's seal blocks call for: no
/// migration, a migration, or a refusal to start (with the sentence).
pub(super) fn decide(
    stored: &SealConfig,
    seal: &Seal,
    disabled: bool,
) -> Result<Option<Migration>, Error> {
    let refuse = |message: String| Err(Error::Internal(message));
    match (stored.seal_type.as_str(), seal, disabled) {
        (SHAMIR, Seal::Shamir, false) | (AWSKMS, Seal::AwsKms(_), false) => Ok(None),
        (SHAMIR, Seal::Shamir, true) => {
            tracing::warn!(
                "the storage already uses Shamir unseal keys: the seal block with disabled = true is left over from a finished migration; remove it"
            );
            Ok(None)
        }
        (SHAMIR, Seal::AwsKms(_), false) => Ok(Some(Migration::ShamirToAwsKms)),
        (SHAMIR, Seal::AwsKms(_), true) => refuse(
            "the storage uses Shamir unseal keys, so the seal block with disabled = true has nothing to migrate from: remove it (moving to awskms needs only the new seal block)".into(),
        ),
        (AWSKMS, Seal::Shamir, true) => Ok(Some(Migration::AwsKmsToShamir)),
        (AWSKMS, Seal::Shamir, false) => refuse(
            "storage was initialized with the awskms seal, but the config has no seal \"awskms\" block; to move to Shamir unseal keys, keep the block and add disabled = true to it (a seal migration)".into(),
        ),
        (AWSKMS, Seal::AwsKms(_), true) => Ok(Some(Migration::AwsKmsToAwsKms)),
        // One awskms seal to several: the envelope of the one seal opens
        // with the seal that holds its key, and the active node rewraps it
        // for every seal (multiseal/rewrap.rs); no quorum is needed.
        (AWSKMS | MULTISEAL, Seal::Multi(_), _) => Ok(None),
        (SHAMIR, Seal::Multi(_), _) => refuse(
            "the storage uses Shamir unseal keys, and moving to several seals at once is not supported: migrate to one seal \"awskms\" block first (a seal migration), then set enable_multiseal = true".into(),
        ),
        (MULTISEAL, Seal::Shamir | Seal::AwsKms(_), _) => refuse(
            "storage is sealed by several seals (enable_multiseal), but the config does not set enable_multiseal = true; keep it set (to leave a seal, mark it disabled = true)".into(),
        ),
        (other, _, _) => refuse(format!(
            "storage was initialized with the {other:?} seal, which this build does not know"
        )),
    }
}

impl Lifecycle {
    /// The migration pending, if any.
    pub fn migration(&self) -> Option<Migration> {
        *self
            .migration
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn set_migration(&self, migration: Option<Migration>) {
        *self
            .migration
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = migration;
    }

    /// What Status says while a migration is pending.
    pub(super) fn migration_warning(&self, migration: Migration, noun: &str) -> String {
        format!(
            "a seal migration ({}) is pending: enter a quorum of the {noun}s with `strongroom unseal --migrate`",
            migration.describe()
        )
    }

    /// awskms → awskms with the old block still in the config after the
    /// migration finished looks like a pending one; one DescribeKey of the
    /// configured key tells them apart. Returns false if KMS did not answer
    /// (try again later).
    pub(super) async fn settle_awskms_migration(&self, kms: &dyn Kms) -> bool {
        let stored = self.report().key_arn.clone();
        match kms.describe_key(kms.key_id()).await {
            Ok(info) if info.arn == stored => {
                // An `unseal --migrate` may have finished while KMS answered:
                // then there is nothing left to settle.
                let _key_ops = self.key_ops.lock().await;
                if self.migration().is_none() || self.phase() != Phase::Sealed {
                    return true;
                }
                tracing::warn!(
                    kms_key_arn = %stored,
                    "the stored keys are already wrapped by the configured KMS key: the seal block with disabled = true is left over from a finished migration; remove it"
                );
                self.set_migration(None);
                self.report().auto_unseal = AutoUnsealStatus {
                    state: AutoUnsealState::InProgress,
                    ..AutoUnsealStatus::default()
                };
                true
            }
            Ok(_) => true,
            Err(e) => {
                let mut report = self.report();
                report.auto_unseal.last_error = format!(
                    "could not check the configured KMS key before the seal migration: {e}"
                );
                false
            }
        }
    }

    /// A quorum of the old shares prepares the pending migration: checks
    /// them, opens the root key with the old seal, wraps it (and the
    /// recovery key) with the new one, and returns the one batch that puts
    /// the new seal in force, unwritten (unseal writes it at once; with HA
    /// the take-over writes it, under this node's term). Called by unseal
    /// with the key operations' lock held.
    pub(super) async fn prepare_migration(
        &self,
        migration: Migration,
        config: &SealConfig,
        shares: &[SecretBytes],
    ) -> Result<(Migrated, Batch), Error> {
        tracing::info!(
            migration = migration.describe(),
            "seal migration started: the quorum of old keys is complete"
        );
        let old_kms = || {
            self.old_kms.clone().ok_or_else(|| {
                Error::Internal("the migration needs the disabled seal block".into())
            })
        };
        let new_kms = || match &self.seal {
            Seal::AwsKms(kms) => Ok(Arc::clone(kms)),
            Seal::Shamir | Seal::Multi(_) => Err(Error::Internal(
                "the migration needs the new seal block".into(),
            )),
        };
        // The key the shares combine into, and the root key it unlocks.
        let (share_key, root_key) = match migration {
            Migration::ShamirToAwsKms => self.check_unseal_quorum(shares).await?,
            Migration::AwsKmsToShamir | Migration::AwsKmsToAwsKms => {
                let old = old_kms()?;
                let recovery_key = self
                    .check_recovery_quorum(Some(old.as_ref()), config, shares)
                    .await?;
                let root_key = self
                    .stored_envelope(ROOT_KEY_PATH, Purpose::RootKey)
                    .await?
                    .open(old.as_ref(), Purpose::RootKey, &config.cluster_id)
                    .await?;
                (recovery_key, root_key)
            }
        };
        // The root key must open the keyring before anything is rewritten,
        // and a restored store must pass its snapshot's check first (the
        // migration rewrites entries the check covers).
        let barrier = Barrier::unlock(Arc::clone(&self.storage), root_key).await?;
        self.check_restored(&barrier).await?;

        let mut batch = Batch::new();
        let mut key_arn = None;
        let new_config = match migration {
            Migration::AwsKmsToShamir => {
                batch
                    .put(
                        ROOT_KEY_PATH,
                        entry::seal(
                            &share_key,
                            entry::TERM_KEY_ENCRYPTION,
                            ROOT_KEY_PATH,
                            barrier.root_key().expose(),
                        ),
                    )
                    .delete(RECOVERY_KEY_PATH);
                SealConfig {
                    format_version: seal_config::format_for(SHAMIR),
                    seal_type: SHAMIR.into(),
                    kms_endpoint: None,
                    ..config.clone()
                }
            }
            Migration::ShamirToAwsKms | Migration::AwsKmsToAwsKms => {
                let kms = new_kms()?;
                let (root, recovery) = wrap::wrap_root_and_recovery(
                    kms.as_ref(),
                    &config.cluster_id,
                    barrier.root_key(),
                    &share_key,
                )
                .await
                .map_err(|e| refused_by_new_seal(&e))?;
                batch
                    .put(ROOT_KEY_PATH, root.encode())
                    .put(RECOVERY_KEY_PATH, recovery.encode());
                key_arn = Some(root.key_arn);
                SealConfig {
                    format_version: seal_config::format_for(AWSKMS),
                    seal_type: AWSKMS.into(),
                    kms_endpoint: Some(kms.endpoint()),
                    ..config.clone()
                }
            }
        };
        batch.put(SEAL_CONFIG_PATH, new_config.encode());
        let migrated = Migrated {
            config: new_config,
            barrier,
            key_arn,
        };
        Ok((migrated, batch))
    }

    /// After the migration's transaction: the daemon is unsealed under the
    /// new seal.
    pub(super) fn finish_migration(&self, migration: Migration, migrated: Migrated) {
        self.migrated_report(migrated.key_arn.clone());
        self.set_state(State::Unsealed {
            config: Arc::new(migrated.config),
            barrier: Arc::new(migrated.barrier),
        });
        tracing::info!(
            migration = migration.describe(),
            "seal migration complete; the daemon is unsealed under the new seal. Remove the old seal block from the config"
        );
    }

    /// The KMS report and the pending migration once the new seal is in
    /// force.
    pub(super) fn migrated_report(&self, key_arn: Option<String>) {
        if let Some(key_arn) = key_arn {
            *self.report() = KmsReport {
                auto_unseal: AutoUnsealStatus {
                    state: AutoUnsealState::Unsealed,
                    ..AutoUnsealStatus::default()
                },
                key_arn,
                ..KmsReport::default()
            };
        }
        self.set_migration(None);
    }
}

fn refused_by_new_seal(e: &Error) -> Error {
    let message = format!("the new seal could not wrap the keys, so nothing changed: {e}");
    match e {
        Error::KmsUnavailable(_) => Error::KmsUnavailable(message),
        Error::KmsRefused(_) => Error::KmsRefused(message),
        _ => Error::Internal(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::{InitParams, Options, Phase};
    use crate::seal::kms::testing::FakeKms;
    use crate::seal::kms::{KmsError, KmsErrorKind};
    use crate::storage::{Backend, InmemBackend};

    fn awskms(kms: &Arc<FakeKms>) -> Seal {
        Seal::AwsKms(Arc::clone(kms) as Arc<dyn Kms>)
    }

    async fn open(
        storage: &Arc<dyn Backend>,
        seal: Seal,
        from: Option<&Arc<FakeKms>>,
    ) -> Arc<Lifecycle> {
        Lifecycle::open(
            Arc::clone(storage),
            seal,
            Options {
                migrate_from: from.map(|k| Arc::clone(k) as Arc<dyn Kms>),
                ..Options::default()
            },
            Vec::new(),
        )
        .await
        .unwrap()
    }

    fn hexes(shares: &[SecretBytes]) -> Vec<String> {
        shares.iter().map(|s| hex::encode(s.expose())).collect()
    }

    #[tokio::test]
    async fn a_restored_store_is_checked_before_its_seal_is_migrated() {
        // A Shamir store's snapshot, restored into a new directory...
        let source_storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
        let source = open(&source_storage, Seal::Shamir, None).await;
        let init = source
            .init_and_confirm(InitParams::shamir(1, 1))
            .await
            .unwrap();
        let key = hex::encode(init.shares[0].expose());
        source.unseal(&key).await.unwrap();
        let file = source.snapshot_save().await.unwrap();
        let storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
        let restored = open(&storage, Seal::Shamir, None).await;
        let snapshot = restored.check_snapshot(&file, false).await.unwrap();
        restored.snapshot_restore(snapshot).await.unwrap();
        drop(restored);
        // ...then moved to KMS at its first unseal: the check runs before
        // the migration rewrites what it covers, and later unseals pass.
        let kms = Arc::new(FakeKms::new());
        let lifecycle = open(&storage, awskms(&kms), None).await;
        lifecycle.unseal_migrate(&key).await.unwrap();
        assert_eq!(lifecycle.phase(), Phase::Unsealed);
        lifecycle.seal().await;
        let again = open(&storage, awskms(&kms), None).await;
        let recovery = again.status();
        assert!(recovery.sealed && !recovery.migration);
        again.auto_unseal_once().await.ok().unwrap();
        assert_eq!(again.phase(), Phase::Unsealed);
    }

    #[tokio::test]
    async fn shamir_to_awskms_turns_unseal_keys_into_recovery_keys() {
        let storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
        let shamir = open(&storage, Seal::Shamir, None).await;
        let init = shamir
            .init_and_confirm(InitParams::shamir(3, 2))
            .await
            .unwrap();
        let keys = hexes(&init.shares);
        for key in &keys[..2] {
            shamir.unseal(key).await.unwrap();
        }
        shamir
            .barrier()
            .unwrap()
            .put("test/a", b"kept")
            .await
            .unwrap();
        drop(shamir);

        let kms = Arc::new(FakeKms::new());
        let lifecycle = open(&storage, awskms(&kms), None).await;
        assert_eq!(lifecycle.migration(), Some(Migration::ShamirToAwsKms));
        let status = lifecycle.status();
        assert!(status.migration && status.sealed);
        assert_eq!(
            status.auto_unseal.unwrap().state,
            AutoUnsealState::Migration
        );
        assert!(
            status.warnings[0].contains("unseal --migrate"),
            "{:?}",
            status.warnings
        );
        let err = lifecycle.unseal(&keys[0]).await.err().unwrap();
        assert!(matches!(err, Error::FailedPrecondition(_)), "{err}");

        // The new seal refuses: nothing changes, the keys are entered again.
        lifecycle.unseal_migrate(&keys[0]).await.unwrap();
        kms.fail_next(KmsError::new(
            KmsErrorKind::Unavailable,
            "KMS is unreachable",
        ));
        let err = lifecycle.unseal_migrate(&keys[2]).await.err().unwrap();
        assert!(
            err.to_string()
                .contains("the new seal could not wrap the keys, so nothing changed"),
            "{err}"
        );
        assert_eq!(
            SealConfig::decode(&storage.get(SEAL_CONFIG_PATH).await.unwrap().unwrap())
                .unwrap()
                .seal_type,
            SHAMIR
        );
        assert_eq!(lifecycle.phase(), Phase::Sealed);

        lifecycle.unseal_migrate(&keys[0]).await.unwrap();
        lifecycle.unseal_migrate(&keys[2]).await.unwrap();
        assert_eq!(lifecycle.phase(), Phase::Unsealed);
        assert_eq!(lifecycle.migration(), None);
        assert_eq!(lifecycle.status().kms_key_arn, kms.current_arn());

        // Without the old seal: one Decrypt unseals; the old keys are recovery keys.
        let restarted = open(&storage, awskms(&kms), None).await;
        assert_eq!(restarted.migration(), None);
        restarted.auto_unseal_once().await.ok().unwrap();
        let barrier = restarted.barrier().unwrap();
        assert_eq!(
            barrier.get("test/a").await.unwrap().unwrap().expose(),
            b"kept"
        );
        drop(barrier);
        restarted.seal_now();
        for key in &keys[1..3] {
            restarted.unseal(key).await.unwrap();
        }
        assert_eq!(restarted.phase(), Phase::Unsealed);
    }

    #[tokio::test]
    async fn awskms_to_shamir_and_to_another_kms_key() {
        let storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
        let old = Arc::new(FakeKms::new());
        let first = open(&storage, awskms(&old), None).await;
        let init = first
            .init_and_confirm(InitParams::recovery(3, 2))
            .await
            .unwrap();
        let recovery = hexes(&init.shares);
        first
            .barrier()
            .unwrap()
            .put("test/a", b"kept")
            .await
            .unwrap();
        drop(first);

        // Another KMS (another account): the old block is marked disabled.
        let new = Arc::new(FakeKms::new());
        new.switch_to_key_in("444455556666");
        let lifecycle = open(&storage, awskms(&new), Some(&old)).await;
        assert_eq!(lifecycle.migration(), Some(Migration::AwsKmsToAwsKms));
        // DescribeKey of the new key: not the stored one, so the migration is real.
        assert!(lifecycle.settle_awskms_migration(new.as_ref()).await);
        assert_eq!(lifecycle.migration(), Some(Migration::AwsKmsToAwsKms));
        for key in &recovery[..2] {
            lifecycle.unseal_migrate(key).await.unwrap();
        }
        assert_eq!(lifecycle.phase(), Phase::Unsealed);
        assert_eq!(lifecycle.status().kms_key_arn, new.current_arn());
        // The old block still in the config: a DescribeKey finds it done.
        let again = open(&storage, awskms(&new), Some(&old)).await;
        assert!(again.settle_awskms_migration(new.as_ref()).await);
        assert_eq!(again.migration(), None);
        drop((lifecycle, again));

        // On to Shamir: the recovery keys become the unseal keys.
        let lifecycle = open(&storage, Seal::Shamir, Some(&new)).await;
        assert_eq!(lifecycle.migration(), Some(Migration::AwsKmsToShamir));
        assert!(
            lifecycle.status().recovery_seal,
            "the keys to enter are recovery keys"
        );
        for key in &recovery[1..3] {
            lifecycle.unseal_migrate(key).await.unwrap();
        }
        assert_eq!(lifecycle.phase(), Phase::Unsealed);
        assert!(storage.get(RECOVERY_KEY_PATH).await.unwrap().is_none());
        let shamir = open(&storage, Seal::Shamir, None).await;
        shamir.unseal(&recovery[0]).await.unwrap();
        shamir.unseal(&recovery[2]).await.unwrap();
        let barrier = shamir.barrier().unwrap();
        assert_eq!(
            barrier.get("test/a").await.unwrap().unwrap().expose(),
            b"kept"
        );
    }

    #[tokio::test]
    async fn configs_that_cannot_be_a_migration_are_refused() {
        let storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
        let kms = Arc::new(FakeKms::new());
        let lifecycle = open(&storage, awskms(&kms), None).await;
        lifecycle
            .init_and_confirm(InitParams::recovery(1, 1))
            .await
            .unwrap();
        drop(lifecycle);
        let err = Lifecycle::open(
            Arc::clone(&storage),
            Seal::Shamir,
            Options::default(),
            Vec::new(),
        )
        .await
        .err()
        .unwrap();
        assert!(err.to_string().contains("add disabled = true"), "{err}");

        let shamir_store: Arc<dyn Backend> = Arc::new(InmemBackend::new());
        let lifecycle = open(&shamir_store, Seal::Shamir, None).await;
        lifecycle
            .init_and_confirm(InitParams::shamir(1, 1))
            .await
            .unwrap();
        drop(lifecycle);
        let err = Lifecycle::open(
            shamir_store,
            awskms(&kms),
            Options {
                migrate_from: Some(Arc::clone(&kms) as Arc<dyn Kms>),
                ..Options::default()
            },
            Vec::new(),
        )
        .await
        .err()
        .unwrap();
        assert!(
            err.to_string().contains("has nothing to migrate from"),
            "{err}"
        );
        // Entering a key for a migration that is not pending.
        let lifecycle = open(&storage, awskms(&kms), None).await;
        assert!(matches!(
            lifecycle.unseal_migrate("00").await,
            Err(Error::InvalidArgument(_))
        ));
    }
}
