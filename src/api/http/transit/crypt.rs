//! `transit/encrypt`, `decrypt`, `rewrap` (one item, or `batch_input`)
//! and `datakey/{plaintext,wrapped}`.
//!
//! A batch answers every item in order, each its result or its `error`,
//! with the caller's `reference` echoed; when an item failed the answer is
//! 400 (or `partial_failure_response_code` when some succeeded), as
//! Vault's. An item whose base64 is bad fails alone; a batch that is not
//! a list of objects, or an item without its ciphertext or plaintext, is
//! refused whole (400; OpenBao answers 500 there).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::StatusCode;
use serde_json::{Value, json};

use super::fields::{Fields, decode};
use super::{fields, missing_is_400};
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
fn required<'f>(fields: &'f Fields, name: &str, what: &str) -> Result<&'f str, Error> {
    fields
        .string(name)?
        .ok_or_else(|| Error::InvalidArgument(format!("missing {name}: give {what}")))
}

/// One batch item as read: its reference, and its input or its own error.
struct Item<T> {
    reference: String,
    input: Result<(T, Vec<u8>), String>,
}

/// The items of `batch_input`, each with `input` read from it (a field
/// missing or of the wrong type refuses the whole batch; bad base64 fails
/// the item). Contexts are given in every item or in none, as Vault asks.
fn items<T>(
    batch: Vec<Fields>,
    input: impl Fn(&Fields) -> Result<Result<T, String>, Error>,
) -> Result<Vec<Item<T>>, Error> {
    if batch.is_empty() {
        return Err(Error::InvalidArgument(
            "batch_input is empty: give at least one item".into(),
        ));
    }
    let with_context = batch
        .iter()
        .filter(|f| {
            f.string("context")
                .ok()
                .flatten()
                .is_some_and(|c| !c.is_empty())
        })
        .count();
    if with_context != 0 && with_context != batch.len() {
        return Err(Error::InvalidArgument(
            "context should be set either in all the request blocks or in none".into(),
        ));
    }
    batch
        .iter()
        .enumerate()
        .map(|(i, fields)| {
            let at = |e: Error| match e {
                Error::InvalidArgument(m) => {
                    Error::InvalidArgument(format!("batch_input[{i}]: {m}"))
                }
                other => other,
            };
            let reference = fields
                .string("reference")
                .map_err(at)?
                .unwrap_or("")
                .to_string();
            let value = input(fields).map_err(at)?;
            let context = fields
                .string("context")
                .map_err(at)?
                .map(|c| decode("context", c).map_err(|e| e.to_string()))
                .transpose()
                .map(Option::unwrap_or_default);
            let input = value.and_then(|v| context.map(|c| (v, c)));
            Ok(Item { reference, input })
        })
        .collect()
}

/// Each item's answer, in order: the engine's for the items it was given,
/// else the item's own error.
fn merge<T, R>(
    items: &[Item<T>],
    results: Vec<Result<R, String>>,
    ok: impl Fn(R) -> Value,
    error: impl Fn(String) -> Value,
) -> (Vec<Value>, usize) {
    let mut results = results.into_iter();
    let mut failed = 0;
    let answers = items
        .iter()
        .map(|item| {
            let result = match &item.input {
                Ok(_) => results
                    .next()
                    .unwrap_or_else(|| Err("the item was not processed".into())),
                Err(e) => Err(e.clone()),
            };
            let mut answer = match result {
                Ok(value) => ok(value),
                Err(e) => {
                    failed += 1;
                    error(e)
                }
            };
            answer["reference"] = json!(item.reference);
            answer
        })
        .collect();
    (answers, failed)
}

/// A batch's answer: 200 when every item succeeded, else 400, or the
/// caller's `partial_failure_response_code` when some succeeded.
fn batch_reply(fields: &Fields, answers: Vec<Value>, failed: usize) -> Outcome {
    let total = answers.len();
    let data = json!({ "batch_results": answers });
    if failed == 0 {
        return Ok(Reply::data(data));
    }
    let partial = fields
        .number("partial_failure_response_code")
        .ok()
        .flatten()
        .filter(|_| failed < total)
        .and_then(|code| u16::try_from(code).ok())
        .filter(|code| (100..=599).contains(code))
        .and_then(|code| StatusCode::from_u16(code).ok());
    Ok(Reply::data_with_status(
        partial.unwrap_or(StatusCode::BAD_REQUEST),
        data,
    ))
}

/// The inputs of the items the engine gets: those read without error.
fn valid<T: Clone>(items: &[Item<T>]) -> Vec<(T, Vec<u8>)> {
    items
        .iter()
        .filter_map(|item| item.input.as_ref().ok().cloned())
        .collect()
}

fn check<T>(parsed: &Result<T, Error>) -> Result<(), Error> {
    parsed.as_ref().map(|_| ()).map_err(Clone::clone)
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

/// The response line's count of failed items.
fn failed_items((_, failed): &(Vec<Value>, usize)) -> Vec<(&'static str, Field)> {
    vec![("failed_items", Field::Plain((*failed).into()))]
}

/// `POST transit/encrypt/:name`: a missing key is made first when the
/// caller may create it.
pub(super) async fn encrypt(gate: &Gate, request: &Request, name: &str) -> Outcome {
    let fields = fields(request)?;
    let keys = &gate.node().keys;
    if let Some(batch) = fields.batch()? {
        let plaintext = |f: &Fields| {
            let text = required(f, "plaintext", "the base64 of what to encrypt")?;
            Ok(decode("plaintext", text)
                .map(SecretBytes::new)
                .map_err(|e| e.to_string()))
        };
        let parsed = items(batch, plaintext).and_then(|items| {
            let with_context = items
                .iter()
                .any(|i| i.input.as_ref().is_ok_and(|(_, c)| !c.is_empty()));
            Ok((encrypt_options(&fields, with_context)?, items))
        });
        let count = parsed.as_ref().map_or(0, |(_, items)| items.len());
        let (answers, failed) = request
            .call(gate, &actions::KEYS_BATCH_ENCRYPT, name)
            .plain("items", count)
            .check(check(&parsed))
            .check(Keys::check_batch(count))
            .run(
                |session| async move {
                    let (options, items) = parsed?;
                    let inputs = valid(&items);
                    let results = keys
                        .batch_encrypt(&session, name, &inputs, &options)
                        .await?;
                    Ok(merge(
                        &items,
                        results,
                        |e| encrypted_json(&e),
                        |e| json!({ "error": e }),
                    ))
                },
                failed_items,
            )
            .await
            .map_err(missing_is_400)?;
        return batch_reply(&fields, answers, failed);
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
    let fields = fields(request)?;
    let keys = &gate.node().keys;
    if let Some(batch) = fields.batch()? {
        let parsed = items(batch, ciphertext_of);
        let count = parsed.as_ref().map_or(0, Vec::len);
        let (answers, failed) = request
            .call(gate, &actions::KEYS_BATCH_DECRYPT, name)
            .plain("items", count)
            .check(check(&parsed))
            .check(Keys::check_batch(count))
            .run(
                |session| async move {
                    let items = parsed?;
                    let inputs = valid(&items);
                    let results = keys
                        .batch_decrypt(&session, name, &inputs, Surface::Vault)
                        .await?;
                    Ok(merge(
                        &items,
                        results,
                        |p| json!({ "plaintext": STANDARD.encode(p.expose()) }),
                        |e| json!({ "plaintext": "", "error": e }),
                    ))
                },
                failed_items,
            )
            .await
            .map_err(missing_is_400)?;
        return batch_reply(&fields, answers, failed);
    }
    let parsed = one_ciphertext(&fields);
    let context = parsed.as_ref().map_or(&[][..], |(_, c)| c.as_slice());
    let plaintext = request
        .call(gate, &actions::KEYS_DECRYPT, name)
        .secret("context", context)
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
    let fields = fields(request)?;
    let keys = &gate.node().keys;
    if let Some(batch) = fields.batch()? {
        let parsed = items(batch, ciphertext_of);
        let count = parsed.as_ref().map_or(0, Vec::len);
        let (answers, failed) = request
            .call(gate, &actions::KEYS_REWRAP, name)
            .plain("items", count)
            .check(check(&parsed))
            .check(Keys::check_batch(count))
            .run(
                |session| async move {
                    let items = parsed?;
                    let inputs = valid(&items);
                    let results = keys
                        .batch_rewrap(&session, name, &inputs, Surface::Vault)
                        .await?;
                    Ok(merge(
                        &items,
                        results,
                        |e| encrypted_json(&e),
                        |e| json!({ "error": e }),
                    ))
                },
                failed_items,
            )
            .await
            .map_err(missing_is_400)?;
        return batch_reply(&fields, answers, failed);
    }
    let parsed = one_ciphertext(&fields);
    let context = parsed.as_ref().map_or(&[][..], |(_, c)| c.as_slice());
    let encrypted = request
        .call(gate, &actions::KEYS_REWRAP, name)
        .secret("context", context)
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
    let fields = fields(request)?;
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
    let (plaintext, wrapped) = request
        .call(gate, &actions::KEYS_DATA_KEY, name)
        .plain("bits", bits)
        .secret("context", context)
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
