//! strongroom: a secret-store seal daemon.
//!
//! It keeps a root key that encrypts everything it stores, keeps that root key
//! sealed at rest behind Shamir unseal keys or an AWS KMS key, and serves the
//! key lifecycle, versioned secrets, envelope-encryption keys, tokens and
//! policies over gRPC, with an audit log.
//!
//! The layers, from the top; each imports only the layers below it (the
//! table in `tests/integration/layering.rs` holds every allowed direction and fails
//! the build's tests on any other):
//!
//! - [`cli`] → [`server`] → [`api`] → [`node`]: the command line, the
//!   process, the transports and the gate, the composition of components;
//!   [`ha`]: the election loop of a node with HA, which the process starts;
//! - [`lifecycle`], [`access`], [`engines`], [`audit`], [`cluster`]: the components, each
//!   owning its state; the lifecycle owns the seal state and tells the
//!   others when the barrier opens and closes;
//! - [`seal`], [`barrier`], [`storage`]: what protects the root key, the
//!   encrypted entries, the key/value store;
//! - [`config`], and the leaves [`error`], [`secret`], [`text`], [`time`], [`names`],
//!   [`pad`], [`failpoint`], [`proto`], [`metrics`].
//!
//! Nothing below `api` knows about gRPC; nothing outside `seal` knows
//! about KMS.

pub mod access;
pub mod api;
pub mod audit;
pub mod barrier;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod diagnose;
pub mod engines;
pub mod error;
pub mod failpoint;
pub mod ha;
pub mod lifecycle;
pub mod metrics;
pub mod names;
pub mod node;
pub mod pad;
pub mod seal;
pub mod secret;
pub mod server;
pub mod storage;
pub mod text;
pub mod time;

/// The generated gRPC types and stubs of `proto/strongroom/v1`.
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("strongroom.v1");

    /// `Debug` for the messages that carry secrets (build.rs skips the
    /// derived one): the type name only, never a field.
    macro_rules! redacted_debug {
        ($($message:ident),* $(,)?) => {$(
            impl std::fmt::Debug for $message {
                fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str(concat!(stringify!($message), " { <redacted> }"))
                }
            }
        )*};
    }
    redacted_debug!(
        InitResponse,
        UnsealRequest,
        RekeyUpdateRequest,
        RekeyUpdateResponse,
        RekeyVerifyUpdateRequest,
        RotateRootUpdateRequest,
        GenerateRootInitRequest,
        GenerateRootUpdateRequest,
        GenerateRootUpdateResponse,
        InitConfirmRequest,
        RekeyConfirmRequest,
        RekeyStatusResponse,
        QuorumStatus,
        RekeyCancelRequest,
        RotateRootCancelRequest,
        GenerateRootCancelRequest,
        AuditHashRequest,
        CreateTokenResponse,
        LookupTokenRequest,
        RenewTokenRequest,
        RevokeTokenRequest,
        ProviderCredentials,
        WriteProviderRequest,
        PutRequest,
        GetResponse,
        EncryptRequest,
        DecryptResponse,
        GenerateDataKeyResponse,
        EncryptItem,
        BatchEncryptRequest,
        DecryptResult,
        BatchDecryptResponse,
        DecryptRequest,
        RewrapRequest,
        GenerateDataKeyRequest,
        DecryptItem,
        BatchDecryptRequest,
        RevokeAccessorRequest,
    );
}

#[cfg(test)]
mod tests {
    use super::proto;

    #[test]
    fn messages_that_carry_secrets_debug_print_no_field() {
        let request = proto::UnsealRequest {
            key: "c2VjcmV0LXNoYXJl".into(),
            ..Default::default()
        };
        let response = proto::InitResponse {
            root_token: "sr.0123456789abcdefghijklmnopqrstuv".into(),
            ..Default::default()
        };
        let printed = format!("{request:?} {response:?}");
        assert_eq!(
            printed,
            "UnsealRequest { <redacted> } InitResponse { <redacted> }"
        );
    }
}
