//! What protects the root key at rest.
//!
//! - [`shamir`]: the root key is encrypted by an unseal key that exists only
//!   while a quorum of shares is being combined.
//! - [`awskms`]: the root key is wrapped by an AWS KMS key ([`envelope`]), so
//!   the daemon unseals itself at start with one KMS Decrypt; operators hold
//!   recovery shares (Shamir shares of a recovery key) instead.
//!
//! - [`set`]: several KMS seals at once (`enable_multiseal`), each holding
//!   its own envelope of the root key, opened in priority order;
//!   [`emergency`]: the optional break-glass Shamir seal beside them.
//!
//! - [`recipients`]: shares encrypted to their holders' age or ssh-ed25519
//!   keys; [`wrap`]: the KMS wrapping that init, migration, rekey and
//!   root rotation share.
//!
//! Nothing outside this module knows about KMS or the AWS SDK.

mod aws_error;
pub mod awskms;
pub mod emergency;
pub mod envelope;
#[cfg(feature = "failpoints")]
pub mod failpoint;
pub mod import;
pub mod kms;
pub mod recipients;
pub mod set;
pub mod shamir;
pub mod wrap;

use std::sync::Arc;

use kms::Kms;
use set::SealSet;

/// The seal a daemon is configured with.
#[derive(Clone)]
pub enum Seal {
    /// Unseal keys split into Shamir shares that operators type in.
    Shamir,
    /// The root key wrapped by this KMS; operators hold recovery shares.
    AwsKms(Arc<dyn Kms>),
    /// Several KMS seals (`enable_multiseal`), each wrapping the root key;
    /// operators hold recovery shares.
    Multi(Arc<SealSet>),
}

impl Seal {
    /// The seal type's name, as Status reports it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Shamir => SHAMIR,
            Self::AwsKms(_) => AWSKMS,
            Self::Multi(_) => MULTISEAL,
        }
    }

    /// Whether the daemon unseals itself (KMS), so operators hold recovery
    /// shares rather than unseal keys.
    pub fn is_auto(&self) -> bool {
        !matches!(self, Self::Shamir)
    }
}

/// Name of the Shamir seal.
pub const SHAMIR: &str = "shamir";
/// Name of the AWS KMS seal.
pub const AWSKMS: &str = "awskms";
/// Name of several seals at once, as Status and the seal config say it.
pub const MULTISEAL: &str = "multiseal";
