//! A private PostgreSQL for the tests: Debian's server binaries
//! (`/usr/lib/postgresql/<version>/bin`), a cluster in a temp dir owned by
//! an unprivileged user (PostgreSQL refuses to run as root), listening on
//! 127.0.0.1 only, and a fresh database per test.
//!
//! One cluster serves a whole test run, although nextest runs each test in
//! a process of its own: the first process to take the run's lock file
//! (`/tmp/strongroom-pg-<run>.lock`, the run being `NEXTEST_RUN_ID`, else
//! this process) creates and starts it and records its port; the others
//! read the port. Test processes come and go, so none of them can be "the
//! last user"; instead the first starts a watcher (`setsid`) that waits for
//! the process that runs the tests (nextest or cargo test: this process's
//! parent) to exit, then stops PostgreSQL by the PID in its pid file
//! (`pg_ctl stop`) and removes the directory. A test that crashes or is
//! killed leaves nothing behind for longer than the run.
//!
//! Authentication: `trust` for every user on 127.0.0.1, except
//! [`PASSWORD_USER`], who must give [`PASSWORD`] (SCRAM), and [`TLS_USER`],
//! who is refused without TLS. The server has TLS on, with a certificate for
//! the IP 127.0.0.1 (not the name localhost) signed by a CA made at start
//! ([`Cluster::ca_file`]).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A user whose password is checked.
pub const PASSWORD_USER: &str = "strongroom_pw";
/// That user's password.
pub const PASSWORD: &str = "pg-secret-7f3a";
/// A user refused unless the connection is TLS.
pub const TLS_USER: &str = "strongroom_tls";
/// The unprivileged user PostgreSQL runs as.
const RUN_AS: &str = "nobody";
/// Seconds `pg_ctl` waits for a start or a stop.
const PG_CTL_WAIT: &str = "60";

/// The run's shared cluster.
pub struct Cluster {
    /// Its port on 127.0.0.1.
    pub port: u16,
    bin: PathBuf,
    root: PathBuf,
}

/// One test's database on the shared cluster.
pub struct Database {
    /// Its name.
    pub name: String,
    /// Its cluster's port.
    pub port: u16,
}

impl Database {
    /// A URL for the superuser (trusted: no password).
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{}?sslmode=disable",
            self.port, self.name
        )
    }

    /// A URL for [`PASSWORD_USER`] with `password`.
    pub fn url_with_password(&self, password: &str) -> String {
        format!(
            "postgres://{PASSWORD_USER}:{password}@127.0.0.1:{}/{}?sslmode=disable",
            self.port, self.name
        )
    }

    /// Runs `sql` in this database with psql; panics with psql's words
    /// when it fails. Returns what psql printed (unaligned, tuples only).
    pub fn psql(&self, sql: &str) -> String {
        cluster().psql(&self.name, sql)
    }
}

/// The shared cluster, started by the first test of the run that asks.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(Cluster::shared)
}

/// A new empty database on the shared cluster.
pub fn database() -> Database {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let cluster = cluster();
    let name = format!(
        "t_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    cluster.psql("postgres", &format!("CREATE DATABASE {name}"));
    Database {
        name,
        port: cluster.port,
    }
}

/// The newest Debian PostgreSQL server's `bin` directory.
fn server_bin() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("pg_ctl").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).expect(
        "no PostgreSQL server under /usr/lib/postgresql/*/bin: scripts/test installs Debian's postgresql package",
    )
}

impl Cluster {
    fn shared() -> Self {
        let bin = server_bin();
        let (root, mut lock, recorded) = crate::run_lock("pg");
        let port = match recorded.trim().parse() {
            Ok(port) => port,
            Err(_) => {
                let port = start(&bin, &root);
                lock.write_all(port.to_string().as_bytes()).unwrap();
                lock.sync_all().unwrap();
                port
            }
        };
        drop(lock);
        Self { port, bin, root }
    }

    /// The CA certificate (PEM) that signed the server's.
    pub fn ca_file(&self) -> PathBuf {
        self.root.join("ca.pem")
    }

    /// Runs `sql` in the `postgres` database (CREATE / DROP DATABASE).
    pub fn psql_admin(&self, sql: &str) -> String {
        self.psql("postgres", sql)
    }

    fn psql(&self, dbname: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-d", dbname, "-c", sql])
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

/// Runs `command` as [`RUN_AS`]; panics with its output when it fails.
fn as_postgres_user(command: &Path, args: &[&str]) {
    let out = Command::new("setpriv")
        .args(["--reuid", RUN_AS, "--regid", "nogroup", "--clear-groups"])
        .arg(command)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} {args:?} failed (the tests run PostgreSQL as {RUN_AS} through setpriv, so they need root): {}{}",
        command.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes a cluster under `root`, starts it on a free port, and starts the
/// watcher that stops it when the test run ends. Returns the port.
fn start(bin: &Path, root: &Path) -> u16 {
    let data = make_data(bin, root);
    // The password user is checked; everyone else on loopback is trusted.
    let hba = format!(
        "host all {PASSWORD_USER} 127.0.0.1/32 scram-sha-256\nhostnossl all {TLS_USER} 127.0.0.1/32 reject\nhost all all 127.0.0.1/32 trust\nlocal all all trust\n"
    );
    fs::write(data.join("pg_hba.conf"), hba).unwrap();
    chown(&data.join("pg_hba.conf"));
    certificates(root, &data);
    for file in ["server.crt", "server.key"] {
        chown(&data.join(file));
    }
    let mut last_error = None;
    for _ in 0..5 {
        let port = crate::free_port();
        match pg_ctl_start(bin, root, port, "-c ssl=on") {
            Ok(()) => {
                watch(bin, root, &data, std::os::unix::process::parent_id());
                let cluster = Cluster {
                    port,
                    bin: bin.to_path_buf(),
                    root: root.to_path_buf(),
                };
                cluster.psql(
                    "postgres",
                    &format!("CREATE ROLE {PASSWORD_USER} LOGIN SUPERUSER PASSWORD '{PASSWORD}'"),
                );
                cluster.psql(
                    "postgres",
                    &format!("CREATE ROLE {TLS_USER} LOGIN SUPERUSER"),
                );
                return port;
            }
            // Another process took the port between the check and the start.
            Err(log) => last_error = Some(log),
        }
    }
    panic!(
        "PostgreSQL did not start: {}",
        last_error.unwrap_or_default()
    );
}

/// `chown RUN_AS:nogroup path`.
fn chown(path: &Path) {
    let status = Command::new("chown")
        .args([&format!("{RUN_AS}:nogroup"), path.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success(), "chown {} failed", path.display());
}

/// A new data directory `root/data` made by `initdb` as [`RUN_AS`]
/// (everyone on loopback trusted until the caller writes pg_hba.conf).
fn make_data(bin: &Path, root: &Path) -> PathBuf {
    let data = root.join("data");
    let _ = fs::remove_dir_all(root);
    fs::create_dir_all(&data).unwrap();
    chown(root);
    chown(&data);
    as_postgres_user(
        &bin.join("initdb"),
        &[
            "-D",
            data.to_str().unwrap(),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
    );
    data
}

/// `pg_ctl start` of `root/data` on `port` (waiting until it accepts
/// connections), with `extra` server options; `Err` is the server's log.
fn pg_ctl_start(bin: &Path, root: &Path, port: u16, extra: &str) -> Result<(), String> {
    let options = format!(
        "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={} -c max_connections=300 -c fsync=off {extra}",
        root.display()
    );
    let log = root.join("postgres.log");
    let out = Command::new("setpriv")
        .args(["--reuid", RUN_AS, "--regid", "nogroup", "--clear-groups"])
        .arg(bin.join("pg_ctl"))
        .args(["start", "-w", "-t", PG_CTL_WAIT, "-D"])
        .arg(root.join("data"))
        .args(["-o", &options, "-l"])
        .arg(&log)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(fs::read_to_string(&log).unwrap_or_default())
    }
}

/// Writes a CA (`root/ca.pem`) and the server's certificate and key for
/// 127.0.0.1 that it signs (`data/server.{crt,key}`, PostgreSQL's defaults).
fn certificates(root: &Path, data: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "strongroom test PostgreSQL CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let issuer = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    fs::write(root.join("ca.pem"), issuer.pem()).unwrap();
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    fs::write(data.join("server.crt"), cert.pem()).unwrap();
    fs::write(data.join("server.key"), key.serialize_pem()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(data.join("server.key"), fs::Permissions::from_mode(0o600)).unwrap();
}

/// Starts the watcher: when the process `runner` exits (the test runner
/// for the shared cluster, the test for a private one), PostgreSQL is
/// stopped by its pid file and the directory removed.
fn watch(bin: &Path, root: &Path, data: &Path, runner: u32) {
    let script = format!(
        "while kill -0 {runner} 2>/dev/null; do sleep 1; done; \
         setpriv --reuid {RUN_AS} --regid nogroup --clear-groups {pg_ctl} stop -m fast -w -t {PG_CTL_WAIT} -D {data} >/dev/null 2>&1; \
         rm -rf {root} {root}.lock",
        pg_ctl = bin.join("pg_ctl").display(),
        data = data.display(),
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

/// A PostgreSQL cluster of one test's own, which it may stop and start
/// again on the same port (a database restart under the daemons). Trust
/// on loopback, no TLS. Dropping it stops the server by the PID in its pid
/// file and removes its directory; a watcher does the same if the test
/// process dies first.
pub struct PrivateCluster {
    /// Its port on 127.0.0.1, the same across restarts.
    pub port: u16,
    bin: PathBuf,
    root: PathBuf,
}

/// A new private cluster, started.
pub fn private_cluster() -> PrivateCluster {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let bin = server_bin();
    let root = PathBuf::from(format!(
        "/tmp/strongroom-pg-private-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let data = make_data(&bin, &root);
    fs::write(
        data.join("pg_hba.conf"),
        "host all all 127.0.0.1/32 trust\nlocal all all trust\n",
    )
    .unwrap();
    chown(&data.join("pg_hba.conf"));
    let mut last_error = None;
    for _ in 0..5 {
        let port = crate::free_port();
        match pg_ctl_start(&bin, &root, port, "") {
            Ok(()) => {
                watch(&bin, &root, &data, std::process::id());
                return PrivateCluster { port, bin, root };
            }
            Err(log) => last_error = Some(log),
        }
    }
    panic!(
        "PostgreSQL did not start: {}",
        last_error.unwrap_or_default()
    );
}

impl PrivateCluster {
    /// A new empty database; its superuser URL.
    pub fn database(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        format!(
            "postgres://postgres@127.0.0.1:{}/{name}?sslmode=disable",
            self.port
        )
    }

    /// Runs `sql` in `dbname` with psql; panics with psql's words when it
    /// fails.
    pub fn psql(&self, dbname: &str, sql: &str) -> String {
        Cluster {
            port: self.port,
            bin: self.bin.clone(),
            root: self.root.clone(),
        }
        .psql(dbname, sql)
    }

    /// `pg_ctl stop -m fast`: sessions are ended, the server exits.
    pub fn stop(&self) {
        as_postgres_user(
            &self.bin.join("pg_ctl"),
            &[
                "stop",
                "-m",
                "fast",
                "-w",
                "-t",
                PG_CTL_WAIT,
                "-D",
                self.root.join("data").to_str().unwrap(),
            ],
        );
    }

    /// Starts the stopped server again on its port.
    pub fn start(&self) {
        if let Err(log) = pg_ctl_start(&self.bin, &self.root, self.port, "") {
            panic!(
                "PostgreSQL did not start again on port {}: {log}",
                self.port
            );
        }
    }

    /// The postmaster's PID, from its pid file, while it runs.
    fn pid(&self) -> Option<u32> {
        let text = fs::read_to_string(self.root.join("data/postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            // SIGINT is PostgreSQL's fast shutdown; wait for it, bounded.
            let _ = Command::new("kill")
                .args(["-INT", &pid.to_string()])
                .status();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while Path::new(&format!("/proc/{pid}")).exists()
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        let _ = fs::remove_dir_all(&self.root);
    }
}
