//! The emergency Shamir seal beside two KMS seals (two moto "regions",
//! each behind its own fault-injecting proxy): init prints its keys, they
//! are refused while a KMS seal works, they unseal the store once neither
//! region answers, `rekey --target emergency` replaces them, and no form
//! of any of them reaches the log or the audit log. What follows a
//! break-glass unseal is in `multiseal_break_glass.rs`.

use serde_json::json;

use crate::support::cli::{status, strings};
use crate::support::daemon::{Daemon, config, tempdir};
use crate::support::kms::{
    EMERGENCY_SEAL, init_with_emergency_keys, kms, two_seals, unseal_emergency,
    wait_failed_attempt, wait_unsealed,
};
use crate::support::quorum::{enter, forms, start};
use crate::support::vault::request;
use strongroom_test_support::kms::Fault;

/// What the daemon logs when emergency keys unsealed it.
const UNSEALED_LINE: &str = "unsealed with a quorum of emergency shares";

/// How many times the daemon's log says `text`.
fn said(daemon: &Daemon, text: &str) -> usize {
    daemon.stderr.text().matches(text).count()
}

#[test]
fn emergency_keys_unseal_when_no_region_answers_and_rekey_replaces_them() {
    let (tokyo, osaka) = (kms(), kms());
    let dir = tempdir();
    let audit_log = dir.path().join("audit.log");
    let extra = format!(
        "{}{EMERGENCY_SEAL}log_level = \"trace\"\naudit \"file\" {{ path = \"{}\" }}\n",
        two_seals(&tokyo.proxy.endpoint(), &osaka.proxy.endpoint()),
        audit_log.display()
    );
    let mut daemon = Daemon::start(dir.path(), &config(dir.path(), &extra));
    let made = init_with_emergency_keys(&daemon);
    assert_eq!(
        (
            &made.json["emergency_keys_shares"],
            &made.json["emergency_keys_threshold"]
        ),
        (&json!(3), &json!(2))
    );
    let emergency = strings(&made.json["emergency_keys_hex"]);
    let emergency_b64 = strings(&made.json["emergency_keys_b64"]);
    assert_eq!((emergency.len(), emergency_b64.len()), (3, 3));
    assert_ne!(emergency, made.recovery_hex);
    daemon
        .env
        .insert("STRONGROOM_TOKEN".into(), made.root_token.clone());
    let secret_value = "break-glass-value-4711";
    daemon
        .cli()
        .run(&["kv", "put", "app/db", &format!("password={secret_value}")])
        .ok();

    // Unsealed: refused. Sealed by an operator while KMS works: the
    // recovery keys' job.
    unseal_emergency(&daemon, &emergency[0])
        .code(1)
        .error_says("the store is unsealed");
    let http = request(
        daemon.addr.as_str(),
        "PUT",
        "sys/unseal",
        None,
        Some(&json!({"key": emergency[0], "seal": "emergency"})),
    );
    assert_eq!(http.status, 400, "{:?}", http.body);
    assert!(
        http.body["errors"][0]
            .as_str()
            .is_some_and(|e| e.contains("the store is unsealed")),
        "{:?}",
        http.body
    );
    daemon.cli().run(&["seal"]).ok();
    unseal_emergency(&daemon, &emergency[0])
        .code(1)
        .error_says("sealed by an operator");
    daemon.restart();
    wait_unsealed(&daemon);

    // Neither region answers: sealed, retrying; the emergency keys unseal.
    tokyo.proxy.fault(None, Fault::Drop);
    osaka.proxy.fault(None, Fault::Drop);
    daemon.restart();
    let failed = wait_failed_attempt(&daemon);
    assert_eq!(failed["sealed"], true);
    unseal_emergency(&daemon, &made.recovery_hex[0])
        .code(1)
        .error_says("never issued");
    let first = unseal_emergency(&daemon, &emergency[0]).ok().json();
    assert_eq!((&first["progress"], &first["t"]), (&json!(1), &json!(2)));
    daemon
        .cli()
        .run_stdin(&["unseal", "--seal", "emergency"], &emergency_b64[2])
        .ok();
    let unsealed = status(&daemon);
    assert_eq!(unsealed["sealed"], false);
    assert_eq!(unsealed["auto_unseal"]["state"], "unsealed");
    let out = daemon
        .cli()
        .run(&["kv", "get", "app/db", "--format", "json"])
        .ok()
        .json();
    assert_eq!(out["data"]["data"]["password"], secret_value);
    assert_eq!(said(&daemon, UNSEALED_LINE), 1);

    // The regions answer again: a quorum of recovery keys (checked by KMS)
    // authorizes new emergency keys.
    tokyo.proxy.clear_fault();
    osaka.proxy.clear_fault();
    let (nonce, _) = start(
        &daemon,
        "rekey",
        &[
            "--target",
            "emergency",
            "--key-shares",
            "2",
            "--key-threshold",
            "2",
        ],
    );
    let done = enter(
        &daemon,
        "rekey",
        &nonce,
        &[&made.recovery_hex[1], &made.recovery_hex[2]],
    );
    assert_eq!(done["complete"], true, "{done}");
    let renewed = strings(&done["keys"]);
    assert_eq!(renewed.len(), 2);

    // Down again: the old emergency keys are refused, the new ones unseal.
    tokyo.proxy.fault(None, Fault::Drop);
    osaka.proxy.fault(None, Fault::Drop);
    daemon.restart();
    wait_failed_attempt(&daemon);
    unseal_emergency(&daemon, &emergency[1])
        .code(1)
        .error_says("never issued");
    for key in &renewed {
        unseal_emergency(&daemon, key).ok();
    }
    assert_eq!(status(&daemon)["sealed"], false);
    assert_eq!(said(&daemon, UNSEALED_LINE), 2);
    tokyo.proxy.clear_fault();
    osaka.proxy.clear_fault();
    daemon.restart();
    wait_unsealed(&daemon);
    assert!(daemon.stop().success());

    // Other stores on the same KMS keys: the CLI's table prints the
    // emergency keys after the others; Vault's HTTP init answers them too.
    let seals = format!(
        "{}{EMERGENCY_SEAL}",
        two_seals(&tokyo.proxy.endpoint(), &osaka.proxy.endpoint())
    );
    let other = tempdir();
    let mut table = Daemon::start(other.path(), &config(other.path(), &seals));
    let printed = table
        .cli()
        .run(&[
            "init",
            "--recovery-shares",
            "1",
            "--recovery-threshold",
            "1",
            "--emergency-shares",
            "2",
            "--emergency-threshold",
            "2",
        ])
        .ok()
        .stdout;
    for line in ["Recovery Key 1: ", "Emergency Key 1: ", "Emergency Key 2: "] {
        assert_eq!(printed.matches(line).count(), 1, "{line} in:\n{printed}");
    }
    assert!(
        printed.contains("2 key shares and a threshold of 2"),
        "{printed}"
    );
    assert!(table.stop().success());
    let other = tempdir();
    let mut second = Daemon::start(other.path(), &config(other.path(), &seals));
    let http = request(
        second.addr.as_str(),
        "PUT",
        "sys/init",
        None,
        Some(&json!({"recovery_shares": 1, "recovery_threshold": 1,
                     "emergency_shares": 2, "emergency_threshold": 2})),
    );
    assert_eq!(http.status, 200, "{:?}", http.body);
    assert_eq!(
        (
            &http.body["emergency_keys_shares"],
            &http.body["emergency_keys_threshold"]
        ),
        (&json!(2), &json!(2))
    );
    assert_eq!(strings(&http.body["emergency_keys_hex"]).len(), 2);
    assert_eq!(strings(&http.body["emergency_keys_b64"]).len(), 2);
    assert!(second.stop().success());

    // No form of any emergency key (nor recovery key, nor the root token)
    // reached the log or the audit log.
    let log = format!("{}\n{}", daemon.stderr.text(), daemon.stdout.text());
    let audit = std::fs::read_to_string(&audit_log).unwrap();
    assert!(
        audit.contains("sys.Unseal"),
        "the audit log saw the unseals"
    );
    let mut secrets: Vec<(String, String)> = Vec::new();
    for (what, keys) in [
        ("emergency key", &emergency),
        ("new emergency key", &renewed),
        ("recovery key", &made.recovery_hex),
    ] {
        for (i, key) in keys.iter().enumerate() {
            for form in forms(key) {
                secrets.push((format!("{what} {}", i + 1), form));
            }
        }
    }
    secrets.push(("root token".into(), made.root_token.clone()));
    secrets.push(("kv value".into(), secret_value.into()));
    for (what, secret) in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "the log contains the {what}"
        );
        assert!(
            !audit.contains(secret.as_str()),
            "the audit log contains the {what}"
        );
    }
}
