//! Vault's HTTP API, beside gRPC on the same listeners.
//!
//! A request whose `content-type` is `application/grpc…` goes to tonic;
//! every other request comes here ([`routes`]). Each endpoint turns its
//! request into a call through the same gate as the gRPC method of the
//! same operation (the action, the resource, the caller, the audit
//! fields) and the result into Vault's JSON; so both transports authorize
//! and audit alike. Vault's conventions: `/v1/<path>`, PUT and POST alike,
//! `LIST` and `GET ?list=true` alike, the token in `X-Vault-Token` or
//! `Authorization: Bearer`, errors as `{"errors":["…"]}` with Vault's
//! status codes.
//!
//! Routing is by hand on the path's leading segments, as Vault's paths take
//! any depth (`secret/data/a/b/c`) and a method (LIST) that no router
//! knows: `sys.rs` (the seal lifecycle, health, leader) hands `sys/` paths
//! of other areas to `quorum.rs` (key status, rotate, rekey, generate-root,
//! audit-hash), `policy.rs` (`sys/policies/acl`), `mounts.rs`
//! (`sys/mounts`, `sys/internal/ui/mounts`) and `metrics.rs`
//! (`sys/metrics`); `kv.rs` serves `secret/`,
//! `transit.rs` `transit/`, `keymgmt/` `keymgmt/` (bring your own key),
//! `token.rs` `auth/token/`.

mod keymgmt;
mod kv;
mod metrics;
mod mounts;
mod policy;
mod quorum;
mod reply;
mod request;
mod seal_status;
mod sys;
mod token;
mod transit;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use http::{HeaderValue, header};
use tonic::service::Routes;
use tower::Service;

use super::Gate;
use super::actions::Scope;

pub use reply::{HttpError, Reply};
pub use request::{Op, Request};

/// What an endpoint returns.
pub type Outcome = Result<Reply, HttpError>;

/// Serves Vault's API for one listener.
#[derive(Clone)]
pub struct HttpApi {
    inner: Arc<Inner>,
}

struct Inner {
    gate: Gate,
    max_request_size: usize,
}

impl HttpApi {
    /// The API behind `gate`, taking bodies up to `max_request_size` bytes.
    pub fn new(gate: Gate, max_request_size: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                gate,
                max_request_size,
            }),
        }
    }

    /// Answers one request. The endpoint runs in a task of its own, so a
    /// client that goes away mid-call never stops an operation between
    /// its steps (an init or rekey between its write and its commit).
    pub async fn handle(&self, request: http::Request<Body>) -> http::Response<Body> {
        let head = request.method() == http::Method::HEAD;
        let outcome = match Request::read(request, self.inner.max_request_size).await {
            Ok(request) => {
                let gate = self.inner.gate.clone();
                tokio::spawn(async move { route(&gate, &request).await })
                    .await
                    .unwrap_or_else(|_| {
                        Err(crate::error::Error::Internal(
                            "the request's handler stopped unexpectedly; the log says why".into(),
                        )
                        .into())
                    })
            }
            Err(e) => Err(e),
        };
        let response = match outcome {
            Ok(reply) => reply.into_response(),
            Err(e) => e.into_response(),
        };
        if head {
            let (parts, _) = response.into_parts();
            return http::Response::from_parts(parts, Body::empty());
        }
        response
    }
}

/// Sends each request to the endpoint of its path.
async fn route(gate: &Gate, request: &Request) -> Outcome {
    let path = request.path.as_str();
    let routed = match path.split_once('/') {
        Some(("sys", rest)) => sys::route(gate, request, rest).await,
        Some(("secret", rest)) => kv::route(gate, request, rest).await,
        Some(("transit", rest)) => transit::route(gate, request, rest).await,
        Some(("keymgmt", rest)) => keymgmt::route(gate, request, rest).await,
        Some(("auth", rest)) => match rest.strip_prefix("token/") {
            Some(rest) => token::route(gate, request, rest).await,
            None => Err(HttpError::no_route(path)),
        },
        _ => Err(HttpError::no_route(path)),
    };
    match routed {
        // Vault answers a path it does not serve 503 while sealed, as it
        // cannot know yet which paths its mounts serve.
        Err(e) if e.is_no_route() && gate.node().lifecycle.barrier().is_err() => {
            Err(crate::error::Error::Sealed.into())
        }
        other => other,
    }
}

/// Where a request of this API runs, from its URI path: the seal state of
/// the node it reaches (`sys/seal-status`, `health`, `leader`, `init`,
/// `unseal`, `seal`, `metrics`) on that node, everything else on the
/// active node (a standby forwards it); `None` outside `/v1/`.
pub fn scope_of(uri_path: &str) -> Option<Scope> {
    uri_path.strip_prefix("/v1/")?;
    // Decided on the path as routing reads it (percent-decoded); one it
    // refuses is refused where it arrived.
    let Ok(path) = request::decode_path(uri_path) else {
        return Some(Scope::Node);
    };
    let node = matches!(
        path.trim_end_matches('/'),
        "sys/seal-status"
            | "sys/health"
            | "sys/leader"
            | "sys/init"
            | "sys/unseal"
            | "sys/seal"
            | "sys/metrics"
    );
    Some(if node { Scope::Node } else { Scope::Active })
}

/// The routes of one listener: gRPC's for requests that say they are gRPC,
/// Vault's HTTP API for every other.
pub fn routes(grpc: Routes, api: HttpApi) -> Routes {
    let dispatch = Dispatch {
        grpc: grpc.into_axum_router(),
        api,
    };
    Routes::from(axum::Router::new().fallback_service(dispatch))
}

/// Sends a request to gRPC or the HTTP API by its content type.
#[derive(Clone)]
struct Dispatch {
    grpc: axum::Router,
    api: HttpApi,
}

/// A gRPC request's content type: `application/grpc`, `application/grpc+proto`, ….
pub fn is_grpc(content_type: Option<&HeaderValue>) -> bool {
    content_type.is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

impl Service<http::Request<Body>> for Dispatch {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // axum's router is always ready; the API has no back-pressure of its own.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if is_grpc(request.headers().get(header::CONTENT_TYPE)) {
            let mut grpc = self.grpc.clone();
            return Box::pin(async move { grpc.call(request).await });
        }
        let api = self.api.clone();
        Box::pin(async move { Ok(api.handle(request).await) })
    }
}

/// The status of a request refused before it reached an endpoint, for the
/// tests of the dispatch.
#[cfg(test)]
fn status_of(outcome: &Outcome) -> http::StatusCode {
    match outcome {
        Ok(reply) => reply.status(),
        Err(e) => e.status(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_grpc_content_types_go_to_grpc() {
        let grpc = |v: &'static str| is_grpc(Some(&HeaderValue::from_static(v)));
        assert!(grpc("application/grpc"));
        assert!(grpc("application/grpc+proto"));
        assert!(!grpc("application/json"));
        assert!(!is_grpc(None));
    }

    #[test]
    fn the_seal_state_runs_on_the_node_reached_and_the_rest_on_the_active_one() {
        assert_eq!(scope_of("/v1/sys/health"), Some(Scope::Node));
        assert_eq!(scope_of("/v1/sys/unseal"), Some(Scope::Node));
        assert_eq!(scope_of("/v1/sys/key-status"), Some(Scope::Active));
        assert_eq!(scope_of("/v1/secret/data/x"), Some(Scope::Active));
        // Percent-encoded as the router decodes it.
        assert_eq!(scope_of("/v1/sys/se%61l"), Some(Scope::Node));
        assert_eq!(scope_of("/v1/sys/unse%61l"), Some(Scope::Node));
        assert_eq!(scope_of("/v1/sys/../x"), Some(Scope::Node));
        assert_eq!(scope_of("/strongroom.v1.Sys/Status"), None);
    }

    #[test]
    fn unrouted_paths_are_404() {
        let outcome: Outcome = Err(HttpError::no_route("nothing/here"));
        assert_eq!(status_of(&outcome), http::StatusCode::NOT_FOUND);
    }
}
