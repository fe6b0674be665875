//! Containers for key material.
//!
//! Every secret that strongroom holds (root key, keyring terms, unseal key,
//! shares, tokens) lives in one of these types from the moment it is decoded
//! until it is dropped, when its memory is overwritten with zeros. None of them
//! implements `Debug` or `Display`, so a secret cannot reach a log line, an
//! error message or a panic message through formatting.

use rand::TryRng;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

/// Length of every symmetric key strongroom uses (AES-256).
pub const KEY_LEN: usize = 32;

/// A 256-bit key, zeroed on drop.
pub struct SecretKey(Zeroizing<[u8; KEY_LEN]>);

impl SecretKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        fill_random(key.as_mut());
        Self(key)
    }

    /// Copies a key out of `bytes`; `None` unless it is exactly [`KEY_LEN`] bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let array: &[u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(Self(Zeroizing::new(*array)))
    }

    /// The key bytes, for the cipher that uses them.
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl Clone for SecretKey {
    fn clone(&self) -> Self {
        Self(Zeroizing::new(*self.0))
    }
}

/// A byte string holding secret material (a share, a decrypted entry), zeroed on drop.
#[derive(Default)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Takes ownership of `bytes`; they are zeroed when this value is dropped.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The secret bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Mutable access, for in-place decryption.
    pub fn expose_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }

    /// Length in bytes (not secret).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Compares with `other` in constant time (for equal lengths).
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        ct_eq(&self.0, other)
    }
}

impl Clone for SecretBytes {
    fn clone(&self) -> Self {
        Self::new(self.0.to_vec())
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self::new(bytes)
    }
}

/// A secret string (a token), zeroed on drop.
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Takes ownership of `s`; it is zeroed when this value is dropped.
    pub fn new(s: String) -> Self {
        Self(Zeroizing::new(s))
    }

    /// The secret text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Clone for SecretString {
    fn clone(&self) -> Self {
        Self::new(self.0.to_string())
    }
}

/// Constant-time equality: the time taken depends only on the lengths.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Fills `buf` from the operating system's random source (getrandom).
///
/// Key material comes straight from the kernel rather than from a user-space
/// generator whose state would itself be a secret kept in memory.
pub fn fill_random(buf: &mut [u8]) {
    if let Err(err) = rand::rngs::SysRng.try_fill_bytes(buf) {
        // getrandom(2) fails only when the kernel has no entropy source at all;
        // carrying on would produce predictable keys.
        buf.zeroize();
        panic!("the operating system's random number generator failed: {err}");
    }
}

/// `n` random bytes from the operating system.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    fill_random(&mut bytes);
    bytes
}

/// A random identifier in the 8-4-4-4-12 hex form of a UUID (version 4):
/// cluster ids, nonces, audit record ids.
pub fn random_uuid() -> String {
    let mut b = random_bytes(16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_sized() {
        let a = SecretKey::generate();
        let b = SecretKey::generate();
        assert_ne!(a.expose(), b.expose());
        assert!(SecretKey::from_slice(&[0u8; 31]).is_none());
        assert!(SecretKey::from_slice(&[0u8; 33]).is_none());
        assert_eq!(
            SecretKey::from_slice(a.expose()).unwrap().expose(),
            a.expose()
        );
    }

    #[test]
    fn ct_eq_compares_content_and_length() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert!(SecretBytes::new(b"xy".to_vec()).ct_eq(b"xy"));
    }

    #[test]
    fn uuids_have_the_v4_shape() {
        let id = random_uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(random_uuid(), id);
    }
}
