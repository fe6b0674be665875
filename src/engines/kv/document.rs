//! A secret's data: a JSON object, as Vault's kv keeps it (values may be
//! strings, numbers, booleans, null, lists or objects).
//!
//! The document is held serialized in memory that is zeroized when
//! dropped, and parsed only where a caller needs its values. A store
//! written when values were only strings held JSON objects of strings,
//! which are documents like any other: they read as JSON strings.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::error::Error;
use crate::secret::SecretString;

/// A secret's data, serialized as a JSON object.
#[derive(Clone)]
pub struct Document(Zeroizing<Vec<u8>>);

impl Document {
    /// The document of `object`.
    pub fn from_object(object: &Map<String, Value>) -> Self {
        // A map of JSON values always serializes.
        Self(Zeroizing::new(
            serde_json::to_vec(object).unwrap_or_default(),
        ))
    }

    /// The document of a map of string fields.
    pub fn from_strings<'a>(fields: impl IntoIterator<Item = (&'a String, &'a str)>) -> Self {
        let plain: BTreeMap<&str, &str> =
            fields.into_iter().map(|(k, v)| (k.as_str(), v)).collect();
        Self(Zeroizing::new(
            serde_json::to_vec(&plain).unwrap_or_default(),
        ))
    }

    /// Parses `text`, which must be a JSON object; the error names what is
    /// wrong without quoting the text.
    pub fn parse(text: &[u8]) -> Result<Self, Error> {
        match serde_json::from_slice::<Value>(text) {
            Ok(Value::Object(object)) => Ok(Self::from_object(&object)),
            Ok(other) => Err(Error::InvalidArgument(format!(
                "the secret's data must be a JSON object of fields, not {}",
                kind(&other)
            ))),
            Err(e) => Err(Error::InvalidArgument(format!(
                "the secret's data is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ))),
        }
    }

    /// A document read from storage; damage is an internal error naming
    /// the path.
    pub(super) fn stored(path: &str, bytes: &[u8]) -> Result<Self, Error> {
        Self::parse(bytes).map_err(|_| {
            Error::Internal(format!(
                "the data of kv path {} is damaged",
                crate::text::quote(path)
            ))
        })
    }

    /// The serialized document.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The serialized document as text.
    pub fn text(&self) -> &str {
        // Serialized by serde_json: always UTF-8.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The document's fields.
    pub fn object(&self) -> Map<String, Value> {
        match serde_json::from_slice(&self.0) {
            Ok(Value::Object(object)) => object,
            _ => Map::new(),
        }
    }

    /// The fields as strings, if every value is a string.
    pub fn strings(&self) -> Option<BTreeMap<String, SecretString>> {
        self.object()
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Some((k, SecretString::new(s))),
                _ => None,
            })
            .collect()
    }
}

/// The name of a JSON value's type, for errors.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Applies `patch` to `target` as a JSON merge patch (RFC 7386): null
/// removes a field, an object merges into an object, anything else
/// replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(object) = target {
        for (name, value) in fields {
            if value.is_null() {
                object.remove(name);
            } else {
                merge_patch(object.entry(name.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn old_string_maps_read_as_json_strings() {
        let old = br#"{"password":"hunter2","user":"admin"}"#;
        let doc = Document::stored("app/db", old).unwrap();
        assert_eq!(doc.object()["password"], json!("hunter2"));
        assert_eq!(doc.strings().unwrap()["user"].expose(), "admin");
        let mixed = Document::parse(br#"{"n":1,"o":{"a":[true,null]}}"#).unwrap();
        assert!(mixed.strings().is_none());
        assert_eq!(mixed.object()["o"]["a"], json!([true, null]));
    }

    #[test]
    fn only_objects_are_documents() {
        for bad in [&b"[1]"[..], b"\"x\"", b"{", b"null"] {
            let e = Document::parse(bad).err().unwrap();
            assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
        }
        assert!(Document::stored("a", b"[").is_err());
    }

    #[test]
    fn merge_patches_follow_rfc_7386() {
        let mut doc = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": "s"});
        merge_patch(&mut doc, &json!({"a": null, "b": {"c": 5}, "f": [1]}));
        assert_eq!(doc, json!({"b": {"c": 5, "d": 3}, "e": "s", "f": [1]}));
        let mut scalar = json!({"a": "x"});
        merge_patch(&mut scalar, &json!({"a": {"b": null, "c": 1}}));
        assert_eq!(scalar, json!({"a": {"c": 1}}));
    }
}
