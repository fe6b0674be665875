//! The AWS KMS calls of a key distribution, on the seal's client (same
//! timeouts and retries): a key made for imported material and tagged with
//! the distribution it belongs to, its import, the alias, the key's state,
//! and finding a half-made key by its tag after a crash. Their errors are
//! sentences naming the KMS key or alias and AWS's error code
//! (`aws/errors.rs`); [`BYOK_ACTIONS`] is the IAM policy they need.

use std::time::Instant;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    AlgorithmSpec, ExpirationModelType, KeySpec, KeyUsageType, OriginType, Tag, WrappingKeySpec,
};

use super::wrap::wrap_for_import;
use crate::seal::awskms::{AwsKms, measured, state_of};
use crate::seal::kms::{KeyState, KmsError, KmsErrorKind};
use crate::secret::SecretKey;

mod errors;
#[cfg(test)]
mod tests;

/// The tag that ties a KMS key to the distribution that made it.
pub const DISTRIBUTION_TAG: &str = "strongroom-distribution";

/// Every KMS permission a Key Management provider's credentials need: the
/// README's IAM policy lists exactly these (a unit test checks it), and
/// an AccessDeniedException names the one its call lacks.
pub const BYOK_ACTIONS: &[&str] = &[
    "kms:CreateKey",
    "kms:GetParametersForImport",
    "kms:ImportKeyMaterial",
    "kms:CreateAlias",
    "kms:UpdateAlias",
    "kms:DeleteAlias",
    "kms:ListAliases",
    "kms:ListKeys",
    "kms:ListResourceTags",
    "kms:EnableKey",
    "kms:DisableKey",
    "kms:ScheduleKeyDeletion",
    "kms:DescribeKey",
    "kms:TagResource",
];

/// A distributed KMS key as DescribeKey shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistributedKey {
    /// Its ARN.
    pub arn: String,
    /// Its state (`PendingImport` until its material is imported).
    pub state: KeyState,
    /// When KMS deletes it (seconds since the epoch), once scheduled.
    pub deletion_date: Option<i64>,
}

/// A KMS key made for imported material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalKey {
    /// The key id (a UUID).
    pub key_id: String,
    /// Its ARN.
    pub arn: String,
}

/// What KMS answered when asked for an alias's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasTarget {
    /// The alias, `alias/…`.
    pub alias: String,
    /// The key id it points at; `None` for an alias of no key.
    pub key_id: Option<String>,
}

/// "KMS key <id>", as an error sentence names it.
fn key_named(key_id: &str) -> String {
    format!("KMS key {key_id}")
}

/// "alias <alias> (to KMS key <id>)".
fn alias_to(alias: &str, key_id: &str) -> String {
    format!("alias {alias} (to KMS key {key_id})")
}

fn incomplete(action: &str) -> KmsError {
    KmsError::new(
        KmsErrorKind::Unavailable,
        format!("KMS answered {action} without the fields it always sends"),
    )
}

impl AwsKms {
    /// CreateKey with `Origin = EXTERNAL` (a symmetric ENCRYPT_DECRYPT key
    /// waiting for its material), tagged with `distribution`. One attempt,
    /// no SDK retry: a retried CreateKey whose first attempt KMS carried out
    /// would make a second key; the caller's recorded intent and the tag
    /// resolve an unclear failure instead.
    pub async fn create_external_key(
        &self,
        description: &str,
        distribution: &str,
    ) -> Result<ExternalKey, KmsError> {
        let started = Instant::now();
        let tag = Tag::builder()
            .tag_key(DISTRIBUTION_TAG)
            .tag_value(distribution)
            .build()
            .map_err(|_| incomplete("CreateKey"))?;
        let output = self
            .client()
            .await?
            .create_key()
            .origin(OriginType::External)
            .key_usage(KeyUsageType::EncryptDecrypt)
            .key_spec(KeySpec::SymmetricDefault)
            .description(description)
            .tags(tag)
            .customize()
            .config_override(
                aws_sdk_kms::config::Builder::default()
                    .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1)),
            )
            .send()
            .await
            .map_err(|e| {
                self.distribution_error(
                    "CreateKey",
                    &format!("a new KMS key (tag {DISTRIBUTION_TAG}={distribution})"),
                    e,
                )
            });
        let output = measured("CreateKey", started, output)?;
        let metadata = output.key_metadata.ok_or_else(|| incomplete("CreateKey"))?;
        Ok(ExternalKey {
            key_id: metadata.key_id,
            arn: metadata.arn.ok_or_else(|| incomplete("CreateKey"))?,
        })
    }

    /// Wraps `material` for `key_id` and imports it: GetParametersForImport
    /// (RSAES_OAEP_SHA_256 under an RSA 4096 wrapping key), the wrap, then
    /// ImportKeyMaterial with material that does not expire.
    pub async fn import_material(
        &self,
        key_id: &str,
        material: &SecretKey,
    ) -> Result<(), KmsError> {
        let started = Instant::now();
        let client = self.client().await?;
        let parameters = client
            .get_parameters_for_import()
            .key_id(key_id)
            .wrapping_algorithm(AlgorithmSpec::RsaesOaepSha256)
            .wrapping_key_spec(WrappingKeySpec::Rsa4096)
            .send()
            .await
            .map_err(|e| self.distribution_error("GetParametersForImport", &key_named(key_id), e));
        let parameters = measured("GetParametersForImport", started, parameters)?;
        let (Some(public_key), Some(token)) = (parameters.public_key, parameters.import_token)
        else {
            return Err(incomplete("GetParametersForImport"));
        };
        let wrapped = wrap_for_import(public_key.as_ref(), material)
            .map_err(|e| KmsError::new(KmsErrorKind::Rejected, format!("{e} (key {key_id})")))?;
        let started = Instant::now();
        let imported = client
            .import_key_material()
            .key_id(key_id)
            .import_token(token)
            .encrypted_key_material(Blob::new(wrapped))
            .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
            .send()
            .await
            .map_err(|e| self.distribution_error("ImportKeyMaterial", &key_named(key_id), e));
        measured("ImportKeyMaterial", started, imported).map(|_| ())
    }

    /// The alias `alias` (`alias/…`) and the key it points at, if it exists.
    pub async fn alias_target(&self, alias: &str) -> Result<Option<AliasTarget>, KmsError> {
        let client = self.client().await?;
        let mut marker = None;
        loop {
            let started = Instant::now();
            let page = client
                .list_aliases()
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| self.distribution_error("ListAliases", &format!("alias {alias}"), e));
            let page = measured("ListAliases", started, page)?;
            if let Some(found) = page
                .aliases
                .unwrap_or_default()
                .into_iter()
                .find(|a| a.alias_name.as_deref() == Some(alias))
            {
                return Ok(Some(AliasTarget {
                    alias: alias.to_string(),
                    key_id: found.target_key_id,
                }));
            }
            match (page.truncated, page.next_marker) {
                (true, Some(next)) => marker = Some(next),
                _ => return Ok(None),
            }
        }
    }

    /// Points `alias` at `key_id`: CreateAlias when it does not exist yet,
    /// UpdateAlias when `replace` says it is ours to move.
    pub async fn point_alias(
        &self,
        alias: &str,
        key_id: &str,
        replace: bool,
    ) -> Result<(), KmsError> {
        let started = Instant::now();
        let client = self.client().await?;
        let (action, sent) = if replace {
            let sent = client
                .update_alias()
                .alias_name(alias)
                .target_key_id(key_id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| self.distribution_error("UpdateAlias", &alias_to(alias, key_id), e));
            ("UpdateAlias", sent)
        } else {
            let sent = client
                .create_alias()
                .alias_name(alias)
                .target_key_id(key_id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| self.distribution_error("CreateAlias", &alias_to(alias, key_id), e));
            ("CreateAlias", sent)
        };
        measured(action, started, sent)
    }

    /// DeleteAlias.
    pub async fn delete_alias(&self, alias: &str) -> Result<(), KmsError> {
        let started = Instant::now();
        let sent = self
            .client()
            .await?
            .delete_alias()
            .alias_name(alias)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.distribution_error("DeleteAlias", &format!("alias {alias}"), e));
        measured("DeleteAlias", started, sent)
    }

    /// EnableKey or DisableKey.
    pub async fn set_enabled(&self, key_id: &str, enabled: bool) -> Result<(), KmsError> {
        let started = Instant::now();
        let client = self.client().await?;
        let (action, sent) = if enabled {
            let sent = client.enable_key().key_id(key_id).send().await;
            (
                "EnableKey",
                sent.map(|_| ())
                    .map_err(|e| self.distribution_error("EnableKey", &key_named(key_id), e)),
            )
        } else {
            let sent = client.disable_key().key_id(key_id).send().await;
            (
                "DisableKey",
                sent.map(|_| ())
                    .map_err(|e| self.distribution_error("DisableKey", &key_named(key_id), e)),
            )
        };
        measured(action, started, sent)
    }

    /// ScheduleKeyDeletion after `days` (7 to 30, as AWS allows); the
    /// deletion date, in seconds since the epoch.
    pub async fn schedule_deletion(&self, key_id: &str, days: u32) -> Result<i64, KmsError> {
        if !(7..=30).contains(&days) {
            return Err(KmsError::new(
                KmsErrorKind::Config,
                format!(
                    "the waiting period before KMS deletes key {key_id} must be 7 to 30 days, not {days}"
                ),
            ));
        }
        let started = Instant::now();
        let days = i32::try_from(days).unwrap_or(30);
        let output = self
            .client()
            .await?
            .schedule_key_deletion()
            .key_id(key_id)
            .pending_window_in_days(days)
            .send()
            .await
            .map_err(|e| self.distribution_error("ScheduleKeyDeletion", &key_named(key_id), e));
        let output = measured("ScheduleKeyDeletion", started, output)?;
        output
            .deletion_date
            .map(|d| d.secs())
            .ok_or_else(|| incomplete("ScheduleKeyDeletion"))
    }

    /// DescribeKey of a distributed key: its ARN, its state and, once its
    /// deletion is scheduled, the date (which a removal a crash interrupted
    /// records again).
    pub async fn describe_distributed(&self, key_id: &str) -> Result<DistributedKey, KmsError> {
        let started = Instant::now();
        let output = self
            .client()
            .await?
            .describe_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| self.distribution_error("DescribeKey", &key_named(key_id), e));
        let output = measured("DescribeKey", started, output)?;
        let metadata = output
            .key_metadata
            .ok_or_else(|| incomplete("DescribeKey"))?;
        Ok(DistributedKey {
            arn: metadata
                .arn
                .clone()
                .ok_or_else(|| incomplete("DescribeKey"))?,
            state: state_of(metadata.key_state.as_ref()),
            deletion_date: metadata.deletion_date.map(|d| d.secs()),
        })
    }

    /// The keys tagged with `distribution` (ListKeys, then ListResourceTags
    /// of each): how a retry finds a key a crash left half-made.
    pub async fn keys_of_distribution(&self, distribution: &str) -> Result<Vec<String>, KmsError> {
        let client = self.client().await?;
        let mut found = Vec::new();
        let mut marker = None;
        loop {
            let started = Instant::now();
            let page = client
                .list_keys()
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| {
                    self.distribution_error(
                        "ListKeys",
                        &format!(
                            "the KMS keys (looking for tag {DISTRIBUTION_TAG}={distribution})"
                        ),
                        e,
                    )
                });
            let page = measured("ListKeys", started, page)?;
            for key in page.keys.unwrap_or_default() {
                let Some(key_id) = key.key_id else { continue };
                let started = Instant::now();
                let tags = client
                    .list_resource_tags()
                    .key_id(&key_id)
                    .send()
                    .await
                    .map_err(|e| {
                        self.distribution_error("ListResourceTags", &key_named(&key_id), e)
                    });
                let tags = match measured("ListResourceTags", started, tags) {
                    Ok(tags) => tags,
                    // A key whose policy keeps this principal out, or one
                    // deleted since ListKeys, is not one of ours to find.
                    Err(e)
                        if matches!(e.kind, KmsErrorKind::Denied | KmsErrorKind::KeyUnusable) =>
                    {
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                if tags
                    .tags
                    .unwrap_or_default()
                    .iter()
                    .any(|t| t.tag_key == DISTRIBUTION_TAG && t.tag_value == distribution)
                {
                    found.push(key_id);
                }
            }
            match (page.truncated, page.next_marker) {
                (true, Some(next)) => marker = Some(next),
                _ => return Ok(found),
            }
        }
    }
}
