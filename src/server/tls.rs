//! TLS for TCP listeners, through rustls with the ring provider.
//!
//! A listener keeps its `ServerConfig` in an `ArcSwap`, so SIGHUP can load
//! new certificate files and every later handshake uses them, while
//! established connections carry on undisturbed.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::cluster::ClusterTls;
use crate::config::TlsFiles;

/// Why the TLS files could not be used. Names the file; never contains key bytes.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM item.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the combination (key does not match certificate, …).
    #[error("TLS configuration refused: {0}")]
    Rustls(String),
}

fn file_error(path: &Path, reason: impl ToString) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "contains no PEM certificate"));
    }
    Ok(certs)
}

/// Builds a server config from the listener's files: TLS 1.2 and 1.3, ALPN
/// `h2`, and client certificates required when a client CA is given.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = load_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| file_error(&files.key, e))?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in load_certs(ca)? {
                roots.add(cert).map_err(|e| file_error(ca, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Rustls(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    // gRPC over h2; Vault's HTTP API over either (the server tells them
    // apart by the connection's first bytes, not by ALPN).
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The cluster listener's config: the cluster's node certificate, and
/// client certificates required and verified against the cluster's CA
/// alone, so only another node of the cluster completes a handshake.
pub fn cluster_server_config(tls: &ClusterTls) -> Result<Arc<ServerConfig>, TlsError> {
    let refused = |e: &dyn std::fmt::Display| TlsError::Rustls(e.to_string());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    let ca = CertificateDer::from_pem_slice(tls.ca_pem.as_bytes()).map_err(|e| refused(&e))?;
    roots.add(ca).map_err(|e| refused(&e))?;
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .build()
            .map_err(|e| refused(&e))?;
    let cert = CertificateDer::from_pem_slice(tls.cert_pem.as_bytes()).map_err(|e| refused(&e))?;
    let key = PrivateKeyDer::from_pem_slice(tls.key_pem.expose().as_bytes())
        .map_err(|_| TlsError::Rustls("the cluster certificate's key does not parse".into()))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| refused(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert], key)
        .map_err(|e| refused(&e))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}
