//! The recovery key a break-glass unseal opened, held until the node
//! seals: where no KMS seal can open the stored recovery key, the recovery
//! quorum check and the rewrap for a new seal use it. It is held with the
//! share check of the recovery keys it belongs to and used only while that
//! is the one in force, so a rekey of the recovery keys on another node
//! (HA) retires it rather than leaving a stale key in use.

use crate::barrier::{Barrier, BarrierError};
use crate::error::Error;
use crate::lifecycle::Lifecycle;
use crate::lifecycle::seal_config::{EMERGENCY_RECOVERY_KEY_PATH, SealConfig};
use crate::seal::emergency::EmergencySecret;
use crate::seal::envelope::Purpose;
use crate::seal::shamir::ShareCheck;
use crate::secret::SecretKey;

/// The recovery key of a break-glass unseal and the share check of the
/// recovery keys that combine into it. No `Debug`; the key is zeroed on drop.
pub(in crate::lifecycle) struct BreakGlass {
    recovery_key: SecretKey,
    share_check: ShareCheck,
}

impl Lifecycle {
    fn break_glass(&self) -> std::sync::MutexGuard<'_, Option<BreakGlass>> {
        self.break_glass_recovery
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Opens the emergency copy of the recovery key with `secret`, once
    /// `barrier` (opened by the emergency copy of the root key) vouches for
    /// it; `None` on a store without one, or with a copy that does not open
    /// (said in a warning: the unseal goes on, and recovery keys then need
    /// a KMS seal). A storage error fails the unseal: the keys are entered
    /// again rather than the recovery key lost until the next break-glass.
    pub(super) async fn open_recovery_copy(
        &self,
        barrier: &Barrier,
        secret: &EmergencySecret,
        config: &SealConfig,
    ) -> Result<Option<BreakGlass>, Error> {
        let opened = match barrier.get(EMERGENCY_RECOVERY_KEY_PATH).await {
            Ok(Some(blob)) => secret
                .open(Purpose::RecoveryKey, &config.cluster_id, blob.expose())
                .map_err(|e| e.to_string()),
            // Set up before the recovery key was kept with the seal.
            Ok(None) => return Ok(None),
            Err(BarrierError::Storage(e)) => return Err(e.into()),
            Err(e) => Err(e.to_string()),
        };
        Ok(match opened {
            Ok(recovery_key) => Some(BreakGlass {
                recovery_key,
                share_check: config.share_check.clone(),
            }),
            Err(error) => {
                tracing::warn!(error = %error, "the emergency copy of the recovery key did not open (damaged or altered); recovery keys need a KMS seal until one answers");
                None
            }
        })
    }

    /// Holds `break_glass` (a break-glass unseal, before its state change).
    pub(super) fn hold_break_glass(&self, break_glass: Option<BreakGlass>) {
        *self.break_glass() = break_glass;
    }

    /// Whether a break-glass recovery key is held.
    #[cfg(test)]
    pub(super) fn holds_break_glass(&self) -> bool {
        self.break_glass().is_some()
    }

    /// Forgets the recovery key of a break-glass unseal (the node sealed).
    pub(in crate::lifecycle) fn drop_break_glass(&self) {
        *self.break_glass() = None;
    }

    /// After a break-glass unseal, the recovery key it opened, where no seal
    /// could open the stored one (`failed` says why); otherwise `failed`.
    /// A key whose recovery keys were replaced since is dropped.
    pub(in crate::lifecycle) fn break_glass_or(&self, failed: Error) -> Result<SecretKey, Error> {
        let in_force = self.seal_config().map(|c| c.share_check.clone());
        let mut held = self.break_glass();
        match held.as_ref() {
            None => Err(failed),
            Some(b) if Some(&b.share_check) == in_force.as_ref() => {
                tracing::info!(
                    "no KMS seal could open the recovery key; the one opened by the emergency unseal is used"
                );
                Ok(b.recovery_key.clone())
            }
            Some(_) => {
                *held = None;
                tracing::warn!(
                    "the recovery keys were replaced since the emergency unseal, so the recovery key it opened is no longer used"
                );
                Err(failed)
            }
        }
    }

    /// A rekey of the recovery keys committed on this node: a break-glass
    /// recovery key held is replaced by the new one and its share check.
    pub(in crate::lifecycle) fn renew_break_glass(
        &self,
        recovery_key: &SecretKey,
        share_check: &ShareCheck,
    ) {
        let mut held = self.break_glass();
        if held.is_some() {
            *held = Some(BreakGlass {
                recovery_key: recovery_key.clone(),
                share_check: share_check.clone(),
            });
        }
    }
}
