//! A key distributed to a KMS provider (`keymgmt/kms/<provider>/key/<key>`
//! behind the barrier): one KMS key per version, made for imported
//! material, and the alias `alias/<key>` on the newest.
//!
//! Each version goes through recorded steps, each written in its own
//! transaction after the KMS calls before it, so a crash or a KMS error at
//! any point leaves a record the next call resumes from:
//!
//! ```text
//! intent (a distribution id) ─▶ CreateKey tagged with it ─▶ created (key id)
//!   ─▶ GetParametersForImport + wrap + ImportKeyMaterial ─▶ imported
//! newest version imported ─▶ CreateAlias / UpdateAlias ─▶ alias recorded
//! ```
//!
//! An `intent` is resolved by the tag (ListKeys + ListResourceTags): a key
//! found is taken (others found with it are scheduled for deletion), none
//! means CreateKey again. A `created` key that KMS already shows usable was
//! imported before the crash. The alias moves only to an imported key.

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::seal::awskms::AwsKms;
use crate::seal::kms::{KeyState, KmsError};
use crate::secret::random_uuid;
use crate::text;

/// How long KMS waits before deleting the keys of a removed distribution.
pub const DEFAULT_DELETION_DAYS: u32 = 30;

/// How far a version's KMS key got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Its distribution id is recorded; CreateKey may or may not have run.
    Intent,
    /// The KMS key exists; its material may or may not be imported.
    Created,
    /// The KMS key holds the version's material.
    Imported,
}

#[derive(Clone, Serialize, Deserialize)]
pub(super) struct DistributedVersion {
    pub(super) version: u32,
    pub(super) distribution_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) kms_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) arn: Option<String>,
    pub(super) step: Step,
    pub(super) enabled: bool,
    /// CreateKeys sent for this version: recorded before each, so only a
    /// version that may have a KMS key only its tag knows is looked for by
    /// tag (a scan of the region), never a new one.
    #[serde(default)]
    pub(super) create_attempts: u32,
}

#[derive(Clone, Serialize, Deserialize)]
pub(super) struct StoredDistribution {
    pub(super) purpose: Vec<String>,
    pub(super) protection: String,
    pub(super) alias: String,
    /// The version the alias points at, once it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) alias_version: Option<u32>,
    pub(super) versions: Vec<DistributedVersion>,
    /// Removed: KMS deletes the keys at this time (seconds since the
    /// epoch); the record is dropped once it has passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) pending_deletion_until: Option<i64>,
}

/// How a key is distributed (Vault's `purpose` and `protection`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistributeSpec {
    /// `encrypt`, `decrypt`: what the KMS keys are for.
    pub purpose: Vec<String>,
    /// `hsm`.
    pub protection: String,
}

/// One version as distributed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionInfo {
    /// The key's version.
    pub version: u32,
    /// The KMS key id, once made.
    pub kms_key_id: Option<String>,
    /// Its ARN.
    pub arn: Option<String>,
    /// How far it got.
    pub step: Step,
    /// Enabled in KMS (by the key's `min_enabled_version`).
    pub enabled: bool,
    /// `creating`, `importing`, `enabled`, `disabled` or `pending_deletion`.
    pub state: &'static str,
}

/// What a read of a distribution shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistributionInfo {
    /// The provider.
    pub provider: String,
    /// The key.
    pub key: String,
    /// The KMS alias.
    pub alias: String,
    /// The version the alias points at.
    pub alias_version: Option<u32>,
    /// What the KMS keys are for.
    pub purpose: Vec<String>,
    /// How they are protected.
    pub protection: String,
    /// Each version, version 1 first.
    pub versions: Vec<VersionInfo>,
    /// Removed: KMS deletes the keys then (seconds since the epoch).
    pub pending_deletion_until: Option<i64>,
}

/// What a KMS key with imported symmetric material is for.
const PURPOSE: [&str; 2] = ["encrypt", "decrypt"];

impl DistributeSpec {
    /// Whether `purpose` names the same purposes, in any order.
    pub(super) fn same_purpose(&self, purpose: &[impl AsRef<str>]) -> bool {
        let mut mine: Vec<&str> = self.purpose.iter().map(String::as_str).collect();
        let mut theirs: Vec<&str> = purpose.iter().map(AsRef::as_ref).collect();
        mine.sort_unstable();
        theirs.sort_unstable();
        mine == theirs
    }

    /// Checks Vault's fields for AWS KMS.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if let Some(other) = self
            .purpose
            .iter()
            .find(|p| !matches!(p.as_str(), "encrypt" | "decrypt"))
        {
            return bad(format!(
                "purpose {} is not one AWS KMS gives an imported symmetric key: use encrypt and decrypt",
                text::quote(other)
            ));
        }
        if !self.same_purpose(&PURPOSE) {
            return bad(
                "purpose: give encrypt and decrypt, once each (the KMS key AWS makes for imported material does both)"
                    .into(),
            );
        }
        if self.protection != "hsm" {
            return bad(format!(
                "protection {} is not supported: AWS KMS keeps imported keys in its HSMs (\"hsm\")",
                text::quote(&self.protection)
            ));
        }
        Ok(())
    }
}

impl StoredDistribution {
    /// A new record for `versions` versions, each at `intent`.
    pub(super) fn new(key: &str, spec: &DistributeSpec, versions: u32) -> Self {
        let mut record = Self {
            purpose: PURPOSE.map(String::from).to_vec(),
            protection: spec.protection.clone(),
            alias: format!("alias/{key}"),
            alias_version: None,
            versions: Vec::new(),
            pending_deletion_until: None,
        };
        record.add_versions(versions);
        record
    }

    /// Records an intent for each version up to `latest` not recorded yet.
    pub(super) fn add_versions(&mut self, latest: u32) {
        let known = u32::try_from(self.versions.len()).unwrap_or(u32::MAX);
        for version in known + 1..=latest {
            self.versions.push(DistributedVersion {
                version,
                distribution_id: random_uuid(),
                kms_key_id: None,
                arn: None,
                step: Step::Intent,
                enabled: true,
                create_attempts: 0,
            });
        }
    }

    /// Whether every version of `key` is imported, the alias on the newest
    /// and each KMS key enabled as `min_enabled_version` wants.
    pub(super) fn is_complete(&self, key: &super::key::StoredKey) -> bool {
        let min = key.min_enabled_version;
        u32::try_from(self.versions.len()).ok() == Some(key.latest_version())
            && self.alias_version == Some(key.latest_version())
            && self
                .versions
                .iter()
                .all(|v| v.step == Step::Imported && v.enabled == (min == 0 || v.version >= min))
    }

    /// Whether `key_id` is one of this distribution's KMS keys.
    pub(super) fn owns(&self, key_id: &str) -> bool {
        self.versions
            .iter()
            .any(|v| v.kms_key_id.as_deref() == Some(key_id))
    }

    pub(super) fn info(&self, provider: &str, key: &str) -> DistributionInfo {
        DistributionInfo {
            provider: provider.to_string(),
            key: key.to_string(),
            alias: self.alias.clone(),
            alias_version: self.alias_version,
            purpose: self.purpose.clone(),
            protection: self.protection.clone(),
            versions: self
                .versions
                .iter()
                .map(|v| VersionInfo {
                    version: v.version,
                    kms_key_id: v.kms_key_id.clone(),
                    arn: v.arn.clone(),
                    step: v.step,
                    enabled: v.enabled,
                    state: match (self.pending_deletion_until, v.step, v.enabled) {
                        (Some(_), _, _) => "pending_deletion",
                        (None, Step::Intent, _) => "creating",
                        (None, Step::Created, _) => "importing",
                        (None, Step::Imported, true) => "enabled",
                        (None, Step::Imported, false) => "disabled",
                    },
                })
                .collect(),
            pending_deletion_until: self.pending_deletion_until,
        }
    }
}

/// The KMS key a CreateKey sent before left for a version at `intent`
/// (found by its tag; any extra ones, from a CreateKey sent again, are
/// scheduled for deletion): its id and ARN, or none.
pub(super) async fn find_tagged(
    client: &AwsKms,
    key: &str,
    version: &DistributedVersion,
) -> Result<Option<(String, String)>, KmsError> {
    let mut found = client
        .keys_of_distribution(&version.distribution_id)
        .await?;
    found.sort();
    // Each is described first: one an earlier attempt scheduled for
    // deletion (this resolution, interrupted after it) is neither kept
    // nor scheduled again.
    let mut kept: Option<(String, String)> = None;
    let mut extras = Vec::new();
    for id in found {
        let described = client.describe_distributed(&id).await?;
        if described.state == KeyState::PendingDeletion {
            continue;
        }
        match kept {
            None => kept = Some((id, described.arn)),
            Some(_) => extras.push(id),
        }
    }
    for extra in &extras {
        tracing::warn!(key, kms_key = %extra, "a second KMS key of one distribution step: scheduled for deletion");
        client
            .schedule_deletion(extra, DEFAULT_DELETION_DAYS)
            .await?;
    }
    Ok(kept)
}

/// Whether a KMS key that exists holds material already (imported before a
/// crash): any state but waiting for its import.
pub(super) async fn holds_material(client: &AwsKms, key_id: &str) -> Result<bool, KmsError> {
    Ok(match client.describe_distributed(key_id).await?.state {
        KeyState::Other(state) => state != "PendingImport",
        KeyState::Enabled | KeyState::Disabled | KeyState::PendingDeletion => true,
    })
}

/// Where the distribution of `key` to `provider` is stored.
pub(super) fn storage_path(provider: &str, key: &str) -> String {
    format!("{}{provider}/key/{key}", super::provider::PREFIX)
}
