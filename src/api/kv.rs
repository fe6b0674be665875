//! `strongroom.v1.Kv`: the minimal secret store, root token only.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{bearer, status};
use crate::core::{Core, kv};
use crate::proto::{self, kv_server::Kv};

/// The Kv service.
pub struct KvService {
    core: Arc<Core>,
}

impl KvService {
    /// Serves `core`.
    pub fn new(core: Arc<Core>) -> Self {
        Self { core }
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn put(
        &self,
        request: Request<proto::PutRequest>,
    ) -> Result<Response<proto::PutResponse>, Status> {
        let barrier = self
            .core
            .authorize_root(bearer(&request), "kv put")
            .await
            .map_err(status)?;
        let request = request.into_inner();
        let secret = request.data.into_iter().collect();
        kv::put(&barrier, &request.path, &secret)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::PutResponse {}))
    }

    async fn get(
        &self,
        request: Request<proto::GetRequest>,
    ) -> Result<Response<proto::GetResponse>, Status> {
        let barrier = self
            .core
            .authorize_root(bearer(&request), "kv get")
            .await
            .map_err(status)?;
        let secret = kv::get(&barrier, &request.get_ref().path)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::GetResponse {
            data: secret.into_iter().collect(),
        }))
    }

    async fn delete(
        &self,
        request: Request<proto::DeleteRequest>,
    ) -> Result<Response<proto::DeleteResponse>, Status> {
        let barrier = self
            .core
            .authorize_root(bearer(&request), "kv delete")
            .await
            .map_err(status)?;
        kv::delete(&barrier, &request.get_ref().path)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::DeleteResponse {}))
    }

    async fn list(
        &self,
        request: Request<proto::ListRequest>,
    ) -> Result<Response<proto::ListResponse>, Status> {
        let barrier = self
            .core
            .authorize_root(bearer(&request), "kv list")
            .await
            .map_err(status)?;
        let keys = kv::list(&barrier, &request.get_ref().prefix)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::ListResponse { keys }))
    }
}
