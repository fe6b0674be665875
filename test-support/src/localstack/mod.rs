//! LocalStack's AWS KMS emulator for the tests, for what moto cannot do:
//! key import (GetParametersForImport, ImportKeyMaterial) and key states
//! enforced as AWS does (`DisabledException`, `KMSInvalidStateException`
//! for pending import and pending deletion, `IncorrectKeyException`).
//!
//! It runs without Docker from `.venv-localstack` (made by `scripts/test`
//! from `../shared/localstack/requirements.txt`; a test never waits for
//! pip: a missing or stale venv fails with the command that makes it)
//! through `../shared/scripts/localstack-kms`, on 127.0.0.1 only.
//!
//! One emulator serves a whole test run, as the PostgreSQL cluster does
//! ([`crate::postgres`]): the first test process to take the run's lock
//! file (`/tmp/strongroom-localstack-<run>.lock`, the run being
//! `NEXTEST_RUN_ID`, else this process) starts it on a free port, waits
//! until its health check says KMS is running, and records the port; the
//! others read it. A watcher (`setsid`) started with it waits for the test
//! runner (this process's parent) to exit, then stops the emulator by its
//! PID (its process group: the script execs `timeout`, which runs Python)
//! and removes its directory. The emulator also exits by itself after
//! [`LIFETIME_S`]. Every test makes keys of its own, so sharing is safe.
//! A test process killed while starting it leaves its PID file and no
//! record: the next start stops that emulator (after the watcher's
//! command-line check) before clearing the directory, so it does not run
//! on unrecorded until its lifetime ends.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::kms::kms_request;

/// Seconds after which the emulator exits by itself: longer than any run
/// of the suite, so only a watcher that failed leaves it running that long.
pub const LIFETIME_S: u64 = 3 * 3600;
/// How long a start may take to report KMS running (5-30 s is usual).
const START_DEADLINE: Duration = Duration::from_secs(120);
/// How long a stopped emulator has to exit on SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(30);
/// In the command line of the emulator (the script's, then, once it execs,
/// `timeout`'s running `.venv-localstack/bin/python -m localstack...`): a
/// PID whose command line lacks it is no longer the emulator's and is
/// never signalled.
const EMULATOR_MARK: &str = "localstack";

/// The run's shared emulator.
pub struct LocalStack {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// How long it took from the start of the script to a health check
    /// that reports KMS running (measured by the process that started it).
    pub started_in: Duration,
}

/// The shared emulator, started by the first test of the run that asks.
pub fn localstack() -> &'static LocalStack {
    static LOCALSTACK: OnceLock<LocalStack> = OnceLock::new();
    LOCALSTACK.get_or_init(LocalStack::shared)
}

impl LocalStack {
    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One KMS JSON request (`TrentService.<action>`, account
    /// 000000000000, region us-east-1, as boto3 with the access key `test`
    /// sees it); returns the HTTP status and the answer's JSON (an error's
    /// `__type` and `message` included).
    pub fn call(&self, action: &str, body: Value) -> (u16, Value) {
        kms_request(&format!("127.0.0.1:{}", self.port), action, &body)
    }

    fn shared() -> Self {
        // Checked before the lock file exists: a failure leaves nothing.
        let venv = venv();
        let (root, mut lock, recorded) = crate::run_lock("localstack");
        let shared = match parse_record(&recorded) {
            Some(shared) => {
                assert!(
                    kms_running(shared.port),
                    "the run's LocalStack on 127.0.0.1:{} does not answer its health check any more (its log: {})",
                    shared.port,
                    root.join("localstack.log").display()
                );
                shared
            }
            None => {
                let shared = start(&venv, &root);
                lock.write_all(
                    format!("{} {}", shared.port, shared.started_in.as_secs_f64()).as_bytes(),
                )
                .unwrap();
                lock.sync_all().unwrap();
                shared
            }
        };
        drop(lock);
        shared
    }
}

/// The lock file's `PORT SECONDS`, written by the process that started it.
fn parse_record(text: &str) -> Option<LocalStack> {
    let mut words = text.split_whitespace();
    let port = words.next()?.parse().ok()?;
    let seconds: f64 = words.next()?.parse().ok()?;
    Some(LocalStack {
        port,
        started_in: Duration::try_from_secs_f64(seconds).ok()?,
    })
}

/// The workspace root (this crate's parent).
fn workspace() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    fs::canonicalize(&root).unwrap_or(root)
}

/// `.venv-localstack`, which must hold exactly the pinned requirements:
/// otherwise the script would install them inside a test.
fn venv() -> PathBuf {
    let venv = workspace().join(".venv-localstack");
    let pinned = fs::read(workspace().join("../shared/localstack/requirements.txt"));
    let installed = fs::read(venv.join("requirements.installed"));
    let current = matches!((&pinned, &installed), (Ok(a), Ok(b)) if a == b);
    assert!(
        current && venv.join("bin/python").exists(),
        "{} is missing or older than ../shared/localstack/requirements.txt: run scripts/test, which prepares it",
        venv.display()
    );
    venv
}

/// Starts the emulator under `root` (its log, state and certificate) on a
/// free port, with the watcher that stops it when the run ends, and waits
/// until KMS is running.
fn start(venv: &Path, root: &Path) -> LocalStack {
    let script = workspace().join("../shared/scripts/localstack-kms");
    let pid_file = root.join("localstack.pid");
    // An earlier start whose process was killed before recording it.
    stop_earlier(&pid_file);
    let _ = fs::remove_dir_all(root);
    fs::create_dir_all(root).unwrap();
    let certificate = certificate(root);
    let log_path = root.join("localstack.log");
    watch(root, &pid_file, std::os::unix::process::parent_id());
    // A port taken by another process between the check and the bind makes
    // the emulator exit: try another.
    for _ in 0..5 {
        let port = crate::free_port();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let started = Instant::now();
        let mut child = Command::new(&script)
            .arg(venv)
            .arg(port.to_string())
            .arg(LIFETIME_S.to_string())
            .arg(root.join("state"))
            // LocalStack 4.6.0 makes its own certificate with an API that
            // the pinned pyOpenSSL no longer has; given one, it makes none.
            .env("CUSTOM_SSL_CERT_PATH", &certificate)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // Its own process group: outside the test's, which the test
            // runner may signal, and stopped as a whole by the watcher.
            .process_group(0)
            .spawn()
            .unwrap();
        fs::write(&pid_file, child.id().to_string()).unwrap();
        if wait_until_running(&mut child, port, started) {
            return LocalStack {
                port,
                started_in: started.elapsed(),
            };
        }
    }
    panic!(
        "LocalStack did not start on 127.0.0.1 in 5 tries; its log: {}",
        fs::read_to_string(&log_path).unwrap_or_default()
    );
}

/// Waits for `child` to report KMS running on `port`: true once it does,
/// false if it exited first; stops it and fails the test at the deadline.
fn wait_until_running(child: &mut Child, port: u16, started: Instant) -> bool {
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if kms_running(port) {
            return true;
        }
        if started.elapsed() > START_DEADLINE {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            panic!(
                "LocalStack on 127.0.0.1:{port} did not report KMS running within {START_DEADLINE:?}"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stops the emulator whose PID is in `pid_file`, if there is one and it
/// still runs: SIGTERM to its process group, SIGKILL after [`STOP_GRACE`],
/// each only while the PID is still the emulator's.
fn stop_earlier(pid_file: &Path) {
    let Ok(text) = fs::read_to_string(pid_file) else {
        return;
    };
    let Some(pid) = earlier_emulator(&text, std::process::id(), command_line) else {
        return;
    };
    signal_group("TERM", pid);
    if !gone_within(pid, STOP_GRACE) && is_emulator(pid) {
        signal_group("KILL", pid);
        gone_within(pid, Duration::from_secs(5));
    }
}

/// The PID to stop, given a PID file's text: the PID it names while that
/// process's command line (from `command_line_of`) has [`EMULATOR_MARK`],
/// and never 0, 1 or `this_process` (a test's own command line may name
/// LocalStack).
fn earlier_emulator(
    pid_text: &str,
    this_process: u32,
    command_line_of: impl Fn(u32) -> Option<Vec<u8>>,
) -> Option<u32> {
    let pid: u32 = pid_text.trim().parse().ok()?;
    if pid <= 1 || pid == this_process {
        return None;
    }
    command_line_of(pid)
        .is_some_and(|line| has_mark(&line))
        .then_some(pid)
}

fn has_mark(command_line: &[u8]) -> bool {
    command_line
        .windows(EMULATOR_MARK.len())
        .any(|part| part == EMULATOR_MARK.as_bytes())
}

/// `/proc/PID/cmdline` (empty for a zombie), if the process exists.
fn command_line(pid: u32) -> Option<Vec<u8>> {
    fs::read(format!("/proc/{pid}/cmdline")).ok()
}

fn is_emulator(pid: u32) -> bool {
    command_line(pid).is_some_and(|line| has_mark(&line))
}

/// Sends SIG`signal` to the process group `pid` leads.
fn signal_group(signal: &str, pid: u32) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
}

/// Whether `pid` stopped being the emulator (exited, or a zombie) within
/// `deadline`.
fn gone_within(pid: u32, deadline: Duration) -> bool {
    let start = Instant::now();
    while is_emulator(pid) {
        if start.elapsed() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

/// Whether `GET /_localstack/health` on `port` answers 200 with KMS running.
fn kms_running(port: u16) -> bool {
    let answer = || -> std::io::Result<String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(
            b"GET /_localstack/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        )?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        Ok(text)
    };
    answer()
        .is_ok_and(|text| text.starts_with("HTTP/1.1 200") && text.contains("\"kms\": \"running\""))
}

/// A key and a self-signed certificate for 127.0.0.1 in one PEM file, as
/// LocalStack's `CUSTOM_SSL_CERT_PATH` takes them (it serves HTTPS on the
/// same port; the tests use plain HTTP).
fn certificate(root: &Path) -> PathBuf {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let path = root.join("server.pem");
    fs::write(&path, format!("{}{}", key.serialize_pem(), cert.pem())).unwrap();
    path
}

/// Starts the watcher: when the process `runner` (the test runner) exits,
/// the emulator whose PID is in `pid_file` is stopped (SIGTERM to its
/// process group, SIGKILL after 30 s) and `root` and its lock removed.
/// The PID is signalled only while it is still the emulator's.
fn watch(root: &Path, pid_file: &Path, runner: u32) {
    let script = format!(
        "while kill -0 {runner} 2>/dev/null; do sleep 1; done; \
         pid=$(cat {pid_file} 2>/dev/null); \
         if [ -n \"$pid\" ] && grep -q {EMULATOR_MARK} /proc/$pid/cmdline 2>/dev/null; then \
           kill -TERM -$pid; \
           for i in $(seq 30); do kill -0 $pid 2>/dev/null || break; sleep 1; done; \
           kill -0 $pid 2>/dev/null && kill -KILL -$pid; \
         fi; \
         rm -rf {root} {root}.lock",
        pid_file = pid_file.display(),
        root = root.display(),
    );
    let log = File::create(root.join("watcher.log")).unwrap();
    Command::new("setsid")
        .args(["-f", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .status()
        .unwrap();
}

#[cfg(test)]
mod tests;
