//! Rekey: new shares for the store (the unseal keys with Shamir, the
//! recovery keys with awskms), in force only once their receiver confirms
//! or, with `verify`, a quorum of them is typed back.

use std::time::Instant;

use super::{
    Attempt, Completed, Kind, Operation, QuorumOutcome, QuorumStatus, duplicate_share,
    none_under_way,
};
use crate::barrier::entry;
use crate::error::Error;
use crate::failpoint;
use crate::lifecycle::Lifecycle;
use crate::lifecycle::seal_config::{ROOT_KEY_PATH, SEAL_CONFIG_PATH, SealConfig};
use crate::lifecycle::unseal::{add_share, decode_share, share_noun};
use crate::seal::Seal;
use crate::seal::envelope::Purpose;
use crate::seal::recipients::{self, Recipient};
use crate::seal::shamir::{self, ShareCheck};
use crate::secret::{SecretBytes, SecretKey, ct_eq, random_uuid};
use crate::storage::Batch;

mod emergency;

/// Which shares a rekey replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RekeyTarget {
    /// The unseal keys (Shamir seal).
    Barrier,
    /// The recovery keys (awskms seal).
    Recovery,
    /// The emergency Shamir seal's keys (several seals), authorized by a
    /// quorum of recovery keys.
    Emergency,
}

impl RekeyTarget {
    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Barrier => "barrier",
            Self::Recovery => "recovery",
            Self::Emergency => "emergency",
        }
    }

    /// The keys it replaces, for messages.
    fn keys(self) -> &'static str {
        match self {
            Self::Barrier => "unseal keys",
            Self::Recovery => "recovery keys",
            Self::Emergency => "emergency keys",
        }
    }

    /// Parses the wire name; empty means the seal's own shares.
    pub fn parse(name: &str) -> Result<Option<Self>, Error> {
        match name.trim() {
            "" => Ok(None),
            "barrier" => Ok(Some(Self::Barrier)),
            "recovery" => Ok(Some(Self::Recovery)),
            "emergency" => Ok(Some(Self::Emergency)),
            other => Err(Error::InvalidArgument(format!(
                "unknown rekey target {}: expected \"barrier\" (unseal keys), \"recovery\" (recovery keys) or \"emergency\" (emergency keys)",
                crate::text::quote(other)
            ))),
        }
    }
}

/// What a rekey is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RekeyParams {
    /// New share count; unset means the current one.
    pub shares: Option<u32>,
    /// New threshold; unset means the current one (capped at the count).
    pub threshold: Option<u32>,
    /// Unset means the seal's own shares.
    pub target: Option<RekeyTarget>,
    /// The new shares take effect only once a quorum of them is typed back.
    pub verify: bool,
    /// One recipient per new share; empty: the shares are returned in the clear.
    pub recipients: Vec<String>,
}

/// The rekey part of [`QuorumStatus`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RekeyStatus {
    /// New share count.
    pub new_shares: u32,
    /// New threshold.
    pub new_threshold: u32,
    /// Which shares are replaced.
    pub target: RekeyTarget,
    /// Verification was asked for.
    pub verify: bool,
    /// The new shares were issued and wait to be typed back.
    pub verification_required: bool,
    /// The new shares were issued and wait for the receiving client's
    /// confirmation.
    pub confirmation_required: bool,
    /// The verification's nonce (`sudo` on `sys/rekey` only, and the last Update).
    pub verification_nonce: String,
    /// New shares typed back so far.
    pub verification_progress: u32,
}

pub(super) struct RekeyPlan {
    shares: u32,
    threshold: u32,
    target: RekeyTarget,
    verify: bool,
    recipients: Option<Vec<Recipient>>,
    verification: Option<Verification>,
}

/// New shares issued and waiting to be typed back (`verify`) or confirmed
/// by the client that received them.
struct Verification {
    nonce: String,
    new_key: SecretKey,
    check: ShareCheck,
    entered: Vec<SecretBytes>,
    /// A quorum of the new shares must be typed back; otherwise the
    /// receiver's confirmation commits.
    by_quorum: bool,
    /// A rekey of the emergency keys: the recovery key that authorized it,
    /// encrypted to the new emergency seal at the commit.
    recovery_key: Option<SecretKey>,
}

impl Verification {
    fn share_len(&self) -> usize {
        shamir::share_len(self.check.len() as u32)
    }
}

impl RekeyPlan {
    /// The rekey's part of its Status; `hide` blanks nonces for callers
    /// without `sudo`.
    pub(super) fn status(&self, hide: impl Fn(&str) -> String) -> RekeyStatus {
        let pending = self.verification.as_ref();
        RekeyStatus {
            new_shares: self.shares,
            new_threshold: self.threshold,
            target: self.target,
            verify: self.verify,
            verification_required: pending.is_some_and(|v| v.by_quorum),
            confirmation_required: pending.is_some_and(|v| !v.by_quorum),
            // The confirmation nonce is the receiver's alone: a Status
            // caller must not confirm shares it never saw.
            verification_nonce: pending
                .filter(|v| v.by_quorum)
                .map(|v| hide(&v.nonce))
                .unwrap_or_default(),
            verification_progress: pending.map_or(0, |v| v.entered.len() as u32),
        }
    }

    /// Once the new keys are issued, the rekey takes no more current keys:
    /// says what it waits for instead (and names a new key entered here by
    /// mistake).
    pub(super) fn check_takes_current_keys(&self, key: &str) -> Result<(), Error> {
        let Some(pending) = &self.verification else {
            return Ok(());
        };
        if !pending.by_quorum {
            return Err(Error::FailedPrecondition(
                "the rekey has issued its new keys and waits for the client that received them to confirm; cancel it to start again".into(),
            ));
        }
        if let Ok(new_share) = decode_share(key, pending.share_len(), "key")
            && pending.check.is_issued(new_share.expose())
        {
            return Err(Error::InvalidArgument(
                "this is one of the new keys of the rekey under way: enter it with `strongroom rekey --verify --nonce …`".into(),
            ));
        }
        Err(Error::FailedPrecondition(
            "the rekey has issued its new keys and waits for them to be verified: enter the new keys with `strongroom rekey --verify --nonce …`, or cancel the rekey".into(),
        ))
    }
}

impl Lifecycle {
    /// Starts a rekey.
    pub fn rekey_init(&self, params: RekeyParams) -> Result<QuorumStatus, Error> {
        let (config, _) = self.unsealed()?;
        let own = if config.is_recovery() {
            RekeyTarget::Recovery
        } else {
            RekeyTarget::Barrier
        };
        let target = params.target.unwrap_or(own);
        if target == RekeyTarget::Emergency {
            return self.rekey_emergency_init(&config, params);
        }
        if target != own {
            return Err(Error::InvalidArgument(match own {
                RekeyTarget::Barrier => "this daemon uses Shamir unseal keys and has no recovery keys: rekey with --target barrier (the default)".into(),
                RekeyTarget::Recovery | RekeyTarget::Emergency => "this daemon unseals itself with AWS KMS and has no unseal keys: rekey the recovery keys with --target recovery (the default)".into(),
            }));
        }
        let shares = params.shares.unwrap_or(config.secret_shares);
        // Unset: the current threshold, made to fit the new count.
        // (0 shares is refused below, not clamped: clamp(2, 0) panics.)
        let threshold = params.threshold.unwrap_or(if shares <= 1 {
            1
        } else {
            config.secret_threshold.clamp(2, shares)
        });
        shamir::validate(shares, threshold).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let recipients = (!params.recipients.is_empty())
            .then(|| recipients::parse_all(&params.recipients, shares, "new keys"))
            .transpose()?;
        self.start(
            Operation::Rekey,
            Kind::Rekey(RekeyPlan {
                shares,
                threshold,
                target,
                verify: params.verify,
                recipients,
                verification: None,
            }),
            false,
        )
    }

    /// Makes the new shares and keeps them pending: they are committed when
    /// the receiving client confirms, or when a quorum of them is verified.
    /// `quorum_key` is the key the quorum's shares combined into.
    pub(super) async fn rekey_with(
        &self,
        op: Operation,
        nonce: String,
        started_unix: u64,
        mut plan: RekeyPlan,
        quorum_key: &SecretKey,
    ) -> Result<Completed, Error> {
        let new_key = SecretKey::generate();
        let shares = shamir::split(&new_key, plan.shares, plan.threshold)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let check = ShareCheck::new(&shares);
        let threshold = plan.threshold;
        // Encrypted before anything is kept.
        let armored = plan
            .recipients
            .as_deref()
            .map(|r| recipients::armor_shares(r, &shares))
            .transpose()?;
        let pending_nonce = random_uuid();
        plan.verification = Some(Verification {
            nonce: pending_nonce.clone(),
            new_key,
            check,
            entered: Vec::new(),
            by_quorum: plan.verify,
            recovery_key: (plan.target == RekeyTarget::Emergency).then(|| quorum_key.clone()),
        });
        let by_quorum = plan.verify;
        *self.attempts().slot(op) = Some(Attempt {
            nonce,
            started_unix,
            last_progress: Instant::now(),
            shares: Vec::new(),
            claimed: false,
            kind: Kind::Rekey(plan),
        });
        tracing::info!(
            shares = shares.len(),
            threshold,
            "rekey: new keys issued; they take effect once {}",
            if by_quorum {
                "a quorum of them is verified"
            } else {
                "the client that received them confirms"
            }
        );
        let (verification_nonce, confirmation_nonce) = if by_quorum {
            (Some(pending_nonce), None)
        } else {
            (None, Some(pending_nonce))
        };
        Ok(Completed::Rekey {
            shares,
            armored,
            threshold,
            verification_nonce,
            confirmation_nonce,
        })
    }

    /// The client that received a rekey's new shares confirms it has them:
    /// they take effect. Needs the confirmation nonce returned with them.
    pub async fn rekey_confirm(&self, confirmation_nonce: &str) -> Result<(), Error> {
        let (config, _) = self.unsealed()?;
        failpoint::scope(
            "rekey-commit",
            self.commit_pending_rekey(&config, confirmation_nonce, false),
        )
        .await
        .inspect_err(|e| tracing::warn!(error = %e, "rekey confirmation failed; the current keys stay in force"))
    }

    /// Writes new shares' seal config with what the new key protects (the
    /// root key under a new unseal key, or a new recovery key envelope) in
    /// one transaction, after any KMS call.
    async fn commit_rekey(
        &self,
        config: &SealConfig,
        shares: u32,
        threshold: u32,
        new_key: &SecretKey,
        check: ShareCheck,
    ) -> Result<(), Error> {
        let barrier = self.barrier()?;
        let new_config = SealConfig {
            secret_shares: shares,
            secret_threshold: threshold,
            share_check: check,
            ..config.clone()
        };
        let mut batch = Batch::new();
        batch.put(SEAL_CONFIG_PATH, new_config.encode());
        match &self.seal {
            Seal::Shamir => {
                batch.put(
                    ROOT_KEY_PATH,
                    entry::seal(
                        new_key,
                        entry::TERM_KEY_ENCRYPTION,
                        ROOT_KEY_PATH,
                        barrier.root_key().expose(),
                    ),
                );
            }
            Seal::AwsKms(_) | Seal::Multi(_) => {
                self.wrap_into(&mut batch, Purpose::RecoveryKey, config, new_key)
                    .await?;
            }
        }
        self.storage.write(batch).await?;
        self.renew_break_glass(new_key, &new_config.share_check);
        self.replace_seal_config(new_config);
        tracing::info!(
            shares,
            threshold,
            "rekey complete: the new {}s are in force and the old ones are refused",
            share_noun(config)
        );
        Ok(())
    }

    /// Types back one of a rekey's new shares. At the new threshold the
    /// combination is checked against the new key and the rekey commits.
    pub async fn rekey_verify_update(
        &self,
        verification_nonce: &str,
        key: &str,
    ) -> Result<QuorumOutcome, Error> {
        let (config, _) = self.unsealed()?;
        let op = Operation::Rekey;
        let complete = {
            let mut attempts = self.attempts();
            let attempt = attempts.under_way(op)?;
            let Kind::Rekey(plan) = &mut attempt.kind else {
                return Err(none_under_way(op));
            };
            let threshold = plan.threshold;
            let Some(verification) = plan.verification.as_mut().filter(|v| v.by_quorum) else {
                return Err(Error::FailedPrecondition(
                    "the rekey under way has no new keys to verify: it needs a quorum of the current keys first, and --verify at its start".into(),
                ));
            };
            if !ct_eq(
                verification.nonce.as_bytes(),
                verification_nonce.trim().as_bytes(),
            ) {
                return Err(Error::InvalidArgument(
                    "the verification nonce does not match the rekey under way; it was printed with the new keys, or by the verification's last restart".into(),
                ));
            }
            let share = decode_share(key, verification.share_len(), "new key")?;
            if !verification.check.is_issued(share.expose()) {
                let current = config.share_check.is_issued(share.expose());
                return Err(Error::InvalidArgument(if current {
                    "this is one of the current keys; verification needs the new keys the rekey issued".into()
                } else {
                    "this key is not one of the new keys the rekey issued (mistyped?); nothing changed".into()
                }));
            }
            if !add_share(&mut verification.entered, share) {
                return Err(duplicate_share(op));
            }
            attempt.last_progress = Instant::now();
            verification.entered.len() >= threshold as usize
        };
        if !complete {
            return Ok(QuorumOutcome {
                status: self.quorum_status(op, false),
                result: None,
            });
        }
        failpoint::scope(
            "rekey-commit",
            self.commit_pending_rekey(&config, verification_nonce, true),
        )
        .await
        .inspect_err(|e| tracing::warn!(error = %e, "rekey verification failed; the current keys stay in force"))
            .map(|()| QuorumOutcome {
                status: self.quorum_status(op, false),
                result: Some(Completed::Verified),
            })
    }

    /// Starts a rekey's verification again, as Vault's DELETE of
    /// `sys/rekey/verify` does: the new keys stay issued and pending, the
    /// keys typed back so far are dropped, and the verification gets a new
    /// nonce (the old one is refused from now on). Only while a rekey (of
    /// `target`, when given) waits for a quorum of its new keys; nothing is
    /// committed.
    pub fn rekey_verify_restart(&self, target: Option<RekeyTarget>) -> Result<QuorumStatus, Error> {
        self.unsealed()?;
        let op = Operation::Rekey;
        {
            let mut attempts = self.attempts();
            let attempt = attempts.under_way(op)?;
            let Kind::Rekey(plan) = &mut attempt.kind else {
                return Err(none_under_way(op));
            };
            if let Some(target) = target.filter(|t| *t != plan.target) {
                return Err(Error::FailedPrecondition(format!(
                    "the rekey under way replaces the {}, not the {}; nothing changed",
                    plan.target.keys(),
                    target.keys()
                )));
            }
            let Some(verification) = plan.verification.as_mut().filter(|v| v.by_quorum) else {
                return Err(Error::FailedPrecondition(
                    "the rekey under way has no verification to restart (it has one once its new keys are issued, if it was started with --verify); nothing changed".into(),
                ));
            };
            verification.nonce = random_uuid();
            // Dropped shares are zeroed (SecretBytes).
            verification.entered.clear();
            attempt.last_progress = Instant::now();
        }
        tracing::info!(
            "rekey: verification restarted under a new nonce; the new keys stay pending"
        );
        Ok(self.quorum_status(op, true))
    }

    /// Commits the pending shares of the rekey whose pending nonce is
    /// `nonce`; `verified` when a quorum of them was typed back (their
    /// combination must give the new key). Checked again under the key
    /// operations' lock: the rekey may have been cancelled or replaced
    /// meanwhile.
    async fn commit_pending_rekey(
        &self,
        config: &SealConfig,
        nonce: &str,
        verified: bool,
    ) -> Result<(), Error> {
        let _key_ops = self.key_ops.lock().await;
        let op = Operation::Rekey;
        let attempt = {
            let mut attempts = self.attempts();
            let slot = attempts.slot(op);
            let Some(Kind::Rekey(RekeyPlan {
                verification: Some(pending),
                ..
            })) = slot.as_ref().map(|a| &a.kind)
            else {
                return Err(Error::FailedPrecondition(
                    "no rekey is waiting for its new keys to be confirmed or verified; nothing changed".into(),
                ));
            };
            if pending.by_quorum != verified {
                return Err(Error::FailedPrecondition(if pending.by_quorum {
                    "this rekey was started with --verify: a quorum of its new keys must be typed back with `strongroom rekey --verify --nonce …`"
                } else {
                    "this rekey was not started with --verify: the client that received its new keys confirms it"
                }.into()));
            }
            if !ct_eq(pending.nonce.as_bytes(), nonce.trim().as_bytes()) {
                return Err(Error::InvalidArgument(
                    "the nonce does not match the rekey waiting for its new keys (was it cancelled or replaced?); nothing changed".into(),
                ));
            }
            slot.take()
        };
        let Some(attempt) = attempt else {
            return Err(none_under_way(op));
        };
        let Kind::Rekey(RekeyPlan {
            shares,
            threshold,
            target,
            verification: Some(verification),
            ..
        }) = attempt.kind
        else {
            return Err(none_under_way(op));
        };
        if verified {
            // Every share passed the issued check; this guards the check itself.
            let combined = shamir::combine(&verification.entered).map_err(|_| {
                Error::Internal("the new keys did not combine; start the rekey again".into())
            })?;
            if !ct_eq(combined.expose(), verification.new_key.expose()) {
                return Err(Error::Internal(
                    "the new keys combined into a different key than the rekey made; start the rekey again".into(),
                ));
            }
        }
        if target == RekeyTarget::Emergency {
            return self
                .commit_emergency_rekey(
                    threshold,
                    &verification.new_key,
                    verification.check,
                    shares,
                    verification.recovery_key.as_ref(),
                )
                .await;
        }
        self.commit_rekey(
            config,
            shares,
            threshold,
            &verification.new_key,
            verification.check,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Phase;
    use crate::lifecycle::quorum::testing::{enter, reseal_with, shamir};

    /// A rekey of the unseal keys to 3 shares, threshold 2, verified.
    fn verified_3_of_2() -> RekeyParams {
        RekeyParams {
            shares: Some(3),
            threshold: Some(2),
            target: None,
            verify: true,
            recipients: Vec::new(),
        }
    }

    /// Enters the `old` keys into the verified rekey `nonce`: the new keys
    /// it issued and their verification nonce.
    async fn issue(
        lifecycle: &Lifecycle,
        nonce: &str,
        old: &[String],
    ) -> (Vec<SecretBytes>, String) {
        let done = enter(lifecycle, Operation::Rekey, nonce, old).await;
        let Some(Completed::Rekey {
            shares,
            verification_nonce: Some(verification),
            ..
        }) = done.result
        else {
            panic!("no pending shares");
        };
        (shares, verification)
    }

    /// Numbers a request may carry: the edges of every range, and the
    /// extremes of the type.
    const EDGES: [Option<u32>; 10] = [
        None,
        Some(0),
        Some(1),
        Some(2),
        Some(3),
        Some(4),
        Some(254),
        Some(255),
        Some(256),
        Some(u32::MAX),
    ];

    #[tokio::test]
    async fn every_share_count_and_threshold_is_accepted_or_refused_in_a_sentence() {
        // 3 of 3: unset values fit the new count from the current threshold.
        let store = shamir(3, 3).await;
        let lifecycle = &store.lifecycle;
        for shares in EDGES {
            for threshold in EDGES {
                let params = RekeyParams {
                    shares,
                    threshold,
                    target: None,
                    verify: false,
                    recipients: Vec::new(),
                };
                match lifecycle.rekey_init(params) {
                    Ok(started) => {
                        let (n, t) = (shares.unwrap_or(3), threshold.unwrap_or(0));
                        assert!((1..=255).contains(&n), "{shares:?}/{threshold:?}");
                        assert!(threshold.is_none() || (t <= n && (n == 1 || t >= 2)));
                        lifecycle
                            .quorum_cancel(Operation::Rekey, &started.nonce)
                            .unwrap();
                    }
                    Err(Error::InvalidArgument(why)) => {
                        assert!(!why.contains("Debug") && !why.is_empty());
                    }
                    Err(other) => panic!("{shares:?}/{threshold:?}: {other:?}"),
                }
            }
        }
    }

    #[tokio::test]
    async fn rekey_starts_once_and_replaces_the_shares() {
        let store = shamir(3, 2).await;
        let lifecycle = &store.lifecycle;
        let params = RekeyParams {
            shares: Some(5),
            threshold: Some(3),
            target: None,
            verify: false,
            recipients: Vec::new(),
        };
        let started = lifecycle.rekey_init(params.clone()).unwrap();
        assert!(started.started && !started.nonce.is_empty());
        assert_eq!(started.required, 2);
        assert!(matches!(
            lifecycle.rekey_init(params),
            Err(Error::FailedPrecondition(_))
        ));
        let nonce = started.nonce;
        // The nonce is shown only when asked (the gate asks for callers
        // with sudo).
        assert_eq!(lifecycle.quorum_status(Operation::Rekey, false).nonce, "");
        assert_eq!(lifecycle.quorum_status(Operation::Rekey, true).nonce, nonce);

        let wrong = lifecycle
            .quorum_update(Operation::Rekey, "nope", &store.shares[0])
            .await;
        assert!(matches!(wrong, Err(Error::InvalidArgument(_))));
        let foreign = hex::encode([9u8; 33]);
        let err = lifecycle
            .quorum_update(Operation::Rekey, &nonce, &foreign)
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("never issued"), "{err}");
        let first = enter(lifecycle, Operation::Rekey, &nonce, &store.shares[..1]).await;
        assert_eq!(first.status.progress, 1);
        let again = lifecycle
            .quorum_update(Operation::Rekey, &nonce, &store.shares[0])
            .await
            .err()
            .unwrap();
        assert!(matches!(again, Error::InvalidArgument(_)), "{again}");
        assert!(again.to_string().contains("already entered"), "{again}");
        assert_eq!(lifecycle.quorum_status(Operation::Rekey, false).progress, 1);

        let done = enter(lifecycle, Operation::Rekey, &nonce, &store.shares[1..2]).await;
        let Some(Completed::Rekey {
            shares,
            threshold,
            verification_nonce: None,
            confirmation_nonce: Some(confirmation),
            ..
        }) = done.result
        else {
            panic!("no new shares");
        };
        assert_eq!((shares.len(), threshold), (5, 3));
        assert!(done.status.rekey.unwrap().confirmation_required);
        let new: Vec<String> = shares.iter().map(|s| hex::encode(s.expose())).collect();
        // Not in force until the receiver confirms.
        assert_eq!(lifecycle.status().shares, 3);
        assert!(matches!(
            lifecycle.rekey_confirm("not-it").await,
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            lifecycle.rekey_verify_update(&confirmation, &new[0]).await,
            Err(Error::FailedPrecondition(_))
        ));
        lifecycle.rekey_confirm(&confirmation).await.unwrap();
        assert!(
            !lifecycle.quorum_status(Operation::Rekey, false).started,
            "the rekey is over"
        );

        // Old shares are refused from now on; three new ones unseal.
        lifecycle.seal().await;
        let err = lifecycle.unseal(&store.shares[0]).await.err().unwrap();
        assert!(err.to_string().contains("never issued"), "{err}");
        for share in &new[2..5] {
            lifecycle.unseal(share).await.unwrap();
        }
        assert_eq!(lifecycle.phase(), Phase::Unsealed);
        assert_eq!(lifecycle.status().shares, 5);
    }

    #[tokio::test]
    async fn a_verified_rekey_takes_effect_only_after_the_new_keys_are_typed_back() {
        let store = shamir(3, 2).await;
        let lifecycle = &store.lifecycle;
        let nonce = lifecycle.rekey_init(verified_3_of_2()).unwrap().nonce;
        let (shares, verification) = issue(lifecycle, &nonce, &store.shares[..2]).await;
        let new: Vec<String> = shares.iter().map(|s| hex::encode(s.expose())).collect();
        // Not in force yet: the old keys still work.
        assert!(
            lifecycle
                .quorum_status(Operation::Rekey, false)
                .rekey
                .unwrap()
                .verification_required
        );
        let err = lifecycle
            .quorum_update(Operation::Rekey, &nonce, &new[0])
            .await
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("enter it with `strongroom rekey --verify"),
            "{err}"
        );

        let mut typo = shares[0].expose().to_vec();
        typo[7] ^= 1;
        let err = lifecycle
            .rekey_verify_update(&verification, &hex::encode(&typo))
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("not one of the new keys"), "{err}");
        let err = lifecycle
            .rekey_verify_update(&verification, &store.shares[0])
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("one of the current keys"), "{err}");
        assert!(matches!(
            lifecycle.rekey_verify_update("wrong", &new[0]).await,
            Err(Error::InvalidArgument(_))
        ));
        let one = lifecycle
            .rekey_verify_update(&verification, &new[0])
            .await
            .unwrap();
        assert!(one.result.is_none());
        assert_eq!(one.status.rekey.unwrap().verification_progress, 1);
        let two = lifecycle
            .rekey_verify_update(&verification, &new[2])
            .await
            .unwrap();
        assert!(matches!(two.result, Some(Completed::Verified)));
        reseal_with(lifecycle, &new[..2]).await.unwrap();
        lifecycle.seal().await;
        assert!(lifecycle.unseal(&store.shares[1]).await.is_err());
    }

    #[tokio::test]
    async fn a_restarted_verification_drops_the_keys_typed_back_and_takes_a_new_nonce() {
        let store = shamir(3, 2).await;
        let lifecycle = &store.lifecycle;
        let barrier = Some(RekeyTarget::Barrier);
        let none = lifecycle.rekey_verify_restart(barrier).err().unwrap();
        assert!(matches!(none, Error::FailedPrecondition(_)), "{none}");
        let nonce = lifecycle.rekey_init(verified_3_of_2()).unwrap().nonce;
        // No new keys yet: nothing to restart.
        let early = lifecycle.rekey_verify_restart(barrier).err().unwrap();
        assert!(
            early.to_string().contains("no verification to restart"),
            "{early}"
        );
        let (shares, old) = issue(lifecycle, &nonce, &store.shares[..2]).await;
        let new: Vec<String> = shares.iter().map(|s| hex::encode(s.expose())).collect();
        let other = lifecycle
            .rekey_verify_restart(Some(RekeyTarget::Recovery))
            .err()
            .unwrap();
        assert!(
            other.to_string().contains("not the recovery keys"),
            "{other}"
        );
        lifecycle.rekey_verify_update(&old, &new[0]).await.unwrap();

        let restarted = lifecycle.rekey_verify_restart(barrier).unwrap();
        let status = restarted.rekey.unwrap();
        assert!(status.verification_required);
        assert_eq!(status.verification_progress, 0);
        let fresh = status.verification_nonce;
        assert!(!fresh.is_empty() && fresh != old);
        // The rekey itself goes on under its own nonce.
        assert_eq!(restarted.nonce, nonce);
        assert!(matches!(
            lifecycle.rekey_verify_update(&old, &new[1]).await,
            Err(Error::InvalidArgument(_))
        ));
        // The key entered before the restart counts again, once.
        let one = lifecycle
            .rekey_verify_update(&fresh, &new[0])
            .await
            .unwrap();
        assert!(one.result.is_none());
        let two = lifecycle
            .rekey_verify_update(&fresh, &new[1])
            .await
            .unwrap();
        assert!(matches!(two.result, Some(Completed::Verified)));
        reseal_with(lifecycle, &new[..2]).await.unwrap();
        assert!(matches!(
            lifecycle.rekey_verify_restart(barrier),
            Err(Error::FailedPrecondition(_))
        ));
    }

    #[tokio::test]
    async fn a_cancelled_or_unverified_rekey_leaves_the_old_keys() {
        let store = shamir(3, 2).await;
        let lifecycle = &store.lifecycle;
        let params = RekeyParams {
            shares: None,
            threshold: None,
            target: Some(RekeyTarget::Recovery),
            verify: true,
            recipients: Vec::new(),
        };
        let err = lifecycle.rekey_init(params.clone()).err().unwrap();
        assert!(err.to_string().contains("has no recovery keys"), "{err}");
        let nonce = lifecycle
            .rekey_init(RekeyParams {
                target: None,
                ..params
            })
            .unwrap()
            .nonce;
        enter(lifecycle, Operation::Rekey, &nonce, &store.shares[..2]).await;
        assert!(matches!(
            lifecycle.quorum_cancel(Operation::Rekey, "other"),
            Err(Error::InvalidArgument(_))
        ));
        lifecycle.quorum_cancel(Operation::Rekey, &nonce).unwrap();
        assert!(!lifecycle.quorum_status(Operation::Rekey, false).started);
        reseal_with(lifecycle, &store.shares[1..3]).await.unwrap();
    }

    #[tokio::test]
    async fn an_unconfirmed_rekey_leaves_the_old_keys() {
        let store = shamir(3, 2).await;
        let lifecycle = &store.lifecycle;
        let nonce = lifecycle
            .rekey_init(RekeyParams {
                shares: Some(2),
                threshold: Some(2),
                target: None,
                verify: false,
                recipients: Vec::new(),
            })
            .unwrap()
            .nonce;
        let done = enter(lifecycle, Operation::Rekey, &nonce, &store.shares[..2]).await;
        assert!(matches!(done.result, Some(Completed::Rekey { .. })));
        // Waiting for its receiver's confirmation: no verification to restart.
        let err = lifecycle.rekey_verify_restart(None).err().unwrap();
        assert!(
            err.to_string().contains("no verification to restart"),
            "{err}"
        );
        // The answer was lost: no confirmation. A seal forgets the rekey.
        reseal_with(lifecycle, &store.shares[1..3]).await.unwrap();
        assert!(!lifecycle.quorum_status(Operation::Rekey, false).started);
        assert_eq!(lifecycle.status().shares, 3);
    }
}
