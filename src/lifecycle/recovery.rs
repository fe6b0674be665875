//! A store that could not be read at start (a database that is down,
//! refuses the credentials or lacks its tables) keeps the daemon up: it
//! answers Status, sealed, saying why, and tries again with backoff until
//! the store answers, as an auto-unseal waits out a KMS outage.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use super::seal_config::{ROOT_KEY_PATH, SEAL_CONFIG_PATH};
use super::state::{Progress, State};
use super::{AutoUnsealState, Lifecycle, SealConfig};
use crate::error::Error;
use crate::seal::Seal;
use crate::storage::StorageError;

/// The first wait between two attempts; it doubles up to [`RETRY_CAP`].
const RETRY_FIRST: Duration = Duration::from_millis(500);
/// The longest wait between two attempts.
const RETRY_CAP: Duration = Duration::from_secs(5);

impl Lifecycle {
    /// Why the store could not be read, while it cannot.
    pub(super) fn storage_down(&self) -> Option<String> {
        self.storage_down
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_storage_down(&self, reason: Option<String>) {
        *self
            .storage_down
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = reason;
    }

    /// The refusal of a call that needs the store's state while it could
    /// not be read.
    pub(super) fn refuse_while_storage_down(&self) -> Result<(), Error> {
        match self.storage_down() {
            Some(reason) => Err(Error::Unavailable(format!(
                "the store cannot be read yet ({reason}); strongroom retries by itself"
            ))),
            None => Ok(()),
        }
    }

    /// Until the store answers: tries again with backoff. Returns at once
    /// when it answered at start.
    pub async fn drive_storage_recovery(self: Arc<Self>) {
        let mut wait = RETRY_FIRST;
        while let Some(reason) = self.storage_down() {
            tracing::warn!(reason = %reason, retry_in_ms = wait.as_millis() as u64, "the store cannot be read; sealed until it can");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(RETRY_CAP);
            if let Err(e) = self.notice_init().await {
                tracing::debug!(error = %e, "the store still cannot be read");
            }
        }
    }

    /// Reads whether the store is initialized, for a node that believes it
    /// is not: at start the database did not answer, or (HA) another node
    /// may have initialized it. Initialized: the node is sealed (an awskms
    /// node then auto-unseals).
    pub async fn notice_init(&self) -> Result<(), Error> {
        if !matches!(&*self.read(), State::Uninitialized) {
            return Ok(());
        }
        let stored = match self.storage.get(SEAL_CONFIG_PATH).await {
            Ok(stored) => stored,
            Err(StorageError::Unavailable(reason)) => {
                let error = Error::Unavailable(reason.clone());
                self.set_storage_down(Some(reason));
                return Err(error);
            }
            Err(e) => return Err(e.into()),
        };
        let was_down = self.storage_down().is_some();
        let Some(stored) = stored else {
            if was_down {
                tracing::info!("the store answers: it is not initialized");
            }
            self.set_storage_down(None);
            return Ok(());
        };
        let config = SealConfig::decode(&stored).map_err(Error::Internal)?;
        let key_arn = match (&self.seal, config.is_recovery()) {
            (Seal::AwsKms(_) | Seal::Multi(_), true) => {
                match self.storage.get(ROOT_KEY_PATH).await? {
                    Some(blob) => super::seals::stored_key_arn(&blob)
                        .map_err(|e| Error::Internal(e.to_string()))?,
                    None => String::new(),
                }
            }
            _ => String::new(),
        };
        let _key_ops = self.key_ops.lock().await;
        if !matches!(&*self.read(), State::Uninitialized) {
            return Ok(());
        }
        self.drop_pending_init();
        if self.seal.is_auto() {
            let mut report = self.report();
            report.key_arn = key_arn;
            report.auto_unseal.state = AutoUnsealState::InProgress;
        }
        self.set_state(State::Sealed {
            config: Arc::new(config),
            progress: Progress::default(),
        });
        self.set_storage_down(None);
        match was_down {
            true => tracing::info!("the store answers; sealed"),
            false => tracing::info!("another node initialized the store; sealed"),
        }
        Ok(())
    }
}
