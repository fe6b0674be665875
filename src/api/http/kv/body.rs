//! Reading kv v2 request bodies as Vault does (its loose decoding: a
//! number may come as a string, versions as a list or a comma-separated
//! string), and writing its times and version objects.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::api::http::HttpError;
use crate::engines::kv::{VersionInfo, kind};
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

/// The body as a JSON object (empty: `{}`).
pub fn object(request: &crate::api::http::Request) -> Result<Map<String, Value>, HttpError> {
    match request.json::<Value>()? {
        Value::Object(object) => Ok(object),
        other => Err(HttpError::bad_request(format!(
            "the request body must be a JSON object, not {}",
            kind(&other)
        ))),
    }
}

/// `data`: the secret's fields, a JSON object (Vault: "no data provided"
/// when it is missing).
pub fn data(body: &Map<String, Value>) -> Result<Map<String, Value>, HttpError> {
    match body.get("data") {
        None | Some(Value::Null) => Err(HttpError::bad_request("no data provided")),
        Some(Value::Object(data)) => Ok(data.clone()),
        Some(other) => Err(HttpError::bad_request(format!(
            "the field \"data\" must be a JSON object of fields, not {}",
            kind(other)
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
pub fn cas(body: &Map<String, Value>) -> Result<Option<u64>, HttpError> {
    let options = match body.get("options") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(options)) => options,
        Some(other) => {
            return Err(HttpError::bad_request(format!(
                "the field \"options\" must be a JSON object, not {}",
                kind(other)
            )));
        }
    };
    match options.get("cas") {
        None | Some(Value::Null) => Ok(None),
        Some(value) => whole(value)
            .map(Some)
            .ok_or_else(|| HttpError::bad_request("error parsing check-and-set parameter")),
    }
}

/// `versions`: a list of numbers (or of digit strings), one number, or a
/// comma-separated string; at least one.
pub fn versions(body: &Map<String, Value>) -> Result<Vec<u64>, HttpError> {
    let bad = || HttpError::bad_request("the field \"versions\" must be a list of version numbers");
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
        return Err(HttpError::bad_request("no version number provided"));
    }
    Ok(versions)
}

/// `delete_version_after`: only "0s" (or 0: never), as strongroom does not
/// delete versions by age.
pub fn check_delete_after(body: &Map<String, Value>) -> Result<(), HttpError> {
    match body.get("delete_version_after") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if ["0", "0s", "0m", "0h", ""].contains(&s.as_str()) => Ok(()),
        Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(()),
        Some(_) => Err(HttpError::bad_request(
            "delete_version_after is not supported: strongroom keeps versions until max_versions prunes them; give \"0s\" or leave it out",
        )),
    }
}

/// `max_versions`, if given.
pub fn max_versions(body: &Map<String, Value>) -> Result<Option<u32>, HttpError> {
    match body.get("max_versions") {
        None | Some(Value::Null) => Ok(None),
        Some(value) => whole(value)
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                HttpError::bad_request("the field \"max_versions\" must be a whole number")
            }),
    }
}

/// `cas_required`, if given.
pub fn cas_required(body: &Map<String, Value>) -> Result<Option<bool>, HttpError> {
    match body.get("cas_required") {
        None | Some(Value::Null) => Ok(None),
        Some(value) => flag(value).map(Some).ok_or_else(|| {
            HttpError::bad_request("the field \"cas_required\" must be true or false")
        }),
    }
}

/// `custom_metadata`, if given: an object of strings (numbers and
/// booleans taken as their text, as Vault's loose decoding does).
pub fn custom_metadata(
    body: &Map<String, Value>,
) -> Result<Option<BTreeMap<String, String>>, HttpError> {
    let object = match body.get("custom_metadata") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(object)) => object,
        Some(other) => {
            return Err(HttpError::bad_request(format!(
                "the field \"custom_metadata\" must be a JSON object of strings, not {}",
                kind(other)
            )));
        }
    };
    let mut custom = BTreeMap::new();
    for (key, value) in object {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(_) | Value::Bool(_) => value.to_string(),
            other => {
                return Err(HttpError::bad_request(format!(
                    "custom_metadata values must be strings, not {}",
                    kind(other)
                )));
            }
        };
        custom.insert(key.clone(), text);
    }
    Ok(Some(custom))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(o) => o,
            _ => unreachable!(),
        }
    }

    #[test]
    fn loose_numbers_and_versions_read_as_vaults() {
        assert_eq!(
            versions(&body(json!({"versions": [1, "2"]}))).unwrap(),
            [1, 2]
        );
        assert_eq!(versions(&body(json!({"versions": "3,4"}))).unwrap(), [3, 4]);
        assert_eq!(versions(&body(json!({"versions": 5}))).unwrap(), [5]);
        assert!(versions(&body(json!({"versions": []}))).is_err());
        assert!(versions(&body(json!({"versions": "x"}))).is_err());
        assert_eq!(
            cas(&body(json!({"options": {"cas": "2"}}))).unwrap(),
            Some(2)
        );
        assert!(cas(&body(json!({"options": {"cas": "x"}}))).is_err());
        assert!(cas(&body(json!({"options": 1}))).is_err());
        assert!(data(&body(json!({"data": "x"}))).is_err());
        assert!(data(&body(json!({}))).is_err());
        assert!(check_delete_after(&body(json!({"delete_version_after": "0s"}))).is_ok());
        assert!(check_delete_after(&body(json!({"delete_version_after": "1h"}))).is_err());
        assert_eq!(
            custom_metadata(&body(json!({"custom_metadata": {"a": 1}}))).unwrap(),
            Some(BTreeMap::from([("a".to_string(), "1".to_string())]))
        );
        assert!(custom_metadata(&body(json!({"custom_metadata": {"a": {}}}))).is_err());
    }
}
