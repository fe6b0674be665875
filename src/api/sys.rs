//! `strongroom.v1.Sys`: the seal lifecycle (init, status, unseal, seal), the
//! keyring (rotate, key status) and snapshots.

use std::pin::Pin;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::{Gate, quorum};
use crate::audit::Field;
use crate::barrier::TermUsage;
use crate::core::{self, Caller, Core, Operation};
use crate::proto::{self, sys_server::Sys};

/// Snapshot bytes per streamed message.
const SNAPSHOT_CHUNK: usize = 1 << 20;
/// The largest snapshot a restore accepts.
const MAX_SNAPSHOT: usize = 1 << 30;

impl From<TermUsage> for proto::KeyTerm {
    fn from(t: TermUsage) -> Self {
        Self {
            term: t.term,
            installed_unix: t.installed_unix,
            encryptions: t.encryptions,
            active: t.active,
        }
    }
}

/// The Sys service.
pub struct SysService {
    core: Arc<Core>,
    gate: Gate,
}

impl SysService {
    /// Serves `core` through `gate`.
    pub fn new(core: Arc<Core>, gate: Gate) -> Self {
        Self { core, gate }
    }
}

impl From<core::Status> for proto::StatusResponse {
    fn from(s: core::Status) -> Self {
        Self {
            r#type: s.seal_type.into(),
            initialized: s.initialized,
            sealed: s.sealed,
            threshold: s.threshold,
            shares: s.shares,
            progress: s.progress,
            nonce: s.nonce,
            version: s.version.into(),
            storage_type: s.storage_type.into(),
            cluster_name: s.cluster_name,
            cluster_id: s.cluster_id,
            recovery_seal: s.recovery_seal,
            recovery_seal_type: if s.recovery_seal {
                "shamir".into()
            } else {
                String::new()
            },
            migration: s.migration,
            auto_unseal: s.auto_unseal.map(|a| proto::AutoUnseal {
                state: a.state.as_str().into(),
                attempts: a.attempts,
                last_error: a.last_error,
                next_attempt_unix_ms: a.next_attempt_unix_ms,
            }),
            kms_key_arn: s.kms_key_arn,
            warnings: s.warnings,
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
        let asked = request.get_ref();
        let call = self
            .gate
            .audit(&request, "sys.Init", "sys/init".into())
            .plain("key_shares", asked.key_shares)
            .plain("key_threshold", asked.key_threshold)
            .plain("recovery_shares", asked.recovery_shares)
            .plain("recovery_threshold", asked.recovery_threshold)
            .plain("recipients", asked.recipients.len())
            .start();
        call.before_acting(&self.core).await?;
        let request = request.into_inner();
        let result = self
            .core
            .init(core::InitParams {
                key_shares: request.key_shares,
                key_threshold: request.key_threshold,
                recovery_shares: request.recovery_shares,
                recovery_threshold: request.recovery_threshold,
                recipients: request.recipients,
                root_token_recipient: Some(request.root_token_recipient)
                    .filter(|r| !r.trim().is_empty()),
            })
            .await;
        // Neither the shares nor the root token reach the audit log.
        let result = call
            .finish(&self.core, result, |init| {
                vec![
                    ("shares", Field::Plain(init.shares.len().into())),
                    ("threshold", Field::Plain(init.threshold.into())),
                    ("recovery", Field::Plain(init.recovery.into())),
                ]
            })
            .await?;
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
        let call = self
            .gate
            .audit(&request, "sys.InitConfirm", "sys/init".into())
            .start();
        call.before_acting(&self.core).await?;
        let result = self.core.init_confirm(&request.into_inner().nonce).await;
        call.finish(&self.core, result, |()| Vec::new()).await?;
        Ok(Response::new(proto::InitConfirmResponse {}))
    }

    async fn status(
        &self,
        _request: Request<proto::StatusRequest>,
    ) -> Result<Response<proto::StatusResponse>, Status> {
        Ok(Response::new(self.core.status().into()))
    }

    async fn unseal(
        &self,
        request: Request<proto::UnsealRequest>,
    ) -> Result<Response<proto::UnsealResponse>, Status> {
        // The key never reaches the audit log, in any form.
        let call = self
            .gate
            .audit(&request, "sys.Unseal", "sys/unseal".into())
            .plain("reset", request.get_ref().reset)
            .plain("migrate", request.get_ref().migrate)
            .start();
        call.before_acting(&self.core).await?;
        let request = request.into_inner();
        if request.reset {
            let status = self.core.reset_unseal().await;
            let status = call
                .finish(&self.core, Ok(status), |s| {
                    vec![("progress", Field::Plain(s.progress.into()))]
                })
                .await?;
            return Ok(Response::new(proto::UnsealResponse {
                status: Some(status.into()),
                duplicate: false,
            }));
        }
        // The request (and so the share) is dropped at the end of this call;
        // the core copies the decoded share into zeroizing memory.
        let key = zeroize::Zeroizing::new(request.key);
        let outcome = if request.migrate {
            self.core.unseal_migrate(&key).await
        } else {
            self.core.unseal(&key).await
        };
        let outcome = call
            .finish(&self.core, outcome, |o| {
                vec![
                    ("sealed", Field::Plain(o.status.sealed.into())),
                    ("progress", Field::Plain(o.status.progress.into())),
                ]
            })
            .await?;
        Ok(Response::new(proto::UnsealResponse {
            status: Some(outcome.status.into()),
            duplicate: outcome.duplicate,
        }))
    }

    async fn seal(
        &self,
        request: Request<proto::SealRequest>,
    ) -> Result<Response<proto::SealResponse>, Status> {
        let call = self
            .gate
            .audit(&request, "sys.Seal", "sys/seal".into())
            .start();
        let result = match self.core.seal(call.caller()).await {
            // Sealing only takes the keys away: it is never refused for want
            // of an audit device (the failure is in the daemon's log).
            Err(core::CoreError::AuditUnavailable(why)) => {
                tracing::error!(error = %why, "sealing although no audit device could record the request");
                self.core.seal(&self.gate.caller(&request)).await
            }
            other => other,
        };
        call.finish(&self.core, result, |()| Vec::new()).await?;
        Ok(Response::new(proto::SealResponse {}))
    }

    async fn rotate(
        &self,
        request: Request<proto::RotateRequest>,
    ) -> Result<Response<proto::RotateResponse>, Status> {
        let call = self
            .gate
            .audit(&request, "sys.Rotate", "sys/rotate".into())
            .start();
        let result = self.core.rotate(call.caller()).await;
        let term = call
            .finish(&self.core, result, |t| {
                vec![("term", Field::Plain(t.term.into()))]
            })
            .await?;
        Ok(Response::new(proto::RotateResponse {
            term: Some(term.into()),
        }))
    }

    async fn key_status(
        &self,
        request: Request<proto::KeyStatusRequest>,
    ) -> Result<Response<proto::KeyStatusResponse>, Status> {
        let call = self
            .gate
            .audit(&request, "sys.KeyStatus", "sys/key-status".into())
            .start();
        let result = self.core.key_status(call.caller()).await;
        let key_status = call.finish(&self.core, result, |_| Vec::new()).await?;
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
        let call = self
            .gate
            .audit(&request, "sys.SnapshotSave", "sys/snapshot".into())
            .start();
        let result = self.core.snapshot_save(call.caller()).await;
        let file = call
            .finish(&self.core, result, |f| {
                vec![("bytes", Field::Plain(f.len().into()))]
            })
            .await?;
        let chunks: Vec<_> = file
            .chunks(SNAPSHOT_CHUNK)
            .map(|data| {
                Ok(proto::SnapshotChunk {
                    data: data.to_vec(),
                })
            })
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }

    async fn snapshot_restore(
        &self,
        request: Request<Streaming<proto::SnapshotChunk>>,
    ) -> Result<Response<proto::SnapshotRestoreResponse>, Status> {
        let call = self
            .gate
            .audit(
                &request,
                "sys.SnapshotRestore",
                "sys/snapshot-restore".into(),
            )
            .start();
        // Refuse before receiving a large upload.
        if let Err(e) = self.core.may_restore(call.caller()).await {
            return Err(call.fail(&self.core, e).await);
        }
        let mut chunks = request.into_inner();
        let mut file = Vec::new();
        let received = loop {
            match chunks.message().await {
                Ok(Some(chunk)) if file.len() + chunk.data.len() > MAX_SNAPSHOT => {
                    break Err(Status::resource_exhausted(format!(
                        "the snapshot is larger than the {} MiB a restore accepts",
                        MAX_SNAPSHOT >> 20
                    )));
                }
                Ok(Some(chunk)) => file.extend_from_slice(&chunk.data),
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        if let Err(e) = received {
            return call.finish_status(&self.core, Err(e)).await;
        }
        // A daemon that is not initialized asks for no token, so nothing
        // else writes the request line before the restore acts.
        if self.core.phase() == core::Phase::Uninitialized {
            call.before_acting(&self.core).await?;
        }
        let result = self.core.snapshot_restore(call.caller(), &file).await;
        let header = call
            .finish(&self.core, result, |h| {
                vec![("entries", Field::Plain(h.entries.into()))]
            })
            .await?;
        Ok(Response::new(proto::SnapshotRestoreResponse {
            entries: header.entries,
            created_unix: header.created_unix,
            cluster_id: header.cluster_id,
            seal_type: header.seal_type,
        }))
    }

    async fn rekey_init(
        &self,
        request: Request<proto::RekeyInitRequest>,
    ) -> Result<Response<proto::RekeyStatusResponse>, Status> {
        let call = self
            .gate
            .audit(&request, "sys.RekeyInit", "sys/rekey".into())
            .start();
        let result = quorum::rekey_init(&self.core, call.caller(), request).await;
        call.finish_status(&self.core, result).await
    }

    async fn rekey_update(
        &self,
        request: Request<proto::RekeyUpdateRequest>,
    ) -> Result<Response<proto::RekeyUpdateResponse>, Status> {
        // No share, key or pad reaches the audit log.
        let call = self
            .gate
            .audit(&request, "sys.RekeyUpdate", "sys/rekey".into())
            .start();
        call.before_acting(&self.core).await?;
        let result = quorum::rekey_update(&self.core, request).await;
        call.finish_status(&self.core, result).await
    }

    async fn rekey_confirm(
        &self,
        request: Request<proto::RekeyConfirmRequest>,
    ) -> Result<Response<proto::RekeyConfirmResponse>, Status> {
        // No share, key or pad reaches the audit log.
        let call = self
            .gate
            .audit(&request, "sys.RekeyConfirm", "sys/rekey".into())
            .start();
        call.before_acting(&self.core).await?;
        let result = quorum::rekey_confirm(&self.core, request).await;
        call.finish_status(&self.core, result).await
    }

    async fn rekey_cancel(
        &self,
        request: Request<proto::RekeyCancelRequest>,
    ) -> Result<Response<proto::RekeyCancelResponse>, Status> {
        let call = self
            .gate
            .audit(&request, "sys.RekeyCancel", "sys/rekey".into())
            .start();
        let nonce = request.into_inner().nonce;
        let result = self
            .core
            .quorum_cancel(Operation::Rekey, call.caller(), &nonce)
            .await;
        call.finish(&self.core, result, |()| Vec::new()).await?;
        Ok(Response::new(proto::RekeyCancelResponse {}))
    }

    async fn rekey_status(
        &self,
        request: Request<proto::RekeyStatusRequest>,
    ) -> Result<Response<proto::RekeyStatusResponse>, Status> {
        quorum::rekey_status_of(&self.core, &self.gate.caller(&request)).await
    }

    async fn rekey_verify_update(
        &self,
        request: Request<proto::RekeyVerifyUpdateRequest>,
    ) -> Result<Response<proto::RekeyVerifyUpdateResponse>, Status> {
        // No share, key or pad reaches the audit log.
        let call = self
            .gate
            .audit(&request, "sys.RekeyVerifyUpdate", "sys/rekey".into())
            .start();
        call.before_acting(&self.core).await?;
        let result = quorum::rekey_verify_update(&self.core, request).await;
        call.finish_status(&self.core, result).await
    }

    async fn rotate_root_init(
        &self,
        request: Request<proto::RotateRootInitRequest>,
    ) -> Result<Response<proto::QuorumStatus>, Status> {
        let call = self
            .gate
            .audit(&request, "sys.RotateRootInit", "sys/rotate-root".into())
            .start();
        let result = quorum::rotate_root_init(&self.core, call.caller()).await;
        call.finish_status(&self.core, result).await
    }

    async fn rotate_root_update(
        &self,
        request: Request<proto::RotateRootUpdateRequest>,
    ) -> Result<Response<proto::QuorumUpdateResponse>, Status> {
        // No share, key or pad reaches the audit log.
        let call = self
            .gate
            .audit(&request, "sys.RotateRootUpdate", "sys/rotate-root".into())
            .start();
        call.before_acting(&self.core).await?;
        let result = quorum::rotate_root_update(&self.core, request).await;
        call.finish_status(&self.core, result).await
    }

    async fn rotate_root_cancel(
        &self,
        request: Request<proto::RotateRootCancelRequest>,
    ) -> Result<Response<proto::QuorumCancelResponse>, Status> {
        let call = self
            .gate
            .audit(&request, "sys.RotateRootCancel", "sys/rotate-root".into())
            .start();
        let nonce = request.into_inner().nonce;
        let result = self
            .core
            .quorum_cancel(Operation::RotateRoot, call.caller(), &nonce)
            .await;
        call.finish(&self.core, result, |()| Vec::new()).await?;
        Ok(Response::new(proto::QuorumCancelResponse {}))
    }

    async fn rotate_root_status(
        &self,
        request: Request<proto::RotateRootStatusRequest>,
    ) -> Result<Response<proto::QuorumStatus>, Status> {
        quorum::status_of(
            &self.core,
            Operation::RotateRoot,
            &self.gate.caller(&request),
        )
        .await
    }

    async fn generate_root_init(
        &self,
        request: Request<proto::GenerateRootInitRequest>,
    ) -> Result<Response<proto::QuorumStatus>, Status> {
        // No share, key or pad reaches the audit log.
        let call = self
            .gate
            .audit(&request, "sys.GenerateRootInit", "sys/generate-root".into())
            .start();
        call.before_acting(&self.core).await?;
        let result = quorum::generate_root_init(&self.core, request).await;
        call.finish_status(&self.core, result).await
    }

    async fn generate_root_update(
        &self,
        request: Request<proto::GenerateRootUpdateRequest>,
    ) -> Result<Response<proto::GenerateRootUpdateResponse>, Status> {
        // No share, key or pad reaches the audit log.
        let call = self
            .gate
            .audit(
                &request,
                "sys.GenerateRootUpdate",
                "sys/generate-root".into(),
            )
            .start();
        call.before_acting(&self.core).await?;
        let result = quorum::generate_root_update(&self.core, request).await;
        call.finish_status(&self.core, result).await
    }

    async fn generate_root_cancel(
        &self,
        request: Request<proto::GenerateRootCancelRequest>,
    ) -> Result<Response<proto::QuorumCancelResponse>, Status> {
        let call = self
            .gate
            .audit(
                &request,
                "sys.GenerateRootCancel",
                "sys/generate-root".into(),
            )
            .start();
        call.before_acting(&self.core).await?;
        let nonce = request.into_inner().nonce;
        let result = self
            .core
            .quorum_cancel(Operation::GenerateRoot, &Caller::default(), &nonce)
            .await;
        call.finish(&self.core, result, |()| Vec::new()).await?;
        Ok(Response::new(proto::QuorumCancelResponse {}))
    }

    async fn audit_hash(
        &self,
        request: Request<proto::AuditHashRequest>,
    ) -> Result<Response<proto::AuditHashResponse>, Status> {
        let call = self
            .gate
            .audit(&request, "sys.AuditHash", "sys/audit-hash".into())
            .secret("input", &request.get_ref().input)
            .start();
        let result = self
            .core
            .audit_hash(call.caller(), &request.get_ref().input)
            .await;
        let hash = call.finish(&self.core, result, |_| Vec::new()).await?;
        Ok(Response::new(proto::AuditHashResponse { hash }))
    }

    async fn generate_root_status(
        &self,
        request: Request<proto::GenerateRootStatusRequest>,
    ) -> Result<Response<proto::QuorumStatus>, Status> {
        quorum::status_of(
            &self.core,
            Operation::GenerateRoot,
            &self.gate.caller(&request),
        )
        .await
    }
}
