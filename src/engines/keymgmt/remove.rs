//! Removing a distribution: the alias deleted while it points at one of
//! the distribution's KMS keys, every KMS key it made (or a crash left
//! tagged) scheduled for deletion, and the record kept, pending deletion
//! until KMS's date (the crash points of `keymgmt-remove`).

use super::distribute::kms_error;
use super::distribution::{DistributionInfo, StoredDistribution, storage_path};
use super::records::{read_provider_config, read_record};
use super::{KeyMgmt, write};
use crate::access::Session;
use crate::barrier::Barrier;
use crate::error::Error;
use crate::seal::kms::KeyState;

impl KeyMgmt {
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
        let mut unseen = false;
        for version in &record.versions {
            keys.extend(version.kms_key_id.clone());
            // A key a crash left before its id was recorded, or a second
            // one a CreateKey sent again made: known by its tag only.
            if version.kms_key_id.is_none() && version.create_attempts > 0
                || version.create_attempts > 1
            {
                let tagged = client
                    .keys_of_distribution(&version.distribution_id)
                    .await
                    .map_err(kms_error)?;
                // ListKeys may not show a key made moments ago yet.
                unseen |= version.kms_key_id.is_none() && tagged.is_empty();
                for id in tagged {
                    if !keys.contains(&id) {
                        keys.push(id);
                    }
                }
            }
        }
        let now = crate::time::now_unix() as i64;
        let mut until = record.pending_deletion_until.unwrap_or(0);
        if unseen {
            // Kept as long as such a key would wait, so a removal again
            // looks for it once ListKeys shows it.
            until = until.max(now + i64::from(days) * 86_400);
        }
        for id in &keys {
            let described = match client.describe_distributed(id).await {
                Ok(described) => described,
                // Deleted already (a removal retried after KMS's date, or
                // by hand): nothing left to schedule.
                Err(e) if e.message.contains("NotFoundException") => continue,
                Err(e) => return Err(kms_error(e)),
            };
            if described.state == KeyState::PendingDeletion {
                // Scheduled before a crash: its date is recorded now.
                until = until.max(described.deletion_date.unwrap_or(0));
                continue;
            }
            let scheduled = match client.schedule_deletion(id, days).await {
                Ok(date) => date,
                // The SDK's retry of a ScheduleKeyDeletion that KMS carried
                // out is refused as pending deletion: done, at KMS's date.
                Err(e) => match client.describe_distributed(id).await {
                    Ok(again) if again.state == KeyState::PendingDeletion => {
                        again.deletion_date.unwrap_or(0)
                    }
                    _ => return Err(kms_error(e)),
                },
            };
            until = until.max(scheduled);
        }
        crate::failpoint::step("after-keys-scheduled");
        record.pending_deletion_until = Some(until.max(now));
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
