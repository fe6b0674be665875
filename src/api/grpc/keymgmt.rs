//! `strongroom.v1.KeyMgmt`: keys distributed to KMS providers (bring your
//! own key), the engine in `engines::keymgmt`.

use tonic::{Request, Response, Status};

use super::{call, status};
use crate::api::Gate;
use crate::api::actions;
use crate::audit::Field;
use crate::engines::keymgmt::{
    Credentials, DistributeSpec, DistributionInfo, KeyInfo, KeyMgmt as Engine, KeyWrite,
    ProviderConfig, ProviderInfo,
};
use crate::proto::{self, key_mgmt_server::KeyMgmt};
use crate::secret::SecretString;

/// The KeyMgmt service.
pub struct KeyMgmtService {
    gate: Gate,
}

impl KeyMgmtService {
    /// Serves through `gate`.
    pub fn new(gate: Gate) -> Self {
        Self { gate }
    }

    fn engine(&self) -> &Engine {
        &self.gate.node().keymgmt
    }
}

/// The resource of a distribution's actions.
fn distribution(provider: &str, key: &str) -> String {
    format!("{provider}/key/{key}")
}

/// Empty is none, as proto3 sends a field left out.
fn given(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_string())
}

fn none(_: &impl Sized) -> Vec<(&'static str, Field)> {
    Vec::new()
}

fn count(names: &[String]) -> Vec<(&'static str, Field)> {
    vec![("names", Field::Plain(names.len().into()))]
}

fn latest(info: &KeyInfo) -> Vec<(&'static str, Field)> {
    vec![("latest_version", Field::Plain(info.latest_version.into()))]
}

fn versions(info: &DistributionInfo) -> Vec<(&'static str, Field)> {
    vec![("versions", Field::Plain(info.versions.len().into()))]
}

impl From<ProviderInfo> for proto::ProviderInfo {
    fn from(info: ProviderInfo) -> Self {
        Self {
            name: info.name,
            provider: info.provider,
            key_collection: info.key_collection,
            endpoint: info.endpoint.unwrap_or_default(),
            static_credentials: info.static_credentials,
        }
    }
}

impl From<KeyInfo> for proto::KeyMgmtKeyInfo {
    fn from(info: KeyInfo) -> Self {
        Self {
            name: info.name,
            r#type: info.key_type,
            deletion_allowed: info.deletion_allowed,
            min_enabled_version: info.min_enabled_version,
            latest_version: info.latest_version,
            version_created_unix: info.versions,
        }
    }
}

impl From<DistributionInfo> for proto::DistributionInfo {
    fn from(info: DistributionInfo) -> Self {
        Self {
            provider: info.provider,
            key: info.key,
            alias: info.alias,
            alias_version: info.alias_version.unwrap_or(0),
            purpose: info.purpose,
            protection: info.protection,
            versions: info
                .versions
                .into_iter()
                .map(|v| proto::DistributedVersion {
                    version: v.version,
                    kms_key_id: v.kms_key_id.unwrap_or_default(),
                    arn: v.arn.unwrap_or_default(),
                    state: v.state.to_string(),
                })
                .collect(),
            pending_deletion_until: info.pending_deletion_until.unwrap_or(0),
        }
    }
}

#[tonic::async_trait]
impl KeyMgmt for KeyMgmtService {
    async fn write_provider(
        &self,
        request: Request<proto::WriteProviderRequest>,
    ) -> Result<Response<proto::ProviderInfo>, Status> {
        let (engine, asked) = (self.engine(), request.get_ref());
        let empty = proto::ProviderCredentials::default();
        let creds = asked.credentials.as_ref().unwrap_or(&empty);
        let config = ProviderConfig {
            provider: given(&asked.provider),
            key_collection: given(&asked.key_collection),
            endpoint: asked.endpoint.clone(),
            credentials: Credentials {
                access_key: given(&creds.access_key),
                secret_key: given(&creds.secret_key).map(SecretString::new),
                session_token: given(&creds.session_token).map(SecretString::new),
                clear: creds.clear,
            },
        };
        let info = call(
            &self.gate,
            &actions::KEYMGMT_PROVIDER_WRITE,
            &asked.name,
            &request,
        )
        .check(config.check_given())
        .plain("provider", asked.provider.as_str())
        .plain("key_collection", asked.key_collection.as_str())
        .plain("endpoint", asked.endpoint.as_deref().unwrap_or(""))
        .secret("access_key", creds.access_key.as_bytes())
        .secret("secret_key", creds.secret_key.as_bytes())
        .secret("session_token", creds.session_token.as_bytes())
        .plain("clear_credentials", creds.clear)
        .run(
            |session| async move { engine.write_provider(&session, &asked.name, config).await },
            none,
        )
        .await
        .map_err(status)?;
        Ok(Response::new(info.into()))
    }

    async fn read_provider(
        &self,
        request: Request<proto::ReadProviderRequest>,
    ) -> Result<Response<proto::ProviderInfo>, Status> {
        let (engine, name) = (self.engine(), &request.get_ref().name);
        let info = call(&self.gate, &actions::KEYMGMT_PROVIDER_READ, name, &request)
            .run(
                |session| async move { engine.read_provider(&session, name).await },
                none,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(info.into()))
    }

    async fn list_providers(
        &self,
        request: Request<proto::ListProvidersRequest>,
    ) -> Result<Response<proto::NamesResponse>, Status> {
        let engine = self.engine();
        let names = call(&self.gate, &actions::KEYMGMT_PROVIDER_LIST, "", &request)
            .run(
                |session| async move { engine.list_providers(&session).await },
                |names| count(names),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::NamesResponse { names }))
    }

    async fn delete_provider(
        &self,
        request: Request<proto::DeleteProviderRequest>,
    ) -> Result<Response<proto::DeleteProviderResponse>, Status> {
        let (engine, name) = (self.engine(), &request.get_ref().name);
        call(
            &self.gate,
            &actions::KEYMGMT_PROVIDER_DELETE,
            name,
            &request,
        )
        .run(
            |session| async move { engine.delete_provider(&session, name).await },
            none,
        )
        .await
        .map_err(status)?;
        Ok(Response::new(proto::DeleteProviderResponse {}))
    }

    async fn write_key(
        &self,
        request: Request<proto::WriteKeyRequest>,
    ) -> Result<Response<proto::KeyMgmtKeyInfo>, Status> {
        let (engine, asked) = (self.engine(), request.get_ref());
        let write = KeyWrite {
            key_type: given(&asked.r#type),
            deletion_allowed: asked.deletion_allowed,
            min_enabled_version: asked.min_enabled_version,
        };
        let mut call = call(
            &self.gate,
            &actions::KEYMGMT_KEY_WRITE,
            &asked.name,
            &request,
        )
        .check(write.check_given())
        .plain("type", asked.r#type.as_str());
        if let Some(allowed) = asked.deletion_allowed {
            call = call.plain("deletion_allowed", allowed);
        }
        if let Some(min) = asked.min_enabled_version {
            call = call.plain("min_enabled_version", min);
        }
        let info = call
            .run(
                |session| async move { engine.write_key(&session, &asked.name, write).await },
                latest,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(info.into()))
    }

    async fn read_key(
        &self,
        request: Request<proto::ReadKeyMgmtKeyRequest>,
    ) -> Result<Response<proto::KeyMgmtKeyInfo>, Status> {
        let (engine, name) = (self.engine(), &request.get_ref().name);
        let info = call(&self.gate, &actions::KEYMGMT_KEY_READ, name, &request)
            .run(
                |session| async move { engine.read_key(&session, name).await },
                latest,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(info.into()))
    }

    async fn list_keys(
        &self,
        request: Request<proto::ListKeyMgmtKeysRequest>,
    ) -> Result<Response<proto::NamesResponse>, Status> {
        let engine = self.engine();
        let names = call(&self.gate, &actions::KEYMGMT_KEY_LIST, "", &request)
            .run(
                |session| async move { engine.list_keys(&session).await },
                |names| count(names),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::NamesResponse { names }))
    }

    async fn rotate_key(
        &self,
        request: Request<proto::RotateKeyMgmtKeyRequest>,
    ) -> Result<Response<proto::KeyMgmtKeyInfo>, Status> {
        let (engine, name) = (self.engine(), &request.get_ref().name);
        let info = call(&self.gate, &actions::KEYMGMT_KEY_ROTATE, name, &request)
            .run(
                |session| async move { engine.rotate_key(&session, name).await },
                latest,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(info.into()))
    }

    async fn delete_key(
        &self,
        request: Request<proto::DeleteKeyMgmtKeyRequest>,
    ) -> Result<Response<proto::DeleteKeyMgmtKeyResponse>, Status> {
        let (engine, asked) = (self.engine(), request.get_ref());
        call(
            &self.gate,
            &actions::KEYMGMT_KEY_DELETE,
            &asked.name,
            &request,
        )
        .plain("deletion_window_days", asked.deletion_window_days)
        .run(
            |session| async move {
                engine
                    .delete_key(&session, &asked.name, asked.deletion_window_days)
                    .await
            },
            none,
        )
        .await
        .map_err(status)?;
        Ok(Response::new(proto::DeleteKeyMgmtKeyResponse {}))
    }

    async fn list_key_providers(
        &self,
        request: Request<proto::ListKeyProvidersRequest>,
    ) -> Result<Response<proto::NamesResponse>, Status> {
        let (engine, name) = (self.engine(), &request.get_ref().name);
        let names = call(&self.gate, &actions::KEYMGMT_KEY_PROVIDERS, name, &request)
            .run(
                |session| async move { engine.list_key_providers(&session, name).await },
                |names| count(names),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::NamesResponse { names }))
    }

    async fn distribute(
        &self,
        request: Request<proto::DistributeRequest>,
    ) -> Result<Response<proto::DistributionInfo>, Status> {
        let (engine, asked) = (self.engine(), request.get_ref());
        let spec = DistributeSpec {
            purpose: asked.purpose.clone(),
            protection: given(&asked.protection).unwrap_or_else(|| "hsm".into()),
        };
        let info = call(
            &self.gate,
            &actions::KEYMGMT_DISTRIBUTE,
            &distribution(&asked.provider, &asked.key),
            &request,
        )
        .check(spec.validate())
        .plain("purpose", asked.purpose.join(","))
        .plain("protection", spec.protection.as_str())
        .run(
            |session| async move {
                engine
                    .distribute(&session, &asked.provider, &asked.key, &spec)
                    .await
            },
            versions,
        )
        .await
        .map_err(status)?;
        Ok(Response::new(info.into()))
    }

    async fn read_distribution(
        &self,
        request: Request<proto::ReadDistributionRequest>,
    ) -> Result<Response<proto::DistributionInfo>, Status> {
        let (engine, asked) = (self.engine(), request.get_ref());
        let info = call(
            &self.gate,
            &actions::KEYMGMT_DISTRIBUTION_READ,
            &distribution(&asked.provider, &asked.key),
            &request,
        )
        .run(
            |session| async move {
                engine
                    .read_distribution(&session, &asked.provider, &asked.key)
                    .await
            },
            versions,
        )
        .await
        .map_err(status)?;
        Ok(Response::new(info.into()))
    }

    async fn list_distributions(
        &self,
        request: Request<proto::ListDistributionsRequest>,
    ) -> Result<Response<proto::NamesResponse>, Status> {
        let (engine, provider) = (self.engine(), &request.get_ref().provider);
        let names = call(
            &self.gate,
            &actions::KEYMGMT_DISTRIBUTION_LIST,
            provider,
            &request,
        )
        .run(
            |session| async move { engine.list_distributions(&session, provider).await },
            |names| count(names),
        )
        .await
        .map_err(status)?;
        Ok(Response::new(proto::NamesResponse { names }))
    }

    async fn remove_distribution(
        &self,
        request: Request<proto::RemoveDistributionRequest>,
    ) -> Result<Response<proto::DistributionInfo>, Status> {
        let (engine, asked) = (self.engine(), request.get_ref());
        let info = call(
            &self.gate,
            &actions::KEYMGMT_DISTRIBUTION_REMOVE,
            &distribution(&asked.provider, &asked.key),
            &request,
        )
        .plain("deletion_window_days", asked.deletion_window_days)
        .run(
            |session| async move {
                engine
                    .remove_distribution(
                        &session,
                        &asked.provider,
                        &asked.key,
                        asked.deletion_window_days,
                    )
                    .await
            },
            versions,
        )
        .await
        .map_err(status)?;
        Ok(Response::new(info.into()))
    }
}
