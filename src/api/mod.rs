//! The API: every operation declared once ([`actions`]), one way in for all
//! of them ([`gate`]: authenticate, authorize, audit, run), what a request
//! says about its caller ([`identity`]), and the transports that adapt
//! their requests to the gate: gRPC ([`grpc`]); Vault's HTTP API comes
//! next, beside it on the same listeners. With HA, a standby forwards the
//! requests only the active node serves, in front of the routes
//! ([`forward`]).

pub mod actions;
pub mod forward;
pub mod gate;
pub mod grpc;
pub mod identity;

pub use gate::Gate;
pub use identity::Identities;
