//! A KMS with a crash point before and after every call (feature
//! `failpoints`; see `crate::failpoint`).

use std::sync::Arc;

use async_trait::async_trait;

use super::kms::{EncryptionContext, KeyInfo, Kms, KmsError, Unwrapped, Wrapped};
use crate::failpoint::{self, Boundary};

/// Wraps `inner` so every KMS call is a crash point of the operation in scope.
pub fn wrap(inner: Arc<dyn Kms>) -> Arc<dyn Kms> {
    Arc::new(FailKms(inner))
}

struct FailKms(Arc<dyn Kms>);

#[async_trait]
impl Kms for FailKms {
    fn key_id(&self) -> &str {
        self.0.key_id()
    }
    fn endpoint(&self) -> String {
        self.0.endpoint()
    }
    async fn encrypt(
        &self,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Wrapped, KmsError> {
        let n = failpoint::before(Boundary::Kms);
        let result = self.0.encrypt(plaintext, context).await;
        failpoint::after(Boundary::Kms, n);
        result
    }
    async fn decrypt(
        &self,
        ciphertext: &[u8],
        context: &EncryptionContext,
        key_arn: &str,
    ) -> Result<Unwrapped, KmsError> {
        let n = failpoint::before(Boundary::Kms);
        let result = self.0.decrypt(ciphertext, context, key_arn).await;
        failpoint::after(Boundary::Kms, n);
        result
    }
    async fn decrypt_once(
        &self,
        ciphertext: &[u8],
        context: &EncryptionContext,
        key_arn: &str,
    ) -> Result<Unwrapped, KmsError> {
        let n = failpoint::before(Boundary::Kms);
        let result = self.0.decrypt_once(ciphertext, context, key_arn).await;
        failpoint::after(Boundary::Kms, n);
        result
    }
    async fn describe_key(&self, key_id: &str) -> Result<KeyInfo, KmsError> {
        let n = failpoint::before(Boundary::Kms);
        let result = self.0.describe_key(key_id).await;
        failpoint::after(Boundary::Kms, n);
        result
    }
}
