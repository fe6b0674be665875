//! Three nodes of one peer on one PostgreSQL database with HA on: their
//! configs, starting and unsealing them, which one is active, and a KV
//! write that either answers or fails within [`ATTEMPT`].

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use strongroom::proto::{PutRequest, StatusRequest, kv_client::KvClient, sys_client::SysClient};
use tonic::transport::Endpoint;

use crate::data::{VALUE, prepare_openbao, prepare_strongroom};
use crate::peers::{Http, Instance, Peer, answering, start_unsealed};
use crate::process::Proc;
use crate::{BOUND, SERVER_CPU};
use strongroom_test_support::free_port;

/// Nodes per cluster.
pub(crate) const NODES: usize = 3;

/// The longest one write attempt during a failover may take before the
/// next node is tried (a client's per-request timeout).
pub(crate) const ATTEMPT: Duration = Duration::from_secs(1);

/// One peer's nodes, all on [`SERVER_CPU`], and what the loads need.
pub(crate) struct HaCluster {
    pub(crate) peer: Peer,
    pub(crate) nodes: Vec<Instance>,
    pub(crate) procs: Vec<Option<Proc>>,
    pub(crate) token: String,
    pub(crate) ciphertext: String,
    unseal_key: String,
}

/// A node's config on `url` (strongroom: the 5 s default lease, written
/// out; OpenBao: its fixed 15 s lease), each with a cluster port for
/// forwarding.
fn config(peer: Peer, url: &str, port: u16) -> String {
    let cluster = free_port();
    match peer {
        Peer::Strongroom => format!(
            "storage \"postgresql\" {{\n  connection_url = \"{url}\"\n  ha_enabled = true\n  ha_lease_ttl = \"5s\"\n}}\nlistener \"tcp\" {{ address = \"127.0.0.1:{port}\" }}\napi_addr = \"http://127.0.0.1:{port}\"\ncluster_addr = \"https://127.0.0.1:{cluster}\"\ndisable_mlock = true\nlog_level = \"warn\"\n"
        ),
        Peer::OpenBao => {
            format!(
                "storage \"postgresql\" {{\n  connection_url = \"{url}\"\n  ha_enabled = \"true\"\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  cluster_address = \"127.0.0.1:{cluster}\"\n  tls_disable = true\n}}\napi_addr = \"http://127.0.0.1:{port}\"\ncluster_addr = \"https://127.0.0.1:{cluster}\"\nlog_level = \"warn\"\n"
            )
        }
    }
}

/// OpenBao's PostgreSQL tables, as its docs give them (it does not make
/// them itself).
pub(crate) const OPENBAO_TABLES: &str = r#"
CREATE TABLE vault_kv_store (
  parent_path TEXT COLLATE "C" NOT NULL,
  path        TEXT COLLATE "C",
  key         TEXT COLLATE "C",
  value       BYTEA,
  CONSTRAINT pkey PRIMARY KEY (path, key)
);
CREATE INDEX parent_path_idx ON vault_kv_store (parent_path);
CREATE TABLE vault_ha_locks (
  ha_key      TEXT COLLATE "C" NOT NULL,
  ha_identity TEXT COLLATE "C" NOT NULL,
  ha_value    TEXT COLLATE "C",
  valid_until TIMESTAMP WITH TIME ZONE NOT NULL,
  CONSTRAINT ha_key PRIMARY KEY (ha_key)
);
"#;

fn node(peer: Peer, binary: &Path, url: &str) -> Instance {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let config = dir.path().join("config.hcl");
    std::fs::write(&config, self::config(peer, url, port)).expect("write config");
    Instance {
        peer,
        binary: binary.to_path_buf(),
        socket: dir.path().join("unused.sock"),
        dir,
        config,
        port,
    }
}

impl HaCluster {
    /// Node 0 started, initialized (1/1), unsealed and active with the data
    /// the loads read; then the other nodes started and unsealed, and the
    /// cluster settled (every standby names node 0).
    pub(crate) fn start(
        runtime: &tokio::runtime::Runtime,
        peer: Peer,
        binary: &Path,
        url: &str,
    ) -> Self {
        let nodes: Vec<Instance> = (0..NODES).map(|_| node(peer, binary, url)).collect();
        let first = nodes[0].spawn_on(Some(SERVER_CPU));
        let prepared = match peer {
            Peer::Strongroom => runtime.block_on(prepare_strongroom(&nodes[0])),
            Peer::OpenBao => {
                runtime.block_on(answering(&nodes[0], Instant::now()));
                prepare_openbao(&nodes[0])
            }
        };
        let mut cluster = Self {
            peer,
            procs: vec![Some(first)],
            nodes,
            token: prepared.token,
            ciphertext: prepared.ciphertext,
            unseal_key: prepared.unseal_key,
        };
        for i in 1..NODES {
            let proc = cluster.start_node(runtime, i);
            cluster.procs.push(Some(proc));
        }
        cluster.settled(runtime);
        cluster
    }

    /// Starts node `i` and unseals it.
    pub(crate) fn start_node(&self, runtime: &tokio::runtime::Runtime, i: usize) -> Proc {
        let keys = [self.unseal_key.clone()];
        start_unsealed(runtime, &self.nodes[i], &keys, Some(SERVER_CPU))
    }

    /// Node `i`'s view: (is it active, the active node's address), or why
    /// not while it does not answer.
    fn role(&self, runtime: &tokio::runtime::Runtime, i: usize) -> Result<(bool, String), String> {
        let node = &self.nodes[i];
        match self.peer {
            Peer::Strongroom => runtime.block_on(async {
                let channel = endpoint(node).connect().await.map_err(|e| e.to_string())?;
                let status = SysClient::new(channel)
                    .status(StatusRequest {})
                    .await
                    .map_err(|e| e.message().to_string())?
                    .into_inner();
                Ok((status.is_self, status.leader_address))
            }),
            Peer::OpenBao => {
                let mut http = Http::connect(&node.addr()).map_err(|e| e.to_string())?;
                let leader = http
                    .call("GET", "/v1/sys/leader", None)
                    .map_err(|e| e.to_string())?;
                // `is_self` is left out when false.
                let is_self = leader["is_self"].as_bool().unwrap_or(false);
                match leader["leader_address"].as_str() {
                    Some(address) => Ok((is_self, address.to_string())),
                    None => Err(format!("sys/leader answered {leader}")),
                }
            }
        }
    }

    /// Waits until exactly one running node is active and every other
    /// running node names it; returns its index.
    pub(crate) fn settled(&self, runtime: &tokio::runtime::Runtime) -> usize {
        let start = Instant::now();
        loop {
            let running: Vec<usize> = (0..NODES).filter(|&i| self.procs[i].is_some()).collect();
            let roles: Vec<Result<(bool, String), String>> =
                running.iter().map(|&i| self.role(runtime, i)).collect();
            let active: Vec<usize> = running
                .iter()
                .zip(&roles)
                .filter(|(_, r)| r.as_ref().is_ok_and(|(is_self, _)| *is_self))
                .map(|(&i, _)| i)
                .collect();
            if let [leader] = active[..] {
                let address = format!("http://{}", self.nodes[leader].addr());
                if roles
                    .iter()
                    .all(|r| r.as_ref().is_ok_and(|(s, a)| *s || *a == address))
                {
                    return leader;
                }
            }
            assert!(
                start.elapsed() < BOUND,
                "{:?}: no single active node named by all: {roles:?}",
                self.peer
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One KV write of a 100-byte value to `path` through node `i`: whether
    /// it was acknowledged within [`ATTEMPT`].
    pub(crate) fn write(&self, runtime: &tokio::runtime::Runtime, i: usize, path: &str) -> bool {
        let node = &self.nodes[i];
        match self.peer {
            Peer::Strongroom => runtime.block_on(async {
                let Ok(channel) = endpoint(node).connect().await else {
                    return false;
                };
                let mut request = tonic::Request::new(PutRequest {
                    path: path.to_string(),
                    data: [("v".to_string(), VALUE.to_string())].into(),
                    cas: None,
                    data_json: String::new(),
                });
                let bearer = format!("Bearer {}", self.token).parse().expect("header");
                request.metadata_mut().insert("authorization", bearer);
                KvClient::new(channel).put(request).await.is_ok()
            }),
            Peer::OpenBao => {
                let Ok(mut http) = Http::connect(&node.addr()) else {
                    return false;
                };
                let stream = http.reader.get_ref();
                if stream.set_read_timeout(Some(ATTEMPT)).is_err() {
                    return false;
                }
                http.token = Some(self.token.clone());
                let body = json!({"data": {"v": VALUE}});
                http.call("POST", &format!("/v1/kvbench/data/{path}"), Some(&body))
                    .is_ok()
            }
        }
    }
}

/// A fresh connection to `node` (a client after a failover makes one),
/// every step bounded by [`ATTEMPT`].
fn endpoint(node: &Instance) -> Endpoint {
    Endpoint::from_shared(format!("http://{}", node.addr()))
        .expect("endpoint")
        .connect_timeout(ATTEMPT)
        .timeout(ATTEMPT)
}
