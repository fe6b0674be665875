//! `strongroom.v1.Token`: root tokens' accessors, and revocation by accessor.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{bearer, status};
use crate::core::Core;
use crate::proto::{self, token_server::Token};

/// The Token service.
pub struct TokenService {
    core: Arc<Core>,
}

impl TokenService {
    /// Serves `core`.
    pub fn new(core: Arc<Core>) -> Self {
        Self { core }
    }
}

#[tonic::async_trait]
impl Token for TokenService {
    async fn list_accessors(
        &self,
        request: Request<proto::ListAccessorsRequest>,
    ) -> Result<Response<proto::ListAccessorsResponse>, Status> {
        let entries = self
            .core
            .list_root_accessors(bearer(&request))
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

    async fn revoke_accessor(
        &self,
        request: Request<proto::RevokeAccessorRequest>,
    ) -> Result<Response<proto::RevokeAccessorResponse>, Status> {
        let token = bearer(&request).map(str::to_string);
        self.core
            .revoke_accessor(token.as_deref(), &request.into_inner().accessor)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::RevokeAccessorResponse {}))
    }
}
