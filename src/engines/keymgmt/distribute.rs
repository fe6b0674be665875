//! Distributing a key to a provider, and bringing a distribution up to date
//! (a new version, `min_enabled_version`, a step a crash interrupted): the
//! steps of `distribution.rs`, each recorded as it completes.

use super::distribution::{
    DistributeSpec, DistributionInfo, Step, StoredDistribution, holds_material, resolve_intent,
    storage_path,
};
use super::key::StoredKey;
use super::provider::StoredProvider;
use super::{KeyMgmt, no_such, read, write};
use crate::access::{Capability, Session};
use crate::barrier::Barrier;
use crate::error::Error;
use crate::seal::awskms::AwsKms;
use crate::seal::kms::{KeyState, KmsError, KmsErrorKind};
use crate::text;

/// A KMS error as the call's answer: worth retrying, or not.
fn kms_error(e: KmsError) -> Error {
    match e.kind {
        KmsErrorKind::Unavailable | KmsErrorKind::Throttled => Error::KmsUnavailable(e.to_string()),
        _ => Error::FailedPrecondition(e.to_string()),
    }
}

impl KeyMgmt {
    /// Distributes every version of `key` to `provider` (`create`): a KMS
    /// key per version with its material imported, and the alias
    /// `alias/<key>` on the newest. Again with the same purpose and
    /// protection while the distribution is not complete (`update`), it
    /// completes the recorded steps an error or a crash interrupted.
    /// Refused with nothing changed for a second distribution of a complete
    /// one, other settings, or an alias that points at a KMS key
    /// strongroom did not make here.
    pub async fn distribute(
        &self,
        session: &Session,
        provider: &str,
        key: &str,
        spec: &DistributeSpec,
    ) -> Result<DistributionInfo, Error> {
        spec.validate()?;
        let barrier = session.barrier()?;
        let _guard = self.writes.lock().await;
        let config = read_provider_config(barrier, provider).await?;
        let stored_key = Self::stored_key(barrier, key).await?;
        let path = storage_path(provider, key);
        let earlier = read::<StoredDistribution>(barrier, &path, "distribution")
            .await?
            .filter(|e| {
                // A removal whose deletion date has passed is over.
                e.pending_deletion_until
                    .is_none_or(|until| until > crate::time::now_unix() as i64)
            });
        if let Some(mut earlier) = earlier {
            session.require(Capability::Update)?;
            let same = earlier.purpose == spec.purpose && earlier.protection == spec.protection;
            if earlier.pending_deletion_until.is_none() && same && !earlier.is_complete(&stored_key)
            {
                earlier.add_versions(stored_key.latest_version());
                tracing::info!(key, provider, "keymgmt distribution resumed");
                self.complete(
                    barrier,
                    &config.client(),
                    provider,
                    key,
                    &stored_key,
                    &mut earlier,
                )
                .await?;
                return Ok(earlier.info(provider, key));
            }
            return Err(Error::FailedPrecondition(
                match earlier.pending_deletion_until {
                    None if same => format!(
                        "key {} is already distributed to KMS provider {}, every version up to date; nothing was changed",
                        text::quote(key),
                        text::quote(provider)
                    ),
                    None => format!(
                        "key {} is already distributed to KMS provider {} with other settings (purpose {}, protection {}); a distribution's settings cannot change: remove it and distribute again",
                        text::quote(key),
                        text::quote(provider),
                        earlier.purpose.join(","),
                        earlier.protection
                    ),
                    Some(until) => format!(
                        "the earlier distribution of key {} to KMS provider {} was removed and its KMS keys are pending deletion until {} (seconds since the epoch); distribute it again after that",
                        text::quote(key),
                        text::quote(provider),
                        until
                    ),
                },
            ));
        }
        session.require(Capability::Create)?;
        let client = config.client();
        let mut record = StoredDistribution::new(key, spec, stored_key.latest_version());
        if let Some(taken) = client
            .alias_target(&record.alias)
            .await
            .map_err(kms_error)?
        {
            return Err(Error::FailedPrecondition(format!(
                "the KMS alias {} in {} already points at key {}, which strongroom did not make for this key; nothing was changed",
                record.alias,
                config.key_collection,
                taken.key_id.as_deref().unwrap_or("(none)")
            )));
        }
        write(barrier, &path, &record).await?;
        tracing::info!(key, provider, "keymgmt distribution started");
        self.complete(barrier, &client, provider, key, &stored_key, &mut record)
            .await?;
        Ok(record.info(provider, key))
    }

    /// The providers key `key` is distributed to (removals pending
    /// deletion included: each can still be read).
    pub async fn list_key_providers(
        &self,
        session: &Session,
        key: &str,
    ) -> Result<Vec<String>, Error> {
        let barrier = session.barrier()?;
        Self::stored_key(barrier, key).await?;
        providers_of(barrier, key).await
    }

    /// The keys distributed to `provider` (removals pending deletion
    /// included).
    pub async fn list_distributions(
        &self,
        session: &Session,
        provider: &str,
    ) -> Result<Vec<String>, Error> {
        let barrier = session.barrier()?;
        read_provider_config(barrier, provider).await?;
        let prefix = super::distributions_of(provider);
        Ok(barrier
            .list(&prefix)
            .await?
            .into_iter()
            .filter_map(|p| {
                let rest = &p[prefix.len()..];
                (!rest.contains('/')).then(|| rest.to_string())
            })
            .collect())
    }

    /// The distribution of `key` to `provider`, as recorded (no KMS call).
    pub async fn read_distribution(
        &self,
        session: &Session,
        provider: &str,
        key: &str,
    ) -> Result<DistributionInfo, Error> {
        let barrier = session.barrier()?;
        let path = storage_path(provider, key);
        let record = read_record(barrier, provider, key).await?;
        if record
            .pending_deletion_until
            .is_some_and(|until| until <= crate::time::now_unix() as i64)
        {
            let _guard = self.writes.lock().await;
            barrier.delete(&path).await?;
            return Err(not_distributed(provider, key));
        }
        Ok(record.info(provider, key))
    }

    /// Removes the distribution of `key` to `provider`: every KMS key it
    /// made (or a crash left tagged) is scheduled for deletion after
    /// `days` (7 to 30; 0: 30), and the alias, when it still points at one
    /// of them, is deleted. The record stays, pending deletion until then.
    pub async fn remove_distribution(
        &self,
        session: &Session,
        provider: &str,
        key: &str,
        days: u32,
    ) -> Result<DistributionInfo, Error> {
        let days = deletion_days(days)?;
        let barrier = session.barrier()?;
        let _guard = self.writes.lock().await;
        let record = read_record(barrier, provider, key).await?;
        self.remove(barrier, provider, key, record, days).await
    }

    /// [`Self::remove_distribution`] with the write lock held (the crash
    /// points of `keymgmt-remove`).
    pub(super) async fn remove(
        &self,
        barrier: &Barrier,
        provider: &str,
        key: &str,
        record: StoredDistribution,
        days: u32,
    ) -> Result<DistributionInfo, Error> {
        crate::failpoint::scope(
            "keymgmt-remove",
            self.remove_steps(barrier, provider, key, record, days),
        )
        .await
    }

    async fn remove_steps(
        &self,
        barrier: &Barrier,
        provider: &str,
        key: &str,
        mut record: StoredDistribution,
        days: u32,
    ) -> Result<DistributionInfo, Error> {
        let config = read_provider_config(barrier, provider).await?;
        let path = storage_path(provider, key);
        let client = config.client();
        if let Some(target) = client
            .alias_target(&record.alias)
            .await
            .map_err(kms_error)?
            && target.key_id.as_deref().is_some_and(|id| record.owns(id))
        {
            client
                .delete_alias(&record.alias)
                .await
                .map_err(kms_error)?;
            crate::failpoint::step("after-alias-deleted");
        }
        let mut keys = Vec::new();
        for version in &record.versions {
            match &version.kms_key_id {
                Some(id) => keys.push(id.clone()),
                None => keys.extend(
                    client
                        .keys_of_distribution(&version.distribution_id)
                        .await
                        .map_err(kms_error)?,
                ),
            }
        }
        let mut until = record.pending_deletion_until.unwrap_or(0);
        for id in &keys {
            let described = client.describe_distributed(id).await.map_err(kms_error)?;
            if described.state == KeyState::PendingDeletion {
                // Scheduled before a crash: its date is recorded now.
                until = until.max(described.deletion_date.unwrap_or(0));
                continue;
            }
            until = until.max(
                client
                    .schedule_deletion(id, days)
                    .await
                    .map_err(kms_error)?,
            );
        }
        crate::failpoint::step("after-keys-scheduled");
        record.pending_deletion_until = Some(until.max(crate::time::now_unix() as i64));
        record.alias_version = None;
        write(barrier, &path, &record).await?;
        tracing::info!(
            key,
            provider,
            kms_keys = keys.len(),
            "keymgmt distribution removed; its KMS keys are pending deletion"
        );
        Ok(record.info(provider, key))
    }

    /// Brings the distribution of `key` to `provider` up to date: versions
    /// made since, steps a crash or a KMS error interrupted, the alias, and
    /// the key's `min_enabled_version`.
    pub async fn sync_distribution(
        &self,
        session: &Session,
        provider: &str,
        key: &str,
    ) -> Result<DistributionInfo, Error> {
        let barrier = session.barrier()?;
        let _guard = self.writes.lock().await;
        let config = read_provider_config(barrier, provider).await?;
        let stored_key = Self::stored_key(barrier, key).await?;
        let mut record = read_record(barrier, provider, key).await?;
        if record.pending_deletion_until.is_some() {
            return Err(Error::FailedPrecondition(format!(
                "the distribution of key {} to KMS provider {} was removed; its KMS keys are pending deletion",
                text::quote(key),
                text::quote(provider)
            )));
        }
        record.add_versions(stored_key.latest_version());
        self.complete(
            barrier,
            &config.client(),
            provider,
            key,
            &stored_key,
            &mut record,
        )
        .await?;
        Ok(record.info(provider, key))
    }

    /// After key `key` changed (`what`: rotated, updated): each of its
    /// distributions brought up to date. The key's change is already
    /// stored; a distribution that fails keeps its recorded steps, and the
    /// error says how to complete it.
    pub(super) async fn sync_every_distribution(
        &self,
        barrier: &Barrier,
        key: &str,
        stored_key: &StoredKey,
        what: &str,
    ) -> Result<(), Error> {
        for provider in providers_of(barrier, key).await? {
            let path = storage_path(&provider, key);
            let Some(mut record) =
                read::<StoredDistribution>(barrier, &path, "distribution").await?
            else {
                continue;
            };
            if record.pending_deletion_until.is_some() {
                // Removed: its KMS keys are left to their deletion.
                continue;
            }
            record.add_versions(stored_key.latest_version());
            let config = read_provider_config(barrier, &provider).await?;
            self.complete(barrier, &config.client(), &provider, key, stored_key, &mut record)
                .await
                .map_err(|e| {
                    Error::FailedPrecondition(format!(
                        "key {} was {what}, but its distribution to KMS provider {} is not up to date ({e}); its steps are recorded: distribute it again with the same purpose and protection to complete it",
                        text::quote(key),
                        text::quote(&provider)
                    ))
                })?;
        }
        Ok(())
    }

    /// Takes every version of `record` to `imported`, then the alias and
    /// the enabled states, writing the record after each KMS step (the
    /// crash points of `keymgmt-distribute`).
    async fn complete(
        &self,
        barrier: &Barrier,
        client: &AwsKms,
        provider: &str,
        key: &str,
        stored_key: &StoredKey,
        record: &mut StoredDistribution,
    ) -> Result<(), Error> {
        crate::failpoint::scope(
            "keymgmt-distribute",
            self.complete_steps(barrier, client, provider, key, stored_key, record),
        )
        .await
    }

    async fn complete_steps(
        &self,
        barrier: &Barrier,
        client: &AwsKms,
        provider: &str,
        key: &str,
        stored_key: &StoredKey,
        record: &mut StoredDistribution,
    ) -> Result<(), Error> {
        let path = storage_path(provider, key);
        // A version added since the last write (a rotation, a resumed
        // distribution) has its intent recorded before its CreateKey, so a
        // crash after it leaves a key its tag ties to the record.
        write(barrier, &path, record).await?;
        for index in 0..record.versions.len() {
            if record.versions[index].step == Step::Intent {
                let (key_id, arn) = resolve_intent(client, key, &record.versions[index])
                    .await
                    .map_err(kms_error)?;
                let version = &mut record.versions[index];
                version.kms_key_id = Some(key_id);
                version.arn = Some(arn);
                version.step = Step::Created;
                write(barrier, &path, record).await?;
                crate::failpoint::step("after-key-id-recorded");
            }
            if record.versions[index].step == Step::Created {
                let version = &record.versions[index];
                let key_id = version.kms_key_id.clone().unwrap_or_default();
                if !holds_material(client, &key_id).await.map_err(kms_error)? {
                    let material = stored_key
                        .versions
                        .get(index)
                        .ok_or_else(|| {
                            Error::Internal(format!(
                                "key {} has no version {}",
                                text::quote(key),
                                version.version
                            ))
                        })?
                        .material();
                    client
                        .import_material(&key_id, material)
                        .await
                        .map_err(kms_error)?;
                    crate::failpoint::step("after-import");
                }
                record.versions[index].step = Step::Imported;
                write(barrier, &path, record).await?;
            }
        }
        let newest = record
            .versions
            .last()
            .map(|v| (v.version, v.kms_key_id.clone()));
        if let Some((version, Some(key_id))) = newest
            && record.alias_version != Some(version)
        {
            let current = client
                .alias_target(&record.alias)
                .await
                .map_err(kms_error)?;
            let ours = current
                .as_ref()
                .is_some_and(|t| t.key_id.as_deref().is_some_and(|id| record.owns(id)));
            if current.is_some() && !ours {
                return Err(Error::FailedPrecondition(format!(
                    "the KMS alias {} now points at a key strongroom did not make for key {}; it was not moved",
                    record.alias,
                    text::quote(key)
                )));
            }
            crate::failpoint::step("before-alias-moves");
            client
                .point_alias(&record.alias, &key_id, ours)
                .await
                .map_err(kms_error)?;
            crate::failpoint::step("after-alias-moves");
            record.alias_version = Some(version);
            write(barrier, &path, record).await?;
        }
        let min = stored_key.min_enabled_version;
        for index in 0..record.versions.len() {
            let version = &record.versions[index];
            let wanted = min == 0 || version.version >= min;
            if version.enabled != wanted
                && let Some(key_id) = version.kms_key_id.clone()
            {
                client
                    .set_enabled(&key_id, wanted)
                    .await
                    .map_err(kms_error)?;
                record.versions[index].enabled = wanted;
                write(barrier, &path, record).await?;
            }
        }
        tracing::info!(
            key,
            provider,
            versions = record.versions.len(),
            "keymgmt distribution up to date"
        );
        Ok(())
    }
}

/// The providers with a record (live or removed) of `key`'s distribution.
pub(super) async fn providers_of(barrier: &Barrier, key: &str) -> Result<Vec<String>, Error> {
    let suffix = format!("/key/{key}");
    Ok(barrier
        .list(super::provider::PREFIX)
        .await?
        .into_iter()
        .filter_map(|p| {
            p.strip_suffix(&suffix)
                .map(|rest| rest[super::provider::PREFIX.len()..].to_string())
        })
        .collect())
}

/// The days KMS waits before deleting a removed distribution's keys: 0 is
/// the default, else 7 to 30 as AWS takes.
pub(super) fn deletion_days(days: u32) -> Result<u32, Error> {
    match days {
        0 => Ok(super::DEFAULT_DELETION_DAYS),
        7..=30 => Ok(days),
        _ => Err(Error::InvalidArgument(format!(
            "deletion_window_days {days} is out of range: AWS KMS waits 7 to 30 days before deleting a key"
        ))),
    }
}

/// No record of `key`'s distribution to `provider`.
fn not_distributed(provider: &str, key: &str) -> Error {
    Error::NotFound(format!(
        "key {} is not distributed to KMS provider {}",
        text::quote(key),
        text::quote(provider)
    ))
}

/// The live or removed distribution of `key` to `provider`.
async fn read_record(
    barrier: &Barrier,
    provider: &str,
    key: &str,
) -> Result<StoredDistribution, Error> {
    read::<StoredDistribution>(barrier, &storage_path(provider, key), "distribution")
        .await?
        .ok_or_else(|| not_distributed(provider, key))
}

async fn read_provider_config(barrier: &Barrier, provider: &str) -> Result<StoredProvider, Error> {
    read::<StoredProvider>(
        barrier,
        &super::provider::storage_path(provider),
        "provider",
    )
    .await?
    .ok_or_else(|| no_such("KMS provider", provider))
}
