//! The lifecycle scenarios: init, restart to answering and to unsealed
//! (Shamir and awskms), the Unseal calls, SIGTERM to exit, and the KMS
//! requests each makes.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::peers::{Instance, KmsSeal, Peer, answering, until_unsealed};
use crate::process::bounded;
use crate::results::{Results, count_actions, ms};
use strongroom_test_support::kms;

/// Inits per peer: each needs a fresh store (and OpenBao half a second to
/// stop), so a quarter of the restart runs, at least 3.
pub(crate) fn init_runs(runs: usize) -> usize {
    (runs / 4).max(3)
}

/// Shamir: init; restart to answering Status, the three Unseal calls on
/// that connection, and SIGTERM to exit (unsealed; every other run with the
/// client connection still open); interleaved across the peers. Returns each
/// peer's store and unseal keys.
pub(crate) fn shamir_restarts(
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
pub(crate) fn awskms(
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
