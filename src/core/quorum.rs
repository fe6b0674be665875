//! Operations that need a quorum of the store's shares (unseal keys with the
//! Shamir seal, recovery keys with awskms), gathered over several calls tied
//! together by a nonce, as `vault operator rekey` does:
//!
//! - **rekey**: new shares with a new count and threshold (the unseal keys, or
//!   the recovery keys with awskms). The new shares take effect only once it
//!   is known that someone holds them: the client that received them
//!   confirms (`RekeyConfirm`, which the CLI sends as soon as it has printed
//!   them), or, with `verify`, a quorum of them is typed back. A crash or a
//!   lost answer before that leaves the old shares in force, so no rekey can
//!   leave a store whose shares nobody has;
//! - **rotate-root**: a new root key re-encrypts the keyring;
//! - **generate-root**: a new root token, returned XORed with a one-time pad
//!   the client made, so it never crosses the wire in the clear.
//!
//! Who may do what: rekey and rotate-root need `sudo` on `sys/rekey` or
//! `sys/rotate-root` (a root token has it) to start and to cancel (an unauthenticated start was a denial-of-service hole in Vault and
//! OpenBao, HCSEC-2026-08); entering a share needs only the nonce, as share
//! holders often have no token. Generate-root needs no token at all (that is
//! its point); its nonce is needed to cancel it. One operation of each kind
//! at a time; one that has seen no share for [`STALE_AFTER`] can be replaced.
//!
//! Every change a quorum makes is one storage transaction, after every KMS
//! call it needs: a crash leaves the old keys or the new ones in force.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::recipients::{self, Recipient};
use super::seal_config::{RECOVERY_KEY_PATH, ROOT_KEY_PATH, SEAL_CONFIG_PATH, SealConfig};
use super::unseal::{add_share, decode_share, issued_share, share_noun};
use super::{Caller, Capability, Core, CoreError, State, token, wrap};
use crate::barrier::keyring::now_unix;
use crate::barrier::{Barrier, KEYRING_PATH, entry};
use crate::failpoint;
use crate::seal::Seal;
use crate::seal::envelope::Purpose;
use crate::seal::shamir::{self, ShareCheck};
use crate::secret::{SecretBytes, SecretKey, SecretString, ct_eq};
use crate::storage::Batch;

/// An operation that has seen no share for this long may be replaced by a
/// new one (so a forgotten generate-root, whose nonce may be lost, cannot
/// block the next one for ever).
const STALE_AFTER: Duration = Duration::from_secs(15 * 60);
/// Length of a generate-root one-time pad: as long as a token.
pub const OTP_LEN: usize = token::TOKEN_LEN;

/// The three quorum operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// New shares.
    Rekey,
    /// A new root key.
    RotateRoot,
    /// A new root token.
    GenerateRoot,
}

impl Operation {
    /// The command that drives it, for messages.
    pub fn command(self) -> &'static str {
        match self {
            Self::Rekey => "rekey",
            Self::RotateRoot => "rotate-root",
            Self::GenerateRoot => "generate-root",
        }
    }

    /// The policy path whose `sudo` starts or cancels it.
    pub fn policy_path(self) -> &'static str {
        match self {
            Self::Rekey => "sys/rekey",
            Self::RotateRoot => "sys/rotate-root",
            Self::GenerateRoot => "sys/generate-root",
        }
    }
}

/// Which shares a rekey replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RekeyTarget {
    /// The unseal keys (Shamir seal).
    Barrier,
    /// The recovery keys (awskms seal).
    Recovery,
}

impl RekeyTarget {
    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Barrier => "barrier",
            Self::Recovery => "recovery",
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

/// Where an operation stands, as its Status call reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QuorumStatus {
    /// An operation is under way.
    pub started: bool,
    /// Its nonce; only shown to a caller with `sudo` on its path (and to whoever started it).
    pub nonce: String,
    /// Shares entered towards the threshold.
    pub progress: u32,
    /// Shares needed (the threshold of the shares in force).
    pub required: u32,
    /// When it started, Unix seconds.
    pub started_unix: u64,
    /// Rekey only: the new shares and threshold, the target and verification.
    pub rekey: Option<RekeyStatus>,
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

/// What entering one share did.
pub struct QuorumOutcome {
    /// Status after the share.
    pub status: QuorumStatus,
    /// The operation finished (or, for a rekey with verification, issued the
    /// new shares and waits for them).
    pub result: Option<Completed>,
}

/// What a completed quorum hands back, once.
pub enum Completed {
    /// New shares, pending: in force once confirmed with
    /// `confirmation_nonce`, or verified under `verification_nonce`.
    Rekey {
        /// The new shares.
        shares: Vec<SecretBytes>,
        /// The new shares encrypted to their recipients, when given; then
        /// only these leave the daemon.
        armored: Option<Vec<String>>,
        /// Their threshold.
        threshold: u32,
        /// Set when the shares wait for verification under this nonce.
        verification_nonce: Option<String>,
        /// Set when the shares wait for the receiver's confirmation with
        /// this nonce (a rekey without verification).
        confirmation_nonce: Option<String>,
    },
    /// A rekey's verification or confirmation completed: the new shares are
    /// in force.
    Verified,
    /// The root key was replaced.
    RotatedRoot,
    /// A new root token, XORed with the one-time pad, base64.
    GeneratedRoot {
        /// base64(token XOR pad).
        encoded_token: String,
        /// The new token's accessor.
        accessor: String,
    },
}

/// An operation under way.
struct Attempt {
    nonce: String,
    started_unix: u64,
    last_progress: Instant,
    shares: Vec<SecretBytes>,
    kind: Kind,
}

enum Kind {
    Rekey(RekeyPlan),
    RotateRoot,
    GenerateRoot { otp: SecretBytes },
}

struct RekeyPlan {
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
}

/// The operations under way, one slot per kind.
#[derive(Default)]
pub(super) struct Attempts {
    rekey: Option<Attempt>,
    rotate_root: Option<Attempt>,
    generate_root: Option<Attempt>,
}

impl Attempts {
    fn slot(&mut self, op: Operation) -> &mut Option<Attempt> {
        match op {
            Operation::Rekey => &mut self.rekey,
            Operation::RotateRoot => &mut self.rotate_root,
            Operation::GenerateRoot => &mut self.generate_root,
        }
    }

    /// Forgets every operation (at seal): their shares go with them.
    pub(super) fn clear(&mut self) {
        *self = Self::default();
    }
}

fn nonce_matches(attempt: &Attempt, nonce: &str) -> bool {
    ct_eq(attempt.nonce.as_bytes(), nonce.trim().as_bytes())
}

fn wrong_nonce(op: Operation) -> CoreError {
    CoreError::InvalidArgument(format!(
        "the nonce does not match the {} under way; `strongroom {} --status` shows it to a caller with sudo",
        op.command(),
        op.command()
    ))
}

fn duplicate_share(op: Operation) -> CoreError {
    CoreError::InvalidArgument(format!(
        "this key was already entered for the {} under way; progress is unchanged",
        op.command()
    ))
}

fn none_under_way(op: Operation) -> CoreError {
    CoreError::FailedPrecondition(format!(
        "no {} is under way; start one with `strongroom {} --init`",
        op.command(),
        op.command()
    ))
}

/// Decodes a one-time pad: base64 of exactly [`OTP_LEN`] bytes.
fn decode_otp(otp: &str) -> Result<SecretBytes, CoreError> {
    let bytes = SecretBytes::new(STANDARD.decode(otp.trim()).map_err(|_| {
        CoreError::InvalidArgument(format!(
            "the one-time pad is not base64: it must be {OTP_LEN} random bytes (as long as a token), base64-encoded"
        ))
    })?);
    if bytes.len() != OTP_LEN {
        return Err(CoreError::InvalidArgument(format!(
            "the one-time pad is {} bytes long, but it must be {OTP_LEN} (as long as a token)",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// `token XOR pad`, base64: what generate-root returns.
fn encode_token(token: &[u8], otp: &[u8]) -> String {
    let xored: Vec<u8> = token.iter().zip(otp).map(|(t, p)| t ^ p).collect();
    STANDARD.encode(xored)
}

impl Core {
    pub(super) fn attempts(&self) -> std::sync::MutexGuard<'_, Attempts> {
        self.attempts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The seal config and barrier, for an operation that needs both.
    fn unsealed(&self) -> Result<(Arc<SealConfig>, Arc<Barrier>), CoreError> {
        match &*self.read() {
            State::Unsealed { config, barrier } => Ok((Arc::clone(config), Arc::clone(barrier))),
            State::Sealed { .. } => Err(CoreError::Sealed),
            State::Uninitialized => Err(CoreError::NotInitialized),
        }
    }

    /// Starts a rekey (needs `sudo` on `sys/rekey`).
    pub async fn rekey_init(
        &self,
        caller: &Caller,
        params: RekeyParams,
    ) -> Result<QuorumStatus, CoreError> {
        self.authorize(caller, Operation::Rekey.policy_path(), Capability::Sudo)
            .await?;
        let (config, _) = self.unsealed()?;
        let own = if config.is_recovery() {
            RekeyTarget::Recovery
        } else {
            RekeyTarget::Barrier
        };
        let target = params.target.unwrap_or(own);
        if target != own {
            return Err(CoreError::InvalidArgument(match own {
                RekeyTarget::Barrier => "this daemon uses Shamir unseal keys and has no recovery keys: rekey with --target barrier (the default)".into(),
                RekeyTarget::Recovery => "this daemon unseals itself with AWS KMS and has no unseal keys: rekey the recovery keys with --target recovery (the default)".into(),
            }));
        }
        let shares = params.shares.unwrap_or(config.secret_shares);
        // Unset: the current threshold, made to fit the new count.
        let threshold = params.threshold.unwrap_or(if shares == 1 {
            1
        } else {
            config.secret_threshold.clamp(2, shares)
        });
        shamir::validate(shares, threshold)
            .map_err(|e| CoreError::InvalidArgument(e.to_string()))?;
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
        )
    }

    /// Starts a root key rotation (needs `sudo` on `sys/rotate-root`).
    pub async fn rotate_root_init(&self, caller: &Caller) -> Result<QuorumStatus, CoreError> {
        self.authorize(
            caller,
            Operation::RotateRoot.policy_path(),
            Capability::Sudo,
        )
        .await?;
        self.unsealed()?;
        self.start(Operation::RotateRoot, Kind::RotateRoot)
    }

    /// Starts a generate-root (no token: it exists for when the root token
    /// is lost). `otp` is the client's one-time pad, base64.
    pub async fn generate_root_init(&self, otp: &str) -> Result<QuorumStatus, CoreError> {
        let otp = decode_otp(otp)?;
        self.unsealed()?;
        self.start(Operation::GenerateRoot, Kind::GenerateRoot { otp })
    }

    fn start(&self, op: Operation, kind: Kind) -> Result<QuorumStatus, CoreError> {
        let mut attempts = self.attempts();
        let slot = attempts.slot(op);
        if let Some(running) = slot.as_ref() {
            if running.last_progress.elapsed() < STALE_AFTER {
                return Err(CoreError::FailedPrecondition(format!(
                    "a {} is already under way; finish it, or cancel it with `strongroom {} --cancel --nonce …`",
                    op.command(),
                    op.command()
                )));
            }
            tracing::info!(
                operation = op.command(),
                "replacing an operation that saw no key for 15 minutes"
            );
        }
        *slot = Some(Attempt {
            nonce: super::init::random_uuid(),
            started_unix: now_unix(),
            last_progress: Instant::now(),
            shares: Vec::new(),
            kind,
        });
        tracing::info!(operation = op.command(), "quorum operation started");
        drop(attempts);
        Ok(self.quorum_status(op, true))
    }

    /// Ends an operation. Rekey and rotate-root need `sudo` and the
    /// nonce; generate-root needs the nonce.
    pub async fn quorum_cancel(
        &self,
        op: Operation,
        caller: &Caller,
        nonce: &str,
    ) -> Result<(), CoreError> {
        if op != Operation::GenerateRoot {
            self.authorize(caller, op.policy_path(), Capability::Sudo)
                .await?;
        }
        let mut attempts = self.attempts();
        let slot = attempts.slot(op);
        match slot.as_ref() {
            None => return Err(none_under_way(op)),
            Some(attempt) if !nonce_matches(attempt, nonce) => return Err(wrong_nonce(op)),
            Some(_) => *slot = None,
        }
        tracing::info!(operation = op.command(), "quorum operation cancelled");
        Ok(())
    }

    /// Where an operation stands. The nonces are shown only to a caller with `sudo`.
    pub async fn quorum_status_for(&self, op: Operation, caller: &Caller) -> QuorumStatus {
        // A status call changes nothing: it spends no use of the token.
        let show_nonce = caller.token().is_some()
            && self
                .may(caller, op.policy_path(), Capability::Sudo)
                .await
                .is_ok();
        self.quorum_status(op, show_nonce)
    }

    fn quorum_status(&self, op: Operation, show_nonce: bool) -> QuorumStatus {
        let required = self.seal_config().map_or(0, |c| c.secret_threshold);
        let mut attempts = self.attempts();
        let Some(attempt) = attempts.slot(op).as_ref() else {
            return QuorumStatus {
                required,
                ..QuorumStatus::default()
            };
        };
        let hide = |nonce: &str| {
            if show_nonce {
                nonce.to_string()
            } else {
                String::new()
            }
        };
        QuorumStatus {
            started: true,
            nonce: hide(&attempt.nonce),
            progress: attempt.shares.len() as u32,
            required,
            started_unix: attempt.started_unix,
            rekey: match &attempt.kind {
                Kind::Rekey(plan) => Some(RekeyStatus {
                    new_shares: plan.shares,
                    new_threshold: plan.threshold,
                    target: plan.target,
                    verify: plan.verify,
                    verification_required: plan.verification.as_ref().is_some_and(|v| v.by_quorum),
                    confirmation_required: plan.verification.as_ref().is_some_and(|v| !v.by_quorum),
                    // The confirmation nonce is the receiver's alone: a
                    // Status caller must not confirm shares it never saw.
                    verification_nonce: plan
                        .verification
                        .as_ref()
                        .filter(|v| v.by_quorum)
                        .map(|v| hide(&v.nonce))
                        .unwrap_or_default(),
                    verification_progress: plan
                        .verification
                        .as_ref()
                        .map_or(0, |v| v.entered.len() as u32),
                }),
                _ => None,
            },
        }
    }

    /// Enters one of the store's shares for `op`. Bad input changes nothing;
    /// at the threshold the operation runs.
    pub async fn quorum_update(
        &self,
        op: Operation,
        nonce: &str,
        key: &str,
    ) -> Result<QuorumOutcome, CoreError> {
        let (config, _) = self.unsealed()?;
        let share = {
            // Checked before it is held anywhere: a share of the wrong kind,
            // or one never issued, is named and changes nothing.
            let mut attempts = self.attempts();
            let attempt = attempts
                .slot(op)
                .as_mut()
                .ok_or_else(|| none_under_way(op))?;
            if !nonce_matches(attempt, nonce) {
                return Err(wrong_nonce(op));
            }
            if let Kind::Rekey(RekeyPlan {
                verification: Some(pending),
                ..
            }) = &attempt.kind
            {
                if !pending.by_quorum {
                    return Err(CoreError::FailedPrecondition(
                        "the rekey has issued its new keys and waits for the client that received them to confirm; cancel it to start again".into(),
                    ));
                }
                if let Ok(new_share) = decode_share(key, pending.share_len(), "key")
                    && pending.check.is_issued(new_share.expose())
                {
                    return Err(CoreError::InvalidArgument(
                        "this is one of the new keys of the rekey under way: enter it with `strongroom rekey --verify --nonce …`".into(),
                    ));
                }
                return Err(CoreError::FailedPrecondition(
                    "the rekey has issued its new keys and waits for them to be verified: enter the new keys with `strongroom rekey --verify --nonce …`, or cancel the rekey".into(),
                ));
            }
            issued_share(key, &config)?
        };
        let quorum = {
            let mut attempts = self.attempts();
            // The attempt may have been cancelled or replaced meanwhile.
            let attempt = attempts
                .slot(op)
                .as_mut()
                .filter(|a| nonce_matches(a, nonce))
                .ok_or_else(|| none_under_way(op))?;
            if !add_share(&mut attempt.shares, share) {
                return Err(duplicate_share(op));
            }
            attempt.last_progress = Instant::now();
            (attempt.shares.len() >= config.secret_threshold as usize)
                .then(|| std::mem::take(&mut attempt.shares))
        };
        let Some(shares) = quorum else {
            tracing::info!(
                operation = op.command(),
                progress = self.quorum_status(op, false).progress,
                threshold = config.secret_threshold,
                "{} accepted",
                share_noun(&config)
            );
            return Ok(QuorumOutcome {
                status: self.quorum_status(op, false),
                result: None,
            });
        };
        let result =
            failpoint::scope(op.command(), self.run_quorum(op, nonce, &config, shares)).await;
        let status = self.quorum_status(op, false);
        match result {
            Ok(completed) => Ok(QuorumOutcome {
                status,
                result: Some(completed),
            }),
            Err(e) => {
                tracing::warn!(operation = op.command(), error = %e, "quorum operation failed; the keys entered were discarded");
                Err(e)
            }
        }
    }

    /// The quorum is complete: checks it against storage and does the work,
    /// under the lifecycle lock.
    async fn run_quorum(
        &self,
        op: Operation,
        nonce: &str,
        config: &SealConfig,
        shares: Vec<SecretBytes>,
    ) -> Result<Completed, CoreError> {
        let _lifecycle = self.lifecycle.lock().await;
        let (current, barrier) = self.unsealed()?;
        if current.share_check != config.share_check {
            return Err(CoreError::FailedPrecondition(
                "the shares in force changed while the keys were entered; start again".into(),
            ));
        }
        // The key the shares combine into: the unseal key (Shamir) or the
        // recovery key (awskms), checked against what is stored.
        let quorum_key = match &self.seal {
            Seal::Shamir => {
                let (unseal_key, root_key) = self.check_unseal_quorum(&shares).await?;
                if !ct_eq(root_key.expose(), barrier.root_key().expose()) {
                    return Err(CoreError::Internal(
                        "the unseal keys opened a different root key than the one in use; the stored seal data may be damaged".into(),
                    ));
                }
                unseal_key
            }
            Seal::AwsKms(kms) => {
                self.check_recovery_quorum(kms.as_ref(), config, &shares)
                    .await?
            }
        };
        drop(shares);
        let taken = {
            let mut attempts = self.attempts();
            let slot = attempts.slot(op);
            match slot.as_ref() {
                Some(a) if nonce_matches(a, nonce) => slot.take(),
                _ => None,
            }
        };
        let attempt = taken.ok_or_else(|| none_under_way(op))?;
        match attempt.kind {
            Kind::Rekey(plan) => {
                self.rekey_with(op, attempt.nonce, attempt.started_unix, plan)
                    .await
            }
            Kind::RotateRoot => self.rotate_root_with(&current, &barrier, &quorum_key).await,
            Kind::GenerateRoot { otp } => self.generate_root_with(&barrier, &otp).await,
        }
    }

    /// Makes the new shares and keeps them pending: they are committed when
    /// the receiving client confirms, or when a quorum of them is verified.
    async fn rekey_with(
        &self,
        op: Operation,
        nonce: String,
        started_unix: u64,
        mut plan: RekeyPlan,
    ) -> Result<Completed, CoreError> {
        let new_key = SecretKey::generate();
        let shares = shamir::split(&new_key, plan.shares, plan.threshold)
            .map_err(|e| CoreError::InvalidArgument(e.to_string()))?;
        let check = ShareCheck::new(&shares);
        let threshold = plan.threshold;
        // Encrypted before anything is kept.
        let armored = plan
            .recipients
            .as_deref()
            .map(|r| recipients::armor_shares(r, &shares))
            .transpose()?;
        let pending_nonce = super::init::random_uuid();
        plan.verification = Some(Verification {
            nonce: pending_nonce.clone(),
            new_key,
            check,
            entered: Vec::new(),
            by_quorum: plan.verify,
        });
        let by_quorum = plan.verify;
        *self.attempts().slot(op) = Some(Attempt {
            nonce,
            started_unix,
            last_progress: Instant::now(),
            shares: Vec::new(),
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
    pub async fn rekey_confirm(&self, confirmation_nonce: &str) -> Result<(), CoreError> {
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
    ) -> Result<(), CoreError> {
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
            Seal::AwsKms(kms) => {
                let stored_arn = self.report().key_arn.clone();
                let envelope = wrap::seal_beside(
                    kms.as_ref(),
                    Purpose::RecoveryKey,
                    &config.cluster_id,
                    new_key,
                    &stored_arn,
                )
                .await?;
                batch.put(RECOVERY_KEY_PATH, envelope.encode());
            }
        }
        self.storage.write(batch).await?;
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
    ) -> Result<QuorumOutcome, CoreError> {
        let (config, _) = self.unsealed()?;
        let op = Operation::Rekey;
        let complete = {
            let mut attempts = self.attempts();
            let attempt = attempts
                .slot(op)
                .as_mut()
                .ok_or_else(|| none_under_way(op))?;
            let Kind::Rekey(plan) = &mut attempt.kind else {
                return Err(none_under_way(op));
            };
            let threshold = plan.threshold;
            let Some(verification) = plan.verification.as_mut().filter(|v| v.by_quorum) else {
                return Err(CoreError::FailedPrecondition(
                    "the rekey under way has no new keys to verify: it needs a quorum of the current keys first, and --verify at its start".into(),
                ));
            };
            if !ct_eq(
                verification.nonce.as_bytes(),
                verification_nonce.trim().as_bytes(),
            ) {
                return Err(CoreError::InvalidArgument(
                    "the verification nonce does not match the rekey under way; it was printed with the new keys".into(),
                ));
            }
            let share = decode_share(key, verification.share_len(), "new key")?;
            if !verification.check.is_issued(share.expose()) {
                let current = config.share_check.is_issued(share.expose());
                return Err(CoreError::InvalidArgument(if current {
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

    /// Commits the pending shares of the rekey whose pending nonce is
    /// `nonce`; `verified` when a quorum of them was typed back (their
    /// combination must give the new key). Checked again under the lifecycle
    /// lock: the rekey may have been cancelled or replaced meanwhile.
    async fn commit_pending_rekey(
        &self,
        config: &SealConfig,
        nonce: &str,
        verified: bool,
    ) -> Result<(), CoreError> {
        let _lifecycle = self.lifecycle.lock().await;
        let op = Operation::Rekey;
        let attempt = {
            let mut attempts = self.attempts();
            let slot = attempts.slot(op);
            let Some(Kind::Rekey(RekeyPlan {
                verification: Some(pending),
                ..
            })) = slot.as_ref().map(|a| &a.kind)
            else {
                return Err(CoreError::FailedPrecondition(
                    "no rekey is waiting for its new keys to be confirmed or verified; nothing changed".into(),
                ));
            };
            if pending.by_quorum != verified {
                return Err(CoreError::FailedPrecondition(if pending.by_quorum {
                    "this rekey was started with --verify: a quorum of its new keys must be typed back with `strongroom rekey --verify --nonce …`"
                } else {
                    "this rekey was not started with --verify: the client that received its new keys confirms it"
                }.into()));
            }
            if !ct_eq(pending.nonce.as_bytes(), nonce.trim().as_bytes()) {
                return Err(CoreError::InvalidArgument(
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
            verification: Some(verification),
            ..
        }) = attempt.kind
        else {
            return Err(none_under_way(op));
        };
        if verified {
            // Every share passed the issued check; this guards the check itself.
            let combined = shamir::combine(&verification.entered).map_err(|_| {
                CoreError::Internal("the new keys did not combine; start the rekey again".into())
            })?;
            if !ct_eq(combined.expose(), verification.new_key.expose()) {
                return Err(CoreError::Internal(
                    "the new keys combined into a different key than the rekey made; start the rekey again".into(),
                ));
            }
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

    /// Replaces the root key: the keyring under a new root key, and the new
    /// root key under the unseal key (Shamir) or KMS, in one transaction.
    async fn rotate_root_with(
        &self,
        config: &SealConfig,
        barrier: &Barrier,
        quorum_key: &SecretKey,
    ) -> Result<Completed, CoreError> {
        let rotated = barrier.with_root_key(SecretKey::generate());
        let root_blob = match &self.seal {
            Seal::Shamir => entry::seal(
                quorum_key,
                entry::TERM_KEY_ENCRYPTION,
                ROOT_KEY_PATH,
                rotated.root_key().expose(),
            ),
            Seal::AwsKms(kms) => {
                let stored_arn = self.report().key_arn.clone();
                wrap::seal_beside(
                    kms.as_ref(),
                    Purpose::RootKey,
                    &config.cluster_id,
                    rotated.root_key(),
                    &stored_arn,
                )
                .await?
                .encode()
            }
        };
        let mut batch = Batch::new();
        batch
            .put(ROOT_KEY_PATH, root_blob)
            .put(KEYRING_PATH, rotated.sealed_keyring());
        self.storage.write(batch).await?;
        self.replace_barrier(rotated);
        tracing::info!("root key rotated: the keyring is encrypted by a new root key");
        Ok(Completed::RotatedRoot)
    }

    /// Makes a root token and returns it XORed with the pad.
    async fn generate_root_with(
        &self,
        barrier: &Barrier,
        otp: &SecretBytes,
    ) -> Result<Completed, CoreError> {
        let mut batch = Batch::new();
        let (token, entry) = token::create(barrier, &mut batch, token::Spec::root());
        barrier.write(batch).await?;
        tracing::info!(accessor = %entry.accessor, "generate-root: a new root token was made");
        Ok(Completed::GeneratedRoot {
            encoded_token: encode_token(token.expose().as_bytes(), otp.expose()),
            accessor: entry.accessor,
        })
    }
}

impl Verification {
    fn share_len(&self) -> usize {
        shamir::share_len(self.check.len() as u32)
    }
}

/// Recovers a token from generate-root's answer and the pad.
pub fn decode_token(encoded: &str, otp: &str) -> Result<SecretString, CoreError> {
    let otp = decode_otp(otp)?;
    let xored = SecretBytes::new(
        STANDARD
            .decode(encoded.trim())
            .map_err(|_| CoreError::InvalidArgument("the encoded token is not base64".into()))?,
    );
    if xored.len() != otp.len() {
        return Err(CoreError::InvalidArgument(format!(
            "the encoded token is {} bytes long, but the one-time pad is {}",
            xored.len(),
            otp.len()
        )));
    }
    let token: Vec<u8> = xored
        .expose()
        .iter()
        .zip(otp.expose())
        .map(|(x, p)| x ^ p)
        .collect();
    let token = SecretBytes::new(token);
    let text = std::str::from_utf8(token.expose()).map_err(|_| {
        CoreError::InvalidArgument(
            "the encoded token and the one-time pad do not belong together".into(),
        )
    })?;
    if !text.starts_with(token::TOKEN_PREFIX) {
        return Err(CoreError::InvalidArgument(
            "the encoded token and the one-time pad do not belong together".into(),
        ));
    }
    Ok(SecretString::new(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{InitParams, Options, Phase};
    use crate::seal::kms::Kms;
    use crate::seal::kms::testing::FakeKms;
    use crate::storage::{Backend, InmemBackend};

    struct Store {
        core: Arc<Core>,
        shares: Vec<String>,
        token: String,
    }

    async fn shamir(n: u32, t: u32) -> Store {
        let core = crate::core::testing::open_shamir(Arc::new(InmemBackend::new())).await;
        let init = core
            .init_and_confirm(InitParams::shamir(n, t))
            .await
            .unwrap();
        let shares: Vec<String> = init
            .shares
            .iter()
            .map(|s| hex::encode(s.expose()))
            .collect();
        for share in &shares[..t as usize] {
            core.unseal(share).await.unwrap();
        }
        Store {
            core,
            shares,
            token: init.root_token.expose().to_string(),
        }
    }

    fn otp() -> String {
        STANDARD.encode(crate::secret::random_bytes(OTP_LEN))
    }

    /// Enters `shares` and returns the last outcome.
    async fn enter(core: &Core, op: Operation, nonce: &str, shares: &[String]) -> QuorumOutcome {
        let mut last = None;
        for share in shares {
            last = Some(core.quorum_update(op, nonce, share).await.unwrap());
        }
        last.unwrap()
    }

    async fn reseal_with(core: &Core, token: &str, shares: &[String]) -> Result<(), CoreError> {
        core.seal(&Caller::with_token(token)).await?;
        for share in shares {
            core.unseal(share).await?;
        }
        assert_eq!(core.phase(), Phase::Unsealed);
        Ok(())
    }

    #[tokio::test]
    async fn rekey_needs_a_token_to_start_and_replaces_the_shares() {
        let store = shamir(3, 2).await;
        let core = &store.core;
        let params = RekeyParams {
            shares: Some(5),
            threshold: Some(3),
            target: None,
            verify: false,
            recipients: Vec::new(),
        };
        assert!(matches!(
            core.rekey_init(&Caller::default(), params.clone()).await,
            Err(CoreError::Unauthenticated(_))
        ));
        let started = core
            .rekey_init(&Caller::with_token(&store.token), params.clone())
            .await
            .unwrap();
        assert!(started.started && !started.nonce.is_empty());
        assert_eq!(started.required, 2);
        assert!(matches!(
            core.rekey_init(&Caller::with_token(&store.token), params)
                .await,
            Err(CoreError::FailedPrecondition(_))
        ));
        let nonce = started.nonce;
        // The nonce is shown only to a root token.
        assert_eq!(
            core.quorum_status_for(Operation::Rekey, &Caller::default())
                .await
                .nonce,
            ""
        );
        assert_eq!(
            core.quorum_status_for(Operation::Rekey, &Caller::with_token(&store.token))
                .await
                .nonce,
            nonce
        );

        let wrong = core
            .quorum_update(Operation::Rekey, "nope", &store.shares[0])
            .await;
        assert!(matches!(wrong, Err(CoreError::InvalidArgument(_))));
        let foreign = hex::encode([9u8; 33]);
        let err = core
            .quorum_update(Operation::Rekey, &nonce, &foreign)
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("never issued"), "{err}");
        let first = enter(core, Operation::Rekey, &nonce, &store.shares[..1]).await;
        assert_eq!(first.status.progress, 1);
        let again = core
            .quorum_update(Operation::Rekey, &nonce, &store.shares[0])
            .await
            .err()
            .unwrap();
        assert!(matches!(again, CoreError::InvalidArgument(_)), "{again}");
        assert!(again.to_string().contains("already entered"), "{again}");
        assert_eq!(
            core.quorum_status_for(Operation::Rekey, &Caller::default())
                .await
                .progress,
            1
        );

        let done = enter(core, Operation::Rekey, &nonce, &store.shares[1..2]).await;
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
        assert_eq!(core.status().shares, 3);
        assert!(matches!(
            core.rekey_confirm("not-it").await,
            Err(CoreError::InvalidArgument(_))
        ));
        assert!(matches!(
            core.rekey_verify_update(&confirmation, &new[0]).await,
            Err(CoreError::FailedPrecondition(_))
        ));
        core.rekey_confirm(&confirmation).await.unwrap();
        assert!(
            !core
                .quorum_status_for(Operation::Rekey, &Caller::default())
                .await
                .started,
            "the rekey is over"
        );

        // Old shares are refused from now on; three new ones unseal.
        core.seal(&Caller::with_token(&store.token)).await.unwrap();
        let err = core.unseal(&store.shares[0]).await.err().unwrap();
        assert!(err.to_string().contains("never issued"), "{err}");
        for share in &new[2..5] {
            core.unseal(share).await.unwrap();
        }
        assert_eq!(core.phase(), Phase::Unsealed);
        assert_eq!(core.status().shares, 5);
    }

    #[tokio::test]
    async fn a_verified_rekey_takes_effect_only_after_the_new_keys_are_typed_back() {
        let store = shamir(3, 2).await;
        let core = &store.core;
        let nonce = core
            .rekey_init(
                &Caller::with_token(&store.token),
                RekeyParams {
                    shares: Some(3),
                    threshold: Some(2),
                    target: None,
                    verify: true,
                    recipients: Vec::new(),
                },
            )
            .await
            .unwrap()
            .nonce;
        let done = enter(core, Operation::Rekey, &nonce, &store.shares[..2]).await;
        let Some(Completed::Rekey {
            shares,
            verification_nonce: Some(verification),
            ..
        }) = done.result
        else {
            panic!("no pending shares");
        };
        let new: Vec<String> = shares.iter().map(|s| hex::encode(s.expose())).collect();
        // Not in force yet: the old keys still work.
        assert!(
            core.quorum_status_for(Operation::Rekey, &Caller::default())
                .await
                .rekey
                .unwrap()
                .verification_required
        );
        let err = core
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
        let err = core
            .rekey_verify_update(&verification, &hex::encode(&typo))
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("not one of the new keys"), "{err}");
        let err = core
            .rekey_verify_update(&verification, &store.shares[0])
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("one of the current keys"), "{err}");
        assert!(matches!(
            core.rekey_verify_update("wrong", &new[0]).await,
            Err(CoreError::InvalidArgument(_))
        ));
        let one = core
            .rekey_verify_update(&verification, &new[0])
            .await
            .unwrap();
        assert!(one.result.is_none());
        assert_eq!(one.status.rekey.unwrap().verification_progress, 1);
        let two = core
            .rekey_verify_update(&verification, &new[2])
            .await
            .unwrap();
        assert!(matches!(two.result, Some(Completed::Verified)));
        reseal_with(core, &store.token, &new[..2]).await.unwrap();
        core.seal(&Caller::with_token(&store.token)).await.unwrap();
        assert!(core.unseal(&store.shares[1]).await.is_err());
    }

    #[tokio::test]
    async fn a_cancelled_or_unverified_rekey_leaves_the_old_keys() {
        let store = shamir(3, 2).await;
        let core = &store.core;
        let params = RekeyParams {
            shares: None,
            threshold: None,
            target: Some(RekeyTarget::Recovery),
            verify: true,
            recipients: Vec::new(),
        };
        let err = core
            .rekey_init(&Caller::with_token(&store.token), params.clone())
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("has no recovery keys"), "{err}");
        let nonce = core
            .rekey_init(
                &Caller::with_token(&store.token),
                RekeyParams {
                    target: None,
                    ..params
                },
            )
            .await
            .unwrap()
            .nonce;
        enter(core, Operation::Rekey, &nonce, &store.shares[..2]).await;
        assert!(matches!(
            core.quorum_cancel(Operation::Rekey, &Caller::with_token(&store.token), "other")
                .await,
            Err(CoreError::InvalidArgument(_))
        ));
        assert!(matches!(
            core.quorum_cancel(Operation::Rekey, &Caller::default(), &nonce)
                .await,
            Err(CoreError::Unauthenticated(_))
        ));
        core.quorum_cancel(Operation::Rekey, &Caller::with_token(&store.token), &nonce)
            .await
            .unwrap();
        assert!(
            !core
                .quorum_status_for(Operation::Rekey, &Caller::default())
                .await
                .started
        );
        reseal_with(core, &store.token, &store.shares[1..3])
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn an_unconfirmed_rekey_leaves_the_old_keys() {
        let store = shamir(3, 2).await;
        let core = &store.core;
        let nonce = core
            .rekey_init(
                &Caller::with_token(&store.token),
                RekeyParams {
                    shares: Some(2),
                    threshold: Some(2),
                    target: None,
                    verify: false,
                    recipients: Vec::new(),
                },
            )
            .await
            .unwrap()
            .nonce;
        let done = enter(core, Operation::Rekey, &nonce, &store.shares[..2]).await;
        assert!(matches!(done.result, Some(Completed::Rekey { .. })));
        // The answer was lost: no confirmation. A seal forgets the rekey.
        reseal_with(core, &store.token, &store.shares[1..3])
            .await
            .unwrap();
        assert!(
            !core
                .quorum_status_for(Operation::Rekey, &Caller::default())
                .await
                .started
        );
        assert_eq!(core.status().shares, 3);
    }

    #[tokio::test]
    async fn rotate_root_keeps_the_shares_and_the_data() {
        let store = shamir(3, 2).await;
        let core = &store.core;
        core.barrier().unwrap().put("test/a", b"x").await.unwrap();
        let old_root = core.barrier().unwrap().root_key().clone();
        let nonce = core
            .rotate_root_init(&Caller::with_token(&store.token))
            .await
            .unwrap()
            .nonce;
        let done = enter(core, Operation::RotateRoot, &nonce, &store.shares[1..3]).await;
        assert!(matches!(done.result, Some(Completed::RotatedRoot)));
        assert!(!ct_eq(
            core.barrier().unwrap().root_key().expose(),
            old_root.expose()
        ));
        reseal_with(core, &store.token, &store.shares[..2])
            .await
            .unwrap();
        assert_eq!(
            core.barrier()
                .unwrap()
                .get("test/a")
                .await
                .unwrap()
                .unwrap()
                .expose(),
            b"x"
        );
    }

    #[tokio::test]
    async fn generate_root_makes_a_working_token_behind_a_pad() {
        let store = shamir(3, 2).await;
        let core = &store.core;
        let err = core.generate_root_init("c2hvcnQ=").await.err().unwrap();
        assert_eq!(
            err.to_string(),
            "the one-time pad is 5 bytes long, but it must be 35 (as long as a token)"
        );
        let pad = otp();
        let started = core.generate_root_init(&pad).await.unwrap();
        assert!(matches!(
            core.generate_root_init(&otp()).await,
            Err(CoreError::FailedPrecondition(_))
        ));
        let done = enter(
            core,
            Operation::GenerateRoot,
            &started.nonce,
            &store.shares[..2],
        )
        .await;
        let Some(Completed::GeneratedRoot {
            encoded_token,
            accessor,
        }) = done.result
        else {
            panic!("no token");
        };
        let token = decode_token(&encoded_token, &pad).unwrap();
        core.authorize(
            &Caller::with_token(token.expose()),
            "sys/seal",
            Capability::Sudo,
        )
        .await
        .unwrap();
        assert_eq!(accessor.len(), 24);
        assert!(decode_token(&encoded_token, &otp()).is_err(), "another pad");
    }

    #[tokio::test]
    async fn awskms_rekeys_recovery_keys_and_rotates_the_root_key_under_kms() {
        let storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
        let kms = Arc::new(FakeKms::new());
        let core = Core::open(
            Arc::clone(&storage),
            Seal::AwsKms(Arc::clone(&kms) as Arc<dyn Kms>),
            Options::default(),
        )
        .await
        .unwrap();
        let init = core
            .init_and_confirm(InitParams::recovery(3, 2))
            .await
            .unwrap();
        let token = init.root_token.expose().to_string();
        let recovery: Vec<String> = init
            .shares
            .iter()
            .map(|s| hex::encode(s.expose()))
            .collect();
        let err = core
            .rekey_init(
                &Caller::with_token(&token),
                RekeyParams {
                    shares: None,
                    threshold: None,
                    target: Some(RekeyTarget::Barrier),
                    verify: false,
                    recipients: Vec::new(),
                },
            )
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("has no unseal keys"), "{err}");

        let nonce = core
            .rekey_init(
                &Caller::with_token(&token),
                RekeyParams {
                    shares: Some(4),
                    threshold: Some(2),
                    target: None,
                    verify: false,
                    recipients: Vec::new(),
                },
            )
            .await
            .unwrap()
            .nonce;
        let before = kms.calls().len();
        let done = enter(&core, Operation::Rekey, &nonce, &recovery[..2]).await;
        let Some(Completed::Rekey {
            shares,
            confirmation_nonce: Some(confirmation),
            ..
        }) = done.result
        else {
            panic!("no new recovery keys");
        };
        core.rekey_confirm(&confirmation).await.unwrap();
        assert_eq!(
            kms.calls()[before..],
            ["Decrypt", "Encrypt", "Decrypt"],
            "check the quorum, wrap the new recovery key, check it opens"
        );
        let new: Vec<String> = shares.iter().map(|s| hex::encode(s.expose())).collect();

        let nonce = core
            .rotate_root_init(&Caller::with_token(&token))
            .await
            .unwrap()
            .nonce;
        let err = core
            .quorum_update(Operation::RotateRoot, &nonce, &recovery[0])
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("never issued"), "{err}");
        let done = enter(&core, Operation::RotateRoot, &nonce, &new[1..3]).await;
        assert!(matches!(done.result, Some(Completed::RotatedRoot)));

        // The configured key moved before the rewrap: a rotation now would
        // split the store across two keys, so it is refused and writes nothing.
        let stored = kms.current_arn();
        let before = storage.export().await.unwrap();
        kms.switch_to_new_key();
        let nonce = core
            .rotate_root_init(&Caller::with_token(&token))
            .await
            .unwrap()
            .nonce;
        core.quorum_update(Operation::RotateRoot, &nonce, &new[0])
            .await
            .unwrap();
        let err = core
            .quorum_update(Operation::RotateRoot, &nonce, &new[1])
            .await
            .err()
            .unwrap();
        assert!(matches!(err, CoreError::FailedPrecondition(_)), "{err}");
        assert!(err.to_string().contains(&stored), "{err}");
        assert_eq!(storage.export().await.unwrap(), before);
        kms.switch_back_to(&stored);

        // A restart unseals with KMS alone, under the new root key.
        let restarted = Core::open(storage, Seal::AwsKms(kms.clone()), Options::default())
            .await
            .unwrap();
        restarted.auto_unseal_once(kms.as_ref()).await.ok().unwrap();
        restarted
            .authorize(&Caller::with_token(&token), "sys/seal", Capability::Sudo)
            .await
            .unwrap();
    }
}
