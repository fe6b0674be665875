//! Rotate-root: a new root key, under which the keyring is encrypted again;
//! the shares stay.

use super::{Completed, Kind, Lifecycle, Operation, QuorumStatus};
use crate::barrier::{Barrier, KEYRING_PATH, entry};
use crate::error::Error;
use crate::lifecycle::seal_config::{ROOT_KEY_PATH, SealConfig};
use crate::seal::Seal;
use crate::seal::envelope::Purpose;
use crate::secret::SecretKey;
use crate::storage::Batch;

impl Lifecycle {
    /// Starts a root key rotation.
    pub fn rotate_root_init(&self) -> Result<QuorumStatus, Error> {
        self.unsealed()?;
        self.start(Operation::RotateRoot, Kind::RotateRoot, false)
    }

    /// Replaces the root key: the keyring under a new root key, and the new
    /// root key under the unseal key (Shamir) or KMS, in one transaction.
    pub(super) async fn rotate_root_with(
        &self,
        config: &SealConfig,
        barrier: &Barrier,
        quorum_key: &SecretKey,
    ) -> Result<Completed, Error> {
        let rotated = barrier.with_root_key(SecretKey::generate());
        let mut batch = Batch::new();
        match &self.seal {
            Seal::Shamir => {
                batch.put(
                    ROOT_KEY_PATH,
                    entry::seal(
                        quorum_key,
                        entry::TERM_KEY_ENCRYPTION,
                        ROOT_KEY_PATH,
                        rotated.root_key().expose(),
                    ),
                );
            }
            Seal::AwsKms(_) | Seal::Multi(_) => {
                self.wrap_into(&mut batch, Purpose::RootKey, config, rotated.root_key())
                    .await?;
            }
        }
        batch.put(KEYRING_PATH, rotated.sealed_keyring());
        self.storage.write(batch).await?;
        self.replace_barrier(rotated);
        tracing::info!("root key rotated: the keyring is encrypted by a new root key");
        Ok(Completed::RotatedRoot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::quorum::testing::{enter, reseal_with, shamir};
    use crate::secret::ct_eq;

    #[tokio::test]
    async fn rotate_root_keeps_the_shares_and_the_data() {
        let store = shamir(3, 2).await;
        let lifecycle = &store.lifecycle;
        lifecycle
            .barrier()
            .unwrap()
            .put("test/a", b"x")
            .await
            .unwrap();
        let old_root = lifecycle.barrier().unwrap().root_key().clone();
        let nonce = lifecycle.rotate_root_init().unwrap().nonce;
        let done = enter(
            lifecycle,
            Operation::RotateRoot,
            &nonce,
            &store.shares[1..3],
        )
        .await;
        assert!(matches!(done.result, Some(Completed::RotatedRoot)));
        assert!(!ct_eq(
            lifecycle.barrier().unwrap().root_key().expose(),
            old_root.expose()
        ));
        reseal_with(lifecycle, &store.shares[..2]).await.unwrap();
        assert_eq!(
            lifecycle
                .barrier()
                .unwrap()
                .get("test/a")
                .await
                .unwrap()
                .unwrap()
                .expose(),
            b"x"
        );
    }
}
