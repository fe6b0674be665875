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
pub(super) struct StoredSecret(SecretString);

impl StoredSecret {
    fn expose(&self) -> &str {
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

/// The credentials a provider calls KMS with, as a caller gives them; none:
/// the standard AWS chain (environment, shared files, web identity / IRSA,
/// instance roles). No `Debug`: the secrets are zeroed on drop.
#[derive(Default)]
pub struct Credentials {
    /// Static access key id.
    pub access_key: Option<String>,
    /// Static secret access key.
    pub secret_key: Option<SecretString>,
    /// Session token of temporary static keys.
    pub session_token: Option<SecretString>,
    /// Forget the stored credentials (back to the AWS chain); none given
    /// and this unset keeps the stored ones.
    pub clear: bool,
}

impl Credentials {
    /// Whether any credential is given.
    pub fn given(&self) -> bool {
        self.access_key.is_some() || self.secret_key.is_some() || self.session_token.is_some()
    }
}

/// A provider's settings, as a caller writes them (Vault's fields). A
/// setting left out (`None`) keeps the stored provider's; a new provider
/// needs `provider` and `key_collection`.
#[derive(Default)]
pub struct ProviderConfig {
    /// `awskms`.
    pub provider: Option<String>,
    /// The AWS region the keys are distributed to.
    pub key_collection: Option<String>,
    /// A KMS-compatible endpoint instead of AWS's regional one; empty:
    /// AWS's own again.
    pub endpoint: Option<String>,
    /// The credentials; never shown by a read.
    pub credentials: Credentials,
}

/// The credentials as stored.
#[derive(Clone, Default, Serialize, Deserialize)]
pub(super) struct StoredCredentials {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret_key: Option<StoredSecret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    session_token: Option<StoredSecret>,
}

/// A provider as stored behind the barrier.
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct StoredProvider {
    pub(super) provider: String,
    pub(super) key_collection: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) endpoint: Option<String>,
    #[serde(default)]
    pub(super) credentials: StoredCredentials,
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
    /// Checks each setting given, before anything is looked up (so a
    /// malformed request is refused, and bounded, before its audit line):
    /// each refusal one sentence naming the field.
    pub fn check_given(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if let Some(provider) = self.provider.as_deref().filter(|p| *p != AWSKMS) {
            return bad(format!(
                "provider {} is not supported: strongroom distributes keys to \"awskms\"",
                text::quote(provider)
            ));
        }
        if let Some(region) = &self.key_collection {
            if region.len() > 64 {
                return bad(format!(
                    "key_collection is {} bytes long; an AWS region name is a few words (eu-west-1)",
                    region.len()
                ));
            }
            crate::config::check_region(region)
                .map_err(|e| Error::InvalidArgument(format!("key_collection: {e}")))?;
        }
        if let Some(endpoint) = self.endpoint.as_deref().filter(|e| e.len() > 2048) {
            return bad(format!(
                "endpoint is {} bytes long; give a URL of at most 2048",
                endpoint.len()
            ));
        }
        if let Some(endpoint) = self.endpoint.as_deref().filter(|e| !e.is_empty()) {
            crate::config::check_endpoint(endpoint).or_else(|e| bad(format!("endpoint: {e}")))?;
        }
        let c = &self.credentials;
        if c.clear && c.given() {
            return bad(
                "credentials: give new credentials or clear the stored ones, not both".into(),
            );
        }
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

    /// The provider to store: the settings given over `stored`'s (a new
    /// one needs `provider` and `key_collection`), checked whole.
    pub(super) fn settle(self, stored: Option<StoredProvider>) -> Result<StoredProvider, Error> {
        self.check_given()?;
        let bad = |m: String| Err(Error::InvalidArgument(m));
        let (provider, key_collection, endpoint) = match &stored {
            Some(s) => (
                self.provider.clone().unwrap_or_else(|| s.provider.clone()),
                self.key_collection
                    .clone()
                    .unwrap_or_else(|| s.key_collection.clone()),
                match &self.endpoint {
                    None => s.endpoint.clone(),
                    Some(e) => (!e.is_empty()).then(|| e.clone()),
                },
            ),
            None => {
                let (Some(provider), Some(key_collection)) =
                    (self.provider.clone(), self.key_collection.clone())
                else {
                    return bad(
                        "a new KMS provider needs provider (\"awskms\") and key_collection (the AWS region)"
                            .into(),
                    );
                };
                (
                    provider,
                    key_collection,
                    self.endpoint.clone().filter(|e| !e.is_empty()),
                )
            }
        };
        if crate::config::check_region(&key_collection) == Ok(false) && endpoint.is_none() {
            return bad(format!(
                "key_collection {} is not an AWS region strongroom knows; give a region such as eu-west-1 (or an endpoint for a KMS-compatible service)",
                text::quote(&key_collection)
            ));
        }
        let settled = ProviderConfig {
            provider: Some(provider),
            key_collection: Some(key_collection),
            endpoint,
            credentials: self.credentials,
        };
        Ok(settled.into_stored(stored))
    }

    /// The entry to store: the given credentials, else `stored`'s unless
    /// cleared.
    fn into_stored(self, stored: Option<StoredProvider>) -> StoredProvider {
        let c = self.credentials;
        let credentials = if c.given() {
            StoredCredentials {
                access_key: c.access_key,
                secret_key: c.secret_key.map(StoredSecret),
                session_token: c.session_token.map(StoredSecret),
            }
        } else if c.clear {
            StoredCredentials::default()
        } else {
            stored.map(|s| s.credentials).unwrap_or_default()
        };
        StoredProvider {
            provider: self.provider.unwrap_or_default(),
            key_collection: self.key_collection.unwrap_or_default(),
            endpoint: self.endpoint,
            credentials,
        }
    }
}

impl StoredProvider {
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

impl StoredProvider {
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
