//! The quorum operations of `strongroom.v1.Sys` (rekey, rotate-root,
//! generate-root): protobuf in and out; the lifecycle does the rest. No
//! share, key or pad reaches the audit log.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tonic::{Request, Response, Status};
use zeroize::Zeroizing;

use super::{call, caller, status};
use crate::api::Gate;
use crate::api::actions::{self, Action};
use crate::lifecycle::{self, Completed, Operation, QuorumOutcome, RekeyParams, RekeyTarget};
use crate::proto;

impl From<lifecycle::QuorumStatus> for proto::QuorumStatus {
    fn from(s: lifecycle::QuorumStatus) -> Self {
        Self {
            started: s.started,
            nonce: s.nonce,
            progress: s.progress,
            required: s.required,
            started_unix: s.started_unix,
        }
    }
}

fn rekey_status_response(s: lifecycle::QuorumStatus) -> proto::RekeyStatusResponse {
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

/// What an operation's Status shows: the nonces only to a caller its
/// action reveals them to (`Auth::Reveals`).
async fn quorum_status<T>(
    gate: &Gate,
    op: Operation,
    status_action: &'static Action,
    request: &Request<T>,
) -> Result<lifecycle::QuorumStatus, Status> {
    let caller = caller(gate, request);
    let show_nonce = gate.reveals(status_action, &caller).await;
    let lifecycle = &gate.node().lifecycle;
    gate.call(status_action, "", caller)
        .run(
            |_| async move { Ok(lifecycle.quorum_status(op, show_nonce)) },
            |_| Vec::new(),
        )
        .await
        .map_err(status)
}

pub async fn rekey_status<T>(
    gate: &Gate,
    request: &Request<T>,
) -> Result<proto::RekeyStatusResponse, Status> {
    let status = quorum_status(gate, Operation::Rekey, &actions::REKEY_STATUS, request).await?;
    Ok(rekey_status_response(status))
}

/// The Status of rotate-root or generate-root.
pub async fn status_of<T>(
    gate: &Gate,
    op: Operation,
    status_action: &'static Action,
    request: &Request<T>,
) -> Result<proto::QuorumStatus, Status> {
    Ok(quorum_status(gate, op, status_action, request)
        .await?
        .into())
}

/// Cancels `op` by its cancel `action`; the request carries the nonce.
pub async fn cancel<T: Nonce>(
    gate: &Gate,
    op: Operation,
    action: &'static Action,
    request: Request<T>,
) -> Result<(), Status> {
    let lifecycle = &gate.node().lifecycle;
    let nonce = request.get_ref().nonce();
    call(gate, action, "", &request)
        .run(
            |_| async move { lifecycle.quorum_cancel(op, nonce) },
            |()| Vec::new(),
        )
        .await
        .map_err(status)
}

/// A cancel request's nonce.
pub trait Nonce: Send + Sync + 'static {
    /// The nonce of the operation to cancel.
    fn nonce(&self) -> &str;
}

macro_rules! nonce_of {
    ($($message:ident),*) => {$(
        impl Nonce for proto::$message {
            fn nonce(&self) -> &str {
                &self.nonce
            }
        }
    )*};
}
nonce_of!(
    RekeyCancelRequest,
    RotateRootCancelRequest,
    GenerateRootCancelRequest
);

pub async fn rekey_init(
    gate: &Gate,
    request: Request<proto::RekeyInitRequest>,
) -> Result<Response<proto::RekeyStatusResponse>, Status> {
    let lifecycle = &gate.node().lifecycle;
    let target = RekeyTarget::parse(&request.get_ref().target);
    let checked = target.as_ref().map(|_| ()).map_err(Clone::clone);
    let call = call(gate, &actions::REKEY_INIT, "", &request).check(checked);
    let asked = request.into_inner();
    let started = call
        .run(
            |_| async move {
                lifecycle.rekey_init(RekeyParams {
                    shares: asked.key_shares,
                    threshold: asked.key_threshold,
                    target: target?,
                    verify: asked.verify,
                    recipients: asked.recipients,
                })
            },
            |_| Vec::new(),
        )
        .await
        .map_err(status)?;
    Ok(Response::new(rekey_status_response(started)))
}

/// Enters one key for `op` under `nonce`, by its update `action`.
async fn update<T>(
    gate: &Gate,
    op: Operation,
    action: &'static Action,
    request: &Request<T>,
    nonce: &str,
    key: &str,
) -> Result<QuorumOutcome, Status> {
    let lifecycle = &gate.node().lifecycle;
    call(gate, action, "", request)
        .run(
            |_| async move { lifecycle.quorum_update(op, nonce, key).await },
            |_| Vec::new(),
        )
        .await
        .map_err(status)
}

pub async fn rekey_update(
    gate: &Gate,
    request: Request<proto::RekeyUpdateRequest>,
) -> Result<Response<proto::RekeyUpdateResponse>, Status> {
    let asked = request.get_ref();
    let key = Zeroizing::new(asked.key.clone());
    let QuorumOutcome {
        status: now,
        result,
    } = update(
        gate,
        Operation::Rekey,
        &actions::REKEY_UPDATE,
        &request,
        &asked.nonce,
        &key,
    )
    .await?;
    let mut response = proto::RekeyUpdateResponse {
        status: Some(rekey_status_response(now)),
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
    gate: &Gate,
    request: Request<proto::RekeyVerifyUpdateRequest>,
) -> Result<Response<proto::RekeyVerifyUpdateResponse>, Status> {
    let lifecycle = &gate.node().lifecycle;
    let asked = request.get_ref();
    let (nonce, key) = (&asked.nonce, Zeroizing::new(asked.key.clone()));
    let outcome = call(gate, &actions::REKEY_VERIFY_UPDATE, "", &request)
        .run(
            |_| async move { lifecycle.rekey_verify_update(nonce, &key).await },
            |_| Vec::new(),
        )
        .await
        .map_err(status)?;
    Ok(Response::new(proto::RekeyVerifyUpdateResponse {
        status: Some(rekey_status_response(outcome.status)),
        complete: matches!(outcome.result, Some(Completed::Verified)),
    }))
}

pub async fn rekey_verify_restart(
    gate: &Gate,
    request: Request<proto::RekeyVerifyRestartRequest>,
) -> Result<Response<proto::RekeyStatusResponse>, Status> {
    let lifecycle = &gate.node().lifecycle;
    let named = &request.get_ref().target;
    let target = RekeyTarget::parse(named);
    let restarted = call(gate, &actions::REKEY_VERIFY_RESTART, "", &request)
        .check(target.clone().map(drop))
        .plain("target", named.trim())
        .run(
            |_| async move { lifecycle.rekey_verify_restart(target?) },
            |_| Vec::new(),
        )
        .await
        .map_err(status)?;
    // The caller has sudo on sys/rekey: the new nonce is theirs to see.
    Ok(Response::new(rekey_status_response(restarted)))
}

pub async fn rekey_confirm(
    gate: &Gate,
    request: Request<proto::RekeyConfirmRequest>,
) -> Result<Response<proto::RekeyConfirmResponse>, Status> {
    let lifecycle = &gate.node().lifecycle;
    let nonce = &request.get_ref().nonce;
    call(gate, &actions::REKEY_CONFIRM, "", &request)
        .run(
            |_| async move { lifecycle.rekey_confirm(nonce).await },
            |()| Vec::new(),
        )
        .await
        .map_err(status)?;
    Ok(Response::new(proto::RekeyConfirmResponse {}))
}

pub async fn rotate_root_init(
    gate: &Gate,
    request: Request<proto::RotateRootInitRequest>,
) -> Result<Response<proto::QuorumStatus>, Status> {
    let lifecycle = &gate.node().lifecycle;
    let started = call(gate, &actions::ROTATE_ROOT_INIT, "", &request)
        .run(
            |_| async move { lifecycle.rotate_root_init() },
            |_| Vec::new(),
        )
        .await
        .map_err(status)?;
    Ok(Response::new(started.into()))
}

pub async fn rotate_root_update(
    gate: &Gate,
    request: Request<proto::RotateRootUpdateRequest>,
) -> Result<Response<proto::QuorumUpdateResponse>, Status> {
    let asked = request.get_ref();
    let key = Zeroizing::new(asked.key.clone());
    let outcome = update(
        gate,
        Operation::RotateRoot,
        &actions::ROTATE_ROOT_UPDATE,
        &request,
        &asked.nonce,
        &key,
    )
    .await?;
    Ok(Response::new(proto::QuorumUpdateResponse {
        status: Some(outcome.status.into()),
        complete: matches!(outcome.result, Some(Completed::RotatedRoot)),
    }))
}

pub async fn generate_root_init(
    gate: &Gate,
    request: Request<proto::GenerateRootInitRequest>,
) -> Result<Response<proto::QuorumStatus>, Status> {
    let lifecycle = &gate.node().lifecycle;
    let otp = Zeroizing::new(request.get_ref().otp.clone());
    let claim = Zeroizing::new(request.get_ref().key.clone());
    let started = call(gate, &actions::GENERATE_ROOT_INIT, "", &request)
        .plain("claimed", !claim.is_empty())
        .run(
            |_| async move {
                let claim = (!claim.is_empty()).then_some(claim.as_str());
                lifecycle.generate_root_init(&otp, claim)
            },
            |_| Vec::new(),
        )
        .await
        .map_err(status)?;
    Ok(Response::new(started.into()))
}

pub async fn generate_root_update(
    gate: &Gate,
    request: Request<proto::GenerateRootUpdateRequest>,
) -> Result<Response<proto::GenerateRootUpdateResponse>, Status> {
    let asked = request.get_ref();
    let key = Zeroizing::new(asked.key.clone());
    let outcome = update(
        gate,
        Operation::GenerateRoot,
        &actions::GENERATE_ROOT_UPDATE,
        &request,
        &asked.nonce,
        &key,
    )
    .await?;
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
