//! `strongroom status`: the seal state as `bao status` prints it (a
//! Key/Value table, or JSON), with strongroom's additions: auto-unseal
//! progress, warnings, and with several seals one row per seal.

use serde::Serialize;

use super::output::{print_json, print_table};
use super::{CliError, Format};
use crate::proto;

/// `bao status -format=json`, field for field where strongroom has the field.
#[derive(Serialize)]
struct StatusJson<'a> {
    #[serde(rename = "type")]
    seal_type: &'a str,
    initialized: bool,
    sealed: bool,
    t: u32,
    n: u32,
    progress: u32,
    nonce: &'a str,
    version: &'a str,
    migration: bool,
    cluster_name: &'a str,
    cluster_id: &'a str,
    recovery_seal: bool,
    #[serde(skip_serializing_if = "str::is_empty")]
    recovery_seal_type: &'a str,
    storage_type: &'a str,
    ha_enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_self: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    active_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    leader_address: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    leader_cluster_address: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ha_mode: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auto_unseal: Option<AutoUnsealJson<'a>>,
    #[serde(skip_serializing_if = "str::is_empty")]
    kms_key_arn: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    warnings: &'a [String],
    #[serde(skip_serializing_if = "str::is_empty")]
    storage_error: &'a str,
    /// With several seals: each one, in priority order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    seals: Vec<SealJson<'a>>,
}

#[derive(Serialize)]
struct AutoUnsealJson<'a> {
    state: &'a str,
    attempts: u32,
    last_error: &'a str,
    next_attempt_unix_ms: u64,
    /// With several seals: the seal that unsealed last.
    #[serde(skip_serializing_if = "str::is_empty")]
    seal: &'a str,
}

/// One seal; `unhealthy_since` (RFC 3339, as Vault's seal-backend-status)
/// and `last_error` only while unhealthy.
#[derive(Serialize)]
struct SealJson<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    seal_type: &'a str,
    priority: u32,
    disabled: bool,
    #[serde(skip_serializing_if = "str::is_empty")]
    key_id: &'a str,
    healthy: bool,
    #[serde(skip_serializing_if = "str::is_empty")]
    unhealthy_since: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    last_error: &'a str,
    fully_wrapped: bool,
    holds_keys: bool,
    /// The emergency seal's keys issued and needed (absent for KMS seals).
    #[serde(skip_serializing_if = "is_zero")]
    shares: u32,
    #[serde(skip_serializing_if = "is_zero")]
    threshold: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// When the active node took the role, as `bao status` prints it (Go's
/// zero time when unknown).
fn active_time(status: &proto::StatusResponse) -> String {
    match status.active_time_unix_ms {
        0 => "0001-01-01T00:00:00Z".into(),
        ms => crate::time::format_unix(ms / 1000),
    }
}

/// When a seal became unhealthy, RFC 3339; empty while healthy or unknown.
fn unhealthy_since(seal: &proto::SealBackend) -> String {
    match seal.unhealthy_since_unix_ms {
        0 => String::new(),
        _ if seal.healthy => String::new(),
        ms => crate::time::format_unix(ms / 1000),
    }
}

/// Prints `status` in `format`.
pub(super) fn print_status(status: &proto::StatusResponse, format: Format) -> Result<(), CliError> {
    if format == Format::Json {
        return print_json(&status_json(status));
    }
    let rows = status_rows(status);
    let rows: Vec<(&str, String)> = rows.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    print_table(&rows);
    Ok(())
}

fn status_json(status: &proto::StatusResponse) -> StatusJson<'_> {
    // Shown only when the store is unsealed, as `bao status` does.
    let ha = status.ha_enabled && !status.sealed;
    StatusJson {
        seal_type: &status.r#type,
        initialized: status.initialized,
        sealed: status.sealed,
        t: status.threshold,
        n: status.shares,
        progress: status.progress,
        nonce: &status.nonce,
        version: &status.version,
        migration: status.migration,
        cluster_name: &status.cluster_name,
        cluster_id: &status.cluster_id,
        recovery_seal: status.recovery_seal,
        recovery_seal_type: &status.recovery_seal_type,
        storage_type: &status.storage_type,
        ha_enabled: status.ha_enabled,
        is_self: ha.then_some(status.is_self),
        active_time: ha.then(|| active_time(status)),
        leader_address: ha.then_some(status.leader_address.as_str()),
        leader_cluster_address: ha.then_some(status.leader_cluster_address.as_str()),
        ha_mode: ha.then_some(status.ha_mode.as_str()),
        auto_unseal: status.auto_unseal.as_ref().map(|a| AutoUnsealJson {
            state: &a.state,
            attempts: a.attempts,
            last_error: &a.last_error,
            next_attempt_unix_ms: a.next_attempt_unix_ms,
            seal: &a.seal,
        }),
        kms_key_arn: &status.kms_key_arn,
        warnings: &status.warnings,
        storage_error: &status.storage_error,
        seals: status
            .seals
            .iter()
            .map(|s| SealJson {
                name: &s.name,
                seal_type: &s.r#type,
                priority: s.priority,
                disabled: s.disabled,
                key_id: &s.key_id,
                healthy: s.healthy,
                unhealthy_since: unhealthy_since(s),
                last_error: if s.healthy { "" } else { &s.last_error },
                fully_wrapped: s.fully_wrapped,
                holds_keys: s.holds_keys,
                shares: s.shares,
                threshold: s.threshold,
            })
            .collect(),
    }
}

/// The table's rows, `bao status`'s first.
fn status_rows(status: &proto::StatusResponse) -> Vec<(String, String)> {
    let ha = status.ha_enabled && !status.sealed;
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut row = |key: &str, value: String| rows.push((key.to_string(), value));
    row("Seal Type", status.r#type.clone());
    row("Initialized", status.initialized.to_string());
    row("Sealed", status.sealed.to_string());
    row("Total Shares", status.shares.to_string());
    row("Threshold", status.threshold.to_string());
    if status.initialized && status.sealed {
        row(
            "Unseal Progress",
            format!("{}/{}", status.progress, status.threshold),
        );
        row("Unseal Nonce", status.nonce.clone());
    }
    if status.recovery_seal {
        row("Recovery Seal Type", status.recovery_seal_type.clone());
    }
    if status.migration {
        row("Seal Migration in Progress", "true".into());
    }
    if !status.kms_key_arn.is_empty() {
        row("KMS Key", status.kms_key_arn.clone());
    }
    if let Some(auto) = &status.auto_unseal {
        row("Auto-Unseal", auto_unseal_in_words(&auto.state));
        if !auto.seal.is_empty() {
            row("Auto-Unseal Seal", auto.seal.clone());
        }
        if auto.attempts > 0 {
            row("Auto-Unseal Attempts", auto.attempts.to_string());
        }
        if !auto.last_error.is_empty() {
            row("Auto-Unseal Error", auto.last_error.clone());
        }
        if auto.next_attempt_unix_ms > 0 {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            let wait = u128::from(auto.next_attempt_unix_ms).saturating_sub(now);
            row(
                "Auto-Unseal Next Attempt",
                format!("in {:.1} s", wait as f64 / 1000.0),
            );
        }
    }
    for seal in &status.seals {
        row(&format!("Seal {}", seal.name), seal_in_words(seal));
    }
    row("Version", status.version.clone());
    row("Storage Type", status.storage_type.clone());
    if status.initialized {
        row("Cluster Name", status.cluster_name.clone());
        row("Cluster ID", status.cluster_id.clone());
    }
    if !status.storage_error.is_empty() {
        row("Storage Error", status.storage_error.clone());
    }
    row("HA Enabled", status.ha_enabled.to_string());
    if ha {
        row("HA Cluster", status.leader_cluster_address.clone());
        row("HA Mode", status.ha_mode.clone());
        if status.is_self {
            row("Active Since", active_time(status));
        } else {
            let leader = match status.leader_address.as_str() {
                "" => "(none yet)".to_string(),
                address => address.to_string(),
            };
            row("Active Node Address", leader);
        }
    }
    for warning in &status.warnings {
        row("Warning", warning.clone());
    }
    rows
}

/// One seal on one line: type, priority, health, wrapping, last error.
fn seal_in_words(seal: &proto::SealBackend) -> String {
    if seal.r#type == "shamir" {
        // The emergency seal: shares held offline, never tried by itself.
        return match seal.shares {
            0 => "shamir, emergency, not set up: run `strongroom rekey --init --target emergency`"
                .into(),
            n => format!(
                "shamir, emergency, {} of {n} keys (unseals only when no KMS seal can)",
                seal.threshold
            ),
        };
    }
    let mut words = vec![seal.r#type.clone(), format!("priority {}", seal.priority)];
    if seal.disabled {
        words.push("disabled (decrypt-only)".into());
    }
    words.push(match unhealthy_since(seal) {
        _ if seal.healthy => "healthy".into(),
        since if since.is_empty() => "unhealthy".into(),
        since => format!("unhealthy since {since}"),
    });
    words.push(match (seal.fully_wrapped, seal.holds_keys) {
        (true, _) => "fully wrapped".into(),
        (false, true) => "not fully wrapped".into(),
        // A disabled seal at this point can leave the config.
        (false, false) => "holds no keys".into(),
    });
    let mut line = words.join(", ");
    if !seal.healthy && !seal.last_error.is_empty() {
        line.push_str(": ");
        line.push_str(&seal.last_error);
    }
    line
}

/// Auto-unseal's state for people; the JSON keeps the documented values.
fn auto_unseal_in_words(state: &str) -> String {
    match state {
        "idle" => "not initialized".into(),
        "in_progress" => "in progress".into(),
        "stopped" => "stopped (sealed by an operator)".into(),
        "migration" => "seal migration pending".into(),
        other => other.replace('_', " "),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn auto_unseal_states_read_as_words() {
        for (state, words) in [
            ("idle", "not initialized"),
            ("in_progress", "in progress"),
            ("unsealed", "unsealed"),
            ("failed", "failed"),
            ("stopped", "stopped (sealed by an operator)"),
            ("migration", "seal migration pending"),
            ("some_new_state", "some new state"),
        ] {
            assert_eq!(auto_unseal_in_words(state), words);
        }
    }

    fn seal(name: &str, priority: u32, healthy: bool) -> proto::SealBackend {
        proto::SealBackend {
            name: name.into(),
            r#type: "awskms".into(),
            priority,
            disabled: false,
            key_id: format!("alias/{name}"),
            healthy,
            // 2023-09-22T08:34:11Z
            unhealthy_since_unix_ms: if healthy { 0 } else { 1_695_371_651_250 },
            last_error: if healthy {
                String::new()
            } else {
                "KMS did not answer within 5 s".into()
            },
            fully_wrapped: healthy,
            holds_keys: true,
            shares: 0,
            threshold: 0,
        }
    }

    /// Unsealed by "tokyo"; "osaka" unhealthy; the emergency seal.
    fn two_seals() -> proto::StatusResponse {
        proto::StatusResponse {
            r#type: "multiseal".into(),
            initialized: true,
            recovery_seal: true,
            recovery_seal_type: "shamir".into(),
            auto_unseal: Some(proto::AutoUnseal {
                state: "unsealed".into(),
                attempts: 1,
                seal: "tokyo".into(),
                ..proto::AutoUnseal::default()
            }),
            seals: vec![
                seal("tokyo", 1, true),
                seal("osaka", 2, false),
                proto::SealBackend {
                    name: "emergency".into(),
                    r#type: "shamir".into(),
                    healthy: true,
                    ..proto::SealBackend::default()
                },
            ],
            ..proto::StatusResponse::default()
        }
    }

    fn value(rows: &[(String, String)], key: &str) -> Option<String> {
        rows.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    #[test]
    fn the_table_has_one_row_per_seal() {
        let rows = status_rows(&two_seals());
        assert_eq!(value(&rows, "Seal Type").as_deref(), Some("multiseal"));
        assert_eq!(value(&rows, "Auto-Unseal Seal").as_deref(), Some("tokyo"));
        let seals: Vec<(&str, &str)> = rows
            .iter()
            .filter(|(k, _)| k.starts_with("Seal ") && k != "Seal Type")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            seals,
            [
                ("Seal tokyo", "awskms, priority 1, healthy, fully wrapped"),
                (
                    "Seal osaka",
                    "awskms, priority 2, unhealthy since 2023-09-22T08:34:11Z, not fully wrapped: KMS did not answer within 5 s"
                ),
                (
                    "Seal emergency",
                    "shamir, emergency, not set up: run `strongroom rekey --init --target emergency`"
                ),
            ]
        );
        let mut set_up = two_seals();
        (set_up.seals[2].shares, set_up.seals[2].threshold) = (5, 3);
        assert_eq!(
            value(&status_rows(&set_up), "Seal emergency").as_deref(),
            Some("shamir, emergency, 3 of 5 keys (unseals only when no KMS seal can)")
        );
        leaving_seals_say_when_they_hold_no_keys();
    }

    fn leaving_seals_say_when_they_hold_no_keys() {
        let mut leaving = two_seals();
        leaving.seals[0].disabled = true;
        assert_eq!(
            value(&status_rows(&leaving), "Seal tokyo").as_deref(),
            Some("awskms, priority 1, disabled (decrypt-only), healthy, fully wrapped")
        );
        (leaving.seals[0].fully_wrapped, leaving.seals[0].holds_keys) = (false, false);
        assert_eq!(
            value(&status_rows(&leaving), "Seal tokyo").as_deref(),
            Some("awskms, priority 1, disabled (decrypt-only), healthy, holds no keys")
        );
    }

    #[test]
    fn one_seal_prints_as_before() {
        let one = proto::StatusResponse {
            r#type: "awskms".into(),
            kms_key_arn: "arn:aws:kms:us-east-1:123456789012:key/k".into(),
            auto_unseal: Some(proto::AutoUnseal {
                state: "unsealed".into(),
                attempts: 1,
                ..proto::AutoUnseal::default()
            }),
            ..proto::StatusResponse::default()
        };
        let keys: Vec<String> = status_rows(&one).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "Seal Type",
                "Initialized",
                "Sealed",
                "Total Shares",
                "Threshold",
                "KMS Key",
                "Auto-Unseal",
                "Auto-Unseal Attempts",
                "Version",
                "Storage Type",
                "HA Enabled"
            ]
        );
        let json = serde_json::to_value(status_json(&one)).unwrap();
        assert!(json.get("seals").is_none());
        assert!(json["auto_unseal"].get("seal").is_none());
    }

    #[test]
    fn json_lists_the_seals() {
        let status = two_seals();
        let json = serde_json::to_value(status_json(&status)).unwrap();
        assert_eq!(json["type"], "multiseal");
        assert_eq!(json["auto_unseal"]["seal"], "tokyo");
        assert_eq!(
            json["seals"],
            json!([
                {"name": "tokyo", "type": "awskms", "priority": 1, "disabled": false,
                 "key_id": "alias/tokyo", "healthy": true, "fully_wrapped": true,
                 "holds_keys": true},
                {"name": "osaka", "type": "awskms", "priority": 2, "disabled": false,
                 "key_id": "alias/osaka", "healthy": false,
                 "unhealthy_since": "2023-09-22T08:34:11Z",
                 "last_error": "KMS did not answer within 5 s", "fully_wrapped": false,
                 "holds_keys": true},
                {"name": "emergency", "type": "shamir", "priority": 0, "disabled": false,
                 "healthy": true, "fully_wrapped": false, "holds_keys": false},
            ])
        );
    }
}
