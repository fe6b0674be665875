//! `sys/policies/acl/…` and the older `sys/policy/…`, which Vault still
//! serves (the `bao` CLI uses the first): each one gate call with the
//! action of the gRPC method of the same operation (`grpc/policy.rs`), or
//! on `sys/policy` its own action, authorized on that path as Vault does.
//!
//! As OpenBao: names are lower-cased (with a warning), a write answers 204
//! (`sys/policy` with the deprecated `rules` field 200 and a warning), a
//! delete of a policy that does not exist 204, a read of one 404 with no
//! sentence. The policy text is strongroom's HCL, which Vault's parses as.

use serde_json::{Value, json};

use super::{HttpError, Op, Outcome, Reply, Request};
use crate::access::{acl, refuse_root};
use crate::api::Gate;
use crate::api::actions::{self, Action};
use crate::audit::Field;
use crate::error::Error;

/// Which of Vault's two policy APIs a request came by.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    /// `sys/policies/acl`: logical answers, the text as `policy`.
    Acl,
    /// `sys/policy`: fields at the top level too, the text as `rules`.
    Old,
}

/// Routes `sys/<rest>` for `rest` starting `policies/` or `policy`.
pub async fn route(gate: &Gate, request: &Request, rest: &str) -> Outcome {
    let (api, name) = match rest {
        "policies/acl" => (Api::Acl, None),
        "policy" => (Api::Old, None),
        _ => match (
            rest.strip_prefix("policies/acl/"),
            rest.strip_prefix("policy/"),
        ) {
            (Some(name), _) => (Api::Acl, Some(name)),
            (_, Some(name)) => (Api::Old, Some(name)),
            _ => return Err(HttpError::no_route(&request.path)),
        },
    };
    match (name, request.op) {
        (None, Op::List) => {
            let listing = action(api, &actions::POLICY_LIST, &actions::POLICY_LIST_OLD);
            list(gate, request, api, listing).await
        }
        // Vault's old API lists on a plain read too, with `read`.
        (None, Op::Read) if api == Api::Old => {
            list(gate, request, api, &actions::POLICY_READ_LIST_OLD).await
        }
        (None, _) => Err(HttpError::unsupported()),
        // `sys/policies/acl/` with nothing after it.
        (Some(""), _) => Err(HttpError::unsupported()),
        (Some(name), op) => {
            let (name, warnings) = lower(name);
            let answer = match op {
                Op::Read => read(gate, request, api, &name).await,
                Op::Update => write(gate, request, api, &name).await,
                Op::Delete => delete(gate, request, api, &name).await,
                // Listing a policy's name is listing nothing: 404, as OpenBao.
                Op::List => Err(HttpError::not_found()),
                Op::Patch => Err(HttpError::unsupported()),
            };
            // A write answered 204 with nothing to say answers 200 to say it.
            answer.map(|reply| match reply.status() {
                _ if warnings.is_empty() => reply,
                http::StatusCode::NO_CONTENT => Reply::data(Value::Null).warn(warnings),
                _ => reply.warn(warnings),
            })
        }
    }
}

/// Vault lower-cases policy names, and says so.
fn lower(name: &str) -> (String, Vec<String>) {
    let lowered = name.to_lowercase();
    let warnings = if lowered == name {
        Vec::new()
    } else {
        vec!["policy name was converted to lower case".to_string()]
    };
    (lowered, warnings)
}

/// The action of an operation: on `sys/policy`, its own, authorized on
/// Vault's older paths.
fn action(api: Api, acl: &'static Action, old: &'static Action) -> &'static Action {
    match api {
        Api::Acl => acl,
        Api::Old => old,
    }
}

async fn list(gate: &Gate, request: &Request, api: Api, listing: &'static Action) -> Outcome {
    let policies = &gate.node().access.policies;
    let names = request
        .call(gate, listing, "")
        .run(
            |session| async move { policies.list(&session).await },
            |names| vec![("names", Field::Plain(names.clone().into()))],
        )
        .await?;
    Ok(match api {
        Api::Acl => Reply::data(json!({ "keys": names })),
        Api::Old => Reply::sys(json!({ "keys": names, "policies": names })),
    })
}

async fn read(gate: &Gate, request: &Request, api: Api, name: &str) -> Outcome {
    let policies = &gate.node().access.policies;
    let text = request
        .call(
            gate,
            action(api, &actions::POLICY_GET, &actions::POLICY_GET_OLD),
            name,
        )
        .run(
            |session| async move { policies.get(&session, name).await },
            |_| Vec::new(),
        )
        .await;
    let text = match text {
        Ok(text) => text,
        Err(Error::NotFound(_)) => return Err(HttpError::not_found()),
        Err(e) => return Err(e.into()),
    };
    // strongroom keeps no version or modification time of a policy, and
    // has no identity templates: those fields are left out or false.
    let mut data = json!({
        "name": name,
        "cas_required": false,
        "allow_slashes_in_identity_templates": false,
        "allow_wildcards_in_identity_templates": false,
    });
    Ok(match api {
        Api::Acl => {
            data["policy"] = Value::String(text);
            Reply::data(data)
        }
        Api::Old => {
            data["rules"] = Value::String(text);
            Reply::sys(data)
        }
    })
}

/// A write's body: the text as `policy`, or on `sys/policy` as the
/// deprecated `rules`.
#[derive(serde::Deserialize, Default)]
struct WriteBody {
    #[serde(default)]
    policy: Option<String>,
    #[serde(default)]
    rules: Option<String>,
}

/// The text of a write, and the warnings it earns.
fn policy_text(body: WriteBody, api: Api) -> Result<(String, Vec<String>), Error> {
    match (body.policy, body.rules) {
        (Some(text), _) if !text.trim().is_empty() => Ok((text, Vec::new())),
        (_, Some(text)) if api == Api::Old && !text.trim().is_empty() => Ok((
            text,
            vec!["'rules' is deprecated, please use 'policy' instead".into()],
        )),
        _ => Err(Error::InvalidArgument(
            "'policy' parameter not supplied or empty".into(),
        )),
    }
}

async fn write(gate: &Gate, request: &Request, api: Api, name: &str) -> Outcome {
    let writing = action(api, &actions::POLICY_PUT, &actions::POLICY_PUT_OLD);
    let (call, body) = request.call_json::<WriteBody>(gate, writing, name);
    let parsed = policy_text(body, api);
    let (text, warnings) = match &parsed {
        Ok((text, warnings)) => (text.as_str(), warnings.clone()),
        Err(_) => ("", Vec::new()),
    };
    let policies = &gate.node().access.policies;
    call.plain("policy", text)
        .check(parsed.as_ref().map(|_| ()).map_err(Clone::clone))
        .check(acl::check_size(name, text))
        .check(refuse_root(name, "changed"))
        .run(
            |session| async move {
                match api {
                    Api::Acl => policies.put(&session, name, text).await,
                    Api::Old => policies.put_updating(&session, name, text).await,
                }
            },
            |created| vec![("created", Field::Plain((*created).into()))],
        )
        .await?;
    if warnings.is_empty() {
        Ok(Reply::no_content())
    } else {
        Ok(Reply::data(Value::Null).warn(warnings))
    }
}

async fn delete(gate: &Gate, request: &Request, api: Api, name: &str) -> Outcome {
    let policies = &gate.node().access.policies;
    let deleted = request
        .call(
            gate,
            action(api, &actions::POLICY_DELETE, &actions::POLICY_DELETE_OLD),
            name,
        )
        .check(refuse_root(name, "deleted"))
        .run(
            |session| async move { policies.delete(&session, name).await },
            |()| Vec::new(),
        )
        .await;
    match deleted {
        // OpenBao deletes a policy that does not exist without a word.
        Ok(()) | Err(Error::NotFound(_)) => Ok(Reply::no_content()),
        Err(e) => Err(e.into()),
    }
}
