//! `strongroom.v1.Policy`: writing, reading, listing and deleting policies.

use tonic::{Request, Response, Status};

use super::{call, status};
use crate::access::{acl, refuse_root};
use crate::api::Gate;
use crate::api::actions;
use crate::audit::Field;
use crate::proto::{self, policy_server::Policy};

/// The Policy service.
pub struct PolicyService {
    gate: Gate,
}

impl PolicyService {
    /// Serves through `gate`.
    pub fn new(gate: Gate) -> Self {
        Self { gate }
    }
}

#[tonic::async_trait]
impl Policy for PolicyService {
    async fn put_policy(
        &self,
        request: Request<proto::PutPolicyRequest>,
    ) -> Result<Response<proto::PutPolicyResponse>, Status> {
        let policies = &self.gate.node().access.policies;
        let (name, text) = (&request.get_ref().name, &request.get_ref().policy);
        let created = call(&self.gate, &actions::POLICY_PUT, name, &request)
            .plain("policy", text.clone())
            .check(acl::check_size(name, text))
            .check(refuse_root(name, "changed"))
            .run(
                |session| async move { policies.put(&session, name, text).await },
                |created| vec![("created", Field::Plain((*created).into()))],
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::PutPolicyResponse { created }))
    }

    async fn get_policy(
        &self,
        request: Request<proto::GetPolicyRequest>,
    ) -> Result<Response<proto::GetPolicyResponse>, Status> {
        let policies = &self.gate.node().access.policies;
        let name = &request.get_ref().name;
        let policy = call(&self.gate, &actions::POLICY_GET, name, &request)
            .run(
                |session| async move { policies.get(&session, name).await },
                |_| Vec::new(),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::GetPolicyResponse { policy }))
    }

    async fn list_policies(
        &self,
        request: Request<proto::ListPoliciesRequest>,
    ) -> Result<Response<proto::ListPoliciesResponse>, Status> {
        let policies = &self.gate.node().access.policies;
        let names = call(&self.gate, &actions::POLICY_LIST, "", &request)
            .run(
                |session| async move { policies.list(&session).await },
                |names| vec![("names", Field::Plain(names.clone().into()))],
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::ListPoliciesResponse { names }))
    }

    async fn delete_policy(
        &self,
        request: Request<proto::DeletePolicyRequest>,
    ) -> Result<Response<proto::DeletePolicyResponse>, Status> {
        let policies = &self.gate.node().access.policies;
        let name = &request.get_ref().name;
        call(&self.gate, &actions::POLICY_DELETE, name, &request)
            .check(refuse_root(name, "deleted"))
            .run(
                |session| async move { policies.delete(&session, name).await },
                |()| Vec::new(),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::DeletePolicyResponse {}))
    }
}
