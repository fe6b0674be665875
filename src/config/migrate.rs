//! The config of `strongroom operator migrate`: where a store is moved
//! from and to.

use std::path::Path;

use super::{ConfigErrors, StorageConfig, parse};

/// A `storage_source` and a `storage_destination` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateConfig {
    /// The store that is read (the daemon on it stopped).
    pub source: StorageConfig,
    /// The empty store that receives every entry.
    pub destination: StorageConfig,
}

/// Reads the migrate file at `path`. No environment variable applies.
pub fn load_migrate(path: &Path) -> Result<MigrateConfig, ConfigErrors> {
    let source = super::read_source(path)?;
    parse::parse_migrate(&source, path)
}
