//! Several seals (strongroom only; OpenBao has no seal HA): restart to
//! unsealed with two KMS seals, each moto behind its own proxy, against the
//! same restart with one seal, interleaved: the primary healthy, the
//! primary refusing connections, and the primary silent (its Decrypt held
//! past its `kms_timeout`).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::peers::{Instance, KmsSeal, Peer, answering, until_unsealed};
use crate::results::{Results, count_actions, ms};
use strongroom_test_support::PortHold;
use strongroom_test_support::kms::{Fault, KmsProxy, Moto};

/// The primary's `kms_timeout` in the two-seal config.
const PRIMARY_KMS_TIMEOUT: &str = "1s";

/// Restart rows of one seal and of two seals.
pub(crate) fn multiseal(
    runtime: &tokio::runtime::Runtime,
    strongroom: &Path,
    runs: usize,
    results: &mut Results,
) {
    let (moto_a, moto_b) = (Moto::start(), Moto::start());
    // The primary's proxy listens on a held port, so that dropping it
    // leaves a port that refuses connections, and a new one can take it.
    let hold = PortHold::new();
    let mut primary = Some(KmsProxy::start_on(&moto_a.addr, &hold));
    let secondary = KmsProxy::start(&moto_b.addr);
    let tokyo = KmsSeal {
        endpoint: primary.as_ref().map(KmsProxy::endpoint).unwrap_or_default(),
        key: moto_a.create_key(),
    };
    let osaka = KmsSeal {
        endpoint: secondary.endpoint(),
        key: moto_b.create_key(),
    };
    let one = Instance::new(Peer::Strongroom, strongroom, Some(&tokyo), false);
    let two_blocks = format!(
        "enable_multiseal = true\n{}{}",
        tokyo.block(&format!(
            "name = \"tokyo\"\n  priority = 1\n  kms_timeout = \"{PRIMARY_KMS_TIMEOUT}\""
        )),
        osaka.block("name = \"osaka\"\n  priority = 2")
    );
    let two = Instance::with_seal(Peer::Strongroom, strongroom, &two_blocks, false);
    for instance in [&one, &two] {
        let proc = instance.spawn();
        runtime.block_on(async {
            let (mut client, _) = answering(instance, Instant::now()).await;
            let t = Instant::now();
            client.init(true).await;
            until_unsealed(&mut client, t).await;
        });
        proc.stop();
    }

    let restart = |instance: &Instance| {
        let spawned = Instant::now();
        let proc = instance.spawn();
        let unsealed = runtime.block_on(async {
            let (mut client, _) = answering(instance, spawned).await;
            until_unsealed(&mut client, spawned).await
        });
        proc.stop();
        unsealed
    };
    let (mut one_seal, mut healthy) = (Vec::new(), Vec::new());
    let mut requests = Vec::new();
    for _ in 0..runs {
        one_seal.push((Peer::Strongroom, ms(restart(&one))));
        if let Some(proxy) = &primary {
            proxy.clear_requests();
        }
        secondary.clear_requests();
        healthy.push((Peer::Strongroom, ms(restart(&two))));
        let mut seen = primary.as_ref().map(KmsProxy::requests).unwrap_or_default();
        seen.extend(secondary.requests());
        requests.push((Peer::Strongroom, count_actions(&seen)));
    }
    results.timing(
        "restart_to_unsealed_one_seal",
        "restart to unsealed, one awskms seal (the baseline of the two-seal rows)",
        &mut one_seal,
    );
    results.timing(
        "restart_to_unsealed_two_seals",
        "restart to unsealed, two seals, primary healthy",
        &mut healthy,
    );
    results.counts(
        "kms_requests_per_restart_two_seals",
        "KMS requests per restart with two seals, primary healthy, by action",
        &requests,
    );

    // The primary silent: its Decrypt is held past its kms_timeout.
    let mut silent = Vec::new();
    if let Some(proxy) = &primary {
        proxy.fault(Some("Decrypt"), Fault::Delay(Duration::from_secs(30)));
    }
    for _ in 0..runs.min(5) {
        silent.push((Peer::Strongroom, ms(restart(&two))));
    }
    if let Some(proxy) = &primary {
        proxy.clear_fault();
    }

    // The primary refusing connections: its proxy gone, the port held.
    drop(primary.take());
    let mut refusing = Vec::new();
    for _ in 0..runs {
        refusing.push((Peer::Strongroom, ms(restart(&two))));
    }
    results.timing(
        "restart_to_unsealed_two_seals_primary_refusing",
        "restart to unsealed, two seals, primary refusing connections",
        &mut refusing,
    );
    results.timing(
        "restart_to_unsealed_two_seals_primary_silent",
        &format!(
            "restart to unsealed, two seals, primary silent (its kms_timeout = {PRIMARY_KMS_TIMEOUT})"
        ),
        &mut silent,
    );
}
