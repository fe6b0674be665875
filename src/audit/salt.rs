//! The audit salt: the per-install key under which audit lines HMAC secret
//! values. Made on first use after unseal and kept behind the barrier at
//! `core/audit-salt`, so it changes only with the store (a restored snapshot
//! brings its own).

use std::sync::{Arc, Mutex, MutexGuard};

use crate::barrier::Barrier;
use crate::secret::SecretKey;
use crate::storage::Batch;

const SALT_PATH: &str = "core/audit-salt";

/// The salt once read, and `generation`, which changes when the barrier
/// closes, so a salt read through a barrier that closed meanwhile is not
/// kept.
#[derive(Default)]
struct Cached {
    generation: u64,
    salt: Option<Arc<SecretKey>>,
}

/// The audit salt of the open store.
#[derive(Default)]
pub struct Salt {
    cached: Mutex<Cached>,
    /// Serialises making the salt.
    making: tokio::sync::Mutex<()>,
}

impl Salt {
    fn cached(&self) -> MutexGuard<'_, Cached> {
        // A poisoned lock means a thread panicked while holding it; the
        // cached value is still valid.
        self.cached
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The salt; `None` without an open barrier (secret values are then left
    /// out of audit lines) or if storage failed.
    pub async fn get(&self, barrier: Option<&Barrier>) -> Option<Arc<SecretKey>> {
        if let Some(salt) = self.cached().salt.clone() {
            return Some(salt);
        }
        let barrier = barrier?;
        let _guard = self.making.lock().await;
        let generation = {
            let cached = self.cached();
            if let Some(salt) = cached.salt.clone() {
                return Some(salt);
            }
            cached.generation
        };
        let salt = Arc::new(read_or_make(barrier).await?);
        let mut cached = self.cached();
        if cached.generation == generation {
            cached.salt = Some(Arc::clone(&salt));
        }
        Some(salt)
    }

    /// Forgets the salt: the barrier closed.
    pub fn clear(&self) {
        let mut cached = self.cached();
        cached.generation += 1;
        cached.salt = None;
    }
}

async fn read_or_make(barrier: &Barrier) -> Option<SecretKey> {
    match barrier.get(SALT_PATH).await {
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
}
