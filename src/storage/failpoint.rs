//! Storage with a crash point before and after every commit (feature
//! `failpoints`; see `crate::failpoint`).

use std::sync::Arc;

use async_trait::async_trait;

use super::{Backend, Batch, StorageError};
use crate::failpoint::{self, Boundary};

/// Wraps `inner` so every commit is a crash point of the operation in scope.
pub fn wrap(inner: Arc<dyn Backend>) -> Arc<dyn Backend> {
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
        let n = failpoint::before(Boundary::Commit);
        let result = self.0.write(batch).await;
        failpoint::after(Boundary::Commit, n);
        result
    }
    async fn export(&self) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        self.0.export().await
    }
}
