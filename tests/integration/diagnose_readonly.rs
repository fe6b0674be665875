//! `strongroom diagnose` reads a store without changing it: a store of an
//! older format (or one without tables) is left byte for byte as it was,
//! in a file and in PostgreSQL, and as root no lock file is created that
//! the service user could not open.

use std::path::Path;

use strongroom_test_support::postgres;

use crate::diagnose_config::{diagnose, message, status, write_config};
use crate::support::daemon::{Daemon, config, open, tempdir};

/// Only the seal area, which reads the store's seal config.
const ONLY_SEAL: &str = "config,storage,listener,process,audit";

const META: redb::TableDefinition<'_, &str, u32> = redb::TableDefinition::new("meta");
const ENTRIES: redb::TableDefinition<'_, &str, &[u8]> = redb::TableDefinition::new("entries");

fn file_config(dir: &Path, data: &Path) -> std::path::PathBuf {
    write_config(
        dir,
        &format!(
            "storage \"file\" {{ path = \"{}\" }}\nlistener \"tcp\" {{ address = \"127.0.0.1:0\" }}\ndisable_mlock = true\n",
            data.display()
        ),
    )
}

/// A store in `data` as an older build left it: format `format` (none when
/// `None`, and then no tables at all), a Shamir seal config.
fn craft_store(data: &Path, format: Option<u32>) {
    std::fs::create_dir_all(data).unwrap();
    let db = redb::Database::create(data.join("strongroom.redb")).unwrap();
    if let Some(format) = format {
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert("format_version", format)
            .unwrap();
        txn.open_table(ENTRIES)
            .unwrap()
            .insert(
                "core/seal-config",
                br#"{"type": "shamir", "cluster_id": "c-1"}"#.as_slice(),
            )
            .unwrap();
        txn.commit().unwrap();
    }
    drop(db);
    // As the daemon leaves it: then the old code would open the store.
    std::fs::write(data.join("strongroom.lock"), b"").unwrap();
}

#[test]
fn diagnose_readonly_leaves_an_older_or_tableless_file_store_unchanged() {
    for format in [Some(1), None] {
        let dir = tempdir();
        let data = dir.path().join("data");
        craft_store(&data, format);
        let config = file_config(dir.path(), &data);
        let before = std::fs::read(data.join("strongroom.redb")).unwrap();
        let report = diagnose(&config, &["--skip", ONLY_SEAL]).ok().json();
        assert_eq!(
            status(&report, &["seal", "shamir"]),
            "success",
            "{report:#}"
        );
        assert_eq!(
            std::fs::read(data.join("strongroom.redb")).unwrap(),
            before,
            "diagnose changed a store of format {format:?}"
        );
    }
}

#[test]
fn diagnose_readonly_leaves_an_older_postgres_store_unchanged() {
    let db = postgres::database();
    db.psql(
        "CREATE TABLE strongroom_kv_store (key TEXT COLLATE \"C\" PRIMARY KEY, value BYTEA NOT NULL); \
         CREATE TABLE strongroom_kv_store_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL); \
         INSERT INTO strongroom_kv_store_meta VALUES ('format_version', 1); \
         INSERT INTO strongroom_kv_store VALUES ('core/seal-config', convert_to('{\"type\": \"shamir\", \"cluster_id\": \"c-1\"}', 'UTF8'))",
    );
    let rows = || {
        (
            db.psql("SELECT string_agg(name || '=' || value, ',' ORDER BY name) FROM strongroom_kv_store_meta"),
            db.psql("SELECT string_agg(key, ',' ORDER BY key) FROM strongroom_kv_store"),
        )
    };
    let before = rows();
    assert_eq!(before.0, "format_version=1");
    let dir = tempdir();
    let config = write_config(
        dir.path(),
        &format!(
            "storage \"postgresql\" {{\n  connection_url = \"{}\"\n}}\nlistener \"tcp\" {{ address = \"127.0.0.1:0\" }}\ndisable_mlock = true\n",
            db.url()
        ),
    );
    let report = diagnose(&config, &["--skip", ONLY_SEAL]).ok().json();
    assert_eq!(
        status(&report, &["seal", "shamir"]),
        "success",
        "{report:#}"
    );
    assert_eq!(rows(), before, "diagnose changed the tables");
}

#[test]
fn diagnose_readonly_as_root_creates_no_lock_file() {
    crate::diagnose_config::must_be_root();
    let dir = tempdir();
    let mut daemon = Daemon::start(dir.path(), &config(dir.path(), ""));
    open(&mut daemon);
    daemon.stop();
    let data = dir.path().join("data");
    let lock = data.join("strongroom.lock");
    std::fs::remove_file(&lock).unwrap();
    let report = diagnose(
        &daemon.config_path,
        &["--skip", "config,listener,process,audit"],
    )
    .ok()
    .json();
    assert_eq!(
        status(&report, &["storage", "round trip"]),
        "skipped",
        "{report:#}"
    );
    assert!(
        message(&report, &["storage", "round trip"]).contains("has no strongroom.lock"),
        "{report:#}"
    );
    assert!(!lock.exists(), "diagnose created the lock file as root");
}

#[test]
fn diagnose_readonly_a_store_of_a_newer_format_fails_and_is_not_opened() {
    let dir = tempdir();
    let data = dir.path().join("data");
    craft_store(&data, Some(99));
    let config = file_config(dir.path(), &data);
    let before = std::fs::read(data.join("strongroom.redb")).unwrap();
    let report = diagnose(&config, &["--skip", "config,seal,listener,process,audit"])
        .code(1)
        .json();
    assert_eq!(
        status(&report, &["storage", "format"]),
        "failure",
        "{report:#}"
    );
    assert!(
        message(&report, &["storage", "format"])
            .starts_with("storage format 99 was written by a newer strongroom"),
        "{report:#}"
    );
    assert_eq!(status(&report, &["storage", "round trip"]), "skipped");
    assert!(
        std::fs::read(data.join("strongroom.redb")).unwrap() == before,
        "diagnose changed a newer store"
    );
}
