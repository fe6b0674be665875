//! What `strongroom diagnose` asks of a seal's KMS, through the seal's own
//! client (same chain, timeouts and error sentences): where its credentials
//! come from, and DescribeKey in full.

use std::time::Instant;

use aws_sdk_kms::config::ProvideCredentials;

use super::{AwsKms, measured, state_of};
use crate::seal::kms::{KeyState, KmsError, KmsErrorKind};

/// How long resolving credentials may take (web identity and instance
/// roles ask the network).
const CREDENTIALS_TIMEOUT: std::time::Duration = super::OPERATION_TIMEOUT;

/// What DescribeKey says about a key, for diagnose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDescription {
    /// The key's ARN.
    pub arn: String,
    /// Its state.
    pub state: KeyState,
    /// `SYMMETRIC_DEFAULT`, `RSA_2048`, …, when KMS says.
    pub key_spec: Option<String>,
    /// `ENCRYPT_DECRYPT`, `SIGN_VERIFY`, …, when KMS says.
    pub key_usage: Option<String>,
}

impl AwsKms {
    /// Resolves the credentials the seal's client signs with and names
    /// their source, in the AWS chain's order; never the secret.
    pub async fn resolve_credentials(&self) -> Result<String, KmsError> {
        self.client().await?;
        let Some(provider) = self.credentials.get() else {
            return Err(KmsError::new(
                KmsErrorKind::Config,
                "the AWS SDK has no credentials provider for this seal",
            ));
        };
        let resolved = tokio::time::timeout(CREDENTIALS_TIMEOUT, provider.provide_credentials())
            .await
            .map_err(|_| {
                KmsError::new(
                    KmsErrorKind::Unavailable,
                    format!(
                        "no AWS credentials were found within {}s",
                        CREDENTIALS_TIMEOUT.as_secs()
                    ),
                )
            })?;
        match resolved {
            Ok(_) => Ok(self.chain_source(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))),
            Err(e) => Err(KmsError::new(
                KmsErrorKind::Denied,
                format!("no AWS credentials were found: {}", attempts(&e)),
            )),
        }
    }

    /// The first source the AWS chain takes credentials from: the seal
    /// block's settings, else the environment, the shared files, a web
    /// identity token, the container's endpoint, the instance role.
    fn chain_source(&self, env: impl Fn(&str) -> Option<String>) -> String {
        let c = &self.settings.credentials;
        if c.access_key.is_some()
            || c.web_identity_token_file.is_some()
            || c.shared_creds_filename.is_some()
            || c.shared_creds_profile.is_some()
        {
            return self.credential_source();
        }
        let base = if env("AWS_ACCESS_KEY_ID").is_some() {
            "the environment (AWS_ACCESS_KEY_ID)".to_string()
        } else if env("AWS_PROFILE").is_some() || shared_files_exist(&env) {
            format!(
                "the shared credentials files, profile {}",
                env("AWS_PROFILE").unwrap_or_else(|| "default".into())
            )
        } else if let (Some(file), Some(role)) =
            (env("AWS_WEB_IDENTITY_TOKEN_FILE"), env("AWS_ROLE_ARN"))
        {
            format!("the web identity token {file} for role {role}")
        } else if env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_some()
            || env("AWS_CONTAINER_CREDENTIALS_FULL_URI").is_some()
        {
            "the container's credentials endpoint (ECS, EKS Pod Identity)".to_string()
        } else {
            "the EC2 instance role (instance metadata)".to_string()
        };
        match &c.role_arn {
            Some(role) => format!("{base}, assuming role {role}"),
            None => base,
        }
    }

    /// DescribeKey of the configured key: ARN, state, spec and usage.
    pub async fn describe(&self) -> Result<KeyDescription, KmsError> {
        let started = Instant::now();
        let key = self.settings.kms_key_id.value.as_str();
        let output = self
            .client()
            .await?
            .describe_key()
            .key_id(key)
            .send()
            .await
            .map_err(|e| self.error("DescribeKey", key, e));
        let output = measured("DescribeKey", started, output)?;
        let metadata = output.key_metadata.ok_or_else(|| {
            KmsError::new(
                KmsErrorKind::Unavailable,
                "KMS answered DescribeKey without key metadata",
            )
        })?;
        Ok(KeyDescription {
            arn: metadata.arn.clone().unwrap_or_default(),
            state: state_of(metadata.key_state.as_ref()),
            key_spec: metadata.key_spec.as_ref().map(|s| s.as_str().to_string()),
            key_usage: metadata.key_usage.as_ref().map(|u| u.as_str().to_string()),
        })
    }

    /// The region the client signs for: the built client's, else the
    /// configured one.
    pub fn signing_region(&self) -> Option<String> {
        self.region()
    }
}

/// Whether `~/.aws/credentials` or `~/.aws/config` (or the files the
/// environment names) exist.
fn shared_files_exist(env: &impl Fn(&str) -> Option<String>) -> bool {
    let home = env("HOME").unwrap_or_default();
    [
        env("AWS_SHARED_CREDENTIALS_FILE").unwrap_or_else(|| format!("{home}/.aws/credentials")),
        env("AWS_CONFIG_FILE").unwrap_or_else(|| format!("{home}/.aws/config")),
    ]
    .iter()
    .any(|f| std::path::Path::new(f).is_file())
}

/// What the chain tried, on one line: the SDK lists each provider on a
/// line of its own under "Attempted:".
fn attempts(err: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = err;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    let text = innermost.to_string();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or_default().to_string();
    let tried: Vec<&str> = lines.collect();
    if tried.is_empty() {
        first
    } else {
        format!("the AWS chain tried {}", tried.join("; "))
    }
}

/// Whether `err` is KMS's AccessDeniedException: the credentials were
/// accepted, but no policy allows the action on the key.
pub fn is_access_denied(err: &KmsError) -> bool {
    err.kind == KmsErrorKind::Denied && err.message.starts_with(super::super::aws_error::DENIED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AwsCredentialSettings, AwsKmsSeal, Setting};

    fn seal(credentials: AwsCredentialSettings) -> AwsKms {
        AwsKms::new(AwsKmsSeal {
            kms_key_id: Setting::default_value("alias/k".into()),
            region: Some(Setting::default_value("eu-west-1".into())),
            endpoint: Some(Setting::default_value("http://127.0.0.1:1".into())),
            credentials,
            health_check_interval: std::time::Duration::ZERO,
            kms_timeout: crate::config::DEFAULT_KMS_TIMEOUT,
            line: 1,
        })
    }

    #[test]
    fn the_source_is_the_first_the_chain_finds_set() {
        let chain = seal(AwsCredentialSettings::default());
        let env = |set: &'static [(&'static str, &'static str)]| {
            move |var: &str| {
                set.iter()
                    .find(|(k, _)| *k == var)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            chain.chain_source(env(&[("AWS_ACCESS_KEY_ID", "AKID"), ("AWS_PROFILE", "p")])),
            "the environment (AWS_ACCESS_KEY_ID)"
        );
        assert_eq!(
            chain.chain_source(env(&[("AWS_PROFILE", "ops")])),
            "the shared credentials files, profile ops"
        );
        assert_eq!(
            chain.chain_source(env(&[
                ("HOME", "/nonexistent"),
                ("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/token"),
                ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
            ])),
            "the web identity token /var/run/token for role arn:aws:iam::1:role/r"
        );
        assert_eq!(
            chain.chain_source(env(&[("HOME", "/nonexistent")])),
            "the EC2 instance role (instance metadata)"
        );
        let assumed = seal(AwsCredentialSettings {
            role_arn: Some("arn:aws:iam::1:role/seal".into()),
            ..AwsCredentialSettings::default()
        });
        assert_eq!(
            assumed.chain_source(env(&[("HOME", "/nonexistent")])),
            "the EC2 instance role (instance metadata), assuming role arn:aws:iam::1:role/seal"
        );
        let static_keys = seal(AwsCredentialSettings {
            access_key: Some("AKID".into()),
            secret_key: Some(crate::secret::SecretString::new("s3cret".into())),
            ..AwsCredentialSettings::default()
        });
        let named = static_keys.chain_source(env(&[]));
        assert_eq!(named, "static keys from the seal block");
        assert!(!named.contains("s3cret"));
    }

    #[derive(Debug)]
    struct Tried;

    impl std::fmt::Display for Tried {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("no credentials found in chain. Attempted:\n  Environment: not set\n  Profile: not enabled\n")
        }
    }

    impl std::error::Error for Tried {}

    #[test]
    fn what_the_chain_tried_is_one_line() {
        assert_eq!(
            attempts(&Tried),
            "the AWS chain tried Environment: not set; Profile: not enabled"
        );
    }
}
