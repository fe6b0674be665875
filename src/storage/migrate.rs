//! Moving every entry of one store into another, empty one (`strongroom
//! operator migrate`): the entries as stored (ciphertext; nothing is
//! decrypted, no key is needed), in bounded batches, then a check that the
//! destination's export equals the source's.
//!
//! Each backend keeps its own format row (redb's `meta` table, PostgreSQL's
//! `<table>_meta`), written when it is opened; exports hold entries only,
//! so format rows are never copied as entries.

use sha2::{Digest, Sha256};

use super::{Backend, Batch, StorageError};

/// Most entries in one destination batch (one transaction).
pub const BATCH_ENTRIES: usize = 512;
/// Most bytes of keys and values in one destination batch.
pub const BATCH_BYTES: usize = 4 << 20;

/// What a finished migration moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// Entries copied (and found again in the destination).
    pub entries: usize,
    /// SHA-256 of every key and value, in key order, as hex: equal in both stores.
    pub digest: String,
}

/// Why a migration stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The source could not be read; nothing was written.
    #[error("cannot read the source store: {0}")]
    Source(StorageError),
    /// The destination could not be read.
    #[error("cannot read the destination store: {0}")]
    Destination(StorageError),
    /// The source has no entries: most likely the wrong store was named.
    #[error(
        "the source store holds no entries, so there is nothing to move (check that storage_source names the right store)"
    )]
    EmptySource,
    /// The destination already holds entries; nothing was written.
    #[error(
        "the destination store is not empty (it holds {count} entries, such as {first}); migrate writes only into an empty store, so nothing was written: empty it or name another"
    )]
    NotEmpty {
        /// How many entries it holds.
        count: usize,
        /// The first of them.
        first: String,
    },
    /// A batch failed: the destination holds the batches before it.
    #[error(
        "writing the destination failed after {written} of {total} entries ({error}); it now holds a partial copy: empty it, then run migrate again"
    )]
    Write {
        /// Entries committed before the failure.
        written: usize,
        /// Entries in the source.
        total: usize,
        /// The backend's sentence.
        error: StorageError,
    },
    /// The copy does not read back as the source.
    #[error(
        "the destination does not match the source after the copy ({found} entries, digest {found_digest}, against {expected} entries, digest {expected_digest}); do not use it: empty it, then run migrate again"
    )]
    Mismatch {
        /// Entries in the source.
        expected: usize,
        /// Digest of the source.
        expected_digest: String,
        /// Entries read back from the destination.
        found: usize,
        /// Digest of the destination.
        found_digest: String,
    },
}

/// The SHA-256 of `entries`, each key and value prefixed by its length.
pub fn digest(entries: &[(String, Vec<u8>)]) -> String {
    let mut hash = Sha256::new();
    for (key, value) in entries {
        hash.update((key.len() as u64).to_be_bytes());
        hash.update(key.as_bytes());
        hash.update((value.len() as u64).to_be_bytes());
        hash.update(value);
    }
    hex::encode(hash.finalize())
}

/// Copies every entry of `source` into the empty `destination`, in
/// batches of at most `batch_entries` entries and [`BATCH_BYTES`] bytes,
/// calling `progress(written, total)` after each, then verifies the copy.
pub async fn copy_store(
    source: &dyn Backend,
    destination: &dyn Backend,
    batch_entries: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Moved, MigrateError> {
    let present = destination
        .list("")
        .await
        .map_err(MigrateError::Destination)?;
    if let Some(first) = present.first() {
        return Err(MigrateError::NotEmpty {
            count: present.len(),
            first: first.clone(),
        });
    }
    let entries = source.export().await.map_err(MigrateError::Source)?;
    if entries.is_empty() {
        return Err(MigrateError::EmptySource);
    }
    let expected_digest = digest(&entries);
    let total = entries.len();
    let mut written = 0;
    let mut batch = Batch::new();
    let mut batch_bytes = 0;
    let mut in_batch = 0;
    for (i, (key, value)) in entries.iter().enumerate() {
        batch_bytes += key.len() + value.len();
        in_batch += 1;
        batch.put(key.clone(), value.clone());
        let last = i + 1 == total;
        if last || in_batch >= batch_entries.max(1) || batch_bytes >= BATCH_BYTES {
            let full = std::mem::take(&mut batch);
            destination
                .write(full)
                .await
                .map_err(|error| MigrateError::Write {
                    written,
                    total,
                    error,
                })?;
            written += in_batch;
            in_batch = 0;
            batch_bytes = 0;
            progress(written, total);
        }
    }
    let copied = destination
        .export()
        .await
        .map_err(MigrateError::Destination)?;
    let found_digest = digest(&copied);
    if copied.len() != total || found_digest != expected_digest {
        return Err(MigrateError::Mismatch {
            expected: total,
            expected_digest,
            found: copied.len(),
            found_digest,
        });
    }
    Ok(Moved {
        entries: total,
        digest: expected_digest,
    })
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;
    use crate::storage::InmemBackend;

    async fn filled(n: usize) -> InmemBackend {
        let store = InmemBackend::new();
        let mut batch = Batch::new();
        for i in 0..n {
            batch.put(format!("k/{i:05}"), vec![(i % 251) as u8; i % 7]);
        }
        store.write(batch).await.unwrap();
        store
    }

    #[tokio::test]
    async fn every_entry_arrives_in_bounded_batches_and_is_verified() {
        let source = filled(1_203).await;
        let destination = InmemBackend::new();
        let mut seen = Vec::new();
        let moved = copy_store(&source, &destination, 500, &mut |w, t| seen.push((w, t)))
            .await
            .unwrap();
        assert_eq!(seen, vec![(500, 1_203), (1_000, 1_203), (1_203, 1_203)]);
        assert_eq!(moved.entries, 1_203);
        assert_eq!(moved.digest, digest(&source.export().await.unwrap()));
        assert_eq!(
            destination.export().await.unwrap(),
            source.export().await.unwrap()
        );
    }

    #[tokio::test]
    async fn a_non_empty_destination_or_an_empty_source_is_refused_untouched() {
        let source = filled(3).await;
        let destination = filled(1).await;
        let error = copy_store(&source, &destination, 10, &mut |_, _| {})
            .await
            .unwrap_err();
        assert!(
            matches!(&error, MigrateError::NotEmpty { count: 1, first } if first == "k/00000"),
            "{error}"
        );
        assert_eq!(destination.export().await.unwrap().len(), 1);
        let error = copy_store(
            &InmemBackend::new(),
            &InmemBackend::new(),
            10,
            &mut |_, _| {},
        )
        .await
        .unwrap_err();
        assert!(matches!(error, MigrateError::EmptySource), "{error}");
    }

    /// A destination whose third batch fails.
    struct FailingThird(InmemBackend, std::sync::atomic::AtomicUsize);

    #[async_trait]
    impl Backend for FailingThird {
        fn kind(&self) -> &'static str {
            "failing"
        }
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
            self.0.get(key).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
            self.0.list(prefix).await
        }
        async fn write(&self, batch: Batch) -> Result<(), StorageError> {
            if self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 2 {
                return Err(StorageError::Backend("disk full".into()));
            }
            self.0.write(batch).await
        }
        async fn export(&self) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
            self.0.export().await
        }
    }

    #[tokio::test]
    async fn a_failure_midway_says_how_much_was_written_and_how_to_retry() {
        let source = filled(50).await;
        let destination = FailingThird(InmemBackend::new(), Default::default());
        let error = copy_store(&source, &destination, 20, &mut |_, _| {})
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "writing the destination failed after 40 of 50 entries (storage failed: disk full); it now holds a partial copy: empty it, then run migrate again"
        );
        assert_eq!(destination.export().await.unwrap().len(), 40);
    }
}
