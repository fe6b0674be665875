//! What a standby tells the active node about the caller of a forwarded
//! call, as request headers: the listener the call reached (its position
//! among the listener blocks, and its kind), the unix peer's uid and gid,
//! the client certificate the handshake verified, and the remote address.
//! Trusted only on the cluster listener (mutual TLS with the cluster's
//! certificate); every client listener removes these headers first.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tonic::codegen::http::{self, HeaderMap, HeaderValue};
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo, UdsConnectInfo};

use crate::api::identity::Peer;

/// Every forwarding header starts with this; a client listener drops them.
const PREFIX: &str = "x-strongroom-forwarded-";
const LISTENER: &str = "x-strongroom-forwarded-listener";
const UID: &str = "x-strongroom-forwarded-uid";
const GID: &str = "x-strongroom-forwarded-gid";
const CERT: &str = "x-strongroom-forwarded-cert";
const REMOTE: &str = "x-strongroom-forwarded-for";

/// The kind of a listener block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `listener "tcp"` (with or without TLS).
    Tcp,
    /// `listener "unix"`.
    Unix,
}

impl Kind {
    /// `tcp` or `unix`, as the config spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Tcp => "tcp",
            Kind::Unix => "unix",
        }
    }
}

/// A listener block: its position in the config, and its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// 0 for the first listener block.
    pub index: usize,
    /// Its kind.
    pub kind: Kind,
}

impl Origin {
    fn encode(self) -> String {
        format!("{}/{}", self.index, self.kind.as_str())
    }

    fn decode(text: &str) -> Option<Self> {
        let (index, kind) = text.split_once('/')?;
        let kind = match kind {
            "tcp" => Kind::Tcp,
            "unix" => Kind::Unix,
            _ => return None,
        };
        Some(Self {
            index: index.parse().ok()?,
            kind,
        })
    }
}

/// The caller of a forwarded call, as its connection to the standby showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// The standby's listener the call reached.
    pub origin: Origin,
    uid: Option<u32>,
    gid: Option<u32>,
    /// The client certificate's leaf, DER.
    cert: Option<Vec<u8>>,
    /// The remote address, for the log.
    pub remote: Option<String>,
}

impl Facts {
    /// What the connection of a request that reached `origin` tells.
    pub fn of_connection(extensions: &http::Extensions, origin: Origin) -> Self {
        let mut facts = Self {
            origin,
            uid: None,
            gid: None,
            cert: None,
            remote: None,
        };
        if let Some(credentials) = extensions
            .get::<UdsConnectInfo>()
            .and_then(|info| info.peer_cred)
        {
            facts.uid = Some(credentials.uid());
            facts.gid = Some(credentials.gid());
        }
        if let Some(tcp) = extensions.get::<TcpConnectInfo>() {
            facts.remote = tcp.remote_addr().map(|a| a.to_string());
        }
        if let Some(tls) = extensions.get::<TlsConnectInfo<TcpConnectInfo>>() {
            facts.remote = tls.get_ref().remote_addr().map(|a| a.to_string());
            facts.cert = tls
                .peer_certs()
                .and_then(|chain| chain.first().map(|leaf| leaf.as_ref().to_vec()));
        }
        facts
    }

    /// Adds the facts to a request's headers.
    pub fn write(&self, headers: &mut HeaderMap) {
        let mut put = |name: &'static str, value: String| {
            if let Ok(value) = HeaderValue::try_from(value) {
                headers.insert(name, value);
            }
        };
        put(LISTENER, self.origin.encode());
        if let Some(uid) = self.uid {
            put(UID, uid.to_string());
        }
        if let Some(gid) = self.gid {
            put(GID, gid.to_string());
        }
        if let Some(cert) = &self.cert {
            put(CERT, STANDARD.encode(cert));
        }
        if let Some(remote) = &self.remote {
            put(REMOTE, remote.clone());
        }
    }

    /// The facts a standby wrote; the sentence says what is wrong.
    pub fn read(headers: &HeaderMap) -> Result<Self, String> {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let origin = text(LISTENER)
            .and_then(Origin::decode)
            .ok_or("the cluster listener takes only calls forwarded by another node of the cluster, which name the listener they reached")?;
        let number = |name: &str| match text(name) {
            None => Ok(None),
            Some(value) => value
                .parse()
                .map(Some)
                .map_err(|_| format!("a forwarded call's {name} header is not a number")),
        };
        let cert = match text(CERT) {
            None => None,
            Some(value) => Some(
                STANDARD
                    .decode(value)
                    .map_err(|_| format!("a forwarded call's {CERT} header is not base64"))?,
            ),
        };
        Ok(Self {
            origin,
            uid: number(UID)?,
            gid: number(GID)?,
            cert,
            remote: text(REMOTE).map(str::to_string),
        })
    }

    /// The peer these facts describe, for the listener's identity blocks.
    pub fn peer(&self) -> Peer {
        let mut peer = Peer::default();
        if let (Some(uid), Some(gid)) = (self.uid, self.gid) {
            peer = peer.with_unix_credentials(uid, gid);
        }
        if let Some(cert) = &self.cert {
            peer = peer.with_certificate(cert);
        }
        peer
    }
}

/// Drops every forwarding header a caller sent: on a client listener they
/// are never believed, and a standby writes its own.
pub fn strip(headers: &mut HeaderMap) {
    let forged: Vec<http::HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(PREFIX))
        .cloned()
        .collect();
    for name in forged {
        headers.remove(&name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_survive_the_headers_and_forged_ones_are_dropped() {
        let facts = Facts {
            origin: Origin {
                index: 2,
                kind: Kind::Unix,
            },
            uid: Some(1001),
            gid: Some(50),
            cert: Some(vec![1, 2, 3]),
            remote: Some("127.0.0.1:5000".into()),
        };
        let mut headers = HeaderMap::new();
        headers.insert("x-strongroom-forwarded-uid", HeaderValue::from_static("0"));
        headers.insert(
            "X-Strongroom-Forwarded-Other",
            HeaderValue::from_static("1"),
        );
        headers.insert("authorization", HeaderValue::from_static("Bearer t"));
        strip(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(Facts::read(&headers).is_err());
        facts.write(&mut headers);
        assert_eq!(Facts::read(&headers).unwrap(), facts);
        headers.insert(UID, HeaderValue::from_static("root"));
        assert_eq!(
            Facts::read(&headers).unwrap_err(),
            "a forwarded call's x-strongroom-forwarded-uid header is not a number"
        );
    }
}
