//! `strongroom.v1.Kv`: versioned secrets.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{Identities, status};
use crate::core::Core;
use crate::core::kv::Secret;
use crate::proto::{self, kv_server::Kv};
use crate::secret::SecretString;

/// The Kv service.
pub struct KvService {
    core: Arc<Core>,
    identities: Identities,
}

impl KvService {
    /// Serves `core` on a listener with `identities`.
    pub fn new(core: Arc<Core>, identities: Identities) -> Self {
        Self { core, identities }
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn put(
        &self,
        request: Request<proto::PutRequest>,
    ) -> Result<Response<proto::PutResponse>, Status> {
        let caller = self.identities.caller(&request);
        let request = request.into_inner();
        let secret: Secret = request
            .data
            .into_iter()
            .map(|(k, v)| (k, SecretString::new(v)))
            .collect();
        let version = self
            .core
            .kv_put(&caller, &request.path, &secret, request.cas)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::PutResponse { version }))
    }

    async fn get(
        &self,
        request: Request<proto::GetRequest>,
    ) -> Result<Response<proto::GetResponse>, Status> {
        let caller = self.identities.caller(&request);
        let request = request.get_ref();
        let read = self
            .core
            .kv_get(&caller, &request.path, request.version)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::GetResponse {
            data: read
                .data
                .into_iter()
                .map(|(k, v)| (k, v.expose().to_string()))
                .collect(),
            version: read.version,
            created_unix: read.created_unix,
        }))
    }

    async fn delete(
        &self,
        request: Request<proto::DeleteRequest>,
    ) -> Result<Response<proto::DeleteResponse>, Status> {
        let caller = self.identities.caller(&request);
        let request = request.get_ref();
        self.core
            .kv_delete(&caller, &request.path, &request.versions)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::DeleteResponse {}))
    }

    async fn undelete(
        &self,
        request: Request<proto::UndeleteRequest>,
    ) -> Result<Response<proto::UndeleteResponse>, Status> {
        let caller = self.identities.caller(&request);
        let request = request.get_ref();
        self.core
            .kv_undelete(&caller, &request.path, &request.versions)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::UndeleteResponse {}))
    }

    async fn destroy(
        &self,
        request: Request<proto::DestroyRequest>,
    ) -> Result<Response<proto::DestroyResponse>, Status> {
        let caller = self.identities.caller(&request);
        let request = request.get_ref();
        self.core
            .kv_destroy(&caller, &request.path, &request.versions)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::DestroyResponse {}))
    }

    async fn list(
        &self,
        request: Request<proto::ListRequest>,
    ) -> Result<Response<proto::ListResponse>, Status> {
        let caller = self.identities.caller(&request);
        let keys = self
            .core
            .kv_list(&caller, &request.get_ref().prefix)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::ListResponse { keys }))
    }

    async fn metadata(
        &self,
        request: Request<proto::MetadataRequest>,
    ) -> Result<Response<proto::MetadataResponse>, Status> {
        let caller = self.identities.caller(&request);
        let meta = self
            .core
            .kv_metadata(&caller, &request.get_ref().path)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::MetadataResponse {
            current_version: meta.current_version,
            oldest_version: meta.oldest_version(),
            created_unix: meta.created_unix,
            updated_unix: meta.updated_unix,
            max_versions: self.core.kv_settings().max_versions,
            versions: meta
                .versions
                .into_iter()
                .map(|(version, info)| proto::VersionMetadata {
                    version,
                    created_unix: info.created_unix,
                    deleted_unix: info.deleted_unix,
                    destroyed: info.destroyed,
                })
                .collect(),
        }))
    }

    async fn delete_metadata(
        &self,
        request: Request<proto::DeleteMetadataRequest>,
    ) -> Result<Response<proto::DeleteMetadataResponse>, Status> {
        let caller = self.identities.caller(&request);
        self.core
            .kv_delete_metadata(&caller, &request.get_ref().path)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::DeleteMetadataResponse {}))
    }
}
