//! The awskms seal in tests: moto with a key behind an alias, the proxy in
//! front of it, the seal block that names them, and init with recovery keys;
//! with several seals, the emergency seal's block and break-glass steps.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use strongroom_test_support::eventually;
use strongroom_test_support::kms::{KmsProxy, Moto, key_id};

use super::cli::{Init, Run, init, status};
use super::daemon::{Daemon, config};

pub const ALIAS: &str = "alias/strongroom-unseal";
/// The seal block's static secret key: it must never reach a log.
pub const SECRET_KEY: &str = "sr-test-aws-secret-key-4711";
/// Generous bound for state changes that normally take milliseconds.
pub const SOON: Duration = Duration::from_secs(10);

/// moto with one key behind [`ALIAS`], and the proxy in front of it.
pub struct Kms {
    pub moto: Moto,
    pub proxy: KmsProxy,
    pub key: String,
}

/// Starts moto with a key behind [`ALIAS`], and the proxy.
pub fn kms() -> Kms {
    let moto = Moto::start();
    let key = moto.create_key();
    moto.alias(ALIAS, &key);
    let proxy = KmsProxy::start(&moto.addr);
    Kms { moto, proxy, key }
}

/// A `seal "awskms"` block for the key behind [`ALIAS`] through `endpoint`;
/// `extra` goes into it.
pub fn seal_block(endpoint: &str, extra: &str) -> String {
    format!(
        r#"
seal "awskms" {{
  region     = "us-east-1"
  kms_key_id = "{ALIAS}"
  endpoint   = "{endpoint}"
  access_key = "AKIDSTRONGROOMTEST"
  secret_key = "{SECRET_KEY}"
  {extra}
}}
"#
    )
}

/// A seal block of several (`enable_multiseal`): [`seal_block`] named
/// `name`, tried at `priority`.
pub fn named_seal_block(name: &str, priority: u32, endpoint: &str, extra: &str) -> String {
    seal_block(
        endpoint,
        &format!("name     = \"{name}\"\n  priority = {priority}\n  {extra}"),
    )
}

/// The seals "tokyo" (priority 1, through `tokyo`) and "osaka" (2, through
/// `osaka`) with `enable_multiseal = true`.
pub fn two_seals(tokyo: &str, osaka: &str) -> String {
    format!(
        "enable_multiseal = true\n{}{}",
        named_seal_block("tokyo", 1, tokyo, ""),
        named_seal_block("osaka", 2, osaka, "")
    )
}

/// Starts a daemon sealed by the key behind [`ALIAS`]; `extra` goes into the seal block.
pub fn start_daemon(dir: &Path, endpoint: &str, extra: &str) -> Daemon {
    Daemon::start(dir, &config(dir, &seal_block(endpoint, extra)))
}

/// `strongroom init` with 5/3 recovery keys on an awskms daemon.
pub fn init_recovery(daemon: &Daemon) -> Init {
    let init = init(
        daemon,
        &["--recovery-shares", "5", "--recovery-threshold", "3"],
    );
    assert_eq!(init.json["unseal_keys_hex"], json!([]));
    assert_eq!(
        (
            &init.json["recovery_keys_shares"],
            &init.json["recovery_keys_threshold"]
        ),
        (&json!(5), &json!(3))
    );
    init
}

/// Waits (bounded) until the daemon is unsealed; returns its status.
pub fn wait_unsealed(daemon: &Daemon) -> Value {
    let mut last = Value::Null;
    eventually("unsealed", SOON, || {
        last = status(daemon);
        last["sealed"] == false
    });
    last
}

/// Disables the key in moto (DescribeKey says so) and at the proxy
/// (Encrypt and Decrypt fail as on AWS).
pub fn disable_key(kms: &Kms) {
    kms.moto
        .call("DisableKey", json!({"KeyId": key_id(&kms.key)}));
    kms.proxy.disable(&kms.key);
}

/// Schedules the deletion of `kms`'s key: Encrypt and Decrypt fail as on
/// AWS with KMSInvalidStateException, for good.
pub fn delete_key(kms: &Kms) {
    kms.moto.call(
        "ScheduleKeyDeletion",
        json!({"KeyId": key_id(&kms.key), "PendingWindowInDays": 7}),
    );
    kms.proxy.pending_deletion(&kms.key);
}

/// Enables the key again, in moto and at the proxy.
pub fn enable_key(kms: &Kms) {
    kms.moto
        .call("EnableKey", json!({"KeyId": key_id(&kms.key)}));
    kms.proxy.enable(&kms.key);
}

/// A seal block of `kms` named `name`; `extra` goes into it.
pub fn named_seal(name: &str, priority: u32, kms: &Kms, extra: &str) -> String {
    named_seal_block(name, priority, &kms.proxy.endpoint(), extra)
}

/// `seals` (blocks) with `enable_multiseal = true`.
pub fn multiseal(seals: &[String]) -> String {
    format!("enable_multiseal = true\n{}", seals.concat())
}

/// Stops the daemon, writes its config with `seals` in it, starts it again.
pub fn restart_with(daemon: &mut Daemon, dir: &Path, seals: &str) {
    daemon.stop();
    std::fs::write(&daemon.config_path, config(dir, seals)).unwrap();
    daemon.start_again();
}

/// The entry of the seal `name` in a status.
pub fn seal_named<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["seals"]
        .as_array()
        .and_then(|seals| seals.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no seal {name} in {status}"))
}

/// Waits (bounded) until `seal` is reported fully wrapped (or not).
pub fn wait_wrapped(daemon: &Daemon, seal: &str, wrapped: bool) -> Value {
    let mut last = Value::Null;
    eventually("the seal's wrapped state", SOON, || {
        last = status(daemon);
        seal_named(&last, seal)["fully_wrapped"] == wrapped
    });
    last
}

/// The emergency Shamir seal's block (several seals), named "emergency".
pub const EMERGENCY_SEAL: &str = "\nseal \"shamir\" {\n  name = \"emergency\"\n}\n";

/// Waits (bounded) until an auto-unseal attempt has failed; the status.
pub fn wait_failed_attempt(daemon: &Daemon) -> Value {
    let mut last = Value::Null;
    eventually("a failed auto-unseal attempt", SOON, || {
        last = status(daemon);
        !last["auto_unseal"]["last_error"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
    });
    last
}

/// `strongroom unseal --seal emergency KEY --format json`: one emergency
/// key entered (the answer is checked by the caller). A new auto-unseal
/// attempt under way does not hide the last one's failure, so no retry.
pub fn unseal_emergency(daemon: &Daemon, key: &str) -> Run {
    daemon
        .cli()
        .run(&["unseal", "--seal", "emergency", key, "--format", "json"])
}

/// `strongroom init` with 3 recovery keys and 3 emergency keys, 2 of each
/// needed (several seals with an emergency seal).
pub fn init_with_emergency_keys(daemon: &Daemon) -> Init {
    init(
        daemon,
        &[
            "--recovery-shares",
            "3",
            "--recovery-threshold",
            "2",
            "--emergency-shares",
            "3",
            "--emergency-threshold",
            "2",
        ],
    )
}
