//! kv v2 on Vault's HTTP API, continued from http_kv.rs: malformed bodies
//! refused at the gate (two bounded audit lines, no value in them), PATCH
//! of a path's metadata, `subkeys/`, and the mounts' tune settings, side
//! by side with OpenBao 2.6.2, with the `bao` CLI and hvac as clients.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::http_kv::Peers;
use crate::support::cli::{create_token, write_policy};
use crate::support::daemon::{tempdir, unsealed};
use crate::support::vault::{Answer, OpenBao, bao, raw_as, request};

const JSON: &str = "application/json";
const MERGE: &str = "application/merge-patch+json";

/// An audit device writing to `audit`, for [`unsealed`]'s extra config.
fn audited(audit: &Path) -> String {
    format!("audit \"file\" {{ path = \"{}\" }}\n", audit.display())
}

/// The audit file's lines, each checked to be JSON.
fn audit_lines(audit: &Path) -> Vec<String> {
    std::fs::read_to_string(audit)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Sends `body` as `content_type` to both peers; checks the statuses and
/// shapes agree (as [`Peers::both`]).
fn both_as(
    peers: &Peers<'_>,
    method: &str,
    path: &str,
    content_type: &str,
    body: &Value,
) -> (Answer, Answer) {
    let full = format!("/v1/{path}");
    let text = body.to_string();
    let a = raw_as(
        peers.ours,
        method,
        &full,
        Some(peers.our_token),
        content_type,
        Some(text.as_bytes()),
    );
    let b = raw_as(
        peers.theirs,
        method,
        &full,
        Some(peers.their_token),
        content_type,
        Some(text.as_bytes()),
    );
    peers.same(method, path, a, b)
}

/// Runs `script` with hvac against `addr`, `token` (as `sys.argv[1:]`);
/// returns what it printed, as JSON.
fn hvac(script: &str, addr: &str, token: &str) -> Value {
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python"))
        .args(["-c", script, addr, token])
        .output()
        .expect("run .venv/bin/python");
    assert!(
        out.status.success(),
        "hvac script failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn malformed_kv_bodies_are_refused_at_the_gate_in_two_bounded_audit_lines() {
    let dir = tempdir();
    let audit = dir.path().join("audit.log");
    let (daemon, init) = unsealed(dir.path(), &audited(&audit));
    let openbao = OpenBao::start();
    let send = |addr: &str, token: &str, method, path: &str, content_type, body: &str| {
        let full = format!("/v1/{path}");
        raw_as(
            addr,
            method,
            &full,
            Some(token),
            content_type,
            Some(body.as_bytes()),
        )
    };
    for (addr, token) in [
        (daemon.addr.as_str(), init.root_token.as_str()),
        (openbao.addr.as_str(), openbao.token.as_str()),
    ] {
        let seeded = send(
            addr,
            token,
            "PUT",
            "secret/data/app/db",
            JSON,
            "{\"data\": {\"k\": \"v\"}}",
        );
        assert_eq!(seeded.status, 200, "{:?}", seeded.body);
    }
    // About 1 MB of a value that must never be echoed or logged.
    let marker = "VALUE-7f3c";
    let big = marker.repeat(100_000);
    let cases = [
        // Malformed JSON, cut short inside the value.
        (
            "PUT",
            "secret/data/app/db",
            JSON,
            format!("{{\"data\": {{\"k\": \"{big}"),
            "kv.Put",
        ),
        (
            "POST",
            "secret/data/app/db",
            JSON,
            format!("{{\"data\": {{\"k\": \"{big}\"}}, \"options\": {{\"cas\": \"nope\"}}}}"),
            "kv.Put",
        ),
        (
            "POST",
            "secret/data/app/db",
            JSON,
            format!("{{\"data\": \"{big}\"}}"),
            "kv.Put",
        ),
        (
            "PUT",
            "secret/data/app/db",
            JSON,
            format!("\"{big}\""),
            "kv.Put",
        ),
        (
            "PATCH",
            "secret/data/app/db",
            MERGE,
            format!("{{\"data\": [\"{big}\"]}}"),
            "kv.Patch",
        ),
        (
            "PUT",
            "secret/metadata/app/db",
            JSON,
            format!("{{\"max_versions\": \"{big}\"}}"),
            "kv.PutMetadata",
        ),
        (
            "PATCH",
            "secret/metadata/app/db",
            MERGE,
            format!("{{\"custom_metadata\": \"{big}\"}}"),
            "kv.PatchMetadata",
        ),
        (
            "POST",
            "secret/delete/app/db",
            JSON,
            format!("{{\"versions\": \"{big}\"}}"),
            "kv.DeleteVersions",
        ),
        (
            "POST",
            "secret/undelete/app/db",
            JSON,
            format!("{{\"versions\": {{\"{big}\": 1}}}}"),
            "kv.Undelete",
        ),
        (
            "POST",
            "secret/destroy/app/db",
            JSON,
            format!("[\"{big}\""),
            "kv.Destroy",
        ),
        (
            "POST",
            "secret/config",
            JSON,
            format!("{{\"cas_required\": \"{big}\"}}"),
            "kv.WriteConfig",
        ),
    ];
    for (method, path, content_type, body, operation) in &cases {
        let case = format!("{method} {path} ({operation})");
        let before = audit_lines(&audit).len();
        let ours = send(
            &daemon.addr,
            &init.root_token,
            method,
            path,
            content_type,
            body,
        );
        let theirs = send(
            &openbao.addr,
            &openbao.token,
            method,
            path,
            content_type,
            body,
        );
        assert_eq!(ours.status, 400, "{case}: {:?}", ours.body);
        assert_eq!(theirs.status, 400, "{case}: OpenBao {:?}", theirs.body);
        let errors = ours.body["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{case}: {:?}", ours.body);
        let sentence = errors[0].as_str().unwrap();
        assert!(
            sentence.len() < 512 && !sentence.contains(marker) && !sentence.contains("Error {"),
            "{case}: {sentence}"
        );
        let lines = audit_lines(&audit);
        assert_eq!(lines.len(), before + 2, "{case}: {:?}", &lines[before..]);
        for (line, kind) in lines[before..].iter().zip(["request", "response"]) {
            assert!(
                line.len() < 4096,
                "{case}: an audit line of {} bytes",
                line.len()
            );
            assert!(!line.contains(marker), "{case}: the value in {line}");
            let line: Value = serde_json::from_str(line).unwrap();
            assert_eq!(line["type"], kind, "{case}: {line}");
            assert_eq!(line["operation"], *operation, "{case}: {line}");
            if kind == "response" {
                assert_eq!(line["error"], sentence, "{case}: {line}");
            }
        }
    }
    // Nothing was written by the refused calls.
    let read = request(
        &daemon.addr,
        "GET",
        "secret/data/app/db",
        Some(&init.root_token),
        None,
    );
    assert_eq!(read.body["data"]["data"], json!({"k": "v"}));
    assert_eq!(read.body["data"]["metadata"]["version"], 1);
    assert!(!std::fs::read_to_string(&audit).unwrap().contains(marker));
}

#[test]
fn patching_metadata_merges_as_openbao_does() {
    let dir = tempdir();
    let (daemon, init) = unsealed(dir.path(), "");
    let openbao = OpenBao::start();
    let peers = Peers {
        ours: &daemon.addr,
        our_token: &init.root_token,
        theirs: &openbao.addr,
        their_token: &openbao.token,
    };
    let path = "secret/metadata/app/db";
    // A path with no metadata: 404, alike (OpenBao's body is empty).
    let missing = |addr: &str, token: &str| {
        raw_as(
            addr,
            "PATCH",
            "/v1/secret/metadata/app/none",
            Some(token),
            MERGE,
            Some(b"{\"max_versions\": 3}"),
        )
    };
    let a = missing(&daemon.addr, &init.root_token);
    let b = missing(&openbao.addr, &openbao.token);
    assert_eq!((a.status, b.status), (404, 404), "{:?}", a.body);
    assert_eq!(a.body, json!({"errors": []}));

    peers.both(
        "PUT",
        "secret/data/app/db",
        Some(&json!({"data": {"v": 1}})),
    );
    let settings = |peers: &Peers<'_>| {
        let (a, b) = peers.both("GET", path, None);
        assert_eq!(a.status, 200, "{:?}", a.body);
        for field in [
            "max_versions",
            "cas_required",
            "custom_metadata",
            "current_metadata_version",
        ] {
            assert_eq!(
                a.body["data"][field], b.body["data"][field],
                "{field}: ours {:?}, OpenBao's {:?}",
                a.body, b.body
            );
        }
        a.body["data"].clone()
    };
    let patch = json!({"max_versions": 5, "custom_metadata": {"a": "1", "b": "2"}});
    assert_eq!(both_as(&peers, "PATCH", path, MERGE, &patch).0.status, 204);
    let now = settings(&peers);
    assert_eq!(now["max_versions"], 5);
    assert_eq!(now["custom_metadata"], json!({"a": "1", "b": "2"}));
    // A key set to null is removed; what the patch leaves out stays.
    let patch = json!({"custom_metadata": {"a": null, "c": "3"}, "cas_required": true});
    assert_eq!(both_as(&peers, "PATCH", path, MERGE, &patch).0.status, 204);
    let now = settings(&peers);
    assert_eq!(now["custom_metadata"], json!({"b": "2", "c": "3"}));
    assert_eq!(
        (&now["max_versions"], &now["cas_required"]),
        (&json!(5), &json!(true))
    );
    // A field set to null goes back to its default.
    let patch = json!({"max_versions": null, "cas_required": null, "custom_metadata": null});
    assert_eq!(both_as(&peers, "PATCH", path, MERGE, &patch).0.status, 204);
    let now = settings(&peers);
    assert_eq!(now["custom_metadata"], Value::Null);
    assert_eq!(
        (&now["max_versions"], &now["cas_required"]),
        (&json!(0), &json!(false))
    );

    // Refusals, alike: a JSON content type, wrong types, a folder.
    assert_eq!(peers.both("PATCH", path, Some(&json!({}))).0.status, 415);
    for bad in [
        json!({"max_versions": "x"}),
        json!({"custom_metadata": "x"}),
        json!({"custom_metadata": {"a": {}}}),
        json!({"cas_required": "maybe"}),
        json!([1]),
    ] {
        assert_eq!(
            both_as(&peers, "PATCH", path, MERGE, &bad).0.status,
            400,
            "{bad}"
        );
    }
    let (a, _) = both_as(&peers, "PATCH", "secret/metadata/app/", MERGE, &json!({}));
    assert_eq!(a.status, 400);

    // The bao CLI patches the custom metadata by merging, on both.
    let home = dir.path();
    for (addr, token) in [
        (daemon.addr.as_str(), init.root_token.as_str()),
        (openbao.addr.as_str(), openbao.token.as_str()),
    ] {
        for pair in ["-custom-metadata=k=v", "-custom-metadata=z=w"] {
            let out = bao(
                addr,
                Some(token),
                home,
                &["kv", "metadata", "patch", pair, "secret/app/db"],
            );
            assert!(
                out.status.success(),
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(String::from_utf8_lossy(&out.stdout).contains("Success!"));
        }
        let out = bao(
            addr,
            Some(token),
            home,
            &["kv", "metadata", "get", "-format=json", "secret/app/db"],
        );
        let read: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(read["data"]["custom_metadata"], json!({"k": "v", "z": "w"}));
        let out = bao(
            addr,
            Some(token),
            home,
            &[
                "kv",
                "metadata",
                "patch",
                "-max-versions=2",
                "secret/app/none",
            ],
        );
        assert_eq!(out.status.code(), Some(2), "a missing path, on {addr}");
    }

    // Vault's `patch` capability on the metadata path, and only it.
    write_policy(
        &mut daemon.cli(),
        "patcher",
        "path \"secret/metadata/app/*\" { capabilities = [\"patch\"] }\n",
    );
    write_policy(
        &mut daemon.cli(),
        "writer",
        "path \"secret/metadata/app/*\" { capabilities = [\"create\", \"update\", \"read\"] }\n",
    );
    let (patcher, _) = create_token(&mut daemon.cli(), &["--policy", "patcher"]);
    let (writer, _) = create_token(&mut daemon.cli(), &["--policy", "writer"]);
    let body = b"{\"custom_metadata\": {\"by\": \"patcher\"}}";
    let by = |token: &str| {
        let full = format!("/v1/{path}");
        raw_as(&daemon.addr, "PATCH", &full, Some(token), MERGE, Some(body)).status
    };
    assert_eq!(by(&patcher), 204);
    assert_eq!(by(&writer), 403);
}

#[test]
fn subkeys_answer_as_openbao_does_and_never_show_a_value() {
    let dir = tempdir();
    let audit = dir.path().join("audit.log");
    let (daemon, init) = unsealed(dir.path(), &audited(&audit));
    let openbao = OpenBao::start();
    let peers = Peers {
        ours: &daemon.addr,
        our_token: &init.root_token,
        theirs: &openbao.addr,
        their_token: &openbao.token,
    };
    let document = json!({"user": "VALUE-a", "e": {}, "list": ["VALUE-l"],
                          "n": {"b": {"c": "VALUE-c"}, "d": [1]}});
    peers.both(
        "PUT",
        "secret/data/app/db",
        Some(&json!({ "data": document })),
    );
    let subkeys = |query: &str| {
        let (a, b) = peers.both("GET", &format!("secret/subkeys/app/db{query}"), None);
        assert_eq!(a.status, 200, "{query}: {:?}", a.body);
        assert_eq!(
            a.body["data"]["subkeys"], b.body["data"]["subkeys"],
            "{query}"
        );
        assert_eq!(
            a.body["data"]["metadata"]["version"], b.body["data"]["metadata"]["version"],
            "{query}"
        );
        assert!(
            !a.body.to_string().contains("VALUE-"),
            "{query}: {}",
            a.body
        );
        a.body["data"]["subkeys"].clone()
    };
    let all = json!({"user": null, "e": null, "list": null, "n": {"b": {"c": null}, "d": null}});
    assert_eq!(subkeys(""), all);
    assert_eq!(subkeys("?depth=0"), all);
    assert_eq!(
        subkeys("?depth=1"),
        json!({"user": null, "e": null, "list": null, "n": null})
    );
    assert_eq!(subkeys("?depth=2")["n"], json!({"b": null, "d": null}));
    peers.both(
        "PUT",
        "secret/data/app/db",
        Some(&json!({"data": {"only": 1}})),
    );
    assert_eq!(subkeys("?version=1"), all);
    assert_eq!(subkeys("?version=0"), json!({"only": null}));
    assert_eq!(subkeys("?version=-1"), json!({"only": null}));

    // Missing, deleted and destroyed versions: 404, alike, with the marks.
    for missing in [
        "secret/subkeys/app/none",
        "secret/subkeys/app/db?version=9",
        "secret/subkeys/",
    ] {
        let (a, _) = peers.both("GET", missing, None);
        assert_eq!(
            (a.status, &a.body),
            (404, &json!({"errors": []})),
            "{missing}"
        );
    }
    peers.both("DELETE", "secret/data/app/db", None);
    let (a, _) = peers.both("GET", "secret/subkeys/app/db", None);
    assert_eq!(a.status, 404);
    assert_eq!(a.body["data"]["subkeys"], Value::Null);
    assert_ne!(a.body["data"]["metadata"]["deletion_time"], "");
    peers.both(
        "POST",
        "secret/destroy/app/db",
        Some(&json!({"versions": [1]})),
    );
    let (a, _) = peers.both("GET", "secret/subkeys/app/db?version=1", None);
    assert_eq!(a.status, 404);
    assert_eq!(a.body["data"]["metadata"]["destroyed"], true);

    // Bad queries and methods the path does not take.
    for bad in ["?depth=x", "?version=x"] {
        let (a, _) = peers.both("GET", &format!("secret/subkeys/app/db{bad}"), None);
        assert_eq!(a.status, 400, "{bad}");
    }
    for method in ["PUT", "DELETE", "LIST"] {
        let (a, _) = peers.both(method, "secret/subkeys/app/db", Some(&json!({})));
        assert_eq!(a.status, 405, "{method}");
    }

    // `read` on secret/subkeys/…, not on secret/data/…, lets a caller in.
    peers.both(
        "PUT",
        "secret/data/app/db",
        Some(&json!({ "data": document })),
    );
    write_policy(
        &mut daemon.cli(),
        "shape",
        "path \"secret/subkeys/app/*\" { capabilities = [\"read\"] }\n",
    );
    write_policy(
        &mut daemon.cli(),
        "reader",
        "path \"secret/data/app/*\" { capabilities = [\"read\"] }\n",
    );
    let (shape_only, _) = create_token(&mut daemon.cli(), &["--policy", "shape"]);
    let (reader, _) = create_token(&mut daemon.cli(), &["--policy", "reader"]);
    let get = |token: &str| {
        request(
            &daemon.addr,
            "GET",
            "secret/subkeys/app/db",
            Some(token),
            None,
        )
    };
    assert_eq!(get(&shape_only).body["data"]["subkeys"], all);
    assert_eq!(get(&reader).status, 403);

    // hvac (2.4.0 has no subkeys method: its generic read).
    let seen = hvac(
        "import hvac, json, sys\n\
         c = hvac.Client(url=sys.argv[1], token=sys.argv[2])\n\
         r = c.read('secret/subkeys/app/db')\n\
         print(json.dumps(r['data']['subkeys']))\n",
        &daemon.addr,
        &init.root_token,
    );
    assert_eq!(seen, all);
    let logged = std::fs::read_to_string(&audit).unwrap();
    assert!(logged.contains("kv.Subkeys"));
    assert!(!logged.contains("VALUE-"), "a value in the audit log");
}

#[test]
fn mount_tune_settings_read_as_openbao_and_writes_are_refused() {
    let dir = tempdir();
    let (daemon, init) = unsealed(dir.path(), "");
    let openbao = OpenBao::start();
    let peers = Peers {
        ours: &daemon.addr,
        our_token: &init.root_token,
        theirs: &openbao.addr,
        their_token: &openbao.token,
    };
    for mount in ["secret", "transit", "sys", "auth/token"] {
        let (a, b) = peers.both("GET", &format!("sys/mounts/{mount}/tune"), None);
        assert_eq!(a.status, 200, "{mount}: {:?}", a.body);
        // Descriptions differ: the test's OpenBao mounts secret/ without one.
        for field in [
            "default_lease_ttl",
            "max_lease_ttl",
            "options",
            "token_type",
            "passthrough_request_headers",
        ] {
            assert_eq!(
                a.body["data"][field], b.body["data"][field],
                "{mount} {field}"
            );
            assert_eq!(a.body[field], a.body["data"][field], "{mount} {field}");
        }
    }
    let (a, _) = peers.both("GET", "sys/mounts/secret/tune", None);
    assert_eq!(a.body["data"]["options"], json!({"version": "2"}));
    let (a, _) = peers.both("GET", "sys/mounts/nope/tune", None);
    assert_eq!(a.status, 400);
    let (a, _) = peers.both("DELETE", "sys/mounts/secret/tune", None);
    assert_eq!(a.status, 405);
    // OpenBao tunes (204); strongroom's mounts are fixed: 400, a sentence.
    let tune = json!({"max_lease_ttl": "1h"});
    let ours = request(
        &daemon.addr,
        "POST",
        "sys/mounts/secret/tune",
        Some(&init.root_token),
        Some(&tune),
    );
    let theirs = request(
        &openbao.addr,
        "POST",
        "sys/mounts/secret/tune",
        Some(&openbao.token),
        Some(&tune),
    );
    assert_eq!((ours.status, theirs.status), (400, 204));
    let sentence = ours.body["errors"][0].as_str().unwrap();
    assert!(sentence.contains("tuning is not supported"), "{sentence}");

    // Authorized on sys/mounts/<mount>/tune, read.
    write_policy(
        &mut daemon.cli(),
        "tune-reader",
        "path \"sys/mounts/secret/tune\" { capabilities = [\"read\"] }\n",
    );
    let (reader, _) = create_token(&mut daemon.cli(), &["--policy", "tune-reader"]);
    let get = |mount: &str| {
        request(
            &daemon.addr,
            "GET",
            &format!("sys/mounts/{mount}/tune"),
            Some(&reader),
            None,
        )
        .status
    };
    assert_eq!((get("secret"), get("transit")), (200, 403));

    // hvac and the bao CLI read it.
    let seen = hvac(
        "import hvac, json, sys\n\
         c = hvac.Client(url=sys.argv[1], token=sys.argv[2])\n\
         print(json.dumps(c.sys.read_mount_configuration('secret')['data']))\n",
        &daemon.addr,
        &init.root_token,
    );
    assert_eq!(seen["options"], json!({"version": "2"}));
    assert_eq!(seen["max_lease_ttl"], 768 * 3600);
    let out = bao(
        &daemon.addr,
        Some(&init.root_token),
        dir.path(),
        &["read", "-format=json", "sys/mounts/transit/tune"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(read["data"]["default_lease_ttl"], 768 * 3600);
}
