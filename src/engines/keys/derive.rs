//! Keys derived per context, for keys created with `derived = true` (as
//! Vault's transit): each version's key is the input of HKDF-SHA256
//! (RFC 5869, no salt) with the caller's context as the info, so a
//! ciphertext made under one context cannot be decrypted under another
//! even by a caller who may use the key.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// The 32-byte key HKDF-SHA256 derives from `material` for `context`.
pub(super) fn derive(material: &[u8], context: &[u8]) -> Zeroizing<[u8; 32]> {
    // Extract: PRK = HMAC(salt, IKM); an absent salt is HashLen zeros.
    let prk = Zeroizing::new(hmac(&[0u8; 32], &[material]));
    // Expand, one block (32 bytes = HashLen): T(1) = HMAC(PRK, info ‖ 0x01).
    Zeroizing::new(hmac(prk.as_ref(), &[context, &[1]]))
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
mod tests {
    use super::*;

    #[test]
    fn matches_rfc_5869_test_case_3() {
        // IKM 22 × 0x0b, no salt, no info: the first 32 bytes of its OKM.
        let okm = derive(&[0x0b; 22], b"");
        assert_eq!(
            hex::encode(*okm),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
        );
    }

    #[test]
    fn contexts_derive_different_keys() {
        let material = [7u8; 32];
        assert_ne!(*derive(&material, b"a"), *derive(&material, b"b"));
        assert_eq!(*derive(&material, b"a"), *derive(&material, b"a"));
    }
}
