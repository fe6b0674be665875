//! One audited call: a request line before the call acts and a response
//! line after it, with the same keys on every line, and secret values
//! written as HMACs under the audit salt.

use std::collections::BTreeMap;
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use super::device::{AuditError, Auditor};
use crate::secret::SecretKey;

/// A value in an audit line's `data`.
pub enum Field {
    /// Written as is.
    Plain(Value),
    /// Written as its HMAC, or left out while sealed.
    Secret(Zeroizing<Vec<u8>>),
    /// Names written as is, values as HMACs.
    SecretMap(BTreeMap<String, Zeroizing<String>>),
    /// A JSON document (a kv secret's data): keys written as is, every
    /// leaf value as its HMAC (a string's of its text, any other leaf's of
    /// its JSON).
    SecretJson(Zeroizing<String>),
}

/// `hmac-sha256:<hex>` of `value` under `salt`.
pub fn hmac(salt: &SecretKey, value: &[u8]) -> String {
    // HMAC accepts keys of any length; 32 bytes cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(salt.expose())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(value);
    format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
}

/// The most values a document's audit line HMACs one by one: past it the
/// line stays bounded (a 900 KB document of small leaves would otherwise
/// write tens of megabytes on every read).
const MAX_HMAC_LEAVES: usize = 256;

/// The longest key of a document or map an audit line writes as it is;
/// a longer one is written as its HMAC (a key the caller chose must not
/// make the line as long as the request).
const MAX_PLAIN_KEY: usize = 256;

/// `key` as a line writes it: as it is, or its HMAC past [`MAX_PLAIN_KEY`].
fn audited_key(salt: &SecretKey, key: &str) -> String {
    if key.len() <= MAX_PLAIN_KEY {
        key.to_string()
    } else {
        hmac(salt, key.as_bytes())
    }
}

/// How many leaves `value` has.
fn leaves(value: &Value) -> usize {
    match value {
        Value::Object(map) => map.values().map(leaves).sum(),
        Value::Array(items) => items.iter().map(leaves).sum(),
        _ => 1,
    }
}

/// `text`'s JSON with every leaf value replaced by its HMAC; text that is
/// not JSON is one leaf. A document of more than [`MAX_HMAC_LEAVES`]
/// leaves keeps its top-level keys, each value one HMAC of its JSON; one
/// with more top-level keys than that is one HMAC of the whole text.
fn hmac_leaves(salt: &SecretKey, text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(value) if leaves(&value) <= MAX_HMAC_LEAVES => hmac_each_leaf(salt, &value),
        Ok(Value::Object(map)) if map.len() <= MAX_HMAC_LEAVES => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let one = match v {
                        Value::String(s) => hmac(salt, s.as_bytes()),
                        other => hmac(salt, other.to_string().as_bytes()),
                    };
                    (audited_key(salt, k), Value::String(one))
                })
                .collect(),
        ),
        _ => Value::String(hmac(salt, text.as_bytes())),
    }
}

fn hmac_each_leaf(salt: &SecretKey, value: &Value) -> Value {
    fn walk(salt: &SecretKey, value: &Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (audited_key(salt, k), walk(salt, v)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(|v| walk(salt, v)).collect()),
            Value::String(s) => Value::String(hmac(salt, s.as_bytes())),
            leaf => Value::String(hmac(salt, leaf.to_string().as_bytes())),
        }
    }
    walk(salt, value)
}

/// The most bytes of a plain value on the request line of a refused call.
const REFUSED_PLAIN_BYTES: usize = 256;

fn render(fields: &[(&'static str, Field)], salt: Option<&SecretKey>) -> Value {
    let mut data = Map::new();
    for (name, field) in fields {
        let value = match (field, salt) {
            (Field::Plain(value), _) => value.clone(),
            (Field::Secret(bytes), Some(salt)) => Value::String(hmac(salt, bytes)),
            (Field::SecretMap(map), Some(salt)) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        (
                            audited_key(salt, k),
                            Value::String(hmac(salt, v.as_bytes())),
                        )
                    })
                    .collect(),
            ),
            (Field::SecretJson(text), Some(salt)) => hmac_leaves(salt, text),
            (Field::Secret(_) | Field::SecretMap(_) | Field::SecretJson(_), None) => continue,
        };
        data.insert((*name).to_string(), value);
    }
    Value::Object(data)
}

/// The parameters of a call refused before it was authorized: its plain
/// values, each cut to [`REFUSED_PLAIN_BYTES`], and none of its secret
/// ones, not even as HMACs (a caller without the right to ask for a
/// value's HMAC must not get it written where the log's readers see it).
fn render_refused(fields: &[(&'static str, Field)]) -> Value {
    let mut data = Map::new();
    for (name, field) in fields {
        let Field::Plain(value) = field else {
            continue;
        };
        let text = value.to_string();
        let value = if text.len() <= REFUSED_PLAIN_BYTES {
            value.clone()
        } else {
            Value::String(format!(
                "({} bytes, cut) {}",
                text.len(),
                crate::text::prefix(&text, REFUSED_PLAIN_BYTES)
            ))
        };
        data.insert((*name).to_string(), value);
    }
    Value::Object(data)
}

/// Who made an audited call, once known.
#[derive(Clone, Default)]
pub struct Who {
    /// The token's accessor.
    pub accessor: Option<String>,
    /// The listener identity.
    pub identity: Option<String>,
}

#[derive(Default)]
struct Progress {
    request_written: bool,
    who: Who,
}

/// One line as written: the keys in sorted order, as a JSON object's
/// (serialized straight from the borrowed values, without building one).
#[derive(serde::Serialize)]
struct Line<'a> {
    accessor: Option<&'a str>,
    data: &'a Value,
    error: Option<&'a str>,
    id: &'a str,
    identity: Option<&'a str>,
    operation: &'a str,
    path: &'a str,
    time: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
}

/// A line's usual size, allocated at once.
const LINE_CAPACITY: usize = 512;

/// One audited call: its request line, then its response line.
pub struct Record {
    auditor: Arc<Auditor>,
    id: String,
    operation: &'static str,
    path: String,
    fields: Vec<(&'static str, Field)>,
    progress: Mutex<Progress>,
}

impl Record {
    /// A call of `operation` on `path`, not yet written.
    pub fn new(auditor: Arc<Auditor>, operation: &'static str, path: String) -> Self {
        Self {
            auditor,
            id: crate::secret::random_uuid(),
            operation,
            path,
            fields: Vec::new(),
            progress: Mutex::default(),
        }
    }

    /// Adds a request parameter.
    pub fn field(&mut self, name: &'static str, field: Field) {
        self.fields.push((name, field));
    }

    fn line(
        &self,
        kind: &str,
        who: &Who,
        error: Option<&str>,
        data: Value,
    ) -> Result<Vec<u8>, AuditError> {
        let time = crate::time::now_rfc3339();
        let line = Line {
            accessor: who.accessor.as_deref(),
            data: &data,
            error,
            id: &self.id,
            identity: who.identity.as_deref(),
            operation: self.operation,
            path: &self.path,
            time: &time,
            kind,
        };
        let mut bytes = Vec::with_capacity(LINE_CAPACITY);
        // Writing to a Vec of string keys does not fail; if it ever did,
        // the line counts as not written (the call must not act).
        serde_json::to_writer(&mut bytes, &line).map_err(|e| {
            AuditError::Unwritable(format!("the audit line could not be serialized: {e}"))
        })?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// Writes the request line once, with the caller now known. An error
    /// means no device recorded it, and the call must not act.
    pub async fn request(&self, who: Who, salt: Option<&SecretKey>) -> Result<(), AuditError> {
        let mut progress = self.progress.lock().await;
        if progress.request_written {
            return Ok(());
        }
        let line = self.line("request", &who, None, render(&self.fields, salt))?;
        self.auditor.write(line).await?;
        progress.request_written = true;
        progress.who = who;
        Ok(())
    }

    /// Records a call refused before it was authorized (a malformed
    /// request, a caller without a valid token or without the
    /// capability): a request line with [`render_refused`]'s parameters and
    /// a response line with `error`. A line no device took is logged: the
    /// call did not act, and its answer is the refusal.
    pub async fn refused(&self, who: Who, error: &str) {
        let request = self.line("request", &who, None, render_refused(&self.fields));
        let response = self.line("response", &who, Some(error), Value::Object(Map::new()));
        for line in [request, response] {
            let written = match line {
                Ok(line) => self.auditor.write(line).await,
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                tracing::error!(error = %e, operation = self.operation, "audit line of a refused call lost");
            }
        }
    }

    /// Writes the response line (and the request line first if the call
    /// failed before it was written). A failure is logged: the call has
    /// already acted or failed, and its answer is not changed.
    pub async fn response(
        &self,
        outcome: Result<&[(&'static str, Field)], &str>,
        salt: Option<&SecretKey>,
    ) {
        if let Err(e) = self.request(Who::default(), salt).await {
            tracing::error!(error = %e, operation = self.operation, "audit request line lost");
        }
        let who = self.progress.lock().await.who.clone();
        let line = match outcome {
            Ok(fields) => self.line("response", &who, None, render(fields, salt)),
            Err(error) => self.line("response", &who, Some(error), Value::Object(Map::new())),
        };
        let written = match line {
            Ok(line) => self.auditor.write(line).await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            tracing::error!(error = %e, operation = self.operation, "audit response line lost");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_calls_request_line_is_written_before_its_response_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let devices = [crate::config::AuditDevice::File { path: path.clone() }];
        let auditor = Arc::new(Auditor::open(&devices).unwrap());
        let mut calls = tokio::task::JoinSet::new();
        for n in 0..300 {
            let auditor = Arc::clone(&auditor);
            calls.spawn(async move {
                let record = Record::new(auditor, "kv.Get", format!("secret/data/{n}"));
                record.request(Who::default(), None).await.unwrap();
                tokio::task::yield_now().await;
                record.response(Ok(&[]), None).await;
            });
        }
        while let Some(done) = calls.join_next().await {
            done.unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut seen = std::collections::HashMap::new();
        for line in text.lines() {
            let line: Value = serde_json::from_str(line).unwrap();
            let id = line["id"].as_str().unwrap().to_string();
            let kinds = seen.entry(id).or_insert_with(Vec::new);
            kinds.push(line["type"].as_str().unwrap().to_string());
        }
        assert_eq!(seen.len(), 300);
        for kinds in seen.values() {
            assert_eq!(kinds, &["request", "response"]);
        }
    }

    #[test]
    fn a_line_is_one_json_object_with_its_keys_sorted() {
        let record = Record::new(
            Arc::new(Auditor::default()),
            "kv.Get",
            "secret/data/x".into(),
        );
        let who = Who {
            accessor: Some("acc".into()),
            identity: None,
        };
        let line = record
            .line(
                "response",
                &who,
                Some("no \"such\" key"),
                serde_json::json!({"b": 1, "a": [true]}),
            )
            .unwrap();
        let text = String::from_utf8(line).unwrap();
        assert!(text.ends_with("}\n") && text.matches('\n').count() == 1);
        let parsed: Value = serde_json::from_str(&text).unwrap();
        let expected = serde_json::json!({
            "accessor": "acc", "data": {"a": [true], "b": 1}, "error": "no \"such\" key",
            "id": record.id, "identity": null, "operation": "kv.Get",
            "path": "secret/data/x", "time": parsed["time"], "type": "response",
        });
        // The same bytes as the JSON object (keys sorted) written before.
        assert_eq!(text.trim_end(), expected.to_string());
    }

    #[test]
    fn a_large_document_is_hmaced_in_a_bounded_line() {
        let salt = SecretKey::from_slice(&[7u8; 32]).unwrap();
        // Many small leaves under few keys: one HMAC per key.
        let many: Vec<u32> = (0..100_000).collect();
        let text = serde_json::json!({"a": many, "b": "x"}).to_string();
        let line = hmac_leaves(&salt, &text).to_string();
        assert!(line.len() < 1024, "{} bytes", line.len());
        assert!(line.contains("\"a\"") && line.contains("\"b\""));
        // Many keys: one HMAC of the whole document.
        let keys: serde_json::Map<String, Value> = (0..10_000)
            .map(|i| (format!("k{i}"), Value::from(i)))
            .collect();
        let line = hmac_leaves(&salt, &Value::Object(keys).to_string()).to_string();
        assert!(
            line.len() < 100 && line.starts_with("\"hmac-sha256:"),
            "{line}"
        );
        // A key longer than a line should hold: its HMAC.
        let long = "k".repeat(100_000);
        let line = hmac_leaves(
            &salt,
            &serde_json::json!({ long.as_str(): null }).to_string(),
        );
        assert!(line.to_string().len() < 200, "{line}");
        // A small document: every leaf.
        let small = hmac_leaves(&salt, r#"{"a": [1, {"b": "c"}]}"#);
        assert_eq!(small["a"][1]["b"], Value::String(hmac(&salt, b"c")));
    }

    #[test]
    fn secrets_are_hmaced_or_left_out() {
        let salt = SecretKey::from_slice(&[7u8; 32]).unwrap();
        let fields = [
            ("path", Field::Plain(Value::String("app/db".into()))),
            (
                "plaintext",
                Field::Secret(Zeroizing::new(b"hunter2".to_vec())),
            ),
            (
                "data",
                Field::SecretMap(BTreeMap::from([(
                    "password".to_string(),
                    Zeroizing::new("hunter2".to_string()),
                )])),
            ),
        ];
        let unsealed = render(&fields, Some(&salt)).to_string();
        assert!(!unsealed.contains("hunter2"), "{unsealed}");
        assert!(unsealed.contains(&hmac(&salt, b"hunter2")), "{unsealed}");
        assert!(unsealed.contains("\"password\""), "{unsealed}");
        let sealed = render(&fields, None).to_string();
        assert_eq!(sealed, r#"{"path":"app/db"}"#);
        assert_eq!(render_refused(&fields).to_string(), r#"{"path":"app/db"}"#);
        let long = [("policy", Field::Plain(Value::String("x".repeat(100_000))))];
        let refused = render_refused(&long).to_string();
        assert!(
            refused.len() < 400 && refused.contains("(100002 bytes, cut)"),
            "{refused}"
        );
        assert_ne!(hmac(&salt, b"a"), hmac(&salt, b"b"));
        assert!(hmac(&salt, b"a").starts_with("hmac-sha256:"));
    }

    #[test]
    fn every_leaf_of_a_json_document_is_hmaced() {
        let salt = SecretKey::from_slice(&[7u8; 32]).unwrap();
        let text = r#"{"pw":"hunter2","port":5432,"deep":{"list":[true,null,"x"]}}"#;
        let fields = [("data", Field::SecretJson(Zeroizing::new(text.into())))];
        let line = render(&fields, Some(&salt));
        let h = |v: &[u8]| Value::String(hmac(&salt, v));
        assert_eq!(line["data"]["pw"], h(b"hunter2"));
        assert_eq!(line["data"]["port"], h(b"5432"));
        assert_eq!(
            line["data"]["deep"]["list"],
            Value::Array(vec![h(b"true"), h(b"null"), h(b"x")])
        );
        assert_eq!(render(&fields, None).to_string(), "{}");
        assert_eq!(render_refused(&fields).to_string(), "{}");
    }
}
