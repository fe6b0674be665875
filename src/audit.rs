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

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;
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

enum Device {
    File { path: PathBuf, file: Mutex<File> },
    Stdout,
}

impl Device {
    fn write(&self, line: &[u8]) -> std::io::Result<()> {
        match self {
            // One write(2) of the whole line on an O_APPEND file: lines from
            // concurrent calls never interleave.
            Device::File { file, .. } => file
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .write_all(line),
            Device::Stdout => std::io::stdout().lock().write_all(line),
        }
    }

    fn name(&self) -> String {
        match self {
            Device::File { path, .. } => format!("file {}", path.display()),
            Device::Stdout => "stdout".into(),
        }
    }
}

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
    /// Opens every device of the config.
    pub fn open(devices: &[AuditDevice]) -> Result<Self, AuditError> {
        let devices = devices
            .iter()
            .map(|device| match device {
                AuditDevice::File { path } => Ok(Device::File {
                    path: path.clone(),
                    file: Mutex::new(open_file(path)?),
                }),
                AuditDevice::Stdout => Ok(Device::Stdout),
            })
            .collect::<Result<_, AuditError>>()?;
        Ok(Self { devices })
    }

    /// True when at least one device is configured.
    pub fn enabled(&self) -> bool {
        !self.devices.is_empty()
    }

    /// Reopens file devices (SIGHUP, after logrotate moved the file).
    pub fn reopen(&self) {
        for device in &self.devices {
            if let Device::File { path, file } = device {
                match open_file(path) {
                    Ok(new) => *file.lock().unwrap_or_else(|p| p.into_inner()) = new,
                    Err(e) => {
                        tracing::error!(error = %e, "SIGHUP: the audit file was not reopened; lines go to the old file")
                    }
                }
            }
        }
    }

    /// Writes `line` to every device; succeeds if at least one took it.
    fn write(&self, line: &[u8]) -> Result<(), AuditError> {
        let mut failures = Vec::new();
        for device in &self.devices {
            if let Err(e) = device.write(line) {
                tracing::error!(device = %device.name(), error = %e, "an audit device failed");
                failures.push(format!("{}: {e}", device.name()));
            }
        }
        if failures.len() == self.devices.len() {
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

    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
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
    pub fn request(&self, who: Who, salt: Option<&SecretKey>) -> Result<(), AuditError> {
        let mut progress = self.progress();
        if progress.request_written {
            return Ok(());
        }
        let line = self.line("request", &who, None, render(&self.fields, salt));
        self.auditor.write(&line)?;
        progress.request_written = true;
        progress.who = who;
        Ok(())
    }

    /// Writes the response line (and the request line first if the call
    /// failed before it was written). A failure is logged: the call has
    /// already acted or failed, and its answer is not changed.
    pub fn response(
        &self,
        outcome: Result<&[(&'static str, Field)], &str>,
        salt: Option<&SecretKey>,
    ) {
        let written = self.progress().request_written;
        if !written && let Err(e) = self.request(Who::default(), salt) {
            tracing::error!(error = %e, operation = self.operation, "audit request line lost");
        }
        let who = self.progress().who.clone();
        let line = match outcome {
            Ok(fields) => self.line("response", &who, None, render(fields, salt)),
            Err(error) => self.line("response", &who, Some(error), Value::Object(Map::new())),
        };
        if let Err(e) = self.auditor.write(&line) {
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
