//! Stored policies: the HCL text of each at `sys/policy/<name>`, behind the
//! barrier. Parsed policies are cached in memory; the cache is emptied
//! whenever the seal state changes (a restored snapshot seals), and a write
//! or delete replaces its entry.

use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};

use super::acl::{self, Capability, Policy, ROOT_POLICY};
use super::{Caller, Core, CoreError};
use crate::barrier::Barrier;

const PREFIX: &str = "sys/policy/";

/// What `GetPolicy root` shows: root is not a document.
const ROOT_TEXT: &str =
    "# root is built in: every capability on every path. It cannot be changed or deleted.\n";

/// Parsed policies by name, and names known to have no policy (a token may
/// name one deleted since): `None`. `generation` changes with every write,
/// so a reader that loaded a policy before a write does not cache the old
/// text.
#[derive(Default)]
pub(super) struct PolicyCache {
    generation: u64,
    policies: HashMap<String, Option<Arc<Policy>>>,
}

impl PolicyCache {
    /// Forgets everything (the store may have changed under us).
    pub(super) fn clear(&mut self) {
        self.generation += 1;
        self.policies.clear();
    }
}

fn path(name: &str) -> String {
    format!("{PREFIX}{name}")
}

fn refuse_root(name: &str, action: &str) -> Result<(), CoreError> {
    if name == ROOT_POLICY {
        return Err(CoreError::InvalidArgument(format!(
            "the root policy is built in and cannot be {action}"
        )));
    }
    Ok(())
}

impl Core {
    pub(super) fn policy_cache(&self) -> MutexGuard<'_, PolicyCache> {
        self.policy_cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The named policies that exist (a token may name one deleted since).
    pub(super) async fn load_policies(
        &self,
        barrier: &Barrier,
        names: &[String],
    ) -> Result<Vec<Arc<Policy>>, CoreError> {
        let mut loaded = Vec::with_capacity(names.len());
        for name in names {
            // root is not a document; the subject knows it grants everything.
            if name == ROOT_POLICY {
                continue;
            }
            let (cached, generation) = {
                let cache = self.policy_cache();
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
                let mut cache = self.policy_cache();
                if cache.generation == generation {
                    cache.policies.insert(name.clone(), None);
                }
                continue;
            };
            let text = String::from_utf8_lossy(text.expose());
            let policy = Arc::new(Policy::parse(name, &text).map_err(|e| {
                CoreError::Internal(format!("the stored policy {name:?} no longer parses: {e}"))
            })?);
            let mut cache = self.policy_cache();
            if cache.generation == generation {
                cache
                    .policies
                    .insert(name.clone(), Some(Arc::clone(&policy)));
            }
            loaded.push(policy);
        }
        Ok(loaded)
    }

    /// Writes policy `name` (`create` on `sys/policy/<name>` for a new one,
    /// `update` for an existing one). Returns true if it was new.
    pub async fn put_policy(
        &self,
        caller: &Caller,
        name: &str,
        text: &str,
    ) -> Result<bool, CoreError> {
        acl::validate_name(name)?;
        refuse_root(name, "changed")?;
        let (barrier, subject) = self.authenticate(caller).await?;
        let policy = Arc::new(Policy::parse(name, text)?);
        let _guard = self.policy_writes.lock().await;
        let exists = barrier.get(&path(name)).await?.is_some();
        let needed = if exists {
            Capability::Update
        } else {
            Capability::Create
        };
        subject.require(&path(name), needed)?;
        barrier.put(&path(name), text.as_bytes()).await?;
        let mut cache = self.policy_cache();
        cache.generation += 1;
        cache.policies.insert(name.to_string(), Some(policy));
        tracing::info!(policy = name, "policy written");
        Ok(!exists)
    }

    /// The text of policy `name` (`read`).
    pub async fn get_policy(&self, caller: &Caller, name: &str) -> Result<String, CoreError> {
        acl::validate_name(name)?;
        let (barrier, _) = self
            .authorize(caller, &path(name), Capability::Read)
            .await?;
        if name == ROOT_POLICY {
            return Ok(ROOT_TEXT.into());
        }
        let text = barrier
            .get(&path(name))
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("no policy is named {name:?}")))?;
        Ok(String::from_utf8_lossy(text.expose()).into_owned())
    }

    /// Every policy name, root included, sorted (`list` on `sys/policy/`).
    pub async fn list_policies(&self, caller: &Caller) -> Result<Vec<String>, CoreError> {
        let (barrier, _) = self.authorize(caller, PREFIX, Capability::List).await?;
        let mut names: Vec<String> = barrier
            .list(PREFIX)
            .await?
            .into_iter()
            .map(|p| p[PREFIX.len()..].to_string())
            .collect();
        names.push(ROOT_POLICY.into());
        names.sort();
        Ok(names)
    }

    /// Deletes policy `name` (`delete`). Tokens and identities that name it
    /// keep working with their other policies.
    pub async fn delete_policy(&self, caller: &Caller, name: &str) -> Result<(), CoreError> {
        acl::validate_name(name)?;
        refuse_root(name, "deleted")?;
        let (barrier, _) = self
            .authorize(caller, &path(name), Capability::Delete)
            .await?;
        let _guard = self.policy_writes.lock().await;
        if barrier.get(&path(name)).await?.is_none() {
            return Err(CoreError::NotFound(format!("no policy is named {name:?}")));
        }
        barrier.delete(&path(name)).await?;
        let mut cache = self.policy_cache();
        cache.generation += 1;
        cache.policies.insert(name.to_string(), None);
        tracing::info!(policy = name, "policy deleted");
        Ok(())
    }
}
