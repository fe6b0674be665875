//! Vault's transit engine at `transit/` on the HTTP surface: every
//! endpoint side by side with OpenBao 2.6.2 (status codes and shapes,
//! errors included), the `bao` CLI and hvac as clients, ciphertexts that
//! cross between HTTP and gRPC, and audit lines that hold HMACs of
//! plaintexts, never the plaintexts.

use std::process::Command;

use serde_json::{Value, json};
use strongroom::proto::{self, keys_client::KeysClient};

use crate::support::cli::{create_token, write_policy};
use crate::support::daemon::{tempdir, unsealed};
use crate::support::grpc::{channel, with_token};
use crate::support::vault::{Answer, OpenBao, bao, raw, request, shape};

/// One peer: where it listens and its root token.
struct Peer<'a> {
    addr: &'a str,
    token: &'a str,
}

impl Peer<'_> {
    fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Answer {
        request(self.addr, method, path, Some(self.token), body)
    }
}

/// Sends the same request to strongroom and OpenBao; asserts the same
/// status and the same shape (keys and value types); returns both answers.
#[track_caller]
fn both(
    ours: &Peer<'_>,
    theirs: &Peer<'_>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (Answer, Answer) {
    let a = ours.send(method, path, body.as_ref());
    let b = theirs.send(method, path, body.as_ref());
    assert_eq!(
        a.status, b.status,
        "{method} {path} {body:?}: strongroom {:?} vs OpenBao {:?}",
        a.body, b.body
    );
    assert_eq!(
        shape(&a.body, &["warnings"]),
        shape(&b.body, &["warnings"]),
        "{method} {path} {body:?}: strongroom {:?} vs OpenBao {:?}",
        a.body,
        b.body
    );
    if let Some(errors) = a.body.get("errors") {
        // One plain sentence, or none where Vault gives none (a 404 read).
        let errors = errors.as_array().unwrap();
        assert!(errors.len() <= 1, "{errors:?}");
        for e in errors {
            let e = e.as_str().unwrap();
            assert!(!e.contains("{ ") && !e.contains("Error("), "{e}");
        }
    }
    (a, b)
}

fn ciphertext(answer: &Answer) -> String {
    answer.body["data"]["ciphertext"]
        .as_str()
        .unwrap_or_else(|| panic!("no ciphertext: {:?}", answer.body))
        .to_string()
}

/// The same ciphertext key on each peer.
fn both_ciphertexts(answers: &(Answer, Answer)) -> (String, String) {
    (ciphertext(&answers.0), ciphertext(&answers.1))
}

/// Decrypts each peer's ciphertext on that peer, with the same body
/// otherwise; asserts the same status and shape.
#[track_caller]
fn decrypt_both(
    ours: &Peer<'_>,
    theirs: &Peer<'_>,
    name: &str,
    (a, b): &(String, String),
    extra: Value,
) -> (Answer, Answer) {
    let with = |c: &str| {
        let mut body = extra.clone();
        body["ciphertext"] = json!(c);
        body
    };
    let path = format!("transit/decrypt/{name}");
    let ra = ours.send("POST", &path, Some(&with(a)));
    let rb = theirs.send("POST", &path, Some(&with(b)));
    assert_eq!(ra.status, rb.status, "{:?} vs {:?}", ra.body, rb.body);
    assert_eq!(shape(&ra.body, &[]), shape(&rb.body, &[]));
    (ra, rb)
}

#[test]
fn every_transit_endpoint_answers_as_openbao_does() {
    let dir = tempdir();
    let (daemon, init) = unsealed(dir.path(), "");
    let openbao = OpenBao::start();
    let ours = Peer {
        addr: &daemon.addr,
        token: &init.root_token,
    };
    let theirs = Peer {
        addr: &openbao.addr,
        token: &openbao.token,
    };
    let hello = "aGVsbG8=";

    // Keys: nothing to list, create (twice: Vault keeps the key), read, list.
    both(&ours, &theirs, "LIST", "transit/keys", None);
    let (created, _) = both(&ours, &theirs, "POST", "transit/keys/k", Some(json!({})));
    assert_eq!(created.body["data"]["type"], "aes256-gcm96");
    assert_eq!(created.body["data"]["keys"].as_object().unwrap().len(), 1);
    both(&ours, &theirs, "POST", "transit/keys/k", Some(json!({})));
    both(&ours, &theirs, "GET", "transit/keys/k", None);
    let (missing, _) = both(&ours, &theirs, "GET", "transit/keys/missing", None);
    assert_eq!(missing.status, 404);
    let (listed, _) = both(&ours, &theirs, "LIST", "transit/keys", None);
    assert_eq!(listed.body["data"]["keys"], json!(["k"]));
    both(&ours, &theirs, "GET", "transit/keys?list=true", None);
    let (derived, _) = both(
        &ours,
        &theirs,
        "POST",
        "transit/keys/d",
        Some(json!({"derived": true})),
    );
    assert_eq!(derived.body["data"]["kdf"], "hkdf_sha256");
    both(
        &ours,
        &theirs,
        "POST",
        "transit/keys/other",
        Some(json!({})),
    );

    // Encrypt and decrypt; a non-derived key ignores the context.
    let made = both(
        &ours,
        &theirs,
        "POST",
        "transit/encrypt/k",
        Some(json!({"plaintext": hello, "context": "Y3R4"})),
    );
    let v1 = both_ciphertexts(&made);
    // An answer that carries a secret is kept by no cache.
    assert_eq!(made.0.headers["cache-control"], "no-store");
    assert_eq!(made.0.headers["content-type"], "application/json");
    assert!(v1.0.starts_with("vault:v1:"), "{}", v1.0);
    let (plain, _) = decrypt_both(&ours, &theirs, "k", &v1, json!({}));
    assert_eq!(plain.body["data"]["plaintext"], hello);
    decrypt_both(&ours, &theirs, "k", &v1, json!({"context": "b3RoZXI="}));
    both(
        &ours,
        &theirs,
        "POST",
        "transit/encrypt/k",
        Some(json!({"plaintext": ""})),
    );

    // Errors: bad base64, nothing to encrypt, a missing key, another
    // key's ciphertext, garbage, a version too new, wrong JSON types.
    for body in [
        json!({"plaintext": "not base64!"}),
        json!({}),
        json!({"plaintext": hello, "key_version": 2}),
        json!({"plaintext": hello, "context": "not base64!"}),
    ] {
        let (a, _) = both(&ours, &theirs, "POST", "transit/encrypt/k", Some(body));
        assert_eq!(a.status, 400);
    }
    let (a, _) = decrypt_both(&ours, &theirs, "missing", &v1, json!({}));
    assert_eq!(a.status, 400);
    let (a, _) = decrypt_both(&ours, &theirs, "other", &v1, json!({}));
    assert_eq!(a.status, 400, "{:?}", a.body);
    for body in [
        json!({"ciphertext": "garbage"}),
        json!({"ciphertext": "vault:v1:!!!"}),
        json!({"ciphertext": "vault:v9:aGVsbG8gd29ybGQgaGVsbG8gd29ybGQ="}),
        json!({}),
    ] {
        let (a, _) = both(&ours, &theirs, "POST", "transit/decrypt/k", Some(body));
        assert_eq!(a.status, 400);
    }
    let raw_json = |peer: &Peer<'_>, body: &str| {
        crate::support::vault::raw(
            peer.addr,
            "POST",
            "/v1/transit/keys/k/config",
            Some(peer.token),
            Some(body.as_bytes()),
        )
    };
    for body in [
        "[1]",
        "{\"deletion_allowed\": \"yes\"}",
        "{\"deletion_allowed\": ",
    ] {
        let (a, b) = (raw_json(&ours, body), raw_json(&theirs, body));
        assert_eq!((a.status, b.status), (400, 400), "{body}: {:?}", a.body);
        assert_eq!(a.body["errors"].as_array().unwrap().len(), 1);
    }

    // Fields of the wrong JSON type: 400 with a sentence naming the field.
    for (path, body, field) in [
        (
            "transit/encrypt/k",
            json!({"plaintext": ["x"]}),
            "plaintext",
        ),
        (
            "transit/encrypt/k",
            json!({"plaintext": hello, "key_version": "x"}),
            "key_version",
        ),
        (
            "transit/decrypt/k",
            json!({"ciphertext": {"a": 1}}),
            "ciphertext",
        ),
        (
            "transit/keys/k/config",
            json!({"min_decryption_version": "abc"}),
            "min_decryption_version",
        ),
        ("transit/datakey/plaintext/k", json!({"bits": "x"}), "bits"),
        ("transit/keys/k", json!({"derived": [true]}), "derived"),
    ] {
        let (a, _) = both(&ours, &theirs, "POST", path, Some(body));
        assert_eq!(a.status, 400, "{path}");
        let said = a.body["errors"][0].as_str().unwrap();
        assert!(
            said.contains(&format!("the field {field} must be")),
            "{said}"
        );
    }

    // A derived key needs the context, and only the same one decrypts.
    let (a, _) = both(
        &ours,
        &theirs,
        "POST",
        "transit/encrypt/d",
        Some(json!({"plaintext": hello})),
    );
    assert_eq!(a.status, 400);
    let tenant = both_ciphertexts(&both(
        &ours,
        &theirs,
        "POST",
        "transit/encrypt/d",
        Some(json!({"plaintext": hello, "context": "dGVuYW50LTc="})),
    ));
    let (a, _) = decrypt_both(
        &ours,
        &theirs,
        "d",
        &tenant,
        json!({"context": "dGVuYW50LTc="}),
    );
    assert_eq!(a.body["data"]["plaintext"], hello);
    let (a, _) = decrypt_both(
        &ours,
        &theirs,
        "d",
        &tenant,
        json!({"context": "dGVuYW50LTg="}),
    );
    assert_eq!(a.status, 400);
    let (a, _) = decrypt_both(&ours, &theirs, "d", &tenant, json!({}));
    assert_eq!(a.status, 400);

    // Encrypting with a missing key makes it (the root token may create).
    both(
        &ours,
        &theirs,
        "POST",
        "transit/encrypt/made-on-use",
        Some(json!({"plaintext": hello})),
    );
    both(&ours, &theirs, "GET", "transit/keys/made-on-use", None);

    // Batches: every item answered in order, a bad one alone failing (400).
    let (a, b) = both(
        &ours,
        &theirs,
        "POST",
        "transit/encrypt/k",
        Some(json!({"batch_input": [
            {"plaintext": hello, "reference": "one"},
            {"plaintext": "bad!", "reference": "two"},
        ]})),
    );
    assert_eq!(a.status, 400);
    for answer in [&a, &b] {
        let results = answer.body["data"]["batch_results"].as_array().unwrap();
        assert!(results[0]["ciphertext"].is_string());
        assert_eq!(results[0]["reference"], "one");
        assert!(results[1]["error"].is_string());
        assert_eq!(results[1]["reference"], "two");
    }
    let batch = json!({"batch_input": [{"plaintext": hello}, {"plaintext": "aGk="}]});
    let (a, b) = both(&ours, &theirs, "POST", "transit/encrypt/k", Some(batch));
    let items = |answer: &Answer| -> Value {
        let results = answer.body["data"]["batch_results"].as_array().unwrap();
        let mut items: Vec<Value> = results
            .iter()
            .map(|r| json!({"ciphertext": r["ciphertext"]}))
            .collect();
        items.push(json!({"ciphertext": "junk"}));
        json!({ "batch_input": items })
    };
    let da = ours.send("POST", "transit/decrypt/k", Some(&items(&a)));
    let db = theirs.send("POST", "transit/decrypt/k", Some(&items(&b)));
    assert_eq!((da.status, db.status), (400, 400), "{:?}", da.body);
    assert_eq!(shape(&da.body, &[]), shape(&db.body, &[]));
    let results = da.body["data"]["batch_results"].as_array().unwrap();
    assert_eq!(results[0]["plaintext"], hello);
    assert_eq!(results[1]["plaintext"], "aGk=");
    assert!(results[2]["error"].is_string());
    for body in [
        json!({"batch_input": []}),
        json!({"batch_input": [{"plaintext": hello}, {"plaintext": hello, "context": "Y3R4"}]}),
    ] {
        let (a, _) = both(&ours, &theirs, "POST", "transit/encrypt/k", Some(body));
        assert_eq!(a.status, 400);
    }
    // A batch that is not a list of objects: 400 here (OpenBao answers 500).
    for body in [json!({"batch_input": "x"}), json!({"batch_input": [5]})] {
        let a = ours.send("POST", "transit/encrypt/k", Some(&body));
        assert_eq!(a.status, 400, "{:?}", a.body);
    }

    // Rotate, rewrap, then retire version 1.
    let (rotated, _) = both(
        &ours,
        &theirs,
        "POST",
        "transit/keys/k/rotate",
        Some(json!({})),
    );
    assert_eq!(rotated.body["data"]["latest_version"], 2);
    let rewrap = |peer: &Peer<'_>, c: &str| {
        peer.send(
            "POST",
            "transit/rewrap/k",
            Some(&json!({ "ciphertext": c })),
        )
    };
    let (ra, rb) = (rewrap(&ours, &v1.0), rewrap(&theirs, &v1.1));
    assert_eq!((ra.status, rb.status), (200, 200));
    assert_eq!(shape(&ra.body, &[]), shape(&rb.body, &[]));
    assert!(ciphertext(&ra).starts_with("vault:v2:"));
    let (a, _) = both(
        &ours,
        &theirs,
        "POST",
        "transit/keys/missing/rotate",
        Some(json!({})),
    );
    assert_eq!(a.status, 400);
    let (config, _) = both(
        &ours,
        &theirs,
        "POST",
        "transit/keys/k/config",
        Some(json!({"min_decryption_version": 2})),
    );
    assert_eq!(config.body["data"]["keys"].as_object().unwrap().len(), 1);
    let (a, _) = decrypt_both(&ours, &theirs, "k", &v1, json!({}));
    assert_eq!(a.status, 400);
    assert!(
        a.body["errors"][0]
            .as_str()
            .unwrap()
            .contains("min_decryption_version"),
        "{:?}",
        a.body
    );
    let (a, _) = both(
        &ours,
        &theirs,
        "POST",
        "transit/keys/k/config",
        Some(json!({"min_decryption_version": 5})),
    );
    assert_eq!(a.status, 400);

    // Data keys.
    let (a, _) = both(
        &ours,
        &theirs,
        "POST",
        "transit/datakey/plaintext/k",
        Some(json!({})),
    );
    assert_eq!(a.body["data"]["plaintext"].as_str().unwrap().len(), 44);
    let (a, _) = both(
        &ours,
        &theirs,
        "POST",
        "transit/datakey/wrapped/k",
        Some(json!({"bits": 512})),
    );
    assert!(a.body["data"].get("plaintext").is_none());
    for (path, body) in [
        ("transit/datakey/wrapped/k", json!({"bits": 100})),
        ("transit/datakey/other/k", json!({})),
        ("transit/datakey/plaintext/missing", json!({})),
        ("transit/datakey/plaintext/d", json!({})),
    ] {
        let (a, _) = both(&ours, &theirs, "POST", path, Some(body));
        assert_eq!(a.status, 400);
    }

    // Deletion needs deletion_allowed; methods a path does not take: 405.
    let (a, _) = both(&ours, &theirs, "DELETE", "transit/keys/k", None);
    assert_eq!(a.status, 400);
    let (a, _) = both(&ours, &theirs, "DELETE", "transit/keys/missing", None);
    assert_eq!(a.status, 400);
    both(
        &ours,
        &theirs,
        "POST",
        "transit/keys/k/config",
        Some(json!({"deletion_allowed": "true"})),
    );
    let (a, _) = both(&ours, &theirs, "DELETE", "transit/keys/k", None);
    assert_eq!(a.status, 204);
    both(&ours, &theirs, "GET", "transit/keys/k", None);
    for (method, path) in [
        ("GET", "transit/encrypt/k"),
        ("DELETE", "transit/decrypt/k"),
        ("GET", "transit/keys/k/rotate"),
        ("GET", "transit/keys/k/config"),
        ("POST", "transit/keys"),
    ] {
        let (a, _) = both(&ours, &theirs, method, path, Some(json!({})));
        assert_eq!(a.status, 405, "{method} {path}");
    }
    for path in ["transit/nothing", "transit/keys/k/rotate/x"] {
        let (a, _) = both(&ours, &theirs, "POST", path, Some(json!({})));
        assert_eq!(a.status, 404, "{path}");
    }
    // What strongroom does not do is refused with a sentence naming it.
    for (path, body, says) in [
        (
            "transit/keys/rsa",
            json!({"type": "rsa-2048"}),
            "aes256-gcm96",
        ),
        ("transit/keys/x", json!({"exportable": true}), "exportable"),
        (
            "transit/keys/other/config",
            json!({"min_encryption_version": 1}),
            "min_encryption_version",
        ),
    ] {
        let a = ours.send("POST", path, Some(&body));
        assert_eq!(a.status, 400, "{path}");
        assert!(
            a.body["errors"][0].as_str().unwrap().contains(says),
            "{:?}",
            a.body
        );
    }
}

/// Runs `bao` against the daemon; asserts exit 0; returns stdout.
#[track_caller]
fn bao_ok(addr: &str, token: &str, home: &std::path::Path, args: &[&str]) -> String {
    let out = bao(addr, Some(token), home, args);
    assert!(
        out.status.success(),
        "bao {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// hvac's transit calls against strongroom; prints what the test checks.
const HVAC: &str = r#"
import base64, json, sys
import hvac

client = hvac.Client(url=sys.argv[1], token=sys.argv[2])
transit = client.secrets.transit
b64 = lambda s: base64.b64encode(s.encode()).decode()
out = {}
transit.create_key(name="hv")
old = transit.encrypt_data(name="hv", plaintext=b64("first"))["data"]["ciphertext"]
out["old"] = old
plain = transit.decrypt_data(name="hv", ciphertext=old)["data"]["plaintext"]
out["round_trip"] = base64.b64decode(plain).decode()
transit.rotate_key(name="hv")
out["latest"] = transit.read_key(name="hv")["data"]["latest_version"]
transit.update_key_configuration(name="hv", min_decryption_version=2)
try:
    transit.decrypt_data(name="hv", ciphertext=old)
    out["old_refused"] = None
except hvac.exceptions.InvalidRequest as e:
    out["old_refused"] = str(e)
key = transit.generate_data_key(name="hv", key_type="plaintext", bits=256)["data"]
back = transit.decrypt_data(name="hv", ciphertext=key["ciphertext"])["data"]["plaintext"]
out["data_key_round_trip"] = back == key["plaintext"]
batch = transit.encrypt_data(name="hv", plaintext="", batch_input=[
    {"plaintext": b64("a")}, {"plaintext": b64("b")}])["data"]["batch_results"]
decrypted = transit.decrypt_data(name="hv", ciphertext="", batch_input=[
    {"ciphertext": r["ciphertext"]} for r in batch])["data"]["batch_results"]
out["batch"] = [base64.b64decode(r["plaintext"]).decode() for r in decrypted]
print(json.dumps(out))
"#;

#[test]
fn the_bao_cli_and_hvac_use_transit() {
    let dir = tempdir();
    let (daemon, init) = unsealed(dir.path(), "");
    let (addr, token, home) = (daemon.addr.as_str(), init.root_token.as_str(), dir.path());

    let created = bao_ok(addr, token, home, &["write", "-f", "transit/keys/k"]);
    assert!(created.contains("aes256-gcm96"), "{created}");
    let encrypted = bao_ok(
        addr,
        token,
        home,
        &[
            "write",
            "-format=json",
            "transit/encrypt/k",
            "plaintext=aGVsbG8=",
        ],
    );
    let encrypted: Value = serde_json::from_str(&encrypted).unwrap();
    let c = encrypted["data"]["ciphertext"].as_str().unwrap();
    assert!(c.starts_with("vault:v1:"), "{c}");
    let decrypted = bao_ok(
        addr,
        token,
        home,
        &[
            "write",
            "-field=plaintext",
            "transit/decrypt/k",
            &format!("ciphertext={c}"),
        ],
    );
    assert_eq!(decrypted.trim(), "aGVsbG8=");
    let plain = bao_ok(
        addr,
        token,
        home,
        &["write", "transit/decrypt/k", &format!("ciphertext={c}")],
    );
    assert!(plain.contains("plaintext    aGVsbG8="), "{plain}");
    bao_ok(addr, token, home, &["write", "-f", "transit/keys/k/rotate"]);
    let read = bao_ok(
        addr,
        token,
        home,
        &["read", "-format=json", "transit/keys/k"],
    );
    let read: Value = serde_json::from_str(&read).unwrap();
    assert_eq!(read["data"]["latest_version"], 2);
    assert_eq!(read["data"]["keys"].as_object().unwrap().len(), 2);
    // The CLI sends key=value as strings: numbers and booleans taken so.
    bao_ok(
        addr,
        token,
        home,
        &[
            "write",
            "transit/keys/k/config",
            "min_decryption_version=2",
            "deletion_allowed=true",
        ],
    );
    let refused = bao(
        addr,
        Some(token),
        home,
        &["write", "transit/decrypt/k", &format!("ciphertext={c}")],
    );
    assert_eq!(refused.status.code(), Some(2));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("min_decryption_version"), "{said}");
    let listed = bao_ok(addr, token, home, &["list", "transit/keys"]);
    assert!(listed.lines().any(|l| l.trim() == "k"), "{listed}");
    bao_ok(addr, token, home, &["delete", "transit/keys/k"]);

    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
    let out = Command::new(python)
        .args(["-c", HVAC, addr, token])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hvac: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(found["round_trip"], "first");
    assert!(found["old"].as_str().unwrap().starts_with("vault:v1:"));
    assert_eq!(found["latest"], 2);
    assert!(
        found["old_refused"]
            .as_str()
            .is_some_and(|e| e.contains("min_decryption_version")),
        "{found}"
    );
    assert_eq!(found["data_key_round_trip"], true);
    assert_eq!(found["batch"], json!(["a", "b"]));
}

#[test]
fn ciphertexts_cross_surfaces_and_audit_lines_hold_hmacs() {
    let dir = tempdir();
    let audit_log = dir.path().join("audit.log");
    let (daemon, init) = unsealed(
        dir.path(),
        &format!("audit \"file\" {{ path = \"{}\" }}\n", audit_log.display()),
    );
    let root = init.root_token.as_str();
    let secret = "card 4242 4242 4242 4242";
    let secret_b64 = base64_of(secret.as_bytes());

    request(
        &daemon.addr,
        "POST",
        "transit/keys/both",
        Some(root),
        Some(&json!({})),
    );
    let http = request(
        &daemon.addr,
        "POST",
        "transit/encrypt/both",
        Some(root),
        Some(&json!({ "plaintext": secret_b64 })),
    );
    assert_eq!(http.status, 200, "{:?}", http.body);
    let from_http = ciphertext(&http);
    assert!(from_http.starts_with("vault:v1:"));

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let from_grpc = runtime.block_on(async {
        let mut keys = KeysClient::new(channel(&daemon.addr).await);
        let decrypted = keys
            .decrypt(with_token(
                proto::DecryptRequest {
                    name: "both".into(),
                    ciphertext: from_http.clone(),
                    context: Vec::new(),
                },
                root,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(decrypted.plaintext, secret.as_bytes());
        keys.encrypt(with_token(
            proto::EncryptRequest {
                name: "both".into(),
                plaintext: b"from grpc".to_vec(),
                context: Vec::new(),
            },
            root,
        ))
        .await
        .unwrap()
        .into_inner()
        .ciphertext
    });
    assert!(from_grpc.starts_with("sr:v1:"), "{from_grpc}");

    // A derived key made over HTTP needs its context over gRPC too.
    request(
        &daemon.addr,
        "POST",
        "transit/keys/tenants",
        Some(root),
        Some(&json!({"derived": true})),
    );
    let derived = request(
        &daemon.addr,
        "POST",
        "transit/encrypt/tenants",
        Some(root),
        Some(&json!({ "plaintext": secret_b64, "context": base64_of(b"tenant-7") })),
    );
    let derived = ciphertext(&derived);
    runtime.block_on(async {
        let mut keys = KeysClient::new(channel(&daemon.addr).await);
        let ask = |context: &[u8]| {
            with_token(
                proto::DecryptRequest {
                    name: "tenants".into(),
                    ciphertext: derived.clone(),
                    context: context.to_vec(),
                },
                root,
            )
        };
        let plain = keys.decrypt(ask(b"tenant-7")).await.unwrap().into_inner();
        assert_eq!(plain.plaintext, secret.as_bytes());
        let other = keys.decrypt(ask(b"tenant-8")).await.unwrap_err();
        assert_eq!(other.code(), tonic::Code::InvalidArgument);
        let none = keys.decrypt(ask(b"")).await.unwrap_err();
        assert!(
            none.message().contains("derived = true"),
            "{}",
            none.message()
        );
    });
    let back = request(
        &daemon.addr,
        "POST",
        "transit/decrypt/both",
        Some(root),
        Some(&json!({ "ciphertext": from_grpc })),
    );
    assert_eq!(back.body["data"]["plaintext"], base64_of(b"from grpc"));

    // Upsert needs create: encrypt alone does not make a key.
    write_policy(
        &mut daemon.cli(),
        "enc",
        "path \"transit/encrypt/*\" { capabilities = [\"update\"] }\n",
    );
    write_policy(
        &mut daemon.cli(),
        "enc-create",
        "path \"transit/encrypt/*\" { capabilities = [\"update\", \"create\"] }\n",
    );
    let (enc, _) = create_token(&mut daemon.cli(), &["--policy", "enc"]);
    let (enc_create, _) = create_token(&mut daemon.cli(), &["--policy", "enc-create"]);
    let body = json!({ "plaintext": secret_b64 });
    let refused = request(
        &daemon.addr,
        "POST",
        "transit/encrypt/fresh",
        Some(&enc),
        Some(&body),
    );
    assert_eq!(refused.status, 403, "{:?}", refused.body);
    assert!(
        refused.body["errors"][0]
            .as_str()
            .unwrap()
            .contains("create"),
        "{:?}",
        refused.body
    );
    let made = request(
        &daemon.addr,
        "POST",
        "transit/encrypt/fresh",
        Some(&enc_create),
        Some(&body),
    );
    assert_eq!(made.status, 200, "{:?}", made.body);
    let existing = request(
        &daemon.addr,
        "POST",
        "transit/encrypt/fresh",
        Some(&enc),
        Some(&body),
    );
    assert_eq!(existing.status, 200, "{:?}", existing.body);

    // The audit lines: the plaintext as its HMAC, never in the clear.
    let hash = daemon
        .cli()
        .token(root)
        .run_stdin(&["audit-hash"], &format!("{secret}\n"))
        .ok()
        .stdout
        .trim()
        .to_string();
    assert!(hash.starts_with("hmac-sha256:"), "{hash}");
    let text = std::fs::read_to_string(&audit_log).unwrap();
    assert!(!text.contains(secret) && !text.contains(&secret_b64));
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let encrypt = lines
        .iter()
        .find(|l| l["operation"] == "keys.Encrypt" && l["type"] == "request")
        .unwrap();
    assert_eq!(encrypt["data"]["plaintext"], hash, "{encrypt}");
    let decrypt = lines
        .iter()
        .find(|l| l["operation"] == "keys.Decrypt" && l["type"] == "response")
        .unwrap();
    assert_eq!(decrypt["data"]["plaintext"], hash, "{decrypt}");

    // A refused plaintext is never repeated: not in the answer, not in
    // the audit line of the refusal.
    for bad in [
        json!({"plaintext": 98765432123_u64}),
        json!({"plaintext": "sekrit value!!"}),
    ] {
        let refused = request(
            &daemon.addr,
            "POST",
            "transit/encrypt/both",
            Some(root),
            Some(&bad),
        );
        assert_eq!(refused.status, 400, "{:?}", refused.body);
        let sentence = refused.body["errors"][0].as_str().unwrap();
        assert!(
            !sentence.contains("98765432123") && !sentence.contains("sekrit"),
            "{sentence}"
        );
    }
    let text = std::fs::read_to_string(&audit_log).unwrap();
    assert!(!text.contains("98765432123") && !text.contains("sekrit"));
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A daemon whose refusals are checked against its file audit device.
pub(crate) struct Audited<'a> {
    pub addr: &'a str,
    pub token: &'a str,
    pub log: &'a std::path::Path,
}

/// A body of about 1 MB that does not decode: an object whose one string,
/// `secret` over and over, never ends.
pub(crate) fn huge_malformed(field: &str, secret: &str) -> Vec<u8> {
    let mut body = format!("{{\"{field}\": \"").into_bytes();
    while body.len() < 1_000_000 {
        body.extend_from_slice(secret.as_bytes());
    }
    body
}

impl Audited<'_> {
    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log).unwrap_or_default()
    }

    /// POSTs `body` to `path` and checks it was refused at the gate: 400
    /// with one bounded sentence starting `sentence`, and the audit log
    /// gained exactly two lines for it, the request and the response with
    /// that sentence as its error, of `operation`, each under 4 KB; the
    /// log never holds `hidden`. Returns the sentence.
    #[track_caller]
    pub(crate) fn refuses(
        &self,
        path: &str,
        body: &[u8],
        operation: &str,
        sentence: &str,
        hidden: &str,
    ) -> String {
        let before = self.log_text().lines().count();
        let answer = raw(
            self.addr,
            "POST",
            &format!("/v1/{path}"),
            Some(self.token),
            Some(body),
        );
        assert_eq!(answer.status, 400, "{path}: {:?}", answer.body);
        let errors = answer.body["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{path}: {errors:?}");
        let said = errors[0].as_str().unwrap().to_string();
        assert!(said.starts_with(sentence), "{path}: {said}");
        assert!(
            said.len() <= 1024 && !said.contains(hidden),
            "{path}: {said}"
        );
        let text = self.log_text();
        assert!(
            !text.contains(hidden),
            "{path}: the audit log holds the body"
        );
        let new: Vec<Value> = text
            .lines()
            .skip(before)
            .map(|line| {
                assert!(line.len() < 4096, "{path}: a line of {} bytes", line.len());
                serde_json::from_str(line).unwrap()
            })
            .collect();
        assert_eq!(new.len(), 2, "{path}: {new:?}");
        for (line, kind) in new.iter().zip(["request", "response"]) {
            assert_eq!(line["type"], kind, "{path}: {line}");
            assert_eq!(line["operation"], operation, "{path}: {line}");
        }
        assert_eq!(new[1]["error"], json!(said), "{path}");
        said
    }
}

#[test]
fn bad_transit_input_is_refused_at_the_gate_in_bounded_audit_lines() {
    let theirs = OpenBao::start();
    let dir = tempdir();
    let log = dir.path().join("audit.log");
    let (daemon, init) = unsealed(
        dir.path(),
        &format!("audit \"file\" {{ path = \"{}\" }}\n", log.display()),
    );
    let root = init.root_token.as_str();
    for (addr, token) in [(daemon.addr.as_str(), root), (&theirs.addr, &theirs.token)] {
        let made = request(
            addr,
            "POST",
            "transit/keys/k",
            Some(token),
            Some(&json!({})),
        );
        assert_eq!(made.status, 200, "{:?}", made.body);
    }
    let ours = Audited {
        addr: &daemon.addr,
        token: root,
        log: &log,
    };
    // A plaintext's base64 that must never reach a log.
    let hidden = "Q0FSRDQyNDI0MjQyNDI0MjQyNDI=";
    let decode = "failed to decode JSON input";
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "transit/encrypt/k",
            br#"{"plaintext": 5}"#.to_vec(),
            "keys.Encrypt",
            "the field plaintext must be a string, not a number",
        ),
        (
            "transit/encrypt/k",
            huge_malformed("plaintext", hidden),
            "keys.Encrypt",
            decode,
        ),
        (
            "transit/encrypt/k",
            br#"{"batch_input": "no"}"#.to_vec(),
            "keys.BatchEncrypt",
            "the field batch_input must be a list of objects",
        ),
        (
            "transit/decrypt/k",
            br#"{"ciphertext": [1]}"#.to_vec(),
            "keys.Decrypt",
            "the field ciphertext must be a string, not a list",
        ),
        (
            "transit/decrypt/k",
            huge_malformed("ciphertext", hidden),
            "keys.Decrypt",
            decode,
        ),
        // A whole body that is the plaintext itself, as a JSON string:
        // serde's own words would quote it.
        (
            "transit/encrypt/k",
            format!("\"{hidden}\"").into_bytes(),
            "keys.Encrypt",
            decode,
        ),
        (
            "transit/decrypt/k",
            br#"{"batch_input": [{"ciphertext": 7}]}"#.to_vec(),
            "keys.BatchDecrypt",
            "batch_input[0]: the field ciphertext must be a string",
        ),
        (
            "transit/rewrap/k",
            br#"{"ciphertext": "#.to_vec(),
            "keys.Rewrap",
            decode,
        ),
        (
            "transit/keys/k2",
            br#"{"derived": []}"#.to_vec(),
            "keys.Create",
            "the field derived must be true or false, not a list",
        ),
        (
            "transit/keys/k2",
            huge_malformed("type", hidden),
            "keys.Create",
            decode,
        ),
        (
            "transit/keys/k/config",
            br#"{"deletion_allowed": {}}"#.to_vec(),
            "keys.UpdateConfig",
            "the field deletion_allowed must be true or false",
        ),
        (
            "transit/datakey/plaintext/k",
            br#"{"bits": "many"}"#.to_vec(),
            "keys.GenerateDataKey",
            "the field bits must be a whole number",
        ),
    ];
    for (path, body, operation, sentence) in &cases {
        ours.refuses(path, body, operation, sentence, hidden);
        // OpenBao refuses a body that does not decode alike.
        if *sentence == decode {
            let answer = raw(
                &theirs.addr,
                "POST",
                &format!("/v1/{path}"),
                Some(&theirs.token),
                Some(body),
            );
            assert_eq!(answer.status, 400, "OpenBao {path}: {:?}", answer.body);
        }
    }
    // Nothing was made by the refused creates.
    let k2 = request(&daemon.addr, "GET", "transit/keys/k2", Some(root), None);
    assert_eq!(k2.status, 404, "{:?}", k2.body);
}

#[test]
fn a_write_to_an_existing_key_needs_update_as_openbao_asks() {
    let theirs = OpenBao::start();
    let dir = tempdir();
    let (daemon, init) = unsealed(dir.path(), "");
    let peers = [
        (daemon.addr.as_str(), init.root_token.as_str()),
        (theirs.addr.as_str(), theirs.token.as_str()),
    ];
    // Per peer: a key, and a token of each policy.
    let tokens: Vec<(String, String)> = peers
        .iter()
        .map(|(addr, root)| {
            let send = |path: &str, body: Value| {
                let answer = request(*addr, "POST", path, Some(root), Some(&body));
                assert!(answer.status < 300, "{path}: {:?}", answer.body);
                answer
            };
            send("transit/keys/made", json!({}));
            let mut made = Vec::new();
            for capability in ["create", "update"] {
                let policy =
                    format!("path \"transit/keys/*\" {{ capabilities = [\"{capability}\"] }}\n");
                send(
                    &format!("sys/policies/acl/{capability}-keys"),
                    json!({ "policy": policy }),
                );
                let token = send(
                    "auth/token/create",
                    json!({ "policies": [format!("{capability}-keys")] }),
                );
                made.push(
                    token.body["auth"]["client_token"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                );
            }
            (made[0].clone(), made[1].clone())
        })
        .collect();
    let status = |peer: usize, token: &str, key: &str| {
        let path = format!("transit/keys/{key}");
        let answer = request(peers[peer].0, "POST", &path, Some(token), Some(&json!({})));
        (answer.status, answer.body)
    };
    for (peer, (creator, updater)) in tokens.iter().enumerate() {
        // An existing key: `update` answers it as it is, `create` alone is refused.
        let (code, body) = status(peer, updater, "made");
        assert_eq!(code, 200, "peer {peer}: {body:?}");
        assert_eq!(body["data"]["latest_version"], 1, "peer {peer}");
        let (code, body) = status(peer, creator, "made");
        assert_eq!(code, 403, "peer {peer}: {body:?}");
        // A new key with `update`.
        let (code, body) = status(peer, updater, "fresh");
        assert_eq!(code, 200, "peer {peer}: {body:?}");
    }
    // A new key with `create` alone: strongroom makes it (gRPC's create
    // and stored policies ask `create`); OpenBao asks `update` for every
    // write there (docs/DECISIONS.md).
    assert_eq!(status(0, &tokens[0].0, "new").0, 200);
    assert_eq!(status(1, &tokens[1].0, "new").0, 403);
    // Once made, the create-only token cannot write it again.
    assert_eq!(status(0, &tokens[0].0, "new").0, 403);
}
