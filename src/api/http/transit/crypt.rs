//! `transit/encrypt`, `decrypt`, `rewrap` (one item, or `batch_input`:
//! `batch.rs`) and `datakey/{plaintext,wrapped}`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::batch::{self, Item, items};
use super::fields::{Fields, decode};
use super::{check, fields, missing_is_400};
use crate::access::Session;
use crate::api::Gate;
use crate::api::actions;
use crate::api::http::{Outcome, Reply, Request};
use crate::audit::Field;
use crate::engines::keys::{EncryptOptions, Encrypted, KeyOptions, Keys, Surface};
use crate::error::Error;
use crate::secret::SecretBytes;

fn secret(bytes: &SecretBytes) -> Field {
    Field::Secret(zeroize::Zeroizing::new(bytes.expose().to_vec()))
}

fn encrypted_with(e: &Encrypted) -> Vec<(&'static str, Field)> {
    vec![("key_version", Field::Plain(e.version.into()))]
}

fn encrypted_json(e: &Encrypted) -> Value {
    json!({ "ciphertext": e.ciphertext, "key_version": e.version })
}

/// A required string field.
pub(super) fn required<'f>(fields: &'f Fields, name: &str, what: &str) -> Result<&'f str, Error> {
    fields
        .string(name)?
        .ok_or_else(|| Error::InvalidArgument(format!("missing {name}: give {what}")))
}

/// The options of an encryption: the version asked for, and the key to
/// make if it is missing (derived when a context is given, as Vault's).
fn encrypt_options(fields: &Fields, with_context: bool) -> Result<EncryptOptions, Error> {
    if let Some(kind) = fields.string("type")?
        && kind != "aes256-gcm96"
    {
        return Err(Error::InvalidArgument(format!(
            "strongroom supports only the key type aes256-gcm96, not {}",
            crate::text::quote(kind)
        )));
    }
    Ok(EncryptOptions {
        surface: Surface::Vault,
        create: Some(KeyOptions {
            derived: with_context,
        }),
        key_version: fields.number("key_version")?.unwrap_or(0),
    })
}

/// `POST transit/encrypt/:name`: a missing key is made first when the
/// caller may create it.
pub(super) async fn encrypt(gate: &Gate, request: &Request, name: &str) -> Outcome {
    let (fields, decoded) = fields(request);
    let keys = &gate.node().keys;
    if fields.get("batch_input").is_some() {
        let plaintext = |f: &Fields| {
            let text = required(f, "plaintext", "the base64 of what to encrypt")?;
            Ok(decode("plaintext", text)
                .map(SecretBytes::new)
                .map_err(|e| e.to_string()))
        };
        let items = fields.batch().and_then(|batch| items(batch, plaintext));
        let options = match &items {
            Ok(items) => encrypt_options(&fields, items.iter().any(Item::has_context)),
            Err(e) => Err(e.clone()),
        };
        let call = request
            .call(gate, &actions::KEYS_BATCH_ENCRYPT, name)
            .check(decoded)
            .check(check(&options));
        let engine = |session: Session, inputs: Vec<_>| async move {
            keys.batch_encrypt(&session, name, &inputs, &options?).await
        };
        return batch::run(
            call,
            &fields,
            items,
            engine,
            |e| encrypted_json(&e),
            |e| json!({ "error": e }),
        )
        .await;
    }
    let parsed = (|| {
        let text = required(&fields, "plaintext", "the base64 of what to encrypt")?;
        let plaintext = SecretBytes::new(decode("plaintext", text)?);
        let context = fields.base64("context")?.unwrap_or_default();
        let options = encrypt_options(&fields, !context.is_empty())?;
        Ok((plaintext, context, options))
    })();
    let (plaintext, context) = match &parsed {
        Ok((p, c, _)) => (p.expose(), c.as_slice()),
        Err(_) => (&[][..], &[][..]),
    };
    let encrypted = request
        .call(gate, &actions::KEYS_ENCRYPT, name)
        .secret("plaintext", plaintext)
        .secret("context", context)
        .check(decoded)
        .check(check(&parsed))
        .run(
            |session| async move {
                let (plaintext, context, options) = parsed?;
                keys.encrypt(&session, name, plaintext.expose(), &context, &options)
                    .await
            },
            encrypted_with,
        )
        .await
        .map_err(missing_is_400)?;
    Ok(Reply::data(encrypted_json(&encrypted)))
}

/// A ciphertext item's input: its ciphertext (required).
fn ciphertext_of(fields: &Fields) -> Result<Result<String, String>, Error> {
    Ok(Ok(required(
        fields,
        "ciphertext",
        "a ciphertext vault:v<N>:…",
    )?
    .to_string()))
}

/// A single ciphertext and its context.
fn one_ciphertext(fields: &Fields) -> Result<(String, Vec<u8>), Error> {
    let ciphertext = required(fields, "ciphertext", "a ciphertext vault:v<N>:…")?.to_string();
    let context = fields.base64("context")?.unwrap_or_default();
    Ok((ciphertext, context))
}

/// `POST transit/decrypt/:name`: the plaintext in base64.
pub(super) async fn decrypt(gate: &Gate, request: &Request, name: &str) -> Outcome {
    let (fields, decoded) = fields(request);
    let keys = &gate.node().keys;
    if fields.get("batch_input").is_some() {
        let items = fields.batch().and_then(|batch| items(batch, ciphertext_of));
        let call = request
            .call(gate, &actions::KEYS_BATCH_DECRYPT, name)
            .check(decoded);
        let engine = |session: Session, inputs: Vec<_>| async move {
            keys.batch_decrypt(&session, name, &inputs, Surface::Vault)
                .await
        };
        return batch::run(
            call,
            &fields,
            items,
            engine,
            |p| json!({ "plaintext": STANDARD.encode(p.expose()) }),
            |e| json!({ "plaintext": "", "error": e }),
        )
        .await;
    }
    let parsed = one_ciphertext(&fields);
    let context = parsed.as_ref().map_or(&[][..], |(_, c)| c.as_slice());
    let plaintext = request
        .call(gate, &actions::KEYS_DECRYPT, name)
        .secret("context", context)
        .check(decoded)
        .check(check(&parsed))
        .run(
            |session| async move {
                let (ciphertext, context) = parsed?;
                keys.decrypt(&session, name, &ciphertext, &context, Surface::Vault)
                    .await
            },
            |plaintext| vec![("plaintext", secret(plaintext))],
        )
        .await
        .map_err(missing_is_400)?;
    Ok(Reply::data(
        json!({ "plaintext": STANDARD.encode(plaintext.expose()) }),
    ))
}

/// `POST transit/rewrap/:name`: the ciphertext under the latest version;
/// the plaintext never leaves.
pub(super) async fn rewrap(gate: &Gate, request: &Request, name: &str) -> Outcome {
    let (fields, decoded) = fields(request);
    let keys = &gate.node().keys;
    if fields.get("batch_input").is_some() {
        let items = fields.batch().and_then(|batch| items(batch, ciphertext_of));
        let call = request
            .call(gate, &actions::KEYS_REWRAP, name)
            .check(decoded);
        let engine = |session: Session, inputs: Vec<_>| async move {
            keys.batch_rewrap(&session, name, &inputs, Surface::Vault)
                .await
        };
        return batch::run(
            call,
            &fields,
            items,
            engine,
            |e| encrypted_json(&e),
            |e| json!({ "error": e }),
        )
        .await;
    }
    let parsed = one_ciphertext(&fields);
    let context = parsed.as_ref().map_or(&[][..], |(_, c)| c.as_slice());
    let encrypted = request
        .call(gate, &actions::KEYS_REWRAP, name)
        .secret("context", context)
        .check(decoded)
        .check(check(&parsed))
        .run(
            |session| async move {
                let (ciphertext, context) = parsed?;
                keys.rewrap(&session, name, &ciphertext, &context, Surface::Vault)
                    .await
            },
            encrypted_with,
        )
        .await
        .map_err(missing_is_400)?;
    Ok(Reply::data(encrypted_json(&encrypted)))
}

/// `POST transit/datakey/{plaintext,wrapped}/:name`: a fresh key of
/// `bits` (128, 256 or 512; 256 by default) encrypted under the latest
/// version, with its plaintext only on `plaintext`.
pub(super) async fn data_key(
    gate: &Gate,
    request: &Request,
    name: &str,
    with_plaintext: bool,
) -> Outcome {
    let (fields, decoded) = fields(request);
    let keys = &gate.node().keys;
    let parsed = (|| {
        let bits = Keys::data_key_bits(fields.number("bits")?.unwrap_or(0))?;
        let context = fields.base64("context")?.unwrap_or_default();
        Ok((bits, context))
    })();
    let (bits, context) = match &parsed {
        Ok((b, c)) => (*b, c.as_slice()),
        Err(_) => (0, &[][..]),
    };
    let action = if with_plaintext {
        &actions::KEYS_DATA_KEY
    } else {
        &actions::KEYS_DATA_KEY_WRAPPED
    };
    let (plaintext, wrapped) = request
        .call(gate, action, name)
        .plain("bits", bits)
        .secret("context", context)
        .check(decoded)
        .check(check(&parsed))
        .run(
            |session| async move {
                keys.data_key(&session, name, bits, context, Surface::Vault)
                    .await
            },
            |(plaintext, wrapped)| {
                let mut fields = encrypted_with(wrapped);
                fields.push(("plaintext", secret(plaintext)));
                fields
            },
        )
        .await
        .map_err(missing_is_400)?;
    let mut data = encrypted_json(&wrapped);
    if with_plaintext {
        data["plaintext"] = json!(STANDARD.encode(plaintext.expose()));
    }
    Ok(Reply::data(data))
}
