//! Several KMS seals at once (`enable_multiseal`): the root key and the
//! recovery key are wrapped by every enabled seal, one named envelope per
//! seal ([`EnvelopeSet`]), and opened by the first seal in priority order
//! that answers ([`SealSet::open`]). Each seal keeps its own health, so
//! Status can say which one failed, since when and why.
//!
//! This module makes the KMS calls and keeps the health; where the
//! envelopes are stored, and when they are rewritten, is the lifecycle's.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::{Duration, SystemTime};

use super::envelope::{Envelope, Purpose};
use super::kms::Kms;
use crate::secret::{SecretKey, ct_eq};

mod envelopes;

pub use envelopes::EnvelopeSet;

/// One seal's health, as its last KMS call left it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// When its calls started failing; `None` while healthy.
    pub unhealthy_since: Option<SystemTime>,
    /// Why its last call failed, in one sentence.
    pub last_error: Option<String>,
    /// Failures in a row, for its backoff.
    pub failures: u32,
}

impl Health {
    /// Whether its last call worked (or none was made yet).
    pub fn healthy(&self) -> bool {
        self.unhealthy_since.is_none()
    }
}

/// One configured KMS seal.
pub struct Member {
    /// Its name: in the encryption context, the envelope and Status.
    pub name: String,
    /// Lower is tried first.
    pub priority: u32,
    /// Decrypt-only: tried at unseal, wraps nothing new.
    pub disabled: bool,
    /// How often its key is checked while unsealed; zero: never.
    pub health_check_interval: Duration,
    /// Its KMS.
    pub kms: Arc<dyn Kms>,
    health: Mutex<Health>,
}

impl Member {
    /// A seal named `name`, checked every `health_check_interval`.
    pub fn new(
        name: impl Into<String>,
        priority: u32,
        disabled: bool,
        health_check_interval: Duration,
        kms: Arc<dyn Kms>,
    ) -> Self {
        Self {
            name: name.into(),
            priority,
            disabled,
            health_check_interval,
            kms,
            health: Mutex::default(),
        }
    }

    /// Its health now.
    pub fn health(&self) -> Health {
        self.lock_health().clone()
    }

    /// Records a call that worked.
    pub fn record_ok(&self) {
        let mut health = self.lock_health();
        if !health.healthy() {
            tracing::info!(seal = %self.name, "seal is healthy again");
        }
        *health = Health::default();
    }

    /// Records a call that failed, with why.
    pub fn record_failure(&self, error: &str) {
        let mut health = self.lock_health();
        if health.healthy() {
            tracing::warn!(seal = %self.name, error, "seal is unhealthy");
        }
        health.unhealthy_since.get_or_insert_with(SystemTime::now);
        health.last_error = Some(error.to_string());
        health.failures = health.failures.saturating_add(1);
    }

    fn lock_health(&self) -> MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Why no seal opened an envelope set: what each seal said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenFailure {
    /// Each seal tried, with its error sentence, in priority order.
    pub tried: Vec<(String, String)>,
    /// Whether retrying later can work (a seal was unreachable, throttled,
    /// or its key unusable, rather than every blob refused).
    pub transient: bool,
}

impl std::fmt::Display for OpenFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.tried.is_empty() {
            return f.write_str("no configured seal holds an envelope of the key");
        }
        f.write_str("no seal could open the key: ")?;
        for (i, (seal, error)) in self.tried.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            // Seal names are checked by the config: letters, digits, - and _.
            write!(f, "seal \"{seal}\" said: {error}")?;
        }
        Ok(())
    }
}

/// What [`SealSet::wrap`] made: for each seal that answered, one envelope
/// per key given; for each that did not, why.
pub struct Wrapping {
    /// Per seal, the envelopes in the order of the keys given.
    pub made: Vec<(String, Vec<Envelope>)>,
    /// Seals that could not wrap, with the error sentence.
    pub failed: Vec<(String, String)>,
}

/// The configured KMS seals, in priority order.
pub struct SealSet {
    members: Vec<Member>,
    /// The name of the emergency Shamir seal, when one is configured.
    emergency: Option<String>,
}

impl SealSet {
    /// The set of `members` (sorted here by priority) and the emergency seal.
    pub fn new(mut members: Vec<Member>, emergency: Option<String>) -> Self {
        members.sort_by_key(|m| m.priority);
        Self { members, emergency }
    }

    /// Every configured KMS seal, in priority order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The seal named `name`.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    /// The seals that wrap new values, in priority order.
    pub fn enabled(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| !m.disabled)
    }

    /// The emergency Shamir seal's name, when one is configured.
    pub fn emergency(&self) -> Option<&str> {
        self.emergency.as_deref()
    }

    /// Opens `set` with the first seal, in priority order, that holds an
    /// envelope in it and answers: one Decrypt attempt per seal, each bounded
    /// by that seal's `kms_timeout`. Returns the key and the seal's name.
    pub async fn open(
        &self,
        set: &EnvelopeSet,
        purpose: Purpose,
        cluster_id: &str,
    ) -> Result<(SecretKey, String), OpenFailure> {
        self.open_first(|m| set.get(&m.name), purpose, cluster_id)
            .await
    }

    /// [`Self::open`] for the one envelope of a store of one awskms seal
    /// (no seal name): every seal is asked, in priority order, and the one
    /// that holds its key opens it.
    pub async fn open_unnamed(
        &self,
        envelope: &Envelope,
        purpose: Purpose,
        cluster_id: &str,
    ) -> Result<(SecretKey, String), OpenFailure> {
        self.open_first(|_| Some(envelope), purpose, cluster_id)
            .await
    }

    /// Asks each seal, in priority order, to open its envelope
    /// (`envelope_of`), one Decrypt attempt each, until one does.
    async fn open_first<'a>(
        &self,
        envelope_of: impl Fn(&Member) -> Option<&'a Envelope>,
        purpose: Purpose,
        cluster_id: &str,
    ) -> Result<(SecretKey, String), OpenFailure> {
        let mut failure = OpenFailure {
            tried: Vec::new(),
            transient: false,
        };
        for member in &self.members {
            let Some(envelope) = envelope_of(member) else {
                continue;
            };
            match envelope
                .open_once(member.kms.as_ref(), purpose, cluster_id)
                .await
            {
                Ok(key) => {
                    member.record_ok();
                    return Ok((key, member.name.clone()));
                }
                Err(e) => {
                    let message = e.to_string();
                    member.record_failure(&message);
                    failure.transient |= e.is_transient();
                    failure.tried.push((member.name.clone(), message));
                }
            }
        }
        Err(failure)
    }

    /// Wraps each of `keys` under every enabled seal named in `seals` (all
    /// enabled seals when `None`), the seals side by side, and opens each
    /// envelope again, so a seal whose key policy lacks kms:Decrypt is found
    /// before its envelope is stored. Writes nothing.
    pub async fn wrap(
        &self,
        keys: &[(Purpose, &SecretKey)],
        cluster_id: &str,
        seals: Option<&[String]>,
    ) -> Wrapping {
        let chosen: Vec<&Member> = self
            .enabled()
            .filter(|m| seals.is_none_or(|names| names.contains(&m.name)))
            .collect();
        // The seals' calls run side by side in this task (not spawned), so
        // they stay inside the caller's crash-point scope.
        let calls = chosen
            .iter()
            .map(|m| Box::pin(wrap_one(m.kms.as_ref(), &m.name, cluster_id, keys)) as Pending<'_>)
            .collect();
        let results = join_all(calls).await;
        let mut wrapping = Wrapping {
            made: Vec::new(),
            failed: Vec::new(),
        };
        for (member, result) in chosen.into_iter().zip(results) {
            match result {
                Ok(envelopes) => {
                    member.record_ok();
                    wrapping.made.push((member.name.clone(), envelopes));
                }
                Err(message) => {
                    member.record_failure(&message);
                    wrapping.failed.push((member.name.clone(), message));
                }
            }
        }
        wrapping
    }
}

/// One seal's share of [`SealSet::wrap`], under way.
type Pending<'a> = Pin<Box<dyn Future<Output = Result<Vec<Envelope>, String>> + Send + 'a>>;

/// Runs `calls` side by side until all are done; their outputs in order.
async fn join_all<T>(calls: Vec<Pin<Box<dyn Future<Output = T> + Send + '_>>>) -> Vec<T> {
    let mut calls: Vec<_> = calls.into_iter().map(Some).collect();
    let mut done: Vec<Option<T>> = calls.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, out) in calls.iter_mut().zip(done.iter_mut()) {
            if let Some(call) = slot {
                match call.as_mut().poll(cx) {
                    Poll::Ready(value) => {
                        *out = Some(value);
                        *slot = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    done.into_iter().flatten().collect()
}

/// One seal's share of [`SealSet::wrap`].
async fn wrap_one(
    kms: &dyn Kms,
    seal: &str,
    cluster_id: &str,
    keys: &[(Purpose, &SecretKey)],
) -> Result<Vec<Envelope>, String> {
    let mut envelopes = Vec::with_capacity(keys.len());
    for (purpose, key) in keys {
        let envelope = Envelope::seal_named(kms, *purpose, cluster_id, seal, key)
            .await
            .map_err(|e| e.to_string())?;
        envelopes.push(envelope);
    }
    // Each opened again: a key policy that allows Decrypt for one purpose
    // only is found before any envelope is stored.
    for (envelope, (purpose, key)) in envelopes.iter().zip(keys) {
        let reopened = envelope
            .open_once(kms, *purpose, cluster_id)
            .await
            .map_err(|e| e.to_string())?;
        if !ct_eq(reopened.expose(), key.expose()) {
            return Err("KMS returned a different key than it was given".into());
        }
    }
    Ok(envelopes)
}

#[cfg(test)]
mod tests;
