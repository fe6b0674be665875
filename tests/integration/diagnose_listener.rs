//! `strongroom diagnose`'s listener area, with the real binary and its
//! JSON: an address free, held by another process or by a running
//! strongroom; TLS files made here (valid, expired, near expiry, a key of
//! another certificate, a chain missing its intermediate, a client CA that
//! is not PEM); plaintext off loopback; unix sockets whose directory is
//! missing or closed to the service user, and owners it may not set.

mod pki;

use std::path::{Path, PathBuf};

use pki::Pki;
use serde_json::Value;

use crate::support::cli::{Cli, Run};
use crate::support::daemon::{self, Daemon, tempdir};

/// The areas `strongroom diagnose` runs, in its order.
const AREAS: [&str; 6] = ["config", "storage", "seal", "listener", "process", "audit"];

/// `strongroom diagnose --config FILE --format json`, with only `area`
/// run; no AWS setting of the caller's environment, no instance metadata.
pub fn diagnose(config: &Path, area: &str, extra: &[&str]) -> Run {
    let skip: Vec<&str> = AREAS.into_iter().filter(|a| *a != area).collect();
    let skip = skip.join(",");
    let config = config.display().to_string();
    let mut args = vec![
        "diagnose", "--config", &config, "--format", "json", "--skip", &skip,
    ];
    args.extend_from_slice(extra);
    // Never this machine's /etc/strongroom/strongroom.env.
    args.push("--no-env-file");
    let mut cli = Cli::new();
    cli.env("AWS_EC2_METADATA_DISABLED", "true");
    cli.run(&args)
}

/// The finding at `path` (the area's name, then each heading's) in a report.
#[track_caller]
pub fn finding<'a>(report: &'a Value, path: &[&str]) -> &'a Value {
    let mut found = &Value::Null;
    let mut level = &report["findings"];
    for name in path {
        found = level
            .as_array()
            .and_then(|list| list.iter().find(|f| f["name"] == *name))
            .unwrap_or_else(|| panic!("no finding {name:?} of {path:?} in {report:#}"));
        level = &found["children"];
    }
    found
}

/// Asserts the finding at `path` has `status` and a message containing `says`.
#[track_caller]
pub fn assert_finding(report: &Value, path: &[&str], status: &str, says: &str) {
    let found = finding(report, path);
    assert_eq!(found["status"], status, "{path:?}: {found:#}");
    let message = found["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(says),
        "{path:?}: {says:?} not in {message:?}"
    );
    assert!(!message.contains('\n'), "{message}");
    if status == "warning" || status == "failure" {
        assert!(
            found["advice"].is_string(),
            "{path:?} has no advice: {found:#}"
        );
    }
}

/// Writes `text` as `dir/diagnose.hcl` and returns its path.
fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("diagnose.hcl");
    std::fs::write(&path, text).unwrap();
    path
}

/// A config with file storage in `dir` and `listeners`.
fn with_listeners(dir: &Path, listeners: &str) -> PathBuf {
    write_config(
        dir,
        &format!(
            "storage \"file\" {{\n  path = \"{}\"\n}}\ndisable_mlock = true\n{listeners}",
            dir.join("data").display()
        ),
    )
}

fn tcp_tls(address: &str, cert: &Path, key: &Path, client_ca: Option<&Path>) -> String {
    let ca = client_ca
        .map(|ca| format!("  tls_client_ca_file = \"{}\"\n", ca.display()))
        .unwrap_or_default();
    format!(
        "listener \"tcp\" {{\n  address = \"{address}\"\n  tls_cert_file = \"{}\"\n  tls_key_file = \"{}\"\n{ca}}}\n",
        cert.display(),
        key.display()
    )
}

const TCP: &str = "tcp 127.0.0.1:0";

#[test]
fn a_valid_chain_passes_and_a_near_expiry_warns() {
    let dir = tempdir();
    let pki = Pki::new(dir.path());
    let (cert, key) = pki.leaf("server", -1, 365);
    let ca = dir.path().join("clients.pem");
    std::fs::write(&ca, pki.root.pem()).unwrap();
    let config = with_listeners(dir.path(), &tcp_tls("127.0.0.1:0", &cert, &key, Some(&ca)));
    let run = diagnose(&config, "listener", &[]).ok();
    let report = run.json();
    assert_eq!(report["status"], "success", "{report:#}");
    assert_finding(
        &report,
        &["listener", TCP, "bind"],
        "success",
        "127.0.0.1:0 can be bound",
    );
    assert_finding(
        &report,
        &["listener", TCP, "certificate and key"],
        "success",
        "parse and match",
    );
    assert_finding(
        &report,
        &["listener", TCP, "chain"],
        "success",
        &format!(
            "is in order and its last is issued by \"CN=Test Root\", found in the client CA file {}",
            ca.display()
        ),
    );
    assert_finding(
        &report,
        &["listener", TCP, "expiry"],
        "success",
        "days left",
    );
    assert_finding(
        &report,
        &["listener", TCP, "client ca"],
        "success",
        "holds 1 CA certificate(s): \"CN=Test Root\"",
    );

    // 10 of 300 days left: under 30 days and under 15% of its lifetime.
    let (cert, key) = pki.leaf("soon", -290, 10);
    let config = with_listeners(dir.path(), &tcp_tls("127.0.0.1:0", &cert, &key, None));
    let run = diagnose(&config, "listener", &[]).ok();
    let report = run.json();
    assert_eq!(report["status"], "warning");
    assert_finding(
        &report,
        &["listener", TCP, "expiry"],
        "warning",
        "day(s) left, 3% of its lifetime",
    );
}

#[test]
fn an_expired_certificate_fails() {
    let dir = tempdir();
    let pki = Pki::new(dir.path());
    let (cert, key) = pki.leaf("old", -400, -1);
    let config = with_listeners(dir.path(), &tcp_tls("127.0.0.1:0", &cert, &key, None));
    let report = diagnose(&config, "listener", &[]).code(1).json();
    assert_eq!(report["status"], "failure");
    assert_finding(
        &report,
        &["listener", TCP, "expiry"],
        "failure",
        "\"CN=old\"",
    );
    assert_finding(
        &report,
        &["listener", TCP, "expiry"],
        "failure",
        "expired on",
    );
    // Skipping the check by name leaves the rest passing.
    let report = diagnose(&config, "listener", &["--skip", "expiry"])
        .ok()
        .json();
    assert_eq!(
        finding(&report, &["listener", TCP, "expiry"])["status"],
        "skipped"
    );
}

#[test]
fn a_key_of_another_certificate_fails_in_one_sentence() {
    let dir = tempdir();
    let pki = Pki::new(dir.path());
    let (cert, _) = pki.leaf("server", -1, 365);
    let (_, other_key) = pki.leaf("other", -1, 365);
    let config = with_listeners(dir.path(), &tcp_tls("127.0.0.1:0", &cert, &other_key, None));
    let report = diagnose(&config, "listener", &[]).code(1).json();
    let says = format!(
        "the private key {} does not belong to the certificate {}",
        other_key.display(),
        cert.display()
    );
    assert_finding(
        &report,
        &["listener", TCP, "certificate and key"],
        "failure",
        &says,
    );
    let message =
        finding(&report, &["listener", TCP, "certificate and key"])["message"].to_string();
    assert!(!message.contains("KeyMismatch"), "{message}");
    // The chain and its dates are still looked at: the root that issued
    // its intermediate is nowhere this machine can find.
    assert_finding(
        &report,
        &["listener", TCP, "chain"],
        "warning",
        "issued by \"CN=Test Root\", which is not in the file, this machine's trust store or the client CA file",
    );
}

#[test]
fn a_chain_without_its_intermediate_fails_and_a_bad_client_ca_fails() {
    let dir = tempdir();
    let pki = Pki::new(dir.path());
    let (cert, key) = pki.leaf("server", -1, 365);
    // The leaf, then the root: the intermediate that issued the leaf is missing.
    let leaf_only = std::fs::read_to_string(&cert).unwrap();
    let leaf_only = leaf_only
        .split_inclusive("-----END CERTIFICATE-----\n")
        .next()
        .unwrap();
    let broken = dir.path().join("broken.crt");
    std::fs::write(&broken, format!("{leaf_only}{}", pki.root.pem())).unwrap();
    let not_pem = dir.path().join("clients.pem");
    std::fs::write(&not_pem, "not a certificate\n").unwrap();
    let config = with_listeners(
        dir.path(),
        &tcp_tls("127.0.0.1:0", &broken, &key, Some(&not_pem)),
    );
    let report = diagnose(&config, "listener", &[]).code(1).json();
    assert_finding(
        &report,
        &["listener", TCP, "chain"],
        "failure",
        "is incomplete or out of order: certificate 1 (\"CN=server\") was issued by \"CN=Test Intermediate\", but certificate 2 is \"CN=Test Root\"",
    );
    assert_finding(
        &report,
        &["listener", TCP, "certificate and key"],
        "success",
        "parse and match",
    );
    assert_finding(
        &report,
        &["listener", TCP, "client ca"],
        "failure",
        "holds no PEM certificate",
    );

    // The leaf alone: its issuer is nowhere to be found, a warning.
    let alone = dir.path().join("alone.crt");
    std::fs::write(&alone, leaf_only).unwrap();
    let config = with_listeners(dir.path(), &tcp_tls("127.0.0.1:0", &alone, &key, None));
    let report = diagnose(&config, "listener", &[]).ok().json();
    assert_finding(
        &report,
        &["listener", TCP, "chain"],
        "warning",
        "the chain of 1 certificate(s) ends with \"CN=server\", issued by \"CN=Test Intermediate\", which is not in the file",
    );

    // An intermediate of the same name but another key: names are not enough.
    let other = Pki::new(&dir.path().join("other"));
    let forged = dir.path().join("forged.crt");
    std::fs::write(&forged, format!("{leaf_only}{}", other.intermediate_pem())).unwrap();
    let config = with_listeners(dir.path(), &tcp_tls("127.0.0.1:0", &forged, &key, None));
    let report = diagnose(&config, "listener", &[]).code(1).json();
    assert_finding(
        &report,
        &["listener", TCP, "chain"],
        "failure",
        "certificate 1 (\"CN=server\") names certificate 2 (\"CN=Test Intermediate\") as its issuer but is not signed by its key",
    );
}

#[test]
fn a_port_held_by_another_process_fails_and_by_a_strongroom_warns() {
    let dir = tempdir();
    // Another process: listening, never answering.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = other.local_addr().unwrap().to_string();
    let config = with_listeners(
        dir.path(),
        &format!("listener \"tcp\" {{\n  address = \"{address}\"\n}}\n"),
    );
    let report = diagnose(&config, "listener", &[]).code(1).json();
    let tcp = format!("tcp {address}");
    assert_finding(
        &report,
        &["listener", &tcp, "bind"],
        "failure",
        "is in use by another process, which does not answer as a strongroom",
    );
    assert_finding(&report, &["listener", &tcp, "tls"], "success", "loopback");
    drop(other);
    let report = diagnose(&config, "listener", &[]).ok().json();
    assert_finding(
        &report,
        &["listener", &tcp, "bind"],
        "success",
        "can be bound",
    );

    // A running strongroom, on TCP and on its unix socket.
    let daemon_dir = tempdir();
    let daemon = Daemon::start(daemon_dir.path(), &daemon::config(daemon_dir.path(), ""));
    let address = daemon.addr.trim_start_matches("http://").to_string();
    let socket = daemon.socket.clone().unwrap();
    let config = with_listeners(
        dir.path(),
        &format!(
            "listener \"tcp\" {{\n  address = \"{address}\"\n}}\nlistener \"unix\" {{\n  path = \"{}\"\n}}\n",
            socket.display()
        ),
    );
    let report = diagnose(&config, "listener", &[]).ok().json();
    assert_eq!(report["status"], "warning", "{report:#}");
    assert_finding(
        &report,
        &["listener", &format!("tcp {address}"), "bind"],
        "warning",
        "is in use by a running strongroom (not initialized, sealed",
    );
    assert_finding(
        &report,
        &["listener", &format!("unix {}", socket.display()), "bind"],
        "warning",
        "a running strongroom answers on",
    );
}

#[test]
fn plaintext_off_loopback_warns() {
    let dir = tempdir();
    let config = with_listeners(
        dir.path(),
        "listener \"tcp\" {\n  address = \"0.0.0.0:0\"\n  tls_disable = true\n}\n",
    );
    let report = diagnose(&config, "listener", &[]).ok().json();
    assert_eq!(report["status"], "warning");
    assert_finding(
        &report,
        &["listener", "tcp 0.0.0.0:0", "tls"],
        "warning",
        "TLS is off on 0.0.0.0:0, which is not a loopback address",
    );
}

#[test]
fn a_unix_socket_needs_its_directory_and_owners_the_service_may_set() {
    let dir = tempdir();
    let missing = dir.path().join("no-such-dir/strongroom.sock");
    let config = with_listeners(
        dir.path(),
        &format!(
            "listener \"unix\" {{\n  path = \"{}\"\n}}\n",
            missing.display()
        ),
    );
    let label = format!("unix {}", missing.display());
    let report = diagnose(&config, "listener", &[]).code(1).json();
    assert_finding(
        &report,
        &["listener", &label, "socket directory"],
        "failure",
        "does not exist",
    );
    assert_finding(&report, &["listener", &label, "bind"], "success", "is free");

    // A plain file where the socket goes: the daemon will not replace it.
    let file = dir.path().join("not-a-socket");
    std::fs::write(&file, "").unwrap();
    let config = with_listeners(
        dir.path(),
        &format!(
            "listener \"unix\" {{\n  path = \"{}\"\n}}\n",
            file.display()
        ),
    );
    let report = diagnose(&config, "listener", &[]).code(1).json();
    assert_finding(
        &report,
        &["listener", &format!("unix {}", file.display()), "bind"],
        "failure",
        "exists and is not a socket",
    );

    let socket = dir.path().join("strongroom.sock");
    let config = with_listeners(
        dir.path(),
        &format!(
            "listener \"unix\" {{\n  path = \"{}\"\n  socket_mode = \"0660\"\n  socket_group = \"root\"\n}}\n",
            socket.display()
        ),
    );
    let label = format!("unix {}", socket.display());
    let root = nix::unistd::geteuid().is_root();
    let report = diagnose(&config, "listener", &[]).ok().json();
    assert_finding(
        &report,
        &["listener", &label, "socket directory"],
        "success",
        "can create the socket in it",
    );
    if root {
        assert_finding(
            &report,
            &["listener", &label, "socket owner"],
            "success",
            "can give the socket to group root",
        );
        // For a service user other than root: the temporary directory (0700,
        // root's) is closed to it, and it is not in group root.
        let report = diagnose(&config, "listener", &["--user", "nobody"])
            .code(1)
            .json();
        assert_finding(
            &report,
            &["listener", &label, "socket directory"],
            "failure",
            "does not let nobody create the socket in it",
        );
        assert_finding(
            &report,
            &["listener", &label, "socket owner"],
            "failure",
            "nobody is not in group root (gid 0)",
        );
    }
}

#[test]
fn a_privileged_port_fails_for_the_service_user_though_root_binds_it() {
    crate::diagnose_config::must_be_root();
    let start: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        start > 1,
        "this machine lets every user bind every port (ip_unprivileged_port_start = {start}): the check cannot be shown failing here"
    );
    let dir = tempdir();
    let address = format!("127.0.0.1:{}", start - 1);
    let config = with_listeners(
        dir.path(),
        &format!("listener \"tcp\" {{ address = \"{address}\" }}\n"),
    );
    let label = format!("tcp {address}");
    // As root for root, the port binds.
    let report = diagnose(&config, "listener", &["--user", "root"])
        .ok()
        .json();
    assert_finding(
        &report,
        &["listener", &label, "bind"],
        "success",
        "can be bound",
    );
    // For the service user, it does not.
    let report = diagnose(&config, "listener", &["--user", "nobody"])
        .code(1)
        .json();
    assert_finding(
        &report,
        &["listener", &label, "bind"],
        "failure",
        &format!(
            "is a privileged port (below {start}): the service user nobody cannot bind it without CAP_NET_BIND_SERVICE"
        ),
    );
}
