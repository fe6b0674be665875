//! The process's limits, as a daemon started from here would have them:
//! locking memory (or `disable_mlock`), core dumps, open files, the user,
//! the clock. Each verdict is a pure function of what was read, so both
//! of its sides are tested without changing the machine.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit};

use super::{Context, Finding, ServiceUser};

/// Below this many open files a busy daemon runs out (each client
/// connection, the store, the audit files).
const MIN_OPEN_FILES: u64 = 4096;

/// `CAP_IPC_LOCK` is capability number 14.
const CAP_IPC_LOCK: u32 = 14;

/// How long a time service's tool may take to answer.
const TOOL_TIMEOUT: Duration = Duration::from_secs(2);
/// The most of a tool's answer read.
const MAX_TOOL_ANSWER: usize = 16 * 1024;

/// Said of every limit: they are this shell's, which a unit replaces.
const HERE: &str = "in this shell (a systemd unit sets its own)";

/// The process area.
pub fn check(context: &Context) -> Finding {
    let checks = [
        ("mlock", mlock as fn(&Context) -> Finding),
        ("core dumps", |_| core_dumps()),
        ("open files", |_| open_files()),
        ("user", user),
        ("clock", |_| clock()),
    ];
    let children = checks
        .into_iter()
        .map(|(name, check)| context.unless_skipped(name, || check(context)))
        .collect();
    Finding::heading("process", "", children)
}

fn limit_text(limit: u64) -> String {
    if limit == RLIM_INFINITY {
        "unlimited".into()
    } else {
        limit.to_string()
    }
}

fn has_cap_ipc_lock() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_IPC_LOCK) != 0)
}

fn mlock(context: &Context) -> Finding {
    let disabled = context
        .config
        .as_ref()
        .filter(|c| c.disable_mlock.value)
        .map(|c| c.disable_mlock.source.to_string());
    if disabled.is_some() {
        return mlock_verdict(disabled.as_deref(), 0, false);
    }
    match getrlimit(Resource::RLIMIT_MEMLOCK) {
        Ok((soft, _)) => mlock_verdict(None, soft, has_cap_ipc_lock()),
        Err(e) => Finding::skipped("mlock", format!("RLIMIT_MEMLOCK cannot be read: {e}")),
    }
}

/// Whether memory can be locked: `disabled` names where `disable_mlock`
/// was set, `soft` is RLIMIT_MEMLOCK, `cap` whether CAP_IPC_LOCK is held.
fn mlock_verdict(disabled: Option<&str>, soft: u64, cap: bool) -> Finding {
    const NAME: &str = "mlock";
    if let Some(source) = disabled {
        return Finding::warning(
            NAME,
            format!("mlock is disabled ({source}): key material in memory may be written to swap"),
            "remove disable_mlock where swap is on, and give the daemon LimitMEMLOCK=infinity or CAP_IPC_LOCK",
        );
    }
    if soft == RLIM_INFINITY {
        Finding::success(
            NAME,
            format!("memory can be locked {HERE}: RLIMIT_MEMLOCK is unlimited"),
        )
    } else if cap {
        Finding::success(
            NAME,
            format!("memory can be locked {HERE}: the process has CAP_IPC_LOCK"),
        )
    } else {
        Finding::failure(
            NAME,
            format!(
                "a daemon started {HERE} could not lock its memory: RLIMIT_MEMLOCK is {} KiB and CAP_IPC_LOCK is missing, so it would exit at start",
                soft / 1024
            ),
            "run it as deploy/strongroom.service does (LimitMEMLOCK=infinity, AmbientCapabilities=CAP_IPC_LOCK), or set disable_mlock = true where there is no swap",
        )
    }
}

fn core_dumps() -> Finding {
    match getrlimit(Resource::RLIMIT_CORE) {
        Ok((soft, _)) => core_verdict(soft),
        Err(e) => Finding::skipped("core dumps", format!("RLIMIT_CORE cannot be read: {e}")),
    }
}

/// Whether core dumps are off, from RLIMIT_CORE's soft limit.
fn core_verdict(soft: u64) -> Finding {
    const NAME: &str = "core dumps";
    if soft == 0 {
        return Finding::success(
            NAME,
            format!("core dumps are off {HERE} (RLIMIT_CORE is 0)"),
        );
    }
    Finding::warning(
        NAME,
        format!(
            "core dumps are allowed {HERE} (RLIMIT_CORE is {}); the daemon turns its own off at start, but a crash before that could write key material to disk",
            limit_text(soft)
        ),
        "set LimitCORE=0 as deploy/strongroom.service does",
    )
}

fn open_files() -> Finding {
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, _)) => open_files_verdict(soft),
        Err(e) => Finding::skipped("open files", format!("RLIMIT_NOFILE cannot be read: {e}")),
    }
}

/// Whether RLIMIT_NOFILE's soft limit is enough for a busy daemon.
fn open_files_verdict(soft: u64) -> Finding {
    const NAME: &str = "open files";
    if soft >= MIN_OPEN_FILES {
        Finding::success(
            NAME,
            format!("up to {} open files {HERE}", limit_text(soft)),
        )
    } else {
        Finding::warning(
            NAME,
            format!("only {soft} open files {HERE}: a busy daemon runs out of connections"),
            format!("raise it to at least {MIN_OPEN_FILES} (LimitNOFILE= in the unit)"),
        )
    }
}

fn user(context: &Context) -> Finding {
    user_verdict(
        nix::unistd::geteuid().is_root(),
        &context.running_as,
        &context.service_user_name,
        context.service_user.as_ref(),
    )
}

/// Who diagnose runs as (`root`), and the service user it was asked to
/// check for (`asked`), found or not (`found`).
fn user_verdict(root: bool, running_as: &str, asked: &str, found: Option<&ServiceUser>) -> Finding {
    const NAME: &str = "user";
    if !root {
        return Finding::success(NAME, format!("running as {running_as}, not root"));
    }
    match found {
        // The daemon runs as its own user (User= in the unit); diagnose
        // as root is how it can check that user's access.
        Some(user) if user.uid != 0 => Finding::success(
            NAME,
            format!(
                "diagnose runs as root; the daemon runs as the service user {} (uid {}), for whom the checks of files and directories are made too",
                user.name, user.uid
            ),
        ),
        Some(_) => Finding::warning(
            NAME,
            format!(
                "the service user {} is root: the daemon would run as root",
                crate::text::quote(asked)
            ),
            "create a service user (deploy/strongroom.sysusers) and run the daemon as it, never as root",
        ),
        None => Finding::failure(
            NAME,
            format!(
                "the service user {} does not exist: the checks of files and directories were made for root only, who can read and write anything",
                crate::text::quote(asked)
            ),
            "create it (systemd-sysusers with deploy/strongroom.sysusers), or name the daemon's user with --user",
        ),
    }
}

fn clock() -> Finding {
    let timedatectl = tool_answer(
        "timedatectl",
        &["show", "--property=NTPSynchronized", "--value"],
    );
    let chrony = match timedatectl {
        Some(_) => None,
        None => tool_answer("chronyc", &["-n", "tracking"]),
    };
    let timesyncd = std::path::Path::new("/run/systemd/timesync/synchronized").exists();
    clock_verdict(synchronized(
        timedatectl.as_deref(),
        chrony.as_deref(),
        timesyncd,
    ))
}

/// Whether the clock is synchronized, from `timedatectl`'s answer, else
/// `chronyc tracking`'s, else timesyncd's flag file; `None` when no time
/// service answered.
fn synchronized(timedatectl: Option<&str>, chrony: Option<&str>, timesyncd: bool) -> Option<bool> {
    if let Some(answer) = timedatectl {
        return Some(answer.trim() == "yes");
    }
    if let Some(tracking) = chrony {
        let leap = tracking.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == "Leap status").then(|| value.trim().to_string())
        });
        if let Some(leap) = leap {
            return Some(leap == "Normal");
        }
    }
    timesyncd.then_some(true)
}

/// The clock's verdict from [`synchronized`].
fn clock_verdict(synchronized: Option<bool>) -> Finding {
    const NAME: &str = "clock";
    match synchronized {
        Some(true) => Finding::success(NAME, "the system clock is synchronized"),
        Some(false) => Finding::warning(
            NAME,
            "the system clock is not synchronized: token expiry, TLS certificates and HA leases rely on it",
            "enable systemd-timesyncd or chrony",
        ),
        None => Finding::skipped(
            NAME,
            "no time service answers here (timedatectl, chronyc); the clock's synchronisation is not known",
        ),
    }
}

/// What `program args` printed, when it ran and succeeded within
/// [`TOOL_TIMEOUT`]; a tool that hangs is killed (by its own handle).
fn tool_answer(program: &str, args: &[&str]) -> Option<String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + TOOL_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    };
    if !status.success() {
        return None;
    }
    let mut out = Vec::new();
    use std::io::Read;
    child
        .stdout
        .take()?
        .take(MAX_TOOL_ANSWER as u64)
        .read_to_end(&mut out)
        .ok()?;
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::Status;

    #[test]
    fn mlock_needs_an_unlimited_limit_or_the_capability() {
        assert_eq!(
            mlock_verdict(None, RLIM_INFINITY, false).status,
            Status::Success
        );
        assert_eq!(mlock_verdict(None, 65536, true).status, Status::Success);
        let refused = mlock_verdict(None, 65536, false);
        assert_eq!(refused.status, Status::Failure);
        assert!(refused.message.contains("64 KiB"), "{}", refused.message);
        let disabled = mlock_verdict(Some("file:3"), 0, false);
        assert_eq!(disabled.status, Status::Warning);
        assert!(disabled.message.contains("file:3"));
    }

    #[test]
    fn core_dumps_must_be_off() {
        assert_eq!(core_verdict(0).status, Status::Success);
        assert_eq!(core_verdict(RLIM_INFINITY).status, Status::Warning);
        assert!(core_verdict(RLIM_INFINITY).message.contains("unlimited"));
    }

    #[test]
    fn open_files_must_be_plenty() {
        assert_eq!(open_files_verdict(MIN_OPEN_FILES).status, Status::Success);
        assert_eq!(open_files_verdict(RLIM_INFINITY).status, Status::Success);
        assert_eq!(open_files_verdict(1024).status, Status::Warning);
    }

    #[test]
    fn a_missing_service_user_fails_as_root() {
        let strongroom = ServiceUser {
            name: "strongroom".into(),
            uid: 996,
            gid: 996,
        };
        assert_eq!(
            user_verdict(false, "alice", "strongroom", None).status,
            Status::Success
        );
        assert_eq!(
            user_verdict(true, "root", "strongroom", Some(&strongroom)).status,
            Status::Success
        );
        let missing = user_verdict(true, "root", "strongroom", None);
        assert_eq!(missing.status, Status::Failure);
        assert!(
            missing
                .message
                .starts_with("the service user \"strongroom\" does not exist"),
            "{}",
            missing.message
        );
        let root = ServiceUser {
            name: "root".into(),
            uid: 0,
            gid: 0,
        };
        assert_eq!(
            user_verdict(true, "root", "root", Some(&root)).status,
            Status::Warning
        );
    }

    #[test]
    fn the_clock_is_read_from_timedatectl_then_chrony() {
        assert_eq!(synchronized(Some("yes\n"), None, false), Some(true));
        assert_eq!(synchronized(Some("no\n"), None, true), Some(false));
        let tracking = |leap: &str| {
            format!(
                "Reference ID    : 00000000 ()\nStratum         : 0\nLeap status     : {leap}\n"
            )
        };
        assert_eq!(
            synchronized(None, Some(&tracking("Normal")), false),
            Some(true)
        );
        assert_eq!(
            synchronized(None, Some(&tracking("Not synchronised")), false),
            Some(false)
        );
        assert_eq!(synchronized(None, None, true), Some(true));
        assert_eq!(synchronized(None, None, false), None);
        assert_eq!(clock_verdict(Some(true)).status, Status::Success);
        assert_eq!(clock_verdict(Some(false)).status, Status::Warning);
        assert_eq!(clock_verdict(None).status, Status::Skipped);
    }

    #[test]
    fn a_tool_that_is_missing_or_fails_gives_no_answer() {
        assert_eq!(tool_answer("strongroom-no-such-tool", &[]), None);
        assert_eq!(tool_answer("false", &[]), None);
        assert_eq!(tool_answer("echo", &["yes"]).as_deref(), Some("yes\n"));
    }
}
