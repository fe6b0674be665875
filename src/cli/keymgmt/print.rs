//! How `strongroom keymgmt` shows providers, keys and distributions: `bao`'s
//! key/value tables, a column table of a distribution's versions, and JSON
//! with Vault's field names.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cli::output::{outln, print_json, print_table};
use crate::cli::{CliError, Format};
use crate::proto;
use crate::time::format_unix;

/// A list of names under `title`, or a JSON array.
pub fn names(title: &str, names: &[String], format: Format) -> Result<(), CliError> {
    if format == Format::Json {
        return print_json(&names);
    }
    outln!("{title}\n{}", "-".repeat(title.len()));
    for name in names {
        outln!("{name}");
    }
    Ok(())
}

/// A provider's settings; never its credentials, only whether static ones
/// are stored.
pub fn provider(info: &proto::ProviderInfo, format: Format) -> Result<(), CliError> {
    if format == Format::Json {
        #[derive(Serialize)]
        struct Json<'a> {
            name: &'a str,
            provider: &'a str,
            key_collection: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            endpoint: &'a str,
            static_credentials: bool,
        }
        return print_json(&Json {
            name: &info.name,
            provider: &info.provider,
            key_collection: &info.key_collection,
            endpoint: &info.endpoint,
            static_credentials: info.static_credentials,
        });
    }
    let endpoint = if info.endpoint.is_empty() {
        "n/a (AWS's regional endpoint)".to_string()
    } else {
        info.endpoint.clone()
    };
    let credentials = if info.static_credentials {
        "static (stored; never shown)"
    } else {
        "the daemon's AWS credential chain"
    };
    print_table(&[
        ("name", info.name.clone()),
        ("provider", info.provider.clone()),
        ("key_collection", info.key_collection.clone()),
        ("endpoint", endpoint),
        ("credentials", credentials.into()),
    ]);
    Ok(())
}

/// A key's settings and versions; never its material.
pub fn key(info: &proto::KeyMgmtKeyInfo, format: Format) -> Result<(), CliError> {
    if format == Format::Json {
        #[derive(Serialize)]
        struct Version {
            creation_time: String,
        }
        #[derive(Serialize)]
        struct Json<'a> {
            name: &'a str,
            r#type: &'a str,
            deletion_allowed: bool,
            min_enabled_version: u32,
            latest_version: u32,
            versions: BTreeMap<u32, Version>,
        }
        return print_json(&Json {
            name: &info.name,
            r#type: &info.r#type,
            deletion_allowed: info.deletion_allowed,
            min_enabled_version: info.min_enabled_version,
            latest_version: info.latest_version,
            versions: (1..)
                .zip(&info.version_created_unix)
                .map(|(v, t)| {
                    let creation_time = format_unix(*t);
                    (v, Version { creation_time })
                })
                .collect(),
        });
    }
    print_table(&[
        ("name", info.name.clone()),
        ("type", info.r#type.clone()),
        ("deletion_allowed", info.deletion_allowed.to_string()),
        ("min_enabled_version", info.min_enabled_version.to_string()),
        ("latest_version", info.latest_version.to_string()),
    ]);
    outln!("\nVersion    Created");
    for (version, created) in (1..).zip(&info.version_created_unix) {
        outln!("{version:<10} {}", format_unix(*created));
    }
    Ok(())
}

/// When a removed distribution's KMS keys are deleted, as RFC 3339.
pub fn deletion_date(info: &proto::DistributionInfo) -> Option<String> {
    u64::try_from(info.pending_deletion_until)
        .ok()
        .filter(|until| *until > 0)
        .map(format_unix)
}

/// A version's state in words: a removed one says until when.
fn state(version: &proto::DistributedVersion, until: Option<&str>) -> String {
    match (version.state.as_str(), until) {
        ("pending_deletion", Some(until)) => format!("pending deletion until {until}"),
        (state, _) => state.replace('_', " "),
    }
}

/// A distribution: its alias and settings, then each version's KMS key and
/// state.
pub fn distribution(info: &proto::DistributionInfo, format: Format) -> Result<(), CliError> {
    let until = deletion_date(info);
    if format == Format::Json {
        #[derive(Serialize)]
        struct Version<'a> {
            version: u32,
            kms_key_id: &'a str,
            arn: &'a str,
            state: &'a str,
        }
        #[derive(Serialize)]
        struct Json<'a> {
            provider: &'a str,
            key: &'a str,
            alias: &'a str,
            alias_version: u32,
            purpose: &'a [String],
            protection: &'a str,
            pending_deletion_until: Option<&'a str>,
            versions: Vec<Version<'a>>,
        }
        return print_json(&Json {
            provider: &info.provider,
            key: &info.key,
            alias: &info.alias,
            alias_version: info.alias_version,
            purpose: &info.purpose,
            protection: &info.protection,
            pending_deletion_until: until.as_deref(),
            versions: info
                .versions
                .iter()
                .map(|v| Version {
                    version: v.version,
                    kms_key_id: &v.kms_key_id,
                    arn: &v.arn,
                    state: &v.state,
                })
                .collect(),
        });
    }
    let status = match &until {
        Some(until) => format!("removed: KMS keys pending deletion until {until}"),
        None => "distributed".into(),
    };
    let alias_version = match info.alias_version {
        0 => "none".to_string(),
        v => v.to_string(),
    };
    print_table(&[
        ("provider", info.provider.clone()),
        ("key", info.key.clone()),
        ("alias", info.alias.clone()),
        ("alias_version", alias_version),
        ("purpose", info.purpose.join(",")),
        ("protection", info.protection.clone()),
        ("status", status),
    ]);
    versions(info, until.as_deref());
    Ok(())
}

/// The versions' columns, each as wide as its longest cell.
fn versions(info: &proto::DistributionInfo, until: Option<&str>) {
    let shown = |text: &str| if text.is_empty() { "-" } else { text }.to_string();
    let rows: Vec<[String; 4]> = info
        .versions
        .iter()
        .map(|v| {
            [
                v.version.to_string(),
                shown(&v.kms_key_id),
                shown(&v.arn),
                state(v, until),
            ]
        })
        .collect();
    let header = ["Version", "KMS key id", "ARN", "State"];
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].len())
            .chain([header[i].len()])
            .max()
            .unwrap_or(0)
    };
    let (w0, w1, w2) = (width(0), width(1), width(2));
    outln!();
    outln!(
        "{:w0$}    {:w1$}    {:w2$}    {}",
        header[0],
        header[1],
        header[2],
        header[3]
    );
    for [version, id, arn, state] in rows {
        outln!("{version:w0$}    {id:w1$}    {arn:w2$}    {state}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn removed(until: i64) -> proto::DistributionInfo {
        proto::DistributionInfo {
            provider: "aws".into(),
            key: "orders".into(),
            alias: "alias/orders".into(),
            pending_deletion_until: until,
            versions: vec![proto::DistributedVersion {
                version: 1,
                kms_key_id: "k1".into(),
                arn: "arn:k1".into(),
                state: "pending_deletion".into(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_removed_distribution_says_until_when() {
        let info = removed(1_800_000_000);
        let until = deletion_date(&info);
        assert_eq!(until.as_deref(), Some("2027-01-15T08:00:00Z"));
        assert_eq!(
            state(&info.versions[0], until.as_deref()),
            "pending deletion until 2027-01-15T08:00:00Z"
        );
    }

    #[test]
    fn a_live_distribution_has_no_deletion_date() {
        let mut info = removed(0);
        info.versions[0].state = "enabled".into();
        assert_eq!(deletion_date(&info), None);
        assert_eq!(state(&info.versions[0], None), "enabled");
        info.pending_deletion_until = -5;
        assert_eq!(deletion_date(&info), None, "a negative time is no date");
    }
}
