//! Envelope encryption of a 32-byte key under a KMS key.
//!
//! A fresh data key per blob encrypts the protected key with AES-256-GCM;
//! KMS wraps the data key (one Encrypt) with the encryption context
//! `{purpose, cluster_id}`. Opening is one KMS Decrypt plus local work.
//!
//! ```text
//! blob = version (u8 = 1)
//!      ‖ arn length (u16 BE) ‖ KMS key ARN (UTF-8, as Encrypt returned it)
//!      ‖ wrapped length (u16 BE) ‖ wrapped data key (KMS ciphertext blob)
//!      ‖ nonce (12 bytes) ‖ ciphertext (32 bytes) ‖ tag (16 bytes)
//! AAD  = "strongroom-envelope" ‖ version ‖ purpose ‖ 0x00 ‖ ARN
//! ```
//!
//! The AAD binds the purpose and the ARN: a root-key blob cannot pass for a
//! recovery-key blob, and an ARN edited in storage fails authentication.
//!
//! Format 2 belongs to one of several seals (`enable_multiseal`): the seal's
//! name follows the version byte (`name length (u8) ‖ name`), is sent in the
//! encryption context as `seal`, and is bound by the AAD
//! (`… ‖ purpose ‖ 0x00 ‖ seal name ‖ 0x00 ‖ ARN`), so one seal's blob
//! cannot pass for another's.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};

use super::kms::{EncryptionContext, Kms, KmsError, KmsErrorKind};
use crate::error::Error;
use crate::secret::{KEY_LEN, SecretKey, fill_random};

/// The format of an envelope of the one configured seal.
pub const VERSION: u8 = 1;
/// The format of an envelope of one of several seals: it names its seal.
pub const VERSION_NAMED: u8 = 2;
/// The longest seal name an envelope holds.
pub const MAX_SEAL_NAME_LEN: usize = 64;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const AAD_LABEL: &[u8] = b"strongroom-envelope";
/// AWS's limits: an ARN is at most 2048 bytes, a ciphertext blob at most 6144.
const MAX_ARN_LEN: usize = 2048;
const MAX_WRAPPED_LEN: usize = 6144;

/// What an envelope protects; part of both the KMS encryption context and the AAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The root key that opens the keyring.
    RootKey,
    /// The recovery key that recovery shares combine into.
    RecoveryKey,
}

impl Purpose {
    /// The name used in the encryption context and the AAD.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RootKey => "root-key",
            Self::RecoveryKey => "recovery-key",
        }
    }
}

/// Why an envelope could not be made or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The KMS call failed.
    #[error(transparent)]
    Kms(#[from] KmsError),
    /// The stored bytes are not an envelope this build reads.
    #[error("the stored {what} blob is not readable: {reason}")]
    Malformed {
        /// What the blob protects.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// KMS decrypted the data key with a different key than the blob names.
    #[error(
        "KMS decrypted the stored {what} with key {answered}, but the blob was made under {stored}; the blob is refused"
    )]
    KeyMismatch {
        /// What the blob protects.
        what: &'static str,
        /// The ARN in the blob.
        stored: String,
        /// The ARN in Decrypt's answer.
        answered: String,
    },
    /// KMS decrypted the data key, but the blob did not authenticate.
    #[error(
        "KMS decrypted the data key of the stored {what}, but the blob failed authentication: it was altered or belongs to another store"
    )]
    Authentication {
        /// What the blob protects.
        what: &'static str,
    },
}

impl From<EnvelopeError> for Error {
    fn from(err: EnvelopeError) -> Self {
        match err {
            EnvelopeError::Kms(e) => e.into(),
            other => Error::Internal(other.to_string()),
        }
    }
}

impl EnvelopeError {
    /// Whether retrying later can succeed without a change to the stored data.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Kms(e) if e.is_transient())
    }
}

/// A stored envelope. Holds nothing secret: the data key is wrapped by KMS
/// and the protected key is encrypted under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The seal it belongs to, with several seals; `None` for the one seal.
    pub seal: Option<String>,
    /// The ARN of the KMS key that wraps the data key, as KMS returned it.
    pub key_arn: String,
    wrapped_key: Vec<u8>,
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
}

impl Envelope {
    /// Makes a fresh data key, encrypts `secret` under it and wraps the data
    /// key with one KMS Encrypt under the configured key.
    pub async fn seal(
        kms: &dyn Kms,
        purpose: Purpose,
        cluster_id: &str,
        secret: &SecretKey,
    ) -> Result<Self, EnvelopeError> {
        Self::seal_as(kms, purpose, cluster_id, None, secret).await
    }

    /// [`Self::seal`] for one of several seals: the envelope names `seal`.
    pub async fn seal_named(
        kms: &dyn Kms,
        purpose: Purpose,
        cluster_id: &str,
        seal: &str,
        secret: &SecretKey,
    ) -> Result<Self, EnvelopeError> {
        Self::seal_as(kms, purpose, cluster_id, Some(seal), secret).await
    }

    async fn seal_as(
        kms: &dyn Kms,
        purpose: Purpose,
        cluster_id: &str,
        seal: Option<&str>,
        secret: &SecretKey,
    ) -> Result<Self, EnvelopeError> {
        if seal.is_some_and(|name| name.is_empty() || name.len() > MAX_SEAL_NAME_LEN) {
            return Err(EnvelopeError::Malformed {
                what: purpose.as_str(),
                reason: format!("a seal name must be 1 to {MAX_SEAL_NAME_LEN} bytes"),
            });
        }
        let data_key = SecretKey::generate();
        let context = context(purpose, cluster_id, seal);
        let wrapped = kms.encrypt(data_key.expose(), &context).await?;
        if wrapped.key_arn.is_empty()
            || wrapped.key_arn.len() > MAX_ARN_LEN
            || wrapped.ciphertext.is_empty()
            || wrapped.ciphertext.len() > MAX_WRAPPED_LEN
        {
            return Err(KmsError::new(
                KmsErrorKind::Rejected,
                "KMS answered Encrypt with an empty or oversized key ARN or ciphertext",
            )
            .into());
        }
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce);
        let mut ciphertext = secret.expose().to_vec();
        let aad = aad(purpose, seal, &wrapped.key_arn);
        let tag = cipher(&data_key)
            .encrypt_inout_detached(&Nonce::from(nonce), &aad, ciphertext.as_mut_slice().into())
            // AES-GCM refuses only plaintexts over 64 GiB; this one is 32 bytes.
            .unwrap_or_else(|_| unreachable!("AES-GCM plaintext limit exceeded"));
        ciphertext.extend_from_slice(&tag);
        Ok(Self {
            seal: seal.map(str::to_string),
            key_arn: wrapped.key_arn,
            wrapped_key: wrapped.ciphertext,
            nonce,
            ciphertext,
        })
    }

    /// Unwraps the data key with one KMS Decrypt and decrypts the protected
    /// key. Refused when Decrypt's answer names another key than the blob.
    pub async fn open(
        &self,
        kms: &dyn Kms,
        purpose: Purpose,
        cluster_id: &str,
    ) -> Result<SecretKey, EnvelopeError> {
        self.open_with(kms, purpose, cluster_id, false).await
    }

    /// [`Self::open`] with one Decrypt attempt bounded by the seal's
    /// `kms_timeout` ([`Kms::decrypt_once`]): the path to unsealed.
    pub async fn open_once(
        &self,
        kms: &dyn Kms,
        purpose: Purpose,
        cluster_id: &str,
    ) -> Result<SecretKey, EnvelopeError> {
        self.open_with(kms, purpose, cluster_id, true).await
    }

    async fn open_with(
        &self,
        kms: &dyn Kms,
        purpose: Purpose,
        cluster_id: &str,
        once: bool,
    ) -> Result<SecretKey, EnvelopeError> {
        let what = purpose.as_str();
        let seal = self.seal.as_deref();
        let context = context(purpose, cluster_id, seal);
        let unwrapped = if once {
            kms.decrypt_once(&self.wrapped_key, &context, &self.key_arn)
                .await?
        } else {
            kms.decrypt(&self.wrapped_key, &context, &self.key_arn)
                .await?
        };
        if unwrapped.key_arn != self.key_arn {
            return Err(EnvelopeError::KeyMismatch {
                what,
                stored: self.key_arn.clone(),
                answered: unwrapped.key_arn,
            });
        }
        let data_key = SecretKey::from_slice(unwrapped.plaintext.expose())
            .ok_or(EnvelopeError::Authentication { what })?;
        let (body, tag) = self
            .ciphertext
            .split_at(self.ciphertext.len().saturating_sub(TAG_LEN));
        let mut plaintext = crate::secret::SecretBytes::new(body.to_vec());
        let tag = Tag::try_from(tag).map_err(|_| EnvelopeError::Authentication { what })?;
        cipher(&data_key)
            .decrypt_inout_detached(
                &Nonce::from(self.nonce),
                &aad(purpose, seal, &self.key_arn),
                plaintext.expose_mut().as_mut_slice().into(),
                &tag,
            )
            .map_err(|_| EnvelopeError::Authentication { what })?;
        SecretKey::from_slice(plaintext.expose()).ok_or(EnvelopeError::Authentication { what })
    }

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        let name = self.seal.as_deref().unwrap_or_default();
        let mut out = Vec::with_capacity(
            2 + name.len()
                + 2
                + self.key_arn.len()
                + 2
                + self.wrapped_key.len()
                + NONCE_LEN
                + KEY_LEN
                + TAG_LEN,
        );
        if self.seal.is_some() {
            out.push(VERSION_NAMED);
            // Bounded by MAX_SEAL_NAME_LEN when made and by u8 when decoded.
            out.push(name.len() as u8);
            out.extend_from_slice(name.as_bytes());
        } else {
            out.push(VERSION);
        }
        // Both lengths are bounded by MAX_ARN_LEN and MAX_WRAPPED_LEN when the
        // envelope is made, and by u16 when it is decoded.
        out.extend_from_slice(&(self.key_arn.len() as u16).to_be_bytes());
        out.extend_from_slice(self.key_arn.as_bytes());
        out.extend_from_slice(&(self.wrapped_key.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.wrapped_key);
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.ciphertext);
        out
    }

    /// Parses a stored envelope of `purpose`.
    pub fn decode(purpose: Purpose, bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let malformed = |reason: &str| EnvelopeError::Malformed {
            what: purpose.as_str(),
            reason: reason.to_string(),
        };
        let mut reader = Reader(bytes);
        let version = reader.take(1).ok_or_else(|| malformed("it is empty"))?[0];
        let seal = match version {
            VERSION => None,
            VERSION_NAMED => {
                let len = reader.take(1).ok_or_else(|| malformed("it is truncated"))?[0];
                let name = reader
                    .take(usize::from(len))
                    .ok_or_else(|| malformed("it is truncated"))?;
                let name = std::str::from_utf8(name)
                    .ok()
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| malformed("its seal name is empty or not UTF-8"))?;
                Some(name.to_string())
            }
            _ => {
                return Err(malformed(&format!(
                    "it has format {version}, and this build reads formats {VERSION} and {VERSION_NAMED}"
                )));
            }
        };
        let arn = reader
            .prefixed()
            .ok_or_else(|| malformed("it is truncated"))?;
        let key_arn = std::str::from_utf8(arn)
            .map_err(|_| malformed("its KMS key ARN is not UTF-8"))?
            .to_string();
        let wrapped_key = reader
            .prefixed()
            .ok_or_else(|| malformed("it is truncated"))?
            .to_vec();
        let nonce = reader
            .take(NONCE_LEN)
            .and_then(|n| n.try_into().ok())
            .ok_or_else(|| malformed("it is truncated"))?;
        let ciphertext = reader.0.to_vec();
        if ciphertext.len() != KEY_LEN + TAG_LEN {
            return Err(malformed("its ciphertext has the wrong length"));
        }
        if key_arn.is_empty() || wrapped_key.is_empty() {
            return Err(malformed("its KMS key ARN or wrapped data key is empty"));
        }
        if key_arn.len() > MAX_ARN_LEN || wrapped_key.len() > MAX_WRAPPED_LEN {
            return Err(malformed(
                "its KMS key ARN or wrapped data key is longer than AWS allows",
            ));
        }
        Ok(Self {
            seal,
            key_arn,
            wrapped_key,
            nonce,
            ciphertext,
        })
    }
}

fn context(purpose: Purpose, cluster_id: &str, seal: Option<&str>) -> EncryptionContext {
    EncryptionContext {
        purpose: purpose.as_str(),
        cluster_id: cluster_id.to_string(),
        seal: seal.map(str::to_string),
    }
}

fn aad(purpose: Purpose, seal: Option<&str>, key_arn: &str) -> Vec<u8> {
    let name = seal.unwrap_or_default();
    let mut aad = Vec::with_capacity(AAD_LABEL.len() + 3 + 16 + name.len() + key_arn.len());
    aad.extend_from_slice(AAD_LABEL);
    aad.push(if seal.is_some() {
        VERSION_NAMED
    } else {
        VERSION
    });
    aad.extend_from_slice(purpose.as_str().as_bytes());
    aad.push(0);
    if let Some(name) = seal {
        aad.extend_from_slice(name.as_bytes());
        aad.push(0);
    }
    aad.extend_from_slice(key_arn.as_bytes());
    aad
}

fn cipher(key: &SecretKey) -> Aes256Gcm {
    Aes256Gcm::new(key.expose().into())
}

/// Reads a byte string front to back.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    /// A u16 BE length, then that many bytes.
    fn prefixed(&mut self) -> Option<&'a [u8]> {
        let len = self.take(2)?;
        let len = u16::from_be_bytes([len[0], len[1]]) as usize;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::kms::testing::FakeKms;

    const CLUSTER: &str = "5f0c2a4e-0000-4000-8000-000000000001";

    #[tokio::test]
    async fn seal_and_open_round_trip() {
        let kms = FakeKms::new();
        let secret = SecretKey::generate();
        let envelope = Envelope::seal(&kms, Purpose::RootKey, CLUSTER, &secret)
            .await
            .unwrap();
        assert_eq!(envelope.key_arn, kms.current_arn());
        let stored = envelope.encode();
        assert!(
            !stored.windows(KEY_LEN).any(|w| w == secret.expose()),
            "plaintext key in the blob"
        );
        let decoded = Envelope::decode(Purpose::RootKey, &stored).unwrap();
        assert_eq!(decoded, envelope);
        let opened = decoded.open(&kms, Purpose::RootKey, CLUSTER).await.unwrap();
        assert_eq!(opened.expose(), secret.expose());
        assert_eq!(kms.calls(), ["Encrypt", "Decrypt"]);
    }

    #[tokio::test]
    async fn wrong_purpose_or_cluster_is_refused() {
        let kms = FakeKms::new();
        let envelope = Envelope::seal(&kms, Purpose::RootKey, CLUSTER, &SecretKey::generate())
            .await
            .unwrap();
        // The fake, like KMS, refuses a Decrypt whose context differs.
        let err = envelope
            .open(&kms, Purpose::RecoveryKey, CLUSTER)
            .await
            .err()
            .unwrap();
        assert!(matches!(err, EnvelopeError::Kms(ref e) if e.kind == KmsErrorKind::Rejected));
        assert!(!err.is_transient());
        let err = envelope
            .open(&kms, Purpose::RootKey, "another-cluster")
            .await
            .err()
            .unwrap();
        assert!(matches!(err, EnvelopeError::Kms(_)));
    }

    #[tokio::test]
    async fn edited_arn_or_ciphertext_fails_authentication() {
        let kms = FakeKms::new();
        let envelope = Envelope::seal(&kms, Purpose::RootKey, CLUSTER, &SecretKey::generate())
            .await
            .unwrap();
        let mut tampered = envelope.clone();
        tampered.ciphertext[0] ^= 1;
        assert_eq!(
            tampered.open(&kms, Purpose::RootKey, CLUSTER).await.err(),
            Some(EnvelopeError::Authentication { what: "root-key" })
        );
        // Decrypt's answer names the real key, not the edited one.
        let mut relabelled = envelope.clone();
        relabelled.key_arn = "arn:aws:kms:eu-west-1:111122223333:key/other".into();
        let err = relabelled
            .open(&kms, Purpose::RootKey, CLUSTER)
            .await
            .err()
            .unwrap();
        assert!(matches!(err, EnvelopeError::KeyMismatch { .. }), "{err}");
        assert!(!err.is_transient());
    }

    #[tokio::test]
    async fn a_blob_from_a_previous_key_still_opens() {
        let kms = FakeKms::new();
        let secret = SecretKey::generate();
        let old = Envelope::seal(&kms, Purpose::RecoveryKey, CLUSTER, &secret)
            .await
            .unwrap();
        kms.switch_to_new_key();
        assert_ne!(old.key_arn, kms.current_arn());
        let opened = old.open(&kms, Purpose::RecoveryKey, CLUSTER).await.unwrap();
        assert_eq!(opened.expose(), secret.expose());
    }

    #[tokio::test]
    async fn kms_errors_pass_through_with_their_kind() {
        let kms = FakeKms::new();
        let envelope = Envelope::seal(&kms, Purpose::RootKey, CLUSTER, &SecretKey::generate())
            .await
            .unwrap();
        kms.fail_next(KmsError::new(
            KmsErrorKind::KeyUnusable,
            "KMS key k is disabled",
        ));
        let err = envelope
            .open(&kms, Purpose::RootKey, CLUSTER)
            .await
            .err()
            .unwrap();
        assert_eq!(err.to_string(), "KMS key k is disabled");
        assert!(err.is_transient());
    }

    #[test]
    fn malformed_blobs_are_refused_without_panicking() {
        let good = Envelope {
            seal: None,
            key_arn: "arn:aws:kms:eu-west-1:111122223333:key/k".into(),
            wrapped_key: vec![7; 40],
            nonce: [1; NONCE_LEN],
            ciphertext: vec![2; KEY_LEN + TAG_LEN],
        }
        .encode();
        assert!(Envelope::decode(Purpose::RootKey, &good).is_ok());
        for len in 0..good.len() {
            assert!(
                Envelope::decode(Purpose::RootKey, &good[..len]).is_err(),
                "{len}"
            );
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(Envelope::decode(Purpose::RootKey, &longer).is_err());
        let oversized = Envelope {
            seal: None,
            key_arn: "arn:aws:kms:eu-west-1:111122223333:key/k".into(),
            wrapped_key: vec![7; MAX_WRAPPED_LEN + 1],
            nonce: [1; NONCE_LEN],
            ciphertext: vec![2; KEY_LEN + TAG_LEN],
        }
        .encode();
        assert!(
            Envelope::decode(Purpose::RootKey, &oversized)
                .unwrap_err()
                .to_string()
                .contains("longer than AWS allows")
        );
        let mut future = good;
        future[0] = 3;
        assert_eq!(
            Envelope::decode(Purpose::RootKey, &future)
                .unwrap_err()
                .to_string(),
            "the stored root-key blob is not readable: it has format 3, and this build reads formats 1 and 2"
        );
    }

    #[tokio::test]
    async fn a_named_envelope_opens_only_as_its_own_seal() {
        let kms = FakeKms::new();
        let secret = SecretKey::generate();
        let envelope = Envelope::seal_named(&kms, Purpose::RootKey, CLUSTER, "tokyo", &secret)
            .await
            .unwrap();
        let decoded = Envelope::decode(Purpose::RootKey, &envelope.encode()).unwrap();
        assert_eq!(decoded.seal.as_deref(), Some("tokyo"));
        let opened = decoded
            .open_once(&kms, Purpose::RootKey, CLUSTER)
            .await
            .unwrap();
        assert_eq!(opened.expose(), secret.expose());
        // Relabelled as another seal: KMS refuses the context.
        let mut relabelled = decoded.clone();
        relabelled.seal = Some("osaka".into());
        let relabelled = Envelope::decode(Purpose::RootKey, &relabelled.encode()).unwrap();
        assert!(
            relabelled
                .open(&kms, Purpose::RootKey, CLUSTER)
                .await
                .is_err()
        );
        // Stripped of its name: refused too.
        let mut unnamed = decoded;
        unnamed.seal = None;
        assert!(unnamed.open(&kms, Purpose::RootKey, CLUSTER).await.is_err());
    }
}
