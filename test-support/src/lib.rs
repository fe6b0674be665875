//! What strongroom's integration tests and its benchmark share: a real KMS
//! to seal with ([`kms`]: moto's server and a fault-injecting proxy),
//! LocalStack's KMS emulator for key import and enforced key states
//! ([`localstack`]), loopback ports held for a test ([`PortHold`]), a
//! private PostgreSQL ([`postgres`]), and bounded waits. Every process
//! started here is stopped by PID: moto and the proxy when their handle is
//! dropped, the PostgreSQL cluster and the LocalStack emulator shared by a
//! test run by their watchers when the run's test runner exits. All
//! traffic stays on 127.0.0.1.

// A helper that cannot set itself up stops the test at once with the
// reason: unwrap and expect are how it says so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod kms;
pub mod localstack;
pub mod postgres;

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

/// The lock of a server shared by one test run (`name`: `pg`,
/// `localstack`): `/tmp/strongroom-<name>-<run>` (the run being
/// `NEXTEST_RUN_ID`, else this process), its lock file held until the
/// returned `File` is dropped, and what the first process recorded there
/// (empty when this one is the first).
pub fn run_lock(name: &str) -> (PathBuf, File, String) {
    let run = std::env::var("NEXTEST_RUN_ID").unwrap_or_else(|_| std::process::id().to_string());
    let root = PathBuf::from(format!("/tmp/strongroom-{name}-{run}"));
    let mut lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(format!("{}.lock", root.display()))
        .unwrap();
    lock.lock().unwrap();
    let mut recorded = String::new();
    lock.read_to_string(&mut recorded).unwrap();
    (root, lock, recorded)
}

/// A loopback port with nothing listening on it (yet). The port is free
/// again when this returns, so another process may take it before the
/// caller binds it: the benchmark's peers, which take a fixed address,
/// use it; the tests use [`PortHold`].
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback port held for the life of this value: bound but not
/// listening, so a connection to it is refused (a real outage), and no
/// other socket can take it, except [`PortHold::listen`]'s, which share it
/// through `SO_REUSEPORT`. A test plays a server that goes away and comes
/// back on the same address without ever racing for the port.
pub struct PortHold {
    _socket: Socket,
    /// The held port.
    pub port: u16,
}

impl Default for PortHold {
    fn default() -> Self {
        Self::new()
    }
}

impl PortHold {
    /// Holds a port the kernel picks.
    pub fn new() -> Self {
        let socket = shared_socket(0);
        let port = socket.local_addr().unwrap().as_socket().unwrap().port();
        Self {
            _socket: socket,
            port,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A listener on the held port; connections are refused again once it
    /// is dropped.
    pub fn listen(&self) -> TcpListener {
        let socket = shared_socket(self.port);
        socket.listen(128).unwrap();
        socket.into()
    }
}

/// A TCP socket bound to `127.0.0.1:port` with `SO_REUSEPORT`.
fn shared_socket(port: u16) -> Socket {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_reuse_port(true).unwrap();
    socket
        .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into())
        .unwrap();
    socket
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
