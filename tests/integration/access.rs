//! Who may do what, with the real binary: sidecars recognised by their unix
//! uid/gid or their client certificate, tokens with lifetimes, uses and
//! children, and policies matched as Vault matches them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rcgen::{ExtendedKeyUsagePurpose, SanType};
use serde_json::json;

use crate::support::cli::{Cli, Run, create_token, status, write_policy};
use crate::support::daemon::{BIN, Daemon, config, open, tempdir, unsealed};
use crate::support::grpc::{unix_channel, with_token};
use crate::support::kms::SOON;
use crate::support::tls::Ca;
use strongroom::proto::{GetRequest, kv_client::KvClient};

/// Read under `secret/data/app/`, and list that folder.
const APP_POLICY: &str = r#"
path "secret/data/app/*" { capabilities = ["read"] }
path "secret/metadata/app/" { capabilities = ["list"] }
"#;

/// Read under `secret/data/other/`.
const OTHER_POLICY: &str = r#"path "secret/data/other/*" { capabilities = ["read"] }"#;

/// Makes tokens, orphans included.
const TOKENS_POLICY: &str = r#"path "auth/token/create" { capabilities = ["create", "sudo"] }"#;

/// The CLI's line for a refusal by policy.
fn denied(path: &str, capability: &str, whose: &str, policies: &str) -> String {
    format!(
        "error: permission denied: {path} needs the {capability} capability, which {whose} policies ({policies}) do not grant"
    )
}

/// Asserts a run failed with exit 1 and exactly the line `expected`.
#[track_caller]
fn refused(run: Run, expected: &str) {
    let run = run.code(1);
    assert_eq!(run.stderr.trim_end(), expected);
}

/// The `data` of `kv get PATH --format json` through `cli`.
#[track_caller]
fn read(cli: &mut Cli, path: &str) -> serde_json::Value {
    cli.run(&["kv", "get", path, "--format", "json"])
        .ok()
        .json()["data"]["data"]
        .clone()
}

/// Panics unless the tests run as root: running a CLI as another uid needs it.
fn assert_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test runs the CLI as other uids (as a sidecar would), which needs root"
    );
    // uid 1001 must be able to reach the binary.
    let mut dir = Path::new(BIN).parent();
    while let Some(d) = dir {
        let mode = std::fs::metadata(d).unwrap().permissions().mode();
        assert!(
            mode & 0o001 != 0,
            "{} is not traversable by other users (mode {mode:o}); the sidecar CLI could not run",
            d.display()
        );
        dir = d.parent();
    }
}

#[test]
fn a_sidecar_is_identified_by_its_uid_and_gid_on_the_unix_socket() {
    assert_root();
    let dir = tempdir();
    // The socket's directory must be open to the sidecar's uid.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let text = config(dir.path(), "").replace(
        "socket_mode = \"0660\"",
        "socket_mode = \"0666\"\n  identity {\n    uid      = 1001\n    policies = [\"app\"]\n  }\n  identity {\n    gid      = 2002\n    policies = [\"other\"]\n  }",
    );
    let mut daemon = Daemon::start(dir.path(), &text);
    open(&mut daemon);
    write_policy(&mut daemon.cli(), "app", APP_POLICY);
    write_policy(&mut daemon.cli(), "other", OTHER_POLICY);
    daemon
        .cli()
        .run(&["kv", "put", "app/db", "password=s3cret"])
        .ok();
    daemon.cli().run(&["kv", "put", "other/x", "v=1"]).ok();

    let socket = daemon.socket.clone().unwrap();
    let address = format!("unix://{}", socket.display());
    // The CLI as `uid:gid`, on the socket, with `token` if given.
    let sidecar = |uid: u32, gid: u32, token: Option<&str>, args: &[&str]| {
        let mut cli = Cli::new();
        cli.as_user(uid, gid);
        if let Some(token) = token {
            cli.token(token);
        }
        let mut full = vec!["--address", address.as_str()];
        full.extend_from_slice(args);
        cli.run(&full)
    };
    let app = "unix:uid=1001's";

    // uid 1001: what "app" allows, nothing more.
    let got = sidecar(
        1001,
        1001,
        None,
        &["kv", "get", "app/db", "--format", "json"],
    )
    .ok()
    .json();
    assert_eq!(got["data"]["data"]["password"], "s3cret");
    let listed = sidecar(
        1001,
        1001,
        None,
        &["kv", "list", "app/", "--format", "json"],
    )
    .ok()
    .json();
    assert_eq!(listed, json!(["db"]));
    refused(
        sidecar(1001, 1001, None, &["kv", "get", "other/x"]),
        &denied("secret/data/other/x", "read", app, "app"),
    );
    refused(
        sidecar(1001, 1001, None, &["kv", "put", "app/db", "password=mine"]),
        &denied("secret/data/app/db", "create or update", app, "app"),
    );
    refused(
        sidecar(1001, 1001, None, &["kv", "list"]),
        &denied("secret/metadata/", "list", app, "app"),
    );
    // An identity has no token of its own to look up.
    sidecar(1001, 1001, None, &["token", "lookup"])
        .code(1)
        .error_says("this call is about the caller's own token, and none was sent");
    // The refused write changed nothing.
    let meta = daemon
        .cli()
        .run(&["kv", "metadata", "get", "app/db", "--format", "json"])
        .ok()
        .json();
    assert_eq!(meta["current_version"], 1);

    // gid 2002 (another uid): "other"; both blocks matching: both policies.
    assert_eq!(
        sidecar(
            3003,
            2002,
            None,
            &["kv", "get", "other/x", "--format", "json"]
        )
        .ok()
        .json()["data"]["data"]["v"],
        "1"
    );
    refused(
        sidecar(3003, 2002, None, &["kv", "get", "app/db"]),
        &denied("secret/data/app/db", "read", "unix:gid=2002's", "other"),
    );
    sidecar(1001, 2002, None, &["kv", "get", "other/x"]).ok();
    sidecar(1001, 2002, None, &["kv", "get", "app/db"]).ok();
    refused(
        sidecar(1001, 2002, None, &["kv", "get", "elsewhere"]),
        &denied(
            "secret/data/elsewhere",
            "read",
            "unix:uid=1001,unix:gid=2002's",
            "app, other",
        ),
    );

    // No identity matches root (uid 0) or uid 1002: a token is needed.
    for (uid, gid) in [(0, 0), (1002, 1002)] {
        sidecar(uid, gid, None, &["kv", "get", "app/db"])
            .code(1)
            .error_says(
                "this call needs a token: send it as `authorization: Bearer sr.…` (set STRONGROOM_TOKEN or pass --token-file)",
            );
    }
    let code = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut kv = KvClient::new(unix_channel(&socket).await);
        kv.get(GetRequest {
            path: "app/db".into(),
            version: 0,
        })
        .await
        .unwrap_err()
        .code()
    });
    assert_eq!(code, tonic::Code::Unauthenticated);

    // A token takes precedence over the identity, even a weaker one.
    let (other, _) = create_token(&mut daemon.cli(), &["--policy", "other"]);
    sidecar(1001, 1001, Some(&other), &["kv", "get", "other/x"]).ok();
    refused(
        sidecar(1001, 1001, Some(&other), &["kv", "get", "app/db"]),
        &denied("secret/data/app/db", "read", "this token's", "other"),
    );
    let (nothing, _) = create_token(&mut daemon.cli(), &["--policy", "no-such-policy"]);
    refused(
        sidecar(1001, 1001, Some(&nothing), &["kv", "get", "app/db"]),
        &denied(
            "secret/data/app/db",
            "read",
            "this token's",
            "no-such-policy",
        ),
    );
    sidecar(
        1001,
        1001,
        Some("sr.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        &["kv", "get", "app/db"],
    )
    .code(1)
    .error_says("the token is not valid (unknown, expired or revoked)");
}

/// A client certificate with common name `cn` and exactly `sans`.
fn client(ca: &Ca, dir: &Path, file: &str, cn: &str, sans: Vec<SanType>) -> (PathBuf, PathBuf) {
    ca.leaf_with(dir, file, cn, sans, ExtendedKeyUsagePurpose::ClientAuth)
}

fn uri(text: &str) -> SanType {
    SanType::URI(text.try_into().unwrap())
}

#[test]
fn an_mtls_client_is_identified_by_its_certificate_san_or_cn() {
    let dir = tempdir();
    let d = dir.path();
    let ca = Ca::new(d, "ca");
    let (server_cert, server_key) = ca.leaf(d, "server", ExtendedKeyUsagePurpose::ServerAuth);
    let clients = Ca::new(d, "clients");
    let (app_cert, app_key) = client(
        &clients,
        d,
        "app",
        "app-workload",
        vec![uri("spiffe://example.org/app")],
    );
    let (reporter_cert, reporter_key) = client(
        &clients,
        d,
        "reporter",
        "reporter",
        vec![SanType::DnsName("reporter.internal".try_into().unwrap())],
    );
    let (stranger_cert, stranger_key) = client(
        &clients,
        d,
        "stranger",
        "stranger",
        vec![uri("spiffe://example.org/other")],
    );
    let (admin_cert, admin_key) = client(&clients, d, "admin", "admin", vec![]);

    let tls = format!(
        r#"address = "127.0.0.1:0"
  tls_cert_file      = "{}"
  tls_key_file       = "{}"
  tls_client_ca_file = "{}"
  identity {{
    cert_san = "spiffe://example.org/app"
    policies = ["app"]
  }}
  identity {{
    cert_cn  = "reporter"
    policies = ["other"]
  }}"#,
        server_cert.display(),
        server_key.display(),
        clients.pem_path.display()
    );
    let text = config(d, "").replace("address = \"127.0.0.1:0\"", &tls);
    let mut daemon = Daemon::start(d, &text);
    assert!(daemon.addr.starts_with("https://"), "{}", daemon.addr);
    // The operator's CLI: a certificate no identity matches, and the root token.
    for (k, v) in [
        ("STRONGROOM_CACERT", &ca.pem_path),
        ("STRONGROOM_CLIENT_CERT", &admin_cert),
        ("STRONGROOM_CLIENT_KEY", &admin_key),
    ] {
        daemon.env.insert(k.into(), v.display().to_string());
    }
    open(&mut daemon);
    write_policy(&mut daemon.cli(), "app", APP_POLICY);
    write_policy(&mut daemon.cli(), "other", OTHER_POLICY);
    daemon
        .cli()
        .run(&["kv", "put", "app/db", "password=s3cret"])
        .ok();
    daemon.cli().run(&["kv", "put", "other/x", "v=1"]).ok();

    // A client with its certificate by flag, and no token.
    let client = |cert: &Path, key: &Path, args: &[&str]| {
        let mut full = vec![
            "--ca-cert",
            ca.pem_path.to_str().unwrap(),
            "--client-cert",
            cert.to_str().unwrap(),
            "--client-key",
            key.to_str().unwrap(),
        ];
        full.extend_from_slice(args);
        Cli::new().env("STRONGROOM_ADDR", &daemon.addr).run(&full)
    };
    let san = "tls:san=spiffe://example.org/app's";

    let got = client(
        &app_cert,
        &app_key,
        &["kv", "get", "app/db", "--format", "json"],
    )
    .ok()
    .json();
    assert_eq!(got["data"]["data"]["password"], "s3cret");
    assert_eq!(
        client(
            &app_cert,
            &app_key,
            &["kv", "list", "app", "--format", "json"]
        )
        .ok()
        .json(),
        json!(["db"])
    );
    refused(
        client(&app_cert, &app_key, &["kv", "get", "other/x"]),
        &denied("secret/data/other/x", "read", san, "app"),
    );
    refused(
        client(&app_cert, &app_key, &["kv", "put", "app/new", "a=b"]),
        &denied("secret/data/app/new", "create or update", san, "app"),
    );

    // By common name: its DNS SAN is not what the block names.
    let got = client(
        &reporter_cert,
        &reporter_key,
        &["kv", "get", "other/x", "--format", "json"],
    )
    .ok()
    .json();
    assert_eq!(got["data"]["data"]["v"], "1");
    refused(
        client(&reporter_cert, &reporter_key, &["kv", "get", "app/db"]),
        &denied("secret/data/app/db", "read", "tls:cn=reporter's", "other"),
    );

    // A certificate from the same CA with another SAN, or the operator's:
    // verified, but no identity, so a token is needed.
    for (cert, key) in [(&stranger_cert, &stranger_key), (&admin_cert, &admin_key)] {
        client(cert, key, &["kv", "get", "app/db"])
            .code(1)
            .error_says("this call needs a token");
    }

    // A token sent with the app's certificate is what counts.
    let (other, _) = create_token(&mut daemon.cli(), &["--policy", "other"]);
    let mut with_other = Cli::new();
    with_other
        .env("STRONGROOM_ADDR", &daemon.addr)
        .token(&other);
    with_other
        .run(&[
            "--ca-cert",
            ca.pem_path.to_str().unwrap(),
            "--client-cert",
            app_cert.to_str().unwrap(),
            "--client-key",
            app_key.to_str().unwrap(),
            "kv",
            "get",
            "app/db",
        ])
        .code(1)
        .error_says("which this token's policies (other) do not grant");
}

#[test]
fn a_token_stops_working_when_its_ttl_runs_out() {
    let dir = tempdir();
    let (daemon, _) = unsealed(dir.path(), "");
    write_policy(&mut daemon.cli(), "app", APP_POLICY);
    write_policy(&mut daemon.cli(), "tokens", TOKENS_POLICY);
    daemon.cli().run(&["kv", "put", "app/db", "v=1"]).ok();

    let started = Instant::now();
    let (short, auth) = create_token(
        &mut daemon.cli(),
        &["--policy", "app", "--policy", "tokens", "--ttl", "2s"],
    );
    let ttl = auth["ttl"].as_u64().unwrap();
    assert!((1..=2).contains(&ttl), "{auth}");
    assert_eq!(auth["policies"], json!(["app", "tokens"]));
    assert_eq!(auth["renewable"], true);
    assert!(auth["expire_time"].is_string(), "{auth}");
    // Renewed right away by an hour: it outlives the others.
    let (renewed, _) = create_token(&mut daemon.cli(), &["--policy", "app", "--ttl", "2s"]);
    let after = daemon
        .cli()
        .token(&renewed)
        .run(&["token", "renew", "--increment", "1h", "--format", "json"])
        .ok()
        .json();
    assert!(after["ttl"].as_u64().unwrap() >= 3590, "{after}");
    // A child asks for an hour and gets no more than its parent has left.
    let (child, child_auth) = create_token(
        daemon.cli().token(&short),
        &["--policy", "app", "--ttl", "1h"],
    );
    assert!(child_auth["ttl"].as_u64().unwrap() <= 2, "{child_auth}");
    assert_eq!(child_auth["parent_accessor"], auth["accessor"]);
    assert_eq!(child_auth["expire_time"], auth["expire_time"]);

    // Each works until it expires: a refusal now must be an expiry, and
    // can come only once the shortest TTL granted (1 s) has passed, however
    // slow the machine (so this never fails on a timing).
    for token in [&short, &child, &renewed] {
        let run = daemon.cli().token(token).run(&["kv", "get", "app/db"]);
        if run.code != 0 {
            assert!(token != &renewed, "{run:?}");
            assert!(run.stderr.contains("the token expired "), "{run:?}");
            assert!(started.elapsed() >= Duration::from_secs(1), "{run:?}");
        }
    }

    // Then the two short ones stop working (bounded wait), the renewed one not.
    let expired =
        |token: &String| daemon.cli().token(token).run(&["kv", "get", "app/db"]).code != 0;
    strongroom_test_support::eventually("the short tokens to expire", SOON, || {
        expired(&short) && expired(&child)
    });
    for token in [&short, &child] {
        let run = daemon
            .cli()
            .token(token)
            .run(&["kv", "get", "app/db"])
            .code(1)
            .error_says("the token expired ");
        assert!(run.stderr.trim_end().ends_with("seconds ago"), "{run:?}");
    }
    read(daemon.cli().token(&renewed), "app/db");
    let code = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut kv = KvClient::new(crate::support::grpc::channel(&daemon.addr).await);
        let request = GetRequest {
            path: "app/db".into(),
            version: 0,
        };
        kv.get(with_token(request, &short))
            .await
            .unwrap_err()
            .code()
    });
    assert_eq!(code, tonic::Code::Unauthenticated);
}

#[test]
fn revoking_a_token_revokes_its_descendants_but_not_orphans() {
    let dir = tempdir();
    let (daemon, _) = unsealed(dir.path(), "");
    write_policy(&mut daemon.cli(), "app", APP_POLICY);
    write_policy(&mut daemon.cli(), "tokens", TOKENS_POLICY);
    daemon.cli().run(&["kv", "put", "app/db", "v=1"]).ok();
    let root_accessor = daemon
        .cli()
        .run(&["token", "list-accessors", "--format", "json"])
        .ok()
        .json()[0]["accessor"]
        .clone();
    let makers = ["--policy", "app", "--policy", "tokens"];

    let (parent, p) = create_token(&mut daemon.cli(), &makers);
    let (child, c) = create_token(daemon.cli().token(&parent), &makers);
    let (grandchild, g) = create_token(daemon.cli().token(&child), &["--policy", "app"]);
    let (orphan, o) = create_token(
        daemon.cli().token(&parent),
        &["--policy", "app", "--orphan"],
    );
    assert_eq!(p["parent_accessor"], root_accessor);
    assert_eq!(c["parent_accessor"], p["accessor"]);
    assert_eq!(g["parent_accessor"], c["accessor"]);
    assert_eq!(o["parent_accessor"], "");
    assert_eq!(g["policies"], json!(["app"]));
    for token in [&parent, &child, &grandchild, &orphan] {
        read(daemon.cli().token(token), "app/db");
    }

    let out = daemon.cli().run(&["token", "revoke", &parent]).ok();
    assert!(out.stdout.contains("Revoked 3 token(s)"), "{}", out.stdout);
    for token in [&parent, &child, &grandchild] {
        daemon
            .cli()
            .token(token)
            .run(&["kv", "get", "app/db"])
            .code(1)
            .error_says("the token is not valid (unknown, expired or revoked)");
    }
    read(daemon.cli().token(&orphan), "app/db");
    let grandchild_accessor = g["accessor"].as_str().unwrap();
    daemon
        .cli()
        .run(&["token", "lookup", "--accessor", grandchild_accessor])
        .code(1)
        .error_says(&format!("no token has the accessor {grandchild_accessor}"));

    // By accessor: the same, descendants included.
    let (second, s) = create_token(&mut daemon.cli(), &makers);
    let (second_child, _) = create_token(daemon.cli().token(&second), &["--policy", "app"]);
    let accessor = s["accessor"].as_str().unwrap();
    let looked = daemon
        .cli()
        .run(&[
            "token",
            "lookup",
            "--accessor",
            accessor,
            "--format",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(looked["policies"], json!(["app", "tokens"]));
    let out = daemon
        .cli()
        .run(&["token", "revoke-accessor", accessor])
        .ok();
    assert!(out.stdout.contains("(2 token(s)"), "{}", out.stdout);
    for token in [&second, &second_child] {
        daemon
            .cli()
            .token(token)
            .run(&["kv", "get", "app/db"])
            .code(1)
            .error_says("the token is not valid");
    }
    read(daemon.cli().token(&orphan), "app/db");

    // Two uses, then gone; a call refused at the gate spends none.
    let (limited, l) = create_token(&mut daemon.cli(), &["--policy", "app", "--use-limit", "2"]);
    assert_eq!(l["num_uses"], 2);
    for _ in 0..3 {
        daemon
            .cli()
            .token(&limited)
            .run(&["kv", "get", "other/x"])
            .code(1)
            .error_says("permission denied");
    }
    read(daemon.cli().token(&limited), "app/db");
    read(daemon.cli().token(&limited), "app/db");
    daemon
        .cli()
        .token(&limited)
        .run(&["kv", "get", "app/db"])
        .code(1)
        .error_says("the token is not valid (unknown, expired or revoked)");
}

/// Vault's example of precedence, in one policy.
const MIXED_POLICY: &str = r#"
path "secret/data/*" { capabilities = ["read"] }
path "secret/metadata/*" { capabilities = ["list"] }
path "secret/data/app/*" { capabilities = ["deny"] }
path "secret/metadata/app/*" { capabilities = ["deny"] }
path "secret/data/app/public" { capabilities = ["read"] }
path "secret/data/+/shared" { capabilities = ["update"] }
"#;

#[test]
fn the_most_specific_pattern_decides_and_deny_overrides() {
    let dir = tempdir();
    let (daemon, _) = unsealed(dir.path(), "");
    write_policy(&mut daemon.cli(), "mixed", MIXED_POLICY);
    for path in [
        "other/x",
        "app/secret",
        "app/public",
        "app/shared",
        "db/shared",
    ] {
        daemon.cli().run(&["kv", "put", path, "v=1"]).ok();
    }
    let (token, _) = create_token(&mut daemon.cli(), &["--policy", "mixed"]);
    let mixed = || {
        let mut cli = daemon.cli();
        cli.token(&token);
        cli
    };
    let whose = "this token's";

    assert_eq!(read(&mut mixed(), "other/x")["v"], "1");
    mixed().run(&["kv", "list"]).ok();
    refused(
        mixed().run(&["kv", "get", "app/secret"]),
        &denied("secret/data/app/secret", "read", whose, "mixed"),
    );
    refused(
        mixed().run(&["kv", "list", "app/"]),
        &denied("secret/metadata/app/", "list", whose, "mixed"),
    );
    assert_eq!(read(&mut mixed(), "app/public")["v"], "1");
    // secret/data/+/shared beats secret/data/* (no trailing glob), so it may update but not read.
    mixed().run(&["kv", "put", "db/shared", "v=2"]).ok();
    refused(
        mixed().run(&["kv", "get", "db/shared"]),
        &denied("secret/data/db/shared", "read", whose, "mixed"),
    );
    // secret/data/app/* (first wildcard later) beats secret/data/+/shared.
    refused(
        mixed().run(&["kv", "put", "app/shared", "v=2"]),
        &denied("secret/data/app/shared", "create or update", whose, "mixed"),
    );
    refused(
        mixed().run(&["kv", "put", "other/new", "v=1"]),
        &denied("secret/data/other/new", "create or update", whose, "mixed"),
    );
    refused(
        mixed().run(&["kv", "put", "other/x", "v=2"]),
        &denied("secret/data/other/x", "create or update", whose, "mixed"),
    );
    assert_eq!(read(&mut daemon.cli(), "db/shared")["v"], "2");
    assert_eq!(read(&mut daemon.cli(), "app/shared")["v"], "1");

    // The same pattern in several policies: merged; deny in any wins.
    write_policy(
        &mut daemon.cli(),
        "reader",
        r#"path "secret/data/team/*" { capabilities = ["read"] }"#,
    );
    write_policy(
        &mut daemon.cli(),
        "writer",
        r#"path "secret/data/team/*" { capabilities = ["create", "update"] }"#,
    );
    write_policy(
        &mut daemon.cli(),
        "blocker",
        r#"path "secret/data/team/*" { capabilities = ["deny"] }"#,
    );
    let (both, _) = create_token(
        &mut daemon.cli(),
        &["--policy", "writer", "--policy", "reader"],
    );
    daemon
        .cli()
        .token(&both)
        .run(&["kv", "put", "team/a", "v=1"])
        .ok();
    daemon
        .cli()
        .token(&both)
        .run(&["kv", "put", "team/a", "v=2"])
        .ok();
    assert_eq!(read(daemon.cli().token(&both), "team/a")["v"], "2");
    let (reader, _) = create_token(&mut daemon.cli(), &["--policy", "reader"]);
    refused(
        daemon
            .cli()
            .token(&reader)
            .run(&["kv", "put", "team/a", "v=3"]),
        &denied("secret/data/team/a", "create or update", whose, "reader"),
    );
    let (blocked, _) = create_token(
        &mut daemon.cli(),
        &[
            "--policy", "reader", "--policy", "writer", "--policy", "blocker",
        ],
    );
    refused(
        daemon.cli().token(&blocked).run(&["kv", "get", "team/a"]),
        &denied(
            "secret/data/team/a",
            "read",
            whose,
            "blocker, reader, writer",
        ),
    );

    // A deleted policy no longer grants anything to tokens that name it.
    daemon.cli().run(&["policy", "delete", "writer"]).ok();
    refused(
        daemon
            .cli()
            .token(&both)
            .run(&["kv", "put", "team/a", "v=3"]),
        &denied(
            "secret/data/team/a",
            "create or update",
            whose,
            "reader, writer",
        ),
    );
    read(daemon.cli().token(&both), "team/a");
    let names = daemon
        .cli()
        .run(&["policy", "list", "--format", "json"])
        .ok()
        .json();
    assert_eq!(names, json!(["blocker", "mixed", "reader", "root"]));
    let text = daemon.cli().run(&["policy", "read", "mixed"]).ok().stdout;
    assert_eq!(text, MIXED_POLICY);
    daemon
        .cli()
        .run(&["policy", "read", "writer"])
        .code(1)
        .error_says("no policy is named \"writer\"");
}

#[test]
fn bad_policies_tokens_and_identities_are_refused() {
    let dir = tempdir();
    let (daemon, _) = unsealed(dir.path(), "");

    // Policy documents and names.
    let bad = "path \"secret/data/*\" {\n  capabilities = [\"read\"]\n}\npath \"secret/data/x\" {\n  capabilities = [\"reed\"]\n}\n";
    daemon
        .cli()
        .run_stdin(&["policy", "write", "bad", "-"], bad)
        .code(1)
        .error_says("policy \"bad\" line 5: unknown capability \"reed\"");
    // strongroom's own capabilities of before are refused, naming Vault's.
    daemon
        .cli()
        .run_stdin(
            &["policy", "write", "old", "-"],
            r#"path "transit/encrypt/k" { capabilities = ["encrypt"] }"#,
        )
        .code(1)
        .error_says("capability \"encrypt\" is strongroom's old name; policies use Vault's paths and capabilities now: update on transit/encrypt/<name>");
    daemon
        .cli()
        .run_stdin(
            &["policy", "write", "App", "-"],
            r#"path "secret/data/*" { capabilities = ["read"] }"#,
        )
        .code(1)
        .error_says("policy name \"App\" is not valid");
    daemon
        .cli()
        .run_stdin(
            &["policy", "write", "root", "-"],
            r#"path "secret/data/*" { capabilities = ["read"] }"#,
        )
        .code(1)
        .error_says("the root policy is built in and cannot be changed");
    daemon
        .cli()
        .run(&["policy", "delete", "root"])
        .code(1)
        .error_says("the root policy is built in and cannot be deleted");
    daemon
        .cli()
        .run(&["policy", "write", "x", "/nonexistent/x.hcl"])
        .code(64)
        .error_says("cannot read the policy file /nonexistent/x.hcl");
    let names = daemon
        .cli()
        .run(&["policy", "list", "--format", "json"])
        .ok()
        .json();
    assert_eq!(names, json!(["root"]), "nothing was written");

    // Tokens: only the creator's policies, orphans need sudo, ttl at most 768h.
    write_policy(&mut daemon.cli(), "app", APP_POLICY);
    write_policy(
        &mut daemon.cli(),
        "maker",
        r#"path "auth/token/create" { capabilities = ["create"] }"#,
    );
    let (maker, _) = create_token(&mut daemon.cli(), &["--policy", "maker", "--policy", "app"]);
    for lacking in ["admin", "root"] {
        daemon
            .cli()
            .token(&maker)
            .run(&["token", "create", "--policy", lacking])
            .code(1)
            .error_says(&format!(
                "permission denied: a token may only be given policies its creator has, and the creator lacks \"{lacking}\""
            ));
    }
    refused(
        daemon
            .cli()
            .token(&maker)
            .run(&["token", "create", "--policy", "app", "--orphan"]),
        &denied("auth/token/create", "sudo", "this token's", "app, maker"),
    );
    let (_, made) = create_token(daemon.cli().token(&maker), &["--policy", "app"]);
    assert_eq!(made["policies"], json!(["app"]));
    daemon
        .cli()
        .run(&["token", "create", "--ttl", "769h"])
        .code(1)
        .error_says("longer than the maximum");

    // Everything but sudo is not enough to touch the seal or the keys.
    write_policy(
        &mut daemon.cli(),
        "everything",
        r#"path "*" { capabilities = ["create", "read", "update", "delete", "list"] }"#,
    );
    let (everything, _) = create_token(&mut daemon.cli(), &["--policy", "everything"]);
    let cli = || {
        let mut cli = daemon.cli();
        cli.token(&everything);
        cli
    };
    let snapshot = dir.path().join("s.snap");
    for (args, path) in [
        (vec!["seal"], "sys/seal"),
        (vec!["rotate"], "sys/rotate"),
        (
            vec!["snapshot", "save", snapshot.to_str().unwrap()],
            "sys/snapshot",
        ),
        (vec!["rekey", "--init"], "sys/rekey"),
        (vec!["token", "list-accessors"], "auth/token/accessors"),
    ] {
        refused(
            cli().run(&args),
            &denied(path, "sudo", "this token's", "everything"),
        );
    }
    cli().run(&["kv", "put", "app/db", "v=1"]).ok();
    // Destroying versions is `update` on secret/destroy/, as in Vault.
    cli()
        .run(&["kv", "destroy", "--versions", "1", "app/db"])
        .ok();
    cli().run(&["key-status"]).ok();
    assert!(!snapshot.exists());
    assert_eq!(status(&daemon)["sealed"], false);

    // An identity may not be given root: a config error, at --check and at start.
    let other = tempdir();
    let text = config(other.path(), "").replace(
        "socket_mode = \"0660\"",
        "socket_mode = \"0660\"\n  identity {\n    uid      = 1001\n    policies = [\"app\", \"root\"]\n  }",
    );
    let path = other.path().join("root-identity.hcl");
    std::fs::write(&path, &text).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["server", "--config", path.to_str().unwrap(), "--check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("an identity may not be given the root policy"),
        "{stderr}"
    );
    let mut started = Daemon::spawn(&path, &[]);
    let exit = started
        .wait_exit(Duration::from_secs(10))
        .expect("the daemon started on a config that gives an identity root");
    assert_eq!(exit.code(), Some(64));
    assert!(
        started
            .stderr
            .text()
            .contains("an identity may not be given the root policy"),
        "{}",
        started.stderr.text()
    );
}

#[test]
fn renewing_never_brings_back_a_spent_or_revoked_token() {
    let dir = tempdir();
    let (daemon, _) = unsealed(dir.path(), "");
    write_policy(
        &mut daemon.cli(),
        "app",
        r#"path "secret/data/app/*" { capabilities = ["read"] }"#,
    );
    daemon.cli().run(&["kv", "put", "app/db", "v=1"]).ok();

    // Two uses: the renew is one, a read the other; then it is gone, and
    // the renew did not write back the entry it read before spending.
    let (two, _) = create_token(&mut daemon.cli(), &["--policy", "app", "--use-limit", "2"]);
    let renewed = daemon
        .cli()
        .token(&two)
        .run(&["token", "renew", "--format", "json"])
        .ok()
        .json();
    assert_eq!(renewed["num_uses"], 1, "{renewed}");
    daemon.cli().token(&two).run(&["kv", "get", "app/db"]).ok();
    refused(
        daemon.cli().token(&two).run(&["kv", "get", "app/db"]),
        "error: the token is not valid (unknown, expired or revoked)",
    );

    // One use, spent by the renew itself: the token is revoked, not renewed.
    let (one, _) = create_token(&mut daemon.cli(), &["--policy", "app", "--use-limit", "1"]);
    refused(
        daemon.cli().token(&one).run(&["token", "renew"]),
        "error: the token was revoked (or used up) before it could be renewed",
    );
    refused(
        daemon.cli().token(&one).run(&["kv", "get", "app/db"]),
        "error: the token is not valid (unknown, expired or revoked)",
    );

    // A child that renews itself is still revoked with its parent.
    write_policy(&mut daemon.cli(), "maker", TOKENS_POLICY);
    let (parent, _) = create_token(&mut daemon.cli(), &["--policy", "app", "--policy", "maker"]);
    let (child, _) = create_token(daemon.cli().token(&parent), &["--policy", "app"]);
    daemon.cli().token(&child).run(&["token", "renew"]).ok();
    daemon.cli().run(&["token", "revoke", &parent]).ok();
    refused(
        daemon.cli().token(&child).run(&["kv", "get", "app/db"]),
        "error: the token is not valid (unknown, expired or revoked)",
    );
}
