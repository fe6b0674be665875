//! kv v2 at `secret/` on Vault's HTTP API: every endpoint side by side
//! with OpenBao 2.6.2 (status codes, shapes, Vault's sentences), the `bao`
//! CLI and hvac as clients, JSON values through HTTP, gRPC and the CLI,
//! and the audit log HMACing every leaf of a document.

use std::process::Command;

use serde_json::{Value, json};
use strongroom::proto::{GetRequest, PutRequest, kv_client::KvClient};

use crate::support::cli::{create_token, write_policy};
use crate::support::daemon::{Daemon, config, open, tempdir, unsealed};
use crate::support::grpc::{channel, with_token};
use crate::support::vault::{Answer, OpenBao, Target, bao, raw, request, shape};

/// Sends the same request to strongroom and OpenBao; checks the status
/// codes and shapes agree and returns both answers.
pub(crate) struct Peers<'a> {
    pub(crate) ours: &'a str,
    pub(crate) our_token: &'a str,
    pub(crate) theirs: &'a str,
    pub(crate) their_token: &'a str,
}

impl Peers<'_> {
    pub(crate) fn both(&self, method: &str, path: &str, body: Option<&Value>) -> (Answer, Answer) {
        let a = request(self.ours, method, path, Some(self.our_token), body);
        let b = request(self.theirs, method, path, Some(self.their_token), body);
        self.same(method, path, a, b)
    }

    pub(crate) fn both_raw(&self, method: &str, path: &str, body: &[u8]) -> (Answer, Answer) {
        let full = format!("/v1/{path}");
        let a = raw(self.ours, method, &full, Some(self.our_token), Some(body));
        let b = raw(
            self.theirs,
            method,
            &full,
            Some(self.their_token),
            Some(body),
        );
        self.same(method, path, a, b)
    }

    pub(crate) fn same(&self, method: &str, path: &str, a: Answer, b: Answer) -> (Answer, Answer) {
        assert_eq!(
            a.status, b.status,
            "{method} {path}: ours {:?}, OpenBao's {:?}",
            a.body, b.body
        );
        // Error sentences are strongroom's own; their presence is compared.
        if a.body.get("errors").is_none() {
            assert_eq!(
                shape(&a.body, &[]),
                shape(&b.body, &[]),
                "{method} {path}: ours {:?}, OpenBao's {:?}",
                a.body,
                b.body
            );
        } else {
            assert!(
                b.body.get("errors").is_some(),
                "{method} {path}: {:?}",
                b.body
            );
            let sentences = a.body["errors"].as_array().unwrap();
            assert!(sentences.len() <= 1, "{method} {path}: {:?}", a.body);
            if let Some(s) = sentences.first() {
                let s = s.as_str().unwrap();
                assert!(!s.contains("Error {") && s.len() < 1024, "{s}");
            }
        }
        if a.status != 204 {
            assert_eq!(
                a.headers.get("content-type").map(String::as_str),
                Some("application/json"),
                "{method} {path}"
            );
        }
        (a, b)
    }
}

#[test]
fn kv_v2_answers_as_openbao_does() {
    let dir = tempdir();
    let (daemon, init) = unsealed(dir.path(), "");
    let bao = OpenBao::start();
    let peers = Peers {
        ours: &daemon.addr,
        our_token: &init.root_token,
        theirs: &bao.addr,
        their_token: &bao.token,
    };
    let document = json!({"s": "str", "n": 1, "f": 2.5, "b": true, "z": null,
                          "o": {"deep": [1, "a", null, {"x": false}]}});

    // Missing: 404 with no sentence, alike.
    let (a, _) = peers.both("GET", "secret/data/app/db", None);
    assert_eq!(a.status, 404);
    assert_eq!(a.body, json!({"errors": []}));

    // Writes, cas, and bad bodies.
    let (a, _) = peers.both(
        "PUT",
        "secret/data/app/db",
        Some(&json!({ "data": document })),
    );
    assert_eq!(a.status, 200);
    assert_eq!(a.body["data"]["version"], 1);
    let (a, b) = peers.both(
        "POST",
        "secret/data/app/db",
        Some(&json!({"data": {"v": 2}, "options": {"cas": 5}})),
    );
    assert_eq!(a.status, 400);
    assert_eq!(a.body, b.body, "Vault's cas sentence exactly");
    let (a, _) = peers.both(
        "POST",
        "secret/data/app/db",
        Some(&json!({"data": {"v": 2}, "options": {"cas": 1}})),
    );
    assert_eq!(a.body["data"]["version"], 2);
    let (a, b) = peers.both("PUT", "secret/data/app/db", Some(&json!({})));
    assert_eq!((a.status, &a.body), (400, &b.body), "no data provided");
    let (a, _) = peers.both("PUT", "secret/data/app/db", Some(&json!({"data": "x"})));
    assert_eq!(a.status, 400);
    assert!(a.body["errors"][0].as_str().unwrap().contains("\"data\""));
    let (a, b) = peers.both(
        "PUT",
        "secret/data/app/db",
        Some(&json!({"data": {"v": 1}, "options": {"cas": "x"}})),
    );
    assert_eq!((a.status, &a.body), (400, &b.body));
    peers.both_raw("PUT", "secret/data/app/db", b"{\"data\": {");
    peers.both("PUT", "secret/data/app/", Some(&json!({"data": {"v": 1}})));
    let (a, _) = peers.both("GET", "secret/data/app/", None);
    assert_eq!(a.status, 404);

    // Reads of versions: the JSON document comes back as written.
    let (a, b) = peers.both("GET", "secret/data/app/db?version=1", None);
    assert_eq!(a.status, 200);
    assert_eq!(a.body["data"]["data"], document);
    assert_eq!(a.body["data"]["data"], b.body["data"]["data"]);
    let (a, _) = peers.both("GET", "secret/data/app/db", None);
    assert_eq!(a.body["data"]["metadata"]["version"], 2);
    assert_eq!(
        peers
            .both("GET", "secret/data/app/db?version=7", None)
            .0
            .status,
        404
    );
    assert_eq!(
        peers
            .both("GET", "secret/data/app/db?version=x", None)
            .0
            .status,
        400
    );

    // Soft delete of the latest, then of a chosen version: 404 with the
    // version's marks in `data`, as Vault answers.
    assert_eq!(
        peers.both("DELETE", "secret/data/app/db", None).0.status,
        204
    );
    let (a, b) = peers.both("GET", "secret/data/app/db", None);
    assert_eq!(a.status, 404);
    assert_eq!(a.body["data"]["data"], Value::Null);
    assert_ne!(a.body["data"]["metadata"]["deletion_time"], "");
    assert_eq!(b.body["data"]["metadata"]["version"], 2);
    let versions = json!({"versions": [1]});
    assert_eq!(
        peers
            .both("POST", "secret/delete/app/db", Some(&versions))
            .0
            .status,
        204
    );
    assert_eq!(
        peers
            .both("GET", "secret/data/app/db?version=1", None)
            .0
            .status,
        404
    );
    assert_eq!(
        peers
            .both("POST", "secret/undelete/app/db", Some(&versions))
            .0
            .status,
        204
    );
    assert_eq!(
        peers
            .both("GET", "secret/data/app/db?version=1", None)
            .0
            .status,
        200
    );
    assert_eq!(
        peers
            .both("POST", "secret/destroy/app/db", Some(&versions))
            .0
            .status,
        204
    );
    let (a, _) = peers.both("GET", "secret/data/app/db?version=1", None);
    assert_eq!(a.body["data"]["metadata"]["destroyed"], true);
    // Versions and paths that do not exist are passed over; none named is 400.
    let many = json!({"versions": [2, 99]});
    assert_eq!(
        peers
            .both("POST", "secret/undelete/app/db", Some(&many))
            .0
            .status,
        204
    );
    assert_eq!(peers.both("GET", "secret/data/app/db", None).0.status, 200);
    assert_eq!(
        peers
            .both("POST", "secret/delete/app/none", Some(&versions))
            .0
            .status,
        204
    );
    assert_eq!(
        peers.both("DELETE", "secret/data/app/none", None).0.status,
        204
    );
    for mark in ["delete", "undelete", "destroy"] {
        let path = format!("secret/{mark}/app/db");
        assert_eq!(peers.both("POST", &path, Some(&json!({}))).0.status, 400);
        assert_eq!(
            peers
                .both("POST", &path, Some(&json!({"versions": "x"})))
                .0
                .status,
            400
        );
        assert_eq!(peers.both("GET", &path, None).0.status, 405);
    }

    // PATCH takes only a merge patch's content type.
    let patch = json!({"data": {"n": 2}});
    let (a, _) = peers.both("PATCH", "secret/data/app/db", Some(&patch));
    assert_eq!(a.status, 415);

    // Metadata: read, list, the path's settings, erase.
    let (a, b) = peers.both("GET", "secret/metadata/app/db", None);
    assert_eq!(a.status, 200);
    assert_eq!(a.body["data"]["current_version"], 2);
    let keys = |v: &Value| -> Vec<String> {
        v["data"]["versions"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    assert_eq!(keys(&a.body), keys(&b.body));
    peers.both(
        "PUT",
        "secret/data/app/other",
        Some(&json!({"data": {"v": 1}})),
    );
    peers.both("PUT", "secret/data/top", Some(&json!({"data": {"v": 1}})));
    for (method, path) in [
        ("LIST", "secret/metadata/"),
        ("GET", "secret/metadata/?list=true"),
        ("LIST", "secret/metadata/app"),
        ("LIST", "secret/metadata/app/"),
    ] {
        let (a, b) = peers.both(method, path, None);
        assert_eq!(a.status, 200, "{method} {path}");
        assert_eq!(
            a.body["data"]["keys"], b.body["data"]["keys"],
            "{method} {path}"
        );
    }
    assert_eq!(
        peers.both("LIST", "secret/metadata/", None).0.body["data"]["keys"],
        json!(["app/", "top"])
    );
    assert_eq!(
        peers.both("LIST", "secret/metadata/nothing", None).0.status,
        404
    );
    assert_eq!(
        peers.both("GET", "secret/metadata/nothing", None).0.status,
        404
    );
    let settings = json!({"max_versions": 3, "cas_required": true,
                          "custom_metadata": {"owner": "team-a"},
                          "delete_version_after": "0s"});
    assert_eq!(
        peers
            .both("PUT", "secret/metadata/app/db", Some(&settings))
            .0
            .status,
        204
    );
    let (a, b) = peers.both(
        "PUT",
        "secret/data/app/db",
        Some(&json!({"data": {"v": 3}})),
    );
    assert_eq!((a.status, &a.body), (400, &b.body), "cas required");
    let (a, b) = peers.both(
        "PUT",
        "secret/data/app/db",
        Some(&json!({"data": {"v": 3}, "options": {"cas": 2}})),
    );
    assert_eq!(
        a.body["data"]["custom_metadata"],
        json!({"owner": "team-a"})
    );
    assert_eq!(
        a.body["data"]["custom_metadata"],
        b.body["data"]["custom_metadata"]
    );
    let (a, b) = peers.both("GET", "secret/metadata/app/db", None);
    for field in [
        "cas_required",
        "max_versions",
        "custom_metadata",
        "current_version",
    ] {
        assert_eq!(a.body["data"][field], b.body["data"][field], "{field}");
    }
    // Metadata of a path never written: its versions are empty.
    assert_eq!(
        peers
            .both(
                "PUT",
                "secret/metadata/app/later",
                Some(&json!({"max_versions": 2}))
            )
            .0
            .status,
        204
    );
    let (a, _) = peers.both("GET", "secret/metadata/app/later", None);
    assert_eq!(a.body["data"]["versions"], json!({}));
    assert_eq!(
        peers.both("GET", "secret/data/app/later", None).0.status,
        404
    );
    let wrong = json!({"max_versions": "x"});
    assert_eq!(
        peers
            .both("PUT", "secret/metadata/app/db", Some(&wrong))
            .0
            .status,
        400
    );
    // strongroom does not delete versions by age: refused with a sentence.
    let aged = request(
        peers.ours,
        "PUT",
        "secret/metadata/app/db",
        Some(peers.our_token),
        Some(&json!({"delete_version_after": "1h"})),
    );
    assert_eq!(aged.status, 400);
    assert!(
        aged.body["errors"][0]
            .as_str()
            .unwrap()
            .contains("delete_version_after")
    );
    assert_eq!(
        peers
            .both("DELETE", "secret/metadata/app/db", None)
            .0
            .status,
        204
    );
    assert_eq!(
        peers.both("GET", "secret/metadata/app/db", None).0.status,
        404
    );
    assert_eq!(
        peers
            .both("DELETE", "secret/metadata/app/db", None)
            .0
            .status,
        204
    );

    // The store-wide settings.
    let (a, _) = peers.both("GET", "secret/config", None);
    assert_eq!(a.body["data"]["max_versions"], 0);
    let config = json!({"max_versions": 5, "cas_required": false, "delete_version_after": "0s"});
    assert_eq!(
        peers.both("POST", "secret/config", Some(&config)).0.status,
        204
    );
    let (a, b) = peers.both("GET", "secret/config", None);
    assert_eq!(a.body["data"], b.body["data"]);
    assert_eq!(peers.both("DELETE", "secret/config", None).0.status, 405);

    // Mounts, as Vault's CLI reads them before any kv command.
    let (a, _) = peers.both("GET", "sys/internal/ui/mounts/secret/app/db", None);
    assert_eq!(a.body["data"]["path"], "secret/");
    assert_eq!(a.body["data"]["type"], "kv");
    assert_eq!(a.body["data"]["options"], json!({"version": "2"}));
    let (a, _) = peers.both("GET", "sys/internal/ui/mounts/transit", None);
    assert_eq!(a.body["data"]["path"], "transit/");
    assert_eq!(
        peers
            .both("GET", "sys/internal/ui/mounts/nothing/here", None)
            .0
            .status,
        403
    );
    assert_eq!(
        peers
            .both("POST", "sys/internal/ui/mounts/secret", None)
            .0
            .status,
        405
    );
    let a = request(peers.ours, "GET", "sys/mounts", Some(peers.our_token), None);
    let b = request(
        peers.theirs,
        "GET",
        "sys/mounts",
        Some(peers.their_token),
        None,
    );
    assert_eq!(a.status, 200);
    for mount in ["secret/", "transit/", "sys/"] {
        let ignore = ["passthrough_request_headers"];
        assert_eq!(
            shape(&a.body[mount], &ignore),
            shape(&b.body[mount], &ignore),
            "{mount}"
        );
        assert_eq!(a.body[mount], a.body["data"][mount], "{mount}");
        assert_eq!(a.body[mount]["type"], b.body[mount]["type"], "{mount}");
    }
    assert_eq!(
        peers.both("PUT", "sys/mounts", Some(&json!({}))).0.status,
        405
    );
    let (a, b) = peers.both("GET", "sys/mounts/secret", None);
    assert_eq!(a.body["options"], b.body["options"]);
    assert_eq!(peers.both("GET", "sys/mounts/nope", None).0.status, 400);
    // strongroom's mounts are fixed.
    let mount = request(
        peers.ours,
        "POST",
        "sys/mounts/other",
        Some(peers.our_token),
        Some(&json!({"type": "kv"})),
    );
    assert_eq!(mount.status, 400);

    // No token: refused alike; an unknown path under secret/: 404.
    let a = request(peers.ours, "GET", "secret/data/top", None, None);
    let b = request(peers.theirs, "GET", "secret/data/top", None, None);
    assert_eq!((a.status, b.status), (403, 403));
    assert_eq!(peers.both("GET", "secret/nothing/x", None).0.status, 404);
    // `..` is refused (OpenBao redirects to the cleaned path instead).
    let dots = raw(
        peers.ours,
        "GET",
        "/v1/secret/data/a/../top",
        Some(peers.our_token),
        None,
    );
    assert_eq!(dots.status, 400);
    // A body over the listener's limit (32 MiB, as OpenBao's).
    let mut huge = b"{\"data\":{\"v\":\"".to_vec();
    huge.resize(33 << 20, b'x');
    let (a, _) = peers.both_raw("PUT", "secret/data/huge", &huge);
    assert_eq!(a.status, 413);
}

/// Runs `bao` against `addr`; asserts it succeeded; its stdout as JSON
/// when it printed JSON.
fn bao_ok(addr: &str, token: &str, home: &std::path::Path, args: &[&str]) -> Value {
    let out = bao(addr, Some(token), home, args);
    assert!(
        out.status.success(),
        "bao {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&out.stdout).into()))
}

#[test]
fn the_bao_cli_reads_and_writes_kv_v2() {
    let dir = tempdir();
    let (daemon, init) = unsealed(dir.path(), "");
    let (addr, token, home) = (daemon.addr.as_str(), init.root_token.as_str(), dir.path());
    let put = bao_ok(
        addr,
        token,
        home,
        &[
            "kv",
            "put",
            "-format=json",
            "secret/app/db",
            "user=admin",
            "password=hunter2",
        ],
    );
    assert_eq!(put["data"]["version"], 1);
    let got = bao_ok(
        addr,
        token,
        home,
        &["kv", "get", "-format=json", "secret/app/db"],
    );
    assert_eq!(
        got["data"]["data"],
        json!({"user": "admin", "password": "hunter2"})
    );
    assert_eq!(got["data"]["metadata"]["version"], 1);
    let field = bao_ok(
        addr,
        token,
        home,
        &["kv", "get", "-field=password", "secret/app/db"],
    );
    assert_eq!(field, "hunter2");
    // A patch merges; -cas is honoured.
    let patched = bao_ok(
        addr,
        token,
        home,
        &[
            "kv",
            "patch",
            "-format=json",
            "-cas=1",
            "secret/app/db",
            "password=s3cret",
        ],
    );
    assert_eq!(patched["data"]["version"], 2);
    let stale = bao(
        addr,
        Some(token),
        home,
        &["kv", "patch", "-cas=1", "secret/app/db", "password=x"],
    );
    assert_eq!(stale.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&stale.stderr)
            .contains("check-and-set parameter did not match the current version")
    );
    let got = bao_ok(
        addr,
        token,
        home,
        &["kv", "get", "-format=json", "secret/app/db"],
    );
    assert_eq!(
        got["data"]["data"],
        json!({"user": "admin", "password": "s3cret"})
    );
    let old = bao_ok(
        addr,
        token,
        home,
        &["kv", "get", "-format=json", "-version=1", "secret/app/db"],
    );
    assert_eq!(old["data"]["data"]["password"], "hunter2");

    let meta = bao_ok(
        addr,
        token,
        home,
        &["kv", "metadata", "get", "-format=json", "secret/app/db"],
    );
    assert_eq!(meta["data"]["current_version"], 2);
    assert_eq!(meta["data"]["versions"].as_object().unwrap().len(), 2);
    bao_ok(
        addr,
        token,
        home,
        &[
            "kv",
            "metadata",
            "put",
            "-max-versions=5",
            "-custom-metadata=owner=team-a",
            "secret/app/db",
        ],
    );
    let meta = bao_ok(
        addr,
        token,
        home,
        &["kv", "metadata", "get", "-format=json", "secret/app/db"],
    );
    assert_eq!(meta["data"]["max_versions"], 5);
    assert_eq!(meta["data"]["custom_metadata"], json!({"owner": "team-a"}));

    // Delete the latest; undelete it; destroy the first.
    bao_ok(addr, token, home, &["kv", "delete", "secret/app/db"]);
    // A deleted version: its metadata and no data, exit 0, as with OpenBao.
    let gone = bao(addr, Some(token), home, &["kv", "get", "secret/app/db"]);
    let shown = String::from_utf8_lossy(&gone.stdout);
    assert_eq!(gone.status.code(), Some(0), "{shown}");
    assert!(
        shown.contains("deletion_time") && !shown.contains("s3cret"),
        "{shown}"
    );
    bao_ok(
        addr,
        token,
        home,
        &["kv", "undelete", "-versions=2", "secret/app/db"],
    );
    let back = bao_ok(
        addr,
        token,
        home,
        &["kv", "get", "-format=json", "secret/app/db"],
    );
    assert_eq!(back["data"]["metadata"]["version"], 2);
    bao_ok(
        addr,
        token,
        home,
        &["kv", "destroy", "-versions=1", "secret/app/db"],
    );
    let meta = bao_ok(
        addr,
        token,
        home,
        &["kv", "metadata", "get", "-format=json", "secret/app/db"],
    );
    assert_eq!(meta["data"]["versions"]["1"]["destroyed"], true);

    bao_ok(addr, token, home, &["kv", "put", "secret/top", "v=1"]);
    let listed = bao_ok(
        addr,
        token,
        home,
        &["kv", "list", "-format=json", "secret/"],
    );
    assert_eq!(listed, json!(["app/", "top"]));
    let listed = bao_ok(
        addr,
        token,
        home,
        &["kv", "list", "-format=json", "secret/app"],
    );
    assert_eq!(listed, json!(["db"]));
    bao_ok(
        addr,
        token,
        home,
        &["kv", "metadata", "delete", "secret/app/db"],
    );
    let missing = bao(addr, Some(token), home, &["kv", "get", "secret/app/db"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("No value found at secret/data/app/db")
    );
}

#[test]
fn hvac_drives_kv_v2() {
    let dir = tempdir();
    let (daemon, init) = unsealed(dir.path(), "");
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python"))
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/kv_v2.py"
        ))
        .arg(&daemon.addr)
        .arg(&init.root_token)
        .output()
        .expect("run .venv/bin/python");
    assert!(
        out.status.success(),
        "kv_v2.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["created"], 1);
    assert_eq!(seen["cas_conflict"], "InvalidRequest");
    assert_eq!(
        seen["read"],
        json!({"user": "app", "port": 5432, "tls": {"on": true}})
    );
    assert_eq!(
        seen["patched"],
        json!({"user": "app", "port": 6432, "tls": {"on": true}})
    );
    assert_eq!(seen["deleted_read"], "InvalidPath");
    assert_eq!(seen["undeleted"], seen["patched"]);
    assert_eq!(seen["undeleted_version"], 3);
    assert_eq!(seen["destroyed"], true);
    assert_eq!(seen["listed"], json!(["db"]));
    assert_eq!(seen["current_version"], 3);
}

#[test]
fn json_values_round_trip_through_http_grpc_and_the_cli_and_are_hmaced_in_the_audit_log() {
    let dir = tempdir();
    let audit_log = dir.path().join("audit.log");
    let (daemon, init) = unsealed(
        dir.path(),
        &format!("audit \"file\" {{ path = \"{}\" }}\n", audit_log.display()),
    );
    let token = init.root_token.clone();
    let nested = json!({"password": "hunter2", "port": 5432,
                        "tls": {"ca": "---pem---", "verify": true, "peers": [7001, "peer-b"]}});
    let put = request(
        &daemon.addr,
        "PUT",
        "secret/data/app/db",
        Some(&token),
        Some(&json!({ "data": nested })),
    );
    assert_eq!(put.status, 200, "{:?}", put.body);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let addr = daemon.addr.clone();
    let (got, strings_only, both) = runtime.block_on(async {
        let mut kv = KvClient::new(channel(&addr).await);
        let got = kv
            .get(with_token(
                GetRequest {
                    path: "app/db".into(),
                    version: 0,
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner();
        // A JSON document through gRPC, read back over HTTP.
        let typed = PutRequest {
            path: "app/typed".into(),
            data: Default::default(),
            cas: None,
            data_json: r#"{"n": 1.5, "list": [1, 2], "s": "x"}"#.into(),
        };
        kv.put(with_token(typed, &token)).await.unwrap();
        let strings = PutRequest {
            path: "app/strings".into(),
            data: [("user".to_string(), "admin".to_string())].into(),
            cas: None,
            data_json: String::new(),
        };
        kv.put(with_token(strings, &token)).await.unwrap();
        let strings_only = kv
            .get(with_token(
                GetRequest {
                    path: "app/strings".into(),
                    version: 0,
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner();
        let both = PutRequest {
            path: "app/both".into(),
            data: [("user".to_string(), "admin".to_string())].into(),
            cas: None,
            data_json: r#"{"user": "admin"}"#.into(),
        };
        let both = kv.put(with_token(both, &token)).await.unwrap_err();
        (got, strings_only, both)
    });
    // Not all strings: only the JSON field is filled.
    assert!(got.data.is_empty());
    assert_eq!(
        serde_json::from_str::<Value>(&got.data_json).unwrap(),
        nested
    );
    assert_eq!(strings_only.data["user"], "admin");
    assert_eq!(
        serde_json::from_str::<Value>(&strings_only.data_json).unwrap(),
        json!({"user": "admin"})
    );
    assert_eq!(both.code(), tonic::Code::InvalidArgument);
    assert!(both.message().contains("not both"), "{}", both.message());
    let typed = request(
        &daemon.addr,
        "GET",
        "secret/data/app/typed",
        Some(&token),
        None,
    );
    assert_eq!(
        typed.body["data"]["data"],
        json!({"n": 1.5, "list": [1, 2], "s": "x"})
    );

    // The CLI: NAME:=JSON writes a typed value; get prints JSON values.
    daemon
        .cli()
        .run(&[
            "kv",
            "put",
            "app/cli",
            "user=admin",
            "port:=5432",
            "tags:=[\"a\",\"b\"]",
        ])
        .ok();
    let read = request(
        &daemon.addr,
        "GET",
        "secret/data/app/cli",
        Some(&token),
        None,
    );
    assert_eq!(
        read.body["data"]["data"],
        json!({"user": "admin", "port": 5432, "tags": ["a", "b"]})
    );
    let shown = daemon.cli().run(&["kv", "get", "app/cli"]).ok();
    assert!(shown.stdout.contains("[\"a\",\"b\"]"), "{}", shown.stdout);
    let as_json = daemon
        .cli()
        .run(&["kv", "get", "--format", "json", "app/db"])
        .ok()
        .json();
    assert_eq!(as_json["data"]["data"], nested);
    let port = daemon
        .cli()
        .run(&["kv", "get", "--field", "port", "app/db"])
        .ok();
    assert_eq!(port.stdout.trim(), "5432");
    daemon
        .cli()
        .run(&["kv", "put", "app/cli", "port:={"])
        .code(64)
        .error_says("not valid JSON");

    // The audit log: every leaf of the document as its HMAC, keys plain,
    // no value anywhere.
    let text = std::fs::read_to_string(&audit_log).unwrap();
    // (The numbers are checked through their HMACs below: as substrings
    // they may turn up in any hex.)
    for value in ["hunter2", "---pem---", "peer-b"] {
        assert!(!text.contains(value), "{value} in the audit log");
    }
    let hash = |v: &str| {
        let out = daemon.cli().run_stdin(&["audit-hash"], v).ok();
        Value::String(out.stdout.trim().to_string())
    };
    let line: Value = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| {
            l["type"] == "request"
                && l["operation"] == "kv.Put"
                && l["path"] == "secret/data/app/db"
        })
        .expect("the put's request line");
    let data = &line["data"]["data"];
    assert_eq!(data["password"], hash("hunter2"));
    assert_eq!(data["port"], hash("5432"));
    assert_eq!(data["tls"]["ca"], hash("---pem---"));
    assert_eq!(data["tls"]["verify"], hash("true"));
    assert_eq!(data["tls"]["peers"], json!([hash("7001"), hash("peer-b")]));
}

#[test]
fn grpc_patch_and_settings_are_the_http_apis() {
    use strongroom::proto::{KvConfig, PatchRequest, PutMetadataRequest, ReadConfigRequest};

    let dir = tempdir();
    let (daemon, init) = unsealed(dir.path(), "");
    let token = init.root_token.clone();
    let put = json!({"data": {"a": 1, "b": {"c": 2}}});
    let written = request(
        &daemon.addr,
        "PUT",
        "secret/data/app/db",
        Some(&token),
        Some(&put),
    );
    assert_eq!(written.status, 200);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let addr = daemon.addr.clone();
    let (patched, stale, bad, config) = runtime.block_on(async {
        let mut kv = KvClient::new(channel(&addr).await);
        let patch = |json: &str, cas| PatchRequest {
            path: "app/db".into(),
            patch_json: json.into(),
            cas,
        };
        let patched = kv
            .patch(with_token(
                patch(r#"{"a": null, "b": {"d": 3}}"#, Some(1)),
                &token,
            ))
            .await
            .unwrap()
            .into_inner();
        let stale = kv
            .patch(with_token(patch(r#"{"a": 2}"#, Some(1)), &token))
            .await
            .unwrap_err();
        let bad = kv
            .patch(with_token(patch("[1]", None), &token))
            .await
            .unwrap_err();
        let settings = PutMetadataRequest {
            path: "app/db".into(),
            max_versions: Some(4),
            cas_required: Some(true),
            custom_metadata: [("owner".to_string(), "team-a".to_string())].into(),
            set_custom_metadata: true,
        };
        kv.put_metadata(with_token(settings, &token)).await.unwrap();
        let store = KvConfig {
            max_versions: 7,
            cas_required: false,
        };
        kv.write_config(with_token(store, &token)).await.unwrap();
        let too_many = KvConfig {
            max_versions: 10_001,
            cas_required: false,
        };
        let refused = kv
            .write_config(with_token(too_many, &token))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        let config = kv
            .read_config(with_token(ReadConfigRequest {}, &token))
            .await
            .unwrap()
            .into_inner();
        (patched, stale, bad, config)
    });
    assert_eq!(patched.version, 2);
    assert_eq!(stale.code(), tonic::Code::FailedPrecondition);
    assert!(
        stale
            .message()
            .starts_with("check-and-set parameter did not match the current version")
    );
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert_eq!((config.max_versions, config.cas_required), (7, false));

    let read = request(
        &daemon.addr,
        "GET",
        "secret/data/app/db",
        Some(&token),
        None,
    );
    assert_eq!(read.body["data"]["data"], json!({"b": {"c": 2, "d": 3}}));
    let meta = request(
        &daemon.addr,
        "GET",
        "secret/metadata/app/db",
        Some(&token),
        None,
    );
    assert_eq!(meta.body["data"]["max_versions"], 4);
    assert_eq!(meta.body["data"]["cas_required"], true);
    assert_eq!(
        meta.body["data"]["custom_metadata"],
        json!({"owner": "team-a"})
    );
    let config = request(&daemon.addr, "GET", "secret/config", Some(&token), None);
    assert_eq!(config.body["data"]["max_versions"], 7);
    // The CLI shows the path's settings too.
    let shown = daemon
        .cli()
        .run(&["kv", "metadata", "get", "--format", "json", "app/db"])
        .ok()
        .json();
    assert_eq!(shown["max_versions"], 4);
    assert_eq!(shown["cas_required"], true);
    assert_eq!(shown["custom_metadata"], json!({"owner": "team-a"}));
    // cas_required set over gRPC holds over HTTP.
    let again = request(
        &daemon.addr,
        "PUT",
        "secret/data/app/db",
        Some(&token),
        Some(&put),
    );
    assert_eq!(again.status, 400);
    assert_eq!(
        again.body["errors"][0],
        "check-and-set parameter required for this call"
    );
}

#[test]
fn policies_on_kv_paths_govern_the_http_api() {
    let dir = tempdir();
    let (daemon, init) = unsealed(dir.path(), "");
    let root = init.root_token.clone();
    write_policy(
        &mut daemon.cli(),
        "reader",
        "path \"secret/data/app/*\" { capabilities = [\"read\"] }\npath \"secret/metadata/app/\" { capabilities = [\"list\"] }\n",
    );
    let (reader, _) = create_token(&mut daemon.cli(), &["--policy", "reader"]);
    let put = json!({"data": {"v": 1}});
    assert_eq!(
        request(
            &daemon.addr,
            "PUT",
            "secret/data/app/db",
            Some(&root),
            Some(&put)
        )
        .status,
        200
    );
    let read = request(
        &daemon.addr,
        "GET",
        "secret/data/app/db",
        Some(&reader),
        None,
    );
    assert_eq!(read.body["data"]["data"], json!({"v": 1}));
    let listed = request(
        &daemon.addr,
        "LIST",
        "secret/metadata/app",
        Some(&reader),
        None,
    );
    assert_eq!(listed.body["data"]["keys"], json!(["db"]));
    // Writes, patches, marks, settings and the store's config: refused, 403.
    let merge = json!({"data": {"v": 2}});
    for (method, path, body) in [
        ("PUT", "secret/data/app/db", Some(&put)),
        ("PATCH", "secret/data/app/db", Some(&merge)),
        ("DELETE", "secret/data/app/db", None),
        (
            "POST",
            "secret/destroy/app/db",
            Some(&json!({"versions": [1]})),
        ),
        (
            "PUT",
            "secret/metadata/app/db",
            Some(&json!({"max_versions": 1})),
        ),
        ("DELETE", "secret/metadata/app/db", None),
        ("GET", "secret/config", None),
        ("GET", "sys/mounts", None),
        ("GET", "secret/data/other", None),
    ] {
        let refused = request(&daemon.addr, method, path, Some(&reader), body);
        // PATCH with a JSON content type is 415 before any token is looked at.
        let expected = if method == "PATCH" { 415 } else { 403 };
        assert_eq!(
            refused.status, expected,
            "{method} {path}: {:?}",
            refused.body
        );
    }
    // Any valid token may ask which mount serves a path; no token may not.
    let mount = request(
        &daemon.addr,
        "GET",
        "sys/internal/ui/mounts/secret/app/db",
        Some(&reader),
        None,
    );
    assert_eq!(mount.body["data"]["path"], "secret/");
    let anonymous = request(
        &daemon.addr,
        "GET",
        "sys/internal/ui/mounts/secret/app/db",
        None,
        None,
    );
    assert_eq!(anonymous.status, 403);
    // Nothing changed.
    let read = request(
        &daemon.addr,
        "GET",
        "secret/metadata/app/db",
        Some(&root),
        None,
    );
    assert_eq!(read.body["data"]["current_version"], 1);
    assert_eq!(read.body["data"]["versions"]["1"]["deletion_time"], "");
}

#[test]
fn a_sidecar_known_by_its_uid_reads_kv_v2_over_the_socket_without_a_token() {
    let dir = tempdir();
    let uid = nix::unistd::geteuid();
    let text = config(dir.path(), "").replace(
        "socket_mode = \"0660\"",
        &format!(
            "socket_mode = \"0660\"\n  identity {{\n    uid      = {uid}\n    policies = [\"app\"]\n  }}"
        ),
    );
    let mut daemon = Daemon::start(dir.path(), &text);
    let init = open(&mut daemon);
    write_policy(
        &mut daemon.cli(),
        "app",
        "path \"secret/data/app/*\" { capabilities = [\"read\"] }",
    );
    let put = json!({"data": {"password": "hunter2", "port": 5432}});
    let written = request(
        &daemon.addr,
        "PUT",
        "secret/data/app/db",
        Some(&init.root_token),
        Some(&put),
    );
    assert_eq!(written.status, 200);
    let socket = Target::Unix(daemon.socket.clone().unwrap());
    let read = request(socket.clone(), "GET", "secret/data/app/db", None, None);
    assert_eq!(read.status, 200, "{:?}", read.body);
    assert_eq!(
        read.body["data"]["data"],
        json!({"password": "hunter2", "port": 5432})
    );
    // Its policy reads; it does not write. Over TCP it is nobody.
    let write = request(socket, "PUT", "secret/data/app/db", None, Some(&put));
    assert_eq!(write.status, 403);
    let tcp = request(&daemon.addr, "GET", "secret/data/app/db", None, None);
    assert_eq!(tcp.status, 403);
}

#[test]
fn reads_racing_pruning_writes_never_answer_500() {
    let dir = tempdir();
    let (daemon, init) = unsealed(dir.path(), "");
    let token = init.root_token.clone();
    let addr = daemon.addr.clone();
    let keep_one = json!({"max_versions": 1});
    let set = request(
        &addr,
        "POST",
        "secret/metadata/race",
        Some(&token),
        Some(&keep_one),
    );
    assert_eq!(set.status, 204, "{:?}", set.body);
    let first = json!({"data": {"n": 0}});
    request(
        &addr,
        "POST",
        "secret/data/race",
        Some(&token),
        Some(&first),
    );
    let writer = {
        let (addr, token) = (addr.clone(), token.clone());
        std::thread::spawn(move || {
            for n in 1..=150 {
                let body = json!({"data": {"n": n}});
                let written = request(&addr, "POST", "secret/data/race", Some(&token), Some(&body));
                assert_eq!(written.status, 200, "{:?}", written.body);
            }
        })
    };
    // Each version is pruned by the next write: a read may find its
    // metadata and then no data; it must say so, not fail.
    let mut reads = 0;
    while !writer.is_finished() && reads < 5_000 {
        let read = request(&addr, "GET", "secret/data/race", Some(&token), None);
        assert!(
            matches!(read.status, 200 | 404),
            "{} {:?}",
            read.status,
            read.body
        );
        reads += 1;
    }
    writer.join().unwrap();
    assert!(reads > 0);
}
