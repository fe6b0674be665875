//! Distributions against LocalStack's KMS emulator (imports, enforces
//! key states): the engine's KMS calls and recorded steps.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use strongroom_test_support::localstack::{LocalStack, localstack};

use super::tests::{root, spec};
use super::*;
use crate::secret::SecretString;

fn provider(ls: &LocalStack) -> ProviderConfig {
    ProviderConfig {
        provider: Some(AWSKMS.into()),
        key_collection: Some("us-east-1".into()),
        endpoint: Some(ls.endpoint()),
        credentials: Credentials {
            access_key: Some("test".into()),
            secret_key: Some(SecretString::new("test".into())),
            session_token: None,
            clear: false,
        },
    }
}

fn both() -> DistributeSpec {
    DistributeSpec {
        purpose: vec!["encrypt".into(), "decrypt".into()],
        protection: "hsm".into(),
    }
}

/// The emulator, the engine, and a caller with provider "aws" registered.
async fn with_provider() -> (&'static LocalStack, KeyMgmt, Session) {
    let ls = localstack();
    let engine = KeyMgmt::default();
    let root = root();
    engine
        .write_provider(&root, "aws", provider(ls))
        .await
        .unwrap();
    (ls, engine, root)
}

/// A key name no other test uses (aliases are per region).
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", crate::secret::random_uuid())
}

fn kms(
    ls: &LocalStack,
    action: &str,
    body: serde_json::Value,
) -> Result<serde_json::Value, String> {
    let (status, answer) = ls.call(action, body);
    if status == 200 {
        Ok(answer)
    } else {
        Err(answer["__type"].as_str().unwrap_or("?").to_string())
    }
}

fn encrypt(ls: &LocalStack, key: &str) -> Result<String, String> {
    kms(
        ls,
        "Encrypt",
        json!({"KeyId": key, "Plaintext": STANDARD.encode(b"hello")}),
    )
    .map(|a| a["CiphertextBlob"].as_str().unwrap().to_string())
}

fn decrypt(ls: &LocalStack, key: &str, ciphertext: &str) -> Result<(), String> {
    kms(
        ls,
        "Decrypt",
        json!({"KeyId": key, "CiphertextBlob": ciphertext}),
    )
    .map(|_| ())
}

#[tokio::test]
async fn a_key_is_distributed_rotated_and_limited_by_its_minimum_version() {
    let (ls, engine, root) = with_provider().await;
    let name = unique("byok");
    engine.create_key(&root, &name, &spec()).await.unwrap();
    let alias = format!("alias/{name}");

    let made = engine
        .distribute(&root, "aws", &name, &both())
        .await
        .unwrap();
    assert_eq!(
        (made.alias.as_str(), made.alias_version),
        (alias.as_str(), Some(1))
    );
    let v1 = made.versions[0].kms_key_id.clone().unwrap();
    assert_eq!(made.versions[0].step, Step::Imported);
    let first = encrypt(ls, &alias).unwrap();
    decrypt(ls, &alias, &first).unwrap();
    // A second distribution to the same provider: refused.
    assert!(matches!(
        engine.distribute(&root, "aws", &name, &both()).await,
        Err(Error::FailedPrecondition(_))
    ));

    // A rotation distributes version 2 and moves the alias.
    engine.rotate_key(&root, &name).await.unwrap();
    let synced = engine.read_distribution(&root, "aws", &name).await.unwrap();
    assert_eq!(synced.alias_version, Some(2));
    let v2 = synced.versions[1].kms_key_id.clone().unwrap();
    assert_ne!(v1, v2);
    assert_eq!(
        decrypt(ls, &v2, &first).unwrap_err(),
        "IncorrectKeyException"
    );
    decrypt(ls, &v1, &first).unwrap();
    let second = encrypt(ls, &alias).unwrap();
    decrypt(ls, &v2, &second).unwrap();

    // min_enabled_version 2 disables version 1's KMS key; 0 enables it.
    let update = |min| KeyUpdate {
        min_enabled_version: Some(min),
        deletion_allowed: None,
    };
    engine.update_key(&root, &name, update(2)).await.unwrap();
    let limited = engine.read_distribution(&root, "aws", &name).await.unwrap();
    assert!(!limited.versions[0].enabled && limited.versions[1].enabled);
    assert_eq!(encrypt(ls, &v1).unwrap_err(), "DisabledException");
    engine.update_key(&root, &name, update(0)).await.unwrap();
    encrypt(ls, &v1).unwrap();
    assert_eq!(
        engine
            .read_distribution(&root, "aws", &name)
            .await
            .unwrap()
            .versions
            .len(),
        2
    );

    // Removed: both KMS keys pending deletion (7 days), the alias gone, the
    // record kept until then; the key itself may then be deleted.
    let removed = engine
        .remove_distribution(&root, "aws", &name, 7)
        .await
        .unwrap();
    let now = crate::time::now_unix() as i64;
    let until = removed.pending_deletion_until.unwrap();
    assert!((until - now - 7 * 86_400).abs() < 3_600, "{until}");
    for id in [&v1, &v2] {
        assert_eq!(encrypt(ls, id).unwrap_err(), "KMSInvalidStateException");
    }
    assert_eq!(encrypt(ls, &alias).unwrap_err(), "NotFoundException");
    let again = engine
        .distribute(&root, "aws", &name, &both())
        .await
        .unwrap_err()
        .to_string();
    assert!(again.contains("pending deletion until"), "{again}");
    // A second removal changes nothing and fails nothing.
    engine
        .remove_distribution(&root, "aws", &name, 7)
        .await
        .unwrap();

    // A change of the key leaves the removed distribution alone.
    let allow = KeyUpdate {
        min_enabled_version: None,
        deletion_allowed: Some(true),
    };
    engine.update_key(&root, &name, allow).await.unwrap();
    assert_eq!(encrypt(ls, &alias).unwrap_err(), "NotFoundException");
    let kept = engine.read_distribution(&root, "aws", &name).await.unwrap();
    assert_eq!(kept.alias_version, None);
    engine.delete_key(&root, &name, 0).await.unwrap();
}

#[tokio::test]
async fn an_alias_someone_else_owns_is_refused_and_nothing_is_made() {
    let (ls, engine, root) = with_provider().await;
    let name = unique("taken");
    let foreign = kms(ls, "CreateKey", json!({})).unwrap();
    let foreign_id = foreign["KeyMetadata"]["KeyId"].as_str().unwrap();
    kms(
        ls,
        "CreateAlias",
        json!({"AliasName": format!("alias/{name}"), "TargetKeyId": foreign_id}),
    )
    .unwrap();
    engine.create_key(&root, &name, &spec()).await.unwrap();
    let err = engine
        .distribute(&root, "aws", &name, &both())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("already points at key") && err.contains(foreign_id),
        "{err}"
    );
    assert!(matches!(
        engine.read_distribution(&root, "aws", &name).await,
        Err(Error::NotFound(_))
    ));
}

/// A record at `intent` whose CreateKey was sent (as a crash leaves it),
/// and `made` KMS keys carrying its tag; their ids.
async fn crashed_after_create_key(
    ls: &LocalStack,
    root: &Session,
    name: &str,
    made: usize,
) -> Vec<String> {
    let mut record = distribution::StoredDistribution::new(name, &both(), 1);
    record.versions[0].create_attempts = made.try_into().unwrap();
    let id = record.versions[0].distribution_id.clone();
    let barrier = root.barrier().unwrap();
    write(barrier, &distribution::storage_path("aws", name), &record)
        .await
        .unwrap();
    let tags = json!([{"TagKey": "strongroom-distribution", "TagValue": id}]);
    let mut ids: Vec<String> = (0..made)
        .map(|_| {
            let key = kms(ls, "CreateKey", json!({"Origin": "EXTERNAL", "Tags": tags})).unwrap();
            key["KeyMetadata"]["KeyId"].as_str().unwrap().to_string()
        })
        .collect();
    ids.sort();
    ids
}

fn key_state(ls: &LocalStack, id: &str) -> String {
    let described = kms(ls, "DescribeKey", json!({"KeyId": id})).unwrap();
    described["KeyMetadata"]["KeyState"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_key_a_crash_left_before_its_id_was_recorded_is_found_by_its_tag() {
    let (ls, engine, root) = with_provider().await;
    let name = unique("crash");
    engine.create_key(&root, &name, &spec()).await.unwrap();
    // CreateKey ran twice (a retry after an unclear failure), then the
    // process died before either id was recorded.
    let made = crashed_after_create_key(ls, &root, &name, 2).await;

    // Distributing again completes it with one of them; the other is
    // scheduled for deletion, so none is left untracked.
    let resumed = engine
        .distribute(&root, "aws", &name, &both())
        .await
        .unwrap();
    assert_eq!(
        resumed.versions[0].kms_key_id.as_deref(),
        Some(made[0].as_str())
    );
    assert_eq!(resumed.versions[0].step, Step::Imported);
    assert_eq!(resumed.alias_version, Some(1));
    assert_eq!(key_state(ls, &made[1]), "PendingDeletion");
    encrypt(ls, &format!("alias/{name}")).unwrap();
}

#[tokio::test]
async fn removing_a_distribution_a_crash_left_at_intent_deletes_its_tagged_key() {
    let (ls, engine, root) = with_provider().await;
    let name = unique("crashrm");
    engine.create_key(&root, &name, &spec()).await.unwrap();
    let made = crashed_after_create_key(ls, &root, &name, 1).await;
    let removed = engine
        .remove_distribution(&root, "aws", &name, 7)
        .await
        .unwrap();
    assert!(removed.pending_deletion_until.is_some());
    assert_eq!(key_state(ls, &made[0]), "PendingDeletion");
}

#[tokio::test]
async fn a_new_version_is_made_without_scanning_the_region_for_tags() {
    let (ls, engine, root) = with_provider().await;
    let name = unique("noscan");
    engine.create_key(&root, &name, &spec()).await.unwrap();
    let made = engine
        .distribute(&root, "aws", &name, &both())
        .await
        .unwrap();
    // The record says one CreateKey was sent for the version, so a retry
    // (and only a retry) looks for its tag.
    let barrier = root.barrier().unwrap();
    let record: distribution::StoredDistribution = read(
        barrier,
        &distribution::storage_path("aws", &name),
        "distribution",
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(record.versions[0].create_attempts, 1);
    assert_eq!(made.versions[0].step, Step::Imported);
    let _ = ls;
}

#[tokio::test]
async fn a_retry_after_the_extra_key_was_scheduled_keeps_the_other_and_completes() {
    let (ls, engine, root) = with_provider().await;
    let name = unique("rescheduled");
    engine.create_key(&root, &name, &spec()).await.unwrap();
    let made = crashed_after_create_key(ls, &root, &name, 2).await;
    // An earlier resolution scheduled the first one, then was interrupted
    // before it recorded the key it kept.
    kms(
        ls,
        "ScheduleKeyDeletion",
        json!({"KeyId": made[0], "PendingWindowInDays": 7}),
    )
    .unwrap();
    let resumed = engine
        .distribute(&root, "aws", &name, &both())
        .await
        .unwrap();
    assert_eq!(
        resumed.versions[0].kms_key_id.as_deref(),
        Some(made[1].as_str())
    );
    assert_eq!(resumed.versions[0].state, "enabled");
    encrypt(ls, &format!("alias/{name}")).unwrap();
}
