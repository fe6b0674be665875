//! `strongroom.v1.Token`: making, inspecting, renewing and revoking tokens.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use zeroize::Zeroizing;

use super::Gate;
use crate::audit::Field;
use crate::core::token::{CreateParams, Target, TokenEntry};
use crate::core::{Core, CoreError};
use crate::proto::{self, token_server::Token};
use crate::time::now_unix;

/// The Token service.
pub struct TokenService {
    core: Arc<Core>,
    gate: Gate,
}

impl TokenService {
    /// Serves `core` through `gate`.
    pub fn new(core: Arc<Core>, gate: Gate) -> Self {
        Self { core, gate }
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

#[tonic::async_trait]
impl Token for TokenService {
    async fn create_token(
        &self,
        request: Request<proto::CreateTokenRequest>,
    ) -> Result<Response<proto::CreateTokenResponse>, Status> {
        let asked = request.get_ref();
        let call = self
            .gate
            .audit(&request, "token.Create", "auth/token/create".into())
            .plain("policies", asked.policies.clone())
            .plain("ttl_seconds", asked.ttl_seconds)
            .plain("num_uses", asked.num_uses)
            .plain("orphan", asked.orphan)
            .start();
        let request = request.into_inner();
        let params = CreateParams {
            policies: request.policies,
            ttl_secs: request.ttl_seconds,
            renewable: request.renewable.unwrap_or(true),
            uses: request.num_uses,
            orphan: request.orphan,
        };
        let result = self.core.create_token(call.caller(), params).await;
        let (token, entry) = call
            .finish(&self.core, result, |(token, entry)| {
                vec![
                    (
                        "token",
                        Field::Secret(Zeroizing::new(token.expose().as_bytes().to_vec())),
                    ),
                    ("accessor", Field::Plain(entry.accessor.clone().into())),
                ]
            })
            .await?;
        Ok(Response::new(proto::CreateTokenResponse {
            token: token.expose().to_string(),
            info: Some(info(entry)),
        }))
    }

    async fn lookup_token(
        &self,
        request: Request<proto::LookupTokenRequest>,
    ) -> Result<Response<proto::TokenInfo>, Status> {
        let call = self
            .gate
            .audit(&request, "token.Lookup", "auth/token/lookup".into())
            .secret("token", request.get_ref().token.as_bytes())
            .accessor("accessor", &request.get_ref().accessor)
            .start();
        let request = request.get_ref();
        let result = match (request.token.is_empty(), request.accessor.is_empty()) {
            (false, true) => Ok(Target::Token(&request.token)),
            (true, false) => Ok(Target::Accessor(&request.accessor)),
            _ => Err(CoreError::InvalidArgument(
                "give either a token or an accessor to look up, not both or neither".into(),
            )),
        };
        let result = match result {
            Ok(target) => self.core.lookup_token(call.caller(), target).await,
            Err(e) => Err(e),
        };
        let entry = call.finish(&self.core, result, accessor_of).await?;
        Ok(Response::new(info(entry)))
    }

    async fn lookup_self(
        &self,
        request: Request<proto::LookupSelfRequest>,
    ) -> Result<Response<proto::TokenInfo>, Status> {
        let call = self
            .gate
            .audit(
                &request,
                "token.LookupSelf",
                "auth/token/lookup-self".into(),
            )
            .start();
        let result = self.core.lookup_self(call.caller()).await;
        let entry = call.finish(&self.core, result, accessor_of).await?;
        Ok(Response::new(info(entry)))
    }

    async fn renew_token(
        &self,
        request: Request<proto::RenewTokenRequest>,
    ) -> Result<Response<proto::TokenInfo>, Status> {
        let call = self
            .gate
            .audit(&request, "token.Renew", "auth/token/renew".into())
            .secret("token", request.get_ref().token.as_bytes())
            .plain("increment_seconds", request.get_ref().increment_seconds)
            .start();
        let request = request.get_ref();
        let target = other_token(&request.token);
        let result = self
            .core
            .renew_token(call.caller(), target, request.increment_seconds)
            .await;
        let entry = call.finish(&self.core, result, accessor_of).await?;
        Ok(Response::new(info(entry)))
    }

    async fn revoke_token(
        &self,
        request: Request<proto::RevokeTokenRequest>,
    ) -> Result<Response<proto::RevokeTokenResponse>, Status> {
        let call = self
            .gate
            .audit(&request, "token.Revoke", "auth/token/revoke".into())
            .secret("token", request.get_ref().token.as_bytes())
            .start();
        let target = other_token(&request.get_ref().token);
        let result = self.core.revoke_token(call.caller(), target).await;
        let revoked = call.finish(&self.core, result, revoked_count).await?;
        Ok(Response::new(proto::RevokeTokenResponse {
            revoked: count(revoked),
        }))
    }

    async fn revoke_accessor(
        &self,
        request: Request<proto::RevokeAccessorRequest>,
    ) -> Result<Response<proto::RevokeAccessorResponse>, Status> {
        let accessor = &request.get_ref().accessor;
        let call = self
            .gate
            .audit(
                &request,
                "token.RevokeAccessor",
                "auth/token/revoke-accessor".into(),
            )
            .accessor("accessor", accessor)
            .start();
        let result = self
            .core
            .revoke_token(call.caller(), Some(Target::Accessor(accessor)))
            .await;
        let revoked = call.finish(&self.core, result, revoked_count).await?;
        Ok(Response::new(proto::RevokeAccessorResponse {
            revoked: count(revoked),
        }))
    }

    async fn list_accessors(
        &self,
        request: Request<proto::ListAccessorsRequest>,
    ) -> Result<Response<proto::ListAccessorsResponse>, Status> {
        let call = self
            .gate
            .audit(
                &request,
                "token.ListAccessors",
                "auth/token/accessors".into(),
            )
            .start();
        let result = self.core.list_root_accessors(call.caller()).await;
        let entries = call
            .finish(&self.core, result, |entries| {
                vec![("accessors", Field::Plain(entries.len().into()))]
            })
            .await?;
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
