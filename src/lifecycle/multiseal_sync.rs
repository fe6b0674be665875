//! Several seals while unsealed: each seal's key is checked on its own
//! schedule (its `health_check_interval`, sooner with backoff after a
//! failure), and the active node keeps every enabled seal's envelopes of
//! the root key and the recovery key: a seal that missed a write (it was
//! down during a rotate-root or rekey), a seal added to the config, and a
//! store of one seal before `enable_multiseal` are rewrapped; the envelopes
//! of a seal marked `disabled = true` are deleted once every enabled seal
//! holds both keys and opened them again. Every change is one storage
//! write after its KMS calls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::auto_unseal::backoff;
use super::multiseal::configured;
use super::seal_config::{RECOVERY_KEY_PATH, ROOT_KEY_PATH, SEAL_CONFIG_PATH, SealConfig};
use super::{Lifecycle, Phase, State, seals};
use crate::error::Error;
use crate::seal::envelope::Purpose;
use crate::seal::kms::KeyState;
use crate::seal::set::{EnvelopeSet, Member, SealSet};
use crate::seal::{AWSKMS, MULTISEAL};
use crate::secret::{SecretKey, ct_eq};
use crate::storage::Batch;

/// How soon a rewrap that did not complete is tried again, at most.
const RETRY_CAP: Duration = Duration::from_secs(60);

impl Lifecycle {
    /// The background work of several seals for the life of the process:
    /// auto-unseal whenever sealed and armed, then, while unsealed, the
    /// per-seal health checks and the rewraps.
    pub(super) async fn drive_seal_set(self: Arc<Self>, set: Arc<SealSet>) {
        let mut phase = self.subscribe();
        loop {
            let current = *phase.borrow_and_update();
            match current {
                Phase::Sealed if self.auto_unseal_armed() => {
                    self.auto_unseal_with_retries(&mut phase).await;
                }
                Phase::Unsealed => {
                    if !self.watch_seals(&set, &mut phase).await {
                        return;
                    }
                }
                // A standby checks and rewraps nothing: the active node does.
                Phase::Uninitialized | Phase::Sealed | Phase::Standby => {
                    if phase.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// While unsealed: rewraps until every enabled seal is fully wrapped,
    /// and checks each seal when it is due. Returns false when the process
    /// is ending, true once no longer unsealed.
    async fn watch_seals(&self, set: &SealSet, phase: &mut watch::Receiver<Phase>) -> bool {
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
        let mut rewrap_due = Some(now);
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
                closed = async { phase.wait_for(|p| *p != Phase::Unsealed).await.is_err() } => {
                    return !closed;
                }
            }
            let now = Instant::now();
            let mut recovered = false;
            for (member, due) in set.members().iter().zip(due.iter_mut()) {
                if due.is_some_and(|at| at <= now) {
                    let was_healthy = member.health().healthy();
                    check_key(member).await;
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
            if recovered {
                rewrap_due = Some(now);
            }
            if rewrap_due.is_some_and(|at| at <= now) {
                rewrap_due =
                    match crate::failpoint::scope("seal-set", self.reconcile_seals(set)).await {
                        Ok(true) => {
                            rewrap_failures = 0;
                            None
                        }
                        Ok(false) | Err(_) => {
                            rewrap_failures += 1;
                            Some(Instant::now() + backoff(rewrap_failures, true).min(RETRY_CAP))
                        }
                    };
            }
        }
    }

    /// Brings the stored envelopes in line with the configured seals (see
    /// the module). Returns whether every enabled seal is fully wrapped and
    /// nothing is left to delete.
    pub(super) async fn reconcile_seals(&self, set: &SealSet) -> Result<bool, Error> {
        let _key_ops = self.key_ops.lock().await;
        let (config, barrier) = match &*self.read() {
            State::Unsealed { config, barrier } => (Arc::clone(config), Arc::clone(barrier)),
            _ => return Ok(false),
        };
        let cluster_id = config.cluster_id.as_str();
        let single = config.seal_type == AWSKMS;
        let (mut root, mut recovery) = if single {
            (EnvelopeSet::default(), EnvelopeSet::default())
        } else {
            (
                self.stored_set(Purpose::RootKey).await?,
                self.stored_set(Purpose::RecoveryKey).await?,
            )
        };
        let holds = |root: &EnvelopeSet, recovery: &EnvelopeSet, name: &str| {
            root.get(name).is_some() && recovery.get(name).is_some()
        };
        let mut changed = single || config.seals != configured(set);
        let pending: Vec<String> = set
            .enabled()
            .filter(|m| !holds(&root, &recovery, &m.name))
            .map(|m| m.name.clone())
            .collect();
        let mut complete = true;
        if !pending.is_empty() {
            // Only now a KMS call: a restart with every seal fully wrapped
            // costs the one Decrypt of the path to unsealed.
            let recovery_key = if single {
                self.open_single_recovery(set, &config).await?
            } else {
                set.open(&recovery, Purpose::RecoveryKey, cluster_id)
                    .await?
                    .0
            };
            let keys = [
                (Purpose::RootKey, barrier.root_key()),
                (Purpose::RecoveryKey, &recovery_key),
            ];
            let wrapping = set.wrap(&keys, cluster_id, Some(&pending)).await;
            for (name, envelopes) in wrapping.made {
                let mut envelopes = envelopes.into_iter();
                if let (Some(r), Some(k)) = (envelopes.next(), envelopes.next()) {
                    root.put(r);
                    recovery.put(k);
                    changed = true;
                    tracing::info!(seal = %name, "seal now holds the root key and the recovery key");
                }
            }
            for (name, error) in &wrapping.failed {
                tracing::warn!(seal = %name, error = %error, "seal could not be rewrapped; trying again later");
            }
            complete = wrapping.failed.is_empty();
        }
        let leaving: Vec<String> = set
            .members()
            .iter()
            .filter(|m| {
                m.disabled && (root.get(&m.name).is_some() || recovery.get(&m.name).is_some())
            })
            .map(|m| m.name.clone())
            .collect();
        if !leaving.is_empty() {
            if complete
                && self
                    .verify_enabled(set, &root, cluster_id, barrier.root_key())
                    .await
            {
                for name in &leaving {
                    root.remove(name);
                    recovery.remove(name);
                    tracing::info!(seal = %name, "deleted the envelopes of the disabled seal: every enabled seal holds the keys");
                }
                changed = true;
            } else {
                complete = false;
            }
        }
        if root.is_empty() {
            // One seal's store that no seal could rewrap yet: keep it as it is.
            return Ok(false);
        }
        if changed {
            let new_config = SealConfig {
                format_version: super::seal_config::format_for(MULTISEAL),
                seal_type: MULTISEAL.into(),
                kms_endpoint: None,
                seals: configured(set),
                ..(*config).clone()
            };
            let mut batch = Batch::new();
            batch
                .put(ROOT_KEY_PATH, root.encode())
                .put(RECOVERY_KEY_PATH, recovery.encode())
                .put(SEAL_CONFIG_PATH, new_config.encode());
            self.storage.write(batch).await?;
            self.replace_seal_config(new_config);
            if single {
                tracing::info!("the store of one seal is now wrapped by several seals");
            }
        }
        let wrapped = set
            .members()
            .iter()
            .filter(|m| holds(&root, &recovery, &m.name))
            .map(|m| m.name.clone())
            .collect();
        self.report().wrapped = wrapped;
        Ok(complete)
    }

    /// Opens every enabled seal's root-key envelope again (one Decrypt
    /// each): the check before a leaving seal's envelopes are deleted.
    async fn verify_enabled(
        &self,
        set: &SealSet,
        root: &EnvelopeSet,
        cluster_id: &str,
        root_key: &SecretKey,
    ) -> bool {
        for member in set.enabled() {
            let Some(envelope) = root.get(&member.name) else {
                return false;
            };
            match envelope
                .open_once(member.kms.as_ref(), Purpose::RootKey, cluster_id)
                .await
            {
                Ok(key) if ct_eq(key.expose(), root_key.expose()) => member.record_ok(),
                Ok(_) => return false,
                Err(e) => {
                    member.record_failure(&e.to_string());
                    return false;
                }
            }
        }
        true
    }

    /// The recovery key of a store of one seal, opened by whichever
    /// configured seal holds its key.
    async fn open_single_recovery(
        &self,
        set: &SealSet,
        config: &SealConfig,
    ) -> Result<SecretKey, Error> {
        let envelope = self
            .stored_envelope(RECOVERY_KEY_PATH, Purpose::RecoveryKey)
            .await?;
        let mut tried = Vec::new();
        for member in set.members() {
            match envelope
                .open_once(
                    member.kms.as_ref(),
                    Purpose::RecoveryKey,
                    &config.cluster_id,
                )
                .await
            {
                Ok(key) => return Ok(key),
                Err(e) => tried.push((member.name.clone(), e.to_string())),
            }
        }
        Err(Error::KmsUnavailable(format!(
            "no configured seal opens the recovery key: {}",
            seals::failures(&tried)
        )))
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
