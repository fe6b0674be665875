//! The keys behind the barrier, driven through the CLI: keyring rotation
//! (by hand and by policy), key status, snapshots, and root tokens by
//! accessor.

use std::time::{Duration, Instant};

use crate::support::cli::{status, unseal};
use crate::support::daemon::{Daemon, config, tempdir, unsealed};
use crate::support::kms::SOON;

fn key_status(daemon: &Daemon) -> serde_json::Value {
    daemon
        .cli()
        .run(&["key-status", "--format", "json"])
        .ok()
        .json()
}

#[test]
fn a_hundred_rotations_keep_the_first_terms_data_readable() {
    let dir = tempdir();
    let (mut daemon, init) = unsealed(dir.path(), "");
    daemon
        .cli()
        .run(&["kv", "put", "app/first", "written=under-term-1"])
        .ok();
    let first = key_status(&daemon);
    assert_eq!(first["term"], 1);
    assert!(first["encryptions"].as_u64().unwrap() >= 1);

    for expected in 2..=101u64 {
        let rotated = daemon
            .cli()
            .run(&["rotate", "--format", "json"])
            .ok()
            .json();
        assert_eq!(rotated["term"], expected);
    }
    daemon
        .cli()
        .run(&["kv", "put", "app/last", "written=under-term-101"])
        .ok();
    let after = key_status(&daemon);
    assert_eq!(after["term"], 101);
    assert_eq!(after["terms"].as_array().unwrap().len(), 101);
    assert_eq!(after["terms"][0]["active"], false);

    daemon.restart();
    unseal(&daemon, &[&init.keys_b64[2], &init.keys_hex[0]]);
    let out = daemon
        .cli()
        .run(&["kv", "get", "app/first", "--format", "json"])
        .ok();
    assert_eq!(out.json()["data"]["data"]["written"], "under-term-1");
    let out = daemon
        .cli()
        .run(&["kv", "get", "app/last", "--format", "json"])
        .ok();
    assert_eq!(out.json()["data"]["data"]["written"], "under-term-101");
    assert_eq!(key_status(&daemon)["term"], 101);
    assert!(
        daemon.stderr.text().contains("keyring rotated"),
        "rotations are logged"
    );
}

#[test]
fn rotation_and_key_status_need_a_root_token() {
    let dir = tempdir();
    let (daemon, _) = unsealed(dir.path(), "");
    let mut cli = daemon.cli();
    cli.env("STRONGROOM_TOKEN", "");
    cli.run(&["rotate"])
        .code(1)
        .error_says("this call needs a token");
    daemon
        .cli()
        .token("sr.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        .run(&["key-status"])
        .code(1)
        .error_says("the token is not valid");
    assert_eq!(key_status(&daemon)["term"], 1, "nothing rotated");
}

#[test]
fn the_rotation_policy_rotates_by_itself() {
    let dir = tempdir();
    let (daemon, _) = unsealed(
        dir.path(),
        "barrier {\n  rotation_max_encryptions = 20\n}\n",
    );
    for i in 0..25 {
        daemon
            .cli()
            .run(&["kv", "put", &format!("app/{i}"), "v=x"])
            .ok();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while key_status(&daemon)["term"] == 1 {
        assert!(Instant::now() < deadline, "no automatic rotation");
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = key_status(&daemon);
    assert_eq!(status["rotation_max_encryptions"], 20);
    assert!(status["terms"][0]["encryptions"].as_u64().unwrap() >= 20);
    daemon
        .stderr
        .wait_for("the automatic rotation's log line", |l| {
            l.contains("automatic: the active term made")
        });
    let out = daemon
        .cli()
        .run(&["kv", "get", "app/0", "--format", "json"])
        .ok();
    assert_eq!(out.json()["data"]["data"]["v"], "x");
}

#[test]
fn a_snapshot_restored_into_a_fresh_directory_unseals_and_reads_back() {
    let dir = tempdir();
    let (daemon, init) = unsealed(dir.path(), "");
    daemon
        .cli()
        .run(&["kv", "put", "app/db", "password=s3cret"])
        .ok();
    let file = dir.path().join("store.snap");
    let file = file.to_str().unwrap();
    let saved = daemon.cli().run(&["snapshot", "save", file]).ok();
    assert!(
        saved.stdout.contains("Success! Snapshot of"),
        "{}",
        saved.stdout
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // Written after the snapshot: not in it.
    daemon.cli().run(&["kv", "put", "app/later", "x=y"]).ok();

    let fresh_dir = tempdir();
    let fresh = Daemon::start(fresh_dir.path(), &config(fresh_dir.path(), ""));
    assert_eq!(status(&fresh)["initialized"], false);
    let restored = fresh.cli().run(&["snapshot", "restore", file]).ok();
    assert!(
        restored.stdout.contains("strongroom is sealed"),
        "{}",
        restored.stdout
    );
    let sealed = status(&fresh);
    assert_eq!(
        (sealed["initialized"].clone(), sealed["sealed"].clone()),
        (true.into(), true.into())
    );
    assert_eq!(sealed["cluster_id"], status(&daemon)["cluster_id"]);
    unseal(&fresh, &[&init.keys_hex[1], &init.keys_hex[2]]);
    let mut cli = fresh.cli();
    cli.token(&init.root_token);
    let out = cli.run(&["kv", "get", "app/db", "--format", "json"]).ok();
    assert_eq!(out.json()["data"]["data"]["password"], "s3cret");
    fresh
        .cli()
        .token(&init.root_token)
        .run(&["kv", "get", "app/later"])
        .code(1)
        .error_says("no secret at kv path \"app/later\"");
    // The first unseal after a restore starts a new term.
    let deadline = Instant::now() + Duration::from_secs(10);
    while fresh
        .cli()
        .token(&init.root_token)
        .run(&["key-status", "--format", "json"])
        .ok()
        .json()["term"]
        == 1
    {
        assert!(Instant::now() < deadline, "no rotation after the restore");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_restore_replaces_a_running_store_and_bad_files_change_nothing() {
    let dir = tempdir();
    let (daemon, init) = unsealed(dir.path(), "");
    daemon.cli().run(&["kv", "put", "app/a", "v=before"]).ok();
    let file = dir.path().join("a.snap");
    let file = file.to_str().unwrap();
    daemon.cli().run(&["snapshot", "save", file]).ok();
    daemon.cli().run(&["kv", "put", "app/a", "v=after"]).ok();

    // Refusals: nothing changes, the daemon stays unsealed.
    let junk = dir.path().join("junk.snap");
    std::fs::write(
        &junk,
        b"definitely not a snapshot, but long enough to be checked",
    )
    .unwrap();
    daemon
        .cli()
        .run(&["snapshot", "restore", junk.to_str().unwrap()])
        .code(1)
        .error_says("is not a strongroom snapshot this build can restore");
    let mut truncated = std::fs::read(file).unwrap();
    truncated.truncate(truncated.len() - 10);
    std::fs::write(&junk, &truncated).unwrap();
    daemon
        .cli()
        .run(&["snapshot", "restore", junk.to_str().unwrap()])
        .code(1)
        .error_says("checksum does not match");
    let mut cli = daemon.cli();
    cli.env("STRONGROOM_TOKEN", "");
    cli.run(&["snapshot", "restore", file])
        .code(1)
        .error_says("this call needs a token");
    daemon
        .cli()
        .run(&["snapshot", "restore", "/nonexistent/x.snap"])
        .code(64)
        .error_says("cannot read the snapshot /nonexistent/x.snap");
    assert_eq!(status(&daemon)["sealed"], false);
    let out = daemon
        .cli()
        .run(&["kv", "get", "app/a", "--format", "json"])
        .ok();
    assert_eq!(out.json()["data"]["data"]["v"], "after");

    daemon.cli().run(&["snapshot", "restore", file]).ok();
    assert_eq!(status(&daemon)["sealed"], true);
    unseal(&daemon, &[&init.keys_hex[0], &init.keys_hex[2]]);
    let out = daemon
        .cli()
        .run(&["kv", "get", "app/a", "--format", "json"])
        .ok();
    assert_eq!(out.json()["data"]["data"]["v"], "before");
}

#[test]
fn root_tokens_are_listed_and_revoked_by_accessor() {
    let dir = tempdir();
    let (daemon, _) = unsealed(dir.path(), "");
    let listed = daemon
        .cli()
        .run(&["token", "list-accessors", "--format", "json"])
        .ok()
        .json();
    let accessors = listed.as_array().unwrap();
    assert_eq!(accessors.len(), 1);
    let accessor = accessors[0]["accessor"].as_str().unwrap().to_string();
    assert_eq!(accessors[0]["policies"][0], "root");
    assert!(
        daemon.stderr.text().contains(&accessor),
        "init logs the root token's accessor"
    );

    daemon
        .cli()
        .run(&["token", "revoke-accessor", "nosuchaccessor0000000000"])
        .code(1)
        .error_says("no token has the accessor");
    daemon
        .cli()
        .run(&["token", "revoke-accessor", "not/an/accessor"])
        .code(1)
        .error_says("the accessor is malformed");
    daemon
        .cli()
        .run(&["token", "revoke-accessor", &daemon.env["STRONGROOM_TOKEN"]])
        .code(1)
        .error_says("that is a token, not its accessor");
    daemon
        .cli()
        .run(&["token", "revoke-accessor", &accessor])
        .ok();
    daemon
        .cli()
        .run(&["kv", "list"])
        .code(1)
        .error_says("the token is not valid (unknown, expired or revoked)");
}

#[test]
fn snapshots_taken_while_writes_go_on_are_consistent() {
    let dir = tempdir();
    let (daemon, init) = unsealed(dir.path(), "");
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, progress) = (Arc::clone(&stop), Arc::clone(&progress));
        let addr = daemon.addr.clone();
        let token = init.root_token.clone();
        std::thread::spawn(move || {
            let mut written = 0;
            while !stop.load(Ordering::Relaxed) {
                crate::support::cli::Cli::new()
                    .env("STRONGROOM_ADDR", &addr)
                    .token(&token)
                    .run(&[
                        "kv",
                        "put",
                        &format!("load/{written:04}"),
                        &format!("n={written}"),
                    ])
                    .ok();
                written += 1;
                progress.store(written, Ordering::Relaxed);
            }
            written
        })
    };
    let file = dir.path().join("busy.snap");
    let file = file.to_str().unwrap();
    // Each snapshot after a write acknowledged since the one before, so the
    // writes and the snapshots interleave however fast either runs.
    for _ in 0..5 {
        let before = progress.load(Ordering::Relaxed);
        strongroom_test_support::eventually("a write between snapshots", SOON, || {
            progress.load(Ordering::Relaxed) > before
        });
        daemon.cli().run(&["snapshot", "save", file]).ok();
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(written >= 5, "{written} writes");

    let fresh_dir = tempdir();
    let fresh = Daemon::start(fresh_dir.path(), &config(fresh_dir.path(), ""));
    fresh.cli().run(&["snapshot", "restore", file]).ok();
    unseal(&fresh, &[&init.keys_hex[0], &init.keys_hex[2]]);
    let listed = fresh
        .cli()
        .token(&init.root_token)
        .run(&["kv", "list", "load/", "--format", "json"])
        .ok()
        .json();
    let names: Vec<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    assert!(!names.is_empty() && names.len() <= written);
    // Every entry the snapshot holds opens; the numbering has no hole.
    for (i, name) in names.iter().enumerate() {
        assert_eq!(name, &format!("{i:04}"));
        let out = fresh
            .cli()
            .token(&init.root_token)
            .run(&["kv", "get", &format!("load/{name}"), "--format", "json"])
            .ok();
        assert_eq!(out.json()["data"]["data"]["n"], i.to_string());
    }
}
