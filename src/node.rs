//! One strongroom node: its components, composed.
//!
//! Each component owns its state (locks, caches, counters) and knows only
//! the layers below it; the lifecycle owns the seal state and tells the
//! others when the barrier opens and closes (their `barrier::Hooks`). The
//! API layer reaches every component through a [`Node`]; background work
//! that needs more than one component (tidying expired tokens) runs here.

use std::sync::Arc;
use std::time::Duration;

use crate::access::Access;
use crate::audit::{Audit, Auditor};
use crate::barrier::Hooks;
use crate::cluster::Cluster;
use crate::config::KvSettings;
use crate::engines::{KeyMgmt, Keys, Kv};
use crate::error::Error;
use crate::lifecycle::{Lifecycle, Options, Phase};
use crate::seal::Seal;
use crate::storage::Backend;

/// How often expired tokens are removed from storage while unsealed.
const TIDY_INTERVAL: Duration = Duration::from_secs(3600);

/// The components of one daemon.
pub struct Node {
    /// The seal state and every operation on the keys.
    pub lifecycle: Arc<Lifecycle>,
    /// Tokens and policies.
    pub access: Arc<Access>,
    /// Versioned secrets.
    pub kv: Arc<Kv>,
    /// Named encryption keys.
    pub keys: Arc<Keys>,
    /// Keys distributed to KMS providers (bring your own key).
    pub keymgmt: Arc<KeyMgmt>,
    /// The audit devices and salt.
    pub audit: Arc<Audit>,
    /// With HA: the certificates nodes forward calls to each other with.
    pub cluster: Arc<Cluster>,
}

impl Node {
    /// Opens a node on `storage` sealed by `seal`, auditing to `auditor`.
    pub async fn open(
        storage: Arc<dyn Backend>,
        seal: Seal,
        options: Options,
        kv: KvSettings,
        auditor: Auditor,
    ) -> Result<Arc<Self>, Error> {
        let access = Arc::new(Access::default());
        let kv = Arc::new(Kv::new(kv));
        let keys = Arc::new(Keys::default());
        let audit = Arc::new(Audit::new(auditor));
        let cluster = Arc::new(Cluster::new(options.ha.is_some()));
        let hooks: Vec<Arc<dyn Hooks>> = vec![
            Arc::clone(&access) as Arc<dyn Hooks>,
            Arc::clone(&kv) as Arc<dyn Hooks>,
            Arc::clone(&keys) as Arc<dyn Hooks>,
            Arc::clone(&audit) as Arc<dyn Hooks>,
            Arc::clone(&cluster) as Arc<dyn Hooks>,
        ];
        let lifecycle = Lifecycle::open(storage, seal, options, hooks).await?;
        Ok(Arc::new(Self {
            lifecycle,
            access,
            kv,
            keys,
            keymgmt: Arc::new(KeyMgmt::default()),
            audit,
            cluster,
        }))
    }

    /// Starts the background work of a daemon: reading a store that did not
    /// answer at start, auto-unseal and the KMS key's
    /// health checks (awskms; none when `health_check_interval` is zero),
    /// the keyring's rotation policy, and the tidying of expired tokens.
    pub fn spawn_background(self: &Arc<Self>, health_check_interval: Duration) {
        tokio::spawn(Arc::clone(&self.lifecycle).drive_storage_recovery());
        tokio::spawn(Arc::clone(&self.lifecycle).drive_auto_unseal(health_check_interval));
        tokio::spawn(Arc::clone(&self.lifecycle).drive_keyring());
        tokio::spawn(Arc::clone(self).drive_token_tidy());
    }

    /// After each unseal, and every hour while unsealed, removes the entries
    /// of expired tokens (an expired token is refused at once; this only
    /// reclaims its storage).
    async fn drive_token_tidy(self: Arc<Self>) {
        let mut phase = self.lifecycle.subscribe();
        loop {
            if phase.wait_for(|p| *p == Phase::Unsealed).await.is_err() {
                return;
            }
            // Not held across the wait: a restore waits for every holder.
            if let Ok(barrier) = self.lifecycle.barrier() {
                match self.access.tokens.tidy(&barrier).await {
                    Ok(0) => {}
                    Ok(removed) => tracing::info!(removed, "expired tokens removed from storage"),
                    Err(e) => {
                        tracing::warn!(error = %e, "expired tokens could not be removed; will retry")
                    }
                }
            }
            let sealed = phase.wait_for(|p| *p != Phase::Unsealed);
            if let Ok(result) = tokio::time::timeout(TIDY_INTERVAL, sealed).await
                && result.is_err()
            {
                return;
            }
        }
    }
}

/// A node for unit tests: in-memory storage, the Shamir seal, no audit.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use super::Node;
    use crate::audit::Auditor;
    use crate::lifecycle::{InitParams, Options};
    use crate::seal::Seal;
    use crate::storage::InmemBackend;

    /// A node on a new store: not initialized.
    pub async fn uninitialized() -> Arc<Node> {
        Node::open(
            Arc::new(InmemBackend::new()),
            Seal::Shamir,
            Options::default(),
            Default::default(),
            Auditor::default(),
        )
        .await
        .unwrap()
    }

    /// A node initialized with one share and unsealed, and its root token.
    pub async fn unsealed() -> (Arc<Node>, String) {
        let node = uninitialized().await;
        let init = node
            .lifecycle
            .init_and_confirm(InitParams::shamir(1, 1))
            .await
            .unwrap();
        node.lifecycle
            .unseal(&hex::encode(init.shares[0].expose()))
            .await
            .unwrap();
        (node, init.root_token.expose().to_string())
    }
}
