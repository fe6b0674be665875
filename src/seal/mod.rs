//! What protects the root key at rest.
//!
//! - [`shamir`]: the root key is encrypted by an unseal key that exists only
//!   while a quorum of shares is being combined.
//! - [`awskms`]: the root key is wrapped by an AWS KMS key ([`envelope`]), so
//!   the daemon unseals itself at start with one KMS Decrypt; operators hold
//!   recovery shares (Shamir shares of a recovery key) instead.
//!
//! - [`recipients`]: shares encrypted to their holders' age or ssh-ed25519
//!   keys; [`wrap`]: the KMS wrapping that init, migration, rekey and
//!   root rotation share.
//!
//! Nothing outside this module knows about KMS or the AWS SDK.

mod aws_error;
pub mod awskms;
pub mod envelope;
#[cfg(feature = "failpoints")]
pub mod failpoint;
pub mod kms;
pub mod recipients;
pub mod shamir;
pub mod wrap;

use std::sync::Arc;

use kms::Kms;

/// The seal a daemon is configured with.
#[derive(Clone)]
pub enum Seal {
    /// Unseal keys split into Shamir shares that operators type in.
    Shamir,
    /// The root key wrapped by this KMS; operators hold recovery shares.
    AwsKms(Arc<dyn Kms>),
}

impl Seal {
    /// The seal type's name, as Status reports it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Shamir => SHAMIR,
            Self::AwsKms(_) => AWSKMS,
        }
    }
}

/// Name of the Shamir seal.
pub const SHAMIR: &str = "shamir";
/// Name of the AWS KMS seal.
pub const AWSKMS: &str = "awskms";
