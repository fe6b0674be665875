//! Who sends a request, whatever its transport: the token the transport
//! found in its headers, and the peer its connection tells about.

use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo, UdsConnectInfo};

use super::Gate;
use super::forward::Facts;
use super::identity::Peer;
use crate::access::Caller;

/// The caller of a request carrying `token` on a connection whose facts
/// tonic put in `extensions`: the token, and the identity the connection
/// matches under the listener's identity blocks. On the cluster listener
/// the connection is a standby's: the peer is the one the standby
/// forwarded the call for (none without its facts).
pub fn caller(gate: &Gate, token: Option<&str>, extensions: &http::Extensions) -> Caller {
    let identities = gate.identities();
    if identities.is_forwarded() {
        let facts = extensions.get::<Facts>();
        return identities.caller(token, || facts.map(Facts::peer).unwrap_or_default());
    }
    identities.caller(token, || peer(extensions))
}

/// What tonic tells about a request's connection.
fn peer(extensions: &http::Extensions) -> Peer {
    let mut peer = Peer::default();
    if let Some(credentials) = extensions
        .get::<UdsConnectInfo>()
        .and_then(|info| info.peer_cred)
    {
        peer = peer.with_unix_credentials(credentials.uid(), credentials.gid());
    }
    // tonic hands over the chain the TLS handshake verified against
    // tls_client_ca_file; the leaf comes first.
    if let Some(leaf) = extensions
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(TlsConnectInfo::peer_certs)
        .and_then(|chain| chain.first().cloned())
    {
        peer = peer.with_certificate(leaf.as_ref());
    }
    peer
}
