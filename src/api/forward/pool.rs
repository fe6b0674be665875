//! The connection to the active node: one HTTP/2 connection over mutual
//! TLS with the cluster's certificate, shared by every forwarded call (the
//! channel multiplexes them and reconnects after a failure), made anew when
//! another node becomes active.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::causes;
use crate::cluster::{ClusterTls, SERVER_NAME};

/// How long a connection to the active node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// HTTP/2 pings on an idle connection, so a dead peer is noticed.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

struct Link {
    cluster_addr: String,
    tls: Arc<ClusterTls>,
    channel: Channel,
}

/// The connection to the active node, once one was made.
#[derive(Default)]
pub struct Pool {
    link: Mutex<Option<Link>>,
}

impl Pool {
    /// The connection to the node at `cluster_addr`, with the cluster's
    /// certificates `tls`: the one already made, or a new one (connected
    /// on first use) when the active node or the certificates changed.
    pub fn channel(&self, cluster_addr: &str, tls: &Arc<ClusterTls>) -> Result<Channel, String> {
        let mut link = self.link.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(link) = &*link
            && link.cluster_addr == cluster_addr
            // The same certificates, read again (after a cache drop), are
            // the same link: compare what they say, not where they live.
            && link.tls.cert_pem == tls.cert_pem
            && link.tls.ca_pem == tls.ca_pem
        {
            return Ok(link.channel.clone());
        }
        let channel = connect(cluster_addr, tls)?;
        *link = Some(Link {
            cluster_addr: cluster_addr.to_string(),
            tls: Arc::clone(tls),
            channel: channel.clone(),
        });
        Ok(channel)
    }
}

fn connect(cluster_addr: &str, tls: &ClusterTls) -> Result<Channel, String> {
    let refused = |e: tonic::transport::Error| {
        format!(
            "cannot reach the active node at {cluster_addr}: {}",
            causes(&e)
        )
    };
    let config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&tls.ca_pem))
        .identity(Identity::from_pem(&tls.cert_pem, tls.key_pem.expose()))
        .domain_name(SERVER_NAME);
    Ok(Endpoint::from_shared(cluster_addr.to_string())
        .map_err(refused)?
        .tls_config(config)
        .map_err(refused)?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEP_ALIVE)
        .keep_alive_while_idle(true)
        .connect_lazy())
}
