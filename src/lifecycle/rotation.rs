//! The keyring's life while unsealed: rotation (by an operator or by the
//! rotation policy), `key-status`, and the encryption counts behind both.
//!
//! AES-GCM with random 96-bit nonces stays safe for about 2^32 encryptions
//! under one key, so every encryption is counted per term. The count of the
//! active term is persisted as a reservation (`barrier::USAGE_PATH`): the
//! stored number runs ahead of the real one by up to a window, and is renewed
//! when the real count comes within half a window of it. A crash can only
//! make strongroom believe more encryptions happened than did, never fewer.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Lifecycle, Phase, State};
use crate::barrier::{Barrier, KEYRING_PATH, TermUsage};
use crate::config::MAX_ROTATION_ENCRYPTIONS;
use crate::error::Error;
use crate::failpoint;
use crate::storage::Batch;
use crate::time::now_unix;

/// How often the counts and the policy are looked at while unsealed.
const TICK: Duration = Duration::from_secs(1);
/// The reservation made when sealing, which in-flight requests may still use.
const SEAL_RESERVE: u64 = 1024;
/// Plain marker written by a snapshot restore: the restored active term may
/// have encrypted more after the snapshot than its count says, so the first
/// unseal after a restore starts a new term.
pub(super) const RESTORED_PATH: &str = "core/restored";

/// When the keyring rotates by itself (the config's `barrier` block).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationPolicy {
    /// Rotate once the active term has made this many encryptions.
    pub max_encryptions: u64,
    /// Rotate once the active term is this old; `None`: never by age.
    pub interval: Option<Duration>,
}

impl Default for RotationPolicy {
    fn default() -> Self {
        Self {
            max_encryptions: MAX_ROTATION_ENCRYPTIONS,
            interval: None,
        }
    }
}

impl RotationPolicy {
    /// How far ahead of the real count the stored one runs: small against
    /// the limit (at most 2^20, a 0.03 % of the default limit).
    fn reserve_window(&self) -> u64 {
        (self.max_encryptions / 1024).clamp(1, 1 << 20)
    }

    /// Why the active term must be replaced now, if it must.
    fn due(&self, encryptions: u64, installed_unix: u64) -> Option<String> {
        if encryptions >= self.max_encryptions {
            return Some(format!(
                "the active term made {encryptions} encryptions (rotation_max_encryptions is {})",
                self.max_encryptions
            ));
        }
        let interval = self.interval?;
        let age = now_unix().saturating_sub(installed_unix);
        (age >= interval.as_secs()).then(|| {
            format!(
                "the active term is {age} s old (rotation_interval is {} s)",
                interval.as_secs()
            )
        })
    }
}

/// One keyring term, as `key-status` and `rotate` report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTerm {
    /// The term number.
    pub term: u32,
    /// When it was installed, Unix seconds.
    pub installed_unix: u64,
    /// Encryptions made under it (the active term: so far).
    pub encryptions: u64,
    /// It encrypts new writes.
    pub active: bool,
}

impl From<TermUsage> for KeyTerm {
    fn from(t: TermUsage) -> Self {
        let TermUsage {
            term,
            installed_unix,
            encryptions,
            active,
        } = t;
        Self {
            term,
            installed_unix,
            encryptions,
            active,
        }
    }
}

/// What `key-status` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    /// Every term, oldest first.
    pub terms: Vec<KeyTerm>,
    /// The policy in force.
    pub policy: RotationPolicy,
}

impl Lifecycle {
    /// Starts a new keyring term, as an operator asked. Returns the new term.
    pub async fn rotate(&self) -> Result<KeyTerm, Error> {
        self.rotate_keyring("requested by an operator").await
    }

    /// The keyring's terms and the rotation policy.
    pub fn key_status(&self) -> Result<KeyStatus, Error> {
        Ok(KeyStatus {
            terms: self
                .barrier()?
                .term_usage()
                .into_iter()
                .map(KeyTerm::from)
                .collect(),
            policy: self.rotation,
        })
    }

    /// Adds a term, writes the keyring and the counts in one batch, and puts
    /// the new keyring in force.
    async fn rotate_keyring(&self, reason: &str) -> Result<KeyTerm, Error> {
        let _key_ops = self.key_ops.lock().await;
        failpoint::scope("rotate", self.rotate_locked(reason)).await
    }

    async fn rotate_locked(&self, reason: &str) -> Result<KeyTerm, Error> {
        let barrier = self.barrier()?;
        tracing::info!(reason, "keyring rotation started");
        let rotated = barrier.with_new_term();
        let mut batch = Batch::new();
        batch.put(KEYRING_PATH, rotated.sealed_keyring());
        let recorded = rotated.record_usage(&mut batch, self.rotation.reserve_window());
        // A restore's marker goes with the rotation it asked for.
        batch.delete(RESTORED_PATH);
        rotated.write(batch).await?;
        let (term, installed_unix) = rotated.active_term();
        self.usage_recorded.store(recorded, Ordering::Relaxed);
        self.replace_barrier(rotated);
        tracing::info!(term, reason, "keyring rotated: new writes use the new term");
        Ok(KeyTerm {
            term,
            installed_unix,
            encryptions: 0,
            active: true,
        })
    }

    /// Puts a barrier with new keys in force; requests under way finish with
    /// the one they hold.
    pub(super) fn replace_barrier(&self, new: Barrier) {
        if let State::Unsealed { barrier, .. } = &mut *self.write() {
            *barrier = Arc::new(new);
        }
    }

    /// Runs for the life of the process: after each unseal, rotates if a
    /// restore asked for it; while unsealed, renews the count reservation
    /// and applies the rotation policy once a second.
    pub async fn drive_keyring(self: Arc<Self>) {
        let mut phase = self.subscribe();
        loop {
            if phase.wait_for(|p| *p == Phase::Unsealed).await.is_err() {
                return;
            }
            // The count resumed from the stored reservation.
            if let Ok(barrier) = self.barrier() {
                self.usage_recorded
                    .store(barrier.encryptions(), Ordering::Relaxed);
            }
            self.rotate_if_restored().await;
            loop {
                tokio::select! {
                    () = tokio::time::sleep(TICK) => self.keyring_tick().await,
                    closed = async { phase.wait_for(|p| *p != Phase::Unsealed).await.is_err() } => {
                        if closed {
                            return;
                        }
                        break;
                    }
                }
            }
        }
    }

    async fn rotate_if_restored(&self) {
        match self.storage.get(RESTORED_PATH).await {
            Ok(Some(_)) => {
                if let Err(e) = self
                    .rotate_keyring("first unseal after a snapshot restore")
                    .await
                {
                    tracing::warn!(error = %e, "could not rotate the keyring after a restore; will retry at the next unseal");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not check for a restore marker"),
        }
    }

    async fn keyring_tick(&self) {
        let Ok(barrier) = self.barrier() else { return };
        let (_, installed_unix) = barrier.active_term();
        if let Some(reason) = self.rotation.due(barrier.encryptions(), installed_unix) {
            if let Err(e) = self.rotate_keyring(&format!("automatic: {reason}")).await {
                tracing::error!(error = %e, "automatic keyring rotation failed; will retry");
            }
            return;
        }
        let window = self.rotation.reserve_window();
        let recorded = self.usage_recorded.load(Ordering::Relaxed);
        if barrier.encryptions().saturating_add(window / 2) >= recorded {
            // Busy means a rotation or quorum operation, which records too.
            let Ok(_key_ops) = self.key_ops.try_lock() else {
                return;
            };
            // Read again under the lock: a rotation may have committed a new
            // term since, and recording the old one would drop its count.
            let Ok(barrier) = self.barrier() else { return };
            if let Err(e) = self.record_usage(&barrier, window).await {
                tracing::warn!(error = %e, "could not record the keyring's encryption count; will retry");
            }
        }
    }

    /// Writes the counts with `reserve` encryptions ahead. Call with the
    /// key operations' lock held, so a rotation cannot interleave.
    async fn record_usage(&self, barrier: &Barrier, reserve: u64) -> Result<(), Error> {
        let mut batch = Batch::new();
        let recorded = barrier.record_usage(&mut batch, reserve);
        barrier.write(batch).await?;
        self.usage_recorded.store(recorded, Ordering::Relaxed);
        Ok(())
    }

    /// Records the counts of `barrier`, just sealed, with a small reserve
    /// for requests still finishing, so the next unseal resumes close to
    /// the real count. Skipped if a key operation holds its lock (the
    /// stored reservation is then still ahead).
    pub(super) async fn record_usage_at_seal(&self, barrier: &Barrier) {
        let Ok(_key_ops) = self.key_ops.try_lock() else {
            return;
        };
        if let Err(e) = self.record_usage(barrier, SEAL_RESERVE).await {
            tracing::warn!(error = %e, "could not record the keyring's encryption count at seal");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Options;
    use crate::seal::Seal;
    use crate::storage::{Backend, InmemBackend};

    async fn unsealed(policy: RotationPolicy) -> Arc<Lifecycle> {
        let storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
        let lifecycle = Lifecycle::open(
            Arc::clone(&storage),
            Seal::Shamir,
            Options {
                rotation: policy,
                ..Options::default()
            },
            Vec::new(),
        )
        .await
        .unwrap();
        crate::lifecycle::testing::unsealed_one_of_one(&lifecycle).await;
        lifecycle
    }

    #[test]
    fn the_policy_says_when_and_why() {
        let policy = RotationPolicy {
            max_encryptions: 10,
            interval: Some(Duration::from_secs(60)),
        };
        assert_eq!(policy.due(9, now_unix()), None);
        assert!(
            policy
                .due(10, now_unix())
                .unwrap()
                .contains("10 encryptions")
        );
        assert!(policy.due(0, now_unix() - 61).unwrap().contains("61 s old"));
        assert_eq!(RotationPolicy::default().reserve_window(), 1 << 20);
        assert_eq!(policy.reserve_window(), 1);
    }

    #[tokio::test]
    async fn rotate_starts_a_term_and_older_entries_still_read() {
        let lifecycle = unsealed(RotationPolicy::default()).await;
        lifecycle
            .barrier()
            .unwrap()
            .put("test/a", b"term 1")
            .await
            .unwrap();
        let term = lifecycle.rotate().await.unwrap();
        assert_eq!((term.term, term.active), (2, true));
        let status = lifecycle.key_status().unwrap();
        assert_eq!(status.terms.len(), 2);
        assert!(status.terms[1].active);
        // Written under term 1, still read.
        let barrier = lifecycle.barrier().unwrap();
        assert_eq!(
            barrier.get("test/a").await.unwrap().unwrap().expose(),
            b"term 1"
        );
    }

    #[tokio::test]
    async fn the_policy_rotates_and_counts_survive_a_seal() {
        let lifecycle = unsealed(RotationPolicy {
            max_encryptions: 5,
            interval: None,
        })
        .await;
        let barrier = lifecycle.barrier().unwrap();
        for i in 0..5 {
            barrier.encrypt(&format!("kv/{i}"), b"x");
        }
        lifecycle.keyring_tick().await;
        let status = lifecycle.key_status().unwrap();
        assert_eq!(status.terms.len(), 2, "rotated at the limit");
        assert!(status.terms[0].encryptions >= 5);

        lifecycle.barrier().unwrap().encrypt("kv/a", b"x");
        let before = lifecycle.barrier().unwrap().encryptions();
        lifecycle.seal().await;
        assert_eq!(lifecycle.phase(), Phase::Sealed);
        let barrier = Barrier::unlock(Arc::clone(&lifecycle.storage), barrier.root_key().clone())
            .await
            .unwrap();
        let resumed = barrier.encryptions();
        assert!(
            resumed > before,
            "{resumed} resumes from the reservation, ahead of {before}"
        );
        assert!(resumed <= before + 1 + SEAL_RESERVE);
    }
}
