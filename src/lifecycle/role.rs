//! With HA (docs/HA.md): the active and standby roles beside the seal
//! state. An unsealed node stands by ([`State::Standby`]: its keys in
//! memory, serving nothing) until the election (`crate::ha`) gives it the
//! role; [`Lifecycle::take_over`] then reloads what another node may have
//! changed and opens the barrier for service, and [`Lifecycle::step_down`]
//! goes back to standing by. Who is active is told by the election too
//! ([`Lifecycle::set_leader`]); this module only keeps it for Status and
//! for the sentence a standby answers with.

use std::sync::{Arc, Mutex, PoisonError};

use super::seal_config::SEAL_CONFIG_PATH;
use super::state::{HaStatus, Leader, State};
use super::{Lifecycle, SealConfig};
use crate::barrier::Barrier;
use crate::error::Error;

/// What a node with HA keeps about the roles.
pub(super) struct Ha {
    /// What this node advertises when it takes the role.
    own: Leader,
    /// The active node as last seen (this node when it is active).
    leader: Mutex<Option<Leader>>,
}

impl Ha {
    pub(super) fn new(own: Leader) -> Self {
        Self {
            own,
            leader: Mutex::new(None),
        }
    }

    fn leader(&self) -> Option<Leader> {
        self.leader
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_leader(&self, leader: Option<Leader>) {
        *self.leader.lock().unwrap_or_else(PoisonError::into_inner) = leader;
    }
}

impl Lifecycle {
    /// Whether this node takes part in HA: an unseal makes it a standby.
    pub fn is_ha(&self) -> bool {
        self.ha.is_some()
    }

    /// What this node advertises when active; `None` without HA.
    pub fn advertised(&self) -> Option<Leader> {
        self.ha.as_ref().map(|ha| ha.own.clone())
    }

    /// The active node as last seen; `None` without HA or when no node
    /// holds the role.
    pub fn leader(&self) -> Option<Leader> {
        self.ha.as_ref().and_then(Ha::leader)
    }

    /// The election saw `leader` holding the role (`None`: nobody holds it).
    pub fn set_leader(&self, leader: Option<Leader>) {
        if let Some(ha) = &self.ha {
            ha.set_leader(leader);
        }
    }

    /// Status's HA part; `None` without HA.
    pub(super) fn ha_status(&self) -> Option<HaStatus> {
        let ha = self.ha.as_ref()?;
        let is_self = matches!(&*self.read(), State::Unsealed { .. });
        Some(HaStatus {
            is_self,
            leader: ha.leader(),
        })
    }

    /// The barrier for a node-local call (a seal): the open one, or a
    /// standby's, which only reads (a standby writes nothing).
    pub fn local_barrier(&self) -> Result<Arc<Barrier>, Error> {
        match &*self.read() {
            State::Standby { barrier, .. } => Ok(Arc::clone(barrier)),
            _ => self.barrier(),
        }
    }

    /// What a standby answers to a call only the active node serves.
    pub(super) fn standby_error(&self) -> Error {
        let leader = self.ha.as_ref().and_then(Ha::leader);
        Error::Unavailable(match leader {
            Some(leader) => format!(
                "this node is a standby; the active node is at {}: send the call there",
                leader.api_addr
            ),
            None => "this node is a standby and no node is active yet; retry in a moment".into(),
        })
    }

    /// The election gave this node the role (its term is set in storage):
    /// reloads the seal configuration and the keyring that another node
    /// may have changed, runs every component's opening hooks, and serves.
    /// `active_since_unix_ms` is when the take-over committed. On an error
    /// the node seals itself (its keys may no longer open the store: a
    /// restore, a root key rotated while it stood by), and the error says
    /// so; the caller then gives the role back.
    pub async fn take_over(&self, active_since_unix_ms: u64) -> Result<(), Error> {
        let _key_ops = self.key_ops.lock().await;
        let root_key = match &*self.read() {
            State::Standby { barrier, .. } => barrier.root_key().clone(),
            _ => {
                return Err(Error::FailedPrecondition(
                    "this node is not standing by (sealed meanwhile); it does not take the role"
                        .into(),
                ));
            }
        };
        let reloaded = self.reload(root_key).await;
        let (config, barrier) = match reloaded {
            Ok(opened) => opened,
            Err(e) => {
                let message = format!(
                    "this node took the active role but could not open the store with the keys it holds ({e}); it sealed itself: unseal it again"
                );
                tracing::error!("{message}");
                self.seal_now();
                return Err(Error::Unavailable(message));
            }
        };
        if let Err(e) = self.opening(&barrier).await {
            tracing::error!(error = %e, "the store could not be opened for service after the take-over; this node stands by again");
            return Err(e);
        }
        let Some(ha) = &self.ha else {
            return Err(Error::Internal("take-over without HA".into()));
        };
        ha.set_leader(Some(Leader {
            active_since_unix_ms,
            ..ha.own.clone()
        }));
        self.set_state(State::Unsealed {
            config,
            barrier: Arc::new(barrier),
        });
        tracing::info!("active: this node serves every call");
        Ok(())
    }

    /// The seal configuration and the keyring as stored now, opened with
    /// `root_key`.
    async fn reload(
        &self,
        root_key: crate::secret::SecretKey,
    ) -> Result<(Arc<SealConfig>, Barrier), Error> {
        let stored = self
            .storage
            .get(SEAL_CONFIG_PATH)
            .await?
            .ok_or_else(|| Error::Internal("the store has no seal configuration".into()))?;
        let config = SealConfig::decode(&stored).map_err(Error::Internal)?;
        let barrier = Barrier::unlock(std::sync::Arc::clone(&self.storage), root_key)
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok((Arc::new(config), barrier))
    }

    /// The role is gone (another node took it, the lease ran out, or this
    /// node gave it up): stop serving at once and stand by, keys kept. A
    /// quorum operation in progress is cancelled with its shares.
    pub fn step_down(&self) {
        let (config, barrier) = match &*self.read() {
            State::Unsealed { config, barrier } => (Arc::clone(config), Arc::clone(barrier)),
            _ => return,
        };
        if !self.attempts().is_empty() {
            tracing::warn!(
                "a quorum operation was in progress and is cancelled: this node is no longer active; start it again on the active node"
            );
        }
        self.attempts().clear();
        self.set_state(State::Standby { config, barrier });
        if let Some(ha) = &self.ha {
            ha.set_leader(None);
        }
        tracing::warn!("standing by: this node is no longer the active node");
    }

    /// With HA, a node that started before the store was initialized
    /// learns that another node initialized it: it is then sealed (and an
    /// awskms node auto-unseals). Reads one entry; nothing when this node
    /// knows already.
    pub async fn notice_init(&self) -> Result<(), Error> {
        if !matches!(&*self.read(), State::Uninitialized) {
            return Ok(());
        }
        let Some(stored) = self.storage.get(SEAL_CONFIG_PATH).await? else {
            return Ok(());
        };
        let config = SealConfig::decode(&stored).map_err(Error::Internal)?;
        let _key_ops = self.key_ops.lock().await;
        if !matches!(&*self.read(), State::Uninitialized) {
            return Ok(());
        }
        self.drop_pending_init();
        if let crate::seal::Seal::AwsKms(_) = &self.seal {
            let mut report = self.report();
            report.auto_unseal.state = super::AutoUnsealState::InProgress;
        }
        self.set_state(State::Sealed {
            config: Arc::new(config),
            progress: super::state::Progress::default(),
        });
        tracing::info!("another node initialized the store; sealed");
        Ok(())
    }

    /// An operator's step-down: the active node stops serving and stands by;
    /// the election sees it and gives the role back. Refused without HA.
    pub fn give_up_role(&self) -> Result<(), Error> {
        if !self.is_ha() {
            return Err(Error::FailedPrecondition(
                "step-down needs HA (storage \"postgresql\" with ha_enabled); this node runs alone"
                    .into(),
            ));
        }
        self.barrier()?;
        tracing::info!("step-down requested by an operator");
        self.step_down();
        Ok(())
    }

    /// With HA, where an unseal leaves the node: standing by, the
    /// components not opened yet (that is the take-over's work).
    pub(super) fn stand_by(&self, config: Arc<SealConfig>, barrier: Barrier) {
        self.set_state(State::Standby {
            config,
            barrier: Arc::new(barrier),
        });
        tracing::info!("unsealed; standing by until this node takes the active role");
    }
}
