//! Several KMS seals at once (`enable_multiseal`), against two moto
//! servers (two "regions"), each behind its own fault-injecting proxy:
//! one KMS request per restart, fail-over in priority order, per-seal
//! health, rewrap after a seal missed a write, seals added and removed one
//! per restart, and snapshots (with HA: `multiseal_ha.rs`).

use std::path::Path;

use serde_json::{Value, json};

use crate::support::cli::{Init, status};
use crate::support::daemon::{Daemon, config, tempdir};
use crate::support::kms::{
    ALIAS, Kms, SOON, disable_key, enable_key, init_recovery, kms, multiseal, named_seal,
    restart_with, seal_block, seal_named, two_seals, wait_unsealed, wait_wrapped,
};
use crate::support::quorum::{enter, start as start_operation};
use strongroom_test_support::eventually;
use strongroom_test_support::kms::Fault;

/// A daemon sealed by "tokyo" (priority 1) and "osaka" (priority 2),
/// initialized; `tokyo_extra` goes into tokyo's block.
fn started(dir: &Path, tokyo: &Kms, osaka: &Kms, tokyo_extra: &str) -> (Daemon, Init) {
    let seals = multiseal(&[
        named_seal("tokyo", 1, tokyo, tokyo_extra),
        named_seal("osaka", 2, osaka, ""),
    ]);
    let daemon = Daemon::start(dir, &config(dir, &seals));
    let init = init_recovery(&daemon);
    (daemon, init)
}

#[test]
fn a_restart_costs_one_request_and_a_failed_primary_one_more() {
    let (tokyo, osaka) = (kms(), kms());
    let dir = tempdir();
    let (mut daemon, init) = started(dir.path(), &tokyo, &osaka, "");
    let mut init_calls = tokyo.proxy.requests();
    init_calls.sort();
    // Each envelope is opened again before anything is written.
    assert_eq!(init_calls, ["Decrypt", "Decrypt", "Encrypt", "Encrypt"]);
    let after = status(&daemon);
    assert_eq!(after["type"], "multiseal");
    assert_eq!(after["sealed"], false);
    for name in ["tokyo", "osaka"] {
        let seal = seal_named(&after, name);
        assert_eq!(
            (&seal["healthy"], &seal["fully_wrapped"]),
            (&json!(true), &json!(true)),
            "{seal}"
        );
    }
    daemon
        .cli()
        .token(&init.root_token)
        .run(&["kv", "put", "app/db", "password=hunter2"])
        .ok();

    for _ in 0..3 {
        tokyo.proxy.clear_requests();
        osaka.proxy.clear_requests();
        daemon.restart();
        let unsealed = wait_unsealed(&daemon);
        assert_eq!(unsealed["auto_unseal"]["seal"], "tokyo");
        assert_eq!(tokyo.proxy.requests(), ["Decrypt"]);
        assert!(
            osaka.proxy.requests().is_empty(),
            "{:?}",
            osaka.proxy.requests()
        );
    }

    // The primary drops the connection: one Decrypt there (no retries
    // inside the client), one at the second seal.
    tokyo.proxy.fault(None, Fault::Drop);
    tokyo.proxy.clear_requests();
    osaka.proxy.clear_requests();
    daemon.restart();
    let unsealed = wait_unsealed(&daemon);
    assert_eq!(unsealed["auto_unseal"]["seal"], "osaka");
    assert_eq!(unsealed["auto_unseal"]["attempts"], 1);
    assert_eq!(tokyo.proxy.requests(), ["Decrypt"]);
    assert_eq!(osaka.proxy.requests(), ["Decrypt"]);
    let primary = seal_named(&unsealed, "tokyo");
    assert_eq!(primary["healthy"], false);
    assert!(
        primary["unhealthy_since"].as_str().unwrap().ends_with('Z'),
        "{primary}"
    );
    assert!(
        primary["last_error"].as_str().unwrap().contains("Decrypt"),
        "{primary}"
    );
    // Vault's sys/seal-backend-status, without a token.
    let answer =
        crate::support::vault::request(&daemon.addr, "GET", "sys/seal-backend-status", None, None);
    assert_eq!(answer.status, 200, "{}", answer.body);
    let backends = &answer.body;
    assert_eq!(backends["healthy"], false, "{backends}");
    assert!(backends["unhealthy_since"].as_str().unwrap().ends_with('Z'));
    assert_eq!(backends["fully_wrapped"], true);
    assert_eq!(backends["backends"][0]["name"], "tokyo");
    assert_eq!(backends["backends"][0]["healthy"], false);
    assert_eq!(backends["backends"][1]["name"], "osaka");
    assert_eq!(backends["backends"][1]["healthy"], true);
    assert!(backends["backends"][1].get("unhealthy_since").is_none());
    let out = daemon
        .cli()
        .token(&init.root_token)
        .run(&["kv", "get", "app/db", "--format", "json"])
        .ok()
        .json();
    assert_eq!(out["data"]["data"]["password"], "hunter2");

    // Both down: sealed, retrying, each seal's error in the sentence.
    osaka.proxy.fault(None, Fault::Drop);
    daemon.restart();
    let mut last = Value::Null;
    eventually("a failed attempt", SOON, || {
        last = status(&daemon);
        !last["auto_unseal"]["last_error"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
    });
    assert_eq!(last["sealed"], true);
    let error = last["auto_unseal"]["last_error"].as_str().unwrap();
    assert!(
        error.starts_with("no seal could open the key: seal \"tokyo\" said: ")
            && error.contains("; seal \"osaka\" said: "),
        "{error}"
    );
    osaka.proxy.clear_fault();
    let unsealed = wait_unsealed(&daemon);
    assert_eq!(unsealed["auto_unseal"]["seal"], "osaka");
}

#[test]
fn a_seal_whose_key_is_disabled_is_unhealthy_and_rewrapped_once_enabled() {
    let (tokyo, osaka) = (kms(), kms());
    let dir = tempdir();
    let (mut daemon, init) = started(dir.path(), &tokyo, &osaka, "health_check_interval = \"1s\"");
    daemon
        .env
        .insert("STRONGROOM_TOKEN".into(), init.root_token.clone());

    disable_key(&tokyo);
    let mut last = Value::Null;
    eventually("the health check sees the disabled key", SOON, || {
        last = status(&daemon);
        seal_named(&last, "tokyo")["healthy"] == false
    });
    let error = seal_named(&last, "tokyo")["last_error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("is disabled"), "{error}");

    // A root key rotation while "tokyo" cannot wrap: "osaka" alone holds
    // the new root key; "tokyo" is not fully wrapped.
    let (nonce, _) = start_operation(&daemon, "rotate-root", &[]);
    let done = enter(
        &daemon,
        "rotate-root",
        &nonce,
        &[
            &init.recovery_hex[0],
            &init.recovery_hex[1],
            &init.recovery_hex[2],
        ],
    );
    assert_eq!(done["complete"], true);
    assert_eq!(
        seal_named(&status(&daemon), "tokyo")["fully_wrapped"],
        false
    );

    enable_key(&tokyo);
    let healed = wait_wrapped(&daemon, "tokyo", true);
    assert_eq!(seal_named(&healed, "tokyo")["healthy"], true);

    // "tokyo" holds the new root key: it unseals alone.
    osaka.proxy.fault(None, Fault::Drop);
    daemon.restart();
    assert_eq!(wait_unsealed(&daemon)["auto_unseal"]["seal"], "tokyo");
}

#[test]
fn seals_are_added_and_removed_one_per_restart() {
    let (tokyo, osaka) = (kms(), kms());
    let dir = tempdir();
    // A store of one seal, as before enable_multiseal.
    let mut daemon = Daemon::start(
        dir.path(),
        &config(dir.path(), &seal_block(&tokyo.proxy.endpoint(), "")),
    );
    let init = init_recovery(&daemon);
    daemon
        .cli()
        .token(&init.root_token)
        .run(&["kv", "put", "app/db", "password=hunter2"])
        .ok();

    // Two seals added at once: refused, sealed, nothing written.
    let nagoya = osaka.moto.create_key();
    let third = named_seal("nagoya", 3, &osaka, "").replace(ALIAS, &nagoya);
    restart_with(
        &mut daemon,
        dir.path(),
        &multiseal(&[
            named_seal("tokyo", 1, &tokyo, ""),
            named_seal("osaka", 2, &osaka, ""),
            third,
        ]),
    );
    let mut last = Value::Null;
    eventually("the refusal", SOON, || {
        last = status(&daemon);
        last["auto_unseal"]["state"] == "failed"
    });
    assert!(
        last["auto_unseal"]["last_error"]
            .as_str()
            .unwrap()
            .contains("change one seal per restart"),
        "{last}"
    );
    assert_eq!(last["sealed"], true);

    // One added: the one seal's store moves to several.
    let both = two_seals(&tokyo.proxy.endpoint(), &osaka.proxy.endpoint());
    restart_with(&mut daemon, dir.path(), &both);
    assert_eq!(wait_unsealed(&daemon)["auto_unseal"]["seal"], "tokyo");
    let moved = wait_wrapped(&daemon, "osaka", true);
    assert_eq!(moved["type"], "multiseal");
    assert_eq!(seal_named(&moved, "tokyo")["fully_wrapped"], true);

    // "tokyo" leaves: marked disabled, its envelopes go once "osaka" is verified.
    restart_with(
        &mut daemon,
        dir.path(),
        &multiseal(&[
            named_seal("tokyo", 1, &tokyo, "disabled = true"),
            named_seal("osaka", 2, &osaka, ""),
        ]),
    );
    assert_eq!(wait_unsealed(&daemon)["auto_unseal"]["seal"], "tokyo");
    wait_wrapped(&daemon, "tokyo", false);

    // Then its block goes: "osaka" alone unseals, and "tokyo" is not asked.
    restart_with(
        &mut daemon,
        dir.path(),
        &multiseal(&[named_seal("osaka", 2, &osaka, "")]),
    );
    tokyo.proxy.clear_requests();
    assert_eq!(wait_unsealed(&daemon)["auto_unseal"]["seal"], "osaka");
    assert!(tokyo.proxy.requests().is_empty());
    let out = daemon
        .cli()
        .token(&init.root_token)
        .run(&["kv", "get", "app/db", "--format", "json"])
        .ok()
        .json();
    assert_eq!(out["data"]["data"]["password"], "hunter2");
}

/// Snapshots under several seals: one restores into a daemon of the same
/// seals and unseals itself; one of a single seal restores there too and
/// is rewrapped for both seals; a one-seal daemon refuses a snapshot of
/// several.
#[test]
fn snapshots_restore_under_several_seals() {
    let (tokyo, osaka) = (kms(), kms());
    let both = two_seals(&tokyo.proxy.endpoint(), &osaka.proxy.endpoint());
    let dir = tempdir();
    let single = Daemon::start(
        dir.path(),
        &config(dir.path(), &seal_block(&tokyo.proxy.endpoint(), "")),
    );
    let init = init_recovery(&single);
    // A Cli runs one command.
    let cli = |daemon: &Daemon| {
        let mut cli = daemon.cli();
        cli.token(&init.root_token);
        cli
    };
    cli(&single)
        .run(&["kv", "put", "app/db", "password=hunter2"])
        .ok();
    let one_file = dir.path().join("one.snap");
    let one_file = one_file.to_str().unwrap();
    cli(&single).run(&["snapshot", "save", one_file]).ok();

    let multi_dir = tempdir();
    let multi = Daemon::start(multi_dir.path(), &config(multi_dir.path(), &both));
    multi.cli().run(&["snapshot", "restore", one_file]).ok();
    assert_eq!(wait_unsealed(&multi)["auto_unseal"]["seal"], "tokyo");
    let rewrapped = wait_wrapped(&multi, "osaka", true);
    assert_eq!(rewrapped["type"], "multiseal");
    let read = |daemon: &Daemon| {
        cli(daemon)
            .run(&["kv", "get", "app/db", "--format", "json"])
            .ok()
            .json()["data"]["data"]["password"]
            .clone()
    };
    assert_eq!(read(&multi), "hunter2");

    // A snapshot of the store of several seals, restored over it: sealed,
    // then unsealed by the first seal again.
    let multi_file = multi_dir.path().join("multi.snap");
    let multi_file = multi_file.to_str().unwrap();
    cli(&multi).run(&["snapshot", "save", multi_file]).ok();
    cli(&multi)
        .run(&["kv", "put", "app/db", "password=changed"])
        .ok();
    cli(&multi).run(&["snapshot", "restore", multi_file]).ok();
    wait_unsealed(&multi);
    assert_eq!(read(&multi), "hunter2");

    // A daemon of one seal cannot unseal it: refused, nothing restored.
    cli(&single)
        .run(&["snapshot", "restore", multi_file])
        .code(1)
        .error_says(
            "the snapshot was taken under the multiseal seal, but this daemon uses the awskms seal",
        );
}
