//! Policies and their evaluation: named documents of path rules, deny by
//! default, written in HCL as Vault's are:
//!
//! ```hcl
//! path "secret/data/app/*" { capabilities = ["read", "list"] }
//! ```
//!
//! Matching follows Vault. `*` may only end a pattern and matches any rest
//! (even across slashes); `+` is one whole path segment. When several
//! patterns match a path, the most specific one decides (see
//! `Pattern::priority`); the rules of all of a caller's policies with that
//! same pattern are merged, and `deny` among them overrides everything else.

use std::cmp::Reverse;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use hcl_edit::Span;
use hcl_edit::expr::Expression;
use hcl_edit::structure::Body;

use crate::error::Error;
use crate::text::quote;

/// Largest accepted policy document, in bytes.
pub const MAX_POLICY_SIZE: usize = 64 * 1024;

/// What a rule may allow on a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
    /// Write something that does not exist yet.
    Create,
    /// Read it.
    Read,
    /// Change something that exists.
    Update,
    /// Merge a change into something that exists (kv v2's PATCH).
    Patch,
    /// Remove it.
    Delete,
    /// List the names under a folder.
    List,
    /// Operations that change the daemon's keys or seal, or erase history.
    Sudo,
    /// Nothing, whatever else is granted.
    Deny,
}

impl Capability {
    /// Every capability, in the order the docs list them.
    pub const ALL: [Capability; 8] = [
        Capability::Create,
        Capability::Read,
        Capability::Update,
        Capability::Patch,
        Capability::Delete,
        Capability::List,
        Capability::Sudo,
        Capability::Deny,
    ];

    /// The name used in policies.
    pub fn name(self) -> &'static str {
        match self {
            Capability::Create => "create",
            Capability::Read => "read",
            Capability::Update => "update",
            Capability::Patch => "patch",
            Capability::Delete => "delete",
            Capability::List => "list",
            Capability::Sudo => "sudo",
            Capability::Deny => "deny",
        }
    }

    /// The capability named `name` in a policy.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of capabilities.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities(u16);

impl Capabilities {
    /// True if `capability` is in the set.
    pub fn contains(self, capability: Capability) -> bool {
        self.0 & capability.bit() != 0
    }

    /// Every capability but `deny`: what root has.
    pub fn all_granted() -> Self {
        let mut set = Self::default();
        for capability in Capability::ALL {
            if capability != Capability::Deny {
                set.insert(capability);
            }
        }
        set
    }

    /// Adds `capability`.
    pub fn insert(&mut self, capability: Capability) {
        self.0 |= capability.bit();
    }

    fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// True if `capability` is granted: in the set and not denied.
    pub fn allows(self, capability: Capability) -> bool {
        self.contains(capability) && !self.contains(Capability::Deny)
    }

    /// The names, in [`Capability::ALL`] order.
    pub fn names(self) -> Vec<&'static str> {
        Capability::ALL
            .into_iter()
            .filter(|c| self.contains(*c))
            .map(Capability::name)
            .collect()
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// A rule's path pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    text: String,
}

impl Pattern {
    /// Checks the pattern's shape: `*` only at the end, `+` only as a whole segment.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("the path pattern is empty".into());
        }
        if text.starts_with('/') {
            return Err(format!(
                "path pattern {} starts with a slash: paths start with secret/, transit/, sys/ or auth/token/",
                quote(text)
            ));
        }
        if let Err(why) = crate::text::check_chars(text) {
            return Err(format!("path pattern {} is not valid: {why}", quote(text)));
        }
        if text.trim_end_matches('*').contains('*') || text.ends_with("**") {
            return Err(format!(
                "path pattern {} has a * that is not its last character; * may only end a pattern",
                quote(text)
            ));
        }
        let body = text.strip_suffix('*').unwrap_or(text);
        if body
            .split('/')
            .any(|segment| segment.contains('+') && segment != "+")
        {
            return Err(format!(
                "path pattern {} uses + inside a segment; + stands for one whole segment, as in secret/data/+/config",
                quote(text)
            ));
        }
        Ok(Self { text: text.into() })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn is_glob(&self) -> bool {
        self.text.ends_with('*')
    }

    /// True if the pattern matches `path`.
    pub fn matches(&self, path: &str) -> bool {
        let glob = self.is_glob();
        let body = self.text.strip_suffix('*').unwrap_or(&self.text);
        let wanted: Vec<&str> = body.split('/').collect();
        let mut given = path.split('/');
        let last = wanted.len() - 1;
        for (i, want) in wanted.iter().enumerate() {
            let Some(have) = given.next() else {
                return false;
            };
            let fits = if i == last && glob {
                // The rest of the path after a trailing glob is anything.
                return *want == "+" || have.starts_with(want);
            } else {
                *want == "+" || *want == have
            };
            if !fits {
                return false;
            }
        }
        given.next().is_none()
    }

    /// Vault's ordering of matching patterns, higher is more specific:
    /// a later first wildcard, then no trailing glob, then fewer `+`
    /// segments, then longer, then lexicographically greater.
    fn priority(&self) -> impl Ord + '_ {
        let first_wildcard = self.text.find(['+', '*']).unwrap_or(usize::MAX);
        let plus_segments = self.text.split('/').filter(|s| *s == "+").count();
        (
            first_wildcard,
            !self.is_glob(),
            Reverse(plus_segments),
            self.text.len(),
            self.text.as_str(),
        )
    }
}

/// One `path` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// What it matches.
    pub pattern: Pattern,
    /// What it grants (or denies).
    pub capabilities: Capabilities,
}

/// A parsed policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Its name.
    pub name: String,
    /// Its rules, in document order.
    pub rules: Vec<Rule>,
}

/// Checks a policy name (the rule of [`crate::names`]).
pub fn validate_name(name: &str) -> Result<(), Error> {
    crate::names::check_policy_name(name).map_err(Error::InvalidArgument)
}

/// One `path` block as written: its pattern and the capability names it
/// lists, unchecked (the one-time rewrite of stored policies reads the
/// capabilities retired since).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// The line the block starts on.
    pub line: usize,
    /// What it matches.
    pub pattern: Pattern,
    /// The capability names, in document order.
    pub capabilities: Vec<String>,
    /// The line of `capabilities = [ … ]`.
    pub capabilities_line: usize,
}

/// The capabilities strongroom's policies had before they took Vault's
/// paths, and what grants the same now.
const RETIRED: [(&str, &str); 4] = [
    ("encrypt", "update on transit/encrypt/<name>"),
    ("decrypt", "update on transit/decrypt/<name>"),
    (
        "datakey",
        "update on transit/datakey/plaintext/<name> or transit/datakey/wrapped/<name>",
    ),
    ("rotate", "update on transit/keys/<name>/rotate"),
];

/// Refuses a policy text over [`MAX_POLICY_SIZE`]: checked before a
/// write's audit line, which holds the text.
pub fn check_size(name: &str, text: &str) -> Result<(), Error> {
    if text.len() > MAX_POLICY_SIZE {
        return Err(Error::InvalidArgument(format!(
            "policy {} is {} bytes; the limit is {MAX_POLICY_SIZE}",
            quote(name),
            text.len()
        )));
    }
    Ok(())
}

impl Policy {
    /// Parses the HCL text of policy `name`. Errors name the line.
    pub fn parse(name: &str, text: &str) -> Result<Self, Error> {
        check_size(name, text)?;
        Self::parse_stored(name, text)
    }

    /// Parses a stored policy: as [`Policy::parse`], without the size
    /// limit (a policy rewritten to Vault's paths may have grown past it).
    pub fn parse_stored(name: &str, text: &str) -> Result<Self, Error> {
        let mut rules = Vec::new();
        for block in parse_blocks(name, text)? {
            let capabilities = capabilities_of(&block.capabilities).map_err(|why| {
                Error::InvalidArgument(format!(
                    "policy {} line {}: {why}",
                    quote(name),
                    block.capabilities_line
                ))
            })?;
            rules.push(Rule {
                pattern: block.pattern,
                capabilities,
            });
        }
        Ok(Self {
            name: name.to_string(),
            rules,
        })
    }
}

/// The `path` blocks of policy `name`'s HCL text, their shape checked (one
/// label, a valid pattern, once each, a list of strings) but not the
/// capability names. Errors name the line.
pub fn parse_blocks(name: &str, text: &str) -> Result<Vec<Block>, Error> {
    let invalid = |line: usize, why: String| {
        Error::InvalidArgument(format!("policy {} line {line}: {why}", quote(name)))
    };
    let body: Body = hcl_edit::parser::parse_body(text)
        .map_err(|e| invalid(e.location().line(), format!("invalid HCL: {}", e.message())))?;
    let line_of =
        |span: Option<Range<usize>>| span.map_or(0, |r| text[..r.start].matches('\n').count() + 1);
    if let Some(attr) = body.attributes().next() {
        return Err(invalid(
            line_of(attr.span()),
            format!(
                "unexpected key {:?}; a policy holds only path \"…\" {{ capabilities = [ … ] }} blocks",
                attr.key.as_str()
            ),
        ));
    }
    let mut blocks: Vec<Block> = Vec::new();
    for block in body.blocks() {
        let line = line_of(block.span());
        if block.ident.as_str() != "path" {
            return Err(invalid(
                line,
                format!(
                    "unexpected block {:?}; a policy holds only path blocks",
                    block.ident.as_str()
                ),
            ));
        }
        let pattern = match block.labels.as_slice() {
            [label] => label.as_str().to_string(),
            _ => {
                return Err(invalid(
                    line,
                    "a path block has exactly one label, the path pattern, as in path \"secret/data/app/*\" { … }".into(),
                ));
            }
        };
        let pattern = Pattern::parse(&pattern).map_err(|why| invalid(line, why))?;
        if blocks.iter().any(|b| b.pattern == pattern) {
            return Err(invalid(
                line,
                format!("path {} appears twice", quote(pattern.as_str())),
            ));
        }
        let mut capabilities = None;
        let mut capabilities_line = line;
        for attr in block.body.attributes() {
            let at = line_of(attr.span());
            if attr.key.as_str() != "capabilities" {
                return Err(invalid(
                    at,
                    format!(
                        "unexpected key {:?} in path {:?}; the only key is capabilities",
                        attr.key.as_str(),
                        pattern.as_str()
                    ),
                ));
            }
            capabilities = Some(capability_names(&attr.value).map_err(|why| invalid(at, why))?);
            capabilities_line = at;
        }
        if block.body.blocks().next().is_some() {
            return Err(invalid(
                line,
                format!(
                    "path {:?} has a nested block; only capabilities = [ … ] is allowed",
                    pattern.as_str()
                ),
            ));
        }
        let capabilities = capabilities.ok_or_else(|| {
            invalid(
                line,
                format!(
                    "path {} has no capabilities = [ … ]",
                    quote(pattern.as_str())
                ),
            )
        })?;
        blocks.push(Block {
            line,
            pattern,
            capabilities,
            capabilities_line,
        });
    }
    Ok(blocks)
}

fn capability_names(expr: &Expression) -> Result<Vec<String>, String> {
    let not_strings = || "capabilities must be a list of strings, such as [\"read\", \"list\"]";
    let Expression::Array(items) = expr else {
        return Err(not_strings().into());
    };
    items
        .iter()
        .map(|item| match item {
            Expression::String(name) => Ok(name.value().to_string()),
            _ => Err(not_strings().into()),
        })
        .collect()
}

fn capabilities_of(names: &[String]) -> Result<Capabilities, String> {
    let mut set = Capabilities::default();
    for name in names {
        if let Some((_, instead)) = RETIRED.iter().find(|(old, _)| old == name) {
            return Err(format!(
                "capability {name:?} is strongroom's old name; policies use Vault's paths and capabilities now: {instead}"
            ));
        }
        let capability = Capability::parse(name).ok_or_else(|| {
            let known: Vec<&str> = Capability::ALL.iter().map(|c| c.name()).collect();
            format!(
                "unknown capability {name:?}; the capabilities are {}",
                known.join(", ")
            )
        })?;
        set.insert(capability);
    }
    Ok(set)
}

/// The capabilities `policies` grant on `path`: the merged rules of the most
/// specific matching pattern; empty when none matches.
pub fn capabilities_on(policies: &[Arc<Policy>], path: &str) -> Capabilities {
    best_match(policies, path).unwrap_or_default()
}

/// What `policies` grant for a LIST of `folder` (ending in `/`), as Vault
/// decides: a rule naming the folder exactly, else one naming it exactly
/// without its slash (`path "secret/metadata/app" { capabilities =
/// ["list"] }` lists `app/`), else the most specific pattern as always.
pub fn list_capabilities_on(policies: &[Arc<Policy>], folder: &str) -> Capabilities {
    let exact = |path: &str| {
        let mut found: Option<Capabilities> = None;
        for rule in policies.iter().flat_map(|p| &p.rules) {
            if rule.pattern.text == path {
                found = Some(found.unwrap_or_default().union(rule.capabilities));
            }
        }
        found
    };
    exact(folder)
        .or_else(|| folder.strip_suffix('/').and_then(exact))
        .unwrap_or_else(|| capabilities_on(policies, folder))
}

/// The merged rules of the most specific pattern matching `path`, if any.
fn best_match(policies: &[Arc<Policy>], path: &str) -> Option<Capabilities> {
    let mut best: Option<&Pattern> = None;
    let mut granted = Capabilities::default();
    for rule in policies.iter().flat_map(|p| &p.rules) {
        if !rule.pattern.matches(path) {
            continue;
        }
        match best {
            Some(current) if current.text == rule.pattern.text => {
                granted = granted.union(rule.capabilities);
            }
            Some(current) if current.priority() >= rule.pattern.priority() => {}
            _ => {
                best = Some(&rule.pattern);
                granted = rule.capabilities;
            }
        }
    }
    best.map(|_| granted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str, text: &str) -> Arc<Policy> {
        Arc::new(Policy::parse(name, text).unwrap())
    }

    fn allowed(policies: &[Arc<Policy>], path: &str, capability: Capability) -> bool {
        capabilities_on(policies, path).allows(capability)
    }

    #[test]
    fn patterns_match_like_vault() {
        let cases = [
            ("kv/app/db", "kv/app/db", true),
            ("kv/app/db", "kv/app/db2", false),
            ("kv/app/db", "kv/app", false),
            ("kv/app/*", "kv/app/db", true),
            ("kv/app/*", "kv/app/db/deep", true),
            ("kv/app/*", "kv/app/", true),
            ("kv/app/*", "kv/app", false),
            ("kv/app*", "kv/apple", true),
            ("kv/app*", "kv/app/x", true),
            ("kv/+/config", "kv/a/config", true),
            ("kv/+/config", "kv/a/b/config", false),
            ("kv/+/config", "kv/config", false),
            ("kv/+/+", "kv/a/b", true),
            ("kv/+/+", "kv/a/b/c", false),
            ("kv/+/*", "kv/a/b/c", true),
            ("kv/+*", "kv/a/b", true),
            ("*", "anything/at/all", true),
        ];
        for (pattern, path, expected) in cases {
            let p = Pattern::parse(pattern).unwrap();
            assert_eq!(p.matches(path), expected, "{pattern} on {path}");
        }
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in ["", "/kv/a", "kv/*/a", "kv/a**", "kv/a+b", "kv/+x/c"] {
            assert!(Pattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_most_specific_pattern_wins() {
        let p = [policy(
            "p",
            r#"
            path "kv/*" { capabilities = ["read", "list"] }
            path "kv/app/*" { capabilities = ["deny"] }
            path "kv/app/public" { capabilities = ["read"] }
            path "kv/+/shared" { capabilities = ["update"] }
            "#,
        )];
        assert!(allowed(&p, "kv/other", Capability::Read));
        assert!(!allowed(&p, "kv/app/secret", Capability::Read));
        assert!(allowed(&p, "kv/app/public", Capability::Read));
        assert!(!allowed(&p, "kv/app/public", Capability::List));
        // kv/+/shared (first wildcard at 3) loses to kv/app/* (at 7).
        assert!(!allowed(&p, "kv/app/shared", Capability::Update));
        assert!(allowed(&p, "kv/db/shared", Capability::Update));
        assert!(!allowed(&p, "keys/x", Capability::Read), "deny by default");
    }

    #[test]
    fn the_same_pattern_merges_across_policies_and_deny_overrides() {
        let reader = policy("reader", r#"path "kv/app/*" { capabilities = ["read"] }"#);
        let writer = policy("writer", r#"path "kv/app/*" { capabilities = ["update"] }"#);
        let blocker = policy("blocker", r#"path "kv/app/*" { capabilities = ["deny"] }"#);
        let both = [Arc::clone(&reader), Arc::clone(&writer)];
        assert!(allowed(&both, "kv/app/x", Capability::Read));
        assert!(allowed(&both, "kv/app/x", Capability::Update));
        let denied = [reader, writer, blocker];
        assert!(!allowed(&denied, "kv/app/x", Capability::Read));
        assert!(!allowed(&denied, "kv/app/x", Capability::Update));
    }

    #[test]
    fn vault_priority_rules_hold() {
        let order = |a: &str, b: &str| {
            let (a, b) = (Pattern::parse(a).unwrap(), Pattern::parse(b).unwrap());
            a.priority() > b.priority()
        };
        assert!(order("kv/app/db", "kv/app/*"), "exact beats glob");
        assert!(order("kv/app/*", "kv/+/db"), "later wildcard wins");
        assert!(order("kv/a/+", "kv/a/*"), "no trailing glob wins");
        assert!(order("kv/+/b/c", "kv/+/+/c"), "fewer + segments win");
        assert!(order("kv/ab*", "kv/a*"), "longer wins");
    }

    #[test]
    fn parse_errors_name_the_line() {
        let cases = [
            (
                "path \"kv/*\" { capabilities = [\"reed\"] }",
                "line 1: unknown capability \"reed\"",
            ),
            (
                "\n\npath \"kv/*\" { policy = \"read\" }",
                "line 3: unexpected key \"policy\"",
            ),
            ("path \"kv/*\" {}", "has no capabilities"),
            ("name = \"x\"", "unexpected key \"name\""),
            ("path { capabilities = [] }", "exactly one label"),
            (
                "path \"a/*\" { capabilities = [] }\npath \"a/*\" { capabilities = [] }",
                "line 2: path \"a/*\" appears twice",
            ),
            (
                "path \"kv/*/x\" { capabilities = [] }",
                "* may only end a pattern",
            ),
            ("path \"kv\" { capabilities = \"read\" }", "must be a list"),
            ("path \"kv\" {", "invalid HCL"),
            (
                "path \"transit/encrypt/k\" { capabilities = [\"encrypt\"] }",
                "line 1: capability \"encrypt\" is strongroom's old name; policies use Vault's paths and capabilities now: update on transit/encrypt/<name>",
            ),
            (
                "\npath \"transit/keys/k\" { capabilities = [\"rotate\"] }",
                "line 2: capability \"rotate\" is strongroom's old name; policies use Vault's paths and capabilities now: update on transit/keys/<name>/rotate",
            ),
        ];
        for (text, expected) in cases {
            let err = Policy::parse("p", text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
            assert!(err.starts_with("policy \"p\" line "), "{err}");
        }
    }

    #[test]
    fn a_list_of_a_folder_reads_the_rule_without_its_slash_first() {
        let bare = [policy(
            "p",
            r#"path "secret/metadata/app" { capabilities = ["list"] }"#,
        )];
        assert!(list_capabilities_on(&bare, "secret/metadata/app/").allows(Capability::List));
        let slashed = [policy(
            "p",
            r#"path "secret/metadata/app/" { capabilities = ["list"] }"#,
        )];
        assert!(list_capabilities_on(&slashed, "secret/metadata/app/").allows(Capability::List));
        let glob = [policy(
            "p",
            r#"path "secret/metadata/*" { capabilities = ["list"] }
               path "secret/metadata/app/*" { capabilities = ["deny"] }"#,
        )];
        // Only an exact rule on the bare folder counts; globs as always.
        assert!(!list_capabilities_on(&glob, "secret/metadata/app/").allows(Capability::List));
        assert!(list_capabilities_on(&glob, "secret/metadata/db/").allows(Capability::List));
        assert!(!list_capabilities_on(&bare, "secret/metadata/other/").allows(Capability::List));
    }

    #[test]
    fn vaults_capabilities_parse_patch_included() {
        let p = policy(
            "p",
            r#"path "secret/*" { capabilities = ["create", "read", "update", "patch", "delete", "list", "sudo"] }"#,
        );
        let granted = capabilities_on(&[p], "secret/data/a");
        assert_eq!(
            granted.names(),
            [
                "create", "read", "update", "patch", "delete", "list", "sudo"
            ]
        );
        assert!(granted.allows(Capability::Patch));
    }

    #[test]
    fn names_are_validated() {
        for good in ["app", "app-1", "a.b_c", "0x"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", "App", "-a", "a b", "a/b", &"a".repeat(129)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }
}
