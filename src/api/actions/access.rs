//! Tokens (strongroom.v1.Token) and policies (strongroom.v1.Policy, and Vault's older `sys/policy`).

use super::*;

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
