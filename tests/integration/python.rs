//! A sidecar in another language: Python's grpcio-reflection (v1alpha only)
//! discovers the API and calls Status without strongroom's .proto files,
//! over TCP and over the unix socket, with grpcio's default channel options.

use std::path::PathBuf;
use std::process::Command;

use crate::support::cli::init;
use crate::support::daemon::{Daemon, config, tempdir};

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

/// Runs reflect.py against `target`; returns what it found.
fn reflect(target: &str) -> serde_json::Value {
    let out = Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/reflect.py"
        ))
        .arg(target)
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
        let found = reflect(target);
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
