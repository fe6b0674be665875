//! The one question diagnose asks a strongroom it finds running: Vault's
//! `GET /v1/sys/health`, with every state answering 200 so the body alone
//! tells it, over a unix socket or TCP (with TLS when the listener has it:
//! the certificate is not verified, as only the answer's shape is looked
//! at). Used by the storage area (a daemon holds the store) and the
//! listener area (something holds the address). Nothing read is trusted:
//! the answer is bounded and only its shape is looked at.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::storage::UnverifiedServer as Unverified;

/// The most of an answer read: a health answer is a few hundred bytes.
const MAX_ANSWER: u64 = 64 * 1024;

/// The health answer of whatever listens at `addr` (a wildcard address is
/// asked on loopback), over TLS when `tls`; the error is one sentence.
/// The caller bounds the time.
pub async fn tcp(addr: SocketAddr, tls: bool) -> Result<serde_json::Value, String> {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let target = SocketAddr::new(ip, addr.port());
    let stream = tokio::net::TcpStream::connect(target)
        .await
        .map_err(|e| e.to_string())?;
    if !tls {
        return ask(stream, &target.to_string()).await;
    }
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config()?));
    let stream = connector
        .connect(ServerName::IpAddress(ip.into()), stream)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    ask(stream, &target.to_string())
        .await
        .map_err(|e| format!("{AFTER_HANDSHAKE}{e}"))
}

/// How an error after a completed TLS handshake begins: a TLS server is
/// there (one that wants a client certificate refuses only now).
pub const AFTER_HANDSHAKE: &str = "after the TLS handshake: ";

/// As [`tcp`], on a unix socket.
pub async fn unix(path: &Path) -> Result<serde_json::Value, String> {
    let stream = tokio::net::UnixStream::connect(path)
        .await
        .map_err(|e| e.to_string())?;
    ask(stream, "localhost").await
}

/// Sends the health request on `stream` (to `host`) and returns the JSON
/// body of the answer; the error is one sentence.
async fn ask(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    host: &str,
) -> Result<serde_json::Value, String> {
    let request = format!(
        "GET /v1/sys/health?standbyok=true&sealedcode=200&uninitcode=200 HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    // A peer that closes without TLS's close_notify still sent its answer:
    // what was read counts, whatever ended the read.
    let read = (&mut stream)
        .take(MAX_ANSWER)
        .read_to_end(&mut answer)
        .await;
    if answer.is_empty()
        && let Err(e) = read
    {
        return Err(e.to_string());
    }
    body(&answer)
}

/// The JSON object after the headers of `answer`: from the first brace to
/// the last (a chunked body has its sizes around it).
pub fn body(answer: &[u8]) -> Result<serde_json::Value, String> {
    let text = String::from_utf8_lossy(answer);
    let (_, after) = text
        .split_once("\r\n\r\n")
        .ok_or("its answer is not an HTTP answer")?;
    let json = after
        .find('{')
        .zip(after.rfind('}'))
        .and_then(|(start, end)| after.get(start..=end))
        .ok_or("its answer has no JSON body")?;
    serde_json::from_str(json).map_err(|_| "its answer's body is not JSON".to_string())
}

fn client_config() -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Unverified::new(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::body;

    #[test]
    fn a_body_is_found_and_braces_out_of_order_do_not_panic() {
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1a\r\n{\"initialized\":true}\r\n0\r\n\r\n";
        assert_eq!(body(chunked).unwrap()["initialized"], true);
        for odd in [
            &b"HTTP/1.1 200 OK\r\n\r\n}{"[..],
            b"HTTP/1.1 200 OK\r\n\r\n} x {",
            b"HTTP/1.1 200 OK\r\n\r\n{",
            b"HTTP/1.1 200 OK\r\n\r\n",
            b"SSH-2.0-OpenSSH_9.6\r\n",
        ] {
            assert!(body(odd).is_err(), "{}", String::from_utf8_lossy(odd));
        }
    }
}
