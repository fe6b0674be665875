//! Shares encrypted to their holders, so no terminal ever shows every share
//! in the clear: share i goes to recipient i as an armored age file, which
//! its holder decrypts with `age -d` and pipes into `strongroom unseal`.
//!
//! Recipients: age X25519 (`age1…`, through the `age` crate) and OpenSSH
//! `ssh-ed25519` public keys. The latter is age's `ssh-ed25519` recipient
//! stanza, written here on `age-core`'s primitives: the `age` crate's own
//! implementation comes only with its `ssh` feature, which pulls in the `rsa`
//! crate and its unfixed advisory (RUSTSEC-2023-0071).

use std::collections::HashSet;
use std::io::Write;
use std::str::FromStr;

use age::armor::{ArmoredWriter, Format};
use age::{EncryptError, Encryptor};
use age_core::format::{FileKey, Stanza};
use age_core::primitives::{aead_encrypt, hkdf};
use age_core::secrecy::ExposeSecret;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use curve25519_dalek::edwards::CompressedEdwardsY;
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};

use crate::error::Error;
use crate::secret::fill_random;

const SSH_ED25519: &str = "ssh-ed25519";
const SSH_ED25519_LABEL: &[u8] = b"age-encryption.org/v1/ssh-ed25519";

/// One holder's public key.
pub struct Recipient {
    /// As given, for messages (public, never secret).
    pub text: String,
    key: Key,
}

enum Key {
    X25519(age::x25519::Recipient),
    SshEd25519(SshEd25519),
}

/// An OpenSSH ed25519 public key as an age recipient.
struct SshEd25519 {
    /// The key in SSH wire format (what the stanza's tag and tweak hash).
    wire: Vec<u8>,
    /// The key as an X25519 public key.
    montgomery: [u8; 32],
}

impl Recipient {
    /// Parses `age1…` or `ssh-ed25519 AAAA… [comment]`. `which` names it
    /// in messages ("recipient 2"); the text itself is never repeated, in
    /// case a secret key was pasted by mistake.
    pub fn parse(text: &str, which: &str) -> Result<Self, Error> {
        let text = text.trim();
        if text.starts_with("AGE-SECRET-KEY-") || text.contains("PRIVATE KEY") {
            return Err(Error::InvalidArgument(format!(
                "{which} is a secret key, not a recipient: give the public key (age1… from age-keygen, or the .pub file of an ssh-ed25519 key); a secret key must never leave its holder"
            )));
        }
        let bad = |why: &str| {
            Error::InvalidArgument(format!(
                "{which} is not a recipient strongroom can encrypt to ({why}); give age X25519 recipients (age1…) or ssh-ed25519 public keys"
            ))
        };
        let key = if text.starts_with("age1") {
            Key::X25519(age::x25519::Recipient::from_str(text).map_err(bad)?)
        } else if let Some(rest) = text.strip_prefix("ssh-ed25519 ") {
            let encoded = rest.split_whitespace().next().unwrap_or_default();
            let wire = STANDARD
                .decode(encoded)
                .map_err(|_| bad("its key is not base64"))?;
            let point = parse_ssh_ed25519(&wire).ok_or_else(|| bad("not an ssh-ed25519 key"))?;
            let montgomery = CompressedEdwardsY(point)
                .decompress()
                .ok_or_else(|| bad("not a valid ed25519 point"))?
                .to_montgomery()
                .to_bytes();
            Key::SshEd25519(SshEd25519 { wire, montgomery })
        } else {
            return Err(bad("unknown kind"));
        };
        Ok(Self {
            text: text.to_string(),
            key,
        })
    }

    /// `plaintext` encrypted to this recipient, as an armored age file.
    pub fn armor(&self, plaintext: &[u8]) -> Result<String, Error> {
        let recipient: &dyn age::Recipient = match &self.key {
            Key::X25519(r) => r,
            Key::SshEd25519(r) => r,
        };
        let failed = |e: &dyn std::fmt::Display| {
            Error::Internal(format!("could not encrypt to {}: {e}", shorten(&self.text)))
        };
        let encryptor =
            Encryptor::with_recipients(std::iter::once(recipient)).map_err(|e| failed(&e))?;
        let mut out = Vec::new();
        let armored =
            ArmoredWriter::wrap_output(&mut out, Format::AsciiArmor).map_err(|e| failed(&e))?;
        let mut writer = encryptor.wrap_output(armored).map_err(|e| failed(&e))?;
        writer.write_all(plaintext).map_err(|e| failed(&e))?;
        writer
            .finish()
            .and_then(|armored| armored.finish())
            .map_err(|e| failed(&e))?;
        String::from_utf8(out).map_err(|e| failed(&e))
    }
}

/// Parses a list of recipients; `expected` is how many there must be (one
/// per share).
pub fn parse_all(list: &[String], expected: u32, what: &str) -> Result<Vec<Recipient>, Error> {
    if list.len() != expected as usize {
        return Err(Error::InvalidArgument(format!(
            "{} recipients were given for {expected} {what}: give exactly one recipient per key",
            list.len()
        )));
    }
    list.iter()
        .enumerate()
        .map(|(i, r)| Recipient::parse(r, &format!("recipient {}", i + 1)))
        .collect()
}

/// Each share (as base64 text and a newline, what `unseal` reads) encrypted
/// to its recipient.
pub fn armor_shares(
    recipients: &[Recipient],
    shares: &[crate::secret::SecretBytes],
) -> Result<Vec<String>, Error> {
    recipients
        .iter()
        .zip(shares)
        .map(|(recipient, share)| {
            let text = zeroize::Zeroizing::new(format!("{}\n", STANDARD.encode(share.expose())));
            recipient.armor(text.as_bytes())
        })
        .collect()
}

/// The 32-byte key of an SSH wire-format `ssh-ed25519` public key.
fn parse_ssh_ed25519(wire: &[u8]) -> Option<[u8; 32]> {
    let (kind, rest) = ssh_string(wire)?;
    if kind != SSH_ED25519.as_bytes() {
        return None;
    }
    let (key, rest) = ssh_string(rest)?;
    if !rest.is_empty() {
        return None;
    }
    key.try_into().ok()
}

fn ssh_string(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = bytes.split_first_chunk::<4>()?;
    rest.split_at_checked(u32::from_be_bytes(*len) as usize)
}

/// Long keys cut for messages.
fn shorten(text: &str) -> String {
    let mut short: String = text.chars().take(40).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

impl age::Recipient for SshEd25519 {
    /// age's `ssh-ed25519` stanza: X25519 with the key's Montgomery form,
    /// tweaked by HKDF of the SSH key, as in age's specification.
    fn wrap_file_key(
        &self,
        file_key: &FileKey,
    ) -> Result<(Vec<Stanza>, HashSet<String>), EncryptError> {
        let pk = PublicKey::from(self.montgomery);
        let mut ephemeral = [0u8; 32];
        fill_random(&mut ephemeral);
        let esk = StaticSecret::from(ephemeral);
        let epk = PublicKey::from(&esk);
        let tweak = StaticSecret::from(hkdf(&self.wire, SSH_ED25519_LABEL, &[]));
        let shared = tweak.diffie_hellman(&PublicKey::from(*esk.diffie_hellman(&pk).as_bytes()));

        let mut salt = [0u8; 64];
        salt[..32].copy_from_slice(epk.as_bytes());
        salt[32..].copy_from_slice(pk.as_bytes());
        let wrap_key = zeroize::Zeroizing::new(hkdf(&salt, SSH_ED25519_LABEL, shared.as_bytes()));
        let body = aead_encrypt(&wrap_key, file_key.expose_secret());
        let tag = &Sha256::digest(&self.wire)[..4];
        Ok((
            vec![Stanza {
                tag: SSH_ED25519.to_string(),
                args: vec![
                    STANDARD_NO_PAD.encode(tag),
                    STANDARD_NO_PAD.encode(epk.as_bytes()),
                ],
                body,
            }],
            HashSet::new(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x25519_recipients_round_trip_through_age() {
        let identity = age::x25519::Identity::generate();
        let recipient = Recipient::parse(&identity.to_public().to_string(), "recipient 1").unwrap();
        let armored = recipient.armor(b"the share\n").unwrap();
        assert!(armored.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
        let reader = age::armor::ArmoredReader::new(armored.as_bytes());
        let decrypted = age::decrypt(&identity, &{
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut { reader }, &mut bytes).unwrap();
            bytes
        })
        .unwrap();
        assert_eq!(decrypted, b"the share\n");
    }

    #[test]
    fn bad_recipients_are_named() {
        for bad in [
            "age1notvalid",
            "ssh-rsa AAAAB3NzaC1yc2E",
            "ssh-ed25519 !!!",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5",
            "",
        ] {
            let err = Recipient::parse(bad, "recipient 1").err().unwrap();
            assert!(
                err.to_string()
                    .starts_with("recipient 1 is not a recipient strongroom can encrypt to"),
                "{bad}: {err}"
            );
        }
        let secret = age::x25519::Identity::generate();
        let err = Recipient::parse(secret.to_string().expose_secret(), "recipient 3")
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.starts_with("recipient 3 is a secret key, not a recipient"),
            "{err}"
        );
        assert!(!err.contains("AGE-SECRET-KEY"), "the secret key was echoed");
        let ok = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN alice@rust";
        assert!(Recipient::parse(ok, "recipient 1").is_ok());
        let err = parse_all(&[ok.to_string()], 3, "unseal keys")
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "1 recipients were given for 3 unseal keys: give exactly one recipient per key"
        );
    }
}
