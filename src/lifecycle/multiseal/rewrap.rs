//! The active node keeps every enabled seal's envelopes of the root key
//! and the recovery key: a seal that missed a write (it was down during a
//! rotate-root or rekey), a seal added to the config, and a store of one
//! seal before `enable_multiseal` are rewrapped; the envelopes of a seal
//! marked `disabled = true` are deleted once every enabled seal holds both
//! keys and opened both again; an emergency seal no config names is
//! retired. The KMS calls run without the key operations' lock; the one
//! write after them happens under it, and only if nothing it read changed
//! meanwhile.

use std::sync::Arc;

use super::leaving::{Retirement, to_record, verify_enabled};
use super::{check_set_change, configured, recorded_enabled};
use crate::barrier::Barrier;
use crate::error::Error;
use crate::lifecycle::seal_config::{
    RECOVERY_KEY_PATH, ROOT_KEY_PATH, SEAL_CONFIG_PATH, SealConfig,
};
use crate::lifecycle::{Lifecycle, State};
use crate::seal::envelope::Purpose;
use crate::seal::set::{EnvelopeSet, SealSet};
use crate::seal::{AWSKMS, MULTISEAL};
use crate::storage::Batch;

/// The three stored entries a rewrap reads and rewrites, as bytes: the
/// write happens only if they are still these.
type Stored = [Option<Vec<u8>>; 3];

impl Lifecycle {
    /// Brings the stored envelopes in line with the configured seals (see
    /// the module). Returns whether every enabled seal is fully wrapped and
    /// nothing is left to delete.
    pub(in crate::lifecycle) async fn reconcile_seals(&self, set: &SealSet) -> Result<bool, Error> {
        // Read under the key operations' lock, so never halfway through a
        // rotate-root or rekey; the KMS calls below run without it.
        let (config, barrier, read) = {
            let _key_ops = self.key_ops.lock().await;
            let (config, barrier) = match &*self.read() {
                State::Unsealed { config, barrier } => (Arc::clone(config), Arc::clone(barrier)),
                _ => return Ok(false),
            };
            (config, barrier, self.read_stored().await?)
        };
        let cluster_id = config.cluster_id.as_str();
        let single = config.seal_type == AWSKMS;
        let decode = |purpose: Purpose, blob: &Option<Vec<u8>>| match blob {
            Some(bytes) if !single => {
                EnvelopeSet::decode(purpose, bytes).map_err(|e| Error::Internal(e.to_string()))
            }
            _ => Ok(EnvelopeSet::default()),
        };
        let mut root = decode(Purpose::RootKey, &read[0])?;
        let mut recovery = decode(Purpose::RecoveryKey, &read[1])?;
        let holds = |root: &EnvelopeSet, recovery: &EnvelopeSet, name: &str| {
            root.get(name).is_some() && recovery.get(name).is_some()
        };
        let pending: Vec<String> = set
            .enabled()
            .filter(|m| !holds(&root, &recovery, &m.name))
            .map(|m| m.name.clone())
            .collect();
        let leaving: Vec<String> = set
            .members()
            .iter()
            .filter(|m| {
                m.disabled && (root.get(&m.name).is_some() || recovery.get(&m.name).is_some())
            })
            .map(|m| m.name.clone())
            .collect();
        // The seals the store records as wrapping it, against which a
        // change of the set is checked (the recovery key's opener for a
        // store of one seal).
        let mut recorded = config.seals.clone();
        let mut recovery_key = None;
        // The seals seen to work in this rewrap: the one that opened the
        // recovery key, and each one that wrapped (and opened) both keys.
        let mut working: Vec<String> = Vec::new();
        // No config names the emergency seal any more: it is retired once
        // the KMS seals are verified (below).
        let mut retiring = set.emergency().is_none() && config.emergency.is_some();
        if single || !pending.is_empty() || !leaving.is_empty() || retiring {
            // Only now a KMS call: a restart with every seal fully wrapped
            // costs the one Decrypt of the path to unsealed.
            let (key, by) = if single {
                let envelope = self
                    .stored_envelope(RECOVERY_KEY_PATH, Purpose::RecoveryKey)
                    .await?;
                set.open_unnamed(&envelope, Purpose::RecoveryKey, cluster_id)
                    .await?
            } else {
                match set.open(&recovery, Purpose::RecoveryKey, cluster_id).await {
                    Ok(opened) => opened,
                    Err(e) => (self.break_glass_or(e.into())?, String::new()),
                }
            };
            if single {
                recorded = configured(set)
                    .into_iter()
                    .filter(|s| s.name == by)
                    .collect();
            }
            working.push(by);
            recovery_key = Some(key);
        }
        let recorded_config = SealConfig {
            seals: recorded.clone(),
            ..(*config).clone()
        };
        check_set_change(&recorded_enabled(&recorded_config), set)
            .map_err(Error::FailedPrecondition)?;

        let mut changed = single;
        let mut complete = true;
        if let (false, Some(recovery_key)) = (pending.is_empty(), &recovery_key) {
            let keys = [
                (Purpose::RootKey, barrier.root_key()),
                (Purpose::RecoveryKey, recovery_key),
            ];
            let wrapping = set.wrap(&keys, cluster_id, Some(&pending)).await;
            for (name, envelopes) in wrapping.made {
                let mut envelopes = envelopes.into_iter();
                if let (Some(r), Some(k)) = (envelopes.next(), envelopes.next()) {
                    root.put(r);
                    recovery.put(k);
                    changed = true;
                    working.push(name.clone());
                    tracing::info!(seal = %name, "seal now holds the root key and the recovery key");
                }
            }
            for (name, error) in &wrapping.failed {
                tracing::warn!(seal = %name, error = %error, "seal could not be rewrapped; trying again later");
            }
            complete = wrapping.failed.is_empty();
        }
        if let (false, Some(recovery_key)) = (leaving.is_empty(), &recovery_key) {
            let keys = (barrier.root_key(), recovery_key);
            if complete && verify_enabled(set, &root, &recovery, cluster_id, keys).await {
                for name in &leaving {
                    root.remove(name);
                    recovery.remove(name);
                    tracing::info!(seal = %name, "deleted the envelopes of the disabled seal: every enabled seal holds both keys and opened them again");
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
        if retiring {
            let keys = recovery_key.as_ref().map(|k| (barrier.root_key(), k));
            let retirement = self
                .may_retire_emergency(set, &recorded_config, (&root, &recovery), keys, complete)
                .await;
            retiring = retirement == Retirement::Now;
            complete &= retirement != Retirement::NotYet;
            changed |= retiring;
        }
        let adopted = to_record(set, &recorded, (&root, &recovery), &working, complete);
        let recorded_changed = adopted != config.seals;
        changed |= recorded_changed;
        let recorded_names = recorded_changed.then(|| {
            let enabled: Vec<&str> = adopted
                .iter()
                .filter(|s| !s.disabled)
                .map(|s| s.name.as_str())
                .collect();
            enabled.join(", ")
        });
        let new_config = changed.then(|| SealConfig {
            format_version: crate::lifecycle::seal_config::format_for(MULTISEAL),
            seal_type: MULTISEAL.into(),
            kms_endpoint: None,
            seals: adopted,
            emergency: if retiring {
                None
            } else {
                recorded_config.emergency.clone()
            },
            ..recorded_config
        });
        self.commit_seals(
            set,
            &barrier,
            &read,
            (&root, &recovery),
            new_config.as_ref(),
        )
        .await?;
        if single && changed {
            tracing::info!("the store of one seal is now wrapped by several seals");
        }
        if let Some(names) = recorded_names {
            // The seals the next change of the config is checked against.
            tracing::info!(seals = %names, "the store records its seals; the next change of the seals is checked against these");
        }
        if retiring {
            tracing::warn!(
                "the emergency seal is retired: no config names it, so its keys no longer open this store and what the store kept of it is deleted"
            );
        }
        Ok(complete)
    }

    /// The end of a rewrap, under the key operations' lock, and only while
    /// this node is still unsealed with `barrier` and the stored entries are
    /// still `read` (otherwise another key operation won: a rotate-root, a
    /// rekey, a restore, another node's take-over, and the rewrap runs again
    /// from what it wrote): the one write, when `config` is given, and
    /// Status's view of the seals.
    async fn commit_seals(
        &self,
        set: &SealSet,
        barrier: &Arc<Barrier>,
        read: &Stored,
        (root, recovery): (&EnvelopeSet, &EnvelopeSet),
        config: Option<&SealConfig>,
    ) -> Result<(), Error> {
        let _key_ops = self.key_ops.lock().await;
        let same_barrier =
            matches!(&*self.read(), State::Unsealed { barrier: b, .. } if Arc::ptr_eq(b, barrier));
        if !same_barrier || self.read_stored().await? != *read {
            return Err(Error::Unavailable(
                "the seals' keys changed while they were rewrapped; rewrapping again".into(),
            ));
        }
        if let Some(config) = config {
            let mut batch = Batch::new();
            batch
                .put(ROOT_KEY_PATH, root.encode())
                .put(RECOVERY_KEY_PATH, recovery.encode())
                .put(SEAL_CONFIG_PATH, config.encode());
            if config.emergency.is_none() {
                crate::lifecycle::emergency::retire_into(&mut batch);
            }
            self.storage.write(batch).await?;
            self.replace_seal_config(config.clone());
        }
        self.record_wrapped(set, root, recovery);
        Ok(())
    }

    /// The entries a rewrap rewrites, as stored now.
    async fn read_stored(&self) -> Result<Stored, Error> {
        Ok([
            self.storage.get(ROOT_KEY_PATH).await?,
            self.storage.get(RECOVERY_KEY_PATH).await?,
            self.storage.get(SEAL_CONFIG_PATH).await?,
        ])
    }

    /// Status's view of which seals hold the keys, and of envelopes held for
    /// seals this node's config does not name.
    fn record_wrapped(&self, set: &SealSet, root: &EnvelopeSet, recovery: &EnvelopeSet) {
        let wrapped = set
            .members()
            .iter()
            .filter(|m| root.get(&m.name).is_some() && recovery.get(&m.name).is_some())
            .map(|m| m.name.clone())
            .collect();
        let holding = set
            .members()
            .iter()
            .filter(|m| root.get(&m.name).is_some() || recovery.get(&m.name).is_some())
            .map(|m| m.name.clone())
            .collect();
        let unknown: Vec<String> = root
            .seals()
            .chain(recovery.seals())
            .filter(|name| set.member(name).is_none())
            .map(|name| format!("\"{name}\""))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut report = self.report();
        report.wrapped = wrapped;
        report.holding = holding;
        report.seal_note = (!unknown.is_empty()).then(|| {
            format!(
                "the store holds keys wrapped by seals this config does not name ({}): to delete them, add each back with disabled = true until it holds no keys; they also go at the next rotate-root and rekey",
                unknown.join(", ")
            )
        });
    }

    /// A standby reads which seals hold the keys, as the active node wrote them.
    pub(super) async fn refresh_wrapped(&self, set: &SealSet) {
        let (Ok(Some(root)), Ok(Some(recovery))) = (
            self.storage.get(ROOT_KEY_PATH).await,
            self.storage.get(RECOVERY_KEY_PATH).await,
        ) else {
            return;
        };
        if let (Ok(root), Ok(recovery)) = (
            EnvelopeSet::decode(Purpose::RootKey, &root),
            EnvelopeSet::decode(Purpose::RecoveryKey, &recovery),
        ) {
            self.record_wrapped(set, &root, &recovery);
        }
    }
}
