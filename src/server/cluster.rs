//! The cluster listener of a node with HA (docs/HA.md, Forwarding): bound
//! at start on `cluster_addr`'s host and port, mutual TLS with the
//! cluster's certificate only, serving the calls standbys forward to this
//! node when it is active. Until the node has the cluster's certificate
//! (sealed, or no node has been active yet) every handshake is refused.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tonic::service::Routes;
use tonic::transport::Server;

use super::drain::InFlight;
use super::listener::{Bound, ListenerError, accept_tls};
use super::tls;
use crate::api::forward::{Accept, Kind};
use crate::api::{self, Identities};
use crate::cluster::ClusterTls;
use crate::node::Node;

/// The bound cluster listener.
pub struct ClusterListener {
    listener: TcpListener,
    address: SocketAddr,
}

/// Binds `cluster_addr`'s host and port when the node has HA and one
/// (the config checked that it is an `https://` address).
pub async fn bind(node: &Node) -> Result<Option<ClusterListener>, ListenerError> {
    let Some(own) = node.lifecycle.advertised() else {
        return Ok(None);
    };
    let Some(host_port) = own.cluster_addr.strip_prefix("https://") else {
        return Ok(None);
    };
    let host_port = host_port.trim_end_matches('/');
    let error = |source| ListenerError::Bind {
        address: own.cluster_addr.clone(),
        source,
    };
    let listener = TcpListener::bind(host_port).await.map_err(error)?;
    let address = listener.local_addr().map_err(error)?;
    tracing::info!(transport = "cluster", address = %address, tls = "mutual", "listening");
    Ok(Some(ClusterListener { listener, address }))
}

/// The kind of a client listener, as a forwarded call names it.
pub fn kind(bound: &Bound) -> Kind {
    match bound {
        Bound::Tcp { .. } => Kind::Tcp,
        Bound::Unix { .. } => Kind::Unix,
    }
}

/// What the cluster listener serves: every client listener's routes, with
/// the same identity blocks, `allow_init` and size limit, taking the
/// forwarded caller's facts.
pub fn accept(shared: &Routes, node: &Arc<Node>, listeners: &[Bound]) -> Accept {
    Accept::new(
        listeners
            .iter()
            .map(|bound| {
                let identities = Identities::new(bound.identities())
                    .with_allow_init(bound.allow_init())
                    .forwarded();
                let routes = api::routes(shared, node, bound.max_request_size(), identities);
                (kind(bound), routes)
            })
            .collect(),
    )
}

/// Serves forwarded calls on `cluster` until `signal`.
pub async fn serve(
    cluster: ClusterListener,
    node: Arc<Node>,
    accept: Accept,
    in_flight: InFlight,
    signal: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    tracing::debug!(address = %cluster.address, "serving forwarded calls");
    let incoming = incoming(cluster.listener, node);
    Server::builder()
        .layer(in_flight.layer())
        .layer(accept)
        .add_routes(Routes::default())
        .serve_with_incoming_shutdown(incoming, signal)
        .await
}

/// The TLS config for the cluster's certificate, made once per certificate.
#[derive(Default)]
struct Configs(Mutex<Option<(Arc<ClusterTls>, Arc<ServerConfig>)>>);

impl Configs {
    async fn current(&self, node: &Node) -> Option<Arc<ServerConfig>> {
        let tls = {
            let barrier = node.lifecycle.local_barrier().ok()?;
            node.cluster.tls(&barrier).await.ok()??
        };
        let mut cached = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((made_for, config)) = &*cached
            && Arc::ptr_eq(made_for, &tls)
        {
            return Some(Arc::clone(config));
        }
        match tls::cluster_server_config(&tls) {
            Ok(config) => {
                *cached = Some((tls, Arc::clone(&config)));
                Some(config)
            }
            Err(e) => {
                tracing::error!(error = %e, "the cluster certificate is unusable; forwarded calls are refused");
                None
            }
        }
    }
}

/// Accepts connections and completes their handshakes concurrently with
/// the cluster's certificate as it is when each connection arrives.
fn incoming(
    listener: TcpListener,
    node: Arc<Node>,
) -> impl tokio_stream::Stream<Item = io::Result<TlsStream<TcpStream>>> {
    let configs = Arc::new(Configs::default());
    let acceptor = move |peer: SocketAddr| {
        let (node, configs) = (Arc::clone(&node), Arc::clone(&configs));
        async move {
            let Some(config) = configs.current(&node).await else {
                tracing::debug!(%peer, "cluster connection refused: this node has no cluster certificate (sealed, or no node was active yet)");
                return None;
            };
            Some(TlsAcceptor::from(config))
        }
    };
    accept_tls(listener, "cluster listener", tracing::Level::INFO, acceptor)
}
