//! `strongroom.v1.Token`: making, inspecting, renewing and revoking tokens.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{Identities, status};
use crate::barrier::keyring::now_unix;
use crate::core::Core;
use crate::core::token::{CreateParams, Target, TokenEntry};
use crate::proto::{self, token_server::Token};

/// The Token service.
pub struct TokenService {
    core: Arc<Core>,
    identities: Identities,
}

impl TokenService {
    /// Serves `core` on a listener with `identities`.
    pub fn new(core: Arc<Core>, identities: Identities) -> Self {
        Self { core, identities }
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

#[tonic::async_trait]
impl Token for TokenService {
    async fn create_token(
        &self,
        request: Request<proto::CreateTokenRequest>,
    ) -> Result<Response<proto::CreateTokenResponse>, Status> {
        let caller = self.identities.caller(&request);
        let request = request.into_inner();
        let params = CreateParams {
            policies: request.policies,
            ttl_secs: request.ttl_seconds,
            renewable: request.renewable.unwrap_or(true),
            uses: request.num_uses,
            orphan: request.orphan,
        };
        let (token, entry) = self
            .core
            .create_token(&caller, params)
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
        let caller = self.identities.caller(&request);
        let request = request.get_ref();
        let target = match (request.token.is_empty(), request.accessor.is_empty()) {
            (false, true) => Target::Token(&request.token),
            (true, false) => Target::Accessor(&request.accessor),
            _ => {
                return Err(Status::invalid_argument(
                    "give either a token or an accessor to look up, not both or neither",
                ));
            }
        };
        let entry = self
            .core
            .lookup_token(&caller, target)
            .await
            .map_err(status)?;
        Ok(Response::new(info(entry)))
    }

    async fn lookup_self(
        &self,
        request: Request<proto::LookupSelfRequest>,
    ) -> Result<Response<proto::TokenInfo>, Status> {
        let caller = self.identities.caller(&request);
        let entry = self.core.lookup_self(&caller).await.map_err(status)?;
        Ok(Response::new(info(entry)))
    }

    async fn renew_token(
        &self,
        request: Request<proto::RenewTokenRequest>,
    ) -> Result<Response<proto::TokenInfo>, Status> {
        let caller = self.identities.caller(&request);
        let request = request.get_ref();
        let entry = self
            .core
            .renew_token(
                &caller,
                other_token(&request.token),
                request.increment_seconds,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(info(entry)))
    }

    async fn revoke_token(
        &self,
        request: Request<proto::RevokeTokenRequest>,
    ) -> Result<Response<proto::RevokeTokenResponse>, Status> {
        let caller = self.identities.caller(&request);
        let revoked = self
            .core
            .revoke_token(&caller, other_token(&request.get_ref().token))
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
        let caller = self.identities.caller(&request);
        let accessor = &request.get_ref().accessor;
        let revoked = self
            .core
            .revoke_token(&caller, Some(Target::Accessor(accessor)))
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
        let entries = self
            .core
            .list_root_accessors(&self.identities.caller(&request))
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
