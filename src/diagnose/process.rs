//! The process's limits, as a daemon started from here would have them:
//! locking memory (or `disable_mlock`), core dumps, open files, the user,
//! the clock.

use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit};

use super::{Context, Finding};

/// Below this many open files a busy daemon runs out (each client
/// connection, the store, the audit files).
const MIN_OPEN_FILES: u64 = 4096;

/// `CAP_IPC_LOCK` is capability number 14.
const CAP_IPC_LOCK: u32 = 14;

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
        .map(|(name, check)| {
            if context.skipped(name) {
                Finding::skipped(name, "skipped (--skip)")
            } else {
                check(context)
            }
        })
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
    const NAME: &str = "mlock";
    let disabled = context
        .config
        .as_ref()
        .map(|c| (c.disable_mlock.value, c.disable_mlock.source.to_string()));
    if let Some((true, source)) = &disabled {
        return Finding::warning(
            NAME,
            format!("mlock is disabled ({source}): key material in memory may be written to swap"),
            "remove disable_mlock where swap is on, and give the daemon LimitMEMLOCK=infinity or CAP_IPC_LOCK",
        );
    }
    let soft = match getrlimit(Resource::RLIMIT_MEMLOCK) {
        Ok((soft, _)) => soft,
        Err(e) => return Finding::skipped(NAME, format!("RLIMIT_MEMLOCK cannot be read: {e}")),
    };
    if soft == RLIM_INFINITY {
        Finding::success(NAME, "memory can be locked: RLIMIT_MEMLOCK is unlimited")
    } else if has_cap_ipc_lock() {
        Finding::success(NAME, "memory can be locked: the process has CAP_IPC_LOCK")
    } else {
        Finding::failure(
            NAME,
            format!(
                "a daemon started from here could not lock its memory: RLIMIT_MEMLOCK is {} KiB and CAP_IPC_LOCK is missing, so it would exit at start",
                soft / 1024
            ),
            "run it as deploy/strongroom.service does (LimitMEMLOCK=infinity, AmbientCapabilities=CAP_IPC_LOCK), or set disable_mlock = true where there is no swap",
        )
    }
}

fn core_dumps() -> Finding {
    const NAME: &str = "core dumps";
    match getrlimit(Resource::RLIMIT_CORE) {
        Ok((0, _)) => Finding::success(NAME, "core dumps are off (RLIMIT_CORE is 0)"),
        Ok((soft, _)) => Finding::warning(
            NAME,
            format!(
                "core dumps are allowed here (RLIMIT_CORE is {}); the daemon turns its own off at start, but a crash before that could write key material to disk",
                limit_text(soft)
            ),
            "set LimitCORE=0 as deploy/strongroom.service does",
        ),
        Err(e) => Finding::skipped(NAME, format!("RLIMIT_CORE cannot be read: {e}")),
    }
}

fn open_files() -> Finding {
    const NAME: &str = "open files";
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, _)) if soft >= MIN_OPEN_FILES => {
            Finding::success(NAME, format!("up to {} open files", limit_text(soft)))
        }
        Ok((soft, _)) => Finding::warning(
            NAME,
            format!("only {soft} open files: a busy daemon runs out of connections"),
            format!("raise it to at least {MIN_OPEN_FILES} (LimitNOFILE= in the unit)"),
        ),
        Err(e) => Finding::skipped(NAME, format!("RLIMIT_NOFILE cannot be read: {e}")),
    }
}

fn user(context: &Context) -> Finding {
    const NAME: &str = "user";
    if !nix::unistd::geteuid().is_root() {
        return Finding::success(NAME, format!("running as {}, not root", context.running_as));
    }
    match &context.service_user {
        Some(user) if user.uid != 0 => Finding::warning(
            NAME,
            format!(
                "diagnose runs as root; the checks of files and directories are made for the service user {} (uid {}) too",
                user.name, user.uid
            ),
            "run the daemon as its own user, never as root (User= in the unit)",
        ),
        _ => Finding::warning(
            NAME,
            "running as root, and no service user other than root was found",
            "create the service user (deploy/strongroom.sysusers) and run the daemon as it, never as root",
        ),
    }
}

fn clock() -> Finding {
    const NAME: &str = "clock";
    let answer = std::process::Command::new("timedatectl")
        .args(["show", "--property=NTPSynchronized", "--value"])
        .output();
    let synchronized = match answer {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim() == "yes",
        _ if std::path::Path::new("/run/systemd/timesync/synchronized").exists() => true,
        _ => {
            return Finding::skipped(
                NAME,
                "no time service answers here (timedatectl); the clock's synchronisation is not known",
            );
        }
    };
    if synchronized {
        Finding::success(NAME, "the system clock is synchronized")
    } else {
        Finding::warning(
            NAME,
            "the system clock is not synchronized: token expiry, TLS certificates and HA leases rely on it",
            "enable systemd-timesyncd or chrony",
        )
    }
}
