//! The error of every operation a caller can ask for, whatever the component
//! that refused it. Each transport maps its kind to a status once (gRPC in
//! `api::grpc`); the lower layers turn their own errors into it where they
//! are defined.

/// Why an operation was refused or failed. Every message is one plain
/// sentence that never contains key material or a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
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
    /// The request is larger than a limit allows; nothing changed.
    #[error("{0}")]
    TooLarge(String),
    /// KMS could not be reached, timed out or is throttling; nothing changed.
    #[error("{0}")]
    KmsUnavailable(String),
    /// KMS refused: key disabled, permission missing, ciphertext refused; nothing changed.
    #[error("{0}")]
    KmsRefused(String),
    /// This node cannot serve the call now: it is a standby, it stopped
    /// being the active node, or the database is unreachable. Another node,
    /// or a retry later, may serve it; the sentence says which.
    #[error("{0}")]
    Unavailable(String),
    /// No audit device could record the request, so the call did not act.
    #[error("{0}")]
    AuditUnavailable(String),
    /// Storage or stored data failed; the operator has to look.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// The error with its message cut to [`crate::text::MESSAGE_BYTES`]:
    /// what a caller and an audit line get, whatever a check quoted.
    pub fn bounded(self) -> Self {
        use crate::text::bounded;
        match self {
            Error::InvalidArgument(m) => Error::InvalidArgument(bounded(m)),
            Error::Unauthenticated(m) => Error::Unauthenticated(bounded(m)),
            Error::PermissionDenied(m) => Error::PermissionDenied(bounded(m)),
            Error::FailedPrecondition(m) => Error::FailedPrecondition(bounded(m)),
            Error::NotFound(m) => Error::NotFound(bounded(m)),
            Error::TooLarge(m) => Error::TooLarge(bounded(m)),
            Error::KmsUnavailable(m) => Error::KmsUnavailable(bounded(m)),
            Error::KmsRefused(m) => Error::KmsRefused(bounded(m)),
            Error::AuditUnavailable(m) => Error::AuditUnavailable(bounded(m)),
            Error::Unavailable(m) => Error::Unavailable(bounded(m)),
            Error::Internal(m) => Error::Internal(bounded(m)),
            e @ (Error::Sealed | Error::NotInitialized | Error::AlreadyInitialized) => e,
        }
    }
}
