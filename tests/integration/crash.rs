//! Crash safety, proven with the crash points of the `failpoints` feature.
//!
//! For each key operation: run it once with `STRONGROOM_FAILPOINT=list` to
//! learn every boundary it passes (each KMS call and each storage commit,
//! before and after), then for every boundary: start the daemon on a copy of
//! the same store with the crash point set, run the operation until the
//! daemon aborts there (SIGABRT, as a crash), start it again without the
//! crash point, and check that the old keys (a crash before the commit) or
//! the new ones (after it) unseal it, and that every KV entry written before
//! reads back. These tests fail, not skip, without the feature: the daemon
//! would then not abort.
//!
//! This proves atomicity against a process crash. Power loss is covered by
//! the storage: a redb commit returns only after fsync (see ARCHITECTURE.md).

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::support::cli::{Init, Run, init, put_secrets, secrets_read_back, status, unseal};
use crate::support::daemon::{Daemon, config, tempdir};
use crate::support::kms::{Kms, init_recovery, kms, seal_block, wait_unsealed};
use crate::support::quorum::{fresh_otp, start, start_as};

const KV: [(&str, &str); 3] = [
    ("app/one", "first"),
    ("app/two", "second"),
    ("app/three", "third"),
];

/// A store made once and copied for every crash case.
struct Store {
    template: TempDir,
    /// The config's extra text (seal blocks) for the crash run and after.
    extra: String,
    /// The keys in force: unseal keys (Shamir) or recovery keys (awskms), hex.
    keys: Vec<String>,
    token: String,
    /// The store is sealed by KMS: it unseals by itself at start.
    awskms: bool,
}

impl Store {
    /// A fresh copy of the store in its own directory, with its config.
    fn copy(&self) -> (TempDir, String) {
        let dir = tempdir();
        let from = self.template.path().join("data");
        if from.exists() {
            copy_dir(&from, &dir.path().join("data"));
        }
        let text = config(dir.path(), &self.extra);
        (dir, text)
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Which keys must work after the crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// The crash came before the commit: the old keys.
    Old,
    /// After the commit: the new ones.
    New,
}

/// What the client saw of the operation before the daemon died.
#[derive(Default)]
struct Seen {
    /// New keys the operation printed (init, rekey), hex or base64.
    keys: Vec<String>,
    /// A token it printed (init).
    token: String,
}

/// Runs the matrix for the operation named `operation` in the crash points.
fn crash_matrix(
    operation: &str,
    store: &Store,
    operate: impl Fn(&Daemon, &Store) -> Seen,
    check: impl Fn(&Daemon, &Store, &Seen, Side),
) {
    crash_matrix_of(operation, true, store, operate, check);
}

/// The same, for a part of an operation that makes no commit of its own
/// (`commits` false: the KMS calls that check a quorum, say).
fn crash_matrix_of(
    operation: &str,
    commits: bool,
    store: &Store,
    operate: impl Fn(&Daemon, &Store) -> Seen,
    check: impl Fn(&Daemon, &Store, &Seen, Side),
) {
    let points = boundaries(operation, commits, store, &operate);
    assert!(!points.is_empty(), "{operation} passed no crash point");
    eprintln!("{operation}: crash points {points:?}");
    assert_eq!(
        points.iter().any(|p| p.starts_with("after-commit-")),
        commits,
        "{operation}: {points:?}"
    );
    for point in &points {
        let target = format!("{operation}:{point}");
        let (dir, text) = store.copy();
        let daemon = Daemon::start_with(dir.path(), &text, &[("STRONGROOM_FAILPOINT", &target)]);
        let seen = operate(&daemon, store);
        let mut daemon = daemon;
        let exit = daemon
            .wait_exit(Duration::from_secs(20))
            .unwrap_or_else(|| panic!("{target}: the daemon did not crash"));
        assert_eq!(
            exit.signal(),
            Some(nix::sys::signal::Signal::SIGABRT as i32),
            "{target}: not the crash point ({exit})"
        );
        assert!(
            daemon
                .stderr
                .text()
                .contains(&format!("failpoint {target}: aborting")),
            "{target}: aborted elsewhere"
        );
        let side = if point.starts_with("after-commit-") {
            Side::New
        } else {
            Side::Old
        };
        let restarted = Daemon::start(dir.path(), &text);
        check(&restarted, store, &seen, side);
    }
}

/// Every boundary `operation` passes, in order, from one run in list mode.
fn boundaries(
    operation: &str,
    commits: bool,
    store: &Store,
    operate: &impl Fn(&Daemon, &Store) -> Seen,
) -> Vec<String> {
    let (dir, text) = store.copy();
    let mut daemon = Daemon::start_with(dir.path(), &text, &[("STRONGROOM_FAILPOINT", "list")]);
    operate(&daemon, store);
    let prefix = format!("failpoint passed: {operation}:");
    let last = if commits { "after-commit-" } else { "after-" };
    let mut points: Vec<String> = Vec::new();
    // Some operations run in the background (a rewrap after unsealing).
    strongroom_test_support::eventually(
        "the operation's last boundary",
        Duration::from_secs(10),
        || {
            daemon
                .stderr
                .all()
                .iter()
                .any(|l| l.starts_with(&prefix) && l.contains(last))
        },
    );
    for line in daemon.stderr.all() {
        if let Some(point) = line.strip_prefix(&prefix)
            && !points.iter().any(|p| p == point)
        {
            points.push(point.to_string());
        }
    }
    daemon.stop();
    points
}

/// A Shamir store 3/2 with the KV entries, sealed.
fn shamir_store(extra: &str) -> Store {
    let template = tempdir();
    let mut daemon = Daemon::start(template.path(), &config(template.path(), ""));
    let keys = init(&daemon, &["--key-shares", "3", "--key-threshold", "2"]);
    unseal(&daemon, &[&keys.keys_hex[0], &keys.keys_hex[1]]);
    put_secrets(&daemon, &keys.root_token, &KV);
    daemon.stop();
    Store {
        template,
        extra: extra.to_string(),
        keys: keys.keys_hex.clone(),
        token: keys.root_token,
        awskms: false,
    }
}

/// An awskms store with 3/2 recovery keys and the KV entries.
fn awskms_store(kms: &Kms, extra: &str) -> Store {
    let template = tempdir();
    let block = seal_block(&kms.proxy.endpoint(), "");
    let mut daemon = Daemon::start(template.path(), &config(template.path(), &block));
    let keys = crate::support::cli::init(
        &daemon,
        &["--recovery-shares", "3", "--recovery-threshold", "2"],
    );
    put_secrets(&daemon, &keys.root_token, &KV);
    daemon.stop();
    Store {
        template,
        extra: if extra.is_empty() {
            block
        } else {
            extra.to_string()
        },
        keys: keys.recovery_hex.clone(),
        token: keys.root_token,
        awskms: true,
    }
}

fn unseal_with(daemon: &Daemon, keys: &[String]) {
    let refs: Vec<&String> = keys.iter().collect();
    unseal(daemon, &refs);
}

/// The keys a CLI printed as JSON before the daemon died (the answer came,
/// the confirmation did not).
fn printed_keys(run: &Run, field: &str) -> Vec<String> {
    let json: Value = serde_json::from_str(&run.stdout).unwrap_or(Value::Null);
    json[field]
        .as_array()
        .map(|a| a.iter().map(|k| k.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// Unsealed as the store's seal does it: the first two keys (Shamir), or
/// by itself (awskms).
fn unsealed(daemon: &Daemon, store: &Store) {
    if store.awskms {
        wait_unsealed(daemon);
    } else {
        unseal_with(daemon, &store.keys[..2]);
    }
}

#[test]
fn shamir_init() {
    let store = Store {
        template: tempdir(),
        extra: String::new(),
        keys: Vec::new(),
        token: String::new(),
        awskms: false,
    };
    crash_matrix(
        "init",
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
    let store = shamir_store("");
    crash_matrix(
        "rotate",
        &store,
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

#[test]
fn shamir_rotate_root() {
    let store = shamir_store("");
    crash_matrix(
        "rotate-root",
        &store,
        |daemon, store| {
            unsealed(daemon, store);
            let (nonce, _) = start_as(daemon.cli().token(&store.token), "rotate-root", &[]);
            daemon
                .cli()
                .run(&["rotate-root", "--nonce", &nonce, &store.keys[0]])
                .ok();
            daemon
                .cli()
                .run(&["rotate-root", "--nonce", &nonce, &store.keys[2]]);
            Seen::default()
        },
        |daemon, store, _, _| {
            unseal_with(daemon, &store.keys[1..]);
            secrets_read_back(daemon, &store.token, &KV);
        },
    );
}

/// A new root token from the first two keys.
fn generate_root(daemon: &Daemon, store: &Store) -> Seen {
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

fn generate_root_check(daemon: &Daemon, store: &Store, _: &Seen, side: Side) {
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

#[test]
fn shamir_generate_root() {
    let store = shamir_store("");
    crash_matrix("generate-root", &store, generate_root, generate_root_check);
}

/// Rekey to 2/2 keys, with or without verification; the crash comes at the
/// commit (the confirmation, or the last verification key).
fn rekey_operation(verify: bool) -> impl Fn(&Daemon, &Store) -> Seen {
    move |daemon, store| {
        unsealed(daemon, store);
        let mut args = vec!["--key-shares", "2", "--key-threshold", "2"];
        if verify {
            args.push("--verify");
        }
        let (nonce, _) = start_as(daemon.cli().token(&store.token), "rekey", &args);
        daemon
            .cli()
            .run(&["rekey", "--nonce", &nonce, &store.keys[0]])
            .ok();
        let last = daemon.cli().run(&[
            "rekey",
            "--nonce",
            &nonce,
            &store.keys[1],
            "--format",
            "json",
        ]);
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
            token: String::new(),
        }
    }
}

fn rekey_check(daemon: &Daemon, store: &Store, seen: &Seen, side: Side) {
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
    let store = Store {
        template: tempdir(),
        extra: block,
        keys: Vec::new(),
        token: String::new(),
        awskms: true,
    };
    crash_matrix(
        "init",
        &store,
        |daemon, _| {
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
            }
        },
        |daemon, _, seen, side| match side {
            Side::Old => {
                assert_eq!(status(daemon)["initialized"], false);
                let init: Init = init_recovery(daemon);
                assert_eq!(status(daemon)["sealed"], false, "{:?}", init.json);
            }
            Side::New => {
                // The KMS key unseals it; the printed keys are its recovery keys.
                wait_unsealed(daemon);
                daemon.cli().token(&seen.token).run(&["seal"]).ok();
                unseal_with(daemon, &seen.keys[..2]);
            }
        },
    );
}

/// The recovery-key quorum operations of an awskms store: rekey (its quorum
/// check is "rekey", wrapping the new recovery key "rekey-commit"), with and
/// without verification; rotate-root; generate-root.
#[test]
fn awskms_quorum_operations() {
    let kms = kms();
    let store = awskms_store(&kms, "");
    crash_matrix_of("rekey", false, &store, rekey_operation(false), rekey_check);
    crash_matrix("rekey-commit", &store, rekey_operation(false), rekey_check);
    crash_matrix("rekey-commit", &store, rekey_operation(true), rekey_check);
    crash_matrix(
        "rotate-root",
        &store,
        |daemon, store| {
            wait_unsealed(daemon);
            let (nonce, _) = start_as(daemon.cli().token(&store.token), "rotate-root", &[]);
            daemon
                .cli()
                .run(&["rotate-root", "--nonce", &nonce, &store.keys[1]])
                .ok();
            daemon
                .cli()
                .run(&["rotate-root", "--nonce", &nonce, &store.keys[2]]);
            Seen::default()
        },
        |daemon, store, _, _| {
            wait_unsealed(daemon);
            secrets_read_back(daemon, &store.token, &KV);
            // Either root key opens with the recovery keys after a seal too.
            daemon.cli().token(&store.token).run(&["seal"]).ok();
            unseal_with(daemon, &store.keys[..2]);
            secrets_read_back(daemon, &store.token, &KV);
        },
    );
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
    crash_matrix(
        "rewrap",
        &store,
        // The daemon rewraps by itself after unsealing.
        |_, _| Seen::default(),
        |daemon, store, _, side| {
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
            // The daemon first asks the new KMS whether the move is done.
            strongroom_test_support::eventually(
                "the migration check",
                Duration::from_secs(10),
                || new.proxy.requests().iter().any(|r| r == "DescribeKey"),
            );
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
