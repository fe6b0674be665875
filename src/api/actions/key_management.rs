//! Key Management (strongroom.v1.KeyMgmt), on Vault Enterprise's keymgmt paths.

use super::*;

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
