//! HA on PostgreSQL with real daemons (docs/HA.md): three nodes on one
//! database, one active; failover after kill -9 and after SIGTERM; a
//! step-down and a seal hand the role over; init on any node; a standby
//! answers node-local calls and refuses the rest naming the active node.
//! Timings are printed (`--nocapture`), never asserted.

use std::time::Instant;

use nix::sys::signal::Signal;

use strongroom::proto::{self, sys_client::SysClient};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::support::grpc::channel;
use crate::support::ha::{Cluster, SETTLE};

#[test]
fn one_node_is_active_the_others_stand_by_and_say_where_it_is() {
    let mut cluster = Cluster::start(3, "2s");
    cluster.open();
    let active = cluster.wait_active(&[0, 1, 2]);
    let standby = (active + 1) % 3;
    let address = format!("http://127.0.0.1:{}", cluster.nodes[active].port);

    let status = cluster.status(active);
    assert_eq!(status["ha_enabled"], true);
    assert_eq!(status["is_self"], true);
    assert_eq!(status["leader_address"], address.as_str());
    assert_eq!(status["storage_type"], "postgresql");
    let status = cluster.status(standby);
    assert_eq!(status["is_self"], false);
    assert_eq!(status["sealed"], false);
    assert_ne!(status["active_time"], "0001-01-01T00:00:00Z");

    cluster.put(active, "app/db", "one").ok();
    // A standby serves nothing from the store, and says where to go.
    cluster.put(standby, "app/db", "two").error_says(&format!(
        "this node is a standby; the active node is at {address}"
    ));
    assert_eq!(cluster.get(active, "app/db").as_deref(), Some("one"));
    // Readiness: SERVING on the active node only.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        for (node, wanted) in [
            (active, ServingStatus::Serving),
            (standby, ServingStatus::NotServing),
        ] {
            let mut client = HealthClient::new(channel(&cluster.nodes[node].daemon.addr).await);
            // The health service follows the role a moment after Status.
            let deadline = Instant::now() + SETTLE;
            loop {
                let answer = client
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .unwrap()
                    .into_inner();
                if ServingStatus::try_from(answer.status).unwrap() == wanted {
                    break;
                }
                assert!(Instant::now() < deadline, "node {node} never {wanted:?}");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    });
    // The table view names the role too.
    let table = cluster.nodes[standby].daemon.cli().run(&["status"]).ok();
    assert!(table.stdout.contains("HA Mode"), "{}", table.stdout);
    assert!(table.stdout.contains(&address), "{}", table.stdout);
}

#[test]
fn kill_9_of_the_active_node_fails_over_to_a_standby() {
    let mut cluster = Cluster::start(3, "5s");
    cluster.open();
    let first = cluster.wait_active(&[0, 1, 2]);
    cluster.put(first, "app/before", "kept").ok();
    let others: Vec<usize> = (0..3).filter(|&i| i != first).collect();

    let killed = Instant::now();
    cluster.nodes[first].daemon.signal(Signal::SIGKILL);
    let (taker, took) = cluster.put_anywhere(&others, "app/after", killed);
    eprintln!("failover after kill -9: a write succeeded {took:?} after the kill");
    assert_eq!(cluster.wait_active(&others), taker);
    assert_eq!(cluster.get(taker, "app/before").as_deref(), Some("kept"));

    // SIGTERM of the new active releases the role at once.
    let last = others.into_iter().find(|&i| i != taker).unwrap();
    let stopped = Instant::now();
    let status = cluster.nodes[taker].daemon.stop();
    assert!(status.success(), "{status}");
    // It released the role on its way out (the lease is free or already
    // the next node's, never still its own).
    let holder = cluster
        .db
        .psql("SELECT ha_identity FROM strongroom_ha_locks WHERE ha_key = 'core/lock'");
    let log = cluster.nodes[taker].daemon.stderr.text();
    assert!(
        holder.is_empty() || !log.contains(&format!("\"identity\":\"{holder}\"")),
        "the stopped node still holds the lease: {holder}"
    );
    let (now_active, took) = cluster.put_anywhere(&[last], "app/after-term", stopped);
    eprintln!("failover after SIGTERM: a write succeeded {took:?} after the signal");
    assert_eq!(now_active, last);
    let log = cluster.nodes[taker].daemon.stderr.text();
    assert!(
        log.contains("sealed: root key and keyring dropped from memory"),
        "{log}"
    );
    assert!(!log.contains("was not released in time"), "{log}");
}

#[test]
fn step_down_and_seal_hand_the_role_to_another_node() {
    let mut cluster = Cluster::start(3, "2s");
    cluster.open();
    let first = cluster.wait_active(&[0, 1, 2]);
    let standby = (first + 1) % 3;
    // A rekey under way on the active node is cancelled by the step-down.
    let keys = cluster.init.as_ref().unwrap().keys_hex.clone();
    let (nonce, _) = crate::support::quorum::start(&cluster.nodes[first].daemon, "rekey", &[]);
    cluster.nodes[first]
        .daemon
        .cli()
        .run(&["rekey", "--nonce", &nonce, &keys[0]])
        .ok();
    // A standby does not step down: the call is the active node's.
    cluster.nodes[standby]
        .daemon
        .cli()
        .run(&["operator", "step-down"])
        .error_says("this node is a standby");
    cluster.nodes[first]
        .daemon
        .cli()
        .run(&["operator", "step-down"])
        .ok();
    let others: Vec<usize> = (0..3).filter(|&i| i != first).collect();
    let second = cluster.wait_active(&others);
    assert!(
        cluster.nodes[first]
            .daemon
            .stderr
            .text()
            .contains("a quorum operation was in progress and is cancelled")
    );
    // The node that stepped down stands by, keys kept, naming the new one.
    let address = format!("http://127.0.0.1:{}", cluster.nodes[second].port);
    cluster.wait_for(first, "standing by naming the new active node", |s| {
        s["ha_mode"] == "standby" && s["leader_address"] == address.as_str()
    });

    // Sealing the active node gives the role up too; the sealed node
    // stays sealed.
    cluster.nodes[second].daemon.cli().run(&["seal"]).ok();
    let third = cluster.wait_active(
        &[0, 1, 2]
            .into_iter()
            .filter(|&i| i != second)
            .collect::<Vec<_>>(),
    );
    assert_ne!(third, second);
    assert_eq!(cluster.status(second)["sealed"], true);
    cluster.put(third, "app/x", "y").ok();

    // Sealing a standby seals that node only.
    let standing = (0..3).find(|&i| i != second && i != third).unwrap();
    cluster.nodes[standing].daemon.cli().run(&["seal"]).ok();
    assert_eq!(cluster.status(standing)["sealed"], true);
    assert_eq!(cluster.status(third)["ha_mode"], "active");
}

#[tokio::test]
async fn init_is_confirmed_on_the_node_that_answered_it_and_refused_after() {
    let cluster = Cluster::start(2, "2s");
    let mut a = SysClient::new(channel(&cluster.nodes[0].daemon.addr).await);
    let mut b = SysClient::new(channel(&cluster.nodes[1].daemon.addr).await);
    let made = a
        .init(proto::InitRequest {
            key_shares: Some(1),
            key_threshold: Some(1),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let confirm = || proto::InitConfirmRequest {
        nonce: made.confirmation_nonce.clone(),
    };
    // The confirmation goes to the node that answered the Init.
    let refused = b.init_confirm(confirm()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(
        refused
            .message()
            .contains("the confirmation goes to the node that answered the Init"),
        "{}",
        refused.message()
    );
    a.init_confirm(confirm()).await.unwrap();
    // b learns that the store is initialized and refuses another init.
    let deadline = Instant::now() + SETTLE;
    while !b
        .status(proto::StatusRequest {})
        .await
        .unwrap()
        .into_inner()
        .initialized
    {
        assert!(Instant::now() < deadline, "b never saw the init");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let again = b.init(proto::InitRequest::default()).await.unwrap_err();
    assert_eq!(again.message(), "strongroom is already initialized");
}

#[test]
fn a_standby_takes_over_after_the_root_key_was_rotated_and_the_keyring_too() {
    use crate::support::quorum::{enter, start};
    let mut cluster = Cluster::start(2, "2s");
    cluster.open();
    let first = cluster.wait_active(&[0, 1]);
    let standby = 1 - first;
    cluster.put(first, "app/old", "before").ok();
    // A new root key and a new keyring term while the other node stands by
    // with the old ones in memory.
    let keys = cluster.init.as_ref().unwrap().keys_hex.clone();
    let active = &cluster.nodes[first].daemon;
    let (nonce, _) = start(active, "rotate-root", &[]);
    enter(active, "rotate-root", &nonce, &[&keys[0], &keys[1]]);
    active.cli().run(&["rotate"]).ok();
    cluster.put(first, "app/new", "after").ok();

    cluster.nodes[first].daemon.signal(Signal::SIGKILL);
    assert_eq!(cluster.wait_active(&[standby]), standby);
    assert_eq!(cluster.get(standby, "app/old").as_deref(), Some("before"));
    assert_eq!(cluster.get(standby, "app/new").as_deref(), Some("after"));
    cluster.put(standby, "app/third", "ok").ok();
    assert!(
        cluster.nodes[standby]
            .daemon
            .stderr
            .text()
            .contains("the root key was rotated while this node stood by")
    );
}

#[test]
fn standbys_hear_the_active_nodes_changes_and_seal_after_a_restore() {
    use crate::support::cli::{create_token, write_policy};
    let mut cluster = Cluster::start(2, "2s");
    cluster.open();
    let active = cluster.wait_active(&[0, 1]);
    let standby = 1 - active;
    let seal_grant = "path \"sys/seal\" {\n  capabilities = [\"sudo\"]\n}\n";
    let elsewhere = "path \"sys/other\" {\n  capabilities = [\"sudo\"]\n}\n";
    let root = || cluster.nodes[active].daemon.cli();
    write_policy(&mut root(), "sealer", elsewhere);
    let (token, _) = create_token(&mut root(), &["--policy", "sealer"]);
    let seal_on_standby = || {
        let mut cli = cluster.nodes[standby].daemon.cli();
        cli.token(&token);
        cli.run(&["seal"])
    };
    // The standby reads (and caches) the policy: no right to seal yet.
    seal_on_standby().error_says("permission denied");
    // The active node grants it; the standby hears of it and does not
    // answer from its cache.
    write_policy(&mut root(), "sealer", seal_grant);
    let deadline = Instant::now() + SETTLE;
    while seal_on_standby().code != 0 {
        assert!(Instant::now() < deadline, "the standby kept the old policy");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(cluster.status(standby)["sealed"], true);
    let keys = cluster.init.as_ref().unwrap().keys_hex.clone();
    crate::support::cli::unseal(&cluster.nodes[standby].daemon, &[&keys[0], &keys[1]]);
    cluster.wait_for(standby, "standing by", |s| s["ha_mode"] == "standby");

    // A restore on the active node seals the standby, which says why.
    let dir = crate::support::daemon::tempdir();
    let file = dir.path().join("snap");
    let file = file.to_str().unwrap();
    root().run(&["snapshot", "save", file]).ok();
    root().run(&["snapshot", "restore", file]).ok();
    cluster.wait_for(standby, "sealed", |s| s["sealed"] == true);
    assert!(
        cluster.nodes[standby]
            .daemon
            .stderr
            .text()
            .contains("the active node restored a snapshot; this node sealed itself")
    );
}

#[test]
fn a_quorum_operation_under_way_is_cancelled_by_a_failover_and_says_so() {
    use crate::support::quorum::start;
    let mut cluster = Cluster::start(2, "2s");
    cluster.open();
    let first = cluster.wait_active(&[0, 1]);
    let other = 1 - first;
    let keys = cluster.init.as_ref().unwrap().keys_hex.clone();
    let (nonce, _) = start(&cluster.nodes[first].daemon, "rekey", &[]);
    cluster.nodes[first]
        .daemon
        .cli()
        .run(&["rekey", "--nonce", &nonce, &keys[0]])
        .ok();
    cluster.nodes[first].daemon.signal(Signal::SIGKILL);
    assert_eq!(cluster.wait_active(&[other]), other);
    cluster.nodes[other]
        .daemon
        .cli()
        .run(&["rekey", "--nonce", &nonce, &keys[1]])
        .error_says("when another node becomes the active one");
    // The keys are unchanged: the old ones still unseal.
    cluster.nodes[other].daemon.cli().run(&["seal"]).ok();
    crate::support::cli::unseal(&cluster.nodes[other].daemon, &[&keys[0], &keys[1]]);
    assert_eq!(cluster.wait_active(&[other]), other);
}

#[test]
fn a_seal_migration_is_written_by_the_node_that_takes_over_and_seals_the_others() {
    use crate::support::kms::{kms, seal_block};
    let mut cluster = Cluster::start(2, "2s");
    cluster.open();
    let active = cluster.wait_active(&[0, 1]);
    let migrating = 1 - active;
    cluster.put(active, "app/db", "kept").ok();
    // The standby is restarted with an awskms seal block: a migration
    // from Shamir is pending there.
    let kms = kms();
    cluster.restart_with(migrating, "", &seal_block(&kms.proxy.endpoint(), ""));
    let keys = cluster.init.as_ref().unwrap().keys_hex.clone();
    cluster.unseal_migrate(migrating, &keys[..2]);
    // Prepared, not written: it stands by until it holds the role.
    let status = cluster.wait_for(migrating, "standing by", |s| s["ha_mode"] == "standby");
    assert_eq!(status["migration"], true);
    cluster.nodes[active].daemon.cli().run(&["step-down"]).ok();
    assert_eq!(cluster.wait_active(&[migrating]), migrating);
    let status = cluster.status(migrating);
    assert_eq!(
        (&status["type"], &status["migration"]),
        (&"awskms".into(), &false.into())
    );
    assert_eq!(cluster.get(migrating, "app/db").as_deref(), Some("kept"));
    // The node still on the Shamir seal hears it and seals itself.
    cluster.wait_for(active, "sealed", |s| s["sealed"] == true);
    assert!(
        cluster.nodes[active]
            .daemon
            .stderr
            .text()
            .contains("the active node migrated the seal; this node sealed itself")
    );
}

#[test]
fn awskms_nodes_unseal_themselves_and_a_take_over_reads_a_rotated_root_key_with_kms() {
    use crate::support::kms::{init_recovery, kms, seal_block};
    let kms = kms();
    let block = seal_block(&kms.proxy.endpoint(), "");
    let mut cluster = Cluster::start_with(2, "2s", &block, &[]);
    let recovery = init_recovery(&cluster.nodes[0].daemon);
    for node in &mut cluster.nodes {
        node.daemon
            .env
            .insert("STRONGROOM_TOKEN".into(), recovery.root_token.clone());
    }
    // The other node learns of the init and auto-unseals: one KMS Decrypt.
    let first = cluster.wait_active(&[0, 1]);
    let other = 1 - first;
    cluster.wait_for(other, "standing by", |s| s["ha_mode"] == "standby");
    cluster.put(first, "app/db", "kept").ok();
    // A new root key, wrapped by KMS, while the other node stands by.
    let active = &cluster.nodes[first].daemon;
    let (nonce, _) = crate::support::quorum::start(active, "rotate-root", &[]);
    let keys = recovery.recovery_hex.clone();
    crate::support::quorum::enter(
        active,
        "rotate-root",
        &nonce,
        &[&keys[0], &keys[1], &keys[2]],
    );
    cluster.nodes[first].daemon.signal(Signal::SIGKILL);
    assert_eq!(cluster.wait_active(&[other]), other);
    assert_eq!(cluster.get(other, "app/db").as_deref(), Some("kept"));
    assert!(
        cluster.nodes[other]
            .daemon
            .stderr
            .text()
            .contains("the root key was rotated while this node stood by")
    );
}

#[test]
fn a_stale_prepared_seal_migration_is_dropped_not_written() {
    use crate::support::kms::{kms, seal_block};
    let mut cluster = Cluster::start(2, "2s");
    cluster.open();
    let active = cluster.wait_active(&[0, 1]);
    let migrating = 1 - active;
    cluster.put(active, "app/db", "kept").ok();
    let kms = kms();
    cluster.restart_with(migrating, "", &seal_block(&kms.proxy.endpoint(), ""));
    let keys = cluster.init.as_ref().unwrap().keys_hex.clone();
    cluster.unseal_migrate(migrating, &keys[..2]);
    let status = cluster.wait_for(migrating, "standing by", |s| s["ha_mode"] == "standby");
    assert!(
        status["warnings"][0]
            .as_str()
            .unwrap()
            .contains("is prepared and is written when this node takes the active role"),
        "{status}"
    );
    // The root key changes before the migrating node takes over.
    let active_node = &cluster.nodes[active].daemon;
    let (nonce, _) = crate::support::quorum::start(active_node, "rotate-root", &[]);
    crate::support::quorum::enter(active_node, "rotate-root", &nonce, &[&keys[0], &keys[1]]);
    active_node.cli().run(&["step-down"]).ok();
    cluster.wait_for(migrating, "sealed", |s| s["sealed"] == true);
    assert!(
        cluster.nodes[migrating]
            .daemon
            .stderr
            .text()
            .contains("the seal migration prepared on this node no longer applies")
    );
    // Nothing was written: the other node takes the role back (after its
    // step-down pause) with the data and the Shamir seal.
    assert_eq!(cluster.wait_active(&[active]), active);
    let status = cluster.status(active);
    assert_eq!(status["type"], "shamir");
    assert_eq!(cluster.get(active, "app/db").as_deref(), Some("kept"));
}

#[test]
fn a_forged_restore_notification_seals_nobody() {
    let mut cluster = Cluster::start(2, "2s");
    cluster.open();
    let active = cluster.wait_active(&[0, 1]);
    let standby = 1 - active;
    cluster.db.psql(
        "SELECT pg_notify('strongroom_ha_locks', '{\"table\":\"strongroom_ha_locks\",\"epoch\":1,\"restored\":true}')",
    );
    cluster.nodes[standby]
        .daemon
        .stderr
        .wait_for("the forged notification ignored", |l| {
            l.contains("a restore notification came without a new restore recorded in the store")
        });
    assert_eq!(cluster.status(standby)["ha_mode"], "standby");
}

#[test]
fn a_rekey_on_the_active_node_reaches_the_standby_and_the_next_active() {
    use crate::support::quorum::{enter, start};
    let mut cluster = Cluster::start(2, "2s");
    cluster.open();
    let first = cluster.wait_active(&[0, 1]);
    let other = 1 - first;
    cluster.put(first, "app/db", "kept").ok();
    let keys = cluster.init.as_ref().unwrap().keys_hex.clone();
    let active = &cluster.nodes[first].daemon;
    let (nonce, _) = start(
        active,
        "rekey",
        &["--key-shares", "4", "--key-threshold", "3"],
    );
    let done = enter(active, "rekey", &nonce, &[&keys[0], &keys[1]]);
    let new = crate::support::cli::strings(&done["keys"]);
    assert_eq!(new.len(), 4, "{done}");
    // The standby hears the new seal configuration.
    cluster.wait_for(other, "showing the new shares", |s| {
        s["n"] == 4 && s["t"] == 3
    });
    cluster.nodes[first].daemon.signal(Signal::SIGKILL);
    assert_eq!(cluster.wait_active(&[other]), other);
    assert_eq!(cluster.get(other, "app/db").as_deref(), Some("kept"));
    // Sealed, the new active node opens with the new keys only.
    cluster.nodes[other].daemon.cli().run(&["seal"]).ok();
    cluster.nodes[other]
        .daemon
        .cli()
        .run(&["unseal", &keys[0]])
        .code(1)
        .error_says("never issued");
    crate::support::cli::unseal(&cluster.nodes[other].daemon, &[&new[0], &new[1], &new[2]]);
    assert_eq!(cluster.wait_active(&[other]), other);
}

#[test]
fn a_migration_between_two_kms_keys_seals_the_nodes_still_on_the_old_one() {
    use crate::support::kms::{init_recovery, kms, seal_block};
    let (old, new) = (kms(), kms());
    let old_block = seal_block(&old.proxy.endpoint(), "");
    let mut cluster = Cluster::start_with(2, "2s", &old_block, &[]);
    let recovery = init_recovery(&cluster.nodes[0].daemon);
    for node in &mut cluster.nodes {
        node.daemon
            .env
            .insert("STRONGROOM_TOKEN".into(), recovery.root_token.clone());
    }
    let active = cluster.wait_active(&[0, 1]);
    let migrating = 1 - active;
    cluster.wait_for(migrating, "standing by", |s| s["ha_mode"] == "standby");
    cluster.put(active, "app/db", "kept").ok();
    // The standby is restarted with the new key's block and the old one
    // disabled: a migration between two KMS keys, the same seal type.
    let both = format!(
        "{}{}",
        seal_block(&new.proxy.endpoint(), ""),
        seal_block(&old.proxy.endpoint(), "disabled = true")
    );
    cluster.restart_with(migrating, &old_block, &both);
    cluster.wait_for(migrating, "waiting for the migration", |s| {
        s["migration"] == true
    });
    cluster.unseal_migrate(migrating, &recovery.recovery_hex[..3]);
    cluster.wait_for(migrating, "standing by", |s| s["ha_mode"] == "standby");
    cluster.nodes[active].daemon.cli().run(&["step-down"]).ok();
    assert_eq!(cluster.wait_active(&[migrating]), migrating);
    assert_eq!(cluster.status(migrating)["kms_key_arn"], new.key.as_str());
    assert_eq!(cluster.get(migrating, "app/db").as_deref(), Some("kept"));
    // The other node still names the old key: it seals itself.
    cluster.wait_for(active, "sealed", |s| s["sealed"] == true);
    assert!(
        cluster.nodes[active]
            .daemon
            .stderr
            .text()
            .contains("the active node migrated the seal; this node sealed itself")
    );
}
