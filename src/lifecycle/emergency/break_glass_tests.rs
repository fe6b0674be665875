//! After the break-glass: a store whose KMS seals are gone for good is
//! unsealed with emergency keys, its recovery keys still authorize, a new
//! seal is given both keys, and the store unseals through it again; and a
//! config without the emergency seal retires it.

use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::lifecycle::seal_config::{
    EMERGENCY_RECOVERY_KEY_PATH, EMERGENCY_ROOT_KEY_PATH, SEAL_CONFIG_PATH, SealConfig,
};
use crate::lifecycle::{
    Completed, InitParams, InitResult, Lifecycle, Operation, Options, Phase, RekeyTarget,
};
use crate::seal::Seal;
use crate::seal::envelope::Purpose;
use crate::seal::kms::testing::FakeKms;
use crate::seal::kms::{KeyState, Kms};
use crate::seal::set::{EnvelopeSet, Member, SealSet};
use crate::storage::{Backend, InmemBackend};

use super::tests::failing;

/// The KMS seals `(name, kms)` in priority order, with the emergency seal
/// "emergency" when `emergency`.
fn seals(members: &[(&str, &Arc<FakeKms>)], emergency: bool) -> Arc<SealSet> {
    let members = members
        .iter()
        .enumerate()
        .map(|(i, (name, kms))| {
            Member::new(
                *name,
                u32::try_from(i).unwrap() + 1,
                false,
                Duration::ZERO,
                Arc::clone(kms) as Arc<dyn Kms>,
            )
        })
        .collect();
    Arc::new(SealSet::new(
        members,
        emergency.then(|| "emergency".to_string()),
    ))
}

fn kms() -> Arc<FakeKms> {
    Arc::new(FakeKms::new())
}

async fn open(storage: &Arc<dyn Backend>, set: &Arc<SealSet>) -> Arc<Lifecycle> {
    Lifecycle::open(
        Arc::clone(storage),
        Seal::Multi(Arc::clone(set)),
        Options::default(),
        Vec::new(),
    )
    .await
    .unwrap()
}

fn hexes(result: &InitResult) -> (Vec<String>, Vec<String>) {
    let hex = |shares: &[crate::secret::SecretBytes]| -> Vec<String> {
        shares.iter().map(|s| hex::encode(s.expose())).collect()
    };
    (
        hex(&result.shares),
        hex(&result.emergency.as_ref().unwrap().shares),
    )
}

/// A store of seals "a" and "b" with the emergency seal (3 keys, 2 unseal),
/// sealed again; its recovery keys and emergency keys.
async fn store(
    storage: &Arc<dyn Backend>,
    a: &Arc<FakeKms>,
    b: &Arc<FakeKms>,
) -> (Vec<String>, Vec<String>) {
    let lifecycle = open(storage, &seals(&[("a", a), ("b", b)], true)).await;
    let init = lifecycle
        .init_and_confirm(InitParams {
            emergency_shares: Some(3),
            emergency_threshold: Some(2),
            ..InitParams::recovery(3, 2)
        })
        .await
        .unwrap();
    lifecycle.seal().await;
    hexes(&init)
}

async fn stored_config(storage: &Arc<dyn Backend>) -> SealConfig {
    SealConfig::decode(&storage.get(SEAL_CONFIG_PATH).await.unwrap().unwrap()).unwrap()
}

async fn stored_seals(storage: &Arc<dyn Backend>, purpose: Purpose) -> Vec<String> {
    let blob = storage
        .get(crate::lifecycle::seals::path_of(purpose))
        .await
        .unwrap()
        .unwrap();
    let set = EnvelopeSet::decode(purpose, &blob).unwrap();
    set.seals().map(str::to_string).collect()
}

/// A generate-root authorized by `keys`: whether it made a token.
async fn generate_root(lifecycle: &Lifecycle, keys: &[String]) -> Result<bool, Error> {
    let pad = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        crate::secret::random_bytes(crate::pad::PAD_LEN),
    );
    let nonce = lifecycle.generate_root_init(&pad, None)?.nonce;
    let mut made = false;
    for key in keys {
        let outcome = lifecycle
            .quorum_update(Operation::GenerateRoot, &nonce, key)
            .await;
        if outcome.is_err() {
            lifecycle
                .quorum_cancel(Operation::GenerateRoot, &nonce)
                .ok();
        }
        made = matches!(outcome?.result, Some(Completed::GeneratedRoot { .. }));
    }
    Ok(made)
}

/// Opens `storage` on `set` while every KMS seal fails, and unseals it with
/// the emergency keys.
async fn break_glass(
    storage: &Arc<dyn Backend>,
    set: &Arc<SealSet>,
    emergency: &[String],
) -> Arc<Lifecycle> {
    let lifecycle = open(storage, set).await;
    let task = failing(&lifecycle).await;
    for key in &emergency[..2] {
        lifecycle
            .enter_unseal_request(key, false, false, "emergency")
            .await
            .unwrap();
    }
    task.abort();
    assert_eq!(lifecycle.phase(), Phase::Unsealed);
    lifecycle
}

#[tokio::test]
async fn after_a_break_glass_unseal_a_new_seal_gets_both_keys() {
    let storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
    let (a, b, c) = (kms(), kms(), kms());
    let (recovery, emergency) = store(&storage, &a, &b).await;
    assert!(
        storage
            .get(EMERGENCY_RECOVERY_KEY_PATH)
            .await
            .unwrap()
            .is_some()
    );
    // Both KMS keys are gone for good; the operator adds seal "c".
    a.set_state(&a.current_arn(), KeyState::PendingDeletion);
    b.set_state(&b.current_arn(), KeyState::PendingDeletion);
    let set = seals(&[("a", &a), ("b", &b), ("c", &c)], true);
    let lifecycle = break_glass(&storage, &set, &emergency).await;

    // No KMS seal opens the recovery key, yet recovery keys authorize, and
    // emergency keys (not recovery keys) are refused.
    assert!(generate_root(&lifecycle, &recovery[..2]).await.unwrap());
    assert!(generate_root(&lifecycle, &emergency[..2]).await.is_err());

    // The rewrap gives "c" both keys with the recovery key of the unseal.
    assert!(lifecycle.reconcile_seals(&set).await.unwrap());
    for purpose in [Purpose::RootKey, Purpose::RecoveryKey] {
        assert_eq!(stored_seals(&storage, purpose).await, ["a", "b", "c"]);
    }
    lifecycle.seal().await;

    // A restart unseals through "c", without emergency keys.
    let restarted = open(&storage, &set).await;
    restarted
        .auto_unseal_once()
        .await
        .map_err(|e| e.message)
        .unwrap();
    assert_eq!(restarted.phase(), Phase::Unsealed);
    assert_eq!(restarted.status().auto_unseal.unwrap().seal, "c");
    // The recovery key "c" holds is the one the recovery keys make.
    assert!(generate_root(&restarted, &recovery[..2]).await.unwrap());
}

#[tokio::test]
async fn a_rekey_renews_the_held_recovery_key_and_one_from_elsewhere_retires_it() {
    let storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
    let (a, b, c) = (kms(), kms(), kms());
    let (recovery, emergency) = store(&storage, &a, &b).await;
    a.set_state(&a.current_arn(), KeyState::Disabled);
    b.set_state(&b.current_arn(), KeyState::Disabled);
    let set = seals(&[("a", &a), ("b", &b), ("c", &c)], true);
    let lifecycle = break_glass(&storage, &set, &emergency).await;
    assert!(lifecycle.reconcile_seals(&set).await.unwrap());

    // A rekey on this node ("c" wraps the new key): then with "c" down too,
    // the new recovery keys authorize through the renewed key, the old
    // ones no more.
    let renewed =
        super::tests::rekey(&lifecycle, RekeyTarget::Recovery, &recovery[..2], false).await;
    c.set_state(&c.current_arn(), KeyState::Disabled);
    assert!(generate_root(&lifecycle, &renewed[..2]).await.unwrap());
    assert!(generate_root(&lifecycle, &recovery[..2]).await.is_err());

    // The recovery keys replaced on another node (HA: this node follows the
    // seal config): the key held belongs to the old ones and is dropped.
    let mut followed = (*lifecycle.seal_config().unwrap()).clone();
    let elsewhere = crate::secret::SecretBytes::new(vec![7u8; 33]);
    followed.share_check = crate::seal::shamir::ShareCheck::new(&[elsewhere]);
    lifecycle.replace_seal_config(followed);
    let err = lifecycle
        .break_glass_or(Error::Unavailable("no seal".into()))
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        Error::Unavailable("no seal".into()).to_string()
    );
    assert!(!lifecycle.holds_break_glass());
}

#[tokio::test]
async fn a_planted_recovery_key_copy_is_refused() {
    let storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
    let (a, b) = (kms(), kms());
    let (_, emergency) = store(&storage, &a, &b).await;
    // Someone who can write storage encrypts a key of their own to the
    // public key in the seal config (it is in the clear).
    let config = stored_config(&storage).await;
    let public_key =
        crate::seal::emergency::parse_public_key(&config.emergency.unwrap().public_key).unwrap();
    let planted = crate::seal::emergency::wrap(
        &public_key,
        Purpose::RecoveryKey,
        &config.cluster_id,
        &crate::secret::SecretKey::generate(),
    )
    .unwrap();
    let mut batch = crate::storage::Batch::new();
    batch.put(EMERGENCY_RECOVERY_KEY_PATH, planted);
    storage.write(batch).await.unwrap();
    a.set_state(&a.current_arn(), KeyState::Disabled);
    b.set_state(&b.current_arn(), KeyState::Disabled);
    // The store still unseals; the planted key is not taken.
    let lifecycle = break_glass(&storage, &seals(&[("a", &a), ("b", &b)], true), &emergency).await;
    assert!(!lifecycle.holds_break_glass());
}

#[tokio::test]
async fn the_recovery_key_is_forgotten_when_the_node_seals() {
    let storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
    let (a, b) = (kms(), kms());
    let (_, emergency) = store(&storage, &a, &b).await;
    a.set_state(&a.current_arn(), KeyState::Disabled);
    b.set_state(&b.current_arn(), KeyState::Disabled);
    let lifecycle = break_glass(&storage, &seals(&[("a", &a), ("b", &b)], true), &emergency).await;
    assert!(lifecycle.holds_break_glass());
    lifecycle.seal().await;
    assert!(!lifecycle.holds_break_glass());
}

#[tokio::test]
async fn a_config_without_the_emergency_seal_retires_it() {
    let storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
    let (a, b) = (kms(), kms());
    let (_, emergency) = store(&storage, &a, &b).await;

    // The shamir block removed in the same restart as seal "b": one change
    // at a time, so the emergency seal stays until a later restart.
    let fewer = seals(&[("a", &a)], false);
    let lifecycle = open(&storage, &fewer).await;
    lifecycle
        .auto_unseal_once()
        .await
        .map_err(|e| e.message)
        .unwrap();
    assert!(lifecycle.reconcile_seals(&fewer).await.unwrap());
    assert!(stored_config(&storage).await.emergency.is_some());
    lifecycle.seal().await;

    // The shamir block alone is removed (the record is {a} now): not while
    // "a" cannot open its keys again; once it can, the active node deletes
    // what the store kept of the emergency seal, in the rewrap's one write.
    let without = seals(&[("a", &a)], false);
    let lifecycle = open(&storage, &without).await;
    lifecycle
        .auto_unseal_once()
        .await
        .map_err(|e| e.message)
        .unwrap();
    assert!(stored_config(&storage).await.emergency.is_some());
    // Not while "a" cannot open its keys again: "b" (kept, as no config
    // named it, and now decrypt-only) opens the recovery key first, then
    // "a"'s check fails.
    let b_leaving = Arc::new(SealSet::new(
        vec![
            Member::new("b", 1, true, Duration::ZERO, Arc::clone(&b) as Arc<dyn Kms>),
            Member::new(
                "a",
                2,
                false,
                Duration::ZERO,
                Arc::clone(&a) as Arc<dyn Kms>,
            ),
        ],
        None,
    ));
    a.fail_next(crate::seal::kms::KmsError::new(
        crate::seal::kms::KmsErrorKind::Unavailable,
        "KMS a is down",
    ));
    assert!(!lifecycle.reconcile_seals(&b_leaving).await.unwrap());
    assert!(stored_config(&storage).await.emergency.is_some());
    assert!(lifecycle.reconcile_seals(&without).await.unwrap());
    assert!(stored_config(&storage).await.emergency.is_none());
    for path in [
        EMERGENCY_ROOT_KEY_PATH,
        EMERGENCY_RECOVERY_KEY_PATH,
        super::EMERGENCY_PUBLIC_KEY_PATH,
    ] {
        assert!(storage.get(path).await.unwrap().is_none(), "{path}");
    }
    assert!(
        lifecycle
            .status()
            .seals
            .iter()
            .all(|s| s.name != "emergency")
    );
    lifecycle.seal().await;

    // The old emergency keys open nothing, even with every KMS seal down.
    a.set_state(&a.current_arn(), KeyState::Disabled);
    b.set_state(&b.current_arn(), KeyState::Disabled);
    let with = seals(&[("a", &a), ("b", &b)], true);
    let restarted = open(&storage, &with).await;
    let task = failing(&restarted).await;
    let Err(err) = restarted
        .enter_unseal_request(&emergency[0], false, false, "emergency")
        .await
    else {
        panic!("a retired emergency seal's key was taken");
    };
    task.abort();
    assert!(err.to_string().contains("not set up"), "{err}");
    assert_eq!(restarted.phase(), Phase::Sealed);
}

#[tokio::test]
async fn a_node_without_the_block_keeps_the_copies_current_until_retired() {
    let storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
    let (a, b) = (kms(), kms());
    let (recovery, emergency) = store(&storage, &a, &b).await;
    // A node whose config has no shamir block rekeys the recovery keys
    // before any rewrap retired the seal: the copy is of the new key.
    let lifecycle = open(&storage, &seals(&[("a", &a), ("b", &b)], false)).await;
    lifecycle
        .auto_unseal_once()
        .await
        .map_err(|e| e.message)
        .unwrap();
    let renewed =
        super::tests::rekey(&lifecycle, RekeyTarget::Recovery, &recovery[..2], false).await;
    lifecycle.seal().await;
    // Break-glass on a node with the block: the new recovery keys
    // authorize through the copy, the old ones are refused.
    a.set_state(&a.current_arn(), KeyState::Disabled);
    b.set_state(&b.current_arn(), KeyState::Disabled);
    let lifecycle = break_glass(&storage, &seals(&[("a", &a), ("b", &b)], true), &emergency).await;
    assert!(generate_root(&lifecycle, &renewed[..2]).await.unwrap());
    assert!(generate_root(&lifecycle, &recovery[..2]).await.is_err());
}
