//! Policies written before strongroom took Vault's paths named its own
//! (`kv/…`, `keys/…`, `sys/policy/…`, `sys/kv/config`) and four
//! capabilities of its own (`encrypt`, `decrypt`, `datakey`, `rotate`).
//! Each such rule is rewritten, once, into the rules on Vault's paths that
//! grant what it granted (the table in docs/ACCESS.md); the marker
//! [`MARKER`] says the store's policies are on Vault's paths.

use super::acl::{self, Capabilities, Capability, Pattern};
use crate::error::Error;
use crate::text::quote;

/// Behind the barrier: present once the store's policies use Vault's paths
/// (written with the rewrite, and with every policy written since).
pub const MARKER: &str = "sys/policy-paths";

/// The marker's value: the paths the stored policies name.
pub const FORMAT: &[u8] = b"vault";

/// The first line of a rewritten policy.
const HEADER: &str = "# Rewritten from strongroom's own paths to Vault's when this store was first unsealed by a build that uses Vault's paths (docs/ACCESS.md).\n";

/// A policy's rules on Vault's paths, in the order they were made; one
/// pattern made twice gets the union.
#[derive(Default)]
struct Rules(Vec<(String, Capabilities)>);

impl Rules {
    fn grant(&mut self, pattern: String, capability: Capability) {
        match self.0.iter_mut().find(|(p, _)| *p == pattern) {
            Some((_, set)) => set.insert(capability),
            None => {
                let mut set = Capabilities::default();
                set.insert(capability);
                self.0.push((pattern, set));
            }
        }
    }
}

/// The capability names of one old rule.
struct Old<'a>(&'a [String]);

impl Old<'_> {
    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|n| n == name)
    }
}

/// The text of policy `name` on Vault's paths, or `None` when none of its
/// rules names an old path or capability (its text is kept as written).
/// `dropped` gets a sentence for each grant that has no exact equivalent
/// and is left out rather than widened.
pub fn rewrite(name: &str, text: &str, dropped: &mut Vec<String>) -> Result<Option<String>, Error> {
    let blocks = acl::parse_blocks(name, text).map_err(|e| {
        Error::Internal(format!(
            "the stored policy {} does not parse, so it cannot be rewritten to Vault's paths: {e}",
            quote(name)
        ))
    })?;
    let mut changed = false;
    let mut rules = Rules::default();
    for block in &blocks {
        changed |= map_rule(name, block, &mut rules, dropped)?;
    }
    if !changed {
        return Ok(None);
    }
    let mut out = String::from(HEADER);
    for (pattern, capabilities) in &rules.0 {
        let names: Vec<String> = capabilities
            .names()
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect();
        out.push_str(&format!(
            "path \"{pattern}\" {{\n  capabilities = [{}]\n}}\n",
            names.join(", ")
        ));
    }
    Ok(Some(out))
}

/// Adds the rules on Vault's paths that grant what `block` granted; true
/// if that differs from `block` as written.
fn map_rule(
    name: &str,
    block: &acl::Block,
    rules: &mut Rules,
    dropped: &mut Vec<String>,
) -> Result<bool, Error> {
    for capability in &block.capabilities {
        let known = Capability::parse(capability).is_some()
            || ["encrypt", "decrypt", "datakey", "rotate"].contains(&capability.as_str());
        if !known {
            return Err(Error::Internal(format!(
                "the stored policy {} line {} names capability {capability:?}, which no build of strongroom had",
                quote(name),
                block.line
            )));
        }
    }
    let old = Old(&block.capabilities);
    let pattern = block.pattern.as_str();
    let deny = old.has("deny");
    let mut each = |path: String, capability: Capability, wanted: bool| {
        if deny {
            rules.grant(path.clone(), Capability::Deny);
        }
        if wanted {
            rules.grant(path, capability);
        }
    };
    use Capability::{Create, Delete, List, Patch, Read, Update};
    if let Some(rest) = pattern.strip_prefix("kv/") {
        let at = |root: &str| format!("secret/{root}/{rest}");
        each(at("data"), Read, old.has("read"));
        each(at("data"), Create, old.has("create"));
        each(at("data"), Update, old.has("update"));
        each(at("data"), Patch, old.has("update"));
        each(at("data"), Delete, old.has("delete"));
        each(at("metadata"), Read, old.has("read"));
        each(at("metadata"), List, old.has("list"));
        each(at("metadata"), Create, old.has("create"));
        each(at("metadata"), Update, old.has("update"));
        let erase = old.has("delete") && old.has("sudo");
        each(at("metadata"), Delete, erase);
        each(at("delete"), Update, old.has("delete"));
        each(at("undelete"), Update, old.has("update"));
        each(at("destroy"), Update, erase);
        return Ok(true);
    }
    if let Some(rest) = pattern.strip_prefix("keys/") {
        let key = format!("transit/keys/{rest}");
        each(key.clone(), Create, old.has("create"));
        each(key.clone(), Read, old.has("read"));
        each(key.clone(), List, old.has("list"));
        each(key, Delete, old.has("delete"));
        for (suffix, wanted) in [("config", old.has("update")), ("rotate", old.has("rotate"))] {
            match key_suffix(rest, suffix) {
                Some(path) => each(path, Update, wanted),
                None if wanted || deny => dropped.push(format!(
                    "policy {} line {}: {} on {} has no rule on Vault's paths that grants it for the keys it matches and no others (transit/keys/<name>/{suffix}); left out",
                    quote(name),
                    block.line,
                    if deny { "deny" } else { "update" },
                    quote(pattern)
                )),
                None => {}
            }
        }
        let at = |root: &str| format!("transit/{root}/{rest}");
        each(at("rewrap"), Update, old.has("update"));
        each(at("encrypt"), Update, old.has("encrypt"));
        // Encrypting with a missing key made it, with `create` on its path.
        each(
            at("encrypt"),
            Create,
            old.has("encrypt") && old.has("create"),
        );
        each(at("decrypt"), Update, old.has("decrypt"));
        each(at("datakey/plaintext"), Update, old.has("datakey"));
        each(at("datakey/wrapped"), Update, old.has("datakey"));
        return Ok(true);
    }
    if let Some(rest) = pattern.strip_prefix("sys/policy/") {
        let path = format!("sys/policies/acl/{rest}");
        for capability in [Create, Read, Update, Delete, List] {
            each(path.clone(), capability, old.has(capability.name()));
        }
        return Ok(true);
    }
    if pattern.starts_with("sys/kv/") && block.pattern.matches("sys/kv/config") {
        each("secret/config".into(), Read, old.has("read"));
        each("secret/config".into(), Update, old.has("update"));
        return Ok(true);
    }
    // Any other path keeps its rule; the retired capabilities granted
    // nothing off kv/ and keys/ and go.
    let mut kept = Capabilities::default();
    let mut changed = false;
    for capability in &block.capabilities {
        match Capability::parse(capability) {
            Some(c) => kept.insert(c),
            None => {
                changed = true;
                dropped.push(format!(
                    "policy {} line {}: capability {capability:?} on {} granted nothing there; left out",
                    quote(name),
                    block.line,
                    quote(pattern)
                ));
            }
        }
    }
    // Vault's token lookup is `update` on auth/token/lookup; it was `read`.
    if pattern == "auth/token/lookup" && kept.contains(Read) && !kept.contains(Update) {
        kept.insert(Update);
        changed = true;
    }
    match rules.0.iter_mut().find(|(p, _)| p == pattern) {
        Some((_, set)) => {
            for c in Capability::ALL {
                if kept.contains(c) {
                    set.insert(c);
                }
            }
        }
        None => rules.0.push((pattern.to_string(), kept)),
    }
    Ok(changed)
}

/// `transit/keys/<rest>/<suffix>` for an old `keys/<rest>` pattern, when a
/// pattern can say "the same keys" there: a name or `+` (a key name is one
/// segment, so `*` alone is `+`). A partial glob (`app-*`) cannot be
/// followed by a suffix, and its bare glob would match more (key creation).
fn key_suffix(rest: &str, suffix: &str) -> Option<String> {
    let segment = match rest {
        "*" | "+" => "+",
        "" => return None,
        name if !name.contains(['*', '/']) => name,
        _ => return None,
    };
    let path = format!("transit/keys/{segment}/{suffix}");
    Pattern::parse(&path).ok().map(|_| path)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::access::acl::{Policy, capabilities_on};

    /// The rules the old rule `path "<pattern>" { capabilities = [<caps>] }`
    /// becomes, as (pattern, capability names).
    fn mapped(pattern: &str, caps: &[&str]) -> Vec<(String, Vec<&'static str>)> {
        let quoted: Vec<String> = caps.iter().map(|c| format!("\"{c}\"")).collect();
        let text = format!(
            "path \"{pattern}\" {{ capabilities = [{}] }}",
            quoted.join(", ")
        );
        let mut dropped = Vec::new();
        let new = rewrite("p", &text, &mut dropped)
            .unwrap()
            .unwrap_or(text.clone());
        let policy = Policy::parse_stored("p", &new).unwrap();
        policy
            .rules
            .iter()
            .map(|r| (r.pattern.as_str().to_string(), r.capabilities.names()))
            .collect()
    }

    fn rules(list: &[(&str, &[&'static str])]) -> Vec<(String, Vec<&'static str>)> {
        list.iter()
            .map(|(p, c)| (p.to_string(), c.to_vec()))
            .collect()
    }

    #[test]
    fn kv_read_and_list_become_data_and_metadata() {
        assert_eq!(
            mapped("kv/app/*", &["read", "list"]),
            rules(&[
                ("secret/data/app/*", &["read"]),
                ("secret/metadata/app/*", &["read", "list"]),
            ])
        );
    }

    #[test]
    fn kv_create_and_update_cover_put_patch_undelete_and_metadata() {
        assert_eq!(
            mapped("kv/app/db", &["create", "update"]),
            rules(&[
                ("secret/data/app/db", &["create", "update", "patch"]),
                ("secret/metadata/app/db", &["create", "update"]),
                ("secret/undelete/app/db", &["update"]),
            ])
        );
    }

    #[test]
    fn kv_delete_without_sudo_deletes_and_with_sudo_also_destroys() {
        assert_eq!(
            mapped("kv/app/*", &["delete"]),
            rules(&[
                ("secret/data/app/*", &["delete"]),
                ("secret/delete/app/*", &["update"]),
            ])
        );
        assert_eq!(
            mapped("kv/app/*", &["delete", "sudo"]),
            rules(&[
                ("secret/data/app/*", &["delete"]),
                ("secret/metadata/app/*", &["delete"]),
                ("secret/delete/app/*", &["update"]),
                ("secret/destroy/app/*", &["update"]),
            ])
        );
    }

    #[test]
    fn kv_deny_denies_every_mapped_path() {
        assert_eq!(
            mapped("kv/app/private", &["deny"]),
            rules(&[
                ("secret/data/app/private", &["deny"]),
                ("secret/metadata/app/private", &["deny"]),
                ("secret/delete/app/private", &["deny"]),
                ("secret/undelete/app/private", &["deny"]),
                ("secret/destroy/app/private", &["deny"]),
            ])
        );
    }

    #[test]
    fn key_capabilities_become_transit_paths() {
        assert_eq!(
            mapped("keys/orders", &["encrypt", "decrypt"]),
            rules(&[
                ("transit/encrypt/orders", &["update"]),
                ("transit/decrypt/orders", &["update"]),
            ])
        );
        assert_eq!(
            mapped("keys/orders", &["encrypt", "create"]),
            rules(&[
                ("transit/keys/orders", &["create"]),
                ("transit/encrypt/orders", &["create", "update"]),
            ])
        );
        assert_eq!(
            mapped(
                "keys/orders",
                &["read", "update", "rotate", "delete", "datakey"]
            ),
            rules(&[
                ("transit/keys/orders", &["read", "delete"]),
                ("transit/keys/orders/config", &["update"]),
                ("transit/keys/orders/rotate", &["update"]),
                ("transit/rewrap/orders", &["update"]),
                ("transit/datakey/plaintext/orders", &["update"]),
                ("transit/datakey/wrapped/orders", &["update"]),
            ])
        );
    }

    #[test]
    fn a_glob_over_every_key_reaches_the_suffixes_with_plus() {
        assert_eq!(
            mapped("keys/*", &["list", "rotate"]),
            rules(&[
                ("transit/keys/*", &["list"]),
                ("transit/keys/+/rotate", &["update"]),
            ])
        );
        // A partial glob cannot: left out rather than widened.
        let mut dropped = Vec::new();
        let text = rewrite(
            "p",
            "path \"keys/app-*\" { capabilities = [\"rotate\", \"read\"] }",
            &mut dropped,
        )
        .unwrap()
        .unwrap();
        assert!(!text.contains("rotate"), "{text}");
        assert_eq!(dropped.len(), 1, "{dropped:?}");
        assert!(dropped[0].contains("keys/app-*"), "{dropped:?}");
    }

    #[test]
    fn policies_and_kv_config_move_to_vaults_sys_paths() {
        assert_eq!(
            mapped(
                "sys/policy/*",
                &["read", "list", "create", "update", "delete"]
            ),
            rules(&[(
                "sys/policies/acl/*",
                &["create", "read", "update", "delete", "list"]
            )])
        );
        assert_eq!(
            mapped("sys/kv/config", &["read", "update"]),
            rules(&[("secret/config", &["read", "update"])])
        );
    }

    #[test]
    fn other_paths_keep_their_rules_and_token_lookup_gains_update() {
        let mut dropped = Vec::new();
        let kept = "path \"sys/seal\" { capabilities = [\"sudo\"] }";
        assert_eq!(rewrite("p", kept, &mut dropped).unwrap(), None);
        assert_eq!(
            mapped("auth/token/lookup", &["read"]),
            rules(&[("auth/token/lookup", &["read", "update"])])
        );
        assert_eq!(
            mapped("*", &["read", "encrypt"]),
            rules(&[("*", &["read"])])
        );
    }

    #[test]
    fn a_rewritten_policy_grants_on_the_new_paths_what_the_old_granted() {
        let old = r#"
            # the app's secrets
            path "kv/app/*" { capabilities = ["read", "list"] }
            path "kv/app/private" { capabilities = ["deny"] }
            path "keys/orders" { capabilities = ["encrypt"] }
            path "sys/seal" { capabilities = ["sudo"] }
        "#;
        let mut dropped = Vec::new();
        let new = rewrite("app", old, &mut dropped).unwrap().unwrap();
        assert!(dropped.is_empty(), "{dropped:?}");
        assert!(new.starts_with("# Rewritten"), "{new}");
        let policies = [Arc::new(Policy::parse("app", &new).unwrap())];
        let allows = |path: &str, c: Capability| capabilities_on(&policies, path).allows(c);
        assert!(allows("secret/data/app/db", Capability::Read));
        assert!(allows("secret/metadata/app/", Capability::List));
        assert!(!allows("secret/data/app/private", Capability::Read));
        assert!(!allows("secret/data/app/db", Capability::Update));
        assert!(allows("transit/encrypt/orders", Capability::Update));
        assert!(!allows("transit/decrypt/orders", Capability::Update));
        assert!(allows("sys/seal", Capability::Sudo));
        // Rewriting again changes nothing.
        assert_eq!(rewrite("app", &new, &mut dropped).unwrap(), None);
    }
}
