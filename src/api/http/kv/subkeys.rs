//! `secret/subkeys/<path>` (`?version=`, `?depth=`): a version's field
//! names without their values, as Vault answers it. The values are read
//! by the engine but never leave this module, nor reach the audit log.

use serde_json::{Map, Value, json};

use super::{body, gone, missing, split, whole_query};
use crate::api::Gate;
use crate::api::actions;
use crate::api::http::{HttpError, Outcome, Reply, Request};
use crate::audit::Field;
use crate::engines::kv::{Lookup, VersionInfo};

/// `GET subkeys/<path>`.
pub async fn read(gate: &Gate, request: &Request, path: &str) -> Outcome {
    if path.is_empty() || path.ends_with('/') {
        return Err(HttpError::not_found());
    }
    let (version_ok, version) = split(whole_query(request, "version"));
    let (depth_ok, depth) = split(whole_query(request, "depth"));
    let kv = &gate.node().kv;
    let found = request
        .call(gate, &actions::KV_SUBKEYS, path)
        .check(version_ok)
        .check(depth_ok)
        .plain("version", version)
        .plain("depth", depth)
        .run(
            |session| async move { kv.lookup(&session, path, version).await },
            |found| {
                let version = match found {
                    Lookup::Live(read) => read.version,
                    Lookup::Gone { version, .. } => *version,
                };
                vec![("version", Field::Plain(version.into()))]
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
                "subkeys": subkeys(&read.data.object(), depth),
                "metadata": body::version_json(read.version, &info, &read.custom_metadata),
            })))
        }
        Lookup::Gone {
            version,
            info,
            custom_metadata,
        } => Ok(gone("subkeys", version, &info, &custom_metadata)),
    }
}

/// The keys of `fields`, each null but a non-empty object's, which holds
/// its own keys, down to `depth` levels (0: every level), as Vault's.
fn subkeys(fields: &Map<String, Value>, depth: u64) -> Value {
    let keys = fields
        .iter()
        .map(|(key, value)| {
            let nested = match value {
                Value::Object(inner) if !inner.is_empty() && depth != 1 => {
                    subkeys(inner, depth.saturating_sub(1))
                }
                _ => Value::Null,
            };
            (key.clone(), nested)
        })
        .collect();
    Value::Object(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(o) => o,
            _ => unreachable!(),
        }
    }

    #[test]
    fn subkeys_keep_the_structure_and_drop_every_value() {
        let document = fields(json!({
            "a": "secret", "e": {}, "l": [1, {"x": 1}],
            "n": {"b": {"c": 2}, "d": [1, 2]},
        }));
        let all = json!({"a": null, "e": null, "l": null, "n": {"b": {"c": null}, "d": null}});
        assert_eq!(subkeys(&document, 0), all);
        assert_eq!(
            subkeys(&document, 1),
            json!({"a": null, "e": null, "l": null, "n": null})
        );
        assert_eq!(
            subkeys(&document, 2),
            json!({"a": null, "e": null, "l": null, "n": {"b": null, "d": null}})
        );
        assert_eq!(subkeys(&document, 9), all);
    }
}
