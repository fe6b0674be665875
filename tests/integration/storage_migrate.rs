//! `strongroom operator migrate`: a store moved between backends with every
//! daemon stopped, on a real PostgreSQL the tests start
//! (`strongroom_test_support::postgres`), read back by daemons that unseal
//! with the original keys.

use std::path::Path;
use std::time::Instant;

use strongroom::storage::{Backend, Batch, FileBackend};
use strongroom_test_support::postgres::{self, Database};

use crate::support::cli::{Cli, Init, Run, unseal};
use crate::support::daemon::{Daemon, config, open, tempdir};

/// Writes the migrate file `text` in `dir` and runs `operator migrate
/// -config` (Vault's single dash) on it.
fn migrate(dir: &Path, text: &str) -> Run {
    let path = dir.join("migrate.hcl");
    std::fs::write(&path, text).unwrap();
    Cli::new().run(&["operator", "migrate", "-config", path.to_str().unwrap()])
}

fn file_block(which: &str, path: &Path) -> String {
    format!(
        "storage_{which} \"file\" {{\n  path = \"{}\"\n}}\n",
        path.display()
    )
}

fn postgresql_block(which: &str, db: &Database) -> String {
    format!(
        "storage_{which} \"postgresql\" {{\n  connection_url = \"{}\"\n}}\n",
        db.url()
    )
}

/// The entries count and digest of a "Success!" line.
fn moved(run: &Run, from: &str, to: &str) -> (usize, String) {
    let prefix = format!("Success! Data moved from {from} to {to}: ");
    let line = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{}", run.stdout));
    let (count, digest) = line.split_once(" entries, sha256 ").unwrap();
    assert_eq!(digest.len(), 64, "{line}");
    (count.parse().unwrap(), digest.to_string())
}

fn rows(db: &Database) -> usize {
    db.psql("SELECT count(*) FROM strongroom_kv_store")
        .parse()
        .unwrap()
}

/// The table's contents, as one md5 the database computes.
fn table_digest(db: &Database) -> String {
    db.psql(
        "SELECT coalesce(md5(string_agg(key || ':' || encode(value, 'hex'), ',' ORDER BY key)), '') FROM strongroom_kv_store",
    )
}

/// An initialized file store holding a secret and a named key, its daemon
/// stopped: the keys, the ciphertext of "card 4242" under key `orders`.
fn stopped_store(dir: &Path) -> (Init, String) {
    let mut daemon = Daemon::start(dir, &config(dir, ""));
    let init = open(&mut daemon);
    daemon
        .cli()
        .run(&["kv", "put", "app/db", "password=hunter2"])
        .ok();
    daemon.cli().run(&["keys", "create", "orders"]).ok();
    let sealed = daemon
        .cli()
        .run_stdin(&["keys", "encrypt", "orders"], "card 4242")
        .ok()
        .stdout
        .trim()
        .to_string();
    assert!(daemon.stop().success());
    (init, sealed)
}

/// Starts a daemon on the config `text`, unseals it with the original keys
/// and reads the secret and the named key back.
fn reads_back(dir: &Path, text: &str, init: &Init, sealed: &str) {
    let mut daemon = Daemon::start(dir, text);
    let status = crate::support::cli::status(&daemon);
    assert_eq!(status["initialized"], true, "{status}");
    assert_eq!(status["sealed"], true, "{status}");
    unseal(&daemon, &[&init.keys_hex[0], &init.keys_hex[1]]);
    daemon
        .env
        .insert("STRONGROOM_TOKEN".into(), init.root_token.clone());
    let secret = daemon
        .cli()
        .run(&["kv", "get", "--field", "password", "app/db"])
        .ok();
    assert_eq!(secret.stdout.trim(), "hunter2");
    let plain = daemon
        .cli()
        .run(&["keys", "decrypt", "orders", sealed])
        .ok();
    assert_eq!(plain.stdout, "card 4242");
    assert!(daemon.stop().success());
}

#[test]
fn migrate_moves_a_store_from_redb_to_postgresql_and_back_to_a_fresh_redb() {
    let db = postgres::database();
    let source = tempdir();
    let (init, sealed) = stopped_store(source.path());

    let work = tempdir();
    let run = migrate(
        work.path(),
        &format!(
            "{}{}",
            file_block("source", &source.path().join("data")),
            postgresql_block("destination", &db)
        ),
    )
    .ok();
    let (entries, _) = moved(&run, "file", "postgresql");
    assert!(entries > 5, "{entries} entries");
    assert_eq!(rows(&db), entries);
    // Entries only: the format row stays in the backend's own table.
    assert_eq!(
        db.psql("SELECT count(*) FROM strongroom_kv_store WHERE key LIKE '%format%'"),
        "0"
    );
    assert!(
        run.stderr
            .contains("warning: a PostgreSQL store has no lock"),
        "{}",
        run.stderr
    );

    let on_pg = tempdir();
    let pg_config = format!(
        "storage \"postgresql\" {{\n  connection_url = \"{}\"\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:0\"\n}}\nlog_format = \"json\"\ndisable_mlock = true\n",
        db.url()
    );
    reads_back(on_pg.path(), &pg_config, &init, &sealed);

    // Back to a directory that does not exist yet, with the double-dash flag.
    let back = tempdir();
    let data = back.path().join("data");
    let path = work.path().join("back.hcl");
    std::fs::write(
        &path,
        format!(
            "{}{}",
            postgresql_block("source", &db),
            file_block("destination", &data)
        ),
    )
    .unwrap();
    let run = Cli::new()
        .run(&["operator", "migrate", "--config", path.to_str().unwrap()])
        .ok();
    // What the daemon on PostgreSQL wrote since (unsealing counts) comes too.
    let (back_entries, _) = moved(&run, "postgresql", "file");
    assert_eq!(back_entries, rows(&db));
    reads_back(back.path(), &config(back.path(), ""), &init, &sealed);
}

#[test]
fn migrate_refuses_a_running_daemon_and_a_non_empty_destination() {
    let db = postgres::database();
    let source = tempdir();
    let mut daemon = Daemon::start(source.path(), &config(source.path(), ""));
    open(&mut daemon);
    let work = tempdir();
    let text = format!(
        "{}{}",
        file_block("source", &source.path().join("data")),
        postgresql_block("destination", &db)
    );
    // The file backend's lock names the daemon; the destination is not touched.
    let run = migrate(work.path(), &text).code(1);
    let error = run.stderr.lines().last().unwrap();
    assert!(
        error.starts_with("error: storage_source: storage directory ")
            && error.contains(&format!(
                "is in use by another strongroom process (pid {})",
                daemon.pid()
            ))
            && error.ends_with("stop the daemon first: migrate needs both stores offline"),
        "{}",
        run.stderr
    );
    assert_eq!(
        db.psql("SELECT to_regclass('strongroom_kv_store') IS NULL"),
        "t"
    );

    assert!(daemon.stop().success());
    let (entries, _) = moved(&migrate(work.path(), &text).ok(), "file", "postgresql");
    let before = table_digest(&db);
    // A second run finds the copy: refused, nothing written.
    let run = migrate(work.path(), &text).code(1);
    let error = run.stderr.lines().last().unwrap();
    assert!(
        error.starts_with(&format!(
            "error: the destination store is not empty (it holds {entries} entries, such as "
        )) && error.ends_with("so nothing was written: empty it or name another"),
        "{}",
        run.stderr
    );
    assert_eq!(rows(&db), entries);
    assert_eq!(table_digest(&db), before);
}

#[test]
fn migrate_config_errors_exit_64_with_file_and_line() {
    let dir = tempdir();
    let file = dir.path().join("migrate.hcl");
    let run = migrate(
        dir.path(),
        "storage_source \"file\" {\n  path = \"/nonexistent/a\"\n}\nstorage \"file\" {\n  path = \"/nonexistent/b\"\n}\n",
    )
    .code(64);
    assert_eq!(
        run.stderr.lines().collect::<Vec<_>>(),
        vec![
            format!(
                "{}:1: storage_destination: a storage_destination block is required, such as storage_destination \"file\" {{ path = \"/var/lib/strongroom\" }}",
                file.display()
            ),
            format!(
                "{}:4: storage: unknown block \"storage\"; expected one of: storage_source, storage_destination",
                file.display()
            ),
        ],
        "{}",
        run.stderr
    );
    let run = migrate(
        dir.path(),
        "storage_source \"file\" {\n  path = \"/nonexistent/a\"\n}\nstorage_destination \"file\" {\n  pth = \"/nonexistent/b\"\n}\n",
    )
    .code(64);
    assert!(
        run.stderr.contains(&format!(
            "{}:5: storage.file.pth: unknown key \"pth\" (did you mean \"path\"?)",
            file.display()
        )),
        "{}",
        run.stderr
    );
    // No -config at all: usage.
    Cli::new().run(&["operator", "migrate"]).code(64);
    // A source directory without a store is not created empty.
    let run = migrate(
        dir.path(),
        &format!(
            "{}{}",
            file_block("source", &dir.path().join("missing")),
            file_block("destination", &dir.path().join("dest"))
        ),
    )
    .code(1)
    .error_says("missing holds no strongroom store (no strongroom.redb in it)");
    assert!(run.stdout.is_empty());
    assert!(!dir.path().join("missing").exists());
    assert!(!dir.path().join("dest").exists());
}

/// A file store of `entries` made-up entries (migrate never reads them as
/// a daemon would), closed again.
async fn synthetic_store(data: &Path, entries: usize) {
    let store = FileBackend::open(data).unwrap();
    let mut batch = Batch::new();
    for i in 0..entries {
        batch.put(format!("kv-data/{i:06}"), vec![(i % 251) as u8; 100]);
    }
    store.write(batch).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_failing_midway_leaves_a_partial_copy_that_must_be_emptied() {
    let db = postgres::database();
    let source = tempdir();
    let data = source.path().join("data");
    synthetic_store(&data, 2_000).await;
    // The destination's table exists already, with a trigger that refuses
    // every key from kv-data/001200 on: the third batch of 512 fails.
    db.psql(
        "CREATE TABLE strongroom_kv_store (key TEXT COLLATE \"C\" PRIMARY KEY, value BYTEA NOT NULL);
         CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN RAISE EXCEPTION 'test: no room for %', NEW.key; END $$;
         CREATE TRIGGER refuse BEFORE INSERT ON strongroom_kv_store FOR EACH ROW
           WHEN (NEW.key >= 'kv-data/001200') EXECUTE FUNCTION refuse();",
    );
    let work = tempdir();
    let text = format!(
        "{}{}",
        file_block("source", &data),
        postgresql_block("destination", &db)
    );
    let path = work.path().to_path_buf();
    let again = text.clone();
    let run = tokio::task::spawn_blocking(move || migrate(&path, &again).code(1))
        .await
        .unwrap();
    assert_eq!(
        run.stderr.lines().last().unwrap(),
        "error: writing the destination failed after 1024 of 2000 entries (storage failed: PostgreSQL: test: no room for kv-data/001200); it now holds a partial copy: empty it, then run migrate again",
        "{}",
        run.stderr
    );
    assert!(!run.stdout.contains("Success"), "{}", run.stdout);
    // Each batch is one transaction: the failed one left nothing behind.
    assert_eq!(rows(&db), 1024);

    // Emptied (and the cause gone), the same command moves everything.
    db.psql("DROP TRIGGER refuse ON strongroom_kv_store; DELETE FROM strongroom_kv_store;");
    let path = work.path().to_path_buf();
    let run = tokio::task::spawn_blocking(move || migrate(&path, &text).ok())
        .await
        .unwrap();
    assert_eq!(moved(&run, "file", "postgresql").0, 2_000);
    assert_eq!(rows(&db), 2_000);
}

/// A store of 25,000 entries: progress lines, and the time each way (printed
/// for docs, never asserted).
#[tokio::test(flavor = "multi_thread")]
async fn migrate_reports_progress_on_a_big_store() {
    const ENTRIES: usize = 25_000;
    let db = postgres::database();
    let source = tempdir();
    let data = source.path().join("data");
    synthetic_store(&data, ENTRIES).await;
    let work = tempdir();
    let text = format!(
        "{}{}",
        file_block("source", &data),
        postgresql_block("destination", &db)
    );
    let started = Instant::now();
    let path = work.path().to_path_buf();
    let run = tokio::task::spawn_blocking(move || migrate(&path, &text).ok())
        .await
        .unwrap();
    let to_pg = started.elapsed();
    let progress: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("copied "))
        .collect();
    assert_eq!(
        progress,
        vec![
            "copied 10240 of 25000 entries",
            "copied 20480 of 25000 entries"
        ]
    );
    let (entries, digest) = moved(&run, "file", "postgresql");
    assert_eq!((entries, rows(&db)), (ENTRIES, ENTRIES));

    let back = work.path().join("back");
    let text = format!(
        "{}{}",
        postgresql_block("source", &db),
        file_block("destination", &back)
    );
    let started = Instant::now();
    let path = work.path().to_path_buf();
    let run = tokio::task::spawn_blocking(move || migrate(&path, &text).ok())
        .await
        .unwrap();
    let to_file = started.elapsed();
    assert_eq!(moved(&run, "postgresql", "file"), (ENTRIES, digest));
    let copy = FileBackend::open(&back).unwrap();
    assert_eq!(copy.list("kv-data/").await.unwrap().len(), ENTRIES);
    eprintln!(
        "migrate of {ENTRIES} entries of 100 bytes: file to postgresql {to_pg:?}, postgresql to file {to_file:?}"
    );
}
