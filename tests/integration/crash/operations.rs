//! Operations and checks shared by the cases of `single.rs` and
//! `multiseal.rs`: a keyring rotation, rotate-root, generate-root, rekey
//! (with and without verification), and init under an auto-unseal seal.

use super::*;

/// A keyring rotation: term 2 after the commit, term 1 before it.
pub(super) fn rotate_matrix(store: &Store) {
    crash_matrix(
        "rotate",
        store,
        |daemon, store| {
            unsealed(daemon, store);
            daemon.cli().token(&store.token).run(&["rotate"]);
            Seen::default()
        },
        |daemon, store, _, side| {
            unsealed(daemon, store);
            secrets_read_back(daemon, &store.token, &KV);
            let term = daemon
                .cli()
                .token(&store.token)
                .run(&["key-status", "--format", "json"])
                .ok()
                .json()["term"]
                .clone();
            assert_eq!(term, if side == Side::New { 2 } else { 1 });
        },
    );
}

/// A root key rotation with the keys `first` and `second` (indexes into
/// the store's keys).
pub(super) fn rotate_root(first: usize, second: usize) -> impl Fn(&Daemon, &Store) -> Seen {
    move |daemon, store| {
        unsealed(daemon, store);
        let (nonce, _) = start_as(daemon.cli().token(&store.token), "rotate-root", &[]);
        daemon
            .cli()
            .run(&["rotate-root", "--nonce", &nonce, &store.keys[first]])
            .ok();
        daemon
            .cli()
            .run(&["rotate-root", "--nonce", &nonce, &store.keys[second]]);
        Seen::default()
    }
}

/// The crash left the old root key (before the commit) or a new one (after
/// it) on disk; either way the keys in force open it and the data reads
/// back, after a seal too (awskms).
pub(super) fn rotate_root_check(daemon: &Daemon, store: &Store, seen: &Seen, side: Side) {
    let kept = seen.root_key.as_ref().expect("a stored root key");
    let before = store.root_key.as_ref().unwrap();
    match side {
        Side::Old => assert!(kept == before, "the root key changed before the commit"),
        Side::New => assert!(
            kept != before,
            "the root key is the old one after the commit"
        ),
    }
    if store.awskms {
        wait_unsealed(daemon);
        secrets_read_back(daemon, &store.token, &KV);
        daemon.cli().token(&store.token).run(&["seal"]).ok();
        unseal_with(daemon, &store.keys[..2]);
    } else {
        unseal_with(daemon, &store.keys[1..]);
    }
    secrets_read_back(daemon, &store.token, &KV);
}

/// A new root token from the first two keys.
pub(super) fn generate_root(daemon: &Daemon, store: &Store) -> Seen {
    unsealed(daemon, store);
    let otp = fresh_otp(daemon);
    let (nonce, _) = start(daemon, "generate-root", &["--otp", &otp]);
    daemon
        .cli()
        .run(&["generate-root", "--nonce", &nonce, &store.keys[0]])
        .ok();
    daemon
        .cli()
        .run(&["generate-root", "--nonce", &nonce, &store.keys[1]]);
    Seen::default()
}

pub(super) fn generate_root_check(daemon: &Daemon, store: &Store, _: &Seen, side: Side) {
    unsealed(daemon, store);
    secrets_read_back(daemon, &store.token, &KV);
    let accessors = daemon
        .cli()
        .token(&store.token)
        .run(&["token", "list-accessors", "--format", "json"])
        .ok()
        .json();
    let expected = if side == Side::New { 2 } else { 1 };
    assert_eq!(accessors.as_array().unwrap().len(), expected);
}

/// Rekey to 2/2 keys, with or without verification; the crash comes at the
/// commit (the confirmation, or the last verification key).
/// Starts a rekey with `args` as the store's root token and enters two of
/// its keys; the answer to the second (it may be cut short by a crash).
pub(super) fn rekey_quorum(daemon: &Daemon, store: &Store, args: &[&str]) -> Run {
    let (nonce, _) = start_as(daemon.cli().token(&store.token), "rekey", args);
    daemon
        .cli()
        .run(&["rekey", "--nonce", &nonce, &store.keys[0]])
        .ok();
    daemon.cli().run(&[
        "rekey",
        "--nonce",
        &nonce,
        &store.keys[1],
        "--format",
        "json",
    ])
}

pub(super) fn rekey_operation(verify: bool) -> impl Fn(&Daemon, &Store) -> Seen {
    move |daemon, store| {
        unsealed(daemon, store);
        let mut args = vec!["--key-shares", "2", "--key-threshold", "2"];
        if verify {
            args.push("--verify");
        }
        let last = rekey_quorum(daemon, store, &args);
        // Printed before the commit, unless the crash came earlier (at the
        // quorum check).
        let keys = printed_keys(&last, "keys");
        if verify && !keys.is_empty() {
            let verification = last.json()["verification_nonce"]
                .as_str()
                .unwrap()
                .to_string();
            daemon
                .cli()
                .run(&["rekey", "--verify", "--nonce", &verification, &keys[0]])
                .ok();
            daemon
                .cli()
                .run(&["rekey", "--verify", "--nonce", &verification, &keys[1]]);
        }
        Seen {
            keys,
            ..Seen::default()
        }
    }
}

pub(super) fn rekey_check(daemon: &Daemon, store: &Store, seen: &Seen, side: Side) {
    if store.awskms {
        // KMS unseals it either way; the keys are checked after a seal.
        wait_unsealed(daemon);
        secrets_read_back(daemon, &store.token, &KV);
        daemon.cli().token(&store.token).run(&["seal"]).ok();
    }
    match side {
        Side::Old => unseal_with(daemon, &store.keys[..2]),
        Side::New => {
            daemon
                .cli()
                .run(&["unseal", &store.keys[0]])
                .code(1)
                .error_says("never issued");
            unseal_with(daemon, &seen.keys);
        }
    }
    secrets_read_back(daemon, &store.token, &KV);
}

/// Init's crash points under an auto-unseal seal config (`extra`): its KMS
/// calls come first ("init", nothing written yet), then the commit at the
/// confirmation ("init-commit").
pub(super) fn init_with_recovery_keys(extra: String) {
    let store = Store {
        template: tempdir(),
        extra,
        keys: Vec::new(),
        token: String::new(),
        awskms: true,
        root_key: None,
    };
    let operate = |daemon: &Daemon, _: &Store| {
        let run = daemon.cli().run(&[
            "init",
            "--recovery-shares",
            "3",
            "--recovery-threshold",
            "2",
            "--format",
            "json",
        ]);
        let json: Value = serde_json::from_str(&run.stdout).unwrap_or(Value::Null);
        Seen {
            keys: printed_keys(&run, "recovery_keys_hex"),
            token: json["root_token"].as_str().unwrap_or_default().to_string(),
            root_key: None,
            ..Seen::default()
        }
    };
    let check = |daemon: &Daemon, _: &Store, seen: &Seen, side| match side {
        Side::Old => {
            assert_eq!(status(daemon)["initialized"], false);
            let init: Init = init_recovery(daemon);
            assert_eq!(status(daemon)["sealed"], false, "{:?}", init.json);
        }
        Side::New => {
            // KMS unseals it; the printed keys are its recovery keys.
            wait_unsealed(daemon);
            daemon.cli().token(&seen.token).run(&["seal"]).ok();
            unseal_with(daemon, &seen.keys[..2]);
        }
    };
    crash_matrix_of("init", false, &store, operate, |_| true, check);
    crash_matrix("init-commit", &store, operate, check);
}
