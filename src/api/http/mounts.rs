//! `sys/mounts`, `sys/mounts/<mount>/tune` and
//! `sys/internal/ui/mounts/<path>`: the engines
//! strongroom serves, in Vault's shapes, read-only. They are fixed: kv v2
//! at `secret/`, transit at `transit/`, Key Management at `keymgmt/`, the
//! system backend at `sys/`, and token auth at `auth/token/`. Vault's CLI asks
//! `sys/internal/ui/mounts/<path>` before any `kv` command, to learn the
//! mount and its kv version.

use http::StatusCode;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{HttpError, Op, Outcome, Reply, Request};
use crate::access::token::MAX_TTL_SECS;
use crate::api::Gate;
use crate::api::actions;
use crate::error::Error;
use crate::text;

/// One mount: its path, type, description and options.
struct Mount {
    path: &'static str,
    kind: &'static str,
    description: &'static str,
    options: fn() -> Value,
}

/// The secret engines.
const SECRET: &[Mount] = &[
    Mount {
        path: "secret/",
        kind: "kv",
        description: "key/value secret storage",
        options: || json!({ "version": "2" }),
    },
    Mount {
        path: "sys/",
        kind: "system",
        description: "system endpoints used for control, policy and debugging",
        options: || Value::Null,
    },
    Mount {
        path: "transit/",
        kind: "transit",
        description: "",
        options: || json!({}),
    },
    Mount {
        path: "keymgmt/",
        kind: "keymgmt",
        description: "keys distributed to KMS providers",
        options: || json!({}),
    },
];

/// The auth methods, under `auth/`.
const AUTH: &[Mount] = &[Mount {
    path: "token/",
    kind: "token",
    description: "token based credentials",
    options: || Value::Null,
}];

/// Routes `sys/mounts…` and `sys/internal/ui/mounts…`.
pub async fn route(gate: &Gate, request: &Request, rest: &str) -> Outcome {
    if let Some(path) = rest.strip_prefix("internal/ui/mounts") {
        return match request.op {
            Op::Read => lookup(gate, request, path.trim_start_matches('/')).await,
            _ => Err(HttpError::unsupported()),
        };
    }
    if let Some(mount) = rest
        .strip_prefix("mounts/")
        .and_then(|r| r.strip_suffix("/tune"))
    {
        return match request.op {
            Op::Read => tune(gate, request, mount).await,
            // What OpenBao answers a tune it cannot make: 400, a sentence.
            Op::Update => Err(HttpError::bad_request(format!(
                "tuning is not supported: strongroom's mounts are fixed, with the settings sys/mounts/{}/tune reads",
                text::quote(mount)
            ))),
            _ => Err(HttpError::unsupported()),
        };
    }
    match (rest, request.op) {
        ("mounts", Op::Read) => mounts(gate, request).await,
        ("mounts", _) => Err(HttpError::unsupported()),
        (_, Op::Read) if rest.starts_with("mounts/") => {
            let name = rest.trim_start_matches("mounts/");
            one(gate, request, name).await
        }
        // Enabling, tuning or disabling an engine.
        _ => Err(HttpError::bad_request(
            "strongroom's mounts are fixed (kv version 2 at secret/, transit at transit/, keymgmt at keymgmt/); they cannot be enabled, tuned or disabled",
        )),
    }
}

/// A mount's entry as Vault lists it; `path` is added where Vault adds it.
fn entry(mount: &Mount, prefix: &str) -> Value {
    let id = Sha256::digest(format!("strongroom mount {prefix}{}", mount.path).as_bytes());
    let hex = hex::encode(&id[..16]);
    let mut entry = json!({
        "accessor": format!("{}_{}", mount.kind, &hex[..8]),
        "config": {
            "default_lease_ttl": 0,
            "force_no_cache": false,
            "max_lease_ttl": 0,
        },
        "description": mount.description,
        "external_entropy_access": false,
        "local": false,
        "options": (mount.options)(),
        "plugin_version": "",
        "running_plugin_version": "",
        "running_sha256": "",
        "seal_wrap": mount.kind == "system",
        "type": mount.kind,
        "uuid": format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        ),
    });
    if matches!(mount.kind, "kv" | "transit" | "keymgmt") {
        entry["deprecation_status"] = json!("supported");
    }
    entry
}

fn listing(mounts: &[Mount], prefix: &str) -> Map<String, Value> {
    mounts
        .iter()
        .map(|m| (m.path.to_string(), entry(m, prefix)))
        .collect()
}

/// `GET sys/mounts`: every secret engine, at the top level and under
/// `data`, as Vault answers.
async fn mounts(gate: &Gate, request: &Request) -> Outcome {
    request
        .call(gate, &actions::MOUNTS_READ, "")
        .run(|_| async { Ok(()) }, |()| Vec::new())
        .await?;
    Ok(Reply::sys(Value::Object(listing(SECRET, ""))))
}

/// `GET sys/mounts/<name>`: one mount's entry, at the top level and
/// under `data`.
async fn one(gate: &Gate, request: &Request, name: &str) -> Outcome {
    request
        .call(gate, &actions::MOUNTS_READ, "")
        .plain("mount", name)
        .run(|_| async { Ok(()) }, |()| Vec::new())
        .await?;
    let wanted = format!("{}/", name.trim_end_matches('/'));
    match SECRET.iter().find(|m| m.path == wanted) {
        Some(mount) => Ok(Reply::sys(entry(mount, ""))),
        None => Err(HttpError::bad_request(format!(
            "No secret engine mount at {}",
            text::quote(&wanted)
        ))),
    }
}

/// `GET sys/mounts/<mount>/tune`: the mount's settings, at the top level
/// and under `data`, as Vault answers; leases and lifetimes are the
/// system's (768 hours, the longest token strongroom grants).
async fn tune(gate: &Gate, request: &Request, name: &str) -> Outcome {
    let wanted = format!("{}/", name.trim_end_matches('/'));
    let found = SECRET
        .iter()
        .map(|m| (m, m.path.to_string()))
        .chain(AUTH.iter().map(|m| (m, format!("auth/{}", m.path))))
        .find(|(_, path)| *path == wanted);
    let known = match found {
        Some(_) => Ok(()),
        None => Err(Error::InvalidArgument(format!(
            "no mount at {}: strongroom serves secret/, transit/, keymgmt/, sys/ and auth/token/",
            text::quote(&wanted)
        ))),
    };
    request
        .call(gate, &actions::MOUNTS_TUNE_READ, name)
        .check(known)
        .run(|_| async { Ok(()) }, |()| Vec::new())
        .await?;
    let Some((mount, _)) = found else {
        return Err(HttpError::not_found());
    };
    let mut settings = json!({
        "default_lease_ttl": MAX_TTL_SECS,
        "description": mount.description,
        "force_no_cache": false,
        "max_lease_ttl": MAX_TTL_SECS,
    });
    match (mount.options)() {
        Value::Object(options) if !options.is_empty() => settings["options"] = json!(options),
        _ => {}
    }
    match mount.kind {
        "system" => settings["passthrough_request_headers"] = json!(["Accept"]),
        "token" => settings["token_type"] = json!("default-service"),
        _ => {}
    }
    Ok(Reply::sys(settings))
}

/// `GET sys/internal/ui/mounts/<path>`: the mount serving `path`, with
/// its `path`; without a path, every mount by kind.
async fn lookup(gate: &Gate, request: &Request, path: &str) -> Outcome {
    request
        .call(gate, &actions::MOUNTS_LOOKUP, "")
        .plain("lookup", path)
        .run(|_| async { Ok(()) }, |()| Vec::new())
        .await?;
    if path.is_empty() {
        return Ok(Reply::data(json!({
            "auth": listing(AUTH, "auth/"),
            "secret": listing(SECRET, ""),
        })));
    }
    let wanted = format!("{}/", path.trim_end_matches('/'));
    let found = SECRET
        .iter()
        .map(|m| (m, ""))
        .chain(AUTH.iter().map(|m| (m, "auth/")))
        .find(|(m, prefix)| wanted.starts_with(&format!("{prefix}{}", m.path)));
    let Some((mount, prefix)) = found else {
        // Vault's answer for a path no mount serves.
        return Err(HttpError::new(
            StatusCode::FORBIDDEN,
            format!(
                "preflight capability check returned 403, please ensure client's policies grant access to path {}",
                text::quote(&wanted)
            ),
        ));
    };
    let mut body = entry(mount, prefix);
    body["path"] = json!(format!("{prefix}{}", mount.path));
    Ok(Reply::data(body))
}
