//! Stopping an earlier start's emulator: only while its PID is still the
//! emulator's.

use std::os::unix::process::ExitStatusExt;

use super::*;

fn line(words: &[&str]) -> Option<Vec<u8>> {
    Some(words.join("\0").into_bytes())
}

#[test]
fn an_earlier_emulator_is_stopped_only_while_its_pid_is_still_the_emulators() {
    let emulator = |_| {
        line(&[
            "timeout",
            "10800",
            "/w/.venv-localstack/bin/python",
            "-m",
            "localstack.runtime.main",
        ])
    };
    assert_eq!(earlier_emulator("4242\n", 7, emulator), Some(4242));
    // The script itself, before it execs.
    let script = |_| {
        line(&[
            "bash",
            "/w/../shared/scripts/localstack-kms",
            "/w/venv",
            "5",
        ])
    };
    assert_eq!(earlier_emulator("4242", 7, script), Some(4242));
    // The PID reused by another process, gone, or a zombie.
    assert_eq!(earlier_emulator("4242", 7, |_| line(&["sleep", "9"])), None);
    assert_eq!(earlier_emulator("4242", 7, |_| None), None);
    assert_eq!(earlier_emulator("4242", 7, |_| Some(Vec::new())), None);
    // Never this process, the whole caller's group (0) or init.
    assert_eq!(earlier_emulator("7", 7, emulator), None);
    assert_eq!(earlier_emulator("0", 7, emulator), None);
    assert_eq!(earlier_emulator("1", 7, emulator), None);
    // A PID file cut short or not a PID.
    for text in ["", "\n", "-4242", "42x", "4242 4243"] {
        assert_eq!(earlier_emulator(text, 7, emulator), None, "{text:?}");
    }
}

/// A process in its own group, as the emulator is, with its PID in a
/// PID file; `$0` is `name`.
fn process_with_pid_file(name: &str) -> (Child, PathBuf) {
    let child = Command::new("sh")
        .args(["-c", "sleep 30; :", name])
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    // Just after the spawn its command line can still be empty.
    let start = Instant::now();
    while !command_line(child.id())
        .is_some_and(|line| line.windows(name.len()).any(|part| part == name.as_bytes()))
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "sh did not show its command line within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid_file = std::env::temp_dir().join(format!(
        "strongroom-localstack-unit-{}-{}.pid",
        std::process::id(),
        child.id()
    ));
    fs::write(&pid_file, child.id().to_string()).unwrap();
    (child, pid_file)
}

/// `child`'s exit status, waiting at most 10 s.
fn exited_within(child: &mut Child) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn stopping_an_earlier_start_terminates_its_process_group() {
    let (mut child, pid_file) = process_with_pid_file("localstack-kms");
    stop_earlier(&pid_file);
    let status = exited_within(&mut child);
    if status.is_none() {
        signal_group("KILL", child.id());
        let _ = child.wait();
    }
    fs::remove_file(&pid_file).unwrap();
    assert_eq!(status.and_then(|status| status.signal()), Some(15));
}

#[test]
fn a_pid_that_is_not_the_emulators_is_left_running() {
    let (mut child, pid_file) = process_with_pid_file("unrelated");
    stop_earlier(&pid_file);
    let running = child.try_wait().unwrap().is_none();
    signal_group("KILL", child.id());
    let status = exited_within(&mut child);
    fs::remove_file(&pid_file).unwrap();
    assert!(running, "a process without the mark was stopped");
    assert_eq!(status.and_then(|status| status.signal()), Some(9));
    // No PID file: nothing to stop.
    stop_earlier(&pid_file);
}
