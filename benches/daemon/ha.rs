//! HA on PostgreSQL side by side (issue 14): one private PostgreSQL on
//! [`PG_CPU`], a database per peer, three nodes of each peer on
//! [`SERVER_CPU`] (node 0 made active first). Measured: KV write and read
//! at 16 clients against the active node; Status and KV read at 16 clients
//! through a standby; failover after kill -9 and after SIGTERM of the
//! active, timed from the signal until a KV write is acknowledged by one
//! of the surviving nodes (each tried in turn, a fresh connection and at
//! most [`ATTEMPT`] per try; once strongroom's standbys forward, one fixed
//! standby for both peers), the stopped node then restarted, unsealed and
//! the cluster settled before the next run.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use strongroom::proto::{GetRequest, kv_client::KvClient};
use tonic::Code;
use tonic::transport::Endpoint;

use crate::data::{DataOp, Prepared, openbao_target, strongroom_rpc};
use crate::grpc_load::{Load, Rpc, grpc_load, same};
use crate::ha_cluster::{ATTEMPT, HaCluster, NODES, OPENBAO_TABLES};
use crate::peers::Peer;
use crate::pg::{Postgres, server_bin};
use crate::process::{bounded, pin_self};
use crate::results::{Results, ms};
use crate::wrk::{WrkTarget, wrk_load};
use crate::{BOUND, CLIENT_CPU, SERVER_CPU};

/// PostgreSQL's core: the load generator's, so the daemon measured has
/// CPU 0 to itself as in the other load rows.
pub(crate) const PG_CPU: usize = CLIENT_CPU;

/// Failover runs per kind for OpenBao (each kill -9 costs its 15 s lease).
const OPENBAO_RUNS: usize = 3;

/// Failover runs per kind for strongroom, at most.
const STRONGROOM_RUNS: usize = 10;

#[derive(Clone, Copy, PartialEq)]
enum Stop {
    Kill,
    Term,
}

/// The HA rows; skipped with a note when PostgreSQL is not installed.
pub(crate) fn ha(
    runtime: &tokio::runtime::Runtime,
    peers: &[(Peer, PathBuf)],
    runs: usize,
    seconds: u64,
    wrk: bool,
    results: &mut Results,
) {
    let Some(bin) = server_bin() else {
        results.notes.push(
            "HA rows not measured: scripts/bench installs Debian's postgresql package".into(),
        );
        return;
    };
    let postgres = Postgres::start(&bin, PG_CPU);
    let version = postgres.psql("postgres", "SHOW server_version");
    results.notes.push(format!(
        "HA rows: PostgreSQL {version} (Debian's, fsync on) on CPU {PG_CPU} with the load generator, every node on CPU {SERVER_CPU}"
    ));
    let mut loads: Vec<(&str, Peer, Load)> = Vec::new();
    let mut failovers: Vec<(Stop, Peer, f64)> = Vec::new();
    // Whether strongroom's standbys forward (OpenBao's do): then both
    // peers' failovers are timed through one fixed standby's address.
    let mut forwarding = false;
    for (peer, binary) in peers {
        if *peer == Peer::OpenBao && !wrk {
            continue;
        }
        let url = postgres.database(&format!("bench_{}", peer.key()));
        if *peer == Peer::OpenBao {
            postgres.psql(&format!("bench_{}", peer.key()), OPENBAO_TABLES);
        }
        let mut cluster = HaCluster::start(runtime, *peer, binary, &url);
        if *peer == Peer::Strongroom {
            forwarding = standby_serves_reads(runtime, &cluster);
        }
        cluster_loads(runtime, &cluster, seconds, forwarding, &mut loads, results);
        let n = match peer {
            Peer::Strongroom => runs.clamp(1, STRONGROOM_RUNS),
            Peer::OpenBao => runs.clamp(1, OPENBAO_RUNS),
        };
        for stop in [Stop::Kill, Stop::Term] {
            for run in 0..n {
                let took = failover(runtime, &mut cluster, stop, run, forwarding);
                failovers.push((stop, *peer, took));
            }
        }
    }
    pin_self(None);
    results.notes.push(if forwarding {
        "HA failover rows: every write sent to the address of one node that was a standby when the active one was stopped (forwarded when the other standby takes over, served there when it does), as the issue defines them".into()
    } else {
        "HA failover rows: writes tried on each surviving node in turn (strongroom's standbys do not forward yet); the through-one-standby form runs once they do".into()
    });
    for (id, name) in [
        (
            "pg_kv_write_16",
            "PostgreSQL: KV write to distinct keys, 16 clients, active node",
        ),
        (
            "pg_kv_read_16",
            "PostgreSQL: KV read, 16 clients, active node",
        ),
        (
            "pg_status_standby_16",
            "PostgreSQL: Status through a standby, 16 clients",
        ),
        (
            "pg_kv_read_standby_16",
            "PostgreSQL: KV read through a standby, 16 clients",
        ),
    ] {
        let of: Vec<(Peer, Load)> = loads
            .iter()
            .filter(|(i, _, _)| *i == id)
            .map(|(_, p, l)| (*p, *l))
            .collect();
        if !of.is_empty() {
            results.load(id, name, &of);
        }
    }
    for (stop, id, name) in [
        (
            Stop::Kill,
            "failover_kill9",
            "failover after kill -9 of the active, until a write succeeds",
        ),
        (
            Stop::Term,
            "failover_sigterm",
            "failover after SIGTERM of the active, until a write succeeds",
        ),
    ] {
        let mut of: Vec<(Peer, f64)> = failovers
            .iter()
            .filter(|(s, _, _)| *s == stop)
            .map(|(_, p, v)| (*p, *v))
            .collect();
        results.spread(id, name, &mut of);
    }
}

/// The loads on a settled cluster: node 0 is active, node 1 a standby.
fn cluster_loads(
    runtime: &tokio::runtime::Runtime,
    cluster: &HaCluster,
    seconds: u64,
    forwarding: bool,
    loads: &mut Vec<(&'static str, Peer, Load)>,
    results: &mut Results,
) {
    let peer = cluster.peer;
    let prepared = Prepared {
        token: cluster.token.clone(),
        unseal_key: String::new(),
        ciphertext: cluster.ciphertext.clone(),
    };
    pin_self(Some(CLIENT_CPU));
    let run = |node: usize, op: Option<DataOp>| -> Load {
        let instance = &cluster.nodes[node];
        let pid = cluster.procs[node].as_ref().expect("running").pid();
        match peer {
            Peer::Strongroom => {
                let next =
                    op.map_or_else(|| same(Rpc::status()), |op| strongroom_rpc(op, &prepared));
                runtime.block_on(grpc_load(instance, false, 16, seconds, pid, next))
            }
            Peer::OpenBao => {
                let target = op.map_or_else(
                    || WrkTarget {
                        path: "/v1/sys/seal-status".into(),
                        script: None,
                    },
                    |op| openbao_target(op, &prepared, instance.dir.path()),
                );
                wrk_load(&instance.addr(), 16, seconds, pid, &target)
            }
        }
    };
    loads.push(("pg_kv_write_16", peer, run(0, Some(DataOp::KvWrite))));
    loads.push(("pg_kv_read_16", peer, run(0, Some(DataOp::KvRead))));
    loads.push(("pg_status_standby_16", peer, run(1, None)));
    if peer == Peer::Strongroom && !forwarding {
        results.notes.push(
            "strongroom's KV read through a standby not measured: its standbys answer UNAVAILABLE naming the active node until forwarding lands (issue 14)".into(),
        );
    } else {
        loads.push(("pg_kv_read_standby_16", peer, run(1, Some(DataOp::KvRead))));
    }
    pin_self(None);
}

/// Whether strongroom's standby (node 1) answers a KV read (forwarded)
/// rather than UNAVAILABLE.
fn standby_serves_reads(runtime: &tokio::runtime::Runtime, cluster: &HaCluster) -> bool {
    runtime.block_on(async {
        let channel = Endpoint::from_shared(format!("http://{}", cluster.nodes[1].addr()))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect to a standby");
        let mut request = tonic::Request::new(GetRequest {
            path: "bench/read".into(),
            version: 0,
        });
        let bearer = format!("Bearer {}", cluster.token).parse().expect("header");
        request.metadata_mut().insert("authorization", bearer);
        match bounded("Get", KvClient::new(channel).get(request)).await {
            Ok(_) => true,
            Err(status) if status.code() == Code::Unavailable => false,
            Err(status) => panic!("a standby's KV read failed: {}", status.message()),
        }
    })
}

/// Stops the active node with `stop` and times it until a surviving node
/// acknowledges a write (ms): any of them, or with `forwarding` always the
/// first of the standbys (which forwards it, or serves it if it took the
/// role itself); then restarts that node and waits until the cluster
/// settled again.
fn failover(
    runtime: &tokio::runtime::Runtime,
    cluster: &mut HaCluster,
    stop: Stop,
    run: usize,
    forwarding: bool,
) -> f64 {
    let active = cluster.settled(runtime);
    let proc = cluster.procs[active].take().expect("the active node runs");
    let mut survivors: Vec<usize> = (0..NODES).filter(|&i| i != active).collect();
    if forwarding {
        survivors.truncate(1);
    }
    let signal = match stop {
        Stop::Kill => Signal::SIGKILL,
        Stop::Term => Signal::SIGTERM,
    };
    let start = Instant::now();
    kill(Pid::from_raw(proc.pid() as i32), signal).expect("signal the active node");
    let mut attempt = 0;
    let took = 'found: loop {
        for &i in &survivors {
            let path = format!("bench/failover/{run}/{attempt}");
            attempt += 1;
            if cluster.write(runtime, i, &path) {
                break 'found start.elapsed();
            }
        }
        assert!(
            start.elapsed() < BOUND + ATTEMPT,
            "{:?}: no write succeeded within {BOUND:?} of stopping the active node",
            cluster.peer
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    // SIGTERM: it exits by itself (killed by PID past the bound).
    let _ = proc.stop();
    cluster.procs[active] = Some(cluster.start_node(runtime, active));
    cluster.settled(runtime);
    ms(took)
}
