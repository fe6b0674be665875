//! The fields of a transit request body, read as Vault reads them: the
//! `bao` CLI sends every `key=value` as a string, so booleans and numbers
//! are taken as JSON or as strings (Go's `ParseBool`, decimal digits).
//! A field of the wrong type is one sentence naming it; fields Vault
//! takes that change nothing here are ignored, as unknown ones are.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use crate::error::Error;

/// A request body's fields.
pub struct Fields(Map<String, Value>);

/// A field of the wrong type, named by its type only: transit's fields
/// carry plaintexts and contexts, which an error (and so the audit line
/// of a refused call) must never repeat.
fn wrong(name: &str, what: &str, value: &Value) -> Error {
    let shown = match value {
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
        Value::Null => "null",
    };
    Error::InvalidArgument(format!("the field {name} must be {what}, not {shown}"))
}

impl Fields {
    /// The fields of `body`.
    pub fn new(body: Map<String, Value>) -> Self {
        Self(body)
    }

    /// Field `name`, unless absent or null.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// A string field.
    pub fn string(&self, name: &str) -> Result<Option<&str>, Error> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(wrong(name, "a string", other)),
        }
    }

    /// A boolean field: `true`, `"true"`, `1`, `"1"` and Go's other forms.
    pub fn flag(&self, name: &str) -> Result<Option<bool>, Error> {
        let parsed = match self.get(name) {
            None => return Ok(None),
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::String(s)) => match s.as_str() {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
                "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
                _ => None,
            },
            Some(Value::Number(n)) => match n.as_u64() {
                Some(1) => Some(true),
                Some(0) => Some(false),
                _ => None,
            },
            Some(_) => None,
        };
        match parsed {
            Some(b) => Ok(Some(b)),
            // Checked present above.
            None => Err(wrong(
                name,
                "true or false",
                self.get(name).unwrap_or(&Value::Null),
            )),
        }
    }

    /// A whole number from 0 to `u32::MAX`, as a JSON number or decimal digits.
    pub fn number(&self, name: &str) -> Result<Option<u32>, Error> {
        let value = match self.get(name) {
            None => return Ok(None),
            Some(v) => v,
        };
        let parsed = match value {
            Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            Value::String(s) => s.trim().parse::<u32>().ok(),
            _ => None,
        };
        let negative = match value {
            Value::Number(n) => n.as_i64().is_some_and(|n| n < 0),
            Value::String(s) => s.trim().starts_with('-'),
            _ => false,
        };
        if negative {
            return Err(Error::InvalidArgument(format!(
                "the field {name} cannot be negative"
            )));
        }
        parsed
            .ok_or_else(|| wrong(name, "a whole number", value))
            .map(Some)
    }

    /// A base64 field (standard alphabet, padded, as Vault's), decoded;
    /// absent is `None`.
    pub fn base64(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        self.string(name)?.map(|s| decode(name, s)).transpose()
    }

    /// A setting Vault has and strongroom does not: only its default
    /// (`false`, `0`, empty) is taken.
    pub fn unsupported(&self, name: &str, why: &str) -> Result<(), Error> {
        let default = match self.get(name) {
            None => true,
            Some(Value::Bool(b)) => !b,
            Some(Value::Number(n)) => n.as_f64() == Some(0.0),
            Some(Value::String(s)) => {
                matches!(
                    s.as_str(),
                    "" | "0" | "0s" | "f" | "F" | "false" | "FALSE" | "False"
                )
            }
            Some(_) => false,
        };
        if default {
            return Ok(());
        }
        Err(Error::InvalidArgument(format!(
            "strongroom does not support {name}: {why}"
        )))
    }

    /// `batch_input`: a list of objects (none when absent).
    pub fn batch(&self) -> Result<Vec<Fields>, Error> {
        let items = match self.get("batch_input") {
            None => return Ok(Vec::new()),
            Some(Value::Array(items)) => items,
            Some(other) => return Err(wrong("batch_input", "a list of objects", other)),
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Object(map) => Ok(Fields(map.clone())),
                other => Err(wrong(&format!("batch_input[{i}]"), "an object", other)),
            })
            .collect()
    }
}

/// Decodes base64 field `name` (standard alphabet, padded).
pub fn decode(name: &str, value: &str) -> Result<Vec<u8>, Error> {
    STANDARD
        .decode(value)
        // Not the decoder's sentence: it names the offending byte.
        .map_err(|_| Error::InvalidArgument(format!("the field {name} is not valid base64")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(value: Value) -> Fields {
        match value {
            Value::Object(map) => Fields::new(map),
            _ => unreachable!(),
        }
    }

    #[test]
    fn flags_and_numbers_take_the_clis_strings() {
        let f = fields(
            json!({"a": "true", "b": false, "c": "2", "d": 3, "e": "yes", "g": -1, "h": [1]}),
        );
        assert_eq!(f.flag("a").unwrap(), Some(true));
        assert_eq!(f.flag("b").unwrap(), Some(false));
        assert_eq!(f.flag("z").unwrap(), None);
        assert!(
            f.flag("e")
                .unwrap_err()
                .to_string()
                .contains("the field e must be true or false")
        );
        assert_eq!(f.number("c").unwrap(), Some(2));
        assert_eq!(f.number("d").unwrap(), Some(3));
        assert!(
            f.number("g")
                .unwrap_err()
                .to_string()
                .contains("cannot be negative")
        );
        assert!(
            f.number("h")
                .unwrap_err()
                .to_string()
                .contains("not a list")
        );
        assert!(f.string("d").is_err());
    }

    #[test]
    fn base64_and_unsupported_settings() {
        let f =
            fields(json!({"p": "aGk=", "q": "bad!", "x": true, "y": "0s", "batch_input": "no"}));
        assert_eq!(f.base64("p").unwrap(), Some(b"hi".to_vec()));
        assert!(
            f.base64("q")
                .unwrap_err()
                .to_string()
                .contains("not valid base64")
        );
        assert!(f.unsupported("x", "why").is_err());
        assert!(f.unsupported("y", "why").is_ok());
        assert!(f.unsupported("absent", "why").is_ok());
        assert!(f.batch().is_err());
    }
}
