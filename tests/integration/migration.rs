//! Seal migration with the real binary against moto: Shamir → awskms,
//! awskms → Shamir, awskms → awskms (another KMS), each followed by a
//! restart on the config without the old seal block.

use std::path::Path;

use crate::support::cli::{init, put_secrets, secrets_read_back, status, unseal};
use crate::support::daemon::{Daemon, config, tempdir};
use crate::support::kms::{Kms, init_recovery, kms, seal_block, wait_unsealed};
use strongroom_test_support::PortHold;

fn restart_on(daemon: &mut Daemon, dir: &Path, extra: &str) -> Daemon {
    assert!(daemon.stop().success());
    Daemon::start(dir, &config(dir, extra))
}

/// The secret written before a migration and read after it.
const KEPT: [(&str, &str); 1] = [("app/db", "kept-across-seals")];

#[test]
fn shamir_to_awskms_is_refused_while_kms_is_down_then_done_with_the_unseal_keys() {
    let dir = tempdir();
    let mut daemon = Daemon::start(dir.path(), &config(dir.path(), ""));
    let keys = init(&daemon, &["--key-shares", "3", "--key-threshold", "2"]);
    unseal(&daemon, &[&keys.keys_hex[0], &keys.keys_hex[1]]);
    put_secrets(&daemon, &keys.root_token, &KEPT);

    // The new seal's KMS cannot be reached: refused, nothing changes.
    // A port held by the test and never listened on: connections are refused.
    let hold = PortHold::new();
    let dead = hold.endpoint();
    let mut daemon = restart_on(&mut daemon, dir.path(), &seal_block(&dead, ""));
    let pending = status(&daemon);
    assert_eq!(
        (&pending["type"], &pending["migration"], &pending["sealed"]),
        (&"awskms".into(), &true.into(), &true.into())
    );
    assert_eq!(pending["auto_unseal"]["state"], "migration");
    assert!(
        pending["warnings"][0]
            .as_str()
            .unwrap()
            .contains("enter a quorum of the unseal keys with `strongroom unseal --migrate`"),
        "{pending}"
    );
    daemon
        .cli()
        .run(&["unseal", &keys.keys_hex[0]])
        .code(1)
        .error_says("a seal migration (shamir → awskms) is pending");
    daemon
        .cli()
        .run(&["unseal", "--migrate", &keys.keys_hex[0]])
        .ok();
    daemon
        .cli()
        .run(&["unseal", "--migrate", &keys.keys_hex[2]])
        .code(1)
        .error_says("the new seal could not wrap the keys, so nothing changed");
    assert_eq!(status(&daemon)["sealed"], true);

    let kms = kms();
    let block = seal_block(&kms.proxy.endpoint(), "");
    let mut daemon = restart_on(&mut daemon, dir.path(), &block);
    for key in [&keys.keys_b64[2], &keys.keys_hex[1]] {
        daemon.cli().run(&["unseal", "--migrate", key]).ok();
    }
    let done = status(&daemon);
    assert_eq!(
        (&done["sealed"], &done["migration"], &done["type"]),
        (&false.into(), &false.into(), &"awskms".into())
    );
    assert_eq!(done["kms_key_arn"], kms.key.as_str());
    daemon.stderr.wait_for("the migration's log line", |l| {
        l.contains("seal migration complete")
    });
    secrets_read_back(&daemon, &keys.root_token, &KEPT);

    // The config has only the new block: every restart unseals by itself,
    // and the old unseal keys are now the recovery keys.
    daemon.restart();
    wait_unsealed(&daemon);
    secrets_read_back(&daemon, &keys.root_token, &KEPT);
    daemon.cli().token(&keys.root_token).run(&["seal"]).ok();
    for key in [&keys.keys_hex[2], &keys.keys_hex[0]] {
        daemon.cli().run(&["unseal", key]).ok();
    }
    assert_eq!(status(&daemon)["sealed"], false);
}

#[test]
fn awskms_to_shamir_turns_recovery_keys_into_unseal_keys() {
    let kms = kms();
    let dir = tempdir();
    let block = seal_block(&kms.proxy.endpoint(), "");
    let mut daemon = Daemon::start(dir.path(), &config(dir.path(), &block));
    let keys = init_recovery(&daemon);
    put_secrets(&daemon, &keys.root_token, &KEPT);

    // Without the block, the store is refused at start.
    assert!(daemon.stop().success());
    std::fs::write(&daemon.config_path, config(dir.path(), "")).unwrap();
    let mut refused = Daemon::spawn(&daemon.config_path, &[]);
    let exit = refused
        .wait_exit(std::time::Duration::from_secs(10))
        .unwrap();
    assert_eq!(exit.code(), Some(1));
    refused.stderr.wait_for("the refusal", |l| {
        l.contains("keep the block and add disabled = true")
    });

    let disabled = seal_block(&kms.proxy.endpoint(), "disabled = true");
    let mut daemon = Daemon::start(dir.path(), &config(dir.path(), &disabled));
    let pending = status(&daemon);
    assert_eq!(
        (
            &pending["type"],
            &pending["migration"],
            &pending["recovery_seal"]
        ),
        (&"shamir".into(), &true.into(), &true.into())
    );
    assert_eq!((&pending["t"], &pending["n"]), (&3.into(), &5.into()));
    for key in [
        &keys.recovery_hex[4],
        &keys.recovery_b64[0],
        &keys.recovery_hex[2],
    ] {
        daemon.cli().run(&["unseal", "--migrate", key]).ok();
    }
    let done = status(&daemon);
    assert_eq!(
        (&done["sealed"], &done["type"]),
        (&false.into(), &"shamir".into())
    );
    secrets_read_back(&daemon, &keys.root_token, &KEPT);

    // Restarting with the disabled block left in: a Shamir store, a warning.
    daemon.restart();
    assert!(
        daemon
            .stderr
            .text()
            .contains("left over from a finished migration")
    );
    // Without it: the recovery keys are the unseal keys now.
    let daemon = restart_on(&mut daemon, dir.path(), "");
    assert_eq!(status(&daemon)["type"], "shamir");
    unseal(
        &daemon,
        &[
            &keys.recovery_hex[1],
            &keys.recovery_hex[3],
            &keys.recovery_hex[0],
        ],
    );
    secrets_read_back(&daemon, &keys.root_token, &KEPT);
}

#[test]
fn awskms_to_another_kms_needs_only_the_new_one_after() {
    let old: Kms = kms();
    let new: Kms = kms();
    let dir = tempdir();
    let old_block = seal_block(&old.proxy.endpoint(), "");
    let mut daemon = Daemon::start(dir.path(), &config(dir.path(), &old_block));
    let keys = init_recovery(&daemon);
    put_secrets(&daemon, &keys.root_token, &KEPT);
    assert_eq!(status(&daemon)["kms_key_arn"], old.key.as_str());

    let both = format!(
        "{}{}",
        seal_block(&new.proxy.endpoint(), ""),
        seal_block(&old.proxy.endpoint(), "disabled = true")
    );
    assert!(daemon.stop().success());
    old.proxy.clear_requests();
    let mut daemon = Daemon::start(dir.path(), &config(dir.path(), &both));
    // The daemon first asks the new KMS whether the keys are already there.
    strongroom_test_support::eventually(
        "the migration check",
        std::time::Duration::from_secs(10),
        || new.proxy.requests().iter().any(|r| r == "DescribeKey"),
    );
    let pending = status(&daemon);
    assert_eq!(
        (&pending["migration"], &pending["sealed"]),
        (&true.into(), &true.into())
    );
    assert!(
        old.proxy.requests().is_empty(),
        "the old KMS was used before the keys were entered"
    );
    daemon
        .cli()
        .run(&["unseal", "--migrate", &hex::encode([1u8; 33])])
        .code(1)
        .error_says("this recovery key was never issued for this store");
    for key in [
        &keys.recovery_hex[0],
        &keys.recovery_hex[1],
        &keys.recovery_hex[2],
    ] {
        daemon.cli().run(&["unseal", "--migrate", key]).ok();
    }
    let done = status(&daemon);
    assert_eq!(done["sealed"], false);
    assert_eq!(done["kms_key_arn"], new.key.as_str());
    let mut old_calls = old.proxy.requests();
    old_calls.sort();
    assert_eq!(
        old_calls,
        ["Decrypt", "Decrypt"],
        "the recovery key check and the root key"
    );

    // The old block still in: found done, and unsealed by the new key.
    daemon.restart();
    wait_unsealed(&daemon);
    assert!(
        daemon
            .stderr
            .text()
            .contains("left over from a finished migration")
    );
    // Only the new block, and the old KMS gone for good.
    let Kms { moto, proxy, .. } = old;
    drop(proxy);
    drop(moto);
    let daemon = restart_on(
        &mut daemon,
        dir.path(),
        &seal_block(&new.proxy.endpoint(), ""),
    );
    wait_unsealed(&daemon);
    secrets_read_back(&daemon, &keys.root_token, &KEPT);
}
