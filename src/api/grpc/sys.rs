//! `strongroom.v1.Sys`: the seal lifecycle (init, status, unseal, seal), the
//! keyring (rotate, key status), snapshots and the audit hash. The quorum
//! operations' methods are in `quorum.rs`, the messages that report state
//! in `sys_status.rs`.

use std::pin::Pin;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::{call, quorum, status};
use crate::api::Gate;
use crate::api::actions;
use crate::api::seal_backends::SealBackends;
use crate::audit::Field;
use crate::error::Error;
use crate::lifecycle::{InitParams, Operation};
use crate::proto::{self, sys_server::Sys};

/// Snapshot bytes per streamed message.
const SNAPSHOT_CHUNK: usize = 1 << 20;
/// The largest snapshot a restore accepts.
const MAX_SNAPSHOT: usize = 1 << 30;

/// The Sys service.
pub struct SysService {
    gate: Gate,
}

impl SysService {
    /// Serves through `gate`.
    pub fn new(gate: Gate) -> Self {
        Self { gate }
    }
}

/// Receives a snapshot upload, up to [`MAX_SNAPSHOT`] bytes, and whether
/// a chunk accepted a snapshot without a MAC. A failed upload keeps the
/// transport's status (a chunk over the listener's `max_request_size` is
/// RESOURCE_EXHAUSTED naming that limit).
async fn receive(mut chunks: Streaming<proto::SnapshotChunk>) -> Result<(Vec<u8>, bool), Status> {
    let mut file = Vec::new();
    let mut accept_unauthenticated = false;
    loop {
        match chunks.message().await? {
            Some(chunk) if file.len() + chunk.data.len() > MAX_SNAPSHOT => {
                return Err(status(Error::TooLarge(format!(
                    "the snapshot is larger than the {} MiB a restore accepts",
                    MAX_SNAPSHOT >> 20
                ))));
            }
            Some(chunk) => {
                accept_unauthenticated |= chunk.accept_unauthenticated;
                file.extend_from_slice(&chunk.data);
            }
            None => return Ok((file, accept_unauthenticated)),
        }
    }
}

#[tonic::async_trait]
impl Sys for SysService {
    type SnapshotSaveStream =
        Pin<Box<dyn Stream<Item = Result<proto::SnapshotChunk, Status>> + Send + 'static>>;

    async fn init(
        &self,
        request: Request<proto::InitRequest>,
    ) -> Result<Response<proto::InitResponse>, Status> {
        let lifecycle = &self.gate.node().lifecycle;
        let asked = request.get_ref();
        let call = call(&self.gate, &actions::INIT, "", &request)
            .plain("key_shares", asked.key_shares)
            .plain("key_threshold", asked.key_threshold)
            .plain("recovery_shares", asked.recovery_shares)
            .plain("recovery_threshold", asked.recovery_threshold)
            .plain("recipients", asked.recipients.len())
            .plain("emergency_shares", asked.emergency_shares)
            .plain("emergency_threshold", asked.emergency_threshold)
            .plain("emergency_recipients", asked.emergency_recipients.len());
        let asked = request.into_inner();
        let params = InitParams {
            key_shares: asked.key_shares,
            key_threshold: asked.key_threshold,
            recovery_shares: asked.recovery_shares,
            recovery_threshold: asked.recovery_threshold,
            recipients: asked.recipients,
            root_token_recipient: Some(asked.root_token_recipient).filter(|r| !r.trim().is_empty()),
            emergency_shares: asked.emergency_shares,
            emergency_threshold: asked.emergency_threshold,
            emergency_recipients: asked.emergency_recipients,
        };
        // Neither the shares nor the root token reach the audit log.
        let result = call
            .run(
                |_| async move { lifecycle.init(params).await },
                |init| {
                    vec![
                        ("shares", Field::Plain(init.shares.len().into())),
                        ("threshold", Field::Plain(init.threshold.into())),
                        ("recovery", Field::Plain(init.recovery.into())),
                    ]
                },
            )
            .await
            .map_err(status)?;
        // The response is the one place the shares and token leave the daemon;
        // tonic encodes and frees these strings as it sends them.
        let mut response = proto::InitResponse {
            shares: u32::try_from(result.shares.len()).unwrap_or(u32::MAX),
            threshold: result.threshold,
            confirmation_nonce: result.confirmation_nonce.clone(),
            ..proto::InitResponse::default()
        };
        match result.armored_root_token {
            Some(armored) => response.root_token_encrypted = armored,
            None => response.root_token = result.root_token.expose().to_string(),
        }
        if let Some(keys) = result.emergency {
            response.emergency_keys_shares = u32::try_from(keys.shares.len()).unwrap_or(u32::MAX);
            response.emergency_keys_threshold = keys.threshold;
            match keys.armored {
                Some(armored) => response.emergency_keys_encrypted = armored,
                None => {
                    for share in &keys.shares {
                        response
                            .emergency_keys_hex
                            .push(hex::encode(share.expose()));
                        response
                            .emergency_keys_b64
                            .push(STANDARD.encode(share.expose()));
                    }
                }
            }
        }
        if let Some(armored) = result.armored_shares {
            if result.recovery {
                response.recovery_keys_encrypted = armored;
            } else {
                response.keys_encrypted = armored;
            }
            return Ok(Response::new(response));
        }
        let hex: Vec<String> = result
            .shares
            .iter()
            .map(|s| hex::encode(s.expose()))
            .collect();
        let base64: Vec<String> = result
            .shares
            .iter()
            .map(|s| STANDARD.encode(s.expose()))
            .collect();
        if result.recovery {
            response.recovery_keys = hex;
            response.recovery_keys_base64 = base64;
        } else {
            response.keys = hex;
            response.keys_base64 = base64;
        }
        Ok(Response::new(response))
    }

    async fn init_confirm(
        &self,
        request: Request<proto::InitConfirmRequest>,
    ) -> Result<Response<proto::InitConfirmResponse>, Status> {
        let lifecycle = &self.gate.node().lifecycle;
        let nonce = &request.get_ref().nonce;
        call(&self.gate, &actions::INIT_CONFIRM, "", &request)
            .run(
                |_| async move { lifecycle.init_confirm(nonce).await },
                |()| Vec::new(),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::InitConfirmResponse {}))
    }

    async fn status(
        &self,
        request: Request<proto::StatusRequest>,
    ) -> Result<Response<proto::StatusResponse>, Status> {
        let lifecycle = &self.gate.node().lifecycle;
        let seal_status = call(&self.gate, &actions::STATUS, "", &request)
            .run(|_| async { Ok(lifecycle.status()) }, |_| Vec::new())
            .await
            .map_err(status)?;
        Ok(Response::new(seal_status.into()))
    }

    async fn seal_backend_status(
        &self,
        request: Request<proto::SealBackendStatusRequest>,
    ) -> Result<Response<proto::SealBackendStatusResponse>, Status> {
        let lifecycle = &self.gate.node().lifecycle;
        let seal_status = call(&self.gate, &actions::SEAL_BACKEND_STATUS, "", &request)
            .run(|_| async { Ok(lifecycle.status()) }, |_| Vec::new())
            .await
            .map_err(status)?;
        Ok(Response::new(SealBackends::of(&seal_status).into()))
    }

    async fn unseal(
        &self,
        request: Request<proto::UnsealRequest>,
    ) -> Result<Response<proto::UnsealResponse>, Status> {
        let lifecycle = &self.gate.node().lifecycle;
        let asked = request.get_ref();
        let (reset, migrate) = (asked.reset, asked.migrate);
        // The key never reaches the audit log, in any form.
        let call = call(&self.gate, &actions::UNSEAL, "", &request)
            .plain("reset", reset)
            .plain("migrate", migrate)
            .seal_name("seal", &asked.seal);
        // The request (and so the share) is dropped at the end of this call;
        // the lifecycle copies the decoded share into zeroizing memory.
        let asked = request.into_inner();
        let seal = asked.seal;
        let key = zeroize::Zeroizing::new(asked.key);
        let outcome = call
            .run(
                |_| async move {
                    lifecycle
                        .enter_unseal_request(&key, reset, migrate, &seal)
                        .await
                },
                |o| {
                    if reset {
                        vec![("progress", Field::Plain(o.status.progress.into()))]
                    } else {
                        vec![
                            ("sealed", Field::Plain(o.status.sealed.into())),
                            ("progress", Field::Plain(o.status.progress.into())),
                        ]
                    }
                },
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::UnsealResponse {
            status: Some(outcome.status.into()),
            duplicate: outcome.duplicate,
        }))
    }

    async fn seal(
        &self,
        request: Request<proto::SealRequest>,
    ) -> Result<Response<proto::SealResponse>, Status> {
        let lifecycle = &self.gate.node().lifecycle;
        call(&self.gate, &actions::SEAL, "", &request)
            .run(
                |_| async move {
                    lifecycle.seal().await;
                    Ok(())
                },
                |()| Vec::new(),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::SealResponse {}))
    }

    async fn step_down(
        &self,
        request: Request<proto::StepDownRequest>,
    ) -> Result<Response<proto::StepDownResponse>, Status> {
        let lifecycle = &self.gate.node().lifecycle;
        call(&self.gate, &actions::STEP_DOWN, "", &request)
            .run(|_| async move { lifecycle.give_up_role() }, |()| Vec::new())
            .await
            .map_err(status)?;
        Ok(Response::new(proto::StepDownResponse {}))
    }

    async fn rotate(
        &self,
        request: Request<proto::RotateRequest>,
    ) -> Result<Response<proto::RotateResponse>, Status> {
        let lifecycle = &self.gate.node().lifecycle;
        let term = call(&self.gate, &actions::ROTATE, "", &request)
            .run(
                |_| async move { lifecycle.rotate().await },
                |t| vec![("term", Field::Plain(t.term.into()))],
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::RotateResponse {
            term: Some(term.into()),
        }))
    }

    async fn key_status(
        &self,
        request: Request<proto::KeyStatusRequest>,
    ) -> Result<Response<proto::KeyStatusResponse>, Status> {
        let lifecycle = &self.gate.node().lifecycle;
        let key_status = call(&self.gate, &actions::KEY_STATUS, "", &request)
            .run(|_| async move { lifecycle.key_status() }, |_| Vec::new())
            .await
            .map_err(status)?;
        Ok(Response::new(proto::KeyStatusResponse {
            terms: key_status.terms.into_iter().map(Into::into).collect(),
            rotation_max_encryptions: key_status.policy.max_encryptions,
            rotation_interval_seconds: key_status.policy.interval.map_or(0, |i| i.as_secs()),
        }))
    }

    async fn snapshot_save(
        &self,
        request: Request<proto::SnapshotSaveRequest>,
    ) -> Result<Response<Self::SnapshotSaveStream>, Status> {
        let lifecycle = &self.gate.node().lifecycle;
        let file = call(&self.gate, &actions::SNAPSHOT_SAVE, "", &request)
            .run(
                |_| async move { lifecycle.snapshot_save().await },
                |f| vec![("bytes", Field::Plain(f.len().into()))],
            )
            .await
            .map_err(status)?;
        let chunks: Vec<_> = file
            .chunks(SNAPSHOT_CHUNK)
            .map(|data| {
                Ok(proto::SnapshotChunk {
                    data: data.to_vec(),
                    accept_unauthenticated: false,
                })
            })
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }

    async fn snapshot_restore(
        &self,
        request: Request<Streaming<proto::SnapshotChunk>>,
    ) -> Result<Response<proto::SnapshotRestoreResponse>, Status> {
        let lifecycle = &self.gate.node().lifecycle;
        let call = call(&self.gate, &actions::SNAPSHOT_RESTORE, "", &request);
        // Refuse before receiving a large upload.
        if let Err(e) = call.may().await {
            call.refuse(&e.to_string()).await;
            return Err(status(e));
        }
        let (file, accept_unauthenticated) = match receive(request.into_inner()).await {
            Ok(received) => received,
            Err(refused) => {
                call.refuse(refused.message()).await;
                return Err(refused);
            }
        };
        let snapshot = lifecycle
            .check_snapshot(&file, accept_unauthenticated)
            .await;
        drop(file);
        let checked = snapshot.as_ref().map(|_| ()).map_err(Clone::clone);
        let header = call
            .plain("accept_unauthenticated", accept_unauthenticated)
            .check(checked)
            .run(
                |_| async move { lifecycle.snapshot_restore(snapshot?).await },
                |h| vec![("entries", Field::Plain(h.entries.into()))],
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::SnapshotRestoreResponse {
            entries: header.entries,
            created_unix: header.created_unix,
            cluster_id: header.cluster_id,
            seal_type: header.seal_type,
        }))
    }

    async fn audit_hash(
        &self,
        request: Request<proto::AuditHashRequest>,
    ) -> Result<Response<proto::AuditHashResponse>, Status> {
        let audit = &self.gate.node().audit;
        let input = &request.get_ref().input;
        let hash = call(&self.gate, &actions::AUDIT_HASH, "", &request)
            .secret("input", input)
            .run(
                |session| async move { audit.hash(session.barrier()?, input).await },
                |_| Vec::new(),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::AuditHashResponse { hash }))
    }

    async fn rekey_init(
        &self,
        request: Request<proto::RekeyInitRequest>,
    ) -> Result<Response<proto::RekeyStatusResponse>, Status> {
        quorum::rekey_init(&self.gate, request).await
    }

    async fn rekey_update(
        &self,
        request: Request<proto::RekeyUpdateRequest>,
    ) -> Result<Response<proto::RekeyUpdateResponse>, Status> {
        quorum::rekey_update(&self.gate, request).await
    }

    async fn rekey_confirm(
        &self,
        request: Request<proto::RekeyConfirmRequest>,
    ) -> Result<Response<proto::RekeyConfirmResponse>, Status> {
        quorum::rekey_confirm(&self.gate, request).await
    }

    async fn rekey_cancel(
        &self,
        request: Request<proto::RekeyCancelRequest>,
    ) -> Result<Response<proto::RekeyCancelResponse>, Status> {
        quorum::cancel(
            &self.gate,
            Operation::Rekey,
            &actions::REKEY_CANCEL,
            request,
        )
        .await?;
        Ok(Response::new(proto::RekeyCancelResponse {}))
    }

    async fn rekey_status(
        &self,
        request: Request<proto::RekeyStatusRequest>,
    ) -> Result<Response<proto::RekeyStatusResponse>, Status> {
        Ok(Response::new(
            quorum::rekey_status(&self.gate, &request).await?,
        ))
    }

    async fn rekey_verify_update(
        &self,
        request: Request<proto::RekeyVerifyUpdateRequest>,
    ) -> Result<Response<proto::RekeyVerifyUpdateResponse>, Status> {
        quorum::rekey_verify_update(&self.gate, request).await
    }

    async fn rekey_verify_restart(
        &self,
        request: Request<proto::RekeyVerifyRestartRequest>,
    ) -> Result<Response<proto::RekeyStatusResponse>, Status> {
        quorum::rekey_verify_restart(&self.gate, request).await
    }

    async fn rotate_root_init(
        &self,
        request: Request<proto::RotateRootInitRequest>,
    ) -> Result<Response<proto::QuorumStatus>, Status> {
        quorum::rotate_root_init(&self.gate, request).await
    }

    async fn rotate_root_update(
        &self,
        request: Request<proto::RotateRootUpdateRequest>,
    ) -> Result<Response<proto::QuorumUpdateResponse>, Status> {
        quorum::rotate_root_update(&self.gate, request).await
    }

    async fn rotate_root_cancel(
        &self,
        request: Request<proto::RotateRootCancelRequest>,
    ) -> Result<Response<proto::QuorumCancelResponse>, Status> {
        quorum::cancel(
            &self.gate,
            Operation::RotateRoot,
            &actions::ROTATE_ROOT_CANCEL,
            request,
        )
        .await?;
        Ok(Response::new(proto::QuorumCancelResponse {}))
    }

    async fn rotate_root_status(
        &self,
        request: Request<proto::RotateRootStatusRequest>,
    ) -> Result<Response<proto::QuorumStatus>, Status> {
        Ok(Response::new(
            quorum::status_of(
                &self.gate,
                Operation::RotateRoot,
                &actions::ROTATE_ROOT_STATUS,
                &request,
            )
            .await?,
        ))
    }

    async fn generate_root_init(
        &self,
        request: Request<proto::GenerateRootInitRequest>,
    ) -> Result<Response<proto::QuorumStatus>, Status> {
        quorum::generate_root_init(&self.gate, request).await
    }

    async fn generate_root_update(
        &self,
        request: Request<proto::GenerateRootUpdateRequest>,
    ) -> Result<Response<proto::GenerateRootUpdateResponse>, Status> {
        quorum::generate_root_update(&self.gate, request).await
    }

    async fn generate_root_cancel(
        &self,
        request: Request<proto::GenerateRootCancelRequest>,
    ) -> Result<Response<proto::QuorumCancelResponse>, Status> {
        quorum::cancel(
            &self.gate,
            Operation::GenerateRoot,
            &actions::GENERATE_ROOT_CANCEL,
            request,
        )
        .await?;
        Ok(Response::new(proto::QuorumCancelResponse {}))
    }

    async fn generate_root_status(
        &self,
        request: Request<proto::GenerateRootStatusRequest>,
    ) -> Result<Response<proto::QuorumStatus>, Status> {
        Ok(Response::new(
            quorum::status_of(
                &self.gate,
                Operation::GenerateRoot,
                &actions::GENERATE_ROOT_STATUS,
                &request,
            )
            .await?,
        ))
    }
}
