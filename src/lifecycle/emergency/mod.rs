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

use super::Lifecycle;
use super::seal_config::{
    EMERGENCY_RECOVERY_KEY_PATH, EMERGENCY_ROOT_KEY_PATH, EmergencyConfig, SealConfig,
};
use crate::barrier::Barrier;
use crate::error::Error;
use crate::seal::Seal;
use crate::seal::emergency::{self, EmergencySecret};
use crate::seal::envelope::Purpose;
use crate::seal::recipients::{self, Recipient};
use crate::seal::shamir::{self, ShareCheck};
use crate::secret::{SecretBytes, SecretKey};
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

/// The stored emergency copy of `key`, the store's `purpose` key: encrypted
/// to the emergency seal of `config`; the recovery key's copy is then
/// sealed by `barrier` too. The root key's copy must open while sealed; the
/// recovery key's is opened after the barrier, so that a copy planted by
/// someone who can write storage (the public key is in the clear) is
/// refused, not taken as the recovery key.
fn copy_entry(
    barrier: &Barrier,
    config: &EmergencyConfig,
    purpose: Purpose,
    cluster_id: &str,
    key: &SecretKey,
) -> Result<Vec<u8>, Error> {
    let public_key = emergency::parse_public_key(&config.public_key)
        .map_err(|e| Error::Internal(e.to_string()))?;
    let blob = emergency::wrap(&public_key, purpose, cluster_id, key)
        .map_err(|e| Error::Internal(e.to_string()))?;
    Ok(match purpose {
        Purpose::RootKey => blob,
        Purpose::RecoveryKey => barrier.encrypt(EMERGENCY_RECOVERY_KEY_PATH, &blob),
    })
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
                copy_entry(barrier, emergency, purpose, &config.cluster_id, key)?,
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

mod break_glass;
mod unseal;

pub(super) use break_glass::BreakGlass;

#[cfg(test)]
mod break_glass_tests;
#[cfg(test)]
mod rekey_tests;
#[cfg(test)]
mod tests;

impl Lifecycle {
    /// Puts the emergency copy of a new `purpose` key into `batch`
    /// (rotate-root, a rekey of the recovery keys) while the store has the
    /// emergency seal set up (also on a node whose config no longer names
    /// it: until it is retired, its copies stay current), and only to the
    /// public key kept behind the barrier; one that differs from the seal
    /// config's is refused (storage was altered).
    pub(super) async fn rewrap_emergency_into(
        &self,
        batch: &mut Batch,
        config: &SealConfig,
        purpose: Purpose,
        key: &SecretKey,
    ) -> Result<(), Error> {
        let Some(emergency) = &config.emergency else {
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
            copy_entry(&barrier, emergency, purpose, &config.cluster_id, key)?,
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
}
