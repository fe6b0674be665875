//! Keeping key material out of swap and core dumps.
//!
//! `mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)` locks every page the
//! process has or will have, including what tonic, h2 and rustls buffer
//! outside our zeroizing types; `MCL_ONFAULT` locks pages when first touched,
//! so reserved-but-unused memory (thread stacks) costs nothing.
//! `PR_SET_DUMPABLE = 0` forbids core dumps and ptrace attachment by
//! same-user processes.

use nix::sys::mman::{MlockAllFlags, mlockall};
use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit};

/// Sets the umask to 0077: without systemd's `UMask=` the daemon would
/// create its files and socket with whatever the shell had (0022, or 0000).
pub fn restrict_umask() {
    use nix::sys::stat::{Mode, umask};
    umask(Mode::from_bits_truncate(0o077));
}

/// `CAP_IPC_LOCK` is capability number 14.
const CAP_IPC_LOCK: u32 = 14;

/// Why memory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum HardeningError {
    /// Locking would fail later, under load; refuse now instead.
    #[error(
        "mlock is on, but this process may lock only {limit} of memory (RLIMIT_MEMLOCK) and lacks CAP_IPC_LOCK; run it with LimitMEMLOCK=infinity or AmbientCapabilities=CAP_IPC_LOCK (as deploy/strongroom.service does), or set disable_mlock = true"
    )]
    NotPermitted {
        /// The soft limit, formatted.
        limit: String,
    },
    /// The system call failed.
    #[error("mlockall failed: {0}")]
    Mlock(nix::Error),
}

fn has_cap_ipc_lock() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_IPC_LOCK) != 0)
}

/// Locks all current and future memory, after checking that the kernel will
/// allow it for the life of the process.
pub fn lock_memory() -> Result<(), HardeningError> {
    let (soft, _) = getrlimit(Resource::RLIMIT_MEMLOCK).map_err(HardeningError::Mlock)?;
    if soft != RLIM_INFINITY && !has_cap_ipc_lock() {
        return Err(HardeningError::NotPermitted {
            limit: format!("{} KiB", soft / 1024),
        });
    }
    let flags = MlockAllFlags::MCL_CURRENT
        | MlockAllFlags::MCL_FUTURE
        | MlockAllFlags::from_bits_retain(libc::MCL_ONFAULT);
    mlockall(flags).map_err(HardeningError::Mlock)
}

/// Forbids core dumps and same-user ptrace. Failure is logged, not fatal.
pub fn forbid_core_dumps() {
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        tracing::warn!(error = %e, "prctl(PR_SET_DUMPABLE, 0) failed; a crash could write a core dump");
    }
}
