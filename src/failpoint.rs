//! Crash points for the crash-safety tests.
//!
//! Built only with the cargo feature `failpoints` (`scripts/test` always turns
//! it on; release builds never have it). The environment variable
//! `STRONGROOM_FAILPOINT=<operation>:<point>` makes the daemon abort, as a
//! crash would, at that point of that operation:
//!
//! - `before-kms-N`, `after-kms-N`: around the N-th KMS call of the operation;
//! - `before-commit-N`, `after-commit-N`: around its N-th storage commit
//!   (after `after-commit-N` the batch is durable).
//!
//! `STRONGROOM_FAILPOINT=list` aborts nowhere and prints `failpoint passed:
//! <operation>:<point>` at every boundary, so a test can enumerate them.
//!
//! Operations name themselves with [`scope`] (`init`, `rekey`, `rotate`, …);
//! the storage and KMS wrappers count the calls made inside the scope, so
//! every boundary of every operation is reachable without naming each call
//! site. Without the feature, [`scope`] only runs the future.

use std::future::Future;

#[cfg(feature = "failpoints")]
pub use enabled::{wrap_backend, wrap_kms};

/// Runs `operation` as the operation `name`, so crash points inside it can
/// be targeted.
#[cfg(feature = "failpoints")]
pub async fn scope<F: Future>(name: &'static str, operation: F) -> F::Output {
    enabled::OPERATION
        .scope(enabled::Counters::new(name), operation)
        .await
}

/// Runs `operation` (crash points are compiled out without the feature).
#[cfg(not(feature = "failpoints"))]
pub async fn scope<F: Future>(_name: &'static str, operation: F) -> F::Output {
    operation.await
}

#[cfg(feature = "failpoints")]
mod enabled {
    use std::cell::Cell;
    use std::sync::{Arc, OnceLock};

    use async_trait::async_trait;

    use crate::seal::kms::{EncryptionContext, KeyInfo, Kms, KmsError, Unwrapped, Wrapped};
    use crate::storage::{Backend, Batch, StorageError};

    /// The variable that names the crash point.
    const VARIABLE: &str = "STRONGROOM_FAILPOINT";

    pub(super) struct Counters {
        name: &'static str,
        kms_calls: Cell<u32>,
        commits: Cell<u32>,
    }

    impl Counters {
        pub(super) fn new(name: &'static str) -> Self {
            Self {
                name,
                kms_calls: Cell::new(0),
                commits: Cell::new(0),
            }
        }
    }

    tokio::task_local! {
        pub(super) static OPERATION: Counters;
    }

    fn target() -> Option<&'static str> {
        static TARGET: OnceLock<Option<String>> = OnceLock::new();
        TARGET
            .get_or_init(|| std::env::var(VARIABLE).ok())
            .as_deref()
    }

    /// Counts a call of `what` in the current operation (if any), aborts at
    /// `<operation>:before-<what>-<n>`, and returns n for [`after`].
    fn before(what: &str, counter: fn(&Counters) -> &Cell<u32>) -> u32 {
        if target().is_none() {
            return 0;
        }
        OPERATION
            .try_with(|op| {
                let count = counter(op);
                count.set(count.get() + 1);
                crash_if_target(op.name, "before", what, count.get());
                count.get()
            })
            .unwrap_or(0)
    }

    /// Aborts at `<operation>:after-<what>-<n>`.
    fn after(what: &str, n: u32) {
        if n == 0 {
            return;
        }
        let _ = OPERATION.try_with(|op| crash_if_target(op.name, "after", what, n));
    }

    fn crash_if_target(operation: &str, side: &str, what: &str, n: u32) {
        let point = format!("{operation}:{side}-{what}-{n}");
        if target() == Some("list") {
            eprintln!("failpoint passed: {point}");
        } else if Some(point.as_str()) == target() {
            eprintln!("failpoint {point}: aborting");
            std::process::abort();
        }
    }

    /// Storage with a crash point before and after every commit.
    pub fn wrap_backend(inner: Arc<dyn Backend>) -> Arc<dyn Backend> {
        Arc::new(FailBackend(inner))
    }

    struct FailBackend(Arc<dyn Backend>);

    #[async_trait]
    impl Backend for FailBackend {
        fn kind(&self) -> &'static str {
            self.0.kind()
        }
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
            self.0.get(key).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
            self.0.list(prefix).await
        }
        async fn write(&self, batch: Batch) -> Result<(), StorageError> {
            let n = before("commit", |c| &c.commits);
            let result = self.0.write(batch).await;
            after("commit", n);
            result
        }
        async fn export(&self) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
            self.0.export().await
        }
    }

    /// A KMS with a crash point before and after every call.
    pub fn wrap_kms(inner: Arc<dyn Kms>) -> Arc<dyn Kms> {
        Arc::new(FailKms(inner))
    }

    struct FailKms(Arc<dyn Kms>);

    #[async_trait]
    impl Kms for FailKms {
        fn key_id(&self) -> &str {
            self.0.key_id()
        }
        fn endpoint(&self) -> String {
            self.0.endpoint()
        }
        async fn encrypt(
            &self,
            plaintext: &[u8],
            context: &EncryptionContext,
        ) -> Result<Wrapped, KmsError> {
            let n = before("kms", |c| &c.kms_calls);
            let result = self.0.encrypt(plaintext, context).await;
            after("kms", n);
            result
        }
        async fn decrypt(
            &self,
            ciphertext: &[u8],
            context: &EncryptionContext,
            key_arn: &str,
        ) -> Result<Unwrapped, KmsError> {
            let n = before("kms", |c| &c.kms_calls);
            let result = self.0.decrypt(ciphertext, context, key_arn).await;
            after("kms", n);
            result
        }
        async fn describe_key(&self, key_id: &str) -> Result<KeyInfo, KmsError> {
            let n = before("kms", |c| &c.kms_calls);
            let result = self.0.describe_key(key_id).await;
            after("kms", n);
            result
        }
    }
}
