//! `strongroom.v1.Token`: making, inspecting, renewing and revoking tokens.

use tonic::{Request, Response, Status};
use zeroize::Zeroizing;

use super::{call, status};
use crate::access::token::{CreateParams, Target, TokenEntry, Tokens};
use crate::api::Gate;
use crate::api::actions;
use crate::api::gate::Call;
use crate::audit::Field;
use crate::error::Error;
use crate::proto::{self, token_server::Token};
use crate::time::now_unix;

/// The Token service.
pub struct TokenService {
    gate: Gate,
}

impl TokenService {
    /// Serves through `gate`.
    pub fn new(gate: Gate) -> Self {
        Self { gate }
    }

    fn tokens(&self) -> &Tokens {
        &self.gate.node().access.tokens
    }
}

fn info(entry: TokenEntry) -> proto::TokenInfo {
    proto::TokenInfo {
        ttl_seconds: entry.ttl_left(now_unix()).unwrap_or(0),
        accessor: entry.accessor,
        policies: entry.policies,
        created_unix: entry.created_unix,
        expire_unix: entry.expire_unix,
        renewable: entry.renewable,
        num_uses: entry.uses_left,
        parent_accessor: entry.parent.unwrap_or_default(),
        period_seconds: entry.period_secs,
    }
}

/// An empty field means "the caller's own token".
fn other_token(token: &str) -> Option<Target<'_>> {
    (!token.is_empty()).then_some(Target::Token(token))
}

fn count(revoked: usize) -> u32 {
    u32::try_from(revoked).unwrap_or(u32::MAX)
}

fn accessor_of(entry: &TokenEntry) -> Vec<(&'static str, Field)> {
    vec![("accessor", Field::Plain(entry.accessor.clone().into()))]
}

fn revoked_count(revoked: &usize) -> Vec<(&'static str, Field)> {
    vec![("revoked", Field::Plain((*revoked).into()))]
}

/// The parameters a token create's audit lines show, alike on both
/// transports: `meta`'s values as HMACs, as other secret fields, its keys
/// as they are.
pub(crate) fn create_fields<'g>(call: Call<'g>, params: &CreateParams) -> Call<'g> {
    call.plain("policies", params.policies.clone())
        .plain("ttl_seconds", params.ttl_secs)
        .plain("explicit_max_ttl_seconds", params.explicit_max_ttl_secs)
        .plain("period_seconds", params.period_secs)
        .plain("num_uses", params.uses)
        .plain("renewable", params.renewable)
        .plain("orphan", params.orphan)
        .plain("display_name", params.display_name.clone())
        .secret_map("meta", &params.meta)
}

/// A lookup names the token or its accessor, not both or neither.
fn lookup_target<'a>(token: &'a str, accessor: &'a str) -> Result<Target<'a>, Error> {
    match (token.is_empty(), accessor.is_empty()) {
        (false, true) => Ok(Target::Token(token)),
        (true, false) => Ok(Target::Accessor(accessor)),
        _ => Err(Error::InvalidArgument(
            "give either a token or an accessor to look up, not both or neither".into(),
        )),
    }
}

#[tonic::async_trait]
impl Token for TokenService {
    async fn create_token(
        &self,
        request: Request<proto::CreateTokenRequest>,
    ) -> Result<Response<proto::CreateTokenResponse>, Status> {
        let tokens = self.tokens();
        let call = call(&self.gate, &actions::TOKEN_CREATE, "", &request);
        let asked = request.into_inner();
        let params = CreateParams {
            policies: asked.policies,
            ttl_secs: asked.ttl_seconds,
            renewable: asked.renewable.unwrap_or(true),
            uses: asked.num_uses,
            orphan: asked.orphan,
            period_secs: asked.period_seconds,
            ..CreateParams::default()
        };
        let (token, entry) = create_fields(call, &params)
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
            .await
            .map_err(status)?;
        Ok(Response::new(proto::CreateTokenResponse {
            token: token.expose().to_string(),
            info: Some(info(entry)),
        }))
    }

    async fn lookup_token(
        &self,
        request: Request<proto::LookupTokenRequest>,
    ) -> Result<Response<proto::TokenInfo>, Status> {
        let (tokens, asked) = (self.tokens(), request.get_ref());
        let target = lookup_target(&asked.token, &asked.accessor);
        let entry = call(&self.gate, &actions::TOKEN_LOOKUP, "", &request)
            .secret("token", asked.token.as_bytes())
            .accessor("accessor", &asked.accessor)
            .check(target.as_ref().map(|_| ()).map_err(Clone::clone))
            .run(
                |session| async move { tokens.lookup(&session, target?).await },
                accessor_of,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(info(entry)))
    }

    async fn lookup_self(
        &self,
        request: Request<proto::LookupSelfRequest>,
    ) -> Result<Response<proto::TokenInfo>, Status> {
        let tokens = self.tokens();
        let entry = call(&self.gate, &actions::TOKEN_LOOKUP_SELF, "", &request)
            .run(
                |session| async move { tokens.lookup_self(&session) },
                accessor_of,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(info(entry)))
    }

    async fn renew_token(
        &self,
        request: Request<proto::RenewTokenRequest>,
    ) -> Result<Response<proto::TokenInfo>, Status> {
        let (tokens, asked) = (self.tokens(), request.get_ref());
        let (target, increment) = (other_token(&asked.token), asked.increment_seconds);
        let entry = call(&self.gate, &actions::TOKEN_RENEW, "", &request)
            .about_another(target.is_some())
            .secret("token", asked.token.as_bytes())
            .plain("increment_seconds", increment)
            .run(
                |session| async move { tokens.renew(&session, target, increment).await },
                accessor_of,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(info(entry)))
    }

    async fn revoke_token(
        &self,
        request: Request<proto::RevokeTokenRequest>,
    ) -> Result<Response<proto::RevokeTokenResponse>, Status> {
        let (tokens, asked) = (self.tokens(), request.get_ref());
        let target = other_token(&asked.token);
        let revoked = call(&self.gate, &actions::TOKEN_REVOKE, "", &request)
            .about_another(target.is_some())
            .secret("token", asked.token.as_bytes())
            .run(
                |session| async move { tokens.revoke(&session, target).await },
                revoked_count,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::RevokeTokenResponse {
            revoked: count(revoked),
        }))
    }

    async fn revoke_accessor(
        &self,
        request: Request<proto::RevokeAccessorRequest>,
    ) -> Result<Response<proto::RevokeAccessorResponse>, Status> {
        let tokens = self.tokens();
        let accessor = &request.get_ref().accessor;
        let revoked = call(&self.gate, &actions::TOKEN_REVOKE_ACCESSOR, "", &request)
            .accessor("accessor", accessor)
            .run(
                |session| async move {
                    tokens
                        .revoke(&session, Some(Target::Accessor(accessor)))
                        .await
                },
                revoked_count,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::RevokeAccessorResponse {
            revoked: count(revoked),
        }))
    }

    async fn list_accessors(
        &self,
        request: Request<proto::ListAccessorsRequest>,
    ) -> Result<Response<proto::ListAccessorsResponse>, Status> {
        let tokens = self.tokens();
        let entries = call(&self.gate, &actions::TOKEN_LIST_ACCESSORS, "", &request)
            .run(
                |session| async move { tokens.list_root_accessors(&session).await },
                |entries| vec![("accessors", Field::Plain(entries.len().into()))],
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::ListAccessorsResponse {
            accessors: entries
                .into_iter()
                .map(|e| proto::TokenAccessor {
                    accessor: e.accessor,
                    policies: e.policies,
                    created_unix: e.created_unix,
                })
                .collect(),
        }))
    }
}
