//! Versioned secrets (strongroom.v1.Kv) on Vault's kv v2 paths, and the mounts Vault's clients ask about.

use super::*;

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
