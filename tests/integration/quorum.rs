//! Quorum operations with the real binary and its CLI, as operators run
//! them: rekey (with and without verification), root key rotation, and
//! generate-root with revocation of the old root token by its accessor.

use crate::support::cli::{status, strings, unseal};
use crate::support::daemon::{tempdir, unsealed};
use crate::support::quorum::{enter, fresh_otp, start, start_as};

#[test]
fn rekey_then_restart_with_only_the_new_keys() {
    let dir = tempdir();
    let (mut daemon, init) = unsealed(dir.path(), "");
    daemon
        .cli()
        .run(&["kv", "put", "app/db", "password=kept"])
        .ok();

    daemon
        .cli()
        .token("")
        .run(&["rekey", "--init"])
        .code(1)
        .error_says("this call needs a token");
    daemon
        .cli()
        .run(&["rekey", "--nonce", "x"])
        .code(1)
        .error_says("no rekey is under way");

    let (nonce, started) = start(
        &daemon,
        "rekey",
        &["--key-shares", "4", "--key-threshold", "3"],
    );
    assert_eq!(
        (&started["n"], &started["t"], &started["required"]),
        (&4.into(), &3.into(), &2.into())
    );
    daemon
        .cli()
        .run(&["rekey", "--init"])
        .code(1)
        .error_says("a rekey is already under way");
    // Status shows the nonce only to a root token.
    let public = daemon
        .cli()
        .token("")
        .run(&["rekey", "--status", "--format", "json"])
        .ok()
        .json();
    assert_eq!(
        (&public["started"], &public["nonce"]),
        (&true.into(), &"".into())
    );

    // Bad input changes nothing.
    daemon
        .cli()
        .run(&["rekey", "--nonce", "not-the-nonce", &init.keys_hex[0]])
        .code(1)
        .error_says("the nonce does not match the rekey under way");
    daemon
        .cli()
        .run(&["rekey", "--nonce", &nonce, &hex::encode([3u8; 33])])
        .code(1)
        .error_says("this unseal key was never issued for this store");
    daemon
        .cli()
        .run(&["rekey", "--nonce", &nonce, "zz"])
        .code(1)
        .error_says("the unseal key is neither hex nor base64");
    let one = enter(&daemon, "rekey", &nonce, &[&init.keys_hex[0]]);
    assert_eq!(one["progress"], 1);
    daemon
        .cli()
        .run(&["rekey", "--nonce", &nonce, &init.keys_b64[0]])
        .code(1)
        .error_says("this key was already entered for the rekey under way; progress is unchanged");
    // The last key comes from stdin, as from a holder's terminal.
    let done = daemon
        .cli()
        .run_stdin(
            &["rekey", "--nonce", &nonce, "--format", "json"],
            &init.keys_b64[2],
        )
        .ok()
        .json();
    assert_eq!(done["complete"], true);
    assert_eq!(done["verification_required"], false);
    let new = strings(&done["keys"]);
    assert_eq!(new.len(), 4);
    assert_eq!(status(&daemon)["n"], 4);

    daemon.restart();
    let refused = daemon.cli().run(&["unseal", &init.keys_hex[0]]);
    refused.code(1).error_says("never issued");
    unseal(&daemon, &[&new[3], &new[0], &new[2]]);
    let out = daemon
        .cli()
        .run(&["kv", "get", "app/db", "--format", "json"])
        .ok();
    assert_eq!(out.json()["data"]["data"]["password"], "kept");
    let log = daemon.stderr.text();
    assert!(
        log.contains("quorum operation started") && log.contains("rekey complete"),
        "start and end are logged"
    );
}

#[test]
fn a_verified_rekey_survives_a_mistyped_verification() {
    let dir = tempdir();
    let (mut daemon, init) = unsealed(dir.path(), "");
    let (nonce, _) = start(&daemon, "rekey", &["--verify"]);
    let done = enter(
        &daemon,
        "rekey",
        &nonce,
        &[&init.keys_hex[1], &init.keys_hex[2]],
    );
    assert_eq!(done["verification_required"], true);
    let verification = done["verification_nonce"].as_str().unwrap().to_string();
    let new = strings(&done["keys"]);

    // Until verified, the old keys are in force.
    let mut typo = hex::decode(&new[0]).unwrap();
    typo[12] ^= 0x40;
    daemon
        .cli()
        .run(&[
            "rekey",
            "--verify",
            "--nonce",
            &verification,
            &hex::encode(&typo),
        ])
        .code(1)
        .error_says("not one of the new keys the rekey issued");
    daemon
        .cli()
        .run(&[
            "rekey",
            "--verify",
            "--nonce",
            &verification,
            &init.keys_hex[0],
        ])
        .code(1)
        .error_says("one of the current keys");
    let progress = daemon
        .cli()
        .run(&[
            "rekey",
            "--verify",
            "--nonce",
            &verification,
            &new[1],
            "--format",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(progress["verification_progress"], 1);
    daemon.restart();
    // A restart before verification: the rekey is gone, the old keys work.
    unseal(&daemon, &[&init.keys_hex[0], &init.keys_hex[2]]);
    assert_eq!(
        daemon
            .cli()
            .run(&["rekey", "--status", "--format", "json"])
            .ok()
            .json()["started"],
        false
    );

    let (nonce, _) = start(&daemon, "rekey", &["--verify"]);
    let done = enter(
        &daemon,
        "rekey",
        &nonce,
        &[&init.keys_hex[0], &init.keys_hex[1]],
    );
    let verification = done["verification_nonce"].as_str().unwrap().to_string();
    let new = strings(&done["keys"]);
    for key in [&new[2], &new[0]] {
        daemon
            .cli()
            .run(&["rekey", "--verify", "--nonce", &verification, key])
            .ok();
    }
    daemon.restart();
    daemon
        .cli()
        .run(&["unseal", &init.keys_hex[0]])
        .code(1)
        .error_says("never issued");
    unseal(&daemon, &[&new[1], &new[2]]);
}

#[test]
fn rekey_verify_cancel_restarts_the_verification_under_a_new_nonce() {
    let dir = tempdir();
    let (mut daemon, init) = unsealed(dir.path(), "");
    let restart = ["rekey", "--verify", "--cancel", "--format", "json"];
    daemon
        .cli()
        .run(&restart)
        .code(1)
        .error_says("no rekey is under way");
    let (nonce, _) = start(&daemon, "rekey", &["--verify"]);
    daemon
        .cli()
        .run(&restart)
        .code(1)
        .error_says("no verification to restart");
    let done = enter(
        &daemon,
        "rekey",
        &nonce,
        &[&init.keys_hex[0], &init.keys_hex[1]],
    );
    let first = done["verification_nonce"].as_str().unwrap().to_string();
    let new = strings(&done["keys"]);
    let typed = |nonce: &str, key: &str| {
        daemon.cli().run(&[
            "rekey", "--verify", "--nonce", nonce, key, "--format", "json",
        ])
    };
    assert_eq!(
        typed(&first, &new[0]).ok().json()["verification_progress"],
        1
    );

    // Needs a token (sudo on sys/rekey); names neither a nonce nor a key;
    // a bare --cancel still needs the rekey's nonce.
    daemon
        .cli()
        .token("")
        .run(&restart)
        .code(1)
        .error_says("this call needs a token");
    daemon
        .cli()
        .run(&["rekey", "--verify", "--cancel", "--nonce", &first])
        .code(64)
        .error_says("takes no nonce or key");
    daemon
        .cli()
        .run(&["rekey", "--cancel"])
        .code(64)
        .error_says("--cancel needs the operation's nonce");

    // Vault's spelling, through the operator group.
    let restarted = daemon
        .cli()
        .run(&["operator", "rekey", "-verify", "-cancel", "-format=json"])
        .ok()
        .json();
    assert_eq!(restarted["verification_progress"], 0, "{restarted}");
    assert_eq!(restarted["verification_required"], true);
    assert_eq!(
        restarted["nonce"],
        nonce.as_str(),
        "the rekey's own nonce stays"
    );
    let fresh = restarted["verification_nonce"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(fresh, first);
    typed(&first, &new[1])
        .code(1)
        .error_says("verification nonce does not match");
    typed(&fresh, &new[0]).ok();
    let verified = typed(&fresh, &new[1]).ok().json();
    assert_eq!(verified["complete"], true, "{verified}");
    daemon.restart();
    daemon
        .cli()
        .run(&["unseal", &init.keys_hex[0]])
        .code(1)
        .error_says("never issued");
    unseal(&daemon, &[&new[1], &new[2]]);
}

#[test]
fn rotate_root_keeps_the_keys_and_the_data() {
    let dir = tempdir();
    let (mut daemon, init) = unsealed(dir.path(), "");
    daemon.cli().run(&["kv", "put", "app/a", "v=1"]).ok();
    let (nonce, _) = start(&daemon, "rotate-root", &[]);
    let done = enter(
        &daemon,
        "rotate-root",
        &nonce,
        &[&init.keys_hex[0], &init.keys_hex[1]],
    );
    assert_eq!(done["complete"], true);
    daemon.stderr.wait_for("the rotation's log line", |l| {
        l.contains("root key rotated")
    });
    daemon.cli().run(&["kv", "put", "app/b", "v=2"]).ok();
    daemon.restart();
    unseal(&daemon, &[&init.keys_hex[2], &init.keys_hex[0]]);
    for (path, v) in [("app/a", "1"), ("app/b", "2")] {
        let out = daemon
            .cli()
            .run(&["kv", "get", path, "--format", "json"])
            .ok();
        assert_eq!(out.json()["data"]["data"]["v"], v);
    }
    daemon
        .cli()
        .run(&["rotate-root", "--cancel", "--nonce", "whatever"])
        .code(1)
        .error_says("no rotate-root is under way");
}

#[test]
fn generate_root_then_revoke_the_old_root_token_by_its_accessor() {
    let dir = tempdir();
    let (daemon, init) = unsealed(dir.path(), "");
    let old_accessor = daemon
        .cli()
        .run(&["token", "list-accessors", "--format", "json"])
        .ok()
        .json()[0]["accessor"]
        .as_str()
        .unwrap()
        .to_string();

    // Nobody needs a token for generate-root.
    let anonymous = || {
        let mut cli = daemon.cli();
        cli.token("");
        cli
    };
    anonymous()
        .run(&["generate-root", "--init", "--otp", "dG9vIHNob3J0"])
        .code(1)
        .error_says("the one-time pad is 9 bytes long, but it must be 35 (as long as a token)");
    let otp = fresh_otp(&daemon);
    // Anyone may start one; an attempt that has seen no key is replaced
    // by the next start (so nobody without a key can block it).
    let (replaced, _) = start_as(&mut anonymous(), "generate-root", &["--otp", &otp]);
    // A start with one of the store's keys claims the attempt (the key
    // is not counted)...
    let (nonce, started) = start_as(
        &mut anonymous(),
        "generate-root",
        &["--otp", &otp, &init.keys_hex[0]],
    );
    assert_eq!(started["progress"], 0, "{started}");
    anonymous()
        .run(&["generate-root", "--nonce", &replaced, &init.keys_hex[2]])
        .code(1)
        .error_says("the nonce does not match");
    // ...so a start without a key no longer replaces it.
    anonymous()
        .run(&["generate-root", "--init", "--otp", &otp])
        .code(1)
        .error_says("a generate-root that has seen one of this store's keys is already under way");
    anonymous()
        .run(&["rekey", "--init", &init.keys_hex[0]])
        .code(64)
        .error_says("takes no key");
    anonymous()
        .run(&["generate-root", "--nonce", &nonce, &init.keys_hex[2]])
        .ok();
    let done = anonymous()
        .run(&[
            "generate-root",
            "--nonce",
            &nonce,
            &init.keys_hex[1],
            "--format",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(done["complete"], true);
    let encoded = done["encoded_token"].as_str().unwrap();
    let new_accessor = done["accessor"].as_str().unwrap();
    assert_ne!(new_accessor, old_accessor);

    // The pad from stdin (a hidden prompt on a terminal), out of shell history.
    let decoded = daemon
        .cli()
        .run_stdin(&["generate-root", "--decode", encoded, "--otp", "-"], &otp)
        .ok()
        .stdout;
    let new_token = decoded.trim().to_string();
    assert!(
        new_token.starts_with("sr.") && new_token.len() == 35,
        "{new_token}"
    );
    assert_ne!(new_token, init.root_token);

    // The new token revokes the old one by its accessor.
    daemon
        .cli()
        .token(&new_token)
        .run(&["token", "revoke-accessor", &old_accessor])
        .ok();
    daemon
        .cli()
        .token(&init.root_token)
        .run(&["kv", "list"])
        .code(1)
        .error_says("the token is not valid (unknown, expired or revoked)");
    daemon.cli().token(&new_token).run(&["kv", "list"]).ok();
    let accessors = daemon
        .cli()
        .token(&new_token)
        .run(&["token", "list-accessors", "--format", "json"])
        .ok()
        .json();
    assert_eq!(accessors.as_array().unwrap().len(), 1);
    assert_eq!(accessors[0]["accessor"], new_accessor);
    let log = daemon.stderr.text() + &daemon.stdout.text();
    assert!(
        !log.contains(&new_token[3..]),
        "the new token reached the log"
    );
    assert!(!log.contains(&otp), "the one-time pad reached the log");
}

#[test]
fn generate_root_can_be_cancelled_with_its_nonce_only() {
    let dir = tempdir();
    let (daemon, _) = unsealed(dir.path(), "");
    let otp = fresh_otp(&daemon);
    let (nonce, _) = start_as(daemon.cli().token(""), "generate-root", &["--otp", &otp]);
    daemon
        .cli()
        .token("")
        .run(&["generate-root", "--cancel", "--nonce", "wrong"])
        .code(1)
        .error_says("the nonce does not match the generate-root under way");
    daemon
        .cli()
        .token("")
        .run(&["generate-root", "--cancel", "--nonce", &nonce])
        .ok();
    let after = daemon
        .cli()
        .run(&["generate-root", "--status", "--format", "json"])
        .ok()
        .json();
    assert_eq!(after["started"], false);
    // Sealed: no quorum operation starts.
    daemon.cli().run(&["seal"]).ok();
    daemon
        .cli()
        .token("")
        .run(&["generate-root", "--init", "--otp", &otp])
        .code(1)
        .error_says("strongroom is sealed");
    assert_eq!(status(&daemon)["sealed"], true);
}
