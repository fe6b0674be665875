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
//! itself for the crash points and fails when one has no case here.
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

#[test]
fn shamir_rotate() {
    rotate_matrix(&shamir_store(""));
}

#[test]
fn awskms_rotate() {
    let kms = kms();
    rotate_matrix(&awskms_store(&kms, ""));
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

#[test]
fn shamir_rotate_root() {
    let store = shamir_store("");
    crash_matrix("rotate-root", &store, rotate_root(0, 2), rotate_root_check);
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

/// Several seals: init under two, and a store of one seal restarted with a
/// second seal added, which the active node rewraps by itself ("seal-set":
/// the recovery key opened, both keys wrapped by each seal, one commit).
#[test]
fn multiseal_init_and_a_seal_added() {
    let (tokyo, osaka) = (kms(), kms());
    let both = two_seals(&tokyo.proxy.endpoint(), &osaka.proxy.endpoint());
    // With the emergency seal: its keys' config and the root key encrypted
    // to them are part of init's one commit.
    init_with_recovery_keys(format!("{both}{EMERGENCY}"));

    seal_added_matrix(&awskms_store(&tokyo, &both));
}

/// Several seals: a store of "tokyo" and "osaka" restarted with a third
/// seal, "nagoya" (a third KMS), which the active node rewraps by itself.
#[test]
fn multiseal_a_third_seal_added() {
    let (tokyo, osaka, nagoya) = (kms(), kms(), kms());
    let both = two_seals(&tokyo.proxy.endpoint(), &osaka.proxy.endpoint());
    let three = format!(
        "{both}{}",
        named_seal_block("nagoya", 3, &nagoya.proxy.endpoint(), "")
    );
    seal_added_matrix(&kms_store(both, &three));
}

/// Every seal of the daemon's status fully wrapped, with several seals.
fn every_seal_wrapped(daemon: &Daemon) -> bool {
    let status = status(daemon);
    status["type"] == "multiseal"
        && status["seals"]
            .as_array()
            .is_some_and(|seals| seals.iter().all(|s| s["fully_wrapped"] == true))
}

/// The crash matrix of the rewrap that follows a seal added to `store`
/// (its config, `store.extra`, names one seal more than it was made with):
/// either way "tokyo" unseals it, and the restarted daemon wraps the keys
/// for every seal.
fn seal_added_matrix(store: &Store) {
    crash_matrix_of(
        "seal-set",
        true,
        store,
        // The daemon rewraps by itself after unsealing.
        |_, _| Seen::default(),
        every_seal_wrapped,
        |daemon, store, seen, side| {
            let kept = seen.root_key.as_ref().unwrap();
            assert_eq!(kept == store.root_key.as_ref().unwrap(), side == Side::Old);
            // Before the commit the envelopes it was made with still open
            // (and the restarted daemon rewraps again); after it, the set does.
            assert_eq!(wait_unsealed(daemon)["auto_unseal"]["seal"], "tokyo");
            secrets_read_back(daemon, &store.token, &KV);
            strongroom_test_support::eventually("the rewrap", Duration::from_secs(10), || {
                every_seal_wrapped(daemon)
            });
        },
    );
}

/// Several seals: "osaka" marked disabled leaves the set. The active node
/// opens the recovery key, opens both keys of "tokyo" again, then deletes
/// "osaka"'s envelopes in one commit ("seal-set").
#[test]
fn multiseal_a_seal_leaves() {
    let (tokyo, osaka) = (kms(), kms());
    let both = two_seals(&tokyo.proxy.endpoint(), &osaka.proxy.endpoint());
    let leaving = both.replacen(
        "name     = \"osaka\"",
        "name     = \"osaka\"\n  disabled = true",
        1,
    );
    assert_ne!(leaving, both);
    let store = kms_store(both, &leaving);
    let osaka_gone = |daemon: &Daemon| {
        status(daemon)["seals"]
            .as_array()
            .and_then(|seals| seals.iter().find(|s| s["name"] == "osaka"))
            .is_some_and(|s| s["holds_keys"] == false)
    };
    crash_matrix_of(
        "seal-set",
        true,
        &store,
        |_, _| Seen::default(),
        osaka_gone,
        |daemon, store, _, _| {
            assert_eq!(wait_unsealed(daemon)["auto_unseal"]["seal"], "tokyo");
            secrets_read_back(daemon, &store.token, &KV);
            strongroom_test_support::eventually("the deletion", Duration::from_secs(10), || {
                osaka_gone(daemon)
            });
        },
    );
}

/// Several seals with an emergency seal: `rekey --target emergency`, whose
/// one commit ("rekey-commit") writes the new emergency config and copy of
/// the root key and the recovery key together, and rotate-root, whose
/// commit writes the new root key's copy with the keyring it encrypts:
/// after the crash the emergency keys in force (old or new) open the stored
/// copies, the root key in one opens the stored keyring, and the other is
/// the recovery key in force. (Init under an emergency seal is the init
/// case of `multiseal_init_and_a_seal_added`.)
#[test]
fn multiseal_emergency_rekey_and_rotate_root() {
    let (tokyo, osaka) = (kms(), kms());
    let both = two_seals(&tokyo.proxy.endpoint(), &osaka.proxy.endpoint());
    let (store, emergency) = emergency_store(&both, "");
    let operate = |daemon: &Daemon, store: &Store| {
        wait_unsealed(daemon);
        let args = [
            "--target",
            "emergency",
            "--key-shares",
            "2",
            "--key-threshold",
            "2",
        ];
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
        Seen {
            keys: printed_keys(&last, "keys"),
            ..Seen::default()
        }
    };
    let check = |daemon: &Daemon, store: &Store, seen: &Seen, side: Side| {
        let (in_force, void) = match side {
            Side::Old => (&emergency[..3], seen.keys.as_slice()),
            Side::New => (seen.keys.as_slice(), &emergency[..]),
        };
        emergency_keys_open_the_stored_copy(&seen.stored, in_force, void, &store.keys[..2]);
        wait_unsealed(daemon);
        secrets_read_back(daemon, &store.token, &KV);
    };
    crash_matrix("rekey-commit", &store, operate, check);
    crash_matrix(
        "rotate-root",
        &store,
        rotate_root(0, 1),
        |daemon, store, seen, side| {
            emergency_keys_open_the_stored_copy(
                &seen.stored,
                &emergency[2..],
                &[],
                &store.keys[1..],
            );
            rotate_root_check(daemon, store, seen, side);
        },
    );
}

/// The stored emergency config takes `in_force` (and none of `void`), and
/// they open the stored emergency copy of the root key, which opens the
/// stored keyring, and the copy of the recovery key, which is the one a
/// quorum of `recovery` (recovery keys in force, hex) combines into.
fn emergency_keys_open_the_stored_copy(
    stored: &std::collections::BTreeMap<String, Vec<u8>>,
    in_force: &[String],
    void: &[String],
    recovery: &[String],
) {
    use strongroom::lifecycle::SealConfig;
    use strongroom::seal::emergency::EmergencySecret;
    use strongroom::seal::shamir;
    use strongroom::secret::SecretBytes;

    let config = SealConfig::decode(&stored["core/seal-config"]).unwrap();
    let emergency = config.emergency.unwrap();
    let bytes = |key: &String| hex::decode(key).unwrap();
    assert!(
        in_force
            .iter()
            .all(|k| emergency.share_check.is_issued(&bytes(k)))
    );
    assert!(
        !void
            .iter()
            .any(|k| emergency.share_check.is_issued(&bytes(k)))
    );
    let shares: Vec<SecretBytes> = in_force
        .iter()
        .map(|k| SecretBytes::new(bytes(k)))
        .collect();
    let secret = EmergencySecret::from_key(shamir::combine(&shares).unwrap());
    assert_eq!(secret.public_key_hex(), emergency.public_key);
    let root_key = secret
        .open(
            Purpose::RootKey,
            &config.cluster_id,
            &stored["core/emergency-root-key"],
        )
        .expect("the emergency keys in force open the stored copy of the root key");
    strongroom::barrier::open_keyring(&root_key, &stored["core/keyring"])
        .expect("the emergency copy is of the root key that encrypts the stored keyring");
    let recovery_key = secret
        .open(
            Purpose::RecoveryKey,
            &config.cluster_id,
            &stored["core/emergency-recovery-key"],
        )
        .expect("the emergency keys in force open the stored copy of the recovery key");
    let shares: Vec<SecretBytes> = recovery
        .iter()
        .map(|k| SecretBytes::new(bytes(k)))
        .collect();
    assert!(
        recovery_key.expose() == shamir::combine(&shares).unwrap().expose(),
        "the emergency copy is not of the recovery key in force"
    );
}

/// Several seals with an emergency seal, "osaka" refusing Encrypt:
/// rotate-root and a rekey of the recovery keys commit the new key wrapped
/// by "tokyo" alone ("osaka" loses its envelope of it) and encrypted to the
/// emergency seal. After the crash the stored envelopes are the old set or
/// "tokyo"'s alone, the emergency keys open the copies of the keys in
/// force, those keys work, and once "osaka" answers again the daemon
/// rewraps it.
#[test]
fn multiseal_quorum_operations_while_a_seal_cannot_wrap() {
    let (tokyo, osaka) = (kms(), kms());
    let both = two_seals(&tokyo.proxy.endpoint(), &osaka.proxy.endpoint());
    let (store, emergency) = emergency_store(&both, "");
    let emergency = &emergency[..3];
    crash_matrix(
        "rotate-root",
        &store,
        osaka_refusing_encrypt(&osaka, rotate_root(1, 2)),
        one_seal_wrapped_check(&osaka, emergency, Purpose::RootKey, rotate_root_check),
    );
    // The quorum check (no commit), then the new recovery key's commit, by
    // confirmation or by verification.
    crash_matrix_of(
        "rekey",
        false,
        &store,
        osaka_refusing_encrypt(&osaka, rekey_operation(false)),
        |_| true,
        one_seal_wrapped_check(&osaka, emergency, Purpose::RecoveryKey, rekey_check),
    );
    for verify in [false, true] {
        crash_matrix(
            "rekey-commit",
            &store,
            osaka_refusing_encrypt(&osaka, rekey_operation(verify)),
            one_seal_wrapped_check(&osaka, emergency, Purpose::RecoveryKey, rekey_check),
        );
    }
}

/// `operate` with `osaka`'s proxy refusing Encrypt (only Encrypt: the
/// quorum check's Decrypt and the health checks' DescribeKey still pass).
fn osaka_refusing_encrypt(
    osaka: &Kms,
    operate: impl Fn(&Daemon, &Store) -> Seen,
) -> impl Fn(&Daemon, &Store) -> Seen {
    move |daemon, store| {
        osaka
            .proxy
            .fault(Some("Encrypt"), Fault::access_denied("Encrypt"));
        operate(daemon, store)
    }
}

/// `check` after a crash of an operation that wrote a new `purpose` key
/// while "osaka" refused Encrypt: the stored envelopes of that key are
/// "tokyo"'s and "osaka"'s before the commit and "tokyo"'s alone after
/// it; the `emergency` keys open the stored copies of the root key and of
/// the recovery key in force. Then "osaka" answers again and is rewrapped.
fn one_seal_wrapped_check<'a>(
    osaka: &'a Kms,
    emergency: &'a [String],
    purpose: Purpose,
    check: impl Fn(&Daemon, &Store, &Seen, Side) + 'a,
) -> impl Fn(&Daemon, &Store, &Seen, Side) + 'a {
    move |daemon, store, seen, side| {
        let path = match purpose {
            Purpose::RootKey => "core/root-key",
            Purpose::RecoveryKey => "core/recovery-key",
        };
        let stored = EnvelopeSet::decode(purpose, &seen.stored[path]).unwrap();
        let mut seals: Vec<&str> = stored.seals().collect();
        seals.sort_unstable();
        let wrapped_by: &[&str] = match side {
            Side::Old => &["osaka", "tokyo"],
            Side::New => &["tokyo"],
        };
        assert_eq!(seals, wrapped_by, "{path}");
        let recovery = match (purpose, side) {
            (Purpose::RecoveryKey, Side::New) => seen.keys.as_slice(),
            _ => &store.keys[..2],
        };
        emergency_keys_open_the_stored_copy(&seen.stored, emergency, &[], recovery);
        check(daemon, store, seen, side);
        osaka.proxy.clear_fault();
        strongroom_test_support::eventually("osaka rewrapped", Duration::from_secs(20), || {
            every_seal_wrapped(daemon)
        });
    }
}

/// Several seals: a store of "tokyo", "osaka" and the emergency seal
/// restarted without the `seal "shamir"` block. The active node retires the
/// emergency seal: the seal config without it and its three entries
/// deleted, in one commit ("seal-set"). Before the commit its keys still
/// open both stored copies; after it nothing of it is left; either way the
/// store unseals and reads back, and the restarted daemon retires it.
#[test]
fn multiseal_the_emergency_seal_retired() {
    use strongroom::lifecycle::SealConfig;

    let (tokyo, osaka) = (kms(), kms());
    let both = two_seals(&tokyo.proxy.endpoint(), &osaka.proxy.endpoint());
    let (store, emergency) = emergency_store(&both, &both);
    let retired = |daemon: &Daemon| {
        daemon
            .stderr
            .text()
            .contains("the emergency seal is retired")
    };
    crash_matrix_of(
        "seal-set",
        true,
        &store,
        |_, _| Seen::default(),
        retired,
        |daemon, store, seen, side| {
            match side {
                Side::Old => emergency_keys_open_the_stored_copy(
                    &seen.stored,
                    &emergency[..3],
                    &[],
                    &store.keys[..2],
                ),
                Side::New => {
                    let config = SealConfig::decode(&seen.stored["core/seal-config"]).unwrap();
                    assert!(config.emergency.is_none());
                    let names: Vec<&str> = config.seals.iter().map(|s| s.name.as_str()).collect();
                    assert_eq!(names, ["tokyo", "osaka"]);
                    for path in [
                        "core/emergency-root-key",
                        "core/emergency-recovery-key",
                        "core/emergency-public-key",
                    ] {
                        assert!(!seen.stored.contains_key(path), "{path} is left");
                    }
                }
            }
            assert_eq!(wait_unsealed(daemon)["auto_unseal"]["seal"], "tokyo");
            secrets_read_back(daemon, &store.token, &KV);
            if side == Side::Old {
                strongroom_test_support::eventually(
                    "the retirement",
                    Duration::from_secs(10),
                    || retired(daemon),
                );
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

/// The HA take-over (issue 14: "kill between acquiring the role and
/// finishing the reload"), on three nodes sharing a database: for each
/// point the take-over passes (its named steps, and any commit inside it),
/// a standby armed with that crash point is elected and aborts there;
/// another node then takes over and serves, never two active at once, and
/// every write acknowledged before reads back.
#[test]
fn ha_take_over() {
    ha_crash_matrix("ha-take-over");
}

fn ha_crash_matrix(operation: &str) {
    let mut cluster = Cluster::start(3, "2s");
    cluster.open();
    let mut written = Vec::new();
    let prefix = format!("failpoint passed: {operation}:");
    let points: Vec<String> = ha_round(&mut cluster, "list", &mut written)
        .iter()
        .filter_map(|line| line.strip_prefix(&prefix))
        .map(str::to_string)
        .collect();
    eprintln!("{operation}: crash points {points:?}");
    for step in STEPS {
        assert!(
            points.iter().any(|p| p == step),
            "{step} not passed: {points:?}"
        );
    }
    for point in &points {
        assert!(is_point(point), "{operation}: unknown crash point {point}");
        ha_round(&mut cluster, &format!("{operation}:{point}"), &mut written);
    }
}

/// One round: the active node is killed, a standby armed with
/// `STRONGROOM_FAILPOINT=failpoint` is elected (the third node is sealed
/// meanwhile, so the armed one is the only candidate) and crashes there
/// (in `list` mode it serves and is stopped); the third node is unsealed and
/// must take over and serve; then every node is back, unarmed, under it.
/// Returns the armed node's stderr.
fn ha_round(
    cluster: &mut Cluster,
    failpoint: &str,
    written: &mut Vec<(String, &'static str)>,
) -> Vec<String> {
    let keys = cluster.init.as_ref().unwrap().keys_hex.clone();
    let keys = [&keys[0], &keys[1]];
    let active = cluster.wait_active(&[0, 1, 2]);
    let (armed, spare) = ((active + 1) % 3, (active + 2) % 3);
    let path = format!("crash/{}", written.len());
    cluster.put(active, &path, "kept").ok();
    written.push((path, "kept"));
    cluster.nodes[spare].daemon.cli().run(&["seal"]).ok();
    assert!(cluster.nodes[armed].daemon.stop().success());
    start_anew(
        &mut cluster.nodes[armed].daemon,
        &[("STRONGROOM_FAILPOINT", failpoint)],
    );
    unseal(&cluster.nodes[armed].daemon, &keys);
    cluster.wait_for(armed, "standing by", |s| s["ha_mode"] == "standby");

    cluster.nodes[active].daemon.signal(Signal::SIGKILL);
    cluster.nodes[active].daemon.wait_exit(SETTLE).unwrap();
    if failpoint == "list" {
        cluster.wait_for(armed, "active", |s| s["ha_mode"] == "active");
        assert!(cluster.nodes[armed].daemon.stop().success());
    } else {
        let node = &mut cluster.nodes[armed].daemon;
        let exit = node
            .wait_exit(SETTLE)
            .unwrap_or_else(|| panic!("{failpoint}: the elected node did not crash"));
        assert_eq!(
            exit.signal(),
            Some(Signal::SIGABRT as i32),
            "{failpoint}: {exit}"
        );
        assert!(
            node.stderr
                .text()
                .contains(&format!("failpoint {failpoint}: aborting")),
            "{failpoint}: aborted elsewhere"
        );
    }
    let lines = cluster.nodes[armed].daemon.stderr.all();

    // The third node takes the role the crashed one held, and serves.
    let crashed = std::time::Instant::now();
    unseal(&cluster.nodes[spare].daemon, &keys);
    let path = format!("crash/{}", written.len());
    // (put_anywhere writes the value "x".)
    let (_, took) = cluster.put_anywhere(&[spare], &path, crashed);
    written.push((path, "x"));
    eprintln!(
        "{failpoint}: the third node took a write {took:?} after the crash (its unseal included)"
    );
    cluster.nodes[active].daemon.start_again();
    unseal(&cluster.nodes[active].daemon, &keys);
    start_anew(&mut cluster.nodes[armed].daemon, &[]);
    unseal(&cluster.nodes[armed].daemon, &keys);
    assert_eq!(cluster.wait_active(&[0, 1, 2]), spare);
    for (path, value) in written.iter() {
        assert_eq!(
            cluster.get(spare, path).as_deref(),
            Some(*value),
            "{failpoint}: {path}"
        );
    }
    lines
}

/// Starts the stopped `daemon` again on its config with `env` (not the
/// environment it was first started with), keeping its CLI's token.
fn start_anew(daemon: &mut Daemon, env: &[(&str, &str)]) {
    let dir = daemon.config_path.parent().unwrap().to_path_buf();
    let text = std::fs::read_to_string(&daemon.config_path).unwrap();
    let cli_env = std::mem::take(&mut daemon.env);
    *daemon = Daemon::start_with(&dir, &text, env);
    daemon.env = cli_env;
}

/// Every operation that names itself for the crash points (a
/// `failpoint::scope` in `src/`) is in `failpoint::OPERATIONS`, and each of
/// those has a crash case in this file; each kind of boundary the wrappers
/// count is one the matrix knows.
#[test]
fn every_crash_point_scope_has_a_crash_case() {
    use strongroom::failpoint::OPERATIONS;

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut scoped = Vec::new();
    let mut boundaries = Vec::new();
    let mut steps = 0;
    for file in rust_files(&root.join("src")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for argument in arguments_of(&text, "failpoint::scope(") {
            let names = match argument.strip_prefix('"') {
                Some(literal) => vec![literal.split('"').next().unwrap().to_string()],
                None if argument.starts_with("op.command()") => quorum_commands(),
                None => panic!("{}: a scope named by {argument:.40}", file.display()),
            };
            scoped.extend(names);
        }
        for kind in arguments_of(&text, "failpoint::before(Boundary::") {
            boundaries.push(kind.split(')').next().unwrap().to_lowercase());
        }
        for step in arguments_of(&text, "failpoint::step(") {
            let name = step.strip_prefix('"').and_then(|s| s.split('"').next());
            assert!(
                name.is_some_and(|n| STEPS.contains(&n)),
                "{}: a step the matrix does not know: {step:.40}",
                file.display()
            );
            steps += 1;
        }
    }
    for name in &scoped {
        assert!(
            OPERATIONS.contains(&name.as_str()),
            "the scope {name} is not in failpoint::OPERATIONS"
        );
    }
    for name in OPERATIONS {
        assert!(
            scoped.iter().any(|s| s == name),
            "failpoint::OPERATIONS lists {name}, which no scope in src/ uses"
        );
    }
    // Rekey's confirmation and verification are the two ways to its one
    // commit, each with its case (rekey with and without --verify); any
    // other name used twice could not be told apart by a crash point.
    scoped.sort();
    for pair in scoped.windows(2) {
        assert!(
            pair[0] != pair[1] || pair[0] == "rekey-commit",
            "two scopes share the name {}",
            pair[0]
        );
    }

    let this = std::fs::read_to_string(root.join("tests/integration/crash.rs")).unwrap();
    let mut cases: Vec<String> = arguments_of(&this, "crash_matrix(")
        .into_iter()
        .chain(arguments_of(&this, "crash_matrix_of("))
        .chain(arguments_of(&this, "ha_crash_matrix("))
        .filter_map(|a| Some(a.strip_prefix('"')?.split('"').next()?.to_string()))
        .filter(|name| name.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
        .collect();
    cases.sort();
    cases.dedup();
    for name in OPERATIONS {
        assert!(
            cases.iter().any(|c| c == name),
            "the operation {name} has no crash case in crash.rs ({cases:?})"
        );
    }
    boundaries.sort();
    boundaries.dedup();
    for kind in &boundaries {
        assert!(
            is_point(&format!("before-{kind}-1")),
            "unknown boundary {kind}"
        );
    }
    // Both kinds are counted: storage commits and KMS calls; and each
    // named step is used once.
    assert_eq!(boundaries, ["commit", "kms"]);
    assert_eq!(steps, STEPS.len());
}

/// The names `op.command()` gives a scope: one per quorum operation (a new
/// operation stops this match from compiling until it is listed).
fn quorum_commands() -> Vec<String> {
    use strongroom::lifecycle::Operation;
    let all = [
        Operation::Rekey,
        Operation::RotateRoot,
        Operation::GenerateRoot,
    ];
    for operation in all {
        match operation {
            Operation::Rekey | Operation::RotateRoot | Operation::GenerateRoot => {}
        }
    }
    all.iter().map(|o| o.command().to_string()).collect()
}

/// The text after each `call` in `text`, from its first non-blank character.
fn arguments_of(text: &str, call: &str) -> Vec<String> {
    text.match_indices(call)
        .filter(|(at, _)| !text[..*at].ends_with("fn "))
        .map(|(at, _)| text[at + call.len()..].trim_start().to_string())
        .collect()
}

/// The `.rs` files under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}
