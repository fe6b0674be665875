//! `auth/token/create` and `create-orphan`: Vault's fields read loosely,
//! what strongroom does not do refused, and a ttl or period over the
//! maximum capped with Vault's warning.

use zeroize::Zeroizing;

use super::fields::Fields;
use super::{auth_block, check};
use crate::access::token::{CreateParams, MAX_TTL_SECS};
use crate::api::Gate;
use crate::api::actions;
use crate::api::grpc::create_fields;
use crate::api::http::{Outcome, Reply, Request};
use crate::audit::Field;
use crate::error::Error;

/// Vault's warning for a ttl or period over the maximum, which it caps.
fn capped(name: &str, given: &str, secs: &mut u64, warnings: &mut Vec<String>) {
    if *secs > MAX_TTL_SECS {
        *secs = MAX_TTL_SECS;
        let label = if name == "ttl" { "TTL" } else { name };
        warnings.push(format!(
            "{label} of \"{given}\" exceeded the effective max_ttl of \"768h\"; {label} value is capped accordingly"
        ));
    }
}

/// What Vault takes and strongroom does not: refused, never ignored.
fn refuse_unsupported(body: &Fields) -> Result<(), Error> {
    match body.string("type")?.as_str() {
        "" | "service" | "default" | "default-service" => {}
        other => {
            return Err(Error::InvalidArgument(format!(
                "token type {} is not supported: strongroom makes service tokens only",
                crate::text::quote(other)
            )));
        }
    }
    if !body.string("id")?.is_empty() {
        return Err(Error::InvalidArgument(
            "a token's id cannot be chosen: strongroom makes every token from the kernel's random generator".into(),
        ));
    }
    for name in ["entity_alias", "role_name"] {
        if !body.string(name)?.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "{name} is not supported: strongroom has no identity entities or token roles"
            )));
        }
    }
    Ok(())
}

/// What a create asks for, and Vault's warnings for the lifetimes it caps.
fn create_params(body: &Fields, orphan_path: bool) -> Result<(CreateParams, Vec<String>), Error> {
    refuse_unsupported(body)?;
    let mut warnings = Vec::new();
    let (mut ttl_secs, ttl_text) = body.duration("ttl")?;
    capped("ttl", &ttl_text, &mut ttl_secs, &mut warnings);
    let (mut period_secs, period_text) = body.duration("period")?;
    capped("period", &period_text, &mut period_secs, &mut warnings);
    let (explicit_max_ttl_secs, explicit_text) = body.duration("explicit_max_ttl")?;
    if explicit_max_ttl_secs > 0 && period_secs == 0 && ttl_secs > explicit_max_ttl_secs {
        warnings.push(format!(
            "TTL of \"{ttl_text}\" exceeded the effective max_ttl of \"{explicit_text}\"; TTL value is capped accordingly"
        ));
    }
    let uses = body.count("num_uses")?;
    let params = CreateParams {
        policies: body.list("policies")?,
        ttl_secs,
        renewable: body.flag("renewable")?.unwrap_or(true),
        uses: u32::try_from(uses)
            .map_err(|_| Error::InvalidArgument("num_uses is larger than 4294967295".into()))?,
        orphan: orphan_path || body.flag("no_parent")?.unwrap_or(false),
        orphan_path,
        period_secs,
        explicit_max_ttl_secs,
        display_name: body.string("display_name")?,
        meta: body.labels("meta")?,
    };
    Ok((params, warnings))
}

/// `create` and `create-orphan`.
pub(super) async fn create(gate: &Gate, request: &Request, orphan_path: bool) -> Outcome {
    let (body, decoded) = Fields::of(request);
    let parsed = create_params(&body, orphan_path);
    let checked = check(&parsed);
    // A refused request's line shows no parameters rather than defaults
    // it did not ask for.
    let understood = parsed.is_ok();
    let (params, warnings) = parsed.unwrap_or_default();
    let tokens = &gate.node().access.tokens;
    // Vault authorizes create-orphan on its own path, without sudo.
    let action = if orphan_path {
        &actions::TOKEN_CREATE_ORPHAN
    } else {
        &actions::TOKEN_CREATE
    };
    let call = request.call(gate, action, "").check(decoded).check(checked);
    let call = if understood {
        create_fields(call, &params)
    } else {
        call
    };
    let (token, entry) = call
        .run(
            |session| async move { tokens.create(&session, params).await },
            |(token, entry)| {
                vec![
                    (
                        "token",
                        Field::Secret(Zeroizing::new(token.expose().as_bytes().to_vec())),
                    ),
                    ("accessor", Field::Plain(entry.accessor.clone().into())),
                ]
            },
        )
        .await?;
    Ok(Reply::auth(auth_block(token.expose(), &entry)).warn(warnings))
}
