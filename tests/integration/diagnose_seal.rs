//! `strongroom diagnose`'s seal area, with the real binary against moto
//! behind the fault-injecting proxy: where the credentials come from (or
//! that there are none), DescribeKey (a disabled, deleted, asymmetric or
//! other-region key), the Encrypt and Decrypt round trip (kms:Encrypt
//! denied) and its latency, and the stored root key's envelope of an
//! initialized store (this key, another key, a pending migration), read
//! without decrypting it. Shamir's one line.

mod credentials;
mod live;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use strongroom_test_support::kms::Fault;

use crate::diagnose_listener::{assert_finding, diagnose, finding};
use crate::support::cli::Run;
use crate::support::daemon::Daemon;
use crate::support::daemon::{config, tempdir};
use crate::support::kms::{
    ALIAS, SECRET_KEY, delete_key, disable_key, init_recovery, kms, multiseal, named_seal,
    seal_block, start_daemon,
};

const SEAL: [&str; 2] = ["seal", "awskms"];

/// The finding `check` under the one seal's heading.
fn seal_check<'a>(report: &'a Value, check: &str) -> &'a Value {
    finding(report, &["seal", "awskms", check])
}

#[track_caller]
fn assert_check(report: &Value, check: &str, status: &str, says: &str) {
    assert_finding(report, &[SEAL[0], SEAL[1], check], status, says);
}

/// Writes a daemon config with `seals` to `dir/strongroom.hcl`.
fn write(dir: &Path, seals: &str) -> std::path::PathBuf {
    let path = dir.join("strongroom.hcl");
    std::fs::write(&path, config(dir, seals)).unwrap();
    path
}

/// Neither the secret key nor a Debug dump in what diagnose printed.
#[track_caller]
fn assert_clean(run: &Run) {
    for text in [&run.stdout, &run.stderr] {
        assert!(!text.contains(SECRET_KEY), "{text}");
        assert!(
            !text.contains("DispatchFailure") && !text.contains("Error("),
            "{text}"
        );
    }
}

#[test]
fn a_usable_key_passes_and_the_initialized_stores_envelope_names_it() {
    let kms = kms();
    let dir = tempdir();
    let endpoint = kms.proxy.endpoint();
    let path = write(dir.path(), &seal_block(&endpoint, ""));

    // Before init: every KMS check passes; init will wrap with this key.
    let run = diagnose(&path, "seal", &[]).ok();
    assert_clean(&run);
    let report = run.json();
    assert_eq!(report["status"], "success", "{report:#}");
    assert_check(
        &report,
        "credentials",
        "success",
        "static keys from the seal block",
    );
    assert_check(
        &report,
        "key",
        "success",
        &format!(
            "KMS key {} is Enabled, SYMMETRIC_DEFAULT, ENCRYPT_DECRYPT, in region us-east-1",
            kms.key
        ),
    );
    assert_check(
        &report,
        "encrypt and decrypt",
        "success",
        &format!(
            "Encrypt and Decrypt of a random value under {} work",
            kms.key
        ),
    );
    assert_check(
        &report,
        "latency",
        "success",
        "the Encrypt and Decrypt round trip took",
    );
    assert_check(
        &report,
        "stored root key",
        "success",
        "holds no store yet: init wraps the root key with this key",
    );

    // Initialized by a daemon, which is then stopped: the envelope names the key.
    let mut daemon = start_daemon(dir.path(), &endpoint, "");
    init_recovery(&daemon);
    daemon.stop();
    kms.proxy.clear_requests();
    let report = diagnose(&path, "seal", &[]).ok().json();
    assert_check(
        &report,
        "stored root key",
        "success",
        &format!("the stored root key is wrapped by this key ({})", kms.key),
    );
    // One Decrypt, of diagnose's own value: the stored root key was not opened.
    assert_eq!(kms.proxy.requests(), ["DescribeKey", "Encrypt", "Decrypt"]);

    // While a daemon holds the store, the envelope is not read.
    daemon.start_again();
    let report = diagnose(&path, "seal", &[]).ok().json();
    let stored = seal_check(&report, "stored root key");
    assert_eq!(stored["status"], "skipped", "{stored:#}");
    assert!(
        stored["message"]
            .as_str()
            .unwrap()
            .contains("a running strongroom (pid"),
        "{stored:#}"
    );
}

#[test]
fn an_envelope_of_another_key_says_what_is_pending() {
    let kms = kms();
    let dir = tempdir();
    let endpoint = kms.proxy.endpoint();
    let mut daemon = start_daemon(dir.path(), &endpoint, "");
    init_recovery(&daemon);
    daemon.stop();
    let path = daemon.config_path.clone();

    // The alias now names another key of the same account and region.
    let other = kms.moto.create_key();
    kms.moto.alias(ALIAS, &other);
    let report = diagnose(&path, "seal", &[]).ok().json();
    assert_eq!(report["status"], "warning", "{report:#}");
    assert_check(
        &report,
        "stored root key",
        "warning",
        &format!(
            "the stored root key is wrapped by {}, not by this seal's key {other}: once unsealed, the daemon rewraps it",
            kms.key
        ),
    );

    // A migration: the old key's block disabled, the new key's enabled.
    let old = seal_block(&endpoint, "disabled = true")
        .replace(&format!("\"{ALIAS}\""), &format!("\"{}\"", kms.key));
    let new = seal_block(&endpoint, "").replace(&format!("\"{ALIAS}\""), &format!("\"{other}\""));
    let path = write(dir.path(), &format!("{old}{new}"));
    let report = diagnose(&path, "seal", &[]).ok().json();
    assert_finding(
        &report,
        &["seal", "awskms", "stored root key"],
        "warning",
        &format!(
            "wrapped by {}, the disabled seal's key: a seal migration to this key ({other}) is pending",
            kms.key
        ),
    );
    assert_finding(
        &report,
        &["seal", "awskms (disabled)", "stored root key"],
        "warning",
        &format!(
            "still wrapped by this disabled seal's key {}: a seal migration away from it is pending",
            kms.key
        ),
    );

    // No seal block at all: Shamir, while the store is sealed by KMS.
    let path = write(dir.path(), "");
    let report = diagnose(&path, "seal", &[]).ok().json();
    assert_finding(
        &report,
        &["seal", "shamir"],
        "warning",
        "the config names the Shamir seal, but the store is sealed by awskms: a seal migration to Shamir is pending",
    );
}

#[test]
fn a_denied_action_names_the_missing_permission() {
    let kms = kms();
    let dir = tempdir();
    let path = write(dir.path(), &seal_block(&kms.proxy.endpoint(), ""));
    kms.proxy
        .fault(Some("Encrypt"), Fault::access_denied("Encrypt"));
    let run = diagnose(&path, "seal", &[]).code(1);
    assert_clean(&run);
    let report = run.json();
    assert_eq!(report["status"], "failure");
    assert_check(&report, "key", "success", "is Enabled");
    assert_check(
        &report,
        "encrypt and decrypt",
        "failure",
        &format!(
            "kms:Encrypt is not allowed on key {ALIAS} for these credentials: User: arn:aws:iam::123456789012:user/strongroom is not authorized to perform: kms:Encrypt"
        ),
    );
    assert_eq!(seal_check(&report, "latency")["status"], "skipped");
    assert!(
        seal_check(&report, "encrypt and decrypt")["advice"]
            .as_str()
            .unwrap()
            .contains("allow kms:Encrypt")
    );
    kms.proxy
        .fault(Some("Decrypt"), Fault::access_denied("Decrypt"));
    let report = diagnose(&path, "seal", &[]).code(1).json();
    assert_check(
        &report,
        "encrypt and decrypt",
        "failure",
        &format!("kms:Decrypt is not allowed on key {ALIAS} for these credentials"),
    );

    kms.proxy
        .fault(Some("DescribeKey"), Fault::access_denied("DescribeKey"));
    let report = diagnose(&path, "seal", &[]).code(1).json();
    assert_check(
        &report,
        "key",
        "failure",
        &format!("kms:DescribeKey is not allowed on key {ALIAS}"),
    );
    // Encrypt and Decrypt are allowed again, and are checked all the same.
    assert_check(&report, "encrypt and decrypt", "success", "work");
}

#[test]
fn a_disabled_deleted_asymmetric_or_foreign_key_fails() {
    let kms = kms();
    let dir = tempdir();
    let endpoint = kms.proxy.endpoint();
    let path = write(dir.path(), &seal_block(&endpoint, ""));
    disable_key(&kms);
    let report = diagnose(&path, "seal", &[]).code(1).json();
    assert_check(
        &report,
        "key",
        "failure",
        &format!("KMS key {} cannot seal: it is disabled", kms.key),
    );
    assert_eq!(
        seal_check(&report, "encrypt and decrypt")["status"],
        "skipped"
    );
    delete_key(&kms);
    let report = diagnose(&path, "seal", &[]).code(1).json();
    assert_check(
        &report,
        "key",
        "failure",
        "cannot seal: it is pending deletion",
    );

    // A key for signing, not encryption.
    let signing = kms.moto.call(
        "CreateKey",
        json!({"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"}),
    )["KeyMetadata"]["Arn"]
        .as_str()
        .unwrap()
        .to_string();
    let block =
        seal_block(&endpoint, "").replace(&format!("\"{ALIAS}\""), &format!("\"{signing}\""));
    let path = write(dir.path(), &block);
    let report = diagnose(&path, "seal", &[]).code(1).json();
    assert_check(
        &report,
        "key",
        "failure",
        "its spec is ECC_NIST_P256 (the seal needs SYMMETRIC_DEFAULT), its usage is SIGN_VERIFY (the seal needs ENCRYPT_DECRYPT)",
    );

    // A key ARN of us-east-1 with the seal in eu-west-1.
    let other = kms.moto.create_key();
    let block = seal_block(&endpoint, "")
        .replace(&format!("\"{ALIAS}\""), &format!("\"{other}\""))
        .replace("\"us-east-1\"", "\"eu-west-1\"");
    let path = write(dir.path(), &block);
    let report = diagnose(&path, "seal", &[]).code(1).json();
    assert_check(
        &report,
        "key",
        "failure",
        "is in region us-east-1, but the seal's region is eu-west-1",
    );
}

#[test]
fn every_seal_of_several_is_checked_against_its_envelope() {
    let kms = kms();
    let dir = tempdir();
    let seals = [
        named_seal("tokyo", 1, &kms, ""),
        named_seal("osaka", 2, &kms, ""),
    ];
    let mut daemon = Daemon::start(dir.path(), &config(dir.path(), &multiseal(&seals)));
    init_recovery(&daemon);
    daemon.stop();
    // A third seal, added to the config since: not wrapped yet.
    let kyoto = kms.moto.create_key();
    let added =
        named_seal("kyoto", 3, &kms, "").replace(&format!("\"{ALIAS}\""), &format!("\"{kyoto}\""));
    let path = write(
        dir.path(),
        &multiseal(&[seals[0].clone(), seals[1].clone(), added]),
    );
    let report = diagnose(&path, "seal", &[]).ok().json();
    for seal in ["awskms \"tokyo\"", "awskms \"osaka\""] {
        assert_finding(
            &report,
            &["seal", seal, "stored root key"],
            "success",
            &format!("the stored root key is wrapped by this key ({})", kms.key),
        );
        assert_finding(
            &report,
            &["seal", seal, "encrypt and decrypt"],
            "success",
            "with the encryption context's purpose, cluster_id, seal",
        );
    }
    assert_finding(
        &report,
        &["seal", "awskms \"kyoto\"", "stored root key"],
        "warning",
        "the store holds no envelope of the root key for seal \"kyoto\" yet",
    );
}

#[test]
fn a_slow_round_trip_warns() {
    let kms = kms();
    let dir = tempdir();
    let path = write(dir.path(), &seal_block(&kms.proxy.endpoint(), ""));
    kms.proxy
        .fault(Some("Encrypt"), Fault::Delay(Duration::from_millis(600)));
    let report = diagnose(&path, "seal", &[]).ok().json();
    assert_eq!(report["status"], "warning");
    assert_check(&report, "latency", "warning", "(over 500 ms)");
}

#[test]
fn shamir_is_one_line() {
    let dir = tempdir();
    let path = write(dir.path(), "");
    let report = diagnose(&path, "seal", &[]).ok().json();
    assert_finding(
        &report,
        &["seal", "shamir"],
        "success",
        "unseal keys are entered by operators",
    );
}
