//! Key material as the engines store it behind the barrier: hex in JSON,
//! serialised from and parsed into zeroizing memory.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::secret::SecretKey;

/// One version's material, serialised as hex from zeroizing memory.
pub(in crate::engines) struct Material(pub(in crate::engines) SecretKey);

impl Serialize for Material {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = Zeroizing::new(hex::encode(self.0.expose()));
        serializer.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for Material {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Material;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("64 hex digits")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Material, E> {
                let mut bytes = Zeroizing::new([0u8; 32]);
                hex::decode_to_slice(text, bytes.as_mut())
                    .map_err(|_| E::custom("key material is not 64 hex digits"))?;
                SecretKey::from_slice(bytes.as_ref())
                    .map(Material)
                    .ok_or_else(|| E::custom("key material has the wrong length"))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}
