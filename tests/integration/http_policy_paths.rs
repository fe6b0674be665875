//! Vault's policy paths (issue 15): one Vault policy, pasted unchanged into
//! OpenBao 2.6.2 and strongroom, and a token of it making the same kv v2,
//! transit and policy requests on both; each answer's status code must be
//! the same. Then the same policy's grants through strongroom's gRPC CLI,
//! authorized on the same paths.

use serde_json::{Value, json};

use crate::support::daemon::{tempdir, unsealed};
use crate::support::vault::{OpenBao, bao, request};

/// A Vault policy for an application, as an operator would write it.
const POLICY: &str = r#"
path "secret/data/app/*" { capabilities = ["create", "read", "update"] }
path "secret/data/app/ro" { capabilities = ["read"] }
path "secret/metadata/app" { capabilities = ["list"] }
path "secret/metadata/app/*" { capabilities = ["read"] }
path "secret/delete/app/*" { capabilities = ["update"] }
path "secret/destroy/app/gone" { capabilities = ["update"] }
path "transit/encrypt/k" { capabilities = ["update"] }
path "transit/keys/k" { capabilities = ["read"] }
path "transit/keys/k/rotate" { capabilities = ["update"] }
path "sys/policies/acl/*" { capabilities = ["read"] }
"#;

/// Sets up a peer as root: the policy, three secrets, two keys; returns a
/// token of the policy.
fn prepare(addr: &str, root: &str) -> String {
    let send = |method: &str, path: &str, body: Value| {
        let answer = request(addr, method, path, Some(root), Some(&body));
        assert!(answer.status < 300, "{path}: {:?}", answer.body);
    };
    send("PUT", "sys/policies/acl/app", json!({"policy": POLICY}));
    for path in ["db", "ro", "gone"] {
        send(
            "POST",
            &format!("secret/data/app/{path}"),
            json!({"data": {"v": "1"}}),
        );
    }
    send("POST", "transit/keys/k", json!({}));
    send("POST", "transit/keys/other", json!({}));
    let made = request(
        addr,
        "POST",
        "auth/token/create",
        Some(root),
        Some(&json!({"policies": ["app"]})),
    );
    assert_eq!(made.status, 200, "{:?}", made.body);
    made.body["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_vault_policy_grants_the_same_on_openbao_and_strongroom() {
    let theirs = OpenBao::start();
    let dir = tempdir();
    let (daemon, init) = unsealed(dir.path(), "");
    let their_token = prepare(&theirs.addr, &theirs.token);
    let our_token = prepare(&daemon.addr, &init.root_token);

    let plaintext = json!({"plaintext": "aGk="});
    let versions = json!({"versions": [1]});
    let write = json!({"data": {"v": "2"}});
    let cases: Vec<(&str, &str, Option<Value>, u16)> = vec![
        ("GET", "secret/data/app/db", None, 200),
        ("POST", "secret/data/app/db", Some(write.clone()), 200),
        ("POST", "secret/data/app/new", Some(write.clone()), 200),
        ("POST", "secret/data/app/ro", Some(write.clone()), 403),
        ("GET", "secret/data/other", None, 403),
        ("DELETE", "secret/data/app/db", None, 403),
        ("POST", "secret/delete/app/db", Some(versions.clone()), 204),
        (
            "POST",
            "secret/undelete/app/db",
            Some(versions.clone()),
            403,
        ),
        ("POST", "secret/destroy/app/db", Some(versions.clone()), 403),
        (
            "POST",
            "secret/destroy/app/gone",
            Some(versions.clone()),
            204,
        ),
        ("LIST", "secret/metadata/app", None, 200),
        ("LIST", "secret/metadata/", None, 403),
        ("GET", "secret/metadata/app/db", None, 200),
        (
            "POST",
            "secret/metadata/app/db",
            Some(json!({"max_versions": 3})),
            403,
        ),
        ("DELETE", "secret/metadata/app/db", None, 403),
        ("GET", "secret/config", None, 403),
        ("POST", "transit/encrypt/k", Some(plaintext.clone()), 200),
        (
            "POST",
            "transit/encrypt/other",
            Some(plaintext.clone()),
            403,
        ),
        (
            "POST",
            "transit/encrypt/missing",
            Some(plaintext.clone()),
            403,
        ),
        (
            "POST",
            "transit/decrypt/k",
            Some(json!({"ciphertext": "vault:v1:AAAA"})),
            403,
        ),
        (
            "POST",
            "transit/rewrap/k",
            Some(json!({"ciphertext": "vault:v1:AAAA"})),
            403,
        ),
        ("POST", "transit/datakey/plaintext/k", None, 403),
        ("POST", "transit/datakey/wrapped/k", None, 403),
        ("GET", "transit/keys/k", None, 200),
        ("LIST", "transit/keys", None, 403),
        ("POST", "transit/keys/k/rotate", None, 200),
        (
            "POST",
            "transit/keys/k/config",
            Some(json!({"deletion_allowed": true})),
            403,
        ),
        ("DELETE", "transit/keys/k", None, 403),
        ("POST", "transit/keys/new", None, 403),
        ("GET", "sys/policies/acl/app", None, 200),
        ("LIST", "sys/policies/acl", None, 403),
        (
            "PUT",
            "sys/policies/acl/x",
            Some(json!({"policy": POLICY})),
            403,
        ),
        (
            "POST",
            "auth/token/lookup",
            Some(json!({"token": "x"})),
            403,
        ),
    ];
    for (method, path, body, expected) in cases {
        let a = request(&daemon.addr, method, path, Some(&our_token), body.as_ref());
        let b = request(
            &theirs.addr,
            method,
            path,
            Some(&their_token),
            body.as_ref(),
        );
        assert_eq!(
            (a.status, b.status),
            (expected, expected),
            "{method} {path}: strongroom {:?}, OpenBao {:?}",
            a.body,
            b.body
        );
    }

    // The bao CLI with that token: the same exit codes on both servers
    // (0, or 2 for a refusal).
    let home = tempdir();
    for (args, code) in [
        (&["kv", "get", "secret/app/new"][..], 0),
        (&["kv", "list", "secret/app"], 0),
        (&["kv", "put", "secret/app/new", "v=3"], 0),
        // Refused PATCH (no `patch`): bao falls back to a read and a write,
        // recommending the capability (below).
        (&["kv", "patch", "secret/app/new", "v=4"], 0),
        (&["kv", "metadata", "get", "secret/app/new"], 0),
        (&["kv", "delete", "secret/app/new"], 2),
        (&["kv", "get", "secret/other"], 2),
        (&["policy", "read", "app"], 0),
    ] {
        let a = bao(&daemon.addr, Some(&our_token), home.path(), args);
        let b = bao(&theirs.addr, Some(&their_token), home.path(), args);
        assert_eq!(
            (a.status.code(), b.status.code()),
            (Some(code), Some(code)),
            "bao {args:?}: strongroom {}, OpenBao {}",
            String::from_utf8_lossy(&a.stderr),
            String::from_utf8_lossy(&b.stderr)
        );
    }

    let patched = bao(
        &daemon.addr,
        Some(&our_token),
        home.path(),
        &["kv", "patch", "secret/app/new", "v=5"],
    );
    assert!(
        String::from_utf8_lossy(&patched.stderr)
            .contains("we recommend that you add the \"patch\" capability"),
        "{}",
        String::from_utf8_lossy(&patched.stderr)
    );

    // strongroom's own CLI (gRPC) is authorized on the same paths.
    let cli = || {
        let mut cli = daemon.cli();
        cli.token(&our_token);
        cli
    };
    cli().run(&["kv", "get", "app/db"]).ok();
    cli().run(&["kv", "list", "app"]).ok();
    cli()
        .run(&["kv", "delete", "app/db"])
        .code(1)
        .error_says("secret/data/app/db needs the delete capability");
    cli()
        .run(&["kv", "delete", "--versions", "2", "app/db"])
        .ok();
    cli()
        .run(&["kv", "destroy", "--versions", "1", "app/db"])
        .code(1)
        .error_says("secret/destroy/app/db needs the update capability");
    cli().run_stdin(&["keys", "encrypt", "k"], "x").ok();
    cli()
        .run(&["keys", "datakey", "k"])
        .code(1)
        .error_says("transit/datakey/plaintext/k needs the update capability");
    cli().run(&["keys", "rotate", "k"]).ok();
    cli().run(&["policy", "read", "app"]).ok();
}

/// Policies on Vault's older policy API and on the newer one, each pasted
/// into both peers: the older paths are authorized on their own.
const OLD_API_POLICIES: [(&str, &str); 4] = [
    (
        "old-create",
        "path \"sys/policy/*\" { capabilities = [\"create\"] }\npath \"sys/policy\" { capabilities = [\"read\"] }\n",
    ),
    (
        "old-update",
        "path \"sys/policy/*\" { capabilities = [\"update\", \"read\", \"delete\"] }\npath \"sys/policy\" { capabilities = [\"list\"] }\n",
    ),
    // The usual admin rule: LIST sys/policy is the folder `sys/policy/`.
    (
        "old-glob-list",
        "path \"sys/policy/*\" { capabilities = [\"list\"] }\n",
    ),
    (
        "acl-only",
        "path \"sys/policies/acl/*\" { capabilities = [\"create\", \"update\", \"read\", \"delete\", \"list\"] }\npath \"sys/policies/acl\" { capabilities = [\"list\", \"read\"] }\n",
    ),
];

#[test]
fn the_older_policy_api_is_authorized_on_its_own_paths_as_openbao() {
    let theirs = OpenBao::start();
    let dir = tempdir();
    let (daemon, init) = unsealed(dir.path(), "");
    let peers = [
        (daemon.addr.as_str(), init.root_token.as_str()),
        (theirs.addr.as_str(), theirs.token.as_str()),
    ];
    let tokens: Vec<Vec<String>> = peers
        .iter()
        .map(|(addr, root)| {
            OLD_API_POLICIES
                .iter()
                .map(|(name, text)| {
                    let path = format!("sys/policies/acl/{name}");
                    let body = json!({ "policy": text });
                    let written = request(*addr, "PUT", &path, Some(root), Some(&body));
                    assert!(written.status < 300, "{:?}", written.body);
                    let body = json!({ "policies": [name] });
                    let made = request(*addr, "POST", "auth/token/create", Some(root), Some(&body));
                    made.body["auth"]["client_token"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .collect()
        })
        .collect();
    let text = json!({ "policy": "path \"a\" { capabilities = [\"read\"] }" });
    for (i, (name, _)) in OLD_API_POLICIES.iter().enumerate() {
        let old = format!("sys/policy/n-{name}");
        let new = format!("sys/policies/acl/m-{name}");
        let cases: [(&str, &str, Option<&Value>); 8] = [
            ("PUT", &old, Some(&text)),
            ("PUT", &old, Some(&text)),
            ("GET", &old, None),
            ("GET", "sys/policy", None),
            ("LIST", "sys/policy", None),
            ("DELETE", &old, None),
            ("PUT", &new, Some(&text)),
            ("GET", &new, None),
        ];
        for (method, path, body) in cases {
            let status = |peer: usize| {
                let answer = request(peers[peer].0, method, path, Some(&tokens[peer][i]), body);
                (answer.status, answer.body)
            };
            let (ours, theirs) = (status(0), status(1));
            assert_eq!(
                ours.0, theirs.0,
                "{name}: {method} {path}: strongroom {:?} vs OpenBao {:?}",
                ours.1, theirs.1
            );
        }
    }
}
