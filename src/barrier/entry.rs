//! The encrypted entry format.
//!
//! ```text
//! term (u32 BE) ‖ version (u8) ‖ nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)
//! AAD = term ‖ version ‖ path
//! ```
//!
//! The header is authenticated, and so is the storage path, so an entry cannot
//! be moved to another path, re-labelled with another term, or have its header
//! altered without decryption failing. Term 0 is reserved for entries encrypted
//! directly under the root key (the keyring) or the unseal key (the root key).

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};

use crate::secret::{SecretBytes, SecretKey, fill_random};

/// The only entry version so far: AES-256-GCM with a random 96-bit nonce.
pub const VERSION_AES256_GCM: u8 = 1;
/// Term of entries encrypted by the root key or the unseal key rather than a keyring term.
pub const TERM_KEY_ENCRYPTION: u32 = 0;

const HEADER_LEN: usize = 4 + 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Bytes an entry adds to its plaintext.
pub const OVERHEAD: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;

/// Why an entry did not open. Deliberately carries no detail about the content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// Shorter than a header, nonce and tag.
    #[error("the entry is truncated ({0} bytes)")]
    Truncated(usize),
    /// Written by a newer strongroom, or damaged.
    #[error("the entry has unknown version {0}")]
    UnknownVersion(u8),
    /// Wrong key, wrong path, or altered bytes.
    #[error("the entry failed authentication (wrong key, wrong path or altered bytes)")]
    Authentication,
}

/// Reads the term from an entry's header without decrypting it.
pub fn term_of(entry: &[u8]) -> Result<u32, EntryError> {
    let header: [u8; 4] = entry
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or(EntryError::Truncated(entry.len()))?;
    Ok(u32::from_be_bytes(header))
}

/// Encrypts `plaintext` for storage at `path` under `key`, labelled with `term`.
pub fn seal(key: &SecretKey, term: u32, path: &str, plaintext: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
    out.extend_from_slice(&term.to_be_bytes());
    out.push(VERSION_AES256_GCM);
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce);
    out.extend_from_slice(&nonce);
    let body_start = out.len();
    out.extend_from_slice(plaintext);

    let aad = aad(&out[..HEADER_LEN], path);
    let cipher = cipher(key);
    let tag = cipher
        .encrypt_inout_detached(&Nonce::from(nonce), &aad, out[body_start..].as_mut().into())
        // AES-GCM refuses only plaintexts over 64 GiB; entries are bounded far below that.
        .unwrap_or_else(|_| unreachable!("AES-GCM plaintext limit exceeded"));
    out.extend_from_slice(&tag);
    out
}

/// Decrypts an entry read from `path`. The plaintext is returned in zeroizing memory.
pub fn open(key: &SecretKey, path: &str, entry: &[u8]) -> Result<SecretBytes, EntryError> {
    if entry.len() < OVERHEAD {
        return Err(EntryError::Truncated(entry.len()));
    }
    let version = entry[4];
    if version != VERSION_AES256_GCM {
        return Err(EntryError::UnknownVersion(version));
    }
    let (header, rest) = entry.split_at(HEADER_LEN);
    let (nonce, rest) = rest.split_at(NONCE_LEN);
    let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| EntryError::Authentication)?;
    let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| EntryError::Authentication)?;

    let mut plaintext = SecretBytes::new(body.to_vec());
    cipher(key)
        .decrypt_inout_detached(
            &Nonce::from(nonce),
            &aad(header, path),
            plaintext.expose_mut().as_mut_slice().into(),
            &Tag::from(tag),
        )
        .map_err(|_| EntryError::Authentication)?;
    Ok(plaintext)
}

fn cipher(key: &SecretKey) -> Aes256Gcm {
    Aes256Gcm::new(key.expose().into())
}

fn aad(header: &[u8], path: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + path.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(path.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let key = SecretKey::generate();
        let entry = seal(&key, 7, "kv/a", b"hello");
        assert_eq!(entry.len(), 5 + OVERHEAD);
        assert_eq!(term_of(&entry).unwrap(), 7);
        assert_eq!(open(&key, "kv/a", &entry).unwrap().expose(), b"hello");
    }

    #[test]
    fn empty_plaintext_round_trips() {
        let key = SecretKey::generate();
        let entry = seal(&key, 1, "p", b"");
        assert_eq!(open(&key, "p", &entry).unwrap().expose(), b"");
    }

    #[test]
    fn nonces_differ() {
        let key = SecretKey::generate();
        assert_ne!(seal(&key, 1, "p", b"x"), seal(&key, 1, "p", b"x"));
    }

    #[test]
    fn every_flipped_bit_is_refused() {
        let key = SecretKey::generate();
        let entry = seal(&key, 3, "kv/a", b"secret value");
        for i in 0..entry.len() {
            for bit in 0..8 {
                let mut bad = entry.clone();
                bad[i] ^= 1 << bit;
                assert!(open(&key, "kv/a", &bad).is_err(), "byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn swapped_path_is_refused() {
        let key = SecretKey::generate();
        let entry = seal(&key, 1, "kv/a", b"x");
        assert_eq!(
            open(&key, "kv/b", &entry).err(),
            Some(EntryError::Authentication)
        );
    }

    #[test]
    fn wrong_key_is_refused() {
        let entry = seal(&SecretKey::generate(), 1, "kv/a", b"x");
        assert_eq!(
            open(&SecretKey::generate(), "kv/a", &entry).err(),
            Some(EntryError::Authentication)
        );
    }

    #[test]
    fn relabelled_term_is_refused() {
        let key = SecretKey::generate();
        let mut entry = seal(&key, 1, "kv/a", b"x");
        entry[..4].copy_from_slice(&2u32.to_be_bytes());
        assert_eq!(
            open(&key, "kv/a", &entry).err(),
            Some(EntryError::Authentication)
        );
    }

    #[test]
    fn truncated_and_unknown_version_are_named() {
        let key = SecretKey::generate();
        assert_eq!(
            open(&key, "p", &[0u8; 10]).err(),
            Some(EntryError::Truncated(10))
        );
        let mut entry = seal(&key, 1, "p", b"x");
        entry[4] = 9;
        assert_eq!(
            open(&key, "p", &entry).err(),
            Some(EntryError::UnknownVersion(9))
        );
        assert_eq!(term_of(&[1, 2]).err(), Some(EntryError::Truncated(2)));
    }
}
