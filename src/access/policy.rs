//! Stored policies: the HCL text of each at `sys/policy/<name>`, behind the
//! barrier. Parsed policies are cached in memory; the cache is emptied
//! whenever the barrier closes (a restored snapshot seals), and a write or
//! delete replaces its entry.
//!
//! Names reach [`Policies`]' methods checked by `acl::validate_name`: every
//! action on `sys/policy/` declares it, and the gate runs it before
//! authenticating.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::acl::{Capability, Policy};
use super::caller::Session;
use super::upgrade;
use crate::barrier::Barrier;
use crate::error::Error;
use crate::names::ROOT_POLICY;
use crate::storage::Batch;

/// Where policies are stored, and the policy path of their list.
pub const PREFIX: &str = "sys/policy/";

/// What `GetPolicy root` shows: root is not a document.
const ROOT_TEXT: &str =
    "# root is built in: every capability on every path. It cannot be changed or deleted.\n";

/// Parsed policies by name, and names known to have no policy (a token may
/// name one deleted since): `None`. `generation` changes with every write,
/// so a reader that loaded a policy before a write does not cache the old
/// text.
#[derive(Default)]
struct PolicyCache {
    generation: u64,
    policies: HashMap<String, Option<Arc<Policy>>>,
}

/// The policy store: its cache, and the lock that serialises its writers
/// (create-or-update is a read, then a write).
#[derive(Default)]
pub struct Policies {
    cache: Mutex<PolicyCache>,
    writes: tokio::sync::Mutex<()>,
}

fn path(name: &str) -> String {
    format!("{PREFIX}{name}")
}

/// Refuses to change or delete the built-in root policy.
pub fn refuse_root(name: &str, action: &str) -> Result<(), Error> {
    if name == ROOT_POLICY {
        return Err(Error::InvalidArgument(format!(
            "the root policy is built in and cannot be {action}"
        )));
    }
    Ok(())
}

impl Policies {
    fn cache(&self) -> MutexGuard<'_, PolicyCache> {
        // A poisoned lock means a thread panicked while holding it; the
        // cache is still a valid map.
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Forgets every parsed policy (the store may have changed under us).
    pub fn clear_cache(&self) {
        let mut cache = self.cache();
        cache.generation += 1;
        cache.policies.clear();
    }

    /// The named policies that exist (a token may name one deleted since).
    pub(super) async fn load(
        &self,
        barrier: &Barrier,
        names: &[String],
    ) -> Result<Vec<Arc<Policy>>, Error> {
        let mut loaded = Vec::with_capacity(names.len());
        for name in names {
            // root is not a document; the subject knows it grants everything.
            if name == ROOT_POLICY {
                continue;
            }
            let (cached, generation) = {
                let cache = self.cache();
                (cache.policies.get(name).cloned(), cache.generation)
            };
            match cached {
                Some(Some(policy)) => {
                    loaded.push(policy);
                    continue;
                }
                Some(None) => continue,
                None => {}
            }
            let Some(text) = barrier.get(&path(name)).await? else {
                let mut cache = self.cache();
                if cache.generation == generation {
                    cache.policies.insert(name.clone(), None);
                }
                continue;
            };
            let text = String::from_utf8_lossy(text.expose());
            let policy = Arc::new(Policy::parse_stored(name, &text).map_err(|e| {
                Error::Internal(format!(
                    "the stored policy \"{name}\" no longer parses: {e}"
                ))
            })?);
            let mut cache = self.cache();
            if cache.generation == generation {
                cache
                    .policies
                    .insert(name.clone(), Some(Arc::clone(&policy)));
            }
            loaded.push(policy);
        }
        Ok(loaded)
    }

    /// Writes policy `name` (`create` on its path for a new one, `update`
    /// for an existing one, decided under the lock). Returns true if it was
    /// new.
    pub async fn put(&self, session: &Session, name: &str, text: &str) -> Result<bool, Error> {
        self.write(session, name, text, None).await
    }

    /// As [`Policies::put`], but needing `update` for a new policy too, as
    /// Vault's older `sys/policy/<name>` does (no existence check there).
    pub async fn put_updating(
        &self,
        session: &Session,
        name: &str,
        text: &str,
    ) -> Result<bool, Error> {
        self.write(session, name, text, Some(Capability::Update))
            .await
    }

    /// Writes policy `name`, needing `needs` on its path, or by default
    /// `create` for a new one and `update` for an existing one.
    async fn write(
        &self,
        session: &Session,
        name: &str,
        text: &str,
        needs: Option<Capability>,
    ) -> Result<bool, Error> {
        refuse_root(name, "changed")?;
        let barrier = session.barrier()?;
        let policy = Arc::new(Policy::parse(name, text)?);
        let _guard = self.writes.lock().await;
        let exists = barrier.get(&path(name)).await?.is_some();
        session.require(needs.unwrap_or(if exists {
            Capability::Update
        } else {
            Capability::Create
        }))?;
        // The marker goes with every write: a store whose policies were
        // written on Vault's paths is never rewritten.
        let mut batch = Batch::new();
        batch.put(path(name), barrier.encrypt(&path(name), text.as_bytes()));
        batch.put(
            upgrade::MARKER,
            barrier.encrypt(upgrade::MARKER, upgrade::FORMAT),
        );
        barrier.write(batch).await?;
        let mut cache = self.cache();
        cache.generation += 1;
        cache.policies.insert(name.to_string(), Some(policy));
        tracing::info!(policy = name, "policy written");
        Ok(!exists)
    }

    /// The text of policy `name`.
    pub async fn get(&self, session: &Session, name: &str) -> Result<String, Error> {
        if name == ROOT_POLICY {
            return Ok(ROOT_TEXT.into());
        }
        let text = session
            .barrier()?
            .get(&path(name))
            .await?
            .ok_or_else(|| Error::NotFound(format!("no policy is named \"{name}\"")))?;
        Ok(String::from_utf8_lossy(text.expose()).into_owned())
    }

    /// Every policy name, root included, sorted.
    pub async fn list(&self, session: &Session) -> Result<Vec<String>, Error> {
        let mut names: Vec<String> = session
            .barrier()?
            .list(PREFIX)
            .await?
            .into_iter()
            .map(|p| p[PREFIX.len()..].to_string())
            .collect();
        names.push(ROOT_POLICY.into());
        names.sort();
        Ok(names)
    }

    /// Rewrites the stored policies written on strongroom's own paths to
    /// Vault's, in one transaction with the marker that says it is done;
    /// nothing when the marker is there. A crash before the write leaves
    /// the old policies, rewritten at the next unseal.
    pub(super) async fn upgrade(&self, barrier: &Barrier) -> Result<(), Error> {
        if barrier.get(upgrade::MARKER).await?.is_some() {
            return Ok(());
        }
        let _guard = self.writes.lock().await;
        let mut batch = Batch::new();
        let mut rewritten = 0;
        let mut dropped = Vec::new();
        for key in barrier.list(PREFIX).await? {
            let name = &key[PREFIX.len()..];
            let Some(text) = barrier.get(&key).await? else {
                continue;
            };
            let text = String::from_utf8_lossy(text.expose());
            if let Some(new) = upgrade::rewrite(name, &text, &mut dropped)? {
                batch.put(key.clone(), barrier.encrypt(&key, new.as_bytes()));
                rewritten += 1;
            }
        }
        batch.put(
            upgrade::MARKER,
            barrier.encrypt(upgrade::MARKER, upgrade::FORMAT),
        );
        barrier.write(batch).await?;
        self.clear_cache();
        for why in &dropped {
            tracing::warn!("{why}");
        }
        if rewritten > 0 {
            tracing::info!(
                policies = rewritten,
                "policies written on strongroom's own paths now use Vault's"
            );
        }
        Ok(())
    }

    /// Deletes policy `name`. Tokens and identities that name it keep
    /// working with their other policies.
    pub async fn delete(&self, session: &Session, name: &str) -> Result<(), Error> {
        refuse_root(name, "deleted")?;
        let barrier = session.barrier()?;
        let _guard = self.writes.lock().await;
        if barrier.get(&path(name)).await?.is_none() {
            return Err(Error::NotFound(format!("no policy is named \"{name}\"")));
        }
        barrier.delete(&path(name)).await?;
        let mut cache = self.cache();
        cache.generation += 1;
        cache.policies.insert(name.to_string(), None);
        tracing::info!(policy = name, "policy deleted");
        Ok(())
    }
}
