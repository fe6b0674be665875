//! The ciphertext format: `sr:v<N>:<base64(nonce ‖ ciphertext ‖ tag)>`,
//! AES-256-GCM with the key's name, the version and the caller's context
//! as authenticated data.

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Nonce, Tag};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::stored::NamedKey;
use crate::error::Error;
use crate::secret::{SecretBytes, fill_random};

const CIPHERTEXT_PREFIX: &str = "sr:v";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The result of Encrypt and of each GenerateDataKey.
pub struct Encrypted {
    /// `sr:v<N>:<base64>`.
    pub ciphertext: String,
    /// The version that encrypted it.
    pub version: u32,
}

fn aad(name: &str, version: u32, context: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(name.len() + 5 + context.len());
    aad.extend_from_slice(name.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&version.to_be_bytes());
    aad.extend_from_slice(context);
    aad
}

pub(super) fn encrypt_with(
    key: &NamedKey,
    name: &str,
    plaintext: &[u8],
    context: &[u8],
) -> Encrypted {
    let version = key.latest();
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce);
    let mut body = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
    body.extend_from_slice(&nonce);
    body.extend_from_slice(plaintext);
    let tag = key.ciphers[key.ciphers.len() - 1]
        .encrypt_inout_detached(
            &Nonce::from(nonce),
            &aad(name, version, context),
            body[NONCE_LEN..].as_mut().into(),
        )
        // AES-GCM refuses only plaintexts over 64 GiB; requests are far smaller.
        .unwrap_or_else(|_| unreachable!("AES-GCM plaintext limit exceeded"));
    body.extend_from_slice(&tag);
    Encrypted {
        ciphertext: format!("{CIPHERTEXT_PREFIX}{version}:{}", STANDARD.encode(&body)),
        version,
    }
}

pub(super) fn decrypt_with(
    key: &NamedKey,
    name: &str,
    ciphertext: &str,
    context: &[u8],
) -> Result<SecretBytes, Error> {
    let malformed = || {
        Error::InvalidArgument(
            "the ciphertext is not a strongroom ciphertext: expected sr:v<N>:<base64>".into(),
        )
    };
    let (version, encoded) = ciphertext
        .strip_prefix(CIPHERTEXT_PREFIX)
        .and_then(|rest| rest.split_once(':'))
        .ok_or_else(malformed)?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    let version: u32 = version.parse().map_err(|_| malformed())?;
    let body = STANDARD.decode(encoded).map_err(|_| malformed())?;
    if body.len() < NONCE_LEN + TAG_LEN {
        return Err(malformed());
    }
    if version == 0 || version > key.latest() {
        return Err(Error::InvalidArgument(format!(
            "the ciphertext names version {version} of key {name:?}, which has versions 1 to {}",
            key.latest()
        )));
    }
    if version < key.stored.min_decryption_version {
        return Err(Error::FailedPrecondition(format!(
            "version {version} of key {name:?} is below its min_decryption_version {}, so it no longer decrypts; lower the minimum, or rewrap ciphertexts before raising it",
            key.stored.min_decryption_version
        )));
    }
    let (nonce, rest) = body.split_at(NONCE_LEN);
    let (sealed, tag) = rest.split_at(rest.len() - TAG_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| malformed())?;
    let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| malformed())?;
    let mut plaintext = SecretBytes::new(sealed.to_vec());
    key.ciphers[version as usize - 1]
        .decrypt_inout_detached(
            &Nonce::from(nonce),
            &aad(name, version, context),
            plaintext.expose_mut().as_mut_slice().into(),
            &Tag::from(tag),
        )
        .map_err(|_| {
            Error::InvalidArgument(format!(
                "the ciphertext does not decrypt under key {name:?}: it was altered, or the context differs from the one it was encrypted with"
            ))
        })?;
    Ok(plaintext)
}
