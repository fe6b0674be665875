//! `strongroom.v1.Policy`: writing, reading, listing and deleting policies.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{Identities, status};
use crate::core::Core;
use crate::proto::{self, policy_server::Policy};

/// The Policy service.
pub struct PolicyService {
    core: Arc<Core>,
    identities: Identities,
}

impl PolicyService {
    /// Serves `core` on a listener with `identities`.
    pub fn new(core: Arc<Core>, identities: Identities) -> Self {
        Self { core, identities }
    }
}

#[tonic::async_trait]
impl Policy for PolicyService {
    async fn put_policy(
        &self,
        request: Request<proto::PutPolicyRequest>,
    ) -> Result<Response<proto::PutPolicyResponse>, Status> {
        let caller = self.identities.caller(&request);
        let request = request.get_ref();
        let created = self
            .core
            .put_policy(&caller, &request.name, &request.policy)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::PutPolicyResponse { created }))
    }

    async fn get_policy(
        &self,
        request: Request<proto::GetPolicyRequest>,
    ) -> Result<Response<proto::GetPolicyResponse>, Status> {
        let caller = self.identities.caller(&request);
        let policy = self
            .core
            .get_policy(&caller, &request.get_ref().name)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::GetPolicyResponse { policy }))
    }

    async fn list_policies(
        &self,
        request: Request<proto::ListPoliciesRequest>,
    ) -> Result<Response<proto::ListPoliciesResponse>, Status> {
        let names = self
            .core
            .list_policies(&self.identities.caller(&request))
            .await
            .map_err(status)?;
        Ok(Response::new(proto::ListPoliciesResponse { names }))
    }

    async fn delete_policy(
        &self,
        request: Request<proto::DeletePolicyRequest>,
    ) -> Result<Response<proto::DeletePolicyResponse>, Status> {
        let caller = self.identities.caller(&request);
        self.core
            .delete_policy(&caller, &request.get_ref().name)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::DeletePolicyResponse {}))
    }
}
