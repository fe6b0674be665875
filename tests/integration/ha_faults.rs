//! HA faults with real daemons on a real PostgreSQL (docs/HA.md, issue 14):
//! an active node paused (SIGSTOP) with a write held before its COMMIT, a
//! database stopped for 20 s under three nodes, and 50 kill -9s of
//! whichever node is active under a writer that records every
//! acknowledged write. Timings are printed (`--nocapture`), never asserted.
//! These need the `failpoints` feature (the pause point) and run one at a
//! time in the `ha-faults` nextest group.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;
use strongroom::proto::{GetRequest, PutRequest, kv_client::KvClient};
use strongroom_test_support::postgres::{PrivateCluster, private_cluster};
use tempfile::TempDir;

use crate::support::cli::{Cli, Run, init, unseal};
use crate::support::daemon::{Daemon, tempdir};
use crate::support::grpc::{channel, with_token};
use crate::support::ha::{Cluster, SETTLE, free_port, node_config};

/// The line the pause point writes when a write stops before its COMMIT.
const PAUSED: &str = "failpoint pause: a write holds before COMMIT";

/// A CLI for the node listening on `port`, with `token`.
fn cli_at(port: u16, token: &str) -> Cli {
    let mut cli = Cli::new();
    cli.env("STRONGROOM_ADDR", &format!("http://127.0.0.1:{port}"))
        .token(token);
    cli
}

/// One line `error: …`, a sentence, not a Rust Debug dump.
#[track_caller]
fn plain_error(run: &Run) {
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one error line expected: {run:?}");
    assert!(lines[0].starts_with("error: "), "{run:?}");
    plain_sentence(lines[0]);
}

/// No Debug dump (`Error { kind: … }`, `Some(…)`), bounded.
#[track_caller]
fn plain_sentence(text: &str) {
    assert!(!text.is_empty() && text.len() < 400, "{text:?}");
    for dump in [" { ", "Some(", "kind:", "Error(", "\n"] {
        assert!(!text.contains(dump), "not a plain sentence: {text:?}");
    }
}

#[test]
fn a_paused_active_wakes_up_deposed_and_its_held_write_never_commits() {
    let pause_dir = tempdir();
    let pause = pause_dir.path().join("hold");
    let env = [("STRONGROOM_FAILPOINT_PAUSE", pause.to_str().unwrap())];
    let lease = Duration::from_secs(2);
    let mut cluster = Cluster::start_with(3, "2s", "", &env);
    cluster.open();
    let old = cluster.wait_active(&[0, 1, 2]);
    cluster.put(old, "app/x", "old").ok();
    let token = cluster.init.as_ref().unwrap().root_token.clone();

    // The write goes in and stops after its fence, before COMMIT.
    std::fs::write(&pause, b"").unwrap();
    let port = cluster.nodes[old].port;
    let writer = {
        let token = token.clone();
        std::thread::spawn(move || cli_at(port, &token).run(&["kv", "put", "app/x", "v=new"]))
    };
    cluster.nodes[old]
        .daemon
        .stderr
        .wait_for("the write paused before COMMIT", |l| l.contains(PAUSED));

    // Stopped for twice the lease: a standby takes over meanwhile.
    let stopped = Instant::now();
    cluster.nodes[old].daemon.signal(Signal::SIGSTOP);
    let others: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    let new = cluster.wait_active(&others);
    eprintln!(
        "SIGSTOP: node {new} active {:?} after node {old} was stopped",
        stopped.elapsed()
    );
    std::thread::sleep((lease * 2).saturating_sub(stopped.elapsed()));
    cluster.nodes[old].daemon.signal(Signal::SIGCONT);
    std::fs::remove_file(&pause).unwrap();

    // The held write's client hears it failed, and it is not in the store.
    let held = writer.join().unwrap();
    assert_ne!(held.code, 0, "the held write was acknowledged: {held:?}");
    plain_error(&held);
    eprintln!("the held write's client got: {}", held.stderr.trim());
    // A write sent to the old node after it woke is refused too.
    let late = cluster.put(old, "app/x", "late");
    assert_ne!(late.code, 0, "the woken node took a write: {late:?}");
    plain_error(&late);
    assert_eq!(cluster.get(new, "app/x").as_deref(), Some("old"));
    let versions = cluster.nodes[new]
        .daemon
        .cli()
        .run(&["kv", "metadata", "get", "app/x", "--format", "json"])
        .ok()
        .json();
    assert_eq!(versions["current_version"], 1, "{versions}");

    // The old node stands by, naming the new active node.
    let address = format!("http://127.0.0.1:{}", cluster.nodes[new].port);
    cluster.wait_for(old, "standing by under the new active node", |s| {
        s["ha_mode"] == "standby" && s["leader_address"] == address.as_str()
    });
    assert_eq!(cluster.wait_active(&[0, 1, 2]), new);
    cluster.put(new, "app/x", "after").ok();
}

/// Nodes on a private PostgreSQL the test stops and starts.
struct Fleet {
    pg: PrivateCluster,
    nodes: Vec<(Daemon, u16, TempDir)>,
    token: String,
}

impl Fleet {
    /// `n` nodes with HA on a new database of `pg`, initialized through
    /// node 0 and all unsealed.
    fn open(pg: PrivateCluster, n: usize, lease_ttl: &str) -> Self {
        let url = pg.database("ha_faults");
        let mut nodes: Vec<(Daemon, u16, TempDir)> = (0..n)
            .map(|_| {
                let dir = tempdir();
                let port = free_port();
                let daemon = Daemon::start(dir.path(), &node_config(&url, port, lease_ttl, ""));
                (daemon, port, dir)
            })
            .collect();
        let keys = init(&nodes[0].0, &["--key-shares", "3", "--key-threshold", "2"]);
        for (daemon, _, _) in &mut nodes {
            let deadline = Instant::now() + SETTLE;
            while status(daemon)["initialized"] != true {
                assert!(Instant::now() < deadline, "a node never saw the init");
                std::thread::sleep(Duration::from_millis(20));
            }
            unseal(daemon, &[&keys.keys_hex[0], &keys.keys_hex[1]]);
            daemon
                .env
                .insert("STRONGROOM_TOKEN".into(), keys.root_token.clone());
        }
        Self {
            pg,
            nodes,
            token: keys.root_token,
        }
    }

    /// The one active node, once every other names it; panics on two.
    #[track_caller]
    fn wait_active(&self) -> usize {
        let deadline = Instant::now() + SETTLE;
        loop {
            let statuses: Vec<Value> = self.nodes.iter().map(|(d, _, _)| status(d)).collect();
            let active: Vec<usize> = (0..statuses.len())
                .filter(|&i| statuses[i]["ha_mode"] == "active")
                .collect();
            assert!(active.len() <= 1, "two active nodes: {statuses:?}");
            if let [leader] = active[..] {
                let address = format!("http://127.0.0.1:{}", self.nodes[leader].1);
                if statuses
                    .iter()
                    .all(|s| s["ha_mode"] == "active" || s["leader_address"] == address.as_str())
                {
                    return leader;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no single active node within {SETTLE:?}: {statuses:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `status --format json` of `daemon`, which must answer.
#[track_caller]
fn status(daemon: &Daemon) -> Value {
    let run = daemon.cli().run(&["status", "--format", "json"]);
    assert!(
        run.code == 0 || run.code == 2,
        "status did not answer: {run:?}"
    );
    run.json()
}

/// A KV write over gRPC: its status code and message when refused.
fn grpc_put(addr: &str, token: &str, path: &str) -> Result<(), (tonic::Code, String)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut kv = KvClient::new(channel(addr).await);
        let request = PutRequest {
            path: path.into(),
            data: [("v".to_string(), "x".to_string())].into(),
            cas: None,
            data_json: String::new(),
        };
        kv.put(with_token(request, token))
            .await
            .map(|_| ())
            .map_err(|s| (s.code(), s.message().to_string()))
    })
}

#[test]
fn a_database_down_for_20_s_leaves_nodes_answering_and_recovers_by_itself() {
    let lease = Duration::from_secs(2);
    let fleet = Fleet::open(private_cluster(), 3, "2s");
    let first = fleet.wait_active();
    fleet.nodes[first]
        .0
        .cli()
        .run(&["kv", "put", "app/kept", "v=1"])
        .ok();

    fleet.pg.stop();
    let stopped = Instant::now();
    let mut refusals = 0;
    let mut sentences = std::collections::BTreeSet::new();
    while stopped.elapsed() < Duration::from_secs(20) {
        // After the lease no node can have renewed it: none is active,
        // and none names a node that was.
        let past_lease = stopped.elapsed() > lease * 2;
        for (i, (daemon, _, _)) in fleet.nodes.iter().enumerate() {
            let s = status(daemon);
            assert_eq!(s["sealed"], false, "node {i} sealed itself: {s}");
            if past_lease {
                assert_eq!(s["ha_mode"], "standby", "node {i}: {s}");
                assert_eq!(s["leader_address"], "", "node {i}: {s}");
            }
            match grpc_put(&daemon.addr, &fleet.token, "app/down") {
                Ok(()) => panic!("node {i} acknowledged a write with the database down"),
                Err((code, message)) => {
                    assert_eq!(code, tonic::Code::Unavailable, "node {i}: {message}");
                    plain_sentence(&message);
                    assert!(
                        !past_lease || !message.contains("the active node is at"),
                        "node {i} sends callers to a node that cannot be active: {message}"
                    );
                    refusals += 1;
                    sentences.insert(message);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("database down 20 s: {refusals} writes refused UNAVAILABLE, saying:");
    for sentence in &sentences {
        eprintln!("  {sentence}");
    }

    fleet.pg.start();
    let started = Instant::now();
    let active = fleet.wait_active();
    let settled = started.elapsed();
    let deadline = started + SETTLE;
    while grpc_put(&fleet.nodes[active].0.addr, &fleet.token, "app/after").is_err() {
        assert!(
            Instant::now() < deadline,
            "no write succeeded after the restart"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "database back: one active node after {settled:?}, a write succeeded after {:?}",
        started.elapsed()
    );
    // Still exactly one, and the data is there.
    assert_eq!(fleet.wait_active(), active);
    let got = fleet.nodes[active]
        .0
        .cli()
        .run(&["kv", "get", "app/kept", "--format", "json"])
        .ok()
        .json();
    assert_eq!(got["data"]["data"]["v"], "1");
}

/// Acknowledged writes: path, value, when the acknowledgment came.
type Acknowledged = Arc<Mutex<Vec<(String, String, Instant)>>>;

/// Writes `loop/<n>` through whichever node takes it until `stop`;
/// records only acknowledged writes.
fn writer(ports: Vec<u16>, token: String, stop: Arc<AtomicBool>, acked: Acknowledged) {
    let mut next = 0;
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let path = format!("loop/{n}");
        let value = format!("value-{n}");
        let run = cli_at(ports[next], &token).run(&["kv", "put", &path, &format!("v={value}")]);
        if run.code == 0 {
            acked.lock().unwrap().push((path, value, Instant::now()));
            n += 1;
        } else {
            next = (next + 1) % ports.len();
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Reads every acknowledged write through `addr`: (missing, different).
fn read_back(addr: &str, token: &str, acked: &[(String, String, Instant)]) -> (usize, usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut kv = KvClient::new(channel(addr).await);
        let (mut lost, mut corrupt) = (0, 0);
        for (path, value, _) in acked {
            let request = GetRequest {
                path: path.clone(),
                version: 0,
            };
            match kv.get(with_token(request, token)).await {
                Err(e) if e.code() == tonic::Code::NotFound => lost += 1,
                Err(e) => panic!("reading {path} back failed: {e}"),
                Ok(found) if found.get_ref().data.get("v") != Some(value) => corrupt += 1,
                Ok(_) => {}
            }
        }
        (lost, corrupt)
    })
}

/// `sorted`'s value at fraction `q`.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[test]
fn fifty_kill_9s_of_the_active_node_lose_no_acknowledged_write() {
    const KILLS: usize = 50;
    let mut cluster = Cluster::start(3, "2s");
    cluster.open();
    let keys = cluster.init.as_ref().unwrap().keys_hex.clone();
    let token = cluster.init.as_ref().unwrap().root_token.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Acknowledged = Arc::default();
    let writing = {
        let ports = cluster.nodes.iter().map(|n| n.port).collect();
        let (token, stop, acked) = (token.clone(), Arc::clone(&stop), Arc::clone(&acked));
        std::thread::spawn(move || writer(ports, token, stop, acked))
    };

    let mut failovers = Vec::new();
    let mut kills = Vec::new();
    for _ in 0..KILLS {
        let active = cluster.wait_active(&[0, 1, 2]);
        let others: Vec<usize> = (0..3).filter(|&i| i != active).collect();
        let killed = Instant::now();
        cluster.nodes[active].daemon.signal(Signal::SIGKILL);
        kills.push(killed);
        // Failover: until one of the others reports itself active.
        let deadline = killed + SETTLE;
        while !others
            .iter()
            .any(|&i| cluster.status(i)["ha_mode"] == "active")
        {
            assert!(Instant::now() < deadline, "no take-over within {SETTLE:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
        failovers.push(killed.elapsed());
        let node = &mut cluster.nodes[active].daemon;
        node.wait_exit(SETTLE).expect("the killed node exited");
        node.start_again();
        unseal(node, &[&keys[0], &keys[1]]);
    }
    stop.store(true, Ordering::Relaxed);
    writing.join().unwrap();

    let active = cluster.wait_active(&[0, 1, 2]);
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > KILLS,
        "too few writes to mean anything: {}",
        acked.len()
    );
    let (lost, corrupt) = read_back(&cluster.nodes[active].daemon.addr, &token, &acked);
    // The writer's view: from each kill to its next acknowledged write.
    let mut to_write: Vec<Duration> = kills
        .iter()
        .filter_map(|&k| acked.iter().find(|a| a.2 > k).map(|a| a.2 - k))
        .collect();
    failovers.sort();
    to_write.sort();
    eprintln!(
        "{KILLS} kill -9s of the active node: {} acknowledged writes, {lost} lost, {corrupt} corrupt",
        acked.len()
    );
    for (what, times) in [
        ("a standby reports active", &failovers),
        ("the writer's next acknowledged write", &to_write),
    ] {
        eprintln!(
            "  kill to {what}: median {:?}, p90 {:?}, max {:?} ({} kills)",
            quantile(times, 0.5),
            quantile(times, 0.9),
            times[times.len() - 1],
            times.len()
        );
    }
    assert_eq!((lost, corrupt), (0, 0));
}
