//! The audit log: two JSON lines per call, a request line before the call
//! acts and a response line after it, on every configured device.
//!
//! Every line has the same keys: `time`, `type` (`request` or `response`),
//! `id` (pairs a request with its response), `operation`, `path`,
//! `accessor`, `identity`, `error`, and `data` (the call's parameters or
//! results). Secret values in `data` are written as
//! `hmac-sha256:<hex>` under a per-install salt kept behind the barrier, so a
//! line can be matched against a known value (`strongroom audit-hash`)
//! without revealing it. While sealed the salt is not available and secret
//! values are left out. Shares and one-time pads are never given to the
//! audit log at all.
//!
//! A request line that no device could write fails the call before it acts.
//! Each device writes from its own thread, so one that blocks delays only
//! the calls waiting on it (at most 5 s), never the runtime's workers.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;
use tokio::sync::{Mutex, oneshot};
use zeroize::Zeroizing;

use crate::config::AuditDevice;
use crate::secret::SecretKey;

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
    jobs: mpsc::SyncSender<Job>,
}

impl Device {
    fn start(sink: Sink) -> Result<Self, AuditError> {
        let name = match &sink {
            Sink::File { path, .. } => format!("file {}", path.display()),
            Sink::Stdout => "stdout".into(),
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
        Ok(Self { name, jobs })
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
    async fn write(&self, line: Vec<u8>) -> Result<(), AuditError> {
        let line = Arc::new(line);
        let mut waits = Vec::with_capacity(self.devices.len());
        let mut failures = Vec::new();
        for device in &self.devices {
            let (done, written) = oneshot::channel();
            match device.jobs.try_send(Job::Line(Arc::clone(&line), done)) {
                Ok(()) => waits.push((device, written)),
                Err(_) => failures.push(format!("{}: {QUEUE} lines waiting", device.name)),
            }
        }
        let mut wrote = 0;
        for (device, written) in waits {
            match tokio::time::timeout(WRITE_TIMEOUT, written).await {
                Ok(Ok(Ok(()))) => wrote += 1,
                Ok(Ok(Err(e))) => failures.push(format!("{}: {e}", device.name)),
                Ok(Err(_)) => failures.push(format!("{}: its writer stopped", device.name)),
                Err(_) => failures.push(format!(
                    "{}: no answer within {} s",
                    device.name,
                    WRITE_TIMEOUT.as_secs()
                )),
            }
        }
        for failure in &failures {
            tracing::error!(device = %failure, "an audit device failed");
        }
        if wrote == 0 {
            return Err(AuditError::Unwritable(failures.join("; ")));
        }
        Ok(())
    }
}

/// A value in an audit line's `data`.
pub enum Field {
    /// Written as is.
    Plain(Value),
    /// Written as its HMAC, or left out while sealed.
    Secret(Zeroizing<Vec<u8>>),
    /// Names written as is, values as HMACs.
    SecretMap(BTreeMap<String, Zeroizing<String>>),
}

/// `hmac-sha256:<hex>` of `value` under `salt`.
pub fn hmac(salt: &SecretKey, value: &[u8]) -> String {
    // HMAC accepts keys of any length; 32 bytes cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(salt.expose())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(value);
    format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
}

fn render(fields: &[(&'static str, Field)], salt: Option<&SecretKey>) -> Value {
    let mut data = Map::new();
    for (name, field) in fields {
        let value = match (field, salt) {
            (Field::Plain(value), _) => value.clone(),
            (Field::Secret(bytes), Some(salt)) => Value::String(hmac(salt, bytes)),
            (Field::SecretMap(map), Some(salt)) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), Value::String(hmac(salt, v.as_bytes()))))
                    .collect(),
            ),
            (Field::Secret(_) | Field::SecretMap(_), None) => continue,
        };
        data.insert((*name).to_string(), value);
    }
    Value::Object(data)
}

/// Who made an audited call, once known.
#[derive(Clone, Default)]
pub struct Who {
    /// The token's accessor.
    pub accessor: Option<String>,
    /// The listener identity.
    pub identity: Option<String>,
}

#[derive(Default)]
struct Progress {
    request_written: bool,
    who: Who,
}

/// One audited call: its request line, then its response line.
pub struct Call {
    auditor: Arc<Auditor>,
    id: String,
    operation: &'static str,
    path: String,
    fields: Vec<(&'static str, Field)>,
    progress: Mutex<Progress>,
}

impl Call {
    /// A call of `operation` on `path`, not yet written.
    pub fn new(auditor: Arc<Auditor>, operation: &'static str, path: String) -> Self {
        Self {
            auditor,
            id: crate::core::random_id(),
            operation,
            path,
            fields: Vec::new(),
            progress: Mutex::default(),
        }
    }

    /// Adds a request parameter.
    pub fn field(&mut self, name: &'static str, field: Field) {
        self.fields.push((name, field));
    }

    fn line(&self, kind: &str, who: &Who, error: Option<&str>, data: Value) -> Vec<u8> {
        let line = serde_json::json!({
            "time": crate::time::now_rfc3339(),
            "type": kind,
            "id": self.id,
            "operation": self.operation,
            "path": self.path,
            "accessor": who.accessor,
            "identity": who.identity,
            "error": error,
            "data": data,
        });
        let mut bytes = line.to_string().into_bytes();
        bytes.push(b'\n');
        bytes
    }

    /// Writes the request line once, with the caller now known. An error
    /// means no device recorded it, and the call must not act.
    pub async fn request(&self, who: Who, salt: Option<&SecretKey>) -> Result<(), AuditError> {
        let mut progress = self.progress.lock().await;
        if progress.request_written {
            return Ok(());
        }
        let line = self.line("request", &who, None, render(&self.fields, salt));
        self.auditor.write(line).await?;
        progress.request_written = true;
        progress.who = who;
        Ok(())
    }

    /// Writes the response line (and the request line first if the call
    /// failed before it was written). A failure is logged: the call has
    /// already acted or failed, and its answer is not changed.
    pub async fn response(
        &self,
        outcome: Result<&[(&'static str, Field)], &str>,
        salt: Option<&SecretKey>,
    ) {
        if let Err(e) = self.request(Who::default(), salt).await {
            tracing::error!(error = %e, operation = self.operation, "audit request line lost");
        }
        let who = self.progress.lock().await.who.clone();
        let line = match outcome {
            Ok(fields) => self.line("response", &who, None, render(fields, salt)),
            Err(error) => self.line("response", &who, Some(error), Value::Object(Map::new())),
        };
        if let Err(e) = self.auditor.write(line).await {
            tracing::error!(error = %e, operation = self.operation, "audit response line lost");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_hmaced_or_left_out() {
        let salt = SecretKey::from_slice(&[7u8; 32]).unwrap();
        let fields = [
            ("path", Field::Plain(Value::String("app/db".into()))),
            (
                "plaintext",
                Field::Secret(Zeroizing::new(b"hunter2".to_vec())),
            ),
            (
                "data",
                Field::SecretMap(BTreeMap::from([(
                    "password".to_string(),
                    Zeroizing::new("hunter2".to_string()),
                )])),
            ),
        ];
        let unsealed = render(&fields, Some(&salt)).to_string();
        assert!(!unsealed.contains("hunter2"), "{unsealed}");
        assert!(unsealed.contains(&hmac(&salt, b"hunter2")), "{unsealed}");
        assert!(unsealed.contains("\"password\""), "{unsealed}");
        let sealed = render(&fields, None).to_string();
        assert_eq!(sealed, r#"{"path":"app/db"}"#);
        assert_ne!(hmac(&salt, b"a"), hmac(&salt, b"b"));
        assert!(hmac(&salt, b"a").starts_with("hmac-sha256:"));
    }
}
