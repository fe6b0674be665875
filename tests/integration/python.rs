//! A sidecar in another language: Python's grpcio-reflection (v1alpha only)
//! discovers the API and calls Status without strongroom's .proto files,
//! over TCP and over the unix socket, with grpcio's default channel options;
//! and reads a secret on the socket without a token, by its uid.

use std::path::PathBuf;
use std::process::Command;

use crate::support::cli::{init, write_policy};
use crate::support::daemon::{Daemon, config, open, tempdir};

/// The virtualenv's Python, which `scripts/test` sets up from
/// tests/python/requirements.txt. Missing is a failure, not a skip.
fn python() -> PathBuf {
    let path = std::env::var_os("STRONGROOM_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python")));
    assert!(
        path.exists(),
        "{} is missing: run scripts/test, which creates .venv with tests/python/requirements.txt",
        path.display()
    );
    path
}

/// Runs reflect.py against `target` (and `args`); returns what it found.
fn reflect(target: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/reflect.py"
        ))
        .arg(target)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "reflect.py {target} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_python_client_discovers_the_api_by_reflection() {
    let dir = tempdir();
    let daemon = Daemon::start(dir.path(), &config(dir.path(), ""));
    init(&daemon, &["--key-shares", "3", "--key-threshold", "2"]);
    // On the unix socket grpc-core sends the socket's path, percent-encoded,
    // as :authority (grpc/grpc#38142); the patched h2 (patches/h2) takes it.
    let socket = daemon.socket.as_ref().unwrap();
    let targets = [
        daemon.addr.trim_start_matches("http://").to_string(),
        format!("unix://{}", socket.display()),
    ];
    for target in &targets {
        let found = reflect(target, &[]);
        let services: Vec<&str> = found["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        for service in [
            "strongroom.v1.Sys",
            "strongroom.v1.Kv",
            "grpc.health.v1.Health",
        ] {
            assert!(
                services.contains(&service),
                "{target}: {service} not in {services:?}"
            );
        }
        let status = &found["status"];
        assert_eq!(status["type"], "shamir", "{target}");
        assert_eq!(status["initialized"], true, "{target}");
        assert_eq!(status["sealed"], true, "{target}");
        assert_eq!(
            (status["threshold"].as_u64(), status["shares"].as_u64()),
            (Some(2), Some(3)),
            "{target}"
        );
    }
}

#[test]
fn a_python_sidecar_reads_a_secret_on_the_unix_socket_without_a_token() {
    let dir = tempdir();
    // The sidecar is this test's own uid, recognised on the socket.
    let uid = nix::unistd::geteuid();
    let text = config(dir.path(), "").replace(
        "socket_mode = \"0660\"",
        &format!(
            "socket_mode = \"0660\"\n  identity {{\n    uid      = {uid}\n    policies = [\"app\"]\n  }}"
        ),
    );
    let mut daemon = Daemon::start(dir.path(), &text);
    open(&mut daemon);
    write_policy(
        &mut daemon.cli(),
        "app",
        "path \"secret/data/app/*\" { capabilities = [\"read\"] }",
    );
    daemon
        .cli()
        .run(&["kv", "put", "app/db", "password=hunter2"])
        .ok();
    let socket = daemon.socket.as_ref().unwrap();
    let found = reflect(&format!("unix://{}", socket.display()), &["app/db"]);
    assert_eq!(found["kv"]["data"]["password"], "hunter2", "{found}");
    assert_eq!(found["status"]["sealed"], false);
}
