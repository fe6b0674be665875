//! `strongroom.v1.Policy`: writing, reading, listing and deleting policies.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::Gate;
use crate::audit::Field;
use crate::core::Core;
use crate::proto::{self, policy_server::Policy};

/// The Policy service.
pub struct PolicyService {
    core: Arc<Core>,
    gate: Gate,
}

impl PolicyService {
    /// Serves `core` through `gate`.
    pub fn new(core: Arc<Core>, gate: Gate) -> Self {
        Self { core, gate }
    }
}

fn policy_path(name: &str) -> String {
    format!("sys/policy/{name}")
}

#[tonic::async_trait]
impl Policy for PolicyService {
    async fn put_policy(
        &self,
        request: Request<proto::PutPolicyRequest>,
    ) -> Result<Response<proto::PutPolicyResponse>, Status> {
        let call = self
            .gate
            .audit(&request, "policy.Put", policy_path(&request.get_ref().name))
            .plain("policy", request.get_ref().policy.clone())
            .start();
        let request = request.get_ref();
        let result = self
            .core
            .put_policy(call.caller(), &request.name, &request.policy)
            .await;
        let created = call
            .finish(&self.core, result, |created| {
                vec![("created", Field::Plain((*created).into()))]
            })
            .await?;
        Ok(Response::new(proto::PutPolicyResponse { created }))
    }

    async fn get_policy(
        &self,
        request: Request<proto::GetPolicyRequest>,
    ) -> Result<Response<proto::GetPolicyResponse>, Status> {
        let name = &request.get_ref().name;
        let call = self
            .gate
            .audit(&request, "policy.Get", policy_path(name))
            .start();
        let result = self.core.get_policy(call.caller(), name).await;
        let policy = call.finish(&self.core, result, |_| Vec::new()).await?;
        Ok(Response::new(proto::GetPolicyResponse { policy }))
    }

    async fn list_policies(
        &self,
        request: Request<proto::ListPoliciesRequest>,
    ) -> Result<Response<proto::ListPoliciesResponse>, Status> {
        let call = self
            .gate
            .audit(&request, "policy.List", "sys/policy/".into())
            .start();
        let result = self.core.list_policies(call.caller()).await;
        let names = call
            .finish(&self.core, result, |names| {
                vec![("names", Field::Plain(names.clone().into()))]
            })
            .await?;
        Ok(Response::new(proto::ListPoliciesResponse { names }))
    }

    async fn delete_policy(
        &self,
        request: Request<proto::DeletePolicyRequest>,
    ) -> Result<Response<proto::DeletePolicyResponse>, Status> {
        let name = &request.get_ref().name;
        let call = self
            .gate
            .audit(&request, "policy.Delete", policy_path(name))
            .start();
        let result = self.core.delete_policy(call.caller(), name).await;
        call.finish(&self.core, result, |()| Vec::new()).await?;
        Ok(Response::new(proto::DeletePolicyResponse {}))
    }
}
