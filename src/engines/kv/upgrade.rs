//! Stores written before versioning kept one unversioned secret at
//! `kv/<path>`: each becomes version 1 of its path at unseal.

use std::collections::BTreeMap;

use super::meta::{data_key, put_meta, read_meta};
use super::{Document, Metadata, VersionInfo};
use crate::barrier::Barrier;
use crate::error::Error;
use crate::storage::Batch;
use crate::time::now_unix;

/// Where stores written before versioning kept their secrets.
const UNVERSIONED_PREFIX: &str = "kv/";

/// Turns every secret of a store written before versioning into version 1
/// of its path, in one transaction. Runs at each unseal, before requests are
/// served; once done it costs one empty range scan.
pub(super) async fn upgrade_unversioned(barrier: &Barrier) -> Result<(), Error> {
    let keys = barrier.list(UNVERSIONED_PREFIX).await?;
    if keys.is_empty() {
        return Ok(());
    }
    let now = now_unix();
    let mut batch = Batch::new();
    for key in &keys {
        let path = &key[UNVERSIONED_PREFIX.len()..];
        // Already versioned (an upgrade that raced this one): keep it.
        if read_meta(barrier, path).await?.is_some() {
            batch.delete(key.clone());
            continue;
        }
        let Some(stored) = barrier.get(key).await? else {
            continue;
        };
        let document = Document::stored(path, stored.expose())?;
        let data = data_key(path, 1);
        batch.put(data.clone(), barrier.encrypt(&data, document.bytes()));
        let mut meta = Metadata::new(now);
        meta.current_version = 1;
        meta.versions = BTreeMap::from([(
            1,
            VersionInfo {
                created_unix: now,
                deleted_unix: 0,
                destroyed: false,
            },
        )]);
        put_meta(barrier, &mut batch, path, &meta);
        batch.delete(key.clone());
    }
    barrier.write(batch).await?;
    tracing::info!(
        secrets = keys.len(),
        "kv secrets written before versioning are now version 1 of their paths"
    );
    Ok(())
}
