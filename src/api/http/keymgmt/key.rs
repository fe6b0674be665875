//! `keymgmt/key/:name`: make a key or change its settings, read, list,
//! rotate, delete, and list the providers it is distributed to.

use serde_json::{Map, Value, json};

use super::{check, count, deletion_window, fields, listed, missing_is_bare_404};
use crate::api::Gate;
use crate::api::actions;
use crate::api::http::transit::fields::Fields;
use crate::api::http::{Outcome, Reply, Request};
use crate::audit::Field;
use crate::engines::keymgmt::{KeyInfo, KeyWrite};
use crate::error::Error;

/// A key as Vault's read shows it: each version's creation time.
fn key_json(info: &KeyInfo) -> Value {
    let versions: Map<String, Value> = info
        .versions
        .iter()
        .zip(1u32..)
        .map(|(created, version)| {
            let created = json!({ "creation_time": crate::time::format_unix(*created) });
            (version.to_string(), created)
        })
        .collect();
    json!({
        "name": info.name,
        "type": info.key_type,
        "deletion_allowed": info.deletion_allowed,
        "min_enabled_version": info.min_enabled_version,
        "latest_version": info.latest_version,
        "versions": versions,
    })
}

fn latest(info: &KeyInfo) -> Vec<(&'static str, Field)> {
    vec![("latest_version", Field::Plain(info.latest_version.into()))]
}

fn key_write(fields: &Fields) -> Result<KeyWrite, Error> {
    Ok(KeyWrite {
        key_type: fields.string("type")?.map(str::to_string),
        deletion_allowed: fields.flag("deletion_allowed")?,
        min_enabled_version: fields.number("min_enabled_version")?,
    })
}

/// `POST keymgmt/key/:name`: makes the key (`type` aes256-gcm96 unless
/// given) or changes `deletion_allowed` and `min_enabled_version`; 204.
pub(super) async fn write(gate: &Gate, request: &Request, name: &str) -> Outcome {
    let (fields, decoded) = fields(request);
    let asked = key_write(&fields);
    let mut call = request
        .call(gate, &actions::KEYMGMT_KEY_WRITE, name)
        .check(decoded)
        .check(check(&asked));
    if let Ok(a) = &asked {
        call = call.plain("type", a.key_type.as_deref().unwrap_or(""));
        if let Some(allowed) = a.deletion_allowed {
            call = call.plain("deletion_allowed", allowed);
        }
        if let Some(min) = a.min_enabled_version {
            call = call.plain("min_enabled_version", min);
        }
    }
    let engine = &gate.node().keymgmt;
    call.run(
        |session| async move { engine.write_key(&session, name, asked?).await },
        latest,
    )
    .await?;
    Ok(Reply::no_content())
}

/// `GET keymgmt/key/:name`.
pub(super) async fn read(gate: &Gate, request: &Request, name: &str) -> Outcome {
    let engine = &gate.node().keymgmt;
    let info = request
        .call(gate, &actions::KEYMGMT_KEY_READ, name)
        .run(
            |session| async move { engine.read_key(&session, name).await },
            latest,
        )
        .await
        .map_err(missing_is_bare_404)?;
    Ok(Reply::data(key_json(&info)))
}

/// `LIST keymgmt/key`.
pub(super) async fn list(gate: &Gate, request: &Request) -> Outcome {
    let engine = &gate.node().keymgmt;
    let names = request
        .call(gate, &actions::KEYMGMT_KEY_LIST, "")
        .run(
            |session| async move { engine.list_keys(&session).await },
            |names| count(names),
        )
        .await?;
    listed(names)
}

/// `POST keymgmt/key/:name/rotate`: a new version, distributed wherever
/// the key is; 204.
pub(super) async fn rotate(gate: &Gate, request: &Request, name: &str) -> Outcome {
    let engine = &gate.node().keymgmt;
    request
        .call(gate, &actions::KEYMGMT_KEY_ROTATE, name)
        .run(
            |session| async move { engine.rotate_key(&session, name).await },
            latest,
        )
        .await?;
    Ok(Reply::no_content())
}

/// `DELETE keymgmt/key/:name`: with `deletion_allowed`; each distribution
/// removed first, its KMS keys pending deletion for
/// `deletion_window_days`; 204.
pub(super) async fn delete(gate: &Gate, request: &Request, name: &str) -> Outcome {
    let (fields, decoded) = fields(request);
    let days = deletion_window(request, &fields);
    let engine = &gate.node().keymgmt;
    request
        .call(gate, &actions::KEYMGMT_KEY_DELETE, name)
        .plain("deletion_window_days", *days.as_ref().unwrap_or(&0))
        .check(decoded)
        .check(check(&days))
        .run(
            |session| async move { engine.delete_key(&session, name, days?).await },
            |()| Vec::new(),
        )
        .await?;
    Ok(Reply::no_content())
}

/// `LIST keymgmt/key/:name/kms`: the providers the key is distributed to.
pub(super) async fn providers(gate: &Gate, request: &Request, name: &str) -> Outcome {
    let engine = &gate.node().keymgmt;
    let names = request
        .call(gate, &actions::KEYMGMT_KEY_PROVIDERS, name)
        .run(
            |session| async move { engine.list_key_providers(&session, name).await },
            |names| count(names),
        )
        .await
        .map_err(missing_is_bare_404)?;
    listed(names)
}
