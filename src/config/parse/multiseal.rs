//! With `enable_multiseal = true`: the seal blocks put together, names and
//! priorities unique, at least one KMS seal in use, at most one Shamir seal.

use super::Ctx;
use super::seal::SealBlock;
use crate::config::{EmergencySeal, MAX_KMS_SEALS, Multiseal, NamedSeal, env_suffix};

impl Ctx<'_> {
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
