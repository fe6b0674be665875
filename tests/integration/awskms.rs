//! The `awskms` seal against a real KMS implementation (moto), through the
//! fault-injecting proxy: init with recovery keys, auto-unseal on every
//! restart, KMS outages and key states, rewrap, and recovery-key unseal.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::support::cli::{init, status};
use crate::support::daemon::{Daemon, config, tempdir};
use crate::support::kms::{
    ALIAS, SECRET_KEY, SOON, init_recovery, kms, seal_block, start_daemon, wait_unsealed,
};
use crate::support::quorum::{enter, forms, fresh_otp, start as start_operation};
use strongroom_test_support::kms::{Fault, KmsProxy, Moto, key_id};
use strongroom_test_support::{PortHold, eventually};

fn auto_unseal(daemon: &Daemon) -> Value {
    status(daemon)["auto_unseal"].clone()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn init_then_every_restart_unseals_with_one_decrypt() {
    let kms = kms();
    let dir = tempdir();
    let mut daemon = start_daemon(dir.path(), &kms.proxy.endpoint(), "");
    let before = status(&daemon);
    assert_eq!(
        (
            &before["type"],
            &before["initialized"],
            &before["recovery_seal"]
        ),
        (&json!("awskms"), &json!(false), &json!(true))
    );
    assert_eq!(before["auto_unseal"]["state"], "idle");

    daemon
        .cli()
        .run(&["init", "--key-shares", "3"])
        .code(1)
        .error_says("has no unseal keys: use --recovery-shares and --recovery-threshold");
    assert!(kms.proxy.requests().is_empty(), "a refused init called KMS");

    let init = init_recovery(&daemon);
    assert_eq!(init.recovery_hex.len(), 5);
    let mut calls = kms.proxy.requests();
    calls.sort();
    assert_eq!(
        calls,
        ["Decrypt", "Encrypt", "Encrypt"],
        "KMS calls of init"
    );

    let after = status(&daemon);
    assert_eq!(
        after["sealed"], false,
        "init leaves an awskms daemon unsealed"
    );
    assert_eq!((&after["t"], &after["n"]), (&json!(3), &json!(5)));
    assert_eq!(after["recovery_seal_type"], "shamir");
    assert_eq!(after["kms_key_arn"], kms.key.as_str());
    assert_eq!(after["auto_unseal"]["state"], "unsealed");
    daemon
        .cli()
        .token(&init.root_token)
        .run(&["kv", "put", "app/db", "password=hunter2"])
        .ok();

    for restart in 0..20 {
        if restart > 0 {
            // The previous start's key check comes after unsealed; let it land.
            eventually("the post-unseal key check", SOON, || {
                kms.proxy.requests().iter().any(|c| c == "DescribeKey")
            });
        }
        kms.proxy.clear_requests();
        daemon.restart();
        let unsealed = wait_unsealed(&daemon);
        assert_eq!(unsealed["auto_unseal"]["attempts"], 1, "restart {restart}");
        let calls = kms.proxy.requests();
        assert_eq!(
            calls.first().map(String::as_str),
            Some("Decrypt"),
            "restart {restart}: {calls:?}"
        );
        assert!(
            calls[1..].iter().all(|c| c == "DescribeKey"),
            "restart {restart}: only the post-unseal key check may follow: {calls:?}"
        );
    }
    let out = daemon
        .cli()
        .token(&init.root_token)
        .run(&["kv", "get", "app/db", "--format", "json"])
        .ok()
        .json();
    assert_eq!(out["data"]["data"]["password"], "hunter2");
    assert!(
        daemon
            .stderr
            .text()
            .contains("\"message\":\"seal: awskms\""),
        "the effective KMS settings are logged"
    );
}

#[test]
fn a_kms_outage_at_start_keeps_the_daemon_up_until_kms_returns() {
    let moto = Moto::start();
    let key = moto.create_key();
    moto.alias(ALIAS, &key);
    // The port stays this test's while KMS is away: connections are refused.
    let hold = PortHold::new();
    let port = hold.port;
    let proxy = KmsProxy::start_on(&moto.addr, &hold);
    let dir = tempdir();
    let mut daemon = start_daemon(dir.path(), &proxy.endpoint(), "");
    init_recovery(&daemon);
    drop(proxy);

    daemon.restart();
    eventually("two failed attempts", SOON, || {
        auto_unseal(&daemon)["attempts"].as_u64().unwrap_or(0) >= 2
    });
    let sealed = status(&daemon);
    assert_eq!(sealed["sealed"], true);
    assert_eq!(sealed["auto_unseal"]["state"], "in_progress");
    let error = sealed["auto_unseal"]["last_error"].as_str().unwrap();
    assert!(
        error.contains(&format!("KMS at http://127.0.0.1:{port} is unreachable")),
        "{error}"
    );
    assert!(
        sealed["auto_unseal"]["next_attempt_unix_ms"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(
        daemon.wait_exit(Duration::ZERO).is_none(),
        "the daemon exited"
    );

    // KMS comes back on the same address: the daemon unseals by itself at
    // its next attempt, with one Decrypt (the wait is bounded by the
    // pending backoff, whatever it is, plus SOON).
    let proxy = KmsProxy::start_on(&moto.addr, &hold);
    let next = auto_unseal(&daemon)["next_attempt_unix_ms"]
        .as_u64()
        .unwrap();
    let backoff = Duration::from_millis(next.saturating_sub(now_ms()));
    eventually("unsealed after KMS returned", backoff + SOON, || {
        status(&daemon)["sealed"] == false
    });
    assert_eq!(auto_unseal(&daemon)["last_error"], "");
    let requests = proxy.requests();
    assert_eq!(requests.first().map(String::as_str), Some("Decrypt"));
    assert_eq!(
        requests.iter().filter(|r| *r == "Decrypt").count(),
        1,
        "{requests:?}"
    );
}

#[test]
fn a_disabled_or_deleted_key_is_reported_and_unseals_once_usable() {
    let kms = kms();
    let dir = tempdir();
    let mut daemon = start_daemon(dir.path(), &kms.proxy.endpoint(), "");
    init_recovery(&daemon);
    let key = kms.key.as_str();

    kms.moto.call("DisableKey", json!({"KeyId": key_id(key)}));
    kms.proxy.disable(key);
    daemon.restart();
    let expected = format!("KMS key {key} is disabled");
    eventually("the disabled key in Status", SOON, || {
        auto_unseal(&daemon)["last_error"] == expected.as_str()
    });
    assert_eq!(status(&daemon)["sealed"], true);
    kms.moto.call("EnableKey", json!({"KeyId": key_id(key)}));
    kms.proxy.enable(key);
    wait_unsealed(&daemon);

    kms.moto.call(
        "ScheduleKeyDeletion",
        json!({"KeyId": key_id(key), "PendingWindowInDays": 7}),
    );
    kms.proxy.pending_deletion(key);
    daemon.restart();
    let expected = format!("KMS key {key} is pending deletion");
    eventually("the pending deletion in Status", SOON, || {
        auto_unseal(&daemon)["last_error"] == expected.as_str()
    });
    kms.moto
        .call("CancelKeyDeletion", json!({"KeyId": key_id(key)}));
    kms.moto.call("EnableKey", json!({"KeyId": key_id(key)}));
    kms.proxy.enable(key);
    wait_unsealed(&daemon);
}

#[test]
fn the_health_check_warns_while_still_unsealed() {
    let kms = kms();
    let dir = tempdir();
    let daemon = start_daemon(
        dir.path(),
        &kms.proxy.endpoint(),
        "health_check_interval = \"1s\"",
    );
    init_recovery(&daemon);
    let key = kms.key.as_str();
    kms.moto.call(
        "ScheduleKeyDeletion",
        json!({"KeyId": key_id(key), "PendingWindowInDays": 7}),
    );
    eventually("a warning in Status", SOON, || {
        status(&daemon)["warnings"].as_array().is_some_and(|w| {
            w.iter()
                .any(|w| w.as_str().unwrap().contains("is pending deletion"))
        })
    });
    assert_eq!(status(&daemon)["sealed"], false);
    assert!(
        daemon.stderr.events().iter().any(|e| e["level"] == "ERROR"
            && e["message"]
                .as_str()
                .unwrap()
                .contains("is pending deletion")),
        "the warning is logged loudly"
    );
    kms.moto
        .call("CancelKeyDeletion", json!({"KeyId": key_id(key)}));
    kms.moto.call("EnableKey", json!({"KeyId": key_id(key)}));
    eventually("the warning cleared", SOON, || {
        status(&daemon).get("warnings").is_none()
    });
}

#[test]
fn a_moved_alias_is_rewrapped_and_the_old_key_is_not_needed_after() {
    let kms = kms();
    let dir = tempdir();
    let mut daemon = start_daemon(dir.path(), &kms.proxy.endpoint(), "");
    let init = init_recovery(&daemon);
    let old = kms.key.clone();
    let new = kms.moto.create_key();
    kms.moto.alias(ALIAS, &new);

    daemon.restart();
    wait_unsealed(&daemon);
    eventually("the rewrap under the new key", SOON, || {
        status(&daemon)["kms_key_arn"] == new.as_str()
    });
    assert!(
        daemon.stderr.events().iter().any(|e| e["message"]
            == "rewrapped the root key and recovery key under the configured KMS key"
            && e["from"] == old.as_str()
            && e["to"] == new.as_str()),
        "the rewrap is logged"
    );

    // The old key can go: the next start needs only the new one, and so
    // do the recovery keys.
    kms.moto.call("DisableKey", json!({"KeyId": key_id(&old)}));
    kms.proxy.disable(&old);
    kms.proxy.clear_requests();
    daemon.restart();
    wait_unsealed(&daemon);
    daemon.cli().token(&init.root_token).run(&["seal"]).ok();
    for key in &init.recovery_hex[..3] {
        daemon.cli().run(&["unseal", key]).ok();
    }
    assert_eq!(status(&daemon)["sealed"], false);
}

#[test]
fn strongroom_awskms_key_id_overrides_the_block_and_moves_the_store_to_that_key() {
    let kms = kms();
    let dir = tempdir();
    let mut daemon = start_daemon(dir.path(), &kms.proxy.endpoint(), "");
    init_recovery(&daemon);
    daemon.stop();

    let new = kms.moto.create_key();
    let text = std::fs::read_to_string(dir.path().join("strongroom.hcl")).unwrap();
    let mut daemon = Daemon::start_with(dir.path(), &text, &[("STRONGROOM_AWSKMS_KEY_ID", &new)]);
    let settings = daemon
        .stderr
        .events()
        .into_iter()
        .find(|e| e["message"] == "seal: awskms")
        .expect("the seal settings are logged");
    assert_eq!(settings["kms_key_id"], new.as_str());
    assert_eq!(
        settings["kms_key_id_source"],
        "environment variable STRONGROOM_AWSKMS_KEY_ID"
    );
    assert_eq!(settings["region_source"], "config file line 19");
    assert!(
        settings["endpoint"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    wait_unsealed(&daemon);
    eventually(
        "the rewrap under the key from the environment",
        SOON,
        || status(&daemon)["kms_key_arn"] == new.as_str(),
    );
    // The key in the block is no longer needed.
    kms.proxy.disable(&kms.key);
    daemon.restart();
    wait_unsealed(&daemon);
}

#[test]
fn a_decrypt_answer_naming_another_key_is_refused_without_a_hot_loop() {
    let kms = kms();
    let dir = tempdir();
    let mut daemon = start_daemon(dir.path(), &kms.proxy.endpoint(), "");
    init_recovery(&daemon);
    let other = kms.moto.create_key();
    kms.proxy.rewrite_decrypt_key_id(Some(&other));
    kms.proxy.clear_requests();
    daemon.restart();
    eventually("the refusal in Status", SOON, || {
        auto_unseal(&daemon)["state"] == "failed"
    });
    let auto = auto_unseal(&daemon);
    let error = auto["last_error"].as_str().unwrap();
    assert!(error.contains(&format!("with key {other}")), "{error}");
    assert!(error.contains("the blob is refused"), "{error}");
    let next_in = auto["next_attempt_unix_ms"].as_u64().unwrap() - now_ms();
    assert!(
        next_in > 60_000,
        "a refused blob is retried after {next_in} ms"
    );
    // No hot loop: the next attempt is scheduled a minute away (above), and
    // the one attempt made is the one KMS saw.
    assert_eq!(auto_unseal(&daemon)["attempts"], 1);
    let decrypts = kms.proxy.requests();
    assert_eq!(
        decrypts.iter().filter(|r| *r == "Decrypt").count(),
        1,
        "one attempt: {decrypts:?}"
    );
    assert_eq!(status(&daemon)["sealed"], true);
}

#[test]
fn init_that_kms_refuses_writes_nothing_and_can_be_run_again() {
    let kms = kms();
    let dir = tempdir();
    let mut daemon = start_daemon(dir.path(), &kms.proxy.endpoint(), "");
    kms.proxy
        .fault(Some("Encrypt"), Fault::access_denied("Encrypt"));
    daemon
        .cli()
        .run(&["init"])
        .code(1)
        .error_says("KMS denied Encrypt on key alias/strongroom-unseal: User: arn:aws:iam::123456789012:user/strongroom is not authorized to perform: kms:Encrypt");
    kms.proxy.clear_fault();
    kms.proxy.disable(&kms.key);
    daemon
        .cli()
        .run(&["init"])
        .code(1)
        .error_says("is disabled");
    kms.proxy.enable(&kms.key);

    // Nothing was written: a restart still finds an uninitialized store.
    daemon.restart();
    assert_eq!(status(&daemon)["initialized"], false);
    init_recovery(&daemon);
    assert_eq!(status(&daemon)["sealed"], false);
}

#[test]
fn after_seal_only_a_quorum_of_recovery_keys_unseals_and_no_secret_is_logged() {
    let kms = kms();
    let dir = tempdir();
    let text = config(
        dir.path(),
        &format!(
            "log_level = \"trace\"\n{}",
            seal_block(&kms.proxy.endpoint(), "")
        ),
    );
    let daemon = Daemon::start(dir.path(), &text);
    let init = init_recovery(&daemon);
    daemon.cli().run(&["seal"]).code(1);
    daemon.cli().token(&init.root_token).run(&["seal"]).ok();
    // The daemon says it stopped auto-unsealing; the proxy's log then shows
    // that no KMS call came until the recovery keys' quorum below.
    kms.proxy.clear_requests();
    let sealed = status(&daemon);
    assert_eq!(sealed["sealed"], true, "auto-unseal undid an operator seal");
    assert_eq!(sealed["auto_unseal"]["state"], "stopped");

    daemon
        .cli()
        .run(&["unseal", "not-a-key!"])
        .code(1)
        .error_says("the recovery key is neither hex nor base64");
    let foreign = hex::encode([7u8; 33]);
    daemon
        .cli()
        .run(&["unseal", &foreign])
        .code(1)
        .error_says("this recovery key was never issued for this store");
    daemon.cli().run(&["unseal", &init.recovery_hex[0]]).ok();
    let again = daemon
        .cli()
        .run(&["unseal", &init.recovery_b64[0], "--format", "json"])
        .ok()
        .json();
    assert_eq!(again["progress"], 1, "a duplicate does not count");
    daemon.cli().run(&["unseal", &foreign]).code(1);
    assert_eq!(
        status(&daemon)["progress"],
        1,
        "a refused key keeps progress"
    );
    assert_eq!(
        kms.proxy.requests(),
        Vec::<String>::new(),
        "a KMS call while sealed by an operator, before the quorum"
    );
    assert_eq!(status(&daemon)["sealed"], true);
    daemon.cli().run(&["unseal", &init.recovery_hex[3]]).ok();
    daemon
        .cli()
        .run_stdin(&["unseal"], &init.recovery_b64[4])
        .ok();
    let unsealed = status(&daemon);
    assert_eq!(unsealed["sealed"], false);
    assert_eq!(unsealed["auto_unseal"]["state"], "unsealed");
    let calls = kms.proxy.requests();
    assert_eq!(
        calls[..2],
        ["Decrypt", "Decrypt"],
        "recovery key check, then the root key"
    );
    assert!(
        calls[2..].iter().all(|c| c == "DescribeKey"),
        "only the post-unseal key check may follow: {calls:?}"
    );
    eventually("the key check after a recovery unseal", SOON, || {
        kms.proxy.requests().iter().any(|c| c == "DescribeKey")
    });

    let log = daemon.stderr.text() + &daemon.stdout.text();
    assert!(
        log.contains("aws_smithy_runtime"),
        "the AWS SDK's own trace lines are part of what is searched"
    );
    for key in &init.recovery_hex {
        for form in forms(key) {
            assert!(!log.contains(&form), "a recovery key reached the log");
        }
    }
    assert!(
        !log.contains(&init.root_token),
        "the root token reached the log"
    );
    assert!(
        !log.contains(&init.root_token[3..]),
        "the root token reached the log"
    );
    assert!(
        !log.contains(SECRET_KEY),
        "the seal block's AWS secret key reached the log"
    );
    assert!(
        !log.contains("\"Plaintext\""),
        "a KMS request or response body with a plaintext data key reached the log"
    );
}

#[test]
fn throttling_server_errors_and_dropped_connections_are_retried() {
    let kms = kms();
    let dir = tempdir();
    let mut daemon = start_daemon(dir.path(), &kms.proxy.endpoint(), "");
    init_recovery(&daemon);
    kms.proxy.fault(Some("Decrypt"), Fault::throttling());
    daemon.restart();
    eventually("throttling in Status", SOON, || {
        auto_unseal(&daemon)["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("KMS is throttling Decrypt requests: Rate exceeded"))
    });
    kms.proxy.fault(Some("Decrypt"), Fault::server_error());
    eventually("the 5xx in Status", SOON, || {
        auto_unseal(&daemon)["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("HTTP 500"))
    });
    kms.proxy.fault(Some("Decrypt"), Fault::Drop);
    eventually("the dropped connection in Status", SOON, || {
        auto_unseal(&daemon)["last_error"]
            .as_str()
            .is_some_and(|e| e.starts_with("KMS at http://127.0.0.1:"))
    });
    assert_eq!(status(&daemon)["sealed"], true);
    kms.proxy
        .fault(Some("Decrypt"), Fault::Delay(Duration::from_millis(300)));
    let unsealed = wait_unsealed(&daemon);
    assert!(unsealed["auto_unseal"]["attempts"].as_u64().unwrap() >= 3);
}

#[test]
fn a_config_that_cannot_be_a_seal_migration_is_refused_at_start() {
    let dir = tempdir();
    let mut daemon = Daemon::start(dir.path(), &config(dir.path(), ""));
    init(&daemon, &[]);
    daemon.stop();

    // A Shamir store with a disabled awskms block: nothing to migrate from.
    let path = dir.path().join("strongroom.hcl");
    let blocks = format!(
        "{}{}",
        seal_block("http://127.0.0.1:9", ""),
        seal_block("http://127.0.0.1:9", "disabled = true")
    );
    std::fs::write(&path, config(dir.path(), &blocks)).unwrap();
    let mut refused = Daemon::spawn(&path, &[]);
    let exit = refused
        .wait_exit(SOON)
        .expect("strongroom exits on a seal mismatch");
    assert_eq!(exit.code(), Some(1));
    refused.stderr.wait_for("the refusal", |l| {
        l.contains("the storage uses Shamir unseal keys, so the seal block with disabled = true has nothing to migrate from")
    });
}

#[test]
fn a_snapshot_restored_into_a_fresh_directory_unseals_itself_with_the_kms_key() {
    let kms = kms();
    let dir = tempdir();
    let daemon = start_daemon(dir.path(), &kms.proxy.endpoint(), "");
    let init = init_recovery(&daemon);
    let mut cli = daemon.cli();
    cli.token(&init.root_token);
    cli.run(&["kv", "put", "app/db", "password=hunter2"]).ok();
    let file = dir.path().join("kms.snap");
    let file = file.to_str().unwrap();
    daemon
        .cli()
        .token(&init.root_token)
        .run(&["snapshot", "save", file])
        .ok();

    // A Shamir daemon refuses it: the snapshot needs the KMS key.
    let shamir_dir = tempdir();
    let shamir = Daemon::start(shamir_dir.path(), &config(shamir_dir.path(), ""));
    shamir
        .cli()
        .run(&["snapshot", "restore", file])
        .code(1)
        .error_says(
            "the snapshot was taken under the awskms seal, but this daemon uses the shamir seal",
        );
    assert_eq!(status(&shamir)["initialized"], false);

    let fresh_dir = tempdir();
    let fresh = start_daemon(fresh_dir.path(), &kms.proxy.endpoint(), "");
    fresh.cli().run(&["snapshot", "restore", file]).ok();
    let unsealed = wait_unsealed(&fresh);
    assert_eq!(unsealed["kms_key_arn"], kms.key.as_str());
    let out = fresh
        .cli()
        .token(&init.root_token)
        .run(&["kv", "get", "app/db", "--format", "json"])
        .ok();
    assert_eq!(out.json()["data"]["data"]["password"], "hunter2");

    // Restoring over a running awskms daemon seals it, then KMS unseals it.
    fresh
        .cli()
        .token(&init.root_token)
        .run(&["snapshot", "restore", file])
        .ok();
    wait_unsealed(&fresh);
}

#[test]
fn recovery_keys_authorize_rekey_rotate_root_and_generate_root() {
    let kms = kms();
    let dir = tempdir();
    let mut daemon = start_daemon(dir.path(), &kms.proxy.endpoint(), "");
    let init = init_recovery(&daemon);
    daemon
        .env
        .insert("STRONGROOM_TOKEN".into(), init.root_token.clone());
    daemon
        .cli()
        .run(&["kv", "put", "app/db", "password=hunter2"])
        .ok();

    daemon
        .cli()
        .run(&["rekey", "--init", "--target", "barrier"])
        .code(1)
        .error_says("has no unseal keys: rekey the recovery keys with --target recovery");
    let (nonce, started) = start_operation(
        &daemon,
        "rekey",
        &["--key-shares", "3", "--key-threshold", "2"],
    );
    assert_eq!(started["target"], "recovery");
    assert_eq!(started["required"], 3);
    kms.proxy.clear_requests();
    let done = enter(
        &daemon,
        "rekey",
        &nonce,
        &[
            &init.recovery_hex[0],
            &init.recovery_hex[1],
            &init.recovery_hex[2],
        ],
    );
    let new: Vec<String> = done["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(new.len(), 3);
    assert_eq!(
        kms.proxy.requests(),
        ["Decrypt", "Encrypt", "Decrypt"],
        "check the quorum against the stored recovery key, wrap the new one, check it opens"
    );
    assert_eq!(
        (status(&daemon)["t"].clone(), status(&daemon)["n"].clone()),
        (json!(2), json!(3))
    );

    // The old recovery keys are refused; the new ones rotate the root key.
    let (nonce, _) = start_operation(&daemon, "rotate-root", &[]);
    daemon
        .cli()
        .run(&["rotate-root", "--nonce", &nonce, &init.recovery_hex[0]])
        .code(1)
        .error_says("this recovery key was never issued for this store");
    let done = enter(&daemon, "rotate-root", &nonce, &[&new[0], &new[2]]);
    assert_eq!(done["complete"], true);

    // A keyring rotation under awskms: token only, no KMS call.
    kms.proxy.clear_requests();
    let rotated = daemon
        .cli()
        .run(&["rotate", "--format", "json"])
        .ok()
        .json();
    assert_eq!(rotated["term"], 2);
    assert!(
        kms.proxy.requests().is_empty(),
        "a keyring rotation called KMS"
    );

    // A restart unseals with KMS alone, under the new root key.
    daemon.restart();
    wait_unsealed(&daemon);
    let key_status = daemon
        .cli()
        .run(&["key-status", "--format", "json"])
        .ok()
        .json();
    assert_eq!(key_status["term"], 2);
    let out = daemon
        .cli()
        .run(&["kv", "get", "app/db", "--format", "json"])
        .ok();
    assert_eq!(out.json()["data"]["data"]["password"], "hunter2");

    let otp = fresh_otp(&daemon);
    let (nonce, _) = start_operation(&daemon, "generate-root", &["--otp", &otp]);
    let done = enter(&daemon, "generate-root", &nonce, &[&new[1], &new[2]]);
    let token = daemon
        .cli()
        .run(&[
            "generate-root",
            "--decode",
            done["encoded_token"].as_str().unwrap(),
            "--otp",
            &otp,
        ])
        .ok()
        .stdout;
    daemon.cli().token(token.trim()).run(&["kv", "list"]).ok();
}
