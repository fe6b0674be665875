//! Encrypt, decrypt, rewrap and data keys, one at a time or in batches.

use crate::access::Session;
use crate::error::Error;
use crate::secret::{SecretBytes, fill_random};

use super::ciphertext::{Encrypted, Surface, decrypt_with, encrypt_with};
use super::stored::NamedKey;
use super::{ItemResult, KeyOptions, Keys, MAX_BATCH};

/// How an encryption is asked for.
#[derive(Clone, Copy, Debug)]
pub struct EncryptOptions {
    /// The surface the call comes from.
    pub surface: Surface,
    /// Make the key with these options when it does not exist, if the
    /// caller has `create` on its path (Vault's upsert); `None`: a missing
    /// key is NOT_FOUND.
    pub create: Option<KeyOptions>,
    /// The version to encrypt with (Vault's `key_version`): 0 or the
    /// latest; strongroom encrypts with the latest version only.
    pub key_version: u32,
}

/// Refuses a `key_version` other than 0 and the latest.
fn check_version(key: &NamedKey, name: &str, asked: u32) -> Result<(), Error> {
    let latest = key.latest();
    if asked == 0 || asked == latest {
        return Ok(());
    }
    if asked > latest {
        return Err(Error::InvalidArgument(format!(
            "key_version {asked} is higher than the latest version {latest} of key {name:?}"
        )));
    }
    Err(Error::InvalidArgument(format!(
        "strongroom encrypts only with the latest version of a key ({latest} for {name:?}), not version {asked}; leave key_version out"
    )))
}

impl Keys {
    /// Encrypts with the newest version.
    pub async fn encrypt(
        &self,
        session: &Session,
        name: &str,
        plaintext: &[u8],
        context: &[u8],
        options: &EncryptOptions,
    ) -> Result<Encrypted, Error> {
        let (barrier, key) = self.key_or_create(session, name, options.create).await?;
        check_version(&key, name, options.key_version)?;
        let key = self.count_encryptions(barrier, name, key, 1).await?;
        encrypt_with(&key, name, plaintext, context, options.surface)
    }

    /// Decrypts a ciphertext of this key.
    pub async fn decrypt(
        &self,
        session: &Session,
        name: &str,
        ciphertext: &str,
        context: &[u8],
        surface: Surface,
    ) -> Result<SecretBytes, Error> {
        let (_, key) = self.key_for(session, name).await?;
        decrypt_with(&key, name, ciphertext, context, surface)
    }

    /// Re-encrypts a ciphertext under the newest version without returning
    /// the plaintext.
    pub async fn rewrap(
        &self,
        session: &Session,
        name: &str,
        ciphertext: &str,
        context: &[u8],
        surface: Surface,
    ) -> Result<Encrypted, Error> {
        let (barrier, key) = self.key_for(session, name).await?;
        let plaintext = decrypt_with(&key, name, ciphertext, context, surface)?;
        let key = self.count_encryptions(barrier, name, key, 1).await?;
        encrypt_with(&key, name, plaintext.expose(), context, surface)
    }

    /// Checks a data key's size: 128, 256 or 512 bits (0: 256). Returns the bits.
    pub fn data_key_bits(bits: u32) -> Result<u32, Error> {
        let bits = if bits == 0 { 256 } else { bits };
        if ![128, 256, 512].contains(&bits) {
            return Err(Error::InvalidArgument(format!(
                "a data key has 128, 256 or 512 bits, not {bits}"
            )));
        }
        Ok(bits)
    }

    /// A fresh data key of `bits` (128, 256 or 512), returned in plaintext
    /// and encrypted under the newest version.
    pub async fn data_key(
        &self,
        session: &Session,
        name: &str,
        bits: u32,
        context: &[u8],
        surface: Surface,
    ) -> Result<(SecretBytes, Encrypted), Error> {
        let bits = Self::data_key_bits(bits)?;
        let (barrier, key) = self.key_for(session, name).await?;
        let key = self.count_encryptions(barrier, name, key, 1).await?;
        let mut data_key = SecretBytes::new(vec![0u8; bits as usize / 8]);
        fill_random(data_key.expose_mut());
        let wrapped = encrypt_with(&key, name, data_key.expose(), context, surface)?;
        Ok((data_key, wrapped))
    }

    /// Checks the size of a batch: at most [`MAX_BATCH`] items.
    pub fn check_batch(len: usize) -> Result<(), Error> {
        if len > MAX_BATCH {
            return Err(Error::InvalidArgument(format!(
                "a batch has at most {MAX_BATCH} items, this one has {len}"
            )));
        }
        Ok(())
    }

    /// Encrypts each item; one failure does not stop the others.
    pub async fn batch_encrypt(
        &self,
        session: &Session,
        name: &str,
        items: &[(SecretBytes, Vec<u8>)],
        options: &EncryptOptions,
    ) -> Result<Vec<ItemResult<Encrypted>>, Error> {
        Self::check_batch(items.len())?;
        let (barrier, key) = self.key_or_create(session, name, options.create).await?;
        check_version(&key, name, options.key_version)?;
        let n = u64::try_from(items.len()).unwrap_or(u64::MAX);
        let key = self.count_encryptions(barrier, name, key, n).await?;
        Ok(items
            .iter()
            .map(|(plaintext, context)| {
                encrypt_with(&key, name, plaintext.expose(), context, options.surface)
                    .map_err(|e| e.to_string())
            })
            .collect())
    }

    /// Decrypts each item; each failure is that item's error.
    pub async fn batch_decrypt(
        &self,
        session: &Session,
        name: &str,
        items: &[(String, Vec<u8>)],
        surface: Surface,
    ) -> Result<Vec<ItemResult<SecretBytes>>, Error> {
        Self::check_batch(items.len())?;
        let (_, key) = self.key_for(session, name).await?;
        Ok(items
            .iter()
            .map(|(ciphertext, context)| {
                decrypt_with(&key, name, ciphertext, context, surface).map_err(|e| e.to_string())
            })
            .collect())
    }

    /// Rewraps each item; each failure is that item's error.
    pub async fn batch_rewrap(
        &self,
        session: &Session,
        name: &str,
        items: &[(String, Vec<u8>)],
        surface: Surface,
    ) -> Result<Vec<ItemResult<Encrypted>>, Error> {
        Self::check_batch(items.len())?;
        let (barrier, key) = self.key_for(session, name).await?;
        let n = u64::try_from(items.len()).unwrap_or(u64::MAX);
        let key = self.count_encryptions(barrier, name, key, n).await?;
        Ok(items
            .iter()
            .map(|(ciphertext, context)| {
                let plaintext = decrypt_with(&key, name, ciphertext, context, surface)
                    .map_err(|e| e.to_string())?;
                encrypt_with(&key, name, plaintext.expose(), context, surface)
                    .map_err(|e| e.to_string())
            })
            .collect())
    }
}
