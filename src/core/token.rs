//! Tokens: `sr.` followed by 32 random base62 characters (about 190 bits).
//!
//! A token is stored only as its SHA-256 hash, behind the barrier, at
//! `auth/token/id/<hash>`; its accessor (a non-secret handle for revocation
//! and audit) points to that hash from `auth/token/accessor/<accessor>`.
//! Looking a token up by its hash means the token itself is never compared
//! byte by byte against a stored value, so no timing depends on its content.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::barrier::Barrier;
use crate::barrier::keyring::now_unix;
use crate::secret::{SecretString, fill_random};
use crate::storage::Batch;

use super::CoreError;

/// Every token starts with this.
pub const TOKEN_PREFIX: &str = "sr.";
const TOKEN_RANDOM_LEN: usize = 32;
/// Length of a whole token, prefix included.
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + TOKEN_RANDOM_LEN;
const ACCESSOR_LEN: usize = 24;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const ID_PREFIX: &str = "auth/token/id/";
const ACCESSOR_PREFIX: &str = "auth/token/accessor/";

/// The policy that may do everything.
pub const ROOT_POLICY: &str = "root";

/// What is stored for a token (never the token itself).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenEntry {
    /// Non-secret handle.
    pub accessor: String,
    /// Policies attached.
    pub policies: Vec<String>,
    /// Creation time, seconds since the Unix epoch.
    pub created_unix: u64,
}

impl TokenEntry {
    /// True for a root token.
    pub fn is_root(&self) -> bool {
        self.policies.iter().any(|p| p == ROOT_POLICY)
    }
}

/// Random base62 text of `len` characters, without modulo bias.
fn random_base62(len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut pool = [0u8; 64];
    while out.len() < len {
        fill_random(&mut pool);
        // 248 = 4 × 62: bytes at or above it are dropped so every character is equally likely.
        for &byte in pool.iter().filter(|&&b| b < 248) {
            if out.len() == len {
                break;
            }
            out.push(char::from(BASE62[usize::from(byte % 62)]));
        }
    }
    out
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// True if `token` has the shape of a strongroom token.
fn well_formed(token: &str) -> bool {
    token.strip_prefix(TOKEN_PREFIX).is_some_and(|rest| {
        rest.len() == TOKEN_RANDOM_LEN && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// Makes a token with `policies`, adding its entries (encrypted) to `batch`.
pub fn create(
    barrier: &Barrier,
    batch: &mut Batch,
    policies: Vec<String>,
) -> (SecretString, TokenEntry) {
    let token = SecretString::new(format!("{TOKEN_PREFIX}{}", random_base62(TOKEN_RANDOM_LEN)));
    let entry = TokenEntry {
        accessor: random_base62(ACCESSOR_LEN),
        policies,
        created_unix: now_unix(),
    };
    let hashed = hash(token.expose());
    let id_path = format!("{ID_PREFIX}{hashed}");
    let accessor_path = format!("{ACCESSOR_PREFIX}{}", entry.accessor);
    // Serialising plain strings cannot fail.
    let encoded = serde_json::to_vec(&entry).unwrap_or_default();
    batch.put(id_path.clone(), barrier.encrypt(&id_path, &encoded));
    batch.put(
        accessor_path.clone(),
        barrier.encrypt(&accessor_path, hashed.as_bytes()),
    );
    (token, entry)
}

/// Finds the entry of a presented token.
pub async fn lookup(barrier: &Barrier, token: Option<&str>) -> Result<TokenEntry, CoreError> {
    let token = token.ok_or_else(|| {
        CoreError::Unauthenticated(
            "this call needs a token: send it as `authorization: Bearer sr.…`".into(),
        )
    })?;
    if !well_formed(token) {
        return Err(CoreError::Unauthenticated(
            "the token is malformed: strongroom tokens are sr. followed by 32 letters and digits"
                .into(),
        ));
    }
    let path = format!("{ID_PREFIX}{}", hash(token));
    let Some(stored) = barrier.get(&path).await? else {
        return Err(CoreError::Unauthenticated(
            "the token is not valid (unknown or revoked)".into(),
        ));
    };
    decode(stored.expose())
}

impl super::Core {
    /// The accessors of every root token, with their creation times (needs
    /// a root token): how an operator finds a lost root token to revoke.
    pub async fn list_root_accessors(
        &self,
        token: Option<&str>,
    ) -> Result<Vec<TokenEntry>, CoreError> {
        let barrier = self
            .authorize_root(token, "listing root token accessors")
            .await?;
        let mut entries = list(&barrier).await?;
        entries.retain(TokenEntry::is_root);
        Ok(entries)
    }

    /// Revokes the token behind `accessor` (needs a root token).
    pub async fn revoke_accessor(
        &self,
        token: Option<&str>,
        accessor: &str,
    ) -> Result<TokenEntry, CoreError> {
        let barrier = self.authorize_root(token, "revoking a token").await?;
        let mut batch = Batch::new();
        let entry = revoke_by_accessor(&barrier, &mut batch, accessor).await?;
        barrier.write(batch).await?;
        tracing::info!(accessor = %entry.accessor, "token revoked by its accessor");
        Ok(entry)
    }
}

/// Every token's accessor with its entry, sorted by accessor.
pub async fn list(barrier: &Barrier) -> Result<Vec<TokenEntry>, CoreError> {
    let mut entries = Vec::new();
    for path in barrier.list(ACCESSOR_PREFIX).await? {
        let Some(hashed) = barrier.get(&path).await? else {
            continue;
        };
        let id_path = format!("{ID_PREFIX}{}", String::from_utf8_lossy(hashed.expose()));
        if let Some(stored) = barrier.get(&id_path).await? {
            entries.push(decode(stored.expose())?);
        }
    }
    Ok(entries)
}

/// Adds the removal of the token behind `accessor` to `batch`; returns its
/// entry, or NotFound.
pub async fn revoke_by_accessor(
    barrier: &Barrier,
    batch: &mut Batch,
    accessor: &str,
) -> Result<TokenEntry, CoreError> {
    // Only a well-formed accessor is repeated in a message: what was given
    // instead may be a token pasted by mistake.
    if accessor.starts_with(TOKEN_PREFIX) {
        return Err(CoreError::InvalidArgument(
            "that is a token, not its accessor: `strongroom token list-accessors` shows the accessors".into(),
        ));
    }
    if accessor.is_empty()
        || accessor.len() > ACCESSOR_LEN
        || !accessor.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(CoreError::InvalidArgument(format!(
            "the accessor is malformed: accessors are {ACCESSOR_LEN} letters and digits"
        )));
    }
    let not_found = || CoreError::NotFound(format!("no token has the accessor {accessor}"));
    let accessor_path = format!("{ACCESSOR_PREFIX}{accessor}");
    let hashed = barrier.get(&accessor_path).await?.ok_or_else(not_found)?;
    let id_path = format!("{ID_PREFIX}{}", String::from_utf8_lossy(hashed.expose()));
    let entry = match barrier.get(&id_path).await? {
        Some(stored) => decode(stored.expose())?,
        None => return Err(not_found()),
    };
    batch.delete(id_path).delete(accessor_path);
    Ok(entry)
}

fn decode(stored: &[u8]) -> Result<TokenEntry, CoreError> {
    serde_json::from_slice(stored)
        .map_err(|e| CoreError::Internal(format!("the stored token entry is damaged: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_documented_shape() {
        for _ in 0..100 {
            let t = format!("{TOKEN_PREFIX}{}", random_base62(TOKEN_RANDOM_LEN));
            assert!(well_formed(&t), "{t}");
        }
        assert!(!well_formed("sr.short"));
        assert!(!well_formed("hvs.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
        assert!(!well_formed("sr.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-"));
    }

    #[test]
    fn base62_uses_the_whole_alphabet() {
        let sample = random_base62(20_000);
        for c in BASE62.iter() {
            assert!(sample.as_bytes().contains(c), "{}", char::from(*c));
        }
    }
}
