//! Reading the distribution records and the providers behind them. A
//! record removed and past its deletion date is over: every reader treats
//! it as absent (no read writes), and the next write in its place (a new
//! distribution, the provider's deletion) replaces or drops it.

use super::distribution::{DistributionInfo, StoredDistribution, storage_path};
use super::provider::StoredProvider;
use super::{KeyMgmt, distributions_of, no_such, read};
use crate::access::Session;
use crate::barrier::Barrier;
use crate::error::Error;
use crate::text;

impl KeyMgmt {
    /// The providers key `key` is distributed to (removals pending
    /// deletion included: each can still be read).
    pub async fn list_key_providers(
        &self,
        session: &Session,
        key: &str,
    ) -> Result<Vec<String>, Error> {
        let barrier = session.barrier()?;
        Self::stored_key(barrier, key).await?;
        let mut providers = Vec::new();
        for provider in providers_of(barrier, key).await? {
            if find_record(barrier, &provider, key).await?.is_some() {
                providers.push(provider);
            }
        }
        Ok(providers)
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
        Ok(records_of(barrier, provider)
            .await?
            .into_iter()
            .map(|(key, _)| key)
            .collect())
    }

    /// The distribution of `key` to `provider`, as recorded (no KMS call).
    pub async fn read_distribution(
        &self,
        session: &Session,
        provider: &str,
        key: &str,
    ) -> Result<DistributionInfo, Error> {
        let record = read_record(session.barrier()?, provider, key).await?;
        Ok(record.info(provider, key))
    }

    /// The keys distributed to `provider` and not removed.
    pub(super) async fn live_distributions(
        &self,
        barrier: &Barrier,
        provider: &str,
    ) -> Result<Vec<String>, Error> {
        Ok(records_of(barrier, provider)
            .await?
            .into_iter()
            .filter(|(_, record)| record.pending_deletion_until.is_none())
            .map(|(key, _)| key)
            .collect())
    }
}

/// The records of `provider`'s distributions, live or pending deletion,
/// with their keys' names.
async fn records_of(
    barrier: &Barrier,
    provider: &str,
) -> Result<Vec<(String, StoredDistribution)>, Error> {
    let prefix = distributions_of(provider);
    let mut records = Vec::new();
    for path in barrier.list(&prefix).await? {
        let key = &path[prefix.len()..];
        if key.contains('/') {
            continue;
        }
        if let Some(record) = find_record(barrier, provider, key).await? {
            records.push((key.to_string(), record));
        }
    }
    Ok(records)
}

/// The providers with a record (of any age) of `key`'s distribution.
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

/// No record of `key`'s distribution to `provider`.
pub(super) fn not_distributed(provider: &str, key: &str) -> Error {
    Error::NotFound(format!(
        "key {} is not distributed to KMS provider {}",
        text::quote(key),
        text::quote(provider)
    ))
}

/// The record of `key`'s distribution to `provider`, if there is one that
/// is live or pending deletion (not past its date).
pub(super) async fn find_record(
    barrier: &Barrier,
    provider: &str,
    key: &str,
) -> Result<Option<StoredDistribution>, Error> {
    let now = crate::time::now_unix() as i64;
    Ok(
        read::<StoredDistribution>(barrier, &storage_path(provider, key), "distribution")
            .await?
            .filter(|record| {
                record
                    .pending_deletion_until
                    .is_none_or(|until| until > now)
            }),
    )
}

/// As [`find_record`], or that it is not distributed.
pub(super) async fn read_record(
    barrier: &Barrier,
    provider: &str,
    key: &str,
) -> Result<StoredDistribution, Error> {
    find_record(barrier, provider, key)
        .await?
        .ok_or_else(|| not_distributed(provider, key))
}

/// Provider `provider` as stored.
pub(super) async fn read_provider_config(
    barrier: &Barrier,
    provider: &str,
) -> Result<StoredProvider, Error> {
    read::<StoredProvider>(
        barrier,
        &super::provider::storage_path(provider),
        "provider",
    )
    .await?
    .ok_or_else(|| no_such("KMS provider", provider))
}
