//! Several strongroom nodes on one PostgreSQL database with HA on, as an
//! operator runs them: each its own process, config and loopback port.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use strongroom_test_support::postgres::{self, Database};
use tempfile::TempDir;

use super::cli::{Init, Run, init, unseal};
use super::daemon::{Daemon, tempdir};

/// How long a test waits for a role to settle before it fails.
pub const SETTLE: Duration = Duration::from_secs(30);

/// One node: its daemon, its directory, its port.
pub struct Node {
    pub daemon: Daemon,
    pub port: u16,
    /// The port of its `cluster_addr`, when it has one.
    pub cluster_port: Option<u16>,
    pub dir: TempDir,
}

/// Nodes sharing one database.
pub struct Cluster {
    /// Kept so the database outlives the nodes; tests read it with psql.
    #[allow(dead_code)]
    pub db: Database,
    pub nodes: Vec<Node>,
    /// The keys and root token, once [`Cluster::open`] ran.
    pub init: Option<Init>,
}

/// A port on 127.0.0.1 nobody listens on now (the daemon binds it soon
/// after; the kernel does not hand it out again meanwhile in practice).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A node's config: the shared database with HA on and `lease_ttl`, one
/// TCP listener on `port`, advertised as its `api_addr`.
pub fn node_config(url: &str, port: u16, lease_ttl: &str, extra: &str) -> String {
    format!(
        r#"
storage "postgresql" {{
  connection_url = "{url}"
  ha_enabled     = true
  ha_lease_ttl   = "{lease_ttl}"
}}

listener "tcp" {{
  address = "127.0.0.1:{port}"
}}

api_addr      = "http://127.0.0.1:{port}"
log_format    = "json"
disable_mlock = true
{extra}
"#
    )
}

impl Cluster {
    /// `n` nodes on a new database, not initialized.
    pub fn start(n: usize, lease_ttl: &str) -> Self {
        Self::start_with(n, lease_ttl, "", &[])
    }

    /// As [`Cluster::start`], with `extra` config and `env` for each node.
    pub fn start_with(n: usize, lease_ttl: &str, extra: &str, env: &[(&str, &str)]) -> Self {
        Self::start_each(n, lease_ttl, false, |_| extra.to_string(), env)
    }

    /// `n` nodes, each with a `cluster_addr` on a port of its own (so
    /// standbys forward calls to the active node) and the config
    /// `extra(dir)` made for its directory.
    pub fn start_forwarding(n: usize, lease_ttl: &str, extra: impl Fn(&Path) -> String) -> Self {
        Self::start_each(n, lease_ttl, true, extra, &[])
    }

    fn start_each(
        n: usize,
        lease_ttl: &str,
        cluster_addr: bool,
        extra: impl Fn(&Path) -> String,
        env: &[(&str, &str)],
    ) -> Self {
        let db = postgres::database();
        let nodes = (0..n)
            .map(|_| {
                let dir = tempdir();
                let port = free_port();
                let cluster_port = cluster_addr.then(free_port);
                let mut node_extra = extra(dir.path());
                if let Some(cluster_port) = cluster_port {
                    node_extra.push_str(&format!(
                        "\ncluster_addr = \"https://127.0.0.1:{cluster_port}\"\n"
                    ));
                }
                let config = node_config(&db.url(), port, lease_ttl, &node_extra);
                let daemon = Daemon::start_with(dir.path(), &config, env);
                Node {
                    daemon,
                    port,
                    cluster_port,
                    dir,
                }
            })
            .collect();
        Self {
            db,
            nodes,
            init: None,
        }
    }

    /// Inits on node 0 (three keys, threshold two), waits until every node
    /// has seen it, unseals them all and gives each CLI the root token.
    pub fn open(&mut self) {
        let keys = init(
            &self.nodes[0].daemon,
            &["--key-shares", "3", "--key-threshold", "2"],
        );
        for i in 0..self.nodes.len() {
            self.wait_for(i, "initialized", |s| s["initialized"] == true);
            unseal(
                &self.nodes[i].daemon,
                &[&keys.keys_hex[0], &keys.keys_hex[1]],
            );
            self.nodes[i]
                .daemon
                .env
                .insert("STRONGROOM_TOKEN".into(), keys.root_token.clone());
        }
        self.init = Some(keys);
    }

    /// Node `i`'s `status --format json`; while the node cannot answer
    /// (still starting), `{"unanswered": <its stderr>}`, so pollers go on.
    pub fn status(&self, i: usize) -> Value {
        let run = self.nodes[i]
            .daemon
            .cli()
            .run(&["status", "--format", "json"]);
        serde_json::from_str(&run.stdout)
            .unwrap_or_else(|_| serde_json::json!({ "unanswered": run.stderr.trim() }))
    }

    /// Polls node `i`'s status until `done` holds, for at most [`SETTLE`].
    #[track_caller]
    pub fn wait_for(&self, i: usize, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + SETTLE;
        loop {
            let status = self.status(i);
            if done(&status) {
                return status;
            }
            if Instant::now() >= deadline {
                // The node's own last words, for a node that died or hangs.
                let log = self.nodes[i].daemon.stderr.text();
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(30)..].join("\n");
                panic!("node {i} not {what} within {SETTLE:?}: {status}\nits log ends:\n{tail}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The one active node among `among`, once there is one and every other
    /// of them stands by naming it; panics on two active nodes at once.
    #[track_caller]
    pub fn wait_active(&self, among: &[usize]) -> usize {
        let deadline = Instant::now() + SETTLE;
        loop {
            let statuses: Vec<Value> = among.iter().map(|&i| self.status(i)).collect();
            let active: Vec<usize> = among
                .iter()
                .zip(&statuses)
                .filter(|(_, s)| s["ha_mode"] == "active")
                .map(|(&i, _)| i)
                .collect();
            assert!(active.len() <= 1, "two active nodes: {statuses:?}");
            if let [leader] = active[..] {
                let address = format!("http://127.0.0.1:{}", self.nodes[leader].port);
                let settled = statuses.iter().all(|s| {
                    s["ha_mode"] == "active"
                        || (s["ha_mode"] == "standby" && s["leader_address"] == address.as_str())
                });
                if settled {
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

    /// Stops node `i`, appends `blocks` to its config (with `without`
    /// taken out first), and starts it again.
    pub fn restart_with(&mut self, i: usize, without: &str, blocks: &str) {
        let node = &mut self.nodes[i].daemon;
        assert!(node.stop().success());
        let config = std::fs::read_to_string(&node.config_path)
            .unwrap()
            .replace(without, "");
        std::fs::write(&node.config_path, format!("{config}{blocks}")).unwrap();
        node.start_again();
    }

    /// `unseal --migrate KEY` on node `i`, for each of `keys`.
    pub fn unseal_migrate(&self, i: usize, keys: &[String]) {
        for key in keys {
            self.nodes[i]
                .daemon
                .cli()
                .run(&["unseal", "--migrate", key])
                .ok();
        }
    }

    /// `kv put PATH v=VALUE` through node `i`, as the root token.
    pub fn put(&self, i: usize, path: &str, value: &str) -> Run {
        self.nodes[i]
            .daemon
            .cli()
            .run(&["kv", "put", path, &format!("v={value}")])
    }

    /// `kv get PATH`'s value `v` through node `i`, `None` when not found.
    pub fn get(&self, i: usize, path: &str) -> Option<String> {
        let run = self.nodes[i]
            .daemon
            .cli()
            .run(&["kv", "get", path, "--format", "json"]);
        (run.code == 0).then(|| {
            run.json()["data"]["data"]["v"]
                .as_str()
                .unwrap()
                .to_string()
        })
    }

    /// Tries `kv put` through each of `among` in turn until one succeeds:
    /// (the node that took it, how long it took from `since`).
    pub fn put_anywhere(&self, among: &[usize], path: &str, since: Instant) -> (usize, Duration) {
        let deadline = since + SETTLE;
        loop {
            for &i in among {
                if self.put(i, path, "x").code == 0 {
                    return (i, since.elapsed());
                }
            }
            assert!(
                Instant::now() < deadline,
                "no node took a write within {SETTLE:?}"
            );
        }
    }
}
