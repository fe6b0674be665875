//! The tutorial's workflow through the CLI, as KMS sees each step.

use super::*;

#[test]
fn the_tutorial_through_the_cli_as_kms_sees_it() {
    let byok = Byok::start();
    let key = unique("tutorial");
    let alias = format!("alias/{key}");

    // Create the key and distribute it: KMS encrypts and decrypts with it.
    let v1 = byok.distributed(&key);
    let first = byok.distribution(&key);
    assert_eq!(first["alias"], alias.as_str());
    assert_eq!(first["alias_version"], 1);
    assert_eq!(first["purpose"], json!(["encrypt", "decrypt"]));
    assert_eq!(first["protection"], "hsm");
    assert_eq!(first["pending_deletion_until"], Value::Null);
    assert_eq!(first["versions"][0]["state"], "enabled");
    let meta = key_state(&v1);
    assert_eq!(meta["Origin"], "EXTERNAL");
    assert_eq!(meta["KeyState"], "Enabled");
    assert_eq!(first["versions"][0]["arn"], meta["Arn"]);
    let c1 = encrypt(&alias).unwrap();
    decrypt(&alias, &c1).unwrap();
    decrypt(&v1, &c1).unwrap();
    let table = byok.distribution_table(&key);
    assert!(table.contains(&format!("1          {v1}")), "{table}");
    assert!(table.contains("status           distributed"), "{table}");

    // Rotate: version 2's KMS key, the alias on it; version 1's
    // ciphertext is bound to version 1's key.
    let rotated = byok.run(&["keymgmt", "key", "rotate", &key]).ok();
    assert!(rotated.stdout.contains("version 2"), "{}", rotated.stdout);
    let second = byok.distribution(&key);
    assert_eq!(second["alias_version"], 2);
    let v2 = second["versions"][1]["kms_key_id"].as_str().unwrap();
    assert_ne!(v1, v2);
    assert_eq!(alias_target(&key).unwrap(), v2);
    assert_eq!(decrypt(v2, &c1).unwrap_err(), "IncorrectKeyException");
    decrypt(&v1, &c1).unwrap();
    let c2 = encrypt(&alias).unwrap();
    decrypt(v2, &c2).unwrap();

    // min_enabled_version 2 disables version 1's KMS key; 0 enables it.
    byok.write_key(&key, &["--min-enabled-version", "2"]).ok();
    assert_eq!(encrypt(&v1).unwrap_err(), "DisabledException");
    assert_eq!(decrypt(&v1, &c1).unwrap_err(), "DisabledException");
    encrypt(&alias).unwrap();
    let limited = byok.distribution(&key);
    assert_eq!(limited["versions"][0]["state"], "disabled");
    assert_eq!(limited["versions"][1]["state"], "enabled");
    byok.write_key(&key, &["--min-enabled-version", "0"]).ok();
    decrypt(&v1, &c1).unwrap();
    let read = byok
        .run(&["keymgmt", "key", "read", &key, "--format", "json"])
        .ok()
        .json();
    assert_eq!(read["type"], "aes256-gcm96");
    assert_eq!(read["latest_version"], 2);
    assert_eq!(read["min_enabled_version"], 0);
    assert!(read["versions"]["2"]["creation_time"].is_string(), "{read}");
    let providers = byok
        .run(&["keymgmt", "key", "providers", &key, "--format", "json"])
        .ok()
        .json();
    assert_eq!(providers, json!([PROVIDER]));
    let listed = byok
        .run(&["keymgmt", "distribution", "list", PROVIDER])
        .ok();
    assert!(listed.stdout.lines().any(|l| l == key), "{}", listed.stdout);

    // Remove the distribution: both KMS keys pending deletion (7 days),
    // the alias gone, strongroom's record says until when.
    let removed = byok
        .run(&[
            "keymgmt",
            "distribution",
            "remove",
            PROVIDER,
            &key,
            "--deletion-window-days",
            "7",
        ])
        .ok();
    assert!(
        removed.stdout.contains("pending deletion until"),
        "{}",
        removed.stdout
    );
    for id in [v1.as_str(), v2] {
        assert_eq!(encrypt(id).unwrap_err(), "KMSInvalidStateException");
        assert_eq!(key_state(id)["KeyState"], "PendingDeletion");
    }
    assert_eq!(decrypt(&v1, &c1).unwrap_err(), "KMSInvalidStateException");
    assert_eq!(alias_target(&key).unwrap_err(), "NotFoundException");
    let kms_date = key_state(&v1)["DeletionDate"].as_f64().unwrap() as i64;
    let now = strongroom::time::now_unix() as i64;
    assert!((kms_date - now - 7 * 86_400).abs() < 3_600, "{kms_date}");
    let gone = byok.distribution(&key);
    let until = gone["pending_deletion_until"].as_str().unwrap();
    // Strongroom's date and KMS's are taken moments apart.
    assert!(
        (-300..=300).any(|d| strongroom::time::format_unix((kms_date + d) as u64) == until),
        "strongroom says {until}, KMS {kms_date}"
    );
    assert_eq!(gone["versions"][1]["state"], "pending_deletion");
    let table = byok.distribution_table(&key);
    assert!(
        table.contains(&format!("{v2}    "))
            && table.contains(&format!("pending deletion until {until}")),
        "{table}"
    );

    // Deleting the key needs deletion_allowed.
    byok.run(&["keymgmt", "key", "delete", &key])
        .code(1)
        .error_says("does not allow deletion: set deletion_allowed first");
    byok.write_key(&key, &["--deletion-allowed", "true"]).ok();
    let deleted = byok.run(&["keymgmt", "key", "delete", &key]).ok();
    assert!(
        deleted.stdout.contains("Success! Deleted key"),
        "{}",
        deleted.stdout
    );
    let keys = byok
        .run(&["keymgmt", "key", "list", "--format", "json"])
        .ok()
        .json();
    assert!(!keys.as_array().unwrap().contains(&json!(key)), "{keys}");
}

#[test]
fn deleting_a_distributed_key_needs_deletion_allowed_then_removes_its_distribution() {
    let byok = Byok::start();
    let key = unique("delete");
    let v1 = byok.distributed(&key);

    byok.run(&["keymgmt", "key", "delete", &key])
        .code(1)
        .error_says("does not allow deletion");
    // Nothing changed on either side.
    assert_eq!(key_state(&v1)["KeyState"], "Enabled");
    assert_eq!(alias_target(&key).unwrap(), v1);
    byok.run(&["keymgmt", "key", "read", &key]).ok();

    byok.write_key(&key, &["--deletion-allowed", "true"]).ok();
    let deleted = byok
        .run(&[
            "keymgmt",
            "key",
            "delete",
            &key,
            "--deletion-window-days",
            "10",
        ])
        .ok();
    assert!(
        deleted.stdout.contains("after 10 days"),
        "{}",
        deleted.stdout
    );
    let meta = key_state(&v1);
    assert_eq!(meta["KeyState"], "PendingDeletion");
    let days = (meta["DeletionDate"].as_f64().unwrap() as i64
        - strongroom::time::now_unix() as i64)
        / 86_400;
    assert!((9..=10).contains(&days), "{days} days");
    assert_eq!(alias_target(&key).unwrap_err(), "NotFoundException");
    byok.run(&["keymgmt", "key", "read", &key])
        .code(1)
        .error_says("no key named");
    // The removed distribution's record stays until the deletion date.
    let table = byok.distribution_table(&key);
    assert!(table.contains("pending deletion until"), "{table}");
}
