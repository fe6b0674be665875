//! The engine's unit tests, on an in-memory barrier.

use std::sync::Arc;

use super::*;
use crate::config::MAX_KV_VERSIONS as MAX_KV_VERSIONS_FOR_TESTS;

fn secret(pairs: &[(&str, &str)]) -> Document {
    let object: Map<String, Value> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), Value::String((*v).to_string())))
        .collect();
    Document::from_object(&object)
}

#[test]
fn paths_are_validated() {
    for good in ["a", "app/db", "a-b_c.d/e f"] {
        assert!(validate_path(good).is_ok(), "{good}");
    }
    for bad in ["", "/a", "a/", "a//b", "a/../b", ".", "a\u{0}b"] {
        assert!(validate_path(bad).is_err(), "{bad:?}");
    }
    assert!(validate_path(&"a".repeat(MAX_PATH_LEN + 1)).is_err());
    assert_eq!(folder("").unwrap(), "");
    assert_eq!(folder("app").unwrap(), "app/");
    assert_eq!(folder("app/").unwrap(), "app/");
}

#[tokio::test]
async fn versions_are_kept_pruned_and_marked() {
    let kv = Kv::new(KvSettings::default());
    let root = Session::root_for_tests(Arc::new(Barrier::in_memory()), "kv/app/db");
    for i in 1..=12u64 {
        let v = kv
            .put(&root, "app/db", &secret(&[("n", &i.to_string())]), None)
            .await
            .unwrap();
        assert_eq!(v.version, i);
    }
    let meta = kv.metadata(&root, "app/db").await.unwrap();
    assert_eq!(meta.current_version, 12);
    assert_eq!(meta.oldest_version(), 3, "10 kept by default");
    let err = kv.get(&root, "app/db", 2).await.err().unwrap();
    assert!(err.to_string().contains("versions kept: 3 to 12"), "{err}");

    kv.mark(&root, "app/db", &[], Mark::Delete).await.unwrap();
    assert!(matches!(
        kv.get(&root, "app/db", 0).await,
        Err(Error::NotFound(_))
    ));
    assert_eq!(
        kv.get(&root, "app/db", 11).await.unwrap().data.object()["n"],
        "11"
    );
    kv.mark(&root, "app/db", &[12], Mark::Undelete)
        .await
        .unwrap();
    assert_eq!(kv.get(&root, "app/db", 0).await.unwrap().version, 12);
    kv.mark(&root, "app/db", &[12], Mark::Destroy)
        .await
        .unwrap();
    let err = kv.get(&root, "app/db", 0).await.err().unwrap();
    assert!(err.to_string().contains("destroyed"), "{err}");

    let err = kv
        .put(&root, "app/db", &secret(&[("n", "x")]), Some(5))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "check-and-set parameter did not match the current version: the write expected version 5 of kv path \"app/db\", but the current version is 12"
    );
    assert_eq!(
        kv.put(&root, "app/db", &secret(&[("n", "x")]), Some(12))
            .await
            .unwrap()
            .version,
        13
    );
    kv.delete_metadata(&root, "app/db").await.unwrap();
    assert!(kv.list(&root, "app").await.unwrap().is_empty());
    assert!(matches!(
        kv.metadata(&root, "app/db").await,
        Err(Error::NotFound(_))
    ));
}

#[tokio::test]
async fn patches_settings_and_forgiving_marks() {
    let kv = Kv::new(KvSettings::default());
    let root = Session::root_for_tests(Arc::new(Barrier::in_memory()), "kv/app/db");
    let doc = Document::parse(br#"{"a":1,"b":{"c":2,"d":3}}"#).unwrap();
    kv.put(&root, "app/db", &doc, None).await.unwrap();
    let patch = serde_json::json!({"a": null, "b": {"c": 5}, "e": [1]});
    let Value::Object(patch) = patch else {
        unreachable!()
    };
    let err = kv
        .patch(&root, "app/db", &patch, Some(7))
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with(CAS_MISMATCH), "{err}");
    assert_eq!(
        kv.patch(&root, "app/db", &patch, Some(1))
            .await
            .unwrap()
            .version,
        2
    );
    let read = kv.get(&root, "app/db", 0).await.unwrap();
    assert_eq!(
        Value::Object(read.data.object()),
        serde_json::json!({"b": {"c": 5, "d": 3}, "e": [1]})
    );
    assert!(matches!(
        kv.patch(&root, "app/none", &patch, None).await,
        Err(Error::NotFound(_))
    ));

    // The path's own settings: cas required, two versions kept.
    let update = MetadataUpdate {
        max_versions: Some(2),
        cas_required: Some(true),
        custom_metadata: Some(BTreeMap::from([("owner".into(), "a".into())])),
    };
    kv.put_metadata(&root, "app/db", update).await.unwrap();
    let err = kv.put(&root, "app/db", &doc, None).await.unwrap_err();
    assert!(err.to_string().starts_with(CAS_REQUIRED), "{err}");
    let written = kv.put(&root, "app/db", &doc, Some(2)).await.unwrap();
    assert_eq!(written.custom_metadata["owner"], "a");
    let meta = kv.metadata(&root, "app/db").await.unwrap();
    assert_eq!(meta.versions.keys().copied().collect::<Vec<_>>(), [2, 3]);
    assert_eq!(meta.metadata_version, 1);
    assert!(
        MetadataUpdate {
            max_versions: Some(MAX_KV_VERSIONS_FOR_TESTS + 1),
            ..MetadataUpdate::default()
        }
        .check()
        .is_err()
    );

    // The store's settings apply where the path has none.
    let config = Config {
        max_versions: 1,
        cas_required: true,
    };
    kv.set_config(&root, config).await.unwrap();
    assert_eq!(kv.config(&root).await.unwrap(), config);
    assert!(kv.put(&root, "app/other", &doc, None).await.is_err());
    kv.put(&root, "app/other", &doc, Some(0)).await.unwrap();
    kv.put(&root, "app/other", &doc, Some(1)).await.unwrap();
    let meta = kv.metadata(&root, "app/other").await.unwrap();
    assert_eq!(meta.versions.len(), 1, "config's max_versions");

    // Marks as Vault's API: unknown versions and paths passed over.
    kv.mark_kept(&root, "app/db", &[3, 99], Mark::Delete)
        .await
        .unwrap();
    kv.mark_kept(&root, "app/none", &[1], Mark::Delete)
        .await
        .unwrap();
    assert!(kv.mark(&root, "app/db", &[99], Mark::Delete).await.is_err());
    let Lookup::Gone { version, info, .. } = kv.lookup(&root, "app/db", 0).await.unwrap() else {
        panic!("version 3 is deleted");
    };
    assert_eq!(version, 3);
    assert_ne!(info.deleted_unix, 0);
}

#[tokio::test]
async fn a_metadata_patch_merges_into_an_existing_path_only() {
    let kv = Kv::new(KvSettings::default());
    let root = Session::root_for_tests(Arc::new(Barrier::in_memory()), "kv/app/db");
    let patch = |custom: &[(&str, Option<&str>)]| MetadataPatch {
        max_versions: Some(3),
        custom_metadata: custom
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.map(str::to_string)))
            .collect(),
        ..MetadataPatch::default()
    };
    assert!(matches!(
        kv.patch_metadata(&root, "app/db", patch(&[])).await,
        Err(Error::NotFound(_))
    ));
    kv.put(&root, "app/db", &secret(&[("v", "1")]), None)
        .await
        .unwrap();
    kv.patch_metadata(
        &root,
        "app/db",
        patch(&[("a", Some("1")), ("b", Some("2"))]),
    )
    .await
    .unwrap();
    kv.patch_metadata(&root, "app/db", patch(&[("a", None), ("c", Some("3"))]))
        .await
        .unwrap();
    let meta = kv.metadata(&root, "app/db").await.unwrap();
    assert_eq!(
        meta.custom_metadata,
        BTreeMap::from([("b".into(), "2".into()), ("c".into(), "3".into())])
    );
    assert_eq!((meta.max_versions, meta.metadata_version), (3, 2));
    // The limits hold for the merged result: 64 keys at most.
    for i in 0..62 {
        let key = format!("k{i}");
        kv.patch_metadata(&root, "app/db", patch(&[(&key, Some("v"))]))
            .await
            .unwrap();
    }
    let err = kv
        .patch_metadata(&root, "app/db", patch(&[("one-too-many", Some("v"))]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("64"), "{err}");
    let cleared = MetadataPatch {
        clear_custom: true,
        ..MetadataPatch::default()
    };
    kv.patch_metadata(&root, "app/db", cleared).await.unwrap();
    let meta = kv.metadata(&root, "app/db").await.unwrap();
    assert!(meta.custom_metadata.is_empty());
    assert_eq!(meta.max_versions, 3, "left out: kept");
}
