//! Unseal: gather shares until the threshold, then open the barrier.
//!
//! Unlike Vault, a share is checked against the salted hashes recorded at
//! init the moment it is entered, so a mistyped or foreign share is refused
//! at once and the shares already entered are kept.

use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

use super::auto_unseal::{AutoUnsealState, AutoUnsealStatus};
use super::seal_config::{RECOVERY_KEY_PATH, ROOT_KEY_PATH, SealConfig};
use super::{Lifecycle, Progress, State, Status};
use crate::barrier::{Barrier, entry};
use crate::error::Error;
use crate::metrics;
use crate::seal::Seal;
use crate::seal::envelope::Purpose;
use crate::seal::kms::Kms;
use crate::seal::shamir;
use crate::secret::{SecretBytes, SecretKey, ct_eq, random_uuid};

/// The result of entering one share.
pub struct UnsealOutcome {
    /// Status after the share.
    pub status: Status,
    /// The share had already been entered; progress is unchanged.
    pub duplicate: bool,
}

/// "unseal key" or "recovery key": what the store's shares are called.
pub(super) fn share_noun(config: &SealConfig) -> &'static str {
    if config.is_recovery() {
        "recovery key"
    } else {
        "unseal key"
    }
}

/// Decodes `key` and refuses a share that was never issued for `config`
/// (naming it so), before it counts towards anything.
pub(super) fn issued_share(key: &str, config: &SealConfig) -> Result<SecretBytes, Error> {
    let noun = share_noun(config);
    let share = decode_share(key, shamir::share_len(config.secret_shares), noun)?;
    if !config.share_check.is_issued(share.expose()) {
        return Err(Error::InvalidArgument(format!(
            "this {noun} was never issued for this store: it matches none of the {} keys in force",
            config.secret_shares
        )));
    }
    Ok(share)
}

/// Adds `share` to `entered` unless it is already there (compared in
/// constant time). Returns false for a duplicate, which changes nothing.
pub(super) fn add_share(entered: &mut Vec<SecretBytes>, share: SecretBytes) -> bool {
    if entered.iter().any(|e| e.ct_eq(share.expose())) {
        return false;
    }
    entered.push(share);
    true
}

/// Decodes a share typed as hex or base64 into zeroizing memory. `noun` is
/// "unseal key" or "recovery key", for the messages.
pub(super) fn decode_share(
    key: &str,
    expected_len: usize,
    noun: &str,
) -> Result<SecretBytes, Error> {
    let key = key.trim();
    if key.is_empty() {
        return Err(Error::InvalidArgument(format!("no {noun} was given")));
    }
    let is_hex = key.len().is_multiple_of(2) && key.bytes().all(|b| b.is_ascii_hexdigit());
    let decoded = if is_hex {
        hex::decode(key).ok()
    } else {
        STANDARD
            .decode(key)
            .or_else(|_| STANDARD_NO_PAD.decode(key))
            .ok()
    };
    let share =
        SecretBytes::new(decoded.ok_or_else(|| {
            Error::InvalidArgument(format!("the {noun} is neither hex nor base64"))
        })?);
    if share.len() != expected_len {
        return Err(Error::InvalidArgument(format!(
            "the {noun} is {} bytes long, but this store's {noun}s are {expected_len} bytes",
            share.len()
        )));
    }
    Ok(share)
}

impl Lifecycle {
    /// An unseal request as both transports take it: `reset` forgets the
    /// shares entered so far, `migrate` enters one for a pending seal
    /// migration, and otherwise `key` is one share. A `seal` named (not
    /// empty) is the emergency seal: `key` is an emergency share
    /// (`emergency.rs`).
    pub async fn enter_unseal_request(
        &self,
        key: &str,
        reset: bool,
        migrate: bool,
        seal: &str,
    ) -> Result<UnsealOutcome, Error> {
        if !seal.trim().is_empty() {
            return self
                .enter_seal_unseal_request(seal, key, reset, migrate)
                .await;
        }
        if reset {
            return Ok(UnsealOutcome {
                status: self.reset_unseal().await,
                duplicate: false,
            });
        }
        if migrate {
            return self.unseal_migrate(key).await;
        }
        self.unseal(key).await
    }

    /// Enters one share. Bad input changes nothing; at the threshold the
    /// root key and keyring are decrypted and the daemon is unsealed.
    pub async fn unseal(&self, key: &str) -> Result<UnsealOutcome, Error> {
        self.enter_unseal_key(key, false).await
    }

    /// Enters one of the old seal's shares for the pending seal migration;
    /// at the threshold the migration runs and the daemon is unsealed under
    /// the new seal.
    pub async fn unseal_migrate(&self, key: &str) -> Result<UnsealOutcome, Error> {
        self.enter_unseal_key(key, true).await
    }

    async fn enter_unseal_key(&self, key: &str, migrate: bool) -> Result<UnsealOutcome, Error> {
        self.refuse_while_storage_down()?;
        let _key_ops = self.key_ops.lock().await;
        let migration = self.migration();
        match (migration, migrate) {
            (Some(m), false) => {
                return Err(Error::FailedPrecondition(format!(
                    "a seal migration ({}) is pending: enter the keys with `strongroom unseal --migrate`",
                    m.describe()
                )));
            }
            (None, true) => {
                return Err(Error::InvalidArgument(
                    "no seal migration is pending; enter the key without --migrate".into(),
                ));
            }
            _ => {}
        }
        let config = match &*self.read() {
            State::Uninitialized => return Err(Error::NotInitialized),
            State::Unsealed { .. } | State::Standby { .. } => None,
            State::Sealed { config, .. } => Some(Arc::clone(config)),
        };
        let Some(config) = config else {
            return Ok(UnsealOutcome {
                status: self.status(),
                duplicate: false,
            });
        };

        let noun = share_noun(&config);
        let share = issued_share(key, &config)?;

        let quorum = {
            let mut state = self.write();
            let State::Sealed { progress, .. } = &mut *state else {
                return Err(Error::Internal(
                    "the seal state changed while the unseal key was checked".into(),
                ));
            };
            let first = progress.shares.is_empty();
            if !add_share(&mut progress.shares, share) {
                drop(state);
                return Ok(UnsealOutcome {
                    status: self.status(),
                    duplicate: true,
                });
            }
            if first {
                progress.nonce = random_uuid();
            }
            if progress.shares.len() < config.secret_threshold as usize {
                None
            } else {
                Some(std::mem::take(progress))
            }
        };

        if let (Some(quorum), Some(migration)) = (&quorum, migration) {
            // Without HA the migration writes at once; with HA its batch
            // waits for this node's take-over, under its term.
            let ha = self.is_ha();
            // With HA: the stored seal data as it is before the KMS calls;
            // the take-over writes only if it is still so.
            let before = match ha {
                true => Some(self.stored_seal_data().await?),
                false => None,
            };
            let (migrated, batch) = crate::failpoint::scope("migrate", async {
                let (migrated, batch) = self
                    .prepare_migration(migration, &config, &quorum.shares)
                    .await?;
                if ha {
                    return Ok((migrated, Some(batch)));
                }
                self.storage.write(batch).await?;
                Ok::<_, Error>((migrated, None))
            })
            .await
            .inspect_err(|e| {
                tracing::warn!(error = %e, "seal migration failed; nothing changed and the keys entered were discarded");
            })?;
            match batch {
                Some(batch) => {
                    let before = before.unwrap_or_default();
                    self.stand_by_to_migrate(migration, before, migrated, batch);
                }
                None => {
                    self.opening(&migrated.barrier).await?;
                    self.finish_migration(migration, migrated);
                }
            }
        } else if let Some(quorum) = quorum {
            let started = Instant::now();
            let barrier = match &self.seal {
                Seal::Shamir => self.open_barrier(&quorum.shares).await?,
                Seal::AwsKms(_) | Seal::Multi(_) => self
                    .open_with_recovery(&config, &quorum.shares)
                    .await
                    .inspect_err(|e| self.record_recovery_failure(e))?,
            };
            if self.is_ha() {
                self.stand_by(config, barrier);
            } else {
                self.opening(&barrier)
                    .await
                    .inspect_err(|e| self.record_recovery_failure(e))?;
                self.set_state(State::Unsealed {
                    config,
                    barrier: Arc::new(barrier),
                });
            }
            if self.seal.is_auto() {
                self.report().auto_unseal = AutoUnsealStatus {
                    state: AutoUnsealState::Unsealed,
                    ..AutoUnsealStatus::default()
                };
                metrics::unsealed("recovery", started);
                tracing::info!("unsealed with a quorum of recovery keys");
            } else {
                metrics::unsealed("shamir", started);
                tracing::info!("unsealed");
            }
        } else {
            tracing::info!(
                progress = self.status().progress,
                threshold = config.secret_threshold,
                "{noun} accepted"
            );
        }
        Ok(UnsealOutcome {
            status: self.status(),
            duplicate: false,
        })
    }

    /// Under awskms, keeps in Status why a quorum of recovery keys did not
    /// unseal: after an operator's seal no auto-unseal runs to say it.
    fn record_recovery_failure(&self, error: &Error) {
        if !self.seal.is_auto() {
            return;
        }
        let message = format!(
            "a quorum of recovery keys was entered but did not unseal (enter it again): {error}"
        );
        tracing::warn!("{message}");
        self.report().auto_unseal.last_error = message;
    }

    /// Throws away the shares entered so far.
    pub async fn reset_unseal(&self) -> Status {
        let _key_ops = self.key_ops.lock().await;
        if let State::Sealed { progress, .. } = &mut *self.write() {
            *progress = Progress::default();
        }
        self.status()
    }

    /// Combines recovery shares and checks the result against the stored
    /// recovery key (one KMS Decrypt). Returns the recovery key.
    pub(super) async fn check_recovery_quorum(
        &self,
        old_kms: Option<&dyn Kms>,
        config: &SealConfig,
        shares: &[SecretBytes],
    ) -> Result<SecretKey, Error> {
        let recovery_key = shamir::combine(shares).map_err(|_| {
            Error::Internal(
                "the recovery keys did not combine; the stored seal data may be damaged".into(),
            )
        })?;
        let stored = match old_kms {
            // A migration: the recovery key is under the seal being left.
            Some(kms) => {
                self.stored_envelope(RECOVERY_KEY_PATH, Purpose::RecoveryKey)
                    .await?
                    .open(kms, Purpose::RecoveryKey, &config.cluster_id)
                    .await?
            }
            None => match self
                .open_stored_key(Purpose::RecoveryKey, &config.cluster_id)
                .await
            {
                Ok((key, _)) => key,
                Err(e) => self.break_glass_or(e)?,
            },
        };
        if !ct_eq(stored.expose(), recovery_key.expose()) {
            return Err(Error::Internal(
                "the recovery keys combined, but not into the stored recovery key; the stored seal data may be damaged".into(),
            ));
        }
        Ok(recovery_key)
    }

    /// Checks recovery shares against the stored recovery key (one KMS
    /// Decrypt), then opens the root key (one more Decrypt). The shares
    /// entered are discarded when this fails; they are entered again.
    async fn open_with_recovery(
        &self,
        config: &SealConfig,
        shares: &[SecretBytes],
    ) -> Result<Barrier, Error> {
        self.check_recovery_quorum(None, config, shares).await?;
        let (root_key, _) = self
            .open_stored_key(Purpose::RootKey, &config.cluster_id)
            .await?;
        Ok(Barrier::unlock(Arc::clone(&self.storage), root_key).await?)
    }

    /// Combines the shares and opens the root key and keyring.
    async fn open_barrier(&self, shares: &[SecretBytes]) -> Result<Barrier, Error> {
        let (unseal_key, root_key) = self.check_unseal_quorum(shares).await?;
        let barrier = Barrier::unlock(Arc::clone(&self.storage), root_key).await?;
        // A standby keeps it to read a root key rotated while it stood by.
        self.hold_unseal_key(unseal_key);
        Ok(barrier)
    }

    /// Combines unseal shares into the unseal key and opens the stored root
    /// key with it. Returns both.
    pub(super) async fn check_unseal_quorum(
        &self,
        shares: &[SecretBytes],
    ) -> Result<(SecretKey, SecretKey), Error> {
        let damaged = |what: &str| {
            Error::Internal(format!(
                "the unseal keys combined, but {what}; the stored seal data may be damaged"
            ))
        };
        let unseal_key = shamir::combine(shares).map_err(|_| damaged("they did not form a key"))?;
        let blob = self
            .storage
            .get(ROOT_KEY_PATH)
            .await?
            .ok_or_else(|| damaged("storage has no root key"))?;
        let root_key = entry::open(&unseal_key, ROOT_KEY_PATH, &blob)
            .map_err(|_| damaged("the result did not open the stored root key"))?;
        let root_key = SecretKey::from_slice(root_key.expose())
            .ok_or_else(|| damaged("the root key has the wrong length"))?;
        Ok((unseal_key, root_key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::testing::open_shamir;
    use crate::storage::InmemBackend;

    #[test]
    fn shares_decode_from_hex_and_base64() {
        let bytes: Vec<u8> = (0..33).collect();
        assert_eq!(
            decode_share(&hex::encode(&bytes), 33, "unseal key")
                .unwrap()
                .expose(),
            &bytes[..]
        );
        assert_eq!(
            decode_share(&STANDARD.encode(&bytes), 33, "unseal key")
                .unwrap()
                .expose(),
            &bytes[..]
        );
        assert_eq!(
            decode_share(&format!("  {}\n", hex::encode(&bytes)), 33, "unseal key")
                .unwrap()
                .expose(),
            &bytes[..]
        );
        let err = decode_share("zz!!", 33, "unseal key").err().unwrap();
        assert_eq!(err.to_string(), "the unseal key is neither hex nor base64");
        let err = decode_share(&hex::encode(&bytes[..32]), 33, "unseal key")
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "the unseal key is 32 bytes long, but this store's unseal keys are 33 bytes"
        );
        assert_eq!(
            decode_share(" ", 33, "unseal key")
                .err()
                .unwrap()
                .to_string(),
            "no unseal key was given"
        );
    }

    #[tokio::test]
    async fn bad_shares_keep_progress_and_duplicates_are_flagged() {
        let lifecycle = open_shamir(Arc::new(InmemBackend::new())).await;
        let init = lifecycle
            .init_and_confirm(crate::lifecycle::InitParams::shamir(5, 3))
            .await
            .unwrap();
        let first = hex::encode(init.shares[0].expose());
        assert_eq!(lifecycle.unseal(&first).await.unwrap().status.progress, 1);
        let nonce = lifecycle.status().nonce;
        assert!(!nonce.is_empty());

        let outcome = lifecycle.unseal(&first).await.unwrap();
        assert!(outcome.duplicate);
        assert_eq!(outcome.status.progress, 1);

        let mut foreign = init.shares[1].expose().to_vec();
        foreign[5] ^= 0xff;
        let err = lifecycle
            .unseal(&hex::encode(&foreign))
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("never issued"), "{err}");
        assert!(matches!(
            lifecycle.unseal("nope").await,
            Err(Error::InvalidArgument(_))
        ));
        assert_eq!(lifecycle.status().progress, 1);
        assert_eq!(lifecycle.status().nonce, nonce);

        assert_eq!(lifecycle.reset_unseal().await.progress, 0);
        for share in &init.shares[2..5] {
            lifecycle
                .unseal(&STANDARD.encode(share.expose()))
                .await
                .unwrap();
        }
        assert!(!lifecycle.status().sealed);
        // Entering a share while unsealed is harmless.
        assert!(!lifecycle.unseal(&first).await.unwrap().status.sealed);
    }

    #[tokio::test]
    async fn a_damaged_root_key_is_reported_and_progress_reset() {
        let storage = Arc::new(InmemBackend::new());
        let lifecycle = open_shamir(storage.clone()).await;
        let init = lifecycle
            .init_and_confirm(crate::lifecycle::InitParams::shamir(3, 2))
            .await
            .unwrap();
        let mut batch = crate::storage::Batch::new();
        batch.put(ROOT_KEY_PATH, vec![0u8; 80]);
        crate::storage::Backend::write(storage.as_ref(), batch)
            .await
            .unwrap();
        lifecycle
            .unseal(&hex::encode(init.shares[0].expose()))
            .await
            .unwrap();
        let err = lifecycle
            .unseal(&hex::encode(init.shares[1].expose()))
            .await
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("did not open the stored root key"),
            "{err}"
        );
        assert!(lifecycle.status().sealed);
        assert_eq!(lifecycle.status().progress, 0);
    }
}
