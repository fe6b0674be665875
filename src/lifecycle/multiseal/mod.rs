//! Several seals at work (`enable_multiseal`): which seal opens the root
//! key at start, the rule for changing the set of seals, and Status's list
//! of seals. While unsealed, `watch.rs` checks each seal's key and
//! `rewrap.rs` keeps every seal's envelopes up to date.

use std::collections::BTreeSet;
use std::time::UNIX_EPOCH;

use super::Lifecycle;
use super::auto_unseal::AttemptError;
use super::seal_config::{EmergencyConfig, ROOT_KEY_PATH, SealConfig, StoredSeal};
use crate::seal::envelope::Purpose;
use crate::seal::set::{OpenFailure, SealSet};
use crate::seal::{AWSKMS, MULTISEAL};
use crate::secret::SecretKey;

mod leaving;
mod rewrap;
mod watch;

#[cfg(test)]
mod lifecycle_tests;

/// One seal as Status shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealStatus {
    /// Its name.
    pub name: String,
    /// Its type: `awskms` or, for the emergency seal, `shamir`.
    pub seal_type: &'static str,
    /// Lower is tried first (0 for the emergency seal, never tried by itself).
    pub priority: u32,
    /// Decrypt-only: leaving the set.
    pub disabled: bool,
    /// The configured key (id, ARN or alias); empty for the emergency seal.
    pub key_id: String,
    /// Its last KMS call worked (or none was made yet).
    pub healthy: bool,
    /// When it became unhealthy, ms since the Unix epoch; 0 while healthy.
    pub unhealthy_since_unix_ms: u64,
    /// Why its last call failed; empty while healthy.
    pub last_error: String,
    /// It holds both the root key and the recovery key of the store; for
    /// the emergency seal: it is set up (its shares issued and the root key
    /// encrypted to it).
    pub fully_wrapped: bool,
    /// It holds an envelope of either key: a disabled seal can be deleted
    /// from the config once this is false.
    pub holds_keys: bool,
    /// The emergency seal: shares issued; 0 for a KMS seal, or while the
    /// emergency seal is not set up.
    pub shares: u32,
    /// The emergency seal: shares needed; 0 as `shares` is.
    pub threshold: u32,
}

/// The seal set of `set`, as the seal config records it.
pub(super) fn configured(set: &SealSet) -> Vec<StoredSeal> {
    set.members()
        .iter()
        .map(|m| StoredSeal {
            name: m.name.clone(),
            seal_type: AWSKMS.into(),
            priority: m.priority,
            disabled: m.disabled,
        })
        .collect()
}

/// The enabled seals the store last recorded as fully wrapped.
pub(super) fn recorded_enabled(config: &SealConfig) -> Vec<&str> {
    config
        .seals
        .iter()
        .filter(|s| !s.disabled)
        .map(|s| s.name.as_str())
        .collect()
}

/// Vault's rule for changing the seals: one seal added or one removed (or
/// marked disabled) per restart, and at least one enabled seal in common
/// with the ones that wrap the store now (`stored`).
pub(super) fn check_set_change(stored: &[&str], set: &SealSet) -> Result<(), String> {
    let before: BTreeSet<&str> = stored.iter().copied().collect();
    let after: BTreeSet<&str> = set.enabled().map(|m| m.name.as_str()).collect();
    let listed = |names: Vec<&&str>| {
        names
            .iter()
            .map(|n| crate::text::quote(n))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if before.is_disjoint(&after) {
        return Err(format!(
            "none of the enabled seals in the config wraps the store now (those are {}); keep at least one of them enabled, and add or remove one seal per restart",
            listed(before.iter().collect())
        ));
    }
    let added: Vec<&&str> = after.difference(&before).collect();
    let removed: Vec<&&str> = before.difference(&after).collect();
    if added.len() + removed.len() > 1 {
        let mut changes = Vec::new();
        if !added.is_empty() {
            changes.push(format!("adds {}", listed(added)));
        }
        if !removed.is_empty() {
            changes.push(format!("removes or disables {}", listed(removed)));
        }
        return Err(format!(
            "the config {} at once; change one seal per restart (add one, or remove one by marking it disabled = true), so that a mistake never leaves the store without a working seal",
            changes.join(" and ")
        ));
    }
    Ok(())
}

impl Lifecycle {
    /// The path to unsealed with several seals: the first seal, in priority
    /// order, that opens the root key (one Decrypt attempt each). A store of
    /// one awskms seal (before `enable_multiseal`) opens with whichever
    /// configured seal holds its key; the active node then rewraps it for
    /// every seal. Returns the root key and the seal's name.
    ///
    /// Whether every seal failed is recorded when the attempt ends, never
    /// cleared while it runs: emergency keys entered meanwhile are judged
    /// by the last attempt that ended.
    pub(super) async fn open_root_with_set(
        &self,
        set: &SealSet,
        config: &SealConfig,
    ) -> Result<(SecretKey, String), AttemptError> {
        let mut seals_failed = false;
        let opened = self.open_root(set, config, &mut seals_failed).await;
        self.report().seals_failed = seals_failed;
        opened
    }

    async fn open_root(
        &self,
        set: &SealSet,
        config: &SealConfig,
        seals_failed: &mut bool,
    ) -> Result<(SecretKey, String), AttemptError> {
        let permanent = |message: String| AttemptError {
            message,
            transient: false,
        };
        let mut open_failed = |failure: OpenFailure| {
            // Every seal holding an envelope was asked and none opened it:
            // the one failure after which emergency keys are taken.
            *seals_failed = true;
            AttemptError {
                transient: failure.transient,
                message: failure.to_string(),
            }
        };
        if config.seal_type == AWSKMS {
            let envelope = self
                .stored_envelope(ROOT_KEY_PATH, Purpose::RootKey)
                .await?;
            let (key, by) = set
                .open_unnamed(&envelope, Purpose::RootKey, &config.cluster_id)
                .await
                .map_err(&mut open_failed)?;
            check_set_change(&[by.as_str()], set).map_err(permanent)?;
            return Ok((key, by));
        }
        if config.seal_type != MULTISEAL {
            return Err(permanent(format!(
                "the store was initialized with the {} seal, not several seals",
                crate::text::quote(&config.seal_type)
            )));
        }
        check_set_change(&recorded_enabled(config), set).map_err(permanent)?;
        let envelopes = self.stored_set(Purpose::RootKey).await?;
        set.open(&envelopes, Purpose::RootKey, &config.cluster_id)
            .await
            .map_err(open_failed)
    }

    /// Status's list of seals: every configured seal, in priority order.
    /// `emergency`: the store's emergency seal, once set up.
    pub(super) fn seal_statuses(
        &self,
        set: &SealSet,
        emergency: Option<&EmergencyConfig>,
    ) -> Vec<SealStatus> {
        let (wrapped, holding) = {
            let report = self.report();
            (report.wrapped.clone(), report.holding.clone())
        };
        let mut seals: Vec<SealStatus> = set
            .members()
            .iter()
            .map(|m| {
                let health = m.health();
                SealStatus {
                    name: m.name.clone(),
                    seal_type: AWSKMS,
                    priority: m.priority,
                    disabled: m.disabled,
                    key_id: m.kms.key_id().to_string(),
                    healthy: health.healthy(),
                    unhealthy_since_unix_ms: health.unhealthy_since.map_or(0, |at| {
                        at.duration_since(UNIX_EPOCH)
                            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                    }),
                    last_error: health.last_error.unwrap_or_default(),
                    fully_wrapped: wrapped.contains(&m.name),
                    holds_keys: holding.contains(&m.name),
                    shares: 0,
                    threshold: 0,
                }
            })
            .collect();
        if let Some(name) = set.emergency() {
            seals.push(SealStatus {
                name: name.to_string(),
                seal_type: crate::seal::SHAMIR,
                priority: 0,
                disabled: false,
                key_id: String::new(),
                healthy: true,
                unhealthy_since_unix_ms: 0,
                last_error: String::new(),
                fully_wrapped: emergency.is_some(),
                holds_keys: emergency.is_some(),
                shares: emergency.map_or(0, |e| e.secret_shares),
                threshold: emergency.map_or(0, |e| e.secret_threshold),
            });
        }
        seals
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::seal::kms::Kms;
    use crate::seal::kms::testing::FakeKms;
    use crate::seal::set::Member;

    fn set(enabled: &[&str], disabled: &[&str]) -> SealSet {
        let member = |(i, name): (usize, &&str), off: bool| {
            Member::new(
                name.to_string(),
                u32::try_from(i).unwrap() + if off { 100 } else { 1 },
                off,
                Duration::ZERO,
                Arc::new(FakeKms::new()) as Arc<dyn Kms>,
            )
        };
        let members = enabled
            .iter()
            .enumerate()
            .map(|m| member(m, false))
            .chain(disabled.iter().enumerate().map(|m| member(m, true)))
            .collect();
        SealSet::new(members, None)
    }

    #[test]
    fn one_seal_changes_per_restart() {
        assert_eq!(check_set_change(&["a"], &set(&["a"], &[])), Ok(()));
        assert_eq!(check_set_change(&["a"], &set(&["a", "b"], &[])), Ok(()));
        assert_eq!(check_set_change(&["a", "b"], &set(&["a"], &["b"])), Ok(()));
        assert_eq!(check_set_change(&["a", "b"], &set(&["b"], &[])), Ok(()));
        assert_eq!(
            check_set_change(&["a"], &set(&["a", "b", "c"], &[])),
            Err("the config adds \"b\", \"c\" at once; change one seal per restart (add one, or remove one by marking it disabled = true), so that a mistake never leaves the store without a working seal".into())
        );
        assert_eq!(
            check_set_change(&["a", "b"], &set(&["a", "c"], &["b"])).unwrap_err(),
            "the config adds \"c\" and removes or disables \"b\" at once; change one seal per restart (add one, or remove one by marking it disabled = true), so that a mistake never leaves the store without a working seal"
        );
        assert_eq!(
            check_set_change(&["a"], &set(&["b"], &["a"])).unwrap_err(),
            "none of the enabled seals in the config wraps the store now (those are \"a\"); keep at least one of them enabled, and add or remove one seal per restart"
        );
    }
}
