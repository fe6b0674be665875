//! A store a running daemon holds: its cluster id cannot be read, so the
//! round trip's encryption context cannot carry it, and a denial that a
//! key policy on the cluster id would give is a warning, not a failure.

use strongroom_test_support::kms::Fault;

use super::{assert_check, assert_clean};
use crate::diagnose_listener::diagnose;
use crate::support::kms::{init_recovery, kms, start_daemon};

#[test]
fn a_denied_round_trip_while_a_daemon_holds_the_store_is_a_warning() {
    let kms = kms();
    let dir = crate::support::daemon::tempdir();
    let mut daemon = start_daemon(dir.path(), &kms.proxy.endpoint(), "");
    init_recovery(&daemon);
    // What KMS answers a context without the cluster id a policy requires.
    kms.proxy
        .fault(Some("Encrypt"), Fault::access_denied("Encrypt"));
    let run = diagnose(&daemon.config_path, "seal", &[]).ok();
    assert_clean(&run);
    let report = run.json();
    assert_check(
        &report,
        "encrypt and decrypt",
        "warning",
        "kms:Encrypt is not allowed",
    );
    assert_check(
        &report,
        "encrypt and decrypt",
        "warning",
        "the store's cluster id could not be read (a running strongroom (pid",
    );
    assert_check(&report, "stored root key", "skipped", "holds the store");
    daemon.stop();

    // Stopped, the cluster id is read: the same denial is a failure.
    let report = diagnose(&daemon.config_path, "seal", &[]).code(1).json();
    assert_check(
        &report,
        "encrypt and decrypt",
        "failure",
        "kms:Encrypt is not allowed",
    );
}
