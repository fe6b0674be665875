//! The emergency Shamir seal ("break-glass") of several seals: a secret E,
//! split into shares held offline, opens a copy of the root key when no KMS
//! seal can.
//!
//! The copy is encrypted to an X25519 public key derived from E, so that a
//! new root key (rotate-root) is wrapped again without anyone typing shares:
//! the store keeps only the public key; E exists only while a quorum of
//! shares is combined (unseal) or just made (init, rekey).
//!
//! ```text
//! sk  = X25519(HMAC-SHA256(key = E, "strongroom emergency seal x25519 v1"))
//! k   = HMAC-SHA256(key = DH(esk, pk), "strongroom emergency root key v1" ‖ epk ‖ pk ‖ cluster_id)
//! blob = 1 ‖ epk (32) ‖ nonce (12) ‖ AES-256-GCM(k, nonce, root key, AAD = "strongroom-emergency-root-key" ‖ cluster_id) (48)
//! ```
//!
//! The recovery key is kept the same way (labels "strongroom emergency
//! recovery key v1" and "strongroom-emergency-recovery-key"), so that after
//! a break-glass unseal a new KMS seal can be given both keys and quorum
//! operations still check recovery shares.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use super::envelope::Purpose;
use crate::secret::{KEY_LEN, SecretKey, fill_random};

/// The blob's format byte.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Length of a stored blob: version, ephemeral key, nonce, key and tag.
pub const BLOB_LEN: usize = 1 + 32 + NONCE_LEN + KEY_LEN + TAG_LEN;

const SK_LABEL: &[u8] = b"strongroom emergency seal x25519 v1";

/// The key derivation's and the AAD's labels of each key kept: a copy of
/// one never opens as the other.
fn labels(purpose: Purpose) -> (&'static [u8], &'static [u8]) {
    match purpose {
        Purpose::RootKey => (
            b"strongroom emergency root key v1",
            b"strongroom-emergency-root-key",
        ),
        Purpose::RecoveryKey => (
            b"strongroom emergency recovery key v1",
            b"strongroom-emergency-recovery-key",
        ),
    }
}

/// Why the emergency copy of the root key did not open or could not be made.
/// Carries no key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmergencyError {
    /// Not a blob of this format.
    #[error(
        "the stored emergency copy of a key is damaged or from a newer strongroom ({0} bytes, format byte {1})"
    )]
    Malformed(usize, u8),
    /// Another secret, another store, or altered bytes.
    #[error(
        "the emergency shares do not open the stored emergency copy of a key (shares of another store or an older set, or altered data)"
    )]
    Authentication,
    /// The public key is a low-order point: the shared secret would be known.
    #[error("the emergency seal's public key is not usable (a low-order point)")]
    LowOrder,
    /// The stored public key is not 32 bytes of hex.
    #[error("the emergency seal's public key in the seal config is not 64 hex digits")]
    BadPublicKey,
}

/// The emergency secret E and the X25519 key derived from it. No `Debug`;
/// zeroed on drop.
pub struct EmergencySecret {
    secret: SecretKey,
    private: StaticSecret,
}

impl EmergencySecret {
    /// A fresh secret (init, rekey).
    pub fn generate() -> Self {
        Self::from_key(SecretKey::generate())
    }

    /// The secret recombined from a quorum of shares.
    pub fn from_key(secret: SecretKey) -> Self {
        let derived = Zeroizing::new(hmac(secret.expose(), &[SK_LABEL]));
        Self {
            private: StaticSecret::from(*derived),
            secret,
        }
    }

    /// E itself, for splitting into shares.
    pub fn key(&self) -> &SecretKey {
        &self.secret
    }

    /// The public key the root key is encrypted to.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::from(&self.private)
    }

    /// The public key as the seal config stores it (hex).
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.public_key().as_bytes())
    }

    /// Opens a blob made by [`wrap`] of the `purpose` key for `cluster_id`.
    pub fn open(
        &self,
        purpose: Purpose,
        cluster_id: &str,
        blob: &[u8],
    ) -> Result<SecretKey, EmergencyError> {
        if blob.len() != BLOB_LEN || blob[0] != VERSION {
            return Err(EmergencyError::Malformed(
                blob.len(),
                blob.first().copied().unwrap_or(0),
            ));
        }
        let epk: [u8; 32] = blob[1..33]
            .try_into()
            .map_err(|_| EmergencyError::Authentication)?;
        let nonce: [u8; NONCE_LEN] = blob[33..33 + NONCE_LEN]
            .try_into()
            .map_err(|_| EmergencyError::Authentication)?;
        let body = &blob[33 + NONCE_LEN..];
        let (ciphertext, tag) = body.split_at(KEY_LEN);
        let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| EmergencyError::Authentication)?;
        let epk = PublicKey::from(epk);
        let shared = self.private.diffie_hellman(&epk);
        if !shared.was_contributory() {
            return Err(EmergencyError::Authentication);
        }
        let key = derive_key(
            purpose,
            shared.as_bytes(),
            &epk,
            &self.public_key(),
            cluster_id,
        );
        let mut plain = Zeroizing::new([0u8; KEY_LEN]);
        plain.copy_from_slice(ciphertext);
        Aes256Gcm::new((&*key).into())
            .decrypt_inout_detached(
                &Nonce::from(nonce),
                &aad(purpose, cluster_id),
                plain.as_mut_slice().into(),
                &Tag::from(tag),
            )
            .map_err(|_| EmergencyError::Authentication)?;
        SecretKey::from_slice(plain.as_slice()).ok_or(EmergencyError::Authentication)
    }
}

/// Parses the public key stored in the seal config (hex).
pub fn parse_public_key(hex_key: &str) -> Result<PublicKey, EmergencyError> {
    let bytes: [u8; 32] = hex::decode(hex_key.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(EmergencyError::BadPublicKey)?;
    Ok(PublicKey::from(bytes))
}

/// Encrypts `key`, the store's `purpose` key, to `public_key` for the store
/// `cluster_id`: a fresh ephemeral key, so every wrap of the same key
/// differs.
pub fn wrap(
    public_key: &PublicKey,
    purpose: Purpose,
    cluster_id: &str,
    key: &SecretKey,
) -> Result<Vec<u8>, EmergencyError> {
    let mut ephemeral = Zeroizing::new([0u8; 32]);
    fill_random(ephemeral.as_mut());
    let esk = StaticSecret::from(*ephemeral);
    let epk = PublicKey::from(&esk);
    let shared = esk.diffie_hellman(public_key);
    if !shared.was_contributory() {
        return Err(EmergencyError::LowOrder);
    }
    let derived = derive_key(purpose, shared.as_bytes(), &epk, public_key, cluster_id);
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce);
    let mut blob = Vec::with_capacity(BLOB_LEN);
    blob.push(VERSION);
    blob.extend_from_slice(epk.as_bytes());
    blob.extend_from_slice(&nonce);
    let body = blob.len();
    blob.extend_from_slice(key.expose());
    let tag = Aes256Gcm::new((&*derived).into())
        .encrypt_inout_detached(
            &Nonce::from(nonce),
            &aad(purpose, cluster_id),
            blob[body..].as_mut().into(),
        )
        // AES-GCM refuses only plaintexts over 64 GiB; this one is 32 bytes.
        .unwrap_or_else(|_| unreachable!("AES-GCM plaintext limit exceeded"));
    blob.extend_from_slice(&tag);
    Ok(blob)
}

fn derive_key(
    purpose: Purpose,
    shared: &[u8; 32],
    epk: &PublicKey,
    pk: &PublicKey,
    cluster_id: &str,
) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(hmac(
        shared,
        &[
            labels(purpose).0,
            epk.as_bytes(),
            pk.as_bytes(),
            cluster_id.as_bytes(),
        ],
    ))
}

fn aad(purpose: Purpose, cluster_id: &str) -> Vec<u8> {
    [labels(purpose).1, cluster_id.as_bytes()].concat()
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests;
