//! The seal state and what Status reports of it.

use std::sync::Arc;

use super::auto_unseal::AutoUnsealStatus;
use super::seal_config::SealConfig;
use crate::barrier::Barrier;
use crate::secret::SecretBytes;

/// The coarse seal state, published to health checks and systemd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Init has not run.
    Uninitialized,
    /// Initialized, keys not in memory.
    Sealed,
    /// The barrier is open and this node serves (with HA: the active node).
    Unsealed,
    /// With HA: the keys are in memory, another node is active (or none is
    /// yet); this node answers only node-local calls.
    Standby,
}

impl Phase {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Uninitialized => "uninitialized",
            Phase::Sealed => "sealed",
            Phase::Unsealed => "unsealed",
            Phase::Standby => "standby",
        }
    }
}

/// What Status reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Seal type.
    pub seal_type: &'static str,
    /// Init has run.
    pub initialized: bool,
    /// Keys are not in memory.
    pub sealed: bool,
    /// Shares needed.
    pub threshold: u32,
    /// Shares issued.
    pub shares: u32,
    /// Shares entered so far.
    pub progress: u32,
    /// Identifies the unseal attempt under way; empty when none.
    pub nonce: String,
    /// strongroom's version.
    pub version: &'static str,
    /// Storage backend name.
    pub storage_type: &'static str,
    /// Cluster name.
    pub cluster_name: String,
    /// Cluster id, made at init.
    pub cluster_id: String,
    /// The shares are recovery shares (an auto-unseal seal).
    pub recovery_seal: bool,
    /// The ARN of the KMS key that wraps the stored keys (awskms, once known).
    pub kms_key_arn: String,
    /// Auto-unseal progress (awskms only).
    pub auto_unseal: Option<AutoUnsealStatus>,
    /// Conditions an operator should act on while the daemon still works.
    pub warnings: Vec<String>,
    /// A seal migration is pending.
    pub migration: bool,
    /// With HA: this node's role and the active node; `None` without HA.
    pub ha: Option<HaStatus>,
    /// Why the store could not be read since start (the database is down,
    /// say): the daemon stays sealed and retries. Empty when it answers.
    pub storage_error: String,
    /// One awskms seal: why its key is unusable or its check failed (also
    /// among `warnings`); empty while the key is usable.
    pub key_health: String,
    /// With several seals: each configured seal, in priority order.
    pub seals: Vec<super::multiseal::SealStatus>,
}

/// The active node as a node knows it: what it advertised when it took
/// the role.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Leader {
    /// Where clients are sent (`api_addr`).
    pub api_addr: String,
    /// Where other nodes reach it (`cluster_addr`).
    pub cluster_addr: String,
    /// When it became active, milliseconds since the Unix epoch.
    pub active_since_unix_ms: u64,
}

/// What Status reports about HA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaStatus {
    /// This node is the active node.
    pub is_self: bool,
    /// The active node, when one is known.
    pub leader: Option<Leader>,
}

/// Shares entered towards the threshold, and the attempt's nonce.
#[derive(Default)]
pub(super) struct Progress {
    pub(super) shares: Vec<SecretBytes>,
    pub(super) nonce: String,
}

/// Where the store stands, with what each state holds.
pub(super) enum State {
    Uninitialized,
    Sealed {
        config: Arc<SealConfig>,
        progress: Progress,
    },
    Unsealed {
        config: Arc<SealConfig>,
        barrier: Arc<Barrier>,
    },
    /// With HA: unsealed, not active. The barrier holds the keys for the
    /// take-over; it serves nothing until then.
    Standby {
        config: Arc<SealConfig>,
        barrier: Arc<Barrier>,
    },
}

impl State {
    pub(super) fn phase(&self) -> Phase {
        match self {
            State::Uninitialized => Phase::Uninitialized,
            State::Sealed { .. } => Phase::Sealed,
            State::Unsealed { .. } => Phase::Unsealed,
            State::Standby { .. } => Phase::Standby,
        }
    }
}

/// What the awskms seal reports beside the seal state.
#[derive(Default)]
pub(super) struct KmsReport {
    pub(super) auto_unseal: AutoUnsealStatus,
    /// ARN of the key that wraps the stored keys.
    pub(super) key_arn: String,
    /// The wrapping key is disabled or pending deletion, or its check failed.
    pub(super) key_health: Option<String>,
    /// The configured key is in another account or region than the stored one.
    pub(super) key_move: Option<String>,
    /// With several seals: the seals that hold both the root key and the
    /// recovery key (fully wrapped).
    pub(super) wrapped: Vec<String>,
    /// With several seals: the last auto-unseal attempt failed because no
    /// KMS seal could open the root key (what lets emergency keys in).
    pub(super) seals_failed: bool,
    /// With several seals: the seals that hold an envelope of either key.
    pub(super) holding: Vec<String>,
    /// With several seals: what an operator should know about the set (a
    /// change refused, envelopes of seals the config does not name).
    pub(super) seal_note: Option<String>,
}
