//! The stored form of several seals' envelopes of one key: one named
//! envelope per seal that holds it.

use crate::seal::envelope::{Envelope, EnvelopeError, Purpose};

/// The format byte of a stored envelope set (a single envelope starts with 1).
const SET_VERSION: u8 = 2;
/// The most envelopes a set holds: the seals a config may have, and then some.
pub(super) const MAX_ENVELOPES: usize = 32;

/// One named envelope per seal that holds the key. Stored at
/// `core/root-key` and `core/recovery-key` when several seals are configured:
///
/// ```text
/// set = 2 ‖ count (u8) ‖ (length (u16 BE) ‖ envelope of format 2)*
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvelopeSet {
    pub(super) envelopes: Vec<Envelope>,
}

impl EnvelopeSet {
    /// The envelope of `seal`, if it holds the key.
    pub fn get(&self, seal: &str) -> Option<&Envelope> {
        self.envelopes
            .iter()
            .find(|e| e.seal.as_deref() == Some(seal))
    }

    /// The seals that hold the key, in stored order.
    pub fn seals(&self) -> impl Iterator<Item = &str> {
        self.envelopes.iter().filter_map(|e| e.seal.as_deref())
    }

    /// Adds `envelope`, replacing one of the same seal. A set already
    /// holding [`MAX_ENVELOPES`] others takes no more: that seal then stays
    /// not fully wrapped (Status shows it) rather than making a set no
    /// build could read. (A config names at most 8 KMS seals.)
    pub fn put(&mut self, envelope: Envelope) {
        self.remove(envelope.seal.as_deref().unwrap_or_default());
        if self.envelopes.len() < MAX_ENVELOPES {
            self.envelopes.push(envelope);
        }
    }

    /// Drops the envelope of `seal`.
    pub fn remove(&mut self, seal: &str) {
        self.envelopes.retain(|e| e.seal.as_deref() != Some(seal));
    }

    /// Whether no seal holds the key.
    pub fn is_empty(&self) -> bool {
        self.envelopes.is_empty()
    }

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        // At most MAX_ENVELOPES (32): `put` and `decode` keep it so.
        let mut out = vec![SET_VERSION, self.envelopes.len() as u8];
        for envelope in &self.envelopes {
            let bytes = envelope.encode();
            // An envelope is at most a few KiB (bounded when made).
            out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
            out.extend_from_slice(&bytes);
        }
        out
    }

    /// Parses a stored set of `purpose` envelopes.
    pub fn decode(purpose: Purpose, bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let malformed = |reason: &str| EnvelopeError::Malformed {
            what: purpose.as_str(),
            reason: reason.to_string(),
        };
        let (&version, rest) = bytes
            .split_first()
            .ok_or_else(|| malformed("it is empty"))?;
        if version != SET_VERSION {
            return Err(malformed(&format!(
                "it has format {version}, but a store with several seals holds format {SET_VERSION}"
            )));
        }
        let (&count, mut rest) = rest
            .split_first()
            .ok_or_else(|| malformed("it is truncated"))?;
        if usize::from(count) > MAX_ENVELOPES {
            return Err(malformed("it holds more envelopes than this build allows"));
        }
        let mut set = Self::default();
        for _ in 0..count {
            if rest.len() < 2 {
                return Err(malformed("it is truncated"));
            }
            let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
            let body = rest
                .get(2..2 + len)
                .ok_or_else(|| malformed("it is truncated"))?;
            let envelope = Envelope::decode(purpose, body)?;
            let Some(name) = envelope.seal.as_deref() else {
                return Err(malformed("one of its envelopes names no seal"));
            };
            if set.get(name).is_some() {
                return Err(malformed("two of its envelopes name the same seal"));
            }
            set.envelopes.push(envelope);
            rest = &rest[2 + len..];
        }
        if !rest.is_empty() {
            return Err(malformed("it has bytes after its last envelope"));
        }
        Ok(set)
    }
}
