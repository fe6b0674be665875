//! `strongroom.v1.Keys`: named encryption keys.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{Identities, status};
use crate::core::Core;
use crate::core::keys::{Encrypted, KeyConfig, KeyInfo};
use crate::proto::{self, keys_server::Keys};
use crate::secret::SecretBytes;

/// The most items one batch call takes.
const MAX_BATCH: usize = 10_000;

/// The Keys service.
pub struct KeysService {
    core: Arc<Core>,
    identities: Identities,
}

impl KeysService {
    /// Serves `core` on a listener with `identities`.
    pub fn new(core: Arc<Core>, identities: Identities) -> Self {
        Self { core, identities }
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

fn batch_size(len: usize) -> Result<(), Status> {
    if len > MAX_BATCH {
        return Err(Status::invalid_argument(format!(
            "a batch has at most {MAX_BATCH} items, this one has {len}"
        )));
    }
    Ok(())
}

#[tonic::async_trait]
impl Keys for KeysService {
    async fn create_key(
        &self,
        request: Request<proto::CreateKeyRequest>,
    ) -> Result<Response<proto::KeyInfo>, Status> {
        let caller = self.identities.caller(&request);
        let info = self
            .core
            .create_key(&caller, &request.get_ref().name)
            .await
            .map_err(status)?;
        Ok(Response::new(info.into()))
    }

    async fn read_key(
        &self,
        request: Request<proto::ReadKeyRequest>,
    ) -> Result<Response<proto::KeyInfo>, Status> {
        let caller = self.identities.caller(&request);
        let info = self
            .core
            .read_key(&caller, &request.get_ref().name)
            .await
            .map_err(status)?;
        Ok(Response::new(info.into()))
    }

    async fn list_keys(
        &self,
        request: Request<proto::ListKeysRequest>,
    ) -> Result<Response<proto::ListKeysResponse>, Status> {
        let names = self
            .core
            .list_keys(&self.identities.caller(&request))
            .await
            .map_err(status)?;
        Ok(Response::new(proto::ListKeysResponse { names }))
    }

    async fn rotate(
        &self,
        request: Request<proto::RotateKeyRequest>,
    ) -> Result<Response<proto::KeyInfo>, Status> {
        let caller = self.identities.caller(&request);
        let info = self
            .core
            .rotate_key(&caller, &request.get_ref().name)
            .await
            .map_err(status)?;
        Ok(Response::new(info.into()))
    }

    async fn update_key_config(
        &self,
        request: Request<proto::UpdateKeyConfigRequest>,
    ) -> Result<Response<proto::KeyInfo>, Status> {
        let caller = self.identities.caller(&request);
        let request = request.get_ref();
        let config = KeyConfig {
            min_decryption_version: request.min_decryption_version,
            deletion_allowed: request.deletion_allowed,
        };
        let info = self
            .core
            .update_key_config(&caller, &request.name, config)
            .await
            .map_err(status)?;
        Ok(Response::new(info.into()))
    }

    async fn delete_key(
        &self,
        request: Request<proto::DeleteKeyRequest>,
    ) -> Result<Response<proto::DeleteKeyResponse>, Status> {
        let caller = self.identities.caller(&request);
        self.core
            .delete_key(&caller, &request.get_ref().name)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::DeleteKeyResponse {}))
    }

    async fn encrypt(
        &self,
        request: Request<proto::EncryptRequest>,
    ) -> Result<Response<proto::EncryptResponse>, Status> {
        let caller = self.identities.caller(&request);
        let request = request.into_inner();
        let plaintext = SecretBytes::new(request.plaintext);
        let encrypted = self
            .core
            .key_encrypt(&caller, &request.name, plaintext.expose(), &request.context)
            .await
            .map_err(status)?;
        Ok(Response::new(encrypted.into()))
    }

    async fn decrypt(
        &self,
        request: Request<proto::DecryptRequest>,
    ) -> Result<Response<proto::DecryptResponse>, Status> {
        let caller = self.identities.caller(&request);
        let request = request.get_ref();
        let plaintext = self
            .core
            .key_decrypt(
                &caller,
                &request.name,
                &request.ciphertext,
                &request.context,
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
        let caller = self.identities.caller(&request);
        let request = request.get_ref();
        let encrypted = self
            .core
            .key_rewrap(
                &caller,
                &request.name,
                &request.ciphertext,
                &request.context,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(encrypted.into()))
    }

    async fn generate_data_key(
        &self,
        request: Request<proto::GenerateDataKeyRequest>,
    ) -> Result<Response<proto::GenerateDataKeyResponse>, Status> {
        let caller = self.identities.caller(&request);
        let request = request.get_ref();
        let (plaintext, wrapped) = self
            .core
            .key_data_key(&caller, &request.name, request.bits, &request.context)
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
        let caller = self.identities.caller(&request);
        let request = request.into_inner();
        batch_size(request.items.len())?;
        let items: Vec<(SecretBytes, Vec<u8>)> = request
            .items
            .into_iter()
            .map(|item| (SecretBytes::new(item.plaintext), item.context))
            .collect();
        let results = self
            .core
            .key_batch_encrypt(&caller, &request.name, &items)
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
        let caller = self.identities.caller(&request);
        let request = request.into_inner();
        batch_size(request.items.len())?;
        let items: Vec<(String, Vec<u8>)> = request
            .items
            .into_iter()
            .map(|item| (item.ciphertext, item.context))
            .collect();
        let results = self
            .core
            .key_batch_decrypt(&caller, &request.name, &items)
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
