//! The config file as the daemon reads it: --check, errors with lines, env
//! overrides and where each setting came from.

use std::process::Command;

use crate::support::daemon::{BIN, Daemon, config, tempdir};

fn server(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("STRONGROOM_LOG_LEVEL")
        .output()
        .unwrap()
}

#[test]
fn check_accepts_a_valid_file_and_the_shipped_configs() {
    let dir = tempdir();
    let path = dir.path().join("ok.hcl");
    std::fs::write(&path, config(dir.path(), "")).unwrap();
    let out = server(
        &["server", "--config", path.to_str().unwrap(), "--check"],
        dir.path(),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("the configuration is valid"));
    // Nothing was created by a check.
    assert!(!dir.path().join("data").exists());

    let root = env!("CARGO_MANIFEST_DIR");
    for shipped in ["config/strongroom.hcl", "deploy/strongroom.hcl"] {
        let out = server(
            &[
                "server",
                "--config",
                &format!("{root}/{shipped}"),
                "--check",
            ],
            dir.path(),
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{shipped}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn errors_name_file_line_and_key_and_exit_64() {
    let dir = tempdir();
    let path = dir.path().join("bad.hcl");
    std::fs::write(
        &path,
        "storage \"file\" {\n  path = \"data\"\n}\n\nlistener \"tcp\" {\n  address = \"127.0.0.1:0\"\n  tls_disable = \"maybe\"\n  tls_cert_fil = \"x\"\n}\nlog_level = \"loud\"\n",
    )
    .unwrap();
    let shown = path.display().to_string();
    for extra in [&["--check"][..], &[]] {
        let mut args = vec!["server", "--config", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = server(&args, dir.path());
        assert_eq!(out.status.code(), Some(64));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(
            lines,
            vec![
                format!(
                    "{shown}:7: listener.tcp.tls_disable: expected true or false, got \"maybe\""
                ),
                format!(
                    "{shown}:8: listener.tcp.tls_cert_fil: unknown key \"tls_cert_fil\" (did you mean \"tls_cert_file\"?); expected one of: address, tls_cert_file, tls_key_file, tls_client_ca_file, tls_disable, max_request_size, allow_init"
                ),
                format!(
                    "{shown}:10: log_level: expected one of trace, debug, info, warn, error; got \"loud\""
                ),
            ],
        );
    }
    // A missing file is a config error too.
    let out = server(
        &["server", "--config", "/nonexistent/strongroom.hcl"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .starts_with("/nonexistent/strongroom.hcl: cannot read the config file")
    );
    // --check without --config and without a config at the default paths
    // (startup.rs tests the search) is a usage error.
    assert_eq!(
        server(&["server", "--check"], dir.path()).status.code(),
        Some(64)
    );
}

#[test]
fn a_public_plaintext_listener_refuses_to_start() {
    let dir = tempdir();
    let text = config(dir.path(), "").replace("127.0.0.1:0", "0.0.0.0:0");
    let path = dir.path().join("public.hcl");
    std::fs::write(&path, &text).unwrap();
    let out = server(&["server", "--config", path.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has no TLS certificate; serving plaintext on a non-loopback address needs tls_disable = true"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Saying so on purpose, in Vault's string form, is accepted.
    let text = text.replace("0.0.0.0:0\"", "0.0.0.0:0\"\n  tls_disable = \"true\"");
    let daemon = Daemon::start(dir.path(), &text);
    assert!(daemon.addr.starts_with("http://0.0.0.0:"));
}

#[test]
fn environment_overrides_are_applied_and_their_source_logged() {
    let dir = tempdir();
    let text = config(
        dir.path(),
        "cluster_name = \"from-file\"\nlog_level = \"warn\"\n",
    );
    let daemon = Daemon::start_with(
        dir.path(),
        &text,
        &[
            ("STRONGROOM_LOG_LEVEL", "info"),
            ("STRONGROOM_CLUSTER_NAME", "from-env"),
        ],
    );
    let events = daemon.stderr.events();
    let setting = |name: &str| {
        events
            .iter()
            .find(|e| e["message"] == "setting" && e["setting"] == name)
            .unwrap_or_else(|| panic!("no setting event for {name}"))
            .clone()
    };
    let level = setting("log_level");
    assert_eq!(level["value"], "info");
    assert_eq!(level["source"], "environment variable STRONGROOM_LOG_LEVEL");
    assert_eq!(setting("cluster_name")["value"], "from-env");
    assert_eq!(
        setting("log_format")["source"],
        format!(
            "config file line {}",
            text.lines()
                .position(|l| l.starts_with("log_format"))
                .unwrap()
                + 1
        )
    );
    assert_eq!(setting("storage")["source"], "config file line 2");
    assert_eq!(setting("disable_mlock")["value"], true);

    let keys = crate::support::cli::init(&daemon, &[]);
    assert!(!keys.root_token.is_empty());
    assert_eq!(
        crate::support::cli::status(&daemon)["cluster_name"],
        "from-env"
    );

    // A bad value in the environment is a config error naming the variable.
    let path = dir.path().join("strongroom.hcl");
    let out = Command::new(BIN)
        .args(["server", "--config", path.to_str().unwrap()])
        .env("STRONGROOM_DISABLE_MLOCK", "perhaps")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "STRONGROOM_DISABLE_MLOCK: expected true or false, got \"perhaps\""
    );
}

#[test]
fn a_relative_storage_path_resolves_from_the_working_directory() {
    let dir = tempdir();
    let text = config(dir.path(), "").replace(
        &format!("path = \"{}\"", dir.path().join("data").display()),
        "path = \"rel/data\"",
    );
    let path = dir.path().join("strongroom.hcl");
    std::fs::write(&path, &text).unwrap();
    let mut child = Command::new(BIN)
        .args(["server", "--config", path.to_str().unwrap()])
        .current_dir(dir.path())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = crate::support::daemon::Lines::default().follow(child.stderr.take().unwrap());
    let line = stderr.wait_for("the storage path", |l| l.contains("\"storage: file\""));
    stderr.wait_for("the listeners", |l| l.contains("\"listening\""));
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    let expected = dir.path().canonicalize().unwrap().join("rel/data");
    let logged = std::path::PathBuf::from(event["path"].as_str().unwrap());
    assert!(logged.is_absolute());
    assert_eq!(logged.canonicalize().unwrap(), expected);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn check_loads_the_tls_files() {
    let dir = tempdir();
    let text = config(dir.path(), "").replace(
        "address = \"127.0.0.1:0\"",
        "address = \"127.0.0.1:0\"\n  tls_cert_file = \"/nonexistent/server.crt\"\n  tls_key_file = \"/nonexistent/server.key\"",
    );
    let path = dir.path().join("tls.hcl");
    std::fs::write(&path, &text).unwrap();
    let out = server(
        &["server", "--config", path.to_str().unwrap(), "--check"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The line of the key that names the file (issue 13 item 21).
    let line = text
        .lines()
        .position(|l| l.contains("tls_cert_file"))
        .unwrap()
        + 1;
    assert!(
        stderr.starts_with(&format!(
            "{}:{line}: listener.tcp.tls_cert_file: cannot read /nonexistent/server.crt: ",
            path.display()
        )),
        "{stderr}"
    );
}
