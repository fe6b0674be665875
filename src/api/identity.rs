//! Recognising a caller: the bearer token, and the connection's identity
//! under the listener's `identity` blocks (SO_PEERCRED of a unix peer, the
//! verified client certificate of a mutual-TLS connection).

use std::sync::Arc;

use tonic::Request;
use tonic::transport::server::UdsConnectInfo;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::config::{IdentityRule, IdentitySelector};
use crate::core::{Caller, Identity};

/// A listener's identity blocks.
#[derive(Clone, Default)]
pub struct Identities(Arc<[IdentityRule]>);

impl Identities {
    /// The rules of one listener.
    pub fn new(rules: &[IdentityRule]) -> Self {
        Self(rules.into())
    }

    /// The caller of `request`: its bearer token, and the identity its
    /// connection matches (every matching block's policies, merged).
    pub fn caller<T>(&self, request: &Request<T>) -> Caller {
        Caller::new(bearer(request), self.identify(request))
    }

    fn identify<T>(&self, request: &Request<T>) -> Option<Identity> {
        if self.0.is_empty() {
            return None;
        }
        let peer = Peer::of(request);
        let mut names = Vec::new();
        let mut policies: Vec<String> = Vec::new();
        for rule in self.0.iter().filter(|r| peer.matches(&r.selector)) {
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
fn bearer<T>(request: &Request<T>) -> Option<&str> {
    let value = request
        .metadata()
        .get("authorization")?
        .to_str()
        .ok()?
        .trim();
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => value,
    };
    (!token.is_empty()).then_some(token)
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
