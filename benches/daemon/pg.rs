//! The bench's own PostgreSQL: Debian's server binaries, a private cluster
//! in a temp dir owned by `nobody` (PostgreSQL refuses to run as root),
//! pinned to one CPU with `taskset`, listening on 127.0.0.1 only, fsync on
//! (as an operator runs it), one database per peer. The postmaster is a
//! child of the bench (it dies with it; its backends exit when they see it
//! gone) and is stopped by PID.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::BOUND;
use crate::process::{Proc, die_with_parent, output_within};
use strongroom_test_support::free_port;

/// The unprivileged user PostgreSQL runs as.
const RUN_AS: &str = "nobody";

/// A running private PostgreSQL.
pub(crate) struct Postgres {
    pub(crate) port: u16,
    bin: PathBuf,
    proc: Option<Proc>,
    _dir: tempfile::TempDir,
}

/// The newest Debian PostgreSQL server's `bin` directory, if installed.
pub(crate) fn server_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// `command` as [`RUN_AS`] (the bench runs as root, as scripts/test does).
fn as_run_as(program: &Path) -> Command {
    let mut command = Command::new("setpriv");
    command
        .args([
            "--reuid",
            RUN_AS,
            "--regid",
            "nogroup",
            "--clear-groups",
            "--",
        ])
        .arg(program);
    command
}

impl Postgres {
    /// initdb and start on `cpu`; waits until it accepts connections.
    pub(crate) fn start(bin: &Path, cpu: usize) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("data dir");
        for path in [dir.path(), &data] {
            let out = output_within(
                Command::new("chown")
                    .arg(format!("{RUN_AS}:nogroup"))
                    .arg(path),
            )
            .expect("chown ran");
            assert!(out.status.success(), "chown {} failed", path.display());
        }
        let out = output_within(
            as_run_as(&bin.join("initdb"))
                .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "-D"])
                .arg(&data),
        )
        .expect("initdb ran");
        assert!(
            out.status.success(),
            "initdb failed (the bench runs PostgreSQL as {RUN_AS} through setpriv, so it needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let mut command = Command::new("taskset");
        // A change of user clears the parent-death signal, so the setpriv
        // that changes it sets it again.
        command
            .args(["-c", &cpu.to_string(), "setpriv"])
            .args(["--reuid", RUN_AS, "--regid", "nogroup", "--clear-groups"])
            .args(["--pdeathsig", "KILL", "--"])
            .arg(bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-c", "listen_addresses=127.0.0.1", "-c"])
            .arg(format!("port={port}"))
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.path().display()))
            .args(["-c", "max_connections=200"]);
        // taskset and setpriv both exec: the PID is the postmaster's.
        let child = die_with_parent(&command)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn postgres");
        let postgres = Self {
            port,
            bin: bin.to_path_buf(),
            proc: Some(Proc(Some(child))),
            _dir: dir,
        };
        let start = Instant::now();
        while postgres.try_psql("postgres", "SELECT 1").is_none() {
            assert!(start.elapsed() < BOUND, "PostgreSQL did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        postgres
    }

    fn try_psql(&self, db: &str, sql: &str) -> Option<String> {
        let out = output_within(
            Command::new(self.bin.join("psql"))
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args(["-U", "postgres", "-d", db, "-c", sql])
                .env("PGCONNECT_TIMEOUT", "5"),
        )?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Runs `sql` in database `db`; the bench stops if it fails.
    pub(crate) fn psql(&self, db: &str, sql: &str) -> String {
        self.try_psql(db, sql)
            .unwrap_or_else(|| panic!("psql {sql:?} in {db} failed"))
    }

    /// A new database `name`; its URL for the superuser (trusted).
    pub(crate) fn database(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        format!(
            "postgres://postgres@127.0.0.1:{}/{name}?sslmode=disable",
            self.port
        )
    }
}

impl Drop for Postgres {
    /// A fast shutdown (SIGINT) by PID, bounded; SIGKILL past the bound.
    fn drop(&mut self) {
        let Some(mut proc) = self.proc.take() else {
            return;
        };
        let _ = kill(Pid::from_raw(proc.pid() as i32), Signal::SIGINT);
        let start = Instant::now();
        while !proc.exited() && start.elapsed() < BOUND {
            std::thread::sleep(Duration::from_millis(20));
        }
        // Drop kills it if it is still running.
    }
}
