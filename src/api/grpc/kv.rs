//! `strongroom.v1.Kv`: versioned secrets.

use std::collections::BTreeMap;

use tonic::{Request, Response, Status};
use zeroize::Zeroizing;

use super::{call, status};
use crate::api::Gate;
use crate::api::actions;
use crate::audit::Field;
use crate::engines::kv::{
    Config, Document, Kv as Engine, Mark, MetadataUpdate, check_max_versions,
};
use crate::error::Error;
use crate::proto::{self, kv_server::Kv};

/// The Kv service.
pub struct KvService {
    gate: Gate,
}

impl KvService {
    /// Serves through `gate`.
    pub fn new(gate: Gate) -> Self {
        Self { gate }
    }

    /// Delete, undelete or destroy `versions` of `path`.
    async fn mark(
        &self,
        action: &'static actions::Action,
        request: &Request<impl Send + Sync>,
        path: &str,
        versions: &[u64],
        mark: Mark,
    ) -> Result<(), Status> {
        let kv = &self.gate.node().kv;
        call(&self.gate, action, path, request)
            .versions(versions)
            .check(Engine::check_versions(mark, versions))
            .run(
                |session| async move { kv.mark(&session, path, versions, mark).await },
                |()| Vec::new(),
            )
            .await
            .map_err(status)
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn put(
        &self,
        request: Request<proto::PutRequest>,
    ) -> Result<Response<proto::PutResponse>, Status> {
        let kv = &self.gate.node().kv;
        let asked = request.get_ref();
        let as_json = !asked.data_json.is_empty();
        let call =
            call(&self.gate, &actions::KV_PUT, &asked.path, &request).plain("cas", asked.cas);
        let call = if as_json {
            call.secret_json("data", &asked.data_json)
        } else {
            call.secret_map("data", &asked.data)
        };
        let both = as_json && !asked.data.is_empty();
        // The values move into zeroizing memory.
        let asked = request.into_inner();
        let (path, cas) = (asked.path, asked.cas);
        let text = Zeroizing::new(asked.data_json);
        let fields: BTreeMap<String, Zeroizing<String>> = asked
            .data
            .into_iter()
            .map(|(k, v)| (k, Zeroizing::new(v)))
            .collect();
        let document = if as_json {
            Document::parse(text.as_bytes())
        } else {
            Ok(Document::from_strings(
                fields.iter().map(|(k, v)| (k, v.as_str())),
            ))
        };
        let checked = if both {
            Err(Error::InvalidArgument(
                "give the secret as data (strings) or as data_json (a JSON object), not both"
                    .into(),
            ))
        } else {
            document.clone().and_then(|d| {
                Engine::check_not_empty(&path, &d)?;
                kv.check_document(&path, &d)
            })
        };
        let path = &path;
        let written = call
            .check(checked)
            .run(
                |session| async move { kv.put(&session, path, &document?, cas).await },
                |w| vec![("version", Field::Plain(w.version.into()))],
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::PutResponse {
            version: written.version,
        }))
    }

    async fn get(
        &self,
        request: Request<proto::GetRequest>,
    ) -> Result<Response<proto::GetResponse>, Status> {
        let kv = &self.gate.node().kv;
        let (path, version) = (&request.get_ref().path, request.get_ref().version);
        let read = call(&self.gate, &actions::KV_GET, path, &request)
            .plain("version", version)
            .run(
                |session| async move { kv.get(&session, path, version).await },
                |read| {
                    vec![
                        ("version", Field::Plain(read.version.into())),
                        (
                            "data",
                            Field::SecretJson(Zeroizing::new(read.data.text().to_string())),
                        ),
                    ]
                },
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::GetResponse {
            data: read
                .data
                .strings()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.expose().to_string()))
                .collect(),
            version: read.version,
            created_unix: read.created_unix,
            data_json: read.data.text().to_string(),
        }))
    }

    async fn delete(
        &self,
        request: Request<proto::DeleteRequest>,
    ) -> Result<Response<proto::DeleteResponse>, Status> {
        let asked = request.get_ref();
        // Vault's two paths: the latest version, or the versions named.
        let action = if asked.versions.is_empty() {
            &actions::KV_DELETE
        } else {
            &actions::KV_DELETE_VERSIONS
        };
        self.mark(action, &request, &asked.path, &asked.versions, Mark::Delete)
            .await?;
        Ok(Response::new(proto::DeleteResponse {}))
    }

    async fn undelete(
        &self,
        request: Request<proto::UndeleteRequest>,
    ) -> Result<Response<proto::UndeleteResponse>, Status> {
        let asked = request.get_ref();
        self.mark(
            &actions::KV_UNDELETE,
            &request,
            &asked.path,
            &asked.versions,
            Mark::Undelete,
        )
        .await?;
        Ok(Response::new(proto::UndeleteResponse {}))
    }

    async fn destroy(
        &self,
        request: Request<proto::DestroyRequest>,
    ) -> Result<Response<proto::DestroyResponse>, Status> {
        let asked = request.get_ref();
        self.mark(
            &actions::KV_DESTROY,
            &request,
            &asked.path,
            &asked.versions,
            Mark::Destroy,
        )
        .await?;
        Ok(Response::new(proto::DestroyResponse {}))
    }

    async fn list(
        &self,
        request: Request<proto::ListRequest>,
    ) -> Result<Response<proto::ListResponse>, Status> {
        let kv = &self.gate.node().kv;
        let prefix = &request.get_ref().prefix;
        let keys = call(&self.gate, &actions::KV_LIST, prefix, &request)
            .run(
                |session| async move { kv.list(&session, prefix).await },
                |keys| vec![("keys", Field::Plain(keys.len().into()))],
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::ListResponse { keys }))
    }

    async fn metadata(
        &self,
        request: Request<proto::MetadataRequest>,
    ) -> Result<Response<proto::MetadataResponse>, Status> {
        let kv = &self.gate.node().kv;
        let path = &request.get_ref().path;
        let (meta, config) = call(&self.gate, &actions::KV_METADATA, path, &request)
            .run(
                |session| async move {
                    Ok((
                        kv.metadata(&session, path).await?,
                        kv.config(&session).await?,
                    ))
                },
                |(meta, _)| vec![("current_version", Field::Plain(meta.current_version.into()))],
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::MetadataResponse {
            current_version: meta.current_version,
            oldest_version: meta.oldest_version(),
            created_unix: meta.created_unix,
            updated_unix: meta.updated_unix,
            max_versions: kv.max_versions(&meta, &config),
            cas_required: meta.cas_required,
            custom_metadata: meta.custom_metadata.clone().into_iter().collect(),
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
        let kv = &self.gate.node().kv;
        let path = &request.get_ref().path;
        call(&self.gate, &actions::KV_DELETE_METADATA, path, &request)
            .run(
                |session| async move { kv.delete_metadata(&session, path).await },
                |()| Vec::new(),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::DeleteMetadataResponse {}))
    }

    async fn patch(
        &self,
        request: Request<proto::PatchRequest>,
    ) -> Result<Response<proto::PutResponse>, Status> {
        let kv = &self.gate.node().kv;
        let asked = request.get_ref();
        let patch = Document::parse(asked.patch_json.as_bytes()).map(|d| d.object());
        let (path, cas) = (&asked.path, asked.cas);
        let written = call(&self.gate, &actions::KV_PATCH, path, &request)
            .secret_json("data", &asked.patch_json)
            .plain("cas", cas)
            .check(patch.as_ref().map(|_| ()).map_err(Clone::clone))
            .run(
                |session| async move { kv.patch(&session, path, &patch?, cas).await },
                |w| vec![("version", Field::Plain(w.version.into()))],
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::PutResponse {
            version: written.version,
        }))
    }

    async fn put_metadata(
        &self,
        request: Request<proto::PutMetadataRequest>,
    ) -> Result<Response<proto::PutMetadataResponse>, Status> {
        let kv = &self.gate.node().kv;
        let asked = request.get_ref();
        let update = MetadataUpdate {
            max_versions: asked.max_versions,
            cas_required: asked.cas_required,
            custom_metadata: asked
                .set_custom_metadata
                .then(|| asked.custom_metadata.clone().into_iter().collect()),
        };
        let path = &asked.path;
        call(&self.gate, &actions::KV_PUT_METADATA, path, &request)
            .plain("max_versions", asked.max_versions)
            .plain("cas_required", asked.cas_required)
            .check(update.check())
            .run(
                |session| async move { kv.put_metadata(&session, path, update).await },
                |()| Vec::new(),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::PutMetadataResponse {}))
    }

    async fn read_config(
        &self,
        request: Request<proto::ReadConfigRequest>,
    ) -> Result<Response<proto::KvConfig>, Status> {
        let kv = &self.gate.node().kv;
        let config = call(&self.gate, &actions::KV_READ_CONFIG, "", &request)
            .run(
                |session| async move { kv.config(&session).await },
                |_| Vec::new(),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::KvConfig {
            max_versions: config.max_versions,
            cas_required: config.cas_required,
        }))
    }

    async fn write_config(
        &self,
        request: Request<proto::KvConfig>,
    ) -> Result<Response<proto::WriteConfigResponse>, Status> {
        let kv = &self.gate.node().kv;
        let config = Config {
            max_versions: request.get_ref().max_versions,
            cas_required: request.get_ref().cas_required,
        };
        call(&self.gate, &actions::KV_WRITE_CONFIG, "", &request)
            .plain("max_versions", config.max_versions)
            .plain("cas_required", config.cas_required)
            .check(check_max_versions(config.max_versions))
            .run(
                |session| async move { kv.set_config(&session, config).await },
                |()| Vec::new(),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::WriteConfigResponse {}))
    }
}
