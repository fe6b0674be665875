//! Several seals while unsealed: each seal's key is checked on its own
//! schedule (its `health_check_interval`, sooner with backoff after a
//! failure), on the active node and on standbys alike, and the active node
//! rewraps (`rewrap.rs`) until every enabled seal is fully wrapped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::error::Error;
use crate::lifecycle::auto_unseal::backoff;
use crate::lifecycle::{Lifecycle, Phase};
use crate::seal::kms::KeyState;
use crate::seal::set::{Member, SealSet};

/// How soon a rewrap that did not complete is tried again, at most.
const RETRY_CAP: Duration = Duration::from_secs(60);

impl Lifecycle {
    /// The background work of several seals for the life of the process:
    /// auto-unseal whenever sealed and armed, then, while unsealed or
    /// standing by, the per-seal health checks and (active) the rewraps.
    pub(in crate::lifecycle) async fn drive_seal_set(self: Arc<Self>, set: Arc<SealSet>) {
        let mut phase = self.subscribe();
        loop {
            let current = *phase.borrow_and_update();
            match current {
                Phase::Sealed if self.auto_unseal_armed() => {
                    self.auto_unseal_with_retries(&mut phase).await;
                }
                Phase::Unsealed | Phase::Standby => {
                    if !self.watch_seals(&set, &mut phase, current).await {
                        return;
                    }
                }
                Phase::Uninitialized | Phase::Sealed => {
                    if phase.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// While in `watching` (unsealed or standing by): checks each seal when
    /// it is due; the active node also rewraps until every enabled seal is
    /// fully wrapped. Returns false when the process is ending, true once
    /// the phase changed.
    async fn watch_seals(
        &self,
        set: &SealSet,
        phase: &mut watch::Receiver<Phase>,
        watching: Phase,
    ) -> bool {
        let active = watching == Phase::Unsealed;
        let now = Instant::now();
        let mut due: Vec<Option<Instant>> = set
            .members()
            .iter()
            // A disabled seal may name no key (Decrypt needs none): nothing to check.
            .map(|m| {
                (!m.health_check_interval.is_zero() && !m.kms.key_id().is_empty())
                    .then(|| now + m.health_check_interval)
            })
            .collect();
        let mut rewrap_due = active.then_some(now);
        let mut rewrap_failures = 0;
        loop {
            let next = due.iter().flatten().chain(&rewrap_due).min().copied();
            let wait = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = wait => {}
                () = self.rewrap_wanted.notified(), if active => {
                    rewrap_due = Some(Instant::now());
                }
                closed = async { phase.wait_for(|p| *p != watching).await.is_err() } => {
                    return !closed;
                }
            }
            let now = Instant::now();
            let mut recovered = false;
            let mut checked = false;
            for (member, due) in set.members().iter().zip(due.iter_mut()) {
                if due.is_some_and(|at| at <= now) {
                    let was_healthy = member.health().healthy();
                    check_key(member).await;
                    checked = true;
                    let health = member.health();
                    recovered |= !was_healthy && health.healthy();
                    let wait = if health.healthy() {
                        member.health_check_interval
                    } else {
                        backoff(health.failures, true).min(member.health_check_interval)
                    };
                    *due = Some(Instant::now() + wait);
                }
            }
            if !active {
                // A standby's Status follows what the active node wrote.
                if checked {
                    self.refresh_wrapped(set).await;
                }
                continue;
            }
            if recovered {
                rewrap_due = Some(now);
            }
            if rewrap_due.is_some_and(|at| at <= now) {
                let outcome = crate::failpoint::scope("seal-set", self.reconcile_seals(set)).await;
                rewrap_due = match outcome {
                    Ok(true) => {
                        rewrap_failures = 0;
                        None
                    }
                    Ok(false) | Err(_) => {
                        if let Err(e) = outcome {
                            tracing::warn!(error = %e, "the seals could not be brought up to date; trying again later");
                            if let Error::FailedPrecondition(refused) = e {
                                self.report().seal_note = Some(refused);
                            }
                        }
                        rewrap_failures += 1;
                        Some(Instant::now() + backoff(rewrap_failures, true).min(RETRY_CAP))
                    }
                };
            }
        }
    }
}

/// DescribeKey a seal's configured key, and record what it says.
async fn check_key(member: &Member) {
    match member.kms.describe_key(member.kms.key_id()).await {
        Ok(info) => match info.state {
            KeyState::Enabled => member.record_ok(),
            KeyState::Disabled => member.record_failure(&format!(
                "KMS key {} is disabled: this seal cannot unseal or wrap until it is enabled again",
                info.arn
            )),
            KeyState::PendingDeletion => member.record_failure(&format!(
                "KMS key {} is pending deletion: cancel the deletion, or remove this seal (disabled = true) while the others still work",
                info.arn
            )),
            KeyState::Other(state) => member.record_failure(&format!(
                "KMS key {} is in state {state}: this seal may not unseal",
                info.arn
            )),
        },
        Err(e) => member.record_failure(&format!("the health check failed: {e}")),
    }
}
