//! What a request says about who sends it, whatever its transport: the
//! bearer token of its `authorization` header, and the connection's peer
//! (SO_PEERCRED of a unix peer, the client certificate a mutual-TLS
//! handshake verified), matched against the listener's `identity` blocks.

use std::sync::Arc;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::access::{Caller, Identity};
use crate::config::{IdentityRule, IdentitySelector};

/// What a connection tells about its peer.
#[derive(Default)]
pub struct Peer {
    uid: Option<u32>,
    gid: Option<u32>,
    uris: Vec<String>,
    dns_names: Vec<String>,
    common_names: Vec<String>,
}

impl Peer {
    /// A unix socket peer with these credentials.
    pub fn with_unix_credentials(mut self, uid: u32, gid: u32) -> Self {
        self.uid = Some(uid);
        self.gid = Some(gid);
        self
    }

    /// A peer whose client certificate (DER, as the TLS handshake verified
    /// it against `tls_client_ca_file`) is `leaf`: its URI and DNS subject
    /// alternative names (kept apart: `cert_san` matches URIs only,
    /// `cert_dns_san` DNS names) and its subject common names. A certificate that
    /// does not parse adds nothing.
    pub fn with_certificate(mut self, leaf: &[u8]) -> Self {
        let Ok((_, cert)) = X509Certificate::from_der(leaf) else {
            return self;
        };
        if let Ok(Some(extension)) = cert.subject_alternative_name() {
            for name in &extension.value.general_names {
                match name {
                    GeneralName::URI(uri) => self.uris.push((*uri).to_string()),
                    GeneralName::DNSName(dns) => self.dns_names.push((*dns).to_string()),
                    _ => {}
                }
            }
        }
        self.common_names = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_string))
            .collect();
        self
    }

    fn matches(&self, selector: &IdentitySelector) -> bool {
        match selector {
            IdentitySelector::Uid(uid) => self.uid == Some(*uid),
            IdentitySelector::Gid(gid) => self.gid == Some(*gid),
            IdentitySelector::CertSan(uri) => self.uris.iter().any(|u| u == uri),
            IdentitySelector::CertDnsSan(name) => self.dns_names.iter().any(|d| d == name),
            IdentitySelector::CertCn(cn) => self.common_names.iter().any(|c| c == cn),
        }
    }
}

/// How a listener serves `sys/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsAccess {
    /// Served at all (the top-level `telemetry` block's
    /// `prometheus_retention_time` is not zero).
    pub served: bool,
    /// Served without a token (the listener's `telemetry` block's
    /// `unauthenticated_metrics_access`).
    pub unauthenticated: bool,
}

impl Default for MetricsAccess {
    /// Served, to a token with `read` on `sys/metrics`, as Vault's default.
    fn default() -> Self {
        Self {
            served: true,
            unauthenticated: false,
        }
    }
}

/// A listener's identity blocks, whether it takes Init (`allow_init`),
/// and how it serves `sys/metrics`.
#[derive(Clone)]
pub struct Identities {
    rules: Arc<[IdentityRule]>,
    allow_init: bool,
    metrics: MetricsAccess,
    /// On the cluster listener: the caller is the one a standby forwarded
    /// the call for, never the connection's peer (the standby).
    forwarded: bool,
}

impl Default for Identities {
    /// No identity blocks; Init allowed, as a listener without `allow_init`.
    fn default() -> Self {
        Self::new(&[])
    }
}

impl Identities {
    /// The blocks of one listener (Init allowed).
    pub fn new(rules: &[IdentityRule]) -> Self {
        Self {
            rules: rules.into(),
            allow_init: true,
            metrics: MetricsAccess::default(),
            forwarded: false,
        }
    }

    /// The same blocks applied to calls forwarded by a standby: the peer
    /// is the one the standby's facts describe.
    pub fn forwarded(self) -> Self {
        Self {
            forwarded: true,
            ..self
        }
    }

    /// Whether these apply to forwarded calls (the cluster listener).
    pub fn is_forwarded(&self) -> bool {
        self.forwarded
    }

    /// The same, with the listener's `allow_init` setting.
    pub fn with_allow_init(self, allow_init: bool) -> Self {
        Self { allow_init, ..self }
    }

    /// Whether the listener takes Init (`allow_init`, default true).
    pub fn allow_init(&self) -> bool {
        self.allow_init
    }

    /// The same, serving `sys/metrics` as `metrics` says.
    pub fn with_metrics(self, metrics: MetricsAccess) -> Self {
        Self { metrics, ..self }
    }

    /// How the listener serves `sys/metrics`.
    pub fn metrics(&self) -> MetricsAccess {
        self.metrics
    }

    /// The caller of a request: its bearer token, and the identity its
    /// connection matches (every matching block's policies, merged). `peer`
    /// is asked for only when the listener has identity blocks.
    pub fn caller(&self, token: Option<&str>, peer: impl FnOnce() -> Peer) -> Caller {
        Caller::new(token, self.identify(peer))
    }

    fn identify(&self, peer: impl FnOnce() -> Peer) -> Option<Identity> {
        if self.rules.is_empty() {
            return None;
        }
        let peer = peer();
        let mut names = Vec::new();
        let mut policies: Vec<String> = Vec::new();
        for rule in self.rules.iter().filter(|r| peer.matches(&r.selector)) {
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

/// The token of an `authorization` header (`Bearer <token>`; the scheme is
/// case-insensitive and may be left out), if the header was sent. A header
/// that is present but empty or not text yields `Some("")`: a token was
/// sent, so the listener identity is not consulted, and the empty token is
/// refused as malformed.
pub fn bearer(header: Option<&[u8]>) -> Option<&str> {
    let header = header?;
    // Visible ASCII, as HTTP header values are read as text.
    let visible = |b: &u8| *b == b'\t' || (0x20..0x7f).contains(b);
    let Some(value) = std::str::from_utf8(header)
        .ok()
        .filter(|_| header.iter().all(visible))
    else {
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
        assert_eq!(bearer(None), None);
        assert_eq!(bearer(Some(b"Bearer sr.abc")), Some("sr.abc"));
        assert_eq!(bearer(Some(b"bearer  sr.x ")), Some("sr.x"));
        assert_eq!(bearer(Some(b"sr.raw")), Some("sr.raw"));
        // Sent but empty: a token was sent (and is refused), no fallback.
        assert_eq!(bearer(Some(b"Bearer ")), Some(""));
        assert_eq!(bearer(Some(b"\xff")), Some(""));
        assert_eq!(bearer(Some("sr.é".as_bytes())), Some(""));
    }

    #[test]
    fn selectors_match_their_own_kind_only() {
        let peer = Peer {
            uid: Some(1001),
            gid: Some(50),
            uris: vec!["spiffe://example.org/app".into()],
            dns_names: vec!["app.example.org".into()],
            common_names: vec!["app".into()],
        };
        assert!(peer.matches(&IdentitySelector::Uid(1001)));
        assert!(!peer.matches(&IdentitySelector::Uid(50)));
        assert!(peer.matches(&IdentitySelector::Gid(50)));
        assert!(peer.matches(&IdentitySelector::CertSan(
            "spiffe://example.org/app".into()
        )));
        assert!(!peer.matches(&IdentitySelector::CertSan("app".into())));
        // URI and DNS names are told apart (issue 13 item 9).
        assert!(!peer.matches(&IdentitySelector::CertSan("app.example.org".into())));
        assert!(peer.matches(&IdentitySelector::CertDnsSan("app.example.org".into())));
        assert!(!peer.matches(&IdentitySelector::CertDnsSan(
            "spiffe://example.org/app".into()
        )));
        assert!(peer.matches(&IdentitySelector::CertCn("app".into())));
        assert!(!Peer::default().matches(&IdentitySelector::Uid(0)));
    }
}
