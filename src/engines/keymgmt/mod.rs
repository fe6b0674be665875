//! The Key Management engine (issue 17, as Vault Enterprise's `keymgmt`):
//! keys whose original strongroom generates and keeps, distributed as
//! imported key material to the KMS providers registered here.
//!
//! The providers (`provider.rs`), the keys (`key.rs`) and the distributions
//! (`distribution.rs` the record, `distribute.rs` one KMS key per version
//! through recorded steps a crash resumes from, the alias on the newest,
//! the `min_enabled_version` rule; `remove.rs` removal with the keys
//! pending deletion; `records.rs` the readers) are kept behind the
//! barrier. The transports (gRPC `KeyMgmt`, Vault's `keymgmt/` paths, the
//! CLI) reach these methods through the gate with names checked by
//! [`validate_name`], as the other engines' do; the crash points are the
//! scopes `keymgmt-distribute` and `keymgmt-remove`.

use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::access::{Capability, Session};
use crate::barrier::Barrier;
use crate::error::Error;
use crate::text;

mod distribute;
mod distribution;
mod key;
#[cfg(test)]
mod localstack_tests;
mod provider;
mod records;
mod remove;
#[cfg(test)]
mod tests;

pub use distribution::{
    DEFAULT_DELETION_DAYS, DistributeSpec, DistributionInfo, Step, VersionInfo,
};
pub use key::{
    AES256_GCM96, KeyInfo, KeySpec, KeyUpdate, KeyWrite, MAX_VERSIONS,
    policy_path as key_policy_path,
};
pub use provider::{AWSKMS, Credentials, ProviderConfig, ProviderInfo};

use key::StoredKey;
use provider::StoredProvider;

/// Longest accepted key or provider name.
pub const MAX_NAME_LEN: usize = 128;

/// Checks a key's or a provider's name (`what`): 1 to 128 letters, digits,
/// `-` or `_` (a name is a path segment, and an AWS alias `alias/<name>`).
pub fn validate_name(what: &str, name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "{what} name {} is not valid: use 1 to {MAX_NAME_LEN} letters, digits, '-' or '_'",
            text::quote(name)
        )))
    }
}

/// Where the distributions of provider `provider` are stored.
fn distributions_of(provider: &str) -> String {
    format!("{}/key/", provider::storage_path(provider))
}

/// The engine: its one lock serialises the changes.
#[derive(Default)]
pub struct KeyMgmt {
    writes: tokio::sync::Mutex<()>,
}

async fn read<T: DeserializeOwned>(
    barrier: &Barrier,
    path: &str,
    what: &str,
) -> Result<Option<T>, Error> {
    let Some(bytes) = barrier.get(path).await? else {
        return Ok(None);
    };
    serde_json::from_slice(bytes.expose())
        .map(Some)
        .map_err(|e| Error::Internal(format!("the stored {what} does not read: {e}")))
}

async fn write<T: Serialize>(barrier: &Barrier, path: &str, value: &T) -> Result<(), Error> {
    // Serialising strings, numbers and hex cannot fail.
    let encoded = Zeroizing::new(serde_json::to_vec(value).unwrap_or_default());
    barrier.put(path, &encoded).await?;
    Ok(())
}

fn no_such(what: &str, name: &str) -> Error {
    Error::NotFound(format!("no {what} named {}", text::quote(name)))
}

impl KeyMgmt {
    /// Registers provider `name` (`create`), or changes it (`update`):
    /// settings left out keep the stored ones, credentials too unless
    /// cleared. Setting an endpoint (an address that receives key material
    /// wrapped to the public key it returns) also needs `sudo`, and so does
    /// changing the credentials of a provider keys are distributed to.
    pub async fn write_provider(
        &self,
        session: &Session,
        name: &str,
        config: ProviderConfig,
    ) -> Result<ProviderInfo, Error> {
        config.check_given()?;
        let barrier = session.barrier()?;
        let _guard = self.writes.lock().await;
        let path = provider::storage_path(name);
        let stored = read::<StoredProvider>(barrier, &path, "provider").await?;
        session.require(if stored.is_some() {
            Capability::Update
        } else {
            Capability::Create
        })?;
        let (old_region, old_endpoint) = stored
            .as_ref()
            .map(|s| (s.key_collection.clone(), s.endpoint.clone()))
            .unzip();
        let changes_credentials = config.credentials.given() || config.credentials.clear;
        let settled = config.settle(stored)?;
        if settled.endpoint.is_some() && old_endpoint.as_ref() != Some(&settled.endpoint) {
            session.require(Capability::Sudo)?;
        }
        if let Some(old_region) = old_region {
            // The recorded KMS keys are in that region, at that endpoint.
            let moved =
                old_region != settled.key_collection || old_endpoint.flatten() != settled.endpoint;
            let live = !self.live_distributions(barrier, name).await?.is_empty();
            // Other credentials may be another account's: the recorded KMS
            // keys out of reach, new versions imported elsewhere.
            if live && changes_credentials {
                session.require(Capability::Sudo)?;
            }
            if moved && live {
                return Err(Error::FailedPrecondition(format!(
                    "KMS provider {} holds distributed keys in {}: its key_collection and endpoint cannot change until each distribution is removed",
                    text::quote(name),
                    text::quote(&old_region)
                )));
            }
        }
        write(barrier, &path, &settled).await?;
        tracing::info!(provider = name, region = %settled.key_collection, "KMS provider written");
        Ok(settled.info(name))
    }

    /// Provider `name`, without its credentials.
    pub async fn read_provider(
        &self,
        session: &Session,
        name: &str,
    ) -> Result<ProviderInfo, Error> {
        Ok(records::read_provider_config(session.barrier()?, name)
            .await?
            .info(name))
    }

    /// The providers' names.
    pub async fn list_providers(&self, session: &Session) -> Result<Vec<String>, Error> {
        Ok(session
            .barrier()?
            .list(provider::PREFIX)
            .await?
            .into_iter()
            .filter_map(|p| {
                let rest = &p[provider::PREFIX.len()..];
                (!rest.contains('/')).then(|| rest.to_string())
            })
            .collect())
    }

    /// Deletes provider `name`, with the records of its removed
    /// distributions (their KMS keys are scheduled for deletion already);
    /// refused while a key is distributed to it.
    pub async fn delete_provider(&self, session: &Session, name: &str) -> Result<(), Error> {
        let barrier = session.barrier()?;
        let _guard = self.writes.lock().await;
        let path = provider::storage_path(name);
        if barrier.get(&path).await?.is_none() {
            return Err(no_such("KMS provider", name));
        }
        if let Some(live) = self.live_distributions(barrier, name).await?.first() {
            return Err(Error::FailedPrecondition(format!(
                "KMS provider {} still holds distributed keys (key {} among them): remove each distribution first",
                text::quote(name),
                text::quote(live)
            )));
        }
        for record in barrier.list(&distributions_of(name)).await? {
            barrier.delete(&record).await?;
        }
        barrier.delete(&path).await?;
        tracing::info!(provider = name, "KMS provider deleted");
        Ok(())
    }

    /// Makes key `name` with version 1 (the tests' shortcut; the API's is
    /// [`Self::write_key`]).
    #[cfg(test)]
    pub async fn create_key(
        &self,
        session: &Session,
        name: &str,
        spec: &KeySpec,
    ) -> Result<KeyInfo, Error> {
        let stored = StoredKey::create(spec)?;
        let barrier = session.barrier()?;
        let _guard = self.writes.lock().await;
        let path = key::storage_path(name);
        if barrier.get(&path).await?.is_some() {
            return Err(Error::FailedPrecondition(format!(
                "a key named {} already exists; rotate it to add a version",
                text::quote(name)
            )));
        }
        write(barrier, &path, &stored).await?;
        tracing::info!(key = name, "keymgmt key created");
        Ok(stored.info(name))
    }

    async fn stored_key(barrier: &Barrier, name: &str) -> Result<StoredKey, Error> {
        read::<StoredKey>(barrier, &key::storage_path(name), "key")
            .await?
            .ok_or_else(|| no_such("key", name))
    }

    /// Key `name`: versions and settings, never material.
    pub async fn read_key(&self, session: &Session, name: &str) -> Result<KeyInfo, Error> {
        Ok(Self::stored_key(session.barrier()?, name).await?.info(name))
    }

    /// The keys' names.
    pub async fn list_keys(&self, session: &Session) -> Result<Vec<String>, Error> {
        Ok(session
            .barrier()?
            .list(key::PREFIX)
            .await?
            .into_iter()
            .map(|p| p[key::PREFIX.len()..].to_string())
            .collect())
    }

    /// Vault's write of `keymgmt/key/<name>`: makes the key (`create`;
    /// type `aes256-gcm96` when none is given) or changes its settings
    /// (`update`; its type cannot change). Refused as a whole, nothing
    /// written, when a setting is out of range.
    pub async fn write_key(
        &self,
        session: &Session,
        name: &str,
        asked: KeyWrite,
    ) -> Result<KeyInfo, Error> {
        let barrier = session.barrier()?;
        let _guard = self.writes.lock().await;
        let path = key::storage_path(name);
        let update = KeyUpdate {
            min_enabled_version: asked.min_enabled_version,
            deletion_allowed: asked.deletion_allowed,
        };
        let Some(mut stored) = read::<StoredKey>(barrier, &path, "key").await? else {
            session.require(Capability::Create)?;
            let mut stored = StoredKey::create(&KeySpec {
                key_type: asked.key_type.unwrap_or_else(|| AES256_GCM96.into()),
                deletion_allowed: false,
            })?;
            stored.update(name, update)?;
            write(barrier, &path, &stored).await?;
            tracing::info!(key = name, "keymgmt key created");
            return Ok(stored.info(name));
        };
        session.require(Capability::Update)?;
        if let Some(asked) = asked.key_type.filter(|t| *t != stored.key_type) {
            return Err(Error::InvalidArgument(format!(
                "key {} is of type {}; a key's type cannot change (asked: {})",
                text::quote(name),
                text::quote(&stored.key_type),
                text::quote(&asked)
            )));
        }
        stored.update(name, update)?;
        self.store_update(barrier, name, stored).await
    }

    /// Changes key `name`'s settings (the tests' shortcut; the API's is
    /// [`Self::write_key`]).
    #[cfg(test)]
    pub async fn update_key(
        &self,
        session: &Session,
        name: &str,
        update: KeyUpdate,
    ) -> Result<KeyInfo, Error> {
        let barrier = session.barrier()?;
        let _guard = self.writes.lock().await;
        let mut stored = Self::stored_key(barrier, name).await?;
        stored.update(name, update)?;
        self.store_update(barrier, name, stored).await
    }

    /// Writes key `name`'s changed settings and brings its distributions
    /// in line (the engine's write lock held).
    async fn store_update(
        &self,
        barrier: &Barrier,
        name: &str,
        stored: StoredKey,
    ) -> Result<KeyInfo, Error> {
        write(barrier, &key::storage_path(name), &stored).await?;
        tracing::info!(
            key = name,
            min_enabled_version = stored.min_enabled_version,
            "keymgmt key updated"
        );
        self.sync_every_distribution(barrier, name, &stored, "updated")
            .await?;
        Ok(stored.info(name))
    }

    /// Adds a version to key `name`.
    pub async fn rotate_key(&self, session: &Session, name: &str) -> Result<KeyInfo, Error> {
        let barrier = session.barrier()?;
        let _guard = self.writes.lock().await;
        let mut stored = Self::stored_key(barrier, name).await?;
        stored.rotate(name)?;
        write(barrier, &key::storage_path(name), &stored).await?;
        tracing::info!(
            key = name,
            version = stored.latest_version(),
            "keymgmt key rotated"
        );
        self.sync_every_distribution(barrier, name, &stored, "rotated")
            .await?;
        Ok(stored.info(name))
    }

    /// Deletes key `name` and every version, when its settings allow: each
    /// live distribution is removed first (its KMS keys scheduled for
    /// deletion after `days`, 7 to 30; 0: 30; its record kept until then).
    /// A crash part way leaves the key and the removals made; deleting
    /// again completes it.
    pub async fn delete_key(&self, session: &Session, name: &str, days: u32) -> Result<(), Error> {
        let days = remove::deletion_days(days)?;
        let barrier = session.barrier()?;
        let _guard = self.writes.lock().await;
        let stored = Self::stored_key(barrier, name).await?;
        if !stored.deletion_allowed {
            return Err(Error::FailedPrecondition(format!(
                "key {} does not allow deletion: set deletion_allowed first",
                text::quote(name)
            )));
        }
        for provider in records::providers_of(barrier, name).await? {
            if let Some(record) = records::find_record(barrier, &provider, name).await?
                && record.pending_deletion_until.is_none()
            {
                self.remove(barrier, &provider, name, record, days).await?;
            }
        }
        barrier.delete(&key::storage_path(name)).await?;
        tracing::info!(key = name, "keymgmt key deleted");
        Ok(())
    }
}
