//! Vault's HTTP API for tokens (`auth/token/…`) and ACL policies
//! (`sys/policies/acl/…`, `sys/policy/…`): the same requests sent to
//! OpenBao 2.6.2 and strongroom side by side (status codes and JSON shapes,
//! errors included), the `bao` CLI and hvac against strongroom, and
//! periodic tokens renewed past what would be the 768-hour maximum.

use std::process::Command;

use serde_json::{Value, json};

use crate::http_transit::{Audited, huge_malformed};
use crate::support::cli::create_token;
use crate::support::daemon::{tempdir, unsealed};
use crate::support::vault::{Answer, OpenBao, bao, request, shape};

const APP_POLICY: &str = "path \"secret/data/*\" {\n  capabilities = [\"read\", \"list\"]\n}\n";
const CREATOR_POLICY: &str =
    "path \"auth/token/create\" {\n  capabilities = [\"create\", \"update\"]\n}\n";
const SUDOER_POLICY: &str =
    "path \"auth/token/create\" {\n  capabilities = [\"create\", \"update\", \"sudo\"]\n}\n";
const HOUR: u64 = 3600;
const MAX_TTL: u64 = 768 * HOUR;

/// One side of the comparison: an address and its root token.
struct Peer<'a> {
    addr: &'a str,
    root: &'a str,
}

impl Peer<'_> {
    fn send(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
        request(self.addr, method, path, token, body.as_ref())
    }

    fn root(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        self.send(method, path, Some(self.root), body)
    }

    /// A token made by root with `body`.
    fn token(&self, body: Value) -> String {
        let made = self.root("POST", "auth/token/create", Some(body));
        assert_eq!(made.status, 200, "{:?}", made.body);
        made.body["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

/// Asserts both answers have the same status and (for JSON bodies) shape.
fn same(what: &str, ours: &Answer, theirs: &Answer, ignore: &[&str]) {
    assert_eq!(
        ours.status, theirs.status,
        "{what}: strongroom {:?}, OpenBao {:?}",
        ours.body, theirs.body
    );
    assert_eq!(
        shape(&ours.body, ignore),
        shape(&theirs.body, ignore),
        "{what}: strongroom {:?}, OpenBao {:?}",
        ours.body,
        theirs.body
    );
}

/// Sends the same request to both peers (`token` chosen per peer) and
/// compares; returns both answers.
fn both(
    what: &str,
    peers: (&Peer<'_>, &Peer<'_>),
    method: &str,
    path: &str,
    tokens: (Option<&str>, Option<&str>),
    body: Option<Value>,
) -> (Answer, Answer) {
    let ours = peers.0.send(method, path, tokens.0, body.clone());
    let theirs = peers.1.send(method, path, tokens.1, body);
    same(what, &ours, &theirs, &[]);
    (ours, theirs)
}

#[test]
fn token_endpoints_answer_as_openbao_does() {
    let dir = tempdir();
    let (daemon, init) = unsealed(dir.path(), "");
    let openbao = OpenBao::start();
    let ours = Peer {
        addr: &daemon.addr,
        root: &init.root_token,
    };
    let theirs = Peer {
        addr: &openbao.addr,
        root: &openbao.token,
    };
    let peers = (&ours, &theirs);
    let roots = (Some(ours.root), Some(theirs.root));
    for (name, text) in [
        ("app", APP_POLICY),
        ("creator", CREATOR_POLICY),
        ("sudoer", SUDOER_POLICY),
    ] {
        let body = json!({ "policy": text });
        both(
            "policy write",
            peers,
            "PUT",
            &format!("sys/policies/acl/{name}"),
            roots,
            Some(body),
        );
    }

    // create, create-orphan: the auth block.
    let create = json!({"policies": ["app"], "ttl": "1h", "meta": {"team": "pay"},
                        "display_name": "ci job", "num_uses": 0, "renewable": true});
    let (a, b) = both(
        "create",
        peers,
        "POST",
        "auth/token/create",
        roots,
        Some(create),
    );
    assert_eq!(a.body["auth"]["lease_duration"], 3600);
    assert_eq!(
        a.body["auth"]["lease_duration"],
        b.body["auth"]["lease_duration"]
    );
    assert_eq!(a.body["auth"]["metadata"], json!({"team": "pay"}));
    assert_eq!(a.body["auth"]["orphan"], false);
    let child = (
        a.body["auth"]["client_token"].as_str().unwrap().to_string(),
        b.body["auth"]["client_token"].as_str().unwrap().to_string(),
    );
    let orphan = json!({"policies": ["app"], "ttl": 3600});
    let (a, b) = both(
        "create-orphan",
        peers,
        "POST",
        "auth/token/create-orphan",
        roots,
        Some(orphan),
    );
    assert_eq!(a.body["auth"]["orphan"], true);
    assert_eq!(b.body["auth"]["orphan"], true);
    let periodic = json!({"policies": ["app"], "period": "2h", "ttl": "5m"});
    let (a, b) = both(
        "create periodic",
        peers,
        "POST",
        "auth/token/create",
        roots,
        Some(periodic),
    );
    assert_eq!(
        a.body["auth"]["lease_duration"], 7200,
        "the period, not the ttl"
    );
    assert_eq!(b.body["auth"]["lease_duration"], 7200);
    let periodic = (
        a.body["auth"]["client_token"].as_str().unwrap().to_string(),
        b.body["auth"]["client_token"].as_str().unwrap().to_string(),
    );

    // lookup, lookup-self, lookup-accessor: the data.
    let lookup = |t: &str| Some(json!({ "token": t }));
    let a = ours.root("POST", "auth/token/lookup", lookup(&child.0));
    let b = theirs.root("POST", "auth/token/lookup", lookup(&child.1));
    same("lookup", &a, &b, &[]);
    assert_eq!(a.body["data"]["id"], child.0.as_str());
    // A lookup carries the token: JSON that no cache keeps.
    assert_eq!(a.headers["content-type"], "application/json");
    assert_eq!(a.headers["cache-control"], "no-store");
    assert_eq!(a.body["data"]["display_name"], "token-ci-job");
    assert_eq!(
        a.body["data"]["display_name"],
        b.body["data"]["display_name"]
    );
    assert_eq!(
        a.body["data"]["policies"],
        json!(["app"]),
        "no default policy"
    );
    assert!(a.body["data"].get("period").is_none());
    assert!(
        a.body["data"]["expire_time"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let a = ours.root("POST", "auth/token/lookup", lookup(&periodic.0));
    let b = theirs.root("POST", "auth/token/lookup", lookup(&periodic.1));
    same("lookup periodic", &a, &b, &[]);
    assert_eq!(a.body["data"]["period"], 7200);
    let accessor = (
        a.body["data"]["accessor"].as_str().unwrap().to_string(),
        b.body["data"]["accessor"].as_str().unwrap().to_string(),
    );
    let a = ours.root(
        "POST",
        "auth/token/lookup-accessor",
        Some(json!({"accessor": accessor.0})),
    );
    let b = theirs.root(
        "POST",
        "auth/token/lookup-accessor",
        Some(json!({"accessor": accessor.1})),
    );
    same("lookup-accessor", &a, &b, &[]);
    assert_eq!(
        a.body["data"]["id"], "",
        "an accessor never reveals its token"
    );
    let (a, _) = both(
        "lookup-self",
        peers,
        "GET",
        "auth/token/lookup-self",
        (Some(&periodic.0), Some(&periodic.1)),
        None,
    );
    assert_eq!(a.body["data"]["id"], periodic.0.as_str());
    let (a, _) = both(
        "lookup-self root",
        peers,
        "GET",
        "auth/token/lookup-self",
        roots,
        None,
    );
    assert_eq!(a.body["data"]["expire_time"], Value::Null);
    // lookup with no token is lookup-self, as OpenBao answers.
    both(
        "lookup {}",
        peers,
        "POST",
        "auth/token/lookup",
        roots,
        Some(json!({})),
    );

    // renew, renew-self: a periodic token gets its period whatever the increment.
    let renew = |t: &str| Some(json!({"token": t, "increment": "10h"}));
    let a = ours.root("POST", "auth/token/renew", renew(&periodic.0));
    let b = theirs.root("POST", "auth/token/renew", renew(&periodic.1));
    same("renew", &a, &b, &[]);
    assert_eq!(a.body["auth"]["lease_duration"], 7200);
    assert_eq!(a.body["auth"]["client_token"], periodic.0.as_str());
    let (a, _) = both(
        "renew-self",
        peers,
        "PUT",
        "auth/token/renew-self",
        (Some(&periodic.0), Some(&periodic.1)),
        Some(json!({"increment": 0})),
    );
    assert_eq!(a.body["auth"]["lease_duration"], 7200);
    both(
        "lookup-self after renewal",
        peers,
        "GET",
        "auth/token/lookup-self",
        (Some(&periodic.0), Some(&periodic.1)),
        None,
    );

    // accessors (LIST, sudo).
    let (a, _) = both(
        "accessors",
        peers,
        "LIST",
        "auth/token/accessors",
        roots,
        None,
    );
    assert!(
        a.body["data"]["keys"]
            .as_array()
            .unwrap()
            .contains(&json!(accessor.0))
    );

    // revoke-accessor; the revoked token is gone everywhere.
    let a = ours.root(
        "POST",
        "auth/token/revoke-accessor",
        Some(json!({"accessor": accessor.0})),
    );
    let b = theirs.root(
        "POST",
        "auth/token/revoke-accessor",
        Some(json!({"accessor": accessor.1})),
    );
    same("revoke-accessor", &a, &b, &[]);
    assert_eq!(a.status, 204);
    let a = ours.root("POST", "auth/token/lookup", lookup(&periodic.0));
    let b = theirs.root("POST", "auth/token/lookup", lookup(&periodic.1));
    same("lookup of a revoked token", &a, &b, &[]);
    assert_eq!(a.status, 403);
    let a = ours.root(
        "POST",
        "auth/token/lookup-accessor",
        Some(json!({"accessor": accessor.0})),
    );
    let b = theirs.root(
        "POST",
        "auth/token/lookup-accessor",
        Some(json!({"accessor": accessor.1})),
    );
    same("lookup-accessor of a revoked token", &a, &b, &[]);
    assert_eq!(a.status, 400);
    let a = ours.root(
        "POST",
        "auth/token/revoke-accessor",
        Some(json!({"accessor": accessor.0})),
    );
    let b = theirs.root(
        "POST",
        "auth/token/revoke-accessor",
        Some(json!({"accessor": accessor.1})),
    );
    same("revoke-accessor again", &a, &b, &[]);
    assert_eq!(a.body["warnings"], b.body["warnings"]);
    let (a, _) = both(
        "lookup-self with a revoked token",
        peers,
        "GET",
        "auth/token/lookup-self",
        (Some(&periodic.0), Some(&periodic.1)),
        None,
    );
    assert_eq!(a.status, 403);

    // revoke, revoke-self.
    let a = ours.root("POST", "auth/token/revoke", Some(json!({"token": child.0})));
    let b = theirs.root("POST", "auth/token/revoke", Some(json!({"token": child.1})));
    same("revoke", &a, &b, &[]);
    assert_eq!(a.status, 204);
    let gone = ours.send("GET", "auth/token/lookup-self", Some(&child.0), None);
    assert_eq!(gone.status, 403);
    let t = (
        ours.token(json!({"policies": ["app"]})),
        theirs.token(json!({"policies": ["app"]})),
    );
    let (a, _) = both(
        "revoke-self",
        peers,
        "PUT",
        "auth/token/revoke-self",
        (Some(&t.0), Some(&t.1)),
        None,
    );
    assert_eq!(a.status, 204);
    both(
        "after revoke-self",
        peers,
        "GET",
        "auth/token/lookup-self",
        (Some(&t.0), Some(&t.1)),
        None,
    );

    // A ttl over the maximum is capped with Vault's warning.
    let (a, b) = both(
        "create ttl 800h",
        peers,
        "POST",
        "auth/token/create",
        roots,
        Some(json!({"ttl": "800h", "policies": ["app"]})),
    );
    assert_eq!(a.body["auth"]["lease_duration"], MAX_TTL);
    assert_eq!(a.body["warnings"], b.body["warnings"]);
    let (a, _) = both(
        "create period 800h",
        peers,
        "POST",
        "auth/token/create",
        roots,
        Some(json!({"period": "800h", "policies": ["app"]})),
    );
    assert_eq!(a.body["auth"]["lease_duration"], MAX_TTL);

    // explicit_max_ttl caps the ttl, with Vault's warning, and shows in lookups.
    let capped = Some(json!({"ttl": "1h", "explicit_max_ttl": "30m", "policies": ["app"]}));
    let (a, b) = both(
        "create explicit_max_ttl",
        peers,
        "POST",
        "auth/token/create",
        roots,
        capped,
    );
    assert_eq!(a.body["auth"]["lease_duration"], 1800);
    assert_eq!(a.body["warnings"], b.body["warnings"]);
    let t = (
        a.body["auth"]["client_token"].as_str().unwrap().to_string(),
        b.body["auth"]["client_token"].as_str().unwrap().to_string(),
    );
    let (a, _) = both(
        "lookup explicit_max_ttl",
        peers,
        "GET",
        "auth/token/lookup-self",
        (Some(&t.0), Some(&t.1)),
        None,
    );
    assert_eq!(a.body["data"]["explicit_max_ttl"], 1800);

    // Bad input: the same codes, one sentence each.
    let bad: &[(&str, &str, Option<Value>, u16)] = &[
        (
            "POST",
            "auth/token/create",
            Some(json!({"ttl": "banana"})),
            400,
        ),
        (
            "POST",
            "auth/token/create",
            Some(json!({"period": "soon"})),
            400,
        ),
        (
            "POST",
            "auth/token/create",
            Some(json!({"num_uses": "x"})),
            400,
        ),
        (
            "POST",
            "auth/token/create",
            Some(json!({"num_uses": -1})),
            400,
        ),
        ("POST", "auth/token/create", Some(json!({"ttl": -5})), 400),
        (
            "POST",
            "auth/token/create",
            Some(json!({"renewable": "maybe"})),
            400,
        ),
        ("POST", "auth/token/create", Some(json!([])), 400),
        ("GET", "auth/token/create", None, 405),
        ("POST", "auth/token/accessors", None, 405),
        ("GET", "auth/token/renew-self", None, 405),
        ("GET", "auth/token/lookup-accessor", None, 405),
        ("GET", "auth/token/no-such-thing", None, 404),
        ("POST", "auth/token/renew", Some(json!({})), 400),
        (
            "POST",
            "auth/token/renew",
            Some(json!({"token": "sr.nonexistent"})),
            400,
        ),
        ("POST", "auth/token/revoke", Some(json!({})), 400),
        (
            "POST",
            "auth/token/revoke",
            Some(json!({"token": "sr.nonexistent"})),
            204,
        ),
        (
            "POST",
            "auth/token/lookup",
            Some(json!({"token": "sr.nonexistent"})),
            403,
        ),
        ("POST", "auth/token/lookup-accessor", Some(json!({})), 400),
        ("POST", "auth/token/revoke-accessor", Some(json!({})), 400),
        // The root token never expires: nothing to renew.
        ("PUT", "auth/token/renew-self", Some(json!({})), 400),
    ];
    for (method, path, body, code) in bad {
        let (a, _) = both(
            &format!("{method} {path} {body:?}"),
            peers,
            method,
            path,
            roots,
            body.clone(),
        );
        assert_eq!(a.status, *code, "{method} {path}: {:?}", a.body);
        if a.status >= 400 {
            let errors = a.body["errors"].as_array().unwrap();
            assert_eq!(errors.len(), 1, "{:?}", a.body);
            let sentence = errors[0].as_str().unwrap();
            assert!(
                !sentence.contains("Error(") && sentence.len() < 300,
                "{sentence}"
            );
        }
    }
    let malformed = crate::support::vault::raw(
        ours.addr,
        "POST",
        "/v1/auth/token/create",
        Some(ours.root),
        Some(b"{bad"),
    );
    assert_eq!(malformed.status, 400);
    assert!(
        malformed.body["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("failed to decode JSON input")
    );
    let unknown = ours.send("GET", "auth/token/lookup-self", Some("bogus"), None);
    let theirs_unknown = theirs.send("GET", "auth/token/lookup-self", Some("bogus"), None);
    same("an unknown token", &unknown, &theirs_unknown, &[]);

    // Without sudo: no list of accessors, no orphan, no lookup of another.
    let app = (
        ours.token(json!({"policies": ["app"]})),
        theirs.token(json!({"policies": ["app"]})),
    );
    let apps = (Some(app.0.as_str()), Some(app.1.as_str()));
    let (a, _) = both(
        "accessors without sudo",
        peers,
        "LIST",
        "auth/token/accessors",
        apps,
        None,
    );
    assert_eq!(a.status, 403);
    let (a, _) = both(
        "lookup without a policy",
        peers,
        "POST",
        "auth/token/lookup",
        apps,
        Some(json!({"token": "sr.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"})),
    );
    assert_eq!(a.status, 403);
    let creator = (
        ours.token(json!({"policies": ["creator"]})),
        theirs.token(json!({"policies": ["creator"]})),
    );
    let creators = (Some(creator.0.as_str()), Some(creator.1.as_str()));
    let (a, _) = both(
        "create-orphan without sudo",
        peers,
        "POST",
        "auth/token/create-orphan",
        creators,
        Some(json!({"policies": ["creator"]})),
    );
    assert_eq!(a.status, 403);
    // A periodic token needs sudo (or root) on both; OpenBao answers 400,
    // strongroom 403 as for every refusal by policy (docs/DECISIONS.md).
    let periodic = Some(json!({"policies": ["creator"], "period": "1h"}));
    let a = ours.send("POST", "auth/token/create", creators.0, periodic.clone());
    let b = theirs.send("POST", "auth/token/create", creators.1, periodic);
    assert_eq!(
        (a.status, b.status),
        (403, 400),
        "{:?} {:?}",
        a.body,
        b.body
    );
    assert!(
        a.body["errors"][0].as_str().unwrap().contains("sudo"),
        "{:?}",
        a.body
    );
    let (a, _) = both(
        "create by a creator",
        peers,
        "POST",
        "auth/token/create",
        creators,
        Some(json!({"policies": ["creator"], "ttl": "10m"})),
    );
    assert_eq!(a.body["auth"]["lease_duration"], 600);
    // Renewing another token needs update on auth/token/renew.
    let (a, _) = both(
        "renew of another without a policy",
        peers,
        "POST",
        "auth/token/renew",
        creators,
        Some(json!({"token": "sr.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"})),
    );
    assert_eq!(a.status, 403);
    // With sudo on auth/token/create, not root: a periodic token.
    let sudoer = (
        ours.token(json!({"policies": ["sudoer"]})),
        theirs.token(json!({"policies": ["sudoer"]})),
    );
    let (a, _) = both(
        "create periodic with sudo",
        peers,
        "POST",
        "auth/token/create",
        (Some(&sudoer.0), Some(&sudoer.1)),
        Some(json!({"policies": ["sudoer"], "period": "1h"})),
    );
    assert_eq!(a.body["auth"]["lease_duration"], 3600);
}

#[test]
fn policy_endpoints_answer_as_openbao_does() {
    let dir = tempdir();
    let (daemon, init) = unsealed(dir.path(), "");
    let openbao = OpenBao::start();
    let ours = Peer {
        addr: &daemon.addr,
        root: &init.root_token,
    };
    let theirs = Peer {
        addr: &openbao.addr,
        root: &openbao.token,
    };
    let peers = (&ours, &theirs);
    let roots = (Some(ours.root), Some(theirs.root));
    // strongroom keeps no version or modification time of a policy.
    let unkept = ["modified", "version"];

    let (a, _) = both(
        "write",
        peers,
        "PUT",
        "sys/policies/acl/app",
        roots,
        Some(json!({"policy": APP_POLICY})),
    );
    assert_eq!(a.status, 204);
    let a = ours.root("GET", "sys/policies/acl/app", None);
    let b = theirs.root("GET", "sys/policies/acl/app", None);
    same("read", &a, &b, &unkept);
    assert_eq!(a.body["data"]["policy"], APP_POLICY);
    assert_eq!(a.body["data"]["name"], "app");
    let a = ours.root("GET", "sys/policy/app", None);
    let b = theirs.root("GET", "sys/policy/app", None);
    same("read (sys/policy)", &a, &b, &unkept);
    assert_eq!(a.body["rules"], APP_POLICY);
    for (method, path) in [
        ("LIST", "sys/policies/acl"),
        ("GET", "sys/policies/acl?list=true"),
        ("GET", "sys/policy"),
        ("LIST", "sys/policy"),
    ] {
        let (a, _) = both(
            &format!("{method} {path}"),
            peers,
            method,
            path,
            roots,
            None,
        );
        assert!(
            a.body["data"]["keys"]
                .as_array()
                .unwrap()
                .contains(&json!("app")),
            "{path}"
        );
    }
    // The old API's deprecated `rules`, and names lower-cased: 200 with a warning.
    let (a, _) = both(
        "write rules",
        peers,
        "PUT",
        "sys/policy/old",
        roots,
        Some(json!({"rules": APP_POLICY})),
    );
    assert_eq!(a.status, 200);
    let (a, _) = both(
        "write Upper",
        peers,
        "PUT",
        "sys/policies/acl/Upper",
        roots,
        Some(json!({"policy": APP_POLICY})),
    );
    assert_eq!(a.status, 200);
    let a = ours.root("GET", "sys/policies/acl/UPPER", None);
    assert_eq!(a.body["data"]["name"], "upper");

    let bad: &[(&str, &str, Option<Value>, u16)] = &[
        ("GET", "sys/policies/acl/nope", None, 404),
        ("GET", "sys/policy/nope", None, 404),
        ("DELETE", "sys/policies/acl/nope", None, 204),
        ("DELETE", "sys/policy/nope", None, 204),
        (
            "PUT",
            "sys/policies/acl/bad",
            Some(json!({"policy": "path \"x\" { capabilities = [\"reed\"] }"})),
            400,
        ),
        (
            "PUT",
            "sys/policies/acl/bad",
            Some(json!({"policy": "not hcl {"})),
            400,
        ),
        ("PUT", "sys/policies/acl/bad", Some(json!({})), 400),
        (
            "PUT",
            "sys/policies/acl/bad",
            Some(json!({"policy": 5})),
            400,
        ),
        (
            "PUT",
            "sys/policies/acl/root",
            Some(json!({"policy": APP_POLICY})),
            400,
        ),
        ("DELETE", "sys/policies/acl/root", None, 400),
        ("GET", "sys/policies/acl", None, 405),
        ("GET", "sys/policies/acl/", None, 405),
        ("LIST", "sys/policies/acl/app", None, 404),
    ];
    for (method, path, body, code) in bad {
        let (a, _) = both(
            &format!("{method} {path} {body:?}"),
            peers,
            method,
            path,
            roots,
            body.clone(),
        );
        assert_eq!(a.status, *code, "{method} {path}: {:?}", a.body);
    }

    // Without a policy that allows it: refused alike.
    let app = (
        ours.token(json!({"policies": ["app"]})),
        theirs.token(json!({"policies": ["app"]})),
    );
    let apps = (Some(app.0.as_str()), Some(app.1.as_str()));
    let (a, _) = both(
        "write without a policy",
        peers,
        "PUT",
        "sys/policies/acl/mine",
        apps,
        Some(json!({"policy": APP_POLICY})),
    );
    assert_eq!(a.status, 403);
    both(
        "read without a policy",
        peers,
        "GET",
        "sys/policies/acl/app",
        apps,
        None,
    );

    let (a, _) = both(
        "delete",
        peers,
        "DELETE",
        "sys/policies/acl/app",
        roots,
        None,
    );
    assert_eq!(a.status, 204);
    both(
        "read deleted",
        peers,
        "GET",
        "sys/policies/acl/app",
        roots,
        None,
    );
}

/// Runs `bao` against strongroom and returns its stdout; fails on a
/// non-zero exit.
fn bao_ok(addr: &str, token: &str, home: &std::path::Path, args: &[&str]) -> String {
    let out = bao(addr, Some(token), home, args);
    assert!(
        out.status.success(),
        "bao {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_bao_cli_manages_tokens_and_policies() {
    let dir = tempdir();
    let audit = dir.path().join("audit.log");
    let (daemon, init) = unsealed(
        dir.path(),
        &format!("audit \"file\" {{\n  path = \"{}\"\n}}\n", audit.display()),
    );
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let (addr, root) = (daemon.addr.as_str(), init.root_token.as_str());
    let file = dir.path().join("app.hcl");
    std::fs::write(&file, APP_POLICY).unwrap();

    let out = bao_ok(
        addr,
        root,
        &home,
        &["policy", "write", "app", file.to_str().unwrap()],
    );
    assert!(out.contains("Success! Uploaded policy: app"), "{out}");
    assert_eq!(
        bao_ok(addr, root, &home, &["policy", "read", "app"]).trim(),
        APP_POLICY.trim()
    );
    let list = bao_ok(addr, root, &home, &["policy", "list"]);
    assert_eq!(list.lines().collect::<Vec<_>>(), ["app", "root"]);

    let made = bao_ok(
        addr,
        root,
        &home,
        &["token", "create", "-policy=app", "-ttl=1h", "-format=json"],
    );
    let made: Value = serde_json::from_str(&made).unwrap();
    assert_eq!(made["auth"]["lease_duration"], 3600);
    assert_eq!(made["auth"]["policies"], json!(["app"]));
    let token = made["auth"]["client_token"].as_str().unwrap();
    let periodic = bao_ok(
        addr,
        root,
        &home,
        &[
            "token",
            "create",
            "-policy=app",
            "-period=2h",
            "-field=token",
        ],
    );
    let periodic = periodic.trim();

    let looked = bao_ok(addr, root, &home, &["token", "lookup", periodic]);
    assert!(
        looked
            .lines()
            .any(|l| l.split_whitespace().eq(["period", "2h"])),
        "{looked}"
    );
    assert!(
        looked
            .lines()
            .any(|l| l.split_whitespace().eq(["policies", "[app]"])),
        "{looked}"
    );
    let accessor = made["auth"]["accessor"].as_str().unwrap();
    let by_accessor = bao_ok(
        addr,
        root,
        &home,
        &["token", "lookup", "-accessor", accessor],
    );
    assert!(
        by_accessor
            .lines()
            .any(|l| l.split_whitespace().eq(["id", "n/a"])),
        "{by_accessor}"
    );
    assert!(by_accessor.contains(accessor));
    let own = bao_ok(addr, token, &home, &["token", "lookup"]);
    assert!(own.contains(token), "{own}");

    let renewed = bao_ok(addr, root, &home, &["token", "renew", periodic]);
    assert!(
        renewed
            .lines()
            .any(|l| l.split_whitespace().eq(["token_duration", "2h"])),
        "{renewed}"
    );
    let renewed = bao_ok(addr, token, &home, &["token", "renew", "-increment=2h"]);
    assert!(
        renewed
            .lines()
            .any(|l| l.split_whitespace().eq(["token_duration", "2h"])),
        "{renewed}"
    );

    let revoked = bao_ok(addr, root, &home, &["token", "revoke", token]);
    assert!(revoked.contains("Success! Revoked token"), "{revoked}");
    let gone = bao(addr, Some(root), &home, &["token", "lookup", token]);
    assert_eq!(gone.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("Code: 403"));

    let deleted = bao_ok(addr, root, &home, &["policy", "delete", "app"]);
    assert!(
        deleted.contains("Success! Deleted policy: app"),
        "{deleted}"
    );
    let read = bao(addr, Some(root), &home, &["policy", "read", "app"]);
    assert_eq!(read.status.code(), Some(2));

    // Audited as the gRPC calls are, with no token in the clear.
    let lines = std::fs::read_to_string(&audit).unwrap();
    for secret in [root, token, periodic] {
        assert!(
            !lines.contains(secret),
            "a token is in the audit log in the clear"
        );
    }
    let operations: std::collections::BTreeSet<String> = lines
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["operation"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for operation in [
        "token.Create",
        "token.Lookup",
        "token.LookupSelf",
        "token.Renew",
        "token.Revoke",
        "policy.Put",
        "policy.Get",
        "policy.List",
        "policy.Delete",
    ] {
        assert!(
            operations.contains(operation),
            "{operation} not audited: {operations:?}"
        );
    }
}

#[test]
fn hvac_creates_renews_and_revokes_tokens_and_writes_policies() {
    let dir = tempdir();
    let (daemon, init) = unsealed(dir.path(), "");
    let script = r#"
import json, sys, hvac
addr, root, policy = sys.argv[1], sys.argv[2], sys.argv[3]
client = hvac.Client(url=addr, token=root)
client.sys.create_or_update_policy(name="app", policy=policy)
out = {"rules": client.sys.read_policy(name="app")["data"]["rules"]}
made = client.auth.token.create(policies=["app"], ttl="1h", period="2h")
token = made["auth"]["client_token"]
app = hvac.Client(url=addr, token=token)
out["self"] = app.auth.token.lookup_self()["data"]
out["renewed"] = app.auth.token.renew_self()["auth"]
out["authenticated"] = app.is_authenticated()
app.auth.token.revoke_self()
out["after_revoke"] = app.is_authenticated()
print(json.dumps(out))
"#;
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python"))
        .args(["-c", script, &daemon.addr, &init.root_token, APP_POLICY])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out["rules"], APP_POLICY);
    assert_eq!(out["self"]["policies"], json!(["app"]));
    assert_eq!(out["self"]["period"], 7200);
    assert_eq!(out["renewed"]["lease_duration"], 7200);
    assert_eq!(out["authenticated"], true);
    assert_eq!(out["after_revoke"], false);
}

/// Seconds since the epoch of an RFC 3339 time in whole seconds, UTC.
fn unix_of(rfc3339: &str) -> u64 {
    let digits = |range: std::ops::Range<usize>| rfc3339[range].parse::<i64>().unwrap();
    let (y, m, d) = (digits(0..4), digits(5..7), digits(8..10));
    let (hh, mm, ss) = (digits(11..13), digits(14..16), digits(17..19));
    // Howard Hinnant's days-from-civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).unwrap()
}

#[test]
fn a_periodic_token_renews_past_the_768_hour_maximum() {
    let dir = tempdir();
    let (daemon, init) = unsealed(dir.path(), "");
    let ours = Peer {
        addr: &daemon.addr,
        root: &init.root_token,
    };
    // A token of the longest period: good for 768 h from each renewal.
    let periodic = ours.token(json!({"period": "768h", "policies": ["app"]}));
    let looked = ours.send("GET", "auth/token/lookup-self", Some(&periodic), None);
    let created = looked.body["data"]["creation_time"].as_u64().unwrap();
    let expire = unix_of(looked.body["data"]["expire_time"].as_str().unwrap());
    assert_eq!(expire, created + MAX_TTL);
    assert_eq!(looked.body["data"]["period"], MAX_TTL);
    // Renewed in a later second than it was made (bounded wait), so the
    // renewal's expiry is strictly past creation + 768 h.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while strongroom::time::now_unix() <= created {
        assert!(
            std::time::Instant::now() < deadline,
            "the clock did not move"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let renewed = ours.send(
        "PUT",
        "auth/token/renew-self",
        Some(&periodic),
        Some(json!({})),
    );
    assert_eq!(renewed.status, 200, "{:?}", renewed.body);
    assert_eq!(renewed.body["auth"]["lease_duration"], MAX_TTL);
    // After a renewal it expires a whole period after the renewal: at or
    // past creation + 768 h, which a token that is not periodic never passes.
    let looked = ours.send("GET", "auth/token/lookup-self", Some(&periodic), None);
    let renewal = looked.body["data"]["last_renewal_time"].as_u64().unwrap();
    let expire = unix_of(looked.body["data"]["expire_time"].as_str().unwrap());
    assert_eq!(expire, renewal + MAX_TTL);
    assert!(renewal > created);
    assert!(
        expire > created + MAX_TTL,
        "a periodic token outlives 768 h"
    );

    // Not periodic: an increment past the maximum stops at creation + 768 h.
    let plain = ours.token(json!({"ttl": "1h", "policies": ["app"]}));
    let renewed = ours.send(
        "PUT",
        "auth/token/renew-self",
        Some(&plain),
        Some(json!({"increment": "800h"})),
    );
    assert_eq!(renewed.status, 200, "{:?}", renewed.body);
    let looked = ours.send("GET", "auth/token/lookup-self", Some(&plain), None);
    let created = looked.body["data"]["creation_time"].as_u64().unwrap();
    assert_eq!(
        unix_of(looked.body["data"]["expire_time"].as_str().unwrap()),
        created + MAX_TTL
    );
    assert!(looked.body["data"].get("period").is_none());

    // On gRPC and the CLI: --period, sudo needed, shown by lookups.
    let mut cli = daemon.cli();
    let (token, auth) = create_token(&mut cli, &["--period", "2h", "--policy", "app"]);
    assert_eq!(auth["period"], 7200);
    assert!(
        (1..=7200).contains(&auth["ttl"].as_u64().unwrap()),
        "{auth}"
    );
    let looked = daemon
        .cli()
        .run(&["token", "lookup", &token, "--format", "json"])
        .ok()
        .json();
    assert_eq!(looked["period"], 7200);
    let creator_file = dir.path().join("creator.hcl");
    std::fs::write(&creator_file, CREATOR_POLICY).unwrap();
    daemon
        .cli()
        .run(&["policy", "write", "creator", creator_file.to_str().unwrap()])
        .ok();
    let (creator, _) = create_token(&mut daemon.cli(), &["--policy", "creator"]);
    daemon
        .cli()
        .token(&creator)
        .run(&["token", "create", "--period", "1h"])
        .error_says("sudo");
    // Without --period the same caller makes a child as before.
    create_token(daemon.cli().token(&creator), &["--ttl", "10m"]);
}

#[test]
fn bad_token_and_policy_input_is_refused_at_the_gate_in_bounded_audit_lines() {
    let dir = tempdir();
    let log = dir.path().join("audit.log");
    let (daemon, init) = unsealed(
        dir.path(),
        &format!("audit \"file\" {{ path = \"{}\" }}\n", log.display()),
    );
    let ours = Audited {
        addr: &daemon.addr,
        token: &init.root_token,
        log: &log,
    };
    // A token's shape, which must never reach a log.
    let hidden = "s.HiddenTokenValue0123456789";
    let decode = "failed to decode JSON input";
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "auth/token/create",
            br#"{"ttl": []}"#.to_vec(),
            "token.Create",
            "ttl is not a duration: a list",
        ),
        (
            "auth/token/create",
            br#"{"policies": 7}"#.to_vec(),
            "token.Create",
            "policies must be a list of strings, not 7",
        ),
        (
            "auth/token/create",
            br#"{"meta": {"team": ["a"]}}"#.to_vec(),
            "token.Create",
            "meta must be an object of strings, not a list",
        ),
        (
            "auth/token/create",
            huge_malformed("id", hidden),
            "token.Create",
            decode,
        ),
        (
            "auth/token/renew",
            br#"{"token": ["x"]}"#.to_vec(),
            "token.Renew",
            "token must be a string, not a list",
        ),
        (
            "auth/token/renew",
            huge_malformed("token", hidden),
            "token.Renew",
            decode,
        ),
        (
            "auth/token/lookup",
            br#"{"token": {}}"#.to_vec(),
            "token.Lookup",
            "token must be a string, not an object",
        ),
        (
            "auth/token/lookup",
            huge_malformed("token", hidden),
            "token.Lookup",
            decode,
        ),
        // A whole body that is the token itself, as a JSON string: serde's
        // own words would quote it.
        (
            "auth/token/lookup",
            format!("\"{hidden}\"").into_bytes(),
            "token.Lookup",
            decode,
        ),
        (
            "sys/policies/acl/app",
            format!("{{\"policy\": {{\"x\": \"{hidden}\"}}}}").into_bytes(),
            "policy.Put",
            decode,
        ),
        (
            "auth/token/lookup-accessor",
            br#"{"accessor": []}"#.to_vec(),
            "token.Lookup",
            "accessor must be a string, not a list",
        ),
        (
            "auth/token/revoke",
            br#"{"token": [1]}"#.to_vec(),
            "token.Revoke",
            "token must be a string, not a list",
        ),
        (
            "auth/token/revoke-accessor",
            br#"{"accessor": true}"#.to_vec(),
            "token.RevokeAccessor",
            "accessor must be a string, not a boolean",
        ),
        (
            "auth/token/revoke-accessor",
            huge_malformed("accessor", hidden),
            "token.RevokeAccessor",
            decode,
        ),
        (
            "sys/policies/acl/app",
            br#"{"policy": 7}"#.to_vec(),
            "policy.Put",
            "failed to decode JSON input: a value of the wrong type or form where a string was expected",
        ),
        (
            "sys/policies/acl/app",
            huge_malformed("policy", hidden),
            "policy.Put",
            decode,
        ),
        (
            "sys/policy/app",
            br#"{"rules": []}"#.to_vec(),
            "policy.PutOld",
            decode,
        ),
    ];
    for (path, body, operation, sentence) in &cases {
        ours.refuses(path, body, operation, sentence, hidden);
    }
    // The refused writes wrote nothing.
    let root = Some(init.root_token.as_str());
    let read = request(&daemon.addr, "GET", "sys/policies/acl/app", root, None);
    assert_eq!(read.status, 404, "{:?}", read.body);
    let listed = request(&daemon.addr, "LIST", "auth/token/accessors", root, None);
    assert_eq!(listed.body["data"]["keys"].as_array().unwrap().len(), 1);
}

/// Per peer: policies `update-create` and `create-create` granting only
/// that capability on `auth/token/create`, and a token of each.
fn token_makers(peer: &Peer<'_>) -> (String, String) {
    let mut made = Vec::new();
    for capability in ["update", "create"] {
        let name = format!("{capability}-create");
        let policy =
            format!("path \"auth/token/create\" {{ capabilities = [\"{capability}\"] }}\n");
        let written = peer.root(
            "PUT",
            &format!("sys/policies/acl/{name}"),
            Some(json!({ "policy": policy })),
        );
        assert!(written.status < 300, "{:?}", written.body);
        made.push(peer.token(json!({ "policies": [name] })));
    }
    (made[0].clone(), made[1].clone())
}

#[test]
fn token_create_takes_update_as_vault_asks_and_create_as_strongroom_did() {
    let theirs = OpenBao::start();
    let dir = tempdir();
    let (daemon, init) = unsealed(dir.path(), "");
    let ours = Peer {
        addr: &daemon.addr,
        root: &init.root_token,
    };
    let theirs_peer = Peer {
        addr: &theirs.addr,
        root: &theirs.token,
    };
    let (our_updater, our_creator) = token_makers(&ours);
    let (their_updater, their_creator) = token_makers(&theirs_peer);
    let child = |policy: &str| Some(json!({ "policies": [policy] }));
    let a = ours.send(
        "POST",
        "auth/token/create",
        Some(&our_updater),
        child("update-create"),
    );
    let b = theirs_peer.send(
        "POST",
        "auth/token/create",
        Some(&their_updater),
        child("update-create"),
    );
    assert_eq!(
        (a.status, b.status),
        (200, 200),
        "{:?} {:?}",
        a.body,
        b.body
    );
    // `create` alone: OpenBao refuses; strongroom keeps the grant its
    // policies had (docs/DECISIONS.md).
    let a = ours.send(
        "POST",
        "auth/token/create",
        Some(&our_creator),
        child("create-create"),
    );
    let b = theirs_peer.send(
        "POST",
        "auth/token/create",
        Some(&their_creator),
        child("create-create"),
    );
    assert_eq!(
        (a.status, b.status),
        (200, 403),
        "{:?} {:?}",
        a.body,
        b.body
    );
    // The bao CLI (a POST to auth/token/create) with `update` on both.
    let home = tempfile::tempdir().unwrap();
    for (addr, token) in [
        (ours.addr, &our_updater),
        (theirs_peer.addr, &their_updater),
    ] {
        let out = bao_ok(
            addr,
            token,
            home.path(),
            &["token", "create", "-policy=update-create", "-format=json"],
        );
        let made: Value = serde_json::from_str(&out).unwrap();
        assert!(made["auth"]["client_token"].is_string(), "{addr}: {out}");
    }
    // strongroom's CLI over gRPC, with either.
    for token in [&our_updater, &our_creator] {
        let mut cli = daemon.cli();
        cli.token(token);
        let (made, _) = create_token(&mut cli, &[]);
        assert!(!made.is_empty());
    }
    // Neither is a token with no grant on the path.
    let nothing = ours.token(json!({ "policies": ["default"] }));
    let refused = ours.send("POST", "auth/token/create", Some(&nothing), Some(json!({})));
    assert_eq!(refused.status, 403, "{:?}", refused.body);
}

#[test]
fn a_token_create_audit_line_shows_its_lifetimes_and_hmaced_meta_on_both_transports() {
    let dir = tempdir();
    let log = dir.path().join("audit.log");
    let (daemon, init) = unsealed(
        dir.path(),
        &format!("audit \"file\" {{ path = \"{}\" }}\n", log.display()),
    );
    let root = init.root_token.as_str();
    let label = "payments-ledger-7731";
    let made = request(
        &daemon.addr,
        "POST",
        "auth/token/create",
        Some(root),
        Some(&json!({"explicit_max_ttl": "1h", "ttl": "30m", "meta": {"team": label}})),
    );
    assert_eq!(made.status, 200, "{:?}", made.body);
    let mut cli = daemon.cli();
    cli.token(root);
    create_token(&mut cli, &["--ttl", "10m"]);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(label), "a meta value in the clear");
    let requests: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["operation"] == "token.Create" && l["type"] == "request")
        .collect();
    assert_eq!(requests.len(), 2, "{requests:?}");
    let (http, grpc) = (&requests[0]["data"], &requests[1]["data"]);
    assert_eq!(http["explicit_max_ttl_seconds"], 3600, "{http}");
    assert_eq!(http["ttl_seconds"], 1800, "{http}");
    let team = http["meta"]["team"].as_str().unwrap_or_default();
    assert!(team.starts_with("hmac-sha256:"), "{http}");
    // The same fields, whatever the transport.
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(http), keys(grpc), "{http} vs {grpc}");
    assert_eq!(grpc["ttl_seconds"], 600, "{grpc}");
    // The HMAC is the audit device's, as sys/audit-hash gives it.
    let hashed = request(
        &daemon.addr,
        "POST",
        "sys/audit-hash/file",
        Some(root),
        Some(&json!({ "input": label })),
    );
    assert_eq!(hashed.status, 200, "{:?}", hashed.body);
    assert_eq!(hashed.body["data"]["hash"], json!(team));
}

#[test]
fn create_orphan_is_authorized_on_its_own_path_without_sudo_as_vault() {
    let theirs = OpenBao::start();
    let dir = tempdir();
    let (daemon, init) = unsealed(dir.path(), "");
    let peers = [
        Peer {
            addr: &daemon.addr,
            root: &init.root_token,
        },
        Peer {
            addr: &theirs.addr,
            root: &theirs.token,
        },
    ];
    let policy = "path \"auth/token/create-orphan\" { capabilities = [\"update\"] }\npath \"auth/token/create\" { capabilities = [\"update\"] }\n";
    let mut statuses = Vec::new();
    for peer in &peers {
        let written = peer.root(
            "PUT",
            "sys/policies/acl/orphan-maker",
            Some(json!({ "policy": policy })),
        );
        assert!(written.status < 300, "{:?}", written.body);
        let maker = peer.token(json!({ "policies": ["orphan-maker"] }));
        let child = Some(json!({ "policies": ["orphan-maker"] }));
        // Its own path: an orphan, with no sudo anywhere.
        let orphan = peer.send(
            "POST",
            "auth/token/create-orphan",
            Some(&maker),
            child.clone(),
        );
        assert_eq!(orphan.status, 200, "{}: {:?}", peer.addr, orphan.body);
        assert_eq!(orphan.body["auth"]["orphan"], true, "{:?}", orphan.body);
        // `update` on auth/token/create makes a child, but `no_parent`
        // there needs sudo.
        let mut no_parent = child.clone().unwrap();
        no_parent["no_parent"] = json!(true);
        let by_flag = peer.send("POST", "auth/token/create", Some(&maker), Some(no_parent));
        let plain = peer.send("POST", "auth/token/create", Some(&maker), child.clone());
        // A use-limited token makes no tokens there either (400).
        let limited = peer.send(
            "POST",
            "auth/token/create",
            Some(peer.root),
            Some(json!({ "policies": ["orphan-maker"], "num_uses": 5 })),
        );
        let limited = limited.body["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_string();
        let limited_orphan = peer.send(
            "POST",
            "auth/token/create-orphan",
            Some(&limited),
            child.clone(),
        );
        statuses.push((
            orphan.status,
            by_flag.status,
            plain.status,
            limited_orphan.status,
        ));
    }
    // `no_parent` without sudo: OpenBao answers 400, strongroom 403 as
    // for every missing capability (docs/DECISIONS.md).
    assert_eq!(statuses[0], (200, 403, 200, 400), "strongroom");
    assert_eq!(statuses[1], (200, 400, 200, 400), "OpenBao");
}
