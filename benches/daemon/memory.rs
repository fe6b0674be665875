//! Status throughput and latency with idle and peak memory, each peer
//! alone, server and load pinned to their own CPUs; idle memory with mlock.

use std::time::{Duration, Instant};

use crate::grpc_load::{Load, Rpc, grpc_load, same};
use crate::peers::{Instance, Peer, answering, start_unsealed, strongroom_binary, until_unsealed};
use crate::process::{pin_self, proc_status_mib};
use crate::results::Results;
use crate::wrk::{WrkTarget, wrk_load};
use crate::{BOUND, CLIENT_CPU, LOAD_ROUNDS, POLL, SERVER_CPU};

/// Idle RSS, Status load and peak RSS, over [`LOAD_ROUNDS`] rounds, each
/// peer alone in turn: idle RSS on an unpinned start (as deployed), then a
/// start under `taskset -c 0` with the load on CPU 1, and its peak RSS.
pub(crate) fn load_and_memory(
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

/// strongroom's idle RSS with mlock on (needs CAP_IPC_LOCK or an unlimited
/// RLIMIT_MEMLOCK; skipped with a note otherwise).
pub(crate) fn mlock_rss(runtime: &tokio::runtime::Runtime, results: &mut Results) {
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
