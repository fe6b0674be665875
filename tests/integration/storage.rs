//! The data directory: one daemon at a time, private files, format versions.

use std::os::unix::fs::PermissionsExt;

use crate::harness::{Daemon, config, init, tempdir};

#[test]
fn a_second_daemon_on_the_same_directory_names_the_first() {
    let dir = tempdir();
    let first = Daemon::start(dir.path(), &config(dir.path(), ""));
    // Same data directory, different socket.
    let second_dir = tempdir();
    let text = config(dir.path(), "").replace(
        &dir.path().join("strongroom.sock").display().to_string(),
        &second_dir.path().join("second.sock").display().to_string(),
    );
    let path = second_dir.path().join("second.hcl");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(crate::harness::BIN)
        .args(["server", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let data = dir.path().join("data").canonicalize().unwrap();
    let expected = format!(
        "storage directory {} is in use by another strongroom process (pid {})",
        data.display(),
        first.pid()
    );
    assert!(
        stderr.contains(&expected),
        "expected {expected:?} in:\n{stderr}"
    );
    // The first daemon is unaffected.
    init(&first, &[]);
}

#[test]
fn data_files_are_private() {
    let dir = tempdir();
    let daemon = Daemon::start(dir.path(), &config(dir.path(), ""));
    init(&daemon, &[]);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let data = dir.path().join("data");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("strongroom.redb")), 0o600);
    assert_eq!(mode(&data.join("strongroom.lock")), 0o600);
}

#[test]
fn storage_from_a_newer_format_is_refused() {
    let dir = tempdir();
    {
        let mut daemon = Daemon::start(dir.path(), &config(dir.path(), ""));
        init(&daemon, &[]);
        assert!(daemon.stop().success());
    }
    let db = redb::Database::create(dir.path().join("data/strongroom.redb")).unwrap();
    let meta: redb::TableDefinition<'_, &str, u32> = redb::TableDefinition::new("meta");
    let txn = db.begin_write().unwrap();
    txn.open_table(meta)
        .unwrap()
        .insert("format_version", 99)
        .unwrap();
    txn.commit().unwrap();
    drop(db);

    let out = std::process::Command::new(crate::harness::BIN)
        .args([
            "server",
            "--config",
            dir.path().join("strongroom.hcl").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("was written by a newer strongroom (storage format 99; this build reads format 1 and older)"),
        "{stderr}"
    );
}
