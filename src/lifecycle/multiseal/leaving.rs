//! What leaves the store in a rewrap, and when: the recorded seal list
//! (a seal removed or disabled), a leaving seal's envelopes (after every
//! enabled seal opened both keys again), and an emergency seal no config
//! names.

use std::collections::BTreeSet;

use super::{configured, recorded_enabled};
use crate::lifecycle::Lifecycle;
use crate::lifecycle::seal_config::{SealConfig, StoredSeal};
use crate::seal::envelope::Purpose;
use crate::seal::set::{EnvelopeSet, SealSet};
use crate::secret::{SecretKey, ct_eq};

/// What becomes of an emergency seal no config names, in one rewrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Retirement {
    /// Retired in this write.
    Now,
    /// This restart changes the KMS seals too: one change at a time.
    AtALaterRestart,
    /// The KMS seals are not all verified yet: the rewrap tries again.
    NotYet,
}

/// The seal list to record: a seal added joins it once it holds both keys,
/// so a further change waits for it (Vault's rule); a seal removed or
/// disabled leaves it at once (one whose key is gone for good could never
/// complete), but only while a seal that stays enabled in it holds both
/// keys and was seen `working` in this rewrap, so the record never names
/// only seals that cannot open the store.
pub(super) fn to_record(
    set: &SealSet,
    recorded: &[StoredSeal],
    (root, recovery): (&EnvelopeSet, &EnvelopeSet),
    working: &[String],
    complete: bool,
) -> Vec<StoredSeal> {
    let holds = |name: &str| root.get(name).is_some() && recovery.get(name).is_some();
    if complete {
        return configured(set);
    }
    let adopted: Vec<StoredSeal> = configured(set)
        .into_iter()
        .filter(|s| {
            holds(&s.name)
                || recorded
                    .iter()
                    .any(|r| r.name == s.name && (!r.disabled || s.disabled))
        })
        .collect();
    if adopted
        .iter()
        .any(|s| !s.disabled && holds(&s.name) && working.contains(&s.name))
    {
        adopted
    } else {
        recorded.to_vec()
    }
}

impl Lifecycle {
    /// Whether the emergency seal no config names is retired in this
    /// write: only while no change of the KMS seals is waiting to be
    /// recorded (one change at a time), once every enabled seal holds both
    /// keys (`complete`) and opened both again, as for a KMS seal leaving.
    pub(super) async fn may_retire_emergency(
        &self,
        set: &SealSet,
        recorded_config: &SealConfig,
        envelopes: (&EnvelopeSet, &EnvelopeSet),
        keys: Option<(&SecretKey, &SecretKey)>,
        complete: bool,
    ) -> Retirement {
        let recorded: BTreeSet<&str> = recorded_enabled(recorded_config).into_iter().collect();
        let configured: BTreeSet<&str> = set.enabled().map(|m| m.name.as_str()).collect();
        if recorded != configured {
            tracing::info!(
                "no config names the emergency seal, but this restart also changes the KMS seals: the emergency seal is retired at a restart that changes nothing else"
            );
            return Retirement::AtALaterRestart;
        }
        match keys {
            Some(keys)
                if complete
                    && verify_enabled(
                        set,
                        envelopes.0,
                        envelopes.1,
                        &recorded_config.cluster_id,
                        keys,
                    )
                    .await =>
            {
                Retirement::Now
            }
            _ => Retirement::NotYet,
        }
    }
}

/// Opens every enabled seal's envelopes of both keys again (two Decrypts
/// each) and compares them with the keys in use: the check before a
/// leaving seal's envelopes are deleted.
pub(super) async fn verify_enabled(
    set: &SealSet,
    root: &EnvelopeSet,
    recovery: &EnvelopeSet,
    cluster_id: &str,
    (root_key, recovery_key): (&SecretKey, &SecretKey),
) -> bool {
    for member in set.enabled() {
        for (envelopes, purpose, key) in [
            (root, Purpose::RootKey, root_key),
            (recovery, Purpose::RecoveryKey, recovery_key),
        ] {
            let Some(envelope) = envelopes.get(&member.name) else {
                return false;
            };
            match envelope
                .open_once(member.kms.as_ref(), purpose, cluster_id)
                .await
            {
                Ok(opened) if ct_eq(opened.expose(), key.expose()) => member.record_ok(),
                Ok(_) => return false,
                Err(e) => {
                    member.record_failure(&e.to_string());
                    return false;
                }
            }
        }
    }
    true
}
