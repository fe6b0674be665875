//! What strongroom's integration tests and its benchmark share: a real KMS
//! to seal with ([`kms`]: moto's server and a fault-injecting proxy), free
//! loopback ports, and bounded waits. Every process started here is stopped
//! by PID when its handle is dropped, and all traffic stays on 127.0.0.1.

// A helper that cannot set itself up stops the test at once with the
// reason: unwrap and expect are how it says so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod kms;

use std::net::TcpListener;
use std::time::{Duration, Instant};

/// A loopback port with nothing listening on it (yet).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` every 10 ms until it holds, up to `timeout`; returns the time it took.
#[track_caller]
pub fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}
