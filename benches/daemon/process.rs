//! The processes the bench starts and measures: each dies with the bench,
//! every wait is bounded, and their CPU and memory are read from /proc.

use std::future::Future;
use std::io::Read;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sched::{CpuSet, sched_setaffinity};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::BOUND;

/// `command`, made to die with this process (the bench may be killed):
/// util-linux's `setpriv --pdeathsig` sets PR_SET_PDEATHSIG and execs it,
/// so the PID is the command's own.
pub(crate) fn die_with_parent(command: &Command) -> Command {
    let mut wrapped = Command::new("setpriv");
    wrapped
        .args(["--pdeathsig", "KILL", "--"])
        .arg(command.get_program())
        .args(command.get_args());
    for (name, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(name, value),
            None => wrapped.env_remove(name),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}

/// Runs `command` to completion within [`BOUND`], killing it past that.
pub(crate) fn output_within(command: &mut Command) -> Option<Output> {
    output_within_for(command, BOUND)
}

/// Runs `command` to completion within `limit`, killing it past that.
pub(crate) fn output_within_for(command: &mut Command, limit: Duration) -> Option<Output> {
    let mut child = die_with_parent(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take()?));
    let stderr = drain(Box::new(child.stderr.take()?));
    let start = Instant::now();
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Some(Output {
        status,
        stdout: stdout.join().ok()?,
        stderr: stderr.join().ok()?,
    })
}

/// Awaits `future` within [`BOUND`], or stops the bench saying what hung.
pub(crate) async fn bounded<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(BOUND, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what} took over {BOUND:?}"),
    }
}

/// A process this benchmark started: killed by PID when dropped.
pub(crate) struct Proc(pub(crate) Option<Child>);

impl Proc {
    pub(crate) fn pid(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }

    pub(crate) fn exited(&mut self) -> bool {
        self.0
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// SIGTERM, then the time until it exited (SIGKILL after [`BOUND`]).
    pub(crate) fn stop(mut self) -> Duration {
        let Some(mut child) = self.0.take() else {
            return Duration::ZERO;
        };
        let start = Instant::now();
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        while start.elapsed() < BOUND {
            if let Ok(Some(_)) = child.try_wait() {
                return start.elapsed();
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("a daemon did not exit within {BOUND:?} of SIGTERM");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Pins the calling thread (the load generator's) to `cpu`, or lets it
/// (and the daemons it starts, which inherit it) run on every CPU.
pub(crate) fn pin_self(cpu: Option<usize>) {
    let mut set = CpuSet::new();
    match cpu {
        Some(cpu) => set.set(cpu).expect("a CPU number the set can hold"),
        // The kernel ignores the CPUs this machine does not have.
        None => (0..CpuSet::count()).for_each(|c| set.set(c).expect("in range")),
    }
    sched_setaffinity(Pid::from_raw(0), &set).expect("set this thread's CPUs");
}

/// A field of /proc/PID/status in MiB; the bench stops if it cannot read it
/// (a value of 0 would pass every bound).
pub(crate) fn proc_status_mib(pid: u32, field: &str) -> f64 {
    let kib: u64 = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix(field)?
                    .trim()
                    .trim_end_matches(" kB")
                    .trim()
                    .parse()
                    .ok()
            })
        })
        .filter(|&kib| kib > 0)
        .unwrap_or_else(|| panic!("no {field} for process {pid}: is it still running?"));
    kib as f64 / 1024.0
}

pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let fields: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
            let ticks: f64 =
                fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0) // USER_HZ
        })
        .unwrap_or_else(|| panic!("no CPU time for process {pid}"))
}

pub(crate) fn rusage_seconds(who: nix::sys::resource::UsageWho) -> f64 {
    let usage = nix::sys::resource::getrusage(who).expect("getrusage");
    let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
    t(usage.user_time()) + t(usage.system_time())
}
