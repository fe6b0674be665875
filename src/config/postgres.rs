//! The `storage "postgresql"` block: where the database is, and the one
//! secret in the config (the connection URL's password), which is shown
//! only redacted.

use std::fmt;
use std::path::PathBuf;

use super::Source;

/// Table of entries by default: strongroom's own name, so a database that
/// also holds a Vault or OpenBao store (`vault_kv_store`) keeps them apart.
pub const DEFAULT_PG_TABLE: &str = "strongroom_kv_store";
/// Lock table by default (used by the HA slice; reserved now).
pub const DEFAULT_PG_HA_TABLE: &str = "strongroom_ha_locks";
/// Connections in the pool by default (Vault's 128 exhausts servers).
pub const DEFAULT_PG_MAX_PARALLEL: usize = 8;
/// The most connections `max_parallel` accepts.
pub const MAX_PG_MAX_PARALLEL: usize = 1024;
/// `ha_lease_ttl` by default.
pub const DEFAULT_PG_HA_LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(5);
/// The shortest and longest `ha_lease_ttl` accepted: under a second a GC
/// pause or a slow disk deposes the active node; over a minute a lost
/// host keeps the store unavailable that long.
pub const PG_HA_LEASE_TTL_RANGE: std::ops::RangeInclusive<std::time::Duration> =
    std::time::Duration::from_secs(1)..=std::time::Duration::from_secs(60);
/// Overrides `connection_url`.
pub const PG_CONNECTION_URL: &str = "STRONGROOM_PG_CONNECTION_URL";

/// `storage "postgresql"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// Where the database is; `None` only until the environment is read.
    pub connection_url: Option<ConnectionUrl>,
    /// Where `connection_url` came from (the file or the environment).
    pub url_source: Source,
    /// The line of the block, for an error about a missing URL.
    pub line: usize,
    /// Table of entries.
    pub table: String,
    /// Several nodes share the database, one active (docs/HA.md).
    pub ha_enabled: bool,
    /// Table of the HA lease; its sibling `<ha_table>_epoch` is the fence.
    pub ha_table: String,
    /// How long the active node's lease lasts without a renewal, on the
    /// database's clock.
    pub ha_lease_ttl: std::time::Duration,
    /// Connections in the pool.
    pub max_parallel: usize,
    /// Do not create the tables: they must exist. The format row is still
    /// read, and written when absent.
    pub skip_create_table: bool,
}

/// `sslmode` as libpq reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, unverified; else plaintext (libpq's default).
    Prefer,
    /// TLS, unverified (verified as `VerifyCa` when `sslrootcert` is given).
    Require,
    /// TLS with a certificate signed by `sslrootcert`, any host name.
    VerifyCa,
    /// TLS with a certificate signed by `sslrootcert` for the host connected to.
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }

    /// libpq's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// A `postgres://` URL. Its `Debug` and `Display` hide the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionUrl {
    url: String,
    /// The URL without `sslmode` and `sslrootcert`, which the driver does
    /// not read (strongroom's TLS does).
    driver_url: String,
    /// How TLS is used.
    pub ssl_mode: SslMode,
    /// The CA certificates (PEM) that verify the server.
    pub ssl_root_cert: Option<PathBuf>,
}

impl ConnectionUrl {
    /// Checks the form: a `postgres://` or `postgresql://` URL, with an
    /// `sslmode` libpq knows. The message names what is wrong and never
    /// repeats the URL (it may hold a password).
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or("must be a URL starting with postgres:// or postgresql://")?;
        // The driver takes everything before the first '@' as user and
        // password, while a URL's authority ends at the first '/', '?' or
        // '#': where the two disagree, the password would be misread (and
        // shown where the URL is), so it must be percent-encoded.
        if let Some((userinfo, _)) = rest.split_once('@')
            && userinfo.contains(['/', '?', '#'])
        {
            return Err("has a user or password with an unencoded '/', '?', '#' or '@' (or an '@' after the host): percent-encode them in the user and password (%2F, %3F, %23, %40)".into());
        }
        let mut ssl_mode = SslMode::Prefer;
        let mut ssl_root_cert = None;
        let mut driver_url = url.to_string();
        if let Some((_, query)) = rest.split_once('?') {
            let mut kept = Vec::new();
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                match pair.split_once('=').unwrap_or((pair, "")) {
                    ("sslmode", mode) => {
                        ssl_mode = SslMode::parse(mode).ok_or_else(|| {
                            format!("has sslmode={mode}; expected disable, prefer, require, verify-ca or verify-full")
                        })?;
                    }
                    ("sslrootcert", path) if path.is_empty() || path == "system" => {
                        return Err("has sslrootcert without a file: give the path of the CA certificates (PEM) that signed the server's".into());
                    }
                    ("sslrootcert", path) => ssl_root_cert = Some(PathBuf::from(path)),
                    _ => kept.push(pair),
                }
            }
            let base = &url[..url.len() - query.len() - 1];
            driver_url = match kept.is_empty() {
                true => base.to_string(),
                false => format!("{base}?{}", kept.join("&")),
            };
        }
        if matches!(ssl_mode, SslMode::VerifyCa | SslMode::VerifyFull) && ssl_root_cert.is_none() {
            return Err(
                "has sslmode=verify-ca or verify-full but no sslrootcert=FILE: the CA certificates (PEM) that verify the server".into(),
            );
        }
        // The driver's own reading: a bad port, an unknown option.
        driver_url
            .parse::<tokio_postgres::Config>()
            .map_err(|e| format!("is not a valid PostgreSQL URL ({})", with_causes(&e)))?;
        Ok(Self {
            url: url.to_string(),
            driver_url,
            ssl_mode,
            ssl_root_cert,
        })
    }

    /// A warning when the server reached is not on this host and its
    /// certificate is not verified (`sslmode` other than `verify-ca` or
    /// `verify-full`, or `require` without `sslrootcert`): the password and
    /// every entry (ciphertext, but also the HA lease) cross the network to
    /// a server nobody checked. `None` for loopback and unix sockets.
    pub fn unverified_remote(&self) -> Option<String> {
        let verified = match self.ssl_mode {
            SslMode::VerifyCa | SslMode::VerifyFull => true,
            SslMode::Require => self.ssl_root_cert.is_some(),
            SslMode::Disable | SslMode::Prefer => false,
        };
        if verified {
            return None;
        }
        let config: tokio_postgres::Config = self.driver_url.parse().ok()?;
        let remote: Vec<String> = config
            .get_hosts()
            .iter()
            .filter_map(|host| match host {
                tokio_postgres::config::Host::Tcp(name) => {
                    let loopback = name == "localhost"
                        || name
                            .parse::<std::net::IpAddr>()
                            .is_ok_and(|ip| ip.is_loopback());
                    (!loopback).then(|| name.clone())
                }
                tokio_postgres::config::Host::Unix(_) => None,
            })
            .collect();
        (!remote.is_empty()).then(|| {
            format!(
                "the PostgreSQL server at {} is not on this host and its certificate is not verified (sslmode={}): use sslmode=verify-full with sslrootcert=FILE",
                crate::text::quote(&remote.join(",")),
                self.ssl_mode.as_str()
            )
        })
    }

    /// The URL for the driver, with its password and without the TLS
    /// options.
    pub fn expose(&self) -> &str {
        &self.driver_url
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        let (scheme, rest) = self.url.split_once("://").unwrap_or(("", &self.url));
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let authority = match authority.rsplit_once('@') {
            Some((user, host)) => match user.split_once(':') {
                Some((name, _)) => format!("{name}:***@{host}"),
                None => authority.to_string(),
            },
            None => authority.to_string(),
        };
        let tail = match tail.split_once('?') {
            Some((path, query)) => {
                let query: Vec<String> = query
                    .split('&')
                    .map(|pair| match pair.split_once('=') {
                        Some(("password", _)) => "password=***".to_string(),
                        _ => pair.to_string(),
                    })
                    .collect();
                format!("{path}?{}", query.join("&"))
            }
            None => tail.to_string(),
        };
        format!("{scheme}://{authority}{tail}")
    }
}

/// An error and its causes, `a: b: c` (the driver's own `Display` stops at
/// the first: "invalid connection string").
pub fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}

impl fmt::Debug for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn unverified_remote_servers_are_named_and_local_ones_are_not() {
        let warn = |url: &str| ConnectionUrl::parse(url).unwrap().unverified_remote();
        let said = warn("postgres://u:pw@db.internal:5432/s?sslmode=require").unwrap();
        assert!(
            said.contains("db.internal") && said.contains("sslmode=require"),
            "{said}"
        );
        assert!(!said.contains("pw"), "{said}");
        assert!(warn("postgres://u@10.0.0.9/s").is_some());
        assert!(warn("postgres://u@db/s?sslmode=verify-full&sslrootcert=/ca.pem").is_none());
        assert!(warn("postgres://u@db/s?sslmode=require&sslrootcert=/ca.pem").is_none());
        assert!(warn("postgres://u@127.0.0.1/s?sslmode=disable").is_none());
        assert!(warn("postgres://u@localhost/s").is_none());
        assert!(warn("postgres://u@%2Frun%2Fpostgresql/s").is_none());
    }

    use super::*;

    #[test]
    fn passwords_with_url_delimiters_must_be_encoded() {
        for url in [
            "postgres://app:pa/ss?wd@127.0.0.1:1/x",
            "postgres://app:pa?ss@db/x?sslmode=require",
            "postgres://app:p#w@db/x",
        ] {
            let refused = ConnectionUrl::parse(url).err().unwrap();
            assert!(refused.contains("percent-encode"), "{url}: {refused}");
            assert!(
                !refused.contains("pa/ss") && !refused.contains("p#w"),
                "{refused}"
            );
        }
        let url = ConnectionUrl::parse("postgres://app:pa%2Fss%3Fwd@db/x?sslmode=require").unwrap();
        assert_eq!(url.ssl_mode, SslMode::Require);
        assert!(!url.redacted().contains("pa%2F"), "{}", url.redacted());
    }

    #[test]
    fn passwords_are_redacted() {
        let url = ConnectionUrl::parse("postgres://app:hunter2@db:5432/s?sslmode=disable").unwrap();
        assert_eq!(
            url.to_string(),
            "postgres://app:***@db:5432/s?sslmode=disable"
        );
        let url = ConnectionUrl::parse("postgresql://db/s?user=a&password=hunter2").unwrap();
        assert_eq!(format!("{url:?}"), "postgresql://db/s?user=a&password=***");
        assert!(!format!("{url:?}").contains("hunter2"));
    }

    #[test]
    fn malformed_urls_are_refused() {
        assert!(ConnectionUrl::parse("host=db user=a").is_err());
        assert!(ConnectionUrl::parse("mysql://db").is_err());
        assert!(ConnectionUrl::parse("postgres://db/s?sslmode=verify-full").is_err());
        assert!(ConnectionUrl::parse("postgres://db/s?sslmode=sometimes").is_err());
        let url = ConnectionUrl::parse(
            "postgres://db/s?sslmode=verify-ca&sslrootcert=/ca.pem&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(url.ssl_mode, SslMode::VerifyCa);
        assert_eq!(url.expose(), "postgres://db/s?connect_timeout=3");
        assert_eq!(
            ConnectionUrl::parse("postgres://db/s").unwrap().ssl_mode,
            SslMode::Prefer
        );
        let bad_port = ConnectionUrl::parse("postgres://a:hunter2@db:port/s").unwrap_err();
        assert!(bad_port.contains("port"), "{bad_port}");
        assert!(!bad_port.contains("hunter2"), "{bad_port}");
    }
}
