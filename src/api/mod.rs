//! The gRPC surface: `strongroom.v1.Sys`, `Kv`, `Keys`, `Token`, `Policy`, gRPC
//! health and reflection. Services translate between protobuf and the core;
//! they hold no state of their own beyond their listener's identity blocks.

mod gate;
mod keys;
mod kv;
mod policy;
mod quorum;
mod sys;
mod token;

use std::sync::Arc;

use tonic::Status;
use tonic::codegen::http;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::audit::Auditor;
use crate::config::IdentityRule;
use crate::core::{Core, CoreError, Phase};
use crate::proto::keys_server::KeysServer;
use crate::proto::kv_server::KvServer;
use crate::proto::policy_server::PolicyServer;
use crate::proto::sys_server::SysServer;
use crate::proto::token_server::TokenServer;

pub use gate::Gate;
pub use keys::KeysService;
pub use kv::KvService;
pub use policy::PolicyService;
pub use sys::SysService;
pub use token::TokenService;

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

/// The services a listener serves: `shared` plus strongroom's own, with
/// the listener's request size limit and identity blocks, and the audit
/// devices.
pub fn routes(
    shared: &Routes,
    core: &Arc<Core>,
    max_request_size: usize,
    identities: &[IdentityRule],
    auditor: &Arc<Auditor>,
) -> Routes {
    let gate = Gate::new(identities, Arc::clone(auditor));
    let sys = SysServer::new(SysService::new(Arc::clone(core), gate.clone()))
        .max_decoding_message_size(max_request_size);
    let kv = KvServer::new(KvService::new(Arc::clone(core), gate.clone()))
        .max_decoding_message_size(max_request_size);
    let token = TokenServer::new(TokenService::new(Arc::clone(core), gate.clone()))
        .max_decoding_message_size(max_request_size);
    let policy = PolicyServer::new(PolicyService::new(Arc::clone(core), gate.clone()))
        .max_decoding_message_size(max_request_size);
    let keys = KeysServer::new(KeysService::new(Arc::clone(core), gate))
        .max_decoding_message_size(max_request_size);
    shared
        .clone()
        .add_service(sys)
        .add_service(kv)
        .add_service(token)
        .add_service(policy)
        .add_service(keys)
}

/// Keeps gRPC health in step with the seal state: the overall service `""`
/// is SERVING only while unsealed (readiness); [`LIVENESS_SERVICE`] is
/// SERVING while the process runs, so a liveness probe never kills a daemon
/// that is sealed and waiting for its operators.
pub async fn track_health(core: Arc<Core>, health: HealthReporter) {
    health
        .set_service_status(LIVENESS_SERVICE, ServingStatus::Serving)
        .await;
    let mut phases = core.subscribe();
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

/// Maps a core error to its gRPC status, with the error's sentence as message.
fn status(err: CoreError) -> Status {
    let message = err.to_string();
    match err {
        CoreError::InvalidArgument(_) => Status::invalid_argument(message),
        CoreError::Unauthenticated(_) => Status::unauthenticated(message),
        CoreError::PermissionDenied(_) => Status::permission_denied(message),
        CoreError::Sealed => Status::unavailable(message),
        CoreError::NotInitialized
        | CoreError::AlreadyInitialized
        | CoreError::FailedPrecondition(_) => Status::failed_precondition(message),
        CoreError::NotFound(_) => Status::not_found(message),
        CoreError::KmsUnavailable(_) | CoreError::AuditUnavailable(_) => {
            Status::unavailable(message)
        }
        CoreError::KmsRefused(_) => Status::failed_precondition(message),
        CoreError::Internal(_) => {
            tracing::error!(error = %message, "request failed");
            Status::internal(message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_errors_map_to_documented_codes() {
        use tonic::Code;
        let cases = [
            (
                CoreError::InvalidArgument("x".into()),
                Code::InvalidArgument,
            ),
            (
                CoreError::Unauthenticated("x".into()),
                Code::Unauthenticated,
            ),
            (
                CoreError::PermissionDenied("x".into()),
                Code::PermissionDenied,
            ),
            (CoreError::Sealed, Code::Unavailable),
            (CoreError::NotInitialized, Code::FailedPrecondition),
            (CoreError::AlreadyInitialized, Code::FailedPrecondition),
            (
                CoreError::FailedPrecondition("x".into()),
                Code::FailedPrecondition,
            ),
            (CoreError::NotFound("x".into()), Code::NotFound),
            (CoreError::Internal("x".into()), Code::Internal),
            (CoreError::KmsUnavailable("x".into()), Code::Unavailable),
            (CoreError::AuditUnavailable("x".into()), Code::Unavailable),
            (CoreError::KmsRefused("x".into()), Code::FailedPrecondition),
        ];
        for (err, code) in cases {
            assert_eq!(status(err).code(), code);
        }
    }
}
