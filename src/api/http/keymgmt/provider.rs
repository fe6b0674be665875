//! `keymgmt/kms/:name`: register (or change), read, list and delete a KMS
//! provider. Credentials are taken as Vault's map or as the list the
//! `vault` CLI sends for repeated `credentials=KEY=VALUE`, audited as
//! HMACs, and never shown by a read.

use serde_json::{Value, json};

use super::{check, count, fields, listed, missing_is_bare_404};
use crate::api::Gate;
use crate::api::actions;
use crate::api::http::transit::fields::Fields;
use crate::api::http::{Outcome, Reply, Request};
use crate::engines::keymgmt::{Credentials, ProviderConfig, ProviderInfo};
use crate::error::Error;
use crate::secret::SecretString;
use crate::text;

/// The credential names an `awskms` provider takes.
const CREDENTIALS: &str = "credentials takes access_key, secret_key and session_token";

/// One credential into `into`; empty is none.
fn credential(into: &mut Credentials, name: &str, value: &str) -> Result<(), Error> {
    let value = (!value.is_empty()).then(|| value.to_string());
    match name {
        "access_key" => into.access_key = value,
        "secret_key" => into.secret_key = value.map(SecretString::new),
        "session_token" => into.session_token = value.map(SecretString::new),
        // Named only when it has a name's shape: a secret pasted there
        // must not reach the answer or the audit line.
        other
            if other.len() <= 32 && other.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') =>
        {
            return Err(Error::InvalidArgument(format!(
                "{CREDENTIALS}, not {}",
                text::quote(other)
            )));
        }
        _ => {
            return Err(Error::InvalidArgument(format!(
                "{CREDENTIALS}; one of the entries given is none of them"
            )));
        }
    }
    Ok(())
}

/// Vault's `credentials`: `{"access_key": "…", …}`, or `["access_key=…", …]`.
fn credentials(fields: &Fields) -> Result<Credentials, Error> {
    let mut given = Credentials::default();
    let wrong = || {
        Error::InvalidArgument(format!(
            "the field credentials must be a map of strings or a list of KEY=VALUE strings ({CREDENTIALS})"
        ))
    };
    match fields.get("credentials") {
        None => {}
        Some(Value::Object(map)) => {
            for (name, value) in map {
                credential(&mut given, name, value.as_str().ok_or_else(wrong)?)?;
            }
        }
        Some(Value::Array(items)) => {
            for item in items {
                let (name, value) = item
                    .as_str()
                    .and_then(|s| s.split_once('='))
                    .ok_or_else(wrong)?;
                credential(&mut given, name.trim(), value)?;
            }
        }
        Some(_) => return Err(wrong()),
    }
    given.clear = fields.flag("clear_credentials")?.unwrap_or(false);
    Ok(given)
}

/// What a write asks for: a setting left out keeps the provider's own;
/// `endpoint=""` goes back to AWS's regional endpoint. Checked whole before
/// the call, so a malformed one is refused before its audit line.
fn asked(fields: &Fields) -> Result<ProviderConfig, Error> {
    let text = |name| Ok::<_, Error>(fields.string(name)?.map(str::to_string));
    let config = ProviderConfig {
        provider: text("provider")?,
        key_collection: text("key_collection")?,
        endpoint: text("endpoint")?,
        credentials: credentials(fields)?,
    };
    config.check_given()?;
    Ok(config)
}

/// `POST keymgmt/kms/:name`: 204.
pub(super) async fn write(gate: &Gate, request: &Request, name: &str) -> Outcome {
    let (fields, decoded) = fields(request);
    let asked = asked(&fields);
    let mut call = request
        .call(gate, &actions::KEYMGMT_PROVIDER_WRITE, name)
        .check(decoded)
        .check(check(&asked));
    if let Ok(a) = &asked {
        let c = &a.credentials;
        let secret = |s: &Option<SecretString>| {
            s.as_ref()
                .map(|s| s.expose().as_bytes().to_vec())
                .unwrap_or_default()
        };
        call = call
            .plain("provider", a.provider.as_deref().unwrap_or(""))
            .plain("key_collection", a.key_collection.as_deref().unwrap_or(""))
            .plain("endpoint", a.endpoint.as_deref().unwrap_or(""))
            .secret(
                "access_key",
                c.access_key.as_deref().unwrap_or("").as_bytes(),
            )
            .secret("secret_key", &secret(&c.secret_key))
            .secret("session_token", &secret(&c.session_token))
            .plain("clear_credentials", c.clear);
    }
    let engine = &gate.node().keymgmt;
    call.run(
        |session| async move {
            let config = asked?;
            engine.write_provider(&session, name, config).await
        },
        |_| Vec::new(),
    )
    .await?;
    Ok(Reply::no_content())
}

/// A provider as a read shows it: Vault's fields, `endpoint` when set,
/// and whether static credentials are stored (never what they are).
fn provider_json(info: &ProviderInfo) -> Value {
    let mut data = json!({
        "name": info.name,
        "provider": info.provider,
        "key_collection": info.key_collection,
        "static_credentials": info.static_credentials,
    });
    if let Some(endpoint) = &info.endpoint {
        data["endpoint"] = json!(endpoint);
    }
    data
}

/// `GET keymgmt/kms/:name`.
pub(super) async fn read(gate: &Gate, request: &Request, name: &str) -> Outcome {
    let engine = &gate.node().keymgmt;
    let info = request
        .call(gate, &actions::KEYMGMT_PROVIDER_READ, name)
        .run(
            |session| async move { engine.read_provider(&session, name).await },
            |_| Vec::new(),
        )
        .await
        .map_err(missing_is_bare_404)?;
    Ok(Reply::data(provider_json(&info)))
}

/// `LIST keymgmt/kms`.
pub(super) async fn list(gate: &Gate, request: &Request) -> Outcome {
    let engine = &gate.node().keymgmt;
    let names = request
        .call(gate, &actions::KEYMGMT_PROVIDER_LIST, "")
        .run(
            |session| async move { engine.list_providers(&session).await },
            |names| count(names),
        )
        .await?;
    listed(names)
}

/// `DELETE keymgmt/kms/:name`: refused while a key is distributed to it.
pub(super) async fn delete(gate: &Gate, request: &Request, name: &str) -> Outcome {
    let engine = &gate.node().keymgmt;
    request
        .call(gate, &actions::KEYMGMT_PROVIDER_DELETE, name)
        .run(
            |session| async move { engine.delete_provider(&session, name).await },
            |()| Vec::new(),
        )
        .await?;
    Ok(Reply::no_content())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parsed(body: Value) -> Result<ProviderConfig, Error> {
        match body {
            Value::Object(map) => asked(&Fields::new(map)),
            _ => unreachable!(),
        }
    }

    #[test]
    fn credentials_as_a_map_or_as_the_clis_list() {
        let map = parsed(json!({"credentials": {"access_key": "AK", "secret_key": "SK"}})).unwrap();
        assert_eq!(map.credentials.access_key.as_deref(), Some("AK"));
        assert_eq!(map.credentials.secret_key.unwrap().expose(), "SK");
        let list =
            parsed(json!({"credentials": ["access_key=AK", "secret_key=S=K", "session_token="]}))
                .unwrap();
        assert_eq!(list.credentials.secret_key.unwrap().expose(), "S=K");
        assert!(list.credentials.session_token.is_none());
        let cleared = parsed(json!({"clear_credentials": "true", "endpoint": ""})).unwrap();
        assert!(cleared.credentials.clear);
        assert_eq!(cleared.endpoint.as_deref(), Some(""));
        assert_eq!(parsed(json!({})).unwrap().endpoint, None);
    }

    #[test]
    fn wrong_credentials_are_one_sentence_that_never_repeats_a_value() {
        let said = |body| parsed(body).err().unwrap().to_string();
        assert!(said(json!({"credentials": {"region": "x"}})).contains("not \"region\""));
        let pasted = said(json!({"credentials": ["AKIAHIDDEN=wJalrHIDDEN"]}));
        assert!(!pasted.contains("HIDDEN"), "{pasted}");
        let bare = said(json!({"credentials": ["wJalrHIDDEN"]}));
        assert!(
            !bare.contains("HIDDEN") && bare.contains("KEY=VALUE"),
            "{bare}"
        );
        assert!(said(json!({"credentials": {"secret_key": 5}})).contains("map of strings"));
        assert!(said(json!({"credentials": "x"})).contains("map of strings"));
    }
}
