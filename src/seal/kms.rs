//! What the `awskms` seal needs from a key management service, as a trait,
//! so the envelope and the auto-unseal logic are independent of the AWS SDK
//! (and unit-testable with an in-memory KMS).

use async_trait::async_trait;

use crate::error::Error;
use crate::secret::SecretBytes;

/// The encryption context sent with every Encrypt and Decrypt: it shows in
/// CloudTrail, and a key policy can require it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptionContext {
    /// What the wrapped data key protects: `root-key` or `recovery-key`.
    pub purpose: &'static str,
    /// The store's cluster id, so a blob cannot be replayed into another store.
    pub cluster_id: String,
    /// With several seals: the name of the seal the blob belongs to, so one
    /// seal's blob cannot pass for another's.
    pub seal: Option<String>,
}

impl EncryptionContext {
    /// The context as KMS takes it.
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        let mut pairs = vec![("purpose", self.purpose), ("cluster_id", &*self.cluster_id)];
        if let Some(seal) = &self.seal {
            pairs.push(("seal", seal));
        }
        pairs
    }
}

/// The state of a KMS key, as DescribeKey reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// Usable.
    Enabled,
    /// Disabled: Encrypt and Decrypt are refused until it is enabled again.
    Disabled,
    /// Scheduled for deletion: refused now, gone for good on the date.
    PendingDeletion,
    /// Any other state KMS reports (`PendingImport`, `Unavailable`, …).
    Other(String),
}

/// What DescribeKey says about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key's ARN.
    pub arn: String,
    /// Its state.
    pub state: KeyState,
}

/// A wrapped data key and the ARN of the key that wrapped it.
pub struct Wrapped {
    /// The ciphertext blob KMS returned.
    pub ciphertext: Vec<u8>,
    /// The ARN of the KMS key that encrypted it, as KMS returned it.
    pub key_arn: String,
}

/// A data key KMS decrypted, and the ARN of the key that did it.
pub struct Unwrapped {
    /// The plaintext data key.
    pub plaintext: SecretBytes,
    /// The ARN of the KMS key that decrypted it, as KMS returned it.
    pub key_arn: String,
}

/// How a KMS call failed, which decides how the caller retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KmsErrorKind {
    /// Unreachable, timed out, or a 5xx answer: retry soon.
    Unavailable,
    /// KMS is throttling: retry with backoff.
    Throttled,
    /// The key is disabled, pending deletion or missing: retry, an operator may fix it.
    KeyUnusable,
    /// Credentials or permissions refused: retry, an operator may fix it.
    Denied,
    /// KMS refused the ciphertext itself (wrong context, not a KMS blob): retrying will not help.
    Rejected,
    /// The client cannot be set up (no region, bad endpoint): retrying will not help.
    Config,
}

/// A failed KMS call. The message is one plain sentence naming the key and
/// KMS's reason; it never holds key material or credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct KmsError {
    /// The class of failure.
    pub kind: KmsErrorKind,
    /// What happened.
    pub message: String,
}

impl From<KmsError> for Error {
    fn from(err: KmsError) -> Self {
        match err.kind {
            KmsErrorKind::Unavailable | KmsErrorKind::Throttled => {
                Error::KmsUnavailable(err.message)
            }
            _ => Error::KmsRefused(err.message),
        }
    }
}

impl KmsError {
    /// An error of `kind` saying `message`.
    pub fn new(kind: KmsErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Whether retrying later can succeed without a change to the stored data.
    pub fn is_transient(&self) -> bool {
        !matches!(self.kind, KmsErrorKind::Rejected | KmsErrorKind::Config)
    }
}

/// The three KMS operations the seal uses.
#[async_trait]
pub trait Kms: Send + Sync {
    /// The configured key: a key id, key ARN or `alias/…`.
    fn key_id(&self) -> &str;

    /// The endpoint URL the calls go to; empty for AWS's regional endpoint.
    fn endpoint(&self) -> String;

    /// Encrypts `plaintext` under the configured key.
    async fn encrypt(
        &self,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Wrapped, KmsError>;

    /// Decrypts `ciphertext`. No key id is sent: the ciphertext names its key,
    /// so blobs made under an earlier key still open. `key_arn` (the key the
    /// caller expects) is only used in error messages.
    async fn decrypt(
        &self,
        ciphertext: &[u8],
        context: &EncryptionContext,
        key_arn: &str,
    ) -> Result<Unwrapped, KmsError>;

    /// [`Self::decrypt`] as the path to unsealed makes it: one attempt, no
    /// retries inside the client, bounded by the seal's `kms_timeout`, so a
    /// seal that does not answer hands over to the next one quickly.
    async fn decrypt_once(
        &self,
        ciphertext: &[u8],
        context: &EncryptionContext,
        key_arn: &str,
    ) -> Result<Unwrapped, KmsError> {
        self.decrypt(ciphertext, context, key_arn).await
    }

    /// Describes `key_id` (an id, ARN or alias).
    async fn describe_key(&self, key_id: &str) -> Result<KeyInfo, KmsError>;
}

/// An in-memory KMS for unit tests of the seal and the lifecycle: AES-GCM under
/// per-key secrets, the encryption context as AAD, like KMS refusing a
/// Decrypt whose context differs.
#[cfg(test)]
pub(crate) mod testing {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use aes_gcm::aead::{Aead, KeyInit, Payload};
    use aes_gcm::{Aes256Gcm, Nonce};

    use super::*;
    use crate::secret::{SecretKey, fill_random};

    #[derive(Default)]
    struct Inner {
        keys: HashMap<String, (SecretKey, KeyState)>,
        current: String,
        endpoint: String,
        calls: Vec<&'static str>,
        fail_next: Option<KmsError>,
    }

    pub(crate) struct FakeKms(Mutex<Inner>);

    impl FakeKms {
        pub(crate) fn new() -> Self {
            let kms = Self(Mutex::default());
            kms.switch_to_new_key();
            kms
        }

        /// Creates a key and points the configured key at it (an alias moved).
        pub(crate) fn switch_to_new_key(&self) {
            self.switch_to_key_in("111122223333");
        }

        /// Like [`Self::switch_to_new_key`], with the new key in `account`.
        pub(crate) fn switch_to_key_in(&self, account: &str) {
            let mut inner = self.0.lock().unwrap();
            let arn = format!(
                "arn:aws:kms:eu-west-1:{account}:key/{}",
                inner.keys.len() + 1
            );
            inner
                .keys
                .insert(arn.clone(), (SecretKey::generate(), KeyState::Enabled));
            inner.current = arn;
        }

        /// Points the configured key back at an existing key.
        pub(crate) fn switch_back_to(&self, arn: &str) {
            self.0.lock().unwrap().current = arn.to_string();
        }

        /// Points the client at another endpoint URL.
        pub(crate) fn set_endpoint(&self, endpoint: &str) {
            self.0.lock().unwrap().endpoint = endpoint.to_string();
        }

        pub(crate) fn current_arn(&self) -> String {
            self.0.lock().unwrap().current.clone()
        }

        pub(crate) fn set_state(&self, arn: &str, state: KeyState) {
            self.0.lock().unwrap().keys.get_mut(arn).unwrap().1 = state;
        }

        pub(crate) fn fail_next(&self, error: KmsError) {
            self.0.lock().unwrap().fail_next = Some(error);
        }

        pub(crate) fn calls(&self) -> Vec<&'static str> {
            self.0.lock().unwrap().calls.clone()
        }

        fn start(&self, call: &'static str) -> Result<std::sync::MutexGuard<'_, Inner>, KmsError> {
            let mut inner = self.0.lock().unwrap();
            inner.calls.push(call);
            match inner.fail_next.take() {
                Some(error) => Err(error),
                None => Ok(inner),
            }
        }
    }

    fn usable(arn: &str, state: &KeyState) -> Result<(), KmsError> {
        match state {
            KeyState::Enabled => Ok(()),
            _ => Err(KmsError::new(
                KmsErrorKind::KeyUnusable,
                format!("KMS key {arn} is disabled"),
            )),
        }
    }

    fn aad(context: &EncryptionContext) -> Vec<u8> {
        let pairs: Vec<String> = context
            .pairs()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        pairs.join("/").into_bytes()
    }

    #[async_trait]
    impl Kms for FakeKms {
        fn key_id(&self) -> &str {
            "alias/test"
        }

        fn endpoint(&self) -> String {
            self.0.lock().unwrap().endpoint.clone()
        }

        async fn encrypt(
            &self,
            plaintext: &[u8],
            context: &EncryptionContext,
        ) -> Result<Wrapped, KmsError> {
            let inner = self.start("Encrypt")?;
            let arn = inner.current.clone();
            let (key, state) = &inner.keys[&arn];
            usable(&arn, state)?;
            let mut nonce = [0u8; 12];
            fill_random(&mut nonce);
            let sealed = Aes256Gcm::new(key.expose().into())
                .encrypt(
                    &Nonce::from(nonce),
                    Payload {
                        msg: plaintext,
                        aad: &aad(context),
                    },
                )
                .unwrap();
            let mut ciphertext = vec![u8::try_from(arn.len()).unwrap()];
            ciphertext.extend_from_slice(arn.as_bytes());
            ciphertext.extend_from_slice(&nonce);
            ciphertext.extend_from_slice(&sealed);
            Ok(Wrapped {
                ciphertext,
                key_arn: arn,
            })
        }

        async fn decrypt(
            &self,
            ciphertext: &[u8],
            context: &EncryptionContext,
            _key_arn: &str,
        ) -> Result<Unwrapped, KmsError> {
            let inner = self.start("Decrypt")?;
            let invalid = || KmsError::new(KmsErrorKind::Rejected, "InvalidCiphertextException");
            let arn_len = *ciphertext.first().ok_or_else(invalid)? as usize;
            let arn = std::str::from_utf8(ciphertext.get(1..1 + arn_len).ok_or_else(invalid)?)
                .map_err(|_| invalid())?;
            let (key, state) = inner.keys.get(arn).ok_or_else(invalid)?;
            usable(arn, state)?;
            let nonce: [u8; 12] = ciphertext
                .get(1 + arn_len..13 + arn_len)
                .ok_or_else(invalid)?
                .try_into()
                .map_err(|_| invalid())?;
            let plaintext = Aes256Gcm::new(key.expose().into())
                .decrypt(
                    &Nonce::from(nonce),
                    Payload {
                        msg: &ciphertext[13 + arn_len..],
                        aad: &aad(context),
                    },
                )
                .map_err(|_| invalid())?;
            Ok(Unwrapped {
                plaintext: SecretBytes::new(plaintext),
                key_arn: arn.to_string(),
            })
        }

        async fn describe_key(&self, key_id: &str) -> Result<KeyInfo, KmsError> {
            let inner = self.start("DescribeKey")?;
            let arn = if key_id == self.key_id() {
                inner.current.clone()
            } else {
                key_id.to_string()
            };
            let (_, state) = inner.keys.get(&arn).ok_or_else(|| {
                KmsError::new(
                    KmsErrorKind::KeyUnusable,
                    format!("KMS key {arn} was not found"),
                )
            })?;
            Ok(KeyInfo {
                arn: arn.clone(),
                state: state.clone(),
            })
        }
    }
}
