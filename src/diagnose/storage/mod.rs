//! The storage area: the file backend's directory (or the PostgreSQL
//! database), the store's format version, and a write, read and delete of
//! a scratch entry outside the barrier, timed. Nothing here reads or writes
//! the barrier's entries, and an older store's format is never raised (the
//! daemon does that at its start).

mod daemon;
mod file;
mod pooling;
mod postgres;

use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::StorageConfig;
use crate::diagnose::{Context, Finding};
use crate::storage::{Backend, Batch};

/// A round trip slower than this deserves a look: every write of the
/// daemon waits for one such commit.
const SLOW: Duration = Duration::from_millis(100);
/// Less free space than this (or than [`MIN_FREE_PERCENT`]) is a warning.
const MIN_FREE_BYTES: u64 = 1 << 30;
/// Less free space than this share of the filesystem is a warning.
const MIN_FREE_PERCENT: u64 = 10;

/// The storage area.
pub async fn check(context: &Context) -> Finding {
    let config = match context.config_or_skip("storage") {
        Ok(config) => config,
        Err(skipped) => return skipped,
    };
    let children = match &config.storage.value {
        StorageConfig::File { path, .. } => file::checks(context, config, path).await,
        StorageConfig::Postgresql(pg) => postgres::checks(context, pg).await,
        StorageConfig::Inmem => vec![Finding::warning(
            "backend",
            "storage \"inmem\" keeps everything in memory: every secret is lost when the daemon stops",
            "use storage \"file\" or \"postgresql\" outside tests",
        )],
    };
    Finding::heading(
        "storage",
        format!("{} backend", config.storage.value.kind()),
        children,
    )
}

/// A key no store uses, outside the barrier's.
fn scratch_key() -> String {
    format!(
        "diagnose/scratch-{}",
        hex::encode(crate::secret::random_bytes(8))
    )
}

/// Free space on the filesystem of `path`.
pub fn free_space(name: &str, path: &Path) -> Finding {
    let stat = match nix::sys::statvfs::statvfs(path) {
        Ok(stat) => stat,
        Err(e) => {
            return Finding::skipped(
                name,
                format!(
                    "the free space of {} cannot be read: {}",
                    path.display(),
                    e.desc()
                ),
            );
        }
    };
    let unit = stat.fragment_size();
    let free = stat.blocks_available().saturating_mul(unit);
    let total = stat.blocks().saturating_mul(unit);
    space_verdict(name, path, free, total)
}

/// Whether `free` bytes of `total` are enough.
fn space_verdict(name: &str, path: &Path, free: u64, total: u64) -> Finding {
    let percent = free.saturating_mul(100).checked_div(total).unwrap_or(100);
    let said = format!(
        "{} free of {} ({percent}%) on the filesystem of {}",
        size(free),
        size(total),
        path.display()
    );
    if free < MIN_FREE_BYTES || percent < MIN_FREE_PERCENT {
        Finding::warning(
            name,
            format!("only {said}"),
            "free some space or grow the filesystem: a full disk stops every write",
        )
    } else {
        Finding::success(name, said)
    }
}

/// `12.3 GiB`.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Writes, reads back and deletes a scratch entry; `what` says where, for
/// the sentence.
async fn round_trip(backend: &dyn Backend, what: &str) -> Finding {
    const NAME: &str = "round trip";
    let key = scratch_key();
    let value = crate::secret::random_bytes(32);
    let started = Instant::now();
    let mut write = Batch::new();
    write.put(key.clone(), value.clone());
    if let Err(e) = backend.write(write).await {
        return Finding::failure(
            NAME,
            format!("writing {key} to {what} failed: {e}"),
            "the daemon could not write either: fix the error above",
        );
    }
    let written = started.elapsed();
    let read = backend.get(&key).await;
    let read_back = started.elapsed();
    let mut delete = Batch::new();
    delete.delete(key.clone());
    let deleted = backend.write(delete).await;
    let total = started.elapsed();
    match (read, deleted) {
        (Err(e), _) => Finding::failure(
            NAME,
            format!("reading {key} back from {what} failed: {e}"),
            "the daemon could not read either: fix the error above",
        ),
        (Ok(found), _) if found.as_deref() != Some(value.as_slice()) => Finding::failure(
            NAME,
            format!("{key} read back from {what} is not what was written"),
            "something else changes this store, or it loses writes: check the disk and who else uses it",
        ),
        (_, Err(e)) => Finding::failure(
            NAME,
            format!("deleting {key} from {what} failed: {e}"),
            "the daemon could not delete either: fix the error above",
        ),
        (Ok(_), Ok(())) => {
            let said = format!(
                "wrote, read and deleted {key} in {what} in {} ms (write {} ms, read {} ms, delete {} ms)",
                total.as_millis(),
                written.as_millis(),
                (read_back - written).as_millis(),
                (total - read_back).as_millis()
            );
            if written > SLOW || total - read_back > SLOW || read_back - written > SLOW {
                Finding::warning(
                    NAME,
                    format!("slow: {said}"),
                    format!(
                        "a step over {} ms slows every write of the daemon: check the disk or the database's load and network",
                        SLOW.as_millis()
                    ),
                )
            } else {
                Finding::success(NAME, said)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::Status;

    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(size(512), "512 bytes");
        assert_eq!(size(3 << 30), "3.0 GiB");
        assert_eq!(size(1536), "1.5 KiB");
    }

    #[test]
    fn little_free_space_is_a_warning() {
        let at = Path::new("/var/lib/strongroom");
        let verdict = |free, total| space_verdict("free space", at, free, total).status;
        assert_eq!(verdict(50 << 30, 100 << 30), Status::Success);
        // Under 1 GiB, however large the share.
        assert_eq!(verdict(900 << 20, 1 << 30), Status::Warning);
        // Under 10 %, however much.
        assert_eq!(verdict(90 << 30, 1000 << 30), Status::Warning);
        let said = space_verdict("free space", at, 90 << 30, 1000 << 30).message;
        assert_eq!(
            said,
            "only 90.0 GiB free of 1000.0 GiB (9%) on the filesystem of /var/lib/strongroom"
        );
    }

    #[tokio::test]
    async fn the_round_trip_leaves_nothing_behind() {
        let backend = crate::storage::InmemBackend::new();
        let finding = round_trip(&backend, "memory").await;
        assert_eq!(
            finding.status,
            crate::diagnose::Status::Success,
            "{finding:?}"
        );
        assert!(backend.list("").await.unwrap().is_empty());
    }
}
