//! AWS KMS through `aws-sdk-kms`: the [`Kms`] the `awskms` seal uses in production.
//!
//! The client is built on first use, not at start-up, so the listeners are up
//! before anything talks to AWS. Settings resolve in this order (the log says
//! which one won): `STRONGROOM_AWSKMS_*` variables > the seal block > `AWS_*`
//! variables > the rest of the AWS chain (shared files, web identity, ECS and
//! EC2 instance roles). The HTTPS client is rustls on ring, the same TLS stack
//! as strongroom's listeners.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_config::provider_config::ProviderConfig;
use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::web_identity_token::{StaticConfiguration, WebIdentityTokenCredentialsProvider};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_kms::Client;
use aws_sdk_kms::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use tokio::sync::OnceCell;

use super::aws_error::sdk_error;
use super::kms::{
    EncryptionContext, KeyInfo, KeyState, Kms, KmsError, KmsErrorKind, Unwrapped, Wrapped,
};
use crate::config::AwsKmsSeal;
use crate::metrics;
use crate::secret::SecretBytes;

mod probe;

pub use probe::{KeyDescription, is_access_denied};

/// How long to wait for a TCP (and TLS) connection to KMS.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one attempt of a KMS call may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a KMS call may take with its retries.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(12);
/// Attempts per KMS call: throttling, 5xx and connection errors are retried
/// with the SDK's jittered exponential backoff.
pub const MAX_ATTEMPTS: u32 = 3;

/// Every KMS permission the `awskms` seal's credentials need, one per call
/// below: Encrypt (init and re-wrap), Decrypt (every start) and DescribeKey
/// (after unseal and for health checks). The README's IAM policy and
/// `deploy/terraform/`'s key policy list exactly these (tests check both).
pub const SEAL_ACTIONS: &[&str] = &["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"];

/// The `awskms` seal's KMS client.
pub struct AwsKms {
    settings: AwsKmsSeal,
    /// The effective endpoint URL; empty for AWS's regional endpoint.
    endpoint: String,
    client: OnceCell<Client>,
    /// The credentials provider the client was built with (diagnose
    /// resolves it to name the source).
    credentials: std::sync::OnceLock<SharedCredentialsProvider>,
}

impl AwsKms {
    /// A client for the key in `settings`. Nothing is contacted until the first call.
    pub fn new(settings: AwsKmsSeal) -> Self {
        let endpoint = match &settings.endpoint {
            Some(endpoint) => endpoint.value.clone(),
            None => ["AWS_ENDPOINT_URL_KMS", "AWS_ENDPOINT_URL"]
                .into_iter()
                .find_map(|var| std::env::var(var).ok())
                .unwrap_or_default(),
        };
        Self {
            settings,
            endpoint,
            client: OnceCell::new(),
            credentials: std::sync::OnceLock::new(),
        }
    }

    /// Logs the effective key, region, endpoint and credential source, and
    /// where each came from. Never logs a secret.
    pub fn log_settings(&self, env: impl Fn(&str) -> Option<String>, label: &str) {
        let s = &self.settings;
        let (region, region_source) = match &s.region {
            Some(region) => (region.value.clone(), region.source.to_string()),
            None => ["AWS_REGION", "AWS_DEFAULT_REGION"]
                .into_iter()
                .find_map(|var| env(var).map(|v| (v, format!("environment variable {var}"))))
                .unwrap_or_else(|| {
                    (
                        "(from the AWS chain)".into(),
                        "shared config file or instance metadata".into(),
                    )
                }),
        };
        let (endpoint, endpoint_source) = match &s.endpoint {
            Some(endpoint) => (endpoint.value.clone(), endpoint.source.to_string()),
            None => ["AWS_ENDPOINT_URL_KMS", "AWS_ENDPOINT_URL"]
                .into_iter()
                .find_map(|var| env(var).map(|v| (v, format!("environment variable {var}"))))
                .unwrap_or_else(|| ("AWS's regional endpoint".into(), "default".into())),
        };
        tracing::info!(
            kms_key_id = %s.kms_key_id.value,
            kms_key_id_source = %s.kms_key_id.source,
            region = %region,
            region_source = %region_source,
            endpoint = %endpoint,
            endpoint_source = %endpoint_source,
            credentials = %self.credential_source(),
            kms_timeout_ms = s.kms_timeout.as_millis() as u64,
            "{label}"
        );
    }

    fn credential_source(&self) -> String {
        let c = &self.settings.credentials;
        let base = if c.access_key.is_some() {
            "static keys from the seal block".to_string()
        } else if let (Some(role), Some(file)) = (&c.role_arn, &c.web_identity_token_file) {
            format!("web identity token {} for role {role}", file.display())
        } else if c.shared_creds_filename.is_some() || c.shared_creds_profile.is_some() {
            format!(
                "shared credentials file {} profile {}",
                c.shared_creds_filename
                    .as_ref()
                    .map_or("~/.aws/credentials".into(), |f| f.display().to_string()),
                c.shared_creds_profile.as_deref().unwrap_or("default")
            )
        } else {
            "the AWS credential chain (environment, shared files, web identity, ECS, EC2)"
                .to_string()
        };
        match (&c.role_arn, &c.web_identity_token_file) {
            (Some(role), None) => format!("{base}, assuming role {role}"),
            _ => base,
        }
    }

    /// One plain sentence for a failed call ([`sdk_error`]).
    pub(super) fn error<E>(
        &self,
        action: &str,
        key: &str,
        err: SdkError<E, aws_sdk_kms::config::http::HttpResponse>,
    ) -> KmsError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let region = self.region().unwrap_or_default();
        sdk_error(&self.endpoint_label(), &region, action, key, err)
    }

    /// A Decrypt of [`Kms::decrypt_once`] that ran out of `kms_timeout`.
    fn timed_out(&self, key: &str) -> KmsError {
        let limit = self.settings.kms_timeout;
        let shown = if limit.subsec_millis() == 0 {
            format!("{}s", limit.as_secs())
        } else {
            format!("{}ms", limit.as_millis())
        };
        KmsError::new(
            KmsErrorKind::Unavailable,
            format!(
                "{} did not answer within {shown} (kms_timeout): Decrypt with key {key}",
                self.endpoint_label()
            ),
        )
    }

    /// The endpoint an error names: its URL, or AWS's regional endpoint by region.
    fn endpoint_label(&self) -> String {
        if !self.endpoint.is_empty() {
            return format!("KMS at {}", self.endpoint);
        }
        match self.region() {
            Some(region) => format!("KMS in region {region}"),
            None => "KMS".to_string(),
        }
    }

    /// The client's region once it is built, else the configured one.
    fn region(&self) -> Option<String> {
        let built = self.client.get().and_then(|c| c.config().region());
        match (built, &self.settings.region) {
            (Some(region), _) => Some(region.to_string()),
            (None, Some(region)) => Some(region.value.clone()),
            (None, None) => None,
        }
    }

    /// Builds the client ahead of the first call, so the first Decrypt does
    /// not wait for it. After a failure the first call builds it again and
    /// reports why.
    pub async fn warm_up(&self) {
        if let Err(e) = self.client().await {
            tracing::debug!(error = %e, "the KMS client could not be built yet");
        }
    }

    pub(super) async fn client(&self) -> Result<&Client, KmsError> {
        self.client.get_or_try_init(|| self.build_client()).await
    }

    async fn build_client(&self) -> Result<Client, KmsError> {
        let s = &self.settings;
        let c = &s.credentials;
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
            .operation_timeout(OPERATION_TIMEOUT)
            .build();
        let retries = RetryConfig::standard()
            .with_max_attempts(MAX_ATTEMPTS)
            .with_initial_backoff(Duration::from_millis(50))
            .with_max_backoff(Duration::from_secs(2));

        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http.clone())
            .timeout_config(timeouts.clone())
            .retry_config(retries.clone());
        if let Some(region) = &s.region {
            loader = loader.region(Region::new(region.value.clone()));
        }
        if let Some(file) = &c.shared_creds_filename {
            loader = loader.profile_files(credentials_file(file));
        }
        if let Some(profile) = &c.shared_creds_profile {
            loader = loader.profile_name(profile);
        }
        if let (Some(access_key), Some(secret_key)) = (&c.access_key, &c.secret_key) {
            loader = loader.credentials_provider(Credentials::new(
                access_key,
                secret_key.expose(),
                c.session_token.as_ref().map(|t| t.expose().to_string()),
                None,
                "strongroom-seal-block",
            ));
        }
        let mut sdk_config: SdkConfig = loader.load().await;
        let Some(region) = sdk_config.region() else {
            return Err(KmsError::new(
                KmsErrorKind::Config,
                "no AWS region is configured: set region in the seal \"awskms\" block or AWS_REGION",
            ));
        };
        if s.region.is_none() {
            // The start-up line could not name a region found in a profile
            // file or instance metadata; the resolved chain can.
            tracing::info!(region = %region, "awskms: region resolved by the AWS chain");
        }

        let session_name = c
            .role_session_name
            .clone()
            .unwrap_or_else(|| "strongroom".to_string());
        if let (Some(role_arn), Some(token_file)) = (&c.role_arn, &c.web_identity_token_file) {
            let provider_config = ProviderConfig::default()
                .with_http_client(http)
                .with_region(sdk_config.region().cloned())
                .with_timeout_config(timeouts)
                .with_retry_config(retries);
            let provider = WebIdentityTokenCredentialsProvider::builder()
                .static_configuration(StaticConfiguration {
                    web_identity_token_file: token_file.clone(),
                    role_arn: role_arn.clone(),
                    session_name,
                })
                .configure(&provider_config)
                .build();
            sdk_config = sdk_config
                .into_builder()
                .credentials_provider(SharedCredentialsProvider::new(provider))
                .build();
        } else if let Some(role_arn) = &c.role_arn {
            let provider = AssumeRoleProvider::builder(role_arn)
                .session_name(session_name)
                .configure(&sdk_config)
                .build()
                .await;
            sdk_config = sdk_config
                .into_builder()
                .credentials_provider(SharedCredentialsProvider::new(provider))
                .build();
        }

        if let Some(provider) = sdk_config.credentials_provider() {
            let _ = self.credentials.set(provider);
        }
        let mut kms_config = aws_sdk_kms::config::Builder::from(&sdk_config);
        if let Some(endpoint) = &s.endpoint {
            kms_config = kms_config.endpoint_url(&endpoint.value);
        }
        Ok(Client::from_conf(kms_config.build()))
    }
}

/// The default shared config file plus `file` as the credentials file.
// aws-config's loader takes its own (deprecated) alias of aws-runtime's type;
// naming the alias spares a direct dependency on aws-runtime.
#[allow(deprecated)]
fn credentials_file(file: &std::path::Path) -> aws_config::profile::profile_file::ProfileFiles {
    use aws_config::profile::profile_file::{ProfileFileKind, ProfileFiles};
    ProfileFiles::builder()
        .include_default_config_file(true)
        .with_file(ProfileFileKind::Credentials, file)
        .build()
}

/// KMS's key state as the seal's [`KeyState`] (also read by `seal::import`).
pub(super) fn state_of(state: Option<&aws_sdk_kms::types::KeyState>) -> KeyState {
    use aws_sdk_kms::types::KeyState as Aws;
    match state {
        Some(Aws::Enabled) => KeyState::Enabled,
        Some(Aws::Disabled) => KeyState::Disabled,
        Some(Aws::PendingDeletion) => KeyState::PendingDeletion,
        Some(other) => KeyState::Other(other.as_str().to_string()),
        None => KeyState::Other("unknown".into()),
    }
}

impl AwsKms {
    /// Decrypt with no KeyId (the ciphertext names its key: see the trait).
    /// `once`: one attempt bounded by `kms_timeout`, a per-call override of
    /// the client's retry and timeout settings (the client and its
    /// connections are shared with every other call).
    async fn decrypt_with(
        &self,
        ciphertext: &[u8],
        context: &EncryptionContext,
        key_arn: &str,
        once: bool,
    ) -> Result<Unwrapped, KmsError> {
        let started = Instant::now();
        let mut request = self
            .client()
            .await?
            .decrypt()
            .ciphertext_blob(Blob::new(ciphertext));
        for (k, v) in context.pairs() {
            request = request.encryption_context(k, v);
        }
        let output = if once {
            let limit = self.settings.kms_timeout;
            let override_ = aws_sdk_kms::config::Builder::default()
                .retry_config(RetryConfig::standard().with_max_attempts(1))
                .timeout_config(
                    TimeoutConfig::builder()
                        .connect_timeout(CONNECT_TIMEOUT.min(limit))
                        .operation_attempt_timeout(limit)
                        .operation_timeout(limit)
                        .build(),
                );
            request
                .customize()
                .config_override(override_)
                .send()
                .await
                .map_err(|e| match &e {
                    SdkError::TimeoutError(_) => self.timed_out(key_arn),
                    SdkError::DispatchFailure(f)
                        if f.as_connector_error().is_some_and(|c| c.is_timeout()) =>
                    {
                        self.timed_out(key_arn)
                    }
                    _ => self.error("Decrypt", key_arn, e),
                })
        } else {
            request
                .send()
                .await
                .map_err(|e| self.error("Decrypt", key_arn, e))
        };
        let output = measured("Decrypt", started, output)?;
        let incomplete = || {
            KmsError::new(
                KmsErrorKind::Unavailable,
                "KMS answered Decrypt without a plaintext or key ARN",
            )
        };
        Ok(Unwrapped {
            plaintext: SecretBytes::new(output.plaintext.ok_or_else(incomplete)?.into_inner()),
            key_arn: output.key_id.ok_or_else(incomplete)?,
        })
    }
}

#[async_trait]
impl Kms for AwsKms {
    fn key_id(&self) -> &str {
        &self.settings.kms_key_id.value
    }

    fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    async fn encrypt(
        &self,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Wrapped, KmsError> {
        let started = Instant::now();
        let key = self.key_id();
        let mut request = self
            .client()
            .await?
            .encrypt()
            .key_id(key)
            .plaintext(Blob::new(plaintext));
        for (k, v) in context.pairs() {
            request = request.encryption_context(k, v);
        }
        let output = request
            .send()
            .await
            .map_err(|e| self.error("Encrypt", key, e));
        let output = measured("Encrypt", started, output)?;
        let incomplete = || {
            KmsError::new(
                KmsErrorKind::Unavailable,
                "KMS answered Encrypt without a ciphertext or key ARN",
            )
        };
        Ok(Wrapped {
            key_arn: output.key_id.ok_or_else(incomplete)?,
            ciphertext: output.ciphertext_blob.ok_or_else(incomplete)?.into_inner(),
        })
    }

    async fn decrypt(
        &self,
        ciphertext: &[u8],
        context: &EncryptionContext,
        key_arn: &str,
    ) -> Result<Unwrapped, KmsError> {
        self.decrypt_with(ciphertext, context, key_arn, false).await
    }

    async fn decrypt_once(
        &self,
        ciphertext: &[u8],
        context: &EncryptionContext,
        key_arn: &str,
    ) -> Result<Unwrapped, KmsError> {
        self.decrypt_with(ciphertext, context, key_arn, true).await
    }

    async fn describe_key(&self, key_id: &str) -> Result<KeyInfo, KmsError> {
        let started = Instant::now();
        let output = self
            .client()
            .await?
            .describe_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| self.error("DescribeKey", key_id, e));
        let output = measured("DescribeKey", started, output)?;
        let metadata = output.key_metadata.ok_or_else(|| {
            KmsError::new(
                KmsErrorKind::Unavailable,
                "KMS answered DescribeKey without key metadata",
            )
        })?;
        Ok(KeyInfo {
            arn: metadata.arn.clone().unwrap_or_default(),
            state: state_of(metadata.key_state.as_ref()),
        })
    }
}

/// The ARN's `(partition, region, account)`, to tell a key replaced in the
/// same account and region from a move that needs a seal migration.
pub fn arn_scope(arn: &str) -> Option<(&str, &str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("kms"), Some(region), Some(account)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    Some((partition, region, account))
}

/// Records a KMS request in the metrics: its action, `ok` or the kind of
/// failure, and its latency.
pub(super) fn measured<T>(
    action: &'static str,
    started: Instant,
    result: Result<T, KmsError>,
) -> Result<T, KmsError> {
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => match e.kind {
            KmsErrorKind::Unavailable => "unavailable",
            KmsErrorKind::Throttled => "throttled",
            KmsErrorKind::KeyUnusable => "key_unusable",
            KmsErrorKind::Denied => "denied",
            KmsErrorKind::Rejected => "rejected",
            KmsErrorKind::Config => "config",
        },
    };
    metrics::kms_request(action, outcome, started);
    result
}

#[cfg(test)]
mod tests;
