//! Crash cases of one seal: Shamir and awskms init, rotations, rekey,
//! generate-root, snapshot restore, the seal migrations and the rewrap
//! after a moved alias.

use super::*;

#[test]
fn shamir_init() {
    let store = Store {
        template: tempdir(),
        extra: String::new(),
        keys: Vec::new(),
        token: String::new(),
        awskms: false,
        root_key: None,
    };
    // Init with Shamir makes no KMS call: its crash points are the commit's.
    crash_matrix(
        "init-commit",
        &store,
        |daemon, _| {
            let run = daemon.cli().run(&[
                "init",
                "--key-shares",
                "3",
                "--key-threshold",
                "2",
                "--format",
                "json",
            ]);
            let json: Value = serde_json::from_str(&run.stdout).unwrap_or(Value::Null);
            Seen {
                keys: printed_keys(&run, "unseal_keys_hex"),
                token: json["root_token"].as_str().unwrap_or_default().to_string(),
                root_key: None,
                ..Seen::default()
            }
        },
        |daemon, _, seen, side| match side {
            Side::Old => {
                assert_eq!(status(daemon)["initialized"], false);
                init(daemon, &[]);
            }
            Side::New => {
                assert_eq!(status(daemon)["initialized"], true);
                unseal_with(daemon, &seen.keys[1..]);
                daemon.cli().token(&seen.token).run(&["kv", "list"]).ok();
            }
        },
    );
}

#[test]
fn shamir_rotate() {
    rotate_matrix(&shamir_store(""));
}

#[test]
fn awskms_rotate() {
    let kms = kms();
    rotate_matrix(&awskms_store(&kms, ""));
}

#[test]
fn shamir_rotate_root() {
    let store = shamir_store("");
    crash_matrix("rotate-root", &store, rotate_root(0, 2), rotate_root_check);
}

#[test]
fn shamir_generate_root() {
    let store = shamir_store("");
    crash_matrix("generate-root", &store, generate_root, generate_root_check);
}

#[test]
fn shamir_rekey() {
    let store = shamir_store("");
    crash_matrix("rekey-commit", &store, rekey_operation(false), rekey_check);
}

#[test]
fn shamir_rekey_with_verification() {
    let store = shamir_store("");
    crash_matrix("rekey-commit", &store, rekey_operation(true), rekey_check);
}

#[test]
fn shamir_snapshot_restore() {
    let store = shamir_store("");
    // The snapshot holds the first two entries; the third comes after it.
    let snapshot: PathBuf = store.template.path().join("before-three.snap");
    {
        let text = config(store.template.path(), "");
        let mut daemon = Daemon::start(store.template.path(), &text);
        unsealed(&daemon, &store);
        daemon
            .cli()
            .token(&store.token)
            .run(&["kv", "metadata", "delete", KV[2].0])
            .ok();
        daemon
            .cli()
            .token(&store.token)
            .run(&["snapshot", "save", snapshot.to_str().unwrap()])
            .ok();
        put_secrets(&daemon, &store.token, &KV);
        daemon.stop();
    }
    let snapshot = snapshot.to_str().unwrap().to_string();
    crash_matrix(
        "restore",
        &store,
        |daemon, store| {
            unsealed(daemon, store);
            daemon
                .cli()
                .token(&store.token)
                .run(&["snapshot", "restore", &snapshot]);
            Seen::default()
        },
        |daemon, store, _, side| {
            unsealed(daemon, store);
            let third = daemon
                .cli()
                .token(&store.token)
                .run(&["kv", "get", KV[2].0]);
            match side {
                Side::Old => secrets_read_back(daemon, &store.token, &KV),
                Side::New => {
                    third.code(1).error_says("no secret at kv path");
                    for (path, value) in &KV[..2] {
                        let out = daemon
                            .cli()
                            .token(&store.token)
                            .run(&["kv", "get", path, "--format", "json"])
                            .ok();
                        assert_eq!(out.json()["data"]["data"]["v"], *value);
                    }
                }
            }
        },
    );
}

#[test]
fn awskms_init() {
    let kms = kms();
    let block = seal_block(&kms.proxy.endpoint(), "");
    init_with_recovery_keys(block);
}

/// The recovery-key quorum operations of an awskms store: rekey (its quorum
/// check is "rekey", wrapping the new recovery key "rekey-commit"), with and
/// without verification; rotate-root; generate-root.
#[test]
fn awskms_quorum_operations() {
    let kms = kms();
    let store = awskms_store(&kms, "");
    let finished = |_: &Daemon| true;
    crash_matrix_of(
        "rekey",
        false,
        &store,
        rekey_operation(false),
        finished,
        rekey_check,
    );
    crash_matrix("rekey-commit", &store, rekey_operation(false), rekey_check);
    crash_matrix("rekey-commit", &store, rekey_operation(true), rekey_check);
    crash_matrix("rotate-root", &store, rotate_root(1, 2), rotate_root_check);
    // Its KMS call checks the quorum; then the token's commit.
    crash_matrix("generate-root", &store, generate_root, generate_root_check);
}

#[test]
fn migration_shamir_to_awskms() {
    let kms = kms();
    let store = shamir_store(&seal_block(&kms.proxy.endpoint(), ""));
    crash_matrix(
        "migrate",
        &store,
        |daemon, store| {
            daemon
                .cli()
                .run(&["unseal", "--migrate", &store.keys[0]])
                .ok();
            daemon.cli().run(&["unseal", "--migrate", &store.keys[1]]);
            Seen::default()
        },
        |daemon, store, _, side| {
            match side {
                Side::New => {
                    wait_unsealed(daemon);
                }
                Side::Old => {
                    assert_eq!(status(daemon)["migration"], true);
                    for key in &store.keys[1..] {
                        daemon.cli().run(&["unseal", "--migrate", key]).ok();
                    }
                }
            }
            assert_eq!(status(daemon)["type"], "awskms");
            secrets_read_back(daemon, &store.token, &KV);
        },
    );
}

#[test]
fn migration_awskms_to_shamir() {
    let kms = kms();
    let disabled = seal_block(&kms.proxy.endpoint(), "disabled = true");
    let store = awskms_store(&kms, &disabled);
    crash_matrix(
        "migrate",
        &store,
        |daemon, store| {
            daemon
                .cli()
                .run(&["unseal", "--migrate", &store.keys[2]])
                .ok();
            daemon.cli().run(&["unseal", "--migrate", &store.keys[0]]);
            Seen::default()
        },
        |daemon, store, _, side| {
            match side {
                // A Shamir store: the recovery keys are its unseal keys.
                Side::New => unseal_with(daemon, &store.keys[..2]),
                Side::Old => {
                    assert_eq!(status(daemon)["migration"], true);
                    for key in &store.keys[..2] {
                        daemon.cli().run(&["unseal", "--migrate", key]).ok();
                    }
                }
            }
            assert_eq!(status(daemon)["type"], "shamir");
            secrets_read_back(daemon, &store.token, &KV);
        },
    );
}

#[test]
fn awskms_rewrap_after_the_alias_moved() {
    let kms = kms();
    let store = awskms_store(&kms, "");
    let old_key = kms.key.clone();
    let new_key = kms.moto.create_key();
    kms.moto.alias("alias/strongroom-unseal", &new_key);
    crash_matrix_of(
        "rewrap",
        true,
        &store,
        // The daemon rewraps by itself after unsealing.
        |_, _| Seen::default(),
        |daemon| status(daemon)["kms_key_arn"] == new_key.as_str(),
        |daemon, store, seen, side| {
            let kept = seen.root_key.as_ref().unwrap();
            assert_eq!(kept == store.root_key.as_ref().unwrap(), side == Side::Old);
            // Before the commit the old key still wraps the stored keys (and
            // the restarted daemon rewraps again); after it, only the new one.
            let unsealed = wait_unsealed(daemon);
            let arn = unsealed["kms_key_arn"].as_str().unwrap().to_string();
            match side {
                Side::New => assert_eq!(arn, new_key),
                Side::Old => assert!(arn == old_key || arn == new_key, "{arn}"),
            }
            secrets_read_back(daemon, &store.token, &KV);
            strongroom_test_support::eventually("the rewrap", Duration::from_secs(10), || {
                status(daemon)["kms_key_arn"] == new_key.as_str()
            });
        },
    );
}

#[test]
fn migration_awskms_to_another_kms() {
    let old = kms();
    let new = kms();
    let blocks = format!(
        "{}{}",
        seal_block(&new.proxy.endpoint(), ""),
        seal_block(&old.proxy.endpoint(), "disabled = true")
    );
    let store = awskms_store(&old, &blocks);
    crash_matrix(
        "migrate",
        &store,
        |daemon, store| {
            // The daemon asks the new KMS whether the move is already done
            // while the keys are entered: that DescribeKey runs outside the
            // operation's scope, so it adds no crash point, and the keys
            // entered first make the move either way.
            daemon
                .cli()
                .run(&["unseal", "--migrate", &store.keys[0]])
                .ok();
            daemon.cli().run(&["unseal", "--migrate", &store.keys[1]]);
            Seen::default()
        },
        |daemon, store, _, side| {
            match side {
                // The old block is left over: found done, unsealed by the new key.
                Side::New => {
                    wait_unsealed(daemon);
                }
                Side::Old => {
                    strongroom_test_support::eventually(
                        "migration mode",
                        Duration::from_secs(10),
                        || status(daemon)["migration"] == true,
                    );
                    for key in &store.keys[1..] {
                        daemon.cli().run(&["unseal", "--migrate", key]).ok();
                    }
                }
            }
            assert_eq!(status(daemon)["kms_key_arn"], new.key.as_str());
            secrets_read_back(daemon, &store.token, &KV);
        },
    );
}
