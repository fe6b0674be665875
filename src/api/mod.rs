//! The API: every operation declared once ([`actions`]), one way in for all
//! of them ([`gate`]: authenticate, authorize, audit, run), what a request
//! says about its caller ([`identity`]), and the transports that adapt
//! their requests to the gate: gRPC ([`grpc`]) and Vault's HTTP API
//! ([`http`]), on the same listeners; [`caller`] is what both read of a
//! request's caller; [`seal_backends`] is each seal's health as both
//! report it. With HA, a standby forwards the requests only the
//! active node serves, in front of the routes ([`forward`]).

pub mod actions;
pub mod caller;
pub mod forward;
pub mod gate;
pub mod grpc;
pub mod http;
pub mod identity;
pub mod seal_backends;

use std::sync::Arc;

use tonic::service::Routes;

use crate::node::Node;

pub use gate::Gate;
pub use identity::Identities;

/// Everything one listener serves: `shared` (health, reflection) and
/// strongroom's gRPC services for gRPC requests, Vault's HTTP API for the
/// others; bodies up to `max_request_size`, callers recognised by
/// `identities`.
pub fn routes(
    shared: &Routes,
    node: &Arc<Node>,
    max_request_size: usize,
    identities: Identities,
) -> Routes {
    let gate = Gate::new(Arc::clone(node), identities);
    let grpc = grpc::routes(shared, gate.clone(), max_request_size);
    http::routes(grpc, http::HttpApi::new(gate, max_request_size))
}
