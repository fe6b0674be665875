//! The `seal "awskms"` block, with Vault's key names.

use hcl_edit::structure::Block;

use super::Ctx;
use super::values::as_duration;
use super::words::qualified;
use crate::config::{
    AwsCredentialSettings, AwsKmsSeal, DEFAULT_HEALTH_CHECK_INTERVAL, MIN_HEALTH_CHECK_INTERVAL,
    Setting, Source, check_endpoint,
};
use crate::secret::SecretString;

impl Ctx<'_> {
    /// A seal block, and whether it is marked `disabled = true`.
    pub(super) fn seal(
        &mut self,
        block: &Block,
        kind: &str,
        line: usize,
    ) -> Option<(AwsKmsSeal, bool)> {
        if kind != "awskms" {
            self.error(
                line,
                "seal",
                format!(
                    "unknown seal type {kind:?} (strongroom has \"awskms\"; leave the seal block out for Shamir unseal keys)"
                ),
            );
            return None;
        }
        let name = "seal.awskms";
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
        ];
        let (section, _) = self.section(&block.body, name, &keys, &[]);
        let errors_before = self.errors.len();
        let text = |ctx: &mut Self, key: &str| -> Option<(String, usize)> {
            let (value, at) = ctx.string(&section, key)?;
            if value.trim().is_empty() {
                ctx.error(
                    at,
                    qualified(name, key),
                    "must not be empty; leave the key out instead",
                );
                return None;
            }
            Some((value, at))
        };
        let setting = |(value, line): (String, usize)| Setting {
            value,
            source: Source::File { line },
        };
        let kms_key_id = text(self, "kms_key_id")
            .map(setting)
            .unwrap_or_else(|| Setting::default_value(String::new()));
        let region = text(self, "region").map(setting);
        let endpoint = text(self, "endpoint").map(setting);
        if let Some(endpoint) = &endpoint
            && let Err(message) = check_endpoint(&endpoint.value)
        {
            let at = match endpoint.source {
                Source::File { line } => line,
                _ => line,
            };
            self.error(at, qualified(name, "endpoint"), message);
        }
        let access_key = text(self, "access_key").map(|(v, _)| v);
        let secret_key = text(self, "secret_key").map(|(v, _)| SecretString::new(v));
        let session_token = text(self, "session_token").map(|(v, _)| SecretString::new(v));
        // Presence, not a valid value: a mistyped value has its own error.
        let has_access_key = section.attrs.contains_key("access_key");
        if has_access_key != section.attrs.contains_key("secret_key") {
            self.error(
                line,
                qualified(name, if has_access_key { "secret_key" } else { "access_key" }),
                "access_key and secret_key go together: set both, or neither to use the AWS credential chain",
            );
        }
        let path = |ctx: &mut Self, key: &str| {
            let (value, at) = text(ctx, key)?;
            ctx.absolute(&value, at, &qualified(name, key))
        };
        let shared_creds_filename = path(self, "shared_creds_filename");
        let web_identity_token_file = path(self, "web_identity_token_file");
        let shared_creds_profile = text(self, "shared_creds_profile").map(|(v, _)| v);
        let role_arn = text(self, "role_arn").map(|(v, _)| v);
        let role_session_name = text(self, "role_session_name").map(|(v, _)| v);
        if web_identity_token_file.is_some() && role_arn.is_none() {
            self.error(
                line,
                qualified(name, "role_arn"),
                "is required with web_identity_token_file: the role to assume with the token",
            );
        }
        let disabled = self
            .boolean(&section, "disabled")
            .is_some_and(|(disabled, _)| disabled);
        let health_check_interval = match self.value(&section, "health_check_interval", as_duration)
        {
            Some((interval, at)) if !interval.is_zero() && interval < MIN_HEALTH_CHECK_INTERVAL => {
                self.error(
                    at,
                    qualified(name, "health_check_interval"),
                    format!(
                        "must be \"0\" (off) or at least {} s: each check is one KMS DescribeKey",
                        MIN_HEALTH_CHECK_INTERVAL.as_secs()
                    ),
                );
                DEFAULT_HEALTH_CHECK_INTERVAL
            }
            Some((interval, _)) => interval,
            None => DEFAULT_HEALTH_CHECK_INTERVAL,
        };
        if self.errors.len() > errors_before {
            return None;
        }
        let seal = AwsKmsSeal {
            kms_key_id,
            region,
            endpoint,
            credentials: AwsCredentialSettings {
                access_key,
                secret_key,
                session_token,
                shared_creds_filename,
                shared_creds_profile,
                role_arn,
                web_identity_token_file,
                role_session_name,
            },
            health_check_interval,
            line,
        };
        Some((seal, disabled))
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
