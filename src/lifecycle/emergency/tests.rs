//! The emergency Shamir seal through the lifecycle, with in-memory KMSes:
//! init issues its shares, they unseal only once no KMS seal could open the
//! store, and a rotated root key stays open to them (`rekey --target
//! emergency`: `rekey_tests.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::lifecycle::seal_config::{EMERGENCY_ROOT_KEY_PATH, SEAL_CONFIG_PATH, SealConfig};
use crate::lifecycle::{
    Completed, InitParams, Lifecycle, Operation, Options, Phase, RekeyParams, RekeyTarget,
};
use crate::seal::Seal;
use crate::seal::kms::testing::FakeKms;
use crate::seal::kms::{KeyState, Kms};
use crate::seal::set::{Member, SealSet};
use crate::secret::SecretBytes;
use crate::storage::{Backend, InmemBackend};

/// Seals "a" and "b", and the emergency seal "emergency" when `emergency`.
pub(super) fn seals(a: &Arc<FakeKms>, b: &Arc<FakeKms>, emergency: bool) -> Seal {
    let member = |name: &str, priority, kms: &Arc<FakeKms>| {
        Member::new(
            name,
            priority,
            false,
            Duration::ZERO,
            Arc::clone(kms) as Arc<dyn Kms>,
        )
    };
    let members = vec![member("a", 1, a), member("b", 2, b)];
    Seal::Multi(Arc::new(SealSet::new(
        members,
        emergency.then(|| "emergency".to_string()),
    )))
}

pub(super) async fn open(storage: &Arc<dyn Backend>, seal: Seal) -> Arc<Lifecycle> {
    Lifecycle::open(Arc::clone(storage), seal, Options::default(), Vec::new())
        .await
        .unwrap()
}

pub(super) fn hexes(shares: &[SecretBytes]) -> Vec<String> {
    shares.iter().map(|s| hex::encode(s.expose())).collect()
}

pub(super) fn set_state(kms: &FakeKms, state: KeyState) {
    kms.set_state(&kms.current_arn(), state);
}

/// Runs the seal set's background work until an auto-unseal attempt has
/// failed (within a deadline); the caller aborts the task.
pub(super) async fn failing(lifecycle: &Arc<Lifecycle>) -> tokio::task::JoinHandle<()> {
    let task = tokio::spawn(Arc::clone(lifecycle).drive_auto_unseal(Duration::ZERO));
    let deadline = Instant::now() + Duration::from_secs(10);
    while lifecycle
        .status()
        .auto_unseal
        .unwrap()
        .last_error
        .is_empty()
    {
        assert!(Instant::now() < deadline, "no auto-unseal attempt failed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    task
}

pub(super) async fn stored_config(storage: &Arc<dyn Backend>) -> SealConfig {
    SealConfig::decode(&storage.get(SEAL_CONFIG_PATH).await.unwrap().unwrap()).unwrap()
}

/// Enters `keys` as emergency shares; the last outcome's error, if any.
pub(super) async fn enter_emergency(lifecycle: &Lifecycle, keys: &[String]) -> Result<(), Error> {
    for key in keys {
        lifecycle
            .enter_unseal_request(key, false, false, "emergency")
            .await?;
    }
    Ok(())
}

/// `rekey --target emergency` authorized by `recovery`, confirmed (or,
/// with `verify`, its new shares typed back); the new emergency shares.
pub(super) async fn rekey_emergency(
    lifecycle: &Lifecycle,
    recovery: &[String],
    verify: bool,
) -> Vec<String> {
    rekey(lifecycle, RekeyTarget::Emergency, recovery, verify).await
}

/// A rekey of `target` (3 new keys, 2 needed) authorized by `recovery`,
/// confirmed (or, with `verify`, its new keys typed back); the new keys.
pub(super) async fn rekey(
    lifecycle: &Lifecycle,
    target: RekeyTarget,
    recovery: &[String],
    verify: bool,
) -> Vec<String> {
    let nonce = lifecycle
        .rekey_init(RekeyParams {
            shares: Some(3),
            threshold: Some(2),
            target: Some(target),
            verify,
            recipients: Vec::new(),
        })
        .unwrap()
        .nonce;
    let mut last = None;
    for key in recovery {
        last = Some(
            lifecycle
                .quorum_update(Operation::Rekey, &nonce, key)
                .await
                .unwrap(),
        );
    }
    let Some(Completed::Rekey {
        shares,
        confirmation_nonce,
        verification_nonce,
        ..
    }) = last.and_then(|o| o.result)
    else {
        panic!("no new keys");
    };
    let shares = hexes(&shares);
    match (confirmation_nonce, verification_nonce) {
        (Some(confirmation), None) => lifecycle.rekey_confirm(&confirmation).await.unwrap(),
        (None, Some(verification)) => {
            // A current recovery key is not one of the new keys.
            let err = lifecycle
                .rekey_verify_update(&verification, &recovery[0])
                .await
                .err()
                .unwrap();
            assert!(err.to_string().contains("current keys"), "{err}");
            for key in &shares[..2] {
                lifecycle
                    .rekey_verify_update(&verification, key)
                    .await
                    .unwrap();
            }
        }
        _ => panic!("neither confirmation nor verification"),
    }
    shares
}

#[tokio::test]
async fn emergency_keys_unseal_only_once_no_kms_seal_could() {
    let storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
    let (a, b) = (Arc::new(FakeKms::new()), Arc::new(FakeKms::new()));
    let lifecycle = open(&storage, seals(&a, &b, true)).await;
    let init = lifecycle
        .init_and_confirm(InitParams {
            emergency_shares: Some(3),
            emergency_threshold: Some(2),
            ..InitParams::recovery(3, 2)
        })
        .await
        .unwrap();
    let keys = init.emergency.unwrap();
    assert_eq!((keys.shares.len(), keys.threshold), (3, 2));
    let emergency = hexes(&keys.shares);
    assert!(
        storage
            .get(EMERGENCY_ROOT_KEY_PATH)
            .await
            .unwrap()
            .is_some()
    );
    let config = stored_config(&storage).await.emergency.unwrap();
    assert_eq!(
        (
            config.name.as_str(),
            config.secret_shares,
            config.secret_threshold
        ),
        ("emergency", 3, 2)
    );
    let status = lifecycle.status();
    let entry = status.seals.last().unwrap();
    assert_eq!(
        (
            entry.name.as_str(),
            entry.fully_wrapped,
            entry.shares,
            entry.threshold
        ),
        ("emergency", true, 3, 2)
    );

    // Unsealed: refused.
    let err = enter_emergency(&lifecycle, &emergency[..1])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("the store is unsealed"), "{err}");
    // Sealed by an operator: the recovery keys' job.
    lifecycle.seal().await;
    let err = enter_emergency(&lifecycle, &emergency[..1])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("sealed by an operator"), "{err}");

    // A restart before any attempt: refused.
    set_state(&a, KeyState::Disabled);
    set_state(&b, KeyState::PendingDeletion);
    let restarted = open(&storage, seals(&a, &b, true)).await;
    let err = enter_emergency(&restarted, &emergency[..1])
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("the last auto-unseal attempt did not find every KMS seal unable"),
        "{err}"
    );

    // An attempt refused for another reason than the seals (two seals
    // added at once, refused before any KMS call): still refused.
    let (c, d) = (Arc::new(FakeKms::new()), Arc::new(FakeKms::new()));
    let member = |name: &str, priority, kms: &Arc<FakeKms>| {
        Member::new(
            name,
            priority,
            false,
            Duration::ZERO,
            Arc::clone(kms) as Arc<dyn Kms>,
        )
    };
    let two_added = Seal::Multi(Arc::new(SealSet::new(
        vec![member("a", 1, &a), member("c", 3, &c), member("d", 4, &d)],
        Some("emergency".into()),
    )));
    let refused = open(&storage, two_added).await;
    let task = failing(&refused).await;
    let err = enter_emergency(&refused, &emergency[..1])
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("the last auto-unseal attempt did not find every KMS seal unable"),
        "{err}"
    );
    task.abort();

    // Both seals refuse: the emergency keys unseal.
    let task = failing(&restarted).await;
    assert_eq!(restarted.phase(), Phase::Sealed);
    let mut forged = keys.shares[0].expose().to_vec();
    forged[3] ^= 1;
    let err = enter_emergency(&restarted, &[hex::encode(forged)])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("never issued"), "{err}");
    // A recovery key is not an emergency key.
    let err = enter_emergency(&restarted, &hexes(&init.shares[..1]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("never issued"), "{err}");
    let first = restarted
        .enter_unseal_request(&emergency[0], false, false, "emergency")
        .await
        .unwrap();
    assert_eq!((first.status.progress, first.status.threshold), (1, 2));
    let again = restarted
        .enter_unseal_request(&emergency[0], false, false, "emergency")
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.status.progress, 1);
    // The recovery keys' progress is its own.
    assert_eq!(restarted.status().progress, 0);
    enter_emergency(&restarted, &emergency[2..3]).await.unwrap();
    assert_eq!(restarted.phase(), Phase::Unsealed);
    let auto = restarted.status().auto_unseal.unwrap();
    assert_eq!(
        (auto.state.as_str(), auto.seal.as_str()),
        ("unsealed", "emergency")
    );
    task.abort();
}

#[tokio::test]
async fn wrong_seal_names_and_parameters_are_refused_in_a_sentence() {
    let storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
    let (a, b) = (Arc::new(FakeKms::new()), Arc::new(FakeKms::new()));
    let plain = open(&storage, seals(&a, &b, false)).await;
    let err = plain
        .init(InitParams {
            emergency_shares: Some(3),
            ..InitParams::recovery(3, 2)
        })
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("leave out the emergency parameters"),
        "{err}"
    );
    let with = open(&storage, seals(&a, &b, true)).await;
    let err = with
        .init(InitParams {
            emergency_shares: Some(3),
            emergency_threshold: Some(4),
            ..InitParams::recovery(3, 2)
        })
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .starts_with("emergency keys: 3 shares with threshold 4"),
        "{err}"
    );
    let err = with
        .enter_unseal_request("00", false, false, "tokyo")
        .await
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "this daemon has no seal \"tokyo\" to unseal with; its emergency seal is \"emergency\""
    );
    assert!(storage.list("").await.unwrap().is_empty());
    let shamir = crate::lifecycle::testing::open_shamir(Arc::new(InmemBackend::new())).await;
    let err = shamir
        .enter_unseal_request("00", false, false, "emergency")
        .await
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "this daemon has no emergency seal, so there is no seal \"emergency\" to unseal with; leave the seal out to enter an unseal key"
    );
}

#[tokio::test]
async fn a_rotated_root_key_stays_open_to_the_same_emergency_keys() {
    let storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
    let (a, b) = (Arc::new(FakeKms::new()), Arc::new(FakeKms::new()));
    let lifecycle = open(&storage, seals(&a, &b, true)).await;
    let init = lifecycle
        .init_and_confirm(InitParams::recovery(3, 2))
        .await
        .unwrap();
    let emergency = hexes(&init.emergency.unwrap().shares);
    assert_eq!(emergency.len(), 5, "5/3 by default");
    let recovery = hexes(&init.shares);
    lifecycle
        .barrier()
        .unwrap()
        .put("test/a", b"kept")
        .await
        .unwrap();
    let blob_before = storage.get(EMERGENCY_ROOT_KEY_PATH).await.unwrap();

    let nonce = lifecycle.rotate_root_init().unwrap().nonce;
    for key in &recovery[..2] {
        lifecycle
            .quorum_update(Operation::RotateRoot, &nonce, key)
            .await
            .unwrap();
    }
    assert_ne!(
        storage.get(EMERGENCY_ROOT_KEY_PATH).await.unwrap(),
        blob_before
    );

    set_state(&a, KeyState::Disabled);
    set_state(&b, KeyState::Disabled);
    let restarted = open(&storage, seals(&a, &b, true)).await;
    let task = failing(&restarted).await;
    enter_emergency(&restarted, &emergency[1..4]).await.unwrap();
    let barrier = restarted.barrier().unwrap();
    assert_eq!(
        barrier.get("test/a").await.unwrap().unwrap().expose(),
        b"kept"
    );
    task.abort();
}
