//! Vault's HTTP API, `sys/` lifecycle endpoints: on the same listeners as
//! gRPC, compared with OpenBao 2.6.2 side by side, through curl-like
//! requests and the `bao` CLI.

use serde_json::json;

use crate::support::daemon::{Daemon, config, tempdir};
use crate::support::vault::{OpenBao, Target, bao, raw, request, shape};

#[test]
fn seal_lifecycle_answers_as_openbao_does() {
    let dir = tempdir();
    let daemon = Daemon::start(dir.path(), &config(dir.path(), ""));
    let ours = daemon.addr.as_str();

    // Before init, OpenBao is compared from a fresh, uninitialized one:
    // its shapes are checked against the documented ones instead.
    let status = request(ours, "GET", "sys/seal-status", None, None);
    assert_eq!(status.status, 200);
    assert_eq!(status.headers["content-type"], "application/json");
    assert_eq!(status.headers["cache-control"], "no-store");
    assert_eq!(status.body["initialized"], false);
    assert_eq!(status.body["sealed"], true);
    let health = request(ours, "GET", "sys/health", None, None);
    assert_eq!(health.status, 501, "{:?}", health.body);
    assert_eq!(
        request(ours, "GET", "sys/init", None, None).body,
        json!({"initialized": false})
    );

    let init = request(
        ours,
        "PUT",
        "sys/init",
        None,
        Some(&json!({"secret_shares": 3, "secret_threshold": 2})),
    );
    assert_eq!(init.status, 200, "{:?}", init.body);
    let keys: Vec<String> = init.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 3);
    assert_eq!(init.body["keys_base64"].as_array().unwrap().len(), 3);
    let token = init.body["root_token"].as_str().unwrap().to_string();
    // Committed at once: a second init is refused as OpenBao refuses it.
    let again = request(
        ours,
        "PUT",
        "sys/init",
        None,
        Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
    );
    assert_eq!(again.status, 400);

    let bao = OpenBao::start();
    let theirs = bao.addr.as_str();
    // Sealed, initialized (a Shamir init leaves the store sealed; a seal
    // of a sealed store is refused alike): the same shapes and codes.
    let sealed = request(ours, "PUT", "sys/seal", Some(&token), None);
    assert_eq!(sealed.status, 503);
    let bao_sealed = request(theirs, "PUT", "sys/seal", Some(&bao.token), None);
    assert_eq!(bao_sealed.status, 204);
    for path in ["sys/seal-status", "sys/health", "sys/leader"] {
        let a = request(ours, "GET", path, None, None);
        let b = request(theirs, "GET", path, None, None);
        assert_eq!(a.status, b.status, "{path}: {:?} vs {:?}", a.body, b.body);
        assert_eq!(
            shape(&a.body, &["commit_date", "build_date"]),
            shape(&b.body, &["commit_date", "build_date"]),
            "{path}"
        );
    }

    // One key: progress; the threshold: unsealed, as OpenBao answers.
    let one = request(
        ours,
        "PUT",
        "sys/unseal",
        None,
        Some(&json!({"key": keys[0]})),
    );
    assert_eq!(one.status, 200);
    assert_eq!(one.body["progress"], 1);
    assert_eq!(one.body["sealed"], true);
    let two = request(
        ours,
        "PUT",
        "sys/unseal",
        None,
        Some(&json!({"key": keys[1]})),
    );
    assert_eq!(two.body["sealed"], false, "{:?}", two.body);
    let bao_open = request(
        theirs,
        "PUT",
        "sys/unseal",
        None,
        Some(&json!({"key": bao.unseal_key})),
    );
    assert_eq!(
        shape(&two.body, &["commit_date", "build_date"]),
        shape(&bao_open.body, &["commit_date", "build_date"])
    );
    for path in ["sys/seal-status", "sys/health", "sys/leader"] {
        let a = request(ours, "GET", path, None, None);
        let b = request(theirs, "GET", path, None, None);
        assert_eq!(a.status, b.status, "{path}");
        assert_eq!(
            shape(&a.body, &["commit_date", "build_date"]),
            shape(&b.body, &["commit_date", "build_date"]),
            "{path}"
        );
    }
}

#[test]
fn bad_requests_get_openbaos_codes_and_one_sentence() {
    let dir = tempdir();
    let daemon = Daemon::start(dir.path(), &config(dir.path(), ""));
    let bao = OpenBao::start();
    let cases: &[(&str, &str, &[u8])] = &[
        ("PUT", "/v1/sys/unseal", b"nojson"),
        ("PUT", "/v1/sys/unseal", b"{\"key\": 5}"),
        ("PUT", "/v1/sys/unseal", b"{}"),
        ("DELETE", "/v1/sys/seal-status", b""),
        ("POST", "/v1/sys/seal-status", b""),
        ("GET", "/v1/sys/health?standbyok=maybe", b""),
        ("GET", "/v1/sys/health?sealedcode=abc", b""),
    ];
    for (method, path, body) in cases {
        let a = raw(daemon.addr.as_str(), method, path, None, Some(body));
        let b = raw(bao.addr.as_str(), method, path, None, Some(body));
        assert_eq!(
            a.status, b.status,
            "{method} {path}: {:?} vs {:?}",
            a.body, b.body
        );
        let errors = a.body["errors"].as_array().unwrap();
        assert!(errors.len() <= 1, "{method} {path}: {:?}", a.body);
        if let Some(sentence) = errors.first() {
            let sentence = sentence.as_str().unwrap();
            assert!(!sentence.contains("Error {") && sentence.len() < 1024);
        }
    }
    // A body over the listener's limit: 413, without reading it all.
    let huge = vec![b' '; 40 << 20];
    let refused = raw(
        daemon.addr.as_str(),
        "PUT",
        "/v1/sys/unseal",
        None,
        Some(&huge),
    );
    assert_eq!(refused.status, 413, "{:?}", refused.body);
    // `..` in a path, an unknown path, a method Vault does not know.
    assert_eq!(
        raw(
            daemon.addr.as_str(),
            "GET",
            "/v1/sys/../sys/health",
            None,
            None
        )
        .status,
        400
    );
    assert_eq!(
        raw(daemon.addr.as_str(), "GET", "/v1/nothing/here", None, None).status,
        503
    );
    assert_eq!(
        raw(daemon.addr.as_str(), "TRACE", "/v1/sys/health", None, None).status,
        405
    );
}

#[test]
fn health_codes_follow_vaults_precedence_and_parameters() {
    let dir = tempdir();
    let daemon = Daemon::start(dir.path(), &config(dir.path(), ""));
    let ours = daemon.addr.as_str();
    let code = |query: &str| raw(ours, "GET", &format!("/v1/sys/health{query}"), None, None).status;
    assert_eq!(code(""), 501);
    assert_eq!(code("?uninitcode=200"), 200);
    assert_eq!(code("?uninitcode=299&sealedcode=298"), 299);
    let init = request(
        ours,
        "PUT",
        "sys/init",
        None,
        Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
    );
    let key = init.body["keys"][0].as_str().unwrap().to_string();
    assert_eq!(code(""), 503);
    assert_eq!(code("?sealedcode=299"), 299);
    assert_eq!(code("?uninitcode=299"), 503);
    // HEAD: the same code, no body.
    let head = raw(ours, "HEAD", "/v1/sys/health", None, None);
    assert_eq!(head.status, 503);
    assert!(head.body.is_null());
    request(
        ours,
        "PUT",
        "sys/unseal",
        None,
        Some(&json!({ "key": key })),
    );
    assert_eq!(code(""), 200);
    // A bare flag is false, as OpenBao reads it; `?list=true` on a path
    // that lists nothing is the GET it is.
    assert_eq!(code("?standbyok&activecode=299"), 299);
    assert_eq!(
        raw(ours, "GET", "/v1/sys/seal-status?list=true", None, None).status,
        200
    );
    // A key that is neither hex nor base64 is refused even when unsealed.
    let bad_key = request(
        ours,
        "PUT",
        "sys/unseal",
        None,
        Some(&json!({"key": "zz!"})),
    );
    assert_eq!(bad_key.status, 400, "{:?}", bad_key.body);
    assert_eq!(code("?activecode=204"), 204);
    assert_eq!(code("?standbyok=true&sealedcode=500"), 200);
    assert_eq!(code("?perfstandbyok=true&performancestandbycode=299"), 200);
    // The unix socket serves the same API.
    let over_unix = request(
        Target::Unix(daemon.socket.clone().unwrap()),
        "GET",
        "sys/health",
        None,
        None,
    );
    assert_eq!(over_unix.status, 200);
    assert_eq!(over_unix.body["sealed"], false);
}

#[test]
fn the_bao_cli_inits_unseals_reads_status_and_seals() {
    let dir = tempdir();
    let daemon = Daemon::start(dir.path(), &config(dir.path(), ""));
    let home = dir.path();
    let addr = daemon.addr.as_str();
    let out = bao(
        addr,
        None,
        home,
        &[
            "operator",
            "init",
            "-key-shares=3",
            "-key-threshold=2",
            "-format=json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let init: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys: Vec<&str> = init["unseal_keys_hex"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    let token = init["root_token"].as_str().unwrap();
    // Sealed: `bao status` exits 2.
    let status = bao(addr, None, home, &["status"]);
    assert_eq!(status.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&status.stdout).contains("Sealed             true"));
    for key in &keys[..2] {
        let out = bao(addr, None, home, &["operator", "unseal", key]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let status = bao(addr, None, home, &["status"]);
    assert_eq!(
        status.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(shown.contains("Sealed          false"), "{shown}");
    assert!(shown.contains("HA Enabled      false"), "{shown}");
    let health = bao(
        addr,
        Some(token),
        home,
        &["read", "-format=json", "sys/health"],
    );
    assert!(
        health.status.success(),
        "{}",
        String::from_utf8_lossy(&health.stderr)
    );
    let read: serde_json::Value = serde_json::from_slice(&health.stdout).unwrap();
    assert_eq!(read["data"]["initialized"], true, "{read}");
    assert_eq!(read["data"]["sealed"], false, "{read}");
    // Without HA there is no role to give up: 204, as OpenBao.
    let stepped = request(addr, "PUT", "sys/step-down", Some(token), None);
    assert_eq!(stepped.status, 204, "{:?}", stepped.body);
    let sealed = bao(addr, Some(token), home, &["operator", "seal"]);
    assert!(
        sealed.status.success(),
        "{}",
        String::from_utf8_lossy(&sealed.stderr)
    );
    assert!(String::from_utf8_lossy(&sealed.stdout).contains("sealed"));
    assert_eq!(bao(addr, None, home, &["status"]).status.code(), Some(2));
    // A wrong key: bao's error names it, exit 2.
    let wrong = bao(addr, None, home, &["operator", "unseal", "zz"]);
    assert_eq!(wrong.status.code(), Some(2));
}

#[test]
fn bad_input_to_an_operation_is_audited_in_bounded_lines() {
    let dir = tempdir();
    let audit = dir.path().join("audit.log");
    let extra = format!("audit \"file\" {{\n  path = \"{}\"\n}}\n", audit.display());
    let daemon = Daemon::start(dir.path(), &config(dir.path(), &extra));
    let ours = daemon.addr.as_str();
    // A wrong type whose value is large: the error quotes part of it.
    let big = format!("{{\"reset\": \"{}\"}}", "x".repeat(200_000));
    let refused = raw(ours, "PUT", "/v1/sys/unseal", None, Some(big.as_bytes()));
    assert_eq!(refused.status, 400, "{:?}", refused.body);
    let sentence = refused.body["errors"][0].as_str().unwrap();
    assert!(
        sentence.starts_with("failed to decode JSON input"),
        "{sentence}"
    );
    assert!(sentence.len() <= 1024);
    let malformed = raw(
        ours,
        "PUT",
        "/v1/sys/init",
        None,
        Some(b"{\"secret_shares\": 3,"),
    );
    assert_eq!(malformed.status, 400);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| {
            assert!(l.len() < 4096, "an audit line of {} bytes", l.len());
            serde_json::from_str(l).unwrap()
        })
        .collect();
    for operation in ["sys.Unseal", "sys.Init"] {
        let response = lines
            .iter()
            .find(|l| l["operation"] == operation && l["type"] == "response")
            .unwrap_or_else(|| panic!("no {operation} response line in {lines:?}"));
        assert!(
            response["error"]
                .as_str()
                .unwrap()
                .starts_with("failed to decode JSON input"),
            "{response}"
        );
    }
    // Nothing was initialized by the refused init.
    assert_eq!(
        request(ours, "GET", "sys/init", None, None).body,
        json!({"initialized": false})
    );
}

#[test]
fn over_mutual_tls_the_bao_cli_is_known_by_its_certificate() {
    use rcgen::{ExtendedKeyUsagePurpose, SanType};

    use crate::support::cli::write_policy;
    use crate::support::daemon::open;
    use crate::support::tls::Ca;
    use crate::support::vault::bao_with;

    let dir = tempdir();
    let d = dir.path();
    let ca = Ca::new(d, "ca");
    let (server_cert, server_key) = ca.leaf(d, "server", ExtendedKeyUsagePurpose::ServerAuth);
    let clients = Ca::new(d, "clients");
    let client = |file: &str, cn: &str| {
        let sans = vec![SanType::DnsName("client.internal".try_into().unwrap())];
        clients.leaf_with(d, file, cn, sans, ExtendedKeyUsagePurpose::ClientAuth)
    };
    let (app_cert, app_key) = client("app", "app");
    let (admin_cert, admin_key) = client("admin", "admin");
    let tls = format!(
        "address = \"127.0.0.1:0\"\n  tls_cert_file = \"{}\"\n  tls_key_file = \"{}\"\n  tls_client_ca_file = \"{}\"\n  identity {{\n    cert_cn = \"app\"\n    policies = [\"keyreader\"]\n  }}",
        server_cert.display(),
        server_key.display(),
        clients.pem_path.display()
    );
    let text = config(d, "").replace("address = \"127.0.0.1:0\"", &tls);
    let mut daemon = Daemon::start(d, &text);
    assert!(daemon.addr.starts_with("https://"));
    for (k, v) in [
        ("STRONGROOM_CACERT", &ca.pem_path),
        ("STRONGROOM_CLIENT_CERT", &admin_cert),
        ("STRONGROOM_CLIENT_KEY", &admin_key),
    ] {
        daemon.env.insert(k.into(), v.display().to_string());
    }
    open(&mut daemon);
    write_policy(
        &mut daemon.cli(),
        "keyreader",
        "path \"sys/key-status\" { capabilities = [\"read\"] }\n",
    );
    let as_client = |cert: &std::path::Path, key: &std::path::Path, args: &[&str]| {
        bao_with(
            &daemon.addr,
            None,
            d,
            &[
                ("BAO_CACERT", ca.pem_path.as_path()),
                ("BAO_CLIENT_CERT", cert),
                ("BAO_CLIENT_KEY", key),
            ],
            args,
        )
    };
    // No token: the certificate's identity grants what its policy says.
    let read = as_client(
        &app_cert,
        &app_key,
        &["read", "-format=json", "sys/key-status"],
    );
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&read.stdout).unwrap();
    assert_eq!(answer["data"]["term"], 1);
    // A certificate no identity matches, and no token: refused.
    let refused = as_client(&admin_cert, &admin_key, &["read", "sys/key-status"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("403"));
    // Unauthenticated endpoints answer any client with a certificate.
    let status = as_client(&admin_cert, &admin_key, &["status"]);
    assert_eq!(status.status.code(), Some(0));
}
