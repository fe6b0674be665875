//! The seal area: every configured seal (the one `seal "awskms"`, each
//! seal of several, the `disabled = true` seal a migration leaves, or
//! Shamir), checked against KMS through the seal's own client and against
//! the store's envelope of the root key. Nothing of the store's keys is
//! decrypted: the round trip is of a random value.

mod kms;
mod root;
mod stored;

use super::{Context, Finding};
use crate::config::{AwsKmsSeal, Config};
use stored::{Root, Stored};

/// One KMS seal to check.
pub struct Target<'a> {
    /// The heading: `awskms`, `awskms "tokyo"`, `awskms (disabled)`.
    pub label: String,
    /// Its name among several seals (in the encryption context and the
    /// envelope set); `None` for the one seal.
    pub name: Option<&'a str>,
    /// Its block.
    pub seal: &'a AwsKmsSeal,
    /// Decrypt-only: leaving the store (a migration's old seal).
    pub disabled: bool,
    /// The config also has a disabled seal: a migration from it to this
    /// one may be under way.
    pub migration: bool,
}

/// The seal area.
pub async fn check(context: &Context) -> Finding {
    const NAME: &str = "seal";
    let config = match context.config_or_skip(NAME) {
        Ok(config) => config,
        Err(skipped) => return skipped,
    };
    // Not even opened when its check is skipped.
    let stored = if context.skipped(kms::STORED) {
        Stored::Unknown("skipped (--skip)".into())
    } else {
        stored::read(config).await
    };
    let mut children = Vec::new();
    for target in targets(config) {
        if context.skipped(&target.label) {
            children.push(Finding::skipped(&target.label, "skipped (--skip)"));
        } else {
            children.push(kms::check(context, &target, &stored).await);
        }
    }
    if let Some(multiseal) = &config.multiseal
        && let Some(emergency) = &multiseal.emergency
    {
        children.push(Finding::success(
            &format!("shamir {}", crate::text::quote(&emergency.name)),
            "the emergency seal's keys are entered by operators when no KMS seal can unseal; nothing to check before start",
        ));
    }
    if config.seal.is_none() && config.multiseal.is_none() {
        children.push(shamir(&stored));
    }
    Finding::heading(NAME, "", children)
}

/// Every KMS seal of `config`, in the order the daemon tries them.
fn targets(config: &Config) -> Vec<Target<'_>> {
    if let Some(multiseal) = &config.multiseal {
        return multiseal
            .seals
            .iter()
            .map(|s| Target {
                label: format!("awskms {}", crate::text::quote(&s.name)),
                name: Some(&s.name),
                seal: &s.seal,
                disabled: s.disabled,
                migration: false,
            })
            .collect();
    }
    let one = config.seal.iter().map(|seal| Target {
        label: "awskms".into(),
        name: None,
        seal,
        disabled: false,
        migration: config.disabled_seal.is_some(),
    });
    let leaving = config.disabled_seal.iter().map(|seal| Target {
        label: "awskms (disabled)".into(),
        name: None,
        seal,
        disabled: true,
        migration: false,
    });
    one.chain(leaving).collect()
}

/// The Shamir seal: nothing to reach, but the store may be sealed by KMS.
fn shamir(stored: &Stored) -> Finding {
    const NAME: &str = "shamir";
    match stored {
        Stored::Initialized { seal_type, .. } if seal_type != crate::seal::SHAMIR => {
            Finding::warning(
                NAME,
                format!(
                    "the config names the Shamir seal, but the store is sealed by {seal_type}: a seal migration to Shamir is pending"
                ),
                "keep the old seal's block with disabled = true until the migration is done (unseal with a quorum of recovery keys and -migrate)",
            )
        }
        _ => Finding::success(
            NAME,
            "unseal keys are entered by operators (Shamir): nothing to reach before start",
        ),
    }
}

/// Whether the stored root key is wrapped by `arn` for `target`.
fn wrapped_by(stored: &Stored, target: &Target<'_>, arn: &str) -> bool {
    match (stored, target.name) {
        (
            Stored::Initialized {
                root: Root::One(stored),
                ..
            },
            None,
        ) => stored == arn,
        (
            Stored::Initialized {
                root: Root::Several(seals),
                ..
            },
            Some(name),
        ) => seals.iter().any(|(n, a)| n == name && a == arn),
        _ => false,
    }
}
