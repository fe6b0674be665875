//! A request body's fields as Vault reads them: loosely typed (a number
//! or a string holding one, a list or a comma-separated string, Go's
//! durations), each refused with a sentence naming the field (an
//! argument check at the gate: never the field's value when it may be a
//! token or a label's value).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::Error;
use crate::text;

/// The longest duration a field takes (about 317 years): longer ones are
/// refused rather than overflowing a time.
const MAX_DURATION_SECS: u64 = 10_000_000_000;

/// A request's JSON object.
#[derive(Default)]
pub struct Fields(Map<String, Value>);

impl Fields {
    /// The body's object (an empty body is `{}`), and whether it decoded:
    /// a body that does not is no fields, and its error refuses the call
    /// at the gate's argument checks (two bounded audit lines).
    pub fn of(request: &crate::api::http::Request) -> (Self, Result<(), Error>) {
        match request.json::<Map<String, Value>>() {
            Ok(body) => (Self(body), Ok(())),
            Err(e) => (Self::default(), Err(e)),
        }
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// A string field; empty when absent.
    pub fn string(&self, name: &str) -> Result<String, Error> {
        match self.get(name) {
            None => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(other) => Err(wrong(name, "a string", other)),
        }
    }

    /// A boolean field (`true`, or a string Go's `ParseBool` takes).
    pub fn flag(&self, name: &str) -> Result<Option<bool>, Error> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => match s.as_str() {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Some(true)),
                "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(Some(false)),
                _ => Err(wrong(name, "true or false", &Value::String(s.clone()))),
            },
            Some(other) => Err(wrong(name, "true or false", other)),
        }
    }

    /// A whole number that may not be negative; 0 when absent.
    pub fn count(&self, name: &str) -> Result<u64, Error> {
        let value = match self.get(name) {
            None => return Ok(0),
            Some(Value::String(s)) if s.trim().is_empty() => return Ok(0),
            Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
            Some(Value::Number(n)) => n.as_i64(),
            Some(_) => None,
        };
        match value {
            Some(n) if n < 0 => Err(Error::InvalidArgument(format!("{name} cannot be negative"))),
            Some(n) => Ok(n.unsigned_abs()),
            None => Err(wrong(
                name,
                "a whole number",
                self.get(name).unwrap_or(&Value::Null),
            )),
        }
    }

    /// A duration in whole seconds: a number of seconds, or a string of
    /// seconds or in Go's form (`"90s"`, `"1h30m"`, `"1.5h"`); 0 when
    /// absent. Returns the seconds and the text given, for warnings.
    pub fn duration(&self, name: &str) -> Result<(u64, String), Error> {
        let seconds = match self.get(name) {
            None => return Ok((0, String::new())),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(s) if s < 0.0 => {
                    return Err(Error::InvalidArgument(format!("{name} must be positive")));
                }
                Some(s) if s.is_finite() => Some((s as u64, n.to_string())),
                _ => None,
            },
            Some(Value::String(s)) => go_duration(s.trim()).map(|secs| (secs, s.clone())),
            Some(_) => None,
        };
        // Beyond any lifetime (and any clock): refused, not wrapped.
        let seconds = seconds.filter(|(secs, _)| *secs <= MAX_DURATION_SECS);
        seconds.ok_or_else(|| {
            let given = self.get(name).map(describe).unwrap_or_default();
            Error::InvalidArgument(format!(
                "{name} is not a duration: {given}; give seconds or a duration such as \"30m\" or \"24h\""
            ))
        })
    }

    /// A list of strings: a JSON list, or one comma-separated string.
    pub fn list(&self, name: &str) -> Result<Vec<String>, Error> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.trim().to_string()),
                    other => Err(wrong(name, "a list of strings", other)),
                })
                .collect(),
            Some(other) => Err(wrong(name, "a list of strings", other)),
        }
    }

    /// An object of labels: string values, numbers and booleans as text.
    pub fn labels(&self, name: &str) -> Result<BTreeMap<String, String>, Error> {
        let object = match self.get(name) {
            None => return Ok(BTreeMap::new()),
            Some(Value::Object(object)) => object,
            Some(other) => return Err(wrong(name, "an object of strings", other)),
        };
        object
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                Value::Number(_) | Value::Bool(_) => Ok((k.clone(), v.to_string())),
                other => Err(wrong(name, "an object of strings", other)),
            })
            .collect()
    }
}

/// What a JSON value is, for a sentence (a string quoted, bounded).
fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => text::quote(s),
        Value::Number(n) => n.to_string(),
        Value::Bool(_) => "a boolean".into(),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
        Value::Null => "null".into(),
    }
}

fn wrong(name: &str, expected: &str, given: &Value) -> Error {
    Error::InvalidArgument(format!(
        "{name} must be {expected}, not {}",
        describe(given)
    ))
}

/// Go's `time.ParseDuration` with Vault's `d` for days (its parseutil), or
/// plain seconds, in whole seconds (rounded down); `None` if malformed, negative
/// or beyond any lifetime.
pub fn go_duration(text: &str) -> Option<u64> {
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(seconds);
    }
    if text.is_empty() || text.starts_with('-') {
        return None;
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest == "0" {
        return Some(0);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|n| *n > 0)?;
        let (number, tail) = rest.split_at(number_len);
        let number: f64 = number.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            // Vault's parseutil takes days too.
            "d" => 86400.0,
            _ => return None,
        };
        total += number * scale;
        rest = tail;
    }
    // Go's durations end at about 292 years; nothing here lives that long.
    (total.is_finite() && total < 1e10).then_some(total as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_gos() {
        assert_eq!(go_duration("3600"), Some(3600));
        assert_eq!(go_duration("1h0m0s"), Some(3600));
        assert_eq!(go_duration("0s"), Some(0));
        assert_eq!(go_duration("0"), Some(0));
        assert_eq!(go_duration("1.5h"), Some(5400));
        assert_eq!(go_duration("90m"), Some(5400));
        assert_eq!(go_duration("500ms"), Some(0));
        assert_eq!(go_duration("banana"), None);
        assert_eq!(go_duration("1d"), Some(86400));
        assert_eq!(go_duration("1w"), None);
        assert_eq!(go_duration("-1h"), None);
        assert_eq!(go_duration("h"), None);
        assert_eq!(go_duration(""), None);
        assert_eq!(go_duration("99999999999999h"), None);
    }
}
