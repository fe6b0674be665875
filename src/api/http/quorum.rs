//! `sys/…` for the keyring and the quorum operations: `key-status`,
//! `rotate` (and OpenBao's `rotate/keyring`), the rekey of unseal or
//! recovery keys (Vault's `rekey/…` and `rekey-recovery-key/…`, OpenBao's
//! `rotate/root/…` and `rotate/recovery/…`), generate-root (Vault's
//! `generate-root/…`, OpenBao's `generate-root-token/…`) and `audit-hash`.
//!
//! A rekey on this surface commits when its last share is entered, as
//! Vault's does (or when the new keys are verified, with
//! `require_verification`): a Vault client never sends strongroom's
//! confirmation step. The legacy paths answer Vault's bare objects; the
//! OpenBao 2.6 paths answer logical responses (the same fields under
//! `data`), as each client expects.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::{HttpError, Op, Outcome, Reply, Request};
use crate::api::Gate;
use crate::api::actions::{self, Action};
use crate::api::gate::Call;
use crate::audit::Field;
use crate::error::Error;
use crate::lifecycle::{Completed, Operation, QuorumStatus, RekeyParams, RekeyTarget};
use crate::pad::PAD_LEN;
use crate::time::format_unix;

/// How an endpoint family answers: Vault's bare object, or a logical
/// response with the object under `data` (OpenBao 2.6's new paths).
#[derive(Clone, Copy)]
enum Shape {
    Bare,
    Logical,
}

impl Shape {
    fn reply(self, body: Value) -> Reply {
        match self {
            Shape::Bare => Reply::ok(body),
            Shape::Logical => Reply::data(body),
        }
    }
}

/// Routes the `sys/` paths of this module.
pub async fn route(gate: &Gate, request: &Request, rest: &str) -> Outcome {
    let op = request.op;
    match rest {
        "key-status" if op == Op::Read => key_status(gate, request).await,
        "rotate" | "rotate/keyring" if op == Op::Update => rotate(gate, request).await,
        "audit-hash" => Err(HttpError::unsupported()),
        _ if rest.starts_with("audit-hash/") && op == Op::Update => audit_hash(gate, request).await,
        _ if rest.starts_with("audit-hash/") => Err(HttpError::unsupported()),
        _ => {
            if let Some((family, step)) = rekey_path(rest) {
                return rekey(gate, request, family, step).await;
            }
            match rest {
                "generate-root/attempt" => generate_root_attempt(gate, request, Shape::Bare).await,
                "generate-root/update" => generate_root_update(gate, request, Shape::Bare).await,
                "generate-root-token/attempt" => {
                    generate_root_attempt(gate, request, Shape::Logical).await
                }
                "generate-root-token/update" => {
                    generate_root_update(gate, request, Shape::Logical).await
                }
                "key-status" | "rotate" | "rotate/keyring" => Err(HttpError::unsupported()),
                _ => Err(HttpError::no_route(&request.path)),
            }
        }
    }
}

async fn key_status(gate: &Gate, request: &Request) -> Outcome {
    let lifecycle = &gate.node().lifecycle;
    let status = request
        .call(gate, &actions::KEY_STATUS, "")
        .run(|_| async move { lifecycle.key_status() }, |_| Vec::new())
        .await?;
    let active = status
        .terms
        .iter()
        .find(|t| t.active)
        .or_else(|| status.terms.iter().max_by_key(|t| t.term))
        .ok_or_else(|| HttpError::from(Error::Internal("the keyring has no term".into())))?;
    Ok(Reply::sys(json!({
        "term": active.term,
        "install_time": format_unix(active.installed_unix),
        "encryptions": active.encryptions,
    })))
}

async fn rotate(gate: &Gate, request: &Request) -> Outcome {
    let lifecycle = &gate.node().lifecycle;
    request
        .call(gate, &actions::ROTATE, "")
        .run(
            |_| async move { lifecycle.rotate().await },
            |t| vec![("term", Field::Plain(t.term.into()))],
        )
        .await?;
    Ok(Reply::no_content())
}

/// `PUT sys/audit-hash/:path`'s body.
#[derive(Deserialize, Default)]
#[serde(default)]
struct AuditHashBody {
    input: String,
}

/// Every device shares one salt, so the device the path names does not
/// change the hash (docs/DECISIONS.md).
async fn audit_hash(gate: &Gate, request: &Request) -> Outcome {
    let (call, asked) = request.call_json::<AuditHashBody>(gate, &actions::AUDIT_HASH, "");
    let audit = &gate.node().audit;
    let input = Zeroizing::new(asked.input.into_bytes());
    let hash = call
        .secret("input", &input)
        .run(
            |session| async move { audit.hash(session.barrier()?, &input).await },
            |_| Vec::new(),
        )
        .await?;
    Ok(Reply::sys(json!({ "hash": hash })))
}

/// The rekey families: which keys they rekey and how they answer.
#[derive(Clone, Copy)]
struct Family {
    target: RekeyTarget,
    shape: Shape,
}

/// `rekey/init` → (unseal keys, bare), `rotate/recovery/update` → …
fn rekey_path(rest: &str) -> Option<(Family, &str)> {
    let families = [
        ("rekey/", RekeyTarget::Barrier, Shape::Bare),
        ("rekey-recovery-key/", RekeyTarget::Recovery, Shape::Bare),
        ("rotate/root/", RekeyTarget::Barrier, Shape::Logical),
        ("rotate/recovery/", RekeyTarget::Recovery, Shape::Logical),
    ];
    families.iter().find_map(|(prefix, target, shape)| {
        let step = rest.strip_prefix(prefix)?;
        matches!(step, "init" | "update" | "verify").then_some((
            Family {
                target: *target,
                shape: *shape,
            },
            step,
        ))
    })
}

async fn rekey(gate: &Gate, request: &Request, family: Family, step: &str) -> Outcome {
    match (step, request.op) {
        ("init", Op::Read) => {
            let status =
                quorum_status(gate, request, Operation::Rekey, &actions::REKEY_STATUS).await?;
            Ok(family.shape.reply(rekey_status_json(&status, family.shape)))
        }
        ("init", Op::Update) => rekey_init(gate, request, family).await,
        ("init", Op::Delete) => {
            cancel(gate, request, Operation::Rekey, &actions::REKEY_CANCEL).await
        }
        ("update", Op::Update) => rekey_update(gate, request, family).await,
        ("verify", Op::Read) => {
            let status =
                quorum_status(gate, request, Operation::Rekey, &actions::REKEY_STATUS).await?;
            Ok(family.shape.reply(verify_status_json(&status)))
        }
        ("verify", Op::Update) => rekey_verify(gate, request, family).await,
        ("verify", Op::Delete) => rekey_verify_restart(gate, request, family).await,
        _ => Err(HttpError::unsupported()),
    }
}

/// An operation's status; the nonce only for a caller its action shows
/// it to (a token with sudo on its path), as on gRPC.
async fn quorum_status(
    gate: &Gate,
    request: &Request,
    op: Operation,
    action: &'static Action,
) -> Result<QuorumStatus, HttpError> {
    let caller = request.caller(gate);
    let show_nonce = gate.reveals(action, &caller).await;
    let lifecycle = &gate.node().lifecycle;
    Ok(gate
        .call(action, "", caller)
        .run(
            |_| async move { Ok(lifecycle.quorum_status(op, show_nonce)) },
            |_| Vec::new(),
        )
        .await?)
}

/// Cancels `op`: Vault's DELETE carries no nonce; strongroom's cancel
/// needs one, so it is read from the body or the query, else refused.
async fn cancel(gate: &Gate, request: &Request, op: Operation, action: &'static Action) -> Outcome {
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct CancelBody {
        nonce: String,
    }
    let (checked, mut nonce) = match request.json::<CancelBody>() {
        Ok(body) => (Ok(()), body.nonce),
        Err(e) => (Err(e), String::new()),
    };
    if nonce.is_empty() {
        nonce = request.query("nonce").unwrap_or_default().to_string();
    }
    let lifecycle = &gate.node().lifecycle;
    let caller = request.caller(gate);
    // A caller allowed to cancel may see the nonce: cancel what is running.
    if nonce.is_empty() && gate.reveals(status_action(op), &caller).await {
        nonce = lifecycle.quorum_status(op, true).nonce;
    }
    // Nobody may cancel what runs without naming it (Vault's anonymous
    // cancel is what OpenBao turned off); with nothing under way there is
    // nothing to cancel.
    let unnamed = if nonce.is_empty() && lifecycle.quorum_status(op, false).started {
        Err(Error::InvalidArgument(
            "an operation is under way: give its nonce to cancel it (in the body as {\"nonce\": …} or as ?nonce=…)".into(),
        ))
    } else {
        Ok(())
    };
    let nonce = nonce.as_str();
    gate.call(action, "", caller)
        .check(checked)
        .check(unnamed)
        .run(
            |_| async move {
                if nonce.is_empty() {
                    // Nothing under way and nothing named: nothing to do.
                    return Ok(());
                }
                lifecycle.quorum_cancel(op, nonce)
            },
            |()| Vec::new(),
        )
        .await?;
    Ok(Reply::no_content())
}

fn status_action(op: Operation) -> &'static Action {
    match op {
        Operation::Rekey => &actions::REKEY_STATUS,
        Operation::RotateRoot => &actions::ROTATE_ROOT_STATUS,
        Operation::GenerateRoot => &actions::GENERATE_ROOT_STATUS,
    }
}

fn rekey_status_json(status: &QuorumStatus, shape: Shape) -> Value {
    let rekey = status.rekey.as_ref();
    if let Shape::Logical = shape {
        // OpenBao's rotate/{root,recovery} answers.
        if !status.started {
            return json!({"n": 0, "t": 0, "required": status.required, "started": false});
        }
        return json!({
            "n": rekey.map_or(0, |r| r.new_shares),
            "t": rekey.map_or(0, |r| r.new_threshold),
            "nonce": status.nonce,
            "progress": status.progress,
            "required": status.required,
            "started": true,
            "verification_nonce": rekey.map(|r| r.verification_nonce.clone()).unwrap_or_default(),
            "verification_required": rekey.is_some_and(|r| r.verify),
        });
    }
    let mut body = json!({
        "nonce": status.nonce,
        "started": status.started,
        "t": rekey.map_or(0, |r| r.new_threshold),
        "n": rekey.map_or(0, |r| r.new_shares),
        "progress": status.progress,
        "required": status.required,
        "pgp_fingerprints": null,
        "backup": false,
        "verification_required": rekey.is_some_and(|r| r.verify),
    });
    if let Some(r) = rekey.filter(|r| r.verification_required) {
        body["verification_nonce"] = json!(r.verification_nonce);
    }
    body
}

fn verify_status_json(status: &QuorumStatus) -> Value {
    let rekey = status.rekey.as_ref();
    json!({
        "nonce": rekey.map(|r| r.verification_nonce.clone()).unwrap_or_default(),
        "started": rekey.is_some_and(|r| r.verification_required),
        "t": rekey.map_or(0, |r| r.new_threshold),
        "n": rekey.map_or(0, |r| r.new_shares),
        "progress": rekey.map_or(0, |r| r.verification_progress),
    })
}

/// `PUT sys/rekey/init`'s body.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RekeyInitBody {
    secret_shares: Option<u32>,
    secret_threshold: Option<u32>,
    require_verification: bool,
    pgp_keys: Option<Vec<String>>,
    backup: bool,
}

async fn rekey_init(gate: &Gate, request: &Request, family: Family) -> Outcome {
    let (call, asked) = request.call_json::<RekeyInitBody>(gate, &actions::REKEY_INIT, "");
    let unsupported = if asked.pgp_keys.as_ref().is_some_and(|k| !k.is_empty()) {
        Err(Error::InvalidArgument(
            "pgp_keys are not supported: strongroom encrypts new shares to age or ssh-ed25519 recipients; run `strongroom rekey --init --recipients <keys>` (one per share) instead".into(),
        ))
    } else if asked.backup {
        Err(Error::InvalidArgument(
            "backup is not supported: strongroom keeps no copy of the new shares".into(),
        ))
    } else {
        Ok(())
    };
    let lifecycle = &gate.node().lifecycle;
    let params = RekeyParams {
        shares: asked.secret_shares,
        threshold: asked.secret_threshold,
        target: Some(family.target),
        verify: asked.require_verification,
        recipients: Vec::new(),
    };
    let started = call
        .check(unsupported)
        .plain("target", family.target.as_str())
        .run(
            |_| async move { lifecycle.rekey_init(params) },
            |_| Vec::new(),
        )
        .await?;
    Ok(family
        .shape
        .reply(rekey_status_json(&started, family.shape)))
}

/// An update's body: one key of the quorum and the operation's nonce.
#[derive(Deserialize, Default)]
#[serde(default)]
struct KeyBody {
    key: String,
    nonce: String,
}

/// A call of `action` entering one key: the key (zeroized when dropped)
/// and the nonce; a body without a key refuses the call.
fn key_call<'g>(
    request: &Request,
    gate: &'g Gate,
    action: &'static Action,
) -> (Call<'g>, Zeroizing<String>, String) {
    let (call, asked) = request.call_json::<KeyBody>(gate, action, "");
    let key = Zeroizing::new(asked.key);
    let keyless = if key.is_empty() {
        Err(Error::InvalidArgument(
            "'key' must be specified in request body as JSON".into(),
        ))
    } else {
        Ok(())
    };
    (call.check(keyless), key, asked.nonce)
}

async fn rekey_update(gate: &Gate, request: &Request, family: Family) -> Outcome {
    let (call, key, nonce) = key_call(request, gate, &actions::REKEY_UPDATE);
    let lifecycle = &gate.node().lifecycle;
    let (nonce, key) = (nonce.as_str(), key.as_str());
    // The last share completes the rekey, and (without verification) the
    // new keys are put in force at once: Vault's rekey has no confirmation.
    let outcome = call
        .run(
            |_| async move {
                let outcome = lifecycle
                    .quorum_update(Operation::Rekey, nonce, key)
                    .await?;
                if let Some(Completed::Rekey {
                    confirmation_nonce: Some(confirmation),
                    ..
                }) = &outcome.result
                {
                    lifecycle.rekey_confirm(confirmation).await?;
                }
                Ok(outcome)
            },
            |o| {
                // Whether this call put new keys in force (not when they
                // wait for their verification).
                let committed = matches!(
                    o.result,
                    Some(Completed::Rekey {
                        confirmation_nonce: Some(_),
                        ..
                    })
                );
                vec![("committed", Field::Plain(committed.into()))]
            },
        )
        .await?;
    let Some(Completed::Rekey {
        shares,
        verification_nonce,
        ..
    }) = outcome.result
    else {
        return Ok(family
            .shape
            .reply(rekey_status_json(&outcome.status, family.shape)));
    };
    // The one place the new shares leave the daemon.
    let mut body = json!({
        "nonce": nonce,
        "complete": true,
        "keys": shares.iter().map(|s| hex::encode(s.expose())).collect::<Vec<_>>(),
        "keys_base64": shares.iter().map(|s| STANDARD.encode(s.expose())).collect::<Vec<_>>(),
        "verification_required": verification_nonce.is_some(),
    });
    body["pgp_fingerprints"] = Value::Null;
    body["backup"] = json!(false);
    // Vault's bare answer names the verification nonce only when there is
    // one; OpenBao's logical answer always does.
    match (verification_nonce, family.shape) {
        (Some(verification), _) => body["verification_nonce"] = json!(verification),
        (None, Shape::Logical) => body["verification_nonce"] = json!(""),
        (None, Shape::Bare) => {}
    }
    Ok(family.shape.reply(body))
}

async fn rekey_verify(gate: &Gate, request: &Request, family: Family) -> Outcome {
    let (call, key, nonce) = key_call(request, gate, &actions::REKEY_VERIFY_UPDATE);
    let lifecycle = &gate.node().lifecycle;
    let (nonce_ref, key) = (nonce.as_str(), key.as_str());
    let outcome = call
        .run(
            |_| async move { lifecycle.rekey_verify_update(nonce_ref, key).await },
            |_| Vec::new(),
        )
        .await?;
    if matches!(outcome.result, Some(Completed::Verified)) {
        return Ok(family
            .shape
            .reply(json!({ "nonce": nonce, "complete": true })));
    }
    Ok(family.shape.reply(verify_status_json(&outcome.status)))
}

/// Vault's DELETE of `…/verify`: the verification starts again under a
/// new nonce, the new keys unchanged; the answer is the verification's
/// status with that nonce (the caller has `sudo`, which shows it).
async fn rekey_verify_restart(gate: &Gate, request: &Request, family: Family) -> Outcome {
    let lifecycle = &gate.node().lifecycle;
    let target = family.target;
    let status = request
        .call(gate, &actions::REKEY_VERIFY_RESTART, "")
        .plain("target", target.as_str())
        .run(
            |_| async move { lifecycle.rekey_verify_restart(Some(target)) },
            |_| Vec::new(),
        )
        .await?;
    Ok(family.shape.reply(verify_status_json(&status)))
}

/// A one-time pad as Vault makes it: base62 text as long as a token, from
/// the operating system's random source (bytes past the last whole
/// multiple of 62 are skipped, so every character is equally likely).
fn fresh_otp() -> Zeroizing<String> {
    const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut otp = Zeroizing::new(String::with_capacity(PAD_LEN));
    while otp.len() < PAD_LEN {
        let random = Zeroizing::new(crate::secret::random_bytes(PAD_LEN));
        for byte in random.iter().filter(|b| **b < 248) {
            if otp.len() < PAD_LEN {
                otp.push(char::from(BASE62[usize::from(*byte) % BASE62.len()]));
            }
        }
    }
    otp
}

fn generate_root_json(status: &QuorumStatus, encoded: &str, shape: Shape) -> Value {
    let complete = !encoded.is_empty();
    match shape {
        Shape::Bare => json!({
            "nonce": status.nonce,
            "started": status.started,
            "progress": status.progress,
            "required": status.required,
            "complete": complete,
            "encoded_token": encoded,
            "encoded_root_token": encoded,
            "pgp_fingerprint": "",
            "otp": "",
            "otp_length": PAD_LEN,
        }),
        Shape::Logical => {
            let mut data = json!({
                "started": status.started,
                "progress": status.progress,
                "required": status.required,
                "complete": complete,
                "otp": "",
                "otp_length": PAD_LEN,
            });
            // OpenBao names these once an attempt runs.
            if status.started {
                data["pgp_fingerprint"] = json!("");
            }
            if !status.nonce.is_empty() {
                data["nonce"] = json!(status.nonce);
            }
            if complete {
                data["encoded_token"] = json!(encoded);
            }
            data
        }
    }
}

/// `PUT sys/generate-root/attempt`'s body.
#[derive(Deserialize, Default)]
#[serde(default)]
struct AttemptBody {
    otp: String,
    pgp_key: String,
}

async fn generate_root_attempt(gate: &Gate, request: &Request, shape: Shape) -> Outcome {
    let op = Operation::GenerateRoot;
    match request.op {
        Op::Read => {
            let status = quorum_status(gate, request, op, &actions::GENERATE_ROOT_STATUS).await?;
            Ok(shape.reply(generate_root_json(&status, "", shape)))
        }
        Op::Delete => cancel(gate, request, op, &actions::GENERATE_ROOT_CANCEL).await,
        Op::Update => {
            let (call, asked) =
                request.call_json::<AttemptBody>(gate, &actions::GENERATE_ROOT_INIT, "");
            // Vault's OTP is text as long as a token; its bytes are the pad.
            // Without one (nor a PGP key) the server makes it and answers
            // it once, as OpenBao does.
            let made = asked.otp.is_empty() && asked.pgp_key.is_empty();
            let otp = if made {
                fresh_otp()
            } else {
                Zeroizing::new(asked.otp)
            };
            let unusable = if !asked.pgp_key.is_empty() {
                Err(Error::InvalidArgument(
                    "pgp_key is not supported: give an otp (generate one with `bao operator generate-root -generate-otp`)".into(),
                ))
            } else if otp.len() != PAD_LEN {
                Err(Error::InvalidArgument(format!(
                    "the otp must be {PAD_LEN} characters long, as long as a strongroom token (this server's otp_length), not {}",
                    otp.len()
                )))
            } else {
                Ok(())
            };
            let pad = Zeroizing::new(STANDARD.encode(otp.as_bytes()));
            let lifecycle = &gate.node().lifecycle;
            let started = call
                .check(unusable)
                .plain("claimed", false)
                .run(
                    |_| async move { lifecycle.generate_root_init(&pad, None) },
                    |_| Vec::new(),
                )
                .await?;
            if made {
                let mut body = generate_root_json(&started, "", shape);
                let fields = match &mut body {
                    Value::Object(fields) => fields,
                    _ => return Ok(shape.reply(body)),
                };
                fields.insert("otp".into(), json!(otp.as_str()));
                return Ok(shape.reply(body));
            }
            Ok(shape.reply(generate_root_json(&started, "", shape)))
        }
        _ => Err(HttpError::unsupported()),
    }
}

async fn generate_root_update(gate: &Gate, request: &Request, shape: Shape) -> Outcome {
    if request.op != Op::Update {
        return Err(HttpError::unsupported());
    }
    let (call, key, nonce) = key_call(request, gate, &actions::GENERATE_ROOT_UPDATE);
    let lifecycle = &gate.node().lifecycle;
    let (nonce, key) = (nonce.as_str(), key.as_str());
    let outcome = call
        .run(
            |_| async move {
                lifecycle
                    .quorum_update(Operation::GenerateRoot, nonce, key)
                    .await
            },
            |_| Vec::new(),
        )
        .await?;
    let mut status = outcome.status;
    status.nonce = nonce.to_string();
    let encoded = match outcome.result {
        // Vault's encoding: base64 without padding of token XOR otp.
        Some(Completed::GeneratedRoot { encoded_token, .. }) => STANDARD
            .decode(encoded_token)
            .map(|bytes| STANDARD_NO_PAD.encode(bytes))
            .unwrap_or_default(),
        _ => String::new(),
    };
    if !encoded.is_empty() {
        status.started = true;
        status.progress = status.required;
    }
    Ok(shape.reply(generate_root_json(&status, &encoded, shape)))
}
