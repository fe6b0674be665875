//! Reading the HCL config file: every block and key checked, every error
//! with the file, its line and the key, all errors reported in one pass.
//!
//! [`Ctx`] collects the errors as the file is read; each block kind has its
//! own file: [`listener`] (with identity blocks), [`seal`], [`settings`]
//! (storage, audit, kv, barrier). [`values`] reads HCL values, [`words`]
//! writes the names and hints of errors.

mod listener;
mod migrate;
mod multiseal;
mod postgres;
mod seal;
mod settings;
mod telemetry;
mod values;
mod words;

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use hcl_edit::Span;
use hcl_edit::expr::Expression;
use hcl_edit::structure::{Attribute, Block, Body};

pub use values::parse_duration;

use super::{
    AuditDevice, AwsKmsSeal, BarrierConfig, Config, ConfigError, ConfigErrors, FileUse, KvSettings,
    Listener, Location, LogFormat, LogLevel, MigrateConfig, NamedFile, Setting, Source,
    StorageConfig, Telemetry,
};
use values::{as_bool, as_string};
use words::{example_label, qualified, unknown_message};

/// Parses the HCL text of `file` (used for messages and nothing else).
/// Relative paths inside resolve from the working directory. A UTF-8 byte
/// order mark at the start (Windows editors write one) is skipped.
pub fn parse(source: &str, file: &Path) -> Result<Config, ConfigErrors> {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let mut ctx = Ctx::new(source, file);
    let body = ctx.body(source)?;
    let config = ctx.config(&body);
    match config {
        Some(mut config) if ctx.errors.is_empty() => {
            config.files = ctx.files;
            config.warnings = ctx.warnings;
            Ok(config)
        }
        _ => Err(ctx.sorted_errors()),
    }
}

/// Parses the file of `operator migrate`: a `storage_source` and a
/// `storage_destination` block, each read as a `storage` block is.
pub fn parse_migrate(source: &str, file: &Path) -> Result<MigrateConfig, ConfigErrors> {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let mut ctx = Ctx::new(source, file);
    let body = ctx.body(source)?;
    match ctx.migrate(&body) {
        Some(config) if ctx.errors.is_empty() => Ok(config),
        _ => Err(ctx.sorted_errors()),
    }
}

/// The key of a line that hcl-edit refused as a redefined attribute (it
/// names neither the key nor the block).
fn redefined_key(source: &str, line: usize, message: &str) -> Option<String> {
    if !message.contains("redefined attribute") {
        return None;
    }
    let text = source.lines().nth(line.checked_sub(1)?)?;
    leading_key(text)
}

/// The `key` of a `key = value` line, if it has that form.
fn leading_key(text: &str) -> Option<String> {
    let (key, _) = text.split_once('=')?;
    let key = key.trim();
    let is_ident = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    is_ident.then(|| key.to_string())
}

/// The line (one-based) of the first invalid UTF-8 byte at `offset`, and
/// the key set on that line (or `syntax`).
pub fn locate_invalid_utf8(bytes: &[u8], offset: usize) -> (usize, String) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = 1 + before.iter().filter(|b| **b == b'\n').count();
    let start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let text = String::from_utf8_lossy(&before[start..]);
    let key = leading_key(&text).unwrap_or_else(|| "syntax".into());
    (line, key)
}

/// Vault keys that change nothing about safety: accepted with a warning, as
/// OpenBao does, so a pasted Vault config starts.
const IGNORED_VAULT_KEYS: [&str; 9] = [
    "ui",
    "pid_file",
    "log_file",
    "plugin_directory",
    "disable_cache",
    "raw_storage_endpoint",
    "disable_sealwrap",
    "default_lease_ttl",
    "max_lease_ttl",
];

/// The file being read, and the errors found so far.
struct Ctx<'a> {
    file: &'a Path,
    line_starts: Vec<usize>,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigError>,
    files: Vec<NamedFile>,
}

/// The attributes of one block, checked against the keys it may have.
struct Section<'b> {
    name: String,
    attrs: HashMap<&'b str, &'b Attribute>,
}

/// The blocks of the file, each kind where it goes, as they are read.
#[derive(Default)]
struct Blocks {
    storage: Option<(StorageConfig, usize)>,
    listeners: Vec<Listener>,
    seal: Option<AwsKmsSeal>,
    disabled_seal: Option<AwsKmsSeal>,
    /// Line of `enable_multiseal = true`; then every seal block goes to
    /// `seal_blocks`.
    multiseal_line: Option<usize>,
    seal_blocks: Vec<seal::SealBlock>,
    /// A seal block had errors of its own.
    seal_failed: bool,
    barrier: Option<BarrierConfig>,
    kv: Option<(KvSettings, usize)>,
    audit: Vec<AuditDevice>,
    telemetry: Option<Telemetry>,
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
            warnings: Vec::new(),
            files: Vec::new(),
        }
    }

    /// The file's HCL body, or its syntax error (a key set twice named).
    fn body(&mut self, source: &str) -> Result<Body, ConfigErrors> {
        hcl_edit::parser::parse_body(source).map_err(|e| {
            let line = e.location().line();
            match redefined_key(source, line, e.message()) {
                Some(key) => self.error(
                    line,
                    key,
                    "is set twice in the same block; keep one of them",
                ),
                None => self.error(line, "syntax", format!("invalid HCL: {}", e.message())),
            }
            ConfigErrors(std::mem::take(&mut self.errors))
        })
    }

    /// The errors found, in file order (the sort is stable, so one line
    /// keeps its order).
    fn sorted_errors(&mut self) -> ConfigErrors {
        let mut errors = std::mem::take(&mut self.errors);
        errors.sort_by_key(|e| match e.location {
            Location::File { line, .. } => line,
            Location::Env(_) => 0,
        });
        ConfigErrors(errors)
    }

    fn line(&self, span: Option<Range<usize>>) -> usize {
        span.map_or(0, |r| {
            self.line_starts.partition_point(|&start| start <= r.start)
        })
    }

    fn located(
        &self,
        line: usize,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            location: Location::File {
                path: self.file.to_path_buf(),
                line,
            },
            key: key.into(),
            message: message.into(),
        }
    }

    fn error(&mut self, line: usize, key: impl Into<String>, message: impl Into<String>) {
        let error = self.located(line, key, message);
        self.errors.push(error);
    }

    fn warning(&mut self, line: usize, key: impl Into<String>, message: impl Into<String>) {
        let warning = self.located(line, key, message);
        self.warnings.push(warning);
    }

    /// Records a file the daemon will read or append to, for the check
    /// before start.
    fn named_file(&mut self, path: &Path, line: usize, key: &str, usage: FileUse) {
        self.files.push(NamedFile {
            path: path.to_path_buf(),
            key: key.to_string(),
            line,
            usage,
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
            } else if name.is_empty() && IGNORED_VAULT_KEYS.contains(&key) {
                self.warning(
                    line,
                    key,
                    "is a Vault setting that strongroom does not use; ignored",
                );
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

    fn absolute(&mut self, path: &str, line: usize, key: &str) -> Option<PathBuf> {
        match std::path::absolute(path) {
            Ok(path) => Some(path),
            Err(e) => {
                self.error(line, key, format!("cannot make {path:?} absolute: {e}"));
                None
            }
        }
    }

    /// Refuses a second block of a kind that may appear once.
    fn only_one(&mut self, line: usize, what: &str, first: usize) {
        self.error(
            line,
            what,
            format!("only one {what} block is allowed (the first is on line {first})"),
        );
    }

    fn config(&mut self, body: &Body) -> Option<Config> {
        let top_keys = [
            "cluster_name",
            "api_addr",
            "cluster_addr",
            "disable_mlock",
            "log_level",
            "log_format",
            "enable_multiseal",
        ];
        let (top, blocks) = self.section(
            body,
            "",
            &top_keys,
            &[
                "storage",
                "listener",
                "seal",
                "barrier",
                "kv",
                "audit",
                "telemetry",
            ],
        );
        let cluster_name = self.cluster_name(&top);
        let api_addr = self.node_address(&top, "api_addr");
        let cluster_addr = self.node_address(&top, "cluster_addr");
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

        let mut read = Blocks {
            multiseal_line: self
                .boolean(&top, "enable_multiseal")
                .and_then(|(enabled, line)| enabled.then_some(line)),
            ..Blocks::default()
        };
        for block in blocks {
            self.block(&mut read, block);
        }
        let multiseal = read.multiseal_line.and_then(|line| {
            let blocks = std::mem::take(&mut read.seal_blocks);
            self.multiseal(line, blocks, read.seal_failed)
        });
        self.check_listeners_distinct(&read.listeners);
        if read.storage.is_none() && !self.has_error_for("storage") {
            self.error(1, "storage", "a storage block is required, such as storage \"file\" { path = \"/var/lib/strongroom\" }");
        }
        if read.listeners.is_empty() && !self.has_error_for("listener") {
            self.error(1, "listener", "at least one listener block is required, such as listener \"tcp\" { address = \"127.0.0.1:8400\" }");
        }
        let (storage, storage_line) = read.storage?;
        if let (Some(address), Source::File { line }) = (&cluster_addr.value, &cluster_addr.source)
            && crate::config::ha_enabled(&storage)
            && let Err(message) = crate::config::check_cluster_addr(address)
        {
            self.error(*line, "cluster_addr", message);
        }
        Some(Config {
            file: Some(self.file.to_path_buf()),
            cluster_name,
            api_addr,
            cluster_addr,
            disable_mlock,
            log_level: log_level.unwrap_or(Setting::default_value(LogLevel::Info)),
            log_format: log_format.unwrap_or(Setting::default_value(LogFormat::Text)),
            storage: Setting {
                value: storage,
                source: Source::File { line: storage_line },
            },
            listeners: read.listeners,
            seal: read.seal,
            disabled_seal: read.disabled_seal,
            multiseal,
            barrier: read.barrier.unwrap_or_default(),
            kv: read.kv.map(|(settings, _)| settings).unwrap_or_default(),
            audit: read.audit,
            telemetry: read.telemetry.unwrap_or_else(Telemetry::absent),
            files: Vec::new(),
            warnings: Vec::new(),
        })
    }

    /// `cluster_name`: a name, or unset to keep the one recorded at init.
    fn cluster_name(&mut self, top: &Section<'_>) -> Setting<Option<String>> {
        match self.string(top, "cluster_name") {
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
        }
    }

    /// `api_addr` or `cluster_addr`: a scheme, a host and a port.
    fn node_address(&mut self, top: &Section<'_>, key: &str) -> Setting<Option<String>> {
        match self.string(top, key) {
            Some((address, line)) => match crate::config::check_node_address(&address) {
                Ok(()) => Setting {
                    value: Some(address),
                    source: Source::File { line },
                },
                Err(message) => {
                    self.error(line, key, message);
                    Setting::default_value(None)
                }
            },
            None => Setting::default_value(None),
        }
    }

    /// Reads one top-level block into `read`.
    fn block(&mut self, read: &mut Blocks, block: &Block) {
        let line = self.line(block.span());
        match block.ident.as_str() {
            "kv" => match &read.kv {
                Some((_, first)) => self.only_one(line, "kv", *first),
                None => read.kv = self.kv(block, line).map(|settings| (settings, line)),
            },
            "barrier" => match &read.barrier {
                Some(first) => self.only_one(line, "barrier", first.line),
                None => read.barrier = self.barrier(block, line),
            },
            "telemetry" => match &read.telemetry {
                Some(first) => self.only_one(line, "telemetry", first.line),
                None => read.telemetry = self.telemetry(block, line),
            },
            ident => {
                let Some(kind) = self.single_label(block, line) else {
                    return;
                };
                match ident {
                    "storage" => match &read.storage {
                        Some((_, first)) => self.only_one(line, "storage", *first),
                        None => {
                            read.storage = self.storage(block, kind, line).map(|s| (s, line));
                        }
                    },
                    "audit" => {
                        let Some(device) = self.audit(block, kind, line) else {
                            return;
                        };
                        if read.audit.contains(&device) {
                            self.error(line, "audit", "the same audit device is configured twice");
                        } else {
                            read.audit.push(device);
                        }
                    }
                    "seal" => self.seal_block(read, block, kind, line),
                    _ => read.listeners.extend(self.listener(block, kind, line)),
                }
            }
        }
    }

    /// One seal in use, and during a migration one more that is marked
    /// disabled (the seal being left).
    /// With `enable_multiseal`, every seal block, put together afterwards.
    fn seal_block(&mut self, read: &mut Blocks, block: &Block, kind: &str, line: usize) {
        let Some(parsed) = self.seal(block, kind, line, read.multiseal_line.is_some()) else {
            read.seal_failed = true;
            return;
        };
        if read.multiseal_line.is_some() {
            read.seal_blocks.push(parsed);
            return;
        }
        let (Some(parsed), disabled) = (parsed.kms, parsed.disabled) else {
            return;
        };
        let slot = if disabled {
            &mut read.disabled_seal
        } else {
            &mut read.seal
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
            return;
        }
        *slot = Some(parsed);
    }
}

/// The errors of parsing `source` as `test.hcl`, as printed.
#[cfg(test)]
fn errors(source: &str) -> Vec<String> {
    parse(source, Path::new("test.hcl"))
        .unwrap_err()
        .0
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// The smallest valid config.
#[cfg(test)]
const MINIMAL: &str = "storage \"inmem\" {}\nlistener \"tcp\" { address = \"127.0.0.1:8400\" }\n";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_MAX_REQUEST_SIZE;
    use listener::DEFAULT_ADDRESS;

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
                path: "/var/lib/strongroom".into(),
                cache_size: crate::config::DEFAULT_STORAGE_CACHE_SIZE,
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
                "test.hcl:1: storage: unknown storage type \"s3\" (strongroom has \"file\", \"postgresql\" and \"inmem\")"
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
        assert_eq!(
            errs,
            vec!["test.hcl:2: log_level: is set twice in the same block; keep one of them"]
        );
        let errs = errors(
            "storage \"inmem\" {}\nlistener \"tcp\" {\n  address = \"127.0.0.1:1\"\n  address = \"127.0.0.1:2\"\n}\n",
        );
        assert_eq!(
            errs,
            vec!["test.hcl:4: address: is set twice in the same block; keep one of them"]
        );
        let errs = errors(&format!("{MINIMAL}storage \"inmem\" {{}}\n"));
        assert_eq!(
            errs,
            vec!["test.hcl:3: storage: only one storage block is allowed (the first is on line 1)"]
        );
    }

    #[test]
    fn a_byte_order_mark_is_skipped() {
        let config = parse(&format!("\u{feff}{MINIMAL}"), Path::new("t.hcl")).unwrap();
        assert_eq!(config.listeners.len(), 1);
    }

    #[test]
    fn invalid_utf8_is_located() {
        let bytes = b"storage \"inmem\" {}\ncluster_name = \"a\xffb\"\n";
        let offset = bytes.iter().position(|b| *b == 0xff).unwrap();
        assert_eq!(
            locate_invalid_utf8(bytes, offset),
            (2, "cluster_name".to_string())
        );
        assert_eq!(locate_invalid_utf8(b"\xff", 0), (1, "syntax".to_string()));
    }

    #[test]
    fn vault_keys_that_change_nothing_warn() {
        let config = parse(
            &format!(
                "ui = true\npid_file = \"/run/v.pid\"\ndefault_lease_ttl = \"768h\"\n{MINIMAL}"
            ),
            Path::new("test.hcl"),
        )
        .unwrap();
        let warnings: Vec<String> = config.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            vec![
                "test.hcl:1: ui: is a Vault setting that strongroom does not use; ignored",
                "test.hcl:2: pid_file: is a Vault setting that strongroom does not use; ignored",
                "test.hcl:3: default_lease_ttl: is a Vault setting that strongroom does not use; ignored",
            ]
        );
        // Anything that could weaken or change what was asked stays refused.
        let errs = errors(&format!(
            "ha_storage \"raft\" {{}}\nlog_levle = \"info\"\n{MINIMAL}"
        ));
        assert!(
            errs[0].starts_with("test.hcl:1: ha_storage: unknown block"),
            "{errs:?}"
        );
        assert!(
            errs[1].contains("(did you mean \"log_level\"?)"),
            "{errs:?}"
        );
        let errs = errors("storage \"raft\" {}\nlistener \"tcp\" { ui = true }\n");
        assert!(
            errs[0].contains("unknown storage type \"raft\""),
            "{errs:?}"
        );
        assert!(errs[1].contains("listener.tcp.ui: unknown key"), "{errs:?}");
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
    fn with_ha_cluster_addr_must_be_https() {
        let ha = "storage \"postgresql\" {\n  connection_url = \"postgres://db/s\"\n  ha_enabled = true\n}\nlistener \"tcp\" { address = \"127.0.0.1:8400\" }\n";
        let errs = errors(&format!("{ha}cluster_addr = \"http://10.0.0.5:8201\"\n"));
        assert_eq!(
            errs,
            [
                "test.hcl:6: cluster_addr: must be an https:// address with storage.postgresql.ha_enabled (the nodes forward calls to each other over mutual TLS on it), such as https://10.0.0.5:8201; got \"http://10.0.0.5:8201\""
            ]
        );
        parse(
            &format!("{ha}cluster_addr = \"https://10.0.0.5:8201\"\n"),
            Path::new("test.hcl"),
        )
        .unwrap();
        // Without HA it is not used, so not checked.
        parse(
            &format!("{MINIMAL}cluster_addr = \"http://10.0.0.5:8201\"\n"),
            Path::new("test.hcl"),
        )
        .unwrap();
        // From the environment too.
        let mut config = parse(ha, Path::new("test.hcl")).unwrap();
        let errors = crate::config::apply_env(&mut config, |var| {
            (var == "STRONGROOM_CLUSTER_ADDR").then(|| "http://10.0.0.5:8201".to_string())
        })
        .unwrap_err();
        assert!(
            errors
                .to_string()
                .contains("STRONGROOM_CLUSTER_ADDR: must be an https:// address"),
            "{errors}"
        );
    }
}
