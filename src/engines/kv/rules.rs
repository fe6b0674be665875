//! The rules a write and a mark follow: a document's fields and size,
//! check-and-set, the versions a mark names.

use serde_json::Value;

use super::{
    CAS_MISMATCH, CAS_REQUIRED, Config, Document, MAX_FIELD_NAME_LEN, MAX_FIELDS, Metadata,
};
use crate::error::Error;
use crate::text;

/// Checks a secret's fields: at most [`MAX_FIELDS`], names of 1 to
/// [`MAX_FIELD_NAME_LEN`] bytes without control, bidi or invisible
/// characters, no value and not the whole document (as JSON) over `limit`
/// bytes.
pub(super) fn check_fields(path: &str, document: &Document, limit: usize) -> Result<(), Error> {
    let fields = document.object();
    if fields.len() > MAX_FIELDS {
        return Err(Error::InvalidArgument(format!(
            "the secret has {} fields; the limit is {MAX_FIELDS}",
            fields.len()
        )));
    }
    for (name, value) in &fields {
        let why = if name.is_empty() {
            "is empty".to_string()
        } else if name.len() > MAX_FIELD_NAME_LEN {
            format!("is longer than {MAX_FIELD_NAME_LEN} bytes")
        } else if let Err(why) = text::check_chars(name) {
            why.replacen("it contains", "contains", 1)
        } else {
            let size = match value {
                Value::String(s) => s.len(),
                other => other.to_string().len(),
            };
            if size > limit {
                return Err(Error::InvalidArgument(format!(
                    "field {name:?} of kv path {shown_path} is larger than the {limit} byte limit (kv {{ max_value_size }})",
                    shown_path = crate::text::quote(path)
                )));
            }
            continue;
        };
        return Err(Error::InvalidArgument(format!(
            "secret field name {} {why}",
            text::quote(name)
        )));
    }
    let size = document.bytes().len();
    if size > limit {
        return Err(Error::InvalidArgument(format!(
            "the secret for kv path {shown_path} is {size} bytes as JSON, larger than the {limit} byte limit (kv {{ max_value_size }})",
            shown_path = crate::text::quote(path)
        )));
    }
    Ok(())
}

/// Which versions a delete, undelete or destroy is about: with `strict`,
/// a version not kept is refused; without, it is passed over, as Vault's
/// HTTP API does.
pub(super) fn chosen(
    path: &str,
    versions: &[u64],
    meta: &Metadata,
    strict: bool,
) -> Result<Vec<u64>, Error> {
    let mut chosen = Vec::new();
    for &version in versions {
        if !meta.versions.contains_key(&version) {
            if !strict {
                continue;
            }
            return Err(Error::NotFound(format!(
                "kv path {shown_path} has no version {version}{}",
                kept(meta),
                shown_path = crate::text::quote(path)
            )));
        }
        chosen.push(version);
    }
    Ok(chosen)
}

/// " (versions kept: 3 to 12)", or "" when none is.
pub(super) fn kept(meta: &Metadata) -> String {
    match (
        meta.versions.keys().next(),
        meta.versions.keys().next_back(),
    ) {
        (Some(first), Some(last)) if first == last => format!(" (version kept: {first})"),
        (Some(first), Some(last)) => format!(" (versions kept: {first} to {last})"),
        _ => String::new(),
    }
}

/// The check-and-set rules: `cas` `None` writes unless the path or the
/// store requires it; `Some(0)` only creates; `Some(v)` writes only over
/// version `v`.
pub(super) fn check_cas(
    path: &str,
    meta: Option<&Metadata>,
    config: &Config,
    cas: Option<u64>,
) -> Result<(), Error> {
    let current = meta.map_or(0, |m| m.current_version);
    match cas {
        None if config.cas_required || meta.is_some_and(|m| m.cas_required) => {
            Err(Error::InvalidArgument(format!(
                "{CAS_REQUIRED}: kv path {shown_path} requires cas",
                shown_path = crate::text::quote(path)
            )))
        }
        Some(0) if current != 0 => Err(Error::FailedPrecondition(format!(
            "{CAS_MISMATCH}: cas = 0 writes only a new secret, but kv path {shown_path} is at version {current}",
            shown_path = crate::text::quote(path)
        ))),
        Some(expected) if expected != current => Err(Error::FailedPrecondition(format!(
            "{CAS_MISMATCH}: the write expected version {expected} of kv path {shown_path}, but the current version is {current}",
            shown_path = crate::text::quote(path)
        ))),
        _ => Ok(()),
    }
}
