//! Named encryption keys (strongroom.v1.Keys), on Vault's transit paths.

use super::*;

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
