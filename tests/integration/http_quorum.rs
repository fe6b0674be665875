//! Vault's HTTP API for the keyring and the quorum operations, driven by
//! the `bao` CLI 2.6.2 (`operator key-status`, `rotate`, `rekey` with
//! verification, `generate-root` with an OTP) and compared with OpenBao.

use serde_json::{Value, json};

use crate::support::daemon::{Daemon, config, tempdir};
use crate::support::vault::{OpenBao, bao, request, shape};

/// A Shamir daemon initialized over HTTP with `shares`/`threshold` and
/// unsealed: the daemon, its keys (hex) and root token.
fn opened(dir: &std::path::Path, shares: u32, threshold: u32) -> (Daemon, Vec<String>, String) {
    opened_with(dir, shares, threshold, false)
}

/// As [`opened`], with an audit file at `dir/audit.log` when `audited`.
fn opened_with(
    dir: &std::path::Path,
    shares: u32,
    threshold: u32,
    audited: bool,
) -> (Daemon, Vec<String>, String) {
    let extra = if audited {
        format!(
            "audit \"file\" {{\n  path = \"{}\"\n}}\n",
            dir.join("audit.log").display()
        )
    } else {
        String::new()
    };
    let daemon = Daemon::start(dir, &config(dir, &extra));
    let init = request(
        daemon.addr.as_str(),
        "PUT",
        "sys/init",
        None,
        Some(&json!({"secret_shares": shares, "secret_threshold": threshold})),
    );
    assert_eq!(init.status, 200, "{:?}", init.body);
    let keys: Vec<String> = strings(&init.body["keys"]);
    for key in &keys[..threshold as usize] {
        request(
            daemon.addr.as_str(),
            "PUT",
            "sys/unseal",
            None,
            Some(&json!({ "key": key })),
        );
    }
    let token = init.body["root_token"].as_str().unwrap().to_string();
    (daemon, keys, token)
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

fn ok(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "bao failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

#[test]
fn key_status_and_rotate_through_bao_as_openbao_answers() {
    let dir = tempdir();
    let (daemon, _keys, token) = opened(dir.path(), 1, 1);
    let addr = daemon.addr.as_str();
    let before = ok(&bao(
        addr,
        Some(&token),
        dir.path(),
        &["operator", "key-status", "-format=json"],
    ));
    assert_eq!(before["term"], 1);
    let rotated = bao(addr, Some(&token), dir.path(), &["operator", "rotate"]);
    ok(&rotated);
    let after = ok(&bao(
        addr,
        Some(&token),
        dir.path(),
        &["operator", "key-status", "-format=json"],
    ));
    assert_eq!(after["term"], 2);
    // Without a token: 403, as OpenBao.
    assert_eq!(
        request(addr, "GET", "sys/key-status", None, None).status,
        403
    );

    let peer = OpenBao::start();
    let ours = request(addr, "GET", "sys/key-status", Some(&token), None);
    let theirs = request(
        peer.addr.as_str(),
        "GET",
        "sys/key-status",
        Some(&peer.token),
        None,
    );
    assert_eq!(ours.status, theirs.status);
    assert_eq!(
        shape(&ours.body, &["request_id"]),
        shape(&theirs.body, &["request_id"])
    );
    // OpenBao 2.6's authenticated paths: the same shapes.
    for path in ["sys/rotate/root/init", "sys/generate-root-token/attempt"] {
        let a = request(addr, "GET", path, Some(&token), None);
        let b = request(peer.addr.as_str(), "GET", path, Some(&peer.token), None);
        assert_eq!(a.status, b.status, "{path}");
        assert_eq!(
            shape(&a.body, &["request_id"]),
            shape(&b.body, &["request_id"]),
            "{path}"
        );
    }
    for path in ["sys/rotate", "sys/rotate/keyring"] {
        let a = request(addr, "POST", path, Some(&token), None);
        let b = request(peer.addr.as_str(), "POST", path, Some(&peer.token), None);
        assert_eq!((a.status, b.status), (204, 204), "{path}: {:?}", a.body);
    }
}

#[test]
fn a_rekey_with_verification_commits_once_the_new_keys_are_typed_back() {
    let dir = tempdir();
    let (mut daemon, keys, token) = opened_with(dir.path(), 3, 2, true);
    let addr = daemon.addr.clone();
    let home = dir.path();
    let started = ok(&bao(
        &addr,
        Some(&token),
        home,
        &[
            "operator",
            "rekey",
            "-init",
            "-key-shares=2",
            "-key-threshold=2",
            "-verify",
            "-format=json",
        ],
    ));
    assert_eq!(started["started"], true);
    assert_eq!(started["verification_required"], true);
    let nonce = started["nonce"].as_str().unwrap().to_string();
    let first = ok(&bao(
        &addr,
        Some(&token),
        home,
        &[
            "operator",
            "rekey",
            "-format=json",
            &format!("-nonce={nonce}"),
            &keys[0],
        ],
    ));
    assert_eq!(first["progress"], 1);
    let done = ok(&bao(
        &addr,
        Some(&token),
        home,
        &[
            "operator",
            "rekey",
            "-format=json",
            &format!("-nonce={nonce}"),
            &keys[1],
        ],
    ));
    assert_eq!(done["complete"], true, "{done}");
    let new_keys = strings(&done["keys"]);
    assert_eq!(new_keys.len(), 2);
    let first_verification = done["verification_nonce"].as_str().unwrap().to_string();
    // Not in force before their verification: the audit line of the last
    // key says so.
    let audit = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
    let committed: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["operation"] == "sys.RekeyUpdate" && l["type"] == "response")
        .map(|l| l["data"]["committed"].clone())
        .collect();
    assert_eq!(committed, vec![json!(false), json!(false)]);
    // One new key typed back, then the verification restarted
    // (`-verify -cancel` sends Vault's DELETE of sys/rekey/verify): its
    // progress is dropped and it takes a new nonce; the new keys stay.
    let verify = |nonce: &str, key: &str| {
        bao(
            &addr,
            Some(&token),
            home,
            &[
                "operator",
                "rekey",
                "-verify",
                "-format=json",
                &format!("-nonce={nonce}"),
                key,
            ],
        )
    };
    assert_eq!(
        ok(&verify(&first_verification, &new_keys[0]))["progress"],
        1
    );
    let restarted = bao(
        &addr,
        Some(&token),
        home,
        &["operator", "rekey", "-verify", "-cancel"],
    );
    ok(&restarted);
    let status = ok(&bao(
        &addr,
        Some(&token),
        home,
        &["operator", "rekey", "-verify", "-status", "-format=json"],
    ));
    assert_eq!(
        (status["started"].clone(), status["progress"].clone()),
        (json!(true), json!(0)),
        "{status}"
    );
    let verification = status["nonce"].as_str().unwrap().to_string();
    assert_ne!(verification, first_verification);
    let stale = verify(&first_verification, &new_keys[0]);
    assert_eq!(stale.status.code(), Some(2), "the old nonce is refused");
    assert!(String::from_utf8_lossy(&stale.stderr).contains("Code: 400"));
    // The restart is audited under its own operation, by a sudo caller.
    let audit = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
    let restarts: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["operation"] == "sys.RekeyVerifyRestart")
        .map(|l| l["type"].clone())
        .collect();
    assert_eq!(restarts, vec![json!("request"), json!("response")]);
    for key in &new_keys {
        ok(&verify(&verification, key));
    }
    // In force now: after a seal, the new keys unseal and the old do not.
    assert_eq!(
        request(addr.as_str(), "PUT", "sys/seal", Some(&token), None).status,
        204
    );
    let refused = request(
        addr.as_str(),
        "PUT",
        "sys/unseal",
        None,
        Some(&json!({"key": keys[0]})),
    );
    assert_eq!(refused.status, 400, "{:?}", refused.body);
    for key in &new_keys {
        request(
            addr.as_str(),
            "PUT",
            "sys/unseal",
            None,
            Some(&json!({ "key": key })),
        );
    }
    let status = request(addr.as_str(), "GET", "sys/seal-status", None, None);
    assert_eq!(status.body["sealed"], false);
    assert_eq!(status.body["n"], 2);
    daemon.stop();
}

/// One side of the comparison: an address, its root token and its key.
struct Peer<'a> {
    addr: &'a str,
    token: &'a str,
    key: &'a str,
}

#[test]
fn a_restarted_rekey_verification_answers_as_openbao_and_the_new_keys_still_commit() {
    let dir = tempdir();
    let (mut daemon, keys, token) = opened(dir.path(), 1, 1);
    let openbao = OpenBao::start();
    let ours = Peer {
        addr: daemon.addr.as_str(),
        token: &token,
        key: &keys[0],
    };
    let theirs = Peer {
        addr: openbao.addr.as_str(),
        token: &openbao.token,
        key: &openbao.unseal_key,
    };
    let peers = [&ours, &theirs];
    // The same request to both: the answers, ours first.
    let both = |method: &str, path: &str, token: bool, body: Option<&Value>| {
        peers.map(|p| request(p.addr, method, path, token.then_some(p.token), body))
    };
    let same = |answers: &[crate::support::vault::Answer; 2], what: &str| {
        assert_eq!(
            answers[0].status, answers[1].status,
            "{what}: {:?} / {:?}",
            answers[0].body, answers[1].body
        );
        assert_eq!(
            shape(&answers[0].body, &["request_id"]),
            shape(&answers[1].body, &["request_id"]),
            "{what}"
        );
    };
    // OpenBao 2.6.2 serves the rekey on sys/rotate/root/… (sys/rekey/… is
    // off by default there). Nothing under way: 400 on both.
    let nothing = both("DELETE", "sys/rotate/root/verify", true, None);
    assert_eq!(nothing[0].status, 400);
    same(&nothing, "restart with nothing under way");
    let init = json!({"secret_shares": 3, "secret_threshold": 2, "require_verification": true});
    let started = both("PUT", "sys/rotate/root/init", true, Some(&init));
    same(&started, "init");
    let nonces = started
        .each_ref()
        .map(|a| a.body["data"]["nonce"].as_str().unwrap().to_string());
    // (Before the new keys are issued OpenBao answers 200 and sets a nonce
    // nothing uses; strongroom refuses: docs/DECISIONS.md.)
    let early = request(
        ours.addr,
        "DELETE",
        "sys/rotate/root/verify",
        Some(ours.token),
        None,
    );
    assert_eq!(early.status, 400, "{:?}", early.body);
    let issued = [0, 1].map(|i| {
        let p = peers[i];
        let body = json!({"key": p.key, "nonce": nonces[i]});
        request(
            p.addr,
            "PUT",
            "sys/rotate/root/update",
            Some(p.token),
            Some(&body),
        )
    });
    same(&issued, "the last current key");
    let new_keys = issued.each_ref().map(|a| strings(&a.body["data"]["keys"]));
    let first = issued.each_ref().map(|a| {
        a.body["data"]["verification_nonce"]
            .as_str()
            .unwrap()
            .to_string()
    });
    let typed = |i: usize, nonce: &str, key: &str| {
        let p = peers[i];
        request(
            p.addr,
            "PUT",
            "sys/rotate/root/verify",
            Some(p.token),
            Some(&json!({"key": key, "nonce": nonce})),
        )
    };
    let one = [0, 1].map(|i| typed(i, &first[i], &new_keys[i][0]));
    same(&one, "one new key");
    assert_eq!(one[0].body["data"]["progress"], 1);

    // A restart needs a token (OpenBao: `delete` on the path; strongroom:
    // `sudo` on sys/rekey, as a cancel).
    same(
        &both("DELETE", "sys/rotate/root/verify", false, None),
        "restart without a token",
    );
    let restarted = both("DELETE", "sys/rotate/root/verify", true, None);
    same(&restarted, "restart");
    for (i, answer) in restarted.iter().enumerate() {
        let data = &answer.body["data"];
        assert_eq!(
            (data["started"].clone(), data["progress"].clone()),
            (json!(true), json!(0)),
            "{data}"
        );
        assert_eq!(
            (data["t"].clone(), data["n"].clone()),
            (json!(2), json!(3)),
            "{data}"
        );
        assert_ne!(data["nonce"].as_str().unwrap(), first[i], "a new nonce");
    }
    let fresh = restarted
        .each_ref()
        .map(|a| a.body["data"]["nonce"].as_str().unwrap().to_string());
    // The status shows it; the rekey keeps its own nonce.
    let status = both("GET", "sys/rotate/root/init", true, None);
    same(&status, "status after the restart");
    for i in 0..2 {
        assert_eq!(
            status[i].body["data"]["verification_nonce"],
            json!(fresh[i])
        );
        assert_eq!(status[i].body["data"]["nonce"], json!(nonces[i]));
    }
    same(
        &both("GET", "sys/rotate/root/verify", true, None),
        "verify status",
    );
    // The old nonce is refused on both; the new keys verify under the new.
    let stale = [0, 1].map(|i| typed(i, &first[i], &new_keys[i][1]));
    assert_eq!(
        (stale[0].status, stale[1].status),
        (400, 400),
        "{:?}",
        stale[0].body
    );
    let again = [0, 1].map(|i| typed(i, &fresh[i], &new_keys[i][0]));
    same(&again, "the first new key again");
    assert_eq!(again[0].body["data"]["progress"], 1);
    let done = [0, 1].map(|i| typed(i, &fresh[i], &new_keys[i][2]));
    same(&done, "the last new key");
    assert_eq!(done[0].body["data"]["complete"], true);
    // Over: nothing to restart; the recovery keys' paths have none either.
    same(
        &both("DELETE", "sys/rotate/root/verify", true, None),
        "restart after the commit",
    );
    same(
        &both("DELETE", "sys/rotate/recovery/verify", true, None),
        "recovery restart",
    );

    // In force: after a seal the new keys unseal strongroom, the old do not.
    let addr = ours.addr;
    assert_eq!(
        request(addr, "PUT", "sys/seal", Some(&token), None).status,
        204
    );
    let old = request(
        addr,
        "PUT",
        "sys/unseal",
        None,
        Some(&json!({"key": keys[0]})),
    );
    assert_eq!(old.status, 400, "{:?}", old.body);
    for key in &new_keys[0][1..] {
        request(
            addr,
            "PUT",
            "sys/unseal",
            None,
            Some(&json!({ "key": key })),
        );
    }
    let sealed = request(addr, "GET", "sys/seal-status", None, None);
    assert_eq!(sealed.body["sealed"], false, "{:?}", sealed.body);
    assert_eq!(sealed.body["n"], 3);
    daemon.stop();
}

#[test]
fn a_rekey_without_verification_is_in_force_when_its_last_key_is_entered() {
    let dir = tempdir();
    let (daemon, keys, token) = opened(dir.path(), 1, 1);
    let addr = daemon.addr.as_str();
    let init = request(
        addr,
        "PUT",
        "sys/rekey/init",
        Some(&token),
        Some(&json!({"secret_shares": 3, "secret_threshold": 2})),
    );
    assert_eq!(init.status, 200, "{:?}", init.body);
    // Status shows the nonce to a sudo token only.
    let anonymous = request(addr, "GET", "sys/rekey/init", None, None);
    assert_eq!(anonymous.body["nonce"], "");
    assert_eq!(anonymous.body["started"], true);
    let nonce = init.body["nonce"].as_str().unwrap();
    let wrong = request(
        addr,
        "PUT",
        "sys/rekey/update",
        None,
        Some(&json!({"key": keys[0], "nonce": "abc"})),
    );
    assert_eq!(wrong.status, 400, "{:?}", wrong.body);
    let done = request(
        addr,
        "PUT",
        "sys/rekey/update",
        None,
        Some(&json!({"key": keys[0], "nonce": nonce})),
    );
    assert_eq!(done.body["complete"], true, "{:?}", done.body);
    let status = request(addr, "GET", "sys/seal-status", None, None);
    assert_eq!(
        (status.body["t"].clone(), status.body["n"].clone()),
        (json!(2), json!(3))
    );
    // Nothing under way any more.
    assert_eq!(
        request(addr, "GET", "sys/rekey/init", Some(&token), None).body["started"],
        false
    );
}

#[test]
fn generate_root_with_an_otp_through_bao_gives_a_working_root_token() {
    let dir = tempdir();
    let (daemon, keys, token) = opened(dir.path(), 3, 2);
    let addr = daemon.addr.as_str();
    let home = dir.path();
    let otp_out = bao(
        addr,
        None,
        home,
        &["operator", "generate-root", "-generate-otp"],
    );
    let otp = String::from_utf8_lossy(&ok_text(&otp_out))
        .trim()
        .to_string();
    assert_eq!(otp.len(), 35, "the OTP is as long as a token: {otp}");
    let started = ok(&bao(
        addr,
        Some(&token),
        home,
        &[
            "operator",
            "generate-root",
            "-init",
            &format!("-otp={otp}"),
            "-format=json",
        ],
    ));
    let nonce = started["nonce"].as_str().unwrap().to_string();
    let mut encoded = String::new();
    for key in &keys[..2] {
        let step = ok(&bao(
            addr,
            Some(&token),
            home,
            &[
                "operator",
                "generate-root",
                "-format=json",
                &format!("-nonce={nonce}"),
                key,
            ],
        ));
        if step["complete"] == true {
            encoded = step["encoded_token"].as_str().unwrap().to_string();
        }
    }
    assert!(!encoded.is_empty());
    let decoded = bao(
        addr,
        None,
        home,
        &[
            "operator",
            "generate-root",
            &format!("-decode={encoded}"),
            &format!("-otp={otp}"),
        ],
    );
    let new_root = String::from_utf8_lossy(&ok_text(&decoded))
        .trim()
        .to_string();
    assert!(new_root.starts_with("sr."), "{new_root}");
    assert_ne!(new_root, token);
    assert_eq!(
        request(addr, "GET", "sys/key-status", Some(&new_root), None).status,
        200
    );
    // The otp must be as long as a token: one sentence saying so.
    let short = request(
        addr,
        "PUT",
        "sys/generate-root/attempt",
        None,
        Some(&json!({"otp": "abc"})),
    );
    assert_eq!(short.status, 400);
    assert!(
        short.body["errors"][0]
            .as_str()
            .unwrap()
            .contains("35 characters")
    );
    // Without an otp the server makes one and answers it once (bao's
    // default `-init`); a cancel must name the attempt's nonce.
    let made = request(
        addr,
        "PUT",
        "sys/generate-root/attempt",
        None,
        Some(&json!({})),
    );
    assert_eq!(made.status, 200, "{:?}", made.body);
    let otp = made.body["otp"].as_str().unwrap();
    assert_eq!(otp.len(), 35);
    assert!(otp.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(
        request(addr, "GET", "sys/generate-root/attempt", None, None).body["otp"],
        ""
    );
    let unnamed = request(addr, "DELETE", "sys/generate-root/attempt", None, None);
    assert_eq!(unnamed.status, 400, "{:?}", unnamed.body);
    assert_eq!(
        request(addr, "GET", "sys/generate-root/attempt", None, None).body["started"],
        true
    );
    let nonce = made.body["nonce"].as_str().unwrap();
    let named = request(
        addr,
        "DELETE",
        &format!("sys/generate-root/attempt?nonce={nonce}"),
        None,
        None,
    );
    assert_eq!(named.status, 204, "{:?}", named.body);
    assert_eq!(
        request(addr, "GET", "sys/generate-root/attempt", None, None).body["started"],
        false
    );
}

fn ok_text(out: &std::process::Output) -> Vec<u8> {
    assert!(
        out.status.success(),
        "bao failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout.clone()
}

#[test]
fn audit_hash_over_http_is_the_cli_s_hash() {
    let dir = tempdir();
    let audit = dir.path().join("audit.log");
    let extra = format!("audit \"file\" {{\n  path = \"{}\"\n}}\n", audit.display());
    let daemon = Daemon::start(dir.path(), &config(dir.path(), &extra));
    let init = request(
        daemon.addr.as_str(),
        "PUT",
        "sys/init",
        None,
        Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
    );
    let key = init.body["keys"][0].as_str().unwrap();
    request(
        daemon.addr.as_str(),
        "PUT",
        "sys/unseal",
        None,
        Some(&json!({ "key": key })),
    );
    let token = init.body["root_token"].as_str().unwrap();
    let hashed = request(
        daemon.addr.as_str(),
        "POST",
        "sys/audit-hash/file",
        Some(token),
        Some(&json!({"input": "hunter2"})),
    );
    assert_eq!(hashed.status, 200, "{:?}", hashed.body);
    let hash = hashed.body["data"]["hash"].as_str().unwrap();
    assert!(hash.starts_with("hmac-sha256:"));
    let mut cli = daemon.cli();
    cli.env("STRONGROOM_TOKEN", token);
    let from_cli = cli.run_stdin(&["audit-hash"], "hunter2");
    assert_eq!(from_cli.stdout.trim(), hash);
    // The input never reaches the audit log in the clear.
    assert!(!std::fs::read_to_string(&audit).unwrap().contains("hunter2"));
}

#[test]
fn bao_inits_an_awskms_store_with_recovery_keys_and_rekeys_them() {
    let kms = crate::support::kms::kms();
    let dir = tempdir();
    let daemon = crate::support::kms::start_daemon(dir.path(), &kms.proxy.endpoint(), "");
    let addr = daemon.addr.as_str();
    let home = dir.path();
    let init = ok(&bao(
        addr,
        None,
        home,
        &[
            "operator",
            "init",
            "-recovery-shares=3",
            "-recovery-threshold=2",
            "-format=json",
        ],
    ));
    assert_eq!(init["unseal_keys_hex"], json!([]), "{init}");
    let recovery = strings(&init["recovery_keys_hex"]);
    assert_eq!(recovery.len(), 3);
    let token = init["root_token"].as_str().unwrap().to_string();
    // Auto-unsealed: `bao status` exits 0 and names the recovery seal.
    crate::support::kms::wait_unsealed(&daemon);
    let status = bao(addr, None, home, &["status"]);
    let shown = String::from_utf8_lossy(&status.stdout).to_string();
    assert_eq!(status.status.code(), Some(0), "{shown}");
    assert!(shown.contains("Recovery Seal Type"), "{shown}");
    // The unseal keys' rekey does not apply: one sentence says which does.
    let barrier = request(
        addr,
        "PUT",
        "sys/rekey/init",
        Some(&token),
        Some(&json!({"secret_shares": 2, "secret_threshold": 2})),
    );
    assert_eq!(barrier.status, 400, "{:?}", barrier.body);
    assert!(
        barrier.body["errors"][0]
            .as_str()
            .unwrap()
            .contains("recovery")
    );
    let started = ok(&bao(
        addr,
        Some(&token),
        home,
        &[
            "operator",
            "rekey",
            "-target=recovery",
            "-init",
            "-key-shares=2",
            "-key-threshold=2",
            "-format=json",
        ],
    ));
    let nonce = started["nonce"].as_str().unwrap().to_string();
    let mut new_keys = Vec::new();
    for key in &recovery[..2] {
        let step = ok(&bao(
            addr,
            Some(&token),
            home,
            &[
                "operator",
                "rekey",
                "-target=recovery",
                "-format=json",
                &format!("-nonce={nonce}"),
                key,
            ],
        ));
        if step["complete"] == true {
            new_keys = strings(&step["keys"]);
        }
    }
    assert_eq!(new_keys.len(), 2);
    let status = request(addr, "GET", "sys/seal-status", None, None);
    assert_eq!(
        (status.body["t"].clone(), status.body["n"].clone()),
        (json!(2), json!(2))
    );
    assert_eq!(status.body["recovery_seal"], true);
}

#[test]
fn a_recovery_key_rekey_s_verification_restarts_on_both_of_its_paths() {
    let kms = crate::support::kms::kms();
    let dir = tempdir();
    let daemon = crate::support::kms::start_daemon(dir.path(), &kms.proxy.endpoint(), "");
    let addr = daemon.addr.as_str();
    let init = request(
        addr,
        "PUT",
        "sys/init",
        None,
        Some(&json!({"recovery_shares": 3, "recovery_threshold": 2})),
    );
    assert_eq!(init.status, 200, "{:?}", init.body);
    let recovery = strings(&init.body["recovery_keys"]);
    let token = init.body["root_token"].as_str().unwrap().to_string();
    crate::support::kms::wait_unsealed(&daemon);
    let started = request(
        addr,
        "PUT",
        "sys/rekey-recovery-key/init",
        Some(&token),
        Some(&json!({"secret_shares": 2, "secret_threshold": 2, "require_verification": true})),
    );
    assert_eq!(started.status, 200, "{:?}", started.body);
    let nonce = started.body["nonce"].as_str().unwrap();
    let mut issued = Value::Null;
    for key in &recovery[..2] {
        issued = request(
            addr,
            "PUT",
            "sys/rekey-recovery-key/update",
            None,
            Some(&json!({"key": key, "nonce": nonce})),
        )
        .body;
    }
    let new_keys = strings(&issued["keys"]);
    let first = issued["verification_nonce"].as_str().unwrap().to_string();
    let typed = |nonce: &str, key: &str| {
        request(
            addr,
            "PUT",
            "sys/rekey-recovery-key/verify",
            None,
            Some(&json!({"key": key, "nonce": nonce})),
        )
    };
    assert_eq!(typed(&first, &new_keys[0]).body["progress"], 1);
    // The unseal keys' path has nothing to restart: a sentence says so.
    let barrier = request(addr, "DELETE", "sys/rekey/verify", Some(&token), None);
    assert_eq!(barrier.status, 400, "{:?}", barrier.body);
    let why = barrier.body["errors"][0].as_str().unwrap();
    assert!(why.contains("recovery keys, not the unseal keys"), "{why}");
    // A restart needs `sudo` on sys/rekey (OpenBao's grant, `delete` on
    // the path, is not strongroom's rekey path).
    let holder = |name: &str, policy: &str| {
        let written = request(
            addr,
            "PUT",
            &format!("sys/policies/acl/{name}"),
            Some(&token),
            Some(&json!({ "policy": policy })),
        );
        assert_eq!(written.status, 204, "{:?}", written.body);
        let created = request(
            addr,
            "POST",
            "auth/token/create",
            Some(&token),
            Some(&json!({ "policies": [name] })),
        );
        created.body["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let openbao_grant = holder(
        "openbao-grant",
        r#"path "sys/rotate/recovery/verify" { capabilities = ["delete"] }"#,
    );
    let sudo = holder(
        "rekey-sudo",
        r#"path "sys/rekey" { capabilities = ["sudo"] }"#,
    );
    let refused = request(
        addr,
        "DELETE",
        "sys/rotate/recovery/verify",
        Some(&openbao_grant),
        None,
    );
    assert_eq!(refused.status, 403, "{:?}", refused.body);
    assert_eq!(typed(&first, &new_keys[0]).status, 400, "entered already");
    // Vault's bare answer on the legacy path, OpenBao's logical one on
    // rotate/recovery: each restart drops the progress and takes a nonce.
    let bare = request(
        addr,
        "DELETE",
        "sys/rekey-recovery-key/verify",
        Some(&sudo),
        None,
    );
    assert_eq!(bare.status, 200, "{:?}", bare.body);
    assert_eq!(bare.body["progress"], 0);
    let second = bare.body["nonce"].as_str().unwrap().to_string();
    assert_ne!(second, first);
    assert_eq!(typed(&second, &new_keys[1]).body["progress"], 1);
    let logical = request(
        addr,
        "DELETE",
        "sys/rotate/recovery/verify",
        Some(&token),
        None,
    );
    assert_eq!(logical.status, 200, "{:?}", logical.body);
    assert_eq!(
        shape(&logical.body["data"], &[]),
        shape(&bare.body, &[]),
        "the same fields"
    );
    assert_eq!(logical.body["data"]["progress"], 0);
    let third = logical.body["data"]["nonce"].as_str().unwrap().to_string();
    assert_ne!(third, second);
    assert_eq!(typed(&second, &new_keys[0]).status, 400);
    assert_eq!(typed(&third, &new_keys[0]).body["progress"], 1);
    assert_eq!(typed(&third, &new_keys[1]).body["complete"], true);
    let status = request(addr, "GET", "sys/seal-status", None, None);
    assert_eq!(
        (status.body["t"].clone(), status.body["n"].clone()),
        (json!(2), json!(2))
    );
}
