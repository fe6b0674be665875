//! The active node's side: the cluster listener takes a forwarded call and
//! gives it to the routes of the listener block it reached on the standby,
//! with the standby's facts about the caller in place of the connection's
//! (which is the standby itself).

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http::{Request, Response};
use tonic::service::Routes;
use tower::{Layer, Service, ServiceExt};

use super::Answer;
use super::facts::{self, Facts, Kind};
use crate::api::http::HttpError;
use crate::error::Error;

/// The cluster listener's service: every client listener's routes, by the
/// listener's position in the config.
#[derive(Clone)]
pub struct Accept {
    listeners: Arc<[(Kind, Routes)]>,
}

impl Accept {
    /// `listeners`: each client listener block's kind and routes, in the
    /// config's order, built with identities that take forwarded facts.
    pub fn new(listeners: Vec<(Kind, Routes)>) -> Self {
        Self {
            listeners: listeners.into(),
        }
    }

    fn route(&self, request: &mut Request<Body>) -> Result<Routes, Status> {
        let facts = Facts::read(request.headers()).map_err(Status::permission_denied)?;
        facts::strip(request.headers_mut());
        let origin = facts.origin;
        let routes = match self.listeners.get(origin.index) {
            Some((kind, routes)) if *kind == origin.kind => routes.clone(),
            _ => {
                return Err(Status::failed_precondition(format!(
                    "a call was forwarded from listener block {} ({}) of another node, and this node has no such listener block: the nodes of a cluster must have the same listener blocks in the same order",
                    origin.index + 1,
                    origin.kind.as_str()
                )));
            }
        };
        tracing::debug!(
            listener = origin.index,
            remote = facts.remote.as_deref().unwrap_or(""),
            path = request.uri().path(),
            "forwarded call"
        );
        request.extensions_mut().insert(facts);
        Ok(routes)
    }
}

/// tonic serves a router wrapped in layers; the cluster listener's own
/// routing is this layer, so the router it wraps is never reached.
impl<S> Layer<S> for Accept {
    type Service = Accept;

    fn layer(&self, _unreached: S) -> Accept {
        self.clone()
    }
}

impl Service<Request<Body>> for Accept {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Answer<Infallible>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let grpc = crate::api::http::is_grpc(request.headers().get(http::header::CONTENT_TYPE));
        match self.route(&mut request) {
            Ok(routes) => Box::pin(routes.oneshot(request)),
            Err(status) if grpc => Box::pin(std::future::ready(Ok(status.into_http()))),
            // A forwarded request of Vault's API gets Vault's JSON error:
            // a gRPC status would read as 200 with an empty body.
            Err(status) => {
                let error = match status.code() {
                    tonic::Code::PermissionDenied => {
                        Error::PermissionDenied(status.message().into())
                    }
                    _ => Error::FailedPrecondition(status.message().into()),
                };
                let response = HttpError::from(error).into_response().map(Body::new);
                Box::pin(std::future::ready(Ok(response)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;
    use tonic::codegen::http::HeaderValue;

    use super::*;

    /// The gRPC status of `accept`'s answer to a request with `listener`
    /// as its forwarding header (none: no header).
    async fn answer(accept: &Accept, listener: Option<&'static str>) -> Code {
        let mut request = Request::new(Body::empty());
        *request.uri_mut() = "/strongroom.v1.Kv/Get".parse().unwrap();
        request
            .headers_mut()
            .insert("content-type", HeaderValue::from_static("application/grpc"));
        if let Some(listener) = listener {
            request.headers_mut().insert(
                "x-strongroom-forwarded-listener",
                HeaderValue::from_static(listener),
            );
        }
        let response = accept.clone().oneshot(request).await.unwrap();
        let status = Status::from_header_map(response.headers());
        status.map_or(Code::Ok, |s| s.code())
    }

    #[tokio::test]
    async fn only_a_forwarded_call_for_a_listener_this_node_has_reaches_its_routes() {
        let accept = Accept::new(vec![(Kind::Tcp, Routes::default())]);
        assert_eq!(answer(&accept, None).await, Code::PermissionDenied);
        assert_eq!(
            answer(&accept, Some("1/tcp")).await,
            Code::FailedPrecondition
        );
        assert_eq!(
            answer(&accept, Some("0/unix")).await,
            Code::FailedPrecondition
        );
        // Reached the (empty) routes, which do not know the method.
        assert_eq!(answer(&accept, Some("0/tcp")).await, Code::Unimplemented);
    }

    #[tokio::test]
    async fn a_refused_request_of_vaults_api_gets_vaults_json() {
        let accept = Accept::new(vec![(Kind::Tcp, Routes::default())]);
        let mut request = Request::new(Body::empty());
        *request.uri_mut() = "/v1/sys/key-status".parse().unwrap();
        let response = accept.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), http::StatusCode::FORBIDDEN);
        assert_eq!(
            response.headers().get("content-type").unwrap(),
            "application/json"
        );
    }
}
