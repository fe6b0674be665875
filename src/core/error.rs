//! The one error type of the core, mapped to a gRPC status by the API layer.

use crate::barrier::BarrierError;
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
    #[error("strongroom is sealed; unseal it with a quorum of unseal keys first")]
    Sealed,
    /// Init has not run yet.
    #[error("strongroom is not initialized; run `strongroom init` first")]
    NotInitialized,
    /// Init has already run.
    #[error("strongroom is already initialized")]
    AlreadyInitialized,
    /// The named thing does not exist.
    #[error("{0}")]
    NotFound(String),
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
