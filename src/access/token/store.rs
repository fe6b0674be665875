//! The token store: tokens are `sr.` followed by 32 random base62 characters (about 190 bits).
//!
//! A token is stored only as its SHA-256 hash, behind the barrier, at
//! `auth/token/id/<hash>`; its accessor (a non-secret handle for revocation
//! and audit) points to that hash from `auth/token/accessor/<accessor>`.
//! Looking a token up by its hash means the token itself is never compared
//! byte by byte against a stored value, so no timing depends on its content.
//!
//! A token made by another token is its child, recorded at
//! `auth/token/parent/<parent accessor>/<child accessor>`; revoking a token
//! revokes its descendants in the same transaction. A child never outlives
//! its parent: its expiry is capped at the parent's when it is made and when
//! it is renewed, so checking a token's own expiry is enough.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::lifetime::{lifetime, renewed_expiry};
use crate::barrier::Barrier;
use crate::error::Error;
use crate::secret::{SecretString, fill_random};
use crate::storage::Batch;
use crate::time::now_unix;

/// Every token starts with this.
pub const TOKEN_PREFIX: &str = "sr.";
const TOKEN_RANDOM_LEN: usize = 32;
/// Length of a whole token, prefix included.
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + TOKEN_RANDOM_LEN;
// generate-root hides a new token under a one-time pad of this length.
const _: () = assert!(TOKEN_LEN == crate::pad::PAD_LEN);
const ACCESSOR_LEN: usize = 24;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const ID_PREFIX: &str = "auth/token/id/";
const ACCESSOR_PREFIX: &str = "auth/token/accessor/";

const PARENT_PREFIX: &str = "auth/token/parent/";

/// The policy that may do everything.
use crate::names::ROOT_POLICY;
/// The lifetime of a token made without a `ttl`, and the longest a token
/// that is not periodic may live from its creation, renewals included:
/// Vault's default of 32 days. Also the longest period.
pub const MAX_TTL_SECS: u64 = 768 * 3600;

/// What is stored for a token (never the token itself).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenEntry {
    /// Non-secret handle.
    pub accessor: String,
    /// Policies attached.
    pub policies: Vec<String>,
    /// Creation time, seconds since the Unix epoch.
    pub created_unix: u64,
    /// When it stops working; 0: never.
    #[serde(default)]
    pub expire_unix: u64,
    /// What a renewal without an increment extends it by.
    #[serde(default)]
    pub ttl_secs: u64,
    /// Renewals may extend it (up to `max_expire_unix`).
    #[serde(default)]
    pub renewable: bool,
    /// The latest expiry renewals may reach; 0: no expiry at all.
    #[serde(default)]
    pub max_expire_unix: u64,
    /// Calls left before it is revoked; 0: unlimited.
    #[serde(default)]
    pub uses_left: u32,
    /// The accessor of the token that made it; `None` for an orphan.
    #[serde(default)]
    pub parent: Option<String>,
    /// Vault's `period`: each renewal sets the expiry to now plus this, with
    /// no maximum but `explicit_max_ttl_secs`; 0: not periodic (entries
    /// written before periods existed read as 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub period_secs: u64,
    /// A hard limit from creation set by its creator; 0: none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub explicit_max_ttl_secs: u64,
    /// The last renewal, seconds since the Unix epoch; 0: never renewed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub renewed_unix: u64,
    /// Vault's `display_name` (`token`, or `token-<name>`); empty: `token`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    /// Vault's `meta`: labels its creator gave it (not secret).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl TokenEntry {
    /// True for a root token.
    pub fn is_root(&self) -> bool {
        self.policies.iter().any(|p| p == ROOT_POLICY)
    }

    /// Seconds left before expiry; `None` if it never expires.
    pub fn ttl_left(&self, now: u64) -> Option<u64> {
        (self.expire_unix != 0).then(|| self.expire_unix.saturating_sub(now))
    }

    /// True for a periodic token.
    pub fn is_periodic(&self) -> bool {
        self.period_secs > 0
    }
}

/// The display name of the root tokens of init and generate-root, as
/// Vault's (a name a caller asks for becomes `token-<name>`, never this).
pub const ROOT_DISPLAY_NAME: &str = "root";

/// What a new token gets.
pub struct Spec {
    /// Its policies.
    pub policies: Vec<String>,
    /// Lifetime in seconds; 0: never expires.
    pub ttl_secs: u64,
    /// Renewals may extend it.
    pub renewable: bool,
    /// Calls allowed; 0: unlimited.
    pub uses: u32,
    /// The parent token, whose expiry caps the child's.
    pub parent: Option<TokenEntry>,
    /// Vault's `period` in seconds (then `ttl_secs` is ignored); 0: none.
    pub period_secs: u64,
    /// A hard limit from creation; 0: none.
    pub explicit_max_ttl_secs: u64,
    /// Shown by lookups; empty: `token`.
    pub display_name: String,
    /// Shown by lookups.
    pub meta: BTreeMap<String, String>,
}

impl Spec {
    /// A root token that never expires (init, generate-root).
    pub fn root() -> Self {
        Self {
            policies: vec![ROOT_POLICY.into()],
            ttl_secs: 0,
            renewable: false,
            uses: 0,
            parent: None,
            period_secs: 0,
            explicit_max_ttl_secs: 0,
            display_name: ROOT_DISPLAY_NAME.into(),
            meta: BTreeMap::new(),
        }
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

fn put_entry(barrier: &Barrier, batch: &mut Batch, hashed: &str, entry: &TokenEntry) {
    let id_path = format!("{ID_PREFIX}{hashed}");
    // Serialising plain strings and numbers cannot fail.
    let encoded = serde_json::to_vec(entry).unwrap_or_default();
    batch.put(id_path.clone(), barrier.encrypt(&id_path, &encoded));
}

/// Makes a token from `spec`, adding its entries (encrypted) to `batch`.
pub fn create(barrier: &Barrier, batch: &mut Batch, spec: Spec) -> (SecretString, TokenEntry) {
    let token = SecretString::new(format!("{TOKEN_PREFIX}{}", random_base62(TOKEN_RANDOM_LEN)));
    let now = now_unix();
    let (expire_unix, max_expire_unix) = lifetime(&spec, now);
    let ttl_secs = if spec.period_secs > 0 {
        spec.period_secs
    } else {
        spec.ttl_secs
    };
    let entry = TokenEntry {
        accessor: random_base62(ACCESSOR_LEN),
        policies: spec.policies,
        created_unix: now,
        expire_unix,
        ttl_secs,
        renewable: spec.renewable,
        max_expire_unix,
        uses_left: spec.uses,
        parent: spec.parent.map(|p| p.accessor),
        period_secs: spec.period_secs,
        explicit_max_ttl_secs: spec.explicit_max_ttl_secs,
        renewed_unix: 0,
        display_name: spec.display_name,
        meta: spec.meta,
    };
    let hashed = hash(token.expose());
    put_entry(barrier, batch, &hashed, &entry);
    let accessor_path = format!("{ACCESSOR_PREFIX}{}", entry.accessor);
    batch.put(
        accessor_path.clone(),
        barrier.encrypt(&accessor_path, hashed.as_bytes()),
    );
    if let Some(parent) = &entry.parent {
        let link = format!("{PARENT_PREFIX}{parent}/{}", entry.accessor);
        batch.put(link.clone(), barrier.encrypt(&link, b""));
    }
    (token, entry)
}

/// A token found in storage: its hash (the storage key) and entry.
#[derive(Clone)]
pub struct Found {
    hashed: String,
    /// The stored entry.
    pub entry: TokenEntry,
}

/// Finds the entry of a presented token. An expired token is refused.
pub async fn lookup(barrier: &Barrier, token: Option<&str>) -> Result<Found, Error> {
    let token = token.ok_or_else(|| {
        Error::Unauthenticated(
            "this call needs a token: send it as `authorization: Bearer sr.…`".into(),
        )
    })?;
    if !well_formed(token) {
        return Err(Error::Unauthenticated(
            "the token is malformed: strongroom tokens are sr. followed by 32 letters and digits"
                .into(),
        ));
    }
    let hashed = hash(token);
    let entry = read_entry(barrier, &hashed).await?.ok_or_else(|| {
        Error::Unauthenticated("the token is not valid (unknown, expired or revoked)".into())
    })?;
    // Times are whole seconds: a token lives out its last second.
    if entry.expire_unix != 0 && now_unix() > entry.expire_unix {
        return Err(Error::Unauthenticated(format!(
            "the token expired {} seconds ago",
            now_unix() - entry.expire_unix
        )));
    }
    Ok(Found { hashed, entry })
}

async fn read_entry(barrier: &Barrier, hashed: &str) -> Result<Option<TokenEntry>, Error> {
    match barrier.get(&format!("{ID_PREFIX}{hashed}")).await? {
        Some(stored) => decode(stored.expose()).map(Some),
        None => Ok(None),
    }
}

/// True if `text` has an accessor's shape (so it is not a token pasted in
/// its place, and may be written to an audit line as it is).
pub fn is_accessor(text: &str) -> bool {
    text.len() == ACCESSOR_LEN && text.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Checks an accessor's shape. Only a well-formed accessor is repeated in a
/// message: what was given instead may be a token pasted by mistake.
fn check_accessor(accessor: &str) -> Result<(), Error> {
    if accessor.starts_with(TOKEN_PREFIX) {
        return Err(Error::InvalidArgument(
            "that is a token, not its accessor: `strongroom token list-accessors` shows the accessors".into(),
        ));
    }
    if accessor.is_empty()
        || accessor.len() > ACCESSOR_LEN
        || !accessor.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(Error::InvalidArgument(format!(
            "the accessor is malformed: accessors are {ACCESSOR_LEN} letters and digits"
        )));
    }
    Ok(())
}

/// Finds a token by its accessor; NotFound if none.
pub async fn lookup_accessor(barrier: &Barrier, accessor: &str) -> Result<Found, Error> {
    check_accessor(accessor)?;
    let not_found = || Error::NotFound(format!("no token has the accessor {accessor}"));
    let hashed = barrier
        .get(&format!("{ACCESSOR_PREFIX}{accessor}"))
        .await?
        .ok_or_else(not_found)?;
    let hashed = String::from_utf8_lossy(hashed.expose()).into_owned();
    let entry = read_entry(barrier, &hashed).await?.ok_or_else(not_found)?;
    Ok(Found { hashed, entry })
}

/// Adds the removal of `found` and all its descendants to `batch`; returns
/// how many tokens that is.
pub async fn revoke_tree(
    barrier: &Barrier,
    batch: &mut Batch,
    found: &Found,
) -> Result<usize, Error> {
    if let Some(parent) = &found.entry.parent {
        batch.delete(format!("{PARENT_PREFIX}{parent}/{}", found.entry.accessor));
    }
    let mut pending = vec![(found.hashed.clone(), found.entry.accessor.clone())];
    let mut revoked = 0;
    while let Some((hashed, accessor)) = pending.pop() {
        batch
            .delete(format!("{ID_PREFIX}{hashed}"))
            .delete(format!("{ACCESSOR_PREFIX}{accessor}"));
        revoked += 1;
        let children = format!("{PARENT_PREFIX}{accessor}/");
        for link in barrier.list(&children).await? {
            let child = link[children.len()..].to_string();
            batch.delete(link);
            if let Some(stored) = barrier.get(&format!("{ACCESSOR_PREFIX}{child}")).await? {
                let child_hash = String::from_utf8_lossy(stored.expose()).into_owned();
                pending.push((child_hash, child));
            }
        }
    }
    Ok(revoked)
}

/// Counts one use of a limited-use token: the entry is rewritten with one
/// use fewer, or revoked with its descendants on its last use.
/// Call under the token lock; returns the entry as it is after the use (on
/// the last use, as it was: it is gone from storage).
pub async fn spend_use(barrier: &Barrier, found: &Found) -> Result<TokenEntry, Error> {
    let Some(mut entry) = read_entry(barrier, &found.hashed).await? else {
        return Err(Error::Unauthenticated(
            "the token is not valid (unknown, expired or revoked)".into(),
        ));
    };
    let mut batch = Batch::new();
    match entry.uses_left {
        0 => return Ok(entry),
        1 => {
            let found = Found {
                hashed: found.hashed.clone(),
                entry: entry.clone(),
            };
            revoke_tree(barrier, &mut batch, &found).await?;
        }
        n => {
            entry.uses_left = n - 1;
            put_entry(barrier, &mut batch, &found.hashed, &entry);
        }
    }
    barrier.write(batch).await?;
    Ok(entry)
}

/// Extends `found` from now by its period, or by `increment` seconds (0:
/// its own ttl), capped at its maximum and at its parent's expiry
/// ([`renewed_expiry`]); returns the new entry. Call
/// under the token lock: the entry is read again there, so a use spent or a
/// revocation since `found` was read is not undone.
pub async fn renew(barrier: &Barrier, found: &Found, increment: u64) -> Result<TokenEntry, Error> {
    let Some(mut entry) = read_entry(barrier, &found.hashed).await? else {
        return Err(Error::NotFound(
            "the token was revoked (or used up) before it could be renewed".into(),
        ));
    };
    if entry.expire_unix == 0 {
        return Err(Error::FailedPrecondition(
            "this token never expires, so there is nothing to renew".into(),
        ));
    }
    if !entry.renewable {
        return Err(Error::FailedPrecondition(
            "this token is not renewable; it was made without renewable = true".into(),
        ));
    }
    let mut parent_expire = 0;
    if let Some(parent) = &entry.parent
        && let Ok(parent) = lookup_accessor(barrier, parent).await
    {
        parent_expire = parent.entry.expire_unix;
    }
    let now = now_unix();
    entry.expire_unix = renewed_expiry(&entry, now, increment, parent_expire);
    entry.renewed_unix = now;
    let mut batch = Batch::new();
    put_entry(barrier, &mut batch, &found.hashed, &entry);
    barrier.write(batch).await?;
    Ok(entry)
}

/// Removes every expired token (with its descendants, which expire no
/// later) in one transaction; returns how many entries went.
pub(super) async fn tidy(barrier: &Barrier) -> Result<usize, Error> {
    let now = now_unix();
    let mut expired = Vec::new();
    for path in barrier.list(ACCESSOR_PREFIX).await? {
        let Ok(found) = lookup_accessor(barrier, &path[ACCESSOR_PREFIX.len()..]).await else {
            continue;
        };
        if found.entry.expire_unix != 0 && now > found.entry.expire_unix {
            expired.push(found);
        }
    }
    // A child of an expired parent goes with the parent's tree.
    let roots: std::collections::HashSet<String> =
        expired.iter().map(|f| f.entry.accessor.clone()).collect();
    let mut batch = Batch::new();
    let mut removed = 0;
    for found in &expired {
        if found
            .entry
            .parent
            .as_ref()
            .is_some_and(|p| roots.contains(p))
        {
            continue;
        }
        removed += revoke_tree(barrier, &mut batch, found).await?;
    }
    barrier.write(batch).await?;
    Ok(removed)
}

/// Every token's entry, sorted by accessor.
pub async fn list(barrier: &Barrier) -> Result<Vec<TokenEntry>, Error> {
    let mut entries = Vec::new();
    for path in barrier.list(ACCESSOR_PREFIX).await? {
        if let Ok(found) = lookup_accessor(barrier, &path[ACCESSOR_PREFIX.len()..]).await {
            entries.push(found.entry);
        }
    }
    Ok(entries)
}

fn decode(stored: &[u8]) -> Result<TokenEntry, Error> {
    serde_json::from_slice(stored)
        .map_err(|e| Error::Internal(format!("the stored token entry is damaged: {e}")))
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

    #[tokio::test]
    async fn tidy_removes_expired_tokens_and_their_children_only() {
        let barrier = Barrier::in_memory();
        let spec = |parent: Option<TokenEntry>| Spec {
            policies: vec!["app".into()],
            ttl_secs: 3600,
            renewable: false,
            uses: 0,
            parent,
            ..Spec::root()
        };
        let mut batch = Batch::new();
        let (parent_token, parent) = create(&barrier, &mut batch, spec(None));
        let (_, child) = create(&barrier, &mut batch, spec(Some(parent.clone())));
        let (_, alive) = create(&barrier, &mut batch, spec(None));
        barrier.write(batch).await.unwrap();
        // The parent and its child expired ten seconds ago.
        for entry in [&parent, &child] {
            let found = lookup_accessor(&barrier, &entry.accessor).await.unwrap();
            let mut expired = found.entry.clone();
            expired.expire_unix = now_unix() - 10;
            let mut batch = Batch::new();
            put_entry(&barrier, &mut batch, &found.hashed, &expired);
            barrier.write(batch).await.unwrap();
        }
        assert!(lookup(&barrier, Some(parent_token.expose())).await.is_err());
        assert_eq!(tidy(&barrier).await.unwrap(), 2);
        assert!(lookup_accessor(&barrier, &parent.accessor).await.is_err());
        assert!(lookup_accessor(&barrier, &child.accessor).await.is_err());
        assert!(lookup_accessor(&barrier, &alive.accessor).await.is_ok());
        assert_eq!(tidy(&barrier).await.unwrap(), 0);
    }

    #[test]
    fn entries_written_before_periods_read_as_not_periodic() {
        let old = br#"{"accessor":"abc","policies":["app"],"created_unix":5,"expire_unix":10,"ttl_secs":5,"renewable":true,"max_expire_unix":20,"uses_left":0,"parent":null}"#;
        let entry = decode(old).unwrap();
        assert!(!entry.is_periodic());
        assert_eq!(entry.explicit_max_ttl_secs, 0);
        assert!(entry.display_name.is_empty() && entry.meta.is_empty());
        // And an entry without the new fields is written as before.
        let written = serde_json::to_value(&entry).unwrap();
        assert!(written.get("period_secs").is_none());
    }

    #[test]
    fn base62_uses_the_whole_alphabet() {
        let sample = random_base62(20_000);
        for c in BASE62.iter() {
            assert!(sample.as_bytes().contains(c), "{}", char::from(*c));
        }
    }
}
