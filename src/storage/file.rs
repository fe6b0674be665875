//! The embedded default store: one redb database in a directory.
//!
//! Why redb: it is a pure-Rust, ACID, copy-on-write B-tree with checksummed
//! pages. A commit is durable when `commit()` returns (fsync), and a crash at
//! any instant leaves the previous commit intact, so a multi-entry [`Batch`] is
//! one transaction and crash safety needs no hand-written journal. The
//! alternative, a file per entry with write + fsync + rename, cannot make
//! several entries change together without building a write-ahead log.
//!
//! Writes go through one writer thread that does group commit: batches that
//! arrive while a commit is being synced are applied in the next transaction
//! together, so concurrent writers share one fsync.
//!
//! Directory layout:
//! - `strongroom.lock`: held with `flock(LOCK_EX)` for the life of the process;
//!   contains the holder's pid, so a second daemon can name it.
//! - `strongroom.redb`: the database. Table `meta` keeps the storage format
//!   version; table `entries` maps logical paths to values.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Instant;

use async_trait::async_trait;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use super::{Backend, Batch, Op, OpenError, StorageError};
use crate::metrics;

/// Storage format this build writes, and the newest it reads.
///
/// 1: the first release. 2: versioned KV (`kv-meta/`, `kv-data/`); a format 1
/// store is raised to 2 when this build opens it (its unversioned secrets
/// become version 1 at the first unseal), so an older build refuses it
/// afterwards instead of finding no secrets.
pub const FORMAT_VERSION: u32 = 2;

/// The lock file in a file store's directory: held with `flock` by the
/// process that has the store open (`diagnose` names and probes it too).
pub const LOCK_FILE: &str = "strongroom.lock";
const DATA_FILE: &str = "strongroom.redb";
const META: TableDefinition<'_, &str, u32> = TableDefinition::new("meta");
const ENTRIES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("entries");
const FORMAT_KEY: &str = "format_version";
/// Most batches folded into one commit.
const MAX_GROUP: usize = 256;

struct WriteJob {
    batch: Batch,
    done: oneshot::Sender<Result<(), StorageError>>,
}

/// The file backend. Dropping it stops the writer thread and releases the lock.
pub struct FileBackend {
    db: Arc<Database>,
    writer: Option<mpsc::Sender<WriteJob>>,
    writer_thread: Option<thread::JoinHandle<()>>,
    path: PathBuf,
    _lock: Flock<File>,
}

impl Drop for FileBackend {
    /// Stops the writer after it finishes queued batches, so the database is
    /// closed (and can be reopened) by the time the lock is released.
    fn drop(&mut self) {
        drop(self.writer.take());
        if let Some(thread) = self.writer_thread.take() {
            let _ = thread.join();
        }
    }
}

impl FileBackend {
    /// True when `dir` holds a store (its database file), so that opening
    /// it reads data rather than creating an empty store.
    pub fn holds_store(dir: &Path) -> bool {
        dir.join(DATA_FILE).is_file()
    }

    /// Opens (creating if needed) the store in `dir`, taking its lock, with
    /// the default page cache.
    pub fn open(dir: &Path) -> Result<Self, OpenError> {
        Self::open_with_cache(dir, crate::config::DEFAULT_STORAGE_CACHE_SIZE)
    }

    /// Opens the store in `dir` with at most `cache_size` bytes of cached
    /// pages (redb's own default, 1 GiB, grows with every key ever read).
    pub fn open_with_cache(dir: &Path, cache_size: usize) -> Result<Self, OpenError> {
        let io = |path: &Path, err: &dyn std::fmt::Display| OpenError::Io {
            path: path.to_path_buf(),
            reason: err.to_string(),
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io(dir, &e))?;
        let dir = dir.canonicalize().map_err(|e| io(dir, &e))?;
        warn_if_open_to_others(&dir);
        let lock = lock_directory(&dir)?;

        let data = dir.join(DATA_FILE);
        // Created here rather than by redb so that it is private from the start.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&data)
            .map_err(|e| io(&data, &e))?;
        // An existing file keeps the mode it was made with: make it private.
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| io(&data, &e))?;
        let db = redb::backends::FileBackend::new(file)
            .and_then(|backend| {
                Database::builder()
                    .set_cache_size(cache_size)
                    .create_with_backend(backend)
            })
            .map_err(|e| io(&data, &e))?;
        check_format(&db, &data)?;

        let db = Arc::new(db);
        let (writer, jobs) = mpsc::channel();
        let thread_db = Arc::clone(&db);
        let writer_thread = thread::Builder::new()
            .name("storage-writer".into())
            .spawn(move || write_loop(&thread_db, &jobs))
            .map_err(|e| io(&data, &e))?;
        Ok(Self {
            db,
            writer: Some(writer),
            writer_thread: Some(writer_thread),
            path: dir,
            _lock: lock,
        })
    }

    /// The absolute storage directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pid recorded by the process that holds `dir`'s lock, or `None`
    /// when none does, found by taking the lock as [`FileBackend::open`]
    /// does and letting it go at once; nothing is created (without a lock
    /// file, the directory itself is locked, which tells whether the
    /// filesystem takes `flock`). For `strongroom diagnose`.
    pub fn lock_holder(dir: &Path) -> Result<Option<String>, OpenError> {
        let path = dir.join(LOCK_FILE);
        let target = if path.exists() { &path } else { dir };
        let file = File::open(target).map_err(|e| OpenError::Io {
            path: target.to_path_buf(),
            reason: e.to_string(),
        })?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => {
                drop(lock);
                Ok(None)
            }
            Err((file, Errno::EWOULDBLOCK)) => Ok(Some(recorded_pid(file))),
            Err((_, errno)) => Err(OpenError::Io {
                path: target.to_path_buf(),
                reason: format!("cannot lock: {}", errno.desc()),
            }),
        }
    }

    /// The storage format recorded in `dir`'s store, read without the lock
    /// and without changing anything; `None` when there is no store yet.
    /// For `strongroom diagnose`, which must not raise an older format.
    pub fn stored_format(dir: &Path) -> Result<Option<u32>, OpenError> {
        let data = dir.join(DATA_FILE);
        if !data.is_file() {
            return Ok(None);
        }
        let io = |err: &dyn std::fmt::Display| OpenError::Io {
            path: data.clone(),
            reason: err.to_string(),
        };
        let db = open_read_only(&data)?;
        let txn = db.begin_read().map_err(|e| io(&e))?;
        let meta = match txn.open_table(META) {
            Ok(meta) => meta,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(io(&e)),
        };
        let found = meta.get(FORMAT_KEY).map_err(|e| io(&e))?;
        Ok(found.map(|v| v.value()))
    }

    /// The value stored at `key` in `dir`'s store, read as
    /// [`FileBackend::stored_format`] reads: read-only, without the lock,
    /// creating and changing nothing; `None` when it is not there (or the
    /// store has no entries yet). For `strongroom diagnose`.
    pub fn read_entry(dir: &Path, key: &str) -> Result<Option<Vec<u8>>, OpenError> {
        let data = dir.join(DATA_FILE);
        let io = |err: &dyn std::fmt::Display| OpenError::Io {
            path: data.clone(),
            reason: err.to_string(),
        };
        let db = open_read_only(&data)?;
        let txn = db.begin_read().map_err(|e| io(&e))?;
        let entries = match txn.open_table(ENTRIES) {
            Ok(entries) => entries,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(io(&e)),
        };
        let found = entries.get(key).map_err(|e| io(&e))?;
        Ok(found.map(|v| v.value().to_vec()))
    }
}

/// The pid the lock holder wrote into the lock file, or `unknown`: read
/// bounded and kept only when it is a number, since it goes into sentences.
fn recorded_pid(file: File) -> String {
    let mut pid = String::new();
    let _ = file.take(32).read_to_string(&mut pid);
    match pid.trim().parse::<u32>() {
        Ok(pid) => pid.to_string(),
        Err(_) => "unknown".to_string(),
    }
}

/// `data` opened read-only. A store its last writer did not close (a
/// crash) needs a repair, which only a writer makes: that is said as such,
/// not as a damaged store.
fn open_read_only(data: &Path) -> Result<redb::ReadOnlyDatabase, OpenError> {
    redb::ReadOnlyDatabase::open(data).map_err(|e| match e {
        redb::DatabaseError::RepairAborted => OpenError::NotClosedCleanly {
            path: data.to_path_buf(),
        },
        e => OpenError::Io {
            path: data.to_path_buf(),
            reason: e.to_string(),
        },
    })
}

/// The directory holds only ciphertext, but its names and sizes tell how
/// much is stored and when: say so when others may look (the mode is the
/// operator's to choose, so it is not changed).
fn warn_if_open_to_others(dir: &Path) {
    if let Ok(meta) = fs::metadata(dir) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %dir.display(),
                mode = format!("{mode:04o}"),
                "the storage directory is open to other users; chmod 0700 it"
            );
        }
    }
}

/// Takes the directory lock, or names the process that holds it.
fn lock_directory(dir: &Path) -> Result<Flock<File>, OpenError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .and_then(|file| {
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
            Ok(file)
        })
        .map_err(|e| OpenError::Io {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            let pid = std::process::id().to_string();
            let recorded = lock
                .set_len(0)
                .and_then(|()| lock.seek(SeekFrom::Start(0)))
                .and_then(|_| lock.write_all(pid.as_bytes()))
                .and_then(|()| lock.sync_all());
            recorded.map_err(|e| OpenError::Io {
                path,
                reason: e.to_string(),
            })?;
            Ok(lock)
        }
        Err((file, Errno::EWOULDBLOCK)) => Err(OpenError::Locked {
            path: dir.to_path_buf(),
            pid: recorded_pid(file),
        }),
        Err((_, errno)) => Err(OpenError::Io {
            path,
            reason: format!("cannot lock: {errno}"),
        }),
    }
}

/// Records the format version in a new or older store; refuses one from a
/// newer build.
fn check_format(db: &Database, data: &Path) -> Result<(), OpenError> {
    let io = |err: &dyn std::fmt::Display| OpenError::Io {
        path: data.to_path_buf(),
        reason: err.to_string(),
    };
    let txn = db.begin_write().map_err(|e| io(&e))?;
    {
        let mut meta = txn.open_table(META).map_err(|e| io(&e))?;
        let found = meta.get(FORMAT_KEY).map_err(|e| io(&e))?.map(|v| v.value());
        match found {
            Some(found) if found > FORMAT_VERSION => {
                return Err(OpenError::NewerFormat {
                    path: data.to_path_buf(),
                    found,
                    supported: FORMAT_VERSION,
                });
            }
            Some(found) if found == FORMAT_VERSION => {}
            Some(_) | None => {
                meta.insert(FORMAT_KEY, FORMAT_VERSION)
                    .map_err(|e| io(&e))?;
            }
        }
        // Creating the table here lets readers assume it exists.
        txn.open_table(ENTRIES).map_err(|e| io(&e))?;
    }
    txn.commit().map_err(|e| io(&e))
}

fn backend_error(err: impl std::fmt::Display) -> StorageError {
    StorageError::Backend(err.to_string())
}

/// The writer thread: takes every queued batch, applies them in one
/// transaction, commits once, and answers each caller.
fn write_loop(db: &Database, jobs: &mpsc::Receiver<WriteJob>) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let results = commit_group(db, &group);
        for (job, result) in group.into_iter().zip(results) {
            let _ = job.done.send(result);
        }
    }
}

/// Applies each batch of the group in order; a batch whose precondition fails
/// is skipped (and reported) without affecting the others.
fn commit_group(db: &Database, group: &[WriteJob]) -> Vec<Result<(), StorageError>> {
    let attempt = || -> Result<Vec<Result<(), StorageError>>, StorageError> {
        let txn = db.begin_write().map_err(backend_error)?;
        let mut results = Vec::with_capacity(group.len());
        {
            let mut table = txn.open_table(ENTRIES).map_err(backend_error)?;
            for job in group {
                let conflict = job.batch.ops().iter().find_map(|op| match op {
                    Op::RequireAbsent { key } => match table.get(key.as_str()) {
                        Ok(Some(_)) => Some(Ok(key.clone())),
                        Ok(None) => None,
                        Err(e) => Some(Err(backend_error(e))),
                    },
                    _ => None,
                });
                match conflict {
                    Some(Ok(key)) => {
                        results.push(Err(StorageError::Conflict(key)));
                        continue;
                    }
                    Some(Err(e)) => return Err(e),
                    None => {}
                }
                for op in job.batch.ops() {
                    match op {
                        Op::Put { key, value } => {
                            table
                                .insert(key.as_str(), value.as_slice())
                                .map_err(backend_error)?;
                        }
                        Op::Delete { key } => {
                            table.remove(key.as_str()).map_err(backend_error)?;
                        }
                        Op::Clear => {
                            table.retain(|_, _| false).map_err(backend_error)?;
                        }
                        Op::RequireAbsent { .. } => {}
                    }
                }
                results.push(Ok(()));
            }
        }
        txn.commit().map_err(backend_error)?;
        Ok(results)
    };
    match attempt() {
        Ok(results) => results,
        Err(e) => group
            .iter()
            .map(|_| Err(StorageError::Backend(e.to_string())))
            .collect(),
    }
}

#[async_trait]
impl Backend for FileBackend {
    fn kind(&self) -> &'static str {
        "file"
    }

    // Reads run inline: a read transaction on pages in the page cache takes a
    // few microseconds, less than handing the work to a blocking thread.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let txn = self.db.begin_read().map_err(backend_error)?;
        let table = txn.open_table(ENTRIES).map_err(backend_error)?;
        let value = table.get(key).map_err(backend_error)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let txn = self.db.begin_read().map_err(backend_error)?;
        let table = txn.open_table(ENTRIES).map_err(backend_error)?;
        let mut keys = Vec::new();
        for item in table.range(prefix..).map_err(backend_error)? {
            let (key, _) = item.map_err(backend_error)?;
            let key = key.value();
            if !key.starts_with(prefix) {
                break;
            }
            keys.push(key.to_string());
        }
        Ok(keys)
    }

    // One read transaction: the view of a single commit, whatever the
    // writer does meanwhile. The whole store is read on a blocking thread,
    // not on a runtime worker that serves requests.
    async fn export(&self) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(backend_error)?;
            let table = txn.open_table(ENTRIES).map_err(backend_error)?;
            let mut entries = Vec::new();
            for item in table.iter().map_err(backend_error)? {
                let (key, value) = item.map_err(backend_error)?;
                entries.push((key.value().to_string(), value.value().to_vec()));
            }
            Ok(entries)
        })
        .await
        .map_err(|e| StorageError::Backend(format!("the snapshot reader stopped: {e}")))?
    }

    async fn write(&self, batch: Batch) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let (done, result) = oneshot::channel();
        let stopped = || StorageError::Backend("the storage writer has stopped".into());
        self.writer
            .as_ref()
            .ok_or_else(stopped)?
            .send(WriteJob { batch, done })
            .map_err(|_| stopped())?;
        let committed = result.await.map_err(|_| stopped())?;
        // As the writer sees it: the group commit's wait and its fsync.
        metrics::commit("file", started);
        committed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn meets_the_backend_contract() {
        let dir = tempfile::tempdir().unwrap();
        let backend = FileBackend::open(dir.path()).unwrap();
        super::super::contract::check(&backend).await;
    }

    #[tokio::test]
    async fn data_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let backend = FileBackend::open(dir.path()).unwrap();
            let mut batch = Batch::new();
            batch.put("k", b"v".to_vec());
            backend.write(batch).await.unwrap();
        }
        let backend = FileBackend::open(dir.path()).unwrap();
        assert_eq!(backend.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    }

    #[tokio::test]
    async fn concurrent_writers_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(FileBackend::open(dir.path()).unwrap());
        let mut tasks = Vec::new();
        for i in 0..50 {
            let backend = Arc::clone(&backend);
            tasks.push(tokio::spawn(async move {
                let mut batch = Batch::new();
                batch.put(format!("k/{i:02}"), vec![i as u8]);
                backend.write(batch).await
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(backend.list("k/").await.unwrap().len(), 50);
    }

    #[test]
    fn a_second_open_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let _first = FileBackend::open(dir.path()).unwrap();
        match FileBackend::open(dir.path()) {
            Err(OpenError::Locked { pid, .. }) => assert_eq!(pid, std::process::id().to_string()),
            other => panic!("expected Locked, got {:?}", other.err()),
        }
    }

    #[test]
    fn a_newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(FileBackend::open(dir.path()).unwrap());
        {
            let db = Database::create(dir.path().join(DATA_FILE)).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert(FORMAT_KEY, FORMAT_VERSION + 1)
                .unwrap();
            txn.commit().unwrap();
        }
        match FileBackend::open(dir.path()) {
            Err(OpenError::NewerFormat { found, .. }) => assert_eq!(found, FORMAT_VERSION + 1),
            other => panic!("expected NewerFormat, got {:?}", other.err()),
        }
    }
}
