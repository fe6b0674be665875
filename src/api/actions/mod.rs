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

// The declarations, one file per service.
mod access;
mod key_management;
mod lifecycle;
mod secrets;
mod transit;

pub use access::*;
pub use key_management::*;
pub use lifecycle::*;
pub use secrets::*;
pub use transit::*;

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
            "docs/ARCHITECTURE.md's table of actions differs from src/api/actions/; it should read:\n{}",
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
