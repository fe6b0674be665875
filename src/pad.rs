//! The one-time pad of generate-root, a contract between the daemon and
//! its clients: the client makes [`PAD_LEN`] random bytes (as long as a
//! token) and sends them base64-encoded; the daemon answers
//! base64(token XOR pad), so the new token never crosses the wire or reaches
//! a terminal before the holder of the pad decodes it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::secret::{SecretBytes, SecretString};

/// Length of a pad: as long as a token (`sr.` and 32 letters and digits).
pub const PAD_LEN: usize = 35;

/// Decodes a pad: base64 of exactly [`PAD_LEN`] bytes. The error is a sentence.
pub fn parse(pad: &str) -> Result<SecretBytes, String> {
    let bytes = SecretBytes::new(STANDARD.decode(pad.trim()).map_err(|_| {
        format!(
            "the one-time pad is not base64: it must be {PAD_LEN} random bytes (as long as a token), base64-encoded"
        )
    })?);
    if bytes.len() != PAD_LEN {
        return Err(format!(
            "the one-time pad is {} bytes long, but it must be {PAD_LEN} (as long as a token)",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// `token XOR pad`, base64: what generate-root answers.
pub fn apply(token: &[u8], pad: &[u8]) -> String {
    let xored: Vec<u8> = token.iter().zip(pad).map(|(t, p)| t ^ p).collect();
    STANDARD.encode(xored)
}

/// Recovers a token from generate-root's answer and the pad (base64 both).
/// A pad that does not belong to the answer gives bytes outside a token's
/// alphabet, which is refused.
pub fn remove(encoded: &str, pad: &str) -> Result<SecretString, String> {
    let pad = parse(pad)?;
    let xored = SecretBytes::new(
        STANDARD
            .decode(encoded.trim())
            .map_err(|_| "the encoded token is not base64".to_string())?,
    );
    if xored.len() != pad.len() {
        return Err(format!(
            "the encoded token is {} bytes long, but the one-time pad is {}",
            xored.len(),
            pad.len()
        ));
    }
    let token = SecretBytes::new(
        xored
            .expose()
            .iter()
            .zip(pad.expose())
            .map(|(x, p)| x ^ p)
            .collect(),
    );
    let alphabet = |b: &u8| b.is_ascii_alphanumeric() || *b == b'.';
    match std::str::from_utf8(token.expose()) {
        Ok(text) if token.expose().iter().all(alphabet) => Ok(SecretString::new(text.to_string())),
        _ => Err("the encoded token and the one-time pad do not belong together".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> String {
        STANDARD.encode(crate::secret::random_bytes(PAD_LEN))
    }

    #[test]
    fn a_token_goes_through_the_pad_and_back() {
        let token = b"sr.0123456789abcdefghijklmnopqrstuv";
        let pad = fresh();
        let encoded = apply(token, parse(&pad).unwrap().expose());
        assert_eq!(remove(&encoded, &pad).unwrap().expose().as_bytes(), token);
        assert!(remove(&encoded, &fresh()).is_err(), "another pad");
        assert_eq!(
            parse("c2hvcnQ=").err().unwrap(),
            "the one-time pad is 5 bytes long, but it must be 35 (as long as a token)"
        );
        assert!(remove("!!", &pad).is_err());
    }
}
