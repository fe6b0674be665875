//! The daemon's configuration: an HCL file, with `STRONGROOM_*` environment
//! variables overriding its top-level keys.
//!
//! Every setting remembers where it came from ([`Source`]) so the log can say
//! so, and every error names the file, the line and the key. The blocks'
//! types: [`listener`], [`seal`], [`settings`]; reading the file: [`parse`];
//! the overrides: [`env`]; what a SIGHUP reload cannot apply: [`reload`].

mod env;
mod error;
mod listener;
mod migrate;
mod multiseal;
mod parse;
mod postgres;
mod reload;
mod seal;
mod settings;
mod telemetry;

use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use env::{AWSKMS_ENDPOINT, AWSKMS_KEY_ID, apply_env, check_seal_env_names, reads_variable};
pub use error::{ConfigError, ConfigErrors, Location, SHOWN_ERRORS};
pub use listener::{
    DEFAULT_MAX_REQUEST_SIZE, IdentityRule, IdentitySelector, Listener, TcpListener, TlsFiles,
    UnixListener,
};
pub use migrate::{MigrateConfig, load_migrate};
pub use multiseal::{
    EmergencySeal, MAX_KMS_SEALS, MAX_SEAL_NAME, Multiseal, NamedSeal, check_seal_name, env_suffix,
};
pub use parse::{parse, parse_duration};
pub use postgres::{
    ConnectionUrl, DEFAULT_PG_HA_LEASE_TTL, DEFAULT_PG_HA_TABLE, DEFAULT_PG_MAX_PARALLEL,
    DEFAULT_PG_TABLE, MAX_PG_MAX_PARALLEL, PG_CONNECTION_URL, PG_HA_LEASE_TTL_RANGE,
    PostgresConfig, SslMode, with_causes,
};
pub use seal::{
    AwsCredentialSettings, AwsKmsSeal, DEFAULT_HEALTH_CHECK_INTERVAL, DEFAULT_KMS_TIMEOUT,
    KMS_TIMEOUT_RANGE, MIN_HEALTH_CHECK_INTERVAL, check_endpoint, check_region,
};
pub use settings::{
    AuditDevice, BarrierConfig, DEFAULT_KV_MAX_VALUE_SIZE, DEFAULT_KV_MAX_VERSIONS,
    DEFAULT_STORAGE_CACHE_SIZE, FileUse, KvSettings, LogFormat, LogLevel, MAX_KV_VERSIONS,
    MAX_ROTATION_ENCRYPTIONS, MIN_ROTATION_INTERVAL, NamedFile, StorageConfig,
};
pub use telemetry::{DEFAULT_PROMETHEUS_RETENTION, Telemetry};

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
    /// An environment variable (a seal's own, as `…_KEY_ID_OSAKA`, is built
    /// from its name).
    Env(Cow<'static, str>),
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

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file it was read from; `None` for `--dev`.
    pub file: Option<PathBuf>,
    /// Name shown by Status; when unset, the name recorded at init.
    pub cluster_name: Setting<Option<String>>,
    /// Skip `mlockall` (key material may then reach swap).
    pub disable_mlock: Setting<bool>,
    /// With HA: the address clients are sent to when this node is active
    /// (`http://` or `https://`, host and port).
    pub api_addr: Setting<Option<String>>,
    /// With HA: the address other nodes reach this node at.
    pub cluster_addr: Setting<Option<String>>,
    /// Log verbosity.
    pub log_level: Setting<LogLevel>,
    /// Log format.
    pub log_format: Setting<LogFormat>,
    /// The storage backend.
    pub storage: Setting<StorageConfig>,
    /// At least one listener.
    pub listeners: Vec<Listener>,
    /// The `awskms` seal in use; `None` is the Shamir seal (or, with
    /// [`Self::multiseal`], every seal is there).
    pub seal: Option<AwsKmsSeal>,
    /// A seal block marked `disabled = true`: the seal a migration leaves.
    pub disabled_seal: Option<AwsKmsSeal>,
    /// With `enable_multiseal = true`: every seal block; then `seal` and
    /// `disabled_seal` are `None`.
    pub multiseal: Option<Multiseal>,
    /// Keyring rotation policy.
    pub barrier: BarrierConfig,
    /// Versioned secrets.
    pub kv: KvSettings,
    /// Audit devices; none: no audit log.
    pub audit: Vec<AuditDevice>,
    /// What `sys/metrics` serves (the top-level `telemetry` block; `--dev`
    /// serves it, as Vault's dev server does).
    pub telemetry: Telemetry,
    /// Every file the config names, to check before anything is touched.
    pub files: Vec<NamedFile>,
    /// What was accepted but deserves a word in the log (Vault keys that
    /// strongroom ignores, a region AWS does not list).
    pub warnings: Vec<ConfigError>,
}

impl Config {
    /// The `--dev` configuration: in-memory storage, one plaintext loopback
    /// listener, no mlock (a developer laptop rarely grants CAP_IPC_LOCK).
    pub fn dev(address: SocketAddr) -> Self {
        Self {
            file: None,
            cluster_name: Setting::default_value(None),
            api_addr: Setting::default_value(None),
            cluster_addr: Setting::default_value(None),
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
                allow_init: true,
                unauthenticated_metrics_access: false,
                line: 0,
            })],
            seal: None,
            disabled_seal: None,
            multiseal: None,
            barrier: BarrierConfig::default(),
            kv: KvSettings::default(),
            audit: Vec::new(),
            telemetry: Telemetry::default(),
            files: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

/// Reads `path`, then applies the `STRONGROOM_*` overrides from `env`.
pub fn load(path: &Path, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
    let source = read_source(path)?;
    let mut config = parse(&source, path)?;
    apply_env(&mut config, env)?;
    // A lookup cannot list names: a seal's variable with a mistyped name
    // is found among the process's own.
    let names = std::env::vars_os().filter_map(|(name, _)| name.into_string().ok());
    check_seal_env_names(&config, names)?;
    Ok(config)
}

/// The text of the config file at `path`, which must be UTF-8.
fn read_source(path: &Path) -> Result<String, ConfigErrors> {
    let error = |line, key: &str, message| {
        ConfigErrors(vec![ConfigError {
            location: Location::File {
                path: path.to_path_buf(),
                line,
            },
            key: key.into(),
            message,
        }])
    };
    let bytes = std::fs::read(path)
        .map_err(|e| error(0, "file", format!("cannot read the config file: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        let (line, key) = parse::locate_invalid_utf8(e.as_bytes(), e.utf8_error().valid_up_to());
        error(
            line,
            &key,
            "is not valid UTF-8 on this line (save the file as UTF-8)".into(),
        )
    })
}

/// Booleans as Vault's parser takes them: `true`/`false`, `1`/`0`, `t`/`f`, any case.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "1" => Some(true),
        "false" | "f" | "0" => Some(false),
        _ => None,
    }
}

impl Config {
    /// With HA: the address this node advertises to clients when active:
    /// `api_addr`, or else the first TCP listener's (`https://` with TLS),
    /// which must not be a wildcard address. `Ok(None)` without HA.
    pub fn advertised_api_addr(&self) -> Result<Option<String>, String> {
        let StorageConfig::Postgresql(pg) = &self.storage.value else {
            return Ok(None);
        };
        if !pg.ha_enabled {
            return Ok(None);
        }
        if let Some(address) = &self.api_addr.value {
            return Ok(Some(address.clone()));
        }
        let tcp = self.listeners.iter().find_map(|l| match l {
            Listener::Tcp(tcp) => Some(tcp),
            Listener::Unix(_) => None,
        });
        match tcp {
            Some(tcp) if !tcp.address.ip().is_unspecified() && tcp.address.port() != 0 => {
                let scheme = if tcp.tls.is_some() { "https" } else { "http" };
                Ok(Some(format!("{scheme}://{}", tcp.address)))
            }
            _ => Err("is required with storage.postgresql.ha_enabled unless the first tcp listener has a fixed address and port that other hosts reach (clients are sent to it when this node is active); set it, such as api_addr = \"https://10.0.0.5:8400\"".into()),
        }
    }
}

/// With HA, `cluster_addr` is where the other nodes forward calls to this
/// one over mutual TLS, so it must be an `https://` address.
pub fn check_cluster_addr(address: &str) -> Result<(), String> {
    if address.starts_with("https://") {
        return Ok(());
    }
    Err(format!(
        "must be an https:// address with storage.postgresql.ha_enabled (the nodes forward calls to each other over mutual TLS on it), such as https://10.0.0.5:8201; got {}",
        crate::text::quote(address)
    ))
}

/// Whether `storage` runs with HA.
fn ha_enabled(storage: &StorageConfig) -> bool {
    matches!(storage, StorageConfig::Postgresql(pg) if pg.ha_enabled)
}

/// An `api_addr` or `cluster_addr` as Vault takes them: `http://` or
/// `https://`, a host, and a port, nothing after. The sentence says what
/// is wrong.
pub fn check_node_address(address: &str) -> Result<(), String> {
    let rest = address
        .strip_prefix("https://")
        .or_else(|| address.strip_prefix("http://"))
        .ok_or_else(|| {
            format!(
                "must start with https:// or http://, such as https://10.0.0.5:8400; got {}",
                crate::text::quote(address)
            )
        })?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let bad = || {
        format!(
            "must be a host and a port after the scheme, such as https://10.0.0.5:8400 or https://[fd00::5]:8400; got {}",
            crate::text::quote(address)
        )
    };
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    let port_ok = !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|p| p != 0);
    // An IPv6 address is bracketed; a name or IPv4 address has no colon.
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        }
    };
    if port_ok && host_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn node_addresses_are_a_scheme_a_host_and_a_port() {
        for good in [
            "https://10.0.0.5:8400",
            "http://node-1.example.org:8400/",
            "https://[fd00::5]:8401",
        ] {
            assert!(super::check_node_address(good).is_ok(), "{good}");
        }
        for bad in [
            "10.0.0.5:8400",
            "https://10.0.0.5",
            "https://10.0.0.5:+80",
            "https://10.0.0.5:0",
            "https://fd00::5:8401",
            "https://no de:8400",
            "https://:8400",
            "https://a:8400/path",
        ] {
            assert!(super::check_node_address(bad).is_err(), "{bad}");
        }
    }
    use super::*;

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
