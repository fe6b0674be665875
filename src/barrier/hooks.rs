//! What a component that keeps state read through the barrier (caches,
//! counters, data to upgrade) is told as the barrier opens and closes.
//!
//! The lifecycle calls [`Hooks::opening`] on every component before an open
//! barrier serves its first request (after an unseal, an auto-unseal or a
//! seal migration), and [`Hooks::closed`] whenever the seal state changes
//! (sealed, restored, initialized). With HA these are also what becoming
//! the active node and stepping down to standby call: another node may have
//! written meanwhile, so whatever was read before is dropped.

use async_trait::async_trait;

use super::Barrier;
use crate::error::Error;

/// A component's part in opening and closing the barrier.
#[async_trait]
pub trait Hooks: Send + Sync {
    /// Before `barrier` serves requests: upgrade stored data, check it. An
    /// error keeps the daemon sealed, with this error as the reason.
    async fn opening(&self, _barrier: &Barrier) -> Result<(), Error> {
        Ok(())
    }

    /// The barrier closed or was replaced by another store's: forget what
    /// was read through it.
    fn closed(&self) {}
}
