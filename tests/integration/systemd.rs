//! The systemd unit and the notify protocol, for real.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use crate::support::cli::init;
use crate::support::daemon::{BIN, Daemon, config, tempdir};

/// Reads notify datagrams until one contains `wanted`.
fn expect_message(socket: &UnixDatagram, wanted: &str) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match socket.recv(&mut buf) {
            Ok(n) => {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                if message.contains(wanted) {
                    return message;
                }
                seen.push(message);
            }
            Err(e) => panic!("no notify message with {wanted:?} ({e}); got {seen:?}"),
        }
    }
}

#[test]
fn notify_sends_ready_and_keeps_status_current() {
    let dir = tempdir();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();

    let mut daemon = Daemon::start_with(
        dir.path(),
        &config(dir.path(), ""),
        &[("NOTIFY_SOCKET", socket_path.to_str().unwrap())],
    );
    let ready = expect_message(&socket, "READY=1");
    assert!(ready.contains("STATUS=uninitialized"), "{ready:?}");
    // READY comes only after the listeners are bound: the CLI connects at once.
    let keys = init(&daemon, &[]);
    expect_message(&socket, "STATUS=sealed; 0/3 unseal keys entered");
    for key in &keys.keys_hex[..3] {
        daemon.cli().run(&["unseal", key]).ok();
    }
    expect_message(&socket, "STATUS=unsealed");
    assert!(daemon.stop().success());
    expect_message(&socket, "STOPPING=1");
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let dir = tempdir();
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/strongroom.service"
    ))
    .unwrap();
    for required in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "RestartPreventExitStatus=64",
        "User=strongroom",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "CapabilityBoundingSet=CAP_IPC_LOCK",
        "AmbientCapabilities=CAP_IPC_LOCK",
        "LimitMEMLOCK=infinity",
        "LimitCORE=0",
        "StateDirectory=strongroom",
        "RuntimeDirectory=strongroom",
        "LogsDirectory=strongroom",
    ] {
        assert!(
            unit.lines().any(|l| l == required),
            "the unit lacks {required}"
        );
    }
    let path = dir.path().join("strongroom.service");
    std::fs::write(&path, unit.replace("/usr/bin/strongroom", BIN)).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", path.to_str().unwrap()])
        .output()
        .expect("systemd-analyze is needed for this test (Debian package systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    // Warnings (unknown keys and the like) fail the test too.
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze verify warned:\n{stderr}"
    );
}
