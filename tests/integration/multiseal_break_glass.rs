//! After a break-glass unseal (two KMS seals whose keys are deleted for
//! good, and the emergency Shamir seal): the emergency unseal also opened
//! the recovery key, so the active node wraps both keys for a seal added to
//! the config and recovery keys authorize quorum operations again; the dead
//! seals then leave one per restart, each removal recorded at once, and a
//! config without the `seal "shamir"` block retires the emergency seal, whose
//! keys then open nothing.

use crate::support::cli::{status, strings};
use crate::support::daemon::{Daemon, config, tempdir};
use crate::support::kms::{
    EMERGENCY_SEAL, SOON, delete_key, init_with_emergency_keys, kms, multiseal, named_seal,
    restart_with, seal_named, unseal_emergency, wait_failed_attempt, wait_unsealed, wait_wrapped,
};
use crate::support::quorum::{enter, start};
use strongroom_test_support::eventually;
use strongroom_test_support::kms::Fault;

#[test]
fn after_the_break_glass_a_new_seal_takes_over_and_the_emergency_seal_retires() {
    let (tokyo, osaka, kyoto) = (kms(), kms(), kms());
    let dir = tempdir();
    let (t, o, k) = (
        named_seal("tokyo", 1, &tokyo, ""),
        named_seal("osaka", 2, &osaka, ""),
        named_seal("kyoto", 3, &kyoto, ""),
    );
    let with_emergency = |seals: &[String]| format!("{}{EMERGENCY_SEAL}", multiseal(seals));
    let mut daemon = Daemon::start(
        dir.path(),
        &config(dir.path(), &with_emergency(&[t.clone(), o.clone()])),
    );
    let made = init_with_emergency_keys(&daemon);
    let emergency = strings(&made.json["emergency_keys_hex"]);
    daemon
        .env
        .insert("STRONGROOM_TOKEN".into(), made.root_token.clone());
    daemon
        .cli()
        .run(&["kv", "put", "app/db", "password=kept"])
        .ok();
    let read_back = |daemon: &Daemon| {
        let out = daemon
            .cli()
            .run(&["kv", "get", "app/db", "--format", "json"])
            .ok()
            .json();
        assert_eq!(out["data"]["data"]["password"], "kept");
    };

    // Both KMS keys are deleted for good; the operator adds "kyoto". No
    // seal can unseal, and auto-unseal keeps trying.
    delete_key(&tokyo);
    delete_key(&osaka);
    restart_with(
        &mut daemon,
        dir.path(),
        &with_emergency(&[t.clone(), o.clone(), k.clone()]),
    );
    wait_failed_attempt(&daemon);
    eventually("a second auto-unseal attempt", SOON, || {
        status(&daemon)["auto_unseal"]["attempts"]
            .as_u64()
            .is_some_and(|n| n >= 2)
    });
    for key in &emergency[..2] {
        unseal_emergency(&daemon, key).ok();
    }
    assert_eq!(status(&daemon)["sealed"], false);
    read_back(&daemon);
    // The emergency unseal opened the recovery key too: the active node
    // gives "kyoto" both keys, and recovery keys authorize a rotation.
    wait_wrapped(&daemon, "kyoto", true);
    let (nonce, _) = start(&daemon, "rotate-root", &[]);
    let done = enter(
        &daemon,
        "rotate-root",
        &nonce,
        &[&made.recovery_hex[0], &made.recovery_hex[1]],
    );
    assert_eq!(done["complete"], true, "{done}");

    // "kyoto" unseals it now; the dead seals leave one per restart, each
    // removal recorded at once although the other dead seal never wraps.
    daemon.restart();
    assert_eq!(wait_unsealed(&daemon)["auto_unseal"]["seal"], "kyoto");
    restart_with(
        &mut daemon,
        dir.path(),
        &with_emergency(&[o.clone(), k.clone()]),
    );
    assert_eq!(wait_unsealed(&daemon)["auto_unseal"]["seal"], "kyoto");
    eventually("tokyo's removal recorded", SOON, || {
        daemon.stderr.text().lines().any(|line| {
            line.contains("the store records its seals")
                && line.contains(r#""seals":"osaka, kyoto""#)
        })
    });
    restart_with(
        &mut daemon,
        dir.path(),
        &with_emergency(std::slice::from_ref(&k)),
    );
    let unsealed = wait_unsealed(&daemon);
    assert_eq!(unsealed["auto_unseal"]["seal"], "kyoto");
    assert_eq!(unsealed["auto_unseal"]["attempts"], 1);
    read_back(&daemon);

    // The shamir block removed: the active node retires the emergency
    // seal. With it back and "kyoto" down, the old keys open nothing.
    restart_with(
        &mut daemon,
        dir.path(),
        &multiseal(std::slice::from_ref(&k)),
    );
    wait_unsealed(&daemon);
    eventually("the emergency seal retired", SOON, || {
        daemon
            .stderr
            .text()
            .contains("the emergency seal is retired")
    });
    kyoto.proxy.fault(None, Fault::Drop);
    restart_with(
        &mut daemon,
        dir.path(),
        &with_emergency(std::slice::from_ref(&k)),
    );
    wait_failed_attempt(&daemon);
    unseal_emergency(&daemon, &emergency[0])
        .code(1)
        .error_says("not set up for this store");
    let seal = seal_named(&status(&daemon), "emergency").clone();
    assert_eq!(seal["holds_keys"], false, "{seal}");
    assert_eq!(seal["shares"].as_u64().unwrap_or(0), 0, "{seal}");
    kyoto.proxy.clear_fault();
    assert!(daemon.stop().success());
}
