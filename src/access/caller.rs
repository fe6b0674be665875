//! Who is calling, and what they may do.
//!
//! A [`Caller`] is what a request arrives with: a token, and for a listener
//! with `identity` blocks, the connection's identity (a unix peer's uid/gid,
//! a client certificate's SAN or CN) matched to policies by the API layer. A
//! token, when sent, takes precedence: the identity is then not consulted.
//! Authenticating a caller gives a [`Subject`] (its token entry and
//! policies); a call that passed the gate runs with a [`Session`].

use std::sync::Arc;

use super::acl::{self, Capabilities, Capability, Policy};
use super::token::{Found, TokenEntry};
use crate::barrier::Barrier;
use crate::error::Error;
use crate::names::ROOT_POLICY;
use crate::secret::SecretString;

/// A connection identity matched to policies by a listener's `identity` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// How it was recognised, such as `unix:uid=1001` or `tls:san=spiffe://…`.
    pub name: String,
    /// The policies it maps to.
    pub policies: Vec<String>,
}

/// The credentials a call arrived with. `Debug` leaves the token out.
#[derive(Clone, Default)]
pub struct Caller {
    token: Option<SecretString>,
    identity: Option<Identity>,
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

    /// The connection's identity, if one matched.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
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
    pub(super) fn new(
        token: Option<Found>,
        identity: Option<String>,
        policy_names: Vec<String>,
        policies: Vec<Arc<Policy>>,
    ) -> Self {
        Self {
            token,
            identity,
            policy_names,
            policies,
        }
    }

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
        self.policy_names.iter().any(|p| p == ROOT_POLICY)
    }

    /// What the policies grant on `path`; root has everything but deny.
    pub fn capabilities(&self, path: &str) -> Capabilities {
        if self.is_root() {
            return Capabilities::all_granted();
        }
        acl::capabilities_on(&self.policies, path)
    }

    /// Succeeds if the policies grant `capability` on `path`.
    pub fn require(&self, path: &str, capability: Capability) -> Result<(), Error> {
        self.require_any(path, &[capability])
    }

    /// Checks that the caller's policies grant at least one of
    /// `capabilities` on `path`; the refusal names them all, so it says
    /// nothing about which one the request would have needed (create or
    /// update: whether the thing exists).
    pub fn require_any(&self, path: &str, capabilities: &[Capability]) -> Result<(), Error> {
        let granted = match capabilities {
            [Capability::List] if path.ends_with('/') && !self.is_root() => {
                acl::list_capabilities_on(&self.policies, path)
            }
            _ => self.capabilities(path),
        };
        if capabilities.iter().any(|c| granted.allows(*c)) {
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
        let needed = match capabilities {
            [one] => format!("the {one} capability"),
            many => {
                let names: Vec<String> = many.iter().map(ToString::to_string).collect();
                format!("the {} capability", names.join(" or "))
            }
        };
        Err(Error::PermissionDenied(format!(
            "permission denied: {path} needs {needed}, which {whose} policies ({policies}) do not grant"
        )))
    }
}

/// What a call that passed the gate runs with: the open barrier and the
/// authenticated caller with the policy path of its call, so a handler
/// checks a capability that depends on the request (create or update,
/// another's token) on the same path the gate authorized. A call that needs
/// no caller (init, unseal, a share for a quorum) has neither.
pub struct Session {
    barrier: Option<Arc<Barrier>>,
    subject: Option<Subject>,
    path: String,
}

impl Session {
    /// A call by `subject` on `path`, through `barrier`.
    pub fn new(barrier: Arc<Barrier>, subject: Subject, path: String) -> Self {
        Self {
            barrier: Some(barrier),
            subject: Some(subject),
            path,
        }
    }

    /// A call that needs no caller, on `path`.
    pub fn anonymous(path: String) -> Self {
        Self {
            barrier: None,
            subject: None,
            path,
        }
    }

    /// The policy path of the call.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The open barrier. Every call with a caller has one: authentication
    /// reads through it.
    pub fn barrier(&self) -> Result<&Barrier, Error> {
        self.barrier
            .as_deref()
            .ok_or_else(|| no_caller("the barrier"))
    }

    /// The authenticated caller.
    pub fn subject(&self) -> Result<&Subject, Error> {
        self.subject.as_ref().ok_or_else(|| no_caller("a caller"))
    }

    /// Succeeds if the caller's policies grant `capability` on the call's path.
    pub fn require(&self, capability: Capability) -> Result<(), Error> {
        self.subject()?.require(&self.path, capability)
    }

    /// Succeeds if the caller's policies grant `capability` on `path` too
    /// (a call that acts on a second thing, as a distribution on its key).
    pub fn require_on(&self, path: &str, capability: Capability) -> Result<(), Error> {
        self.subject()?.require(path, capability)
    }
}

#[cfg(test)]
impl Session {
    /// A root caller's session on `path`, for the components' unit tests.
    pub(crate) fn root_for_tests(barrier: Arc<Barrier>, path: &str) -> Self {
        let root = Subject::new(None, None, vec![ROOT_POLICY.into()], Vec::new());
        Self::new(barrier, root, path.into())
    }
}

/// A handler that needs a caller ran for an action declared without one:
/// a programming error, answered rather than panicked on.
fn no_caller(what: &str) -> Error {
    Error::Internal(format!(
        "this operation needs {what}, but its action is declared without a caller"
    ))
}
