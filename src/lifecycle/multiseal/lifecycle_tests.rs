//! Several seals through the lifecycle, with in-memory KMSes: init, the
//! path to unsealed in priority order, rewraps, the upgrade of a one-seal
//! store, a seal leaving, and the one-change rule.

use std::sync::Arc;
use std::time::Duration;

use crate::lifecycle::seal_config::{RECOVERY_KEY_PATH, ROOT_KEY_PATH, SealConfig};
use crate::lifecycle::seals::path_of;
use crate::lifecycle::{InitParams, Lifecycle, Options, Phase};
use crate::seal::envelope::Purpose;
use crate::seal::kms::testing::FakeKms;
use crate::seal::kms::{Kms, KmsError, KmsErrorKind};
use crate::seal::set::{EnvelopeSet, Member, SealSet};
use crate::seal::{MULTISEAL, Seal};
use crate::storage::{Backend, Batch, InmemBackend};

/// A seal set of `(name, kms, disabled)`, prioritised in the order given.
fn seals(members: &[(&str, &Arc<FakeKms>, bool)]) -> Seal {
    let members = members
        .iter()
        .enumerate()
        .map(|(i, (name, kms, disabled))| {
            Member::new(
                *name,
                u32::try_from(i).unwrap() + 1,
                *disabled,
                Duration::ZERO,
                Arc::clone(kms) as Arc<dyn Kms>,
            )
        })
        .collect();
    Seal::Multi(Arc::new(SealSet::new(members, None)))
}

async fn open(storage: &Arc<dyn Backend>, seal: Seal) -> Arc<Lifecycle> {
    Lifecycle::open(Arc::clone(storage), seal, Options::default(), Vec::new())
        .await
        .unwrap()
}

async fn stored_seals(storage: &Arc<dyn Backend>, purpose: Purpose) -> Vec<String> {
    let blob = storage.get(path_of(purpose)).await.unwrap().unwrap();
    let set = EnvelopeSet::decode(purpose, &blob).unwrap();
    set.seals().map(str::to_string).collect()
}

async fn stored_config(storage: &Arc<dyn Backend>) -> SealConfig {
    let bytes = storage
        .get(crate::lifecycle::seal_config::SEAL_CONFIG_PATH)
        .await
        .unwrap()
        .unwrap();
    SealConfig::decode(&bytes).unwrap()
}

/// Restarts on `seal` and waits for one auto-unseal attempt's outcome.
async fn restart(storage: &Arc<dyn Backend>, seal: Seal) -> (Arc<Lifecycle>, Result<(), String>) {
    let lifecycle = open(storage, seal).await;
    let outcome = lifecycle.auto_unseal_once().await.map_err(|e| e.message);
    (lifecycle, outcome)
}

/// A rotate-root's write of the root key while `down` cannot wrap: its
/// seal loses its root-key envelope.
async fn missing_a_root_key_write(
    lifecycle: &Lifecycle,
    storage: &Arc<dyn Backend>,
    down: &FakeKms,
) {
    let config = stored_config(storage).await;
    down.fail_next(KmsError::new(KmsErrorKind::Unavailable, "KMS is down"));
    let root = lifecycle.barrier().unwrap().root_key().clone();
    let mut batch = Batch::new();
    lifecycle
        .wrap_into(&mut batch, Purpose::RootKey, &config, &root)
        .await
        .unwrap();
    storage.write(batch).await.unwrap();
}

fn kms() -> Arc<FakeKms> {
    Arc::new(FakeKms::new())
}

#[tokio::test]
async fn init_wraps_under_every_seal_and_a_restart_needs_one_decrypt() {
    let storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
    let (a, b) = (kms(), kms());
    let lifecycle = open(&storage, seals(&[("a", &a, false), ("b", &b, false)])).await;

    // Init needs every seal: one failing leaves storage untouched.
    b.fail_next(KmsError::new(KmsErrorKind::Unavailable, "KMS b is down"));
    let err = lifecycle
        .init_and_confirm(InitParams::recovery(3, 2))
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("init needs every configured seal to answer, so nothing was written: seal \"b\" said: KMS b is down"),
        "{err}"
    );
    assert!(storage.list("").await.unwrap().is_empty());

    lifecycle
        .init_and_confirm(InitParams::recovery(3, 2))
        .await
        .unwrap();
    for purpose in [Purpose::RootKey, Purpose::RecoveryKey] {
        assert_eq!(stored_seals(&storage, purpose).await, ["a", "b"]);
    }
    let config = stored_config(&storage).await;
    assert_eq!(
        (config.seal_type.as_str(), config.format_version),
        (MULTISEAL, 3)
    );
    let status = lifecycle.status();
    assert_eq!(status.seal_type, MULTISEAL);
    assert!(status.seals.iter().all(|s| s.fully_wrapped && s.healthy));

    let (a_before, b_before) = (a.calls().len(), b.calls().len());
    let (restarted, outcome) =
        restart(&storage, seals(&[("a", &a, false), ("b", &b, false)])).await;
    outcome.unwrap();
    assert_eq!(restarted.phase(), Phase::Unsealed);
    assert_eq!(a.calls()[a_before..], ["Decrypt"]);
    assert_eq!(b.calls().len(), b_before);
    assert_eq!(restarted.status().auto_unseal.unwrap().seal, "a");

    // The first seal down: the second opens, with one Decrypt each.
    a.fail_next(KmsError::new(KmsErrorKind::Unavailable, "KMS a is down"));
    let (a_before, b_before) = (a.calls().len(), b.calls().len());
    let (restarted, outcome) =
        restart(&storage, seals(&[("a", &a, false), ("b", &b, false)])).await;
    outcome.unwrap();
    assert_eq!(a.calls()[a_before..], ["Decrypt"]);
    assert_eq!(b.calls()[b_before..], ["Decrypt"]);
    let status = restarted.status();
    assert_eq!(status.auto_unseal.unwrap().seal, "b");
    let first = &status.seals[0];
    assert_eq!((first.name.as_str(), first.healthy), ("a", false));
    assert_eq!(first.last_error, "KMS a is down");
}

#[tokio::test]
async fn a_seal_that_missed_a_write_is_rewrapped_by_the_active_node() {
    let storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
    let (a, b) = (kms(), kms());
    let set = || seals(&[("a", &a, false), ("b", &b, false)]);
    let lifecycle = open(&storage, set()).await;
    lifecycle
        .init_and_confirm(InitParams::recovery(3, 2))
        .await
        .unwrap();

    // A rotate-root's wrap with "b" down: "b" loses its root-key envelope.
    missing_a_root_key_write(&lifecycle, &storage, &b).await;
    assert_eq!(stored_seals(&storage, Purpose::RootKey).await, ["a"]);

    let (restarted, outcome) = restart(&storage, set()).await;
    outcome.unwrap();
    assert_eq!(
        restarted
            .status()
            .seals
            .iter()
            .map(|s| s.fully_wrapped)
            .collect::<Vec<_>>(),
        [true, false]
    );
    let Seal::Multi(members) = set() else {
        unreachable!()
    };
    assert!(restarted.reconcile_seals(&members).await.unwrap());
    assert_eq!(stored_seals(&storage, Purpose::RootKey).await, ["a", "b"]);
    assert!(restarted.status().seals.iter().all(|s| s.fully_wrapped));

    // Now "b" alone unseals.
    a.fail_next(KmsError::new(KmsErrorKind::Denied, "KMS a denied"));
    let (_, outcome) = restart(&storage, set()).await;
    outcome.unwrap();
}

#[tokio::test]
async fn a_store_of_one_seal_moves_to_several_and_a_seal_leaves() {
    let storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
    let (a, b) = (kms(), kms());
    let single = open(&storage, Seal::AwsKms(Arc::clone(&a) as Arc<dyn Kms>)).await;
    single
        .init_and_confirm(InitParams::recovery(3, 2))
        .await
        .unwrap();

    // The one seal's key, now named "primary", plus "b": one seal added.
    let two = || seals(&[("primary", &a, false), ("b", &b, false)]);
    let (upgraded, outcome) = restart(&storage, two()).await;
    outcome.unwrap();
    let Seal::Multi(set) = two() else {
        unreachable!()
    };
    assert!(upgraded.reconcile_seals(&set).await.unwrap());
    assert_eq!(stored_config(&storage).await.seal_type, MULTISEAL);
    for purpose in [Purpose::RootKey, Purpose::RecoveryKey] {
        assert_eq!(stored_seals(&storage, purpose).await, ["primary", "b"]);
    }

    // "primary" marked disabled: it still opens, and its envelopes go once
    // "b" holds both keys and opened them again.
    let leaving = || seals(&[("primary", &a, true), ("b", &b, false)]);
    let (restarted, outcome) = restart(&storage, leaving()).await;
    outcome.unwrap();
    assert_eq!(restarted.status().auto_unseal.unwrap().seal, "primary");
    let Seal::Multi(set) = leaving() else {
        unreachable!()
    };
    assert!(restarted.reconcile_seals(&set).await.unwrap());
    for purpose in [Purpose::RootKey, Purpose::RecoveryKey] {
        assert_eq!(stored_seals(&storage, purpose).await, ["b"]);
    }
    let (_, outcome) = restart(&storage, seals(&[("b", &b, false)])).await;
    outcome.unwrap();
    for path in [ROOT_KEY_PATH, RECOVERY_KEY_PATH] {
        assert!(storage.get(path).await.unwrap().is_some());
    }
}

#[tokio::test]
async fn two_seal_changes_at_once_are_refused_before_any_kms_call() {
    let storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
    let (a, b, c) = (kms(), kms(), kms());
    let lifecycle = open(&storage, seals(&[("a", &a, false)])).await;
    lifecycle
        .init_and_confirm(InitParams::recovery(3, 2))
        .await
        .unwrap();
    let before = a.calls().len();
    let (restarted, outcome) = restart(
        &storage,
        seals(&[("a", &a, false), ("b", &b, false), ("c", &c, false)]),
    )
    .await;
    assert_eq!(
        outcome.unwrap_err(),
        "the config adds \"b\", \"c\" at once; change one seal per restart (add one, or remove one by marking it disabled = true), so that a mistake never leaves the store without a working seal"
    );
    assert_eq!(restarted.phase(), Phase::Sealed);
    assert_eq!(a.calls().len(), before);
    assert_eq!(stored_seals(&storage, Purpose::RootKey).await, ["a"]);
}

#[tokio::test]
async fn a_removal_is_recorded_at_once_only_while_a_remaining_seal_holds_the_keys() {
    let storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
    let (a, b, c) = (kms(), kms(), kms());
    let lifecycle = open(&storage, seals(&[("a", &a, false), ("b", &b, false)])).await;
    lifecycle
        .init_and_confirm(InitParams::recovery(3, 2))
        .await
        .unwrap();
    // "b" misses a rotate-root: it holds no envelope of the root key.
    missing_a_root_key_write(&lifecycle, &storage, &b).await;
    lifecycle.seal().await;

    // "a" marked disabled while "b" is still down: "a" unseals, "b" cannot
    // be rewrapped, and recording {b} alone would name no seal that opens
    // the store, so the record stays {a, b}.
    b.set_state(&b.current_arn(), crate::seal::kms::KeyState::Disabled);
    let leaving = || seals(&[("a", &a, true), ("b", &b, false)]);
    let (restarted, outcome) = restart(&storage, leaving()).await;
    outcome.unwrap();
    let Seal::Multi(set) = leaving() else {
        unreachable!()
    };
    assert!(!restarted.reconcile_seals(&set).await.unwrap());
    let recorded = stored_config(&storage).await.seals;
    assert!(recorded.iter().all(|s| !s.disabled));
    restarted.seal().await;
    // So replacing "a" by "c" now counts as two changes, and is refused.
    let (_, outcome) = restart(&storage, seals(&[("b", &b, false), ("c", &c, false)])).await;
    assert!(outcome.unwrap_err().contains("at once"));

    // With "b" healthy again, it is rewrapped and the removal recorded.
    b.set_state(&b.current_arn(), crate::seal::kms::KeyState::Enabled);
    let (restarted, outcome) = restart(&storage, leaving()).await;
    outcome.unwrap();
    assert!(restarted.reconcile_seals(&set).await.unwrap());
    let recorded = stored_config(&storage).await.seals;
    assert_eq!(
        recorded
            .iter()
            .map(|s| (s.name.as_str(), s.disabled))
            .collect::<Vec<_>>(),
        [("a", true), ("b", false)]
    );
}

#[tokio::test]
async fn a_removal_is_not_recorded_while_the_seal_that_stays_cannot_open() {
    let storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
    let (a, b) = (kms(), kms());
    let lifecycle = open(&storage, seals(&[("a", &a, false), ("b", &b, false)])).await;
    lifecycle
        .init_and_confirm(InitParams::recovery(3, 2))
        .await
        .unwrap();
    lifecycle.seal().await;
    // "b" holds both keys, but its key is pending deletion: with "a" marked
    // disabled, the record must not become {b}.
    b.set_state(
        &b.current_arn(),
        crate::seal::kms::KeyState::PendingDeletion,
    );
    let leaving = || seals(&[("a", &a, true), ("b", &b, false)]);
    let (restarted, outcome) = restart(&storage, leaving()).await;
    outcome.unwrap();
    let Seal::Multi(set) = leaving() else {
        unreachable!()
    };
    assert!(!restarted.reconcile_seals(&set).await.unwrap());
    assert!(
        stored_config(&storage)
            .await
            .seals
            .iter()
            .all(|s| !s.disabled)
    );
    for purpose in [Purpose::RootKey, Purpose::RecoveryKey] {
        assert_eq!(stored_seals(&storage, purpose).await, ["a", "b"]);
    }
}
