//! `secret/…`: Vault's kv v2 API on the versioned kv engine, through the
//! same actions (authorization, audit) as the gRPC Kv service.
//!
//! `data/<path>` reads (`?version=`), writes (`options.cas`), patches
//! (a JSON merge patch, RFC 7386) and soft-deletes the latest version;
//! `delete/`, `undelete/` and `destroy/` mark versions; `metadata/` and
//! `config` are in [`metadata`]. Answers and status codes are OpenBao
//! 2.6.2's for the same requests (tests/integration/http_kv.rs compares
//! them side by side).

mod body;
mod metadata;
mod subkeys;

use http::StatusCode;
use serde_json::{Value, json};

use super::{HttpError, Op, Outcome, Reply, Request};
use crate::api::Gate;
use crate::api::actions;
use crate::api::gate::Call;
use crate::audit::Field;
use crate::engines::kv::{
    CAS_MISMATCH, CAS_REQUIRED, Document, Lookup, Mark, VersionInfo, Written,
};
use crate::error::Error;
use crate::text;

/// The content type Vault's PATCH takes.
const MERGE_PATCH: &str = "application/merge-patch+json";

/// Routes `secret/<rest>`.
pub async fn route(gate: &Gate, request: &Request, rest: &str) -> Outcome {
    let (section, path) = rest.split_once('/').unwrap_or((rest, ""));
    match (section, request.op) {
        ("config", Op::Read) if path.is_empty() => metadata::read_config(gate, request).await,
        ("config", Op::Update) if path.is_empty() => metadata::write_config(gate, request).await,
        ("config", _) if path.is_empty() => Err(HttpError::unsupported()),
        ("data", Op::Read) => read(gate, request, path).await,
        ("data", Op::Update) => write(gate, request, path).await,
        ("data", Op::Patch) => patch(gate, request, path).await,
        ("data", Op::Delete) => {
            let call = request.call(gate, &actions::KV_DELETE, path);
            mark(gate, call, path, Vec::new(), Mark::Delete).await
        }
        ("metadata", _) => metadata::route(gate, request, path).await,
        ("subkeys", Op::Read) => subkeys::read(gate, request, path).await,
        ("delete" | "undelete" | "destroy", Op::Update) => {
            let (action, how) = match section {
                "delete" => (&actions::KV_DELETE_VERSIONS, Mark::Delete),
                "undelete" => (&actions::KV_UNDELETE, Mark::Undelete),
                _ => (&actions::KV_DESTROY, Mark::Destroy),
            };
            let (call, versions) = request.call_parsed(gate, action, path, body::versions);
            mark(gate, call, path, versions, how).await
        }
        ("data" | "subkeys" | "delete" | "undelete" | "destroy", _) => {
            Err(HttpError::unsupported())
        }
        // Vault's answer: 404, no data, a warning saying where to go.
        _ => Ok(Reply::json(
            StatusCode::NOT_FOUND,
            envelope(
                Value::Null,
                json!([format!(
                    "{} is not a path of the versioned kv engine: use secret/data/, secret/metadata/, secret/subkeys/, secret/delete/, secret/undelete/, secret/destroy/ or secret/config",
                    text::quote(&request.path)
                )]),
            ),
        )),
    }
}

/// Vault's logical envelope, for the answers that carry one with a status
/// other than 200.
fn envelope(data: Value, warnings: Value) -> Value {
    json!({
        "request_id": crate::secret::random_uuid(),
        "lease_id": "",
        "renewable": false,
        "lease_duration": 0,
        "data": data,
        "wrap_info": null,
        "warnings": warnings,
        "auth": null,
    })
}

/// Vault's answer for a check-and-set refusal: its sentence exactly.
fn cas_refusal(err: Error) -> HttpError {
    match &err {
        Error::FailedPrecondition(m) if m.starts_with(CAS_MISMATCH) => {
            HttpError::bad_request(CAS_MISMATCH)
        }
        Error::InvalidArgument(m) if m.starts_with(CAS_REQUIRED) => {
            HttpError::bad_request(CAS_REQUIRED)
        }
        _ => err.into(),
    }
}

/// A missing path or version: 404 `{"errors":[]}`, as Vault answers.
fn missing(err: Error) -> HttpError {
    match err {
        Error::NotFound(_) => HttpError::not_found(),
        other => other.into(),
    }
}

fn written_json(written: &Written) -> Value {
    let info = VersionInfo {
        created_unix: written.created_unix,
        deleted_unix: 0,
        destroyed: false,
    };
    body::version_json(written.version, &info, &written.custom_metadata)
}

/// `GET data/<path>?version=N`.
async fn read(gate: &Gate, request: &Request, path: &str) -> Outcome {
    if path.is_empty() || path.ends_with('/') {
        return Err(HttpError::not_found());
    }
    let (checked, version) = split(whole_query(request, "version"));
    let kv = &gate.node().kv;
    let found = request
        .call(gate, &actions::KV_GET, path)
        .check(checked)
        .plain("version", version)
        .run(
            |session| async move { kv.lookup(&session, path, version).await },
            |found| match found {
                Lookup::Live(read) => vec![
                    ("version", Field::Plain(read.version.into())),
                    (
                        "data",
                        Field::SecretJson(zeroize::Zeroizing::new(read.data.text().to_string())),
                    ),
                ],
                Lookup::Gone { version, .. } => vec![
                    ("version", Field::Plain((*version).into())),
                    ("gone", Field::Plain(true.into())),
                ],
            },
        )
        .await
        .map_err(missing)?;
    match found {
        Lookup::Live(read) => {
            let info = VersionInfo {
                created_unix: read.created_unix,
                deleted_unix: 0,
                destroyed: false,
            };
            Ok(Reply::data(json!({
                "data": read.data.object(),
                "metadata": body::version_json(read.version, &info, &read.custom_metadata),
            })))
        }
        // Vault answers a deleted or destroyed version 404 with its marks.
        Lookup::Gone {
            version,
            info,
            custom_metadata,
        } => Ok(gone("data", version, &info, &custom_metadata)),
    }
}

/// Vault's answer for a deleted or destroyed version: 404 with its marks
/// and `field` (the data, the subkeys) null.
fn gone(
    field: &str,
    version: u64,
    info: &VersionInfo,
    custom_metadata: &std::collections::BTreeMap<String, String>,
) -> Reply {
    let mut data = json!({ "metadata": body::version_json(version, info, custom_metadata) });
    data[field] = Value::Null;
    Reply::json(StatusCode::NOT_FOUND, envelope(data, Value::Null))
}

/// A query parameter's check for the gate, and its value (0 when the
/// check fails: never used).
fn split(parsed: Result<u64, Error>) -> (Result<(), Error>, u64) {
    match parsed {
        Ok(n) => (Ok(()), n),
        Err(e) => (Err(e), 0),
    }
}

/// Query parameter `name` as a version number or a depth: absent, empty,
/// 0 or below mean "the current version" (as OpenBao reads a version) and
/// "every level" (OpenBao reads a negative depth as one level:
/// docs/DECISIONS.md); anything but a whole number is refused.
fn whole_query(request: &Request, name: &str) -> Result<u64, Error> {
    match request.query(name) {
        None | Some("") => Ok(0),
        Some(v) => v
            .trim()
            .parse::<i64>()
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(|_| {
                Error::InvalidArgument(format!(
                    "the query parameter {name} must be a whole number, not {}",
                    text::quote(v)
                ))
            }),
    }
}

/// `PUT data/<path>`: `{"data": {…}, "options": {"cas": N}}`.
async fn write(gate: &Gate, request: &Request, path: &str) -> Outcome {
    let (call, body::Write { data, cas }) =
        request.call_parsed(gate, &actions::KV_PUT, path, body::write);
    let document = Document::from_object(&data);
    drop(data);
    let kv = &gate.node().kv;
    let written = call
        .secret_json("data", document.text())
        .plain("cas", cas)
        .check(kv.check_document(path, &document))
        .run(
            |session| async move { kv.put(&session, path, &document, cas).await },
            |w| vec![("version", Field::Plain(w.version.into()))],
        )
        .await
        .map_err(cas_refusal)?;
    Ok(Reply::data(written_json(&written)))
}

/// `PATCH data/<path>`: a JSON merge patch of the current version.
async fn patch(gate: &Gate, request: &Request, path: &str) -> Outcome {
    merge_patch_type(request)?;
    let (call, body::Write { data: fields, cas }) =
        request.call_parsed(gate, &actions::KV_PATCH, path, body::write);
    let kv = &gate.node().kv;
    let written = call
        .secret_json("data", &Value::Object(fields.clone()).to_string())
        .plain("cas", cas)
        .run(
            |session| async move { kv.patch(&session, path, &fields, cas).await },
            |w| vec![("version", Field::Plain(w.version.into()))],
        )
        .await
        .map_err(|e| match e {
            Error::NotFound(_) => HttpError::not_found(),
            other => cas_refusal(other),
        })?;
    Ok(Reply::data(written_json(&written)))
}

/// Refuses a PATCH whose content type is not a JSON merge patch, as Vault
/// does (415), before the body is read.
fn merge_patch_type(request: &Request) -> Result<(), HttpError> {
    let given = request.content_type().unwrap_or("");
    if given == MERGE_PATCH {
        return Ok(());
    }
    Err(HttpError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!(
            "PATCH requires Content-Type of {MERGE_PATCH}, provided {}",
            text::quote(given)
        ),
    ))
}

/// Marks `versions` of `path` (none: the latest) through `call`, as
/// Vault's API does: versions and paths that do not exist are passed
/// over; 204.
async fn mark(gate: &Gate, call: Call<'_>, path: &str, versions: Vec<u64>, how: Mark) -> Outcome {
    let kv = &gate.node().kv;
    call.versions(&versions)
        .run(
            |session| async move { kv.mark_kept(&session, path, &versions, how).await },
            |()| Vec::new(),
        )
        .await?;
    Ok(Reply::no_content())
}
