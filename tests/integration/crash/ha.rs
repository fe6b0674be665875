//! The crash case of an HA take-over: the node taking the role crashes at
//! every point of its take-over.

use super::*;

/// The HA take-over (issue 14: "kill between acquiring the role and
/// finishing the reload"), on three nodes sharing a database: for each
/// point the take-over passes (its named steps, and any commit inside it),
/// a standby armed with that crash point is elected and aborts there;
/// another node then takes over and serves, never two active at once, and
/// every write acknowledged before reads back.
#[test]
fn ha_take_over() {
    ha_crash_matrix("ha-take-over");
}

fn ha_crash_matrix(operation: &str) {
    let mut cluster = Cluster::start(3, "2s");
    cluster.open();
    let mut written = Vec::new();
    let prefix = format!("failpoint passed: {operation}:");
    let points: Vec<String> = ha_round(&mut cluster, "list", &mut written)
        .iter()
        .filter_map(|line| line.strip_prefix(&prefix))
        .map(str::to_string)
        .collect();
    eprintln!("{operation}: crash points {points:?}");
    for step in HA_STEPS {
        assert!(
            points.iter().any(|p| p == step),
            "{step} not passed: {points:?}"
        );
    }
    for point in &points {
        assert!(is_point(point), "{operation}: unknown crash point {point}");
        ha_round(&mut cluster, &format!("{operation}:{point}"), &mut written);
    }
}

/// One round: the active node is killed, a standby armed with
/// `STRONGROOM_FAILPOINT=failpoint` is elected (the third node is sealed
/// meanwhile, so the armed one is the only candidate) and crashes there
/// (in `list` mode it serves and is stopped); the third node is unsealed and
/// must take over and serve; then every node is back, unarmed, under it.
/// Returns the armed node's stderr.
fn ha_round(
    cluster: &mut Cluster,
    failpoint: &str,
    written: &mut Vec<(String, &'static str)>,
) -> Vec<String> {
    let keys = cluster.init.as_ref().unwrap().keys_hex.clone();
    let keys = [&keys[0], &keys[1]];
    let active = cluster.wait_active(&[0, 1, 2]);
    let (armed, spare) = ((active + 1) % 3, (active + 2) % 3);
    let path = format!("crash/{}", written.len());
    cluster.put(active, &path, "kept").ok();
    written.push((path, "kept"));
    cluster.nodes[spare].daemon.cli().run(&["seal"]).ok();
    assert!(cluster.nodes[armed].daemon.stop().success());
    start_anew(
        &mut cluster.nodes[armed].daemon,
        &[("STRONGROOM_FAILPOINT", failpoint)],
    );
    unseal(&cluster.nodes[armed].daemon, &keys);
    cluster.wait_for(armed, "standing by", |s| s["ha_mode"] == "standby");

    cluster.nodes[active].daemon.signal(Signal::SIGKILL);
    cluster.nodes[active].daemon.wait_exit(SETTLE).unwrap();
    if failpoint == "list" {
        cluster.wait_for(armed, "active", |s| s["ha_mode"] == "active");
        assert!(cluster.nodes[armed].daemon.stop().success());
    } else {
        let node = &mut cluster.nodes[armed].daemon;
        let exit = node
            .wait_exit(SETTLE)
            .unwrap_or_else(|| panic!("{failpoint}: the elected node did not crash"));
        assert_eq!(
            exit.signal(),
            Some(Signal::SIGABRT as i32),
            "{failpoint}: {exit}"
        );
        assert!(
            node.stderr
                .text()
                .contains(&format!("failpoint {failpoint}: aborting")),
            "{failpoint}: aborted elsewhere"
        );
    }
    let lines = cluster.nodes[armed].daemon.stderr.all();

    // The third node takes the role the crashed one held, and serves.
    let crashed = std::time::Instant::now();
    unseal(&cluster.nodes[spare].daemon, &keys);
    let path = format!("crash/{}", written.len());
    // (put_anywhere writes the value "x".)
    let (_, took) = cluster.put_anywhere(&[spare], &path, crashed);
    written.push((path, "x"));
    eprintln!(
        "{failpoint}: the third node took a write {took:?} after the crash (its unseal included)"
    );
    cluster.nodes[active].daemon.start_again();
    unseal(&cluster.nodes[active].daemon, &keys);
    start_anew(&mut cluster.nodes[armed].daemon, &[]);
    unseal(&cluster.nodes[armed].daemon, &keys);
    assert_eq!(cluster.wait_active(&[0, 1, 2]), spare);
    for (path, value) in written.iter() {
        assert_eq!(
            cluster.get(spare, path).as_deref(),
            Some(*value),
            "{failpoint}: {path}"
        );
    }
    lines
}

/// Starts the stopped `daemon` again on its config with `env` (not the
/// environment it was first started with), keeping its CLI's token.
fn start_anew(daemon: &mut Daemon, env: &[(&str, &str)]) {
    let dir = daemon.config_path.parent().unwrap().to_path_buf();
    let text = std::fs::read_to_string(&daemon.config_path).unwrap();
    let cli_env = std::mem::take(&mut daemon.env);
    *daemon = Daemon::start_with(&dir, &text, env);
    daemon.env = cli_env;
}
