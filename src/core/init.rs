//! Init: make the keys and write everything in one atomic batch.

use std::sync::Arc;

use super::seal_config::{ROOT_KEY_PATH, SEAL_CONFIG_PATH, SEAL_CONFIG_VERSION, SealConfig};
use super::{Core, CoreError, Progress, State, token};
use crate::barrier::keyring::now_unix;
use crate::barrier::{Barrier, KEYRING_PATH, Keyring, entry};
use crate::seal::shamir::{self, ShareCheck};
use crate::secret::{SecretBytes, SecretKey, SecretString, random_bytes};
use crate::storage::{Batch, StorageError};

/// Shares when the request leaves them unset.
pub const DEFAULT_SHARES: u32 = 5;
/// Threshold when the request leaves it unset.
pub const DEFAULT_THRESHOLD: u32 = 3;

/// What init hands back, once: the shares and the root token.
pub struct InitResult {
    /// The unseal shares (or the unseal key itself when there is one share).
    pub shares: Vec<SecretBytes>,
    /// The initial root token.
    pub root_token: SecretString,
    /// The threshold the shares were made for.
    pub threshold: u32,
}

/// A random identifier in the 8-4-4-4-12 hex form of a UUID (version 4).
pub(crate) fn random_uuid() -> String {
    let mut b = random_bytes(16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

impl Core {
    /// Creates the root key, keyring, unseal shares and root token, and
    /// writes the seal config, the encrypted root key, the encrypted keyring
    /// and the token entries in one atomic batch. The daemon stays sealed.
    pub async fn init(
        &self,
        shares: Option<u32>,
        threshold: Option<u32>,
    ) -> Result<InitResult, CoreError> {
        let shares = shares.unwrap_or(DEFAULT_SHARES);
        let threshold = threshold.unwrap_or(if shares == 1 {
            1
        } else {
            DEFAULT_THRESHOLD.min(shares)
        });
        shamir::validate(shares, threshold)
            .map_err(|e| CoreError::InvalidArgument(e.to_string()))?;

        let _lifecycle = self.lifecycle.lock().await;
        if !matches!(&*self.read(), State::Uninitialized) {
            return Err(CoreError::AlreadyInitialized);
        }

        let root_key = SecretKey::generate();
        let unseal_key = SecretKey::generate();
        let unseal_shares = shamir::split(&unseal_key, shares, threshold)
            .map_err(|e| CoreError::InvalidArgument(e.to_string()))?;
        let cluster_id = random_uuid();
        let cluster_name = self
            .cluster_name
            .clone()
            .unwrap_or_else(|| format!("strongroom-cluster-{}", &cluster_id[..8]));
        let config = SealConfig {
            format_version: SEAL_CONFIG_VERSION,
            seal_type: "shamir".into(),
            secret_shares: shares,
            secret_threshold: threshold,
            share_check: ShareCheck::new(&unseal_shares),
            cluster_id,
            cluster_name,
            initialized_unix: now_unix(),
        };

        let barrier = Barrier::new(
            Arc::clone(&self.storage),
            root_key.clone(),
            Keyring::generate(),
        );
        let mut batch = Batch::new();
        batch
            .require_absent(SEAL_CONFIG_PATH)
            .put(SEAL_CONFIG_PATH, config.encode())
            .put(
                ROOT_KEY_PATH,
                entry::seal(
                    &unseal_key,
                    entry::TERM_KEY_ENCRYPTION,
                    ROOT_KEY_PATH,
                    root_key.expose(),
                ),
            )
            .put(KEYRING_PATH, barrier.sealed_keyring());
        let (root_token, token_entry) =
            token::create(&barrier, &mut batch, vec![token::ROOT_POLICY.into()]);
        match self.storage.write(batch).await {
            Ok(()) => {}
            Err(StorageError::Conflict(_)) => return Err(CoreError::AlreadyInitialized),
            Err(e) => return Err(e.into()),
        }

        tracing::info!(
            shares,
            threshold,
            cluster_id = %config.cluster_id,
            root_token_accessor = %token_entry.accessor,
            "initialized; the daemon is sealed until a quorum of unseal keys is entered"
        );
        self.set_state(State::Sealed {
            config: Arc::new(config),
            progress: Progress::default(),
        });
        Ok(InitResult {
            shares: unseal_shares,
            root_token,
            threshold,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Backend, InmemBackend};

    #[test]
    fn uuids_have_the_v4_shape() {
        let id = random_uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(random_uuid(), id);
    }

    #[tokio::test]
    async fn bad_parameters_change_nothing() {
        let storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
        let core = Core::open(Arc::clone(&storage), None).await.unwrap();
        for (n, t) in [(0, 0), (5, 6), (256, 2), (3, 1)] {
            assert!(matches!(
                core.init(Some(n), Some(t)).await,
                Err(CoreError::InvalidArgument(_))
            ));
        }
        assert!(storage.list("").await.unwrap().is_empty());
        assert!(!core.status().initialized);
    }

    #[tokio::test]
    async fn init_writes_everything_and_no_plaintext_keys() {
        let storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
        let core = Core::open(Arc::clone(&storage), Some("prod".into()))
            .await
            .unwrap();
        let init = core.init(None, None).await.unwrap();
        assert_eq!(init.shares.len(), 5);
        assert_eq!(init.threshold, 3);
        let keys = storage.list("").await.unwrap();
        for path in [SEAL_CONFIG_PATH, ROOT_KEY_PATH, KEYRING_PATH] {
            assert!(
                keys.iter().any(|k| k == path),
                "{path} missing from {keys:?}"
            );
        }
        assert_eq!(
            keys.iter().filter(|k| k.starts_with("auth/token/")).count(),
            2
        );
        let status = core.status();
        assert_eq!(
            (
                status.shares,
                status.threshold,
                status.cluster_name.as_str()
            ),
            (5, 3, "prod")
        );
        for key in keys {
            let value = storage.get(&key).await.unwrap().unwrap();
            let token = init.root_token.expose().as_bytes();
            assert!(
                !value.windows(token.len()).any(|w| w == token),
                "token in {key}"
            );
        }
    }

    #[tokio::test]
    async fn one_share_defaults_to_threshold_one() {
        let core = Core::open(Arc::new(InmemBackend::new()), None)
            .await
            .unwrap();
        let init = core.init(Some(1), None).await.unwrap();
        assert_eq!(init.shares.len(), 1);
        assert_eq!(init.shares[0].len(), 32);
        assert_eq!(init.threshold, 1);
    }
}
