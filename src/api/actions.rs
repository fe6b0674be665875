//! Every operation a caller can ask for, declared once: its name (the
//! audit line's `operation`), its policy path, who may call it, how it is
//! audited, and whether it runs on the node it reaches or on the active
//! node. The gate reads these for authorization and the audit record
//! alike, whatever the transport.

use crate::access::{Capability, acl};
use crate::engines::{keymgmt, keys, kv};
use crate::error::Error;

/// Who may call an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Nobody is asked who they are: share holders entering keys, init,
    /// generate-root. The call is audited all the same.
    None,
    /// Any authenticated caller; the handler checks a capability that
    /// depends on the request (create or update, another caller's token)
    /// on the action's path.
    Caller,
    /// The caller's policies must grant every one of these on the path.
    Require(&'static [Capability]),
    /// The caller's policies must grant at least one of these on the path;
    /// the handler requires the one the request needs (create for a new
    /// secret, update for an existing one). A caller with none is refused
    /// before anything is looked up, alike whether the thing exists.
    RequireAny(&'static [Capability]),
    /// Any caller about its own token (the request names none); about
    /// another token, the policies must grant these. The transport says
    /// which ([`crate::api::gate::Call::about_another`]), so a call about
    /// another token by a caller who may not make it is refused before its
    /// secret parameters reach the audit log.
    RequireForAnother(&'static [Capability]),
    /// As [`Auth::Require`] once the store is initialized; before, nobody
    /// is asked (a restore into a new daemon, which anyone who can reach
    /// it could initialize anyway).
    RequireOnceInitialized(&'static [Capability]),
    /// Anyone, like [`Auth::None`]; a token whose policies grant these on
    /// the path sees what the answer hides from others (a quorum
    /// operation's nonces). Asking spends no use of the token.
    Reveals(&'static [Capability]),
}

/// How an action is audited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audited {
    /// A request line before the call acts (which no device recording it
    /// refuses the call) and a response line after.
    Yes,
    /// As [`Audited::Yes`], but a request line no device could record is
    /// logged and the call goes on: sealing only takes keys away, and must
    /// never be refused for want of an audit device.
    BestEffort,
    /// Not audited: it reads memory and changes nothing (Status).
    No,
}

/// Where an action runs once HA has several nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// On the node it reaches: its own seal state (status, init, unseal, seal).
    Node,
    /// On the active node: a standby forwards it.
    Active,
}

/// What follows the action's path prefix: the thing the call is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// Nothing: the path is the action's path.
    None,
    /// A secret's path (`secret/data/<path>`).
    KvPath,
    /// A folder of secrets (`secret/metadata/<folder>/`): normalised with
    /// a trailing slash, as Vault adds one to a LIST path.
    KvFolder,
    /// A named key (`transit/encrypt/<name>`).
    KeyName,
    /// A policy (`sys/policies/acl/<name>`).
    PolicyName,
    /// A mount's path without its trailing slash (`sys/mounts/<mount>/tune`).
    MountPath,
    /// A KMS provider of the Key Management engine (`keymgmt/kms/<name>`).
    KmsProvider,
    /// A Key Management key (`keymgmt/key/<name>`).
    KeyMgmtKey,
    /// A key's distribution to a provider, `<provider>/key/<key>`
    /// (`keymgmt/kms/<provider>/key/<key>`).
    Distribution,
}

impl Resource {
    /// Checks `text` and returns the part of the policy path it makes.
    pub fn check(self, text: &str) -> Result<String, Error> {
        match self {
            Resource::None => Ok(String::new()),
            Resource::KvPath => kv::validate_path(text).map(|()| text.to_string()),
            Resource::KvFolder => kv::folder(text),
            Resource::KeyName => keys::validate_name(text).map(|()| text.to_string()),
            Resource::PolicyName => acl::validate_name(text).map(|()| text.to_string()),
            Resource::MountPath => {
                kv::validate_path(text)
                    .map(|()| text.to_string())
                    .map_err(|_| {
                        Error::InvalidArgument(format!(
                            "mount path {} is not valid",
                            crate::text::quote(text)
                        ))
                    })
            }
            Resource::KmsProvider => {
                keymgmt::validate_name("KMS provider", text).map(|()| text.to_string())
            }
            Resource::KeyMgmtKey => keymgmt::validate_name("key", text).map(|()| text.to_string()),
            Resource::Distribution => {
                let (provider, key) = text.split_once("/key/").unwrap_or((text, ""));
                keymgmt::validate_name("KMS provider", provider)?;
                keymgmt::validate_name("key", key)?;
                Ok(text.to_string())
            }
        }
    }
}

/// One operation.
#[derive(Debug, PartialEq, Eq)]
pub struct Action {
    /// The audit line's `operation`: service and method, as `kv.Put`.
    pub name: &'static str,
    /// The policy path, or its prefix when the call names a [`Resource`].
    pub path: &'static str,
    /// What follows the prefix.
    pub resource: Resource,
    /// What follows the resource (`/rotate` in `transit/keys/<name>/rotate`).
    pub suffix: &'static str,
    /// Who may call it.
    pub auth: Auth,
    /// How it is audited.
    pub audited: Audited,
    /// Where it runs.
    pub scope: Scope,
}

impl Action {
    /// The policy path of a call about `resource` (checked first).
    pub fn policy_path(&self, resource: &str) -> Result<String, Error> {
        let rest = self.resource.check(resource)?;
        Ok(format!("{}{rest}{}", self.path, self.suffix))
    }
}

use Audited::{BestEffort, Yes};
use Auth::{Caller, Require, RequireAny, RequireForAnother, RequireOnceInitialized};
use Capability::{Create, Delete, List, Patch, Read, Sudo, Update};

/// A declaration of every action, for the table below.
const fn action(
    name: &'static str,
    path: &'static str,
    resource: Resource,
    auth: Auth,
    audited: Audited,
    scope: Scope,
) -> Action {
    Action {
        name,
        path,
        resource,
        suffix: "",
        auth,
        audited,
        scope,
    }
}

const fn sys(name: &'static str, path: &'static str, auth: Auth) -> Action {
    action(name, path, Resource::None, auth, Yes, Scope::Active)
}

const fn on(name: &'static str, path: &'static str, resource: Resource, auth: Auth) -> Action {
    action(name, path, resource, auth, Yes, Scope::Active)
}

/// A key's action on `transit/keys/<name><suffix>`.
const fn on_key(name: &'static str, suffix: &'static str, auth: Auth) -> Action {
    on(name, "transit/keys/", Resource::KeyName, auth).with_suffix(suffix)
}

impl Action {
    /// The action with `suffix` after its resource.
    const fn with_suffix(mut self, suffix: &'static str) -> Self {
        self.suffix = suffix;
        self
    }
}

// The seal lifecycle (strongroom.v1.Sys).

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

// Versioned secrets (strongroom.v1.Kv), on Vault's kv v2 paths.

/// `Kv.Put`: `create` for a new path, `update` for an existing one.
pub const KV_PUT: Action = on(
    "kv.Put",
    "secret/data/",
    Resource::KvPath,
    RequireAny(&[Create, Update]),
);
/// `Kv.Get`.
pub const KV_GET: Action = on("kv.Get", "secret/data/", Resource::KvPath, Require(&[Read]));
/// `Kv.Delete` naming no versions: soft-deletes the latest.
pub const KV_DELETE: Action = on(
    "kv.Delete",
    "secret/data/",
    Resource::KvPath,
    Require(&[Delete]),
);
/// `Kv.Delete` naming versions: soft-deletes those (`secret/delete/`).
pub const KV_DELETE_VERSIONS: Action = on(
    "kv.DeleteVersions",
    "secret/delete/",
    Resource::KvPath,
    Require(&[Update]),
);
/// `Kv.Undelete`.
pub const KV_UNDELETE: Action = on(
    "kv.Undelete",
    "secret/undelete/",
    Resource::KvPath,
    Require(&[Update]),
);
/// `Kv.Destroy`: erases versions for good.
pub const KV_DESTROY: Action = on(
    "kv.Destroy",
    "secret/destroy/",
    Resource::KvPath,
    Require(&[Update]),
);
/// `Kv.List`.
pub const KV_LIST: Action = on(
    "kv.List",
    "secret/metadata/",
    Resource::KvFolder,
    Require(&[List]),
);
/// `Kv.Metadata`.
pub const KV_METADATA: Action = on(
    "kv.Metadata",
    "secret/metadata/",
    Resource::KvPath,
    Require(&[Read]),
);
/// `Kv.DeleteMetadata`: erases the path for good.
pub const KV_DELETE_METADATA: Action = on(
    "kv.DeleteMetadata",
    "secret/metadata/",
    Resource::KvPath,
    Require(&[Delete]),
);
/// `Kv.Patch`: a JSON merge patch of the current version (Vault's `patch`).
pub const KV_PATCH: Action = on(
    "kv.Patch",
    "secret/data/",
    Resource::KvPath,
    Require(&[Patch]),
);
/// `Kv.PutMetadata`: a path's own settings; `create` for a new path,
/// `update` for an existing one.
pub const KV_PUT_METADATA: Action = on(
    "kv.PutMetadata",
    "secret/metadata/",
    Resource::KvPath,
    RequireAny(&[Create, Update]),
);
/// `Kv.ReadConfig`: the store-wide kv settings (`secret/config`).
pub const KV_READ_CONFIG: Action = sys("kv.ReadConfig", "secret/config", Require(&[Read]));
/// `Kv.WriteConfig`.
pub const KV_WRITE_CONFIG: Action = sys("kv.WriteConfig", "secret/config", Require(&[Update]));
/// `secret/metadata/<path>` PATCH (HTTP only): a JSON merge patch of a
/// path's own settings, Vault's `patch`.
pub const KV_PATCH_METADATA: Action = on(
    "kv.PatchMetadata",
    "secret/metadata/",
    Resource::KvPath,
    Require(&[Patch]),
);
/// `secret/subkeys/<path>` (HTTP only): a version's field names, no values.
pub const KV_SUBKEYS: Action = on(
    "kv.Subkeys",
    "secret/subkeys/",
    Resource::KvPath,
    Require(&[Read]),
);
/// `sys/mounts` (HTTP only): the secret engines strongroom serves.
pub const MOUNTS_READ: Action = sys("sys.Mounts", "sys/mounts", Require(&[Read]));
/// `sys/internal/ui/mounts/<path>` (HTTP only): the mount serving a path,
/// which Vault's CLI asks before any kv call; any caller.
pub const MOUNTS_LOOKUP: Action = sys("sys.MountLookup", "sys/internal/ui/mounts", Caller);
/// `sys/mounts/<mount>/tune` read (HTTP only): a mount's settings.
pub const MOUNTS_TUNE_READ: Action = action(
    "sys.MountTuneRead",
    "sys/mounts/",
    Resource::MountPath,
    Require(&[Read]),
    Yes,
    Scope::Active,
)
.with_suffix("/tune");

// Named encryption keys (strongroom.v1.Keys), on Vault's transit paths.

/// `Keys.Create`: either capability for a new key (gRPC's create asks
/// `create`, Vault's `update`); `update` for an existing one, which Vault's
/// transit answers as it is (the handler checks).
pub const KEYS_CREATE: Action = on_key("keys.Create", "", RequireAny(&[Create, Update]));
/// `Keys.Read`.
pub const KEYS_READ: Action = on_key("keys.Read", "", Require(&[Read]));
/// `Keys.List`.
pub const KEYS_LIST: Action = on(
    "keys.List",
    "transit/keys/",
    Resource::None,
    Require(&[List]),
);
/// `Keys.Rotate`.
pub const KEYS_ROTATE: Action = on_key("keys.Rotate", "/rotate", Require(&[Update]));
/// `Keys.UpdateKeyConfig`.
pub const KEYS_UPDATE_CONFIG: Action = on_key("keys.UpdateConfig", "/config", Require(&[Update]));
/// `Keys.DeleteKey`.
pub const KEYS_DELETE: Action = on_key("keys.Delete", "", Require(&[Delete]));
/// `Keys.Encrypt`: `update`, and `create` too when it makes the key.
pub const KEYS_ENCRYPT: Action = on(
    "keys.Encrypt",
    "transit/encrypt/",
    Resource::KeyName,
    Require(&[Update]),
);
/// `Keys.Decrypt`.
pub const KEYS_DECRYPT: Action = on(
    "keys.Decrypt",
    "transit/decrypt/",
    Resource::KeyName,
    Require(&[Update]),
);
/// `Keys.Rewrap`: neither takes nor returns a plaintext.
pub const KEYS_REWRAP: Action = on(
    "keys.Rewrap",
    "transit/rewrap/",
    Resource::KeyName,
    Require(&[Update]),
);
/// `Keys.GenerateDataKey`: the data key and its plaintext.
pub const KEYS_DATA_KEY: Action = on(
    "keys.GenerateDataKey",
    "transit/datakey/plaintext/",
    Resource::KeyName,
    Require(&[Update]),
);
/// `transit/datakey/wrapped/<name>` (HTTP only): the data key without its
/// plaintext.
pub const KEYS_DATA_KEY_WRAPPED: Action = on(
    "keys.GenerateWrappedDataKey",
    "transit/datakey/wrapped/",
    Resource::KeyName,
    Require(&[Update]),
);
/// `Keys.BatchEncrypt`: as Encrypt.
pub const KEYS_BATCH_ENCRYPT: Action = on(
    "keys.BatchEncrypt",
    "transit/encrypt/",
    Resource::KeyName,
    Require(&[Update]),
);
/// `Keys.BatchDecrypt`: as Decrypt.
pub const KEYS_BATCH_DECRYPT: Action = on(
    "keys.BatchDecrypt",
    "transit/decrypt/",
    Resource::KeyName,
    Require(&[Update]),
);

// Tokens (strongroom.v1.Token).

/// `Token.CreateToken`: `update`, as Vault asks on `auth/token/create`,
/// or `create`, which strongroom asked before (policies in use grant it);
/// either is enough. `sudo` too for an orphan.
pub const TOKEN_CREATE: Action = sys(
    "token.Create",
    "auth/token/create",
    RequireAny(&[Create, Update]),
);
/// `POST auth/token/create-orphan`: Vault's orphan maker, authorized on
/// its own path (no `sudo`, as Vault's; `create` too, as `token.Create`).
pub const TOKEN_CREATE_ORPHAN: Action = sys(
    "token.CreateOrphan",
    "auth/token/create-orphan",
    RequireAny(&[Create, Update]),
);
/// `Token.LookupToken`: another token (`update`, as Vault's POST).
pub const TOKEN_LOOKUP: Action = sys("token.Lookup", "auth/token/lookup", Require(&[Update]));
/// `Token.LookupSelf`: any valid token.
pub const TOKEN_LOOKUP_SELF: Action = sys("token.LookupSelf", "auth/token/lookup-self", Caller);
/// `Token.RenewToken`: the caller's own, or another with `update`.
pub const TOKEN_RENEW: Action = sys(
    "token.Renew",
    "auth/token/renew",
    RequireForAnother(&[Update]),
);
/// `Token.RevokeToken`: the caller's own, or another with `update`.
pub const TOKEN_REVOKE: Action = sys(
    "token.Revoke",
    "auth/token/revoke",
    RequireForAnother(&[Update]),
);
/// `Token.RevokeAccessor`: another token by accessor, with `update`.
pub const TOKEN_REVOKE_ACCESSOR: Action = sys(
    "token.RevokeAccessor",
    "auth/token/revoke-accessor",
    Require(&[Update]),
);
/// `Token.ListAccessors`: root tokens' accessors.
pub const TOKEN_LIST_ACCESSORS: Action = sys(
    "token.ListAccessors",
    "auth/token/accessors",
    Require(&[Sudo]),
);

// Policies (strongroom.v1.Policy).

/// `Policy.PutPolicy`: `create` for a new policy, `update` for an existing one.
pub const POLICY_PUT: Action = on(
    "policy.Put",
    "sys/policies/acl/",
    Resource::PolicyName,
    RequireAny(&[Create, Update]),
);
/// `Policy.GetPolicy`.
pub const POLICY_GET: Action = on(
    "policy.Get",
    "sys/policies/acl/",
    Resource::PolicyName,
    Require(&[Read]),
);
/// `Policy.ListPolicies`.
pub const POLICY_LIST: Action = on(
    "policy.List",
    "sys/policies/acl/",
    Resource::None,
    Require(&[List]),
);
/// `Policy.DeletePolicy`.
pub const POLICY_DELETE: Action = on(
    "policy.Delete",
    "sys/policies/acl/",
    Resource::PolicyName,
    Require(&[Delete]),
);

// Vault's older policy API (`sys/policy`, HTTP only), authorized on its
// own paths as Vault does: a policy granting `sys/policies/acl/*` does
// not reach it.
/// `PUT sys/policy/<name>`: `update` (OpenBao asks it for a new policy too).
pub const POLICY_PUT_OLD: Action = on(
    "policy.PutOld",
    "sys/policy/",
    Resource::PolicyName,
    Require(&[Update]),
);
/// `GET sys/policy/<name>`.
pub const POLICY_GET_OLD: Action = on(
    "policy.GetOld",
    "sys/policy/",
    Resource::PolicyName,
    Require(&[Read]),
);
/// `LIST sys/policy`.
pub const POLICY_LIST_OLD: Action = sys("policy.ListOld", "sys/policy/", Require(&[List]));
/// `GET sys/policy`: the same list, read (`read`, as Vault's).
pub const POLICY_READ_LIST_OLD: Action = sys("policy.ReadListOld", "sys/policy", Require(&[Read]));
/// `DELETE sys/policy/<name>`.
pub const POLICY_DELETE_OLD: Action = on(
    "policy.DeleteOld",
    "sys/policy/",
    Resource::PolicyName,
    Require(&[Delete]),
);
// Key Management (strongroom.v1.KeyMgmt), on Vault Enterprise's keymgmt
// paths. A write is `create` for a new provider, key or distribution and
// `update` for an existing one (the engine asks for the one it needs).

/// `KeyMgmt.WriteProvider`: registers or changes a KMS provider.
pub const KEYMGMT_PROVIDER_WRITE: Action = on(
    "keymgmt.WriteProvider",
    "keymgmt/kms/",
    Resource::KmsProvider,
    RequireAny(&[Create, Update]),
);
/// `KeyMgmt.ReadProvider`: its settings, never its credentials.
pub const KEYMGMT_PROVIDER_READ: Action = on(
    "keymgmt.ReadProvider",
    "keymgmt/kms/",
    Resource::KmsProvider,
    Require(&[Read]),
);
/// `KeyMgmt.ListProviders`.
pub const KEYMGMT_PROVIDER_LIST: Action = on(
    "keymgmt.ListProviders",
    "keymgmt/kms/",
    Resource::None,
    Require(&[List]),
);
/// `KeyMgmt.DeleteProvider`.
pub const KEYMGMT_PROVIDER_DELETE: Action = on(
    "keymgmt.DeleteProvider",
    "keymgmt/kms/",
    Resource::KmsProvider,
    Require(&[Delete]),
);
/// `KeyMgmt.WriteKey`: makes a key or changes its settings.
pub const KEYMGMT_KEY_WRITE: Action = on(
    "keymgmt.WriteKey",
    "keymgmt/key/",
    Resource::KeyMgmtKey,
    RequireAny(&[Create, Update]),
);
/// `KeyMgmt.ReadKey`: versions and settings, never material.
pub const KEYMGMT_KEY_READ: Action = on(
    "keymgmt.ReadKey",
    "keymgmt/key/",
    Resource::KeyMgmtKey,
    Require(&[Read]),
);
/// `KeyMgmt.ListKeys`.
pub const KEYMGMT_KEY_LIST: Action = on(
    "keymgmt.ListKeys",
    "keymgmt/key/",
    Resource::None,
    Require(&[List]),
);
/// `KeyMgmt.RotateKey`: a new version, distributed wherever the key is.
pub const KEYMGMT_KEY_ROTATE: Action = on(
    "keymgmt.RotateKey",
    "keymgmt/key/",
    Resource::KeyMgmtKey,
    Require(&[Update]),
)
.with_suffix("/rotate");
/// `KeyMgmt.DeleteKey`: with `deletion_allowed`; its distributions removed.
pub const KEYMGMT_KEY_DELETE: Action = on(
    "keymgmt.DeleteKey",
    "keymgmt/key/",
    Resource::KeyMgmtKey,
    Require(&[Delete]),
);
/// `KeyMgmt.ListKeyProviders`: the providers a key is distributed to.
pub const KEYMGMT_KEY_PROVIDERS: Action = on(
    "keymgmt.ListKeyProviders",
    "keymgmt/key/",
    Resource::KeyMgmtKey,
    Require(&[List]),
)
.with_suffix("/kms/");
/// `KeyMgmt.Distribute`: `create` for a new distribution, `update` to
/// complete one an error interrupted.
pub const KEYMGMT_DISTRIBUTE: Action = on(
    "keymgmt.Distribute",
    "keymgmt/kms/",
    Resource::Distribution,
    RequireAny(&[Create, Update]),
);
/// `KeyMgmt.ReadDistribution`.
pub const KEYMGMT_DISTRIBUTION_READ: Action = on(
    "keymgmt.ReadDistribution",
    "keymgmt/kms/",
    Resource::Distribution,
    Require(&[Read]),
);
/// `KeyMgmt.ListDistributions`: the keys distributed to a provider.
pub const KEYMGMT_DISTRIBUTION_LIST: Action = on(
    "keymgmt.ListDistributions",
    "keymgmt/kms/",
    Resource::KmsProvider,
    Require(&[List]),
)
.with_suffix("/key/");
/// `KeyMgmt.RemoveDistribution`: the KMS keys scheduled for deletion.
pub const KEYMGMT_DISTRIBUTION_REMOVE: Action = on(
    "keymgmt.RemoveDistribution",
    "keymgmt/kms/",
    Resource::Distribution,
    Require(&[Delete]),
);

/// The actions that make an uninitialized store someone's: whoever calls
/// them holds its keys. A listener with `allow_init = false` refuses them
/// (a restore only while the store is not initialized, as only then it
/// needs no token).
pub const INITIALIZING: &[&Action] = &[&INIT, &INIT_CONFIRM, &SNAPSHOT_RESTORE];

/// The actions of Vault's HTTP API that no gRPC method has: the mounts
/// (fixed, and only Vault's clients ask about them), the metrics (what
/// Prometheus scrapes), the wrapped data key (gRPC's always returns the
/// plaintext), kv v2's metadata patch and subkeys (Vault clients'
/// calls; `Kv.PutMetadata` and `Kv.Get` serve strongroom's own) and
/// Vault's older policy API.
pub const HTTP_ONLY: &[&Action] = &[
    &METRICS,
    &KV_PATCH_METADATA,
    &KV_SUBKEYS,
    &MOUNTS_READ,
    &MOUNTS_LOOKUP,
    &MOUNTS_TUNE_READ,
    &KEYS_DATA_KEY_WRAPPED,
    &POLICY_PUT_OLD,
    &POLICY_GET_OLD,
    &POLICY_LIST_OLD,
    &POLICY_READ_LIST_OLD,
    &POLICY_DELETE_OLD,
    &TOKEN_CREATE_ORPHAN,
];

/// Actions a gRPC method runs instead of its own when the request asks
/// for them: `Kv.Delete` naming versions. The method's table names the
/// other; both run on the active node.
pub const BY_REQUEST: &[&Action] = &[&KV_DELETE_VERSIONS];

/// Every action, in the order of the protos.
pub const ALL: &[&Action] = &[
    &STATUS,
    &SEAL_BACKEND_STATUS,
    &INIT,
    &INIT_CONFIRM,
    &UNSEAL,
    &SEAL,
    &STEP_DOWN,
    &ROTATE,
    &KEY_STATUS,
    &SNAPSHOT_SAVE,
    &SNAPSHOT_RESTORE,
    &AUDIT_HASH,
    &METRICS,
    &REKEY_INIT,
    &REKEY_UPDATE,
    &REKEY_CONFIRM,
    &REKEY_VERIFY_UPDATE,
    &REKEY_CANCEL,
    &REKEY_STATUS,
    &ROTATE_ROOT_INIT,
    &ROTATE_ROOT_UPDATE,
    &ROTATE_ROOT_CANCEL,
    &ROTATE_ROOT_STATUS,
    &GENERATE_ROOT_INIT,
    &GENERATE_ROOT_UPDATE,
    &GENERATE_ROOT_CANCEL,
    &GENERATE_ROOT_STATUS,
    &REKEY_VERIFY_RESTART,
    &KV_PUT,
    &KV_GET,
    &KV_DELETE,
    &KV_DELETE_VERSIONS,
    &KV_UNDELETE,
    &KV_DESTROY,
    &KV_LIST,
    &KV_METADATA,
    &KV_DELETE_METADATA,
    &KV_PATCH,
    &KV_PUT_METADATA,
    &KV_READ_CONFIG,
    &KV_WRITE_CONFIG,
    &KV_PATCH_METADATA,
    &KV_SUBKEYS,
    &MOUNTS_READ,
    &MOUNTS_LOOKUP,
    &MOUNTS_TUNE_READ,
    &KEYS_CREATE,
    &KEYS_READ,
    &KEYS_LIST,
    &KEYS_ROTATE,
    &KEYS_UPDATE_CONFIG,
    &KEYS_DELETE,
    &KEYS_ENCRYPT,
    &KEYS_DECRYPT,
    &KEYS_REWRAP,
    &KEYS_DATA_KEY,
    &KEYS_DATA_KEY_WRAPPED,
    &KEYS_BATCH_ENCRYPT,
    &KEYS_BATCH_DECRYPT,
    &TOKEN_CREATE,
    &TOKEN_LOOKUP,
    &TOKEN_LOOKUP_SELF,
    &TOKEN_RENEW,
    &TOKEN_REVOKE,
    &TOKEN_REVOKE_ACCESSOR,
    &TOKEN_LIST_ACCESSORS,
    &POLICY_PUT,
    &POLICY_GET,
    &POLICY_LIST,
    &POLICY_DELETE,
    &POLICY_PUT_OLD,
    &POLICY_GET_OLD,
    &POLICY_LIST_OLD,
    &POLICY_READ_LIST_OLD,
    &POLICY_DELETE_OLD,
    &TOKEN_CREATE_ORPHAN,
    &KEYMGMT_PROVIDER_WRITE,
    &KEYMGMT_PROVIDER_READ,
    &KEYMGMT_PROVIDER_LIST,
    &KEYMGMT_PROVIDER_DELETE,
    &KEYMGMT_KEY_WRITE,
    &KEYMGMT_KEY_READ,
    &KEYMGMT_KEY_LIST,
    &KEYMGMT_KEY_ROTATE,
    &KEYMGMT_KEY_DELETE,
    &KEYMGMT_KEY_PROVIDERS,
    &KEYMGMT_DISTRIBUTE,
    &KEYMGMT_DISTRIBUTION_READ,
    &KEYMGMT_DISTRIBUTION_LIST,
    &KEYMGMT_DISTRIBUTION_REMOVE,
];

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_action_has_its_own_name_and_a_policy_path() {
        let mut names = HashSet::new();
        for action in ALL {
            assert!(names.insert(action.name), "{} twice", action.name);
            assert!(
                ["sys/", "secret/", "transit/", "auth/token/", "keymgmt/"]
                    .iter()
                    .any(|root| action.path.starts_with(root)),
                "{}: {}",
                action.name,
                action.path
            );
            // A path that takes a resource ends where the resource starts.
            assert_eq!(
                action.resource != Resource::None && action.path.ends_with('/'),
                action.resource != Resource::None,
                "{}",
                action.name
            );
        }
    }

    #[test]
    fn policy_paths_check_their_resource() {
        assert_eq!(KV_PUT.policy_path("app/db").unwrap(), "secret/data/app/db");
        assert_eq!(KV_LIST.policy_path("app").unwrap(), "secret/metadata/app/");
        assert_eq!(KV_LIST.policy_path("").unwrap(), "secret/metadata/");
        assert_eq!(KEYS_LIST.policy_path("").unwrap(), "transit/keys/");
        assert_eq!(
            KEYS_ROTATE.policy_path("orders").unwrap(),
            "transit/keys/orders/rotate"
        );
        assert_eq!(
            KEYS_ENCRYPT.policy_path("orders").unwrap(),
            "transit/encrypt/orders"
        );
        assert!(KV_GET.policy_path("a//b").is_err());
        assert_eq!(
            MOUNTS_TUNE_READ.policy_path("auth/token").unwrap(),
            "sys/mounts/auth/token/tune"
        );
        assert!(MOUNTS_TUNE_READ.policy_path("a//b").is_err());
        assert!(KEYS_ENCRYPT.policy_path("no spaces").is_err());
        assert_eq!(
            POLICY_GET.policy_path("root").unwrap(),
            "sys/policies/acl/root"
        );
        assert!(matches!(
            POLICY_PUT.policy_path("Root!"),
            Err(Error::InvalidArgument(_))
        ));
        assert_eq!(
            KEYMGMT_DISTRIBUTE.policy_path("aws/key/orders").unwrap(),
            "keymgmt/kms/aws/key/orders"
        );
        assert!(KEYMGMT_DISTRIBUTE.policy_path("aws").is_err());
        assert!(KEYMGMT_DISTRIBUTE.policy_path("aws/key/a/b").is_err());
        assert!(KEYMGMT_DISTRIBUTE.policy_path("../key/x").is_err());
        assert_eq!(
            KEYMGMT_DISTRIBUTION_LIST.policy_path("aws").unwrap(),
            "keymgmt/kms/aws/key/"
        );
        assert_eq!(
            KEYMGMT_KEY_PROVIDERS.policy_path("orders").unwrap(),
            "keymgmt/key/orders/kms/"
        );
        assert_eq!(KEYMGMT_KEY_LIST.policy_path("").unwrap(), "keymgmt/key/");
        // A distribution asks for update on its key's path as the engine
        // names it.
        assert_eq!(
            KEYMGMT_KEY_WRITE.policy_path("orders").unwrap(),
            keymgmt::key_policy_path("orders")
        );
    }
}

/// The table of every action in docs/ARCHITECTURE.md, kept true by a test.
#[cfg(test)]
mod docs {
    use super::*;

    fn who(action: &Action) -> String {
        let capabilities = |caps: &[Capability]| {
            caps.iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(" and ")
        };
        match (action.auth, action.audited) {
            (Auth::None, Audited::No) => "anyone (not audited)".into(),
            (Auth::None, _) => "anyone".into(),
            (Auth::Caller, _) => "any caller; the handler decides (below)".into(),
            (Auth::Require(caps), Audited::BestEffort) => {
                format!("{} (audited best-effort)", capabilities(caps))
            }
            (Auth::Require(caps), Audited::No) => {
                format!("{} (not audited)", capabilities(caps))
            }
            (Auth::Require(caps), _) => capabilities(caps),
            (Auth::RequireForAnother(caps), _) => {
                format!(
                    "any caller for its own token; {} for another",
                    capabilities(caps)
                )
            }
            (Auth::RequireAny(caps), _) => {
                let any: Vec<String> = caps.iter().map(|c| format!("`{c}`")).collect();
                format!("{}, as the handler decides (below)", any.join(" or "))
            }
            (Auth::RequireOnceInitialized(caps), _) => {
                format!("{}; anyone before init", capabilities(caps))
            }
            (Auth::Reveals(caps), Audited::No) => {
                format!(
                    "anyone (not audited); nonces to a token with {}",
                    capabilities(caps)
                )
            }
            (Auth::Reveals(caps), _) => {
                format!("anyone; nonces to a token with {}", capabilities(caps))
            }
        }
    }

    fn row(action: &Action) -> String {
        let path = match action.resource {
            Resource::None => action.path.to_string(),
            Resource::KvPath => format!("{}<path>", action.path),
            Resource::KvFolder => format!("{}<folder>/", action.path),
            Resource::KeyName | Resource::PolicyName => {
                format!("{}<name>{}", action.path, action.suffix)
            }
            Resource::MountPath => format!("{}<mount>{}", action.path, action.suffix),
            Resource::KmsProvider => format!("{}<provider>{}", action.path, action.suffix),
            Resource::KeyMgmtKey => format!("{}<name>{}", action.path, action.suffix),
            Resource::Distribution => format!("{}<provider>/key/<name>", action.path),
        };
        let scope = match action.scope {
            Scope::Node => "this node",
            Scope::Active => "active node",
        };
        format!(
            "| `{}` | `{path}` | {} | {scope} |",
            action.name,
            who(action)
        )
    }

    #[test]
    fn the_architecture_doc_lists_every_action_as_declared() {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/ARCHITECTURE.md"))
                .unwrap();
        let table = doc
            .split("<!-- actions:begin -->")
            .nth(1)
            .and_then(|rest| rest.split("<!-- actions:end -->").next())
            .unwrap_or_default();
        let found: Vec<&str> = table.lines().filter(|l| l.starts_with("| `")).collect();
        let expected: Vec<String> = ALL.iter().map(|a| row(a)).collect();
        assert_eq!(
            found,
            expected,
            "docs/ARCHITECTURE.md's table of actions differs from src/api/actions.rs; it should read:\n{}",
            expected.join("\n")
        );
    }

    #[test]
    fn the_audit_format_doc_names_every_audited_operation() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/FORMATS.md"))
            .unwrap();
        let row = doc
            .lines()
            .find(|line| line.starts_with("| `operation` |"))
            .unwrap_or_default();
        let missing: Vec<&str> = ALL
            .iter()
            .filter(|a| a.audited != Audited::No)
            .map(|a| a.name)
            .filter(|name| !row.contains(&format!("`{name}`")))
            .collect();
        assert!(
            missing.is_empty(),
            "docs/FORMATS.md's audit `operation` row lacks {missing:?}"
        );
    }
}
