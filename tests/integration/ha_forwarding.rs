//! HA forwarding with real daemons (docs/HA.md, Forwarding): three nodes
//! with a `cluster_addr` each; every call through a standby reaches the
//! active node as the caller's own (audit lines on the active only, the
//! same accessor and identity as a direct call); forged forwarding headers
//! change nothing on a client listener; the cluster listener refuses a
//! certificate that is not the cluster's; after kill -9 of the active node
//! a standby forwards to the new one. Latencies are printed, never asserted.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;
use tonic::Code;

use strongroom::proto::{self, kv_client::KvClient, sys_client::SysClient};

use crate::support::cli::create_token;
use crate::support::grpc::{channel, with_token};
use crate::support::ha::{Cluster, SETTLE};

/// The policy the unix listener's identity gets.
const READER: &str = "path \"secret/data/app/*\" { capabilities = [\"read\"] }\n";

/// Each node: an audit file in its directory, and a unix listener whose
/// identity block gives this test's uid the `reader` policy.
fn audited_with_identity(dir: &Path) -> String {
    let uid = nix::unistd::getuid().as_raw();
    format!(
        "audit \"file\" {{ path = \"{audit}\" }}\n\
         listener \"unix\" {{\n  path = \"{socket}\"\n  identity {{\n    uid = {uid}\n    policies = [\"reader\"]\n  }}\n}}\n",
        audit = dir.join("audit.log").display(),
        socket = dir.join("strongroom.sock").display(),
    )
}

/// The audit lines of node `i` (none when it wrote no file).
fn audit_lines(cluster: &Cluster, i: usize) -> Vec<Value> {
    std::fs::read_to_string(cluster.nodes[i].dir.path().join("audit.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The request lines of `operation` among `lines`.
fn requests<'a>(lines: &'a [Value], operation: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l["type"] == "request" && l["operation"] == operation)
        .collect()
}

#[test]
fn every_call_through_a_standby_reaches_the_active_node_as_its_caller() {
    let mut cluster = Cluster::start_forwarding(3, "2s", audited_with_identity);
    cluster.open();
    let active = cluster.wait_active(&[0, 1, 2]);
    let standby = (active + 1) % 3;
    let via = |args: &[&str]| cluster.nodes[standby].daemon.cli().run(args).ok();
    let via_stdin = |args: &[&str], input: &str| {
        cluster.nodes[standby]
            .daemon
            .cli()
            .run_stdin(args, input)
            .ok()
    };

    // The lifecycle and the data plane, every call through the standby.
    let root_accessor = via(&["token", "lookup", "--format", "json"]).json()["accessor"]
        .as_str()
        .unwrap()
        .to_string();
    via_stdin(&["policy", "write", "reader", "-"], READER);
    assert!(
        via(&["policy", "read", "reader"])
            .stdout
            .contains("secret/data/app/*")
    );
    via(&["kv", "put", "app/db", "v=one"]);
    via(&["kv", "put", "app/tmp", "v=gone"]);
    assert_eq!(cluster.get(standby, "app/db").as_deref(), Some("one"));
    assert!(via(&["kv", "list", "app"]).stdout.contains("db"));
    let metadata = via(&["kv", "metadata", "get", "app/db", "--format", "json"]).json();
    assert_eq!(metadata["current_version"], 1, "{metadata}");
    via(&["kv", "delete", "app/tmp"]);
    via(&["keys", "create", "orders"]);
    let sealed = via_stdin(&["keys", "encrypt", "orders"], "card 4242");
    let ciphertext = sealed.stdout.trim();
    assert!(ciphertext.starts_with("sr:v1:"), "{ciphertext}");
    let opened = via(&["keys", "decrypt", "orders", ciphertext]);
    assert_eq!(opened.stdout, "card 4242");
    let mut through_standby = cluster.nodes[standby].daemon.cli();
    let (child, made) = create_token(&mut through_standby, &["--policy", "reader"]);
    let looked_up = via(&["token", "lookup", &child, "--format", "json"]).json();
    assert_eq!(looked_up["accessor"], made["accessor"]);
    via(&["token", "revoke", &child]);
    via(&["rotate"]);
    let key_status = via(&["key-status", "--format", "json"]).json();
    assert_eq!(key_status["term"], 2, "{key_status}");
    let rekey = via(&["rekey", "--init", "--format", "json"]).json();
    let nonce = rekey["nonce"].as_str().unwrap();
    via(&["rekey", "--cancel", "--nonce", nonce]);
    let generate_root = via(&["generate-root", "--status", "--format", "json"]).json();
    assert_eq!(generate_root["started"], false, "{generate_root}");
    let snapshot = cluster.nodes[standby].dir.path().join("store.snap");
    via(&["snapshot", "save", snapshot.to_str().unwrap()]);
    assert!(std::fs::metadata(&snapshot).unwrap().len() > 0);
    // The rest of the data plane and the quorum starts.
    via(&["kv", "undelete", "--versions", "1", "app/tmp"]);
    via(&["kv", "destroy", "--versions", "1", "app/tmp"]);
    via(&["kv", "metadata", "delete", "app/tmp"]);
    via(&["keys", "rotate", "orders"]);
    assert!(via(&["keys", "list"]).stdout.contains("orders"));
    let read = via(&["keys", "read", "orders", "--format", "json"]).json();
    assert_eq!(read["latest_version"], 2, "{read}");
    let rewrapped = via(&["keys", "rewrap", "orders", ciphertext]);
    assert!(
        rewrapped.stdout.trim().starts_with("sr:v2:"),
        "{}",
        rewrapped.stdout
    );
    via(&["keys", "datakey", "orders"]);
    via(&["keys", "config", "orders", "--deletion-allowed", "true"]);
    via(&["keys", "delete", "orders"]);
    let (renewable, made) = create_token(
        &mut cluster.nodes[standby].daemon.cli(),
        &["--policy", "reader"],
    );
    via(&["token", "renew", &renewable]);
    via(&[
        "token",
        "revoke-accessor",
        made["accessor"].as_str().unwrap(),
    ]);
    via(&["token", "list-accessors"]);
    assert!(via(&["policy", "list"]).stdout.contains("reader"));
    via_stdin(&["audit-hash"], "a known secret");
    let started = via(&["generate-root", "--init", "--format", "json"]).json();
    via(&[
        "generate-root",
        "--cancel",
        "--nonce",
        started["nonce"].as_str().unwrap(),
    ]);
    let started = via(&["rotate-root", "--init", "--format", "json"]).json();
    via(&[
        "rotate-root",
        "--cancel",
        "--nonce",
        started["nonce"].as_str().unwrap(),
    ]);

    // A sidecar known by its uid: through the standby's socket, then the
    // active's own.
    for node in [standby, active] {
        let run = cluster.nodes[node]
            .daemon
            .cli_unix()
            .run(&["kv", "get", "app/db", "--field", "v"])
            .ok();
        assert_eq!(run.stdout, "one");
    }

    // The active node audited every call, as the root token's; the
    // standby none of them.
    let on_active = audit_lines(&cluster, active);
    let on_standby = audit_lines(&cluster, standby);
    let operations = [
        "policy.Put",
        "policy.Get",
        "kv.Put",
        "kv.Get",
        "kv.List",
        "kv.Metadata",
        "kv.Delete",
        "keys.Create",
        "keys.Encrypt",
        "keys.Decrypt",
        "token.Create",
        "token.Lookup",
        "token.Revoke",
        "sys.Rotate",
        "sys.KeyStatus",
        "sys.RekeyInit",
        "sys.RekeyCancel",
        "sys.SnapshotSave",
        "kv.Undelete",
        "kv.Destroy",
        "kv.DeleteMetadata",
        "keys.Rotate",
        "keys.List",
        "keys.Read",
        "keys.Rewrap",
        "keys.GenerateDataKey",
        "keys.UpdateConfig",
        "keys.Delete",
        "token.Renew",
        "token.RevokeAccessor",
        "token.ListAccessors",
        "policy.List",
        "sys.AuditHash",
        "sys.RotateRootInit",
        "sys.RotateRootCancel",
    ];
    for operation in operations {
        let lines = requests(&on_active, operation);
        assert!(!lines.is_empty(), "no {operation} line on the active node");
        assert!(
            lines
                .iter()
                .any(|l| l["accessor"] == root_accessor.as_str()),
            "{operation}: {lines:?}"
        );
        assert!(
            requests(&on_standby, operation).is_empty(),
            "the standby audited a forwarded {operation}"
        );
    }
    // Generate-root's start and cancel need no token: audited on the
    // active node all the same, never on the standby.
    for operation in ["sys.GenerateRootInit", "sys.GenerateRootCancel"] {
        assert!(
            !requests(&on_active, operation).is_empty(),
            "no {operation} line on the active node"
        );
        assert!(
            requests(&on_standby, operation).is_empty(),
            "the standby audited a forwarded {operation}"
        );
    }
    // The sidecar's two reads carry the same identity, forwarded or not.
    let identities: Vec<&Value> = requests(&on_active, "kv.Get")
        .into_iter()
        .filter(|l| !l["identity"].is_null())
        .map(|l| &l["identity"])
        .collect();
    assert_eq!(identities.len(), 2, "{identities:?}");
    assert_eq!(identities[0], identities[1]);
    assert!(
        identities[0].as_str().unwrap().starts_with("unix:uid="),
        "{identities:?}"
    );

    // Forwarding headers sent by a caller are not believed, directly or
    // through the standby: the call has no identity, so no access.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        for node in [active, standby] {
            let mut kv = KvClient::new(channel(&cluster.nodes[node].daemon.addr).await);
            let mut request = tonic::Request::new(proto::GetRequest {
                path: "app/db".into(),
                version: 0,
            });
            let uid = nix::unistd::getuid().as_raw().to_string();
            let metadata = request.metadata_mut();
            metadata.insert("x-strongroom-forwarded-listener", "1/unix".parse().unwrap());
            metadata.insert("x-strongroom-forwarded-uid", uid.parse().unwrap());
            metadata.insert("x-strongroom-forwarded-gid", "0".parse().unwrap());
            let refused = kv.get(request).await.unwrap_err();
            assert_eq!(
                refused.code(),
                Code::Unauthenticated,
                "node {node}: {refused:?}"
            );
        }
    });

    print_latencies(&runtime, &cluster, active, standby);
}

/// Median latency of 100 calls each of Status and a KV read, on the active
/// node directly and through a standby, with one gRPC connection each.
fn print_latencies(
    runtime: &tokio::runtime::Runtime,
    cluster: &Cluster,
    active: usize,
    standby: usize,
) {
    let token = cluster.init.as_ref().unwrap().root_token.clone();
    runtime.block_on(async {
        for (label, node) in [("active", active), ("standby", standby)] {
            let channel = channel(&cluster.nodes[node].daemon.addr).await;
            let mut sys = SysClient::new(channel.clone());
            let mut kv = KvClient::new(channel);
            let mut status = Vec::new();
            let mut read = Vec::new();
            for _ in 0..100 {
                let started = Instant::now();
                sys.status(proto::StatusRequest {}).await.unwrap();
                status.push(started.elapsed());
                let started = Instant::now();
                let request = with_token(
                    proto::GetRequest {
                        path: "app/db".into(),
                        version: 0,
                    },
                    &token,
                );
                kv.get(request).await.unwrap();
                read.push(started.elapsed());
            }
            status.sort();
            read.sort();
            eprintln!(
                "median of 100 through the {label} node: Status {:?}, KV read {:?}",
                status[50], read[50]
            );
        }
    });
}

#[test]
fn the_cluster_listener_takes_only_the_clusters_certificate() {
    let mut cluster = Cluster::start_forwarding(2, "2s", |_| String::new());
    cluster.open();
    let active = cluster.wait_active(&[0, 1]);
    let standby = 1 - active;
    cluster.put(standby, "app/db", "forwarded").ok();
    let port = cluster.nodes[active].cluster_port.unwrap();
    let dir = crate::support::daemon::tempdir();
    let ca = crate::support::tls::Ca::new(dir.path(), "impostor-ca");
    let (cert, key) = ca.leaf(
        dir.path(),
        "impostor",
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for client_cert in [Some((cert.as_path(), key.as_path())), None] {
        let refused = runtime.block_on(call_cluster_listener(port, client_cert));
        assert!(
            refused.is_err(),
            "the cluster listener answered: {refused:?}"
        );
    }
    // The node refused both handshakes, each for its certificate.
    let deadline = Instant::now() + SETTLE;
    let refusals = loop {
        let refusals: Vec<String> = cluster.nodes[active]
            .daemon
            .stderr
            .all()
            .into_iter()
            .filter(|l| l.contains("cluster listener: TLS handshake refused"))
            .collect();
        // A client may try its handshake more than once: wait for both
        // kinds of refusal, not for a count of lines.
        let joined = refusals.join("\n");
        if joined.contains("invalid peer certificate") && joined.contains("no certificates") {
            break joined;
        }
        assert!(
            Instant::now() < deadline,
            "refusals not logged: {refusals:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(refusals.contains("invalid peer certificate"), "{refusals}");
    assert!(refusals.contains("no certificates"), "{refusals}");
    // Forwarding itself still works.
    assert_eq!(cluster.get(standby, "app/db").as_deref(), Some("forwarded"));
}

/// A Status call on the cluster listener at `port` with `client_cert`
/// (or none), trusting any server certificate: what an outsider can do.
async fn call_cluster_listener(
    port: u16,
    client_cert: Option<(&Path, &Path)>,
) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)));
    let mut config = match client_cert {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_file(cert).unwrap()],
                PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1")
        .connect_timeout(Duration::from_secs(5))
        .connect_with_connector(tower::service_fn(move |_| {
            let connector = connector.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
                let name =
                    rustls::pki_types::ServerName::try_from("cluster.strongroom.internal").unwrap();
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
        .map_err(|e| e.to_string())?;
    let mut sys = SysClient::new(channel);
    let call = sys.status(proto::StatusRequest {});
    match tokio::time::timeout(SETTLE, call).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(status)) => Err(status.to_string()),
        Err(_) => Err("no answer".into()),
    }
}

/// Trusts any server certificate: the test plays an outsider who does.
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[test]
fn after_kill_9_of_the_active_node_a_standby_forwards_to_the_new_one() {
    let mut cluster = Cluster::start_forwarding(3, "5s", |_| String::new());
    cluster.open();
    let first = cluster.wait_active(&[0, 1, 2]);
    let others: Vec<usize> = (0..3).filter(|&i| i != first).collect();
    cluster.put(others[0], "app/db", "before").ok();

    let killed = Instant::now();
    cluster.nodes[first].daemon.signal(Signal::SIGKILL);
    // Right after the kill a standby may still name the dead node: its
    // answer is then one of the documented sentences, never a bare
    // transport error (which one depends on timing, so either passes).
    let early = cluster.nodes[others[0]]
        .daemon
        .cli()
        .run(&["kv", "get", "app/db"]);
    eprintln!(
        "just after kill -9, through a standby: exit {} {}",
        early.code,
        early.stderr.trim()
    );
    assert!(
        early.code == 0
            || early
                .stderr
                .contains("could not forward the call to the active node at https://127.0.0.1:")
            || early.stderr.contains("this node is a standby"),
        "{}",
        early.stderr
    );
    let second = cluster.wait_active(&others);
    let standby = others.iter().copied().find(|&i| i != second).unwrap();
    let deadline = Instant::now() + SETTLE;
    let mut cli = cluster.nodes[standby].daemon.cli();
    loop {
        let run = cli.run(&["kv", "put", "app/db", "v=after"]);
        if run.code == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no write through the standby within {SETTLE:?}: {}",
            run.stderr
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "after kill -9 of the active node, a write through a standby succeeded {:?} after the kill",
        killed.elapsed()
    );
    assert_eq!(cluster.get(second, "app/db").as_deref(), Some("after"));
    assert_eq!(cluster.get(standby, "app/db").as_deref(), Some("after"));
}

/// The two calls that change who serves, made through a standby: a
/// step-down hands the role over (to that standby, the only other node),
/// and a snapshot restore seals every node.
#[test]
fn step_down_and_restore_through_a_standby() {
    let mut cluster = Cluster::start_forwarding(2, "2s", |_| String::new());
    cluster.open();
    let first = cluster.wait_active(&[0, 1]);
    let other = 1 - first;
    cluster.nodes[other].daemon.cli().run(&["step-down"]).ok();
    assert_eq!(cluster.wait_active(&[other]), other);
    // Standing by is not enough to forward: it must know the new leader.
    let leader = format!("http://127.0.0.1:{}", cluster.nodes[other].port);
    cluster.wait_for(first, "standing by for the new active node", |s| {
        s["ha_mode"] == "standby" && s["leader_address"] == leader.as_str()
    });

    let snapshot = cluster.nodes[first].dir.path().join("store.snap");
    let snapshot = snapshot.to_str().unwrap();
    let via_standby = |args: &[&str]| cluster.nodes[first].daemon.cli().run(args).ok();
    via_standby(&["snapshot", "save", snapshot]);
    via_standby(&["snapshot", "restore", snapshot]);
    for node in [0, 1] {
        cluster.wait_for(node, "sealed", |s| s["sealed"] == true);
    }
}

/// A client known by its certificate (a URI SAN) on a mutual-TLS listener:
/// through a standby's listener it is the same caller, with the same
/// identity in the active node's audit, as on the active node's own.
#[test]
fn a_certificate_identity_is_the_same_through_a_standby() {
    use crate::support::tls::Ca;
    use rcgen::{ExtendedKeyUsagePurpose, SanType};
    let certs = crate::support::daemon::tempdir();
    let ca = Ca::new(certs.path(), "ca");
    let (server_cert, server_key) =
        ca.leaf(certs.path(), "server", ExtendedKeyUsagePurpose::ServerAuth);
    let (app_cert, app_key) = ca.leaf_with(
        certs.path(),
        "app",
        "app",
        vec![SanType::URI("spiffe://example.org/app".try_into().unwrap())],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let ports = std::sync::Mutex::new(Vec::new());
    let mut cluster = Cluster::start_forwarding(2, "2s", |dir: &Path| {
        let port = crate::support::ha::free_port();
        ports.lock().unwrap().push(port);
        format!(
            "audit \"file\" {{ path = \"{audit}\" }}\n\
             listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_cert_file = \"{cert}\"\n  tls_key_file = \"{key}\"\n  tls_client_ca_file = \"{ca}\"\n  identity {{\n    cert_san = \"spiffe://example.org/app\"\n    policies = [\"reader\"]\n  }}\n}}\n",
            audit = dir.join("audit.log").display(),
            cert = server_cert.display(),
            key = server_key.display(),
            ca = ca.pem_path.display(),
        )
    });
    let ports = ports.into_inner().unwrap();
    cluster.open();
    let active = cluster.wait_active(&[0, 1]);
    let standby = 1 - active;
    let root = || cluster.nodes[active].daemon.cli();
    crate::support::cli::write_policy(&mut root(), "reader", READER);
    cluster.put(active, "app/db", "one").ok();

    let as_app = |node: usize| {
        crate::support::cli::Cli::new()
            .env(
                "STRONGROOM_ADDR",
                &format!("https://127.0.0.1:{}", ports[node]),
            )
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
                "--field",
                "v",
            ])
    };
    for node in [standby, active] {
        assert_eq!(as_app(node).ok().stdout, "one", "through node {node}");
    }
    let identities: Vec<Value> = requests(&audit_lines(&cluster, active), "kv.Get")
        .into_iter()
        .filter(|l| !l["identity"].is_null())
        .map(|l| l["identity"].clone())
        .collect();
    assert_eq!(identities.len(), 2, "{identities:?}");
    assert_eq!(identities[0], identities[1]);
    assert!(
        identities[0]
            .as_str()
            .unwrap()
            .contains("spiffe://example.org/app"),
        "{identities:?}"
    );
    assert!(requests(&audit_lines(&cluster, standby), "kv.Get").is_empty());
}
