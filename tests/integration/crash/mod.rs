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
//! (`coverage.rs`); the cases are in `single.rs`, `multiseal.rs`,
//! `multiseal_emergency.rs` and `ha.rs`, the stores they start from in
//! `stores.rs`, and the operations several cases share in `operations.rs`.
//! Key Management's distributions (`keymgmt.rs`) are crashed at their named
//! steps and checked on the KMS side, in LocalStack.
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
    EMERGENCY_SEAL, Kms, init_recovery, kms, named_seal_block, seal_block, two_seals, wait_unsealed,
};
use crate::support::quorum::{fresh_otp, start, start_as};
use crate::support::store::entries;
use strongroom::seal::envelope::Purpose;
use strongroom::seal::set::EnvelopeSet;
use strongroom_test_support::kms::Fault;

mod coverage;
mod ha;
mod keymgmt;
mod multiseal;
mod multiseal_emergency;
mod operations;
mod single;
mod stores;

use operations::*;
use stores::*;

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

/// The HA take-over's named steps.
const HA_STEPS: [&str; 2] = ["after-term-taken", "after-reload"];

/// The named steps (`failpoint::step`) in `src/`: the HA take-over's, then
/// Key Management's distribution's and removal's.
const STEPS: [&str; 9] = [
    "after-term-taken",
    "after-reload",
    "after-create-key",
    "after-key-id-recorded",
    "after-import",
    "before-alias-moves",
    "after-alias-moves",
    "after-alias-deleted",
    "after-keys-scheduled",
];
