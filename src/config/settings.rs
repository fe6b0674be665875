//! The daemon-wide settings: logging, storage, the barrier's rotation
//! policy, versioned secrets, audit devices.

use std::path::PathBuf;
use std::time::Duration;

/// The log verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Everything.
    Trace,
    /// Diagnostics.
    Debug,
    /// Normal operation (the default).
    Info,
    /// Problems that do not stop the daemon.
    Warn,
    /// Failures.
    Error,
}

impl LogLevel {
    /// Parses Vault's spellings too (`warning`, `err`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "trace" => Self::Trace,
            "debug" => Self::Debug,
            "info" => Self::Info,
            "warn" | "warning" => Self::Warn,
            "error" | "err" => Self::Error,
            _ => return None,
        })
    }

    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// Parses `text` or `json`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "text" | "standard" => Some(Self::Text),
            "json" => Some(Self::Json),
            _ => None,
        }
    }

    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
        }
    }
}

/// The page cache of the file backend by default: enough for the working
/// set of a store of some 100k secrets, small next to redb's own 1 GiB.
pub const DEFAULT_STORAGE_CACHE_SIZE: usize = 32 * 1024 * 1024;

/// Which storage backend to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageConfig {
    /// The embedded store in a directory (absolute once loaded).
    File {
        /// The data directory.
        path: PathBuf,
        /// The most memory redb keeps for cached pages, in bytes.
        cache_size: usize,
    },
    /// Memory only; lost at exit.
    Inmem,
    /// A PostgreSQL database.
    Postgresql(super::PostgresConfig),
}

impl StorageConfig {
    /// The backend's name.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::File { .. } => "file",
            Self::Inmem => "inmem",
            Self::Postgresql(_) => "postgresql",
        }
    }
}

/// The most encryptions per keyring term that may be configured, and the
/// default: 90 % of 2^32, the bound for AES-GCM with random 96-bit nonces
/// (Vault's default too).
pub const MAX_ROTATION_ENCRYPTIONS: u64 = 3_865_470_566;
/// The shortest automatic rotation interval (Vault's minimum).
pub const MIN_ROTATION_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// The most versions per path `kv { max_versions }` accepts.
pub const MAX_KV_VERSIONS: u32 = 10_000;
/// Versions kept per path by default (Vault's default).
pub const DEFAULT_KV_MAX_VERSIONS: u32 = 10;
/// The largest value of one field by default, in bytes.
pub const DEFAULT_KV_MAX_VALUE_SIZE: usize = 1024 * 1024;

/// The `kv` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvSettings {
    /// Versions kept per path; older ones are removed by the write that
    /// goes past the limit.
    pub max_versions: u32,
    /// The largest value of one field, in bytes.
    pub max_value_size: usize,
}

impl Default for KvSettings {
    fn default() -> Self {
        Self {
            max_versions: DEFAULT_KV_MAX_VERSIONS,
            max_value_size: DEFAULT_KV_MAX_VALUE_SIZE,
        }
    }
}

/// An `audit` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditDevice {
    /// `audit "file" { path = "…" }`: JSON lines appended to a file (0600),
    /// reopened on SIGHUP.
    File {
        /// The file (absolute once loaded).
        path: PathBuf,
    },
    /// `audit "stdout" {}`: JSON lines on standard output (the journal
    /// under systemd).
    Stdout,
}

/// The `barrier` block: when the keyring starts a new term by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BarrierConfig {
    /// Rotate after this many encryptions under one term.
    pub rotation_max_encryptions: u64,
    /// Rotate when the active term is this old; `None`: never by age.
    pub rotation_interval: Option<Duration>,
    /// Line of the block, for messages (0: not in the file).
    pub line: usize,
}

impl Default for BarrierConfig {
    fn default() -> Self {
        Self {
            rotation_max_encryptions: MAX_ROTATION_ENCRYPTIONS,
            rotation_interval: None,
            line: 0,
        }
    }
}

/// How the daemon will use a file the config names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileUse {
    /// Read (certificates, keys, CA bundles, credentials).
    Read,
    /// Appended to, created when missing (audit files).
    Append,
}

/// A file the config names, with the key and line that name it, so it can
/// be checked before the daemon touches anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedFile {
    /// The file (absolute).
    pub path: PathBuf,
    /// The qualified key, such as `listener.tcp.tls_cert_file`.
    pub key: String,
    /// The line of the key.
    pub line: usize,
    /// Read or appended to.
    pub usage: FileUse,
}
