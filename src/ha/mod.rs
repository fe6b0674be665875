//! A node's part in HA (docs/HA.md): while it is unsealed and standing by
//! it campaigns on its own lock connection; once the election gives it a
//! term, the term goes to storage (every write is then fenced by it) and
//! the lifecycle takes over; it renews the lease every `ha_lease_ttl / 5`
//! and steps down when a renewal finds the role gone, when its local
//! deadline passes without a good renewal, or when the lock connection
//! fails. An operator's seal, a `step-down` or SIGTERM release the role at
//! once, so a standby takes over without waiting for the lease.
//!
//! The lifecycle owns the roles' state ([`Lifecycle::take_over`],
//! [`Lifecycle::step_down`]); this loop only decides when. A step-down or
//! a seal by a call is seen here as the phase leaving `Unsealed`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::config::PostgresConfig;
use crate::lifecycle::{Leader, Lifecycle, Phase};
use crate::storage::{self, Change, Election, Identity, PostgresBackend, Renewal, StorageError};

/// After a voluntary step-down, how long this node stays out of the
/// election, so another node takes the role (Vault waits 10 s too).
const STEP_DOWN_PAUSE: Duration = Duration::from_secs(10);
/// The longest wait between two attempts to reach the database.
const BACKOFF_CAP: Duration = Duration::from_secs(5);
/// How often a node that is not initialized looks whether another node
/// initialized the store.
const INIT_POLL: Duration = Duration::from_secs(1);
/// How often a node out of the election looks who holds the role.
const LEADER_POLL: Duration = Duration::from_millis(250);
/// The local deadline is this share of the lease after a renewal was sent
/// (the rest covers clock rate error): docs/HA.md, Renewal.
const DEADLINE_SHARE: f64 = 0.95;

/// What a node advertises in the lease row (`ha_value`).
#[derive(Serialize, Deserialize)]
struct Advertised {
    api_addr: String,
    cluster_addr: String,
    active_since_unix_ms: u64,
}

/// The election's settings for one node.
pub struct Settings {
    /// The storage block (the lock connection uses its URL and tables).
    pub postgres: PostgresConfig,
    /// This process's identity in the election.
    pub identity: Identity,
    /// `ha_lease_ttl`.
    pub lease_ttl: Duration,
}

/// Follows the election from outside: whether this node holds a term.
#[derive(Clone)]
pub struct Handle {
    holding: watch::Receiver<bool>,
}

impl Handle {
    /// Waits, at most `deadline`, until this node holds no term (after a
    /// seal at shutdown: the release is then done).
    pub async fn released(&self, deadline: Duration) -> bool {
        let mut holding = self.holding.clone();
        tokio::time::timeout(deadline, holding.wait_for(|h| !*h))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Starts the election loop of this node.
pub fn spawn(
    lifecycle: Arc<Lifecycle>,
    storage: Arc<PostgresBackend>,
    settings: Settings,
) -> Handle {
    let (holding, watching) = watch::channel(false);
    tokio::spawn(follow_changes(
        Arc::clone(&lifecycle),
        storage::listen(&settings.postgres, &settings.identity),
    ));
    let node = Node {
        lifecycle,
        storage,
        settings,
        holding,
    };
    tokio::spawn(node.run());
    Handle { holding: watching }
}

struct Node {
    lifecycle: Arc<Lifecycle>,
    storage: Arc<PostgresBackend>,
    settings: Settings,
    holding: watch::Sender<bool>,
}

/// Why an active node stopped holding the role.
enum Ended {
    /// The role is gone, or could not be confirmed in time: step down.
    Lost(String),
    /// This node gave it up (a seal, a step-down): release it.
    GivenUp,
    /// The take-over did not finish (the database or KMS failed under
    /// it): the role was given back; try again after a backoff.
    NotTaken(String),
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Node {
    async fn run(self) {
        let mut phase = self.lifecycle.subscribe();
        let mut failures: u32 = 0;
        let mut pause_until: Option<tokio::time::Instant> = None;
        loop {
            let current = *phase.borrow_and_update();
            match current {
                Phase::Uninitialized => {
                    if let Err(e) = self.lifecycle.notice_init().await {
                        tracing::warn!(error = %e, "could not look whether another node initialized the store");
                    }
                    if tokio::time::timeout(INIT_POLL, phase.changed())
                        .await
                        .is_ok_and(|r| r.is_err())
                    {
                        return;
                    }
                    continue;
                }
                Phase::Sealed => {
                    self.lifecycle.set_leader(None);
                    if phase.changed().await.is_err() {
                        return;
                    }
                    continue;
                }
                // Active without a term cannot happen; stand by to be safe.
                Phase::Unsealed => {
                    self.lifecycle.step_down();
                    continue;
                }
                Phase::Standby => {}
            }
            if let Some(until) = pause_until.take() {
                tokio::select! {
                    () = self.follow_leader(until) => {}
                    changed = phase.changed() => if changed.is_err() { return },
                }
                continue;
            }
            match self.stand_by_and_serve(&mut phase).await {
                Ok(Some(Ended::GivenUp)) => {
                    failures = 0;
                    if self.lifecycle.phase() == Phase::Standby {
                        pause_until = Some(tokio::time::Instant::now() + STEP_DOWN_PAUSE);
                        tracing::info!(
                            seconds = STEP_DOWN_PAUSE.as_secs(),
                            "stepped down; staying out of the election for a while so another node takes the role"
                        );
                    }
                }
                Ok(Some(Ended::Lost(why))) => {
                    failures = 0;
                    tracing::warn!(reason = %why, "lost the active role");
                }
                Ok(None) => failures = 0,
                Ok(Some(Ended::NotTaken(why))) => {
                    failures = failures.saturating_add(1);
                    let wait = backoff(failures);
                    tracing::warn!(reason = %why, retry_in_ms = wait.as_millis() as u64, "the take-over did not finish; the role was given back");
                    if !wait_or_change(wait, &mut phase).await {
                        return;
                    }
                }
                Err(e) => {
                    // Who holds the role cannot be known now: name nobody,
                    // rather than send callers to a node that may be gone.
                    self.lifecycle.set_leader(None);
                    failures = failures.saturating_add(1);
                    let wait = backoff(failures);
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "the HA election failed; trying again");
                    if !wait_or_change(wait, &mut phase).await {
                        return;
                    }
                }
            }
        }
    }

    /// Out of the election until `until` (after a step-down): only follows
    /// who holds the role, for Status and the standby's answers.
    async fn follow_leader(&self, until: tokio::time::Instant) {
        let settings = &self.settings;
        let election =
            Election::connect(&settings.postgres, &settings.identity, settings.lease_ttl).await;
        while tokio::time::Instant::now() < until {
            if let Ok(election) = &election {
                match election.holder().await {
                    Ok(holder) => self
                        .lifecycle
                        .set_leader(holder.as_deref().and_then(|h| leader(&self.lifecycle, h))),
                    Err(e) => tracing::debug!(error = %e, "could not read the lease"),
                }
            }
            tokio::time::sleep(LEADER_POLL.min(until - tokio::time::Instant::now())).await;
        }
    }

    /// Campaigns while standing by; once elected takes over and holds the
    /// role until it ends. `Ok(None)`: the node left standby (sealed)
    /// before it was elected.
    async fn stand_by_and_serve(
        &self,
        phase: &mut watch::Receiver<Phase>,
    ) -> Result<Option<Ended>, StorageError> {
        let settings = &self.settings;
        let mut election =
            Election::connect(&settings.postgres, &settings.identity, settings.lease_ttl).await?;
        let own = self.lifecycle.advertised().unwrap_or_default();
        // Made when the take-over runs, so `active_since` is its time.
        let since = std::sync::atomic::AtomicU64::new(0);
        let advertise = || {
            let now = now_unix_ms();
            since.store(now, std::sync::atomic::Ordering::Relaxed);
            let plain = serde_json::to_vec(&Advertised {
                api_addr: own.api_addr.clone(),
                cluster_addr: own.cluster_addr.clone(),
                active_since_unix_ms: now,
            })
            .unwrap_or_default();
            // Behind the barrier: base64 of the barrier's entry format.
            self.lifecycle
                .seal_advertisement(&plain)
                .map(|sealed| STANDARD.encode(sealed))
                .unwrap_or_default()
        };
        let lifecycle = Arc::clone(&self.lifecycle);
        let mut observe = move |holder: Option<&str>| {
            lifecycle.set_leader(holder.and_then(|h| leader(&lifecycle, h)));
        };
        let elected = tokio::select! {
            term = election.campaign(&advertise, &mut observe) => term?,
            _ = phase.wait_for(|p| *p != Phase::Standby) => return Ok(None),
        };
        let active_since_unix_ms = since.load(std::sync::atomic::Ordering::Relaxed);
        // The deadline counts from before the take-over's transaction
        // began, so it comes before the lease's end, never after it.
        let taken = election.lease_began().unwrap_or_else(Instant::now);
        let epoch = elected.epoch;
        tracing::info!(epoch, "took the active role");
        self.storage.set_term(Some(elected));
        self.holding.send_replace(true);
        // A crash point inside (tests/integration/crash/): a node that
        // dies here holds the term but never served.
        let taken_over = crate::failpoint::scope("ha-take-over", async {
            crate::failpoint::step("after-term-taken");
            let result = self.lifecycle.take_over(active_since_unix_ms).await;
            if result.is_ok() {
                crate::failpoint::step("after-reload");
            }
            result
        })
        .await;
        if let Err(e) = taken_over {
            self.give_back(election).await;
            return Ok(Some(Ended::NotTaken(e.to_string())));
        }
        let ended = self.hold(&election, phase, taken, epoch).await;
        match &ended {
            Ended::Lost(_) | Ended::NotTaken(_) => {
                // Stop serving before the term goes: no read is answered
                // as active while writes are already refused.
                self.lifecycle.step_down();
                self.storage.set_term(None);
                self.holding.send_replace(false);
                drop(election);
            }
            Ended::GivenUp => self.give_back(election).await,
        }
        Ok(Some(ended))
    }

    /// Renews the lease until the role ends: the lease is lost, the local
    /// deadline passes without a good renewal, a write of this term was
    /// refused by the fence, or the node gives the role up.
    async fn hold(
        &self,
        election: &Election,
        phase: &mut watch::Receiver<Phase>,
        taken: Instant,
        epoch: i64,
    ) -> Ended {
        let ttl = self.settings.lease_ttl;
        let interval = ttl / 5;
        let mut deadline = taken + ttl.mul_f64(DEADLINE_SHARE);
        self.lifecycle.set_lease_deadline(Some(deadline));
        let mut fenced = self.storage.fenced_out();
        let expired = || {
            Ended::Lost(format!(
                "no renewal of the lease succeeded within {} ms",
                ttl.mul_f64(DEADLINE_SHARE).as_millis()
            ))
        };
        loop {
            let until_deadline = deadline.saturating_duration_since(Instant::now());
            tokio::select! {
                () = tokio::time::sleep(interval.min(until_deadline)) => {}
                // A restore seals first and writes after: the term stays
                // until it is done.
                _ = phase.wait_for(|p| *p != Phase::Unsealed && !self.lifecycle.is_restoring()) => {
                    return Ended::GivenUp;
                }
                _ = fenced.wait_for(|e| *e == epoch) => {
                    return Ended::Lost("a write was refused by the fence: another node holds a newer term".into());
                }
            }
            if Instant::now() >= deadline {
                return expired();
            }
            let sent = Instant::now();
            // A renewal that has not answered by the deadline is too late.
            match tokio::time::timeout_at(deadline.into(), election.renew()).await {
                Ok(Ok(Renewal::Renewed)) => {
                    deadline = sent + ttl.mul_f64(DEADLINE_SHARE);
                    self.lifecycle.set_lease_deadline(Some(deadline));
                }
                Ok(Ok(Renewal::Lost)) => {
                    return Ended::Lost("the lease is held by another term".into());
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "could not renew the lease; retrying"),
                Err(_) => return expired(),
            }
        }
    }

    /// Releases the role (the epoch's identity cleared, the lease freed)
    /// and closes the lock connection, so a standby takes over at once.
    async fn give_back(&self, election: Election) {
        // Stop serving first, if a seal or step-down did not already.
        self.lifecycle.step_down();
        if let Err(e) = election.release().await {
            tracing::warn!(error = %e, "could not release the role; a standby takes over when the lease runs out");
        }
        self.storage.set_term(None);
        self.holding.send_replace(false);
    }
}

/// Passes what the active node's writes notify on to the lifecycle (a
/// standby drops its caches, and seals after a restore).
async fn follow_changes(
    lifecycle: Arc<Lifecycle>,
    mut changes: tokio::sync::broadcast::Receiver<Change>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match changes.recv().await {
            // A take-over elsewhere: name the new active node at once.
            Ok(Change::Leader(advertised)) => {
                // Only ever names a leader: this node's own take-over (or
                // one it cannot open) clears nothing.
                if lifecycle.phase() == Phase::Standby
                    && let Some(new) = leader(&lifecycle, &advertised)
                {
                    lifecycle.set_leader(Some(new));
                }
            }
            Ok(change) => lifecycle.heard(&change).await,
            Err(RecvError::Lagged(_)) => lifecycle.heard(&Change::Missed).await,
            Err(RecvError::Closed) => return,
        }
    }
}

/// The active node as its lease row advertises it, if this node's keys
/// open the advertisement.
fn leader(lifecycle: &Lifecycle, advertised: &str) -> Option<Leader> {
    let sealed = STANDARD.decode(advertised).ok()?;
    let plain = lifecycle.open_advertisement(&sealed)?;
    let a: Advertised = serde_json::from_slice(plain.expose()).ok()?;
    // A lease this node left behind (it lost the role without releasing
    // it) names itself: a standby never sends callers to itself.
    let own = lifecycle.advertised().unwrap_or_default();
    if lifecycle.phase() == Phase::Standby
        && a.api_addr == own.api_addr
        && a.cluster_addr == own.cluster_addr
    {
        return None;
    }
    Some(Leader {
        api_addr: a.api_addr,
        cluster_addr: a.cluster_addr,
        active_since_unix_ms: a.active_since_unix_ms,
    })
}

/// Waits `wait`, or less if the phase changes; false once the lifecycle
/// is gone (the process is ending).
async fn wait_or_change(wait: Duration, phase: &mut watch::Receiver<Phase>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(wait) => true,
        changed = phase.changed() => changed.is_ok(),
    }
}

/// 250 ms doubling to [`BACKOFF_CAP`].
fn backoff(failures: u32) -> Duration {
    Duration::from_millis(250)
        .saturating_mul(1 << failures.min(5))
        .min(BACKOFF_CAP)
}
