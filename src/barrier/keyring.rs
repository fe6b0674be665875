//! The keyring: one AES-256-GCM data key per term.
//!
//! The newest (active) term encrypts new writes; every term still decrypts.
//! The keyring is stored at `core/keyring`, encrypted by the root key.
//!
//! Encoding (all integers big-endian):
//! ```text
//! version (u8 = 1) ‖ active term (u32) ‖ count (u32) ‖ count × { term (u32) ‖ installed (u64, Unix seconds) ‖ key (32) }
//! ```

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use crate::secret::{KEY_LEN, SecretKey};
use crate::time::now_unix;

const FORMAT_VERSION: u8 = 1;
const TERM_RECORD_LEN: usize = 4 + 8 + KEY_LEN;

/// One term of the keyring.
#[derive(Clone)]
pub struct Term {
    /// The data key of this term.
    pub key: SecretKey,
    /// When the term was installed, in seconds since the Unix epoch.
    pub installed_unix: u64,
}

/// Why a decrypted keyring could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    /// The keyring was written by a newer strongroom.
    #[error("the keyring has unknown format version {0}")]
    UnknownVersion(u8),
    /// The bytes do not describe a keyring.
    #[error("the keyring is malformed: {0}")]
    Malformed(&'static str),
}

/// Every term's data key. Cloning copies the keys into new zeroizing memory.
#[derive(Clone)]
pub struct Keyring {
    active: u32,
    terms: BTreeMap<u32, Term>,
}

impl Keyring {
    /// A keyring with one fresh key, term 1.
    pub fn generate() -> Self {
        let term = Term {
            key: SecretKey::generate(),
            installed_unix: now_unix(),
        };
        Self {
            active: 1,
            terms: BTreeMap::from([(1, term)]),
        }
    }

    /// The term that encrypts new writes, with its key.
    pub fn active(&self) -> (u32, &Term) {
        let term = self
            .terms
            .get(&self.active)
            // decode() and generate() guarantee the active term is present.
            .unwrap_or_else(|| unreachable!("active term missing from keyring"));
        (self.active, term)
    }

    /// A copy with a fresh key in a new term, which becomes the active one.
    /// Every earlier term stays, so everything written before still reads.
    pub fn with_new_term(&self) -> Self {
        let number = self.terms.keys().next_back().copied().unwrap_or(0) + 1;
        let mut terms = self.terms.clone();
        terms.insert(
            number,
            Term {
                key: SecretKey::generate(),
                installed_unix: now_unix(),
            },
        );
        Self {
            active: number,
            terms,
        }
    }

    /// Every term with its install time, oldest first (no key material).
    pub fn installed(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.terms.iter().map(|(n, t)| (*n, t.installed_unix))
    }

    /// The key of `term`, if the keyring has it.
    pub fn key(&self, term: u32) -> Option<&SecretKey> {
        self.terms.get(&term).map(|t| &t.key)
    }

    /// Serialises the keyring into zeroizing memory, ready to encrypt.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(9 + self.terms.len() * TERM_RECORD_LEN));
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.active.to_be_bytes());
        let count = u32::try_from(self.terms.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&count.to_be_bytes());
        for (number, term) in &self.terms {
            out.extend_from_slice(&number.to_be_bytes());
            out.extend_from_slice(&term.installed_unix.to_be_bytes());
            out.extend_from_slice(term.key.expose());
        }
        out
    }

    /// Parses a decrypted keyring.
    pub fn decode(bytes: &[u8]) -> Result<Self, KeyringError> {
        let (&version, rest) = bytes
            .split_first()
            .ok_or(KeyringError::Malformed("empty"))?;
        if version != FORMAT_VERSION {
            return Err(KeyringError::UnknownVersion(version));
        }
        let (active, rest) = take_u32(rest)?;
        let (count, mut rest) = take_u32(rest)?;
        if rest.len() != count as usize * TERM_RECORD_LEN {
            return Err(KeyringError::Malformed(
                "length does not match the term count",
            ));
        }
        let mut terms = BTreeMap::new();
        while !rest.is_empty() {
            let (number, tail) = take_u32(rest)?;
            let (installed, tail) = take_u64(tail)?;
            let (key, tail) = tail
                .split_at_checked(KEY_LEN)
                .ok_or(KeyringError::Malformed("truncated"))?;
            let key = SecretKey::from_slice(key).ok_or(KeyringError::Malformed("short key"))?;
            if number == 0
                || terms
                    .insert(
                        number,
                        Term {
                            key,
                            installed_unix: installed,
                        },
                    )
                    .is_some()
            {
                return Err(KeyringError::Malformed(
                    "term numbers must be unique and non-zero",
                ));
            }
            rest = tail;
        }
        if !terms.contains_key(&active) {
            return Err(KeyringError::Malformed("the active term has no key"));
        }
        Ok(Self { active, terms })
    }
}

fn take_u32(bytes: &[u8]) -> Result<(u32, &[u8]), KeyringError> {
    let (head, rest) = bytes
        .split_first_chunk::<4>()
        .ok_or(KeyringError::Malformed("truncated"))?;
    Ok((u32::from_be_bytes(*head), rest))
}

fn take_u64(bytes: &[u8]) -> Result<(u64, &[u8]), KeyringError> {
    let (head, rest) = bytes
        .split_first_chunk::<8>()
        .ok_or(KeyringError::Malformed("truncated"))?;
    Ok((u64::from_be_bytes(*head), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let ring = Keyring::generate();
        let decoded = Keyring::decode(&ring.encode()).unwrap();
        let (term, key) = decoded.active();
        assert_eq!(term, 1);
        assert_eq!(key.key.expose(), ring.active().1.key.expose());
        assert!(decoded.key(2).is_none());
    }

    #[test]
    fn a_new_term_becomes_active_and_the_old_ones_stay() {
        let ring = Keyring::generate();
        let rotated = ring.with_new_term().with_new_term();
        assert_eq!(rotated.active().0, 3);
        assert_eq!(
            rotated.key(1).unwrap().expose(),
            ring.key(1).unwrap().expose()
        );
        assert_ne!(
            rotated.key(3).unwrap().expose(),
            rotated.key(2).unwrap().expose()
        );
        assert_eq!(
            rotated.installed().map(|(n, _)| n).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        let decoded = Keyring::decode(&rotated.encode()).unwrap();
        assert_eq!(decoded.active().0, 3);
    }

    #[test]
    fn malformed_keyrings_are_refused() {
        let good = Keyring::generate().encode();
        assert_eq!(
            Keyring::decode(&[]).err(),
            Some(KeyringError::Malformed("empty"))
        );
        let mut v2 = good.to_vec();
        v2[0] = 2;
        assert_eq!(
            Keyring::decode(&v2).err(),
            Some(KeyringError::UnknownVersion(2))
        );
        assert!(Keyring::decode(&good[..good.len() - 1]).is_err());
        let mut wrong_active = good.to_vec();
        wrong_active[1..5].copy_from_slice(&9u32.to_be_bytes());
        assert!(Keyring::decode(&wrong_active).is_err());
    }
}
