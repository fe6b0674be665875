//! What an attacker with network access tries, first without a token, then
//! with a low-privilege one: large requests that would swell the audit log,
//! the audit log as an HMAC oracle, refusals that tell whether a secret
//! exists, names that disguise themselves.

use std::collections::HashMap;
use std::path::Path;

use strongroom::proto::{
    self, keys_client::KeysClient, kv_client::KvClient, policy_client::PolicyClient,
    sys_client::SysClient, token_client::TokenClient,
};
use tonic::Code;

use crate::support::cli::{create_token, write_policy};
use crate::support::daemon::{Daemon, tempdir, unsealed};
use crate::support::grpc::{channel, with_token};

fn audit_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

fn audited(dir: &Path) -> (Daemon, String, std::path::PathBuf) {
    let log = dir.join("audit.log");
    let (daemon, init) = unsealed(
        dir,
        &format!("audit \"file\" {{ path = \"{}\" }}\n", log.display()),
    );
    (daemon, init.root_token, log)
}

fn put(path: &str, data: HashMap<String, String>) -> proto::PutRequest {
    proto::PutRequest {
        path: path.into(),
        data,
        cas: None,
        data_json: String::new(),
    }
}

fn one_field() -> HashMap<String, String> {
    HashMap::from([("password".to_string(), "hunter2".to_string())])
}

#[test]
fn large_requests_refused_before_authentication_write_bounded_audit_lines() {
    let dir = tempdir();
    let (daemon, root, log) = audited(dir.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut kv = KvClient::new(channel(&daemon.addr).await);
        let before = audit_text(&log).len();

        // A 3.9 MB path without a token: refused, the sentence quotes a
        // bounded prefix, and its two audit lines stay small.
        let long_path = "a".repeat(3_900_000);
        let refused = kv.put(put(&long_path, one_field())).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(
            refused.message().len() < 1024,
            "{}",
            refused.message().len()
        );
        assert!(
            refused.message().contains("longer than 512 bytes"),
            "{}",
            refused.message()
        );
        let grown = audit_text(&log).len() - before;
        assert!(grown < 4096, "two audit lines took {grown} bytes");

        // 200k fields: refused for their number; neither names nor HMACs
        // reach the log.
        let before = audit_text(&log).len();
        let many: HashMap<String, String> = (0..200_000)
            .map(|i| (format!("field{i}"), "v".to_string()))
            .collect();
        let refused = kv.put(put("app/db", many.clone())).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert_eq!(
            refused.message(),
            "the secret has 200000 fields; the limit is 1000"
        );
        // The same with the root token: still refused, nothing written.
        let refused = kv
            .put(with_token(put("app/db", many), &root))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
        let grown = audit_text(&log).len() - before;
        assert!(grown < 4096, "four audit lines took {grown} bytes");
        let missing = kv
            .get(with_token(
                proto::GetRequest {
                    path: "app/db".into(),
                    version: 0,
                },
                &root,
            ))
            .await
            .unwrap_err();
        assert_eq!(missing.code(), Code::NotFound);

        // A long field name is refused by its length, quoted short.
        let long_name = HashMap::from([("n".repeat(100_000), "v".to_string())]);
        let refused = kv
            .put(with_token(put("app/db", long_name), &root))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert!(refused.message().len() < 200, "{}", refused.message());
        assert!(refused.message().contains("longer than 256 bytes"));
    });
    // Every line of the log is still one bounded JSON object.
    for line in audit_text(&log).lines() {
        assert!(line.len() < 4096, "a line of {} bytes", line.len());
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
}

#[test]
fn a_refused_call_leaves_no_hmac_of_its_inputs_in_the_audit_log() {
    let dir = tempdir();
    let (daemon, root, log) = audited(dir.path());
    write_policy(
        &mut daemon.cli(),
        "reader",
        r#"path "secret/data/app/*" { capabilities = ["read"] }"#,
    );
    let (reader, _) = create_token(&mut daemon.cli(), &["--policy", "reader"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut sys = SysClient::new(channel(&daemon.addr).await);
        let mut kv = KvClient::new(channel(&daemon.addr).await);
        let guess = b"correct horse battery staple".to_vec();
        let ask = |input: &[u8]| proto::AuditHashRequest {
            input: input.to_vec(),
        };
        // Without a token, and with a token that may not ask.
        let refused = sys.audit_hash(ask(&guess)).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated);
        let refused = sys
            .audit_hash(with_token(ask(&guess), &reader))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied);
        // A write the token may not make, of a value the attacker guesses.
        let data = HashMap::from([("password".to_string(), "hunter2".to_string())]);
        let refused = kv
            .put(with_token(put("app/db", data), &reader))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied);
        // A revocation of "another token" that is really a guessed password.
        let mut tokens = TokenClient::new(channel(&daemon.addr).await);
        let refused = tokens
            .revoke_token(with_token(
                proto::RevokeTokenRequest {
                    token: "correct horse battery staple".into(),
                },
                &reader,
            ))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied);
        let after_refusals = audit_text(&log);

        // Root may ask: the HMACs the log would hold.
        let mut hash = async |input: &[u8]| {
            sys.audit_hash(with_token(ask(input), &root))
                .await
                .unwrap()
                .into_inner()
                .hash
        };
        let guessed = hash(&guess).await;
        let hunter2 = hash(b"hunter2").await;
        assert!(guessed.starts_with("hmac-sha256:"), "{guessed}");
        assert!(
            !after_refusals.contains(&guessed),
            "the guess's HMAC was logged"
        );
        assert!(
            !after_refusals.contains(&hunter2),
            "the value's HMAC was logged"
        );
        // The refusals are recorded all the same, with their operations.
        let refusals = after_refusals
            .lines()
            .filter(|l| l.contains("\"sys.AuditHash\"") && l.contains("\"response\""))
            .count();
        assert_eq!(refusals, 2, "{after_refusals}");
        assert!(after_refusals.contains("\"token.Revoke\""));
        // An authorized call's input is HMACed, as before.
        assert!(audit_text(&log).contains(&guessed));
    });
}

#[test]
fn a_refused_write_does_not_tell_whether_the_secret_or_policy_exists() {
    let dir = tempdir();
    let (daemon, root, _) = audited(dir.path());
    daemon.cli().run(&["kv", "put", "other/exists", "v=1"]).ok();
    write_policy(
        &mut daemon.cli(),
        "app",
        r#"path "secret/data/app/*" { capabilities = ["read"] }
path "sys/policies/acl/app-*" { capabilities = ["read"] }"#,
    );
    write_policy(
        &mut daemon.cli(),
        "other",
        r#"path "secret/data/x" { capabilities = ["read"] }"#,
    );
    let (token, _) = create_token(&mut daemon.cli(), &["--policy", "app"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut kv = KvClient::new(channel(&daemon.addr).await);
        let mut policies = PolicyClient::new(channel(&daemon.addr).await);
        let existing = kv_refusal(&mut kv, &token, "other/exists").await;
        let missing = kv_refusal(&mut kv, &token, "other/missing").await;
        assert_eq!(existing.0, Code::PermissionDenied);
        assert_eq!(existing, missing);
        assert!(existing.1.contains("create or update"), "{}", existing.1);

        let existing = policy_refusal(&mut policies, &token, "other").await;
        let missing = policy_refusal(&mut policies, &token, "nobody").await;
        assert_eq!(existing.0, Code::PermissionDenied);
        assert_eq!(existing, missing);
        // Root still writes both ways.
        policies
            .put_policy(with_token(policy("nobody"), &root))
            .await
            .unwrap();
        kv.put(with_token(put("other/missing", one_field()), &root))
            .await
            .unwrap();
    });
}

type Channel = tonic::transport::Channel;

/// A put of `path` by `token`: its refusal, with the path taken out.
async fn kv_refusal(kv: &mut KvClient<Channel>, token: &str, path: &str) -> (Code, String) {
    let e = kv
        .put(with_token(put(path, one_field()), token))
        .await
        .unwrap_err();
    (e.code(), e.message().replace(path, "<path>"))
}

fn policy(name: &str) -> proto::PutPolicyRequest {
    proto::PutPolicyRequest {
        name: name.into(),
        policy: r#"path "secret/data/*" { capabilities = ["read"] }"#.into(),
    }
}

/// A write of policy `name` by `token`: its refusal, with the name taken out.
async fn policy_refusal(
    policies: &mut PolicyClient<Channel>,
    token: &str,
    name: &str,
) -> (Code, String) {
    let e = policies
        .put_policy(with_token(policy(name), token))
        .await
        .unwrap_err();
    (e.code(), e.message().replace(name, "<name>"))
}

#[test]
fn paths_and_names_that_disguise_themselves_are_refused() {
    let dir = tempdir();
    let (daemon, root, _) = audited(dir.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut kv = KvClient::new(channel(&daemon.addr).await);
        let mut keys = KeysClient::new(channel(&daemon.addr).await);
        for (path, what) in [
            ("app/\u{202E}bd", "bidirectional"),
            ("app/a\u{2028}b", "separator"),
            ("app/a\u{200B}b", "invisible"),
            ("app/a\nb", "control"),
            ("app/../db", ". or .."),
        ] {
            let refused = kv
                .put(with_token(put(path, one_field()), &root))
                .await
                .unwrap_err();
            assert_eq!(refused.code(), Code::InvalidArgument, "{path:?}");
            assert!(refused.message().contains(what), "{}", refused.message());
        }
        let field = HashMap::from([("pass\u{202E}word".to_string(), "v".to_string())]);
        let refused = kv
            .put(with_token(put("app/db", field), &root))
            .await
            .unwrap_err();
        assert!(
            refused.message().contains("bidirectional"),
            "{}",
            refused.message()
        );
        for name in [".", ".."] {
            let refused = keys
                .create_key(with_token(
                    proto::CreateKeyRequest { name: name.into() },
                    &root,
                ))
                .await
                .unwrap_err();
            assert_eq!(refused.code(), Code::InvalidArgument, "{name}");
            assert!(refused.message().contains("other than . and .."));
        }
        // Non-ASCII that disguises nothing is a path like any other.
        kv.put(with_token(put("app/données", one_field()), &root))
            .await
            .unwrap();
    });
}

#[test]
fn the_init_an_attacker_replaced_is_named_to_its_caller() {
    let dir = tempdir();
    let daemon = Daemon::start(dir.path(), &crate::support::daemon::config(dir.path(), ""));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut sys = SysClient::new(channel(&daemon.addr).await);
        let one = || proto::InitRequest {
            key_shares: Some(1),
            key_threshold: Some(1),
            ..Default::default()
        };
        let confirm = |nonce: &str| proto::InitConfirmRequest {
            nonce: nonce.into(),
        };
        let admin = sys.init(one()).await.unwrap().into_inner();
        let attacker = sys.init(one()).await.unwrap().into_inner();
        let refused = sys
            .init_confirm(confirm(&admin.confirmation_nonce))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition);
        assert!(
            refused
                .message()
                .starts_with("another Init call replaced this one"),
            "{}",
            refused.message()
        );
        sys.init_confirm(confirm(&attacker.confirmation_nonce))
            .await
            .unwrap();
        let refused = sys
            .init_confirm(confirm(&admin.confirmation_nonce))
            .await
            .unwrap_err();
        assert!(
            refused.message().contains("do not use this store"),
            "{}",
            refused.message()
        );
    });
}

#[test]
fn nobody_without_a_key_can_block_or_replace_the_operators_generate_root() {
    let dir = tempdir();
    let (daemon, init) = unsealed(dir.path(), "");
    let pad = || {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode([7u8; strongroom::pad::PAD_LEN])
    };
    let start = |key: &str| proto::GenerateRootInitRequest {
        otp: pad(),
        key: key.into(),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut sys = SysClient::new(channel(&daemon.addr).await);
        // The attacker starts first; the operators' start with a key replaces it.
        sys.generate_root_init(start("")).await.unwrap();
        let ours = sys
            .generate_root_init(start(&init.keys_hex[2]))
            .await
            .unwrap()
            .into_inner();
        // Now neither a start without a key nor one with a wrong key replaces it.
        let refused = sys.generate_root_init(start("")).await.unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition);
        let refused = sys
            .generate_root_init(start(&"ab".repeat(33)))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        // The operators finish theirs.
        let mut done = None;
        for key in &init.keys_hex[..2] {
            done = Some(
                sys.generate_root_update(proto::GenerateRootUpdateRequest {
                    nonce: ours.nonce.clone(),
                    key: key.clone(),
                })
                .await
                .unwrap()
                .into_inner(),
            );
        }
        let done = done.unwrap();
        assert!(done.complete);
        let token = strongroom::pad::remove(&done.encoded_token, &pad()).unwrap();
        assert!(token.expose().starts_with("sr."));

        // A rekey of 0 keys is refused in a sentence; the daemon is unharmed.
        let refused = sys
            .rekey_init(with_token(
                proto::RekeyInitRequest {
                    key_shares: Some(0),
                    ..Default::default()
                },
                &init.root_token,
            ))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        sys.status(proto::StatusRequest {}).await.unwrap();
    });
}

/// A snapshot file taken apart: its header, its entries and its MAC.
struct SnapshotFile {
    header: serde_json::Value,
    entries: std::collections::BTreeMap<String, Vec<u8>>,
    mac: Option<Vec<u8>>,
}

const MAGIC: &[u8] = b"SRSNAP\0\x01";

fn take<'a>(rest: &mut &'a [u8]) -> &'a [u8] {
    let (len, tail) = rest.split_at(4);
    let len = u32::from_be_bytes(len.try_into().unwrap()) as usize;
    let (value, tail) = tail.split_at(len);
    *rest = tail;
    value
}

impl SnapshotFile {
    /// Reads a format 3 file (docs/FORMATS.md).
    fn read(path: &Path) -> Self {
        let bytes = std::fs::read(path).unwrap();
        let body = &bytes[..bytes.len() - 32];
        let (content, mac) = body.split_at(body.len() - 32);
        let mut rest = &content[MAGIC.len()..];
        let header = serde_json::from_slice(take(&mut rest)).unwrap();
        let mut entries = std::collections::BTreeMap::new();
        while !rest.is_empty() {
            let key = String::from_utf8(take(&mut rest).to_vec()).unwrap();
            entries.insert(key, take(&mut rest).to_vec());
        }
        Self {
            header,
            entries,
            mac: Some(mac.to_vec()),
        }
    }

    /// Writes the file back with a fresh checksum (what someone who edits
    /// it can always do).
    fn write(&mut self, path: &Path) {
        use sha2::Digest;
        self.header["entries"] = self.entries.len().into();
        let push = |out: &mut Vec<u8>, bytes: &[u8]| {
            out.extend_from_slice(&u32::try_from(bytes.len()).unwrap().to_be_bytes());
            out.extend_from_slice(bytes);
        };
        let mut out = MAGIC.to_vec();
        push(&mut out, &serde_json::to_vec(&self.header).unwrap());
        for (key, value) in &self.entries {
            push(&mut out, key.as_bytes());
            push(&mut out, value);
        }
        if let Some(mac) = &self.mac {
            out.extend_from_slice(mac);
        }
        let digest = sha2::Sha256::digest(&out);
        out.extend_from_slice(&digest);
        std::fs::write(path, out).unwrap();
    }
}

#[test]
fn a_snapshot_with_spliced_entries_is_refused_before_and_after_a_restore() {
    let dir = tempdir();
    let (daemon, init) = unsealed(dir.path(), "");
    let (revoked, _) = create_token(&mut daemon.cli(), &["--policy", "root"]);
    let before = dir.path().join("before.snap");
    daemon
        .cli()
        .run(&["snapshot", "save", before.to_str().unwrap()])
        .ok();
    daemon.cli().run(&["token", "revoke", &revoked]).ok();
    daemon.cli().run(&["kv", "put", "app/db", "v=after"]).ok();
    let after = dir.path().join("after.snap");
    daemon
        .cli()
        .run(&["snapshot", "save", after.to_str().unwrap()])
        .ok();

    // The revoked token's entries, spliced from the older snapshot.
    let old = SnapshotFile::read(&before);
    let mut spliced = SnapshotFile::read(&after);
    assert_eq!(spliced.header["format"], 3);
    let mut added = 0;
    for (key, value) in old
        .entries
        .iter()
        .filter(|(k, _)| k.starts_with("auth/token/"))
    {
        if spliced.entries.insert(key.clone(), value.clone()).is_none() {
            added += 1;
        }
    }
    assert!(added > 0, "the revoked token left no entries to splice");
    let forged = dir.path().join("forged.snap");
    spliced.write(&forged);
    let forged = forged.to_str().unwrap();

    // Into the running store that made it: refused before anything is written.
    daemon
        .cli()
        .run(&["snapshot", "restore", forged])
        .code(1)
        .error_says("the snapshot's MAC does not match this store's snapshot key");
    assert_eq!(crate::support::cli::status(&daemon)["sealed"], false);
    daemon
        .cli()
        .token(&revoked)
        .run(&["kv", "get", "app/db"])
        .code(1)
        .error_says("not valid");

    // Into another store (disaster recovery): the first unseal refuses it.
    let (_fresh_dir, fresh) = fresh_daemon();
    fresh.cli().run(&["snapshot", "restore", forged]).ok();
    fresh.cli().run(&["unseal", &init.keys_hex[0]]).ok();
    fresh
        .cli()
        .run(&["unseal", &init.keys_hex[1]])
        .code(1)
        .error_says("the restored snapshot does not pass its check (its MAC does not match)");
    assert_eq!(crate::support::cli::status(&fresh)["sealed"], true);

    // The file as taken restores and unseals; the revoked token stays revoked.
    let (_good_dir, good) = fresh_daemon();
    good.cli()
        .run(&["snapshot", "restore", after.to_str().unwrap()])
        .ok();
    crate::support::cli::unseal(&good, &[&init.keys_hex[0], &init.keys_hex[1]]);
    good.cli()
        .token(&revoked)
        .run(&["kv", "get", "app/db"])
        .code(1)
        .error_says("not valid");

    // A file without a MAC (an older format) only when the operator says so.
    let mut unauthenticated = SnapshotFile::read(&after);
    unauthenticated.header["format"] = 2.into();
    unauthenticated.mac = None;
    let old_format = dir.path().join("format2.snap");
    unauthenticated.write(&old_format);
    let old_format = old_format.to_str().unwrap();
    let (_old_dir, old) = fresh_daemon();
    old.cli()
        .run(&["snapshot", "restore", old_format])
        .code(1)
        .error_says("the snapshot has format 2, which has no MAC");
    assert_eq!(crate::support::cli::status(&old)["initialized"], false);
    old.cli()
        .run(&[
            "snapshot",
            "restore",
            old_format,
            "--accept-unauthenticated",
        ])
        .ok();
    crate::support::cli::unseal(&old, &[&init.keys_hex[0], &init.keys_hex[1]]);
}

/// A daemon on a store of its own, not initialized.
fn fresh_daemon() -> (tempfile::TempDir, Daemon) {
    let dir = tempdir();
    let daemon = Daemon::start(dir.path(), &crate::support::daemon::config(dir.path(), ""));
    (dir, daemon)
}

#[test]
fn a_listener_with_allow_init_false_keeps_init_and_restore_off() {
    let dir = tempdir();
    let config = format!(
        r#"
storage "file" {{ path = "{data}" }}
listener "tcp" {{
  address    = "127.0.0.1:0"
  allow_init = false
}}
listener "unix" {{
  path        = "{socket}"
  socket_mode = "0600"
}}
log_format    = "json"
disable_mlock = true
"#,
        data = dir.path().join("data").display(),
        socket = dir.path().join("strongroom.sock").display(),
    );
    let daemon = Daemon::start(dir.path(), &config);
    let refused = daemon
        .cli()
        .run(&["init", "--key-shares", "1", "--key-threshold", "1"])
        .code(1);
    assert!(
        refused.stderr.contains("allow_init = false"),
        "{}",
        refused.stderr
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut sys = SysClient::new(channel(&daemon.addr).await);
        let chunk = proto::SnapshotChunk {
            data: b"anything: refused before it is read".to_vec(),
            ..Default::default()
        };
        let refused = sys
            .snapshot_restore(tokio_stream::iter([chunk]))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    });
    assert_eq!(crate::support::cli::status(&daemon)["initialized"], false);
    // The unix socket takes it.
    let out = daemon
        .cli_unix()
        .run(&[
            "init",
            "--key-shares",
            "1",
            "--key-threshold",
            "1",
            "--format",
            "json",
        ])
        .ok();
    assert!(out.json()["root_token"].is_string());
}
