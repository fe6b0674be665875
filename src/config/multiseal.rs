//! Several seals at once (`enable_multiseal = true`, Vault Enterprise's
//! seal HA): KMS seals tried in priority order, and an optional Shamir
//! break-glass seal. One line per seal for `server --check`, never a secret.

use std::time::Duration;

use super::{AwsKmsSeal, Config};

/// The most `seal "awskms"` blocks one config may have with `enable_multiseal`.
pub const MAX_KMS_SEALS: usize = 8;
/// The longest seal name.
pub const MAX_SEAL_NAME: usize = 32;

/// The seals of a config with `enable_multiseal = true`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Multiseal {
    /// The `seal "awskms"` blocks, sorted by priority (1 is tried first).
    pub seals: Vec<NamedSeal>,
    /// The `seal "shamir"` block: shares held offline, never tried automatically.
    pub emergency: Option<EmergencySeal>,
    /// Line of `enable_multiseal`, for messages.
    pub line: usize,
}

/// One `seal "awskms"` block of a multiseal config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedSeal {
    /// `name`, or `"awskms"` when the block gives none.
    pub name: String,
    /// The order at unseal: the lowest is asked first.
    pub priority: u32,
    /// `disabled = true`: decrypt-only, it wraps nothing new.
    pub disabled: bool,
    /// The KMS key and how to reach it.
    pub seal: AwsKmsSeal,
}

/// The `seal "shamir"` block of a multiseal config: the emergency seal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmergencySeal {
    /// `name`, or `"shamir"` when the block gives none.
    pub name: String,
    /// Line of the block, for messages.
    pub line: usize,
}

impl Multiseal {
    /// The seals that wrap the root key (not disabled), by priority.
    pub fn enabled(&self) -> impl Iterator<Item = &NamedSeal> {
        self.seals.iter().filter(|s| !s.disabled)
    }

    /// The seal called `name`, if it is a KMS seal.
    pub fn named(&self, name: &str) -> Option<&NamedSeal> {
        self.seals.iter().find(|s| s.name == name)
    }
}

/// The suffix of a seal's environment variables: its name upper-cased,
/// `-` as `_` (`osaka-2` → `OSAKA_2`, as `STRONGROOM_AWSKMS_KEY_ID_OSAKA_2`).
pub fn env_suffix(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

/// Whether `name` is a seal name: 1 to [`MAX_SEAL_NAME`] characters of
/// a-z, 0-9, `_` and `-`, starting with a letter. `Err` says what is wrong.
pub fn check_seal_name(name: &str) -> Result<(), String> {
    let well_formed = name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && name.len() <= MAX_SEAL_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if well_formed {
        return Ok(());
    }
    Err(format!(
        "must be 1 to {MAX_SEAL_NAME} characters of a-z, 0-9, _ and -, starting with a letter, such as \"tokyo\"; got {}",
        crate::text::quote(name)
    ))
}

/// A duration as the config writes it: `5s`, `1500ms`.
fn shown(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

/// The key, region and endpoint of a KMS seal, and its timeout.
fn kms_words(seal: &AwsKmsSeal) -> String {
    let key = match seal.kms_key_id.value.as_str() {
        "" => "no key id (decrypt only: the ciphertext names its key)".to_string(),
        key => format!("key {}", crate::text::quote(key)),
    };
    let region = seal.region.as_ref().map_or_else(
        || "region from the AWS chain".to_string(),
        |r| format!("region {}", r.value),
    );
    let endpoint = seal
        .endpoint
        .as_ref()
        .map(|e| format!(", endpoint {}", e.value))
        .unwrap_or_default();
    format!(
        "{key}, {region}{endpoint}, kms_timeout {}",
        shown(seal.kms_timeout)
    )
}

impl Config {
    /// One line per seal, as `server --check` prints them: name, type,
    /// priority, disabled, key, region. No credentials.
    pub fn seal_summary(&self) -> Vec<String> {
        let Some(multi) = &self.multiseal else {
            let mut lines = vec![match &self.seal {
                Some(seal) => format!("seal: awskms, {}", kms_words(seal)),
                None => "seal: shamir (unseal keys)".to_string(),
            }];
            if let Some(old) = &self.disabled_seal {
                lines.push(format!(
                    "seal: awskms, disabled (the seal a migration leaves), {}",
                    kms_words(old)
                ));
            }
            return lines;
        };
        let mut lines: Vec<String> = multi
            .seals
            .iter()
            .map(|s| {
                let disabled = if s.disabled {
                    ", disabled (decrypt only)"
                } else {
                    ""
                };
                format!(
                    "seal {}: awskms, priority {}{disabled}, {}",
                    crate::text::quote(&s.name),
                    s.priority,
                    kms_words(&s.seal)
                )
            })
            .collect();
        if let Some(emergency) = &multi.emergency {
            lines.push(format!(
                "seal {}: shamir, emergency (never tried automatically; unseal --seal {})",
                crate::text::quote(&emergency.name),
                emergency.name
            ));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_names_and_their_env_suffix() {
        for good in ["tokyo", "a", "osaka-2", "eu_west_1", &"x".repeat(32)] {
            assert_eq!(check_seal_name(good), Ok(()), "{good}");
        }
        for bad in ["", "Tokyo", "1st", "-a", "tok yo", "é", &"x".repeat(33)] {
            assert!(check_seal_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            check_seal_name("Tokyo").unwrap_err(),
            "must be 1 to 32 characters of a-z, 0-9, _ and -, starting with a letter, such as \"tokyo\"; got \"Tokyo\""
        );
        assert_eq!(env_suffix("osaka-2"), "OSAKA_2");
        assert_eq!(env_suffix("eu_west"), "EU_WEST");
    }
}
