//! `strongroom diagnose`'s storage and audit areas on real stores: a file
//! store's directory (mode, a missing one the service user cannot create,
//! an initialized store's format, a store a running daemon holds, one that
//! cannot be read), PostgreSQL on the run's shared cluster (reachable,
//! tables missing or there, a wrong password and a wrong port), and audit
//! directories the service user cannot write. Every check has a case that
//! passes and one that does not.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nix::unistd::chown;
use strongroom_test_support::postgres;

use crate::diagnose_config::{
    diagnose, finding, message, must_be_root, open_dir, status, write_config,
};
use crate::support::daemon::{Daemon, config, open, tempdir};
use crate::support::store;

/// The areas these tests do not look at.
const OTHERS: &str = "config,seal,listener,process";

fn file_config(dir: &Path, data: &Path, extra: &str) -> std::path::PathBuf {
    write_config(
        dir,
        &format!(
            "storage \"file\" {{ path = \"{}\" }}\nlistener \"tcp\" {{ address = \"127.0.0.1:0\" }}\ndisable_mlock = true\n{extra}",
            data.display()
        ),
    )
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn give_to_nobody(path: &Path) {
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    chown(path, Some(nobody.uid), Some(nobody.gid)).unwrap();
}

#[test]
fn diagnose_store_data_directory_mode_is_a_warning_and_exit_stays_0() {
    let dir = tempdir();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    chmod(&data, 0o755);
    let config = file_config(dir.path(), &data, "");
    let report = diagnose(&config, &["--skip", OTHERS]).ok().json();
    assert_eq!(
        status(&report, &["storage", "mode"]),
        "warning",
        "{report:#}"
    );
    assert!(message(&report, &["storage", "mode"]).contains("mode 0755"));
    assert_eq!(
        finding(&report, &["storage", "mode"])["advice"],
        format!("chmod 0700 {}", data.display())
    );
    assert_eq!(status(&report, &["storage", "lock"]), "success");
    // Free space depends on the machine: its verdict is unit-tested.
    assert!(message(&report, &["storage", "free space"]).contains(" free of "));
    // No store yet: the round trip ran in a scratch store, which is gone,
    // and no store was created.
    assert!(
        message(&report, &["storage", "format"]).contains("not initialized yet"),
        "{report:#}"
    );
    assert_eq!(status(&report, &["storage", "round trip"]), "success");
    assert!(
        message(&report, &["storage", "round trip"])
            .contains("wrote, read and deleted diagnose/scratch-"),
        "{report:#}"
    );
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
    assert_eq!(report["status"], "warning");

    chmod(&data, 0o700);
    let report = diagnose(&config, &["--skip", OTHERS]).ok().json();
    assert_eq!(
        status(&report, &["storage", "mode"]),
        "success",
        "{report:#}"
    );
    assert_eq!(status(&report, &["storage", "data directory"]), "success");
}

#[test]
fn diagnose_store_missing_data_directory_needs_a_parent_the_service_user_can_write() {
    must_be_root();
    let dir = tempdir();
    open_dir(dir.path());
    let parent = dir.path().join("lib");
    std::fs::create_dir(&parent).unwrap();
    chmod(&parent, 0o755);
    let data = parent.join("strongroom");
    let config = file_config(dir.path(), &data, "");
    let run = diagnose(&config, &["--skip", OTHERS, "--user", "nobody"]).code(1);
    let report = run.json();
    let said = message(&report, &["storage", "data directory"]);
    assert_eq!(status(&report, &["storage", "data directory"]), "failure");
    assert!(
        said.contains("does not exist and cannot be created")
            && said.contains("nobody")
            && said.contains(&parent.display().to_string()),
        "{said}"
    );
    assert_eq!(status(&report, &["storage", "round trip"]), "skipped");
    assert!(!data.exists(), "diagnose created the data directory");

    give_to_nobody(&parent);
    let report = diagnose(&config, &["--skip", OTHERS, "--user", "nobody"])
        .ok()
        .json();
    assert_eq!(
        status(&report, &["storage", "data directory"]),
        "success",
        "{report:#}"
    );
    assert!(message(&report, &["storage", "data directory"]).contains("does not exist yet"));
    assert!(!data.exists(), "diagnose created the data directory");
}

#[test]
fn diagnose_store_owned_by_another_user_than_the_service_user() {
    must_be_root();
    let dir = tempdir();
    open_dir(dir.path());
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    chmod(&data, 0o700);
    let config = file_config(dir.path(), &data, "");
    let report = diagnose(&config, &["--skip", OTHERS, "--user", "nobody"])
        .code(1)
        .json();
    assert_eq!(
        status(&report, &["storage", "data directory"]),
        "failure",
        "{report:#}"
    );
    assert_eq!(status(&report, &["storage", "owner"]), "warning");
    assert!(
        message(&report, &["storage", "owner"])
            .contains("owned by root, not by the service user nobody")
    );

    give_to_nobody(&data);
    let report = diagnose(&config, &["--skip", OTHERS, "--user", "nobody"])
        .ok()
        .json();
    assert_eq!(
        status(&report, &["storage", "owner"]),
        "success",
        "{report:#}"
    );
    assert_eq!(status(&report, &["storage", "data directory"]), "success");
}

#[test]
fn diagnose_store_asks_the_running_daemon_instead_of_touching_its_store() {
    let dir = tempdir();
    let mut daemon = Daemon::start(dir.path(), &config(dir.path(), ""));
    let path = daemon.config_path.clone();
    let path = path.as_path();
    let report = diagnose(path, &["--skip", OTHERS]).ok().json();
    let pid = daemon.pid().to_string();
    assert!(
        message(&report, &["storage", "lock"]).contains(&pid),
        "{report:#}"
    );
    let said = message(&report, &["storage", "running daemon"]);
    assert!(
        said.contains(&format!("pid {pid}")) && said.contains("not initialized"),
        "{said}"
    );
    assert!(said.contains("unix:"), "{said}");
    assert!(
        finding(&report, &["storage"])["children"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["name"] != "round trip")
    );

    open(&mut daemon);
    let report = diagnose(path, &["--skip", OTHERS]).ok().json();
    assert!(
        message(&report, &["storage", "running daemon"]).contains("unsealed, active"),
        "{report:#}"
    );
    daemon.stop();

    // A process that holds the lock but answers on no listener (here this
    // test, holding the store open): a warning, and still no round trip.
    let held = strongroom::storage::FileBackend::open(&dir.path().join("data")).unwrap();
    let report = diagnose(path, &["--skip", OTHERS]).ok().json();
    assert_eq!(
        status(&report, &["storage", "running daemon"]),
        "warning",
        "{report:#}"
    );
    let said = message(&report, &["storage", "running daemon"]);
    assert!(
        said.contains(&format!("pid {}", std::process::id())) && said.contains("does not answer"),
        "{said}"
    );
    drop(held);
}

#[test]
fn diagnose_store_reads_an_initialized_stores_format_and_leaves_no_scratch() {
    let dir = tempdir();
    let mut daemon = Daemon::start(dir.path(), &config(dir.path(), ""));
    open(&mut daemon);
    daemon.stop();
    let data = dir.path().join("data");
    let before = store::entries(&data);
    let report = diagnose(&daemon.config_path, &["--skip", OTHERS])
        .ok()
        .json();
    assert_eq!(
        message(&report, &["storage", "format"]),
        "storage format 2, the one this build writes"
    );
    let trip = message(&report, &["storage", "round trip"]);
    assert!(
        trip.contains(&format!(
            "in the store in {}",
            data.canonicalize().unwrap().display()
        )) || trip.contains(&format!("in the store in {}", data.display())),
        "{trip}"
    );
    assert_eq!(
        store::entries(&data),
        before,
        "the round trip left something"
    );
    // The daemon opens it as before.
    daemon.start_again();
    daemon.stop();

    // A store file that is not a database: a failure, and no round trip.
    std::fs::write(data.join("strongroom.redb"), b"not a database at all").unwrap();
    let report = diagnose(&daemon.config_path, &["--skip", OTHERS])
        .code(1)
        .json();
    assert_eq!(
        status(&report, &["storage", "format"]),
        "failure",
        "{report:#}"
    );
    assert!(message(&report, &["storage", "format"]).starts_with("the store cannot be read: "));
    assert_eq!(status(&report, &["storage", "round trip"]), "skipped");
}

fn postgres_config(dir: &Path, url: &str, extra: &str) -> std::path::PathBuf {
    write_config(
        dir,
        &format!(
            "storage \"postgresql\" {{\n  connection_url = \"{url}\"\n{extra}}}\nlistener \"tcp\" {{ address = \"127.0.0.1:0\" }}\ndisable_mlock = true\n"
        ),
    )
}

#[test]
fn diagnose_store_postgres_reachable_database() {
    let db = postgres::database();
    let dir = tempdir();
    let config = postgres_config(dir.path(), &db.url(), "");
    let report = diagnose(&config, &["--skip", OTHERS]).ok().json();
    for check in [
        "connection",
        "tls",
        "server version",
        "tables",
        "pooling proxy",
    ] {
        assert_eq!(
            status(&report, &["storage", check]),
            "success",
            "{check}: {report:#}"
        );
    }
    assert!(
        message(&report, &["storage", "tls"])
            .contains("not encrypted (sslmode=disable); the server is on this host")
    );
    assert!(message(&report, &["storage", "server version"]).starts_with("PostgreSQL "));
    assert!(
        message(&report, &["storage", "tables"]).contains("the daemon creates them"),
        "{report:#}"
    );
    assert_eq!(status(&report, &["storage", "round trip"]), "skipped");
    // Diagnose created nothing.
    assert_eq!(
        db.psql("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'strongroom%'"),
        "0"
    );

    // With the tables made (as the daemon's first start makes them), the
    // round trip runs through the backend and leaves no row.
    let dir2 = tempdir();
    let daemon_config = postgres_config(dir2.path(), &db.url(), "");
    let mut daemon = Daemon::spawn(&daemon_config, &[]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while db.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'strongroom_kv_store_meta'")
        != "1"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            daemon.stderr.text()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    daemon.stop();
    let report = diagnose(&config, &["--skip", OTHERS]).ok().json();
    assert!(
        message(&report, &["storage", "tables"]).contains("storage format 2"),
        "{report:#}"
    );
    assert_eq!(
        status(&report, &["storage", "round trip"]),
        "success",
        "{report:#}"
    );
    assert_eq!(
        db.psql("SELECT count(*) FROM strongroom_kv_store WHERE key LIKE 'diagnose/%'"),
        "0"
    );

    // Tables that must exist (skip_create_table) and do not: a failure.
    let other = postgres::database();
    let strict = postgres_config(dir.path(), &other.url(), "  skip_create_table = true\n");
    let report = diagnose(&strict, &["--skip", OTHERS]).code(1).json();
    assert_eq!(
        status(&report, &["storage", "tables"]),
        "failure",
        "{report:#}"
    );
    assert!(message(&report, &["storage", "tables"]).contains("skip_create_table is set"));
}

#[test]
fn diagnose_store_postgres_wrong_password_and_wrong_port() {
    let db = postgres::database();
    let dir = tempdir();
    let config = postgres_config(dir.path(), &db.url_with_password("wrong-pw-4c1e"), "");
    let run = diagnose(&config, &["--skip", OTHERS]).code(1);
    assert!(!run.stdout.contains("wrong-pw-4c1e") && !run.stderr.contains("wrong-pw-4c1e"));
    let report = run.json();
    assert_eq!(status(&report, &["storage", "connection"]), "failure");
    let said = message(&report, &["storage", "connection"]);
    assert!(said.contains("password authentication failed"), "{said}");
    assert!(said.contains(":***@127.0.0.1"), "{said}");
    // Nothing else is tried without a connection.
    assert_eq!(
        finding(&report, &["storage"])["children"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let closed = strongroom_test_support::PortHold::new();
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/{}?sslmode=disable",
        closed.port, db.name
    );
    let config = postgres_config(dir.path(), &url, "");
    let report = diagnose(&config, &["--skip", OTHERS]).code(1).json();
    let said = message(&report, &["storage", "connection"]);
    assert!(said.to_lowercase().contains("refused"), "{said}");
}

#[test]
fn diagnose_audit_directory_must_be_writable_by_the_service_user() {
    must_be_root();
    let dir = tempdir();
    open_dir(dir.path());
    let logs = dir.path().join("log");
    std::fs::create_dir(&logs).unwrap();
    chmod(&logs, 0o755);
    let audit = logs.join("audit.log");
    let data = dir.path().join("data");
    let config = file_config(
        dir.path(),
        &data,
        &format!("audit \"file\" {{ path = \"{}\" }}\n", audit.display()),
    );
    let device = format!("file {}", audit.display());
    let skip = "config,seal,listener,process,storage";
    let report = diagnose(&config, &["--skip", skip, "--user", "nobody"])
        .code(1)
        .json();
    assert_eq!(
        status(&report, &["audit", &device, "directory"]),
        "failure",
        "{report:#}"
    );
    let said = message(&report, &["audit", &device, "directory"]);
    assert!(
        said.contains("the service user nobody") && said.contains("cannot create files in"),
        "{said}"
    );
    assert!(message(&report, &["audit", &device, "free space"]).contains(" free of "));

    give_to_nobody(&logs);
    std::fs::write(&audit, "").unwrap();
    give_to_nobody(&audit);
    chmod(&audit, 0o644);
    let report = diagnose(&config, &["--skip", skip, "--user", "nobody"])
        .ok()
        .json();
    assert_eq!(
        status(&report, &["audit", &device, "directory"]),
        "success",
        "{report:#}"
    );
    assert_eq!(status(&report, &["audit", &device, "file"]), "warning");
    assert!(message(&report, &["audit", &device, "file"]).contains("mode 0644"));
    chmod(&audit, 0o600);
    let report = diagnose(&config, &["--skip", skip, "--user", "nobody"])
        .ok()
        .json();
    assert_eq!(
        status(&report, &["audit", &device, "file"]),
        "success",
        "{report:#}"
    );
    assert_eq!(status(&report, &["audit", &device, "directory"]), "success");
}

#[test]
fn diagnose_store_killed_daemons_store_is_a_warning_not_a_damaged_store() {
    let dir = tempdir();
    let mut daemon = Daemon::start(dir.path(), &config(dir.path(), ""));
    open(&mut daemon);
    // A kill leaves redb's store needing the repair a writer makes.
    daemon.signal(nix::sys::signal::Signal::SIGKILL);
    daemon
        .wait_exit(std::time::Duration::from_secs(5))
        .expect("SIGKILL ends the daemon");
    let data = dir.path().join("data");
    let file = data.join("strongroom.redb");
    let before = std::fs::read(&file).unwrap();
    let report = diagnose(&daemon.config_path, &["--skip", OTHERS])
        .ok()
        .json();
    assert_eq!(
        status(&report, &["storage", "format"]),
        "warning",
        "{report:#}"
    );
    let said = message(&report, &["storage", "format"]);
    assert!(said.contains("was not closed cleanly"), "{said}");
    assert!(
        message(&report, &["storage", "round trip"]).contains("would repair it"),
        "{report:#}"
    );
    assert!(
        std::fs::read(&file).unwrap() == before,
        "diagnose changed the store"
    );

    // The daemon repairs it at its start; then the store reads as usual.
    daemon.start_again();
    daemon.stop();
    let report = diagnose(&daemon.config_path, &["--skip", OTHERS])
        .ok()
        .json();
    assert_eq!(
        status(&report, &["storage", "format"]),
        "success",
        "{report:#}"
    );
}

#[test]
fn diagnose_store_asks_a_tls_only_daemon_over_tls_unless_it_wants_a_client_certificate() {
    use rcgen::ExtendedKeyUsagePurpose;
    let dir = tempdir();
    let ca = crate::support::tls::Ca::new(dir.path(), "ca");
    let (cert, key) = ca.leaf(dir.path(), "server", ExtendedKeyUsagePurpose::ServerAuth);
    let port = crate::support::ha::free_port();
    let listener = |client_ca: &str| {
        format!(
            "storage \"file\" {{ path = \"{}\" }}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_cert_file = \"{}\"\n  tls_key_file = \"{}\"\n{client_ca}}}\nlog_format = \"json\"\ndisable_mlock = true\n",
            dir.path().join("data").display(),
            cert.display(),
            key.display()
        )
    };
    let mut daemon = Daemon::start(dir.path(), &listener(""));
    let report = diagnose(&daemon.config_path, &["--skip", OTHERS])
        .ok()
        .json();
    let said = message(&report, &["storage", "running daemon"]);
    assert!(
        said.contains(&format!(
            "answers on https://127.0.0.1:{port}: not initialized"
        )),
        "{report:#}"
    );
    daemon.stop();

    // Mutual TLS: diagnose has no client certificate to offer.
    let config = listener(&format!(
        "  tls_client_ca_file = \"{}\"\n",
        ca.pem_path.display()
    ));
    std::fs::write(&daemon.config_path, config).unwrap();
    daemon.start_again();
    let report = diagnose(&daemon.config_path, &["--skip", OTHERS])
        .ok()
        .json();
    assert_eq!(
        status(&report, &["storage", "running daemon"]),
        "skipped",
        "{report:#}"
    );
    assert!(
        message(&report, &["storage", "running daemon"])
            .contains("want a client certificate or use port 0"),
        "{report:#}"
    );
    // The listener area: its own daemon holds the port and refuses a
    // client without a certificate; a warning, not another process.
    let report = diagnose(
        &daemon.config_path,
        &["--skip", "config,storage,seal,process,audit"],
    )
    .ok()
    .json();
    let label = format!("tcp 127.0.0.1:{port}");
    let bind = ["listener", label.as_str(), "bind"];
    assert_eq!(status(&report, &bind), "warning", "{report:#}");
    assert!(
        message(&report, &bind).contains("refused a client without a certificate"),
        "{report:#}"
    );
    daemon.stop();
}

#[test]
fn diagnose_store_asks_the_next_listener_when_the_socket_does_not_answer() {
    let dir = tempdir();
    let port = crate::support::ha::free_port();
    let socket = dir.path().join("strongroom.sock");
    let text = format!(
        "storage \"file\" {{ path = \"{}\" }}\nlistener \"unix\" {{ path = \"{}\" }}\nlistener \"tcp\" {{ address = \"127.0.0.1:{port}\" }}\nlog_format = \"json\"\ndisable_mlock = true\n",
        dir.path().join("data").display(),
        socket.display()
    );
    let mut daemon = Daemon::start(dir.path(), &text);
    // The socket's path gone (as a user outside its group cannot open it):
    // the plaintext TCP listener answers instead.
    std::fs::remove_file(&socket).unwrap();
    let report = diagnose(&daemon.config_path, &["--skip", OTHERS])
        .ok()
        .json();
    let said = message(&report, &["storage", "running daemon"]);
    assert!(
        said.contains(&format!(
            "answers on http://127.0.0.1:{port}: not initialized"
        )),
        "{report:#}"
    );
    daemon.stop();
}
