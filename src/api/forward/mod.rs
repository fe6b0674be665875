//! HA forwarding (docs/HA.md, Forwarding): a standby sends every call of
//! an action that runs on the active node ([`Scope::Active`]) to the
//! active node's `cluster_addr`, as it came (streams too), with the
//! caller's facts ([`facts`]) added, and passes the answer back unchanged.
//!
//! It works on HTTP requests in front of the routes, not inside a gRPC
//! method: the request is known by its path alone ([`resolve`]), its body
//! is never decoded, and Vault's HTTP API (issue 15), served on the same
//! listeners, goes through the same layer once its paths resolve to their
//! actions. The active node takes a forwarded call on its cluster listener
//! ([`Accept`]), which gives it to the routes of the same listener block
//! with the forwarded facts in place of the connection's: identity rules,
//! `allow_init`, the request size limit and the audit lines are those of a
//! call made to that listener of the active node directly. The standby
//! writes no audit line for a forwarded call, as in Vault.

mod accept;
mod body;
pub mod facts;
mod pool;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http::{Request, Response};
use tower::{Layer, Service, ServiceExt};

pub use accept::Accept;
pub use facts::{Facts, Kind, Origin};

use super::actions::{Action, Scope};
use crate::lifecycle::{Leader, Phase};
use crate::node::Node;
use body::Relayed;
use pool::Pool;

/// A response on its way.
type Answer<E> = Pin<Box<dyn Future<Output = Result<Response<Body>, E>> + Send>>;

/// The action a gRPC request asks for, from its path; `None` for anything
/// that is not one of strongroom's operations (health, reflection).
pub fn resolve<B>(request: &Request<B>) -> Option<&'static Action> {
    super::grpc::action_of(request.uri().path())
}

/// Where a request runs: a gRPC request by its method's action, a request
/// of Vault's HTTP API by its path; `None` for what no node forwards.
fn scope_of<B>(request: &Request<B>) -> Option<Scope> {
    if super::http::is_grpc(request.headers().get(http::header::CONTENT_TYPE)) {
        return resolve(request).map(|action| action.scope);
    }
    super::http::scope_of(request.uri().path())
}

/// Whether a forwarding error happened before the request could reach the
/// active node: the connection was refused or the host unreachable, or the
/// server refused the stream unprocessed. Anything else (a timeout, a TLS
/// failure) is answered with the cautious "may or may not" sentence.
fn refused_before_sending(err: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::AddrNotAvailable
                    | ErrorKind::HostUnreachable
                    | ErrorKind::NetworkUnreachable
            )
        {
            return true;
        }
        let text = e.to_string();
        if text.starts_with("tcp connect error") || text.contains("REFUSED_STREAM") {
            return true;
        }
        cause = e.source();
    }
    false
}

/// An error and its causes, each said once (the transport's errors repeat
/// their source's words).
fn causes(err: &dyn std::error::Error) -> String {
    let mut said: Vec<String> = vec![err.to_string()];
    let mut cause = err.source();
    while let Some(next) = cause {
        let text = next.to_string();
        if !said.iter().any(|s| s.contains(&text)) {
            said.push(text);
        }
        cause = next.source();
    }
    said.join(": ")
}

/// What every client listener of a node shares: the node, and the
/// connection to the active node.
pub struct Forwarder {
    node: Arc<Node>,
    pool: Pool,
}

impl Forwarder {
    /// The forwarding of `node`'s client listeners.
    pub fn new(node: Arc<Node>) -> Arc<Self> {
        Arc::new(Self {
            node,
            pool: Pool::default(),
        })
    }

    /// The layer for the client listener `origin`.
    pub fn layer(self: &Arc<Self>, origin: Origin) -> ForwardLayer {
        ForwardLayer {
            forwarder: Arc::clone(self),
            origin,
        }
    }

    /// Where `request` goes instead of this node: the active node, when
    /// this node stands by, the action runs on the active node, and the
    /// active node advertised a `cluster_addr`. Otherwise this node
    /// answers (a standby then says where the active node is).
    fn target<B>(&self, request: &Request<B>) -> Option<Leader> {
        let scope = scope_of(request)?;
        let lifecycle = &self.node.lifecycle;
        if scope != Scope::Active || lifecycle.phase() != Phase::Standby {
            return None;
        }
        lifecycle.leader().filter(|l| !l.cluster_addr.is_empty())
    }

    /// Sends `request` to `active` with the caller's `facts`; any failure
    /// before the answer began is UNAVAILABLE with a sentence.
    async fn send(&self, request: Request<Body>, facts: Facts, active: Leader) -> Response<Body> {
        let grpc = super::http::is_grpc(request.headers().get(http::header::CONTENT_TYPE));
        match self.try_send(request, facts, &active).await {
            Ok(response) => response,
            Err(message) if grpc => Status::unavailable(message).into_http(),
            Err(message) => {
                super::http::HttpError::new(http::StatusCode::SERVICE_UNAVAILABLE, message)
                    .into_response()
                    .map(Body::new)
            }
        }
    }

    async fn try_send(
        &self,
        mut request: Request<Body>,
        facts: Facts,
        active: &Leader,
    ) -> Result<Response<Body>, String> {
        let tls = {
            // Not held across the call: a restore waits for every holder.
            let barrier = self
                .node
                .lifecycle
                .local_barrier()
                .map_err(|e| e.to_string())?;
            self.node
                .cluster
                .tls(&barrier)
                .await
                .map_err(|e| e.to_string())?
        }
        .ok_or("the active node has not made the cluster's certificate yet; retry in a moment")?;
        let channel = self.pool.channel(&active.cluster_addr, &tls)?;
        http1_to_http2(&mut request);
        facts.write(request.headers_mut());
        let response = channel.oneshot(request).await.map_err(|e| {
            // Refused before the call left (no connection): not made. Past
            // that the active node may have acted before it failed.
            if refused_before_sending(&e) {
                format!(
                    "this node is a standby and could not forward the call to the active node at {}: {}; retry in a moment",
                    active.cluster_addr,
                    causes(&e)
                )
            } else {
                format!(
                    "this node is a standby and lost the active node at {} during the call ({}): the call may or may not have been made; read it back before you retry",
                    active.cluster_addr,
                    causes(&e)
                )
            }
        })?;
        let cluster_addr = active.cluster_addr.clone();
        Ok(response.map(|body| Body::new(Relayed::new(body, cluster_addr))))
    }
}

/// Readies a request that came over HTTP/1.1 (Vault's API) for the HTTP/2
/// connection to the active node: HTTP/2 forbids the connection-specific
/// headers of HTTP/1.1.
fn http1_to_http2<B>(request: &mut Request<B>) {
    if request.version() == http::Version::HTTP_2 {
        return;
    }
    *request.version_mut() = http::Version::HTTP_2;
    let headers = request.headers_mut();
    for name in [
        http::header::CONNECTION,
        http::header::TRANSFER_ENCODING,
        http::header::UPGRADE,
        http::header::TE,
        http::header::HOST,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

/// Forwarding in front of one client listener's routes.
#[derive(Clone)]
pub struct ForwardLayer {
    forwarder: Arc<Forwarder>,
    origin: Origin,
}

impl<S> Layer<S> for ForwardLayer {
    type Service = Forward<S>;

    fn layer(&self, inner: S) -> Forward<S> {
        Forward {
            inner,
            forwarder: Arc::clone(&self.forwarder),
            origin: self.origin,
        }
    }
}

/// The service of [`ForwardLayer`].
#[derive(Clone)]
pub struct Forward<S> {
    inner: S,
    forwarder: Arc<Forwarder>,
    origin: Origin,
}

impl<S> Service<Request<Body>> for Forward<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Send,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Answer<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        // A caller's own forwarding headers are never believed.
        facts::strip(request.headers_mut());
        let Some(active) = self.forwarder.target(&request) else {
            return Box::pin(self.inner.call(request));
        };
        let facts = Facts::of_connection(request.extensions(), self.origin);
        let forwarder = Arc::clone(&self.forwarder);
        Box::pin(async move { Ok(forwarder.send(request, facts, active).await) })
    }
}
