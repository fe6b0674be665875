//! Distributing a key to a provider, and bringing a distribution up to date
//! (a new version, `min_enabled_version`, a step a crash interrupted): the
//! steps of `distribution.rs`, each recorded as it completes.

use super::distribution::{
    DistributeSpec, DistributionInfo, Step, StoredDistribution, find_tagged, holds_material,
    storage_path,
};
use super::key::{self, StoredKey};
use super::records::{find_record, providers_of, read_provider_config};
use super::{KeyMgmt, write};
use crate::access::{Capability, Session};
use crate::barrier::Barrier;
use crate::error::Error;
use crate::seal::awskms::AwsKms;
use crate::seal::kms::{KmsError, KmsErrorKind};
use crate::text;

/// A KMS error as the call's answer: worth retrying, or not.
pub(super) fn kms_error(e: KmsError) -> Error {
    match e.kind {
        KmsErrorKind::Unavailable | KmsErrorKind::Throttled => Error::KmsUnavailable(e.to_string()),
        _ => Error::FailedPrecondition(e.to_string()),
    }
}

impl KeyMgmt {
    /// Distributes every version of `key` to `provider` (`create` on the
    /// distribution, and `update` on the key: its material leaves wrapped
    /// for the provider): a KMS key per version with its material
    /// imported, and the alias `alias/<key>` on the newest. Again with the
    /// same purpose and protection while the distribution is not complete
    /// (`update`), it completes the recorded steps an error or a crash
    /// interrupted. Refused with nothing changed for a second distribution
    /// of a complete one, other settings, or an alias that points at a KMS
    /// key strongroom did not make here.
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
        let earlier = find_record(barrier, provider, key).await?;
        session.require(if earlier.is_some() {
            Capability::Update
        } else {
            Capability::Create
        })?;
        session.require_on(&key::policy_path(key), Capability::Update)?;
        let config = read_provider_config(barrier, provider).await?;
        let stored_key = Self::stored_key(barrier, key).await?;
        if let Some(mut earlier) = earlier {
            let same = spec.same_purpose(&earlier.purpose) && earlier.protection == spec.protection;
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
                        "the earlier distribution of key {} to KMS provider {} was removed and its KMS keys are pending deletion until {}; distribute it again after that",
                        text::quote(key),
                        text::quote(provider),
                        crate::time::format_unix(u64::try_from(until).unwrap_or(0))
                    ),
                },
            ));
        }
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
        tracing::info!(key, provider, "keymgmt distribution started");
        self.complete(barrier, &client, provider, key, &stored_key, &mut record)
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
            let Some(mut record) = find_record(barrier, &provider, key).await? else {
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
                    let message = format!(
                        "key {} was {what}, but its distribution to KMS provider {} is not up to date ({e}); its steps are recorded: once the cause is fixed, distribute it again with the same purpose and protection to complete it",
                        text::quote(key),
                        text::quote(&provider)
                    );
                    match e {
                        Error::KmsUnavailable(_) => Error::KmsUnavailable(message),
                        _ => Error::FailedPrecondition(message),
                    }
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
        for index in 0..record.versions.len() {
            if record.versions[index].step == Step::Intent {
                let version = &record.versions[index];
                let found = if version.create_attempts > 0 {
                    find_tagged(client, key, version).await.map_err(kms_error)?
                } else {
                    None
                };
                let (key_id, arn) = match found {
                    Some(found) => found,
                    None => {
                        // Recorded before CreateKey: a crash after it
                        // leaves a key its tag ties to this version.
                        record.versions[index].create_attempts += 1;
                        write(barrier, &path, record).await?;
                        let version = &record.versions[index];
                        let made = client
                            .create_external_key(
                                &format!(
                                    "strongroom keymgmt key {key} version {}",
                                    version.version
                                ),
                                &version.distribution_id,
                            )
                            .await
                            .map_err(kms_error)?;
                        // The worst crash: a KMS key exists that only its tag knows.
                        crate::failpoint::step("after-create-key");
                        (made.key_id, made.arn)
                    }
                };
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
