//! `sys/…`: the seal lifecycle (seal-status, init, unseal, seal), health,
//! the HA leader and step-down, in Vault's shapes (the seal's in
//! `seal_status.rs`).
//!
//! Init on this surface commits at once, as Vault's does: a Vault client
//! never sends strongroom's confirmation step (docs/DECISIONS.md).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::seal_status::{seal_backend_status_json, seal_status_json};
use super::{HttpError, Op, Outcome, Reply, Request};
use crate::api::Gate;
use crate::api::actions;
use crate::audit::Field;
use crate::error::Error;
use crate::lifecycle::InitParams;
use crate::time::{format_unix, now_unix};

/// Routes `sys/<rest>`.
pub async fn route(gate: &Gate, request: &Request, rest: &str) -> Outcome {
    // `?list=true` on a path that lists nothing is the GET it is.
    let op = if request.listed_by_query {
        Op::Read
    } else {
        request.op
    };
    match (rest, op) {
        ("seal-status", Op::Read) => seal_status(gate, request).await,
        ("seal-backend-status", Op::Read) => seal_backend_status(gate, request).await,
        ("health", Op::Read) => health(gate, request),
        ("leader", Op::Read) => leader(gate),
        ("init", Op::Read) => Ok(Reply::ok(
            json!({ "initialized": gate.node().lifecycle.is_initialized() }),
        )),
        ("init", Op::Update) => init(gate, request).await,
        ("unseal", Op::Update) => unseal(gate, request).await,
        ("seal", Op::Update) => seal(gate, request).await,
        ("step-down", Op::Update) => step_down(gate, request).await,
        (
            "seal-status"
            | "seal-backend-status"
            | "health"
            | "leader"
            | "init"
            | "unseal"
            | "seal"
            | "step-down",
            _,
        ) => Err(HttpError::unsupported()),
        ("metrics", _) => super::metrics::route(gate, request).await,
        ("mounts" | "internal/ui/mounts", _) => super::mounts::route(gate, request, rest).await,
        _ if rest.starts_with("mounts/") || rest.starts_with("internal/ui/mounts/") => {
            super::mounts::route(gate, request, rest).await
        }
        _ if rest.starts_with("policies/") || rest.starts_with("policy") => {
            super::policy::route(gate, request, rest).await
        }
        _ => super::quorum::route(gate, request, rest).await,
    }
}

async fn seal_backend_status(gate: &Gate, request: &Request) -> Outcome {
    let lifecycle = &gate.node().lifecycle;
    let status = request
        .call(gate, &actions::SEAL_BACKEND_STATUS, "")
        .run(|_| async { Ok(lifecycle.status()) }, |_| Vec::new())
        .await?;
    Ok(Reply::ok(seal_backend_status_json(&status)))
}

async fn seal_status(gate: &Gate, request: &Request) -> Outcome {
    let lifecycle = &gate.node().lifecycle;
    let status = request
        .call(gate, &actions::STATUS, "")
        .run(|_| async { Ok(lifecycle.status()) }, |_| Vec::new())
        .await?;
    Ok(Reply::ok(seal_status_json(&status)))
}

/// The codes `sys/health` answers with, each replaceable by a query
/// parameter of the same name.
struct HealthCodes {
    active: u16,
    standby: u16,
    sealed: u16,
    uninit: u16,
}

impl HealthCodes {
    fn of(request: &Request) -> Result<Self, HttpError> {
        let code = |name: &str, default: u16| match request.query(name) {
            None => Ok(default),
            // Vault's answer to a code that is not one: 400 with no sentence
            // it would need to name.
            Some(v) => v
                .parse::<u16>()
                .ok()
                .filter(|c| (100..=999).contains(c))
                .ok_or_else(|| {
                    HttpError::bad_request(format!(
                        "the query parameter {name} must be an HTTP status code (100 to 999)"
                    ))
                }),
        };
        // Codes for roles strongroom never has (DR secondary, performance
        // standby) are checked all the same, as a client may send them.
        code("drsecondarycode", 472)?;
        code("performancestandbycode", 473)?;
        request.query_flag("perfstandbyok")?;
        Ok(Self {
            active: code("activecode", 200)?,
            standby: code("standbycode", 429)?,
            sealed: code("sealedcode", 503)?,
            uninit: code("uninitcode", 501)?,
        })
    }
}

/// `sys/health`: Vault's precedence (uninitialized, sealed, standby,
/// active), every code replaceable by its query parameter.
fn health(gate: &Gate, request: &Request) -> Outcome {
    let codes = HealthCodes::of(request)?;
    let standby_ok = request.query_flag("standbyok")?;
    let status = gate.node().lifecycle.status();
    let standby = status.sealed || status.ha.as_ref().is_some_and(|ha| !ha.is_self);
    let code = if !status.initialized {
        codes.uninit
    } else if status.sealed {
        codes.sealed
    } else if standby && !standby_ok {
        codes.standby
    } else {
        codes.active
    };
    let replication = if status.initialized && !status.sealed {
        "disabled"
    } else {
        "unknown"
    };
    let mut body = json!({
        "initialized": status.initialized,
        "sealed": status.sealed,
        "standby": standby,
        "replication_performance_mode": replication,
        "replication_dr_mode": replication,
        "server_time_utc": now_unix(),
        "version": status.version,
    });
    if !status.sealed {
        body["cluster_name"] = json!(status.cluster_name);
        body["cluster_id"] = json!(status.cluster_id);
    }
    // Checked above to be a status code.
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    Ok(Reply::json(code, body))
}

/// `sys/leader`: `{"ha_enabled": false}` on a node without HA, as
/// Vault's; with HA, the active node as the lease row advertises it.
fn leader(gate: &Gate) -> Outcome {
    let status = gate.node().lifecycle.status();
    let Some(ha) = status.ha else {
        return Ok(Reply::ok(json!({ "ha_enabled": false })));
    };
    if status.sealed {
        return Err(Error::Sealed.into());
    }
    let leader = ha.leader.unwrap_or_default();
    Ok(Reply::ok(json!({
        "ha_enabled": true,
        "is_self": ha.is_self,
        "active_time": rfc3339_ms(leader.active_since_unix_ms),
        "leader_address": leader.api_addr,
        "leader_cluster_address": leader.cluster_addr,
        "performance_standby": false,
        "performance_standby_last_remote_wal": 0,
    })))
}

/// Milliseconds since the epoch as RFC 3339 in UTC (Go's zero time for 0,
/// as Vault shows a leader it does not know).
fn rfc3339_ms(ms: u64) -> String {
    if ms == 0 {
        return "0001-01-01T00:00:00Z".into();
    }
    let formatted = format_unix(ms / 1000);
    match formatted.strip_suffix('Z') {
        Some(seconds) => format!("{seconds}.{:03}Z", ms % 1000),
        None => formatted,
    }
}

/// `PUT sys/init`'s body.
#[derive(Deserialize, Default)]
#[serde(default)]
struct InitBody {
    secret_shares: Option<u32>,
    secret_threshold: Option<u32>,
    recovery_shares: Option<u32>,
    recovery_threshold: Option<u32>,
    pgp_keys: Option<Vec<String>>,
    root_token_pgp_key: Option<String>,
    recovery_pgp_keys: Option<Vec<String>>,
    stored_shares: Option<u32>,
    emergency_shares: Option<u32>,
    emergency_threshold: Option<u32>,
}

impl InitBody {
    /// Refuses what strongroom does not take: PGP keys (age recipients
    /// instead), stored shares with the Shamir seal.
    fn check(&self, kms: bool) -> Result<(), Error> {
        let given = |keys: &Option<Vec<String>>| keys.as_ref().is_some_and(|k| !k.is_empty());
        if given(&self.pgp_keys)
            || given(&self.recovery_pgp_keys)
            || self
                .root_token_pgp_key
                .as_ref()
                .is_some_and(|k| !k.is_empty())
        {
            return Err(Error::InvalidArgument(
                "pgp_keys are not supported: strongroom encrypts shares to age or ssh-ed25519 recipients; run `strongroom init --recipients <age or ssh keys>` (one per share) instead".into(),
            ));
        }
        if self.stored_shares.is_some_and(|n| n > 0) && !kms {
            return Err(Error::InvalidArgument(
                "stored_shares is only for auto-unseal seals: the shamir seal keeps no shares"
                    .into(),
            ));
        }
        Ok(())
    }
}

async fn init(gate: &Gate, request: &Request) -> Outcome {
    let lifecycle = &gate.node().lifecycle;
    let kms = lifecycle.status().recovery_seal;
    let (call, asked) = request.call_json::<InitBody>(gate, &actions::INIT, "");
    let call = call.check(asked.check(kms));
    // Vault's auto-unseal init ignores secret_shares and takes the
    // recovery settings; the Shamir init takes the secret ones.
    let params = if kms {
        InitParams {
            key_shares: None,
            key_threshold: None,
            recovery_shares: asked.recovery_shares,
            recovery_threshold: asked.recovery_threshold,
            recipients: Vec::new(),
            root_token_recipient: None,
            emergency_shares: asked.emergency_shares,
            emergency_threshold: asked.emergency_threshold,
            emergency_recipients: Vec::new(),
        }
    } else {
        InitParams {
            key_shares: asked.secret_shares,
            key_threshold: asked.secret_threshold,
            recovery_shares: asked.recovery_shares.filter(|n| *n > 0),
            recovery_threshold: asked.recovery_threshold.filter(|n| *n > 0),
            recipients: Vec::new(),
            root_token_recipient: None,
            emergency_shares: asked.emergency_shares,
            emergency_threshold: asked.emergency_threshold,
            emergency_recipients: Vec::new(),
        }
    };
    let call = call
        .plain("key_shares", params.key_shares.unwrap_or(0))
        .plain("key_threshold", params.key_threshold.unwrap_or(0))
        .plain("recovery_shares", params.recovery_shares.unwrap_or(0))
        .plain("recovery_threshold", params.recovery_threshold.unwrap_or(0))
        .plain("emergency_shares", params.emergency_shares.unwrap_or(0))
        .plain(
            "emergency_threshold",
            params.emergency_threshold.unwrap_or(0),
        )
        .plain("committed", true);
    // Made and committed in one call: Vault's init has no confirmation.
    let result = call
        .run(
            |_| async move {
                let made = lifecycle.init(params).await?;
                lifecycle.init_confirm(&made.confirmation_nonce).await?;
                Ok(made)
            },
            |init| {
                vec![
                    ("shares", Field::Plain(init.shares.len().into())),
                    ("threshold", Field::Plain(init.threshold.into())),
                    ("recovery", Field::Plain(init.recovery.into())),
                ]
            },
        )
        .await?;
    let hex: Vec<String> = result
        .shares
        .iter()
        .map(|s| hex::encode(s.expose()))
        .collect();
    let base64: Vec<String> = result
        .shares
        .iter()
        .map(|s| STANDARD.encode(s.expose()))
        .collect();
    let mut body = if result.recovery {
        json!({
            "keys": [],
            "keys_base64": [],
            "recovery_keys": hex,
            "recovery_keys_base64": base64,
            "root_token": result.root_token.expose(),
        })
    } else {
        json!({
            "keys": hex,
            "keys_base64": base64,
            "root_token": result.root_token.expose(),
        })
    };
    // Only with an emergency seal, as Vault Enterprise answers.
    if let (Some(keys), Some(fields)) = (&result.emergency, body.as_object_mut()) {
        let encoded = |encode: fn(&[u8]) -> String| {
            keys.shares
                .iter()
                .map(|s| encode(s.expose()))
                .collect::<Vec<_>>()
        };
        fields.insert(
            "emergency_keys_b64".into(),
            json!(encoded(|b| STANDARD.encode(b))),
        );
        fields.insert(
            "emergency_keys_hex".into(),
            json!(encoded(|b| hex::encode(b))),
        );
        fields.insert("emergency_keys_shares".into(), json!(keys.shares.len()));
        fields.insert("emergency_keys_threshold".into(), json!(keys.threshold));
    }
    Ok(Reply::ok(body))
}

/// `PUT sys/unseal`'s body.
#[derive(Deserialize, Default)]
#[serde(default)]
struct UnsealBody {
    key: Option<String>,
    reset: bool,
    migrate: bool,
    /// The emergency seal's name: `key` is an emergency share.
    seal: String,
}

async fn unseal(gate: &Gate, request: &Request) -> Outcome {
    let (call, asked) = request.call_json::<UnsealBody>(gate, &actions::UNSEAL, "");
    let (reset, migrate) = (asked.reset, asked.migrate);
    let seal = asked.seal;
    let key = zeroize::Zeroizing::new(asked.key.unwrap_or_default());
    let keyless = if !reset && key.is_empty() {
        Err(Error::InvalidArgument(
            "'key' must be specified in request body as JSON, or 'reset' set to true".into(),
        ))
    } else if !reset && !hex_or_base64(key.trim()) {
        Err(Error::InvalidArgument(
            "'key' must be a valid hex or base64 string".into(),
        ))
    } else {
        Ok(())
    };
    let lifecycle = &gate.node().lifecycle;
    // The key never reaches the audit log, in any form.
    let outcome = call
        .check(keyless)
        .plain("reset", reset)
        .plain("migrate", migrate)
        .seal_name("seal", &seal)
        .run(
            |_| async move {
                lifecycle
                    .enter_unseal_request(&key, reset, migrate, &seal)
                    .await
            },
            |o| {
                vec![
                    ("sealed", Field::Plain(o.status.sealed.into())),
                    ("progress", Field::Plain(o.status.progress.into())),
                ]
            },
        )
        .await?;
    Ok(Reply::ok(seal_status_json(&outcome.status)))
}

async fn seal(gate: &Gate, request: &Request) -> Outcome {
    let lifecycle = &gate.node().lifecycle;
    request
        .call(gate, &actions::SEAL, "")
        .run(
            |_| async move {
                lifecycle.seal().await;
                Ok(())
            },
            |()| Vec::new(),
        )
        .await?;
    Ok(Reply::no_content())
}

/// A key's syntax as Vault checks it before anything else: hex, or base64
/// with or without padding.
fn hex_or_base64(key: &str) -> bool {
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    (key.len().is_multiple_of(2) && key.bytes().all(|b| b.is_ascii_hexdigit()))
        || STANDARD.decode(key).is_ok()
        || STANDARD_NO_PAD.decode(key).is_ok()
}

/// A node without HA has no role to give up: Vault answers 204 all the
/// same (after the same authorization and audit).
async fn step_down(gate: &Gate, request: &Request) -> Outcome {
    let lifecycle = &gate.node().lifecycle;
    request
        .call(gate, &actions::STEP_DOWN, "")
        .run(
            |_| async move {
                if lifecycle.is_ha() {
                    lifecycle.give_up_role()
                } else {
                    Ok(())
                }
            },
            |()| Vec::new(),
        )
        .await?;
    Ok(Reply::no_content())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_times_are_rfc3339_with_milliseconds() {
        assert_eq!(rfc3339_ms(0), "0001-01-01T00:00:00Z");
        assert_eq!(rfc3339_ms(1_000_123), "1970-01-01T00:16:40.123Z");
    }
}
