//! Tokens: the store of token entries (`store`, which says how a token is
//! made, kept and revoked) and [`Tokens`], the component that creates,
//! looks up, renews, revokes and tidies them for a call's session.

use std::collections::BTreeMap;

use super::acl::{self, Capability};
use super::caller::{Session, Subject};
use crate::barrier::Barrier;
use crate::error::Error;
use crate::names::ROOT_POLICY;
use crate::secret::SecretString;
use crate::storage::Batch;

mod lifetime;
mod store;

pub use store::{
    Found, MAX_TTL_SECS, ROOT_DISPLAY_NAME, Spec, TokenEntry, create, is_accessor, lookup,
};
use store::{list, lookup_accessor, renew, revoke_tree, spend_use};

/// The longest `display_name` taken, and the most `meta` labels and their
/// sizes: labels, not storage.
const MAX_DISPLAY_NAME: usize = 256;
const MAX_META: usize = 64;
const MAX_META_KEY: usize = 128;
const MAX_META_VALUE: usize = 1024;

/// What `CreateToken` asks for.
#[derive(Clone, Debug, Default)]
pub struct CreateParams {
    /// Policies for the new token; empty: the creator's own.
    pub policies: Vec<String>,
    /// Lifetime in seconds; 0: the default (never, for a root token made by root).
    pub ttl_secs: u64,
    /// Renewals may extend it.
    pub renewable: bool,
    /// Calls allowed; 0: unlimited.
    pub uses: u32,
    /// No parent: it survives its creator's revocation (needs `sudo`,
    /// unless asked on Vault's own path for it, below).
    pub orphan: bool,
    /// Asked on Vault's `auth/token/create-orphan`, whose own capability
    /// lets the caller make orphans (no `sudo`, as Vault's).
    pub orphan_path: bool,
    /// Vault's `period` in seconds (needs `sudo`; then `ttl_secs` is
    /// ignored): renewable forever, each renewal good for one period.
    pub period_secs: u64,
    /// A hard limit from creation, renewals included; 0: none.
    pub explicit_max_ttl_secs: u64,
    /// Vault's `display_name`: shown as `token-<name>`.
    pub display_name: String,
    /// Vault's `meta`: labels shown by lookups.
    pub meta: BTreeMap<String, String>,
}

impl CreateParams {
    /// Checks the sizes and limits that need no caller.
    fn check(&self) -> Result<(), Error> {
        for (name, secs) in [("ttl", self.ttl_secs), ("period", self.period_secs)] {
            if secs > MAX_TTL_SECS {
                return Err(Error::InvalidArgument(format!(
                    "{name} {secs}s is longer than the maximum of {MAX_TTL_SECS}s (768h)"
                )));
            }
        }
        if self.display_name.len() > MAX_DISPLAY_NAME {
            return Err(Error::InvalidArgument(format!(
                "display_name is longer than {MAX_DISPLAY_NAME} bytes"
            )));
        }
        let too_long = self
            .meta
            .iter()
            .any(|(k, v)| k.len() > MAX_META_KEY || v.len() > MAX_META_VALUE);
        if self.meta.len() > MAX_META || too_long {
            return Err(Error::InvalidArgument(format!(
                "meta takes at most {MAX_META} labels, keys of at most {MAX_META_KEY} bytes and values of at most {MAX_META_VALUE}"
            )));
        }
        Ok(())
    }
}

/// Vault's display name: `token-` and the name asked for, every character
/// but letters, digits and `-` made `-`, a trailing `-` dropped; `token`
/// when none was asked for.
fn display_name(asked: &str) -> String {
    if asked.is_empty() {
        return String::new();
    }
    let full: String = format!("token-{asked}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    full.strip_suffix('-').unwrap_or(&full).to_string()
}

/// The token store's writers: uses spent, renewals, revocations, expired
/// tokens tidied, and children made while their parent might be revoked
/// are serialised by its lock.
#[derive(Default)]
pub struct Tokens {
    writes: tokio::sync::Mutex<()>,
}

impl Tokens {
    /// Spends one use of `found`, a use-limited token, after the call's
    /// audit request line was written (so a call refused for want of an
    /// audit device spends nothing); its last use revokes it with its
    /// descendants. `found` becomes the entry as it is after the use.
    pub async fn spend_use(&self, barrier: &Barrier, found: &mut Found) -> Result<(), Error> {
        let _guard = self.writes.lock().await;
        found.entry = spend_use(barrier, found).await?;
        Ok(())
    }

    /// Makes a token (`create`; an orphan, or a token made by a listener
    /// identity, also needs `sudo`). A caller that is not root may only
    /// hand out policies it has itself, and its own expiry caps the new
    /// token's.
    pub async fn create(
        &self,
        session: &Session,
        params: CreateParams,
    ) -> Result<(SecretString, TokenEntry), Error> {
        let barrier = session.barrier()?;
        let subject = session.subject()?;
        params.check()?;
        let mut policies = if params.policies.is_empty() {
            subject.policy_names().to_vec()
        } else {
            params.policies
        };
        policies.sort();
        policies.dedup();
        for name in &policies {
            acl::validate_name(name)?;
            if !subject.is_root() && !subject.policy_names().contains(name) {
                return Err(Error::PermissionDenied(format!(
                    "permission denied: a token may only be given policies its creator has, and the creator lacks {name:?}"
                )));
            }
        }
        // A caller known by its listener identity has no token to hang the
        // new one from, so it makes an orphan, and needs sudo as any orphan
        // maker does: a sidecar with nothing to leak should not hand out
        // bearer tokens unless the operator says so.
        // A periodic token has no maximum lifetime: as Vault, only root or
        // a caller with sudo may make one.
        let orphan_needs_sudo = params.orphan && !params.orphan_path;
        if orphan_needs_sudo || params.period_secs > 0 || subject.entry().is_none() {
            session.require(Capability::Sudo)?;
        } else if subject.entry().is_some_and(|e| e.uses_left > 0) {
            // Orphans too (create-orphan), as Vault's: a use-limited token
            // makes no tokens at all without sudo.
            if params.orphan {
                return Err(Error::FailedPrecondition(
                    "a token with a use limit cannot make tokens on auth/token/create-orphan, as Vault's: use a token without a use limit".into(),
                ));
            }
            return Err(Error::FailedPrecondition(
                "a token with a use limit cannot make child tokens: they would be revoked with it at its last use; make an orphan (--orphan, needs sudo) or use a token without a use limit".into(),
            ));
        }
        let root = policies.iter().any(|p| p == ROOT_POLICY);
        let ttl_secs = match params.ttl_secs {
            0 if root => 0,
            0 => MAX_TTL_SECS,
            ttl => ttl,
        };
        let parent = if params.orphan {
            None
        } else {
            subject.entry().cloned()
        };
        // Under the lock, so a parent being revoked meanwhile cannot miss
        // the new child.
        let _guard = self.writes.lock().await;
        if let Some(parent) = &parent {
            lookup_accessor(barrier, &parent.accessor)
                .await
                .map_err(|_| {
                    Error::Unauthenticated(
                        "the token is not valid (unknown, expired or revoked)".into(),
                    )
                })?;
        }
        let mut batch = Batch::new();
        let spec = Spec {
            policies,
            ttl_secs,
            renewable: params.renewable,
            uses: params.uses,
            parent,
            period_secs: params.period_secs,
            explicit_max_ttl_secs: params.explicit_max_ttl_secs,
            display_name: display_name(&params.display_name),
            meta: params.meta,
        };
        let (token, entry) = create(barrier, &mut batch, spec);
        barrier.write(batch).await?;
        tracing::info!(accessor = %entry.accessor, policies = ?entry.policies, "token created");
        Ok((token, entry))
    }

    /// The entry of the caller's own token (any valid token may).
    pub fn lookup_self(&self, session: &Session) -> Result<TokenEntry, Error> {
        own_token(session.subject()?).map(|f| f.entry.clone())
    }

    /// The entry of another token, by the token or its accessor (`read` on
    /// `auth/token/lookup`, checked by the gate).
    pub async fn lookup(&self, session: &Session, target: Target<'_>) -> Result<TokenEntry, Error> {
        Ok(find(session.barrier()?, target).await?.entry)
    }

    /// Renews a token: the caller's own (any valid token may), or another
    /// (`update` on the call's path, `auth/token/renew`).
    pub async fn renew(
        &self,
        session: &Session,
        target: Option<Target<'_>>,
        increment: u64,
    ) -> Result<TokenEntry, Error> {
        let barrier = session.barrier()?;
        let found = subject_of(session, target).await?;
        let _guard = self.writes.lock().await;
        let entry = renew(barrier, &found, increment).await?;
        tracing::info!(accessor = %entry.accessor, "token renewed");
        Ok(entry)
    }

    /// Revokes a token and its descendants: the caller's own (any valid
    /// token may), or another (`update` on the call's path:
    /// `auth/token/revoke`, or `auth/token/revoke-accessor` by accessor).
    /// Returns how many tokens were revoked.
    pub async fn revoke(
        &self,
        session: &Session,
        target: Option<Target<'_>>,
    ) -> Result<usize, Error> {
        let barrier = session.barrier()?;
        let found = subject_of(session, target).await?;
        let _guard = self.writes.lock().await;
        let mut batch = Batch::new();
        let revoked = revoke_tree(barrier, &mut batch, &found).await?;
        barrier.write(batch).await?;
        tracing::info!(accessor = %found.entry.accessor, revoked, "token revoked with its descendants");
        Ok(revoked)
    }

    /// Every token's entry, sorted by accessor (`sudo` on
    /// `auth/token/accessors`): Vault's list of accessors.
    pub async fn list_accessors(&self, session: &Session) -> Result<Vec<TokenEntry>, Error> {
        list(session.barrier()?).await
    }

    /// The accessors of every root token, with their creation times (`sudo`
    /// on `auth/token/accessors`): how an operator finds a lost root token.
    pub async fn list_root_accessors(&self, session: &Session) -> Result<Vec<TokenEntry>, Error> {
        let mut entries = list(session.barrier()?).await?;
        entries.retain(TokenEntry::is_root);
        Ok(entries)
    }

    /// Removes the entries of expired tokens (with their descendants) in one
    /// transaction; returns how many went. An expired token is refused at
    /// once anyway: this only reclaims its storage.
    pub async fn tidy(&self, barrier: &Barrier) -> Result<usize, Error> {
        let _guard = self.writes.lock().await;
        store::tidy(barrier).await
    }
}

/// Which token an operation is about.
#[derive(Clone, Copy)]
pub enum Target<'a> {
    /// The token itself.
    Token(&'a str),
    /// Its accessor.
    Accessor(&'a str),
}

async fn find(barrier: &Barrier, target: Target<'_>) -> Result<Found, Error> {
    match target {
        Target::Accessor(accessor) => lookup_accessor(barrier, accessor).await,
        Target::Token(token) => lookup(barrier, Some(token)).await.map_err(|_| {
            Error::NotFound(
                "no valid token matches the one given (unknown, expired or revoked)".into(),
            )
        }),
    }
}

/// The token a renewal or revocation is about: the caller's own, or
/// another, which needs `update` on the call's path.
async fn subject_of(session: &Session, target: Option<Target<'_>>) -> Result<Found, Error> {
    match target {
        None => own_token(session.subject()?).cloned(),
        Some(target) => {
            session.require(Capability::Update)?;
            find(session.barrier()?, target).await
        }
    }
}

fn own_token(subject: &Subject) -> Result<&Found, Error> {
    subject.token.as_ref().ok_or_else(|| {
        Error::InvalidArgument(
            "this call is about the caller's own token, and none was sent (the connection was identified by its listener identity)".into(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_read_as_vaults() {
        assert_eq!(display_name(""), "");
        assert_eq!(display_name("my app"), "token-my-app");
        assert_eq!(display_name("ci/deploy!"), "token-ci-deploy");
    }
}
