//! Idle memory after many distinct KV keys (issue 13 item 25): strongroom
//! alone, KV writes of 100 bytes to distinct paths at 16 clients, and the
//! RSS 5 s after the writes stop at each count (default 100k and 300k).
//! What it shows is the bounded redb page cache (`storage "file" {
//! cache_size }`, 32 MiB by default); before it, RSS grew about 55 MB per
//! 100k keys and stayed.

use std::time::Duration;

use strongroom::proto::PutRequest;
use strongroom::proto::kv_client::KvClient;
use tonic::transport::{Channel, Endpoint};

use crate::data::{VALUE, prepare_strongroom};
use crate::peers::{Instance, Peer, strongroom_binary};
use crate::process::{bounded, proc_status_mib};
use crate::results::Results;

/// Writers at once.
const CLIENTS: u64 = 16;

/// The counts at which idle RSS is read, by default.
pub(crate) const DEFAULT_COUNTS: [u64; 2] = [100_000, 300_000];

/// Writes distinct keys up to each of `counts` (ascending) and records the
/// idle RSS at each.
pub(crate) fn kv_keys_rss(
    runtime: &tokio::runtime::Runtime,
    counts: &[u64],
    results: &mut Results,
) {
    let instance = Instance::new(Peer::Strongroom, &strongroom_binary(), None, false);
    let proc = instance.spawn();
    let prepared = runtime.block_on(prepare_strongroom(&instance));
    let channel = runtime.block_on(async {
        Endpoint::from_shared(format!("http://{}", instance.addr()))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect")
    });
    std::thread::sleep(Duration::from_secs(5));
    let mut idle = vec![(Peer::Strongroom, proc_status_mib(proc.pid(), "VmRSS:"))];
    results.samples(
        "kv_keys_rss_0",
        "idle RSS before the distinct KV keys (strongroom only)",
        "MiB",
        &mut idle,
    );
    let mut written = 0;
    for &count in counts {
        runtime.block_on(write_keys(&channel, &prepared.token, written, count));
        written = count;
        std::thread::sleep(Duration::from_secs(5));
        let mut rss = vec![(Peer::Strongroom, proc_status_mib(proc.pid(), "VmRSS:"))];
        results.samples(
            &format!("kv_keys_rss_{count}"),
            &format!(
                "idle RSS 5 s after {count} distinct KV keys (strongroom only, default cache_size)"
            ),
            "MiB",
            &mut rss,
        );
    }
    proc.stop();
}

/// Puts keys `from..to` at [`CLIENTS`] at once.
async fn write_keys(channel: &Channel, token: &str, from: u64, to: u64) {
    let mut writers = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        let mut kv = KvClient::new(channel.clone());
        let token = token.to_string();
        writers.spawn(async move {
            let mut n = from + client;
            while n < to {
                let mut request = tonic::Request::new(PutRequest {
                    path: format!("bench/keys/{n}"),
                    data: [("v".to_string(), VALUE.to_string())].into(),
                    cas: None,
                    data_json: String::new(),
                });
                request.metadata_mut().insert(
                    "authorization",
                    format!("Bearer {token}").parse().expect("header"),
                );
                bounded("Put", kv.put(request)).await.expect("put");
                n += CLIENTS;
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.expect("a writer");
    }
}
