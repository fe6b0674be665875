//! `strongroom.v1.Kv`: versioned secrets.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::Gate;
use crate::audit::Field;
use crate::core::Core;
use crate::core::kv::Secret;
use crate::proto::{self, kv_server::Kv};
use crate::secret::SecretString;
use zeroize::Zeroizing;

/// The policy path of a kv path, as audit lines show it.
fn kv_path(path: &str) -> String {
    format!("kv/{path}")
}

/// The Kv service.
pub struct KvService {
    core: Arc<Core>,
    gate: Gate,
}

impl KvService {
    /// Serves `core` through `gate`.
    pub fn new(core: Arc<Core>, gate: Gate) -> Self {
        Self { core, gate }
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn put(
        &self,
        request: Request<proto::PutRequest>,
    ) -> Result<Response<proto::PutResponse>, Status> {
        let call = self
            .gate
            .audit(&request, "kv.Put", kv_path(&request.get_ref().path))
            .secret_map("data", &request.get_ref().data)
            .plain("cas", request.get_ref().cas)
            .start();
        let request = request.into_inner();
        let secret: Secret = request
            .data
            .into_iter()
            .map(|(k, v)| (k, SecretString::new(v)))
            .collect();
        let result = self
            .core
            .kv_put(call.caller(), &request.path, &secret, request.cas)
            .await;
        let version = call
            .finish(&self.core, result, |v| {
                vec![("version", Field::Plain((*v).into()))]
            })
            .await?;
        Ok(Response::new(proto::PutResponse { version }))
    }

    async fn get(
        &self,
        request: Request<proto::GetRequest>,
    ) -> Result<Response<proto::GetResponse>, Status> {
        let call = self
            .gate
            .audit(&request, "kv.Get", kv_path(&request.get_ref().path))
            .plain("version", request.get_ref().version)
            .start();
        let request = request.get_ref();
        let result = self
            .core
            .kv_get(call.caller(), &request.path, request.version)
            .await;
        let read = call
            .finish(&self.core, result, |read| {
                vec![
                    ("version", Field::Plain(read.version.into())),
                    (
                        "data",
                        Field::SecretMap(
                            read.data
                                .iter()
                                .map(|(k, v)| (k.clone(), Zeroizing::new(v.expose().to_string())))
                                .collect(),
                        ),
                    ),
                ]
            })
            .await?;
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
        let call = self
            .gate
            .audit(&request, "kv.Delete", kv_path(&request.get_ref().path))
            .plain("versions", request.get_ref().versions.clone())
            .start();
        let request = request.get_ref();
        let result = self
            .core
            .kv_delete(call.caller(), &request.path, &request.versions)
            .await;
        call.finish(&self.core, result, |()| Vec::new()).await?;
        Ok(Response::new(proto::DeleteResponse {}))
    }

    async fn undelete(
        &self,
        request: Request<proto::UndeleteRequest>,
    ) -> Result<Response<proto::UndeleteResponse>, Status> {
        let call = self
            .gate
            .audit(&request, "kv.Undelete", kv_path(&request.get_ref().path))
            .plain("versions", request.get_ref().versions.clone())
            .start();
        let request = request.get_ref();
        let result = self
            .core
            .kv_undelete(call.caller(), &request.path, &request.versions)
            .await;
        call.finish(&self.core, result, |()| Vec::new()).await?;
        Ok(Response::new(proto::UndeleteResponse {}))
    }

    async fn destroy(
        &self,
        request: Request<proto::DestroyRequest>,
    ) -> Result<Response<proto::DestroyResponse>, Status> {
        let call = self
            .gate
            .audit(&request, "kv.Destroy", kv_path(&request.get_ref().path))
            .plain("versions", request.get_ref().versions.clone())
            .start();
        let request = request.get_ref();
        let result = self
            .core
            .kv_destroy(call.caller(), &request.path, &request.versions)
            .await;
        call.finish(&self.core, result, |()| Vec::new()).await?;
        Ok(Response::new(proto::DestroyResponse {}))
    }

    async fn list(
        &self,
        request: Request<proto::ListRequest>,
    ) -> Result<Response<proto::ListResponse>, Status> {
        let call = self
            .gate
            .audit(&request, "kv.List", kv_path(&request.get_ref().prefix))
            .start();
        let result = self
            .core
            .kv_list(call.caller(), &request.get_ref().prefix)
            .await;
        let keys = call
            .finish(&self.core, result, |keys| {
                vec![("keys", Field::Plain(keys.len().into()))]
            })
            .await?;
        Ok(Response::new(proto::ListResponse { keys }))
    }

    async fn metadata(
        &self,
        request: Request<proto::MetadataRequest>,
    ) -> Result<Response<proto::MetadataResponse>, Status> {
        let call = self
            .gate
            .audit(&request, "kv.Metadata", kv_path(&request.get_ref().path))
            .start();
        let result = self
            .core
            .kv_metadata(call.caller(), &request.get_ref().path)
            .await;
        let meta = call
            .finish(&self.core, result, |meta| {
                vec![("current_version", Field::Plain(meta.current_version.into()))]
            })
            .await?;
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
        let call = self
            .gate
            .audit(
                &request,
                "kv.DeleteMetadata",
                kv_path(&request.get_ref().path),
            )
            .start();
        let result = self
            .core
            .kv_delete_metadata(call.caller(), &request.get_ref().path)
            .await;
        call.finish(&self.core, result, |()| Vec::new()).await?;
        Ok(Response::new(proto::DeleteMetadataResponse {}))
    }
}
