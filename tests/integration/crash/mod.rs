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
//! would then not abort. A test reads `src/` for every operation that names
//! itself for the crash points and fails when one has no case here
//! (`coverage.rs`); the cases are in `single.rs`, `multiseal.rs` and
//! `ha.rs`.
//!
//! This proves atomicity against a process crash. Power loss is covered by
//! the storage: a redb commit returns only after fsync (see ARCHITECTURE.md).

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;
use tempfile::TempDir;

use crate::support::cli::{Init, Run, init, put_secrets, secrets_read_back, status, unseal};
use crate::support::daemon::{Daemon, config, tempdir};
use crate::support::ha::{Cluster, SETTLE};
use crate::support::kms::{
    Kms, init_recovery, kms, named_seal_block, seal_block, two_seals, wait_unsealed,
};
use crate::support::quorum::{fresh_otp, start, start_as};
use crate::support::store::entries;
use strongroom::seal::envelope::Purpose;
use strongroom::seal::set::EnvelopeSet;
use strongroom_test_support::kms::Fault;

mod coverage;
mod ha;
mod multiseal;
mod single;

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
    /// The stored `core/root-key` entry, when the template has a store.
    root_key: Option<Vec<u8>>,
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

/// What the client saw of the operation before the daemon died, and what
/// the crash left on disk.
#[derive(Default)]
struct Seen {
    /// New keys the operation printed (init, rekey), hex or base64.
    keys: Vec<String>,
    /// A token it printed (init).
    token: String,
    /// The stored `core/root-key` entry after the crash (stores made from
    /// a template with one).
    root_key: Option<Vec<u8>>,
    /// Every stored entry after the crash, when `root_key` is read.
    stored: std::collections::BTreeMap<String, Vec<u8>>,
}

/// The stored `core/root-key` entry of the store in `dir` (stopped).
fn root_key_entry(dir: &Path) -> Option<Vec<u8>> {
    let data = dir.join("data");
    if !data.exists() {
        return None;
    }
    entries(&data).remove("core/root-key")
}

/// Runs the matrix for the operation named `operation` in the crash points.
fn crash_matrix(
    operation: &str,
    store: &Store,
    operate: impl Fn(&Daemon, &Store) -> Seen,
    check: impl Fn(&Daemon, &Store, &Seen, Side),
) {
    crash_matrix_of(operation, true, store, operate, |_| true, check);
}

/// The same, for a part of an operation that makes no commit of its own
/// (`commits` false: the KMS calls that check a quorum, say), or that runs
/// in the background after `operate` returned: the list run waits for
/// `finished` before it counts the boundaries passed.
fn crash_matrix_of(
    operation: &str,
    commits: bool,
    store: &Store,
    operate: impl Fn(&Daemon, &Store) -> Seen,
    finished: impl Fn(&Daemon) -> bool,
    check: impl Fn(&Daemon, &Store, &Seen, Side),
) {
    let points = boundaries(operation, store, &operate, &finished);
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
        let mut seen = operate(&daemon, store);
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
        if store.root_key.is_some() {
            seen.root_key = root_key_entry(dir.path());
            seen.stored = entries(&dir.path().join("data"));
        }
        let restarted = Daemon::start(dir.path(), &text);
        check(&restarted, store, &seen, side);
    }
}

/// Every boundary `operation` passes, in order, from one run in list mode:
/// the operation runs to its end (`finished`), the daemon stops, and then
/// every line it wrote is read, so no boundary after the first commit is
/// missed.
fn boundaries(
    operation: &str,
    store: &Store,
    operate: &impl Fn(&Daemon, &Store) -> Seen,
    finished: &impl Fn(&Daemon) -> bool,
) -> Vec<String> {
    let (dir, text) = store.copy();
    let mut daemon = Daemon::start_with(dir.path(), &text, &[("STRONGROOM_FAILPOINT", "list")]);
    operate(&daemon, store);
    strongroom_test_support::eventually("the operation's end", Duration::from_secs(20), || {
        finished(&daemon)
    });
    assert!(daemon.stop().success(), "{operation}: the list run failed");
    let prefix = format!("failpoint passed: {operation}:");
    let mut points: Vec<String> = Vec::new();
    for line in daemon.stderr.all() {
        if let Some(point) = line.strip_prefix(&prefix)
            && !points.iter().any(|p| p == point)
        {
            assert!(is_point(point), "{operation}: unknown crash point {point}");
            points.push(point.to_string());
        }
    }
    points
}

/// `before-commit-N`, `after-kms-N`, …: the points src/failpoint.rs names.
fn is_point(point: &str) -> bool {
    if STEPS.contains(&point) {
        return true;
    }
    let Some((side, rest)) = point.split_once('-') else {
        return false;
    };
    let Some((kind, n)) = rest.split_once('-') else {
        return false;
    };
    ["before", "after"].contains(&side)
        && ["commit", "kms"].contains(&kind)
        && n.parse::<u32>().is_ok_and(|n| n > 0)
}

/// The named steps (`failpoint::step`) in `src/`: the HA take-over's.
const STEPS: [&str; 2] = ["after-term-taken", "after-reload"];

/// A Shamir store 3/2 with the KV entries, sealed.
fn shamir_store(extra: &str) -> Store {
    let template = tempdir();
    let mut daemon = Daemon::start(template.path(), &config(template.path(), ""));
    let keys = init(&daemon, &["--key-shares", "3", "--key-threshold", "2"]);
    unseal(&daemon, &[&keys.keys_hex[0], &keys.keys_hex[1]]);
    put_secrets(&daemon, &keys.root_token, &KV);
    daemon.stop();
    let root_key = root_key_entry(template.path());
    Store {
        template,
        extra: extra.to_string(),
        keys: keys.keys_hex.clone(),
        token: keys.root_token,
        awskms: false,
        root_key,
    }
}

/// An awskms store with 3/2 recovery keys and the KV entries.
fn awskms_store(kms: &Kms, extra: &str) -> Store {
    kms_store(seal_block(&kms.proxy.endpoint(), ""), extra)
}

/// A store made under the seal blocks `block` with 3/2 recovery keys and
/// the KV entries; crash runs use `extra` (`block` when empty).
fn kms_store(block: String, extra: &str) -> Store {
    kms_store_made(block, extra).0
}

/// [`kms_store`], and what its init printed.
fn kms_store_made(block: String, extra: &str) -> (Store, Init) {
    let template = tempdir();
    let mut daemon = Daemon::start(template.path(), &config(template.path(), &block));
    let keys = crate::support::cli::init(
        &daemon,
        &["--recovery-shares", "3", "--recovery-threshold", "2"],
    );
    put_secrets(&daemon, &keys.root_token, &KV);
    daemon.stop();
    let root_key = root_key_entry(template.path());
    let store = Store {
        template,
        extra: if extra.is_empty() {
            block
        } else {
            extra.to_string()
        },
        keys: keys.recovery_hex.clone(),
        token: keys.root_token.clone(),
        awskms: true,
        root_key,
    };
    (store, keys)
}

/// The emergency seal's block (several seals).
const EMERGENCY: &str = "\nseal \"shamir\" {\n  name = \"emergency\"\n}\n";

/// A store made under the seal blocks `seals` and the emergency seal, as
/// [`kms_store`] makes one (crash runs use `extra`), and its 5 emergency
/// keys (hex; 3 open it).
fn emergency_store(seals: &str, extra: &str) -> (Store, Vec<String>) {
    let (store, made) = kms_store_made(format!("{seals}{EMERGENCY}"), extra);
    let emergency = crate::support::cli::strings(&made.json["emergency_keys_hex"]);
    assert_eq!(emergency.len(), 5);
    (store, emergency)
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

/// A keyring rotation: term 2 after the commit, term 1 before it.
fn rotate_matrix(store: &Store) {
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
fn rotate_root(first: usize, second: usize) -> impl Fn(&Daemon, &Store) -> Seen {
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
fn rotate_root_check(daemon: &Daemon, store: &Store, seen: &Seen, side: Side) {
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
            ..Seen::default()
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

/// Init's crash points under an auto-unseal seal config (`extra`): its KMS
/// calls come first ("init", nothing written yet), then the commit at the
/// confirmation ("init-commit").
fn init_with_recovery_keys(extra: String) {
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
