//! The HTTP load generator: `wrk`, with a Lua script for anything but a
//! plain GET (OpenBao's side of every load row, both peers' side of the
//! HTTP API rows).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::grpc_load::Load;
use crate::process::{cpu_seconds, output_within_for, rusage_seconds};
use crate::{BOUND, CLIENT_CPU};

/// What `wrk` asks OpenBao: a path, and a Lua script for anything but a
/// plain GET (method, body, headers, distinct paths).
pub(crate) struct WrkTarget {
    pub(crate) path: String,
    pub(crate) script: Option<PathBuf>,
}

/// OpenBao: `wrk` on CPU 1 against `target`, after a 1 s warm-up; its CPU is
/// taken from this process's waited-for children. A run with a failed exit,
/// non-2xx answers or socket errors stops the bench.
pub(crate) fn wrk_load(
    addr: &str,
    clients: usize,
    seconds: u64,
    server_pid: u32,
    target: &WrkTarget,
) -> Load {
    let url = format!("http://{addr}{}", target.path);
    let run = |duration: u64| {
        let limit = BOUND + Duration::from_secs(duration);
        let mut command = Command::new("taskset");
        command
            .args(["-c", &CLIENT_CPU.to_string(), "wrk", "-t1"])
            .arg(format!("-c{clients}"))
            .arg(format!("-d{duration}s"))
            .arg("--latency");
        if let Some(script) = &target.script {
            command.arg("-s").arg(script);
        }
        let out = output_within_for(command.arg(&url), limit).expect("wrk ran and ended");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() && !text.contains("Non-2xx") && !text.contains("Socket errors"),
            "wrk failed against {addr}:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    run(1);
    let children = nix::sys::resource::UsageWho::RUSAGE_CHILDREN;
    let (client_before, server_before) = (rusage_seconds(children), cpu_seconds(server_pid));
    let started = Instant::now();
    let text = run(seconds);
    // wrk's whole life (start-up and connecting too): its CPU and the
    // server's are shares of this, not of the nominal duration.
    let wall = started.elapsed().as_secs_f64();
    let (client_after, server_after) = (rusage_seconds(children), cpu_seconds(server_pid));
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{text}"));
    let latency = |label: &str| -> f64 {
        let value = text
            .lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {label} latency in wrk's output:\n{text}"));
        let at = value.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(0);
        let (number, unit) = value.split_at(at);
        let number: f64 = number.parse().expect("a latency");
        match unit {
            "us" => number / 1000.0,
            "ms" => number,
            "s" => number * 1000.0,
            other => panic!("wrk latency unit {other:?}"),
        }
    };
    Load {
        rps,
        p50_ms: latency("50%"),
        p99_ms: latency("99%"),
        client_cpu: (client_after - client_before) / wall,
        server_cpu: (server_after - server_before) / wall,
    }
}
