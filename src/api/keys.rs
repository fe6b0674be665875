//! `strongroom.v1.Keys`: named encryption keys.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::Gate;
use crate::audit::Field;
use crate::core::keys::{Encrypted, KeyConfig, KeyInfo};
use crate::core::{Core, CoreError};
use crate::proto::{self, keys_server::Keys};
use crate::secret::SecretBytes;

/// The most items one batch call takes.
const MAX_BATCH: usize = 10_000;

/// The Keys service.
pub struct KeysService {
    core: Arc<Core>,
    gate: Gate,
}

impl KeysService {
    /// Serves `core` through `gate`.
    pub fn new(core: Arc<Core>, gate: Gate) -> Self {
        Self { core, gate }
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

fn batch_size(len: usize) -> Result<(), CoreError> {
    if len > MAX_BATCH {
        return Err(CoreError::InvalidArgument(format!(
            "a batch has at most {MAX_BATCH} items, this one has {len}"
        )));
    }
    Ok(())
}

fn key_path(name: &str) -> String {
    format!("keys/{name}")
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
        let name = &request.get_ref().name;
        let call = self
            .gate
            .audit(&request, "keys.Create", key_path(name))
            .start();
        let result = self.core.create_key(call.caller(), name).await;
        let info = call.finish(&self.core, result, version_of).await?;
        Ok(Response::new(info.into()))
    }

    async fn read_key(
        &self,
        request: Request<proto::ReadKeyRequest>,
    ) -> Result<Response<proto::KeyInfo>, Status> {
        let name = &request.get_ref().name;
        let call = self
            .gate
            .audit(&request, "keys.Read", key_path(name))
            .start();
        let result = self.core.read_key(call.caller(), name).await;
        let info = call.finish(&self.core, result, version_of).await?;
        Ok(Response::new(info.into()))
    }

    async fn list_keys(
        &self,
        request: Request<proto::ListKeysRequest>,
    ) -> Result<Response<proto::ListKeysResponse>, Status> {
        let call = self
            .gate
            .audit(&request, "keys.List", "keys/".into())
            .start();
        let result = self.core.list_keys(call.caller()).await;
        let names = call
            .finish(&self.core, result, |names| {
                vec![("keys", Field::Plain(names.len().into()))]
            })
            .await?;
        Ok(Response::new(proto::ListKeysResponse { names }))
    }

    async fn rotate(
        &self,
        request: Request<proto::RotateKeyRequest>,
    ) -> Result<Response<proto::KeyInfo>, Status> {
        let name = &request.get_ref().name;
        let call = self
            .gate
            .audit(&request, "keys.Rotate", key_path(name))
            .start();
        let result = self.core.rotate_key(call.caller(), name).await;
        let info = call.finish(&self.core, result, version_of).await?;
        Ok(Response::new(info.into()))
    }

    async fn update_key_config(
        &self,
        request: Request<proto::UpdateKeyConfigRequest>,
    ) -> Result<Response<proto::KeyInfo>, Status> {
        let asked = request.get_ref();
        let call = self
            .gate
            .audit(&request, "keys.UpdateConfig", key_path(&asked.name))
            .plain("min_decryption_version", asked.min_decryption_version)
            .plain("deletion_allowed", asked.deletion_allowed)
            .start();
        let config = KeyConfig {
            min_decryption_version: asked.min_decryption_version,
            deletion_allowed: asked.deletion_allowed,
        };
        let result = self
            .core
            .update_key_config(call.caller(), &asked.name, config)
            .await;
        let info = call.finish(&self.core, result, version_of).await?;
        Ok(Response::new(info.into()))
    }

    async fn delete_key(
        &self,
        request: Request<proto::DeleteKeyRequest>,
    ) -> Result<Response<proto::DeleteKeyResponse>, Status> {
        let name = &request.get_ref().name;
        let call = self
            .gate
            .audit(&request, "keys.Delete", key_path(name))
            .start();
        let result = self.core.delete_key(call.caller(), name).await;
        call.finish(&self.core, result, |()| Vec::new()).await?;
        Ok(Response::new(proto::DeleteKeyResponse {}))
    }

    async fn encrypt(
        &self,
        request: Request<proto::EncryptRequest>,
    ) -> Result<Response<proto::EncryptResponse>, Status> {
        let asked = request.get_ref();
        let call = self
            .gate
            .audit(&request, "keys.Encrypt", key_path(&asked.name))
            .secret("plaintext", &asked.plaintext)
            .secret("context", &asked.context)
            .start();
        let request = request.into_inner();
        let plaintext = SecretBytes::new(request.plaintext);
        let result = self
            .core
            .key_encrypt(
                call.caller(),
                &request.name,
                plaintext.expose(),
                &request.context,
            )
            .await;
        let encrypted = call.finish(&self.core, result, encrypted_with).await?;
        Ok(Response::new(encrypted.into()))
    }

    async fn decrypt(
        &self,
        request: Request<proto::DecryptRequest>,
    ) -> Result<Response<proto::DecryptResponse>, Status> {
        let asked = request.get_ref();
        let call = self
            .gate
            .audit(&request, "keys.Decrypt", key_path(&asked.name))
            .secret("context", &asked.context)
            .start();
        let result = self
            .core
            .key_decrypt(
                call.caller(),
                &asked.name,
                &asked.ciphertext,
                &asked.context,
            )
            .await;
        let plaintext = call
            .finish(&self.core, result, |plaintext| {
                vec![("plaintext", secret(plaintext))]
            })
            .await?;
        Ok(Response::new(proto::DecryptResponse {
            plaintext: plaintext.expose().to_vec(),
        }))
    }

    async fn rewrap(
        &self,
        request: Request<proto::RewrapRequest>,
    ) -> Result<Response<proto::EncryptResponse>, Status> {
        let asked = request.get_ref();
        let call = self
            .gate
            .audit(&request, "keys.Rewrap", key_path(&asked.name))
            .secret("context", &asked.context)
            .start();
        let result = self
            .core
            .key_rewrap(
                call.caller(),
                &asked.name,
                &asked.ciphertext,
                &asked.context,
            )
            .await;
        let encrypted = call.finish(&self.core, result, encrypted_with).await?;
        Ok(Response::new(encrypted.into()))
    }

    async fn generate_data_key(
        &self,
        request: Request<proto::GenerateDataKeyRequest>,
    ) -> Result<Response<proto::GenerateDataKeyResponse>, Status> {
        let asked = request.get_ref();
        let call = self
            .gate
            .audit(&request, "keys.GenerateDataKey", key_path(&asked.name))
            .plain("bits", asked.bits)
            .secret("context", &asked.context)
            .start();
        let result = self
            .core
            .key_data_key(call.caller(), &asked.name, asked.bits, &asked.context)
            .await;
        let (plaintext, wrapped) = call
            .finish(&self.core, result, |(plaintext, wrapped)| {
                let mut fields = encrypted_with(wrapped);
                fields.push(("plaintext", secret(plaintext)));
                fields
            })
            .await?;
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
        let call = self
            .gate
            .audit(
                &request,
                "keys.BatchEncrypt",
                key_path(&request.get_ref().name),
            )
            .plain("items", request.get_ref().items.len())
            .start();
        let request = request.into_inner();
        let result = match batch_size(request.items.len()) {
            Ok(()) => {
                let items: Vec<(SecretBytes, Vec<u8>)> = request
                    .items
                    .into_iter()
                    .map(|item| (SecretBytes::new(item.plaintext), item.context))
                    .collect();
                self.core
                    .key_batch_encrypt(call.caller(), &request.name, &items)
                    .await
            }
            Err(e) => Err(e),
        };
        let results = call.finish(&self.core, result, |r| failures(r)).await?;
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
        let call = self
            .gate
            .audit(
                &request,
                "keys.BatchDecrypt",
                key_path(&request.get_ref().name),
            )
            .plain("items", request.get_ref().items.len())
            .start();
        let request = request.into_inner();
        let result = match batch_size(request.items.len()) {
            Ok(()) => {
                let items: Vec<(String, Vec<u8>)> = request
                    .items
                    .into_iter()
                    .map(|item| (item.ciphertext, item.context))
                    .collect();
                self.core
                    .key_batch_decrypt(call.caller(), &request.name, &items)
                    .await
            }
            Err(e) => Err(e),
        };
        let results = call.finish(&self.core, result, |r| failures(r)).await?;
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
