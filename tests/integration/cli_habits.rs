//! What a Vault operator's hands and scripts do with the CLI: pipes that
//! close early, `operator …` and single-dash flags, `kv get -field`, Vault's
//! JSON envelope, `kv put @file.json`, states in words in tables, and a
//! snapshot written into a shared directory where someone planted a file.

use std::os::unix::fs::PermissionsExt;

use crate::support::cli::{Run, status};
use crate::support::daemon::{Daemon, config, tempdir, unsealed};
use crate::support::kms::{init_recovery, kms, start_daemon};

/// Asserts the run said nothing on stderr (a closed stdout is not an error).
#[track_caller]
fn quiet(run: Run) -> Run {
    assert!(run.stderr.is_empty(), "stderr:\n{}", run.stderr);
    run
}

#[test]
fn a_closed_stdout_ends_every_printing_command_quietly_with_its_exit_code() {
    let dir = tempdir();
    let daemon = Daemon::start(dir.path(), &config(dir.path(), ""));

    // Not initialized: status exits 2, as it does with a reader.
    quiet(daemon.cli().run_stdout_closed(&["status"]).code(2));
    quiet(
        daemon
            .cli()
            .run_stdout_closed(&["status", "--format", "json"])
            .code(2),
    );
    quiet(daemon.cli().run_stdout_closed(&["version"]).ok());
    quiet(daemon.cli().run_stdout_closed(&["--help"]).ok());

    // Init's keys could not be delivered, so init is not confirmed: nothing
    // is stored, and the operator is told why (exit 1).
    daemon
        .cli()
        .run_stdout_closed(&["init"])
        .code(1)
        .error_says("the init was not confirmed");
    assert_eq!(status(&daemon)["initialized"], false);
    drop(daemon);

    let dir = tempdir();
    let (daemon, _) = unsealed(dir.path(), "");
    daemon
        .cli()
        .run(&["kv", "put", "app/db", "password=hunter2"])
        .ok();
    quiet(daemon.cli().run_stdout_closed(&["status"]).ok());
    quiet(
        daemon
            .cli()
            .run_stdout_closed(&["kv", "get", "app/db"])
            .ok(),
    );
    quiet(
        daemon
            .cli()
            .run_stdout_closed(&["kv", "get", "app/db", "--format", "json"])
            .ok(),
    );
    quiet(daemon.cli().run_stdout_closed(&["kv", "list"]).ok());
    quiet(daemon.cli().run_stdout_closed(&["key-status"]).ok());
    // A failing command keeps its code and its one error line.
    daemon
        .cli()
        .run_stdout_closed(&["kv", "get", "app/none"])
        .code(1)
        .error_says("no secret at kv path");
}

#[test]
fn vault_operator_commands_and_single_dash_flags_work() {
    let dir = tempdir();
    let mut daemon = Daemon::start(dir.path(), &config(dir.path(), ""));

    let version = daemon.cli().run(&["--version"]).ok().stdout;
    assert!(version.starts_with("strongroom "), "{version}");
    assert_eq!(daemon.cli().run(&["version"]).ok().stdout, version);
    assert_eq!(daemon.cli().run(&["-version"]).ok().stdout, version);

    let init = daemon
        .cli()
        .run(&[
            "operator",
            "init",
            "-key-shares=3",
            "-key-threshold",
            "2",
            "-format=json",
        ])
        .ok()
        .json();
    assert_eq!(init["unseal_shares"], 3);
    assert_eq!(init["unseal_threshold"], 2);
    let key = |i: usize| init["unseal_keys_b64"][i].as_str().unwrap().to_string();
    let root = init["root_token"].as_str().unwrap().to_string();

    let progress = daemon
        .cli()
        .run(&["operator", "unseal", "-format=json", &key(0)])
        .ok()
        .json();
    assert_eq!(progress["progress"], 1);
    daemon.cli().run(&["operator", "unseal", &key(2)]).ok();
    let unsealed = daemon.cli().run(&["status", "-format=json"]).ok().json();
    assert_eq!(unsealed["sealed"], false);
    daemon.env.insert("STRONGROOM_TOKEN".into(), root);

    let rotated = daemon
        .cli()
        .run(&["operator", "rotate", "-format=json"])
        .ok()
        .json();
    assert_eq!(rotated["term"], 2);
    let terms = daemon
        .cli()
        .run(&["operator", "key-status", "-format=json"])
        .ok()
        .json();
    assert_eq!(terms["term"], 2);
    let rekey = daemon
        .cli()
        .run(&["operator", "rekey", "-status", "-format=json"])
        .ok()
        .json();
    assert_eq!(rekey["started"], false);
    let generate = daemon
        .cli()
        .run(&["operator", "generate-root", "-status", "-format=json"])
        .ok()
        .json();
    assert_eq!(generate["started"], false);

    // -field prints the value alone, without a newline when piped.
    daemon
        .cli()
        .run(&["kv", "put", "app/db", "user=admin", "password=hunter2"])
        .ok();
    let field = daemon
        .cli()
        .run(&["kv", "get", "-field=password", "app/db"])
        .ok();
    assert_eq!(field.stdout, "hunter2");
    let field = daemon
        .cli()
        .run(&["kv", "get", "-field", "user", "-format=json", "app/db"])
        .ok();
    assert_eq!(field.json(), "admin");
    daemon
        .cli()
        .run(&["kv", "get", "-field=nope", "app/db"])
        .code(1)
        .error_says("has no field \"nope\"");

    // Seal twice: the second finds it sealed and succeeds too (exit 0, as
    // `vault operator seal`), with or without a token; status still says 2.
    for args in [&["operator", "seal"][..], &["operator", "seal"], &["seal"]] {
        let run = daemon.cli().run(args).ok();
        assert_eq!(run.stdout, "Success! strongroom is sealed.\n");
    }
    let mut tokenless = daemon.cli();
    tokenless.env("STRONGROOM_TOKEN", "");
    tokenless.run(&["seal"]).ok();
    daemon.cli().run(&["status"]).code(2);

    // A single-dash name that is no flag is left for clap to refuse.
    daemon.cli().run(&["status", "-nonsense"]).code(64);
}

#[test]
fn kv_get_json_is_vaults_envelope_and_kv_put_reads_json_files() {
    let dir = tempdir();
    let (daemon, _) = unsealed(dir.path(), "");
    let body = dir.path().join("body.json");
    std::fs::write(
        &body,
        r#"{"user": "admin", "password": "hunter2", "port": 5432, "tls": true}"#,
    )
    .unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, "-----BEGIN X-----\nabc\n-----END X-----\n").unwrap();
    daemon
        .cli()
        .run(&[
            "kv",
            "put",
            "app/db",
            &format!("@{}", body.display()),
            &format!("cert=@{}", cert.display()),
            "user=root",
        ])
        .ok();

    let got = daemon
        .cli()
        .run(&["kv", "get", "app/db", "--format", "json"])
        .ok()
        .json();
    // `jq .data.data.password`, as with `bao kv get -format=json`.
    assert_eq!(got["data"]["data"]["password"], "hunter2");
    // Typed as in the file, as Vault's CLI sends them.
    assert_eq!(got["data"]["data"]["port"], 5432);
    assert_eq!(got["data"]["data"]["tls"], true);
    assert_eq!(got["data"]["data"]["user"], "root", "later fields win");
    assert_eq!(
        got["data"]["data"]["cert"],
        "-----BEGIN X-----\nabc\n-----END X-----\n"
    );
    let request_id = got["request_id"].as_str().unwrap();
    assert_eq!(request_id.len(), 36, "a UUID: {request_id}");
    assert_eq!(got["lease_id"], "");
    assert_eq!(got["lease_duration"], 0);
    assert_eq!(got["renewable"], false);
    assert!(got["warnings"].is_null());
    let metadata = &got["data"]["metadata"];
    assert_eq!(metadata["version"], 1);
    assert!(metadata["created_time"].as_str().unwrap().ends_with('Z'));
    assert!(metadata["custom_metadata"].is_null());
    assert_eq!(metadata["deletion_time"], "");
    assert_eq!(metadata["destroyed"], false);
    let top: Vec<&str> = got
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        top,
        [
            "data",
            "lease_duration",
            "lease_id",
            "renewable",
            "request_id",
            "warnings"
        ]
    );

    // The body on stdin, as `vault kv put PATH -`.
    daemon
        .cli()
        .run_stdin(&["kv", "put", "app/stdin", "-"], r#"{"v": "from stdin"}"#)
        .ok();
    let got = daemon
        .cli()
        .run(&["kv", "get", "-field=v", "app/stdin"])
        .ok();
    assert_eq!(got.stdout, "from stdin");

    // JSON values keep their types, as Vault's CLI sends them: a nested
    // object, a number, from a file or from stdin.
    let nested = dir.path().join("nested.json");
    std::fs::write(&nested, r#"{"ok": "x", "db": {"user": "a"}, "port": 5432}"#).unwrap();
    daemon
        .cli()
        .run(&["kv", "put", "app/typed", &format!("@{}", nested.display())])
        .ok();
    daemon
        .cli()
        .run_stdin(&["kv", "put", "app/typed-stdin", "-"], r#"{"n": [1, 2]}"#)
        .ok();
    for (path, field, expected) in [
        ("app/typed", "db", serde_json::json!({"user": "a"})),
        ("app/typed", "port", serde_json::json!(5432)),
        ("app/typed", "ok", serde_json::json!("x")),
        ("app/typed-stdin", "n", serde_json::json!([1, 2])),
    ] {
        let got = daemon
            .cli()
            .run(&["kv", "get", "-field", field, "-format=json", path])
            .ok();
        let value: serde_json::Value = serde_json::from_str(&got.stdout).unwrap();
        assert_eq!(value, expected, "{path} {field}");
    }
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\"v\": ").unwrap();
    daemon
        .cli()
        .run(&["kv", "put", "app/bad", &format!("@{}", broken.display())])
        .code(64)
        .error_says("is not valid JSON");
    daemon
        .cli()
        .run(&["kv", "put", "app/bad", "@/nonexistent/body.json"])
        .code(64)
        .error_says("cannot read the JSON fields from \"/nonexistent/body.json\"");
}

#[test]
fn rekey_status_names_its_target_in_words() {
    let dir = tempdir();
    let (daemon, _) = unsealed(dir.path(), "");
    let table = daemon
        .cli()
        .run(&[
            "rekey",
            "--init",
            "--key-shares",
            "3",
            "--key-threshold",
            "2",
        ])
        .ok()
        .stdout;
    let target = table.lines().find(|l| l.starts_with("Target")).unwrap();
    assert!(target.ends_with("unseal keys"), "{table}");
    let json = daemon
        .cli()
        .run(&["rekey", "--status", "--format", "json"])
        .ok()
        .json();
    assert_eq!(json["target"], "barrier", "JSON keeps its documented value");
}

#[test]
fn snapshot_save_never_follows_or_reuses_a_planted_temp_file() {
    let dir = tempdir();
    let (daemon, _) = unsealed(dir.path(), "");
    let shared = tempdir();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let snapshot = shared.path().join("store.snap");

    // A symlink where the old code wrote its temp file: not followed.
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "root's file").unwrap();
    let planted = shared.path().join("store.snap.partial");
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    daemon
        .cli()
        .run(&["snapshot", "save", snapshot.to_str().unwrap()])
        .ok();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root's file");
    let meta = std::fs::symlink_metadata(&snapshot).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(meta.len() > 0);

    // A world-writable file there: not reused, so the snapshot stays 0600
    // and the planted file keeps its content.
    std::fs::remove_file(&planted).unwrap();
    std::fs::remove_file(&snapshot).unwrap();
    std::fs::write(&planted, "planted").unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o666)).unwrap();
    daemon
        .cli()
        .run(&["snapshot", "save", snapshot.to_str().unwrap()])
        .ok();
    let meta = std::fs::symlink_metadata(&snapshot).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(&planted).unwrap(), "planted");

    // No temp file is left behind: the directory holds the snapshot and
    // the planted file only.
    let mut names: Vec<String> = std::fs::read_dir(shared.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["store.snap", "store.snap.partial"]);
}

#[test]
fn status_tables_say_the_auto_unseal_state_in_words() {
    let kms = kms();
    let dir = tempdir();
    let daemon = start_daemon(dir.path(), &kms.proxy.endpoint(), "");
    let init = init_recovery(&daemon);
    daemon.cli().token(&init.root_token).run(&["seal"]).ok();
    let table = daemon.cli().run(&["status"]).code(2).stdout;
    let row = table
        .lines()
        .find(|l| l.starts_with("Auto-Unseal "))
        .unwrap();
    assert!(row.ends_with("stopped (sealed by an operator)"), "{table}");
    // The JSON keeps the documented value.
    assert_eq!(status(&daemon)["auto_unseal"]["state"], "stopped");
}
