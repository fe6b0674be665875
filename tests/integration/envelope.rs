//! Named encryption keys (`strongroom.v1.Keys`), through the CLI and gRPC as
//! a sidecar would use them: encrypt, rotate, minimum decryption version,
//! rewrap, data keys, batches, contexts, deletion and capabilities.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use strongroom::proto::{self, keys_client::KeysClient};
use tonic::Code;

use crate::support::daemon::{tempdir, unsealed};
use crate::support::grpc::{channel, with_token};
use crate::support::store::{HeldKeys, text_forms};

#[test]
fn encrypt_rotate_decrypt_raise_the_minimum_and_rewrap() {
    let dir = tempdir();
    let (mut daemon, init) = unsealed(dir.path(), "");
    daemon.cli().run(&["keys", "create", "orders"]).ok();
    let old = daemon
        .cli()
        .run_stdin(
            &["keys", "encrypt", "orders", "--context", "tenant=7"],
            "card 4242",
        )
        .ok()
        .stdout
        .trim()
        .to_string();
    assert!(old.starts_with("sr:v1:"), "{old}");

    let rotated = daemon.cli().run(&["keys", "rotate", "orders"]).ok();
    assert!(rotated.stdout.contains("version 2"), "{}", rotated.stdout);
    let new = daemon
        .cli()
        .run_stdin(
            &["keys", "encrypt", "orders", "--context", "tenant=7"],
            "card 4343",
        )
        .ok()
        .stdout
        .trim()
        .to_string();
    assert!(new.starts_with("sr:v2:"), "{new}");

    // The old ciphertext still decrypts, with its context only.
    let plain = daemon
        .cli()
        .run(&["keys", "decrypt", "orders", &old, "--context", "tenant=7"])
        .ok()
        .stdout;
    assert_eq!(plain, "card 4242");
    daemon
        .cli()
        .run(&["keys", "decrypt", "orders", &old, "--context", "tenant=8"])
        .code(1)
        .error_says("the context differs from the one it was encrypted with");
    daemon
        .cli()
        .run(&["keys", "decrypt", "orders", &old])
        .code(1)
        .error_says("the context differs");

    // Raising the minimum refuses version 1, with a sentence that says why.
    daemon
        .cli()
        .run(&["keys", "config", "orders", "--min-decryption-version", "2"])
        .ok();
    daemon
        .cli()
        .run(&["keys", "decrypt", "orders", &old, "--context", "tenant=7"])
        .code(1)
        .error_says("version 1 of key \"orders\" is below its min_decryption_version 2, so it no longer decrypts");
    daemon
        .cli()
        .run(&["keys", "config", "orders", "--min-decryption-version", "3"])
        .code(1)
        .error_says("min_decryption_version must be between 1 and the latest version 2, got 3");

    // Lowered again, the old ciphertext rewraps to version 2 without the
    // plaintext leaving, and then survives the minimum going back up.
    daemon
        .cli()
        .run(&["keys", "config", "orders", "--min-decryption-version", "1"])
        .ok();
    let rewrapped = daemon
        .cli()
        .run(&["keys", "rewrap", "orders", &old, "--context", "tenant=7"])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert!(rewrapped.starts_with("sr:v2:"), "{rewrapped}");
    assert!(!rewrapped.contains("4242"));
    daemon
        .cli()
        .run(&["keys", "config", "orders", "--min-decryption-version", "2"])
        .ok();
    let plain = daemon
        .cli()
        .run(&[
            "keys",
            "decrypt",
            "orders",
            &rewrapped,
            "--context",
            "tenant=7",
        ])
        .ok()
        .stdout;
    assert_eq!(plain, "card 4242");

    let info = daemon
        .cli()
        .run(&["keys", "read", "orders", "--format", "json"])
        .ok()
        .json();
    assert_eq!(info["latest_version"], 2);
    assert_eq!(info["min_decryption_version"], 2);
    assert_eq!(info["keys"].as_object().unwrap().len(), 2);
    assert!(info.get("key").is_none(), "{info}");

    // Tampering and malformed input are refused with one sentence each.
    // One base64 digit in the body, away from the padding, changed.
    let at = rewrapped.len() - 10;
    let flipped = if &rewrapped[at..=at] == "A" { "B" } else { "A" };
    let tampered = format!("{}{flipped}{}", &rewrapped[..at], &rewrapped[at + 1..]);
    daemon
        .cli()
        .run(&[
            "keys",
            "decrypt",
            "orders",
            &tampered,
            "--context",
            "tenant=7",
        ])
        .code(1)
        .error_says("does not decrypt under key \"orders\"");
    daemon
        .cli()
        .run(&["keys", "decrypt", "orders", "vault:v1:abc"])
        .code(1)
        .error_says("expected sr:v<N>:<base64>");
    daemon
        .cli()
        .run(&[
            "keys",
            "decrypt",
            "orders",
            &rewrapped.replacen("sr:v2:", "sr:v9:", 1),
        ])
        .code(1)
        .error_says("names version 9 of key \"orders\", which has versions 1 to 2");

    // ReadKey showed no material: the stored key's two versions, read from
    // the stopped store, appear in no form in its answer.
    assert!(daemon.stop().success());
    let shares = [init.keys_hex[0].as_str(), init.keys_hex[1].as_str()];
    let held = HeldKeys::of_shamir_store(&dir.path().join("data"), &shares);
    let material = held.named_key("orders");
    assert_eq!(material.len(), 2);
    let answer = info.to_string();
    for (version, key) in material.iter().enumerate() {
        for form in text_forms(key) {
            assert!(
                !answer.contains(&form),
                "ReadKey shows version {}'s material: {answer}",
                version + 1
            );
        }
    }
}

#[test]
fn data_keys_unwrap_to_their_plaintext_and_batches_report_per_item() {
    let dir = tempdir();
    let (daemon, init) = unsealed(dir.path(), "");
    daemon.cli().run(&["keys", "create", "files"]).ok();
    let datakey = daemon
        .cli()
        .run(&[
            "keys",
            "datakey",
            "files",
            "--context",
            "f1",
            "--format",
            "json",
        ])
        .ok()
        .json();
    let plaintext = STANDARD
        .decode(datakey["plaintext"].as_str().unwrap())
        .unwrap();
    assert_eq!(plaintext.len(), 32);
    let unwrapped = daemon
        .cli()
        .run(&[
            "keys",
            "decrypt",
            "files",
            datakey["ciphertext"].as_str().unwrap(),
            "--context",
            "f1",
            "--format",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(
        STANDARD
            .decode(unwrapped["plaintext"].as_str().unwrap())
            .unwrap(),
        plaintext
    );
    daemon
        .cli()
        .run(&["keys", "datakey", "files", "--bits", "100"])
        .code(1)
        .error_says("a data key has 128, 256 or 512 bits, not 100");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut keys = KeysClient::new(channel(&daemon.addr).await);
        let items = (0..3)
            .map(|i| proto::EncryptItem {
                plaintext: format!("row {i}").into_bytes(),
                context: b"batch".to_vec(),
            })
            .collect();
        let request = proto::BatchEncryptRequest {
            name: "files".into(),
            items,
        };
        let encrypted = keys
            .batch_encrypt(with_token(request, &init.root_token))
            .await
            .unwrap()
            .into_inner()
            .results;
        assert_eq!(encrypted.len(), 3);
        assert!(
            encrypted
                .iter()
                .all(|r| r.error.is_empty() && r.key_version == 1)
        );

        let mut items: Vec<proto::DecryptItem> = encrypted
            .iter()
            .map(|r| proto::DecryptItem {
                ciphertext: r.ciphertext.clone(),
                context: b"batch".to_vec(),
            })
            .collect();
        items[1].context = b"other".to_vec();
        items.push(proto::DecryptItem {
            ciphertext: "garbage".into(),
            context: Vec::new(),
        });
        let request = proto::BatchDecryptRequest {
            name: "files".into(),
            items,
        };
        let decrypted = keys
            .batch_decrypt(with_token(request, &init.root_token))
            .await
            .unwrap()
            .into_inner()
            .results;
        assert_eq!(decrypted.len(), 4);
        assert_eq!(decrypted[0].plaintext, b"row 0");
        assert!(decrypted[0].error.is_empty());
        assert!(decrypted[1].plaintext.is_empty());
        assert!(
            decrypted[1].error.contains("context differs"),
            "{}",
            decrypted[1].error
        );
        assert_eq!(decrypted[2].plaintext, b"row 2");
        assert!(decrypted[3].error.contains("expected sr:v<N>:<base64>"));

        let request = proto::BatchEncryptRequest {
            name: "files".into(),
            items: vec![proto::EncryptItem::default(); 10_001],
        };
        let err = keys
            .batch_encrypt(with_token(request, &init.root_token))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(
            err.message(),
            "a batch has at most 10000 items, this one has 10001"
        );
    });
}

#[test]
fn keys_are_created_once_deleted_only_when_allowed_and_policies_apply() {
    let dir = tempdir();
    let (daemon, _) = unsealed(dir.path(), "");
    daemon.cli().run(&["keys", "create", "k1"]).ok();
    daemon
        .cli()
        .run(&["keys", "create", "k1"])
        .code(1)
        .error_says("a key named \"k1\" already exists");
    daemon
        .cli()
        .run(&["keys", "create", "bad name"])
        .code(1)
        .error_says("key name \"bad name\" is not valid");
    daemon
        .cli()
        .run(&["keys", "delete", "k1"])
        .code(1)
        .error_says("key \"k1\" does not allow deletion");

    // A sidecar that may only encrypt.
    daemon
        .cli()
        .run_stdin(
            &["policy", "write", "encrypt-only", "-"],
            r#"path "transit/encrypt/k1" { capabilities = ["update"] }"#,
        )
        .ok();
    let token = daemon
        .cli()
        .run(&[
            "token",
            "create",
            "--policy",
            "encrypt-only",
            "--format",
            "json",
        ])
        .ok()
        .json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let ciphertext = daemon
        .cli()
        .token(&token)
        .run_stdin(&["keys", "encrypt", "k1"], "x")
        .ok()
        .stdout
        .trim()
        .to_string();
    daemon
        .cli()
        .token(&token)
        .run(&["keys", "decrypt", "k1", &ciphertext])
        .code(1)
        .error_says("permission denied: transit/decrypt/k1 needs the update capability, which this token's policies (encrypt-only) do not grant");
    daemon
        .cli()
        .token(&token)
        .run(&["keys", "rotate", "k1"])
        .code(1)
        .error_says("transit/keys/k1/rotate needs the update capability");

    daemon
        .cli()
        .run(&["keys", "config", "k1", "--deletion-allowed", "true"])
        .ok();
    daemon.cli().run(&["keys", "delete", "k1"]).ok();
    daemon
        .cli()
        .run(&["keys", "read", "k1"])
        .code(1)
        .error_says("no key is named \"k1\"");
    let list = daemon
        .cli()
        .run(&["keys", "list", "--format", "json"])
        .ok()
        .json();
    assert_eq!(list, serde_json::json!([]));
}

#[test]
fn keys_survive_a_restart_and_a_keyring_rotation() {
    let dir = tempdir();
    let (mut daemon, init) = unsealed(dir.path(), "");
    daemon.cli().run(&["keys", "create", "k"]).ok();
    let ciphertext = daemon
        .cli()
        .run_stdin(&["keys", "encrypt", "k"], "kept")
        .ok()
        .stdout
        .trim()
        .to_string();
    daemon.cli().run(&["rotate"]).ok();
    daemon.restart();
    crate::support::cli::unseal(&daemon, &[&init.keys_hex[0], &init.keys_hex[1]]);
    let plain = daemon
        .cli()
        .run(&["keys", "decrypt", "k", &ciphertext])
        .ok()
        .stdout;
    assert_eq!(plain, "kept");
}
