//! What a component that keeps state read through the barrier (caches,
//! counters, data to upgrade) is told as the barrier opens and closes.
//!
//! The lifecycle calls [`Hooks::opening`] on every component before an open
//! barrier serves its first request (after an unseal, an auto-unseal or a
//! seal migration; a store just made by init has nothing to open), and
//! [`Hooks::closed`] when an open barrier stops serving (sealed, or sealed
//! for a restore). With HA these are also what becoming the active node and
//! stepping down to standby call: another node may have written meanwhile,
//! so whatever was read before is dropped. A reader that loaded something
//! before `closed` and stores it after must not keep it (the caches count
//! generations for that).

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

    /// The barrier stopped serving: forget what was read through it.
    fn closed(&self) {}
}
