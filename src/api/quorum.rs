//! The quorum operations of `strongroom.v1.Sys` (rekey, rotate-root,
//! generate-root): protobuf in and out, the core does the rest.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tonic::{Request, Response, Status};
use zeroize::Zeroizing;

use super::status;
use crate::core::{
    self, Caller, Completed, Core, Operation, QuorumOutcome, RekeyParams, RekeyTarget,
};
use crate::proto;

impl From<core::QuorumStatus> for proto::QuorumStatus {
    fn from(s: core::QuorumStatus) -> Self {
        Self {
            started: s.started,
            nonce: s.nonce,
            progress: s.progress,
            required: s.required,
            started_unix: s.started_unix,
        }
    }
}

fn rekey_status(s: core::QuorumStatus) -> proto::RekeyStatusResponse {
    let rekey = s.rekey.clone();
    let mut response = proto::RekeyStatusResponse {
        quorum: Some(s.into()),
        ..proto::RekeyStatusResponse::default()
    };
    if let Some(r) = rekey {
        response.new_shares = r.new_shares;
        response.new_threshold = r.new_threshold;
        response.target = r.target.as_str().into();
        response.verify = r.verify;
        response.verification_required = r.verification_required;
        response.verification_nonce = r.verification_nonce;
        response.verification_progress = r.verification_progress;
        response.confirmation_required = r.confirmation_required;
    }
    response
}

fn target(name: &str) -> Result<Option<RekeyTarget>, Status> {
    match name.trim() {
        "" => Ok(None),
        "barrier" => Ok(Some(RekeyTarget::Barrier)),
        "recovery" => Ok(Some(RekeyTarget::Recovery)),
        other => Err(Status::invalid_argument(format!(
            "unknown rekey target {other:?}: expected \"barrier\" (unseal keys) or \"recovery\" (recovery keys)"
        ))),
    }
}

pub async fn rekey_init(
    core: &Core,
    caller: &Caller,
    request: Request<proto::RekeyInitRequest>,
) -> Result<Response<proto::RekeyStatusResponse>, Status> {
    let request = request.into_inner();
    let params = RekeyParams {
        shares: request.key_shares,
        threshold: request.key_threshold,
        target: target(&request.target)?,
        verify: request.verify,
        recipients: request.recipients,
    };
    let started = core.rekey_init(caller, params).await.map_err(status)?;
    Ok(Response::new(rekey_status(started)))
}

pub async fn rekey_update(
    core: &Core,
    request: Request<proto::RekeyUpdateRequest>,
) -> Result<Response<proto::RekeyUpdateResponse>, Status> {
    let request = request.into_inner();
    let key = Zeroizing::new(request.key);
    let outcome = core
        .quorum_update(Operation::Rekey, &request.nonce, &key)
        .await
        .map_err(status)?;
    let QuorumOutcome {
        status: now,
        result,
    } = outcome;
    let mut response = proto::RekeyUpdateResponse {
        status: Some(rekey_status(now)),
        ..proto::RekeyUpdateResponse::default()
    };
    if let Some(Completed::Rekey {
        shares,
        armored,
        threshold,
        verification_nonce,
        confirmation_nonce,
    }) = result
    {
        // The one place new shares leave the daemon.
        response.complete = true;
        match armored {
            Some(armored) => response.keys_encrypted = armored,
            None => {
                response.keys = shares.iter().map(|s| hex::encode(s.expose())).collect();
                response.keys_base64 = shares.iter().map(|s| STANDARD.encode(s.expose())).collect();
            }
        }
        response.threshold = threshold;
        response.verification_required = verification_nonce.is_some();
        response.verification_nonce = verification_nonce.unwrap_or_default();
        response.confirmation_nonce = confirmation_nonce.unwrap_or_default();
    }
    Ok(Response::new(response))
}

pub async fn rekey_verify_update(
    core: &Core,
    request: Request<proto::RekeyVerifyUpdateRequest>,
) -> Result<Response<proto::RekeyVerifyUpdateResponse>, Status> {
    let request = request.into_inner();
    let key = Zeroizing::new(request.key);
    let outcome = core
        .rekey_verify_update(&request.nonce, &key)
        .await
        .map_err(status)?;
    Ok(Response::new(proto::RekeyVerifyUpdateResponse {
        status: Some(rekey_status(outcome.status)),
        complete: matches!(outcome.result, Some(Completed::Verified)),
    }))
}

pub async fn rekey_confirm(
    core: &Core,
    request: Request<proto::RekeyConfirmRequest>,
) -> Result<Response<proto::RekeyConfirmResponse>, Status> {
    core.rekey_confirm(&request.into_inner().nonce)
        .await
        .map_err(status)?;
    Ok(Response::new(proto::RekeyConfirmResponse {}))
}

pub async fn rekey_status_of(
    core: &Core,
    caller: &Caller,
) -> Result<Response<proto::RekeyStatusResponse>, Status> {
    let now = core.quorum_status_for(Operation::Rekey, caller).await;
    Ok(Response::new(rekey_status(now)))
}

pub async fn rotate_root_init(
    core: &Core,
    caller: &Caller,
) -> Result<Response<proto::QuorumStatus>, Status> {
    let started = core.rotate_root_init(caller).await.map_err(status)?;
    Ok(Response::new(started.into()))
}

pub async fn rotate_root_update(
    core: &Core,
    request: Request<proto::RotateRootUpdateRequest>,
) -> Result<Response<proto::QuorumUpdateResponse>, Status> {
    let request = request.into_inner();
    let key = Zeroizing::new(request.key);
    let outcome = core
        .quorum_update(Operation::RotateRoot, &request.nonce, &key)
        .await
        .map_err(status)?;
    Ok(Response::new(proto::QuorumUpdateResponse {
        status: Some(outcome.status.into()),
        complete: matches!(outcome.result, Some(Completed::RotatedRoot)),
    }))
}

pub async fn status_of(
    core: &Core,
    op: Operation,
    caller: &Caller,
) -> Result<Response<proto::QuorumStatus>, Status> {
    Ok(Response::new(
        core.quorum_status_for(op, caller).await.into(),
    ))
}

pub async fn generate_root_init(
    core: &Core,
    request: Request<proto::GenerateRootInitRequest>,
) -> Result<Response<proto::QuorumStatus>, Status> {
    let otp = Zeroizing::new(request.into_inner().otp);
    let started = core.generate_root_init(&otp).await.map_err(status)?;
    Ok(Response::new(started.into()))
}

pub async fn generate_root_update(
    core: &Core,
    request: Request<proto::GenerateRootUpdateRequest>,
) -> Result<Response<proto::GenerateRootUpdateResponse>, Status> {
    let request = request.into_inner();
    let key = Zeroizing::new(request.key);
    let outcome = core
        .quorum_update(Operation::GenerateRoot, &request.nonce, &key)
        .await
        .map_err(status)?;
    let mut response = proto::GenerateRootUpdateResponse {
        status: Some(outcome.status.into()),
        ..proto::GenerateRootUpdateResponse::default()
    };
    if let Some(Completed::GeneratedRoot {
        encoded_token,
        accessor,
    }) = outcome.result
    {
        response.complete = true;
        response.encoded_token = encoded_token;
        response.accessor = accessor;
    }
    Ok(Response::new(response))
}
