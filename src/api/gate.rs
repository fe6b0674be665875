//! The way into every operation, whatever the transport.
//!
//! A transport turns a request into a [`Call`]: the [`Action`] it asks for,
//! the resource it names, the caller's credentials, and the parameters its
//! audit record shows. [`Call::run`] then does, in this order:
//!
//! 1. the resource and argument checks (a malformed request is refused the
//!    same way with or without a token);
//! 2. for an action with a caller: the open barrier (UNAVAILABLE while
//!    sealed), the caller's token or identity and policies, and the
//!    action's capabilities (no side effects yet);
//! 3. the audit request line, which no device recording refuses the call;
//! 4. a use of a use-limited token;
//! 5. the handler, with a [`Session`] (barrier, caller, policy path);
//! 6. the audit response line, with the handler's result or error.
//!
//! A call refused at step 1 or 2 gets two bounded audit lines instead
//! ([`crate::audit::Record::refused`]): its plain parameters cut short, none
//! of its secret ones (not even as HMACs), its path cut short, and the
//! refusal. Every error a call returns is cut to a bounded sentence.
//!
//! [`Call::run`] records each call's duration and outcome by operation
//! ([`crate::metrics`]), whatever the transport and however it ended.
//!
//! The gRPC services (`grpc/`) and the HTTP API that comes next adapt their
//! requests to this and nothing else, so both authorize and audit alike.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use zeroize::Zeroizing;

use super::actions::{self, Action, Audited, Auth, Scope};
use super::identity::Identities;
use crate::access::{Caller, Capability, Session, Subject, token};
use crate::audit::{Field, Record, Who};
use crate::error::Error;
use crate::metrics;
use crate::node::Node;
use crate::secret::SecretKey;
use crate::text;

/// The most versions of one kv delete, undelete or destroy its audit
/// lines name.
const AUDITED_VERSIONS: usize = 256;

/// The most bytes of a refused resource its audit lines show.
const REFUSED_RESOURCE_BYTES: usize = 1024;

/// What a call must show before its handler runs.
enum Needs {
    /// Nobody is asked who they are.
    Nobody,
    /// A caller whose policies grant all of these (none: any caller).
    All(&'static [Capability]),
    /// A caller whose policies grant at least one of these.
    Any(&'static [Capability]),
}

/// Why a call did not reach its handler.
enum Stopped {
    /// Refused at the checks or at authorization: recorded as refused.
    Refused(Error, Who),
    /// No audit device took the request line: nothing more is written.
    Unrecorded(Error),
    /// Failed after the request line: the response line says why.
    Failed(Error),
}

/// One listener's way in: the node it serves and its identity blocks.
#[derive(Clone)]
pub struct Gate {
    node: Arc<Node>,
    identities: Identities,
}

impl Gate {
    /// The way into `node` for a listener with `identities`.
    pub fn new(node: Arc<Node>, identities: Identities) -> Self {
        Self { node, identities }
    }

    /// The node behind the gate.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The listener's identity blocks, to recognise a request's caller.
    pub fn identities(&self) -> &Identities {
        &self.identities
    }

    /// A call of `action` about `resource` (empty for an action on a fixed
    /// path) by `caller`; add its parameters, then [`Call::run`] it.
    pub fn call(&self, action: &'static Action, resource: &str, caller: Caller) -> Call<'_> {
        let path = action.policy_path(resource);
        let audit = &self.node.audit;
        // A refused resource is recorded as it was given, cut short.
        let record = match (action.audited, &path) {
            (Audited::No, _) => None,
            (_, Ok(path)) => audit.record(action.name, path),
            (_, Err(_)) => {
                let cut = text::prefix(resource, REFUSED_RESOURCE_BYTES);
                let mark = if cut.len() < resource.len() {
                    "…"
                } else {
                    ""
                };
                audit.record(action.name, &format!("{}{cut}{mark}", action.path))
            }
        };
        Call {
            gate: self,
            action,
            caller,
            path,
            record,
            problem: self.init_refused(action).err(),
            about_another: false,
        }
    }

    /// Refuses an action that would initialize the store on a listener
    /// with `allow_init = false`.
    fn init_refused(&self, action: &Action) -> Result<(), Error> {
        // Actions are consts, with no one address: their names are unique.
        let initializing = actions::INITIALIZING.iter().any(|a| a.name == action.name);
        if self.identities.allow_init() || !initializing || self.node.lifecycle.is_initialized() {
            return Ok(());
        }
        Err(Error::PermissionDenied(
            "this listener does not take init (allow_init = false in its listener block): initialize the store over a listener that does, such as the unix socket".into(),
        ))
    }

    /// Whether an [`Auth::Reveals`] action shows `caller` what it hides
    /// from others: `caller` has a token whose policies grant the declared
    /// capabilities on the action's path. Checked without spending a use
    /// or writing audit lines; false for any other action.
    pub async fn reveals(&self, action: &Action, caller: &Caller) -> bool {
        let Auth::Reveals(capabilities) = action.auth else {
            return false;
        };
        if caller.token().is_none() {
            return false;
        }
        let Ok(barrier) = self.node.lifecycle.barrier() else {
            return false;
        };
        match self.node.access.identify(&barrier, caller).await {
            Ok(subject) => capabilities
                .iter()
                .all(|c| subject.require(action.path, *c).is_ok()),
            Err(_) => false,
        }
    }
}

/// A call on its way through the gate.
pub struct Call<'g> {
    gate: &'g Gate,
    action: &'static Action,
    caller: Caller,
    /// The policy path, or why the resource is refused.
    path: Result<String, Error>,
    /// `None` without audit devices, or for an action not audited.
    record: Option<Record>,
    /// The first argument check that failed.
    problem: Option<Error>,
    /// The request is about another caller's token ([`Auth::RequireForAnother`]).
    about_another: bool,
}

impl Call<'_> {
    fn add(mut self, name: &'static str, field: impl FnOnce() -> Field) -> Self {
        if let Some(record) = &mut self.record {
            record.field(name, field());
        }
        self
    }

    /// A parameter written as is.
    pub fn plain(self, name: &'static str, value: impl Into<Value>) -> Self {
        self.add(name, || Field::Plain(value.into()))
    }

    /// The versions a kv delete, undelete or destroy names: the first
    /// [`AUDITED_VERSIONS`] of them, and `versions_listed`, their count,
    /// when there are more (a body of a million `1,` must not write a line
    /// as long).
    pub fn versions(self, versions: &[u64]) -> Self {
        if versions.len() <= AUDITED_VERSIONS {
            return self.plain("versions", versions);
        }
        self.plain("versions", &versions[..AUDITED_VERSIONS])
            .plain("versions_listed", versions.len())
    }

    /// A parameter that names a seal: written as typed when it has a seal
    /// name's shape, otherwise as its HMAC (a share typed there by mistake
    /// never reaches the log).
    pub fn seal_name(self, name: &'static str, value: &str) -> Self {
        if value.is_empty() || crate::config::check_seal_name(value).is_ok() {
            self.plain(name, value)
        } else {
            self.secret(name, value.as_bytes())
        }
    }

    /// A secret parameter, written as its HMAC (an empty one is left out).
    pub fn secret(self, name: &'static str, value: &[u8]) -> Self {
        if value.is_empty() {
            return self;
        }
        self.add(name, || Field::Secret(Zeroizing::new(value.to_vec())))
    }

    /// An accessor the caller typed: as is when it has an accessor's shape,
    /// else as a secret (it may be a token pasted in its place).
    pub fn accessor(self, name: &'static str, value: &str) -> Self {
        if token::is_accessor(value) {
            self.plain(name, value)
        } else {
            self.secret(name, value.as_bytes())
        }
    }

    /// A map whose values are secret (a kv secret's fields).
    pub fn secret_map<'a>(
        self,
        name: &'static str,
        map: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Self {
        self.add(name, || {
            Field::SecretMap(
                map.into_iter()
                    .map(|(k, v)| (k.clone(), Zeroizing::new(v.clone())))
                    .collect::<BTreeMap<_, _>>(),
            )
        })
    }

    /// A JSON document whose leaf values are secret (a kv secret's data,
    /// as text).
    pub fn secret_json(self, name: &'static str, text: &str) -> Self {
        self.add(name, || Field::SecretJson(Zeroizing::new(text.to_string())))
    }

    /// Says whether the request is about another caller's token, for an
    /// action declared [`Auth::RequireForAnother`].
    pub fn about_another(mut self, yes: bool) -> Self {
        self.about_another = yes;
        self
    }

    /// An argument check made before the caller is authenticated, so a
    /// malformed request is refused alike with or without a token. The
    /// resource's check comes first, then these in the order given: the
    /// first that fails refuses the call.
    pub fn check(mut self, result: Result<(), Error>) -> Self {
        if let Err(e) = result
            && self.problem.is_none()
        {
            self.problem = Some(e);
        }
        self
    }

    /// Runs the call through the gate (the steps of the module's header)
    /// and `handler`; `answer` picks the result's fields for the response
    /// line. Returns the handler's result, or why the call was refused.
    pub async fn run<T, F, Fut>(
        self,
        handler: F,
        answer: impl FnOnce(&T) -> Vec<(&'static str, Field)>,
    ) -> Result<T, Error>
    where
        F: FnOnce(Session) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        // Counted once here, whatever the transport and however it ends.
        let started = Instant::now();
        let operation = self.action.name;
        let result = self.run_through(handler, answer).await;
        metrics::request(operation, outcome(&result), started);
        result
    }

    /// [`Call::run`], before it is measured.
    async fn run_through<T, F, Fut>(
        self,
        handler: F,
        answer: impl FnOnce(&T) -> Vec<(&'static str, Field)>,
    ) -> Result<T, Error>
    where
        F: FnOnce(Session) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let mut call = self;
        let result = match call.enter().await {
            Ok(session) => handler(session).await,
            Err(Stopped::Unrecorded(e)) => return Err(e.bounded()),
            Err(Stopped::Failed(e)) => Err(e),
            Err(Stopped::Refused(e, who)) => {
                let e = e.bounded();
                if let Some(record) = &call.record {
                    record.refused(who, &e.to_string()).await;
                }
                return Err(e);
            }
        };
        let result = result.map_err(Error::bounded);
        if let Some(record) = &call.record {
            let salt = call.salt().await;
            match &result {
                Ok(value) => record.response(Ok(&answer(value)), salt.as_deref()).await,
                Err(e) => record.response(Err(&e.to_string()), salt.as_deref()).await,
            }
        }
        result
    }

    /// What [`Call::run`] would authorize, without side effects: the checks,
    /// the caller and its capabilities, but no audit line and no use spent
    /// (a refusal before a large upload is received).
    pub async fn may(&self) -> Result<(), Error> {
        let path = self.checked()?;
        if let Needs::Nobody = self.needs() {
            return Ok(());
        }
        let node = self.gate.node();
        let barrier = node.lifecycle.barrier()?;
        let subject = node.access.identify(&barrier, &self.caller).await?;
        self.authorize(&subject, path)
    }

    /// Refuses the call before it ran (its upload failed, say) for
    /// `reason`, the message the caller gets: the audit record gets its
    /// request and response lines.
    pub async fn refuse(self, reason: &str) {
        if let Some(record) = &self.record {
            let salt = self.salt().await;
            record.response(Err(reason), salt.as_deref()).await;
        }
    }

    /// The policy path, once the resource and then the arguments passed
    /// their checks (a request wrong in both is refused for its resource).
    fn checked(&self) -> Result<&str, Error> {
        let path = self.path.as_deref().map_err(Clone::clone)?;
        match &self.problem {
            Some(problem) => Err(problem.clone()),
            None => Ok(path),
        }
    }

    /// What the caller must show: nothing for an action without a caller
    /// (or a restore before init).
    fn needs(&self) -> Needs {
        match self.action.auth {
            // Reveals: what the caller may see is the handler's question.
            Auth::None | Auth::Reveals(_) => Needs::Nobody,
            Auth::Caller => Needs::All(&[]),
            Auth::Require(capabilities) => Needs::All(capabilities),
            Auth::RequireAny(capabilities) => Needs::Any(capabilities),
            Auth::RequireForAnother(capabilities) if self.about_another => Needs::All(capabilities),
            Auth::RequireForAnother(_) => Needs::All(&[]),
            Auth::RequireOnceInitialized(capabilities) => {
                if self.gate.node().lifecycle.is_initialized() {
                    Needs::All(capabilities)
                } else {
                    Needs::Nobody
                }
            }
        }
    }

    /// Whether `subject` has the capabilities the action needs on `path`.
    fn authorize(&self, subject: &Subject, path: &str) -> Result<(), Error> {
        match self.needs() {
            Needs::Nobody => Ok(()),
            Needs::All(capabilities) => capabilities
                .iter()
                .try_for_each(|capability| subject.require(path, *capability)),
            Needs::Any(capabilities) => subject.require_any(path, capabilities),
        }
    }

    /// Steps 1 to 4: the session the handler runs with. Hands the policy
    /// path over to the session (the call needs it no more).
    async fn enter(&mut self) -> Result<Session, Stopped> {
        let refused = |e: Error| Stopped::Refused(e, Who::default());
        self.checked().map_err(refused)?;
        let path = std::mem::take(self.path.as_mut().map_err(|e| refused(e.clone()))?);
        if let Needs::Nobody = self.needs() {
            // Nobody to authenticate, but nothing acts unrecorded.
            self.request_line(Who::default, self.salt()).await?;
            return Ok(Session::anonymous(path));
        }
        let node = self.gate.node();
        let barrier = match self.action.scope {
            // A standby answers these itself (its own seal state).
            Scope::Node => node.lifecycle.local_barrier(),
            Scope::Active => node.lifecycle.barrier(),
        }
        .map_err(refused)?;
        let mut subject = node
            .access
            .identify(&barrier, &self.caller)
            .await
            .map_err(refused)?;
        let who = || Who {
            accessor: subject.accessor().map(str::to_string),
            identity: subject.identity.clone(),
        };
        if let Err(e) = self.authorize(&subject, &path) {
            return Err(Stopped::Refused(e, who()));
        }
        self.request_line(who, node.audit.salt(Some(&barrier)))
            .await?;
        // After the request line: a call refused for want of an audit
        // device spends nothing.
        node.access
            .spend_use(&barrier, &mut subject)
            .await
            .map_err(Stopped::Failed)?;
        Ok(Session::new(barrier, subject, path))
    }

    /// Writes the request line, with the caller `who` names and secret
    /// values under the `salt` (both made only when there is a line to
    /// write). A call no device could record does not act, unless its
    /// action says it must go on regardless.
    async fn request_line(
        &self,
        who: impl FnOnce() -> Who,
        salt: impl Future<Output = Option<Arc<SecretKey>>>,
    ) -> Result<(), Stopped> {
        let Some(record) = &self.record else {
            return Ok(());
        };
        let salt = salt.await;
        match record.request(who(), salt.as_deref()).await {
            Ok(()) => Ok(()),
            Err(e) if self.action.audited == Audited::BestEffort => {
                tracing::error!(error = %e, operation = self.action.name, "going on although no audit device could record the request: this operation is never refused for that");
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, operation = self.action.name, "refused: no audit device could record the request");
                Err(Stopped::Unrecorded(Error::AuditUnavailable(e.to_string())))
            }
        }
    }

    /// The audit salt of the barrier open now, if any: a call may have
    /// sealed or unsealed since it began.
    async fn salt(&self) -> Option<Arc<SecretKey>> {
        let node = self.gate.node();
        let barrier = node.lifecycle.barrier().ok();
        node.audit.salt(barrier.as_deref()).await
    }
}

/// A call's outcome as its metrics label: `ok`, or the error's kind.
fn outcome<T>(result: &Result<T, Error>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => match e {
            Error::InvalidArgument(_) => "invalid_argument",
            Error::Unauthenticated(_) => "unauthenticated",
            Error::PermissionDenied(_) => "permission_denied",
            Error::Sealed => "sealed",
            Error::NotInitialized => "not_initialized",
            Error::AlreadyInitialized => "already_initialized",
            Error::FailedPrecondition(_) => "failed_precondition",
            Error::NotFound(_) => "not_found",
            Error::TooLarge(_) => "too_large",
            Error::KmsUnavailable(_) => "kms_unavailable",
            Error::KmsRefused(_) => "kms_refused",
            Error::Unavailable(_) => "unavailable",
            Error::AuditUnavailable(_) => "audit_unavailable",
            Error::Internal(_) => "internal",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::actions;
    use crate::api::identity::Identities;
    use crate::lifecycle::{Operation, Phase, RekeyParams};
    use crate::node::testing;

    /// Runs `action` with a handler that does nothing, as `caller`.
    async fn authorize(gate: &Gate, action: &'static Action, caller: Caller) -> Result<(), Error> {
        gate.call(action, "", caller)
            .run(|_| async { Ok(()) }, |()| Vec::new())
            .await
    }

    #[tokio::test]
    async fn key_operations_need_the_root_token() {
        let (node, root) = testing::unsealed().await;
        let gate = Gate::new(Arc::clone(&node), Identities::default());
        for action in [
            &actions::SEAL,
            &actions::ROTATE,
            &actions::REKEY_INIT,
            &actions::REKEY_CANCEL,
            &actions::ROTATE_ROOT_INIT,
            &actions::SNAPSHOT_SAVE,
            &actions::SNAPSHOT_RESTORE,
        ] {
            assert!(
                matches!(
                    authorize(&gate, action, Caller::default()).await,
                    Err(Error::Unauthenticated(_))
                ),
                "{}",
                action.name
            );
            authorize(&gate, action, Caller::with_token(&root))
                .await
                .unwrap();
        }
        // A rotation leaves the token (written under the first term) working.
        node.lifecycle.rotate().await.unwrap();
        authorize(&gate, &actions::ROTATE, Caller::with_token(&root))
            .await
            .unwrap();
        // Share holders need no token.
        authorize(&gate, &actions::REKEY_UPDATE, Caller::default())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_root_token_seals_and_a_sealed_daemon_answers_unavailable() {
        let (node, root) = testing::unsealed().await;
        let gate = Gate::new(Arc::clone(&node), Identities::default());
        let lifecycle = &node.lifecycle;
        let seal = |caller| {
            gate.call(&actions::SEAL, "", caller).run(
                |_| async move {
                    lifecycle.seal().await;
                    Ok(())
                },
                |()| Vec::new(),
            )
        };
        assert!(matches!(
            seal(Caller::default()).await,
            Err(Error::Unauthenticated(_))
        ));
        seal(Caller::with_token(&root)).await.unwrap();
        assert_eq!(lifecycle.phase(), Phase::Sealed);
        assert_eq!(
            seal(Caller::with_token(&root)).await.err(),
            Some(Error::Sealed)
        );
    }

    #[tokio::test]
    async fn a_restore_needs_no_token_before_init_only() {
        let (node, root) = testing::unsealed().await;
        let gate = Gate::new(Arc::clone(&node), Identities::default());
        let call = gate.call(&actions::SNAPSHOT_RESTORE, "", Caller::default());
        assert!(matches!(call.may().await, Err(Error::Unauthenticated(_))));
        let call = gate.call(&actions::SNAPSHOT_RESTORE, "", Caller::with_token(&root));
        call.may().await.unwrap();

        let gate = Gate::new(testing::uninitialized().await, Identities::default());
        gate.call(&actions::SNAPSHOT_RESTORE, "", Caller::default())
            .may()
            .await
            .unwrap();
        authorize(&gate, &actions::SNAPSHOT_RESTORE, Caller::default())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn nonces_are_for_tokens_with_sudo() {
        let (node, root) = testing::unsealed().await;
        let gate = Gate::new(Arc::clone(&node), Identities::default());
        node.lifecycle
            .rekey_init(RekeyParams {
                shares: None,
                threshold: None,
                target: None,
                verify: false,
                recipients: Vec::new(),
            })
            .unwrap();
        let status = &actions::REKEY_STATUS;
        assert!(gate.reveals(status, &Caller::with_token(&root)).await);
        assert!(!gate.reveals(status, &Caller::default()).await);
        assert!(
            !gate
                .reveals(
                    status,
                    &Caller::with_token("sr.0000000000000000000000000000000A")
                )
                .await
        );
        // Only an action that declares it reveals anything.
        assert!(
            !gate
                .reveals(&actions::REKEY_INIT, &Caller::with_token(&root))
                .await
        );
        // Anyone may ask.
        let asked = gate
            .call(status, "", Caller::default())
            .run(
                |_| async { Ok(node.lifecycle.quorum_status(Operation::Rekey, false)) },
                |_| Vec::new(),
            )
            .await
            .unwrap();
        assert!(asked.started);
    }

    #[tokio::test]
    async fn a_malformed_request_is_refused_before_its_caller_is_asked() {
        let (node, _) = testing::unsealed().await;
        let gate = Gate::new(node, Identities::default());
        let refused = gate
            .call(&actions::KV_GET, "a//b", Caller::default())
            .run(|_| async { Ok(()) }, |()| Vec::new())
            .await;
        assert!(matches!(refused, Err(Error::InvalidArgument(_))));
        let refused = gate
            .call(&actions::KV_GET, "a", Caller::default())
            .check(Err(Error::InvalidArgument("bad".into())))
            .run(|_| async { Ok(()) }, |()| Vec::new())
            .await;
        assert_eq!(refused, Err(Error::InvalidArgument("bad".into())));
        // Wrong in both: the resource is named, then the checks in order.
        let refused = gate
            .call(&actions::KV_GET, "a//b", Caller::default())
            .check(Err(Error::InvalidArgument("bad".into())))
            .run(|_| async { Ok(()) }, |()| Vec::new())
            .await;
        assert!(
            matches!(&refused, Err(Error::InvalidArgument(m)) if m.contains("a//b")),
            "{refused:?}"
        );
        let refused = gate
            .call(&actions::KV_GET, "a", Caller::default())
            .check(Err(Error::InvalidArgument("first".into())))
            .check(Err(Error::InvalidArgument("second".into())))
            .run(|_| async { Ok(()) }, |()| Vec::new())
            .await;
        assert_eq!(refused, Err(Error::InvalidArgument("first".into())));
        let refused = gate
            .call(&actions::KV_GET, "a", Caller::default())
            .run(|_| async { Ok(()) }, |()| Vec::new())
            .await;
        assert!(matches!(refused, Err(Error::Unauthenticated(_))));
    }

    #[tokio::test]
    async fn a_handler_checks_request_capabilities_on_the_actions_path() {
        let (node, root) = testing::unsealed().await;
        let gate = Gate::new(node, Identities::default());
        let path = gate
            .call(&actions::KV_PUT, "app/db", Caller::with_token(&root))
            .run(
                |session| async move {
                    session.require(Capability::Update)?;
                    Ok(session.path().to_string())
                },
                |_| Vec::new(),
            )
            .await
            .unwrap();
        assert_eq!(path, "secret/data/app/db");
    }
}
