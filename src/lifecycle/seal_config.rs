//! `core/seal-config`: what a sealed daemon must know before any key is
//! available. Stored unencrypted; holds nothing secret.

use serde::{Deserialize, Serialize};

use crate::seal::shamir::ShareCheck;

/// Where the seal config is stored.
pub const SEAL_CONFIG_PATH: &str = crate::storage::SEAL_CONFIG_PATH;
/// Where the root key is stored: encrypted by the unseal key (Shamir), or an
/// envelope wrapped by KMS (awskms).
pub const ROOT_KEY_PATH: &str = crate::storage::ROOT_KEY_PATH;
/// With HA: when the last seal migration was written (Unix seconds, as
/// text, encrypted by the barrier). Nodes that stood by before it hold a
/// config for the old seal: they seal themselves on hearing it, or at
/// their next take-over.
pub const SEAL_MIGRATED_PATH: &str = "core/seal-migrated";
/// Where the recovery key is stored (awskms only): an envelope wrapped by KMS.
pub const RECOVERY_KEY_PATH: &str = "core/recovery-key";
/// Where the emergency Shamir seal's copy of the root key is stored (several
/// seals only): the root key encrypted to the emergency public key
/// (`seal::emergency`).
pub const EMERGENCY_ROOT_KEY_PATH: &str = "core/emergency-root-key";
/// The recovery key encrypted to the emergency seal, as the root key is.
pub const EMERGENCY_RECOVERY_KEY_PATH: &str = "core/emergency-recovery-key";
/// The newest seal config format this build reads. Format 1 is the Shamir
/// seal; format 2 adds the awskms seal, whose shares are recovery shares;
/// format 3 several seals (`multiseal`), with the list of seals.
/// Each record is written with the oldest format that describes it, so a
/// build that knows only format 1 refuses an awskms store instead of
/// mistaking its recovery shares for unseal keys.
pub const SEAL_CONFIG_VERSION: u32 = 3;

/// The format a record of `seal_type` is written with.
pub fn format_for(seal_type: &str) -> u32 {
    match seal_type {
        crate::seal::SHAMIR => 1,
        crate::seal::AWSKMS => 2,
        _ => 3,
    }
}

/// One of several seals, as the store last adopted it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSeal {
    /// Its name.
    pub name: String,
    /// Its type: `awskms`.
    #[serde(rename = "type")]
    pub seal_type: String,
    /// Lower is tried first.
    pub priority: u32,
    /// Decrypt-only: leaving the set.
    pub disabled: bool,
}

/// The emergency Shamir seal of several seals, once set up (init, or
/// `rekey --target emergency`). Holds nothing secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmergencyConfig {
    /// The `seal "shamir"` block's name when it was set up.
    pub name: String,
    /// Emergency shares issued.
    pub secret_shares: u32,
    /// Emergency shares needed.
    pub secret_threshold: u32,
    /// Hashes of the issued emergency shares, to refuse never-issued ones early.
    pub share_check: ShareCheck,
    /// The X25519 public key (hex) the root key is encrypted to at
    /// `core/emergency-root-key`; derived from the emergency secret.
    pub public_key: String,
}

/// The seal's parameters, as written by init.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealConfig {
    /// Format of this record.
    pub format_version: u32,
    /// Seal type: `shamir` or `awskms`.
    #[serde(rename = "type")]
    pub seal_type: String,
    /// Shares issued: unseal shares (shamir) or recovery shares (awskms).
    pub secret_shares: u32,
    /// Shares needed: of unseal shares (shamir) or recovery shares (awskms).
    pub secret_threshold: u32,
    /// Hashes of the issued shares, to refuse never-issued ones early.
    pub share_check: ShareCheck,
    /// Random identifier of this store, made at init.
    pub cluster_id: String,
    /// Name recorded at init (the config's `cluster_name`, or a generated one).
    pub cluster_name: String,
    /// When init ran, seconds since the Unix epoch.
    pub initialized_unix: u64,
    /// awskms: the endpoint URL the stored keys were last wrapped through
    /// (empty: AWS's regional endpoint). Absent in stores made before it was
    /// recorded. A key change through another endpoint is not rewrapped
    /// silently: it is a seal migration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_endpoint: Option<String>,
    /// multiseal: the seals the store was last configured with, as the
    /// active node adopted them; a change of the set is checked against it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seals: Vec<StoredSeal>,
    /// multiseal: the emergency Shamir seal, once set up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency: Option<EmergencyConfig>,
}

impl SealConfig {
    /// Parses the stored record, refusing one from a newer build.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct Version {
            format_version: u32,
        }
        let version: Version = serde_json::from_slice(bytes)
            .map_err(|e| format!("the seal config at {SEAL_CONFIG_PATH} is not readable: {e}"))?;
        if version.format_version > SEAL_CONFIG_VERSION {
            return Err(format!(
                "the seal config at {SEAL_CONFIG_PATH} has format {} but this build reads format {SEAL_CONFIG_VERSION} and older; upgrade strongroom",
                version.format_version
            ));
        }
        serde_json::from_slice(bytes)
            .map_err(|e| format!("the seal config at {SEAL_CONFIG_PATH} is not readable: {e}"))
    }

    /// Whether the shares are recovery shares (an auto-unseal seal).
    pub fn is_recovery(&self) -> bool {
        self.seal_type != crate::seal::SHAMIR
    }

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain strings and integers cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}
