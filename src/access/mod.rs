//! Access control: who a caller is (a token, or the listener identity of
//! its connection), what its policies grant on a path, and the stores of
//! tokens and policies.
//!
//! Nothing here reads the seal state: the gate (`api::gate`) hands in the
//! open barrier with each call. Authorizing a call is the gate's sequence:
//! [`Access::identify`] (no side effects), the audit request line,
//! [`Access::spend_use`], then [`Subject::require`] of the action's
//! capabilities.

pub mod acl;
mod caller;
mod policy;
pub mod token;
mod upgrade;

use async_trait::async_trait;

pub use acl::Capability;
pub use caller::{Caller, Identity, Session, Subject};
pub use policy::{Policies, refuse_root};
pub use token::Tokens;

use crate::barrier::{Barrier, Hooks};
use crate::error::Error;

/// Tokens and policies.
#[derive(Default)]
pub struct Access {
    /// The policy store and its cache.
    pub policies: Policies,
    /// The token store.
    pub tokens: Tokens,
}

impl Access {
    /// Who the caller is, without side effects: the token looked up (not
    /// spent) or the identity taken, and its policies loaded (a policy named
    /// but not stored is skipped).
    pub async fn identify(&self, barrier: &Barrier, caller: &Caller) -> Result<Subject, Error> {
        let (found, identity, policy_names) = match (caller.token(), caller.identity()) {
            (None, Some(identity)) => {
                (None, Some(identity.name.clone()), identity.policies.clone())
            }
            (token, _) => {
                let found = token::lookup(barrier, token).await?;
                let names = found.entry.policies.clone();
                (Some(found), None, names)
            }
        };
        let policies = self.policies.load(barrier, &policy_names).await?;
        Ok(Subject::new(found, identity, policy_names, policies))
    }

    /// Spends a use of the subject's token when it has a use limit.
    pub async fn spend_use(&self, barrier: &Barrier, subject: &mut Subject) -> Result<(), Error> {
        match subject.token.as_mut().filter(|f| f.entry.uses_left > 0) {
            Some(found) => self.tokens.spend_use(barrier, found).await,
            None => Ok(()),
        }
    }
}

#[async_trait]
impl Hooks for Access {
    async fn opening(&self, barrier: &Barrier) -> Result<(), Error> {
        self.policies.upgrade(barrier).await
    }

    fn closed(&self) {
        self.policies.clear_cache();
    }
}
