//! In-memory storage for tests and `--dev`: everything is lost at exit.

use std::collections::BTreeMap;
use std::sync::RwLock;

use async_trait::async_trait;

use super::{Backend, Batch, Op, StorageError};

/// A map in memory. Batches apply under one lock, so they are atomic.
#[derive(Default)]
pub struct InmemBackend {
    entries: RwLock<BTreeMap<String, Vec<u8>>>,
}

impl InmemBackend {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

fn poisoned() -> StorageError {
    StorageError::Backend("in-memory storage lock poisoned".into())
}

#[async_trait]
impl Backend for InmemBackend {
    fn kind(&self) -> &'static str {
        "inmem"
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .entries
            .read()
            .map_err(|_| poisoned())?
            .get(key)
            .cloned())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let entries = self.entries.read().map_err(|_| poisoned())?;
        Ok(entries
            .range(prefix.to_string()..)
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }

    async fn write(&self, batch: Batch) -> Result<(), StorageError> {
        let mut entries = self.entries.write().map_err(|_| poisoned())?;
        for op in batch.ops() {
            if let Op::RequireAbsent { key } = op
                && entries.contains_key(key)
            {
                return Err(StorageError::Conflict(key.clone()));
            }
        }
        for op in batch.ops() {
            match op {
                Op::Put { key, value } => {
                    entries.insert(key.clone(), value.clone());
                }
                Op::Delete { key } => {
                    entries.remove(key);
                }
                Op::Clear => entries.clear(),
                Op::RequireAbsent { .. } => {}
            }
        }
        Ok(())
    }

    async fn export(&self) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let entries = self.entries.read().map_err(|_| poisoned())?;
        Ok(entries
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn meets_the_backend_contract() {
        super::super::contract::check(&super::InmemBackend::new()).await;
    }
}
