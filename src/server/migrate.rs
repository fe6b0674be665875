//! `strongroom operator migrate`, the offline side of the process: open
//! the two stores named by the migrate file and move every entry (the copy
//! itself is storage's, [`storage::migrate`]).

use std::sync::Arc;

use crate::config::{MigrateConfig, StorageConfig};
use crate::storage::migrate::{BATCH_ENTRIES, Moved, copy_store};
use crate::storage::{self, Backend, FileBackend, OpenError};

/// Opens both stores and copies the source into the empty destination,
/// calling `progress(written, total)` after each batch. The error is one
/// sentence.
pub async fn migrate(
    config: &MigrateConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Moved, String> {
    if let StorageConfig::File { path, .. } = &config.source
        && !FileBackend::holds_store(path)
    {
        return Err(format!(
            "storage_source: {} holds no strongroom store (no strongroom.redb in it)",
            path.display()
        ));
    }
    let source = open("storage_source", &config.source).await?;
    let destination = open("storage_destination", &config.destination).await?;
    copy_store(&*source, &*destination, BATCH_ENTRIES, progress)
        .await
        .map_err(|e| e.to_string())
}

async fn open(block: &str, config: &StorageConfig) -> Result<Arc<dyn Backend>, String> {
    storage::open(config).await.map_err(|e| match e {
        OpenError::Locked { .. } => {
            format!("{block}: {e}; stop the daemon first: migrate needs both stores offline")
        }
        other => format!("{block}: {other}"),
    })
}
