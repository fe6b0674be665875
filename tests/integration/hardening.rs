//! mlockall: on when it can be guaranteed, a clear refusal when it cannot.

use std::process::Command;

use crate::support::daemon::{BIN, Daemon, config, tempdir};

fn status_field(pid: u32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field).map(|v| v.trim().to_string()))
        .unwrap_or_default()
}

#[test]
fn mlock_locks_the_daemons_memory() {
    let dir = tempdir();
    let text = config(dir.path(), "").replace("disable_mlock = true", "disable_mlock = false");
    let daemon = Daemon::start(dir.path(), &text);
    let locked: u64 = status_field(daemon.pid(), "VmLck:")
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap();
    assert!(locked > 0, "VmLck is 0 kB with mlock on");
}

#[test]
fn mlock_that_cannot_be_guaranteed_refuses_to_start() {
    let dir = tempdir();
    let text = config(dir.path(), "").replace("disable_mlock = true", "disable_mlock = false");
    let path = dir.path().join("strongroom.hcl");
    std::fs::write(&path, text).unwrap();
    // Without CAP_IPC_LOCK (dropped from the bounding set) and with a 64 KiB limit.
    let out = Command::new("setpriv")
        .args([
            "--bounding-set",
            "-ipc_lock",
            "--",
            "prlimit",
            "--memlock=65536:65536",
            BIN,
            "server",
            "--config",
        ])
        .arg(&path)
        .output()
        .expect("setpriv and prlimit (util-linux) are needed for this test");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("mlock is on, but this process may lock only 64 KiB of memory (RLIMIT_MEMLOCK) and lacks CAP_IPC_LOCK"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "nothing should be created before the refusal"
    );
}
