//! Key material wrapped for an AWS KMS import: RSAES-OAEP with SHA-256 (for
//! OAEP and MGF1, empty label) under the public wrapping key that
//! GetParametersForImport hands out (DER SubjectPublicKeyInfo, RSA 2048,
//! 3072 or 4096 bits). Only the public key is ever used here: see
//! docs/DECISIONS.md on the `rsa` crate and RUSTSEC-2023-0071.

use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use sha2::Sha256;

use crate::secret::SecretKey;

/// The RSA sizes AWS KMS offers for an import's wrapping key.
const WRAPPING_KEY_BITS: [usize; 3] = [2048, 3072, 4096];

/// Why key material could not be wrapped. Carries no key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WrapError {
    /// The wrapping key KMS sent is not a DER RSA public key.
    #[error("the wrapping key AWS KMS sent for the import is not an RSA public key in DER form")]
    NotRsa,
    /// A size AWS KMS does not use for import.
    #[error(
        "the wrapping key AWS KMS sent for the import has {0} bits; an import takes RSA 2048, 3072 or 4096"
    )]
    Size(usize),
    /// OAEP refused (cannot happen for 32 bytes under 2048 bits or more).
    #[error("the key material could not be wrapped for the import")]
    Encrypt,
}

/// `material` encrypted to `wrapping_key` (DER SubjectPublicKeyInfo) with
/// RSAES_OAEP_SHA_256, as ImportKeyMaterial takes it. Each call draws fresh
/// OAEP randomness, so two wraps of the same material differ.
pub fn wrap_for_import(wrapping_key: &[u8], material: &SecretKey) -> Result<Vec<u8>, WrapError> {
    let key = rsa::PublicKey::from_public_key_der(wrapping_key).map_err(|_| WrapError::NotRsa)?;
    let bits = key.size() * 8;
    if !WRAPPING_KEY_BITS.contains(&bits) {
        return Err(WrapError::Size(bits));
    }
    key.oaep_encrypt_with_rng::<Sha256, _>(&mut rand::rng(), material.expose())
        .map_err(|_| WrapError::Encrypt)
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use rsa::pkcs8::DecodePrivateKey;

    use super::*;

    /// A 2048-bit RSA private key (PKCS#8 DER) made for this test only, as
    /// AWS KMS keeps the private half of a wrapping key.
    const TEST_PRIVATE_KEY: &str = concat!(
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCyd/NApHdf3BAIeAKHZs8A",
        "QpgU5zKB/+1+dqddD9l7+b6PvsUjhQmdC2bgk+ovbiXvoFkSuqKv8lvbSP/gEE5O43OHQxhD",
        "lsFy9hD4xzD1ur/ZpyBnXKHLBn4Z3D88LGnsOpTqOfOUoB4XB2pW9NsvzVok3JqyaJBUG9A4",
        "nuyBFZRSW1+YgYQtJ7VQt3V8JZ3COMup5l43n8opXDeczdPENePQUgZVCW8LgdwkcWMzLp4H",
        "ZNUo0gan9PNyg/WUBVP+x4+qMcH5W9bYQc6EuG71VZWL+QIxYqJM5PaWai5zgl4E4/ZFH4l1",
        "i9R/+trmOUEEnf4gOpG+qNrNGBQ9GuxBAgMBAAECggEACbGdvyBf0o9huJAKNSAWtNEpMRN4",
        "yRplZEXeI94pRkRjvyuRyjLe+Y6FvUOTiBV/zoMDa5LDJPLxXdkaeulv03Wj0BBLKFqvMccf",
        "V1/8bxCAfLpI9oxPxncZEN8HeUWBUGFDNvDEZAmJcN9IfaYppLBPCesIpRGsa0Eif3zUZFN3",
        "/WWtTjZ2y0Bq08wVNypu2yTycR6QGZwo2YnJEsh4rTBEoA64FNMHwXTEQu60JBLIUUhOf8z7",
        "kowRLxTyggPlVprj5Ry616Va8Q4q8TtX/jKeI17buoG2sAAHdnAKjWoZTTZh+8sF/jhf0EL6",
        "ZQMcbZflEOLl5a+CEkqENNjoEQKBgQD5rfycFntDO9Pk6LkG0EFMg2R97/YPnloCZyGc0IaU",
        "uFJiZY7TwGsSuyM9mteEYrkW02mHxJeDVKE46DWp2GAQe9sowdaB3kKaZoku34/DZ7SVhSY+",
        "e1rPgLwQp7CeRpGSRROzw/5Bn5JS+L0L/dtB8Dp56j7Ni86E3DYI7KYPyQKBgQC2/H1+K/DJ",
        "Wak+XffZ5aWkSK2I/2Py5PsHAwhhw6nKenrvsYnIBGJ8R/1pCUn3pBxlqv4IZjCGoaaO7lSU",
        "+zUfX72RNijgih8Sqv5mQ5p1r5CdgPQXDW37oUPHdfqhD5IDn3lxr6QAdeM1uE103t+8U+J0",
        "Bxjs81cyqbwOIPdkuQKBgHAsnwVxhEecpYJ+nEJXZj79+TQrjx1NQ5s4wn01ooFGnpzei+DO",
        "3kw4D4kp/BHaWNXMfeklhfzXFOgAS7vXHrHJM5mIHNuUA9BiqNeKUYi1GwjiHWCNAyue5t+E",
        "t3Eku1o/9q4ZLC5HhvIIFsdAcjWZvGvxte2bFlnSpeQ0jhchAoGAITwEkujqJ7fYLFKm1HWI",
        "OylUE2DHR3NdQG3FlPQTn4nVUDl/m8toE8iDdxNP0uGEotaGowHkaF9tv+H7jL9/a35ZEMm0",
        "bOvJLvvNjsdSg3NqoaCtNI6k3iHxDIYaCiyoyW2qggJzl/3RUY1yy/o6ypq1s3sihM7BlJsN",
        "Y8eLB0kCgYEA5XSyGsvhI5VEiz9SyLqvAiwpsvid7HNSQqItHQpva+AgpGGszuOyhW7tjsBC",
        "LAdhnZIe3MECG7H7EQvUv4koVL1M8G3+EGUqo1V0tuhBG3xAek/h62WnmEsGdN39WBERtijj",
        "MwVhMAT12DpxFV7NztdstjG1WFh0MbPV8FsMyEI=",
    );

    fn test_keys() -> (rsa::PrivateKey, Vec<u8>) {
        let der = base64::engine::general_purpose::STANDARD
            .decode(TEST_PRIVATE_KEY)
            .unwrap();
        let private = rsa::PrivateKey::from_pkcs8_der(&der).unwrap();
        let public = rsa::pkcs8::EncodePublicKey::to_public_key_der(&private.to_public_key())
            .unwrap()
            .into_vec();
        (private, public)
    }

    #[test]
    fn the_private_half_opens_what_was_wrapped() {
        let (private, public) = test_keys();
        let material = SecretKey::generate();
        let wrapped = wrap_for_import(&public, &material).unwrap();
        assert_eq!(wrapped.len(), 256);
        let opened = private
            .oaep_decrypt_with_rng::<Sha256, _>(&mut rand::rng(), &wrapped)
            .unwrap();
        assert_eq!(opened, material.expose());
        // Fresh OAEP randomness each time.
        assert_ne!(wrap_for_import(&public, &material).unwrap(), wrapped);
        // OAEP under another digest does not open it: SHA-256 it is.
        assert!(
            private
                .oaep_decrypt_with_rng::<sha2::Sha512, _>(&mut rand::rng(), &wrapped)
                .is_err()
        );
    }

    #[test]
    fn a_key_that_is_not_rsa_or_of_another_size_is_refused() {
        assert_eq!(
            wrap_for_import(b"not a key", &SecretKey::generate()),
            Err(WrapError::NotRsa)
        );
        let (_, public) = test_keys();
        assert_eq!(
            wrap_for_import(&public[..public.len() - 1], &SecretKey::generate()),
            Err(WrapError::NotRsa)
        );
        // A 1024-bit public key (DER), which KMS never offers.
        let small = base64::engine::general_purpose::STANDARD
            .decode("MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC0cRJSOLPmRJ9e0s3MJ9k17VZXgXtylgIRcxvGmMWZxSR04/xIXifHgt6309K0E3mz9yB0A5EVD2dpYc0uUHnH48S3FDj1KTXc8tGiOQUhZYu0DXY5JjbV9rTMxK1b5igkJJ77pDLJ05b9poTzFjX/rdCiIpV7vLEpQSn8uFImeQIDAQAB")
            .unwrap();
        assert_eq!(
            wrap_for_import(&small, &SecretKey::generate()),
            Err(WrapError::Size(1024))
        );
    }
}
