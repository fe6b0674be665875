//! Entering emergency shares: refused unless the last auto-unseal attempt
//! found no KMS seal that could open the root key; at the threshold the
//! emergency copies of the root key and the recovery key are opened and the
//! store is unsealed (or stands by, with HA).

use std::sync::Arc;
use std::time::Instant;

use crate::barrier::Barrier;
use crate::error::Error;
use crate::lifecycle::auto_unseal::AutoUnsealState;
use crate::lifecycle::seal_config::{
    EMERGENCY_ROOT_KEY_PATH, EmergencyConfig, SEAL_CONFIG_PATH, SealConfig,
};
use crate::lifecycle::unseal::{UnsealOutcome, add_share, decode_share};
use crate::lifecycle::{Lifecycle, Progress, State, Status};
use crate::metrics;
use crate::seal::emergency::EmergencySecret;
use crate::seal::envelope::Purpose;
use crate::seal::shamir;
use crate::secret::{SecretBytes, random_uuid};

/// A seal name as typed, for a message; anything without a seal name's
/// shape (a share typed after `--seal` by mistake) is not repeated.
fn shown(seal: &str) -> String {
    match crate::config::check_seal_name(seal.trim()) {
        Ok(()) => crate::text::quote(seal.trim()),
        Err(_) => "(not shown: it is not a seal name)".into(),
    }
}

impl Lifecycle {
    fn emergency_progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.emergency_progress
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Forgets the emergency shares entered (the store left the sealed
    /// state, or an operator reset them).
    pub(in crate::lifecycle) fn drop_emergency_progress(&self) {
        *self.emergency_progress() = Progress::default();
    }

    /// An Unseal request naming a seal: the emergency seal's name enters an
    /// emergency share (or, with `reset`, forgets those entered).
    pub(in crate::lifecycle) async fn enter_seal_unseal_request(
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
        let barrier = Barrier::unlock(Arc::clone(&self.storage), root_key).await?;
        let break_glass = self.open_recovery_copy(&barrier, &secret, &config).await?;
        if self.is_ha() {
            self.hold_break_glass(break_glass);
            self.stand_by(config, barrier);
            return Ok(());
        }
        self.opening(&barrier).await?;
        // Held before the state changes, so the first rewrap finds it.
        self.hold_break_glass(break_glass);
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
