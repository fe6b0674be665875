//! Whether the store's envelope of the root key names a seal's key, or
//! which migration or rewrap is pending.

use super::Target;
use super::kms::STORED;
use super::stored::{Root, Stored};
use crate::diagnose::Finding;
use crate::seal::awskms::arn_scope;

/// Whether the store's envelope of the root key names this seal's key
/// (`arn`, when known), or a migration is pending.
pub fn stored_root(stored: &Stored, target: &Target<'_>, arn: Option<&str>) -> Finding {
    let (seal_type, root) = match stored {
        Stored::Uninitialized(why) => {
            let then = if target.disabled {
                "a disabled seal wraps nothing"
            } else {
                "init wraps the root key with this key"
            };
            return Finding::success(STORED, format!("{why}: {then}"));
        }
        Stored::Unknown(why) => return Finding::skipped(STORED, why.clone()),
        Stored::Initialized {
            seal_type, root, ..
        } => (seal_type, root),
    };
    let Some(ours) = arn else {
        return Finding::skipped(STORED, "this seal's key ARN is not known (see key)");
    };
    let pending = "keep the old seal's block with disabled = true, start the daemon and unseal with a quorum of recovery keys and -migrate";
    let stored_arn = match (root, target.name) {
        (Root::Unreadable(why), _) => {
            return Finding::failure(
                STORED,
                format!("the stored root key cannot be read: {why}"),
                "restore the store from a snapshot",
            );
        }
        (Root::Shamir, _) if target.disabled => {
            return Finding::success(
                STORED,
                "the store is sealed by Shamir: this disabled seal wraps nothing",
            );
        }
        (Root::Shamir, _) => {
            return Finding::warning(
                STORED,
                "the store is sealed by Shamir: a seal migration to this seal is pending",
                "start the daemon and unseal with a quorum of unseal keys and -migrate",
            );
        }
        (Root::Several(_), None) => {
            return Finding::warning(
                STORED,
                format!(
                    "the store is sealed by several seals ({seal_type}): a migration to this one seal is pending"
                ),
                pending,
            );
        }
        (Root::One(_), Some(_)) => {
            return Finding::warning(
                STORED,
                "the store holds one seal's envelope of the root key: the migration to several seals is pending",
                "start the daemon with enable_multiseal = true; it wraps the root key with every seal once unsealed",
            );
        }
        (Root::One(arn), None) => arn,
        (Root::Several(seals), Some(name)) => match seals.iter().find(|(n, _)| n == name) {
            Some((_, arn)) => arn,
            None if target.disabled => {
                return Finding::success(
                    STORED,
                    "the store holds no envelope for this disabled seal",
                );
            }
            None => {
                return Finding::warning(
                    STORED,
                    format!(
                        "the store holds no envelope of the root key for seal {} yet",
                        crate::text::quote(name)
                    ),
                    "start the daemon: once unsealed, it wraps the root key with every enabled seal",
                );
            }
        },
    };
    if stored_arn == ours {
        return if target.disabled {
            Finding::warning(
                STORED,
                format!(
                    "the stored root key is still wrapped by this disabled seal's key {ours}: a seal migration away from it is pending"
                ),
                pending,
            )
        } else {
            Finding::success(
                STORED,
                format!("the stored root key is wrapped by this key ({ours})"),
            )
        };
    }
    if target.disabled {
        return Finding::success(
            STORED,
            format!(
                "the stored root key is wrapped by {stored_arn}, not by this disabled seal's key: its block can go"
            ),
        );
    }
    if target.migration {
        return Finding::warning(
            STORED,
            format!(
                "the stored root key is wrapped by {stored_arn}, the disabled seal's key: a seal migration to this key ({ours}) is pending"
            ),
            pending,
        );
    }
    if arn_scope(stored_arn).is_some() && arn_scope(stored_arn) == arn_scope(ours) {
        Finding::warning(
            STORED,
            format!(
                "the stored root key is wrapped by {stored_arn}, not by this seal's key {ours}: once unsealed, the daemon rewraps it under {ours}"
            ),
            format!(
                "keep kms:Decrypt on {stored_arn} allowed until the daemon has rewrapped the root key"
            ),
        )
    } else {
        Finding::warning(
            STORED,
            format!(
                "the stored root key is wrapped by {stored_arn}, not by this seal's key {ours}: a seal migration is pending"
            ),
            pending,
        )
    }
}
