//! `rekey --target emergency` through the lifecycle: new emergency keys
//! replace the old ones (or set the seal up for an older store), and a node
//! sealed before the rekey takes the new ones.

use std::sync::Arc;

use super::tests::{
    enter_emergency, failing, hexes, open, rekey_emergency, seals, set_state, stored_config,
};
use crate::lifecycle::{InitParams, Phase, RekeyParams, RekeyTarget};
use crate::seal::kms::KeyState;
use crate::seal::kms::testing::FakeKms;
use crate::storage::{Backend, InmemBackend};

#[tokio::test]
async fn rekey_replaces_the_emergency_keys_and_sets_up_an_older_store() {
    let storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
    let (a, b) = (Arc::new(FakeKms::new()), Arc::new(FakeKms::new()));
    // Made before the emergency seal was configured.
    let older = open(&storage, seals(&a, &b, false)).await;
    let init = older
        .init_and_confirm(InitParams::recovery(3, 2))
        .await
        .unwrap();
    assert!(init.emergency.is_none());
    let recovery = hexes(&init.shares);
    let err = older
        .rekey_init(RekeyParams {
            shares: None,
            threshold: None,
            target: Some(RekeyTarget::Emergency),
            verify: false,
            recipients: Vec::new(),
        })
        .err()
        .unwrap();
    assert!(err.to_string().contains("has no emergency seal"), "{err}");

    let lifecycle = open(&storage, seals(&a, &b, true)).await;
    lifecycle.auto_unseal_once().await.ok().unwrap();
    let entry = lifecycle.status().seals.last().cloned().unwrap();
    assert_eq!(
        (entry.fully_wrapped, entry.shares, entry.threshold),
        (false, 0, 0),
        "not set up"
    );
    lifecycle.seal().await;
    let err = enter_emergency(&lifecycle, &recovery[..1])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not set up"), "{err}");
    for key in &recovery[..2] {
        lifecycle.unseal(key).await.unwrap();
    }

    let first = rekey_emergency(&lifecycle, &recovery[..2], false).await;
    assert!(lifecycle.status().seals.last().unwrap().fully_wrapped);
    let second = rekey_emergency(&lifecycle, &recovery[1..3], true).await;
    let config = stored_config(&storage).await;
    assert_eq!(config.emergency.as_ref().unwrap().secret_shares, 3);
    // The recovery keys stay as they were.
    assert_eq!(config.secret_shares, 3);

    set_state(&a, KeyState::Disabled);
    set_state(&b, KeyState::Disabled);
    let restarted = open(&storage, seals(&a, &b, true)).await;
    let task = failing(&restarted).await;
    let err = enter_emergency(&restarted, &first[..1]).await.unwrap_err();
    assert!(err.to_string().contains("never issued"), "{err}");
    enter_emergency(&restarted, &second[..2]).await.unwrap();
    assert_eq!(restarted.phase(), Phase::Unsealed);
    task.abort();
}

/// With HA: a node sealed since before another node rekeyed the emergency
/// keys takes the new keys (it reads the stored emergency seal), not the
/// ones it read at start.
#[tokio::test]
async fn a_node_sealed_before_an_emergency_rekey_takes_the_new_keys() {
    let storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
    let (a, b) = (Arc::new(FakeKms::new()), Arc::new(FakeKms::new()));
    let active = open(&storage, seals(&a, &b, true)).await;
    let init = active
        .init_and_confirm(InitParams::recovery(3, 2))
        .await
        .unwrap();
    let old = hexes(&init.emergency.unwrap().shares);
    let recovery = hexes(&init.shares);
    // The other node starts now, and stays sealed.
    let other = open(&storage, seals(&a, &b, true)).await;
    let new = rekey_emergency(&active, &recovery[..2], false).await;

    set_state(&a, KeyState::Disabled);
    set_state(&b, KeyState::Disabled);
    let task = failing(&other).await;
    let err = enter_emergency(&other, &old[..1]).await.unwrap_err();
    assert!(err.to_string().contains("never issued"), "{err}");
    enter_emergency(&other, &new[..2]).await.unwrap();
    assert_eq!(other.phase(), Phase::Unsealed);
    task.abort();
}
