//! Whole-daemon benchmarks and the gRPC load generator, against the release
//! `strongroom` binary:
//!
//! - start to answering Status (an initialized, sealed store; Shamir);
//! - the three Unseal calls after a restart, on one connection;
//! - Status throughput and latency at 1, 16 and 64 concurrent clients over
//!   TCP and the unix socket, the server pinned to CPU 0 and this load
//!   generator to CPU 1;
//! - idle RSS 5 s after unseal with mlock off and on, peak RSS after load;
//! - SIGTERM to exit; binary size;
//! - awskms against moto on loopback (from the project's `.venv`, as the tests
//!   use it), through the tests' counting proxy: init time and KMS requests per
//!   init, restart to unsealed (Status polled every 200 µs on one connection)
//!   and KMS requests per restart, and the KMS Decrypt round trip on its own.
//!   Skipped with a note when `.venv/bin/moto_server` is missing.
//!
//! `cargo bench --bench daemon` prints a Markdown table (and writes
//! target/bench/daemon.json). Options: `--runs N` (restarts per timing,
//! default 20), `--seconds S` (per throughput point, default 5).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use nix::sched::{CpuSet, sched_setaffinity};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use strongroom::proto::{
    InitConfirmRequest, InitRequest, InitResponse, StatusRequest, UnsealRequest,
    sys_client::SysClient,
};
use tonic::transport::{Channel, Endpoint};

#[path = "../tests/integration/kms.rs"]
mod kms;

const BIN: &str = env!("CARGO_BIN_EXE_strongroom");
const SERVER_CPU: usize = 0;
const CLIENT_CPU: usize = 1;

struct Options {
    runs: usize,
    seconds: u64,
}

fn options() -> Options {
    let mut options = Options {
        runs: 20,
        seconds: 5,
    };
    let args: Vec<String> = std::env::args().collect();
    for pair in args.windows(2) {
        match pair[0].as_str() {
            "--runs" => options.runs = pair[1].parse().unwrap_or(options.runs),
            "--seconds" => options.seconds = pair[1].parse().unwrap_or(options.seconds),
            _ => {}
        }
    }
    options
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18400)
}

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    addr: String,
    socket: PathBuf,
}

fn setup(mlock: bool) -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let socket = dir.path().join("strongroom.sock");
    let config = dir.path().join("strongroom.hcl");
    std::fs::write(
        &config,
        format!(
            "storage \"file\" {{ path = \"{}\" }}\nlistener \"tcp\" {{ address = \"127.0.0.1:{port}\" }}\nlistener \"unix\" {{ path = \"{}\" }}\ndisable_mlock = {}\nlog_level = \"warn\"\n",
            dir.path().join("data").display(),
            socket.display(),
            !mlock
        ),
    )
    .expect("write config");
    Setup {
        addr: format!("http://127.0.0.1:{port}"),
        dir,
        config,
        socket,
    }
}

fn spawn(setup: &Setup) -> Child {
    Command::new(BIN)
        .args(["server", "--config"])
        .arg(&setup.config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn strongroom")
}

fn pin(pid: Pid, cpu: usize) {
    let mut set = CpuSet::new();
    if set.set(cpu).is_ok() {
        let _ = sched_setaffinity(pid, &set);
    }
}

fn stop(mut child: Child) -> Duration {
    let start = Instant::now();
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    let _ = child.wait();
    start.elapsed()
}

/// Polls Status until it answers, returning the time since `start`.
async fn until_answering(addr: &str, start: Instant) -> (Channel, Duration) {
    let endpoint = Endpoint::from_shared(addr.to_string()).expect("endpoint");
    loop {
        if let Ok(channel) = endpoint.connect().await {
            let mut sys = SysClient::new(channel.clone());
            if sys.status(StatusRequest {}).await.is_ok() {
                return (channel, start.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "strongroom did not answer"
        );
    }
}

async fn unix_channel(socket: &Path) -> Channel {
    let socket = socket.to_path_buf();
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move {
                tokio::net::UnixStream::connect(socket)
                    .await
                    .map(TokioIo::new)
            }
        }))
        .await
        .expect("unix connect")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| {
                    l.strip_prefix(field)
                        .map(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
                })
                .flatten()
        })
        .unwrap_or(0)
}

fn cpu_seconds(pid: u32) -> f64 {
    let ticks = 100.0; // USER_HZ on Linux
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
            let utime: f64 = after.get(11)?.parse().ok()?;
            let stime: f64 = after.get(12)?.parse().ok()?;
            Some((utime + stime) / ticks)
        })
        .unwrap_or(0.0)
}

fn self_cpu_seconds() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_SELF)
        .map(|u| {
            let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            t(u.user_time()) + t(u.system_time())
        })
        .unwrap_or(0.0)
}

struct Row {
    scenario: String,
    value: String,
}

struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    client_cpu: f64,
    server_cpu: f64,
}

/// `clients` connections, each with one Status call in flight at a time.
async fn status_load(channels: Vec<Channel>, seconds: u64, server_pid: u32) -> Load {
    let warmup = Duration::from_millis(500);
    let measure = Duration::from_secs(seconds);
    let start = Instant::now();
    let tasks: Vec<_> = channels
        .into_iter()
        .map(|channel| {
            tokio::spawn(async move {
                let mut sys = SysClient::new(channel);
                let mut latencies = Vec::with_capacity(100_000);
                loop {
                    let sent = Instant::now();
                    if sys.status(StatusRequest {}).await.is_err() {
                        break;
                    }
                    let elapsed = sent.elapsed();
                    let since_start = sent.duration_since(start);
                    if since_start >= warmup + measure {
                        break;
                    }
                    if since_start >= warmup {
                        latencies.push(elapsed.as_secs_f64() * 1000.0);
                    }
                }
                latencies
            })
        })
        .collect();
    tokio::time::sleep(warmup).await;
    let (client_before, server_before) = (self_cpu_seconds(), cpu_seconds(server_pid));
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap_or_default());
    }
    let (client_after, server_after) = (self_cpu_seconds(), cpu_seconds(server_pid));
    all.sort_by(|a, b| a.total_cmp(b));
    let wall = measure.as_secs_f64();
    Load {
        rps: all.len() as f64 / wall,
        p50_ms: percentile(&all, 0.50),
        p99_ms: percentile(&all, 0.99),
        client_cpu: (client_after - client_before) / wall,
        server_cpu: (server_after - server_before) / wall,
    }
}

/// Init and its confirmation: the store is written by the second call.
async fn init_confirmed(
    sys: &mut SysClient<tonic::transport::Channel>,
    request: InitRequest,
) -> InitResponse {
    let init = sys.init(request).await.expect("init").into_inner();
    sys.init_confirm(InitConfirmRequest {
        nonce: init.confirmation_nonce.clone(),
    })
    .await
    .expect("init confirm");
    init
}

/// Enters `keys` one by one on one connection.
async fn unseal_all(channel: Channel, keys: &[String]) {
    let mut sys = SysClient::new(channel);
    for key in keys {
        sys.unseal(UnsealRequest {
            key: key.clone(),
            ..Default::default()
        })
        .await
        .expect("unseal");
    }
}

/// Lets the daemon settle for 5 s, then records its resident memory.
fn idle_rss(
    pid: u32,
    scenario: &str,
    key: &str,
    rows: &mut Vec<Row>,
    json: &mut serde_json::Map<String, serde_json::Value>,
) {
    std::thread::sleep(Duration::from_secs(5));
    let rss = rss_kib(pid, "VmRSS:");
    rows.push(Row {
        scenario: scenario.into(),
        value: format!("{:.1} MiB", rss as f64 / 1024.0),
    });
    json.insert(key.into(), rss.into());
}

/// Median and p90 of `values` (sorted here), as a table row and a JSON entry.
fn timing(
    name: &str,
    values: &mut [f64],
    rows: &mut Vec<Row>,
    json: &mut serde_json::Map<String, serde_json::Value>,
) {
    values.sort_by(|a, b| a.total_cmp(b));
    let (median, p90) = (percentile(values, 0.5), percentile(values, 0.9));
    rows.push(Row {
        scenario: name.into(),
        value: format!(
            "median {median:.2} ms, p90 {p90:.2} ms ({} runs)",
            values.len()
        ),
    });
    json.insert(
        name.into(),
        serde_json::json!({"median_ms": median, "p90_ms": p90, "runs": values.len()}),
    );
}

/// Counts of each action, as `Decrypt 1, DescribeKey 1`.
fn count_actions(requests: &[String]) -> String {
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for r in requests {
        *counts.entry(r.as_str()).or_default() += 1;
    }
    counts
        .iter()
        .map(|(action, n)| format!("{action} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The awskms scenarios against moto through the counting proxy.
fn awskms(
    runtime: &tokio::runtime::Runtime,
    runs: usize,
    rows: &mut Vec<Row>,
    json: &mut serde_json::Map<String, serde_json::Value>,
) {
    let moto_server = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
    if !moto_server.exists() {
        rows.push(Row {
            scenario: "awskms scenarios".into(),
            value: "not measured: run scripts/test first (it installs moto into .venv)".into(),
        });
        return;
    }
    let moto = kms::Moto::start();
    let key = moto.create_key();
    let proxy = kms::KmsProxy::start(&moto.addr);
    let seal = format!(
        "seal \"awskms\" {{\n  region = \"us-east-1\"\n  kms_key_id = \"{key}\"\n  endpoint = \"{}\"\n  access_key = \"bench\"\n  secret_key = \"bench\"\n}}\n",
        proxy.endpoint()
    );
    let setup = setup(false);
    let text = std::fs::read_to_string(&setup.config).expect("config") + &seal;
    std::fs::write(&setup.config, text).expect("write config");

    let child = spawn(&setup);
    let init = runtime.block_on(async {
        let (channel, _) = until_answering(&setup.addr, Instant::now()).await;
        let mut sys = SysClient::new(channel);
        let t = Instant::now();
        init_confirmed(&mut sys, InitRequest::default()).await;
        t.elapsed()
    });
    let init_requests = count_actions(&proxy.requests());
    stop(child);
    rows.push(Row {
        scenario: "awskms init, 5/3 recovery shares".into(),
        value: format!("{:.2} ms; KMS requests: {init_requests}", ms(init)),
    });
    json.insert(
        "awskms_init".into(),
        serde_json::json!({"ms": ms(init), "kms_requests": init_requests}),
    );

    let mut restarts = Vec::new();
    let mut on_path = Vec::new();
    let mut per_start = String::new();
    for _ in 0..runs {
        proxy.clear_requests();
        let spawned = Instant::now();
        let child = spawn(&setup);
        let unsealed = runtime.block_on(async {
            let (channel, _) = until_answering(&setup.addr, spawned).await;
            let mut sys = SysClient::new(channel);
            loop {
                let status = sys
                    .status(StatusRequest {})
                    .await
                    .expect("status")
                    .into_inner();
                if !status.sealed {
                    return spawned.elapsed();
                }
                assert!(spawned.elapsed() < Duration::from_secs(20), "not unsealed");
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        });
        // The key check is sent only after the state is unsealed, so what
        // precedes the first DescribeKey is the path to unsealed.
        let requests = proxy.requests();
        on_path.push(requests.iter().take_while(|r| *r != "DescribeKey").count());
        restarts.push(ms(unsealed));
        // Let the post-unseal key check land before counting and stopping.
        let settle = Instant::now();
        while !proxy.requests().iter().any(|r| r == "DescribeKey")
            && settle.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        per_start = count_actions(&proxy.requests());
        stop(child);
    }
    timing(
        "awskms restart to unsealed (moto on loopback)",
        &mut restarts,
        rows,
        json,
    );
    let max_on_path = on_path.iter().copied().max().unwrap_or(0);
    rows.push(Row {
        scenario: "awskms KMS requests per restart".into(),
        value: format!(
            "at most {max_on_path} on the path to unsealed (Decrypt); in all: {per_start} (the key check runs after unsealed)"
        ),
    });
    json.insert(
        "awskms_requests_per_restart".into(),
        serde_json::json!({"before_unsealed_max": max_on_path, "in_all": per_start}),
    );

    // The KMS round trip alone: strongroom's own client, warm, one Decrypt each.
    let mut round_trips = runtime.block_on(async {
        use strongroom::seal::envelope::{Envelope, Purpose};
        let config = strongroom::config::load(&setup.config, |_| None).expect("config");
        let kms = strongroom::seal::awskms::AwsKms::new(config.seal.expect("seal block"));
        let secret = strongroom::secret::SecretKey::generate();
        let envelope = Envelope::seal(&kms, Purpose::RootKey, "bench", &secret)
            .await
            .expect("encrypt");
        let mut times = Vec::new();
        for _ in 0..runs.max(20) {
            let t = Instant::now();
            envelope
                .open(&kms, Purpose::RootKey, "bench")
                .await
                .expect("decrypt");
            times.push(ms(t.elapsed()));
        }
        times
    });
    timing(
        "KMS Decrypt round trip alone (moto via the proxy)",
        &mut round_trips,
        rows,
        json,
    );
}

fn main() {
    let options = options();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows = Vec::new();
    let mut json = serde_json::Map::new();

    // An initialized store whose keys we keep.
    let plain = setup(false);
    let child = spawn(&plain);
    let keys = runtime.block_on(async {
        let (channel, _) = until_answering(&plain.addr, Instant::now()).await;
        let mut sys = SysClient::new(channel);
        init_confirmed(
            &mut sys,
            InitRequest {
                key_shares: Some(5),
                key_threshold: Some(3),
                ..Default::default()
            },
        )
        .await
        .keys
    });
    stop(child);

    // Start to answering Status, and the three Unseal calls, over `runs` restarts.
    let mut starts = Vec::new();
    let mut unseals = Vec::new();
    let mut sigterms = Vec::new();
    for _ in 0..options.runs {
        let spawned = Instant::now();
        let child = spawn(&plain);
        let (channel, answered) = runtime.block_on(until_answering(&plain.addr, spawned));
        starts.push(ms(answered));
        let unseal = runtime.block_on(async {
            let t = Instant::now();
            unseal_all(channel, &keys[..3]).await;
            t.elapsed()
        });
        unseals.push(ms(unseal));
        sigterms.push(ms(stop(child)));
    }
    for (name, values) in [
        ("start to answering Status (Shamir, sealed)", &mut starts),
        ("3 Unseal calls on one connection", &mut unseals),
        ("SIGTERM to exit (unsealed)", &mut sigterms),
    ] {
        timing(name, values, &mut rows, &mut json);
    }

    awskms(&runtime, options.runs, &mut rows, &mut json);

    // Idle RSS, then Status load with the server and this process on separate cores.
    let child = spawn(&plain);
    let server_pid = child.id();
    pin(Pid::from_raw(server_pid as i32), SERVER_CPU);
    pin(Pid::from_raw(0), CLIENT_CPU);
    runtime.block_on(async {
        let (channel, _) = until_answering(&plain.addr, Instant::now()).await;
        unseal_all(channel, &keys[..3]).await;
    });
    idle_rss(
        server_pid,
        "idle RSS 5 s after unseal, mlock off",
        "idle_rss_kib_mlock_off",
        &mut rows,
        &mut json,
    );

    for (transport, clients) in [
        ("tcp", 1),
        ("tcp", 16),
        ("tcp", 64),
        ("unix", 1),
        ("unix", 16),
        ("unix", 64),
    ] {
        let load = runtime.block_on(async {
            let mut channels = Vec::new();
            for _ in 0..clients {
                channels.push(match transport {
                    "tcp" => Endpoint::from_shared(plain.addr.clone())
                        .expect("endpoint")
                        .connect()
                        .await
                        .expect("connect"),
                    _ => unix_channel(&plain.socket).await,
                });
            }
            status_load(channels, options.seconds, server_pid).await
        });
        let name = format!(
            "Status, {transport}, {clients} client{}",
            if clients == 1 { "" } else { "s" }
        );
        rows.push(Row {
            scenario: name.clone(),
            value: format!(
                "{:.0} req/s, p50 {:.3} ms, p99 {:.3} ms, server CPU {:.0}%, client CPU {:.0}%",
                load.rps,
                load.p50_ms,
                load.p99_ms,
                load.server_cpu * 100.0,
                load.client_cpu * 100.0
            ),
        });
        json.insert(
            name,
            serde_json::json!({"rps": load.rps, "p50_ms": load.p50_ms, "p99_ms": load.p99_ms, "server_cpu": load.server_cpu, "client_cpu": load.client_cpu}),
        );
    }
    let peak = rss_kib(server_pid, "VmHWM:");
    rows.push(Row {
        scenario: "peak RSS after the Status load".into(),
        value: format!("{:.1} MiB", peak as f64 / 1024.0),
    });
    json.insert("peak_rss_kib".into(), peak.into());
    stop(child);

    // Idle RSS with mlock on (needs CAP_IPC_LOCK or an unlimited RLIMIT_MEMLOCK).
    let locked = setup(true);
    std::fs::create_dir_all(locked.dir.path().join("data")).ok();
    let child = spawn(&locked);
    let pid = child.id();
    let answered = runtime.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(5),
            until_answering(&locked.addr, Instant::now()),
        )
        .await
        .is_ok()
    });
    if answered {
        runtime.block_on(async {
            let channel = Endpoint::from_shared(locked.addr.clone())
                .expect("endpoint")
                .connect()
                .await
                .expect("connect");
            let mut sys = SysClient::new(channel.clone());
            let keys = init_confirmed(
                &mut sys,
                InitRequest {
                    key_shares: Some(1),
                    key_threshold: Some(1),
                    ..Default::default()
                },
            )
            .await
            .keys;
            unseal_all(channel, &keys).await;
        });
        idle_rss(
            pid,
            "idle RSS 5 s after unseal, mlock on",
            "idle_rss_kib_mlock_on",
            &mut rows,
            &mut json,
        );
    } else {
        rows.push(Row {
            scenario: "idle RSS, mlock on".into(),
            value: "not measured: mlock not permitted here".into(),
        });
    }
    stop(child);

    let size = std::fs::metadata(BIN).map(|m| m.len()).unwrap_or(0);
    rows.push(Row {
        scenario: "binary size (release, stripped)".into(),
        value: format!("{:.1} MB", size as f64 / 1e6),
    });
    json.insert("binary_bytes".into(), size.into());

    println!("| scenario | result |\n|---|---|");
    for row in &rows {
        println!("| {} | {} |", row.scenario, row.value);
    }
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    if std::fs::create_dir_all(&out).is_ok() {
        let _ = std::fs::write(
            out.join("daemon.json"),
            serde_json::to_string_pretty(&json).unwrap_or_default(),
        );
    }
}
