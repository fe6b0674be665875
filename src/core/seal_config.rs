//! `core/seal-config`: what a sealed daemon must know before any key is
//! available. Stored unencrypted; holds nothing secret.

use serde::{Deserialize, Serialize};

use crate::seal::shamir::ShareCheck;

/// Where the seal config is stored.
pub const SEAL_CONFIG_PATH: &str = "core/seal-config";
/// Where the root key is stored, encrypted by the unseal key.
pub const ROOT_KEY_PATH: &str = "core/root-key";
/// The seal config format this build writes and the newest it reads.
pub const SEAL_CONFIG_VERSION: u32 = 1;

/// The seal's parameters, as written by init.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealConfig {
    /// Format of this record.
    pub format_version: u32,
    /// Seal type: `shamir`.
    #[serde(rename = "type")]
    pub seal_type: String,
    /// Unseal shares issued.
    pub secret_shares: u32,
    /// Unseal shares needed.
    pub secret_threshold: u32,
    /// Hashes of the issued shares, to refuse never-issued ones early.
    pub share_check: ShareCheck,
    /// Random identifier of this store, made at init.
    pub cluster_id: String,
    /// Name recorded at init (the config's `cluster_name`, or a generated one).
    pub cluster_name: String,
    /// When init ran, seconds since the Unix epoch.
    pub initialized_unix: u64,
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

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain strings and integers cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}
