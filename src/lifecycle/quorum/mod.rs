//! Operations that need a quorum of the store's shares (unseal keys with the
//! Shamir seal, recovery keys with awskms), gathered over several calls tied
//! together by a nonce, as `vault operator rekey` does:
//!
//! - `rekey`: new shares with a new count and threshold (the unseal keys,
//!   or the recovery keys with awskms). The new shares take effect only once
//!   it is known that someone holds them: the client that received them
//!   confirms (`RekeyConfirm`, which the CLI sends as soon as it has printed
//!   them), or, with `verify`, a quorum of them is typed back. A crash or a
//!   lost answer before that leaves the old shares in force, so no rekey can
//!   leave a store whose shares nobody has;
//! - `rotate_root`: a new root key re-encrypts the keyring;
//! - `generate_root`: a new root token, returned XORed with a one-time pad
//!   the client made, so it never crosses the wire in the clear.
//!
//! Who may do what is the gate's: rekey and rotate-root need `sudo` on
//! `sys/rekey` or `sys/rotate-root` to start and to cancel (an
//! unauthenticated start was a denial-of-service hole in Vault and OpenBao,
//! HCSEC-2026-08); entering a share needs only the nonce, as share holders
//! often have no token. Generate-root needs no token at all (that is its
//! point); its nonce is needed to cancel it. One operation of each kind at a
//! time; one that has seen no share for `STALE_AFTER` can be replaced.
//!
//! Because anyone may start a generate-root, an attempt that holds no valid
//! share can be replaced by any new one, and a start may carry one of the
//! store's shares (`claim`), which makes the attempt hold one: a caller
//! without a share can neither block the operators (their start replaces
//! its attempt) nor replace an attempt that has seen a share.
//!
//! Every change a quorum makes is one storage transaction, after every KMS
//! call it needs: a crash leaves the old keys or the new ones in force.

mod generate_root;
mod rekey;
mod rotate_root;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use rekey::{RekeyParams, RekeyStatus, RekeyTarget};

use super::seal_config::SealConfig;
use super::unseal::{add_share, issued_share, share_noun};
use super::{Lifecycle, State};
use crate::barrier::Barrier;
use crate::error::Error;
use crate::failpoint;
use crate::seal::Seal;
use crate::secret::{SecretBytes, ct_eq, random_uuid};
use crate::time::now_unix;

/// An operation that has seen no share for this long may be replaced by a
/// new one (so a forgotten generate-root, whose nonce may be lost, cannot
/// block the next one for ever).
const STALE_AFTER: Duration = Duration::from_secs(15 * 60);

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
    /// Started with a valid share (generate-root's claim); not counted.
    claimed: bool,
    kind: Kind,
}

impl Attempt {
    /// Whether someone who holds a share has taken part.
    fn has_share(&self) -> bool {
        self.claimed || !self.shares.is_empty()
    }
}

enum Kind {
    Rekey(rekey::RekeyPlan),
    RotateRoot,
    GenerateRoot { otp: SecretBytes },
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

    /// The operation of kind `op` under way, or the sentence saying none is.
    fn under_way(&mut self, op: Operation) -> Result<&mut Attempt, Error> {
        self.slot(op).as_mut().ok_or_else(|| none_under_way(op))
    }

    /// Forgets every operation (at seal): their shares go with them.
    pub(super) fn clear(&mut self) {
        *self = Self::default();
    }

    /// No operation is under way.
    pub(super) fn is_empty(&self) -> bool {
        self.rekey.is_none() && self.rotate_root.is_none() && self.generate_root.is_none()
    }
}

fn nonce_matches(attempt: &Attempt, nonce: &str) -> bool {
    ct_eq(attempt.nonce.as_bytes(), nonce.trim().as_bytes())
}

fn wrong_nonce(op: Operation) -> Error {
    Error::InvalidArgument(format!(
        "the nonce does not match the {} under way; `strongroom {} --status` shows it to a caller with sudo",
        op.command(),
        op.command()
    ))
}

fn duplicate_share(op: Operation) -> Error {
    Error::InvalidArgument(format!(
        "this key was already entered for the {} under way; progress is unchanged",
        op.command()
    ))
}

fn none_under_way(op: Operation) -> Error {
    Error::FailedPrecondition(format!(
        "no {} is under way (one in progress is cancelled, with its keys, when the daemon seals or restarts, or when another node becomes the active one); start one with `strongroom {} --init`",
        op.command(),
        op.command()
    ))
}

impl Lifecycle {
    pub(super) fn attempts(&self) -> std::sync::MutexGuard<'_, Attempts> {
        self.attempts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The seal config and barrier, for an operation that needs both.
    fn unsealed(&self) -> Result<(Arc<SealConfig>, Arc<Barrier>), Error> {
        match &*self.read() {
            State::Unsealed { config, barrier } => Ok((Arc::clone(config), Arc::clone(barrier))),
            State::Standby { .. } => Err(self.standby_error()),
            State::Sealed { .. } => Err(Error::Sealed),
            State::Uninitialized => Err(Error::NotInitialized),
        }
    }

    /// Starts `op`, replacing one under way that has seen no share for
    /// [`STALE_AFTER`], or (generate-root, which anyone may start) one
    /// that holds no valid share. `claimed`: the start came with a valid
    /// share.
    fn start(&self, op: Operation, kind: Kind, claimed: bool) -> Result<QuorumStatus, Error> {
        let mut attempts = self.attempts();
        let slot = attempts.slot(op);
        if let Some(running) = slot.as_ref() {
            let stale = running.last_progress.elapsed() >= STALE_AFTER;
            let open = op == Operation::GenerateRoot && !running.has_share();
            if !stale && !open {
                return Err(Error::FailedPrecondition(match op {
                    Operation::GenerateRoot => "a generate-root that has seen one of this store's keys is already under way; finish it, or cancel it with `strongroom generate-root --cancel --nonce …`".into(),
                    _ => format!(
                        "a {} is already under way; finish it, or cancel it with `strongroom {} --cancel --nonce …`",
                        op.command(),
                        op.command()
                    ),
                }));
            }
            tracing::warn!(
                operation = op.command(),
                why = if stale {
                    "it saw no key for 15 minutes"
                } else {
                    "it holds no key"
                },
                "replacing an operation under way"
            );
        }
        *slot = Some(Attempt {
            nonce: random_uuid(),
            started_unix: now_unix(),
            last_progress: Instant::now(),
            shares: Vec::new(),
            claimed,
            kind,
        });
        tracing::info!(
            operation = op.command(),
            claimed,
            "quorum operation started"
        );
        drop(attempts);
        Ok(self.quorum_status(op, true))
    }

    /// Ends an operation; its nonce must match.
    pub fn quorum_cancel(&self, op: Operation, nonce: &str) -> Result<(), Error> {
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

    /// Where an operation stands; its nonces are shown only when
    /// `show_nonce` (the caller has `sudo` on the operation's path).
    pub fn quorum_status(&self, op: Operation, show_nonce: bool) -> QuorumStatus {
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
                Kind::Rekey(plan) => Some(plan.status(hide)),
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
    ) -> Result<QuorumOutcome, Error> {
        let (config, _) = self.unsealed()?;
        let share = {
            // Checked before it is held anywhere: a share of the wrong kind,
            // or one never issued, is named and changes nothing.
            let mut attempts = self.attempts();
            let attempt = attempts.under_way(op)?;
            if !nonce_matches(attempt, nonce) {
                return Err(wrong_nonce(op));
            }
            if let Kind::Rekey(plan) = &attempt.kind {
                plan.check_takes_current_keys(key)?;
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
    /// under the key operations' lock.
    async fn run_quorum(
        &self,
        op: Operation,
        nonce: &str,
        config: &SealConfig,
        shares: Vec<SecretBytes>,
    ) -> Result<Completed, Error> {
        let _key_ops = self.key_ops.lock().await;
        let (current, barrier) = self.unsealed()?;
        if current.share_check != config.share_check {
            return Err(Error::FailedPrecondition(
                "the shares in force changed while the keys were entered; start again".into(),
            ));
        }
        // The key the shares combine into: the unseal key (Shamir) or the
        // recovery key (awskms), checked against what is stored.
        let quorum_key = match &self.seal {
            Seal::Shamir => {
                let (unseal_key, root_key) = self.check_unseal_quorum(&shares).await?;
                if !ct_eq(root_key.expose(), barrier.root_key().expose()) {
                    return Err(Error::Internal(
                        "the unseal keys opened a different root key than the one in use; the stored seal data may be damaged".into(),
                    ));
                }
                unseal_key
            }
            Seal::AwsKms(_) | Seal::Multi(_) => {
                self.check_recovery_quorum(None, config, &shares).await?
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
                self.rekey_with(op, attempt.nonce, attempt.started_unix, plan, &quorum_key)
                    .await
            }
            Kind::RotateRoot => self.rotate_root_with(&current, &barrier, &quorum_key).await,
            Kind::GenerateRoot { otp } => self.generate_root_with(&barrier, &otp).await,
        }
    }
}

/// Set-ups shared by the tests of the quorum operations.
#[cfg(test)]
mod testing {
    use std::sync::Arc;

    use super::{Operation, QuorumOutcome};
    use crate::error::Error;
    use crate::lifecycle::{InitParams, Lifecycle, Phase};
    use crate::storage::InmemBackend;

    /// An unsealed Shamir store, its shares in hex and its root token.
    pub struct Store {
        pub lifecycle: Arc<Lifecycle>,
        pub shares: Vec<String>,
    }

    pub async fn shamir(n: u32, t: u32) -> Store {
        let lifecycle = crate::lifecycle::testing::open_shamir(Arc::new(InmemBackend::new())).await;
        let init = lifecycle
            .init_and_confirm(InitParams::shamir(n, t))
            .await
            .unwrap();
        let shares: Vec<String> = init
            .shares
            .iter()
            .map(|s| hex::encode(s.expose()))
            .collect();
        for share in &shares[..t as usize] {
            lifecycle.unseal(share).await.unwrap();
        }
        Store { lifecycle, shares }
    }

    /// Enters `shares` and returns the last outcome.
    pub async fn enter(
        lifecycle: &Lifecycle,
        op: Operation,
        nonce: &str,
        shares: &[String],
    ) -> QuorumOutcome {
        let mut last = None;
        for share in shares {
            last = Some(lifecycle.quorum_update(op, nonce, share).await.unwrap());
        }
        last.unwrap()
    }

    /// Seals, then unseals with `shares`.
    pub async fn reseal_with(lifecycle: &Lifecycle, shares: &[String]) -> Result<(), Error> {
        lifecycle.seal().await;
        for share in shares {
            lifecycle.unseal(share).await?;
        }
        assert_eq!(lifecycle.phase(), Phase::Unsealed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::token;
    use crate::lifecycle::{InitParams, Options, RekeyParams};
    use crate::seal::kms::Kms;
    use crate::seal::kms::testing::FakeKms;
    use crate::storage::{Backend, InmemBackend};
    use testing::enter;

    #[tokio::test]
    async fn awskms_rekeys_recovery_keys_and_rotates_the_root_key_under_kms() {
        let storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
        let kms = Arc::new(FakeKms::new());
        let lifecycle = Lifecycle::open(
            Arc::clone(&storage),
            Seal::AwsKms(Arc::clone(&kms) as Arc<dyn Kms>),
            Options::default(),
            Vec::new(),
        )
        .await
        .unwrap();
        let init = lifecycle
            .init_and_confirm(InitParams::recovery(3, 2))
            .await
            .unwrap();
        let token = init.root_token.expose().to_string();
        let recovery: Vec<String> = init
            .shares
            .iter()
            .map(|s| hex::encode(s.expose()))
            .collect();
        let err = lifecycle
            .rekey_init(RekeyParams {
                shares: None,
                threshold: None,
                target: Some(RekeyTarget::Barrier),
                verify: false,
                recipients: Vec::new(),
            })
            .err()
            .unwrap();
        assert!(err.to_string().contains("has no unseal keys"), "{err}");

        let nonce = lifecycle
            .rekey_init(RekeyParams {
                shares: Some(4),
                threshold: Some(2),
                target: None,
                verify: false,
                recipients: Vec::new(),
            })
            .unwrap()
            .nonce;
        let before = kms.calls().len();
        let done = enter(&lifecycle, Operation::Rekey, &nonce, &recovery[..2]).await;
        let Some(Completed::Rekey {
            shares,
            confirmation_nonce: Some(confirmation),
            ..
        }) = done.result
        else {
            panic!("no new recovery keys");
        };
        lifecycle.rekey_confirm(&confirmation).await.unwrap();
        assert_eq!(
            kms.calls()[before..],
            ["Decrypt", "Encrypt", "Decrypt"],
            "check the quorum, wrap the new recovery key, check it opens"
        );
        let new: Vec<String> = shares.iter().map(|s| hex::encode(s.expose())).collect();

        let nonce = lifecycle.rotate_root_init().unwrap().nonce;
        let err = lifecycle
            .quorum_update(Operation::RotateRoot, &nonce, &recovery[0])
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("never issued"), "{err}");
        let done = enter(&lifecycle, Operation::RotateRoot, &nonce, &new[1..3]).await;
        assert!(matches!(done.result, Some(Completed::RotatedRoot)));

        // The configured key moved before the rewrap: a rotation now would
        // split the store across two keys, so it is refused and writes nothing.
        let stored = kms.current_arn();
        let before = storage.export().await.unwrap();
        kms.switch_to_new_key();
        let nonce = lifecycle.rotate_root_init().unwrap().nonce;
        lifecycle
            .quorum_update(Operation::RotateRoot, &nonce, &new[0])
            .await
            .unwrap();
        let err = lifecycle
            .quorum_update(Operation::RotateRoot, &nonce, &new[1])
            .await
            .err()
            .unwrap();
        assert!(matches!(err, Error::FailedPrecondition(_)), "{err}");
        assert!(err.to_string().contains(&stored), "{err}");
        assert_eq!(storage.export().await.unwrap(), before);
        kms.switch_back_to(&stored);

        // A restart unseals with KMS alone, under the new root key.
        let restarted = Lifecycle::open(
            storage,
            Seal::AwsKms(kms.clone()),
            Options::default(),
            Vec::new(),
        )
        .await
        .unwrap();
        restarted.auto_unseal_once().await.ok().unwrap();
        // The root token made at init still reads under the new root key.
        let found = token::lookup(&restarted.barrier().unwrap(), Some(&token))
            .await
            .unwrap();
        assert!(found.entry.is_root());
    }
}
