//! `rekey --target emergency`: new keys for the emergency Shamir seal of
//! several seals, authorized by a quorum of recovery keys; its commit
//! writes the new emergency config and the root key encrypted to it in one
//! transaction, with no KMS call.

use super::{Kind, Operation, QuorumStatus, RekeyParams, RekeyPlan, RekeyTarget};
use crate::error::Error;
use crate::lifecycle::Lifecycle;
use crate::lifecycle::emergency;
use crate::lifecycle::seal_config::{EmergencyConfig, SEAL_CONFIG_PATH, SealConfig};
use crate::seal::emergency::EmergencySecret;
use crate::seal::recipients;
use crate::seal::shamir::{self, ShareCheck};
use crate::secret::SecretKey;
use crate::storage::Batch;

impl Lifecycle {
    /// Starts a rekey of the emergency seal's keys (or sets the seal up for
    /// a store made before it was configured). Unset counts take the
    /// current ones, or init's defaults when it is not set up.
    pub(super) fn rekey_emergency_init(
        &self,
        config: &SealConfig,
        params: RekeyParams,
    ) -> Result<QuorumStatus, Error> {
        if self.emergency_seal().is_none() {
            return Err(Error::InvalidArgument(
                "this daemon has no emergency seal, so there are no emergency keys to rekey: configure `seal \"shamir\" { name = … }` beside the KMS seals (enable_multiseal = true) and restart".into(),
            ));
        }
        let current = config.emergency.as_ref();
        let shares = params
            .shares
            .unwrap_or(current.map_or(crate::lifecycle::init::DEFAULT_SHARES, |e| e.secret_shares));
        let threshold = params.threshold.unwrap_or(if shares <= 1 {
            1
        } else {
            current
                .map_or(crate::lifecycle::init::DEFAULT_THRESHOLD, |e| {
                    e.secret_threshold
                })
                .clamp(2, shares)
        });
        shamir::validate(shares, threshold)
            .map_err(|e| Error::InvalidArgument(format!("emergency keys: {e}")))?;
        let recipients = (!params.recipients.is_empty())
            .then(|| recipients::parse_all(&params.recipients, shares, "new emergency keys"))
            .transpose()?;
        self.start(
            Operation::Rekey,
            Kind::Rekey(RekeyPlan {
                shares,
                threshold,
                target: RekeyTarget::Emergency,
                verify: params.verify,
                recipients,
                verification: None,
            }),
            false,
        )
    }

    /// Writes the new emergency seal (its share check and public key) and
    /// the root key and `recovery_key` encrypted to it in one transaction;
    /// no KMS call. The old emergency keys are refused from then on.
    pub(super) async fn commit_emergency_rekey(
        &self,
        threshold: u32,
        new_secret: &SecretKey,
        check: ShareCheck,
        shares: u32,
        recovery_key: Option<&SecretKey>,
    ) -> Result<(), Error> {
        let barrier = self.barrier()?;
        let recovery_key = recovery_key.ok_or_else(|| {
            Error::Internal("the emergency rekey lost the recovery key that authorized it".into())
        })?;
        // The config as it is now, under the key operations' lock (a
        // rewrap may have written it since the rekey began).
        let config = &*self.seal_config().ok_or(Error::NotInitialized)?;
        if self.not_yet_several() {
            return Err(Error::FailedPrecondition(
                "the store is moving from one seal to several: wait until `strongroom status` shows every seal fully wrapped, then rekey the emergency keys".into(),
            ));
        }
        let name = self.emergency_seal().unwrap_or(crate::seal::SHAMIR);
        let secret = EmergencySecret::from_key(new_secret.clone());
        let new_config = SealConfig {
            emergency: Some(EmergencyConfig {
                name: name.to_string(),
                secret_shares: shares,
                secret_threshold: threshold,
                share_check: check,
                public_key: secret.public_key_hex(),
            }),
            ..config.clone()
        };
        let mut batch = Batch::new();
        batch.put(SEAL_CONFIG_PATH, new_config.encode());
        emergency::set_up_into(
            &mut batch,
            &barrier,
            &new_config,
            barrier.root_key(),
            recovery_key,
        )?;
        self.storage.write(batch).await?;
        self.replace_seal_config(new_config);
        tracing::info!(
            shares,
            threshold,
            "rekey complete: the new emergency keys are in force and the old ones are refused"
        );
        Ok(())
    }
}
