//! The `seal "awskms"` block, with Vault's key names; with
//! `enable_multiseal` also the emergency `seal "shamir"` block
//! (`multiseal.rs`).

use std::path::PathBuf;
use std::time::Duration;

use hcl_edit::Span;
use hcl_edit::structure::Block;

use super::values::{as_duration, as_u64};
use super::words::qualified;
use super::{Ctx, Section};
use crate::config::{
    AwsCredentialSettings, AwsKmsSeal, DEFAULT_HEALTH_CHECK_INTERVAL, DEFAULT_KMS_TIMEOUT, FileUse,
    KMS_TIMEOUT_RANGE, MIN_HEALTH_CHECK_INTERVAL, Setting, Source, check_endpoint, check_region,
    check_seal_name,
};
use crate::secret::SecretString;

/// The block's name in error messages.
const NAME: &str = "seal.awskms";

/// A seal block as read, before the blocks are put together: one in use
/// and one disabled as today, or with `enable_multiseal` every one of them.
pub(super) struct SealBlock {
    /// The KMS seal; `None` for a `seal "shamir"` block.
    pub kms: Option<AwsKmsSeal>,
    /// `name` and its line.
    pub name: Option<(String, usize)>,
    /// `priority` and its line.
    pub priority: Option<(u32, usize)>,
    /// `disabled = true`.
    pub disabled: bool,
    /// Line of the block.
    pub line: usize,
}

impl Ctx<'_> {
    /// A seal block of type `kind`; `multiseal` when `enable_multiseal = true`
    /// (which alone allows `name`, `priority` and `seal "shamir"`).
    pub(super) fn seal(
        &mut self,
        block: &Block,
        kind: &str,
        line: usize,
        multiseal: bool,
    ) -> Option<SealBlock> {
        match kind {
            "awskms" => self.awskms(block, line, multiseal),
            "shamir" if multiseal => self.shamir_seal(block, line),
            "shamir" => {
                self.error(
                    line,
                    "seal",
                    "a seal \"shamir\" block needs enable_multiseal = true at the top of the file (it is the emergency seal beside KMS seals); for Shamir unseal keys alone, leave the seal block out",
                );
                None
            }
            _ => {
                self.error(
                    line,
                    "seal",
                    format!(
                        "unknown seal type {} (strongroom has \"awskms\", and \"shamir\" with enable_multiseal = true; leave the seal block out for Shamir unseal keys)",
                        crate::text::quote(kind)
                    ),
                );
                None
            }
        }
    }

    /// A `seal "awskms"` block.
    fn awskms(&mut self, block: &Block, line: usize, multiseal: bool) -> Option<SealBlock> {
        let keys = [
            "region",
            "kms_key_id",
            "endpoint",
            "access_key",
            "secret_key",
            "session_token",
            "shared_creds_filename",
            "shared_creds_profile",
            "role_arn",
            "web_identity_token_file",
            "role_session_name",
            "disabled",
            "health_check_interval",
            "kms_timeout",
            "name",
            "priority",
        ];
        let (section, _) = self.section(&block.body, NAME, &keys, &[]);
        let errors_before = self.errors.len();
        let setting = |(value, line): (String, usize)| Setting {
            value,
            source: Source::File { line },
        };
        let kms_key_id = self
            .seal_text(&section, "kms_key_id")
            .map(setting)
            .unwrap_or_else(|| Setting::default_value(String::new()));
        let region = self.seal_text(&section, "region");
        if let Some((region, at)) = &region {
            match check_region(region) {
                Ok(true) => {}
                Ok(false) => self.warning(
                    *at,
                    qualified(NAME, "region"),
                    format!(
                        "{} is not a region AWS lists; check the name if KMS cannot be reached",
                        crate::text::quote(region)
                    ),
                ),
                Err(message) => self.error(*at, qualified(NAME, "region"), message),
            }
        }
        let region = region.map(setting);
        let endpoint = self.seal_text(&section, "endpoint");
        if let Some((endpoint, at)) = &endpoint
            && let Err(message) = check_endpoint(endpoint)
        {
            self.error(*at, qualified(NAME, "endpoint"), message);
        }
        let credentials = self.credentials(&section, line);
        let disabled = self
            .boolean(&section, "disabled")
            .is_some_and(|(disabled, _)| disabled);
        let health_check_interval = self.health_check_interval(&section);
        let kms_timeout = self.kms_timeout(&section);
        let (name, priority) = if multiseal {
            (self.seal_name(&section, NAME), self.priority(&section))
        } else {
            for key in ["name", "priority"] {
                if let Some(attr) = section.attrs.get(key) {
                    let at = self.line(attr.span());
                    self.error(
                        at,
                        qualified(NAME, key),
                        "needs enable_multiseal = true at the top of the file (one seal without it takes no name or priority)",
                    );
                }
            }
            (None, None)
        };
        if self.errors.len() > errors_before {
            return None;
        }
        let seal = AwsKmsSeal {
            kms_key_id,
            region,
            endpoint: endpoint.map(setting),
            credentials,
            health_check_interval,
            kms_timeout,
            line,
        };
        Some(SealBlock {
            kms: Some(seal),
            name,
            priority,
            disabled,
            line,
        })
    }

    /// `name` of a seal block, checked.
    pub(super) fn seal_name(
        &mut self,
        section: &Section<'_>,
        block: &str,
    ) -> Option<(String, usize)> {
        let (name, at) = self.string(section, "name")?;
        match check_seal_name(&name) {
            Ok(()) => Some((name, at)),
            Err(message) => {
                self.error(at, qualified(block, "name"), message);
                None
            }
        }
    }

    /// `priority` of a KMS seal: a positive whole number.
    fn priority(&mut self, section: &Section<'_>) -> Option<(u32, usize)> {
        let (priority, at) = self.value(section, "priority", as_u64)?;
        match u32::try_from(priority) {
            Ok(priority) if priority > 0 => Some((priority, at)),
            _ => {
                self.error(
                    at,
                    qualified(NAME, "priority"),
                    format!(
                        "must be a whole number from 1 to {} (1 is tried first); got {priority}",
                        u32::MAX
                    ),
                );
                None
            }
        }
    }

    /// How long the one Decrypt on the path to unsealed may take.
    fn kms_timeout(&mut self, section: &Section<'_>) -> Duration {
        match self.value(section, "kms_timeout", as_duration) {
            Some((timeout, _)) if KMS_TIMEOUT_RANGE.contains(&timeout) => timeout,
            Some((_, at)) => {
                self.error(
                    at,
                    qualified(NAME, "kms_timeout"),
                    format!(
                        "must be from {} s to {} s: how long the one Decrypt on the path to unsealed waits before the next seal is tried",
                        KMS_TIMEOUT_RANGE.start().as_secs(),
                        KMS_TIMEOUT_RANGE.end().as_secs()
                    ),
                );
                DEFAULT_KMS_TIMEOUT
            }
            None => DEFAULT_KMS_TIMEOUT,
        }
    }

    /// A string of the seal block; an empty one is an error.
    fn seal_text(&mut self, section: &Section<'_>, key: &str) -> Option<(String, usize)> {
        let (value, at) = self.string(section, key)?;
        if value.trim().is_empty() {
            self.error(
                at,
                qualified(NAME, key),
                "must not be empty; leave the key out instead",
            );
            return None;
        }
        Some((value, at))
    }

    /// A string of the seal block, without its line.
    fn seal_string(&mut self, section: &Section<'_>, key: &str) -> Option<String> {
        self.seal_text(section, key).map(|(value, _)| value)
    }

    /// An absolute path of the seal block.
    fn seal_path(&mut self, section: &Section<'_>, key: &str) -> Option<PathBuf> {
        let (value, at) = self.seal_text(section, key)?;
        let key = qualified(NAME, key);
        let path = self.absolute(&value, at, &key)?;
        self.named_file(&path, at, &key, FileUse::Read);
        Some(path)
    }

    /// The credentials the block sets (none: the AWS credential chain).
    fn credentials(&mut self, section: &Section<'_>, line: usize) -> AwsCredentialSettings {
        let access_key = self.seal_string(section, "access_key");
        let secret_key = self
            .seal_string(section, "secret_key")
            .map(SecretString::new);
        let session_token = self
            .seal_string(section, "session_token")
            .map(SecretString::new);
        // Presence, not a valid value: a mistyped value has its own error.
        let has_access_key = section.attrs.contains_key("access_key");
        if has_access_key != section.attrs.contains_key("secret_key") {
            self.error(
                line,
                qualified(NAME, if has_access_key { "secret_key" } else { "access_key" }),
                "access_key and secret_key go together: set both, or neither to use the AWS credential chain",
            );
        }
        let shared_creds_filename = self.seal_path(section, "shared_creds_filename");
        let web_identity_token_file = self.seal_path(section, "web_identity_token_file");
        let shared_creds_profile = self.seal_string(section, "shared_creds_profile");
        let role_arn = self.seal_string(section, "role_arn");
        let role_session_name = self.seal_string(section, "role_session_name");
        if web_identity_token_file.is_some() && role_arn.is_none() {
            self.error(
                line,
                qualified(NAME, "role_arn"),
                "is required with web_identity_token_file: the role to assume with the token",
            );
        }
        AwsCredentialSettings {
            access_key,
            secret_key,
            session_token,
            shared_creds_filename,
            shared_creds_profile,
            role_arn,
            web_identity_token_file,
            role_session_name,
        }
    }

    /// How often the KMS key is checked: 0 (off) or at least the minimum.
    fn health_check_interval(&mut self, section: &Section<'_>) -> Duration {
        match self.value(section, "health_check_interval", as_duration) {
            Some((interval, at)) if !interval.is_zero() && interval < MIN_HEALTH_CHECK_INTERVAL => {
                self.error(
                    at,
                    qualified(NAME, "health_check_interval"),
                    format!(
                        "must be \"0\" (off) or at least {} s: each check is one KMS DescribeKey",
                        MIN_HEALTH_CHECK_INTERVAL.as_secs()
                    ),
                );
                DEFAULT_HEALTH_CHECK_INTERVAL
            }
            Some((interval, _)) => interval,
            None => DEFAULT_HEALTH_CHECK_INTERVAL,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::super::{MINIMAL, errors, parse};
    use crate::config::Source;

    #[test]
    fn awskms_seal_parses_with_vault_key_names() {
        let config = parse(
            &format!(
                r#"{MINIMAL}
seal "awskms" {{
  region     = "eu-west-1"
  kms_key_id = "alias/strongroom-unseal"
  endpoint   = "http://127.0.0.1:4566"
  access_key = "AKIDEXAMPLE"
  secret_key = "very-secret"
  disabled   = "false"
  health_check_interval = "1h30m"
}}
"#
            ),
            Path::new("test.hcl"),
        )
        .unwrap();
        let seal = config.seal.unwrap();
        assert_eq!(seal.kms_key_id.value, "alias/strongroom-unseal");
        assert_eq!(seal.kms_key_id.source, Source::File { line: 6 });
        assert_eq!(seal.region.unwrap().value, "eu-west-1");
        assert_eq!(seal.health_check_interval, Duration::from_secs(5400));
        assert_eq!(seal.credentials.access_key.as_deref(), Some("AKIDEXAMPLE"));
        let debug = format!("{:?}", seal.credentials);
        assert!(!debug.contains("very-secret"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }

    #[test]
    fn awskms_seal_errors_name_line_and_key() {
        let errs = errors(&format!(
            "{MINIMAL}seal \"awskms\" {{\n  kms_key_id = \"k\"\n  health_check_interval = \"10 minutes\"\n  access_key = \"a\"\n  disabled = true\n  endpoint = \"kms.local\"\n  regoin = \"x\"\n}}\n"
        ));
        let text = errs.join("\n");
        for expected in [
            "test.hcl:3: seal.awskms.secret_key: access_key and secret_key go together",
            "test.hcl:5: seal.awskms.health_check_interval: expected a duration",
            "test.hcl:8: seal.awskms.endpoint: expected a URL starting with https://",
            "test.hcl:9: seal.awskms.regoin: unknown key \"regoin\" (did you mean \"region\"?)",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
        let errs = errors(&format!(
            "{MINIMAL}seal \"awskms\" {{\n  kms_key_id = \"k\"\n  access_key = \"a\"\n  secret_key = 7\n  health_check_interval = \"1ms\"\n}}\n"
        ));
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].contains("test.hcl:6: seal.awskms.secret_key: expected a string"),
            "{errs:?}"
        );
        assert!(
            errs[1].contains(
                "test.hcl:7: seal.awskms.health_check_interval: must be \"0\" (off) or at least 1 s"
            ),
            "{errs:?}"
        );
        let errs = errors(&format!("{MINIMAL}cluster_name = \" \"\n"));
        assert!(errs[0].contains("cluster_name: is empty"), "{errs:?}");
        let errs = errors(&format!("{MINIMAL}seal \"gcpckms\" {{}}\n"));
        assert!(
            errs[0].contains("unknown seal type \"gcpckms\""),
            "{errs:?}"
        );
        let errs = errors(&format!(
            "{MINIMAL}seal \"awskms\" {{ kms_key_id = \"a\" }}\nseal \"awskms\" {{ kms_key_id = \"b\" }}\n"
        ));
        assert!(
            errs[0].contains("only one seal block is allowed (the first is on line 3)"),
            "{errs:?}"
        );
        // A migration: one seal in use, one disabled (only the first needs a key id).
        let config = parse(
            &format!(
                "{MINIMAL}seal \"awskms\" {{\n  kms_key_id = \"new\"\n}}\nseal \"awskms\" {{\n  disabled = \"true\"\n  kms_key_id = \"old\"\n}}\n"
            ),
            Path::new("test.hcl"),
        )
        .unwrap();
        assert_eq!(config.seal.unwrap().kms_key_id.value, "new");
        assert_eq!(config.disabled_seal.unwrap().kms_key_id.value, "old");
        let errs = errors(&format!(
            "{MINIMAL}seal \"awskms\" {{\n disabled = true\n}}\nseal \"awskms\" {{\n disabled = true\n}}\n"
        ));
        assert!(
            errs[0].contains("only one disabled seal block is allowed (the first is on line 3)"),
            "{errs:?}"
        );
    }
}
