//! `keymgmt/…`: Vault Enterprise's Key Management engine (bring your own
//! key to AWS KMS, `engines::keymgmt`), in Vault's paths and fields.
//!
//! Each endpoint is one gate call with the action of the gRPC KeyMgmt
//! method doing the same: `provider.rs` (`keymgmt/kms/:name`), `key.rs`
//! (`keymgmt/key/:name`, its `rotate` and `kms`) and `distribution.rs`
//! (`keymgmt/kms/:name/key/:key_name`). Writes answer 204, as Vault's;
//! reads 200 with `data`; a read or list of nothing 404 with no sentence.

mod distribution;
mod key;
mod provider;

use serde_json::{Map, Value};

use super::transit::fields::Fields;
use super::{HttpError, Op, Outcome, Request};
use crate::api::Gate;
use crate::error::Error;

/// Routes `keymgmt/<rest>`.
pub async fn route(gate: &Gate, request: &Request, rest: &str) -> Outcome {
    let mut segments: Vec<&str> = rest.split('/').collect();
    // A list may name its folder with the trailing slash (`keymgmt/kms/`).
    if request.op == Op::List && segments.len() > 1 && segments.last() == Some(&"") {
        segments.pop();
    }
    if segments.contains(&"") {
        return Err(HttpError::no_route(&request.path));
    }
    match (segments.as_slice(), request.op) {
        (["kms"], Op::List) => provider::list(gate, request).await,
        (["kms", name], op) => match op {
            Op::Update => provider::write(gate, request, name).await,
            Op::Read => provider::read(gate, request, name).await,
            Op::Delete => provider::delete(gate, request, name).await,
            _ => Err(HttpError::unsupported()),
        },
        (["kms", name, "key"], Op::List) => distribution::list(gate, request, name).await,
        (["kms", name, "key", key], op) => match op {
            Op::Update => distribution::write(gate, request, name, key).await,
            Op::Read => distribution::read(gate, request, name, key).await,
            Op::Delete => distribution::delete(gate, request, name, key).await,
            _ => Err(HttpError::unsupported()),
        },
        (["key"], Op::List) => key::list(gate, request).await,
        (["key", name], op) => match op {
            Op::Update => key::write(gate, request, name).await,
            Op::Read => key::read(gate, request, name).await,
            Op::Delete => key::delete(gate, request, name).await,
            _ => Err(HttpError::unsupported()),
        },
        (["key", name, "rotate"], Op::Update) => key::rotate(gate, request, name).await,
        (["key", name, "kms"], Op::List) => key::providers(gate, request, name).await,
        // A path served, with a method it does not take.
        (["kms" | "key"] | ["kms", _, "key"] | ["key", _, "rotate" | "kms"], _) => {
            Err(HttpError::unsupported())
        }
        _ => Err(HttpError::no_route(&request.path)),
    }
}

/// The request body's fields (`null`, which `bao write -f` sends, is
/// none), and whether the body decoded: a body that does not is no
/// fields, and its error refuses the call at the gate's argument checks.
fn fields(request: &Request) -> (Fields, Result<(), Error>) {
    match request.json::<Option<Map<String, Value>>>() {
        Ok(body) => (Fields::new(body.unwrap_or_default()), Ok(())),
        Err(e) => (Fields::new(Map::new()), Err(e)),
    }
}

/// A parse's result as an argument check, for [`crate::api::gate::Call::check`].
fn check<T>(parsed: &Result<T, Error>) -> Result<(), Error> {
    parsed.as_ref().map(|_| ()).map_err(Clone::clone)
}

/// `deletion_window_days`, from the query (a DELETE rarely has a body:
/// `vault delete` sends none) or else the body; absent is 0, the default
/// of 30 days. The engine checks the range (7 to 30).
fn deletion_window(request: &Request, fields: &Fields) -> Result<u32, Error> {
    const NAME: &str = "deletion_window_days";
    if let Some(given) = request.query(NAME) {
        return given.trim().parse::<u32>().map_err(|_| {
            Error::InvalidArgument(format!(
                "the query parameter {NAME} must be a whole number of days from 7 to 30, not {}",
                crate::text::quote(given)
            ))
        });
    }
    Ok(fields.number(NAME)?.unwrap_or(0))
}

/// A read of something that is not there: 404 with no sentence, as Vault
/// answers.
fn missing_is_bare_404(err: Error) -> HttpError {
    match err {
        Error::NotFound(_) => HttpError::not_found(),
        other => other.into(),
    }
}

/// A list: 404 with no sentence when empty, as Vault lists nothing.
fn listed(names: Vec<String>) -> Outcome {
    if names.is_empty() {
        return Err(HttpError::not_found());
    }
    Ok(super::Reply::data(serde_json::json!({ "keys": names })))
}

/// The audit line's answer to a list: how many names.
fn count(names: &[String]) -> Vec<(&'static str, crate::audit::Field)> {
    vec![("keys", crate::audit::Field::Plain(names.len().into()))]
}
