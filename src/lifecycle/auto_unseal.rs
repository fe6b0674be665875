//! The awskms seal at work: unseal at start with one KMS Decrypt, retry with
//! backoff while KMS cannot answer (never exit), then keep an eye on the key.
//!
//! The path to unsealed is: read `core/root-key`, one KMS Decrypt, AES-GCM,
//! open the keyring. Everything else (DescribeKey, rewrap, health checks)
//! happens after the daemon is unsealed.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use super::seal_config::{RECOVERY_KEY_PATH, ROOT_KEY_PATH, SEAL_CONFIG_PATH, SealConfig};
use super::{Lifecycle, Migration, Phase, State};
use crate::barrier::Barrier;
use crate::error::Error;
use crate::metrics;
use crate::seal::Seal;
use crate::seal::awskms::arn_scope;
use crate::seal::envelope::{Envelope, EnvelopeError, Purpose};
use crate::seal::kms::{KeyState, Kms};
use crate::secret::random_bytes;
use crate::storage::Batch;

/// First retry delay after a transient failure.
pub const BACKOFF_START: Duration = Duration::from_millis(250);
/// Longest delay between retries after transient failures.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// Delay between retries after a failure that retrying is not expected to
/// fix (a blob KMS decrypted but that failed authentication, no region):
/// long enough never to loop hot, short enough to notice a fix.
pub const PERMANENT_FAILURE_DELAY: Duration = Duration::from_secs(300);

/// Where automatic unsealing stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AutoUnsealState {
    /// Nothing to do yet: the store is not initialized.
    #[default]
    Idle,
    /// Trying, or waiting to retry after a transient failure.
    InProgress,
    /// Unsealed by KMS (or by init).
    Unsealed,
    /// Refused for a reason retrying will not fix; retried rarely.
    Failed,
    /// Sealed by an operator: stays sealed until a quorum of recovery shares or a restart.
    Stopped,
    /// A seal migration is pending: a quorum of the old keys, entered with
    /// `unseal --migrate`, performs it; nothing unseals by itself.
    Migration,
}

impl AutoUnsealState {
    /// The name Status reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::InProgress => "in_progress",
            Self::Unsealed => "unsealed",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
            Self::Migration => "migration",
        }
    }
}

/// Auto-unseal progress, as Status reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AutoUnsealStatus {
    /// Where it stands.
    pub state: AutoUnsealState,
    /// Attempts made since start.
    pub attempts: u32,
    /// Why the last attempt failed, in one sentence; empty after success.
    pub last_error: String,
    /// When the next attempt is due, ms since the Unix epoch; 0 when none is planned.
    pub next_attempt_unix_ms: u64,
    /// With several seals: the seal that unsealed last.
    pub seal: String,
}

impl AutoUnsealStatus {
    /// After an operator sealed the daemon.
    pub fn stopped() -> Self {
        Self {
            state: AutoUnsealState::Stopped,
            ..Self::default()
        }
    }
}

/// The delay before retry number `attempt` (1-based): exponential from
/// [`BACKOFF_START`], capped at [`BACKOFF_CAP`], with ±25 % jitter so a
/// fleet restarted together does not hit KMS in lockstep.
pub fn backoff(attempt: u32, transient: bool) -> Duration {
    let base = if transient {
        BACKOFF_START
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
            .min(BACKOFF_CAP)
    } else {
        PERMANENT_FAILURE_DELAY
    };
    let random = random_bytes(2);
    let unit = f64::from(u16::from_be_bytes([random[0], random[1]])) / f64::from(u16::MAX);
    let jittered = base.mul_f64(0.75 + unit / 2.0);
    if transient {
        jittered.min(BACKOFF_CAP)
    } else {
        jittered
    }
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Why one auto-unseal attempt failed.
pub(super) struct AttemptError {
    pub(super) message: String,
    pub(super) transient: bool,
}

impl From<EnvelopeError> for AttemptError {
    fn from(e: EnvelopeError) -> Self {
        Self {
            transient: e.is_transient(),
            message: e.to_string(),
        }
    }
}

impl From<Error> for AttemptError {
    fn from(e: Error) -> Self {
        Self {
            // KMS errors that reach here are about the key or the service;
            // an operator can fix those without restarting strongroom.
            transient: !matches!(e, Error::Internal(_)),
            message: e.to_string(),
        }
    }
}

impl Lifecycle {
    /// Runs the awskms seal's background work for the life of the process:
    /// auto-unseal with backoff whenever the daemon is sealed and armed (at
    /// start, after a snapshot restore; not after an operator's seal), the
    /// key check and rewrap after each unseal, and periodic health checks
    /// while unsealed. Returns at once for the Shamir seal.
    pub async fn drive_auto_unseal(self: Arc<Self>, health_check_interval: Duration) {
        if let Seal::Multi(set) = &self.seal {
            let set = Arc::clone(set);
            return self.drive_seal_set(set).await;
        }
        let Seal::AwsKms(kms) = &self.seal else {
            return;
        };
        let kms = Arc::clone(kms);
        let mut phase = self.subscribe();
        let mut key_checked = false;
        let mut attempt = 0;
        while self.migration() == Some(Migration::AwsKmsToAwsKms)
            && self.phase() == Phase::Sealed
            && !self.settle_awskms_migration(kms.as_ref()).await
        {
            attempt += 1;
            let _ = tokio::time::timeout(backoff(attempt, true), phase.changed()).await;
        }
        loop {
            let current = *phase.borrow_and_update();
            match current {
                Phase::Uninitialized => {
                    if phase.changed().await.is_err() {
                        return;
                    }
                    // Init under the configured key leaves nothing to check.
                    key_checked = self.phase() == Phase::Unsealed;
                }
                Phase::Sealed if self.auto_unseal_armed() => {
                    self.auto_unseal_with_retries(&mut phase).await;
                }
                // A standby checks nothing: the active node does.
                Phase::Sealed | Phase::Standby => {
                    if phase.changed().await.is_err() {
                        return;
                    }
                }
                Phase::Unsealed => {
                    if !key_checked {
                        key_checked = self.check_configured_key(kms.as_ref()).await;
                    }
                    let sealed = self
                        .watch_key(
                            kms.as_ref(),
                            health_check_interval,
                            &mut phase,
                            &mut key_checked,
                        )
                        .await;
                    if !sealed {
                        return;
                    }
                    // Check the key again after the next unseal.
                    key_checked = false;
                }
            }
        }
    }

    /// Tries to unseal until it works, the daemon is unsealed another way,
    /// or an operator stops it; between attempts Status says why and when.
    pub(super) async fn auto_unseal_with_retries(&self, phase: &mut watch::Receiver<Phase>) {
        while self.phase() == Phase::Sealed && self.auto_unseal_armed() {
            let attempts = {
                let mut report = self.report();
                report.auto_unseal.attempts += 1;
                report.auto_unseal.attempts
            };
            let Err(e) = self.auto_unseal_once().await else {
                metrics::auto_unseal_attempt("ok", None);
                return;
            };
            let delay = backoff(attempts, e.transient);
            metrics::auto_unseal_attempt("failed", Some(SystemTime::now() + delay));
            let state = if e.transient {
                AutoUnsealState::InProgress
            } else {
                AutoUnsealState::Failed
            };
            tracing::warn!(
                attempt = attempts,
                retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                error = %e.message,
                "auto-unseal failed; staying up sealed and retrying"
            );
            {
                let mut report = self.report();
                // Stopped by an operator, or unsealed meanwhile by a quorum
                // (recovery or emergency keys): this failure is not news.
                if matches!(
                    report.auto_unseal.state,
                    AutoUnsealState::Stopped | AutoUnsealState::Unsealed
                ) {
                    return;
                }
                report.auto_unseal.state = state;
                report.auto_unseal.last_error = e.message;
                report.auto_unseal.next_attempt_unix_ms = unix_ms(SystemTime::now() + delay);
            }
            // A quorum of recovery shares or a restore may change things meanwhile.
            let _ = tokio::time::timeout(delay, phase.changed()).await;
        }
    }

    /// While unsealed: health checks every `interval` (none when zero), and
    /// the key check until it completes. Returns false when the process is
    /// ending, true once sealed.
    async fn watch_key(
        &self,
        kms: &dyn Kms,
        interval: Duration,
        phase: &mut watch::Receiver<Phase>,
        key_checked: &mut bool,
    ) -> bool {
        loop {
            let tick = async {
                if interval.is_zero() {
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(interval).await;
            };
            tokio::select! {
                () = tick => {
                    self.check_key_health(kms).await;
                    if !*key_checked {
                        *key_checked = self.check_configured_key(kms).await;
                    }
                }
                closed = async { phase.wait_for(|p| *p != Phase::Unsealed).await.is_err() } => {
                    return !closed;
                }
            }
        }
    }

    /// Whether auto-unseal should be trying: sealed at start or after a
    /// restore, not stopped by an operator.
    pub(super) fn auto_unseal_armed(&self) -> bool {
        matches!(
            self.report().auto_unseal.state,
            AutoUnsealState::InProgress | AutoUnsealState::Failed
        )
    }

    /// One attempt: read the stored root key, one KMS Decrypt (per seal
    /// tried, with several), open the keyring.
    pub(super) async fn auto_unseal_once(&self) -> Result<(), AttemptError> {
        let started = Instant::now();
        let config = match &*self.read() {
            State::Sealed { config, .. } => Arc::clone(config),
            _ => return Ok(()),
        };
        let (root_key, by) = match &self.seal {
            Seal::AwsKms(kms) => {
                let envelope = self
                    .stored_envelope(ROOT_KEY_PATH, Purpose::RootKey)
                    .await?;
                let key = envelope
                    .open_once(kms.as_ref(), Purpose::RootKey, &config.cluster_id)
                    .await?;
                (key, format!("KMS key {}", envelope.key_arn))
            }
            Seal::Multi(set) => {
                let (key, name) = self.open_root_with_set(set, &config).await?;
                self.report().auto_unseal.seal.clone_from(&name);
                (key, format!("seal {}", crate::text::quote(&name)))
            }
            Seal::Shamir => return Ok(()),
        };
        let barrier = Barrier::unlock(Arc::clone(&self.storage), root_key)
            .await
            .map_err(|e| AttemptError {
                message: format!(
                    "KMS decrypted the root key, but it does not open the keyring: {e}"
                ),
                transient: false,
            })?;
        let _key_ops = self.key_ops.lock().await;
        // A quorum of recovery shares may have unsealed meanwhile, or an
        // operator (or SIGTERM) sealed: either way this result is not wanted.
        if !matches!(&*self.read(), State::Sealed { .. }) || self.auto_unseal_stopped() {
            return Ok(());
        }
        if self.is_ha() {
            // The take-over checks and opens the store.
            self.stand_by(config, barrier);
            self.report_unsealed_by_kms();
            metrics::unsealed("kms", started);
            tracing::info!(by = %by, "unsealed by KMS");
            return Ok(());
        }
        // A restored store that fails its snapshot's check fails it again
        // at every attempt: not worth another KMS request soon.
        self.check_restored(&barrier)
            .await
            .map_err(|e| AttemptError {
                message: e.to_string(),
                transient: false,
            })?;
        self.opening(&barrier).await.map_err(|e| AttemptError {
            message: format!("the store could not be opened: {e}"),
            transient: true,
        })?;
        self.set_state(State::Unsealed {
            config,
            barrier: Arc::new(barrier),
        });
        self.report_unsealed_by_kms();
        metrics::unsealed("kms", started);
        tracing::info!(by = %by, "unsealed by KMS");
        Ok(())
    }

    fn report_unsealed_by_kms(&self) {
        let mut report = self.report();
        report.auto_unseal.state = AutoUnsealState::Unsealed;
        report.auto_unseal.last_error.clear();
        report.auto_unseal.next_attempt_unix_ms = 0;
    }

    /// An operator (or SIGTERM) sealed: only recovery keys or a restart unseal.
    fn auto_unseal_stopped(&self) -> bool {
        self.report().auto_unseal.state == AutoUnsealState::Stopped
    }

    /// Reads and parses a stored envelope.
    pub(super) async fn stored_envelope(
        &self,
        path: &str,
        purpose: Purpose,
    ) -> Result<Envelope, Error> {
        let blob = self.storage.get(path).await?.ok_or_else(|| {
            Error::Internal(format!(
                "storage has no {path}; the stored seal data is damaged"
            ))
        })?;
        Envelope::decode(purpose, &blob).map_err(|e| Error::Internal(e.to_string()))
    }

    /// After unsealing: DescribeKey the configured key. When it resolves to
    /// another key in the same account and region than the stored blobs (key
    /// replaced, alias moved), rewrap the root and recovery keys under it.
    /// Returns whether the check completed (false: try again later).
    async fn check_configured_key(&self, kms: &dyn Kms) -> bool {
        let configured = match kms.describe_key(kms.key_id()).await {
            Ok(info) => info,
            Err(e) => {
                tracing::warn!(error = %e, "could not check the configured KMS key; will retry at the next health check");
                return false;
            }
        };
        let stored = self.report().key_arn.clone();
        let Some(config) = self.seal_config() else {
            return false;
        };
        let endpoint = kms.endpoint();
        if configured.arn == stored {
            self.report().key_move = None;
            self.record_key_state(&stored, &configured.state);
            if config.kms_endpoint.as_deref() != Some(endpoint.as_str()) {
                // The same key through another endpoint (a VPC endpoint
                // added, say): record it, so a later key change compares
                // against the endpoint in use.
                return self.record_endpoint(endpoint).await.is_ok();
            }
            return true;
        }
        let moved = if arn_scope(&configured.arn).is_none()
            || arn_scope(&configured.arn) != arn_scope(&stored)
        {
            Some("is in another account, region or partition than")
        } else if config
            .kms_endpoint
            .as_deref()
            .is_some_and(|recorded| recorded != endpoint)
        {
            Some("is reached through another KMS endpoint than")
        } else {
            None
        };
        if let Some(how) = moved {
            let message = format!(
                "the configured KMS key {} {how} {stored}, which wraps the stored keys; moving between them needs a seal migration",
                configured.arn
            );
            tracing::warn!("{message}");
            self.report().key_move = Some(message);
            return true;
        }
        match crate::failpoint::scope("rewrap", self.rewrap(kms)).await {
            Ok(arn) => {
                tracing::info!(
                    from = %stored,
                    to = %arn,
                    "rewrapped the root key and recovery key under the configured KMS key"
                );
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not rewrap the stored keys under the configured KMS key; will retry at the next health check");
                false
            }
        }
    }

    /// Wraps the root key and recovery key under the configured key and
    /// writes both in one atomic batch. Returns the new key's ARN.
    async fn rewrap(&self, kms: &dyn Kms) -> Result<String, Error> {
        let _key_ops = self.key_ops.lock().await;
        let (config, barrier) = match &*self.read() {
            State::Unsealed { config, barrier } => (Arc::clone(config), Arc::clone(barrier)),
            _ => return Err(Error::Sealed),
        };
        let cluster_id = &config.cluster_id;
        let recovery_key = self
            .stored_envelope(RECOVERY_KEY_PATH, Purpose::RecoveryKey)
            .await?
            .open(kms, Purpose::RecoveryKey, cluster_id)
            .await?;
        let (root, recovery) = tokio::try_join!(
            Envelope::seal(kms, Purpose::RootKey, cluster_id, barrier.root_key()),
            Envelope::seal(kms, Purpose::RecoveryKey, cluster_id, &recovery_key),
        )?;
        let config = SealConfig {
            kms_endpoint: Some(kms.endpoint()),
            ..(*config).clone()
        };
        let mut batch = Batch::new();
        batch
            .put(ROOT_KEY_PATH, root.encode())
            .put(RECOVERY_KEY_PATH, recovery.encode())
            .put(SEAL_CONFIG_PATH, config.encode());
        self.storage.write(batch).await?;
        self.replace_seal_config(config);
        let mut report = self.report();
        report.key_arn.clone_from(&root.key_arn);
        report.key_move = None;
        Ok(root.key_arn)
    }

    /// Records the endpoint the stored keys are reached through.
    async fn record_endpoint(&self, endpoint: String) -> Result<(), Error> {
        let _key_ops = self.key_ops.lock().await;
        let Some(config) = self.seal_config() else {
            return Err(Error::NotInitialized);
        };
        let config = SealConfig {
            kms_endpoint: Some(endpoint),
            ..(*config).clone()
        };
        let mut batch = Batch::new();
        batch.put(SEAL_CONFIG_PATH, config.encode());
        if let Err(e) = self.storage.write(batch).await {
            tracing::warn!(error = %e, "could not record the KMS endpoint in the seal config; will retry at the next health check");
            return Err(e.into());
        }
        self.replace_seal_config(config);
        Ok(())
    }

    /// DescribeKey the key that wraps the stored keys; warn while it is unusable.
    async fn check_key_health(&self, kms: &dyn Kms) {
        let arn = self.report().key_arn.clone();
        match kms.describe_key(&arn).await {
            Ok(info) => self.record_key_state(&arn, &info.state),
            Err(e) => {
                let message = format!("the health check of KMS key {arn} failed: {e}");
                tracing::warn!("{message}");
                self.report().key_health = Some(message);
            }
        }
    }

    fn record_key_state(&self, arn: &str, state: &KeyState) {
        let problem = match state {
            KeyState::Enabled => None,
            KeyState::Disabled => Some(format!(
                "KMS key {arn} is disabled: strongroom is still unsealed, but it will not unseal after a restart until the key is enabled again"
            )),
            KeyState::PendingDeletion => Some(format!(
                "KMS key {arn} is pending deletion: cancel the deletion now, or strongroom will not unseal after a restart and its data will be lost with the key"
            )),
            KeyState::Other(other) => Some(format!(
                "KMS key {arn} is in state {other}: strongroom may not unseal after a restart"
            )),
        };
        let mut report = self.report();
        match (&problem, &report.key_health) {
            (Some(message), _) => tracing::error!("{message}"),
            (None, Some(_)) => tracing::info!(kms_key_arn = %arn, "KMS key is usable again"),
            (None, None) => {}
        }
        report.key_health = problem;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::InitParams;
    use crate::seal::kms::testing::FakeKms;
    use crate::seal::kms::{KmsError, KmsErrorKind};
    use crate::storage::{Backend, InmemBackend};

    async fn open(storage: &Arc<dyn Backend>, kms: &Arc<FakeKms>) -> Arc<Lifecycle> {
        let kms: Arc<dyn Kms> = Arc::clone(kms) as Arc<dyn Kms>;
        Lifecycle::open(
            Arc::clone(storage),
            Seal::AwsKms(kms),
            crate::lifecycle::Options::default(),
            Vec::new(),
        )
        .await
        .unwrap()
    }

    /// An initialized store and its KMS, with the calls of init forgotten.
    async fn initialized() -> (Arc<dyn Backend>, Arc<FakeKms>, crate::lifecycle::InitResult) {
        let storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
        let kms = Arc::new(FakeKms::new());
        let lifecycle = open(&storage, &kms).await;
        let init = lifecycle
            .init_and_confirm(InitParams::recovery(5, 3))
            .await
            .unwrap();
        (storage, kms, init)
    }

    #[tokio::test]
    async fn init_wraps_with_kms_first_and_ends_unsealed() {
        let storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
        let kms = Arc::new(FakeKms::new());
        let lifecycle = open(&storage, &kms).await;
        let refused = lifecycle
            .init_and_confirm(InitParams::shamir(5, 3))
            .await
            .err()
            .unwrap();
        assert!(
            refused.to_string().contains("--recovery-shares"),
            "{refused}"
        );

        kms.fail_next(KmsError::new(
            KmsErrorKind::Denied,
            "KMS denied Encrypt on key k: no kms:Encrypt",
        ));
        let err = lifecycle
            .init_and_confirm(InitParams::default())
            .await
            .err()
            .unwrap();
        assert_eq!(
            err,
            Error::KmsRefused("KMS denied Encrypt on key k: no kms:Encrypt".into())
        );
        assert!(
            storage.list("").await.unwrap().is_empty(),
            "storage touched"
        );
        assert_eq!(lifecycle.phase(), Phase::Uninitialized);

        let before = kms.calls().len();
        let init = lifecycle
            .init_and_confirm(InitParams::default())
            .await
            .unwrap();
        assert!(init.recovery);
        assert_eq!((init.shares.len(), init.threshold), (5, 3));
        assert_eq!(kms.calls()[before..], ["Encrypt", "Encrypt", "Decrypt"]);
        assert_eq!(lifecycle.phase(), Phase::Unsealed);
        let status = lifecycle.status();
        assert_eq!((status.seal_type, status.recovery_seal), ("awskms", true));
        assert_eq!((status.shares, status.threshold), (5, 3));
        assert_eq!(status.kms_key_arn, kms.current_arn());
        assert_eq!(status.auto_unseal.unwrap().state, AutoUnsealState::Unsealed);
        for path in [ROOT_KEY_PATH, RECOVERY_KEY_PATH] {
            assert!(storage.get(path).await.unwrap().is_some(), "{path}");
        }
    }

    #[tokio::test]
    async fn a_restart_unseals_with_exactly_one_decrypt() {
        let (storage, kms, _) = initialized().await;
        let lifecycle = open(&storage, &kms).await;
        assert_eq!(lifecycle.phase(), Phase::Sealed);
        assert_eq!(
            lifecycle.status().auto_unseal.unwrap().state,
            AutoUnsealState::InProgress
        );
        let before = kms.calls().len();
        tokio::spawn(Arc::clone(&lifecycle).drive_auto_unseal(Duration::ZERO));
        let mut phase = lifecycle.subscribe();
        phase.wait_for(|p| *p == Phase::Unsealed).await.unwrap();
        assert_eq!(kms.calls()[before], "Decrypt");
        let status = lifecycle.status();
        assert_eq!(status.auto_unseal.unwrap().attempts, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn kms_failures_are_retried_with_the_reason_in_status() {
        let (storage, kms, _) = initialized().await;
        let lifecycle = open(&storage, &kms).await;
        let arn = kms.current_arn();
        kms.set_state(&arn, KeyState::Disabled);
        tokio::spawn(Arc::clone(&lifecycle).drive_auto_unseal(Duration::ZERO));
        // Paused time: the retries sleep on a virtual clock.
        for _ in 0..4 {
            tokio::time::sleep(BACKOFF_START).await;
        }
        let auto = lifecycle.status().auto_unseal.unwrap();
        assert_eq!(auto.state, AutoUnsealState::InProgress);
        assert!(auto.attempts >= 2, "{auto:?}");
        assert_eq!(auto.last_error, format!("KMS key {arn} is disabled"));
        assert!(auto.next_attempt_unix_ms > 0);
        assert_eq!(lifecycle.phase(), Phase::Sealed);

        kms.set_state(&arn, KeyState::Enabled);
        let mut phase = lifecycle.subscribe();
        tokio::time::timeout(BACKOFF_CAP, phase.wait_for(|p| *p == Phase::Unsealed))
            .await
            .unwrap()
            .unwrap();
        let auto = lifecycle.status().auto_unseal.unwrap();
        assert_eq!(
            (auto.state, auto.last_error.as_str()),
            (AutoUnsealState::Unsealed, "")
        );
    }

    #[tokio::test]
    async fn an_operator_seal_sticks_until_recovery_keys() {
        let (storage, kms, init) = initialized().await;
        let lifecycle = open(&storage, &kms).await;
        tokio::spawn(Arc::clone(&lifecycle).drive_auto_unseal(Duration::ZERO));
        lifecycle
            .subscribe()
            .wait_for(|p| *p == Phase::Unsealed)
            .await
            .unwrap();
        lifecycle.seal_now();
        tokio::time::sleep(BACKOFF_START * 2).await;
        assert_eq!(lifecycle.phase(), Phase::Sealed);
        assert_eq!(
            lifecycle.status().auto_unseal.unwrap().state,
            AutoUnsealState::Stopped
        );

        // An attempt that was in flight when the operator sealed finishes now:
        // its result is dropped.
        lifecycle.auto_unseal_once().await.ok().unwrap();
        assert_eq!(lifecycle.phase(), Phase::Sealed);

        let err = lifecycle.unseal("00").await.err().unwrap();
        assert!(err.to_string().contains("recovery key"), "{err}");
        for share in &init.shares[1..4] {
            lifecycle
                .unseal(&hex::encode(share.expose()))
                .await
                .unwrap();
        }
        assert_eq!(lifecycle.phase(), Phase::Unsealed);
        assert_eq!(
            lifecycle.status().auto_unseal.unwrap().state,
            AutoUnsealState::Unsealed
        );
    }

    #[tokio::test]
    async fn status_says_why_recovery_keys_did_not_unseal() {
        let (storage, kms, init) = initialized().await;
        let lifecycle = open(&storage, &kms).await;
        lifecycle.auto_unseal_once().await.ok().unwrap();
        lifecycle.seal_now();
        let outage = "KMS at http://127.0.0.1:9 is unreachable for Decrypt: Connection refused (os error 111)";
        kms.fail_next(KmsError::new(KmsErrorKind::Unavailable, outage));
        let keys: Vec<String> = init.shares[..3]
            .iter()
            .map(|s| hex::encode(s.expose()))
            .collect();
        lifecycle.unseal(&keys[0]).await.unwrap();
        lifecycle.unseal(&keys[1]).await.unwrap();
        let err = lifecycle.unseal(&keys[2]).await.err().unwrap();
        assert_eq!(err, Error::KmsUnavailable(outage.into()));
        let auto = lifecycle.status().auto_unseal.unwrap();
        assert_eq!(auto.state, AutoUnsealState::Stopped);
        assert_eq!(
            auto.last_error,
            format!(
                "a quorum of recovery keys was entered but did not unseal (enter it again): {outage}"
            )
        );

        for key in &keys {
            lifecycle.unseal(key).await.unwrap();
        }
        let auto = lifecycle.status().auto_unseal.unwrap();
        assert_eq!(
            (auto.state, auto.last_error.as_str()),
            (AutoUnsealState::Unsealed, "")
        );
    }

    #[tokio::test]
    async fn a_moved_alias_is_rewrapped_and_a_foreign_account_is_not() {
        let (storage, kms, _) = initialized().await;
        let old = kms.current_arn();
        kms.switch_to_new_key();
        let lifecycle = open(&storage, &kms).await;
        tokio::spawn(Arc::clone(&lifecycle).drive_auto_unseal(Duration::ZERO));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while lifecycle.status().kms_key_arn == old {
            assert!(tokio::time::Instant::now() < deadline, "not rewrapped");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(lifecycle.status().kms_key_arn, kms.current_arn());
        // The old key can go: a restart needs only the new one.
        kms.set_state(&old, KeyState::PendingDeletion);
        let restarted = open(&storage, &kms).await;
        assert_eq!(restarted.status().kms_key_arn, kms.current_arn());
        restarted.auto_unseal_once().await.ok().unwrap();
        assert_eq!(restarted.phase(), Phase::Unsealed);

        // A key in another account is not adopted: that is a seal migration.
        let stored = kms.current_arn();
        kms.switch_to_key_in("444455556666");
        assert!(restarted.check_configured_key(kms.as_ref()).await);
        let status = restarted.status();
        assert_eq!(status.kms_key_arn, stored);
        assert_eq!(status.warnings.len(), 1);
        assert!(
            status.warnings[0].contains("needs a seal migration"),
            "{:?}",
            status.warnings
        );
    }

    #[tokio::test]
    async fn a_key_change_through_another_endpoint_is_not_rewrapped() {
        let (storage, kms, _) = initialized().await;
        let lifecycle = open(&storage, &kms).await;
        lifecycle.auto_unseal_once().await.ok().unwrap();
        let stored = kms.current_arn();
        assert_eq!(
            lifecycle.seal_config().unwrap().kms_endpoint.as_deref(),
            Some("")
        );

        // The same key through a VPC endpoint: recorded, nothing else.
        kms.set_endpoint("https://vpce-1.kms.eu-west-1.vpce.amazonaws.com");
        assert!(lifecycle.check_configured_key(kms.as_ref()).await);
        assert!(lifecycle.status().warnings.is_empty());
        let recorded = SealConfig::decode(&storage.get(SEAL_CONFIG_PATH).await.unwrap().unwrap())
            .unwrap()
            .kms_endpoint;
        assert_eq!(
            recorded.as_deref(),
            Some("https://vpce-1.kms.eu-west-1.vpce.amazonaws.com")
        );

        // Another key through yet another endpoint: a warning, no rewrap.
        kms.set_endpoint("http://127.0.0.1:4566");
        kms.switch_to_new_key();
        assert!(lifecycle.check_configured_key(kms.as_ref()).await);
        let status = lifecycle.status();
        assert_eq!(status.kms_key_arn, stored);
        assert!(
            status.warnings[0].contains("is reached through another KMS endpoint than"),
            "{:?}",
            status.warnings
        );
    }

    #[tokio::test]
    async fn health_checks_warn_while_the_key_is_unusable() {
        let (storage, kms, _) = initialized().await;
        let lifecycle = open(&storage, &kms).await;
        lifecycle.auto_unseal_once().await.ok().unwrap();
        let arn = kms.current_arn();
        kms.set_state(&arn, KeyState::PendingDeletion);
        lifecycle.check_key_health(kms.as_ref()).await;
        let warnings = lifecycle.status().warnings;
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("is pending deletion"), "{warnings:?}");
        kms.set_state(&arn, KeyState::Enabled);
        lifecycle.check_key_health(kms.as_ref()).await;
        assert!(lifecycle.status().warnings.is_empty());
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let first = backoff(1, true);
        assert!(first >= BACKOFF_START.mul_f64(0.75) && first <= BACKOFF_START.mul_f64(1.25));
        let tenth = backoff(10, true);
        assert!(tenth <= BACKOFF_CAP && tenth >= BACKOFF_CAP.mul_f64(0.75));
        assert!(backoff(u32::MAX, true) <= BACKOFF_CAP);
        assert!(backoff(1, false) >= PERMANENT_FAILURE_DELAY.mul_f64(0.75));
        let samples: std::collections::HashSet<_> = (0..20).map(|_| backoff(3, true)).collect();
        assert!(samples.len() > 1, "no jitter");
    }
}
