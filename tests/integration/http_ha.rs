//! Vault's HTTP API on an HA cluster: a standby answers `sys/health` with
//! 429 (200 with `standbyok`), `sys/leader` names the active node, the
//! `bao` CLI's status shows the HA mode, and every other request through a
//! standby is forwarded to the active node and audited there as the
//! caller's own.

use serde_json::{Value, json};

use crate::support::ha::Cluster;
use crate::support::vault::{bao, raw, request};

/// Each node writes an audit file in its directory.
fn audited(dir: &std::path::Path) -> String {
    format!(
        "audit \"file\" {{ path = \"{}\" }}\n",
        dir.join("audit.log").display()
    )
}

fn audit_operations(cluster: &Cluster, i: usize) -> Vec<String> {
    std::fs::read_to_string(cluster.nodes[i].dir.path().join("audit.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["type"] == "request")
        .map(|l| l["operation"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_standby_answers_health_and_leader_and_forwards_the_rest() {
    let mut cluster = Cluster::start_forwarding(2, "2s", audited);
    cluster.open();
    let active = cluster.wait_active(&[0, 1]);
    let standby = 1 - active;
    let token = cluster.init.as_ref().unwrap().root_token.clone();
    let standby_addr = cluster.nodes[standby].daemon.addr.clone();
    let active_addr = cluster.nodes[active].daemon.addr.clone();

    let code =
        |addr: &str, query: &str| raw(addr, "GET", &format!("/v1/sys/health{query}"), None, None);
    let health = code(&standby_addr, "");
    assert_eq!(health.status, 429, "{:?}", health.body);
    assert_eq!(health.body["standby"], true);
    assert_eq!(code(&standby_addr, "?standbyok=true").status, 200);
    assert_eq!(code(&standby_addr, "?standbycode=299").status, 299);
    assert_eq!(code(&active_addr, "").status, 200);

    let leader = request(standby_addr.as_str(), "GET", "sys/leader", None, None);
    assert_eq!(leader.body["ha_enabled"], true);
    assert_eq!(leader.body["is_self"], false);
    assert_eq!(leader.body["leader_address"], json!(active_addr));
    let on_active = request(active_addr.as_str(), "GET", "sys/leader", None, None);
    assert_eq!(on_active.body["is_self"], true);

    let status = bao(
        &standby_addr,
        None,
        cluster.nodes[standby].dir.path(),
        &["status"],
    );
    let shown = String::from_utf8_lossy(&status.stdout).to_string();
    assert_eq!(status.status.code(), Some(0), "{shown}");
    assert!(shown.contains("HA Enabled             true"), "{shown}");
    assert!(shown.contains("HA Mode                standby"), "{shown}");
    assert!(shown.contains(&active_addr), "{shown}");

    // A keyring rotation through the standby (HTTP/1.1, made HTTP/2 for
    // the cluster connection): made by the active node, audited there only,
    // with the caller's own accessor.
    let before = request(
        active_addr.as_str(),
        "GET",
        "sys/key-status",
        Some(&token),
        None,
    );
    let rotated = request(
        standby_addr.as_str(),
        "POST",
        "sys/rotate",
        Some(&token),
        None,
    );
    assert_eq!(rotated.status, 204, "{:?}", rotated.body);
    let after = request(
        standby_addr.as_str(),
        "GET",
        "sys/key-status",
        Some(&token),
        None,
    );
    assert_eq!(after.status, 200, "{:?}", after.body);
    assert_eq!(
        after.body["term"].as_u64().unwrap(),
        before.body["term"].as_u64().unwrap() + 1
    );
    assert!(audit_operations(&cluster, active).contains(&"sys.Rotate".to_string()));
    assert!(!audit_operations(&cluster, standby).contains(&"sys.Rotate".to_string()));
    let accessor = request(
        active_addr.as_str(),
        "GET",
        "auth/token/lookup-self",
        Some(&token),
        None,
    )
    .body["data"]["accessor"]
        .clone();
    let rotate_line = std::fs::read_to_string(cluster.nodes[active].dir.path().join("audit.log"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["operation"] == "sys.Rotate" && l["type"] == "request")
        .unwrap();
    assert_eq!(rotate_line["accessor"], accessor, "{rotate_line}");
    // A refusal comes back from the active node as Vault's JSON.
    let refused = request(
        standby_addr.as_str(),
        "GET",
        "sys/key-status",
        Some("sr.bogus"),
        None,
    );
    assert_eq!(refused.status, 403, "{:?}", refused.body);
    assert!(refused.body["errors"].is_array());

    // A sealed node with HA: `bao status` exits 2 (it reads the sealed
    // node's leader error by Vault's words).
    let sealed = request(standby_addr.as_str(), "PUT", "sys/seal", Some(&token), None);
    assert_eq!(sealed.status, 204, "{:?}", sealed.body);
    let status = bao(
        &standby_addr,
        None,
        cluster.nodes[standby].dir.path(),
        &["status"],
    );
    assert_eq!(
        status.status.code(),
        Some(2),
        "{}{}",
        String::from_utf8_lossy(&status.stdout),
        String::from_utf8_lossy(&status.stderr)
    );
}
