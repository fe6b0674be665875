//! HCL to [`Config`], with the line of every error.
//!
//! hcl-edit keeps byte spans for each attribute and block (hcl-rs's serde path
//! loses them), so each problem is reported as `FILE:LINE: KEY: message`.
//! Parsing collects every problem instead of stopping at the first.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hcl_edit::Span;
use hcl_edit::expr::Expression;
use hcl_edit::structure::{Attribute, Block, Body};

use super::{
    AuditDevice, AwsCredentialSettings, AwsKmsSeal, BarrierConfig, Config, ConfigError,
    ConfigErrors, DEFAULT_HEALTH_CHECK_INTERVAL, DEFAULT_MAX_REQUEST_SIZE, IdentityRule,
    IdentitySelector, KvSettings, Listener, Location, LogFormat, LogLevel, MAX_KV_VERSIONS,
    MAX_ROTATION_ENCRYPTIONS, MIN_HEALTH_CHECK_INTERVAL, MIN_ROTATION_INTERVAL, Setting, Source,
    StorageConfig, TcpListener, TlsFiles, UnixListener, parse_bool,
};
use crate::names;
use crate::secret::SecretString;

const DEFAULT_ADDRESS: &str = "127.0.0.1:8400";

/// Parses the HCL text of `file` (used for messages and nothing else).
/// Relative paths inside resolve from the working directory.
pub fn parse(source: &str, file: &Path) -> Result<Config, ConfigErrors> {
    let mut ctx = Ctx::new(source, file);
    let body = match hcl_edit::parser::parse_body(source) {
        Ok(body) => body,
        Err(e) => {
            let line = e.location().line();
            ctx.error(line, "syntax", format!("invalid HCL: {}", e.message()));
            return Err(ConfigErrors(ctx.errors));
        }
    };
    let config = ctx.config(&body);
    // Reported in file order; the sort is stable, so one line keeps its order.
    ctx.errors.sort_by_key(|e| match e.location {
        Location::File { line, .. } => line,
        Location::Env(_) => 0,
    });
    match config {
        Some(config) if ctx.errors.is_empty() => Ok(config),
        _ => Err(ConfigErrors(ctx.errors)),
    }
}

struct Ctx<'a> {
    file: &'a Path,
    line_starts: Vec<usize>,
    errors: Vec<ConfigError>,
}

/// The attributes of one block, checked against the keys it may have.
struct Section<'b> {
    name: String,
    attrs: HashMap<&'b str, &'b Attribute>,
}

impl<'a> Ctx<'a> {
    fn new(source: &str, file: &'a Path) -> Self {
        let line_starts = std::iter::once(0)
            .chain(source.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            file,
            line_starts,
            errors: Vec::new(),
        }
    }

    fn line(&self, span: Option<Range<usize>>) -> usize {
        span.map_or(0, |r| {
            self.line_starts.partition_point(|&start| start <= r.start)
        })
    }

    fn error(&mut self, line: usize, key: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            location: Location::File {
                path: self.file.to_path_buf(),
                line,
            },
            key: key.into(),
            message: message.into(),
        });
    }

    /// Collects a body's attributes, reporting unknown and repeated keys and
    /// any block not in `blocks`. Returns the section and its known blocks.
    fn section<'b>(
        &mut self,
        body: &'b Body,
        name: &str,
        keys: &[&str],
        blocks: &[&str],
    ) -> (Section<'b>, Vec<&'b Block>) {
        let mut section = Section {
            name: name.to_string(),
            attrs: HashMap::new(),
        };
        let mut known_blocks = Vec::new();
        for attr in body.attributes() {
            let key = attr.key.as_str();
            let line = self.line(attr.span());
            // hcl-edit itself refuses a key set twice in one body.
            if keys.contains(&key) {
                section.attrs.insert(key, attr);
            } else {
                let message = unknown_message("key", key, keys);
                self.error(line, qualified(name, key), message);
            }
        }
        for block in body.blocks() {
            let ident = block.ident.as_str();
            if blocks.contains(&ident) {
                known_blocks.push(block);
            } else {
                let line = self.line(block.span());
                let message = unknown_message("block", ident, blocks);
                self.error(line, qualified(name, ident), message);
            }
        }
        (section, known_blocks)
    }

    fn value<'b, T>(
        &mut self,
        section: &Section<'b>,
        key: &str,
        convert: impl Fn(&Expression) -> Result<T, String>,
    ) -> Option<(T, usize)> {
        let attr = section.attrs.get(key)?;
        let line = self.line(attr.span());
        match convert(&attr.value) {
            Ok(value) => Some((value, line)),
            Err(message) => {
                self.error(line, qualified(&section.name, key), message);
                None
            }
        }
    }

    fn string(&mut self, section: &Section<'_>, key: &str) -> Option<(String, usize)> {
        self.value(section, key, as_string)
    }

    fn boolean(&mut self, section: &Section<'_>, key: &str) -> Option<(bool, usize)> {
        self.value(section, key, as_bool)
    }

    fn config(&mut self, body: &Body) -> Option<Config> {
        let top_keys = ["cluster_name", "disable_mlock", "log_level", "log_format"];
        let (top, blocks) = self.section(
            body,
            "",
            &top_keys,
            &["storage", "listener", "seal", "barrier", "kv", "audit"],
        );

        let cluster_name = match self.string(&top, "cluster_name") {
            Some((name, line)) if name.trim().is_empty() => {
                self.error(
                    line,
                    "cluster_name",
                    "is empty: give a name, or leave the key out to keep the one recorded at init",
                );
                Setting::default_value(None)
            }
            Some((name, line)) => Setting {
                value: Some(name),
                source: Source::File { line },
            },
            None => Setting::default_value(None),
        };
        let disable_mlock = match self.boolean(&top, "disable_mlock") {
            Some((value, line)) => Setting {
                value,
                source: Source::File { line },
            },
            None => Setting::default_value(false),
        };
        let log_level = self.enumerated(
            &top,
            "log_level",
            LogLevel::parse,
            "trace, debug, info, warn, error",
        );
        let log_format = self.enumerated(&top, "log_format", LogFormat::parse, "text, json");

        let mut storage = None;
        let mut listeners = Vec::new();
        let mut seal: Option<AwsKmsSeal> = None;
        let mut disabled_seal: Option<AwsKmsSeal> = None;
        let mut barrier: Option<BarrierConfig> = None;
        let mut kv: Option<(KvSettings, usize)> = None;
        let mut audit: Vec<AuditDevice> = Vec::new();
        for block in blocks {
            let line = self.line(block.span());
            let ident = block.ident.as_str();
            if ident == "kv" {
                if let Some((_, first)) = &kv {
                    self.error(
                        line,
                        "kv",
                        format!("only one kv block is allowed (the first is on line {first})"),
                    );
                } else if let Some(settings) = self.kv(block, line) {
                    kv = Some((settings, line));
                }
                continue;
            }
            if ident == "barrier" {
                if let Some(first) = &barrier {
                    self.error(
                        line,
                        "barrier",
                        format!(
                            "only one barrier block is allowed (the first is on line {})",
                            first.line
                        ),
                    );
                } else {
                    barrier = self.barrier(block, line);
                }
                continue;
            }
            let Some(kind) = self.single_label(block, line) else {
                continue;
            };
            match ident {
                "storage" => {
                    if let Some((_, first)) = &storage {
                        self.error(
                            line,
                            "storage",
                            format!(
                                "only one storage block is allowed (the first is on line {first})"
                            ),
                        );
                        continue;
                    }
                    if let Some(config) = self.storage(block, kind, line) {
                        storage = Some((config, line));
                    }
                }
                "audit" => {
                    if let Some(device) = self.audit(block, kind, line) {
                        if audit.contains(&device) {
                            self.error(line, "audit", "the same audit device is configured twice");
                        } else {
                            audit.push(device);
                        }
                    }
                }
                "seal" => {
                    // One seal in use, and during a migration one more that
                    // is marked disabled (the seal being left).
                    let Some((parsed, disabled)) = self.seal(block, kind, line) else {
                        continue;
                    };
                    let slot = if disabled {
                        &mut disabled_seal
                    } else {
                        &mut seal
                    };
                    if let Some(first) = slot {
                        let what = if disabled { "disabled " } else { "" };
                        self.error(
                            line,
                            "seal",
                            format!(
                                "only one {what}seal block is allowed (the first is on line {}); a seal migration has one seal in use and one with disabled = true",
                                first.line
                            ),
                        );
                        continue;
                    }
                    *slot = Some(parsed);
                }
                _ => {
                    if let Some(listener) = self.listener(block, kind, line) {
                        listeners.push(listener);
                    }
                }
            }
        }
        self.check_listeners_distinct(&listeners);
        if storage.is_none() && !self.has_error_for("storage") {
            self.error(1, "storage", "a storage block is required, such as storage \"file\" { path = \"/var/lib/strongroom\" }");
        }
        if listeners.is_empty() && !self.has_error_for("listener") {
            self.error(1, "listener", "at least one listener block is required, such as listener \"tcp\" { address = \"127.0.0.1:8400\" }");
        }
        let (storage, storage_line) = storage?;
        Some(Config {
            file: Some(self.file.to_path_buf()),
            cluster_name,
            disable_mlock,
            log_level: log_level.unwrap_or(Setting::default_value(LogLevel::Info)),
            log_format: log_format.unwrap_or(Setting::default_value(LogFormat::Text)),
            storage: Setting {
                value: storage,
                source: Source::File { line: storage_line },
            },
            listeners,
            seal,
            disabled_seal,
            barrier: barrier.unwrap_or_default(),
            kv: kv.map(|(settings, _)| settings).unwrap_or_default(),
            audit,
        })
    }

    /// `audit "file" { path = "…" }` or `audit "stdout" {}`.
    fn audit(&mut self, block: &Block, kind: &str, line: usize) -> Option<AuditDevice> {
        let name = format!("audit.{kind}");
        match kind {
            "file" => {
                let (section, _) = self.section(&block.body, &name, &["path"], &[]);
                match self.string(&section, "path") {
                    Some((path, at)) => self
                        .absolute(&path, at, &qualified(&name, "path"))
                        .map(|path| AuditDevice::File { path }),
                    None => {
                        if !section.attrs.contains_key("path") {
                            self.error(
                                line,
                                qualified(&name, "path"),
                                "is required: the file to append audit lines to",
                            );
                        }
                        None
                    }
                }
            }
            "stdout" => {
                self.section(&block.body, &name, &[], &[]);
                Some(AuditDevice::Stdout)
            }
            other => {
                self.error(
                    line,
                    "audit",
                    format!(
                        "unknown audit device {other:?} (strongroom has \"file\" and \"stdout\")"
                    ),
                );
                None
            }
        }
    }

    /// `kv { max_versions = N  max_value_size = BYTES }`.
    fn kv(&mut self, block: &Block, line: usize) -> Option<KvSettings> {
        let name = "kv";
        if !block.labels.is_empty() {
            self.error(line, name, "the kv block takes no label: kv { … }");
            return None;
        }
        let (section, _) =
            self.section(&block.body, name, &["max_versions", "max_value_size"], &[]);
        let mut settings = KvSettings::default();
        if let Some((max, at)) = self.value(&section, "max_versions", as_u64) {
            match u32::try_from(max) {
                Ok(max) if (1..=MAX_KV_VERSIONS).contains(&max) => settings.max_versions = max,
                _ => self.error(
                    at,
                    qualified(name, "max_versions"),
                    format!("must be between 1 and {MAX_KV_VERSIONS}, got {max}"),
                ),
            }
        }
        if let Some((size, at)) = self.value(&section, "max_value_size", as_u64) {
            match usize::try_from(size) {
                Ok(size) if size >= 1 => settings.max_value_size = size,
                _ => self.error(
                    at,
                    qualified(name, "max_value_size"),
                    format!("must be a number of bytes of at least 1, got {size}"),
                ),
            }
        }
        Some(settings)
    }

    /// `barrier { rotation_max_encryptions = N  rotation_interval = "…" }`.
    fn barrier(&mut self, block: &Block, line: usize) -> Option<BarrierConfig> {
        let name = "barrier";
        if !block.labels.is_empty() {
            self.error(
                line,
                name,
                "the barrier block takes no label: barrier { … }",
            );
            return None;
        }
        let (section, _) = self.section(
            &block.body,
            name,
            &["rotation_max_encryptions", "rotation_interval"],
            &[],
        );
        let mut config = BarrierConfig {
            line,
            ..BarrierConfig::default()
        };
        if let Some((max, at)) = self.value(&section, "rotation_max_encryptions", as_u64) {
            if (1..=MAX_ROTATION_ENCRYPTIONS).contains(&max) {
                config.rotation_max_encryptions = max;
            } else {
                self.error(
                    at,
                    qualified(name, "rotation_max_encryptions"),
                    format!(
                        "must be between 1 and {MAX_ROTATION_ENCRYPTIONS} (AES-GCM with random nonces is safe for about 2^32 encryptions per key), got {max}"
                    ),
                );
            }
        }
        if let Some((interval, at)) = self.value(&section, "rotation_interval", as_duration) {
            if interval.is_zero() {
                config.rotation_interval = None;
            } else if interval < MIN_ROTATION_INTERVAL {
                self.error(
                    at,
                    qualified(name, "rotation_interval"),
                    "must be \"0\" (off) or at least 24h, as in Vault",
                );
            } else {
                config.rotation_interval = Some(interval);
            }
        }
        Some(config)
    }

    fn has_error_for(&self, prefix: &str) -> bool {
        self.errors.iter().any(|e| e.key.starts_with(prefix))
    }

    fn enumerated<T>(
        &mut self,
        section: &Section<'_>,
        key: &str,
        parse: fn(&str) -> Option<T>,
        expected: &str,
    ) -> Option<Setting<T>> {
        let (text, line) = self.string(section, key)?;
        match parse(&text) {
            Some(value) => Some(Setting {
                value,
                source: Source::File { line },
            }),
            None => {
                self.error(
                    line,
                    key,
                    format!("expected one of {expected}; got {text:?}"),
                );
                None
            }
        }
    }

    fn single_label<'b>(&mut self, block: &'b Block, line: usize) -> Option<&'b str> {
        let ident = block.ident.as_str();
        match block.labels.as_slice() {
            [label] => Some(label.as_str()),
            _ => {
                self.error(
                    line,
                    ident,
                    format!(
                        "a {ident} block takes one type label, such as {ident} \"{}\" {{ … }}",
                        example_label(ident)
                    ),
                );
                None
            }
        }
    }

    fn storage(&mut self, block: &Block, kind: &str, line: usize) -> Option<StorageConfig> {
        let name = format!("storage.{kind}");
        match kind {
            "file" => {
                let (section, _) = self.section(&block.body, &name, &["path"], &[]);
                let Some((path, path_line)) = self.string(&section, "path") else {
                    if !section.attrs.contains_key("path") {
                        self.error(
                            line,
                            format!("{name}.path"),
                            "is required: the directory that holds the data",
                        );
                    }
                    return None;
                };
                if path.is_empty() {
                    self.error(path_line, format!("{name}.path"), "must not be empty");
                    return None;
                }
                let path = self.absolute(&path, path_line, &name)?;
                Some(StorageConfig::File { path })
            }
            "inmem" => {
                self.section(&block.body, &name, &[], &[]);
                Some(StorageConfig::Inmem)
            }
            other => {
                self.error(
                    line,
                    "storage",
                    format!(
                        "unknown storage type {other:?} (strongroom has \"file\" and \"inmem\")"
                    ),
                );
                None
            }
        }
    }

    fn listener(&mut self, block: &Block, kind: &str, line: usize) -> Option<Listener> {
        let name = format!("listener.{kind}");
        match kind {
            "tcp" => self.tcp_listener(block, &name, line).map(Listener::Tcp),
            "unix" => self.unix_listener(block, &name, line).map(Listener::Unix),
            other => {
                self.error(
                    line,
                    "listener",
                    format!(
                        "unknown listener type {other:?} (strongroom has \"tcp\" and \"unix\")"
                    ),
                );
                None
            }
        }
    }

    /// A seal block, and whether it is marked `disabled = true`.
    fn seal(&mut self, block: &Block, kind: &str, line: usize) -> Option<(AwsKmsSeal, bool)> {
        if kind != "awskms" {
            self.error(
                line,
                "seal",
                format!(
                    "unknown seal type {kind:?} (strongroom has \"awskms\"; leave the seal block out for Shamir unseal keys)"
                ),
            );
            return None;
        }
        let name = "seal.awskms";
        let keys = [
            "region",
            "kms_key_id",
            "endpoint",
            "access_key",
            "secret_key",
            "session_token",
            "shared_creds_filename",
            "shared_creds_profile",
            "role_arn",
            "web_identity_token_file",
            "role_session_name",
            "disabled",
            "health_check_interval",
        ];
        let (section, _) = self.section(&block.body, name, &keys, &[]);
        let errors_before = self.errors.len();
        let text = |ctx: &mut Self, key: &str| -> Option<(String, usize)> {
            let (value, at) = ctx.string(&section, key)?;
            if value.trim().is_empty() {
                ctx.error(
                    at,
                    qualified(name, key),
                    "must not be empty; leave the key out instead",
                );
                return None;
            }
            Some((value, at))
        };
        let setting = |(value, line): (String, usize)| Setting {
            value,
            source: Source::File { line },
        };
        let kms_key_id = text(self, "kms_key_id")
            .map(setting)
            .unwrap_or_else(|| Setting::default_value(String::new()));
        let region = text(self, "region").map(setting);
        let endpoint = text(self, "endpoint").map(setting);
        if let Some(endpoint) = &endpoint
            && let Err(message) = super::check_endpoint(&endpoint.value)
        {
            let at = match endpoint.source {
                Source::File { line } => line,
                _ => line,
            };
            self.error(at, qualified(name, "endpoint"), message);
        }
        let access_key = text(self, "access_key").map(|(v, _)| v);
        let secret_key = text(self, "secret_key").map(|(v, _)| SecretString::new(v));
        let session_token = text(self, "session_token").map(|(v, _)| SecretString::new(v));
        // Presence, not a valid value: a mistyped value has its own error.
        let has_access_key = section.attrs.contains_key("access_key");
        if has_access_key != section.attrs.contains_key("secret_key") {
            self.error(
                line,
                qualified(name, if has_access_key { "secret_key" } else { "access_key" }),
                "access_key and secret_key go together: set both, or neither to use the AWS credential chain",
            );
        }
        let path = |ctx: &mut Self, key: &str| {
            let (value, at) = text(ctx, key)?;
            ctx.absolute(&value, at, &qualified(name, key))
        };
        let shared_creds_filename = path(self, "shared_creds_filename");
        let web_identity_token_file = path(self, "web_identity_token_file");
        let shared_creds_profile = text(self, "shared_creds_profile").map(|(v, _)| v);
        let role_arn = text(self, "role_arn").map(|(v, _)| v);
        let role_session_name = text(self, "role_session_name").map(|(v, _)| v);
        if web_identity_token_file.is_some() && role_arn.is_none() {
            self.error(
                line,
                qualified(name, "role_arn"),
                "is required with web_identity_token_file: the role to assume with the token",
            );
        }
        let disabled = self
            .boolean(&section, "disabled")
            .is_some_and(|(disabled, _)| disabled);
        let health_check_interval = match self.value(&section, "health_check_interval", as_duration)
        {
            Some((interval, at)) if !interval.is_zero() && interval < MIN_HEALTH_CHECK_INTERVAL => {
                self.error(
                    at,
                    qualified(name, "health_check_interval"),
                    format!(
                        "must be \"0\" (off) or at least {} s: each check is one KMS DescribeKey",
                        MIN_HEALTH_CHECK_INTERVAL.as_secs()
                    ),
                );
                DEFAULT_HEALTH_CHECK_INTERVAL
            }
            Some((interval, _)) => interval,
            None => DEFAULT_HEALTH_CHECK_INTERVAL,
        };
        if self.errors.len() > errors_before {
            return None;
        }
        let seal = AwsKmsSeal {
            kms_key_id,
            region,
            endpoint,
            credentials: AwsCredentialSettings {
                access_key,
                secret_key,
                session_token,
                shared_creds_filename,
                shared_creds_profile,
                role_arn,
                web_identity_token_file,
                role_session_name,
            },
            health_check_interval,
            line,
        };
        Some((seal, disabled))
    }

    fn max_request_size(&mut self, section: &Section<'_>) -> Option<usize> {
        match self.value(section, "max_request_size", as_u64) {
            None => Some(DEFAULT_MAX_REQUEST_SIZE),
            Some((0, line)) => {
                self.error(
                    line,
                    qualified(&section.name, "max_request_size"),
                    "must be at least 1 byte",
                );
                None
            }
            Some((size, line)) => match usize::try_from(size) {
                Ok(size) => Some(size),
                Err(_) => {
                    self.error(
                        line,
                        qualified(&section.name, "max_request_size"),
                        "is too large",
                    );
                    None
                }
            },
        }
    }

    fn tcp_listener(&mut self, block: &Block, name: &str, line: usize) -> Option<TcpListener> {
        let keys = [
            "address",
            "tls_cert_file",
            "tls_key_file",
            "tls_client_ca_file",
            "tls_disable",
            "max_request_size",
        ];
        let (section, blocks) = self.section(&block.body, name, &keys, &["identity"]);
        let errors_before = self.errors.len();

        let address = match self.string(&section, "address") {
            Some((text, at)) => match parse_address(&text) {
                Some(address) => Some(address),
                None => {
                    self.error(
                        at,
                        qualified(name, "address"),
                        format!("expected IP:PORT such as 127.0.0.1:8400, got {text:?}"),
                    );
                    None
                }
            },
            None if section.attrs.contains_key("address") => None,
            None => parse_address(DEFAULT_ADDRESS),
        };
        let mut file = |key: &str| -> Option<PathBuf> {
            let (path, at) = self.string(&section, key)?;
            self.absolute(&path, at, &qualified(name, key))
        };
        let cert = file("tls_cert_file");
        let key = file("tls_key_file");
        let client_ca = file("tls_client_ca_file");
        let tls_disable = self
            .boolean(&section, "tls_disable")
            .map(|(b, _)| b)
            .unwrap_or(false);
        let max_request_size = self.max_request_size(&section);
        let identities = self.identities(&blocks, name, &["cert_san", "cert_cn"]);
        if !identities.is_empty() && client_ca.is_none() {
            self.error(
                line,
                qualified(name, "identity"),
                "needs tls_client_ca_file: identities come from verified client certificates",
            );
        }

        let tls = match (cert, key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert,
                key,
                client_ca,
            }),
            (None, None) => {
                if client_ca.is_some() {
                    self.error(
                        line,
                        qualified(name, "tls_client_ca_file"),
                        "needs tls_cert_file and tls_key_file: mutual TLS is TLS first",
                    );
                }
                None
            }
            (Some(_), None) => {
                self.error(
                    line,
                    qualified(name, "tls_key_file"),
                    "is required when tls_cert_file is set",
                );
                None
            }
            (None, Some(_)) => {
                self.error(
                    line,
                    qualified(name, "tls_cert_file"),
                    "is required when tls_key_file is set",
                );
                None
            }
        };
        if tls_disable
            && section
                .attrs
                .keys()
                .any(|k| k.starts_with("tls_") && *k != "tls_disable")
        {
            self.error(
                line,
                qualified(name, "tls_disable"),
                "is true, but TLS files are also set: remove one or the other",
            );
        }
        if let Some(address) = address
            && tls.is_none()
            && !tls_disable
            && !address.ip().is_loopback()
            && self.errors.len() == errors_before
        {
            self.error(
                line,
                qualified(name, "tls_disable"),
                format!("listener on {address} has no TLS certificate; serving plaintext on a non-loopback address needs tls_disable = true"),
            );
        }
        if self.errors.len() > errors_before {
            return None;
        }
        Some(TcpListener {
            address: address?,
            tls,
            max_request_size: max_request_size?,
            identities,
            line,
        })
    }

    fn unix_listener(&mut self, block: &Block, name: &str, line: usize) -> Option<UnixListener> {
        let keys = [
            "path",
            "socket_mode",
            "socket_user",
            "socket_group",
            "max_request_size",
        ];
        let (section, blocks) = self.section(&block.body, name, &keys, &["identity"]);
        let errors_before = self.errors.len();

        let path = match self.string(&section, "path") {
            Some((path, at)) => self.absolute(&path, at, &qualified(name, "path")),
            None => {
                if !section.attrs.contains_key("path") {
                    self.error(
                        line,
                        qualified(name, "path"),
                        "is required: where to create the socket",
                    );
                }
                None
            }
        };
        let mode = self.value(&section, "socket_mode", |e| {
            let text = as_string(e)?;
            u32::from_str_radix(&text, 8)
                .ok()
                .filter(|m| *m <= 0o777)
                .ok_or_else(|| {
                    format!("expected octal permission bits such as \"0660\", got {text:?}")
                })
        });
        let uid = self.value(&section, "socket_user", |e| resolve_user(&as_string(e)?));
        let gid = self.value(&section, "socket_group", |e| resolve_group(&as_string(e)?));
        let max_request_size = self.max_request_size(&section);
        let identities = self.identities(&blocks, name, &["uid", "gid"]);
        if self.errors.len() > errors_before {
            return None;
        }
        Some(UnixListener {
            path: path?,
            mode: mode.map(|(m, _)| m),
            uid: uid.map(|(u, _)| u),
            gid: gid.map(|(g, _)| g),
            max_request_size: max_request_size?,
            identities,
            line,
        })
    }

    /// A listener's `identity` blocks; each has exactly one of `selectors`
    /// and a non-empty `policies` list.
    fn identities(
        &mut self,
        blocks: &[&Block],
        listener: &str,
        selectors: &[&str],
    ) -> Vec<IdentityRule> {
        let name = qualified(listener, "identity");
        let mut keys = selectors.to_vec();
        keys.push("policies");
        let mut rules: Vec<IdentityRule> = Vec::new();
        for block in blocks {
            let line = self.line(block.span());
            if !block.labels.is_empty() {
                self.error(line, name.clone(), "takes no label: identity { … }");
                continue;
            }
            let (section, _) = self.section(&block.body, &name, &keys, &[]);
            let present: Vec<&str> = selectors
                .iter()
                .copied()
                .filter(|k| section.attrs.contains_key(k))
                .collect();
            let selector = match present.as_slice() {
                [key] => {
                    let key = *key;
                    self.value(&section, key, |e| match key {
                        "uid" => resolve_user(&as_id(e)?).map(IdentitySelector::Uid),
                        "gid" => resolve_group(&as_id(e)?).map(IdentitySelector::Gid),
                        "cert_san" => nonempty(as_string(e)?).map(IdentitySelector::CertSan),
                        _ => nonempty(as_string(e)?).map(IdentitySelector::CertCn),
                    })
                }
                _ => {
                    self.error(
                        line,
                        name.clone(),
                        format!("needs exactly one of {}", selectors.join(" or ")),
                    );
                    None
                }
            };
            let policies = match self.value(&section, "policies", as_policy_list) {
                Some((policies, _)) => Some(policies),
                None => {
                    if !section.attrs.contains_key("policies") {
                        self.error(
                            line,
                            qualified(&name, "policies"),
                            "is required: the policies this identity gets, such as [\"app\"]",
                        );
                    }
                    None
                }
            };
            if let (Some((selector, _)), Some(policies)) = (selector, policies) {
                if rules.iter().any(|r| r.selector == selector) {
                    self.error(
                        line,
                        name.clone(),
                        format!(
                            "{} is matched by an earlier identity block",
                            selector.label()
                        ),
                    );
                    continue;
                }
                rules.push(IdentityRule {
                    selector,
                    policies,
                    line,
                });
            }
        }
        rules
    }

    fn check_listeners_distinct(&mut self, listeners: &[Listener]) {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for listener in listeners {
            let (key, line) = match listener {
                Listener::Tcp(l) => (l.address.to_string(), l.line),
                Listener::Unix(l) => (l.path.display().to_string(), l.line),
            };
            if let Some(first) = seen.insert(key.clone(), line) {
                self.error(
                    line,
                    "listener",
                    format!("{key} is already used by the listener on line {first}"),
                );
            }
        }
    }

    fn absolute(&mut self, path: &str, line: usize, key: &str) -> Option<PathBuf> {
        match std::path::absolute(path) {
            Ok(path) => Some(path),
            Err(e) => {
                self.error(line, key, format!("cannot make {path:?} absolute: {e}"));
                None
            }
        }
    }
}

fn qualified(section: &str, key: &str) -> String {
    if section.is_empty() {
        key.to_string()
    } else {
        format!("{section}.{key}")
    }
}

fn example_label(ident: &str) -> &'static str {
    match ident {
        "storage" => "file",
        _ => "tcp",
    }
}

fn unknown_message(what: &str, found: &str, expected: &[&str]) -> String {
    if expected.is_empty() {
        return format!("unknown {what} {found:?}: this block takes none");
    }
    let hint = expected
        .iter()
        .map(|e| (edit_distance(found, e), *e))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, e)| format!(" (did you mean {e:?}?)"))
        .unwrap_or_default();
    format!(
        "unknown {what} {found:?}{hint}; expected one of: {}",
        expected.join(", ")
    )
}

/// Levenshtein distance, for "did you mean" hints on short key names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(current)
            };
            prev = current;
        }
    }
    row[b.len()]
}

fn kind_of(expr: &Expression) -> &'static str {
    match expr {
        Expression::Null(_) => "null",
        Expression::Bool(_) => "a boolean",
        Expression::Number(_) => "a number",
        Expression::String(_) | Expression::StringTemplate(_) | Expression::HeredocTemplate(_) => {
            "a string"
        }
        Expression::Array(_) => "a list",
        Expression::Object(_) => "an object",
        _ => "an expression",
    }
}

fn as_string(expr: &Expression) -> Result<String, String> {
    match expr {
        Expression::String(s) => Ok(s.value().clone()),
        Expression::StringTemplate(_) | Expression::HeredocTemplate(_) => {
            Err("expected a plain string; interpolation (${…}) is not supported".into())
        }
        other => Err(format!("expected a string, got {}", kind_of(other))),
    }
}

/// `true`, `"true"`, `1` and their false forms: what Vault's parser accepts.
fn as_bool(expr: &Expression) -> Result<bool, String> {
    let parsed = match expr {
        Expression::Bool(b) => Some(*b.value()),
        Expression::String(s) => parse_bool(s.value()),
        Expression::Number(n) => match n.value().as_u64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        _ => None,
    };
    parsed.ok_or_else(|| format!("expected true or false, got {}", describe(expr)))
}

/// A duration as Vault writes them: `"10m"`, `"1h30m"`, `"45s"`, `"500ms"`,
/// or a whole number of seconds. `"0"` is zero.
fn as_duration(expr: &Expression) -> Result<Duration, String> {
    let text = match expr {
        Expression::Number(n) => n.value().to_string(),
        Expression::String(s) => s.value().trim().to_string(),
        other => {
            return Err(format!(
                "expected a duration such as \"10m\", got {}",
                kind_of(other)
            ));
        }
    };
    parse_duration(&text).ok_or_else(|| {
        format!("expected a duration such as \"10m\", \"30s\" or \"0\", got {text:?}")
    })
}

/// A duration as Vault writes them: `90`, `30s`, `15m`, `1h30m`, `500ms`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    if text.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let (number, tail) = rest.split_at(digits);
        let number: u64 = number.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let part = match unit {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.checked_mul(60)?),
            "h" => Duration::from_secs(number.checked_mul(3600)?),
            _ => return None,
        };
        total = total.checked_add(part)?;
        rest = tail;
    }
    Some(total)
}

fn as_u64(expr: &Expression) -> Result<u64, String> {
    let parsed = match expr {
        Expression::Number(n) => n.value().as_u64(),
        Expression::String(s) => s.value().trim().parse().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| format!("expected a whole number, got {}", describe(expr)))
}

fn describe(expr: &Expression) -> String {
    match expr {
        Expression::String(s) => format!("{:?}", s.value()),
        Expression::Number(n) => n.value().to_string(),
        other => kind_of(other).to_string(),
    }
}

fn parse_address(text: &str) -> Option<SocketAddr> {
    if let Ok(address) = text.parse() {
        return Some(address);
    }
    let port = text.strip_prefix("localhost:")?.parse().ok()?;
    Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
}

/// A uid or gid: a number, or a name to resolve.
fn as_id(expr: &Expression) -> Result<String, String> {
    match expr {
        Expression::Number(n) => n
            .value()
            .as_u64()
            .map(|n| n.to_string())
            .ok_or_else(|| format!("expected a whole number or a name, got {}", describe(expr))),
        other => as_string(other),
    }
}

fn nonempty(text: String) -> Result<String, String> {
    if text.is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(text)
    }
}

/// A non-empty list of valid policy names other than root.
fn as_policy_list(expr: &Expression) -> Result<Vec<String>, String> {
    let Expression::Array(items) = expr else {
        return Err(format!(
            "expected a list of policy names, got {}",
            kind_of(expr)
        ));
    };
    let mut names = Vec::new();
    for item in items.iter() {
        let name = as_string(item)?;
        names::check_policy_name(&name)?;
        if name == names::ROOT_POLICY {
            return Err(
                "an identity may not be given the root policy; write a policy with what it needs"
                    .into(),
            );
        }
        names.push(name);
    }
    if names.is_empty() {
        return Err("the list is empty; name at least one policy".into());
    }
    Ok(names)
}

fn resolve_user(name: &str) -> Result<u32, String> {
    if let Ok(uid) = name.parse() {
        return Ok(uid);
    }
    match nix::unistd::User::from_name(name) {
        Ok(Some(user)) => Ok(user.uid.as_raw()),
        _ => Err(format!("no user named {name:?} on this host")),
    }
}

fn resolve_group(name: &str) -> Result<u32, String> {
    if let Ok(gid) = name.parse() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(name) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        _ => Err(format!("no group named {name:?} on this host")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(source: &str) -> Vec<String> {
        parse(source, Path::new("test.hcl"))
            .unwrap_err()
            .0
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    const MINIMAL: &str =
        "storage \"inmem\" {}\nlistener \"tcp\" { address = \"127.0.0.1:8400\" }\n";

    #[test]
    fn full_config_parses() {
        let config = parse(
            r#"
cluster_name  = "prod-eu"
disable_mlock = "true"
log_level     = "debug"
log_format    = "json"

storage "file" {
  path = "/var/lib/strongroom"
}

listener "tcp" {
  address            = "0.0.0.0:8400"
  tls_cert_file      = "/etc/strongroom/tls/cert.pem"
  tls_key_file       = "/etc/strongroom/tls/key.pem"
  tls_client_ca_file = "/etc/strongroom/tls/ca.pem"
  max_request_size   = 1048576
}

listener "unix" {
  path        = "/run/strongroom/strongroom.sock"
  socket_mode = "0660"
  socket_user = "0"
}
"#,
            Path::new("test.hcl"),
        )
        .unwrap();
        assert_eq!(config.cluster_name.value.as_deref(), Some("prod-eu"));
        assert_eq!(config.cluster_name.source, Source::File { line: 2 });
        assert!(config.disable_mlock.value);
        assert_eq!(config.log_level.value, LogLevel::Debug);
        assert_eq!(config.log_format.value, LogFormat::Json);
        assert_eq!(
            config.storage.value,
            StorageConfig::File {
                path: "/var/lib/strongroom".into()
            }
        );
        assert_eq!(config.listeners.len(), 2);
        let Listener::Tcp(tcp) = &config.listeners[0] else {
            panic!("tcp first")
        };
        assert_eq!(tcp.address.to_string(), "0.0.0.0:8400");
        assert_eq!(tcp.max_request_size, 1_048_576);
        assert!(tcp.tls.as_ref().unwrap().client_ca.is_some());
        let Listener::Unix(unix) = &config.listeners[1] else {
            panic!("unix second")
        };
        assert_eq!(unix.mode, Some(0o660));
        assert_eq!(unix.uid, Some(0));
    }

    #[test]
    fn defaults_apply() {
        let config = parse(
            "storage \"inmem\" {}\nlistener \"tcp\" {}\n",
            Path::new("t.hcl"),
        )
        .unwrap();
        assert_eq!(config.log_level.value, LogLevel::Info);
        assert_eq!(config.log_level.source, Source::Default);
        assert!(!config.disable_mlock.value);
        let Listener::Tcp(tcp) = &config.listeners[0] else {
            panic!()
        };
        assert_eq!(tcp.address.to_string(), DEFAULT_ADDRESS);
        assert_eq!(tcp.max_request_size, DEFAULT_MAX_REQUEST_SIZE);
        assert!(tcp.tls.is_none());
    }

    #[test]
    fn relative_storage_path_becomes_absolute() {
        let config = parse(
            "storage \"file\" { path = \"data\" }\nlistener \"tcp\" {}\n",
            Path::new("t.hcl"),
        )
        .unwrap();
        let StorageConfig::File { path } = config.storage.value else {
            panic!()
        };
        assert!(path.is_absolute());
        assert_eq!(path, std::env::current_dir().unwrap().join("data"));
    }

    #[test]
    fn booleans_accept_vault_forms() {
        for form in ["true", "\"true\"", "1", "\"1\""] {
            let config = parse(
                &format!("disable_mlock = {form}\n{MINIMAL}"),
                Path::new("t.hcl"),
            )
            .unwrap();
            assert!(config.disable_mlock.value, "{form}");
        }
        let errs = errors(&format!("disable_mlock = \"perhaps\"\n{MINIMAL}"));
        assert_eq!(
            errs,
            vec!["test.hcl:1: disable_mlock: expected true or false, got \"perhaps\""]
        );
    }

    #[test]
    fn unknown_key_names_file_line_and_key_with_a_hint() {
        let errs = errors(
            "storage \"inmem\" {}\nlistener \"tcp\" {\n  address = \"127.0.0.1:1\"\n  tls_cert_fil = \"x\"\n}\n",
        );
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("test.hcl:4: listener.tcp.tls_cert_fil: unknown key \"tls_cert_fil\" (did you mean \"tls_cert_file\"?)"), "{}", errs[0]);
    }

    #[test]
    fn unknown_block_and_type_are_named() {
        let errs = errors(&format!("{MINIMAL}\nha_storage \"raft\" {{}}\n"));
        assert!(
            errs[0].starts_with("test.hcl:4: ha_storage: unknown block"),
            "{errs:?}"
        );
        let errs = errors("storage \"s3\" {}\nlistener \"tcp\" {}\n");
        assert_eq!(
            errs,
            vec![
                "test.hcl:1: storage: unknown storage type \"s3\" (strongroom has \"file\" and \"inmem\")"
            ]
        );
    }

    #[test]
    fn wrong_types_are_reported_at_their_line() {
        let errs = errors(
            "log_level = 3\nstorage \"file\" {\n  path = true\n}\nlistener \"tcp\" {\n  max_request_size = \"big\"\n}\n",
        );
        assert_eq!(
            errs,
            vec![
                "test.hcl:1: log_level: expected a string, got a number",
                "test.hcl:3: storage.file.path: expected a string, got a boolean",
                "test.hcl:6: listener.tcp.max_request_size: expected a whole number, got \"big\"",
            ]
        );
    }

    #[test]
    fn missing_required_values() {
        let errs = errors("");
        assert!(
            errs.iter()
                .any(|e| e.starts_with("test.hcl:1: storage: a storage block is required")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("test.hcl:1: listener: at least one listener")),
            "{errs:?}"
        );
        let errs = errors("storage \"file\" {}\nlistener \"unix\" {}\n");
        assert_eq!(
            errs,
            vec![
                "test.hcl:1: storage.file.path: is required: the directory that holds the data",
                "test.hcl:2: listener.unix.path: is required: where to create the socket",
            ]
        );
    }

    #[test]
    fn duplicate_keys_and_blocks() {
        let errs = errors(&format!(
            "log_level = \"info\"\nlog_level = \"debug\"\n{MINIMAL}"
        ));
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].starts_with("test.hcl:2: syntax: invalid HCL"),
            "{errs:?}"
        );
        assert!(errs[0].contains("redefined attribute"), "{errs:?}");
        let errs = errors(&format!("{MINIMAL}storage \"inmem\" {{}}\n"));
        assert_eq!(
            errs,
            vec!["test.hcl:3: storage: only one storage block is allowed (the first is on line 1)"]
        );
    }

    #[test]
    fn plaintext_on_a_public_address_needs_tls_disable() {
        let errs =
            errors("storage \"inmem\" {}\nlistener \"tcp\" {\n  address = \"0.0.0.0:8400\"\n}\n");
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("test.hcl:2: listener.tcp.tls_disable: listener on 0.0.0.0:8400 has no TLS certificate"), "{errs:?}");
        parse(
            "storage \"inmem\" {}\nlistener \"tcp\" {\n  address = \"0.0.0.0:8400\"\n  tls_disable = \"true\"\n}\n",
            Path::new("t.hcl"),
        )
        .unwrap();
    }

    #[test]
    fn tls_settings_must_agree() {
        let errs = errors("storage \"inmem\" {}\nlistener \"tcp\" {\n  tls_cert_file = \"c\"\n}\n");
        assert_eq!(
            errs,
            vec!["test.hcl:2: listener.tcp.tls_key_file: is required when tls_cert_file is set"]
        );
        let errs = errors(
            "storage \"inmem\" {}\nlistener \"tcp\" {\n  tls_disable = true\n  tls_cert_file = \"c\"\n  tls_key_file = \"k\"\n}\n",
        );
        assert_eq!(
            errs,
            vec![
                "test.hcl:2: listener.tcp.tls_disable: is true, but TLS files are also set: remove one or the other"
            ]
        );
    }

    #[test]
    fn bad_listener_values() {
        let errs = errors(
            "storage \"inmem\" {}\nlistener \"tcp\" { address = \"example.com\" }\nlistener \"unix\" {\n  path = \"/tmp/s\"\n  socket_mode = \"rw\"\n  socket_user = \"no-such-user-xyz\"\n}\n",
        );
        assert_eq!(
            errs,
            vec![
                "test.hcl:2: listener.tcp.address: expected IP:PORT such as 127.0.0.1:8400, got \"example.com\"",
                "test.hcl:5: listener.unix.socket_mode: expected octal permission bits such as \"0660\", got \"rw\"",
                "test.hcl:6: listener.unix.socket_user: no user named \"no-such-user-xyz\" on this host",
            ]
        );
    }

    #[test]
    fn same_address_twice_is_refused() {
        let errs = errors("storage \"inmem\" {}\nlistener \"tcp\" {}\nlistener \"tcp\" {}\n");
        assert_eq!(
            errs,
            vec!["test.hcl:3: listener: 127.0.0.1:8400 is already used by the listener on line 2"]
        );
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let errs = errors("storage \"inmem\" {\n\nlistener = = 3\n");
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].starts_with("test.hcl:3: syntax: invalid HCL"),
            "{errs:?}"
        );
    }

    #[test]
    fn awskms_seal_parses_with_vault_key_names() {
        let config = parse(
            &format!(
                r#"{MINIMAL}
seal "awskms" {{
  region     = "eu-west-1"
  kms_key_id = "alias/strongroom-unseal"
  endpoint   = "http://127.0.0.1:4566"
  access_key = "AKIDEXAMPLE"
  secret_key = "very-secret"
  disabled   = "false"
  health_check_interval = "1h30m"
}}
"#
            ),
            Path::new("test.hcl"),
        )
        .unwrap();
        let seal = config.seal.unwrap();
        assert_eq!(seal.kms_key_id.value, "alias/strongroom-unseal");
        assert_eq!(seal.kms_key_id.source, Source::File { line: 6 });
        assert_eq!(seal.region.unwrap().value, "eu-west-1");
        assert_eq!(seal.health_check_interval, Duration::from_secs(5400));
        assert_eq!(seal.credentials.access_key.as_deref(), Some("AKIDEXAMPLE"));
        let debug = format!("{:?}", seal.credentials);
        assert!(!debug.contains("very-secret"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }

    #[test]
    fn awskms_seal_errors_name_line_and_key() {
        let errs = errors(&format!(
            "{MINIMAL}seal \"awskms\" {{\n  kms_key_id = \"k\"\n  health_check_interval = \"10 minutes\"\n  access_key = \"a\"\n  disabled = true\n  endpoint = \"kms.local\"\n  regoin = \"x\"\n}}\n"
        ));
        let text = errs.join("\n");
        for expected in [
            "test.hcl:3: seal.awskms.secret_key: access_key and secret_key go together",
            "test.hcl:5: seal.awskms.health_check_interval: expected a duration",
            "test.hcl:8: seal.awskms.endpoint: expected a URL starting with https://",
            "test.hcl:9: seal.awskms.regoin: unknown key \"regoin\" (did you mean \"region\"?)",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
        let errs = errors(&format!(
            "{MINIMAL}seal \"awskms\" {{\n  kms_key_id = \"k\"\n  access_key = \"a\"\n  secret_key = 7\n  health_check_interval = \"1ms\"\n}}\n"
        ));
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].contains("test.hcl:6: seal.awskms.secret_key: expected a string"),
            "{errs:?}"
        );
        assert!(
            errs[1].contains(
                "test.hcl:7: seal.awskms.health_check_interval: must be \"0\" (off) or at least 1 s"
            ),
            "{errs:?}"
        );
        let errs = errors(&format!("{MINIMAL}cluster_name = \" \"\n"));
        assert!(errs[0].contains("cluster_name: is empty"), "{errs:?}");
        let errs = errors(&format!("{MINIMAL}seal \"gcpckms\" {{}}\n"));
        assert!(
            errs[0].contains("unknown seal type \"gcpckms\""),
            "{errs:?}"
        );
        let errs = errors(&format!(
            "{MINIMAL}seal \"awskms\" {{ kms_key_id = \"a\" }}\nseal \"awskms\" {{ kms_key_id = \"b\" }}\n"
        ));
        assert!(
            errs[0].contains("only one seal block is allowed (the first is on line 3)"),
            "{errs:?}"
        );
        // A migration: one seal in use, one disabled (only the first needs a key id).
        let config = parse(
            &format!(
                "{MINIMAL}seal \"awskms\" {{\n  kms_key_id = \"new\"\n}}\nseal \"awskms\" {{\n  disabled = \"true\"\n  kms_key_id = \"old\"\n}}\n"
            ),
            Path::new("test.hcl"),
        )
        .unwrap();
        assert_eq!(config.seal.unwrap().kms_key_id.value, "new");
        assert_eq!(config.disabled_seal.unwrap().kms_key_id.value, "old");
        let errs = errors(&format!(
            "{MINIMAL}seal \"awskms\" {{\n disabled = true\n}}\nseal \"awskms\" {{\n disabled = true\n}}\n"
        ));
        assert!(
            errs[0].contains("only one disabled seal block is allowed (the first is on line 3)"),
            "{errs:?}"
        );
    }

    #[test]
    fn the_barrier_block_sets_the_rotation_policy() {
        let config = parse(
            &format!(
                "{MINIMAL}barrier {{\n  rotation_max_encryptions = 1000000\n  rotation_interval = \"720h\"\n}}\n"
            ),
            Path::new("test.hcl"),
        )
        .unwrap();
        assert_eq!(config.barrier.rotation_max_encryptions, 1_000_000);
        assert_eq!(
            config.barrier.rotation_interval,
            Some(Duration::from_secs(720 * 3600))
        );
        let defaults = parse(MINIMAL, Path::new("test.hcl")).unwrap().barrier;
        assert_eq!(defaults.rotation_max_encryptions, MAX_ROTATION_ENCRYPTIONS);
        assert_eq!(defaults.rotation_interval, None);

        let errs = errors(&format!(
            "{MINIMAL}barrier {{\n  rotation_max_encryptions = 5000000000\n  rotation_interval = \"1h\"\n  rotate = 1\n}}\n"
        ));
        assert!(
            errs[0].contains(
                "test.hcl:4: barrier.rotation_max_encryptions: must be between 1 and 3865470566"
            ),
            "{errs:?}"
        );
        assert!(
            errs[1].contains(
                "test.hcl:5: barrier.rotation_interval: must be \"0\" (off) or at least 24h"
            ),
            "{errs:?}"
        );
        assert!(
            errs[2].contains("test.hcl:6: barrier.rotate: unknown key"),
            "{errs:?}"
        );
        let errs = errors(&format!("{MINIMAL}barrier \"x\" {{}}\n"));
        assert!(
            errs[0].contains("the barrier block takes no label"),
            "{errs:?}"
        );
    }

    #[test]
    fn durations_read_like_vaults() {
        for (text, secs) in [
            ("0", 0),
            ("45", 45),
            ("10m", 600),
            ("1h30m", 5400),
            ("90s", 90),
        ] {
            assert_eq!(
                parse_duration(text),
                Some(Duration::from_secs(secs)),
                "{text}"
            );
        }
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        for bad in ["", "m", "10x", "1.5h", "-1s", "10 m"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn edit_distance_works() {
        assert_eq!(edit_distance("tls_cert_fil", "tls_cert_file"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
