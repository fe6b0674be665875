//! `storage "postgresql"` on a real PostgreSQL the tests start themselves
//! (`strongroom_test_support::postgres`: one cluster per run, a database
//! per test): the storage contract, batches racing on one key, format
//! versions, the daemon across a restart, and the bad inputs.

use std::sync::Arc;

use strongroom::config::{ConnectionUrl, PostgresConfig, Source};
use strongroom::storage::{Backend, Batch, OpenError, PostgresBackend, StorageError, contract};
use strongroom_test_support::PortHold;
use strongroom_test_support::postgres::{self, PASSWORD, TLS_USER};

use crate::support::daemon::{Daemon, open, tempdir};

fn settings(url: &str) -> PostgresConfig {
    PostgresConfig {
        connection_url: Some(ConnectionUrl::parse(url).unwrap()),
        url_source: Source::Default,
        line: 1,
        table: "strongroom_kv_store".into(),
        ha_enabled: false,
        ha_table: "strongroom_ha_locks".into(),
        ha_lease_ttl: std::time::Duration::from_secs(5),
        max_parallel: 8,
        skip_create_table: false,
    }
}

/// The test daemon's config with `storage` as its storage block.
fn daemon_config(dir: &std::path::Path, storage: &str) -> String {
    format!(
        "{storage}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:0\"\n}}\nlog_format = \"json\"\ndisable_mlock = true\n"
    )
    .replace("DIR", &dir.display().to_string())
}

/// `server --config` on `text`, to its exit: (code, stderr).
fn server_exit(text: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempdir();
    let path = dir.path().join("strongroom.hcl");
    std::fs::write(&path, daemon_config(dir.path(), text)).unwrap();
    let mut daemon = Daemon::spawn(&path, env);
    let status = daemon
        .wait_exit(std::time::Duration::from_secs(30))
        .expect("the daemon exits when its storage cannot be opened");
    (status.code(), daemon.stderr.text())
}

#[tokio::test]
async fn postgres_backend_meets_the_storage_contract() {
    let db = postgres::database();
    let backend = PostgresBackend::open(&settings(&db.url())).await.unwrap();
    contract::check(&backend).await;
    // Keys sort as bytes whatever the database's collation, and a prefix
    // with LIKE's wildcards in it matches only itself.
    let mut batch = Batch::new();
    batch
        .put("p/a_b", b"1".to_vec())
        .put("p/axb", b"2".to_vec())
        .put("p/B", b"3".to_vec())
        .put("p/a%", b"4".to_vec());
    backend.write(batch).await.unwrap();
    assert_eq!(backend.list("p/a_").await.unwrap(), vec!["p/a_b"]);
    assert_eq!(
        backend.list("p/").await.unwrap(),
        vec!["p/B", "p/a%", "p/a_b", "p/axb"]
    );
    // Reopening finds the data and the format row it wrote.
    drop(backend);
    let backend = PostgresBackend::open(&settings(&db.url())).await.unwrap();
    assert_eq!(
        backend.get("p/B").await.unwrap().as_deref(),
        Some(&b"3"[..])
    );
    assert_eq!(
        db.psql("SELECT name || '=' || value FROM strongroom_kv_store_meta"),
        "format_version=2"
    );
}

#[tokio::test]
async fn postgres_batches_racing_for_one_key_let_exactly_one_win() {
    let db = postgres::database();
    let backend = Arc::new(PostgresBackend::open(&settings(&db.url())).await.unwrap());
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let backend = Arc::clone(&backend);
        tasks.push(tokio::spawn(async move {
            let mut batch = Batch::new();
            batch
                .require_absent("core/once")
                .put("core/once", vec![i])
                .put(format!("by/{i:02}"), vec![i]);
            backend.write(batch).await
        }));
    }
    let mut winners = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(()) => winners.push(i as u8),
            Err(StorageError::Conflict(key)) => assert_eq!(key, "core/once"),
            Err(other) => panic!("batch {i}: {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    // The winner's whole batch landed, and no loser's put.
    assert_eq!(
        backend.get("core/once").await.unwrap(),
        Some(winners.clone())
    );
    assert_eq!(
        backend.list("by/").await.unwrap(),
        vec![format!("by/{:02}", winners[0])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_writers_of_one_hot_key_all_succeed() {
    let db = postgres::database();
    let backend = Arc::new(PostgresBackend::open(&settings(&db.url())).await.unwrap());
    backend
        .write({
            let mut batch = Batch::new();
            batch.put("hot", vec![0]);
            batch
        })
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 1..=16u8 {
        let backend = Arc::clone(&backend);
        tasks.push(tokio::spawn(async move {
            for round in 0..5u8 {
                let mut batch = Batch::new();
                batch
                    .put("hot", vec![i, round])
                    .put(format!("by/{i:02}"), vec![round]);
                backend.write(batch).await?;
            }
            Ok::<(), StorageError>(())
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        task.await
            .unwrap()
            .unwrap_or_else(|e| panic!("writer {i}: {e}"));
    }
    // Every writer's last round landed; the hot key holds one of them.
    assert_eq!(backend.list("by/").await.unwrap().len(), 16);
    let hot = backend.get("hot").await.unwrap().unwrap();
    assert_eq!(hot.len(), 2);
    assert_eq!(hot[1], 4);
}

#[tokio::test]
async fn postgres_tables_of_a_newer_format_or_missing_ones_are_refused() {
    let db = postgres::database();
    let mut skip = settings(&db.url());
    skip.skip_create_table = true;
    let error = PostgresBackend::open(&skip)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("relation \"strongroom_kv_store\" does not exist")
            && error.contains("skip_create_table is set"),
        "{error}"
    );
    drop(PostgresBackend::open(&settings(&db.url())).await.unwrap());
    // Tables made beforehand serve with skip_create_table.
    drop(PostgresBackend::open(&skip).await.unwrap());
    db.psql("UPDATE strongroom_kv_store_meta SET value = 3 WHERE name = 'format_version'");
    match PostgresBackend::open(&settings(&db.url())).await {
        Err(OpenError::Database { reason, .. }) => assert_eq!(
            reason,
            "table strongroom_kv_store was written by a newer strongroom (storage format 3; this build reads format 2 and older)"
        ),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("a newer format opened"),
    }
}

#[test]
fn daemon_on_postgresql_keeps_secrets_across_a_restart() {
    let db = postgres::database();
    let dir = tempdir();
    // The URL from the environment, with its password: never in the log.
    let storage = "storage \"postgresql\" {\n  max_parallel = 4\n}\n";
    let url = db.url_with_password(PASSWORD);
    let mut daemon = Daemon::start_with(
        dir.path(),
        &daemon_config(dir.path(), storage),
        &[("STRONGROOM_PG_CONNECTION_URL", &url)],
    );
    let init = open(&mut daemon);
    daemon
        .cli()
        .run(&["kv", "put", "app/db", "password=hunter2"])
        .ok();
    daemon.restart();
    let status = crate::support::cli::status(&daemon);
    assert_eq!(status["storage_type"], "postgresql");
    assert_eq!(status["sealed"], true);
    crate::support::cli::unseal(&daemon, &[&init.keys_hex[0], &init.keys_hex[1]]);
    let out = daemon
        .cli()
        .run(&["kv", "get", "--field", "password", "app/db"])
        .ok();
    assert_eq!(out.stdout.trim(), "hunter2");
    // The entries are in the table, encrypted.
    let rows: usize = db
        .psql("SELECT count(*) FROM strongroom_kv_store")
        .parse()
        .unwrap();
    assert!(rows > 3, "{rows} rows");
    assert_eq!(db.psql("SELECT count(*) FROM strongroom_kv_store WHERE position('hunter2' in encode(value, 'escape')) > 0"), "0");
    let log = daemon.stderr.text();
    assert!(log.contains("storage: postgresql"), "{log}");
    assert!(log.contains(":***@127.0.0.1"), "{log}");
    assert!(
        log.contains("environment variable STRONGROOM_PG_CONNECTION_URL"),
        "{log}"
    );
    assert!(!log.contains(PASSWORD), "{log}");
}

#[test]
fn postgresql_bad_input_is_one_sentence() {
    // A malformed URL: a config error naming file, line and key.
    let (code, stderr) = server_exit(
        "storage \"postgresql\" {\n  connection_url = \"postgres://a:pw@db:port/x\"\n}\n",
        &[],
    );
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains(
            "strongroom.hcl:2: storage.postgresql.connection_url: is not a valid PostgreSQL URL"
        ),
        "{stderr}"
    );
    // HA with nothing to advertise (the listener's port is 0), and an
    // api_addr without a scheme.
    let (code, stderr) = server_exit(
        "storage \"postgresql\" {\n  connection_url = \"postgres://db/s\"\n  ha_enabled = \"true\"\n}\n",
        &[],
    );
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr
            .contains("strongroom.hcl:1: api_addr: is required with storage.postgresql.ha_enabled"),
        "{stderr}"
    );
    let (code, stderr) = server_exit(
        "storage \"postgresql\" {\n  connection_url = \"postgres://db/s\"\n  ha_enabled = \"true\"\n}\napi_addr = \"10.0.0.5:8400\"\n",
        &[],
    );
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains("strongroom.hcl:5: api_addr: must start with https:// or http://"),
        "{stderr}"
    );

    // A root certificate file that is not there: checked before start.
    let (code, stderr) = server_exit(
        "storage \"postgresql\" {\n  connection_url = \"postgres://db/s?sslmode=verify-full&sslrootcert=/nonexistent/pg-ca.pem\"\n}\n",
        &[],
    );
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains("strongroom.hcl:2: storage.postgresql.connection_url")
            && stderr.contains("/nonexistent/pg-ca.pem"),
        "{stderr}"
    );

    // Tables of a newer format: the start stops (waiting cannot help).
    let db = postgres::database();
    db.psql("CREATE TABLE strongroom_kv_store (key TEXT COLLATE \"C\" PRIMARY KEY, value BYTEA NOT NULL); CREATE TABLE strongroom_kv_store_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL); INSERT INTO strongroom_kv_store_meta VALUES ('format_version', 99)");
    let (code, stderr) = server_exit(
        "storage \"postgresql\" {}\n",
        &[("STRONGROOM_PG_CONNECTION_URL", &db.url())],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("was written by a newer strongroom (storage format 99"),
        "{stderr}"
    );
}

/// The daemon on `storage`, `env`, waited for until it listens.
fn daemon_on(dir: &std::path::Path, storage: &str, env: &[(&str, &str)]) -> Daemon {
    Daemon::start_with(dir, &daemon_config(dir, storage), env)
}

/// Polls `daemon`'s status until its `storage_error` contains `text`.
#[track_caller]
fn storage_error_says(daemon: &Daemon, text: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let status = crate::support::cli::status(daemon);
        if status["storage_error"]
            .as_str()
            .is_some_and(|e| e.contains(text))
        {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "storage_error never said {text:?}: {status}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_database_that_is_not_ready_keeps_the_daemon_up_sealed_saying_why() {
    // Nothing listens there: up, sealed, Status says why; init refused.
    let closed = PortHold::new();
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/x?sslmode=disable",
        closed.port
    );
    let dir = tempdir();
    let daemon = daemon_on(
        dir.path(),
        &format!("storage \"postgresql\" {{\n  connection_url = \"{url}\"\n}}\n"),
        &[],
    );
    let status = storage_error_says(&daemon, "Connection refused");
    assert_eq!(status["sealed"], true);
    daemon.cli().run(&["init"]).code(1).error_says(
        "the store cannot be read yet (PostgreSQL: error connecting to server: Connection refused",
    );
    assert!(!daemon.stderr.text().contains("panicked"));
    drop(daemon);

    // A wrong password: the server's refusal, never the password.
    let db = postgres::database();
    let wrong = db.url_with_password("not-the-pg-password");
    let dir = tempdir();
    let daemon = daemon_on(
        dir.path(),
        "storage \"postgresql\" {}\n",
        &[("STRONGROOM_PG_CONNECTION_URL", &wrong)],
    );
    storage_error_says(
        &daemon,
        r#"password authentication failed for user "strongroom_pw""#,
    );
    let log = daemon.stderr.text();
    assert!(log.contains("strongroom_pw:***@"), "{log}");
    assert!(!log.contains("not-the-pg-password"), "{log}");
    drop(daemon);

    // Tables missing under skip_create_table: once an operator creates
    // them, the daemon notices by itself and takes init.
    let db = postgres::database();
    let dir = tempdir();
    let daemon = daemon_on(
        dir.path(),
        "storage \"postgresql\" {\n  skip_create_table = true\n}\n",
        &[("STRONGROOM_PG_CONNECTION_URL", &db.url())],
    );
    storage_error_says(&daemon, "skip_create_table is set: create the tables");
    db.psql("CREATE TABLE strongroom_kv_store (key TEXT COLLATE \"C\" PRIMARY KEY, value BYTEA NOT NULL); CREATE TABLE strongroom_kv_store_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while crate::support::cli::status(&daemon)["storage_error"].is_string() {
        assert!(std::time::Instant::now() < deadline, "never recovered");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    crate::support::cli::init(&daemon, &["--key-shares", "1", "--key-threshold", "1"]);
    assert_eq!(crate::support::cli::status(&daemon)["initialized"], true);
}

#[tokio::test]
async fn postgres_over_tls_honours_sslmode_as_libpq() {
    let db = postgres::database();
    let ca = postgres::cluster().ca_file();
    let at = |host: &str, query: &str| {
        settings(&format!(
            "postgres://{TLS_USER}@{host}:{}/{}?{query}",
            db.port, db.name
        ))
    };
    let ca_arg = format!("sslrootcert={}", ca.display());
    // The server's certificate names 127.0.0.1, not localhost.
    for (host, query) in [
        ("127.0.0.1", format!("sslmode=verify-full&{ca_arg}")),
        ("localhost", format!("sslmode=verify-ca&{ca_arg}")),
        ("localhost", "sslmode=require".to_string()),
        ("127.0.0.1", "sslmode=prefer".to_string()),
        ("127.0.0.1", String::new()),
    ] {
        let backend = PostgresBackend::open(&at(host, &query))
            .await
            .unwrap_or_else(|e| panic!("{host} {query}: {e}"));
        let mut batch = Batch::new();
        batch.put("tls/ok", b"1".to_vec());
        backend.write(batch).await.unwrap();
    }
    // TLS_USER is refused without TLS: the connections above were TLS.
    let error = PostgresBackend::open(&at("127.0.0.1", "sslmode=disable"))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("no encryption"), "{error}");
    // verify-full checks the name; verify-ca and verify-full the CA.
    let error = PostgresBackend::open(&at("localhost", &format!("sslmode=verify-full&{ca_arg}")))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("certificate not valid for name"), "{error}");
    let dir = tempdir();
    let other = crate::support::tls::Ca::new(dir.path(), "other");
    let error = PostgresBackend::open(&at(
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={}", other.pem_path.display()),
    ))
    .await
    .err()
    .unwrap()
    .to_string();
    assert!(
        error.contains("UnknownIssuer") || error.contains("unknown issuer"),
        "{error}"
    );
    // A root file that is not there: a sentence naming it.
    let error = PostgresBackend::open(&at(
        "127.0.0.1",
        "sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem",
    ))
    .await
    .err()
    .unwrap()
    .to_string();
    assert!(
        error.contains("cannot read sslrootcert /nonexistent/ca.pem"),
        "{error}"
    );
}

#[test]
fn a_database_gone_while_serving_is_a_sentence_not_a_crash() {
    let db = postgres::database();
    let dir = tempdir();
    let storage = format!(
        "storage \"postgresql\" {{\n  connection_url = \"{}\"\n}}\n",
        db.url()
    );
    let mut daemon = Daemon::start(dir.path(), &daemon_config(dir.path(), &storage));
    open(&mut daemon);
    daemon.cli().run(&["kv", "put", "app/db", "v=1"]).ok();
    // Every session ends and the database is gone.
    postgres::cluster().psql_admin(&format!("DROP DATABASE {} WITH (FORCE)", db.name));
    let out = daemon.cli().run(&["kv", "put", "app/db", "v=2"]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stderr.contains(&format!(
            "PostgreSQL: database \"{}\" does not exist",
            db.name
        )),
        "{}",
        out.stderr
    );
    // The daemon is still up and answers.
    assert_eq!(crate::support::cli::status(&daemon)["sealed"], false);
    assert!(!daemon.stderr.text().contains("panicked"));
}
