//! The cluster's certificates, for mutual TLS between HA nodes on
//! `cluster_addr` (docs/HA.md, Forwarding).
//!
//! As Vault does, the cluster makes its own: the first node to become
//! active makes a CA and one node certificate signed by it, writes the CA
//! certificate, the node certificate and its key behind the barrier at
//! [`TLS_PATH`], and drops the CA's key. Every node then presents that
//! node certificate and accepts only a peer whose certificate chains to
//! that CA, which only the one certificate does. A standby reads the entry
//! through its own (read-only) barrier; it never writes.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use async_trait::async_trait;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use serde::{Deserialize, Serialize};

use crate::barrier::{Barrier, Hooks};
use crate::error::Error;
use crate::secret::SecretString;

/// Where the cluster's certificates are kept, behind the barrier.
pub const TLS_PATH: &str = "core/cluster/tls";

/// The name the node certificate carries and every node verifies: nodes
/// are reached at whatever address they advertise, so the name is fixed.
pub const SERVER_NAME: &str = "cluster.strongroom.internal";

/// The stored entry's format.
const FORMAT: u32 = 1;

/// The cluster's CA certificate, its node certificate and that
/// certificate's key, in PEM.
pub struct ClusterTls {
    /// The CA every node trusts, and nothing else.
    pub ca_pem: String,
    /// The certificate every node presents.
    pub cert_pem: String,
    /// Its key.
    pub key_pem: SecretString,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    format: u32,
    ca: String,
    cert: String,
    key: String,
}

/// The component: makes the certificates on the first take-over, and
/// hands them to the transport, read once per barrier.
pub struct Cluster {
    /// HA is on: without it nothing is made or read.
    enabled: bool,
    /// The certificates and the barrier they were read through (a new
    /// unseal is a new barrier: read again).
    cached: Mutex<Option<(Weak<Barrier>, Arc<ClusterTls>)>>,
}

impl Cluster {
    /// The component of a node; `enabled` with HA.
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            cached: Mutex::new(None),
        }
    }

    /// The cluster's certificates as read through `barrier` (the active
    /// node's, or a standby's read-only one); `None` when HA is off or the
    /// active node has not made them yet.
    pub async fn tls(&self, barrier: &Arc<Barrier>) -> Result<Option<Arc<ClusterTls>>, Error> {
        if !self.enabled {
            return Ok(None);
        }
        if let Some((read_through, tls)) = &*self.cache()
            && std::ptr::eq(read_through.as_ptr(), Arc::as_ptr(barrier))
        {
            return Ok(Some(Arc::clone(tls)));
        }
        let Some(tls) = read(barrier).await? else {
            return Ok(None);
        };
        let tls = Arc::new(tls);
        *self.cache() = Some((Arc::downgrade(barrier), Arc::clone(&tls)));
        Ok(Some(tls))
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Option<(Weak<Barrier>, Arc<ClusterTls>)>> {
        self.cached.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl Hooks for Cluster {
    /// On the active node (HA's `opening` is the take-over): makes the
    /// certificates if the store has none.
    async fn opening(&self, barrier: &Barrier) -> Result<(), Error> {
        if !self.enabled || read(barrier).await?.is_some() {
            return Ok(());
        }
        let stored = make()?;
        let json = zeroize::Zeroizing::new(
            serde_json::to_vec(&stored).map_err(|e| Error::Internal(e.to_string()))?,
        );
        barrier
            .put(TLS_PATH, &json)
            .await
            .map_err(|e| Error::Internal(format!("cannot store the cluster certificate: {e}")))?;
        tracing::info!(
            path = TLS_PATH,
            "made the cluster's certificate for mutual TLS between nodes"
        );
        Ok(())
    }

    fn closed(&self) {
        *self.cache() = None;
    }
}

async fn read(barrier: &Barrier) -> Result<Option<ClusterTls>, Error> {
    let stored = barrier
        .get(TLS_PATH)
        .await
        .map_err(|e| Error::Internal(format!("cannot read the cluster certificate: {e}")))?;
    let Some(stored) = stored else {
        return Ok(None);
    };
    let stored: Stored = serde_json::from_slice(stored.expose()).map_err(|e| {
        Error::Internal(format!(
            "the cluster certificate at {TLS_PATH} is damaged: {e}"
        ))
    })?;
    if stored.format != FORMAT {
        return Err(Error::Internal(format!(
            "the cluster certificate at {TLS_PATH} has format {}, which this version does not read",
            stored.format
        )));
    }
    Ok(Some(ClusterTls {
        ca_pem: stored.ca,
        cert_pem: stored.cert,
        key_pem: SecretString::new(stored.key),
    }))
}

/// A new CA (ECDSA P-256) and a node certificate it signs, for both ends
/// of a connection; the CA's key is dropped here.
fn make() -> Result<Stored, Error> {
    let failed =
        |e: rcgen::Error| Error::Internal(format!("cannot make the cluster certificate: {e}"));
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    ca.distinguished_name
        .push(DnType::CommonName, "strongroom cluster CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let issuer =
        CertifiedIssuer::self_signed(ca, KeyPair::generate().map_err(failed)?).map_err(failed)?;
    let mut node = CertificateParams::new(vec![SERVER_NAME.to_string()]).map_err(failed)?;
    node.distinguished_name
        .push(DnType::CommonName, "strongroom cluster node");
    node.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    node.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().map_err(failed)?;
    let cert = node.signed_by(&key, &issuer).map_err(failed)?;
    Ok(Stored {
        format: FORMAT,
        ca: issuer.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

#[cfg(test)]
mod tests {
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::pem::PemObject;

    use super::*;

    #[test]
    fn the_node_certificate_is_signed_by_the_ca_and_names_the_cluster() {
        let stored = make().unwrap();
        let ca = rustls::pki_types::CertificateDer::from_pem_slice(stored.ca.as_bytes()).unwrap();
        let cert =
            rustls::pki_types::CertificateDer::from_pem_slice(stored.cert.as_bytes()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let name = rustls::pki_types::ServerName::try_from(SERVER_NAME).unwrap();
        verifier
            .verify_server_cert(&cert, &[], &name, &[], rustls::pki_types::UnixTime::now())
            .unwrap();
        // Another cluster's certificate does not pass.
        let other = make().unwrap();
        let other =
            rustls::pki_types::CertificateDer::from_pem_slice(other.cert.as_bytes()).unwrap();
        assert!(
            verifier
                .verify_server_cert(&other, &[], &name, &[], rustls::pki_types::UnixTime::now())
                .is_err()
        );
    }
}
