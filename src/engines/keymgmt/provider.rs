//! A KMS provider as registered (`keymgmt/kms/<name>` behind the barrier):
//! where distributed keys go and with which credentials. A read never shows
//! the credentials.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{AwsCredentialSettings, AwsKmsSeal, DEFAULT_KMS_TIMEOUT, Setting};
use crate::seal::awskms::AwsKms;

use crate::error::Error;
use crate::secret::SecretString;
use crate::text;

/// Where the providers are stored.
pub(super) const PREFIX: &str = "keymgmt/kms/";

/// The only provider type so far.
pub const AWSKMS: &str = "awskms";

/// A credential as kept behind the barrier: serialised only into the
/// provider's stored entry; no `Debug`, zeroed on drop.
pub struct StoredSecret(SecretString);

impl StoredSecret {
    /// Keeps `secret`.
    pub fn new(secret: SecretString) -> Self {
        Self(secret)
    }

    /// The secret text, for the KMS client.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl Clone for StoredSecret {
    fn clone(&self) -> Self {
        Self(SecretString::new(self.0.expose().to_string()))
    }
}

impl Serialize for StoredSecret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.expose())
    }
}

impl<'de> Deserialize<'de> for StoredSecret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|s| Self(SecretString::new(s)))
    }
}

/// The credentials a provider calls KMS with; none: the standard AWS chain
/// (environment, shared files, web identity / IRSA, instance roles).
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Credentials {
    /// Static access key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key: Option<String>,
    /// Static secret access key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<StoredSecret>,
    /// Session token of temporary static keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<StoredSecret>,
}

/// A provider's settings, as written (Vault's fields).
#[derive(Clone, Serialize, Deserialize)]
pub struct ProviderConfig {
    /// `awskms`.
    pub provider: String,
    /// The AWS region the keys are distributed to.
    pub key_collection: String,
    /// A KMS-compatible endpoint instead of AWS's regional one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The credentials; never shown by a read.
    #[serde(default)]
    pub credentials: Credentials,
}

/// What a read of a provider shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderInfo {
    /// The provider's name.
    pub name: String,
    /// `awskms`.
    pub provider: String,
    /// The region.
    pub key_collection: String,
    /// The endpoint, when not AWS's.
    pub endpoint: Option<String>,
    /// Whether static credentials are set (never what they are).
    pub static_credentials: bool,
}

impl ProviderConfig {
    /// Checks the settings, each refusal one sentence naming the field.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if self.provider != AWSKMS {
            return bad(format!(
                "provider {} is not supported: strongroom distributes keys to \"awskms\"",
                text::quote(&self.provider)
            ));
        }
        match crate::config::check_region(&self.key_collection) {
            Ok(true) => {}
            Ok(false) if self.endpoint.is_some() => {}
            Ok(false) => {
                return bad(format!(
                    "key_collection {} is not an AWS region strongroom knows; give a region such as eu-west-1 (or an endpoint for a KMS-compatible service)",
                    text::quote(&self.key_collection)
                ));
            }
            Err(e) => return bad(format!("key_collection: {e}")),
        }
        if let Some(endpoint) = &self.endpoint {
            crate::config::check_endpoint(endpoint).or_else(|e| bad(format!("endpoint: {e}")))?;
        }
        let c = &self.credentials;
        if c.access_key.is_some() != c.secret_key.is_some() {
            return bad(
                "credentials: access_key and secret_key go together (or leave both out for the AWS credential chain)"
                    .into(),
            );
        }
        if c.session_token.is_some() && c.access_key.is_none() {
            return bad("credentials: session_token needs access_key and secret_key".into());
        }
        Ok(())
    }

    /// What a read shows of provider `name`.
    pub(super) fn info(&self, name: &str) -> ProviderInfo {
        ProviderInfo {
            name: name.to_string(),
            provider: self.provider.clone(),
            key_collection: self.key_collection.clone(),
            endpoint: self.endpoint.clone(),
            static_credentials: self.credentials.access_key.is_some(),
        }
    }
}

impl ProviderConfig {
    /// The KMS client of this provider: the seal's, with its timeouts,
    /// retries and error sentences.
    pub(super) fn client(&self) -> AwsKms {
        let c = &self.credentials;
        let secret = |s: &Option<StoredSecret>| {
            s.as_ref()
                .map(|s| SecretString::new(s.expose().to_string()))
        };
        AwsKms::new(AwsKmsSeal {
            kms_key_id: Setting::default_value(String::new()),
            region: Some(Setting::default_value(self.key_collection.clone())),
            endpoint: self.endpoint.clone().map(Setting::default_value),
            credentials: AwsCredentialSettings {
                access_key: c.access_key.clone(),
                secret_key: secret(&c.secret_key),
                session_token: secret(&c.session_token),
                ..AwsCredentialSettings::default()
            },
            health_check_interval: Duration::ZERO,
            kms_timeout: DEFAULT_KMS_TIMEOUT,
            line: 0,
        })
    }
}

/// Where provider `name` is stored.
pub(super) fn storage_path(name: &str) -> String {
    format!("{PREFIX}{name}")
}
