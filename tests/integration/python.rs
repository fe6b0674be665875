//! A sidecar in another language: Python's grpcio-reflection (v1alpha only)
//! discovers the API and calls Status without strongroom's .proto files.

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

#[test]
fn a_python_client_discovers_the_api_by_reflection() {
    let dir = tempdir();
    let daemon = Daemon::start(dir.path(), &config(dir.path(), ""));
    init(&daemon, &["--key-shares", "3", "--key-threshold", "2"]);
    let target = daemon.addr.trim_start_matches("http://");
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
        "reflect.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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
        assert!(services.contains(&service), "{service} not in {services:?}");
    }
    let status = &found["status"];
    assert_eq!(status["type"], "shamir");
    assert_eq!(status["initialized"], true);
    assert_eq!(status["sealed"], true);
    assert_eq!(
        (status["threshold"].as_u64(), status["shares"].as_u64()),
        (Some(2), Some(3))
    );
}
