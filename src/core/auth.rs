//! Who is calling, and what they may do.
//!
//! A caller is a token, or, for a listener with `identity` blocks, the
//! connection's identity (a unix peer's uid/gid, a client certificate's SAN
//! or CN) that the API layer matched to policies. A token, when sent, takes
//! precedence: the identity is then not consulted.

use std::sync::Arc;

use super::acl::{self, Capabilities, Capability, Policy};
use super::token::{self, Found, TokenEntry};
use super::{Core, CoreError};
use crate::audit;
use crate::barrier::Barrier;
use crate::secret::SecretString;

/// A connection identity matched to policies by a listener's `identity` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// How it was recognised, such as `unix:uid=1001` or `tls:san=spiffe://…`.
    pub name: String,
    /// The policies it maps to.
    pub policies: Vec<String>,
}

/// The credentials a call arrived with, and its audit record. `Debug`
/// leaves the token out.
#[derive(Clone, Default)]
pub struct Caller {
    token: Option<SecretString>,
    identity: Option<Identity>,
    audit: Option<Arc<audit::Call>>,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("identity", &self.identity)
            .finish()
    }
}

impl Caller {
    /// A caller with `token` (if sent) and the connection's `identity` (if any).
    pub fn new(token: Option<&str>, identity: Option<Identity>) -> Self {
        Self {
            token: token.map(|t| SecretString::new(t.to_string())),
            identity,
            audit: None,
        }
    }

    /// The same caller, whose authentication writes `call`'s request line.
    pub fn audited(self, call: Arc<audit::Call>) -> Self {
        Self {
            audit: Some(call),
            ..self
        }
    }

    /// A caller with a token only.
    pub fn with_token(token: &str) -> Self {
        Self::new(Some(token), None)
    }

    /// The token sent, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_ref().map(SecretString::expose)
    }
}

/// An authenticated caller.
pub struct Subject {
    /// The token's stored entry, when a token was used.
    pub token: Option<Found>,
    /// The identity's name, when the connection identity was used.
    pub identity: Option<String>,
    policy_names: Vec<String>,
    policies: Vec<Arc<Policy>>,
}

impl Subject {
    /// The token's entry, if a token was used.
    pub fn entry(&self) -> Option<&TokenEntry> {
        self.token.as_ref().map(|f| &f.entry)
    }

    /// The token's accessor, if a token was used.
    pub fn accessor(&self) -> Option<&str> {
        self.entry().map(|e| e.accessor.as_str())
    }

    /// The names of the policies in force.
    pub fn policy_names(&self) -> &[String] {
        &self.policy_names
    }

    /// True if the root policy is among them.
    pub fn is_root(&self) -> bool {
        self.policy_names.iter().any(|p| p == acl::ROOT_POLICY)
    }

    /// What the policies grant on `path`; root has everything but deny.
    pub fn capabilities(&self, path: &str) -> Capabilities {
        if self.is_root() {
            return Capabilities::all_granted();
        }
        acl::capabilities_on(&self.policies, path)
    }

    /// Succeeds if the policies grant `capability` on `path`.
    pub fn require(&self, path: &str, capability: Capability) -> Result<(), CoreError> {
        if self.capabilities(path).allows(capability) {
            return Ok(());
        }
        let whose = match (&self.token, &self.identity) {
            (Some(_), _) => "this token's".to_string(),
            (None, Some(identity)) => format!("{identity}'s"),
            (None, None) => "the caller's".to_string(),
        };
        let policies = if self.policy_names.is_empty() {
            "(none)".to_string()
        } else {
            self.policy_names.join(", ")
        };
        Err(CoreError::PermissionDenied(format!(
            "permission denied: {path} needs the {capability} capability, which {whose} policies ({policies}) do not grant"
        )))
    }
}

impl Core {
    /// Who the caller is, without side effects: the token looked up (not
    /// spent) or the identity taken, and the policies loaded.
    async fn identify(&self, caller: &Caller) -> Result<(Arc<Barrier>, Subject), CoreError> {
        let barrier = self.barrier()?;
        let (found, identity, policy_names) = match (caller.token(), &caller.identity) {
            (None, Some(identity)) => {
                (None, Some(identity.name.clone()), identity.policies.clone())
            }
            (token, _) => {
                let found = token::lookup(&barrier, token).await?;
                let names = found.entry.policies.clone();
                (Some(found), None, names)
            }
        };
        let policies = self.load_policies(&barrier, &policy_names).await?;
        Ok((
            barrier,
            Subject {
                token: found,
                identity,
                policy_names,
                policies,
            },
        ))
    }

    /// Checks the caller's credentials and writes the call's audit request
    /// line; needs the barrier unsealed. A token with limited uses spends
    /// one here, after the request line, so a call refused for want of an
    /// audit device spends nothing.
    pub async fn authenticate(
        &self,
        caller: &Caller,
    ) -> Result<(Arc<Barrier>, Subject), CoreError> {
        let (barrier, mut subject) = self.identify(caller).await?;
        if let Some(call) = &caller.audit {
            let who = audit::Who {
                accessor: subject.accessor().map(str::to_string),
                identity: subject.identity.clone(),
            };
            let salt = self.audit_salt().await;
            call.request(who, salt.as_deref())
                .await
                .map_err(|e| CoreError::AuditUnavailable(e.to_string()))?;
        }
        if let Some(found) = subject.token.as_mut().filter(|f| f.entry.uses_left > 0) {
            let _guard = self.token_writes.lock().await;
            found.entry = token::spend_use(&barrier, found).await?;
        }
        Ok((barrier, subject))
    }

    /// Whether the caller has `capability` on `path`, checked without
    /// spending a use or writing audit lines: for what a read-only answer
    /// shows (a quorum operation's nonce) or a refusal before a large upload.
    pub async fn may(
        &self,
        caller: &Caller,
        path: &str,
        capability: Capability,
    ) -> Result<(), CoreError> {
        let (_, subject) = self.identify(caller).await?;
        subject.require(path, capability)
    }

    /// Authenticates the caller and checks `capability` on `path`.
    pub async fn authorize(
        &self,
        caller: &Caller,
        path: &str,
        capability: Capability,
    ) -> Result<(Arc<Barrier>, Subject), CoreError> {
        let (barrier, subject) = self.authenticate(caller).await?;
        subject.require(path, capability)?;
        Ok((barrier, subject))
    }
}
