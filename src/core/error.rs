//! The one error type of the core, mapped to a gRPC status by the API layer.

use crate::barrier::BarrierError;
use crate::seal::envelope::EnvelopeError;
use crate::seal::kms::{KmsError, KmsErrorKind};
use crate::storage::StorageError;

/// Why a core operation was refused or failed. Every message is one plain
/// sentence that never contains key material or a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// The request itself is wrong; nothing changed.
    #[error("{0}")]
    InvalidArgument(String),
    /// No token, or one that is not valid.
    #[error("{0}")]
    Unauthenticated(String),
    /// A valid token that may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// The barrier is sealed.
    #[error("strongroom is sealed; `strongroom status` shows what unsealing waits for")]
    Sealed,
    /// Init has not run yet.
    #[error("strongroom is not initialized; run `strongroom init` first")]
    NotInitialized,
    /// Init has already run.
    #[error("strongroom is already initialized")]
    AlreadyInitialized,
    /// The operation cannot run now: another one is under way, or none is
    /// (a wrong state for this call). Nothing changed.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// KMS could not be reached, timed out or is throttling; nothing changed.
    #[error("{0}")]
    KmsUnavailable(String),
    /// KMS refused: key disabled, permission missing, ciphertext refused; nothing changed.
    #[error("{0}")]
    KmsRefused(String),
    /// No audit device could record the request, so the call did not act.
    #[error("{0}")]
    AuditUnavailable(String),
    /// Storage or stored data failed; the operator has to look.
    #[error("{0}")]
    Internal(String),
}

impl From<StorageError> for CoreError {
    fn from(err: StorageError) -> Self {
        CoreError::Internal(err.to_string())
    }
}

impl From<BarrierError> for CoreError {
    fn from(err: BarrierError) -> Self {
        match err {
            BarrierError::Storage(e) => e.into(),
            other => CoreError::Internal(format!("stored data could not be read: {other}")),
        }
    }
}

impl From<EnvelopeError> for CoreError {
    fn from(err: EnvelopeError) -> Self {
        match err {
            EnvelopeError::Kms(e) => e.into(),
            other => CoreError::Internal(other.to_string()),
        }
    }
}

impl From<KmsError> for CoreError {
    fn from(err: KmsError) -> Self {
        match err.kind {
            KmsErrorKind::Unavailable | KmsErrorKind::Throttled => {
                CoreError::KmsUnavailable(err.message)
            }
            _ => CoreError::KmsRefused(err.message),
        }
    }
}
