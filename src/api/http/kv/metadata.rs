//! `secret/metadata/<path>` (read, list, write a path's own settings,
//! erase every version) and `secret/config` (the store-wide settings).

use serde_json::{Map, Value, json};

use super::{body, merge_patch_type, missing};
use crate::api::Gate;
use crate::api::actions;
use crate::api::http::{HttpError, Op, Outcome, Reply, Request};
use crate::audit::Field;
use crate::engines::kv::{Config, check_max_versions};
use crate::error::Error;

/// Routes `metadata/<path>`.
pub async fn route(gate: &Gate, request: &Request, path: &str) -> Outcome {
    match request.op {
        Op::List => list(gate, request, path).await,
        Op::Read if path.is_empty() || path.ends_with('/') => Err(HttpError::not_found()),
        Op::Read => read(gate, request, path).await,
        Op::Update => write(gate, request, path).await,
        Op::Delete => erase(gate, request, path).await,
        Op::Patch => patch(gate, request, path).await,
    }
}

async fn list(gate: &Gate, request: &Request, folder: &str) -> Outcome {
    let kv = &gate.node().kv;
    let keys = request
        .call(gate, &actions::KV_LIST, folder)
        .run(
            |session| async move { kv.list(&session, folder).await },
            |keys| vec![("keys", Field::Plain(keys.len().into()))],
        )
        .await?;
    if keys.is_empty() {
        return Err(HttpError::not_found());
    }
    Ok(Reply::data(json!({ "keys": keys })))
}

async fn read(gate: &Gate, request: &Request, path: &str) -> Outcome {
    let kv = &gate.node().kv;
    let meta = request
        .call(gate, &actions::KV_METADATA, path)
        .run(
            |session| async move { kv.metadata(&session, path).await },
            |meta| vec![("current_version", Field::Plain(meta.current_version.into()))],
        )
        .await
        .map_err(missing)?;
    let versions: Map<String, Value> = meta
        .versions
        .iter()
        .map(|(version, info)| {
            (
                version.to_string(),
                json!({
                    "created_time": body::time(info.created_unix),
                    "deletion_time": body::time(info.deleted_unix),
                    "destroyed": info.destroyed,
                }),
            )
        })
        .collect();
    Ok(Reply::data(json!({
        "cas_required": meta.cas_required,
        "created_time": body::time(meta.created_unix),
        "current_metadata_version": meta.metadata_version,
        "current_version": meta.current_version,
        "custom_metadata": body::custom(&meta.custom_metadata),
        "delete_version_after": "0s",
        "max_versions": meta.max_versions,
        "metadata_cas_required": false,
        "oldest_version": meta.oldest_version(),
        "updated_time": body::time(meta.updated_unix),
        "versions": versions,
    })))
}

async fn write(gate: &Gate, request: &Request, path: &str) -> Outcome {
    let (call, update) =
        request.call_parsed(gate, &actions::KV_PUT_METADATA, path, body::metadata_update);
    let mut call = call.check(update.check());
    if let Some(max) = update.max_versions {
        call = call.plain("max_versions", max);
    }
    if let Some(required) = update.cas_required {
        call = call.plain("cas_required", required);
    }
    if let Some(custom) = &update.custom_metadata {
        call = call.plain("custom_metadata", json!(custom));
    }
    let kv = &gate.node().kv;
    call.run(
        |session| async move { kv.put_metadata(&session, path, update).await },
        |()| Vec::new(),
    )
    .await?;
    Ok(Reply::no_content())
}

/// `PATCH metadata/<path>`: a JSON merge patch of the path's own
/// settings; the path must exist (404 otherwise, as Vault answers).
async fn patch(gate: &Gate, request: &Request, path: &str) -> Outcome {
    merge_patch_type(request)?;
    let (call, patch) = request.call_parsed(
        gate,
        &actions::KV_PATCH_METADATA,
        path,
        body::metadata_patch,
    );
    let mut call = call.check(patch.check());
    if let Some(max) = patch.max_versions {
        call = call.plain("max_versions", max);
    }
    if let Some(required) = patch.cas_required {
        call = call.plain("cas_required", required);
    }
    // Custom metadata is not secret: written as is, as a PUT's is.
    if patch.clear_custom {
        call = call.plain("custom_metadata_cleared", true);
    }
    if !patch.custom_metadata.is_empty() {
        call = call.plain("custom_metadata", json!(patch.custom_metadata));
    }
    let kv = &gate.node().kv;
    call.run(
        |session| async move { kv.patch_metadata(&session, path, patch).await },
        |()| Vec::new(),
    )
    .await
    .map_err(missing)?;
    Ok(Reply::no_content())
}

/// Erases every version and the metadata; a path that does not exist is
/// 204 all the same, as Vault answers.
async fn erase(gate: &Gate, request: &Request, path: &str) -> Outcome {
    let kv = &gate.node().kv;
    let erased = request
        .call(gate, &actions::KV_DELETE_METADATA, path)
        .run(
            |session| async move { kv.delete_metadata(&session, path).await },
            |()| Vec::new(),
        )
        .await;
    match erased {
        Ok(()) | Err(Error::NotFound(_)) => Ok(Reply::no_content()),
        Err(e) => Err(e.into()),
    }
}

fn config_json(config: &Config) -> Value {
    json!({
        "cas_required": config.cas_required,
        "delete_version_after": "0s",
        "max_versions": config.max_versions,
        "metadata_cas_required": false,
    })
}

/// `GET config`.
pub async fn read_config(gate: &Gate, request: &Request) -> Outcome {
    let kv = &gate.node().kv;
    let config = request
        .call(gate, &actions::KV_READ_CONFIG, "")
        .run(
            |session| async move { kv.config(&session).await },
            |_| Vec::new(),
        )
        .await?;
    Ok(Reply::data(config_json(&config)))
}

/// `POST config`: the fields given replace the store's; the others stay.
pub async fn write_config(gate: &Gate, request: &Request) -> Outcome {
    let (
        call,
        body::Settings {
            max_versions,
            cas_required,
        },
    ) = request.call_parsed(gate, &actions::KV_WRITE_CONFIG, "", body::settings);
    let kv = &gate.node().kv;
    call.plain("max_versions", max_versions)
        .plain("cas_required", cas_required)
        .check(max_versions.map_or(Ok(()), check_max_versions))
        .run(
            |session| async move {
                kv.update_config(&session, max_versions, cas_required)
                    .await
                    .map(|_| ())
            },
            |()| Vec::new(),
        )
        .await?;
    Ok(Reply::no_content())
}
