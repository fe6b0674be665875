//! The seal lifecycle, the quorum operations and the node's own (strongroom.v1.Sys).

use super::*;

/// `Sys.Status`: the seal state, read from memory.
pub const STATUS: Action = action(
    "sys.Status",
    "sys/seal-status",
    Resource::None,
    Auth::None,
    Audited::No,
    Scope::Node,
);
/// `Sys.SealBackendStatus`: each seal's health, read from memory
/// (Vault's unauthenticated `sys/seal-backend-status`).
pub const SEAL_BACKEND_STATUS: Action = action(
    "sys.SealBackendStatus",
    "sys/seal-backend-status",
    Resource::None,
    Auth::None,
    Audited::No,
    Scope::Node,
);
/// `Sys.Init`: makes the keys, writes nothing until confirmed.
pub const INIT: Action = action(
    "sys.Init",
    "sys/init",
    Resource::None,
    Auth::None,
    Yes,
    Scope::Node,
);
/// `Sys.InitConfirm`: writes the init the receiver confirms.
pub const INIT_CONFIRM: Action = action(
    "sys.InitConfirm",
    "sys/init",
    Resource::None,
    Auth::None,
    Yes,
    Scope::Node,
);
/// `Sys.Unseal`: one unseal (or migration) key.
pub const UNSEAL: Action = action(
    "sys.Unseal",
    "sys/unseal",
    Resource::None,
    Auth::None,
    Yes,
    Scope::Node,
);
/// `Sys.Seal`.
pub const SEAL: Action = action(
    "sys.Seal",
    "sys/seal",
    Resource::None,
    Require(&[Sudo]),
    BestEffort,
    Scope::Node,
);
/// `Sys.StepDown`: the active node gives the HA role up (Vault's
/// `sys/step-down`, update and sudo).
pub const STEP_DOWN: Action = sys("sys.StepDown", "sys/step-down", Require(&[Update, Sudo]));
/// `Sys.Rotate`: a new keyring term.
pub const ROTATE: Action = sys("sys.Rotate", "sys/rotate", Require(&[Sudo]));
/// `Sys.KeyStatus`: the keyring's terms and counts.
pub const KEY_STATUS: Action = sys("sys.KeyStatus", "sys/key-status", Require(&[Read]));
/// `Sys.SnapshotSave`.
pub const SNAPSHOT_SAVE: Action = sys("sys.SnapshotSave", "sys/snapshot", Require(&[Sudo]));
/// `Sys.SnapshotRestore`.
pub const SNAPSHOT_RESTORE: Action = sys(
    "sys.SnapshotRestore",
    "sys/snapshot-restore",
    RequireOnceInitialized(&[Sudo]),
);
/// `Sys.AuditHash`: a value's HMAC as audit lines write it.
pub const AUDIT_HASH: Action = sys("sys.AuditHash", "sys/audit-hash", Require(&[Update]));

// Metrics (Vault's HTTP API only: `sys/metrics`).

/// `sys/metrics`: the metrics in Prometheus's format, from this node's
/// memory; not audited (it changes nothing, as Status). A listener with
/// `telemetry { unauthenticated_metrics_access = true }` serves it without
/// this call.
pub const METRICS: Action = action(
    "sys.Metrics",
    "sys/metrics",
    Resource::None,
    Require(&[Read]),
    Audited::No,
    Scope::Node,
);

// The quorum operations (strongroom.v1.Sys). Their Status calls are not
// audited; they show nonces to a token with sudo on the operation's path.

/// `Sys.RekeyInit`.
pub const REKEY_INIT: Action = sys("sys.RekeyInit", "sys/rekey", Require(&[Sudo]));
/// `Sys.RekeyUpdate`: one current key.
pub const REKEY_UPDATE: Action = sys("sys.RekeyUpdate", "sys/rekey", Auth::None);
/// `Sys.RekeyConfirm`: the receiver of the new keys confirms.
pub const REKEY_CONFIRM: Action = sys("sys.RekeyConfirm", "sys/rekey", Auth::None);
/// `Sys.RekeyVerifyUpdate`: one new key typed back.
pub const REKEY_VERIFY_UPDATE: Action = sys("sys.RekeyVerifyUpdate", "sys/rekey", Auth::None);
/// `Sys.RekeyCancel`.
pub const REKEY_CANCEL: Action = sys("sys.RekeyCancel", "sys/rekey", Require(&[Sudo]));
/// `Sys.RekeyStatus`.
pub const REKEY_STATUS: Action = action(
    "sys.RekeyStatus",
    "sys/rekey",
    Resource::None,
    Auth::Reveals(&[Sudo]),
    Audited::No,
    Scope::Active,
);
/// `Sys.RotateRootInit`.
pub const ROTATE_ROOT_INIT: Action = sys("sys.RotateRootInit", "sys/rotate-root", Require(&[Sudo]));
/// `Sys.RotateRootUpdate`: one key.
pub const ROTATE_ROOT_UPDATE: Action = sys("sys.RotateRootUpdate", "sys/rotate-root", Auth::None);
/// `Sys.RotateRootCancel`.
pub const ROTATE_ROOT_CANCEL: Action =
    sys("sys.RotateRootCancel", "sys/rotate-root", Require(&[Sudo]));
/// `Sys.RotateRootStatus`.
pub const ROTATE_ROOT_STATUS: Action = action(
    "sys.RotateRootStatus",
    "sys/rotate-root",
    Resource::None,
    Auth::Reveals(&[Sudo]),
    Audited::No,
    Scope::Active,
);
/// `Sys.GenerateRootInit`: needs no token; that is its point.
pub const GENERATE_ROOT_INIT: Action = sys("sys.GenerateRootInit", "sys/generate-root", Auth::None);
/// `Sys.GenerateRootUpdate`: one key.
pub const GENERATE_ROOT_UPDATE: Action =
    sys("sys.GenerateRootUpdate", "sys/generate-root", Auth::None);
/// `Sys.GenerateRootCancel`: the nonce is enough.
pub const GENERATE_ROOT_CANCEL: Action =
    sys("sys.GenerateRootCancel", "sys/generate-root", Auth::None);
/// `Sys.GenerateRootStatus`.
pub const GENERATE_ROOT_STATUS: Action = action(
    "sys.GenerateRootStatus",
    "sys/generate-root",
    Resource::None,
    Auth::Reveals(&[Sudo]),
    Audited::No,
    Scope::Active,
);
/// `Sys.RekeyVerifyRestart` (Vault's `DELETE sys/rekey/verify`): the
/// verification starts again under a new nonce; `sudo`, as a cancel.
pub const REKEY_VERIFY_RESTART: Action =
    sys("sys.RekeyVerifyRestart", "sys/rekey", Require(&[Sudo]));
