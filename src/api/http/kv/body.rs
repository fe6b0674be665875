//! Reading kv v2 request bodies as Vault does (its loose decoding: a
//! number may come as a string, versions as a list or a comma-separated
//! string), and writing its times and version objects.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::engines::kv::{MetadataPatch, MetadataUpdate, VersionInfo, kind};
use crate::error::Error;
use crate::time::format_unix;

/// A time as Vault writes it: RFC 3339, or "" for none (0).
pub fn time(unix: u64) -> String {
    if unix == 0 {
        String::new()
    } else {
        format_unix(unix)
    }
}

/// Custom metadata as Vault answers it: null when there is none.
pub fn custom(custom: &BTreeMap<String, String>) -> Value {
    if custom.is_empty() {
        Value::Null
    } else {
        json!(custom)
    }
}

/// A version's metadata, as `data/` answers it.
pub fn version_json(
    version: u64,
    info: &VersionInfo,
    custom_metadata: &BTreeMap<String, String>,
) -> Value {
    json!({
        "created_time": time(info.created_unix),
        "custom_metadata": custom(custom_metadata),
        "deletion_time": time(info.deleted_unix),
        "destroyed": info.destroyed,
        "version": version,
    })
}

/// A body as a JSON object (an empty body decodes as `{}`).
pub fn object(body: Value) -> Result<Map<String, Value>, Error> {
    match body {
        Value::Object(object) => Ok(object),
        other => Err(invalid(format!(
            "the request body must be a JSON object, not {}",
            kind(&other)
        ))),
    }
}

fn invalid(sentence: impl Into<String>) -> Error {
    Error::InvalidArgument(sentence.into())
}

/// The body of a write or patch of `data/<path>`.
#[derive(Default)]
pub struct Write {
    /// `data`: the fields written, or the merge patch.
    pub data: Map<String, Value>,
    /// `options.cas`.
    pub cas: Option<u64>,
}

/// Reads a write's body: `{"data": {…}, "options": {"cas": N}}`.
pub fn write(body: Value) -> Result<Write, Error> {
    let body = object(body)?;
    Ok(Write {
        cas: cas(&body)?,
        data: data(body)?,
    })
}

/// `data`: the secret's fields, a JSON object (Vault: "no data provided"
/// when it is missing).
fn data(mut body: Map<String, Value>) -> Result<Map<String, Value>, Error> {
    match body.remove("data") {
        None | Some(Value::Null) => Err(invalid("no data provided")),
        Some(Value::Object(data)) => Ok(data),
        Some(other) => Err(invalid(format!(
            "the field \"data\" must be a JSON object of fields, not {}",
            kind(&other)
        ))),
    }
}

/// A whole number given as a number or a string of digits.
pub fn whole(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A boolean given as a boolean or as Go's strconv.ParseBool text.
pub fn flag(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.as_str() {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// `options.cas`, if given.
fn cas(body: &Map<String, Value>) -> Result<Option<u64>, Error> {
    let options = match body.get("options") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(options)) => options,
        Some(other) => {
            return Err(invalid(format!(
                "the field \"options\" must be a JSON object, not {}",
                kind(other)
            )));
        }
    };
    match options.get("cas") {
        None | Some(Value::Null) => Ok(None),
        Some(value) => whole(value)
            .map(Some)
            .ok_or_else(|| invalid("error parsing check-and-set parameter")),
    }
}

/// The body of `delete/`, `undelete/` and `destroy/`: `versions`, a list
/// of numbers (or of digit strings), one number, or a comma-separated
/// string; at least one.
pub fn versions(body: Value) -> Result<Vec<u64>, Error> {
    let body = object(body)?;
    let bad = || invalid("the field \"versions\" must be a list of version numbers");
    let versions = match body.get("versions") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(whole)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(bad)?,
        Some(Value::String(text)) => text
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().parse().ok())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(bad)?,
        Some(other) => vec![whole(other).ok_or_else(bad)?],
    };
    if versions.is_empty() {
        return Err(invalid("no version number provided"));
    }
    Ok(versions)
}

/// `delete_version_after`: only "0s" (or 0: never), as strongroom does not
/// delete versions by age.
fn check_delete_after(body: &Map<String, Value>) -> Result<(), Error> {
    match body.get("delete_version_after") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if ["0", "0s", "0m", "0h", ""].contains(&s.as_str()) => Ok(()),
        Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(()),
        Some(_) => Err(invalid(
            "delete_version_after is not supported: strongroom keeps versions until max_versions prunes them; give \"0s\" or leave it out",
        )),
    }
}

/// `max_versions`, if given (null: not given).
fn max_versions(body: &Map<String, Value>) -> Result<Option<u32>, Error> {
    match body.get("max_versions") {
        None | Some(Value::Null) => Ok(None),
        Some(value) => whole(value)
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| invalid("the field \"max_versions\" must be a whole number")),
    }
}

/// `cas_required`, if given (null: not given).
fn cas_required(body: &Map<String, Value>) -> Result<Option<bool>, Error> {
    match body.get("cas_required") {
        None | Some(Value::Null) => Ok(None),
        Some(value) => flag(value)
            .map(Some)
            .ok_or_else(|| invalid("the field \"cas_required\" must be true or false")),
    }
}

/// One custom metadata value: a string (numbers and booleans taken as
/// their text, as Vault's loose decoding does).
fn custom_value(value: &Value) -> Result<String, Error> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(_) | Value::Bool(_) => Ok(value.to_string()),
        other => Err(invalid(format!(
            "custom_metadata values must be strings, not {}",
            kind(other)
        ))),
    }
}

/// `custom_metadata` as an object, if given (null: not given).
fn custom_object(body: &Map<String, Value>) -> Result<Option<&Map<String, Value>>, Error> {
    match body.get("custom_metadata") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(object)) => Ok(Some(object)),
        Some(other) => Err(invalid(format!(
            "the field \"custom_metadata\" must be a JSON object of strings, not {}",
            kind(other)
        ))),
    }
}

/// `custom_metadata`, if given: an object of strings.
fn custom_metadata(body: &Map<String, Value>) -> Result<Option<BTreeMap<String, String>>, Error> {
    let Some(object) = custom_object(body)? else {
        return Ok(None);
    };
    object
        .iter()
        .map(|(key, value)| Ok((key.clone(), custom_value(value)?)))
        .collect::<Result<_, Error>>()
        .map(Some)
}

/// The body of a write of `metadata/<path>`: the settings given.
pub fn metadata_update(body: Value) -> Result<MetadataUpdate, Error> {
    let body = object(body)?;
    check_delete_after(&body)?;
    Ok(MetadataUpdate {
        max_versions: max_versions(&body)?,
        cas_required: cas_required(&body)?,
        custom_metadata: custom_metadata(&body)?,
    })
}

/// The body of a PATCH of `metadata/<path>`, a JSON merge patch (RFC
/// 7386) of the settings: a field left out stays, a field set to null
/// goes back to its default, and a `custom_metadata` key set to null is
/// removed.
pub fn metadata_patch(body: Value) -> Result<MetadataPatch, Error> {
    let body = object(body)?;
    check_delete_after(&body)?;
    let reset = |name: &str| matches!(body.get(name), Some(Value::Null));
    let mut patch = MetadataPatch {
        max_versions: max_versions(&body)?.or(reset("max_versions").then_some(0)),
        cas_required: cas_required(&body)?.or(reset("cas_required").then_some(false)),
        clear_custom: reset("custom_metadata"),
        custom_metadata: BTreeMap::new(),
    };
    for (key, value) in custom_object(&body)?.into_iter().flatten() {
        let value = match value {
            Value::Null => None,
            given => Some(custom_value(given)?),
        };
        patch.custom_metadata.insert(key.clone(), value);
    }
    Ok(patch)
}

/// The body of a write of `config`: the settings given.
#[derive(Default)]
pub struct Settings {
    /// `max_versions`.
    pub max_versions: Option<u32>,
    /// `cas_required`.
    pub cas_required: Option<bool>,
}

/// Reads a write of `config`.
pub fn settings(body: Value) -> Result<Settings, Error> {
    let body = object(body)?;
    check_delete_after(&body)?;
    Ok(Settings {
        max_versions: max_versions(&body)?,
        cas_required: cas_required(&body)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loose_numbers_and_versions_read_as_vaults() {
        assert_eq!(versions(json!({"versions": [1, "2"]})).unwrap(), [1, 2]);
        assert_eq!(versions(json!({"versions": "3,4"})).unwrap(), [3, 4]);
        assert_eq!(versions(json!({"versions": 5})).unwrap(), [5]);
        assert!(versions(json!({"versions": []})).is_err());
        assert!(versions(json!({"versions": "x"})).is_err());
        assert!(versions(json!([1])).is_err());
        let written = write(json!({"data": {"a": 1}, "options": {"cas": "2"}})).unwrap();
        assert_eq!((written.cas, written.data.len()), (Some(2), 1));
        assert!(write(json!({"data": {}, "options": {"cas": "x"}})).is_err());
        assert!(write(json!({"data": {}, "options": 1})).is_err());
        assert!(write(json!({"data": "x"})).is_err());
        assert!(write(json!({})).is_err());
        assert!(settings(json!({"delete_version_after": "0s"})).is_ok());
        assert!(settings(json!({"delete_version_after": "1h"})).is_err());
        assert_eq!(
            metadata_update(json!({"custom_metadata": {"a": 1}}))
                .unwrap()
                .custom_metadata,
            Some(BTreeMap::from([("a".to_string(), "1".to_string())]))
        );
        assert!(metadata_update(json!({"custom_metadata": {"a": {}}})).is_err());
    }

    #[test]
    fn a_metadata_patch_resets_nulls_and_removes_null_keys() {
        let patch = metadata_patch(json!({
            "max_versions": null,
            "custom_metadata": {"gone": null, "kept": "v", "n": 2},
        }))
        .unwrap();
        assert_eq!(patch.max_versions, Some(0));
        assert_eq!(patch.cas_required, None);
        assert!(!patch.clear_custom);
        assert_eq!(
            patch.custom_metadata,
            BTreeMap::from([
                ("gone".to_string(), None),
                ("kept".to_string(), Some("v".to_string())),
                ("n".to_string(), Some("2".to_string())),
            ])
        );
        let cleared =
            metadata_patch(json!({"custom_metadata": null, "cas_required": "t"})).unwrap();
        assert!(cleared.clear_custom);
        assert_eq!(cleared.cas_required, Some(true));
        assert!(metadata_patch(json!({"custom_metadata": "x"})).is_err());
        assert!(metadata_patch(json!({"max_versions": "x"})).is_err());
        assert!(metadata_patch(json!({"delete_version_after": "1h"})).is_err());
    }
}
