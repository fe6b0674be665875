//! The way into the services: recognising a caller (the bearer token, and
//! the connection's identity under the listener's `identity` blocks:
//! SO_PEERCRED of a unix peer, the verified client certificate of a
//! mutual-TLS connection), and opening the call's audit record.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use tonic::transport::server::UdsConnectInfo;
use tonic::{Request, Status};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};
use zeroize::Zeroizing;

use super::status;
use crate::audit::{self, Auditor, Field};
use crate::config::{IdentityRule, IdentitySelector};
use crate::core::{Caller, Core, CoreError, Identity};

/// A listener's identity blocks and the audit devices.
#[derive(Clone, Default)]
pub struct Gate {
    identities: Arc<[IdentityRule]>,
    auditor: Arc<Auditor>,
}

impl Gate {
    /// The way in of one listener.
    pub fn new(rules: &[IdentityRule], auditor: Arc<Auditor>) -> Self {
        Self {
            identities: rules.into(),
            auditor,
        }
    }

    /// The caller of `request`: its bearer token, and the identity its
    /// connection matches (every matching block's policies, merged).
    pub fn caller<T>(&self, request: &Request<T>) -> Caller {
        Caller::new(bearer(request), self.identify(request))
    }

    /// Opens the audit record of a call of `operation` on `path`; add its
    /// parameters, then [`Audit::start`] it.
    pub fn audit<T>(&self, request: &Request<T>, operation: &'static str, path: String) -> Audit {
        Audit {
            caller: self.caller(request),
            call: self
                .auditor
                .enabled()
                .then(|| audit::Call::new(Arc::clone(&self.auditor), operation, path)),
        }
    }

    fn identify<T>(&self, request: &Request<T>) -> Option<Identity> {
        if self.identities.is_empty() {
            return None;
        }
        let peer = Peer::of(request);
        let mut names = Vec::new();
        let mut policies: Vec<String> = Vec::new();
        for rule in self.identities.iter().filter(|r| peer.matches(&r.selector)) {
            names.push(rule.selector.label());
            policies.extend(rule.policies.iter().cloned());
        }
        if names.is_empty() {
            return None;
        }
        policies.sort();
        policies.dedup();
        Some(Identity {
            name: names.join(","),
            policies,
        })
    }
}

/// An audit record being filled in. Without audit devices it records nothing.
pub struct Audit {
    caller: Caller,
    call: Option<audit::Call>,
}

impl Audit {
    fn add(mut self, name: &'static str, field: impl FnOnce() -> Field) -> Self {
        if let Some(call) = &mut self.call {
            call.field(name, field());
        }
        self
    }

    /// A parameter written as is.
    pub fn plain(self, name: &'static str, value: impl Into<Value>) -> Self {
        self.add(name, || Field::Plain(value.into()))
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
        if crate::core::token::is_accessor(value) {
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

    /// The record is complete: the caller's authentication writes the
    /// request line.
    pub fn start(self) -> Audited {
        let call = self.call.map(Arc::new);
        let caller = match &call {
            Some(call) => self.caller.audited(Arc::clone(call)),
            None => self.caller,
        };
        Audited { caller, call }
    }
}

/// A call whose request line is (or will be) written.
pub struct Audited {
    caller: Caller,
    call: Option<Arc<audit::Call>>,
}

impl Audited {
    /// The caller, carrying the record.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// Writes the request line now, for a call that does not authenticate
    /// (init, unseal, quorum keys): it must not act unrecorded.
    pub async fn before_acting(&self, core: &Core) -> Result<(), Status> {
        if let Some(call) = &self.call {
            let salt = core.audit_salt().await;
            call.request(audit::Who::default(), salt.as_deref())
                .await
                .map_err(|e| status(CoreError::AuditUnavailable(e.to_string())))?;
        }
        Ok(())
    }

    /// Writes the response line of a call refused with `err`.
    pub async fn fail(self, core: &Core, err: CoreError) -> Status {
        if let Some(call) = &self.call {
            let salt = core.audit_salt().await;
            call.response(Err(&err.to_string()), salt.as_deref()).await;
        }
        status(err)
    }

    /// Writes the response line of a call answered by another module (its
    /// gRPC status on failure, no fields on success).
    pub async fn finish_status<T>(
        self,
        core: &Core,
        result: Result<T, Status>,
    ) -> Result<T, Status> {
        if let Some(call) = &self.call {
            let salt = core.audit_salt().await;
            match &result {
                Ok(_) => call.response(Ok(&[]), salt.as_deref()).await,
                Err(status) => call.response(Err(status.message()), salt.as_deref()).await,
            }
        }
        result
    }

    /// Writes the response line (`fields` of the result, or the error) and
    /// turns the result into the gRPC answer.
    pub async fn finish<T>(
        self,
        core: &Core,
        result: Result<T, CoreError>,
        fields: impl FnOnce(&T) -> Vec<(&'static str, Field)>,
    ) -> Result<T, Status> {
        if let Some(call) = &self.call {
            let salt = core.audit_salt().await;
            match &result {
                Ok(value) => call.response(Ok(&fields(value)), salt.as_deref()).await,
                Err(e) => call.response(Err(&e.to_string()), salt.as_deref()).await,
            }
        }
        result.map_err(status)
    }
}

/// What a connection tells about its peer.
#[derive(Default)]
struct Peer {
    uid: Option<u32>,
    gid: Option<u32>,
    sans: Vec<String>,
    common_names: Vec<String>,
}

impl Peer {
    fn of<T>(request: &Request<T>) -> Self {
        let mut peer = Peer::default();
        if let Some(credentials) = request
            .extensions()
            .get::<UdsConnectInfo>()
            .and_then(|info| info.peer_cred)
        {
            peer.uid = Some(credentials.uid());
            peer.gid = Some(credentials.gid());
        }
        // tonic hands over the chain the TLS handshake verified against
        // tls_client_ca_file; the leaf comes first.
        if let Some(leaf) = request
            .peer_certs()
            .as_ref()
            .and_then(|chain| chain.first().cloned())
            && let Ok((_, cert)) = X509Certificate::from_der(leaf.as_ref())
        {
            if let Ok(Some(extension)) = cert.subject_alternative_name() {
                for name in &extension.value.general_names {
                    match name {
                        GeneralName::URI(uri) => peer.sans.push((*uri).to_string()),
                        GeneralName::DNSName(dns) => peer.sans.push((*dns).to_string()),
                        _ => {}
                    }
                }
            }
            peer.common_names = cert
                .subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok().map(str::to_string))
                .collect();
        }
        peer
    }

    fn matches(&self, selector: &IdentitySelector) -> bool {
        match selector {
            IdentitySelector::Uid(uid) => self.uid == Some(*uid),
            IdentitySelector::Gid(gid) => self.gid == Some(*gid),
            IdentitySelector::CertSan(san) => self.sans.iter().any(|s| s == san),
            IdentitySelector::CertCn(cn) => self.common_names.iter().any(|c| c == cn),
        }
    }
}

/// The token from `authorization: Bearer <token>`, if any.
/// A header that is present but empty or not text yields `Some("")`: a
/// token was sent, so the listener identity is not consulted, and the empty
/// token is refused as malformed.
fn bearer<T>(request: &Request<T>) -> Option<&str> {
    let header = request.metadata().get("authorization")?;
    let Ok(value) = header.to_str() else {
        return Some("");
    };
    let value = value.trim();
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ if value.eq_ignore_ascii_case("bearer") => "",
        _ => value,
    };
    Some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_extracted() {
        let mut request = Request::new(());
        assert_eq!(bearer(&request), None);
        request
            .metadata_mut()
            .insert("authorization", "Bearer sr.abc".parse().unwrap());
        assert_eq!(bearer(&request), Some("sr.abc"));
        request
            .metadata_mut()
            .insert("authorization", "bearer  sr.x ".parse().unwrap());
        assert_eq!(bearer(&request), Some("sr.x"));
        request
            .metadata_mut()
            .insert("authorization", "sr.raw".parse().unwrap());
        assert_eq!(bearer(&request), Some("sr.raw"));
        // Sent but empty: a token was sent (and is refused), no fallback.
        request
            .metadata_mut()
            .insert("authorization", "Bearer ".parse().unwrap());
        assert_eq!(bearer(&request), Some(""));
    }

    #[test]
    fn selectors_match_their_own_kind_only() {
        let peer = Peer {
            uid: Some(1001),
            gid: Some(50),
            sans: vec!["spiffe://example.org/app".into()],
            common_names: vec!["app".into()],
        };
        assert!(peer.matches(&IdentitySelector::Uid(1001)));
        assert!(!peer.matches(&IdentitySelector::Uid(50)));
        assert!(peer.matches(&IdentitySelector::Gid(50)));
        assert!(peer.matches(&IdentitySelector::CertSan(
            "spiffe://example.org/app".into()
        )));
        assert!(!peer.matches(&IdentitySelector::CertSan("app".into())));
        assert!(peer.matches(&IdentitySelector::CertCn("app".into())));
        assert!(!Peer::default().matches(&IdentitySelector::Uid(0)));
    }
}
