//! Key Management's crash points (issue 17): a distribution, the rotation
//! of a distributed key and a removal, each crashed at every named step of
//! its scope (`keymgmt-distribute`, `keymgmt-remove`). For each step: the
//! daemon runs with the crash point, the call makes it abort there, it is
//! started again without it, the same call is made again (Distribute with
//! the same purpose and protection completes an interrupted distribution;
//! RemoveDistribution completes a removal), and the KMS side is checked in
//! LocalStack as the tutorial checks it: one KMS key per version, tagged,
//! recorded and enabled, none left untracked, the alias on the newest
//! (Encrypt through it works); after a removal every key pending deletion,
//! the alias gone and the record's deletion date KMS's own.
//!
//! Each test talks to KMS as an account of its own (LocalStack takes a
//! 12-digit access key as the account id), so its listings hold only its
//! keys; the keys of one step are told from the others' by their
//! description, which names the strongroom key.

use std::os::unix::process::ExitStatusExt;

use serde_json::json;
use strongroom::proto;
use strongroom_test_support::kms::KmsProxy;
use strongroom_test_support::localstack::localstack;

use super::*;
use crate::support::daemon::{open, unsealed};

mod clients;

use clients::{Account, KmsKey, Rpc, unique_account};

/// The provider's name in every test's store.
const PROVIDER: &str = "aws";
/// The tag that ties a KMS key to its distribution step.
const TAG: &str = "strongroom-distribution";
/// The waiting period a removal asks for.
const DELETION_DAYS: u32 = 7;

/// What a case does at its crash point.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Case {
    /// A first distribution of a key with one version.
    Distribute,
    /// A rotation of a key distributed with one version: version 2's KMS
    /// key, import and the alias moved to it.
    Rotate,
    /// The removal of a distribution of one version.
    Remove,
    /// The deletion of a key distributed with one version, which removes
    /// the distribution first.
    DeleteKey,
}

impl Case {
    /// The named steps of the operation (`failpoint::step` in src/).
    fn steps(self) -> &'static [&'static str] {
        match self {
            Self::Distribute | Self::Rotate => &[
                "after-create-key",
                "after-key-id-recorded",
                "after-import",
                "before-alias-moves",
                "after-alias-moves",
            ],
            Self::Remove | Self::DeleteKey => &["after-alias-deleted", "after-keys-scheduled"],
        }
    }
}

#[test]
fn keymgmt_distribute() {
    keymgmt_crash_matrix("keymgmt-distribute", Case::Distribute);
}

#[test]
fn keymgmt_rotate() {
    keymgmt_crash_matrix("keymgmt-distribute", Case::Rotate);
}

#[test]
fn keymgmt_remove() {
    keymgmt_crash_matrix("keymgmt-remove", Case::Remove);
}

#[test]
fn keymgmt_delete_key() {
    keymgmt_crash_matrix("keymgmt-remove", Case::DeleteKey);
}

/// A KMS error at each step of a distribution is one sentence naming the
/// KMS key or alias and AWS's error code (the permission, for an
/// AccessDeniedException), and leaves the steps recorded: Distribute again
/// completes it with no key left over.
#[test]
fn keymgmt_kms_error_then_distribute_again() {
    let account = unique_account();
    let proxy = KmsProxy::start(&format!("127.0.0.1:{}", localstack().port));
    let dir = tempdir();
    let (mut daemon, init) = unsealed(dir.path(), "");
    let rpc = Rpc::new(&daemon, &init.root_token);
    rpc.write_provider(&account, &proxy.endpoint());
    let kms = Account(account.clone());
    let error = |kind: &'static str, message: &str| Fault::Error {
        status: 400,
        kind,
        message: message.into(),
    };
    let cases = [
        (
            "CreateKey",
            Fault::access_denied("CreateKey"),
            "AccessDeniedException, the provider's credentials lack kms:CreateKey and kms:TagResource",
        ),
        (
            "GetParametersForImport",
            error("NotFoundException", "Key does not exist"),
            "NotFoundException, it was not found in this region",
        ),
        (
            "ImportKeyMaterial",
            error("KMSInvalidStateException", "the key is Disabled"),
            "KMSInvalidStateException, the key's state does not allow it",
        ),
        (
            "CreateAlias",
            error("LimitExceededException", "too many aliases"),
            "LimitExceededException, an AWS KMS quota of the account in this region is reached",
        ),
        (
            "CreateAlias",
            error("AlreadyExistsException", "the alias exists"),
            "AlreadyExistsException, it already exists",
        ),
    ];
    for (n, (action, fault, says)) in cases.into_iter().enumerate() {
        let key = format!("kms-error-{}-{n}", std::process::id());
        rpc.write_key(&key);
        proxy.fault(Some(action), fault);
        let refused = rpc.distribute(&key).unwrap_err();
        proxy.clear_fault();
        let message = refused.message();
        let subject = match action {
            "CreateKey" => format!("KMS refused CreateKey on a new KMS key (tag {TAG}="),
            "CreateAlias" => {
                format!("KMS refused CreateAlias on alias alias/{key} (to KMS key ")
            }
            _ => format!("KMS refused {action} on KMS key "),
        };
        assert!(message.contains(&subject), "{action}: {message}");
        assert!(message.contains(says), "{action}: {message}");
        assert!(
            !message.contains('\n') && !message.contains('{'),
            "{action}: {message}"
        );
        let done = rpc
            .distribute(&key)
            .unwrap_or_else(|e| panic!("{action}: distributing again: {e}"));
        distributed(&kms, &key, &done, 1, action);
    }
    drop(rpc);
    assert!(daemon.stop().success());
}

/// Runs `case` crashed at each of its steps of `operation`, one store
/// throughout (a key of its own per step), and checks KMS after each retry.
fn keymgmt_crash_matrix(operation: &str, case: Case) {
    let account = unique_account();
    let dir = tempdir();
    let text = config(dir.path(), "");
    let mut daemon = Daemon::start(dir.path(), &text);
    let init = open(&mut daemon);
    let keys = [&init.keys_hex[0], &init.keys_hex[1]];
    let token = init.root_token.clone();
    Rpc::new(&daemon, &token).write_provider(&account, &localstack().endpoint());
    for step in case.steps() {
        let key = format!("crash-{}-{step}", std::process::id());
        let rpc = Rpc::new(&daemon, &token);
        rpc.write_key(&key);
        if case != Case::Distribute {
            rpc.distribute(&key).unwrap();
        }
        drop(rpc);
        assert!(daemon.stop().success());

        let target = format!("{operation}:{step}");
        let mut crashing =
            Daemon::start_with(dir.path(), &text, &[("STRONGROOM_FAILPOINT", &target)]);
        unseal(&crashing, &keys);
        let rpc = Rpc::new(&crashing, &token);
        let answer = match case {
            Case::Distribute => rpc.distribute(&key).map(|_| ()),
            Case::Rotate => rpc.rotate(&key),
            Case::Remove => rpc.remove(&key).map(|_| ()),
            Case::DeleteKey => rpc.delete_key(&key),
        };
        assert!(answer.is_err(), "{target}: the call answered");
        drop(rpc);
        let exit = crashing
            .wait_exit(Duration::from_secs(20))
            .unwrap_or_else(|| panic!("{target}: the daemon did not crash"));
        assert_eq!(exit.signal(), Some(Signal::SIGABRT as i32), "{target}");
        assert!(
            crashing
                .stderr
                .text()
                .contains(&format!("failpoint {target}: aborting")),
            "{target}: aborted elsewhere"
        );

        daemon = Daemon::start(dir.path(), &text);
        unseal(&daemon, &keys);
        let rpc = Rpc::new(&daemon, &token);
        let kms = Account(account.clone());
        match case {
            Case::Distribute | Case::Rotate => {
                let versions = if case == Case::Rotate { 2 } else { 1 };
                let done = rpc
                    .distribute(&key)
                    .unwrap_or_else(|e| panic!("{target}: distributing again: {e}"));
                distributed(&kms, &key, &done, versions, &target);
                assert_eq!(rpc.read(&key), done, "{target}");
            }
            Case::Remove => {
                let done = rpc
                    .remove(&key)
                    .unwrap_or_else(|e| panic!("{target}: removing again: {e}"));
                removed(&kms, &key, &done, &target);
                assert_eq!(rpc.read(&key), done, "{target}");
            }
            Case::DeleteKey => {
                rpc.delete_key(&key)
                    .unwrap_or_else(|e| panic!("{target}: deleting again: {e}"));
                assert_eq!(rpc.read_key(&key).code(), tonic::Code::NotFound, "{target}");
                // The record stays, pending deletion until KMS's date.
                removed(&kms, &key, &rpc.read(&key), &target);
            }
        }
    }
    assert!(daemon.stop().success());
}

/// One KMS key per version of `key`, each tagged, recorded in `seen` and
/// enabled; no other key of `key` in the account; the alias on the newest,
/// and Encrypt through it answered by that key.
fn distributed(
    kms: &Account,
    key: &str,
    seen: &proto::DistributionInfo,
    versions: u32,
    target: &str,
) {
    assert_eq!(seen.pending_deletion_until, 0, "{target}");
    assert_eq!(seen.alias, format!("alias/{key}"), "{target}");
    assert_eq!(seen.alias_version, versions, "{target}");
    assert_eq!(seen.versions.len(), versions as usize, "{target}");
    let made = kms.keys_of(key);
    assert_eq!(
        made.len(),
        versions as usize,
        "{target}: one KMS key per version, no more: {made:?}"
    );
    let mut tags = Vec::new();
    for (version, recorded) in (1..=versions).zip(&seen.versions) {
        assert_eq!(recorded.version, version, "{target}");
        assert_eq!(recorded.state, "enabled", "{target}");
        let found: Vec<&KmsKey> = made.iter().filter(|k| k.version == version).collect();
        assert_eq!(found.len(), 1, "{target}: version {version}: {made:?}");
        let found = found[0];
        assert_eq!(found.id, recorded.kms_key_id, "{target}: version {version}");
        assert_eq!(found.arn, recorded.arn, "{target}");
        assert_eq!(found.state, "Enabled", "{target}: version {version}");
        assert_eq!(found.origin, "EXTERNAL", "{target}");
        let tag = found.tag.clone().unwrap_or_else(|| {
            panic!("{target}: version {version}'s KMS key carries no {TAG} tag")
        });
        assert!(!tag.is_empty(), "{target}");
        tags.push(tag);
    }
    tags.sort();
    tags.dedup();
    assert_eq!(
        tags.len(),
        versions as usize,
        "{target}: one tag per version"
    );

    let newest = &seen.versions[versions as usize - 1];
    assert_eq!(
        kms.alias_target(&seen.alias).as_deref(),
        Some(newest.kms_key_id.as_str()),
        "{target}: the alias is not on the newest version's key"
    );
    let (status, answer) = kms.call(
        "Encrypt",
        json!({"KeyId": seen.alias, "Plaintext": "c2VjcmV0"}),
    );
    assert_eq!(status, 200, "{target}: Encrypt through the alias: {answer}");
    assert_eq!(answer["KeyId"], newest.arn.as_str(), "{target}");
}

/// Every KMS key of `key` pending deletion, the alias gone, the record
/// removed with KMS's deletion date.
fn removed(kms: &Account, key: &str, seen: &proto::DistributionInfo, target: &str) {
    let made = kms.keys_of(key);
    assert_eq!(made.len(), 1, "{target}: {made:?}");
    for found in &made {
        assert_eq!(found.state, "PendingDeletion", "{target}: {found:?}");
        assert!(found.tag.is_some(), "{target}: {found:?}");
        assert_eq!(found.id, seen.versions[0].kms_key_id, "{target}");
    }
    assert_eq!(seen.versions[0].state, "pending_deletion", "{target}");
    assert_eq!(seen.alias_version, 0, "{target}");
    assert_eq!(kms.alias_target(&seen.alias), None, "{target}: the alias");
    // KMS's date, a week ahead: not the time of the retry.
    let now = strongroom::time::now_unix() as i64;
    let days = i64::from(DELETION_DAYS - 1) * 86_400;
    assert!(
        seen.pending_deletion_until > now + days,
        "{target}: pending deletion until {} (now {now})",
        seen.pending_deletion_until
    );
    let (status, answer) = kms.call(
        "Encrypt",
        json!({"KeyId": seen.alias, "Plaintext": "c2VjcmV0"}),
    );
    assert_eq!(status, 400, "{target}: {answer}");
    assert_eq!(answer["__type"], "NotFoundException", "{target}");
}
