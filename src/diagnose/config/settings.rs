//! Each setting, its value and where it came from (a line of the file, an
//! environment variable, the default), as the daemon would run with it.
//! Secrets are never shown: the PostgreSQL URL's password is `***`, and
//! static AWS credentials are only said to be set.

use crate::config::{AuditDevice, AwsKmsSeal, Config, Listener, Setting, Source, StorageConfig};
use crate::diagnose::Finding;

/// The settings heading.
pub fn check(config: &Config) -> Finding {
    let mut children = vec![
        setting(
            "storage",
            config.storage.value.kind(),
            &config.storage.source,
        ),
        optional("cluster_name", &config.cluster_name),
        optional("api_addr", &config.api_addr),
        optional("cluster_addr", &config.cluster_addr),
        setting(
            "disable_mlock",
            config.disable_mlock.value,
            &config.disable_mlock.source,
        ),
        setting(
            "log_level",
            config.log_level.value.as_str(),
            &config.log_level.source,
        ),
        setting(
            "log_format",
            config.log_format.value.as_str(),
            &config.log_format.source,
        ),
    ];
    children.extend(storage(config));
    children.extend(config.listeners.iter().map(listener));
    children.extend(seals(config));
    children.extend(config.audit.iter().map(|device| match device {
        AuditDevice::File { path } => Finding::success("audit.file", path.display().to_string()),
        AuditDevice::Stdout => Finding::success("audit.stdout", "standard output"),
    }));
    Finding::heading("settings", "", children)
}

fn setting(name: &str, value: impl std::fmt::Display, source: impl std::fmt::Display) -> Finding {
    Finding::success(name, format!("{value} ({source})"))
}

fn optional(name: &str, setting: &Setting<Option<String>>) -> Finding {
    match &setting.value {
        Some(value) => self::setting(name, value, &setting.source),
        None => Finding::success(name, format!("not set ({})", setting.source)),
    }
}

fn at_line(line: usize) -> Source {
    if line == 0 {
        Source::Default
    } else {
        Source::File { line }
    }
}

/// Where a block's attribute came from when only the block's line is
/// known: the block set it, or left it to its default.
fn in_block(source: &Source) -> String {
    match source {
        Source::File { line } => {
            format!("the block at config file line {line}, or its default")
        }
        other => other.to_string(),
    }
}

fn storage(config: &Config) -> Vec<Finding> {
    let source = &config.storage.source;
    match &config.storage.value {
        StorageConfig::File { path, cache_size } => vec![
            setting("storage.file.path", path.display(), source),
            setting(
                "storage.file.cache_size",
                format!("{cache_size} bytes"),
                in_block(source),
            ),
        ],
        StorageConfig::Inmem => Vec::new(),
        StorageConfig::Postgresql(pg) => {
            let url = pg
                .connection_url
                .as_ref()
                .map_or_else(|| "not set".to_string(), |url| url.redacted());
            let block = in_block(&at_line(pg.line));
            vec![
                setting("storage.postgresql.connection_url", url, &pg.url_source),
                setting("storage.postgresql.table", &pg.table, &block),
                setting("storage.postgresql.ha_enabled", pg.ha_enabled, &block),
                setting("storage.postgresql.max_parallel", pg.max_parallel, &block),
                setting(
                    "storage.postgresql.skip_create_table",
                    pg.skip_create_table,
                    &block,
                ),
            ]
        }
    }
}

fn listener(listener: &Listener) -> Finding {
    match listener {
        Listener::Tcp(tcp) => {
            let tls = if tcp.tls.is_some() { "TLS" } else { "no TLS" };
            setting(
                "listener.tcp",
                format!("{}, {tls}", tcp.address),
                at_line(tcp.line),
            )
        }
        Listener::Unix(unix) => setting("listener.unix", unix.path.display(), at_line(unix.line)),
    }
}

fn seals(config: &Config) -> Vec<Finding> {
    let mut found: Vec<(String, &AwsKmsSeal, bool)> = Vec::new();
    if let Some(seal) = &config.seal {
        found.push(("seal.awskms".into(), seal, false));
    }
    if let Some(seal) = &config.disabled_seal {
        found.push(("seal.awskms".into(), seal, true));
    }
    if let Some(multi) = &config.multiseal {
        for named in &multi.seals {
            found.push((
                format!("seal.awskms.{}", named.name),
                &named.seal,
                named.disabled,
            ));
        }
    }
    let mut children: Vec<Finding> = found
        .into_iter()
        .map(|(name, seal, disabled)| {
            let mut parts = vec![format!(
                "kms_key_id {} ({})",
                seal.kms_key_id.value, seal.kms_key_id.source
            )];
            if let Some(region) = &seal.region {
                parts.push(format!("region {} ({})", region.value, region.source));
            }
            if let Some(endpoint) = &seal.endpoint {
                parts.push(format!("endpoint {} ({})", endpoint.value, endpoint.source));
            }
            if seal.credentials.access_key.is_some() || seal.credentials.secret_key.is_some() {
                parts.push("static credentials set (not shown)".into());
            }
            if disabled {
                parts.push("disabled".into());
            }
            Finding::success(
                &name,
                format!("{} (block at line {})", parts.join(", "), seal.line),
            )
        })
        .collect();
    if config.seal.is_none() && config.multiseal.is_none() {
        children.push(Finding::success("seal", "shamir (default)"));
    }
    children
}
