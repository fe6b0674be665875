use std::sync::Arc;

use super::*;
use crate::secret::SecretString;

pub(super) fn root() -> Session {
    Session::root_for_tests(Arc::new(Barrier::in_memory()), "keymgmt/test")
}

fn aws(region: &str) -> ProviderConfig {
    ProviderConfig {
        provider: Some(AWSKMS.into()),
        key_collection: Some(region.into()),
        endpoint: None,
        credentials: Credentials {
            access_key: Some("AKIDKEYMGMT".into()),
            secret_key: Some(SecretString::new("keymgmt-secret-4711".into())),
            session_token: None,
            clear: false,
        },
    }
}

pub(super) fn spec() -> KeySpec {
    KeySpec {
        key_type: AES256_GCM96.into(),
        deletion_allowed: false,
    }
}

#[tokio::test]
async fn a_provider_is_kept_behind_the_barrier_and_read_without_credentials() {
    let engine = KeyMgmt::default();
    let root = root();
    let info = engine
        .write_provider(&root, "aws-eu", aws("eu-west-1"))
        .await
        .unwrap();
    assert_eq!(
        info,
        ProviderInfo {
            name: "aws-eu".into(),
            provider: "awskms".into(),
            key_collection: "eu-west-1".into(),
            endpoint: None,
            static_credentials: true,
        }
    );
    assert_eq!(engine.read_provider(&root, "aws-eu").await.unwrap(), info);
    // Kept behind the barrier (for the KMS client), never shown by a read.
    let barrier = root.barrier().unwrap();
    let stored = barrier.get("keymgmt/kms/aws-eu").await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(stored.expose()).contains("keymgmt-secret-4711"));

    // A change without credentials keeps them; the region changes.
    let mut moved = aws("eu-central-1");
    moved.credentials = Credentials::default();
    let info = engine.write_provider(&root, "aws-eu", moved).await.unwrap();
    assert!(info.static_credentials);
    assert_eq!(info.key_collection, "eu-central-1");
    assert_eq!(engine.list_providers(&root).await.unwrap(), ["aws-eu"]);

    // While a key is distributed to it, its region cannot move (the
    // recorded KMS keys are there) and it cannot be deleted.
    let live = distribution::StoredDistribution::new(
        "app",
        &DistributeSpec {
            purpose: vec!["encrypt".into(), "decrypt".into()],
            protection: "hsm".into(),
        },
        1,
    );
    write(barrier, "keymgmt/kms/aws-eu/key/app", &live)
        .await
        .unwrap();
    let err = engine
        .write_provider(&root, "aws-eu", aws("us-east-1"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot change until each distribution is removed"),
        "{err}"
    );
    assert!(engine.delete_provider(&root, "aws-eu").await.is_err());
    assert_eq!(engine.list_providers(&root).await.unwrap(), ["aws-eu"]);
    barrier.delete("keymgmt/kms/aws-eu/key/app").await.unwrap();
    engine.delete_provider(&root, "aws-eu").await.unwrap();
    assert!(matches!(
        engine.read_provider(&root, "aws-eu").await,
        Err(Error::NotFound(_))
    ));
}

#[tokio::test]
async fn bad_providers_are_refused_in_a_sentence_and_change_nothing() {
    let engine = KeyMgmt::default();
    let root = root();
    let mut gcp = aws("eu-west-1");
    gcp.provider = Some("gcpckms".into());
    let mut region = aws("moon-1");
    region.key_collection = Some("not a region".into());
    let mut half = aws("eu-west-1");
    half.credentials.secret_key = None;
    let mut endpoint = aws("eu-west-1");
    endpoint.endpoint = Some("kms.example".into());
    for (config, says) in [
        (gcp, "provider \"gcpckms\" is not supported"),
        (region, "key_collection"),
        (half, "access_key and secret_key go together"),
        (endpoint, "endpoint"),
    ] {
        let err = engine
            .write_provider(&root, "p", config)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "{err}");
        assert!(!err.contains("keymgmt-secret-4711"), "{err}");
    }
    assert!(engine.list_providers(&root).await.unwrap().is_empty());
    for name in ["", "a/b", "alias/x", &"n".repeat(129)] {
        assert!(validate_name("key", name).is_err(), "{name}");
    }
    validate_name("key", "app-db_1").unwrap();
}

#[tokio::test]
async fn keys_rotate_only_when_told_and_keep_their_rules() {
    let engine = KeyMgmt::default();
    let root = root();
    let err = engine
        .create_key(
            &root,
            "k",
            &KeySpec {
                key_type: "rsa-2048".into(),
                deletion_allowed: false,
            },
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("imports symmetric keys only"), "{err}");
    let made = engine.create_key(&root, "app", &spec()).await.unwrap();
    assert_eq!(
        (
            made.latest_version,
            made.min_enabled_version,
            made.deletion_allowed
        ),
        (1, 0, false)
    );
    assert!(matches!(
        engine.create_key(&root, "app", &spec()).await,
        Err(Error::FailedPrecondition(_))
    ));
    let rotated = engine.rotate_key(&root, "app").await.unwrap();
    assert_eq!(rotated.latest_version, 2);
    assert_eq!(rotated.versions.len(), 2);

    // min_enabled_version up to the newest version; 0 enables all.
    let err = engine
        .update_key(
            &root,
            "app",
            KeyUpdate {
                min_enabled_version: Some(3),
                deletion_allowed: Some(true),
            },
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("above key \"app\"'s newest version, 2"),
        "{err}"
    );
    let read = engine.read_key(&root, "app").await.unwrap();
    assert_eq!(
        (read.min_enabled_version, read.deletion_allowed),
        (0, false)
    );
    let updated = engine
        .update_key(
            &root,
            "app",
            KeyUpdate {
                min_enabled_version: Some(2),
                deletion_allowed: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.min_enabled_version, 2);

    // Deletion needs deletion_allowed.
    let err = engine
        .delete_key(&root, "app", 0)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not allow deletion"), "{err}");
    engine
        .update_key(
            &root,
            "app",
            KeyUpdate {
                min_enabled_version: None,
                deletion_allowed: Some(true),
            },
        )
        .await
        .unwrap();
    assert_eq!(engine.list_keys(&root).await.unwrap(), ["app"]);
    engine.delete_key(&root, "app", 0).await.unwrap();
    assert!(engine.list_keys(&root).await.unwrap().is_empty());
    assert!(matches!(
        engine.read_key(&root, "app").await,
        Err(Error::NotFound(_))
    ));
}

#[tokio::test]
async fn material_is_stored_behind_the_barrier_as_hex() {
    let engine = KeyMgmt::default();
    let root = root();
    engine.create_key(&root, "app", &spec()).await.unwrap();
    let barrier = root.barrier().unwrap();
    let stored = barrier.get("keymgmt/key/app").await.unwrap().unwrap();
    let json: serde_json::Value = serde_json::from_slice(stored.expose()).unwrap();
    let material = json["versions"][0]["material"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(material.len(), 64);
    assert!(hex::decode(&material).is_ok());
}
