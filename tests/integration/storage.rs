//! The data directory: one daemon at a time, private files, format versions.

use std::os::unix::fs::PermissionsExt;

use crate::support::cli::init;
use crate::support::daemon::{Daemon, config, tempdir};

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
    let out = std::process::Command::new(crate::support::daemon::BIN)
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

    let out = std::process::Command::new(crate::support::daemon::BIN)
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
        stderr.contains("was written by a newer strongroom (storage format 99; this build reads format 2 and older)"),
        "{stderr}"
    );
}

/// Writes race a SIGTERM: every write the daemon acknowledged is there after
/// a restart (the drain waits for in-flight requests; commits are durable).
#[test]
fn writes_acknowledged_before_sigterm_survive_the_restart() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use strongroom::proto::{GetRequest, PutRequest, kv_client::KvClient};

    let dir = tempdir();
    let mut daemon = Daemon::start(dir.path(), &config(dir.path(), ""));
    let keys = init(&daemon, &["--key-shares", "1"]);
    daemon.cli().run(&["unseal", &keys.keys_hex[0]]).ok();
    let token = keys.root_token.clone();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let acknowledged = runtime.block_on(async {
        let done = Arc::new(AtomicUsize::new(0));
        let mut writers = Vec::new();
        for writer in 0..8 {
            let channel = crate::support::grpc::channel(&daemon.addr).await;
            let (done, token) = (Arc::clone(&done), token.clone());
            writers.push(tokio::spawn(async move {
                let mut kv = KvClient::new(channel);
                let mut acknowledged = Vec::new();
                for i in 0..10_000 {
                    let path = format!("race/{writer}/{i}");
                    let put = PutRequest {
                        path: path.clone(),
                        data: [("i".to_string(), i.to_string())].into(),
                        cas: None,
                        data_json: String::new(),
                    };
                    match kv.put(crate::support::grpc::with_token(put, &token)).await {
                        Ok(_) => {
                            acknowledged.push((path, i.to_string()));
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => break,
                    }
                }
                acknowledged
            }));
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while done.load(Ordering::Relaxed) < 200 {
            assert!(
                std::time::Instant::now() < deadline,
                "200 writes were not acknowledged within 60 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        daemon.signal(nix::sys::signal::Signal::SIGTERM);
        let mut all = Vec::new();
        for writer in writers {
            all.extend(writer.await.unwrap());
        }
        all
    });
    assert!(
        daemon
            .wait_exit(std::time::Duration::from_secs(5))
            .unwrap()
            .success()
    );
    assert!(acknowledged.len() >= 200);

    let text = std::fs::read_to_string(&daemon.config_path).unwrap();
    let daemon = Daemon::start(dir.path(), &text);
    daemon.cli().run(&["unseal", &keys.keys_hex[0]]).ok();
    runtime.block_on(async {
        let mut kv = KvClient::new(crate::support::grpc::channel(&daemon.addr).await);
        for (path, value) in &acknowledged {
            let got = kv
                .get(crate::support::grpc::with_token(
                    GetRequest {
                        path: path.clone(),
                        version: 0,
                    },
                    &token,
                ))
                .await
                .unwrap_or_else(|e| panic!("acknowledged write {path} was lost: {e}"))
                .into_inner();
            assert_eq!(
                got.data.get("i"),
                Some(value),
                "acknowledged write {path} reads back another value"
            );
            assert_eq!(got.data.len(), 1, "{path}");
            assert_eq!(got.version, 1, "{path}");
        }
    });
}
