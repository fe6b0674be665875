//! `auth/token/…`: Vault's token endpoints, each one gate call with the
//! action of the gRPC method of the same operation (`grpc/token.rs`), so
//! both transports authorize and audit alike. Answers in OpenBao 2.6.2's
//! shapes: an `auth` block for create and renew, lookups' `data`.
//!
//! Where OpenBao answers a missing token differently per endpoint (lookup
//! 403, renew 400, revoke 204, revoke-accessor a warning), this does the
//! same with strongroom's sentence.

mod create;
mod fields;

use serde_json::{Value, json};

use super::{HttpError, Op, Outcome, Reply, Request};
use crate::access::token::{ROOT_DISPLAY_NAME, Target, TokenEntry};
use crate::api::Gate;
use crate::api::actions;
use crate::audit::Field;
use crate::error::Error;
use crate::time::{format_unix, now_unix};
use fields::Fields;

/// Routes `auth/token/<rest>`.
pub async fn route(gate: &Gate, request: &Request, rest: &str) -> Outcome {
    match (rest, request.op) {
        ("create", Op::Update) => create::create(gate, request, false).await,
        ("create-orphan", Op::Update) => create::create(gate, request, true).await,
        ("lookup", Op::Read | Op::Update) => lookup(gate, request).await,
        ("lookup-self", Op::Read | Op::Update) => lookup_self(gate, request).await,
        ("lookup-accessor", Op::Update) => lookup_accessor(gate, request).await,
        ("renew", Op::Update) => renew(gate, request, true).await,
        ("renew-self", Op::Update) => renew(gate, request, false).await,
        ("revoke", Op::Update) => revoke(gate, request, true).await,
        ("revoke-self", Op::Update) => revoke(gate, request, false).await,
        ("revoke-accessor", Op::Update) => revoke_accessor(gate, request).await,
        ("accessors", Op::List) => accessors(gate, request).await,
        (
            "create" | "create-orphan" | "lookup" | "lookup-self" | "lookup-accessor" | "renew"
            | "renew-self" | "revoke" | "revoke-self" | "revoke-accessor" | "accessors",
            _,
        ) => Err(HttpError::unsupported()),
        _ => Err(HttpError::no_route(&request.path)),
    }
}

/// The `renewable` Vault shows: a token that never expires is not.
fn renewable(entry: &TokenEntry) -> bool {
    entry.renewable && entry.expire_unix != 0
}

fn meta(entry: &TokenEntry) -> Value {
    if entry.meta.is_empty() {
        Value::Null
    } else {
        json!(entry.meta)
    }
}

/// The lifetime granted by the creation or the last renewal (Vault's
/// `lease_duration`); 0: never expires.
fn granted(entry: &TokenEntry) -> u64 {
    match entry.expire_unix {
        0 => 0,
        at => at.saturating_sub(entry.created_unix.max(entry.renewed_unix)),
    }
}

/// The `auth` block of create and renew.
fn auth_block(token: &str, entry: &TokenEntry) -> Value {
    json!({
        "client_token": token,
        "accessor": entry.accessor,
        "policies": entry.policies,
        "token_policies": entry.policies,
        "metadata": meta(entry),
        "lease_duration": granted(entry),
        "renewable": renewable(entry),
        "entity_id": "",
        "token_type": "service",
        "orphan": entry.parent.is_none(),
        "mfa_requirement": null,
        "num_uses": entry.uses_left,
    })
}

/// A lookup's `data`; `id` is the token when the caller gave it, else "".
fn lookup_data(id: &str, entry: &TokenEntry) -> Value {
    let display_name = if entry.display_name.is_empty() {
        "token"
    } else {
        &entry.display_name
    };
    let mut data = json!({
        "accessor": entry.accessor,
        "creation_time": entry.created_unix,
        "creation_ttl": entry.ttl_secs,
        "display_name": display_name,
        "entity_id": "",
        "expire_time": (entry.expire_unix != 0).then(|| format_unix(entry.expire_unix)),
        "explicit_max_ttl": entry.explicit_max_ttl_secs,
        "id": id,
        "issue_time": format_unix(entry.created_unix),
        "meta": meta(entry),
        "num_uses": entry.uses_left,
        "orphan": entry.parent.is_none(),
        "path": "auth/token/create",
        "policies": entry.policies,
        "renewable": renewable(entry),
        "ttl": entry.ttl_left(now_unix()).unwrap_or(0),
        "type": "service",
    });
    if entry.is_periodic() {
        data["period"] = json!(entry.period_secs);
    }
    // A root token of init or generate-root, as OpenBao shows its own.
    if entry.display_name == ROOT_DISPLAY_NAME
        && let Some(fields) = data.as_object_mut()
    {
        fields.remove("issue_time");
        fields.remove("renewable");
        fields.insert("path".into(), json!("auth/token/root"));
    }
    if entry.renewed_unix != 0 {
        data["last_renewal"] = json!(format_unix(entry.renewed_unix));
        data["last_renewal_time"] = json!(entry.renewed_unix);
    }
    data
}

fn accessor_of(entry: &TokenEntry) -> Vec<(&'static str, Field)> {
    vec![("accessor", Field::Plain(entry.accessor.clone().into()))]
}

fn revoked_count(revoked: &usize) -> Vec<(&'static str, Field)> {
    vec![("revoked", Field::Plain((*revoked).into()))]
}

/// A parse's result as an argument check, for [`crate::api::gate::Call::check`].
fn check<T>(parsed: &Result<T, Error>) -> Result<(), Error> {
    parsed.as_ref().map(|_| ()).map_err(Clone::clone)
}

/// `lookup`: the token in the body; none (a GET): the caller's own, as
/// OpenBao answers. A token is never taken from the URL, which proxies log.
async fn lookup(gate: &Gate, request: &Request) -> Outcome {
    let (body, decoded) = match request.op {
        Op::Read => (Fields::default(), Ok(())),
        _ => Fields::of(request),
    };
    let names_none = decoded.is_ok() && token_field(&body).is_ok_and(|t| t.is_empty());
    if names_none {
        return lookup_self(gate, request).await;
    }
    lookup_other(gate, request, (body, decoded), Named::Token).await
}

/// What a lookup of another token names.
#[derive(Clone, Copy)]
enum Named {
    /// The token (`lookup`).
    Token,
    /// Its accessor (`lookup-accessor`).
    Accessor,
}

/// `lookup` with a token in the body, and `lookup-accessor`: one call of
/// `token.Lookup`. OpenBao answers a token it does not know 403 ("bad
/// token"), an accessor 400 ("invalid accessor"); only the token's own
/// lookup shows its `id`.
async fn lookup_other(
    gate: &Gate,
    request: &Request,
    (body, decoded): (Fields, Result<(), Error>),
    named: Named,
) -> Outcome {
    let given = match named {
        Named::Token => token_field(&body),
        Named::Accessor => accessor_field(&body),
    };
    let call = request
        .call(gate, &actions::TOKEN_LOOKUP, "")
        .check(decoded)
        .check(check(&given));
    let given = given.unwrap_or_default();
    let (call, target, id) = match named {
        Named::Token => (
            call.secret("token", given.as_bytes()),
            Target::Token(&given),
            given.as_str(),
        ),
        Named::Accessor => (
            call.accessor("accessor", &given),
            Target::Accessor(&given),
            "",
        ),
    };
    let tokens = &gate.node().access.tokens;
    let entry = call
        .run(
            |session| async move { tokens.lookup(&session, target).await },
            accessor_of,
        )
        .await
        .map_err(|e| match (e, named) {
            (Error::NotFound(m), Named::Token) => Error::PermissionDenied(m),
            (Error::NotFound(m), Named::Accessor) => Error::InvalidArgument(m),
            (e, _) => e,
        })?;
    Ok(Reply::data(lookup_data(id, &entry)))
}

/// The `token` field: a string (OpenBao refuses a number as an invalid token).
fn token_field(body: &Fields) -> Result<String, Error> {
    body.string("token").map(|t| t.trim().to_string())
}

/// The `token` field of a renew or revoke, which must name one.
fn required_token(body: &Fields) -> Result<String, Error> {
    match token_field(body)? {
        token if token.is_empty() => Err(Error::InvalidArgument("missing token ID".into())),
        token => Ok(token),
    }
}

async fn lookup_self(gate: &Gate, request: &Request) -> Outcome {
    let tokens = &gate.node().access.tokens;
    let entry = request
        .call(gate, &actions::TOKEN_LOOKUP_SELF, "")
        .run(
            |session| async move { tokens.lookup_self(&session) },
            accessor_of,
        )
        .await?;
    Ok(Reply::data(lookup_data(
        request.token().unwrap_or_default(),
        &entry,
    )))
}

fn accessor_field(body: &Fields) -> Result<String, Error> {
    let accessor = body.string("accessor")?;
    if accessor.trim().is_empty() {
        return Err(Error::InvalidArgument("missing accessor".into()));
    }
    Ok(accessor.trim().to_string())
}

async fn lookup_accessor(gate: &Gate, request: &Request) -> Outcome {
    lookup_other(gate, request, Fields::of(request), Named::Accessor).await
}

/// `renew` (the token in the body) and `renew-self`.
async fn renew(gate: &Gate, request: &Request, other: bool) -> Outcome {
    let (body, decoded) = Fields::of(request);
    let increment = body.duration("increment").map(|(secs, _)| secs);
    let token = if other {
        required_token(&body)
    } else {
        Ok(request.token().unwrap_or_default().to_string())
    };
    let call = request
        .call(gate, &actions::TOKEN_RENEW, "")
        .about_another(other)
        .check(decoded)
        .check(check(&increment))
        .check(check(&token));
    let (increment, token) = (increment.unwrap_or(0), token.unwrap_or_default());
    let target = other.then_some(Target::Token(&token));
    let tokens = &gate.node().access.tokens;
    let entry = call
        .secret("token", if other { token.as_bytes() } else { b"" })
        .plain("increment_seconds", increment)
        .run(
            |session| async move { tokens.renew(&session, target, increment).await },
            accessor_of,
        )
        .await
        .map_err(|e| match e {
            // OpenBao: "token not found", 400.
            Error::NotFound(m) => Error::InvalidArgument(m),
            e => e,
        })?;
    Ok(Reply::auth(auth_block(&token, &entry)))
}

/// `revoke` (the token in the body) and `revoke-self`: 204.
async fn revoke(gate: &Gate, request: &Request, other: bool) -> Outcome {
    let (token, decoded) = if other {
        let (body, decoded) = Fields::of(request);
        (required_token(&body), decoded)
    } else {
        (Ok(String::new()), Ok(()))
    };
    let call = request
        .call(gate, &actions::TOKEN_REVOKE, "")
        .about_another(other)
        .check(decoded)
        .check(check(&token));
    let token = token.unwrap_or_default();
    let target = other.then_some(Target::Token(&token));
    let tokens = &gate.node().access.tokens;
    let revoked = call
        .secret("token", token.as_bytes())
        .run(
            |session| async move { tokens.revoke(&session, target).await },
            revoked_count,
        )
        .await;
    match revoked {
        // OpenBao answers a token it does not know as revoked.
        Ok(_) | Err(Error::NotFound(_)) => Ok(Reply::no_content()),
        Err(e) => Err(e.into()),
    }
}

async fn revoke_accessor(gate: &Gate, request: &Request) -> Outcome {
    let (body, decoded) = Fields::of(request);
    let accessor = accessor_field(&body);
    let call = request
        .call(gate, &actions::TOKEN_REVOKE_ACCESSOR, "")
        .check(decoded)
        .check(check(&accessor));
    let accessor = accessor.unwrap_or_default();
    let target = Target::Accessor(&accessor);
    let tokens = &gate.node().access.tokens;
    let revoked = call
        .accessor("accessor", &accessor)
        .run(
            |session| async move { tokens.revoke(&session, Some(target)).await },
            revoked_count,
        )
        .await;
    match revoked {
        Ok(_) => Ok(Reply::no_content()),
        // OpenBao: 200 with a warning.
        Err(Error::NotFound(_)) => {
            Ok(Reply::data(Value::Null).warn(vec!["No token found with this accessor".into()]))
        }
        Err(e) => Err(e.into()),
    }
}

/// `accessors` (LIST, `sudo`): every token's accessor, as Vault lists them.
async fn accessors(gate: &Gate, request: &Request) -> Outcome {
    let tokens = &gate.node().access.tokens;
    let entries = request
        .call(gate, &actions::TOKEN_LIST_ACCESSORS, "")
        .run(
            |session| async move { tokens.list_accessors(&session).await },
            |entries| vec![("accessors", Field::Plain(entries.len().into()))],
        )
        .await?;
    let keys: Vec<&str> = entries.iter().map(|e| e.accessor.as_str()).collect();
    Ok(Reply::data(json!({ "keys": keys })))
}
