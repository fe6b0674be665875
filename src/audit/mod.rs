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
//! A request line that no device could write fails the call before it acts
//! (the gate, `api::gate`, decides when each line is written). Each device
//! writes from its own thread, so one that blocks delays only the calls
//! waiting on it (at most 5 s), never the runtime's workers.

mod device;
mod record;
mod salt;

use std::sync::Arc;

use async_trait::async_trait;

pub use device::{AuditError, Auditor};
pub use record::{Field, Record, Who, hmac};
pub use salt::Salt;

use crate::barrier::{Barrier, Hooks};
use crate::error::Error;
use crate::secret::SecretKey;

/// The audit devices and the salt of the open store.
pub struct Audit {
    auditor: Arc<Auditor>,
    salt: Salt,
}

impl Audit {
    /// Audits to `auditor`'s devices (none: nothing is recorded).
    pub fn new(auditor: Auditor) -> Self {
        Self {
            auditor: Arc::new(auditor),
            salt: Salt::default(),
        }
    }

    /// A new record of a call of `operation` on `path`; `None` without
    /// audit devices.
    pub fn record(&self, operation: &'static str, path: &str) -> Option<Record> {
        self.auditor
            .enabled()
            .then(|| Record::new(Arc::clone(&self.auditor), operation, path.to_string()))
    }

    /// Reopens file devices (SIGHUP, after logrotate moved the file).
    pub fn reopen(&self) {
        self.auditor.reopen();
    }

    /// The salt secret values are HMACed under; `None` while sealed.
    pub async fn salt(&self, barrier: Option<&Barrier>) -> Option<Arc<SecretKey>> {
        self.salt.get(barrier).await
    }

    /// `input`'s HMAC as audit lines write it.
    pub async fn hash(&self, barrier: &Barrier, input: &[u8]) -> Result<String, Error> {
        let salt = self.salt(Some(barrier)).await.ok_or_else(|| {
            Error::Internal("the audit salt could not be read or stored; the log says why".into())
        })?;
        Ok(hmac(&salt, input))
    }
}

#[async_trait]
impl Hooks for Audit {
    fn closed(&self) {
        self.salt.clear();
    }
}
