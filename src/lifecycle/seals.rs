//! The stored keys of an auto-unseal store, for one KMS seal or several:
//! opening the root key or the recovery key, and wrapping a new one into a
//! write. One seal keeps one envelope per key (`core/root-key`,
//! `core/recovery-key`); several seals keep a set of named envelopes there
//! ([`EnvelopeSet`]), and a seal missing from a set is not fully wrapped
//! until [`Lifecycle::reconcile_seals`] (multiseal/rewrap.rs) rewraps it.

use std::sync::Arc;

use super::Lifecycle;
use super::seal_config::{RECOVERY_KEY_PATH, ROOT_KEY_PATH, SealConfig};
use crate::error::Error;
use crate::seal::envelope::{Envelope, EnvelopeError, Purpose};
use crate::seal::set::{EnvelopeSet, OpenFailure, SealSet, Wrapping};
use crate::seal::{Seal, wrap};
use crate::secret::SecretKey;
use crate::storage::Backend;
use crate::storage::Batch;

/// Where the key of `purpose` is stored.
pub(super) fn path_of(purpose: Purpose) -> &'static str {
    match purpose {
        Purpose::RootKey => ROOT_KEY_PATH,
        Purpose::RecoveryKey => RECOVERY_KEY_PATH,
    }
}

/// The ARN in a stored root-key blob of the one seal; empty for a set of
/// several seals' envelopes (Status lists each seal's instead).
pub(super) fn stored_key_arn(blob: &[u8]) -> Result<String, EnvelopeError> {
    if EnvelopeSet::decode(Purpose::RootKey, blob).is_ok() {
        return Ok(String::new());
    }
    Envelope::decode(Purpose::RootKey, blob).map(|e| e.key_arn)
}

/// The seals that hold both keys of a store of several seals, and those
/// that hold either (none for one seal's store, or when the sets cannot be
/// read: the next rewrap says).
pub(super) async fn wrapped_in(
    storage: &Arc<dyn Backend>,
    config: &SealConfig,
) -> (Vec<String>, Vec<String>) {
    if config.seal_type != crate::seal::MULTISEAL {
        return (Vec::new(), Vec::new());
    }
    let read = |purpose: Purpose| async move {
        let blob = storage.get(path_of(purpose)).await.ok().flatten()?;
        EnvelopeSet::decode(purpose, &blob).ok()
    };
    let (Some(root), Some(recovery)) = (
        read(Purpose::RootKey).await,
        read(Purpose::RecoveryKey).await,
    ) else {
        return (Vec::new(), Vec::new());
    };
    let wrapped = root
        .seals()
        .filter(|name| recovery.get(name).is_some())
        .map(str::to_string)
        .collect();
    let mut holding: Vec<String> = root
        .seals()
        .chain(recovery.seals())
        .map(str::to_string)
        .collect();
    holding.sort();
    holding.dedup();
    (wrapped, holding)
}

impl From<OpenFailure> for Error {
    fn from(failure: OpenFailure) -> Self {
        if failure.transient {
            Error::KmsUnavailable(failure.to_string())
        } else {
            Error::KmsRefused(failure.to_string())
        }
    }
}

/// "seal "a" said: …; seal "b" said: …", for the seals that failed.
pub(super) fn failures(failed: &[(String, String)]) -> String {
    failed
        .iter()
        .map(|(seal, error)| format!("seal {} said: {error}", crate::text::quote(seal)))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Lifecycle {
    /// Reads a stored set of several seals' envelopes.
    pub(super) async fn stored_set(&self, purpose: Purpose) -> Result<EnvelopeSet, Error> {
        let path = path_of(purpose);
        let blob = self.storage.get(path).await?.ok_or_else(|| {
            Error::Internal(format!(
                "storage has no {path}; the stored seal data is damaged"
            ))
        })?;
        EnvelopeSet::decode(purpose, &blob).map_err(|e| Error::Internal(e.to_string()))
    }

    /// Opens the stored key of `purpose` with KMS: the one seal's envelope,
    /// or the first of several seals, in priority order, that answers.
    /// Returns the key and, with several seals, the name of the one that
    /// opened it.
    pub(super) async fn open_stored_key(
        &self,
        purpose: Purpose,
        cluster_id: &str,
    ) -> Result<(SecretKey, Option<String>), Error> {
        match &self.seal {
            Seal::AwsKms(kms) => {
                let key = self
                    .stored_envelope(path_of(purpose), purpose)
                    .await?
                    .open(kms.as_ref(), purpose, cluster_id)
                    .await?;
                Ok((key, None))
            }
            Seal::Multi(set) => {
                let path = path_of(purpose);
                let blob = self.storage.get(path).await?.ok_or_else(|| {
                    Error::Internal(format!(
                        "storage has no {path}; the stored seal data is damaged"
                    ))
                })?;
                // A store of one seal until the active node's rewrap: its
                // one envelope, which the seal holding its key opens.
                let (key, by) = match EnvelopeSet::decode(purpose, &blob) {
                    Ok(stored) => set.open(&stored, purpose, cluster_id).await?,
                    Err(_) => {
                        let envelope = Envelope::decode(purpose, &blob)
                            .map_err(|e| Error::Internal(e.to_string()))?;
                        set.open_unnamed(&envelope, purpose, cluster_id).await?
                    }
                };
                Ok((key, Some(by)))
            }
            Seal::Shamir => Err(Error::Internal(
                "the Shamir seal keeps no key wrapped by KMS".into(),
            )),
        }
    }

    /// Whether this node's seal opens a store of `stored_type`: its own, or
    /// a store of one awskms seal when several seals are configured (the
    /// active node rewraps it for each).
    pub(super) fn seal_fits(&self, stored_type: &str) -> bool {
        stored_type == self.seal.name()
            || (stored_type == crate::seal::AWSKMS && matches!(self.seal, Seal::Multi(_)))
    }

    /// Several seals configured, and the store still of one awskms seal
    /// (its rewrap for every seal has not run yet).
    pub(super) fn not_yet_several(&self) -> bool {
        matches!(self.seal, Seal::Multi(_))
            && self
                .seal_config()
                .is_some_and(|c| c.seal_type == crate::seal::AWSKMS)
    }
}

impl Lifecycle {
    /// Wraps a new key of `purpose` (rotate-root: the root key; rekey: the
    /// recovery key) and puts it into `batch`. One seal: under the same KMS
    /// key as the stored envelopes. Several: under every enabled seal that
    /// answers (at least one); a seal that does not loses its envelope of
    /// this key (it held the old one) and is rewrapped once healthy. A new
    /// root key is also encrypted to the emergency seal, when the store
    /// (`config`) has one set up, in the same batch.
    pub(super) async fn wrap_into(
        &self,
        batch: &mut Batch,
        purpose: Purpose,
        config: &SealConfig,
        key: &SecretKey,
    ) -> Result<(), Error> {
        let cluster_id = config.cluster_id.as_str();
        match &self.seal {
            Seal::AwsKms(kms) => {
                let stored_arn = self.report().key_arn.clone();
                let envelope =
                    wrap::seal_beside(kms.as_ref(), purpose, cluster_id, key, &stored_arn).await?;
                batch.put(path_of(purpose), envelope.encode());
                Ok(())
            }
            Seal::Multi(_) if self.not_yet_several() => Err(Error::FailedPrecondition(
                "the store is moving from one seal to several: wait until `strongroom status` shows every seal fully wrapped, then try again".into(),
            )),
            Seal::Multi(set) => {
                let wrapping = set.wrap(&[(purpose, key)], cluster_id, None).await;
                let stored = set_of(&wrapping, 0).ok_or_else(|| {
                    Error::KmsUnavailable(format!(
                        "no seal could wrap the new {}, so nothing changed: {}",
                        purpose.as_str(),
                        failures(&wrapping.failed)
                    ))
                })?;
                for (seal, error) in &wrapping.failed {
                    tracing::warn!(seal = %seal, error = %error, "seal could not wrap the new {}; it is rewrapped once healthy", purpose.as_str());
                }
                batch.put(path_of(purpose), stored.encode());
                self.rewrap_emergency_into(batch, config, purpose, key)
                    .await?;
                // A seal that did not wrap is no longer fully wrapped (said
                // at once; the rewrap after its next good health check
                // reads the truth back from storage).
                self.report()
                    .wrapped
                    .retain(|name| stored.get(name).is_some());
                if !wrapping.failed.is_empty() {
                    self.rewrap_wanted.notify_one();
                }
                Ok(())
            }
            Seal::Shamir => Err(Error::Internal(
                "the Shamir seal keeps no key wrapped by KMS".into(),
            )),
        }
    }
}

/// The `index`th envelope of every seal in `wrapping`, as a set; `None`
/// when no seal wrapped.
pub(super) fn set_of(wrapping: &Wrapping, index: usize) -> Option<EnvelopeSet> {
    if wrapping.made.is_empty() {
        return None;
    }
    let mut set = EnvelopeSet::default();
    for (_, envelopes) in &wrapping.made {
        set.put(envelopes.get(index)?.clone());
    }
    Some(set)
}

/// Wraps the root key and the recovery key of a new store (init) under
/// every enabled seal; every one must answer, or nothing is written.
pub(super) async fn wrap_new_store(
    set: &SealSet,
    cluster_id: &str,
    root_key: &SecretKey,
    recovery_key: &SecretKey,
) -> Result<(EnvelopeSet, EnvelopeSet), Error> {
    let wrapping = set
        .wrap(
            &[
                (Purpose::RootKey, root_key),
                (Purpose::RecoveryKey, recovery_key),
            ],
            cluster_id,
            None,
        )
        .await;
    if !wrapping.failed.is_empty() {
        return Err(Error::KmsUnavailable(format!(
            "init needs every configured seal to answer, so nothing was written: {}",
            failures(&wrapping.failed)
        )));
    }
    match (set_of(&wrapping, 0), set_of(&wrapping, 1)) {
        (Some(root), Some(recovery)) => Ok((root, recovery)),
        _ => Err(Error::Internal(
            "no seal is enabled, so init has nothing to wrap the root key with".into(),
        )),
    }
}
