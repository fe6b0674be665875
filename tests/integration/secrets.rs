//! Secrets never reach the log or the audit log, and never reach the disk
//! in the clear: what operators and clients send and receive (shares,
//! tokens, plaintexts, contexts, data keys), and every key the daemon holds
//! (the unseal key the shares combine into, the root key, the keyring's
//! keys, the audit salt, the named keys' material), read from the stopped
//! store through the library.

use nix::sys::signal::Signal;

use crate::support::cli::{init, status};
use crate::support::daemon::{Daemon, config, tempdir};
use crate::support::quorum::{enter, forms, fresh_otp, start};
use crate::support::store::{HeldKeys, text_forms};

#[test]
fn a_full_lifecycle_at_trace_level_logs_no_share_and_no_token() {
    let dir = tempdir();
    let audit_log = dir.path().join("audit.log");
    let extra = format!(
        "log_level = \"trace\"\naudit \"file\" {{ path = \"{}\" }}",
        audit_log.display()
    );
    let mut daemon = Daemon::start(dir.path(), &config(dir.path(), &extra));
    let keys = init(&daemon, &[]);
    let token = keys.root_token.clone();

    // Unseal with hex and base64, a duplicate, a typo, and a wrong-length key.
    daemon.cli().run(&["unseal", &keys.keys_hex[0]]).ok();
    daemon.cli().run(&["unseal", &keys.keys_b64[0]]).ok();
    let mut typo = keys.keys_hex[1].clone().into_bytes();
    typo[30] = if typo[30] == b'0' { b'1' } else { b'0' };
    let typo = String::from_utf8(typo).unwrap();
    daemon.cli().run(&["unseal", &typo]).code(1);
    let truncated = keys.keys_hex[1][..40].to_string();
    daemon.cli().run(&["unseal", &truncated]).code(1);
    daemon.cli().run_stdin(&["unseal"], &keys.keys_b64[1]).ok();
    daemon.cli().run(&["unseal", &keys.keys_hex[2]]).ok();
    assert_eq!(status(&daemon)["sealed"], false);

    let secret_value = "correct-horse-battery-staple-4711";
    daemon
        .cli()
        .token(&token)
        .run(&["kv", "put", "app/db", &format!("password={secret_value}")])
        .ok();
    daemon
        .cli()
        .token(&token)
        .run(&["kv", "get", "app/db"])
        .ok();
    // Tokens, named keys and their plaintexts.
    let child_token = daemon
        .cli()
        .token(&token)
        .run(&["token", "create", "--ttl", "1h", "--format", "json"])
        .ok()
        .json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    daemon
        .cli()
        .token(&child_token)
        .run(&["token", "lookup"])
        .ok();
    daemon
        .cli()
        .token(&token)
        .run(&["keys", "create", "cards"])
        .ok();
    let card = "card-number-4242-4242-4242-4242";
    let ciphertext = daemon
        .cli()
        .token(&token)
        .run_stdin(&["keys", "encrypt", "cards", "--context", "tenant-9"], card)
        .ok()
        .stdout
        .trim()
        .to_string();
    let decrypted = daemon
        .cli()
        .token(&token)
        .run(&[
            "keys",
            "decrypt",
            "cards",
            &ciphertext,
            "--context",
            "tenant-9",
        ])
        .ok()
        .stdout;
    assert_eq!(decrypted, card);
    let data_key = daemon
        .cli()
        .token(&token)
        .run(&["keys", "datakey", "cards", "--format", "json"])
        .ok()
        .json()["plaintext"]
        .as_str()
        .unwrap()
        .to_string();
    let kv_hash = daemon
        .cli()
        .token(&token)
        .run_stdin(&["audit-hash"], &format!("{secret_value}\n"))
        .ok()
        .stdout
        .trim()
        .to_string();
    assert!(kv_hash.starts_with("hmac-sha256:"), "{kv_hash}");
    // A token pasted where an accessor belongs is refused and not logged.
    daemon
        .cli()
        .token(&token)
        .run(&["token", "revoke-accessor", &child_token])
        .code(1)
        .error_says("that is a token, not its accessor");
    let unknown_token = "sr.UnknownUnknownUnknownUnknown1234";
    daemon
        .cli()
        .token(unknown_token)
        .run(&["kv", "get", "app/db"])
        .code(1)
        .error_says("the token is not valid");
    let wrong_token = "sr.WrongWrongWrongWrongWrongWrong1";
    daemon
        .cli()
        .token(wrong_token)
        .run(&["kv", "get", "app/db"])
        .code(1);
    daemon.cli().token(&token).run(&["seal"]).ok();
    daemon.signal(Signal::SIGHUP);
    daemon
        .stderr
        .wait_for("the reload", |l| l.contains("log level set"));
    // The keys held so far (the root key and unseal key change below).
    assert!(daemon.stop().success());
    let data = dir.path().join("data");
    let first_shares: Vec<&str> = keys.keys_hex[..3].iter().map(String::as_str).collect();
    let held_before = HeldKeys::of_shamir_store(&data, &first_shares);
    daemon.start_again();
    for key in [&keys.keys_b64[3], &keys.keys_hex[4], &keys.keys_b64[2]] {
        daemon.cli().run(&["unseal", key]).ok();
    }
    daemon
        .cli()
        .token(&token)
        .run(&["kv", "get", "app/db"])
        .ok();

    // The key lifecycle: a verified rekey (with a mistyped verification), a
    // root key rotation, a keyring rotation, generate-root and a snapshot.
    daemon.env.insert("STRONGROOM_TOKEN".into(), token.clone());
    let (nonce, _) = start(
        &daemon,
        "rekey",
        &["--verify", "--key-shares", "3", "--key-threshold", "2"],
    );
    let done = enter(
        &daemon,
        "rekey",
        &nonce,
        &[&keys.keys_hex[0], &keys.keys_b64[1], &keys.keys_hex[4]],
    );
    let verification = done["verification_nonce"].as_str().unwrap().to_string();
    let new_keys: Vec<String> = done["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let mut new_typo = new_keys[0].clone().into_bytes();
    new_typo[10] = if new_typo[10] == b'a' { b'b' } else { b'a' };
    let new_typo = String::from_utf8(new_typo).unwrap();
    daemon
        .cli()
        .run(&["rekey", "--verify", "--nonce", &verification, &new_typo])
        .code(1);
    for key in &new_keys[..2] {
        daemon
            .cli()
            .run(&["rekey", "--verify", "--nonce", &verification, key])
            .ok();
    }
    let (nonce, _) = start(&daemon, "rotate-root", &[]);
    enter(
        &daemon,
        "rotate-root",
        &nonce,
        &[&new_keys[2], &new_keys[1]],
    );
    daemon.cli().run(&["rotate"]).ok();
    let otp = fresh_otp(&daemon);
    let (nonce, _) = start(&daemon, "generate-root", &["--otp", &otp]);
    let generated = enter(
        &daemon,
        "generate-root",
        &nonce,
        &[&new_keys[0], &new_keys[2]],
    );
    let encoded = generated["encoded_token"].as_str().unwrap().to_string();
    let new_token = daemon
        .cli()
        .run(&["generate-root", "--decode", &encoded, "--otp", &otp])
        .ok()
        .stdout
        .trim()
        .to_string();
    let snapshot = dir.path().join("data").join("lifecycle.snap");
    daemon
        .cli()
        .token(&new_token)
        .run(&["snapshot", "save", snapshot.to_str().unwrap()])
        .ok();
    assert!(daemon.stop().success());
    let held_after = HeldKeys::of_shamir_store(&data, &[&new_keys[0], &new_keys[1]]);

    let log = format!("{}\n{}", daemon.stderr.text(), daemon.stdout.text());
    assert!(
        log.lines().count() > 50,
        "trace logging produced too little to be a meaningful check:\n{log}"
    );
    let mut secrets: Vec<(String, String)> = Vec::new();
    for (i, share) in keys.keys_hex.iter().enumerate() {
        for form in forms(share) {
            secrets.push((format!("unseal key {}", i + 1), form));
        }
    }
    for form in forms(&typo) {
        secrets.push(("mistyped unseal key".into(), form));
    }
    for form in forms(&truncated) {
        secrets.push(("truncated unseal key".into(), form));
    }
    secrets.push(("root token".into(), token.clone()));
    secrets.push(("root token body".into(), token["sr.".len()..].to_string()));
    secrets.push(("wrong token".into(), wrong_token.to_string()));
    secrets.push(("unknown token".into(), unknown_token.to_string()));
    secrets.push(("kv value".into(), secret_value.to_string()));
    for (i, share) in new_keys.iter().enumerate() {
        for form in forms(share) {
            secrets.push((format!("rekeyed unseal key {}", i + 1), form));
        }
    }
    for form in forms(&new_typo) {
        secrets.push(("mistyped new unseal key".into(), form));
    }
    secrets.push(("generated root token".into(), new_token.clone()));
    secrets.push((
        "generated root token body".into(),
        new_token["sr.".len()..].to_string(),
    ));
    secrets.push(("one-time pad".into(), otp.clone()));
    secrets.push(("child token".into(), child_token.clone()));
    secrets.push((
        "child token body".into(),
        child_token["sr.".len()..].to_string(),
    ));
    secrets.push(("keys plaintext".into(), card.to_string()));
    secrets.push(("data key".into(), data_key.clone()));
    let data_key_bytes =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &data_key).unwrap();
    secrets.push(("encryption context".into(), "tenant-9".into()));
    // Plaintexts and contexts travel base64-encoded inside gRPC and JSON.
    for (what, bytes) in [
        ("kv value", secret_value.as_bytes()),
        ("keys plaintext", card.as_bytes()),
        ("encryption context", b"tenant-9".as_slice()),
        ("data key", data_key_bytes.as_slice()),
    ] {
        for form in text_forms(bytes) {
            secrets.push((format!("{what} (encoded)"), form));
        }
    }
    // Every key the daemon held, before and after the rekey, the root key
    // rotation and the keyring rotation: both unseal keys, both root keys,
    // both keyring terms, the audit salt, the named key.
    let mut held: Vec<(String, Vec<u8>)> = Vec::new();
    for (when, keys) in [("first", &held_before), ("last", &held_after)] {
        for (what, bytes) in &keys.0 {
            held.push((format!("{what} ({when})"), bytes.clone()));
        }
    }
    let distinct = |name: &str| {
        let mut found: Vec<&Vec<u8>> = held
            .iter()
            .filter(|(what, _)| what.starts_with(name))
            .map(|(_, bytes)| bytes)
            .collect();
        found.sort();
        found.dedup();
        found.len()
    };
    assert_eq!(distinct("unseal key"), 2, "the rekey made a new unseal key");
    assert_eq!(distinct("root key"), 2, "rotate-root made a new root key");
    assert_eq!(
        distinct("keyring key"),
        2,
        "the rotation made a second term"
    );
    assert_eq!(distinct("audit salt"), 1, "one salt, kept across rotations");
    assert_eq!(distinct("keys/cards version"), 1);
    for (what, bytes) in &held {
        for form in text_forms(bytes) {
            secrets.push((what.clone(), form));
        }
    }
    secrets.push(("generate-root encoded token".into(), encoded.clone()));
    for (what, secret) in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "the log contains the {what}"
        );
    }
    // The accessor is not secret and is logged at init, so operators can find the token later.
    assert!(log.contains("root_token_accessor"));

    // The audit log: every call but Status, a request and a response line
    // each, with the fixed keys; no secret in any form, and the kv value
    // findable by its HMAC.
    let audit = std::fs::read_to_string(&audit_log).unwrap();
    for (what, secret) in &secrets {
        assert!(
            !audit.contains(secret.as_str()),
            "the audit log contains the {what}"
        );
    }
    let lines: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() > 60, "{} audit lines", lines.len());
    let keys_of = |line: &serde_json::Value| {
        let mut keys: Vec<String> = line.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    for line in &lines {
        assert_eq!(
            keys_of(line),
            [
                "accessor",
                "data",
                "error",
                "id",
                "identity",
                "operation",
                "path",
                "time",
                "type"
            ],
            "{line}"
        );
        assert_ne!(line["operation"], "sys.Status");
    }
    let ids = |kind: &str| {
        let mut ids: Vec<String> = lines
            .iter()
            .filter(|l| l["type"] == kind)
            .map(|l| l["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids("request"),
        ids("response"),
        "every request has its response"
    );
    let operations: std::collections::BTreeSet<&str> = lines
        .iter()
        .map(|l| l["operation"].as_str().unwrap())
        .collect();
    for expected in [
        "sys.Init",
        "sys.Unseal",
        "sys.Seal",
        "sys.RekeyUpdate",
        "sys.RotateRootUpdate",
        "sys.GenerateRootUpdate",
        "sys.Rotate",
        "sys.SnapshotSave",
        "kv.Put",
        "kv.Get",
        "keys.Encrypt",
        "keys.Decrypt",
        "keys.GenerateDataKey",
        "token.Create",
        "token.LookupSelf",
    ] {
        assert!(
            operations.contains(expected),
            "no {expected} in {operations:?}"
        );
    }
    let put = lines
        .iter()
        .find(|l| l["operation"] == "kv.Put" && l["type"] == "request")
        .unwrap();
    assert_eq!(put["data"]["data"]["password"], kv_hash.as_str(), "{put}");
    assert_eq!(put["path"], "secret/data/app/db");
    assert!(
        put["accessor"].as_str().is_some_and(|a| a.len() == 24),
        "{put}"
    );
    let refused = lines
        .iter()
        .find(|l| {
            l["type"] == "response"
                && l["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("the token is malformed"))
        })
        .expect("the wrong token's refusal is audited");
    assert_eq!(refused["operation"], "kv.Get");

    // On disk: neither the token, a share, nor the secret value in the clear.
    let mut disk = Vec::new();
    for entry in std::fs::read_dir(dir.path().join("data")).unwrap() {
        disk.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    for (what, secret) in &secrets {
        assert!(
            !disk.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the data directory contains the {what}"
        );
    }
    for share in keys.keys_hex.iter().chain(&new_keys) {
        let raw = hex::decode(share).unwrap();
        assert!(
            !disk.windows(raw.len()).any(|w| w == raw.as_slice()),
            "a raw share is on disk"
        );
    }
    // Nor any key the daemon holds, as raw bytes, in the store or the logs.
    let logs = format!("{log}\n{audit}");
    for (what, raw) in &held {
        assert!(
            !disk.windows(raw.len()).any(|w| w == raw.as_slice()),
            "the {what} is on disk in the clear"
        );
        assert!(
            !logs
                .as_bytes()
                .windows(raw.len())
                .any(|w| w == raw.as_slice()),
            "the {what} is in a log as raw bytes"
        );
    }
}
