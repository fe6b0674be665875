//! The ciphertext format: `<prefix>:v<N>:<base64(nonce ‖ ciphertext ‖ tag)>`,
//! AES-256-GCM with the key's name, the version and the context as
//! authenticated data. The prefix is `sr` on gRPC and `vault` on Vault's
//! HTTP API; it is a label only (not authenticated), so both are read
//! everywhere and a ciphertext made on one surface decrypts on the other.

use std::borrow::Cow;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::derive::derive;
use super::stored::NamedKey;
use crate::error::Error;
use crate::secret::{SecretBytes, fill_random};

const PREFIXES: [&str; 2] = ["sr:v", "vault:v"];
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The surface a call comes from: what its ciphertexts start with, and
/// what a context means for a key that is not derived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surface {
    /// gRPC: `sr:v<N>:`; a context is authenticated data for any key.
    Grpc,
    /// Vault's HTTP API: `vault:v<N>:`; a key that is not derived ignores
    /// the context, as Vault's transit does.
    Vault,
}

impl Surface {
    fn prefix(self) -> &'static str {
        match self {
            Surface::Grpc => PREFIXES[0],
            Surface::Vault => PREFIXES[1],
        }
    }
}

/// The result of Encrypt and of each GenerateDataKey.
pub struct Encrypted {
    /// `sr:v<N>:<base64>` or `vault:v<N>:<base64>`.
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

/// The cipher of `version` for `context`, and the context to authenticate:
/// a derived key's own for the context (which must be given); otherwise
/// the version's key, with the context authenticated on gRPC and ignored
/// on Vault's API.
fn cipher<'k, 'c>(
    key: &'k NamedKey,
    name: &str,
    version: u32,
    context: &'c [u8],
    surface: Surface,
) -> Result<(Cow<'k, Aes256Gcm>, &'c [u8]), Error> {
    let index = version as usize - 1;
    if key.stored.derived {
        if context.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "key {name:?} was created with derived = true, so every request must give the context its key is derived from"
            )));
        }
        let derived = derive(key.material(index), context);
        let derived: &[u8; 32] = &derived;
        return Ok((Cow::Owned(Aes256Gcm::new(derived.into())), context));
    }
    let context = match surface {
        Surface::Grpc => context,
        Surface::Vault => &[],
    };
    Ok((Cow::Borrowed(&key.ciphers[index]), context))
}

pub(super) fn encrypt_with(
    key: &NamedKey,
    name: &str,
    plaintext: &[u8],
    context: &[u8],
    surface: Surface,
) -> Result<Encrypted, Error> {
    let version = key.latest();
    let (cipher, context) = cipher(key, name, version, context, surface)?;
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce);
    let mut body = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
    body.extend_from_slice(&nonce);
    body.extend_from_slice(plaintext);
    let tag = cipher
        .encrypt_inout_detached(
            &Nonce::from(nonce),
            &aad(name, version, context),
            body[NONCE_LEN..].as_mut().into(),
        )
        // AES-GCM refuses only plaintexts over 64 GiB; requests are far smaller.
        .unwrap_or_else(|_| unreachable!("AES-GCM plaintext limit exceeded"));
    body.extend_from_slice(&tag);
    Ok(Encrypted {
        ciphertext: format!("{}{version}:{}", surface.prefix(), STANDARD.encode(&body)),
        version,
    })
}

/// The version a ciphertext names and its decoded body.
fn parse(ciphertext: &str) -> Result<(u32, Vec<u8>), Error> {
    let malformed = || {
        Error::InvalidArgument(
            "the ciphertext is not a strongroom ciphertext: expected sr:v<N>:<base64> (or vault:v<N>:<base64>)".into(),
        )
    };
    let (version, encoded) = PREFIXES
        .iter()
        .find_map(|prefix| ciphertext.strip_prefix(prefix))
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
    Ok((version, body))
}

pub(super) fn decrypt_with(
    key: &NamedKey,
    name: &str,
    ciphertext: &str,
    context: &[u8],
    surface: Surface,
) -> Result<SecretBytes, Error> {
    let (version, body) = parse(ciphertext)?;
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
    let (cipher, context) = cipher(key, name, version, context, surface)?;
    let (nonce, rest) = body.split_at(NONCE_LEN);
    let (sealed, tag) = rest.split_at(rest.len() - TAG_LEN);
    // The lengths were checked in `parse`; a mismatch is a malformed input.
    let short = || Error::InvalidArgument("the ciphertext is too short".into());
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| short())?;
    let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| short())?;
    let mut plaintext = SecretBytes::new(sealed.to_vec());
    cipher
        .decrypt_inout_detached(
            &Nonce::from(nonce),
            &aad(name, version, context),
            plaintext.expose_mut().as_mut_slice().into(),
            &Tag::from(tag),
        )
        .map_err(|_| {
            Error::InvalidArgument(format!(
                "the ciphertext does not decrypt under key {name:?}: it was altered, made by another key, or the context differs from the one it was encrypted with"
            ))
        })?;
    Ok(plaintext)
}
