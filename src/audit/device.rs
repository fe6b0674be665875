//! Audit devices: each writes its lines in order from its own thread, so
//! one that blocks (a stalled journald pipe, a hung network filesystem)
//! stalls neither the runtime's workers nor the other devices.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::Thread;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::config::AuditDevice;
use crate::metrics;

/// Why the audit log could not be written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A file device could not be opened at start-up.
    #[error("cannot open the audit file {path}: {reason}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// No device accepted the line.
    #[error("no audit device could record the request ({0}); the call was refused")]
    Unwritable(String),
}

/// What a device's writer thread is asked to do.
enum Job {
    /// Write lines in one write(2) and tell each waiting call how it went.
    Lines(Batch),
    /// Reopen the file (SIGHUP).
    Reopen,
}

/// Where a device's lines go; owned by its writer thread.
enum Sink {
    File {
        path: PathBuf,
        file: File,
        /// The last write failed midway, leaving a line without its end.
        torn: bool,
    },
    Stdout,
}

impl Sink {
    fn write(&mut self, lines: &[u8]) -> std::io::Result<()> {
        match self {
            // One write(2) of whole lines on an O_APPEND file, usually.
            Sink::File { file, torn, .. } => write_whole(file, torn, lines),
            Sink::Stdout => std::io::stdout().lock().write_all(lines),
        }
    }

    fn reopen(&mut self) {
        if let Sink::File { path, file, torn } = self {
            match open_file(path) {
                Ok(new) => {
                    *file = new;
                    *torn = false;
                }
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: the audit file was not reopened; lines go to the old file");
                }
            }
        }
    }
}

/// Writes `lines` whole. After a write that failed midway (a full disk),
/// the next one first ends the torn line, so the first line written after
/// it stands alone and parses (its call was told the write failed).
fn write_whole(file: &mut File, torn: &mut bool, lines: &[u8]) -> std::io::Result<()> {
    if *torn {
        file.write_all(b"\n")?;
        *torn = false;
    }
    let mut rest = lines;
    while !rest.is_empty() {
        match file.write(rest) {
            Ok(0) => {
                *torn = rest.len() < lines.len();
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                *torn = rest.len() < lines.len();
                return Err(e);
            }
        }
    }
    Ok(())
}

type Written = oneshot::Sender<std::io::Result<()>>;

/// Lines of several calls, written together, each call waiting for them.
#[derive(Default)]
struct Batch {
    lines: Vec<u8>,
    waiting: Vec<Written>,
}

impl Batch {
    /// Writes the lines and answers every waiting call.
    fn write_to(self, sink: &mut Sink) {
        let written = sink.write(&self.lines);
        for done in self.waiting {
            let outcome = match &written {
                Ok(()) => Ok(()),
                Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
            };
            let _ = done.send(outcome);
        }
    }
}

/// What a device's calls and its writer thread share.
#[derive(Default)]
struct Shared {
    /// The batch being gathered.
    gathering: Batch,
    /// Whether a call is about to hand the gathering batch over.
    leader: bool,
    /// Handed over, in order, for the writer.
    jobs: VecDeque<Job>,
    /// The bytes of the lines handed over and not yet written (taken by
    /// the writer included): bounds what a stalled device holds.
    queued_bytes: usize,
    /// The device is gone: the writer ends once the jobs are done.
    closed: bool,
}

/// One device: a thread that writes its lines in order, so a device that
/// blocks (a stalled journald pipe, a hung network filesystem) stalls
/// neither the runtime's workers nor the other devices.
///
/// Calls hand their lines over in batches (group commit): the first call
/// to find no batch under way leads one, lets the other ready tasks run
/// (which add their lines), then queues the batch and unparks the writer.
/// Handing each line over alone (through a channel) cost five context
/// switches per audited call on a busy core and half its throughput; a
/// batch costs about two for all of its lines.
struct Device {
    name: String,
    /// Its type, as its failures are counted (`file`, `stdout`).
    kind: &'static str,
    shared: Arc<Mutex<Shared>>,
    writer: Thread,
}

/// `shared`, whoever panicked while holding it: every change under it is
/// a push, a flag or a swap, never left half made.
fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Device {
    fn start(sink: Sink) -> Result<Self, AuditError> {
        let (name, kind) = match &sink {
            Sink::File { path, .. } => (format!("file {}", path.display()), "file"),
            Sink::Stdout => ("stdout".into(), "stdout"),
        };
        let shared = Arc::new(Mutex::new(Shared::default()));
        let queue = Arc::clone(&shared);
        let mut sink = sink;
        let writer = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || {
                loop {
                    let (jobs, closed) = {
                        let mut shared = lock(&queue);
                        (std::mem::take(&mut shared.jobs), shared.closed)
                    };
                    if jobs.is_empty() {
                        if closed {
                            return;
                        }
                        // Unparked by a hand-over (or spuriously: looks again).
                        std::thread::park();
                        continue;
                    }
                    for job in jobs {
                        match job {
                            Job::Lines(batch) => {
                                let bytes = batch.lines.len();
                                batch.write_to(&mut sink);
                                lock(&queue).queued_bytes -= bytes;
                            }
                            Job::Reopen => sink.reopen(),
                        }
                    }
                }
            })
            .map_err(|e| AuditError::Open {
                path: PathBuf::from(&name),
                reason: format!("cannot start its writer thread: {e}"),
            })?
            .thread()
            .clone();
        Ok(Self {
            name,
            kind,
            shared,
            writer,
        })
    }

    /// Adds `line` to the batch being gathered; the answer says when it
    /// was written. Unless another call leads this batch, hands it to the
    /// writer once the other ready tasks have added theirs.
    async fn write(&self, line: &[u8]) -> oneshot::Receiver<std::io::Result<()>> {
        let (done, written) = oneshot::channel();
        let lead = {
            let mut shared = lock(&self.shared);
            // Counted per line: past the bound only this line is refused
            // (its sender dropped), and a line alone always goes.
            let pending = shared.queued_bytes + shared.gathering.lines.len();
            if pending > 0 && pending + line.len() > QUEUE_BYTES {
                return written;
            }
            shared.gathering.lines.extend_from_slice(line);
            shared.gathering.waiting.push(done);
            !std::mem::replace(&mut shared.leader, true)
        };
        if lead {
            // Handed over when dropped: after the yield, or when this call
            // is cancelled during it (a client gone), so no batch is left
            // behind.
            let _handoff = Handoff(self);
            tokio::task::yield_now().await;
        }
        written
    }

    /// Queues the gathered batch for the writer (its bytes were counted
    /// line by line). A full queue drops it, and so its senders: every
    /// call in it learns its line was not written.
    fn hand_off(&self) {
        {
            let mut shared = lock(&self.shared);
            shared.leader = false;
            let batch = std::mem::take(&mut shared.gathering);
            if shared.jobs.len() < QUEUE {
                shared.queued_bytes += batch.lines.len();
                shared.jobs.push_back(Job::Lines(batch));
            }
        }
        self.writer.unpark();
    }

    /// Queues `job` after the lines handed over before it; false when the
    /// queue is full.
    fn queue(&self, job: Job) -> bool {
        let queued = {
            let mut shared = lock(&self.shared);
            let room = shared.jobs.len() < QUEUE;
            if room {
                shared.jobs.push_back(job);
            }
            room
        };
        self.writer.unpark();
        queued
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        lock(&self.shared).closed = true;
        self.writer.unpark();
    }
}

/// Hands a device's batch to its writer when dropped.
struct Handoff<'a>(&'a Device);

impl Drop for Handoff<'_> {
    fn drop(&mut self) {
        self.0.hand_off();
    }
}

/// Jobs queued per device before it counts as failed.
const QUEUE: usize = 1024;
/// Bytes of lines queued per device before it counts as failed (a stalled
/// device next to a healthy one must not grow without bound).
const QUEUE_BYTES: usize = 16 << 20;
/// How long a device may take to write a line before it counts as failed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

fn open_file(path: &PathBuf) -> Result<File, AuditError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| AuditError::Open {
            path: path.clone(),
            reason: e.to_string(),
        })
}

/// The configured audit devices.
#[derive(Default)]
pub struct Auditor {
    devices: Vec<Device>,
}

impl Auditor {
    /// Opens every device of the config and starts its writer thread.
    pub fn open(devices: &[AuditDevice]) -> Result<Self, AuditError> {
        let devices = devices
            .iter()
            .map(|device| {
                Device::start(match device {
                    AuditDevice::File { path } => Sink::File {
                        path: path.clone(),
                        file: open_file(path)?,
                        torn: false,
                    },
                    AuditDevice::Stdout => Sink::Stdout,
                })
            })
            .collect::<Result<_, AuditError>>()?;
        Ok(Self { devices })
    }

    /// True when at least one device is configured.
    pub fn enabled(&self) -> bool {
        !self.devices.is_empty()
    }

    /// Reopens file devices (SIGHUP, after logrotate moved the file); each
    /// does so after the lines queued before it.
    pub fn reopen(&self) {
        for device in &self.devices {
            if !device.queue(Job::Reopen) {
                tracing::error!(device = %device.name, "SIGHUP: the audit device is stalled; its file was not reopened");
            }
        }
    }

    /// Writes `line` to every device; succeeds if at least one wrote it
    /// within [`WRITE_TIMEOUT`].
    pub(super) async fn write(&self, line: Vec<u8>) -> Result<(), AuditError> {
        let mut waits = Vec::with_capacity(self.devices.len());
        let mut failures = Vec::new();
        for device in &self.devices {
            waits.push((device, device.write(&line).await));
        }
        let mut wrote = 0;
        // One deadline for all: stalled devices cost 5 s per call together.
        let deadline = tokio::time::Instant::now() + WRITE_TIMEOUT;
        for (device, written) in waits {
            match tokio::time::timeout_at(deadline, written).await {
                Ok(Ok(Ok(()))) => wrote += 1,
                Ok(Ok(Err(e))) => failures.push((device, e.to_string())),
                Ok(Err(_)) => failures.push((
                    device,
                    "its queue is full (a stalled device?) or its writer stopped".into(),
                )),
                Err(_) => failures.push((
                    device,
                    format!("no answer within {} s", WRITE_TIMEOUT.as_secs()),
                )),
            }
        }
        let failures: Vec<String> = failures
            .into_iter()
            .map(|(device, why)| {
                metrics::audit_failure(device.kind);
                let failure = format!("{}: {why}", device.name);
                tracing::error!(device = %failure, "an audit device failed");
                failure
            })
            .collect();
        if wrote == 0 {
            return Err(AuditError::Unwritable(failures.join("; ")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_auditor(dir: &tempfile::TempDir) -> (Arc<Auditor>, PathBuf) {
        let path = dir.path().join("audit.log");
        let devices = [AuditDevice::File { path: path.clone() }];
        (Arc::new(Auditor::open(&devices).unwrap()), path)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_lines_are_each_written_whole_once() {
        let dir = tempfile::tempdir().unwrap();
        let (auditor, path) = file_auditor(&dir);
        let mut calls = tokio::task::JoinSet::new();
        for n in 0..500 {
            let auditor = Arc::clone(&auditor);
            calls.spawn(async move {
                let line = format!("{{\"n\":{n},\"pad\":\"{}\"}}\n", "x".repeat(n % 97));
                auditor.write(line.into_bytes()).await
            });
        }
        while let Some(written) = calls.join_next().await {
            written.unwrap().unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut seen: Vec<u64> = text
            .lines()
            .map(|line| {
                serde_json::from_str::<serde_json::Value>(line).unwrap()["n"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..500).collect::<Vec<u64>>());
    }

    #[tokio::test]
    async fn a_call_cancelled_while_leading_a_batch_still_hands_it_over() {
        let dir = tempfile::tempdir().unwrap();
        let (auditor, path) = file_auditor(&dir);
        // Polled once (it leads its batch and yields), then dropped.
        let mut cancelled = Box::pin(auditor.write(b"first\n".to_vec()));
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(cancelled.as_mut().poll(&mut context).is_pending());
        drop(cancelled);
        // Without the hand-over on drop, this line would join a batch that
        // no call leads any more, and time out.
        let started = std::time::Instant::now();
        auditor.write(b"second\n".to_vec()).await.unwrap();
        assert!(started.elapsed() < WRITE_TIMEOUT);
        // The writer wrote the cancelled call's line before the next batch.
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first\nsecond\n");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_device_holds_a_bounded_queue_and_refuses_the_rest() {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stalled");
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRWXU).unwrap();
        // A reader that never reads: once the pipe's buffer is full, the
        // writer thread blocks in write(2), as on a hung filesystem.
        let _reader = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(&path)
            .unwrap();
        let devices = [AuditDevice::File { path }];
        let auditor = Arc::new(Auditor::open(&devices).unwrap());
        let line = vec![b'x'; 64 * 1024];
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..(2 * QUEUE_BYTES / line.len()) {
            let (auditor, line) = (Arc::clone(&auditor), line.clone());
            calls.spawn(async move { auditor.write(line).await });
        }
        let mut full = 0;
        while let Some(written) = calls.join_next().await {
            if let Err(e) = written.unwrap() {
                full += usize::from(e.to_string().contains("queue is full"));
            }
        }
        // At most QUEUE_BYTES were queued (fewer than 1024 jobs): the rest
        // were refused at once instead of queued.
        assert!(
            full >= QUEUE_BYTES / line.len() - 2,
            "{full} refused as full"
        );
    }

    #[tokio::test]
    async fn a_line_alone_past_the_queue_bound_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let (auditor, path) = file_auditor(&dir);
        let mut line = vec![b'x'; QUEUE_BYTES + 1];
        line.push(b'\n');
        auditor.write(line.clone()).await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap().len(), line.len());
    }
}
