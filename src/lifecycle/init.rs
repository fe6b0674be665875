//! Init: make the keys and write everything in one atomic batch.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::auto_unseal::{AutoUnsealState, AutoUnsealStatus};
use super::seal_config::{self, RECOVERY_KEY_PATH, ROOT_KEY_PATH, SEAL_CONFIG_PATH, SealConfig};
use super::{Lifecycle, Phase, Progress, State, emergency, seals};
use crate::access::token;
use crate::barrier::{Barrier, KEYRING_PATH, Keyring, entry};
use crate::error::Error;
use crate::seal::shamir::{self, ShareCheck};
use crate::seal::{Seal, recipients, wrap};
use crate::secret::{SecretBytes, SecretKey, SecretString, random_uuid};
use crate::storage::{Batch, StorageError};
use crate::time::now_unix;

/// Shares when the request leaves them unset.
pub const DEFAULT_SHARES: u32 = 5;
/// Threshold when the request leaves it unset.
pub const DEFAULT_THRESHOLD: u32 = 3;

/// What init is asked for. Unset values take the defaults (5 shares,
/// threshold 3, or 1/1 for a single share).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InitParams {
    /// Unseal shares (Shamir seal only).
    pub key_shares: Option<u32>,
    /// Unseal threshold (Shamir seal only).
    pub key_threshold: Option<u32>,
    /// Recovery shares (auto-unseal seals only).
    pub recovery_shares: Option<u32>,
    /// Recovery threshold (auto-unseal seals only).
    pub recovery_threshold: Option<u32>,
    /// One age or ssh-ed25519 recipient per share: share i is returned
    /// encrypted to recipient i. Empty: the shares are returned in the clear.
    pub recipients: Vec<String>,
    /// A recipient the root token is returned encrypted to.
    pub root_token_recipient: Option<String>,
    /// Emergency shares (several seals with an emergency seal only).
    pub emergency_shares: Option<u32>,
    /// Emergency threshold (several seals with an emergency seal only).
    pub emergency_threshold: Option<u32>,
    /// One recipient per emergency share, as `recipients` for the others.
    pub emergency_recipients: Vec<String>,
}

impl InitParams {
    /// Shamir init with `shares` and `threshold`.
    pub fn shamir(shares: u32, threshold: u32) -> Self {
        Self {
            key_shares: Some(shares),
            key_threshold: Some(threshold),
            ..Self::default()
        }
    }

    /// Recovery-key init with `shares` and `threshold`.
    pub fn recovery(shares: u32, threshold: u32) -> Self {
        Self {
            recovery_shares: Some(shares),
            recovery_threshold: Some(threshold),
            ..Self::default()
        }
    }
}

/// What init hands back, once: the shares and the root token.
pub struct InitResult {
    /// The unseal shares (or the unseal key itself when there is one share),
    /// or the recovery shares when `recovery` is set.
    pub shares: Vec<SecretBytes>,
    /// The shares are recovery shares (awskms); the daemon is unsealed.
    pub recovery: bool,
    /// The initial root token.
    pub root_token: SecretString,
    /// The threshold the shares were made for.
    pub threshold: u32,
    /// The shares encrypted to their recipients (armored age files), when
    /// recipients were given; then only these leave the daemon.
    pub armored_shares: Option<Vec<String>>,
    /// The root token encrypted to its recipient, when one was given.
    pub armored_root_token: Option<String>,
    /// Nothing is written until the client that received the keys sends
    /// this back ([`Lifecycle::init_confirm`]).
    pub confirmation_nonce: String,
    /// The emergency seal's shares, when one is configured.
    pub emergency: Option<super::EmergencyKeys>,
}

/// An init made and waiting for its receiver's confirmation: every KMS call
/// is done and the one batch is ready; nothing is written.
pub(super) struct PendingInit {
    nonce: String,
    batch: Batch,
    config: SealConfig,
    barrier: Barrier,
    kms_key_arn: Option<String>,
    accessor: String,
}

/// The init waiting for its confirmation, and the digests of the last
/// ones a later init replaced, so that the caller whose init was replaced
/// is told so rather than "the nonce does not match".
#[derive(Default)]
pub(super) struct InitSlot {
    pending: Option<PendingInit>,
    replaced: std::collections::VecDeque<[u8; 32]>,
}

/// How many replaced inits are remembered.
const REPLACED_REMEMBERED: usize = 1024;

fn digest(nonce: &str) -> [u8; 32] {
    Sha256::digest(nonce.trim().as_bytes()).into()
}

/// What the caller whose init was replaced is told: the store may now
/// belong to whoever replaced it, and what to do.
fn replaced(initialized: bool) -> Error {
    let now = if initialized {
        "that init was confirmed, so this store's keys and root token belong to whoever made it: do not use this store; stop the daemon, move its data directory aside and init again"
    } else {
        "its maker can confirm it and hold this store's keys and root token: run init again and confirm it at once"
    };
    Error::FailedPrecondition(format!(
        "another Init call replaced this one before it was confirmed, so the keys you received are void; {now}. Before init anyone who reaches a listener can init the store: set allow_init = false on every listener but the unix socket or loopback (docs/THREAT_MODEL.md)"
    ))
}

/// Applies the defaults and checks shares/threshold.
fn shares_and_threshold(shares: Option<u32>, threshold: Option<u32>) -> Result<(u32, u32), Error> {
    let shares = shares.unwrap_or(DEFAULT_SHARES);
    let threshold = threshold.unwrap_or(if shares == 1 {
        1
    } else {
        DEFAULT_THRESHOLD.min(shares)
    });
    shamir::validate(shares, threshold).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    Ok((shares, threshold))
}

impl Lifecycle {
    /// Makes the root key, keyring, shares and root token, and with awskms
    /// makes every KMS call, but writes nothing: the result is kept until
    /// the client that received the keys confirms ([`Lifecycle::init_confirm`]),
    /// so a lost answer or a crash can never leave an initialized store whose
    /// keys nobody has. A new init replaces one that was not confirmed.
    pub async fn init(&self, params: InitParams) -> Result<InitResult, Error> {
        self.refuse_while_storage_down()?;
        if self.is_ha() {
            // Another node may have initialized the store meanwhile.
            self.notice_init().await?;
        }
        crate::failpoint::scope("init", self.init_inner(params)).await
    }

    /// Forgets an init waiting for its confirmation (another node's init
    /// was committed first).
    pub(super) fn drop_pending_init(&self) {
        self.pending_init().pending = None;
    }

    /// Writes a made init in one atomic batch. With the Shamir seal the
    /// daemon is then sealed; with awskms, unsealed (a store just made has
    /// nothing for the components' opening hooks to do).
    pub async fn init_confirm(&self, nonce: &str) -> Result<(), Error> {
        self.confirm(nonce, true).await
    }

    /// The commit of a made init, as one crash-point scope; `announce_sealed`
    /// logs that the daemon waits for its unseal keys (not for `--dev`,
    /// which unseals at once).
    async fn confirm(&self, nonce: &str, announce_sealed: bool) -> Result<(), Error> {
        crate::failpoint::scope("init-commit", self.init_commit(nonce, announce_sealed)).await
    }

    fn pending_init(&self) -> std::sync::MutexGuard<'_, InitSlot> {
        self.pending_init
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `announce_sealed`: log that the daemon now waits for a quorum (not
    /// for `--dev`, which unseals at once).
    async fn init_commit(&self, nonce: &str, announce_sealed: bool) -> Result<(), Error> {
        let _key_ops = self.key_ops.lock().await;
        let was_replaced = self.pending_init().replaced.contains(&digest(nonce));
        if !matches!(&*self.read(), State::Uninitialized) {
            return Err(if was_replaced {
                replaced(true)
            } else {
                Error::AlreadyInitialized
            });
        }
        let pending = {
            let mut slot = self.pending_init();
            match slot.pending.as_ref() {
                _ if was_replaced => return Err(replaced(false)),
                None if self.is_ha() => {
                    return Err(Error::FailedPrecondition(
                        "no init is waiting for confirmation on this node; the confirmation goes to the node that answered the Init (or run init again)".into(),
                    ));
                }
                None => {
                    return Err(Error::FailedPrecondition(
                        "no init is waiting for confirmation; run init".into(),
                    ));
                }
                Some(p) if !crate::secret::ct_eq(p.nonce.as_bytes(), nonce.trim().as_bytes()) => {
                    return Err(Error::InvalidArgument(
                        "the confirmation nonce does not match the init waiting for it (another init may have replaced it)".into(),
                    ));
                }
                Some(_) => slot.pending.take(),
            }
        };
        let Some(pending) = pending else {
            return Err(Error::FailedPrecondition(
                "no init is waiting for confirmation; run init".into(),
            ));
        };
        match self.storage.write(pending.batch).await {
            Ok(()) => {}
            Err(StorageError::Conflict(_)) => return Err(Error::AlreadyInitialized),
            Err(e) => return Err(e.into()),
        }
        let config = Arc::new(pending.config);
        let (shares, threshold) = (config.secret_shares, config.secret_threshold);
        if let Some(arn) = pending.kms_key_arn {
            tracing::info!(
                recovery_shares = shares,
                recovery_threshold = threshold,
                cluster_id = %config.cluster_id,
                kms_key_arn = %arn,
                root_token_accessor = %pending.accessor,
                "initialized; the root key is wrapped by KMS and the daemon is unsealed"
            );
            {
                let mut report = self.report();
                report.key_arn = arn;
                if let Seal::Multi(set) = &self.seal {
                    let names: Vec<String> = set.enabled().map(|m| m.name.clone()).collect();
                    report.holding.clone_from(&names);
                    report.wrapped = names;
                }
                report.auto_unseal = AutoUnsealStatus {
                    state: AutoUnsealState::Unsealed,
                    ..AutoUnsealStatus::default()
                };
            }
            if self.is_ha() {
                self.stand_by(config, pending.barrier);
            } else {
                self.set_state(State::Unsealed {
                    config,
                    barrier: Arc::new(pending.barrier),
                });
            }
        } else {
            let message = if announce_sealed {
                "initialized; the daemon is sealed until a quorum of unseal keys is entered"
            } else {
                "initialized"
            };
            tracing::info!(
                shares,
                threshold,
                cluster_id = %config.cluster_id,
                root_token_accessor = %pending.accessor,
                "{message}"
            );
            self.set_state(State::Sealed {
                config,
                progress: Progress::default(),
            });
        }
        Ok(())
    }

    /// Init and its confirmation in one step, for `--dev` and tests.
    pub async fn init_and_confirm(&self, params: InitParams) -> Result<InitResult, Error> {
        let result = self.init(params).await?;
        self.confirm(&result.confirmation_nonce, false).await?;
        Ok(result)
    }

    async fn init_inner(&self, params: InitParams) -> Result<InitResult, Error> {
        let (shares, threshold) = match &self.seal {
            Seal::Shamir => {
                if params.recovery_shares.is_some() || params.recovery_threshold.is_some() {
                    return Err(Error::InvalidArgument(
                        "recovery keys exist only with an auto-unseal seal, and this daemon uses Shamir unseal keys: use --key-shares and --key-threshold".into(),
                    ));
                }
                shares_and_threshold(params.key_shares, params.key_threshold)?
            }
            Seal::AwsKms(_) | Seal::Multi(_) => {
                if params.key_shares.is_some() || params.key_threshold.is_some() {
                    return Err(Error::InvalidArgument(
                        "this daemon unseals itself with AWS KMS, so it has no unseal keys: use --recovery-shares and --recovery-threshold (recovery keys authorize quorum operations and unseal after a manual seal, never by themselves at start)".into(),
                    ));
                }
                shares_and_threshold(params.recovery_shares, params.recovery_threshold)?
            }
        };

        let noun = match self.seal {
            Seal::Shamir => "unseal keys",
            Seal::AwsKms(_) | Seal::Multi(_) => "recovery keys",
        };
        let recipients = (!params.recipients.is_empty())
            .then(|| recipients::parse_all(&params.recipients, shares, noun))
            .transpose()?;
        let emergency_plan = self.emergency_plan(&params)?;
        let token_recipient = params
            .root_token_recipient
            .as_deref()
            .map(|r| recipients::Recipient::parse(r, "the root token recipient"))
            .transpose()?;

        // A second init while one waits for KMS is refused, not queued.
        let Ok(_key_ops) = self.key_ops.try_lock() else {
            return Err(if self.phase() == Phase::Uninitialized {
                Error::FailedPrecondition("init is already running".into())
            } else {
                Error::AlreadyInitialized
            });
        };
        if !matches!(&*self.read(), State::Uninitialized) {
            return Err(Error::AlreadyInitialized);
        }
        tracing::info!(shares, threshold, "init started");

        let root_key = SecretKey::generate();
        let share_key = SecretKey::generate();
        let issued = shamir::split(&share_key, shares, threshold)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let cluster_id = random_uuid();
        let cluster_name = self
            .cluster_name
            .clone()
            .unwrap_or_else(|| format!("strongroom-cluster-{}", &cluster_id[..8]));
        let seal_type = self.seal.name();
        let config = SealConfig {
            format_version: seal_config::format_for(seal_type),
            seal_type: seal_type.into(),
            secret_shares: shares,
            secret_threshold: threshold,
            share_check: ShareCheck::new(&issued),
            cluster_id,
            cluster_name,
            initialized_unix: now_unix(),
            kms_endpoint: match &self.seal {
                Seal::Shamir | Seal::Multi(_) => None,
                Seal::AwsKms(kms) => Some(kms.endpoint()),
            },
            seals: match &self.seal {
                Seal::Multi(set) => super::multiseal::configured(set),
                _ => Vec::new(),
            },
            emergency: None,
        };
        let emergency = emergency_plan
            .map(|(name, n, t, r)| emergency::issue(&name, n, t, r.as_deref()))
            .transpose()?;
        let config = SealConfig {
            emergency: emergency.as_ref().map(|e| e.config.clone()),
            ..config
        };

        let barrier = Barrier::new(
            Arc::clone(&self.storage),
            root_key.clone(),
            Keyring::generate(),
        );
        let mut batch = Batch::new();
        batch
            .first_write(SEAL_CONFIG_PATH)
            .put(SEAL_CONFIG_PATH, config.encode())
            .put(KEYRING_PATH, barrier.sealed_keyring());
        emergency::set_up_into(&mut batch, &barrier, &config, &root_key, &share_key)?;
        let kms_key_arn = match &self.seal {
            Seal::Shamir => {
                batch.put(
                    ROOT_KEY_PATH,
                    entry::seal(
                        &share_key,
                        entry::TERM_KEY_ENCRYPTION,
                        ROOT_KEY_PATH,
                        root_key.expose(),
                    ),
                );
                None
            }
            Seal::AwsKms(kms) => {
                let (root, recovery) = wrap::wrap_root_and_recovery(
                    kms.as_ref(),
                    &config.cluster_id,
                    &root_key,
                    &share_key,
                )
                .await?;
                batch
                    .put(ROOT_KEY_PATH, root.encode())
                    .put(RECOVERY_KEY_PATH, recovery.encode());
                Some(root.key_arn)
            }
            Seal::Multi(set) => {
                let (root, recovery) =
                    seals::wrap_new_store(set, &config.cluster_id, &root_key, &share_key).await?;
                batch
                    .put(ROOT_KEY_PATH, root.encode())
                    .put(RECOVERY_KEY_PATH, recovery.encode());
                // Status lists each seal's key; there is no single ARN.
                Some(String::new())
            }
        };
        let (root_token, token_entry) = token::create(&barrier, &mut batch, token::Spec::root());
        // Encrypted before anything is kept, so a failure leaves nothing.
        let armored_shares = recipients
            .map(|r| recipients::armor_shares(&r, &issued))
            .transpose()?;
        let armored_root_token = token_recipient
            .map(|r| r.armor(format!("{}\n", root_token.expose()).as_bytes()))
            .transpose()?;
        let recovery = kms_key_arn.is_some();
        let confirmation_nonce = random_uuid();
        let mut slot = self.pending_init();
        let before = slot.pending.replace(PendingInit {
            nonce: confirmation_nonce.clone(),
            batch,
            config,
            barrier,
            kms_key_arn,
            accessor: token_entry.accessor,
        });
        if let Some(before) = before {
            if slot.replaced.len() == REPLACED_REMEMBERED {
                slot.replaced.pop_front();
            }
            slot.replaced.push_back(digest(&before.nonce));
            tracing::warn!(
                "an init that was never confirmed was replaced by a new one; its caller is told so if it confirms"
            );
        }
        drop(slot);
        tracing::info!(
            "init made the keys; they are written once the client that received them confirms"
        );
        Ok(InitResult {
            shares: issued,
            recovery,
            root_token,
            threshold,
            armored_shares,
            armored_root_token,
            confirmation_nonce,
            emergency: emergency.map(|e| e.keys),
        })
    }

    /// The emergency seal's name, shares, threshold and recipients for
    /// init; `None` without an emergency seal, whose parameters are then
    /// refused.
    #[allow(clippy::type_complexity)]
    fn emergency_plan(
        &self,
        params: &InitParams,
    ) -> Result<Option<(String, u32, u32, Option<Vec<recipients::Recipient>>)>, Error> {
        let Some(name) = self.emergency_seal() else {
            if params.emergency_shares.is_some()
                || params.emergency_threshold.is_some()
                || !params.emergency_recipients.is_empty()
            {
                return Err(Error::InvalidArgument(
                    "emergency keys exist only with several seals and an emergency seal (`seal \"shamir\" { name = … }` beside the KMS seals, with enable_multiseal = true), and this daemon has none: leave out the emergency parameters".into(),
                ));
            }
            return Ok(None);
        };
        let (shares, threshold) =
            shares_and_threshold(params.emergency_shares, params.emergency_threshold)
                .map_err(|e| Error::InvalidArgument(format!("emergency keys: {e}")))?;
        let recipients = emergency::parse_recipients(&params.emergency_recipients, shares)?;
        Ok(Some((name.to_string(), shares, threshold, recipients)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::testing::open_shamir;
    use crate::storage::{Backend, InmemBackend};

    #[tokio::test]
    async fn every_share_count_and_threshold_is_accepted_or_refused_in_a_sentence() {
        let lifecycle = open_shamir(Arc::new(InmemBackend::new())).await;
        let edges = [
            None,
            Some(0),
            Some(1),
            Some(2),
            Some(255),
            Some(256),
            Some(u32::MAX),
        ];
        for shares in edges {
            for threshold in edges {
                let params = InitParams {
                    key_shares: shares,
                    key_threshold: threshold,
                    ..InitParams::default()
                };
                match lifecycle.init(params).await {
                    Ok(made) => assert!(made.shares.len() <= 255),
                    Err(Error::InvalidArgument(why)) => assert!(!why.is_empty()),
                    Err(other) => panic!("{shares:?}/{threshold:?}: {other:?}"),
                }
            }
        }
        assert!(!lifecycle.status().initialized, "nothing was confirmed");
    }

    #[tokio::test]
    async fn the_caller_whose_init_was_replaced_is_told_so() {
        let lifecycle = open_shamir(Arc::new(InmemBackend::new())).await;
        let admin = lifecycle.init(InitParams::shamir(1, 1)).await.unwrap();
        let other = lifecycle.init(InitParams::shamir(1, 1)).await.unwrap();
        let refused = lifecycle
            .init_confirm(&admin.confirmation_nonce)
            .await
            .unwrap_err();
        assert!(
            refused
                .to_string()
                .starts_with("another Init call replaced this one"),
            "{refused}"
        );
        assert!(refused.to_string().contains("run init again"), "{refused}");
        assert!(!lifecycle.status().initialized);
        // The other caller confirms: the admin is told the store is lost.
        lifecycle
            .init_confirm(&other.confirmation_nonce)
            .await
            .unwrap();
        let refused = lifecycle
            .init_confirm(&admin.confirmation_nonce)
            .await
            .unwrap_err();
        assert!(
            refused.to_string().contains("do not use this store"),
            "{refused}"
        );
        // A nonce nobody was given is still just wrong.
        assert_eq!(
            lifecycle.init_confirm("nonsense").await.unwrap_err(),
            Error::AlreadyInitialized
        );
    }

    #[tokio::test]
    async fn bad_parameters_change_nothing() {
        let storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
        let lifecycle = open_shamir(Arc::clone(&storage)).await;
        for (n, t) in [(0, 0), (5, 6), (256, 2), (3, 1)] {
            assert!(matches!(
                lifecycle.init(InitParams::shamir(n, t)).await,
                Err(Error::InvalidArgument(_))
            ));
        }
        assert!(storage.list("").await.unwrap().is_empty());
        assert!(!lifecycle.status().initialized);
    }

    #[tokio::test]
    async fn init_writes_everything_and_no_plaintext_keys() {
        let storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
        let lifecycle = Lifecycle::open(
            Arc::clone(&storage),
            Seal::Shamir,
            crate::lifecycle::Options {
                cluster_name: Some("prod".into()),
                ..Default::default()
            },
            Vec::new(),
        )
        .await
        .unwrap();
        let first = lifecycle.init(InitParams::default()).await.unwrap();
        assert!(
            storage.list("").await.unwrap().is_empty(),
            "written before the confirmation"
        );
        assert!(!lifecycle.status().initialized);
        // Another init replaces one that was never confirmed.
        let init = lifecycle.init(InitParams::default()).await.unwrap();
        assert!(matches!(
            lifecycle.init_confirm(&first.confirmation_nonce).await,
            Err(Error::FailedPrecondition(_))
        ));
        lifecycle
            .init_confirm(&init.confirmation_nonce)
            .await
            .unwrap();
        assert!(matches!(
            lifecycle.init_confirm(&init.confirmation_nonce).await,
            Err(Error::AlreadyInitialized)
        ));
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
        let status = lifecycle.status();
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
        let lifecycle = open_shamir(Arc::new(InmemBackend::new())).await;
        let init = lifecycle
            .init(InitParams {
                key_shares: Some(1),
                ..InitParams::default()
            })
            .await
            .unwrap();
        assert_eq!(init.shares.len(), 1);
        assert_eq!(init.shares[0].len(), 32);
        assert_eq!(init.threshold, 1);
    }
}
