//! `transit/…`: Vault's transit engine on the named keys (`engines::keys`),
//! in OpenBao 2.6.2's paths, fields and shapes.
//!
//! Each endpoint is one gate call with the action of the gRPC Keys method
//! doing the same (`keys.rs`: create, read, list, config, rotate, delete;
//! `crypt.rs`: encrypt, decrypt, rewrap, data keys). Ciphertexts are
//! `vault:v<N>:…` here and `sr:v<N>:…` on gRPC, both read on either; a
//! key that is not derived ignores the context here, as Vault's does
//! (docs/DECISIONS.md).

mod batch;
mod crypt;
// Shared with keymgmt/, whose fields Vault reads the same way.
pub(super) mod fields;
mod keys;

use http::StatusCode;
use serde_json::{Map, Value};

use super::{HttpError, Op, Outcome, Request};
use crate::api::Gate;
use crate::engines::keys::validate_name;
use crate::error::Error;
use fields::Fields;

/// Routes `transit/<rest>`.
pub async fn route(gate: &Gate, request: &Request, rest: &str) -> Outcome {
    let segments: Vec<&str> = rest.split('/').collect();
    match segments.as_slice() {
        ["keys"] | ["keys", ""] => match request.op {
            Op::List => keys::list(gate, request).await,
            _ => Err(HttpError::unsupported()),
        },
        ["keys", name] => {
            named(name)?;
            match request.op {
                Op::Update => keys::create(gate, request, name).await,
                Op::Read => keys::read(gate, request, name).await,
                Op::Delete => keys::delete(gate, request, name).await,
                _ => Err(HttpError::unsupported()),
            }
        }
        ["keys", name, "config"] => {
            named(name)?;
            updating(request)?;
            keys::config(gate, request, name).await
        }
        ["keys", name, "rotate"] => {
            named(name)?;
            updating(request)?;
            keys::rotate(gate, request, name).await
        }
        ["encrypt", name] => {
            named(name)?;
            updating(request)?;
            crypt::encrypt(gate, request, name).await
        }
        ["decrypt", name] => {
            named(name)?;
            updating(request)?;
            crypt::decrypt(gate, request, name).await
        }
        ["rewrap", name] => {
            named(name)?;
            updating(request)?;
            crypt::rewrap(gate, request, name).await
        }
        ["datakey", kind, name] => {
            named(name)?;
            updating(request)?;
            let with_plaintext = match *kind {
                "plaintext" => true,
                "wrapped" => false,
                _ => {
                    return Err(HttpError::bad_request(format!(
                        "the data key path must be datakey/plaintext/NAME or datakey/wrapped/NAME, not datakey/{}",
                        crate::text::quote(kind)
                    )));
                }
            };
            crypt::data_key(gate, request, name, with_plaintext).await
        }
        _ => Err(HttpError::no_route(&request.path)),
    }
}

/// A key name Vault's path patterns would not match is a path no endpoint
/// serves: 404, with the sentence saying what a name may be.
fn named(name: &str) -> Result<(), HttpError> {
    validate_name(name).map_err(|e| HttpError::new(StatusCode::NOT_FOUND, e.to_string()))
}

/// These paths take only PUT and POST.
fn updating(request: &Request) -> Result<(), HttpError> {
    if request.op == Op::Update {
        Ok(())
    } else {
        Err(HttpError::unsupported())
    }
}

/// The request body's fields (`null`, which `bao write -f` sends, is
/// none), and whether the body decoded: a body that does not is no fields,
/// and its error refuses the call at the gate's argument checks (two
/// bounded audit lines, never the body).
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

/// Vault's transit answers 400 for a key that is not there, except on a
/// read of the key itself (404).
fn missing_is_400(err: Error) -> HttpError {
    match err {
        Error::NotFound(message) => HttpError::bad_request(message),
        other => other.into(),
    }
}
