//! What issue 17 (bring your own key to AWS KMS) needs from LocalStack's
//! KMS emulator, proven with real requests before strongroom makes them:
//! key import with RSA-OAEP-SHA-256, encryption through an alias, a
//! ciphertext bound to its key, disabled and pending-deletion keys refused
//! as AWS refuses them, and a key found again by its tag. The emulator is
//! the run's shared one (`strongroom_test_support::localstack`); each test
//! makes keys and aliases of its own.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use strongroom_test_support::localstack::localstack;

/// A name no other test of the run uses (tests share the emulator).
fn unique(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs tests/python/localstack_byok.py (boto3 and cryptography from the
/// tests' .venv) against the emulator; returns what it saw.
fn byok_with_boto3(tag: &str, alias: &str) -> Value {
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python"))
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/localstack_byok.py"
        ))
        .args([&localstack().endpoint(), tag, alias])
        .output()
        .expect("run .venv/bin/python (scripts/test makes .venv)");
    assert!(
        out.status.success(),
        "localstack_byok.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn imported_key_material_behind_an_alias_with_enforced_states() {
    let started_in = localstack().started_in;
    println!("LocalStack reported KMS running {started_in:.1?} after its start");
    let tag = unique("dist");
    let alias = format!("alias/{}", unique("byok"));
    let seen = byok_with_boto3(&tag, &alias);
    let key = seen["key_id"].as_str().unwrap();
    let arn = seen["arn"].as_str().unwrap();

    // CreateKey with Origin EXTERNAL: no material yet, so no use.
    assert_eq!(seen["origin"], "EXTERNAL");
    assert_eq!(seen["created_state"], "PendingImport");
    assert_eq!(seen["encrypt_before_import"], "KMSInvalidStateException");
    // GetParametersForImport's RSA_2048 key wrapped the 32 bytes.
    assert_eq!(seen["wrapping_key_bits"], 2048);
    assert_eq!(seen["imported_state"], "Enabled");
    assert_eq!(seen["expiration_model"], "KEY_MATERIAL_DOES_NOT_EXPIRE");
    // Encrypt through the alias, Decrypt with and without naming it.
    assert_eq!(seen["encrypt_key_arn"], arn);
    assert_eq!(seen["decrypt_roundtrip"], true);
    assert_eq!(seen["decrypt_key_arn"], arn);
    assert_eq!(seen["decrypt_by_alias_roundtrip"], true);
    // The same material in a second key: the ciphertext decrypts only
    // when its own key is named.
    assert_ne!(seen["second_key_id"], key);
    assert_eq!(seen["second_state"], "Enabled");
    assert_eq!(seen["decrypt_naming_first_roundtrip"], true);
    assert_eq!(seen["decrypt_naming_second"], "IncorrectKeyException");
    // Disabled, then pending deletion: refused in both directions.
    assert_eq!(seen["disabled_state"], "Disabled");
    assert_eq!(seen["encrypt_disabled"], "DisabledException");
    assert_eq!(seen["decrypt_disabled"], "DisabledException");
    assert_eq!(seen["pending_state"], "PendingDeletion");
    assert!(
        seen["deletion_date"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
    assert_eq!(seen["encrypt_pending_deletion"], "KMSInvalidStateException");
    assert_eq!(seen["decrypt_pending_deletion"], "KMSInvalidStateException");
    // ListKeys + ListResourceTags find exactly this key by its tag (the
    // second key carries another value).
    assert_eq!(seen["found_by_tag"], json!([key]));

    // The same state seen through the harness's own requests (what Rust
    // tests of later slices check KMS with), in the same account.
    let (status, described) = localstack().call("DescribeKey", json!({"KeyId": alias}));
    assert_eq!(status, 200, "{described}");
    assert_eq!(described["KeyMetadata"]["Arn"], arn);
    assert_eq!(described["KeyMetadata"]["KeyState"], "PendingDeletion");
    assert_eq!(described["KeyMetadata"]["Origin"], "EXTERNAL");
    let (status, refused) =
        localstack().call("Encrypt", json!({"KeyId": alias, "Plaintext": "c2VjcmV0"}));
    assert_eq!(status, 400);
    assert_eq!(refused["__type"], "KMSInvalidStateException");
    let (status, tags) = localstack().call("ListResourceTags", json!({"KeyId": key}));
    assert_eq!(status, 200, "{tags}");
    assert_eq!(
        tags["Tags"],
        json!([{"TagKey": "strongroom-distribution", "TagValue": tag}])
    );
}

#[test]
fn harness_requests_see_key_states() {
    let (status, missing) = localstack().call(
        "Encrypt",
        json!({"KeyId": format!("alias/{}", unique("absent")), "Plaintext": "c2VjcmV0"}),
    );
    assert_eq!(status, 400);
    assert_eq!(missing["__type"], "NotFoundException");

    let (status, created) = localstack().call(
        "CreateKey",
        json!({"Origin": "EXTERNAL", "Tags": [{"TagKey": "strongroom-distribution", "TagValue": unique("dist")}]}),
    );
    assert_eq!(status, 200, "{created}");
    let key = created["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(created["KeyMetadata"]["KeyState"], "PendingImport");
    // A half-made key (the crash between CreateKey and ImportKeyMaterial
    // that issue 17's retry must clean up) refuses use, and can be
    // scheduled for deletion.
    let (status, refused) =
        localstack().call("Encrypt", json!({"KeyId": key, "Plaintext": "c2VjcmV0"}));
    assert_eq!(status, 400);
    assert_eq!(refused["__type"], "KMSInvalidStateException");
    let (status, scheduled) = localstack().call(
        "ScheduleKeyDeletion",
        json!({"KeyId": key, "PendingWindowInDays": 7}),
    );
    assert_eq!(status, 200, "{scheduled}");
    assert_eq!(scheduled["KeyState"], "PendingDeletion");
    let (_, described) = localstack().call("DescribeKey", json!({"KeyId": key}));
    assert_eq!(described["KeyMetadata"]["KeyState"], "PendingDeletion");
}
