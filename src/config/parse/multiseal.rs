//! With `enable_multiseal = true`: the emergency `seal "shamir"` block, and
//! the seal blocks put together, names and priorities unique, at least one
//! KMS seal in use, at most one Shamir seal.

use hcl_edit::Span;
use hcl_edit::structure::Block;

use super::Ctx;
use super::seal::SealBlock;
use super::words::qualified;
use crate::config::{EmergencySeal, MAX_KMS_SEALS, Multiseal, NamedSeal, env_suffix};

/// The emergency seal block's name in error messages.
const SHAMIR: &str = "seal.shamir";

impl Ctx<'_> {
    /// The emergency `seal "shamir"` block: a name, nothing else.
    pub(super) fn shamir_seal(&mut self, block: &Block, line: usize) -> Option<SealBlock> {
        let (section, _) =
            self.section(&block.body, SHAMIR, &["name", "priority", "disabled"], &[]);
        let errors_before = self.errors.len();
        let name = self.seal_name(&section, SHAMIR);
        if let Some(attr) = section.attrs.get("priority") {
            let at = self.line(attr.span());
            self.error(
                at,
                qualified(SHAMIR, "priority"),
                "is not taken by the shamir seal: it is never tried automatically, only by unseal --seal with its name",
            );
        }
        if let Some((true, at)) = self.boolean(&section, "disabled") {
            self.error(
                at,
                qualified(SHAMIR, "disabled"),
                "the emergency shamir seal cannot be disabled; remove the block to retire it (the active node then deletes what the store keeps of it)",
            );
        }
        if self.errors.len() > errors_before {
            return None;
        }
        Some(SealBlock {
            kms: None,
            name,
            priority: None,
            disabled: false,
            line,
        })
    }

    /// The seals of `blocks` (in file order); `line` is `enable_multiseal`'s.
    /// `incomplete` when a seal block had errors of its own: then "no seal
    /// in use" would be a guess, so it is not said.
    pub(super) fn multiseal(
        &mut self,
        line: usize,
        blocks: Vec<SealBlock>,
        incomplete: bool,
    ) -> Option<Multiseal> {
        let errors_before = self.errors.len();
        // Name, env suffix and line of each seal seen.
        let mut names: Vec<(String, String, usize)> = Vec::new();
        let mut priorities: Vec<(u32, String, usize)> = Vec::new();
        let mut seals = Vec::new();
        let mut emergency: Option<EmergencySeal> = None;
        for block in blocks {
            let kind = if block.kms.is_some() {
                "awskms"
            } else {
                "shamir"
            };
            let (name, name_line) = block
                .name
                .clone()
                .unwrap_or_else(|| (kind.to_string(), block.line));
            let suffix = env_suffix(&name);
            if let Some((first, _, at)) = names.iter().find(|(_, s, _)| *s == suffix) {
                let message = if *first == name {
                    format!(
                        "the name {} is already used by the seal on line {at}; each seal needs its own name (a block without one is named after its type)",
                        crate::text::quote(&name)
                    )
                } else {
                    format!(
                        "the name {} and {} (line {at}) share the environment suffix _{suffix}; rename one",
                        crate::text::quote(&name),
                        crate::text::quote(first)
                    )
                };
                self.error(name_line, format!("seal.{kind}.name"), message);
                continue;
            }
            names.push((name.clone(), suffix, name_line));
            let Some(seal) = block.kms else {
                match &emergency {
                    Some(first) => self.error(
                        block.line,
                        "seal",
                        format!(
                            "only one seal \"shamir\" block is allowed (the first is on line {})",
                            first.line
                        ),
                    ),
                    None => {
                        emergency = Some(EmergencySeal {
                            name,
                            line: block.line,
                        })
                    }
                }
                continue;
            };
            let Some((priority, at)) = block.priority else {
                self.error(
                    block.line,
                    "seal.awskms.priority",
                    "is required with enable_multiseal = true: the order in which the seals are tried at unseal (1 first)",
                );
                continue;
            };
            if let Some((_, first, first_line)) = priorities.iter().find(|(p, ..)| *p == priority) {
                self.error(
                    at,
                    "seal.awskms.priority",
                    format!(
                        "priority {priority} is already taken by seal {} (line {first_line}); each seal needs its own",
                        crate::text::quote(first)
                    ),
                );
                continue;
            }
            priorities.push((priority, name.clone(), at));
            if seals.len() == MAX_KMS_SEALS {
                self.error(
                    block.line,
                    "seal",
                    format!("at most {MAX_KMS_SEALS} seal \"awskms\" blocks are allowed"),
                );
                continue;
            }
            seals.push(NamedSeal {
                name,
                priority,
                disabled: block.disabled,
                seal,
            });
        }
        if !incomplete && self.errors.len() == errors_before && seals.iter().all(|s| s.disabled) {
            self.error(
                line,
                "enable_multiseal",
                "needs at least one seal \"awskms\" block without disabled = true: the seals that wrap the root key",
            );
        }
        if self.errors.len() > errors_before {
            return None;
        }
        seals.sort_by_key(|s| s.priority);
        Some(Multiseal {
            seals,
            emergency,
            line,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::super::{MINIMAL, errors, parse};
    use crate::config::{Config, DEFAULT_KMS_TIMEOUT};

    /// `MINIMAL` with `enable_multiseal = true` on line 3, then `seals`.
    fn multi(seals: &str) -> String {
        format!("{MINIMAL}enable_multiseal = true\n{seals}")
    }

    fn parsed(source: &str) -> Config {
        parse(source, Path::new("test.hcl")).unwrap()
    }

    const TOKYO: &str = "seal \"awskms\" {\n  name = \"tokyo\"\n  priority = 2\n  kms_key_id = \"k1\"\n  region = \"ap-northeast-1\"\n}\n";

    #[test]
    fn seals_are_sorted_by_priority_with_defaults_and_an_emergency_seal() {
        let config = parsed(&multi(&format!(
            "{TOKYO}seal \"awskms\" {{\n  priority = 1\n  disabled = true\n  kms_timeout = \"2s\"\n}}\nseal \"shamir\" {{\n  name = \"emergency\"\n}}\n"
        )));
        assert!(config.seal.is_none() && config.disabled_seal.is_none());
        let set = config.multiseal.unwrap();
        assert_eq!(set.line, 3);
        let names: Vec<(&str, u32, bool)> = set
            .seals
            .iter()
            .map(|s| (s.name.as_str(), s.priority, s.disabled))
            .collect();
        assert_eq!(names, [("awskms", 1, true), ("tokyo", 2, false)]);
        assert_eq!(set.seals[0].seal.kms_timeout, Duration::from_secs(2));
        assert_eq!(set.seals[1].seal.kms_timeout, DEFAULT_KMS_TIMEOUT);
        assert_eq!(set.seals[1].seal.line, 4);
        let emergency = set.emergency.unwrap();
        assert_eq!((emergency.name.as_str(), emergency.line), ("emergency", 15));
        // The shamir block's name defaults to its type.
        let config = parsed(&multi(&format!("{TOKYO}seal \"shamir\" {{}}\n")));
        assert_eq!(config.multiseal.unwrap().emergency.unwrap().name, "shamir");
    }

    #[test]
    fn without_enable_multiseal_names_priorities_and_shamir_are_refused() {
        assert_eq!(
            errors(&format!("{MINIMAL}{TOKYO}")),
            [
                "test.hcl:4: seal.awskms.name: needs enable_multiseal = true at the top of the file (one seal without it takes no name or priority)",
                "test.hcl:5: seal.awskms.priority: needs enable_multiseal = true at the top of the file (one seal without it takes no name or priority)",
            ]
        );
        assert_eq!(
            errors(&format!(
                "{MINIMAL}enable_multiseal = false\nseal \"shamir\" {{}}\n"
            )),
            [
                "test.hcl:4: seal: a seal \"shamir\" block needs enable_multiseal = true at the top of the file (it is the emergency seal beside KMS seals); for Shamir unseal keys alone, leave the seal block out"
            ]
        );
        // enable_multiseal = false is today's config.
        let config = parsed(&format!(
            "{MINIMAL}enable_multiseal = false\nseal \"awskms\" {{ kms_key_id = \"k\" }}\n"
        ));
        assert!(config.multiseal.is_none());
        assert_eq!(config.seal.unwrap().kms_key_id.value, "k");
    }

    #[test]
    fn names_are_checked_and_unique_across_seals() {
        assert_eq!(
            errors(&multi(&format!(
                "{TOKYO}seal \"awskms\" {{\n  name = \"Osaka\"\n  priority = 3\n}}\n"
            ))),
            [
                "test.hcl:11: seal.awskms.name: must be 1 to 32 characters of a-z, 0-9, _ and -, starting with a letter, such as \"tokyo\"; got \"Osaka\""
            ]
        );
        assert_eq!(
            errors(&multi(&format!(
                "{TOKYO}seal \"shamir\" {{ name = \"tokyo\" }}\n"
            ))),
            [
                "test.hcl:10: seal.shamir.name: the name \"tokyo\" is already used by the seal on line 5; each seal needs its own name (a block without one is named after its type)"
            ]
        );
        assert_eq!(
            errors(&multi(&format!(
                "seal \"awskms\" {{\n  name = \"a-b\"\n  priority = 1\n}}\n{}",
                TOKYO.replace("tokyo", "a_b")
            ))),
            [
                "test.hcl:9: seal.awskms.name: the name \"a_b\" and \"a-b\" (line 5) share the environment suffix _A_B; rename one"
            ]
        );
    }

    #[test]
    fn priorities_are_required_positive_and_unique() {
        assert_eq!(
            errors(&multi("seal \"awskms\" {\n  kms_key_id = \"k\"\n}\n")),
            [
                "test.hcl:4: seal.awskms.priority: is required with enable_multiseal = true: the order in which the seals are tried at unseal (1 first)"
            ]
        );
        assert_eq!(
            errors(&multi("seal \"awskms\" {\n  priority = 0\n}\n")),
            [
                "test.hcl:5: seal.awskms.priority: must be a whole number from 1 to 4294967295 (1 is tried first); got 0"
            ]
        );
        assert_eq!(
            errors(&multi(&format!(
                "{TOKYO}seal \"awskms\" {{\n  name = \"osaka\"\n  priority = 2\n}}\n"
            ))),
            [
                "test.hcl:12: seal.awskms.priority: priority 2 is already taken by seal \"tokyo\" (line 6); each seal needs its own"
            ]
        );
    }

    #[test]
    fn one_kms_seal_in_use_at_most_eight_and_one_shamir_seal() {
        let disabled =
            "seal \"awskms\" {\n  priority = 1\n  disabled = true\n}\nseal \"shamir\" {}\n";
        assert_eq!(
            errors(&multi(disabled)),
            [
                "test.hcl:3: enable_multiseal: needs at least one seal \"awskms\" block without disabled = true: the seals that wrap the root key"
            ]
        );
        let kms = |count: u32| -> String {
            (1..=count)
                .map(|i| format!("seal \"awskms\" {{\n name = \"s{i}\"\n priority = {i}\n}}\n"))
                .collect()
        };
        let nine = kms(9);
        let errs = errors(&multi(&nine));
        assert_eq!(
            errs,
            ["test.hcl:36: seal: at most 8 seal \"awskms\" blocks are allowed"]
        );
        assert_eq!(parsed(&multi(&kms(8))).multiseal.unwrap().seals.len(), 8);
        assert_eq!(
            errors(&multi(&format!(
                "{TOKYO}seal \"shamir\" {{}}\nseal \"shamir\" {{ name = \"e2\" }}\n"
            ))),
            [
                "test.hcl:11: seal: only one seal \"shamir\" block is allowed (the first is on line 10)"
            ]
        );
    }

    #[test]
    fn the_shamir_seal_takes_only_a_name() {
        assert_eq!(
            errors(&multi(&format!(
                "{TOKYO}seal \"shamir\" {{\n  priority = 3\n  disabled = true\n  region = \"x\"\n}}\n"
            ))),
            [
                "test.hcl:11: seal.shamir.priority: is not taken by the shamir seal: it is never tried automatically, only by unseal --seal with its name",
                "test.hcl:12: seal.shamir.disabled: the emergency shamir seal cannot be disabled; remove the block to retire it (the active node then deletes what the store keeps of it)",
                "test.hcl:13: seal.shamir.region: unknown key \"region\"; expected one of: name, priority, disabled",
            ]
        );
    }

    #[test]
    fn kms_timeout_is_one_to_sixty_seconds() {
        let timeout = |value: &str| {
            format!(
                "{MINIMAL}seal \"awskms\" {{\n  kms_key_id = \"k\"\n  kms_timeout = \"{value}\"\n}}\n"
            )
        };
        for (value, expected) in [("1s", 1), ("60", 60), ("1m", 60), ("2500ms", 2)] {
            let seal = parsed(&timeout(value)).seal.unwrap();
            assert_eq!(seal.kms_timeout.as_secs(), expected, "{value}");
        }
        for value in ["500ms", "61s", "0"] {
            assert_eq!(
                errors(&timeout(value)),
                [
                    "test.hcl:5: seal.awskms.kms_timeout: must be from 1 s to 60 s: how long the one Decrypt on the path to unsealed waits before the next seal is tried"
                ],
                "{value}"
            );
        }
        assert_eq!(
            parsed(&format!(
                "{MINIMAL}seal \"awskms\" {{ kms_key_id = \"k\" }}\n"
            ))
            .seal
            .unwrap()
            .kms_timeout,
            DEFAULT_KMS_TIMEOUT
        );
    }
}
