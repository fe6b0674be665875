//! TLS and mutual TLS with certificates made in the test, and a certificate
//! reload on SIGHUP.

use std::path::Path;

use nix::sys::signal::Signal;
use rcgen::ExtendedKeyUsagePurpose;

use crate::support::cli::Cli;
use crate::support::daemon::{Daemon, config, tempdir};
use crate::support::tls::Ca;

fn tls_config(dir: &Path, cert: &Path, key: &Path, client_ca: Option<&Path>) -> String {
    let client_ca = client_ca
        .map(|p| format!("\n  tls_client_ca_file = \"{}\"", p.display()))
        .unwrap_or_default();
    config(dir, "").replace(
        "address = \"127.0.0.1:0\"",
        &format!(
            "address = \"127.0.0.1:0\"\n  tls_cert_file = \"{}\"\n  tls_key_file = \"{}\"{client_ca}",
            cert.display(),
            key.display()
        ),
    )
}

fn cli(daemon: &Daemon, ca: &Path) -> Cli {
    let mut cli = daemon.cli();
    cli.env("STRONGROOM_CACERT", ca.to_str().unwrap());
    cli
}

#[test]
fn tls_serves_clients_that_trust_the_ca_only() {
    let dir = tempdir();
    let ca = Ca::new(dir.path(), "ca");
    let (cert, key) = ca.leaf(dir.path(), "server", ExtendedKeyUsagePurpose::ServerAuth);
    let daemon = Daemon::start(dir.path(), &tls_config(dir.path(), &cert, &key, None));
    assert!(
        daemon.addr.starts_with("https://127.0.0.1:"),
        "{}",
        daemon.addr
    );
    let listening = daemon
        .stderr
        .events()
        .into_iter()
        .find(|e| e["message"] == "listening")
        .unwrap();
    assert_eq!(listening["tls"], "on");

    cli(&daemon, &ca.pem_path).run(&["status"]).code(2);
    crate::support::cli::Cli::new()
        .env("STRONGROOM_ADDR", &daemon.addr)
        .run(&["status"])
        .code(64)
        .error_says("an https:// address needs the CA that signed the daemon's certificate");
    let other = Ca::new(dir.path(), "other");
    let run = cli(&daemon, &other.pem_path).run(&["status"]).code(1);
    assert!(
        run.stderr.contains("cannot reach strongroom"),
        "{}",
        run.stderr
    );
    // Plaintext against a TLS listener fails cleanly too.
    let plain = daemon.addr.replace("https://", "http://");
    crate::support::cli::Cli::new()
        .env("STRONGROOM_ADDR", &plain)
        .run(&["status"])
        .code(1);
}

#[test]
fn mutual_tls_requires_a_client_certificate_from_the_client_ca() {
    let dir = tempdir();
    let ca = Ca::new(dir.path(), "ca");
    let (cert, key) = ca.leaf(dir.path(), "server", ExtendedKeyUsagePurpose::ServerAuth);
    let client_ca = Ca::new(dir.path(), "clients");
    let (client_cert, client_key) =
        client_ca.leaf(dir.path(), "app", ExtendedKeyUsagePurpose::ClientAuth);
    let stranger_ca = Ca::new(dir.path(), "strangers");
    let (stranger_cert, stranger_key) =
        stranger_ca.leaf(dir.path(), "stranger", ExtendedKeyUsagePurpose::ClientAuth);

    let daemon = Daemon::start(
        dir.path(),
        &tls_config(dir.path(), &cert, &key, Some(&client_ca.pem_path)),
    );
    let listening = daemon
        .stderr
        .events()
        .into_iter()
        .find(|e| e["message"] == "listening")
        .unwrap();
    assert_eq!(listening["tls"], "mutual");

    // No client certificate: refused during the handshake.
    cli(&daemon, &ca.pem_path).run(&["status"]).code(1);
    // A certificate from another CA: refused.
    cli(&daemon, &ca.pem_path)
        .env("STRONGROOM_CLIENT_CERT", stranger_cert.to_str().unwrap())
        .env("STRONGROOM_CLIENT_KEY", stranger_key.to_str().unwrap())
        .run(&["status"])
        .code(1);
    // The right one: served, by flag as well as by environment.
    cli(&daemon, &ca.pem_path)
        .run(&[
            "status",
            "--client-cert",
            client_cert.to_str().unwrap(),
            "--client-key",
            client_key.to_str().unwrap(),
        ])
        .code(2);
    let keys = {
        let mut c = cli(&daemon, &ca.pem_path);
        c.env("STRONGROOM_CLIENT_CERT", client_cert.to_str().unwrap())
            .env("STRONGROOM_CLIENT_KEY", client_key.to_str().unwrap());
        c.run(&["init", "--format", "json", "--key-shares", "1"])
            .ok()
            .json()
    };
    assert!(keys["root_token"].as_str().unwrap().starts_with("sr."));
    // Half a client identity is a usage error.
    cli(&daemon, &ca.pem_path)
        .run(&["status", "--client-cert", client_cert.to_str().unwrap()])
        .code(64)
        .error_says("--client-cert and --client-key go together");
}

#[test]
fn sighup_reloads_the_certificate_and_the_log_level() {
    let dir = tempdir();
    let first_ca = Ca::new(dir.path(), "first");
    let (cert, key) = first_ca.leaf(dir.path(), "server", ExtendedKeyUsagePurpose::ServerAuth);
    let text = tls_config(dir.path(), &cert, &key, None);
    let daemon = Daemon::start(dir.path(), &text);
    cli(&daemon, &first_ca.pem_path).run(&["status"]).code(2);

    // Rotate: a certificate from a new CA over the same files, and a new log level.
    let second_ca = Ca::new(dir.path(), "second");
    let (new_cert, new_key) =
        second_ca.leaf(dir.path(), "server2", ExtendedKeyUsagePurpose::ServerAuth);
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    std::fs::write(
        &daemon.config_path,
        format!("{text}\nlog_level = \"debug\"\n"),
    )
    .unwrap();
    daemon.signal(Signal::SIGHUP);
    daemon
        .stderr
        .wait_for("the reload", |l| l.contains("TLS certificate reloaded"));
    daemon.stderr.wait_for("the new level", |l| {
        l.contains("\"log level set\"") && l.contains("\"debug\"")
    });

    cli(&daemon, &second_ca.pem_path).run(&["status"]).code(2);
    cli(&daemon, &first_ca.pem_path).run(&["status"]).code(1);
    assert!(
        !daemon
            .stderr
            .text()
            .contains("take effect only after a restart"),
        "a reload of reloadable settings warned of a restart"
    );

    // A setting that needs a restart is named, and not applied.
    std::fs::write(
        &daemon.config_path,
        format!("{text}\nlog_level = \"debug\"\ncluster_name = \"renamed\"\n"),
    )
    .unwrap();
    daemon.signal(Signal::SIGHUP);
    let warning = daemon.stderr.wait_for("the restart warning", |l| {
        l.contains("take effect only after a restart")
    });
    assert!(warning.contains("cluster_name"), "{warning}");

    // A broken config on reload keeps the running settings.
    std::fs::write(&daemon.config_path, "this is not HCL {").unwrap();
    daemon.signal(Signal::SIGHUP);
    daemon.stderr.wait_for("the failed reload", |l| {
        l.contains("reload failed; the running settings stay in force")
    });
    cli(&daemon, &second_ca.pem_path).run(&["status"]).code(2);
}
