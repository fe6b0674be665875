//! Shamir secret sharing of 32-byte keys over GF(2^8), and the check that a
//! share was ever issued.
//!
//! The arithmetic is `vsss-rs`'s `Gf256`: constant-time field operations in
//! the same field Vault uses, with unbiased random coefficients. (`sharks`,
//! the crate many projects used, draws biased coefficients and is unmaintained:
//! RUSTSEC-2024-0398.)
//!
//! A share is 33 bytes: the x coordinate (1..=255) followed by 32 y bytes.
//! With one share and threshold one there is nothing to split: the "share" is
//! the 32-byte unseal key itself, as in Vault.

use rand::rand_core::UnwrapErr;
use rand::rngs::SysRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use vsss_rs::Gf256;

use crate::secret::{KEY_LEN, SecretBytes, SecretKey, ct_eq, fill_random};

/// Length of a share when there are two or more.
pub const SHARE_LEN: usize = KEY_LEN + 1;

/// Why shares could not be made or combined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShamirError {
    /// Shares and threshold are out of range.
    #[error(
        "{shares} shares with threshold {threshold} is not possible: need 1 ≤ threshold ≤ shares ≤ 255, and threshold ≥ 2 when shares > 1"
    )]
    InvalidParameters {
        /// Requested number of shares.
        shares: u32,
        /// Requested threshold.
        threshold: u32,
    },
    /// The shares given do not combine (wrong lengths, repeated x coordinates).
    #[error("the shares do not combine into a key")]
    CannotCombine,
}

/// Checks shares/threshold: 1 ≤ t ≤ n ≤ 255, and t ≥ 2 when n > 1.
pub fn validate(shares: u32, threshold: u32) -> Result<(), ShamirError> {
    let ok = (1..=255).contains(&shares)
        && (1..=shares).contains(&threshold)
        && (shares == 1 || threshold >= 2);
    if ok {
        Ok(())
    } else {
        Err(ShamirError::InvalidParameters { shares, threshold })
    }
}

/// The length of each share for a given share count.
pub fn share_len(shares: u32) -> usize {
    if shares == 1 { KEY_LEN } else { SHARE_LEN }
}

/// Splits `secret` into `shares` shares, any `threshold` of which recover it.
pub fn split(
    secret: &SecretKey,
    shares: u32,
    threshold: u32,
) -> Result<Vec<SecretBytes>, ShamirError> {
    validate(shares, threshold)?;
    if shares == 1 {
        return Ok(vec![SecretBytes::new(secret.expose().to_vec())]);
    }
    // Polynomial coefficients come straight from the kernel's generator.
    let rng = UnwrapErr(SysRng);
    let parts = Gf256::split_bytes(threshold as usize, shares as usize, secret.expose(), rng)
        .map_err(|_| ShamirError::InvalidParameters { shares, threshold })?;
    Ok(parts.into_iter().map(SecretBytes::new).collect())
}

/// Recovers the secret from at least a threshold of shares. Fewer shares
/// produce a different, useless key; the caller detects that when the key
/// fails to open what it protects.
pub fn combine(shares: &[SecretBytes]) -> Result<SecretKey, ShamirError> {
    if let [only] = shares {
        return SecretKey::from_slice(only.expose()).ok_or(ShamirError::CannotCombine);
    }
    let parts: Vec<Vec<u8>> = shares.iter().map(|s| s.expose().to_vec()).collect();
    // Moved into zeroizing memory as soon as it exists.
    let parts = zeroize::Zeroizing::new(parts);
    let secret = SecretBytes::new(
        Gf256::combine_bytes(parts.as_slice()).map_err(|_| ShamirError::CannotCombine)?,
    );
    SecretKey::from_slice(secret.expose()).ok_or(ShamirError::CannotCombine)
}

/// Salted hashes of the issued shares, kept in the (unencrypted) seal config,
/// so that a share that was never issued is refused the moment it is typed
/// instead of after the whole quorum has entered theirs.
///
/// Each share holds 256 bits from a uniform distribution (any single share of
/// a threshold ≥ 2 split is independent of the secret), so SHA-256 over
/// `salt ‖ share` cannot be inverted or guessed, and reveals nothing about the
/// key: knowing all n hashes is no help without t shares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareCheck {
    /// Random per-init salt, hex.
    salt: String,
    /// `SHA-256(salt ‖ share)` of each issued share, hex.
    hashes: Vec<String>,
}

impl ShareCheck {
    /// Records `shares` under a fresh salt.
    pub fn new(shares: &[SecretBytes]) -> Self {
        let mut salt = [0u8; 32];
        fill_random(&mut salt);
        let hashes = shares
            .iter()
            .map(|s| hex::encode(hash(&salt, s.expose())))
            .collect();
        Self {
            salt: hex::encode(salt),
            hashes,
        }
    }

    /// True if `share` is one of the issued shares. Compares against every
    /// recorded hash in constant time, without stopping at a match.
    pub fn is_issued(&self, share: &[u8]) -> bool {
        let Ok(salt) = hex::decode(&self.salt) else {
            return false;
        };
        let candidate = hash(&salt, share);
        let mut found = false;
        for recorded in &self.hashes {
            let recorded = hex::decode(recorded).unwrap_or_default();
            found |= ct_eq(&recorded, &candidate);
        }
        found
    }

    /// How many shares were recorded.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// True when no share was recorded.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

fn hash(salt: &[u8], share: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(share);
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(shares: &[SecretBytes], indexes: &[usize]) -> Vec<SecretBytes> {
        indexes.iter().map(|&i| shares[i].clone()).collect()
    }

    /// Every subset of a 5/3 split: any 3 or more recover, 2 or fewer do not.
    #[test]
    fn any_threshold_subset_recovers_and_smaller_ones_do_not() {
        let secret = SecretKey::generate();
        let shares = split(&secret, 5, 3).unwrap();
        assert!(shares.iter().all(|s| s.len() == SHARE_LEN));
        for mask in 1u32..32 {
            let subset: Vec<usize> = (0..5).filter(|i| mask & (1 << i) != 0).collect();
            let combined = combine(&pick(&shares, &subset));
            if subset.len() >= 3 {
                assert_eq!(combined.unwrap().expose(), secret.expose(), "{subset:?}");
            } else if let Ok(key) = combined {
                assert_ne!(key.expose(), secret.expose(), "{subset:?}");
            }
        }
    }

    /// Property: for random parameters, a random threshold-sized subset
    /// recovers, and one share fewer does not.
    #[test]
    fn random_parameters_property() {
        for round in 0..200u32 {
            let mut byte = [0u8; 2];
            fill_random(&mut byte);
            let n = 2 + u32::from(byte[0]) % 30;
            let t = 2 + u32::from(byte[1]) % (n - 1);
            let secret = SecretKey::generate();
            let shares = split(&secret, n, t).unwrap();
            assert_eq!(shares.len(), n as usize);
            let mut order: Vec<usize> = (0..n as usize).collect();
            // Rotate by the round number so different subsets are exercised.
            order.rotate_left(round as usize % n as usize);
            let quorum = pick(&shares, &order[..t as usize]);
            assert_eq!(
                combine(&quorum).unwrap().expose(),
                secret.expose(),
                "n={n} t={t}"
            );
            let short = pick(&shares, &order[..t as usize - 1]);
            if let Ok(key) = combine(&short) {
                assert_ne!(key.expose(), secret.expose(), "n={n} t={t}");
            }
        }
    }

    #[test]
    fn large_split_recovers() {
        let secret = SecretKey::generate();
        let shares = split(&secret, 255, 128).unwrap();
        let quorum: Vec<SecretBytes> = shares.iter().rev().take(128).cloned().collect();
        assert_eq!(combine(&quorum).unwrap().expose(), secret.expose());
    }

    #[test]
    fn one_share_is_the_key_itself() {
        let secret = SecretKey::generate();
        let shares = split(&secret, 1, 1).unwrap();
        assert_eq!(shares[0].expose(), secret.expose());
        assert_eq!(combine(&shares).unwrap().expose(), secret.expose());
        assert_eq!(share_len(1), 32);
        assert_eq!(share_len(5), 33);
    }

    #[test]
    fn parameters_are_validated() {
        for (n, t) in [(0, 0), (5, 0), (5, 6), (256, 3), (3, 1), (1, 2)] {
            assert!(validate(n, t).is_err(), "n={n} t={t}");
            assert!(split(&SecretKey::generate(), n, t).is_err());
        }
        for (n, t) in [(1, 1), (2, 2), (5, 3), (255, 255)] {
            assert!(validate(n, t).is_ok(), "n={n} t={t}");
        }
    }

    #[test]
    fn share_check_knows_issued_shares_only() {
        let secret = SecretKey::generate();
        let shares = split(&secret, 5, 3).unwrap();
        let check = ShareCheck::new(&shares);
        assert_eq!(check.len(), 5);
        assert!(shares.iter().all(|s| check.is_issued(s.expose())));
        let mut forged = shares[0].expose().to_vec();
        forged[10] ^= 1;
        assert!(!check.is_issued(&forged));
        let other = split(&SecretKey::generate(), 5, 3).unwrap();
        assert!(!check.is_issued(other[0].expose()));
        // The salt makes the record differ between inits of the same shares.
        assert_ne!(ShareCheck::new(&shares), check);
    }
}
