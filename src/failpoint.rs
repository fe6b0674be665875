//! Crash points for the crash-safety tests.
//!
//! Built only with the cargo feature `failpoints` (`scripts/test` always turns
//! it on; release builds never have it). The environment variable
//! `STRONGROOM_FAILPOINT=<operation>:<point>` makes the daemon abort, as a
//! crash would, at that point of that operation:
//!
//! - `before-kms-N`, `after-kms-N`: around the N-th KMS call of the operation;
//! - `before-commit-N`, `after-commit-N`: around its N-th storage commit
//!   (after `after-commit-N` the batch is durable).
//!
//! - a named step, `<step>` (see [`step`]): the HA take-over's
//!   `after-term-taken` (the term is set, nothing reloaded yet) and
//!   `after-reload` (the take-over finished, the node serves); a Key
//!   Management distribution's `after-create-key` (a KMS key exists that
//!   only its tag knows), `after-key-id-recorded`, `after-import`,
//!   `before-alias-moves` and `after-alias-moves`; its removal's
//!   `after-alias-deleted` and `after-keys-scheduled` (nothing recorded).
//!
//! `STRONGROOM_FAILPOINT=list` aborts nowhere and prints `failpoint passed:
//! <operation>:<point>` at every boundary, so a test can enumerate them.
//!
//! Operations name themselves with [`scope`] (one of [`OPERATIONS`]);
//! the storage and KMS wrappers (`storage::failpoint`, `seal::failpoint`)
//! count the calls made inside the scope with `before` and `after`, so
//! every boundary of every operation is reachable without naming each call
//! site. Without the feature, [`scope`] only runs the future.
//!
//! A pause point, for the HA fault tests:
//! `STRONGROOM_FAILPOINT_PAUSE=<file>` makes every write that holds an HA
//! term stop inside its transaction, after its fence and its statements and
//! before COMMIT, while `<file>` exists (polled every 10 ms, for at most
//! 120 s), writing `failpoint pause: a write holds before COMMIT` to stderr
//! once per write that stops (`pause_before_commit`). A test makes the
//! file, sends a write, waits for the line, acts (SIGSTOP, a take-over),
//! removes the file.

use std::future::Future;

/// Every operation name passed to [`scope`]. `tests/integration/crash/`
/// checks that each scope in `src/` is listed here and that each name here
/// has a crash case.
pub const OPERATIONS: &[&str] = &[
    // Init's KMS calls (awskms), made before anything is written.
    "init",
    // Init's one commit, when the receiver of the keys confirms.
    "init-commit",
    "rotate",
    "restore",
    // Rekey's quorum check (a KMS call with awskms).
    "rekey",
    // The new shares' commit: confirmation or verification.
    "rekey-commit",
    "rotate-root",
    "generate-root",
    "migrate",
    "rewrap",
    // With several seals: the active node's rewrap of the seals that miss
    // the keys (a seal added, one that missed a write, a store of one seal
    // moving to several) and the deletion of a leaving seal's envelopes.
    "seal-set",
    // An HA take-over: from the term taken through the reload of the seal
    // configuration and keyring (src/ha/mod.rs).
    "ha-take-over",
    // Key Management: a distribution's steps (CreateKey, import, alias,
    // enabled states), whether a Distribute, a rotation or a change of
    // min_enabled_version runs them; and a removal's (alias deleted, keys
    // scheduled for deletion, the record written). Its KMS calls are not
    // counted (they are not the seal's), its named steps are the points.
    "keymgmt-distribute",
    "keymgmt-remove",
];

#[cfg(feature = "failpoints")]
pub use enabled::{Boundary, after, before, pause_before_commit};

/// A named crash point of the operation in scope: aborts at
/// `<operation>:<name>` (and `list` prints it).
#[cfg(feature = "failpoints")]
pub fn step(name: &'static str) {
    enabled::step(name);
}

/// A named crash point (compiled out without the feature).
#[cfg(not(feature = "failpoints"))]
pub fn step(_name: &'static str) {}

/// Runs `operation` as the operation `name`, so crash points inside it can
/// be targeted.
#[cfg(feature = "failpoints")]
pub async fn scope<F: Future>(name: &'static str, operation: F) -> F::Output {
    enabled::OPERATION
        .scope(enabled::Counters::new(name), operation)
        .await
}

/// Runs `operation` (crash points are compiled out without the feature).
#[cfg(not(feature = "failpoints"))]
pub async fn scope<F: Future>(_name: &'static str, operation: F) -> F::Output {
    operation.await
}

#[cfg(feature = "failpoints")]
mod enabled {
    use std::cell::Cell;
    use std::path::PathBuf;
    use std::sync::OnceLock;
    use std::time::Duration;

    /// The variable that names the crash point.
    const VARIABLE: &str = "STRONGROOM_FAILPOINT";

    pub(super) struct Counters {
        name: &'static str,
        kms_calls: Cell<u32>,
        commits: Cell<u32>,
    }

    impl Counters {
        pub(super) fn new(name: &'static str) -> Self {
            Self {
                name,
                kms_calls: Cell::new(0),
                commits: Cell::new(0),
            }
        }
    }

    tokio::task_local! {
        pub(super) static OPERATION: Counters;
    }

    fn target() -> Option<&'static str> {
        static TARGET: OnceLock<Option<String>> = OnceLock::new();
        TARGET
            .get_or_init(|| std::env::var(VARIABLE).ok())
            .as_deref()
    }

    /// The kind of call a crash point sits around.
    #[derive(Clone, Copy)]
    pub enum Boundary {
        /// A storage commit (`…-commit-N`).
        Commit,
        /// A KMS call (`…-kms-N`).
        Kms,
    }

    impl Boundary {
        fn name(self) -> &'static str {
            match self {
                Self::Commit => "commit",
                Self::Kms => "kms",
            }
        }

        fn counter(self, counters: &Counters) -> &Cell<u32> {
            match self {
                Self::Commit => &counters.commits,
                Self::Kms => &counters.kms_calls,
            }
        }
    }

    /// Counts a call at `boundary` in the current operation (if any),
    /// aborts at `<operation>:before-<boundary>-<n>`, and returns n for
    /// [`after`].
    pub fn before(boundary: Boundary) -> u32 {
        if target().is_none() {
            return 0;
        }
        OPERATION
            .try_with(|op| {
                let count = boundary.counter(op);
                count.set(count.get() + 1);
                crash_if_target(op.name, "before", boundary.name(), count.get());
                count.get()
            })
            .unwrap_or(0)
    }

    /// Aborts at `<operation>:after-<boundary>-<n>`.
    pub fn after(boundary: Boundary, n: u32) {
        if n == 0 {
            return;
        }
        let _ = OPERATION.try_with(|op| crash_if_target(op.name, "after", boundary.name(), n));
    }

    /// Aborts at `<operation>:<name>`.
    pub(super) fn step(name: &'static str) {
        if target().is_none() {
            return;
        }
        let _ = OPERATION.try_with(|op| crash_at(format!("{}:{name}", op.name)));
    }

    fn crash_if_target(operation: &str, side: &str, what: &str, n: u32) {
        crash_at(format!("{operation}:{side}-{what}-{n}"));
    }

    fn crash_at(point: String) {
        if target() == Some("list") {
            eprintln!("failpoint passed: {point}");
        } else if Some(point.as_str()) == target() {
            eprintln!("failpoint {point}: aborting");
            std::process::abort();
        }
    }

    /// The variable that names the pause file.
    const PAUSE_VARIABLE: &str = "STRONGROOM_FAILPOINT_PAUSE";
    /// The longest a write stays paused: a test that forgot its file
    /// does not hang the daemon.
    pub(super) const PAUSE_LIMIT: Duration = Duration::from_secs(120);
    const PAUSE_POLL: Duration = Duration::from_millis(10);

    fn pause_file() -> Option<&'static PathBuf> {
        static FILE: OnceLock<Option<PathBuf>> = OnceLock::new();
        FILE.get_or_init(|| std::env::var_os(PAUSE_VARIABLE).map(PathBuf::from))
            .as_ref()
    }

    /// Waits while the pause file exists (bounded by [`PAUSE_LIMIT`]); the
    /// caller is a write holding a term, between its statements and COMMIT.
    pub async fn pause_before_commit() {
        let Some(file) = pause_file() else {
            return;
        };
        if !file.exists() {
            return;
        }
        eprintln!("failpoint pause: a write holds before COMMIT");
        let until = tokio::time::Instant::now() + PAUSE_LIMIT;
        while file.exists() && tokio::time::Instant::now() < until {
            tokio::time::sleep(PAUSE_POLL).await;
        }
        eprintln!("failpoint pause: released");
    }
}
