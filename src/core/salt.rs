//! The audit salt: the per-install key under which audit lines HMAC secret
//! values. Made on first use after unseal and kept behind the barrier at
//! `core/audit-salt`, so it changes only with the store (a restored snapshot
//! brings its own).

use std::sync::Arc;

use super::{Caller, Capability, Core, CoreError};
use crate::secret::SecretKey;
use crate::storage::Batch;

const SALT_PATH: &str = "core/audit-salt";

impl Core {
    /// The audit salt; `None` while sealed (secret values are then left out
    /// of audit lines) or if storage failed.
    pub async fn audit_salt(&self) -> Option<Arc<SecretKey>> {
        if let Some(salt) = self.salt_cache().clone() {
            return Some(salt);
        }
        let barrier = self.barrier().ok()?;
        let _guard = self.salt_init.lock().await;
        if let Some(salt) = self.salt_cache().clone() {
            return Some(salt);
        }
        let salt = match barrier.get(SALT_PATH).await {
            Ok(Some(stored)) => SecretKey::from_slice(stored.expose()),
            Ok(None) => {
                let salt = SecretKey::generate();
                let mut batch = Batch::new();
                batch
                    .require_absent(SALT_PATH)
                    .put(SALT_PATH, barrier.encrypt(SALT_PATH, salt.expose()));
                match barrier.write(batch).await {
                    Ok(()) => Some(salt),
                    Err(e) => {
                        tracing::error!(error = %e, "the audit salt could not be stored; secret values are left out of audit lines");
                        None
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "the audit salt could not be read; secret values are left out of audit lines");
                None
            }
        }
        .map(Arc::new)?;
        // Only while the same barrier is open: a seal in between clears it.
        if self
            .barrier()
            .is_ok_and(|open| Arc::ptr_eq(&open, &barrier))
        {
            *self.salt_cache() = Some(Arc::clone(&salt));
        }
        Some(salt)
    }

    /// `input`'s HMAC as audit lines write it (`update` on `sys/audit-hash`).
    pub async fn audit_hash(&self, caller: &Caller, input: &[u8]) -> Result<String, CoreError> {
        self.authorize(caller, "sys/audit-hash", Capability::Update)
            .await?;
        let salt = self.audit_salt().await.ok_or_else(|| {
            CoreError::Internal(
                "the audit salt could not be read or stored; the log says why".into(),
            )
        })?;
        Ok(crate::audit::hmac(&salt, input))
    }

    pub(super) fn salt_cache(&self) -> std::sync::MutexGuard<'_, Option<Arc<SecretKey>>> {
        self.audit_salt
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
