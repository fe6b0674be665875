//! The emergency Shamir seal of several seals (`seal "shamir" { name = … }`
//! beside the KMS seals): its shares are issued at init or by
//! `rekey --target emergency`, every new root key is encrypted again to its
//! public key, and a quorum of them unseals the store, but only once the
//! last auto-unseal attempt found no KMS seal that could open the root key.
//! Its shares are entered towards their own quorum, apart from the
//! recovery keys', which keep authorizing quorum operations.
//!
//! The recovery key is encrypted to it too, and opened with the root key at
//! a break-glass unseal: until the node seals, it stands in for the KMS
//! seals that could not open it, so a new seal can be given both keys and
//! recovery shares are still checked. Once no config names the emergency
//! seal, the active node deletes what the store keeps of it.

use std::sync::Arc;
use std::time::Instant;

use super::auto_unseal::AutoUnsealState;
use super::seal_config::{
    EMERGENCY_RECOVERY_KEY_PATH, EMERGENCY_ROOT_KEY_PATH, EmergencyConfig, SEAL_CONFIG_PATH,
    SealConfig,
};
use super::unseal::{UnsealOutcome, add_share, decode_share};
use super::{Lifecycle, Progress, State, Status};
use crate::barrier::Barrier;
use crate::error::Error;
use crate::metrics;
use crate::seal::Seal;
use crate::seal::emergency::{self, EmergencySecret};
use crate::seal::envelope::Purpose;
use crate::seal::recipients::{self, Recipient};
use crate::seal::shamir::{self, ShareCheck};
use crate::secret::{SecretBytes, SecretKey, random_uuid};
use crate::storage::Batch;

/// What the holders of emergency shares receive, once (init, rekey).
pub struct EmergencyKeys {
    /// The emergency shares (the emergency secret itself with one share).
    pub shares: Vec<SecretBytes>,
    /// How many of them unseal.
    pub threshold: u32,
    /// The shares encrypted to their recipients (armored age files), when
    /// recipients were given; then only these leave the daemon.
    pub armored: Option<Vec<String>>,
}

/// A new emergency secret, its shares and the config that records them.
pub(super) struct Issued {
    pub(super) keys: EmergencyKeys,
    pub(super) config: EmergencyConfig,
}

/// Makes a new emergency secret for the seal `name` and splits it.
pub(super) fn issue(
    name: &str,
    shares: u32,
    threshold: u32,
    recipients: Option<&[Recipient]>,
) -> Result<Issued, Error> {
    let secret = EmergencySecret::generate();
    let issued = shamir::split(secret.key(), shares, threshold)
        .map_err(|e| Error::InvalidArgument(e.to_string()))?;
    from_secret(name, &secret, issued, threshold, recipients)
}

/// The config and keys of `secret`, already split into `issued`.
pub(super) fn from_secret(
    name: &str,
    secret: &EmergencySecret,
    issued: Vec<SecretBytes>,
    threshold: u32,
    recipients: Option<&[Recipient]>,
) -> Result<Issued, Error> {
    // Encrypted before anything is kept.
    let armored = recipients
        .map(|r| recipients::armor_shares(r, &issued))
        .transpose()?;
    let config = EmergencyConfig {
        name: name.to_string(),
        secret_shares: u32::try_from(issued.len()).unwrap_or(u32::MAX),
        secret_threshold: threshold,
        share_check: ShareCheck::new(&issued),
        public_key: secret.public_key_hex(),
    };
    Ok(Issued {
        keys: EmergencyKeys {
            shares: issued,
            threshold,
            armored,
        },
        config,
    })
}

/// Parses the recipients of `shares` emergency shares, when any are given.
pub(super) fn parse_recipients(
    list: &[String],
    shares: u32,
) -> Result<Option<Vec<Recipient>>, Error> {
    (!list.is_empty())
        .then(|| recipients::parse_all(list, shares, "emergency keys"))
        .transpose()
}

/// Where the emergency copy of the `purpose` key is kept.
pub(super) fn copy_path(purpose: Purpose) -> &'static str {
    match purpose {
        Purpose::RootKey => EMERGENCY_ROOT_KEY_PATH,
        Purpose::RecoveryKey => EMERGENCY_RECOVERY_KEY_PATH,
    }
}

/// `key`, the store's `purpose` key, encrypted to the emergency seal of
/// `config`.
fn wrap_key(
    config: &EmergencyConfig,
    purpose: Purpose,
    cluster_id: &str,
    key: &SecretKey,
) -> Result<Vec<u8>, Error> {
    let public_key = emergency::parse_public_key(&config.public_key)
        .map_err(|e| Error::Internal(e.to_string()))?;
    emergency::wrap(&public_key, purpose, cluster_id, key)
        .map_err(|e| Error::Internal(e.to_string()))
}

/// Where the emergency seal's public key is kept behind the barrier: the
/// copy in `core/seal-config` is read while sealed and is not
/// authenticated, so the root key is only ever encrypted to this one.
pub(super) const EMERGENCY_PUBLIC_KEY_PATH: &str = "core/emergency-public-key";

/// Sets up the emergency seal of `config` (init, `rekey --target
/// emergency`): its public key behind `barrier` and the emergency copies
/// of `root_key` and `recovery_key`, into `batch`. The public key comes
/// from the secret just made, never from storage.
pub(super) fn set_up_into(
    batch: &mut Batch,
    barrier: &Barrier,
    config: &SealConfig,
    root_key: &SecretKey,
    recovery_key: &SecretKey,
) -> Result<(), Error> {
    if let Some(emergency) = &config.emergency {
        batch.put(
            EMERGENCY_PUBLIC_KEY_PATH,
            barrier.encrypt(EMERGENCY_PUBLIC_KEY_PATH, emergency.public_key.as_bytes()),
        );
        for (purpose, key) in [
            (Purpose::RootKey, root_key),
            (Purpose::RecoveryKey, recovery_key),
        ] {
            batch.put(
                copy_path(purpose),
                wrap_key(emergency, purpose, &config.cluster_id, key)?,
            );
        }
    }
    Ok(())
}

/// Deletes what the store keeps of its emergency seal, into `batch`: the
/// seal config written with it must say `emergency: None`.
pub(super) fn retire_into(batch: &mut Batch) {
    batch
        .delete(EMERGENCY_PUBLIC_KEY_PATH)
        .delete(EMERGENCY_ROOT_KEY_PATH)
        .delete(EMERGENCY_RECOVERY_KEY_PATH);
}

/// A seal name as typed, for a message; anything without a seal name's
/// shape (a share typed after `--seal` by mistake) is not repeated.
fn shown(seal: &str) -> String {
    match crate::config::check_seal_name(seal.trim()) {
        Ok(()) => crate::text::quote(seal.trim()),
        Err(_) => "(not shown: it is not a seal name)".into(),
    }
}

impl Lifecycle {
    /// Puts the emergency copy of a new `purpose` key into `batch`
    /// (rotate-root, a rekey of the recovery keys): only while this daemon
    /// configures an emergency seal and the store has it set up, and only to
    /// the public key kept behind the barrier; one that differs from the
    /// seal config's is refused (storage was altered).
    pub(super) async fn rewrap_emergency_into(
        &self,
        batch: &mut Batch,
        config: &SealConfig,
        purpose: Purpose,
        key: &SecretKey,
    ) -> Result<(), Error> {
        let (Some(emergency), Some(_)) = (&config.emergency, self.emergency_seal()) else {
            // No emergency seal configured: its copy is no longer renewed,
            // and the old copy opens no keyring after this rotation.
            return Ok(());
        };
        let barrier = self.barrier()?;
        let kept = barrier
            .get(EMERGENCY_PUBLIC_KEY_PATH)
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        if kept.as_ref().map(|k| k.expose()) != Some(emergency.public_key.as_bytes()) {
            return Err(Error::Internal(format!(
                "the emergency seal's public key in the seal config is not the one kept behind the barrier (storage was altered); the new {} was not written",
                purpose.as_str().replace('-', " ")
            )));
        }
        batch.put(
            copy_path(purpose),
            wrap_key(emergency, purpose, &config.cluster_id, key)?,
        );
        Ok(())
    }

    /// The configured emergency seal's name; `None` without one.
    pub(super) fn emergency_seal(&self) -> Option<&str> {
        match &self.seal {
            Seal::Multi(set) => set.emergency(),
            _ => None,
        }
    }

    fn emergency_progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.emergency_progress
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Forgets the emergency shares entered (the store left the sealed
    /// state, or an operator reset them).
    pub(super) fn drop_emergency_progress(&self) {
        *self.emergency_progress() = Progress::default();
    }

    fn break_glass(&self) -> std::sync::MutexGuard<'_, Option<SecretKey>> {
        self.break_glass_recovery
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The recovery key a break-glass unseal opened, while this node has
    /// not sealed since: it stands in for KMS seals that cannot open theirs.
    pub(super) fn break_glass_recovery_key(&self) -> Option<SecretKey> {
        self.break_glass().clone()
    }

    /// Forgets the recovery key of a break-glass unseal (the node sealed).
    pub(super) fn drop_break_glass(&self) {
        *self.break_glass() = None;
    }

    /// After a break-glass unseal, the recovery key it opened where no seal
    /// could open the stored one (`failed` says why); otherwise `failed`.
    pub(super) fn break_glass_or(&self, failed: Error) -> Result<SecretKey, Error> {
        let key = self.break_glass_recovery_key().ok_or(failed)?;
        tracing::info!(
            "no KMS seal could open the recovery key; the one opened by the emergency unseal is used"
        );
        Ok(key)
    }

    /// A rekey of the recovery keys committed: a break-glass recovery key
    /// held is replaced by the new one.
    pub(super) fn renew_break_glass(&self, recovery_key: &SecretKey) {
        let mut held = self.break_glass();
        if held.is_some() {
            *held = Some(recovery_key.clone());
        }
    }

    /// An Unseal request naming a seal: the emergency seal's name enters an
    /// emergency share (or, with `reset`, forgets those entered).
    pub(super) async fn enter_seal_unseal_request(
        &self,
        seal: &str,
        key: &str,
        reset: bool,
        migrate: bool,
    ) -> Result<UnsealOutcome, Error> {
        let Some(name) = self.emergency_seal() else {
            return Err(Error::InvalidArgument(format!(
                "this daemon has no emergency seal, so there is no seal {} to unseal with; leave the seal out to enter {}",
                shown(seal),
                if self.seal.is_auto() {
                    "a recovery key"
                } else {
                    "an unseal key"
                }
            )));
        };
        if seal.trim() != name {
            return Err(Error::InvalidArgument(format!(
                "this daemon has no seal {} to unseal with; its emergency seal is {}",
                shown(seal),
                crate::text::quote(name)
            )));
        }
        if migrate {
            return Err(Error::InvalidArgument(
                "a seal migration takes the current recovery keys, not emergency keys: leave --seal out".into(),
            ));
        }
        if reset {
            let _key_ops = self.key_ops.lock().await;
            self.drop_emergency_progress();
            return Ok(UnsealOutcome {
                status: self.emergency_status(),
                duplicate: false,
            });
        }
        self.unseal_emergency(key).await
    }

    /// Enters one emergency share. Allowed only while sealed, when the
    /// store's emergency seal is set up and the last auto-unseal attempt
    /// found no KMS seal that could open the root key. At the threshold the
    /// emergency copy of the root key is opened and the store is unsealed
    /// as a quorum of recovery keys would unseal it.
    pub async fn unseal_emergency(&self, key: &str) -> Result<UnsealOutcome, Error> {
        self.refuse_while_storage_down()?;
        let _key_ops = self.key_ops.lock().await;
        let (config, emergency) = self.emergency_allowed()?;
        let (config, emergency) = self.stored_emergency(config, emergency).await?;
        let share = decode_share(
            key,
            shamir::share_len(emergency.secret_shares),
            "emergency key",
        )?;
        if !emergency.share_check.is_issued(share.expose()) {
            return Err(Error::InvalidArgument(format!(
                "this emergency key was never issued for this store: it matches none of the {} emergency keys in force",
                emergency.secret_shares
            )));
        }
        let quorum = {
            let mut progress = self.emergency_progress();
            let first = progress.shares.is_empty();
            if !add_share(&mut progress.shares, share) {
                drop(progress);
                return Ok(UnsealOutcome {
                    status: self.emergency_status(),
                    duplicate: true,
                });
            }
            if first {
                progress.nonce = random_uuid();
            }
            if progress.shares.len() < emergency.secret_threshold as usize {
                None
            } else {
                Some(std::mem::take(&mut *progress))
            }
        };
        let Some(quorum) = quorum else {
            tracing::info!(
                progress = self.emergency_progress().shares.len(),
                threshold = emergency.secret_threshold,
                "emergency key accepted"
            );
            return Ok(UnsealOutcome {
                status: self.emergency_status(),
                duplicate: false,
            });
        };
        let started = Instant::now();
        self.open_with_emergency(config, &emergency, &quorum.shares)
            .await
            .inspect_err(|e| {
                tracing::warn!(error = %e, "a quorum of emergency keys was entered but did not unseal; the keys entered were discarded");
            })?;
        {
            let mut report = self.report();
            report.auto_unseal.state = AutoUnsealState::Unsealed;
            report.auto_unseal.last_error.clear();
            report.auto_unseal.next_attempt_unix_ms = 0;
            report.auto_unseal.seal.clone_from(&emergency.name);
        }
        metrics::unsealed("emergency", started);
        tracing::warn!(
            seal = %emergency.name,
            "unsealed with a quorum of emergency shares: no KMS seal could open the root key; the seals are rewrapped once one answers"
        );
        Ok(UnsealOutcome {
            status: self.emergency_status(),
            duplicate: false,
        })
    }

    /// The emergency seal as stored now: with HA another node may have
    /// rekeyed the emergency keys since this node read the seal config at
    /// start. Shares entered under the keys it replaced are dropped.
    async fn stored_emergency(
        &self,
        config: Arc<SealConfig>,
        emergency: EmergencyConfig,
    ) -> Result<(Arc<SealConfig>, EmergencyConfig), Error> {
        let Some(bytes) = self.storage.get(SEAL_CONFIG_PATH).await? else {
            return Ok((config, emergency));
        };
        let stored = SealConfig::decode(&bytes).map_err(Error::Internal)?;
        match stored.emergency.clone() {
            Some(current) if stored.cluster_id == config.cluster_id => {
                if current.share_check != emergency.share_check {
                    // Keys rekeyed elsewhere: this node now knows the new ones.
                    self.drop_emergency_progress();
                    self.replace_seal_config(stored.clone());
                }
                Ok((Arc::new(stored), current))
            }
            None if stored.cluster_id == config.cluster_id => {
                self.drop_emergency_progress();
                Err(Error::FailedPrecondition(
                    "this store's emergency seal was retired since this node started (the active node's config names none), so no emergency key opens it".into(),
                ))
            }
            _ => Ok((config, emergency)),
        }
    }

    /// Why emergency shares may not be entered now, or the seal config and
    /// the emergency seal's part of it.
    fn emergency_allowed(&self) -> Result<(Arc<SealConfig>, EmergencyConfig), Error> {
        if let Some(migration) = self.migration() {
            return Err(Error::FailedPrecondition(format!(
                "a seal migration ({}) is pending: enter the current keys with `strongroom unseal --migrate`",
                migration.describe()
            )));
        }
        let config = match &*self.read() {
            State::Uninitialized => return Err(Error::NotInitialized),
            State::Unsealed { .. } | State::Standby { .. } => {
                return Err(Error::FailedPrecondition(
                    "the store is unsealed; emergency keys unseal only a store that no KMS seal could open".into(),
                ));
            }
            State::Sealed { config, .. } => Arc::clone(config),
        };
        let Some(emergency) = config.emergency.clone() else {
            return Err(Error::FailedPrecondition(
                "the emergency seal is not set up for this store (the store was made before the seal was configured, or a config without it retired it), so no emergency key opens it; once unsealed, set it up with `strongroom rekey --target emergency`".into(),
            ));
        };
        let (auto, seals_failed) = {
            let report = self.report();
            (report.auto_unseal.clone(), report.seals_failed)
        };
        match auto.state {
            AutoUnsealState::InProgress | AutoUnsealState::Failed if seals_failed => {
                Ok((config, emergency))
            }
            AutoUnsealState::Stopped => Err(Error::FailedPrecondition(
                "the daemon was sealed by an operator: a quorum of recovery keys unseals it (`strongroom unseal` without --seal); emergency keys are only for a store that no KMS seal could open".into(),
            )),
            _ => Err(Error::FailedPrecondition(
                "the last auto-unseal attempt did not find every KMS seal unable to open the root key (none failed yet, or it failed for another reason: `strongroom status` says why); emergency keys are taken only when no KMS seal could".into(),
            )),
        }
    }

    /// Combines a quorum of emergency shares, opens the emergency copy of
    /// the root key with it, and puts the open store in force (or stands by
    /// with HA), as a quorum of recovery keys does.
    async fn open_with_emergency(
        &self,
        config: Arc<SealConfig>,
        emergency: &EmergencyConfig,
        shares: &[SecretBytes],
    ) -> Result<(), Error> {
        let damaged = |what: &str| {
            Error::Internal(format!(
                "the emergency keys combined, but {what}; the stored seal data may be damaged"
            ))
        };
        let combined = shamir::combine(shares).map_err(|_| damaged("not into a key"))?;
        let secret = EmergencySecret::from_key(combined);
        if secret.public_key_hex() != emergency.public_key {
            return Err(damaged("not into this store's emergency key"));
        }
        let blob = self
            .storage
            .get(EMERGENCY_ROOT_KEY_PATH)
            .await?
            .ok_or_else(|| damaged("storage has no emergency copy of the root key"))?;
        let root_key = secret
            .open(Purpose::RootKey, &config.cluster_id, &blob)
            .map_err(|e| Error::Internal(e.to_string()))?;
        // A store whose emergency seal was set up before the recovery key
        // was kept with it has no copy: its KMS seals must come back.
        let recovery_key = match self.storage.get(EMERGENCY_RECOVERY_KEY_PATH).await? {
            Some(blob) => Some(
                secret
                    .open(Purpose::RecoveryKey, &config.cluster_id, &blob)
                    .map_err(|e| Error::Internal(e.to_string()))?,
            ),
            None => None,
        };
        let barrier = Barrier::unlock(Arc::clone(&self.storage), root_key).await?;
        if self.is_ha() {
            *self.break_glass() = recovery_key;
            self.stand_by(config, barrier);
            return Ok(());
        }
        self.opening(&barrier).await?;
        // Kept before the state changes, so the first rewrap finds it.
        *self.break_glass() = recovery_key;
        self.set_state(State::Unsealed {
            config,
            barrier: Arc::new(barrier),
        });
        Ok(())
    }

    /// Status as the answer to an emergency share: the threshold, share
    /// count, progress and nonce are the emergency quorum's.
    fn emergency_status(&self) -> Status {
        let mut status = self.status();
        if let Some(emergency) = self.seal_config().and_then(|c| c.emergency.clone())
            && status.sealed
        {
            let progress = self.emergency_progress();
            status.threshold = emergency.secret_threshold;
            status.shares = emergency.secret_shares;
            status.progress = u32::try_from(progress.shares.len()).unwrap_or(u32::MAX);
            status.nonce.clone_from(&progress.nonce);
        }
        status
    }
}
