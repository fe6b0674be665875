//! `transit/keys`: create (or keep), read, list, config, rotate, delete.

use serde_json::{Map, Value, json};

use super::fields::Fields;
use super::{check, fields, missing_is_400};
use crate::access::Capability;
use crate::api::Gate;
use crate::api::actions;
use crate::api::http::{HttpError, Outcome, Reply, Request};
use crate::audit::Field;
use crate::engines::keys::{IfExists, KeyConfig, KeyInfo, KeyOptions};
use crate::error::Error;

/// The one key type strongroom has.
const KEY_TYPE: &str = "aes256-gcm96";

/// A key as Vault's transit shows it: the versions from
/// `min_decryption_version` on with their creation times, the settings,
/// and Vault's fields for what strongroom does not do at their defaults.
pub(super) fn key_json(info: &KeyInfo) -> Value {
    let min = info.min_decryption_version as usize;
    let keys: Map<String, Value> = info
        .versions
        .iter()
        .enumerate()
        .map(|(i, created)| (i + 1, created))
        .filter(|(version, _)| *version >= min)
        .map(|(version, created)| (version.to_string(), json!(created)))
        .collect();
    let mut data = json!({
        "allow_plaintext_backup": false,
        "auto_rotate_period": 0,
        "deletion_allowed": info.deletion_allowed,
        "derived": info.derived,
        "exportable": false,
        "imported_key": false,
        "keys": keys,
        "latest_version": info.latest_version,
        "min_available_version": 0,
        "min_decryption_version": info.min_decryption_version,
        "min_encryption_version": 0,
        "name": info.name,
        "soft_deleted": false,
        "supports_decryption": true,
        "supports_derivation": true,
        "supports_encryption": true,
        "supports_signing": false,
        "type": KEY_TYPE,
    });
    if info.derived {
        data["convergent_encryption"] = json!(false);
        data["kdf"] = json!("hkdf_sha256");
    }
    data
}

fn version_of(info: &KeyInfo) -> Vec<(&'static str, Field)> {
    vec![("latest_version", Field::Plain(info.latest_version.into()))]
}

/// What a create asks for, checked: the type, `derived`, and Vault's
/// settings strongroom has only at their defaults.
fn create_options(fields: &Fields) -> Result<KeyOptions, Error> {
    if let Some(kind) = fields.string("type")?
        && kind != KEY_TYPE
    {
        return Err(Error::InvalidArgument(format!(
            "strongroom supports only the key type {KEY_TYPE}, not {}",
            crate::text::quote(kind)
        )));
    }
    fields.unsupported("exportable", "key material never leaves strongroom")?;
    fields.unsupported(
        "allow_plaintext_backup",
        "key material never leaves strongroom",
    )?;
    fields.unsupported(
        "convergent_encryption",
        "every encryption takes a random nonce",
    )?;
    fields.unsupported(
        "auto_rotate_period",
        "a key rotates itself only at its encryption limit (docs/ENGINES.md)",
    )?;
    Ok(KeyOptions {
        derived: fields.flag("derived")?.unwrap_or(false),
    })
}

/// `POST transit/keys/:name`: makes the key, or answers an existing one
/// as it is (Vault's create may be repeated). A new key takes `create` or
/// `update`; an existing one `update`, as OpenBao asks for every write
/// there (docs/DECISIONS.md).
pub(super) async fn create(gate: &Gate, request: &Request, name: &str) -> Outcome {
    let (fields, decoded) = fields(request);
    let options = create_options(&fields);
    let derived = options.as_ref().map(|o| o.derived).unwrap_or(false);
    let keys = &gate.node().keys;
    let info = request
        .call(gate, &actions::KEYS_CREATE, name)
        .plain("derived", derived)
        .check(decoded)
        .check(check(&options))
        .run(
            |session| async move {
                let existing = IfExists::KeepIf(Capability::Update);
                keys.create(&session, name, options?, existing).await
            },
            version_of,
        )
        .await?;
    Ok(Reply::data(key_json(&info)))
}

/// `GET transit/keys/:name`: 404 with no sentence when there is none.
pub(super) async fn read(gate: &Gate, request: &Request, name: &str) -> Outcome {
    let keys = &gate.node().keys;
    let info = request
        .call(gate, &actions::KEYS_READ, name)
        .run(
            |session| async move { keys.read(&session, name).await },
            version_of,
        )
        .await
        .map_err(|e| match e {
            Error::NotFound(_) => HttpError::not_found(),
            other => other.into(),
        })?;
    Ok(Reply::data(key_json(&info)))
}

/// `LIST transit/keys`: 404 with no sentence when there are none, as
/// Vault lists nothing.
pub(super) async fn list(gate: &Gate, request: &Request) -> Outcome {
    let keys = &gate.node().keys;
    let names = request
        .call(gate, &actions::KEYS_LIST, "")
        .run(
            |session| async move { keys.list(&session).await },
            |names| vec![("keys", Field::Plain(names.len().into()))],
        )
        .await?;
    if names.is_empty() {
        return Err(HttpError::not_found());
    }
    Ok(Reply::data(json!({ "keys": names })))
}

/// `DELETE transit/keys/:name`: only with `deletion_allowed`; 204.
pub(super) async fn delete(gate: &Gate, request: &Request, name: &str) -> Outcome {
    let keys = &gate.node().keys;
    request
        .call(gate, &actions::KEYS_DELETE, name)
        .run(
            |session| async move { keys.delete(&session, name).await },
            |()| Vec::new(),
        )
        .await
        .map_err(missing_is_400)?;
    Ok(Reply::no_content())
}

/// What a config asks for: `min_decryption_version` (0 is 1, as Vault
/// forces it), `deletion_allowed`, and Vault's settings strongroom has
/// only at their defaults.
fn config_of(fields: &Fields) -> Result<KeyConfig, Error> {
    fields.unsupported(
        "min_encryption_version",
        "it encrypts with a key's latest version only",
    )?;
    fields.unsupported("exportable", "key material never leaves strongroom")?;
    fields.unsupported(
        "allow_plaintext_backup",
        "key material never leaves strongroom",
    )?;
    fields.unsupported(
        "auto_rotate_period",
        "a key rotates itself only at its encryption limit (docs/ENGINES.md)",
    )?;
    Ok(KeyConfig {
        min_decryption_version: fields.number("min_decryption_version")?.map(|v| v.max(1)),
        deletion_allowed: fields.flag("deletion_allowed")?,
    })
}

/// `POST transit/keys/:name/config`: answers the key as it now is.
pub(super) async fn config(gate: &Gate, request: &Request, name: &str) -> Outcome {
    let (fields, decoded) = fields(request);
    let config = config_of(&fields);
    let asked = config.as_ref().ok().copied().unwrap_or_default();
    let keys = &gate.node().keys;
    let info = request
        .call(gate, &actions::KEYS_UPDATE_CONFIG, name)
        .plain("min_decryption_version", asked.min_decryption_version)
        .plain("deletion_allowed", asked.deletion_allowed)
        .check(decoded)
        .check(check(&config))
        .run(
            |session| async move { keys.update_config(&session, name, config?).await },
            version_of,
        )
        .await
        .map_err(missing_is_400)?;
    Ok(Reply::data(key_json(&info)))
}

/// `POST transit/keys/:name/rotate`: answers the key with its new version.
pub(super) async fn rotate(gate: &Gate, request: &Request, name: &str) -> Outcome {
    let keys = &gate.node().keys;
    let info = request
        .call(gate, &actions::KEYS_ROTATE, name)
        .run(
            |session| async move { keys.rotate(&session, name).await },
            version_of,
        )
        .await
        .map_err(missing_is_400)?;
    Ok(Reply::data(key_json(&info)))
}
