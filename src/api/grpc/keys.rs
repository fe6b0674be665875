//! `strongroom.v1.Keys`: named encryption keys.

use std::future::Future;

use tonic::{Request, Response, Status};

use super::{call, status};
use crate::access::Session;
use crate::api::Gate;
use crate::api::actions::{self, Action};
use crate::audit::Field;
use crate::engines::keys::{
    EncryptOptions, Encrypted, IfExists, KeyConfig, KeyInfo, KeyOptions, Keys as Engine, Surface,
};
use crate::error::Error;
use crate::proto::{self, keys_server::Keys};
use crate::secret::SecretBytes;

/// gRPC encrypts with the latest version, emits `sr:v<N>:` and never
/// creates a key on the way.
const GRPC: EncryptOptions = EncryptOptions {
    surface: Surface::Grpc,
    create: None,
    key_version: 0,
};

/// The Keys service.
pub struct KeysService {
    gate: Gate,
}

impl KeysService {
    /// Serves through `gate`.
    pub fn new(gate: Gate) -> Self {
        Self { gate }
    }

    fn engine(&self) -> &Engine {
        &self.gate.node().keys
    }

    /// A call on key `name` whose answer is the key's info.
    async fn key_info<T, F, Fut>(
        &self,
        action: &'static Action,
        request: &Request<T>,
        name: &str,
        handler: F,
    ) -> Result<Response<proto::KeyInfo>, Status>
    where
        F: FnOnce(Session) -> Fut,
        Fut: Future<Output = Result<KeyInfo, Error>>,
    {
        let info = call(&self.gate, action, name, request)
            .run(handler, version_of)
            .await
            .map_err(status)?;
        Ok(Response::new(info.into()))
    }
}

impl From<KeyInfo> for proto::KeyInfo {
    fn from(info: KeyInfo) -> Self {
        Self {
            name: info.name,
            created_unix: info.created_unix,
            latest_version: info.latest_version,
            min_decryption_version: info.min_decryption_version,
            deletion_allowed: info.deletion_allowed,
            version_created_unix: info.versions,
        }
    }
}

impl From<Encrypted> for proto::EncryptResponse {
    fn from(e: Encrypted) -> Self {
        Self {
            ciphertext: e.ciphertext,
            key_version: e.version,
        }
    }
}

fn version_of(info: &KeyInfo) -> Vec<(&'static str, Field)> {
    vec![("latest_version", Field::Plain(info.latest_version.into()))]
}

fn encrypted_with(e: &Encrypted) -> Vec<(&'static str, Field)> {
    vec![("key_version", Field::Plain(e.version.into()))]
}

fn secret(bytes: &SecretBytes) -> Field {
    Field::Secret(zeroize::Zeroizing::new(bytes.expose().to_vec()))
}

/// How many items failed, for the response line.
fn failures<T>(results: &[Result<T, String>]) -> Vec<(&'static str, Field)> {
    let failed = results.iter().filter(|r| r.is_err()).count();
    vec![("failed_items", Field::Plain(failed.into()))]
}

#[tonic::async_trait]
impl Keys for KeysService {
    async fn create_key(
        &self,
        request: Request<proto::CreateKeyRequest>,
    ) -> Result<Response<proto::KeyInfo>, Status> {
        let (keys, name) = (self.engine(), &request.get_ref().name);
        self.key_info(
            &actions::KEYS_CREATE,
            &request,
            name,
            |session| async move {
                keys.create(&session, name, KeyOptions::default(), IfExists::Refuse)
                    .await
            },
        )
        .await
    }

    async fn read_key(
        &self,
        request: Request<proto::ReadKeyRequest>,
    ) -> Result<Response<proto::KeyInfo>, Status> {
        let (keys, name) = (self.engine(), &request.get_ref().name);
        self.key_info(&actions::KEYS_READ, &request, name, |session| async move {
            keys.read(&session, name).await
        })
        .await
    }

    async fn list_keys(
        &self,
        request: Request<proto::ListKeysRequest>,
    ) -> Result<Response<proto::ListKeysResponse>, Status> {
        let keys = self.engine();
        let names = call(&self.gate, &actions::KEYS_LIST, "", &request)
            .run(
                |session| async move { keys.list(&session).await },
                |names| vec![("keys", Field::Plain(names.len().into()))],
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::ListKeysResponse { names }))
    }

    async fn rotate(
        &self,
        request: Request<proto::RotateKeyRequest>,
    ) -> Result<Response<proto::KeyInfo>, Status> {
        let (keys, name) = (self.engine(), &request.get_ref().name);
        self.key_info(
            &actions::KEYS_ROTATE,
            &request,
            name,
            |session| async move { keys.rotate(&session, name).await },
        )
        .await
    }

    async fn update_key_config(
        &self,
        request: Request<proto::UpdateKeyConfigRequest>,
    ) -> Result<Response<proto::KeyInfo>, Status> {
        let (keys, asked) = (self.engine(), request.get_ref());
        let config = KeyConfig {
            min_decryption_version: asked.min_decryption_version,
            deletion_allowed: asked.deletion_allowed,
        };
        let info = call(
            &self.gate,
            &actions::KEYS_UPDATE_CONFIG,
            &asked.name,
            &request,
        )
        .plain("min_decryption_version", asked.min_decryption_version)
        .plain("deletion_allowed", asked.deletion_allowed)
        .run(
            |session| async move { keys.update_config(&session, &asked.name, config).await },
            version_of,
        )
        .await
        .map_err(status)?;
        Ok(Response::new(info.into()))
    }

    async fn delete_key(
        &self,
        request: Request<proto::DeleteKeyRequest>,
    ) -> Result<Response<proto::DeleteKeyResponse>, Status> {
        let (keys, name) = (self.engine(), &request.get_ref().name);
        call(&self.gate, &actions::KEYS_DELETE, name, &request)
            .run(
                |session| async move { keys.delete(&session, name).await },
                |()| Vec::new(),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::DeleteKeyResponse {}))
    }

    async fn encrypt(
        &self,
        request: Request<proto::EncryptRequest>,
    ) -> Result<Response<proto::EncryptResponse>, Status> {
        let keys = self.engine();
        let asked = request.get_ref();
        let call = call(&self.gate, &actions::KEYS_ENCRYPT, &asked.name, &request)
            .secret("plaintext", &asked.plaintext)
            .secret("context", &asked.context);
        let asked = request.into_inner();
        let plaintext = SecretBytes::new(asked.plaintext);
        let (name, context) = (&asked.name, &asked.context);
        let encrypted = call
            .run(
                |session| async move {
                    keys.encrypt(&session, name, plaintext.expose(), context, &GRPC)
                        .await
                },
                encrypted_with,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(encrypted.into()))
    }

    async fn decrypt(
        &self,
        request: Request<proto::DecryptRequest>,
    ) -> Result<Response<proto::DecryptResponse>, Status> {
        let (keys, asked) = (self.engine(), request.get_ref());
        let plaintext = call(&self.gate, &actions::KEYS_DECRYPT, &asked.name, &request)
            .secret("context", &asked.context)
            .run(
                |session| async move {
                    keys.decrypt(
                        &session,
                        &asked.name,
                        &asked.ciphertext,
                        &asked.context,
                        Surface::Grpc,
                    )
                    .await
                },
                |plaintext| vec![("plaintext", secret(plaintext))],
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::DecryptResponse {
            plaintext: plaintext.expose().to_vec(),
        }))
    }

    async fn rewrap(
        &self,
        request: Request<proto::RewrapRequest>,
    ) -> Result<Response<proto::EncryptResponse>, Status> {
        let (keys, asked) = (self.engine(), request.get_ref());
        let encrypted = call(&self.gate, &actions::KEYS_REWRAP, &asked.name, &request)
            .secret("context", &asked.context)
            .run(
                |session| async move {
                    keys.rewrap(
                        &session,
                        &asked.name,
                        &asked.ciphertext,
                        &asked.context,
                        Surface::Grpc,
                    )
                    .await
                },
                encrypted_with,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(encrypted.into()))
    }

    async fn generate_data_key(
        &self,
        request: Request<proto::GenerateDataKeyRequest>,
    ) -> Result<Response<proto::GenerateDataKeyResponse>, Status> {
        let (keys, asked) = (self.engine(), request.get_ref());
        let (plaintext, wrapped) = call(&self.gate, &actions::KEYS_DATA_KEY, &asked.name, &request)
            .plain("bits", asked.bits)
            .secret("context", &asked.context)
            .check(Engine::data_key_bits(asked.bits).map(|_| ()))
            .run(
                |session| async move {
                    keys.data_key(
                        &session,
                        &asked.name,
                        asked.bits,
                        &asked.context,
                        Surface::Grpc,
                    )
                    .await
                },
                |(plaintext, wrapped)| {
                    let mut fields = encrypted_with(wrapped);
                    fields.push(("plaintext", secret(plaintext)));
                    fields
                },
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::GenerateDataKeyResponse {
            plaintext: plaintext.expose().to_vec(),
            ciphertext: wrapped.ciphertext,
            key_version: wrapped.version,
        }))
    }

    async fn batch_encrypt(
        &self,
        request: Request<proto::BatchEncryptRequest>,
    ) -> Result<Response<proto::BatchEncryptResponse>, Status> {
        let keys = self.engine();
        let asked = request.get_ref();
        let call = call(
            &self.gate,
            &actions::KEYS_BATCH_ENCRYPT,
            &asked.name,
            &request,
        )
        .plain("items", asked.items.len())
        .check(Engine::check_batch(asked.items.len()));
        let asked = request.into_inner();
        let items: Vec<(SecretBytes, Vec<u8>)> = asked
            .items
            .into_iter()
            .map(|item| (SecretBytes::new(item.plaintext), item.context))
            .collect();
        let name = &asked.name;
        let results = call
            .run(
                |session| async move { keys.batch_encrypt(&session, name, &items, &GRPC).await },
                |r| failures(r),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::BatchEncryptResponse {
            results: results
                .into_iter()
                .map(|result| match result {
                    Ok(encrypted) => proto::EncryptResult {
                        ciphertext: encrypted.ciphertext,
                        key_version: encrypted.version,
                        error: String::new(),
                    },
                    Err(error) => proto::EncryptResult {
                        error,
                        ..Default::default()
                    },
                })
                .collect(),
        }))
    }

    async fn batch_decrypt(
        &self,
        request: Request<proto::BatchDecryptRequest>,
    ) -> Result<Response<proto::BatchDecryptResponse>, Status> {
        let keys = self.engine();
        let asked = request.get_ref();
        let call = call(
            &self.gate,
            &actions::KEYS_BATCH_DECRYPT,
            &asked.name,
            &request,
        )
        .plain("items", asked.items.len())
        .check(Engine::check_batch(asked.items.len()));
        let asked = request.into_inner();
        let items: Vec<(String, Vec<u8>)> = asked
            .items
            .into_iter()
            .map(|item| (item.ciphertext, item.context))
            .collect();
        let name = &asked.name;
        let results = call
            .run(
                |session| async move {
                    keys.batch_decrypt(&session, name, &items, Surface::Grpc)
                        .await
                },
                |r| failures(r),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::BatchDecryptResponse {
            results: results
                .into_iter()
                .map(|result| match result {
                    Ok(plaintext) => proto::DecryptResult {
                        plaintext: plaintext.expose().to_vec(),
                        error: String::new(),
                    },
                    Err(error) => proto::DecryptResult {
                        plaintext: Vec::new(),
                        error,
                    },
                })
                .collect(),
        }))
    }
}
