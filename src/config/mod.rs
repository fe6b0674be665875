//! The daemon's configuration: an HCL file, with `STRONGROOM_*` environment
//! variables overriding its top-level keys.
//!
//! Every setting remembers where it came from ([`Source`]) so the log can say
//! so, and every error names the file, the line and the key.

mod parse;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use parse::{parse, parse_duration};

use crate::secret::SecretString;

/// Default and documented limit on one gRPC request.
pub const DEFAULT_MAX_REQUEST_SIZE: usize = 4 * 1024 * 1024;

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Not set anywhere; the built-in default.
    Default,
    /// The config file, at this line.
    File {
        /// One-based line number.
        line: usize,
    },
    /// An environment variable.
    Env(&'static str),
    /// A command-line flag such as `--dev`.
    Flag(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File { line } => write!(f, "config file line {line}"),
            Source::Env(var) => write!(f, "environment variable {var}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// A value with its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T> {
    /// The effective value.
    pub value: T,
    /// Where it came from.
    pub source: Source,
}

impl<T> Setting<T> {
    /// A built-in default.
    pub fn default_value(value: T) -> Self {
        Self {
            value,
            source: Source::Default,
        }
    }
}

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

/// Which storage backend to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageConfig {
    /// The embedded store in a directory (absolute once loaded).
    File {
        /// The data directory.
        path: PathBuf,
    },
    /// Memory only; lost at exit.
    Inmem,
}

impl StorageConfig {
    /// The backend's name.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::File { .. } => "file",
            Self::Inmem => "inmem",
        }
    }
}

/// Certificate files of a TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// PEM bundle of CAs whose client certificates are accepted; turns on mutual TLS.
    pub client_ca: Option<PathBuf>,
}

/// What an `identity` block matches on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySelector {
    /// A unix peer whose SO_PEERCRED uid is this.
    Uid(u32),
    /// A unix peer whose SO_PEERCRED (primary) gid is this.
    Gid(u32),
    /// A client certificate with this URI or DNS subject alternative name.
    CertSan(String),
    /// A client certificate whose subject common name is this.
    CertCn(String),
}

impl IdentitySelector {
    /// How the identity is named in logs, errors and audit lines.
    pub fn label(&self) -> String {
        match self {
            Self::Uid(uid) => format!("unix:uid={uid}"),
            Self::Gid(gid) => format!("unix:gid={gid}"),
            Self::CertSan(san) => format!("tls:san={san}"),
            Self::CertCn(cn) => format!("tls:cn={cn}"),
        }
    }
}

/// An `identity` block inside a listener: callers it recognises get its
/// policies without a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRule {
    /// What it matches.
    pub selector: IdentitySelector,
    /// The policies it grants.
    pub policies: Vec<String>,
    /// Line of the block, for messages.
    pub line: usize,
}

/// A `listener "tcp"` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpListener {
    /// Address to bind.
    pub address: SocketAddr,
    /// TLS certificate files; `None` serves plaintext (loopback, or `tls_disable = true`).
    pub tls: Option<TlsFiles>,
    /// Largest accepted request, in bytes.
    pub max_request_size: usize,
    /// Client certificates mapped to policies (mutual TLS only).
    pub identities: Vec<IdentityRule>,
    /// Line of the block, for messages.
    pub line: usize,
}

/// A `listener "unix"` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixListener {
    /// Socket path (absolute once loaded).
    pub path: PathBuf,
    /// Permission bits for the socket file.
    pub mode: Option<u32>,
    /// Owner of the socket file (numeric uid, resolved when loading).
    pub uid: Option<u32>,
    /// Group of the socket file (numeric gid, resolved when loading).
    pub gid: Option<u32>,
    /// Largest accepted request, in bytes.
    pub max_request_size: usize,
    /// Peer uids and gids mapped to policies.
    pub identities: Vec<IdentityRule>,
    /// Line of the block, for messages.
    pub line: usize,
}

/// One listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listener {
    /// gRPC over TCP, with or without TLS.
    Tcp(TcpListener),
    /// gRPC over a unix socket, for sidecars on the host.
    Unix(UnixListener),
}

impl Listener {
    /// Largest accepted request, in bytes.
    pub fn max_request_size(&self) -> usize {
        match self {
            Self::Tcp(l) => l.max_request_size,
            Self::Unix(l) => l.max_request_size,
        }
    }

    /// The identity blocks of this listener.
    pub fn identities(&self) -> &[IdentityRule] {
        match self {
            Self::Tcp(l) => &l.identities,
            Self::Unix(l) => &l.identities,
        }
    }
}

/// How often the `awskms` seal checks its key's state while unsealed, by default.
pub const DEFAULT_HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(600);
/// The shortest health check interval accepted (other than zero, which turns
/// the checks off): each check is a KMS request.
pub const MIN_HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Checks a KMS endpoint URL, from the file or `STRONGROOM_AWSKMS_ENDPOINT`.
pub fn check_endpoint(value: &str) -> Result<(), String> {
    if value.starts_with("https://") || value.starts_with("http://") {
        Ok(())
    } else {
        Err(format!(
            "expected a URL starting with https:// (or http:// for a local KMS), got {value:?}"
        ))
    }
}

/// Credentials and role settings of a `seal "awskms"` block. Everything left
/// unset falls back to the standard AWS chain. `Debug` leaves the secrets out.
#[derive(Clone, Default)]
pub struct AwsCredentialSettings {
    /// Static access key id.
    pub access_key: Option<String>,
    /// Static secret access key.
    pub secret_key: Option<SecretString>,
    /// Session token that goes with temporary static keys.
    pub session_token: Option<SecretString>,
    /// A shared credentials file other than `~/.aws/credentials`.
    pub shared_creds_filename: Option<PathBuf>,
    /// The profile to read from the shared files.
    pub shared_creds_profile: Option<String>,
    /// A role to assume (with web identity when a token file is set).
    pub role_arn: Option<String>,
    /// The web identity token file (IRSA and the like), with `role_arn`.
    pub web_identity_token_file: Option<PathBuf>,
    /// Session name for the assumed role.
    pub role_session_name: Option<String>,
}

impl fmt::Debug for AwsCredentialSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentialSettings")
            .field("access_key", &self.access_key)
            .field(
                "secret_key",
                &self.secret_key.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("shared_creds_filename", &self.shared_creds_filename)
            .field("shared_creds_profile", &self.shared_creds_profile)
            .field("role_arn", &self.role_arn)
            .field("web_identity_token_file", &self.web_identity_token_file)
            .field("role_session_name", &self.role_session_name)
            .finish()
    }
}

impl PartialEq for AwsCredentialSettings {
    fn eq(&self, other: &Self) -> bool {
        let secret = |a: &Option<SecretString>, b: &Option<SecretString>| match (a, b) {
            (Some(a), Some(b)) => {
                crate::secret::ct_eq(a.expose().as_bytes(), b.expose().as_bytes())
            }
            (None, None) => true,
            _ => false,
        };
        self.access_key == other.access_key
            && secret(&self.secret_key, &other.secret_key)
            && secret(&self.session_token, &other.session_token)
            && self.shared_creds_filename == other.shared_creds_filename
            && self.shared_creds_profile == other.shared_creds_profile
            && self.role_arn == other.role_arn
            && self.web_identity_token_file == other.web_identity_token_file
            && self.role_session_name == other.role_session_name
    }
}

impl Eq for AwsCredentialSettings {}

/// A `seal "awskms"` block: the root key is wrapped by this KMS key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsKmsSeal {
    /// Key id, key ARN or `alias/…`.
    pub kms_key_id: Setting<String>,
    /// Region; `None` leaves it to `AWS_REGION` and the rest of the AWS chain.
    pub region: Option<Setting<String>>,
    /// Endpoint URL; `None` leaves it to `AWS_ENDPOINT_URL_KMS` or AWS's default.
    pub endpoint: Option<Setting<String>>,
    /// Credentials; unset parts come from the AWS chain.
    pub credentials: AwsCredentialSettings,
    /// How often to check the key's state while unsealed; zero turns it off.
    pub health_check_interval: Duration,
    /// Line of the block, for messages.
    pub line: usize,
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

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file it was read from; `None` for `--dev`.
    pub file: Option<PathBuf>,
    /// Name shown by Status; when unset, the name recorded at init.
    pub cluster_name: Setting<Option<String>>,
    /// Skip `mlockall` (key material may then reach swap).
    pub disable_mlock: Setting<bool>,
    /// Log verbosity.
    pub log_level: Setting<LogLevel>,
    /// Log format.
    pub log_format: Setting<LogFormat>,
    /// The storage backend.
    pub storage: Setting<StorageConfig>,
    /// At least one listener.
    pub listeners: Vec<Listener>,
    /// The `awskms` seal in use; `None` is the Shamir seal.
    pub seal: Option<AwsKmsSeal>,
    /// A seal block marked `disabled = true`: the seal a migration leaves.
    pub disabled_seal: Option<AwsKmsSeal>,
    /// Keyring rotation policy.
    pub barrier: BarrierConfig,
    /// Versioned secrets.
    pub kv: KvSettings,
    /// Audit devices; none: no audit log.
    pub audit: Vec<AuditDevice>,
}

impl Config {
    /// The `--dev` configuration: in-memory storage, one plaintext loopback
    /// listener, no mlock (a developer laptop rarely grants CAP_IPC_LOCK).
    pub fn dev(address: SocketAddr) -> Self {
        Self {
            file: None,
            cluster_name: Setting::default_value(None),
            disable_mlock: Setting {
                value: true,
                source: Source::Flag("--dev"),
            },
            log_level: Setting::default_value(LogLevel::Info),
            log_format: Setting::default_value(LogFormat::Text),
            storage: Setting {
                value: StorageConfig::Inmem,
                source: Source::Flag("--dev"),
            },
            listeners: vec![Listener::Tcp(TcpListener {
                address,
                tls: None,
                max_request_size: DEFAULT_MAX_REQUEST_SIZE,
                identities: Vec::new(),
                line: 0,
            })],
            seal: None,
            disabled_seal: None,
            barrier: BarrierConfig::default(),
            kv: KvSettings::default(),
            audit: Vec::new(),
        }
    }
}

impl Config {
    /// The settings that differ between `self` (running) and `new` (re-read on
    /// SIGHUP) and that only a restart applies. The log level and the TLS
    /// certificate files are reloaded in place, so they are not listed.
    pub fn restart_needed(&self, new: &Config) -> Vec<&'static str> {
        // A listener as a restart sees it: TLS on or off, not which files.
        fn shape(listeners: &[Listener]) -> Vec<Listener> {
            let unlined = |rules: &[IdentityRule]| {
                rules
                    .iter()
                    .map(|r| IdentityRule {
                        line: 0,
                        ..r.clone()
                    })
                    .collect()
            };
            listeners
                .iter()
                .map(|listener| match listener {
                    Listener::Tcp(tcp) => Listener::Tcp(TcpListener {
                        tls: tcp.tls.as_ref().map(|_| TlsFiles {
                            cert: PathBuf::new(),
                            key: PathBuf::new(),
                            client_ca: None,
                        }),
                        identities: unlined(&tcp.identities),
                        line: 0,
                        ..tcp.clone()
                    }),
                    Listener::Unix(unix) => Listener::Unix(UnixListener {
                        identities: unlined(&unix.identities),
                        line: 0,
                        ..unix.clone()
                    }),
                })
                .collect()
        }
        // Where a block stands in the file is not a setting.
        let block = |seal: &Option<AwsKmsSeal>| seal.clone().map(|s| AwsKmsSeal { line: 0, ..s });
        let barrier = |c: &Config| BarrierConfig {
            line: 0,
            ..c.barrier.clone()
        };
        let mut changed = Vec::new();
        for (name, differs) in [
            (
                "cluster_name",
                self.cluster_name.value != new.cluster_name.value,
            ),
            (
                "disable_mlock",
                self.disable_mlock.value != new.disable_mlock.value,
            ),
            ("log_format", self.log_format.value != new.log_format.value),
            ("storage", self.storage.value != new.storage.value),
            ("listener", shape(&self.listeners) != shape(&new.listeners)),
            ("seal", block(&self.seal) != block(&new.seal)),
            (
                "seal (disabled)",
                block(&self.disabled_seal) != block(&new.disabled_seal),
            ),
            ("barrier", barrier(self) != barrier(new)),
            ("kv", self.kv != new.kv),
            ("audit", self.audit != new.audit),
        ] {
            if differs {
                changed.push(name);
            }
        }
        changed
    }
}

/// Where a config error is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A line of a file.
    File {
        /// The file.
        path: PathBuf,
        /// One-based line.
        line: usize,
    },
    /// An environment variable.
    Env(&'static str),
}

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where it is.
    pub location: Location,
    /// The key (`listener.tcp.address`), or the block.
    pub key: String,
    /// What is wrong, as one sentence.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Location::File { path, line: 0 } => write!(f, "{}: {}", path.display(), self.message),
            Location::File { path, line } => {
                write!(
                    f,
                    "{}:{line}: {}: {}",
                    path.display(),
                    self.key,
                    self.message
                )
            }
            Location::Env(var) => write!(f, "{var}: {}", self.message),
        }
    }
}

/// Every problem found, so an operator fixes them in one pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// Reads `path`, then applies the `STRONGROOM_*` overrides from `env`.
pub fn load(path: &Path, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
    let source = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            location: Location::File {
                path: path.to_path_buf(),
                line: 0,
            },
            key: "file".into(),
            message: format!("cannot read the config file: {e}"),
        }])
    })?;
    let mut config = parse(&source, path)?;
    apply_env(&mut config, env)?;
    Ok(config)
}

/// Applies `STRONGROOM_CLUSTER_NAME`, `STRONGROOM_DISABLE_MLOCK`,
/// `STRONGROOM_LOG_LEVEL`, `STRONGROOM_LOG_FORMAT`, and for the `awskms`
/// seal `STRONGROOM_AWSKMS_KEY_ID` and `STRONGROOM_AWSKMS_ENDPOINT`.
pub fn apply_env(
    config: &mut Config,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(), ConfigErrors> {
    let mut errors = Vec::new();
    let mut bad = |var: &'static str, message: String| {
        errors.push(ConfigError {
            location: Location::Env(var),
            key: var.into(),
            message,
        })
    };

    const CLUSTER_NAME: &str = "STRONGROOM_CLUSTER_NAME";
    if let Some(value) = env(CLUSTER_NAME) {
        if value.trim().is_empty() {
            bad(CLUSTER_NAME, "is set but empty".into());
        } else {
            config.cluster_name = Setting {
                value: Some(value),
                source: Source::Env(CLUSTER_NAME),
            };
        }
    }
    const DISABLE_MLOCK: &str = "STRONGROOM_DISABLE_MLOCK";
    if let Some(value) = env(DISABLE_MLOCK) {
        match parse_bool(&value) {
            Some(b) => {
                config.disable_mlock = Setting {
                    value: b,
                    source: Source::Env(DISABLE_MLOCK),
                }
            }
            None => bad(
                DISABLE_MLOCK,
                format!("expected true or false, got {value:?}"),
            ),
        }
    }
    const LOG_LEVEL: &str = "STRONGROOM_LOG_LEVEL";
    if let Some(value) = env(LOG_LEVEL) {
        match LogLevel::parse(&value) {
            Some(level) => {
                config.log_level = Setting {
                    value: level,
                    source: Source::Env(LOG_LEVEL),
                }
            }
            None => bad(
                LOG_LEVEL,
                format!("expected one of trace, debug, info, warn, error; got {value:?}"),
            ),
        }
    }
    const LOG_FORMAT: &str = "STRONGROOM_LOG_FORMAT";
    if let Some(value) = env(LOG_FORMAT) {
        match LogFormat::parse(&value) {
            Some(format) => {
                config.log_format = Setting {
                    value: format,
                    source: Source::Env(LOG_FORMAT),
                }
            }
            None => bad(LOG_FORMAT, format!("expected text or json, got {value:?}")),
        }
    }
    for (var, setting) in [(AWSKMS_KEY_ID, true), (AWSKMS_ENDPOINT, false)] {
        let Some(value) = env(var) else { continue };
        let Some(seal) = config.seal.as_mut() else {
            bad(
                var,
                "is set, but the config has no seal \"awskms\" block in use (a block with disabled = true is not overridden)".into(),
            );
            continue;
        };
        if value.trim().is_empty() {
            bad(var, "is set but empty".into());
            continue;
        }
        if !setting && let Err(message) = check_endpoint(&value) {
            bad(var, message);
            continue;
        }
        let value = Setting {
            value,
            source: Source::Env(var),
        };
        if setting {
            seal.kms_key_id = value;
        } else {
            seal.endpoint = Some(value);
        }
    }
    // A disabled seal needs no key id: Decrypt names no key.
    if let (Some(seal), Some(file)) = (&config.seal, &config.file)
        && seal.kms_key_id.value.is_empty()
    {
        errors.push(ConfigError {
            location: Location::File {
                path: file.clone(),
                line: seal.line,
            },
            key: "seal.awskms.kms_key_id".into(),
            message: format!(
                "is required: the KMS key (id, ARN or alias/…) that wraps the root key, here or in {AWSKMS_KEY_ID}"
            ),
        });
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Overrides `kms_key_id` of the `awskms` seal.
pub const AWSKMS_KEY_ID: &str = "STRONGROOM_AWSKMS_KEY_ID";
/// Overrides `endpoint` of the `awskms` seal.
pub const AWSKMS_ENDPOINT: &str = "STRONGROOM_AWSKMS_ENDPOINT";

/// Booleans as Vault's parser takes them: `true`/`false`, `1`/`0`, `t`/`f`, any case.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "1" => Some(true),
        "false" | "f" | "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Config {
        parse(
            "storage \"inmem\" {}\nlistener \"tcp\" { address = \"127.0.0.1:0\" }\n",
            Path::new("t.hcl"),
        )
        .unwrap()
    }

    #[test]
    fn env_overrides_top_level_keys_and_records_the_source() {
        let mut config = base();
        apply_env(&mut config, |var| match var {
            "STRONGROOM_LOG_LEVEL" => Some("debug".into()),
            "STRONGROOM_DISABLE_MLOCK" => Some("1".into()),
            "STRONGROOM_CLUSTER_NAME" => Some("prod".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(config.log_level.value, LogLevel::Debug);
        assert_eq!(config.log_level.source, Source::Env("STRONGROOM_LOG_LEVEL"));
        assert!(config.disable_mlock.value);
        assert_eq!(config.cluster_name.value.as_deref(), Some("prod"));
        assert_eq!(config.log_format.source, Source::Default);
    }

    #[test]
    fn bad_env_values_name_the_variable() {
        let mut config = base();
        let errors = apply_env(&mut config, |var| match var {
            "STRONGROOM_LOG_FORMAT" => Some("xml".into()),
            "STRONGROOM_DISABLE_MLOCK" => Some("maybe".into()),
            _ => None,
        })
        .unwrap_err();
        let text = errors.to_string();
        assert!(
            text.contains("STRONGROOM_LOG_FORMAT: expected text or json"),
            "{text}"
        );
        assert!(
            text.contains("STRONGROOM_DISABLE_MLOCK: expected true or false"),
            "{text}"
        );
    }

    fn config_with_seal() -> Config {
        let hcl = "storage \"inmem\" {}\nlistener \"tcp\" { address = \"127.0.0.1:0\" }\nseal \"awskms\" {\n  region = \"eu-west-1\"\n}\n";
        parse(hcl, Path::new("t.hcl")).unwrap()
    }

    #[test]
    fn awskms_env_overrides_win_and_a_key_is_required() {
        let mut config = config_with_seal();
        let errors = apply_env(&mut config.clone(), |_| None).unwrap_err();
        assert!(
            errors
                .to_string()
                .starts_with("t.hcl:3: seal.awskms.kms_key_id: is required"),
            "{errors}"
        );
        apply_env(&mut config, |var| match var {
            AWSKMS_KEY_ID => Some("alias/from-env".into()),
            AWSKMS_ENDPOINT => Some("http://127.0.0.1:9".into()),
            _ => None,
        })
        .unwrap();
        let seal = config.seal.unwrap();
        assert_eq!(seal.kms_key_id.value, "alias/from-env");
        assert_eq!(seal.kms_key_id.source, Source::Env(AWSKMS_KEY_ID));
        assert_eq!(seal.endpoint.unwrap().source, Source::Env(AWSKMS_ENDPOINT));

        let errors = apply_env(&mut base(), |var| {
            (var == AWSKMS_KEY_ID).then(|| "k".to_string())
        })
        .unwrap_err();
        assert!(
            errors
                .to_string()
                .contains("STRONGROOM_AWSKMS_KEY_ID: is set, but the config has no seal"),
            "{errors}"
        );
        let errors = apply_env(&mut config_with_seal(), |var| {
            (var == AWSKMS_ENDPOINT).then(|| "kms.local".to_string())
        })
        .unwrap_err();
        assert!(
            errors
                .to_string()
                .contains("STRONGROOM_AWSKMS_ENDPOINT: expected a URL starting with https://"),
            "{errors}"
        );
        let errors = apply_env(&mut base(), |var| {
            (var == "STRONGROOM_CLUSTER_NAME").then(String::new)
        })
        .unwrap_err();
        assert!(
            errors
                .to_string()
                .contains("STRONGROOM_CLUSTER_NAME: is set but empty"),
            "{errors}"
        );
    }

    #[test]
    fn a_reload_names_what_needs_a_restart() {
        let running = base();
        assert!(running.restart_needed(&running.clone()).is_empty());
        let hcl = "log_level = \"debug\"\nlog_format = \"json\"\n\nstorage \"inmem\" {}\nlistener \"tcp\" { address = \"127.0.0.1:0\" }\nlistener \"unix\" { path = \"/tmp/x.sock\" }\n";
        let new = parse(hcl, Path::new("t.hcl")).unwrap();
        assert_eq!(running.restart_needed(&new), ["log_format", "listener"]);
        let mut rotated = running.clone();
        rotated.barrier.rotation_max_encryptions = 1000;
        assert_eq!(running.restart_needed(&rotated), ["barrier"]);
    }

    #[test]
    fn vault_boolean_forms() {
        for t in ["true", "TRUE", "1", "t"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["false", "0", "F"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        assert_eq!(parse_bool("yes"), None);
    }
}
