//! Audit devices: each writes its lines in order from its own thread, so
//! one that blocks (a stalled journald pipe, a hung network filesystem)
//! stalls neither the runtime's workers nor the other devices.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::{Arc, mpsc};
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
    /// Write one line and say how it went.
    Line(Arc<Vec<u8>>, oneshot::Sender<std::io::Result<()>>),
    /// Reopen the file (SIGHUP).
    Reopen,
}

/// Where a device's lines go; owned by its writer thread.
enum Sink {
    File { path: PathBuf, file: File },
    Stdout,
}

impl Sink {
    fn write(&mut self, line: &[u8]) -> std::io::Result<()> {
        match self {
            // One write(2) of the whole line on an O_APPEND file.
            Sink::File { file, .. } => file.write_all(line),
            Sink::Stdout => std::io::stdout().lock().write_all(line),
        }
    }

    fn reopen(&mut self) {
        if let Sink::File { path, file } = self {
            match open_file(path) {
                Ok(new) => *file = new,
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: the audit file was not reopened; lines go to the old file");
                }
            }
        }
    }
}

/// One device: a thread that writes its lines in order, so a device that
/// blocks (a stalled journald pipe, a hung network filesystem) stalls
/// neither the runtime's workers nor the other devices.
struct Device {
    name: String,
    /// Its type, as its failures are counted (`file`, `stdout`).
    kind: &'static str,
    jobs: mpsc::SyncSender<Job>,
}

impl Device {
    fn start(sink: Sink) -> Result<Self, AuditError> {
        let (name, kind) = match &sink {
            Sink::File { path, .. } => (format!("file {}", path.display()), "file"),
            Sink::Stdout => ("stdout".into(), "stdout"),
        };
        let (jobs, queue) = mpsc::sync_channel::<Job>(QUEUE);
        let mut sink = sink;
        // The thread ends when the Auditor (the sender) is dropped.
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || {
                for job in queue {
                    match job {
                        Job::Line(line, done) => {
                            let _ = done.send(sink.write(&line));
                        }
                        Job::Reopen => sink.reopen(),
                    }
                }
            })
            .map_err(|e| AuditError::Open {
                path: PathBuf::from(&name),
                reason: format!("cannot start its writer thread: {e}"),
            })?;
        Ok(Self { name, kind, jobs })
    }
}

/// Lines queued per device before it counts as failed.
const QUEUE: usize = 1024;
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
            if device.jobs.try_send(Job::Reopen).is_err() {
                tracing::error!(device = %device.name, "SIGHUP: the audit device is stalled; its file was not reopened");
            }
        }
    }

    /// Writes `line` to every device; succeeds if at least one wrote it
    /// within [`WRITE_TIMEOUT`].
    pub(super) async fn write(&self, line: Vec<u8>) -> Result<(), AuditError> {
        let line = Arc::new(line);
        let mut waits = Vec::with_capacity(self.devices.len());
        let mut failures = Vec::new();
        for device in &self.devices {
            let (done, written) = oneshot::channel();
            match device.jobs.try_send(Job::Line(Arc::clone(&line), done)) {
                Ok(()) => waits.push((device, written)),
                Err(_) => failures.push((device, format!("{QUEUE} lines waiting"))),
            }
        }
        let mut wrote = 0;
        for (device, written) in waits {
            match tokio::time::timeout(WRITE_TIMEOUT, written).await {
                Ok(Ok(Ok(()))) => wrote += 1,
                Ok(Ok(Err(e))) => failures.push((device, e.to_string())),
                Ok(Err(_)) => failures.push((device, "its writer stopped".into())),
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
