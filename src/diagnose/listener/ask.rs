//! Asks whatever holds a listener's address whether it is a strongroom:
//! one `GET /v1/sys/health` (what load balancers ask), over TLS when the
//! listener has it. Nothing is sent but the request line, and nothing read
//! is trusted: the certificate is not verified, as only the answer's shape
//! is looked at.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};

/// How long the whole question may take.
const TIMEOUT: Duration = Duration::from_secs(3);

/// What a strongroom said at `addr` ("initialized, unsealed, version …"),
/// or `None` when nothing there answers as one.
pub async fn tcp(addr: SocketAddr, tls: bool) -> Option<String> {
    // A wildcard address is reached through loopback.
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let target = SocketAddr::new(ip, addr.port());
    tokio::time::timeout(TIMEOUT, async move {
        let stream = tokio::net::TcpStream::connect(target).await.ok()?;
        if !tls {
            return health(stream, &target.to_string()).await;
        }
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config()?));
        let stream = connector
            .connect(ServerName::IpAddress(ip.into()), stream)
            .await
            .ok()?;
        health(stream, &target.to_string()).await
    })
    .await
    .ok()
    .flatten()
}

/// As [`tcp`], on a unix socket.
pub async fn unix(path: &Path) -> Option<String> {
    tokio::time::timeout(TIMEOUT, async {
        let stream = tokio::net::UnixStream::connect(path).await.ok()?;
        health(stream, "localhost").await
    })
    .await
    .ok()
    .flatten()
}

async fn health(stream: impl AsyncRead + AsyncWrite + Unpin, host: &str) -> Option<String> {
    let answer = crate::diagnose::health::ask(stream, host).await.ok()?;
    describe(&answer)
}

/// The health answer's state, if `answer` is one.
fn describe(value: &serde_json::Value) -> Option<String> {
    let initialized = value.get("initialized")?.as_bool()?;
    let sealed = value.get("sealed")?.as_bool()?;
    let version = value
        .get("version")
        .and_then(|v| v.as_str())
        .map(|v| format!(", version {}", crate::text::quote(v)))
        .unwrap_or_default();
    Some(format!(
        "{}, {}{version}",
        if initialized {
            "initialized"
        } else {
            "not initialized"
        },
        if sealed { "sealed" } else { "unsealed" }
    ))
}

fn client_config() -> Option<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .ok()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Some(config)
}

/// Accepts any server certificate (its signatures are still checked):
/// the question is whether a strongroom answers, not whom to trust.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn a_health_answer_is_described_and_anything_else_is_not() {
        let answer = serde_json::json!({"initialized": true, "sealed": false, "version": "0.1.0"});
        assert_eq!(
            describe(&answer).as_deref(),
            Some("initialized, unsealed, version \"0.1.0\"")
        );
        assert_eq!(describe(&serde_json::json!({"errors": []})), None);
    }
}
