//! Several KMS seals with HA on PostgreSQL: during a rolling restart that
//! adds a seal every node keeps unsealing, and a cluster of one seal moves
//! to several through its take-over.

use crate::support::kms::{
    SOON, init_recovery, kms, multiseal, named_seal, seal_block, seal_named, two_seals,
    wait_wrapped,
};
use strongroom_test_support::kms::Fault;

/// HA: a rolling restart that adds a seal. Each node unseals from the
/// envelopes of the seals it knows; only the active node rewraps.
#[test]
fn a_rolling_restart_that_adds_a_seal_keeps_every_node_unsealing() {
    use crate::support::ha::Cluster;
    use nix::sys::signal::Signal;

    let (tokyo, osaka) = (kms(), kms());
    let old = multiseal(&[named_seal("tokyo", 1, &tokyo, "")]);
    let new = two_seals(&tokyo.proxy.endpoint(), &osaka.proxy.endpoint());
    let mut cluster = Cluster::start_with(2, "2s", &old, &[]);
    let init = init_recovery(&cluster.nodes[0].daemon);
    let first = cluster.wait_active(&[0, 1]);
    let other = 1 - first;
    cluster.wait_for(other, "standing by", |s| s["ha_mode"] == "standby");
    cluster.nodes[first]
        .daemon
        .cli()
        .token(&init.root_token)
        .run(&["kv", "put", "app/db", "password=hunter2"])
        .ok();

    // The standby gets the new config: it unseals from "tokyo"'s envelope
    // and, standing by, rewraps nothing.
    osaka.proxy.clear_requests();
    cluster.restart_with(other, &old, &new);
    cluster.wait_for(other, "standing by", |s| s["ha_mode"] == "standby");
    let standby = cluster.status(other);
    assert_eq!(seal_named(&standby, "osaka")["fully_wrapped"], false);
    assert!(
        osaka.proxy.requests().is_empty(),
        "{:?}",
        osaka.proxy.requests()
    );

    // It takes over: as the active node it wraps the keys for "osaka".
    cluster.nodes[first].daemon.signal(Signal::SIGKILL);
    assert_eq!(cluster.wait_active(&[other]), other);
    wait_wrapped(&cluster.nodes[other].daemon, "osaka", true);

    // The node with the old config comes back: it knows only "tokyo", and
    // still unseals. Even as the active node it deletes nothing: the node
    // with the new config, restarted, reads "osaka"'s envelopes from storage.
    cluster.nodes[first].daemon.wait_exit(SOON);
    cluster.nodes[first].daemon.start_again();
    cluster.wait_for(first, "standing by", |s| s["ha_mode"] == "standby");
    cluster.nodes[other].daemon.signal(Signal::SIGKILL);
    assert_eq!(cluster.wait_active(&[first]), first);
    cluster.nodes[first]
        .daemon
        .cli()
        .token(&init.root_token)
        .run(&["kv", "put", "app/after", "value=old config active"])
        .ok();
    cluster.nodes[other].daemon.wait_exit(SOON);
    cluster.nodes[other].daemon.start_again();
    let standby = cluster.wait_for(other, "standing by", |s| s["ha_mode"] == "standby");
    assert_eq!(
        seal_named(&standby, "osaka")["fully_wrapped"],
        true,
        "{standby}"
    );
    cluster.restart_with(first, &old, &new);
    cluster.wait_for(first, "standing by", |s| s["ha_mode"] == "standby");

    // "tokyo" down: the new active node (once the other stops) unseals with "osaka".
    tokyo.proxy.fault(None, Fault::Drop);
    let was_active = cluster.wait_active(&[first, other]);
    let next = 1 - was_active;
    cluster.nodes[was_active].daemon.signal(Signal::SIGKILL);
    cluster.restart_with(next, "", "");
    let active = cluster.wait_active(&[next]);
    let status = cluster.status(active);
    assert_eq!(status["auto_unseal"]["seal"], "osaka");
    let out = cluster.nodes[active]
        .daemon
        .cli()
        .token(&init.root_token)
        .run(&["kv", "get", "app/db", "--format", "json"])
        .ok()
        .json();
    assert_eq!(out["data"]["data"]["password"], "hunter2");
}

/// HA: a cluster of one awskms seal moves to several. A standby with the
/// new config opens the one seal's envelope, takes over and rewraps for
/// every seal; a node with the old config cannot read the new envelopes
/// and is restarted with the new config (as after a seal migration).
#[test]
fn an_ha_cluster_of_one_seal_moves_to_several() {
    use crate::support::ha::Cluster;
    use nix::sys::signal::Signal;

    let (tokyo, osaka) = (kms(), kms());
    let single = seal_block(&tokyo.proxy.endpoint(), "");
    let both = two_seals(&tokyo.proxy.endpoint(), &osaka.proxy.endpoint());
    let mut cluster = Cluster::start_with(2, "2s", &single, &[]);
    let init = init_recovery(&cluster.nodes[0].daemon);
    let first = cluster.wait_active(&[0, 1]);
    let other = 1 - first;
    cluster.wait_for(other, "standing by", |s| s["ha_mode"] == "standby");

    cluster.restart_with(other, &single, &both);
    cluster.wait_for(other, "standing by", |s| s["ha_mode"] == "standby");
    cluster.nodes[first].daemon.signal(Signal::SIGKILL);
    assert_eq!(cluster.wait_active(&[other]), other);
    let moved = wait_wrapped(&cluster.nodes[other].daemon, "osaka", true);
    assert_eq!(moved["type"], "multiseal");

    let old = &mut cluster.nodes[first].daemon;
    old.wait_exit(SOON);
    let text = std::fs::read_to_string(&old.config_path).unwrap();
    std::fs::write(&old.config_path, text.replace(&single, &both)).unwrap();
    old.start_again();
    cluster.wait_for(first, "standing by", |s| s["ha_mode"] == "standby");
    let out = cluster.nodes[other]
        .daemon
        .cli()
        .token(&init.root_token)
        .run(&["kv", "list", "--format", "json"])
        .ok();
    assert!(out.stdout.trim().starts_with('['), "{}", out.stdout);
}
