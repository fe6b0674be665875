//! `keymgmt/kms/:name/key/:key_name`: distribute a key to a provider,
//! read the distribution, list a provider's keys, and remove it (the KMS
//! keys scheduled for deletion).

use serde_json::{Map, Value, json};

use super::{check, count, deletion_window, fields, listed, missing_is_bare_404};
use crate::api::Gate;
use crate::api::actions;
use crate::api::http::transit::fields::Fields;
use crate::api::http::{Outcome, Reply, Request};
use crate::audit::Field;
use crate::engines::keymgmt::{DistributeSpec, DistributionInfo};
use crate::error::Error;

/// The resource of a distribution's actions.
fn resource(provider: &str, key: &str) -> String {
    format!("{provider}/key/{key}")
}

/// `purpose` as a list (`["encrypt","decrypt"]`) or Vault's comma string
/// (`encrypt,decrypt`, which the CLI sends); `protection`, `hsm` unless given.
fn spec(fields: &Fields) -> Result<DistributeSpec, Error> {
    let wrong = || {
        Error::InvalidArgument(
            "the field purpose must be a list of strings or a comma-separated string such as encrypt,decrypt"
                .into(),
        )
    };
    let purpose = match fields.get("purpose") {
        None => Vec::new(),
        Some(Value::String(s)) => s.split(',').map(|p| p.trim().to_string()).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|p| p.as_str().map(|p| p.trim().to_string()).ok_or_else(wrong))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(wrong()),
    };
    Ok(DistributeSpec {
        purpose: purpose.into_iter().filter(|p| !p.is_empty()).collect(),
        protection: fields.string("protection")?.unwrap_or("hsm").to_string(),
    })
}

fn versions(info: &DistributionInfo) -> Vec<(&'static str, Field)> {
    vec![("versions", Field::Plain(info.versions.len().into()))]
}

/// A distribution as Vault's read shows it (the key's name, `purpose` as
/// its sorted comma string, `protection`, each version's KMS key id),
/// with strongroom's extras: the alias, the version it points at, each
/// version's ARN and state, and the deletion date of a removed one.
fn distribution_json(info: &DistributionInfo) -> Value {
    let mut purpose = info.purpose.clone();
    purpose.sort();
    let mut ids = Map::new();
    let mut details = Map::new();
    for v in &info.versions {
        let version = v.version.to_string();
        if let Some(id) = &v.kms_key_id {
            ids.insert(version.clone(), json!(id));
        }
        details.insert(
            version,
            json!({ "kms_key_id": v.kms_key_id, "arn": v.arn, "state": v.state }),
        );
    }
    let mut data = json!({
        "name": info.key,
        "purpose": purpose.join(","),
        "protection": info.protection,
        "versions": ids,
        "alias": info.alias,
        "alias_version": info.alias_version,
        "version_details": details,
    });
    if let Some(until) = info.pending_deletion_until {
        let until = u64::try_from(until).unwrap_or(0);
        data["pending_deletion_until"] = json!(crate::time::format_unix(until));
    }
    data
}

/// `PUT keymgmt/kms/:name/key/:key_name`: every version imported into a
/// KMS key of its own, the alias `alias/<key>` on the newest; again while
/// a distribution is incomplete, it completes it; 204.
pub(super) async fn write(gate: &Gate, request: &Request, provider: &str, key: &str) -> Outcome {
    let (fields, decoded) = fields(request);
    let spec = spec(&fields);
    let mut call = request
        .call(gate, &actions::KEYMGMT_DISTRIBUTE, &resource(provider, key))
        .check(decoded)
        .check(check(&spec));
    if let Ok(s) = &spec {
        call = call
            .plain("purpose", s.purpose.join(","))
            .plain("protection", s.protection.as_str());
    }
    let engine = &gate.node().keymgmt;
    call.run(
        |session| async move { engine.distribute(&session, provider, key, &spec?).await },
        versions,
    )
    .await?;
    Ok(Reply::no_content())
}

/// `GET keymgmt/kms/:name/key/:key_name`: as recorded (no KMS call).
pub(super) async fn read(gate: &Gate, request: &Request, provider: &str, key: &str) -> Outcome {
    let engine = &gate.node().keymgmt;
    let info = request
        .call(
            gate,
            &actions::KEYMGMT_DISTRIBUTION_READ,
            &resource(provider, key),
        )
        .run(
            |session| async move { engine.read_distribution(&session, provider, key).await },
            versions,
        )
        .await
        .map_err(missing_is_bare_404)?;
    Ok(Reply::data(distribution_json(&info)))
}

/// `LIST keymgmt/kms/:name/key`: the keys distributed to the provider
/// (removals pending deletion included).
pub(super) async fn list(gate: &Gate, request: &Request, provider: &str) -> Outcome {
    let engine = &gate.node().keymgmt;
    let names = request
        .call(gate, &actions::KEYMGMT_DISTRIBUTION_LIST, provider)
        .run(
            |session| async move { engine.list_distributions(&session, provider).await },
            |names| count(names),
        )
        .await
        .map_err(missing_is_bare_404)?;
    listed(names)
}

/// `DELETE keymgmt/kms/:name/key/:key_name`: every KMS key of the
/// distribution scheduled for deletion after `deletion_window_days` (7 to
/// 30, default 30), the alias removed, the record kept until then; 204.
pub(super) async fn delete(gate: &Gate, request: &Request, provider: &str, key: &str) -> Outcome {
    let (fields, decoded) = fields(request);
    let days = deletion_window(request, &fields);
    let engine = &gate.node().keymgmt;
    request
        .call(
            gate,
            &actions::KEYMGMT_DISTRIBUTION_REMOVE,
            &resource(provider, key),
        )
        .plain("deletion_window_days", *days.as_ref().unwrap_or(&0))
        .check(decoded)
        .check(check(&days))
        .run(
            |session| async move {
                engine
                    .remove_distribution(&session, provider, key, days?)
                    .await
            },
            versions,
        )
        .await?;
    Ok(Reply::no_content())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(body: Value) -> Result<DistributeSpec, Error> {
        match body {
            Value::Object(map) => spec(&Fields::new(map)),
            _ => unreachable!(),
        }
    }

    #[test]
    fn purpose_as_a_list_or_vaults_comma_string_and_hsm_by_default() {
        let both = ["encrypt".to_string(), "decrypt".to_string()];
        let list = parsed(json!({"purpose": ["encrypt", "decrypt"]})).unwrap();
        assert_eq!(list.purpose, both);
        assert_eq!(list.protection, "hsm");
        let comma =
            parsed(json!({"purpose": "encrypt, decrypt", "protection": "software"})).unwrap();
        assert_eq!(comma.purpose, both);
        assert_eq!(comma.protection, "software");
        assert!(parsed(json!({})).unwrap().purpose.is_empty());
        assert!(parsed(json!({"purpose": [1]})).is_err());
        assert!(parsed(json!({"purpose": true})).is_err());
    }
}
