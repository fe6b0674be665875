//! The gRPC surface: `strongroom.v1.Sys`, `Kv`, `Keys`, `KeyMgmt`, `Token`, `Policy`,
//! gRPC health and reflection. Each method turns its request into a call
//! through the gate (the action, the resource, the caller, the audit
//! fields) and the result into its response; the services hold nothing
//! but their listener's gate.

mod keymgmt;
mod keys;
mod kv;
mod methods;
mod policy;
mod quorum;
mod sys;
mod sys_status;
mod token;

use std::sync::Arc;

use tonic::codegen::http;
use tonic::service::Routes;
use tonic::{Request, Status};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use super::actions::{Action, Auth};
use super::gate::{Call, Gate};
use super::identity::bearer;
use crate::access::Caller;
use crate::error::Error;
use crate::lifecycle::{Lifecycle, Phase};
use crate::proto::key_mgmt_server::KeyMgmtServer;
use crate::proto::keys_server::KeysServer;
use crate::proto::kv_server::KvServer;
use crate::proto::policy_server::PolicyServer;
use crate::proto::sys_server::SysServer;
use crate::proto::token_server::TokenServer;

pub use keymgmt::KeyMgmtService;
pub use keys::KeysService;
pub use kv::KvService;
pub use methods::action_of;
pub use policy::PolicyService;
pub use sys::SysService;
pub use token::TokenService;
pub(crate) use token::create_fields;

/// The encoded descriptors of strongroom's protos, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/strongroom_descriptor.bin"));

/// Health service name that is SERVING whenever the process runs (liveness).
pub const LIVENESS_SERVICE: &str = "strongroom.v1.Sys";

/// The services every listener shares, built once: gRPC health, and
/// reflection (whose builder parses the whole descriptor set, a cost not to
/// pay per listener on the path to the first answer).
pub fn shared_routes(health: &HealthReporter) -> Routes {
    let health = tonic_health::pb::health_server::HealthServer::new(
        tonic_health::server::HealthService::from_health_reporter(health.clone()),
    );
    let mut routes = Routes::new(health);
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    match (reflection().build_v1(), reflection().build_v1alpha()) {
        (Ok(v1), Ok(v1alpha)) => {
            routes = routes.add_service(v1).add_service(v1alpha);
        }
        (Err(e), _) | (_, Err(e)) => {
            // Only a malformed built-in descriptor set could cause this.
            tracing::error!(error = %e, "gRPC reflection is unavailable");
        }
    }
    routes
}

/// The gRPC services a listener serves: `shared` plus strongroom's own,
/// through the listener's `gate`, with its request size limit.
pub fn routes(shared: &Routes, gate: Gate, max_request_size: usize) -> Routes {
    let sys =
        SysServer::new(SysService::new(gate.clone())).max_decoding_message_size(max_request_size);
    let kv =
        KvServer::new(KvService::new(gate.clone())).max_decoding_message_size(max_request_size);
    let token = TokenServer::new(TokenService::new(gate.clone()))
        .max_decoding_message_size(max_request_size);
    let policy = PolicyServer::new(PolicyService::new(gate.clone()))
        .max_decoding_message_size(max_request_size);
    let keys =
        KeysServer::new(KeysService::new(gate.clone())).max_decoding_message_size(max_request_size);
    let keymgmt =
        KeyMgmtServer::new(KeyMgmtService::new(gate)).max_decoding_message_size(max_request_size);
    shared
        .clone()
        .add_service(sys)
        .add_service(kv)
        .add_service(token)
        .add_service(policy)
        .add_service(keys)
        .add_service(keymgmt)
}

/// Keeps gRPC health in step with the seal state: the overall service `""`
/// is SERVING only while unsealed (readiness); [`LIVENESS_SERVICE`] is
/// SERVING while the process runs, so a liveness probe never kills a daemon
/// that is sealed and waiting for its operators.
pub async fn track_health(lifecycle: Arc<Lifecycle>, health: HealthReporter) {
    health
        .set_service_status(LIVENESS_SERVICE, ServingStatus::Serving)
        .await;
    let mut phases = lifecycle.subscribe();
    loop {
        let phase = *phases.borrow_and_update();
        let readiness = if phase == Phase::Unsealed {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        health.set_service_status("", readiness).await;
        if phases.changed().await.is_err() {
            return;
        }
    }
}

/// tonic refuses an oversized request with OUT_OF_RANGE; gRPC's convention
/// (and strongroom's contract) is RESOURCE_EXHAUSTED. strongroom's services
/// never return OUT_OF_RANGE themselves, so every such response is this one,
/// and is rewritten with a sentence naming the limit.
pub fn size_limit_status<B>(
    max_request_size: usize,
) -> impl Fn(http::Response<B>) -> http::Response<B> + Clone {
    move |mut response| {
        let headers = response.headers_mut();
        let out_of_range = (tonic::Code::OutOfRange as i32).to_string();
        if headers
            .get("grpc-status")
            .is_some_and(|v| v.as_bytes() == out_of_range.as_bytes())
        {
            let code = (tonic::Code::ResourceExhausted as i32).to_string();
            let message = format!(
                "the request is larger than this listener's max_request_size of {max_request_size} bytes"
            );
            if let (Ok(code), Ok(message)) = (code.parse(), message.parse()) {
                headers.insert("grpc-status", code);
                headers.insert("grpc-message", message);
            }
        }
        response
    }
}

/// A call of `action` about `resource` by the caller of `request` (not
/// looked for when the action asks nobody who they are).
fn call<'g, T>(
    gate: &'g Gate,
    action: &'static Action,
    resource: &str,
    request: &Request<T>,
) -> Call<'g> {
    let caller = match action.auth {
        Auth::None => Caller::default(),
        _ => caller(gate, request),
    };
    gate.call(action, resource, caller)
}

/// The caller of `request`: its bearer token (`authorization`), and the
/// identity its connection matches.
fn caller<T>(gate: &Gate, request: &Request<T>) -> Caller {
    let header = request
        .metadata()
        .get("authorization")
        .map(|value| value.as_bytes());
    super::caller::caller(gate, bearer(header), request.extensions())
}

/// Maps an error to its gRPC status, with the error's sentence as message.
fn status(err: Error) -> Status {
    let message = err.to_string();
    match err {
        Error::InvalidArgument(_) => Status::invalid_argument(message),
        Error::Unauthenticated(_) => Status::unauthenticated(message),
        Error::PermissionDenied(_) => Status::permission_denied(message),
        Error::Sealed => Status::unavailable(message),
        Error::NotInitialized | Error::AlreadyInitialized | Error::FailedPrecondition(_) => {
            Status::failed_precondition(message)
        }
        Error::NotFound(_) => Status::not_found(message),
        Error::TooLarge(_) => Status::resource_exhausted(message),
        Error::KmsUnavailable(_) | Error::AuditUnavailable(_) | Error::Unavailable(_) => {
            Status::unavailable(message)
        }
        Error::KmsRefused(_) => Status::failed_precondition(message),
        Error::Internal(_) => {
            tracing::error!(error = %message, "request failed");
            Status::internal(message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_documented_codes() {
        use tonic::Code;
        let cases = [
            (Error::InvalidArgument("x".into()), Code::InvalidArgument),
            (Error::Unauthenticated("x".into()), Code::Unauthenticated),
            (Error::PermissionDenied("x".into()), Code::PermissionDenied),
            (Error::Sealed, Code::Unavailable),
            (Error::NotInitialized, Code::FailedPrecondition),
            (Error::AlreadyInitialized, Code::FailedPrecondition),
            (
                Error::FailedPrecondition("x".into()),
                Code::FailedPrecondition,
            ),
            (Error::NotFound("x".into()), Code::NotFound),
            (Error::TooLarge("x".into()), Code::ResourceExhausted),
            (Error::Internal("x".into()), Code::Internal),
            (Error::KmsUnavailable("x".into()), Code::Unavailable),
            (Error::AuditUnavailable("x".into()), Code::Unavailable),
            (Error::Unavailable("x".into()), Code::Unavailable),
            (Error::KmsRefused("x".into()), Code::FailedPrecondition),
        ];
        for (err, code) in cases {
            assert_eq!(status(err).code(), code);
        }
    }
}
