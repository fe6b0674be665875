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
//! `STRONGROOM_FAILPOINT=list` aborts nowhere and prints `failpoint passed:
//! <operation>:<point>` at every boundary, so a test can enumerate them.
//!
//! Operations name themselves with [`scope`] (one of [`OPERATIONS`]);
//! the storage and KMS wrappers (`storage::failpoint`, `seal::failpoint`)
//! count the calls made inside the scope with `before` and `after`, so
//! every boundary of every operation is reachable without naming each call
//! site. Without the feature, [`scope`] only runs the future.

use std::future::Future;

/// Every operation name passed to [`scope`]. `tests/integration/crash.rs`
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
];

#[cfg(feature = "failpoints")]
pub use enabled::{Boundary, after, before};

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
    use std::sync::OnceLock;

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

    fn crash_if_target(operation: &str, side: &str, what: &str, n: u32) {
        let point = format!("{operation}:{side}-{what}-{n}");
        if target() == Some("list") {
            eprintln!("failpoint passed: {point}");
        } else if Some(point.as_str()) == target() {
            eprintln!("failpoint {point}: aborting");
            std::process::abort();
        }
    }
}
