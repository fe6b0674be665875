//! `strongroom diagnose`'s config area, run as an operator runs it: the
//! config's errors (exit 64, the process area still checked), the files it
//! names as the service user sees them (`--user nobody` as root), the
//! settings with their sources and no secret, and the table output.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::Value;

use crate::support::cli::{Cli, Run};
use crate::support::daemon::tempdir;

/// `strongroom diagnose --config PATH --format json ARGS…`.
pub fn diagnose(config: &Path, args: &[&str]) -> Run {
    diagnose_with(config, args, &[])
}

/// As [`diagnose`], with environment variables.
pub fn diagnose_with(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cli = Cli::new();
    // No AWS setting of the caller's environment (the environment file's
    // check names those the daemon would not have).
    for (var, _) in std::env::vars() {
        if var.starts_with("AWS_") {
            cli.env_remove(&var);
        }
    }
    for (k, v) in env {
        cli.env(k, v);
    }
    let mut all = vec![
        "diagnose",
        "--config",
        config.to_str().unwrap(),
        "--format",
        "json",
    ];
    all.extend_from_slice(args);
    // Never this machine's /etc/strongroom/strongroom.env, unless a test
    // names a file.
    if !args.iter().any(|a| a.ends_with("env-file")) {
        all.push("--no-env-file");
    }
    cli.run(&all)
}

/// The finding at `path` (an area's name, then its children's), panicking
/// with the whole report when it is not there.
pub fn finding<'a>(report: &'a Value, path: &[&str]) -> &'a Value {
    let mut found = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == path[0]);
    for name in &path[1..] {
        found = found.and_then(|f| {
            f["children"]
                .as_array()
                .and_then(|c| c.iter().find(|f| f["name"] == *name))
        });
    }
    found.unwrap_or_else(|| panic!("no finding {path:?} in {report:#}"))
}

/// The status word of the finding at `path`.
pub fn status<'a>(report: &'a Value, path: &[&str]) -> &'a str {
    finding(report, path)["status"].as_str().unwrap()
}

/// The message of the finding at `path`.
pub fn message<'a>(report: &'a Value, path: &[&str]) -> &'a str {
    finding(report, path)["message"].as_str().unwrap()
}

/// Writes `text` as `dir/strongroom.hcl`.
pub fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("strongroom.hcl");
    std::fs::write(&path, text).unwrap();
    path
}

/// Lets other users (nobody) into `dir`, as /etc/strongroom is.
pub fn open_dir(dir: &Path) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

pub fn must_be_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test checks another user's access, which needs root (as CI runs)"
    );
}

#[test]
fn diagnose_config_errors_exit_64_and_the_process_area_is_still_checked() {
    let dir = tempdir();
    let config = write_config(
        dir.path(),
        "storage \"file\" {\n  path = \"/tmp/x\"\n  colour = \"blue\"\n}\nlistener \"tcp\" { address = \"127.0.0.1:0\" }\n",
    );
    let run = diagnose(&config, &[]).code(64);
    let shown = format!("{}:3:", config.display());
    assert!(run.stderr.contains(&shown), "{}", run.stderr);
    assert!(run.stderr.contains("colour"), "{}", run.stderr);
    let report = run.json();
    assert_eq!(status(&report, &["config", "parse"]), "failure");
    assert!(
        message(&report, &["config", "parse"]).contains(&shown),
        "{report:#}"
    );
    assert_eq!(status(&report, &["config", "files"]), "skipped");
    assert_eq!(status(&report, &["storage"]), "skipped");
    assert_eq!(status(&report, &["audit"]), "skipped");
    // The process area needs no configuration: its checks ran.
    let process = finding(&report, &["process", "open files"]);
    assert_ne!(process["status"], "skipped", "{report:#}");
    // No Debug dump on either stream.
    for text in [&run.stdout, &run.stderr] {
        assert!(!text.contains("ConfigError {"), "{text}");
    }
}

#[test]
fn diagnose_config_files_are_checked_for_the_service_user() {
    must_be_root();
    let dir = tempdir();
    open_dir(dir.path());
    let cert = dir.path().join("server.crt");
    let key = dir.path().join("server.key");
    std::fs::write(&cert, "not checked here").unwrap();
    std::fs::write(&key, "not checked here").unwrap();
    std::fs::set_permissions(&cert, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "storage \"inmem\" {{}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:0\"\n  tls_cert_file = \"{}\"\n  tls_key_file = \"{}\"\n  tls_client_ca_file = \"{}\"\n}}\n",
            cert.display(),
            key.display(),
            dir.path().join("missing-ca.pem").display()
        ),
    );
    let report = diagnose(&config, &["--user", "nobody", "--skip", "seal,listener"])
        .code(1)
        .json();
    let files = ["config", "files"];
    let cert_path = ["config", "files", "listener.tcp.tls_cert_file"];
    assert_eq!(status(&report, &cert_path), "success", "{report:#}");
    assert!(
        message(&report, &cert_path).contains("nobody"),
        "{report:#}"
    );
    // Root can read the key; the service user cannot, and is named.
    let key_path = ["config", "files", "listener.tcp.tls_key_file"];
    assert_eq!(status(&report, &key_path), "failure", "{report:#}");
    let said = message(&report, &key_path);
    assert!(
        said.contains("the service user nobody") && said.contains("cannot read"),
        "{said}"
    );
    assert!(said.contains("mode 0600, owner root"), "{said}");
    assert!(said.contains("(line 5)"), "{said}");
    assert!(finding(&report, &key_path)["advice"].is_string());
    // A missing file is start-up's failure, with server --check's sentence.
    let ca = ["config", "files", "listener.tcp.tls_client_ca_file"];
    assert_eq!(status(&report, &ca), "skipped", "{report:#}");
    let missing = ["config", "start-up", "listener.tcp.tls_client_ca_file"];
    assert_eq!(status(&report, &missing), "failure", "{report:#}");
    let said = message(&report, &missing);
    assert!(
        said.starts_with(&format!(
            "{}:6: listener.tcp.tls_client_ca_file: cannot read ",
            config.display()
        )) && said.contains("No such file"),
        "{said}"
    );
    assert_eq!(status(&report, &files), "failure");

    // Made readable by the service user, every file passes.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(dir.path().join("missing-ca.pem"), "ca").unwrap();
    let report = diagnose(&config, &["--user", "nobody", "--skip", "seal,listener"]).json();
    assert_eq!(status(&report, &files), "success", "{report:#}");
    assert_eq!(status(&report, &key_path), "success");
    let itself = ["config", "files", "config file"];
    assert!(message(&report, &itself).contains("nobody"), "{report:#}");

    // The config file itself, 0600 root: the daemon could not read it.
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let report = diagnose(&config, &["--user", "nobody", "--skip", "seal,listener"])
        .code(1)
        .json();
    assert_eq!(status(&report, &itself), "failure", "{report:#}");
    let said = message(&report, &itself);
    assert!(
        said.starts_with(&config.display().to_string())
            && said.contains("the service user nobody")
            && said.contains("cannot read"),
        "{said}"
    );
}

#[test]
fn diagnose_config_settings_show_their_source_and_no_secret() {
    let dir = tempdir();
    let config = write_config(
        dir.path(),
        "storage \"postgresql\" {\n  connection_url = \"postgres://app:hunter2-secret@127.0.0.1:1/db?sslmode=disable\"\n}\nlistener \"tcp\" { address = \"127.0.0.1:0\" }\nlog_format = \"json\"\nui = true\n",
    );
    let run = diagnose_with(
        &config,
        &["--skip", "storage,seal,listener,process"],
        &[("STRONGROOM_LOG_LEVEL", "debug")],
    )
    .ok();
    for text in [&run.stdout, &run.stderr] {
        assert!(!text.contains("hunter2"), "{text}");
    }
    let report = run.json();
    let url = message(
        &report,
        &["config", "settings", "storage.postgresql.connection_url"],
    );
    assert_eq!(
        url,
        "postgres://app:***@127.0.0.1:1/db?sslmode=disable (config file line 2)"
    );
    assert_eq!(
        message(&report, &["config", "settings", "log_level"]),
        "debug (environment variable STRONGROOM_LOG_LEVEL)"
    );
    assert_eq!(
        message(&report, &["config", "settings", "log_format"]),
        "json (config file line 5)"
    );
    assert_eq!(
        message(&report, &["config", "settings", "cluster_name"]),
        "not set (default)"
    );
    // An attribute the block did not set is not said to come from a line.
    assert_eq!(
        message(&report, &["config", "settings", "storage.postgresql.table"]),
        "strongroom_kv_store (the block at config file line 1, or its default)"
    );
    // Vault's `ui` is accepted and ignored: a warning naming its line.
    let ui = ["config", "warnings", "ui"];
    assert_eq!(status(&report, &ui), "warning", "{report:#}");
    assert!(
        message(&report, &ui)
            .ends_with(":6: ui: is a Vault setting that strongroom does not use; ignored")
    );
}

#[test]
fn diagnose_config_table_output_nests_and_advises() {
    let dir = tempdir();
    let config = write_config(
        dir.path(),
        &format!(
            "storage \"file\" {{ path = \"{}/data\" }}\nlistener \"tcp\" {{ address = \"127.0.0.1:0\" }}\ndisable_mlock = true\n",
            dir.path().display()
        ),
    );
    let run = Cli::new()
        .run(&[
            "diagnose",
            "--config",
            config.to_str().unwrap(),
            "--skip",
            "seal,listener,process",
            "--no-env-file",
        ])
        .ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines[0], "[ success ] config", "{}", run.stdout);
    assert!(
        lines.contains(&format!("  [ success ] parse: {} parses", config.display()).as_str()),
        "{}",
        run.stdout
    );
    assert!(
        lines.contains(&"  [ success ] warnings: the configuration has nothing to warn about"),
        "{}",
        run.stdout
    );
    assert!(
        lines.contains(&"[ skipped ] process: skipped (--skip)"),
        "{}",
        run.stdout
    );
    // No audit device: a warning, its advice indented under it.
    let warned = lines
        .iter()
        .position(|l| l.starts_with("  [ warning ] devices: no audit device"))
        .unwrap_or_else(|| panic!("{}", run.stdout));
    assert!(
        lines[warned + 1].starts_with("      advice: add audit \"file\""),
        "{}",
        run.stdout
    );
}

#[test]
fn diagnose_config_reports_what_server_check_refuses() {
    let dir = tempdir();
    // HA without api_addr, and a tcp listener on port 0: start-up refuses.
    let config = write_config(
        dir.path(),
        "storage \"postgresql\" {\n  connection_url = \"postgres://app@127.0.0.1:1/db?sslmode=disable\"\n  ha_enabled = true\n}\nlistener \"tcp\" { address = \"127.0.0.1:0\" }\ndisable_mlock = true\ncluster_addr = \"https://127.0.0.1:8201\"\n",
    );
    let skip = ["--skip", "storage,seal,listener,process,audit"];
    let report = diagnose(&config, &skip).code(1).json();
    let api_addr = ["config", "start-up", "api_addr"];
    assert_eq!(status(&report, &api_addr), "failure", "{report:#}");
    let said = message(&report, &api_addr);
    assert!(
        said.starts_with(&format!(
            "{}:1: api_addr: is required with storage.postgresql.ha_enabled",
            config.display()
        )),
        "{said}"
    );
    // What server --check prints, word for word.
    let checked = Cli::new().run(&["server", "--check", "--config", config.to_str().unwrap()]);
    assert!(checked.stderr.contains(said), "{}", checked.stderr);

    // With api_addr set, start-up finds nothing.
    let fixed =
        std::fs::read_to_string(&config).unwrap() + "api_addr = \"http://127.0.0.1:8200\"\n";
    std::fs::write(&config, fixed).unwrap();
    let report = diagnose(&config, &skip).ok().json();
    assert_eq!(
        status(&report, &["config", "start-up"]),
        "success",
        "{report:#}"
    );
}

#[test]
fn diagnose_config_applies_the_daemons_environment_file() {
    let dir = tempdir();
    // The connection URL only in the environment file, as the package's
    // strongroom.env suggests.
    let config = write_config(
        dir.path(),
        "storage \"postgresql\" {}\nlistener \"tcp\" { address = \"127.0.0.1:0\" }\ndisable_mlock = true\n",
    );
    let env = dir.path().join("strongroom.env");
    std::fs::write(
        &env,
        "# the daemon's\nSTRONGROOM_PG_CONNECTION_URL=\"postgres://app:hunter2-secret@127.0.0.1:1/db?sslmode=disable\"\nSTRONGROOM_LOG_LEVEL=debug\n",
    )
    .unwrap();
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o600)).unwrap();
    let skip = ["--skip", "storage,seal,listener,process,audit"];
    let env_arg = env.to_str().unwrap();

    let run = diagnose(&config, &[&skip[..], &["--env-file", env_arg]].concat()).ok();
    for text in [&run.stdout, &run.stderr] {
        assert!(!text.contains("hunter2"), "{text}");
    }
    let report = run.json();
    let applied = ["config", "environment file"];
    assert_eq!(status(&report, &applied), "success", "{report:#}");
    assert!(
        message(&report, &applied).starts_with(&format!(
            "{} sets STRONGROOM_PG_CONNECTION_URL, STRONGROOM_LOG_LEVEL, applied over",
            env.display()
        )),
        "{report:#}"
    );
    assert_eq!(
        message(&report, &["config", "settings", "log_level"]),
        "debug (environment variable STRONGROOM_LOG_LEVEL)"
    );
    assert!(
        message(
            &report,
            &["config", "settings", "storage.postgresql.connection_url"]
        )
        .starts_with("postgres://app:***@127.0.0.1:1/db")
    );

    // A variable only this shell has: the daemon would not; said by name.
    let report = diagnose_with(
        &config,
        &[&skip[..], &["--env-file", env_arg]].concat(),
        &[("AWS_PROFILE", "admins-own")],
    )
    .ok()
    .json();
    assert_eq!(status(&report, &applied), "warning", "{report:#}");
    let said = message(&report, &applied);
    assert!(
        said.contains("this shell also sets AWS_PROFILE, which the daemon will not have")
            && !said.contains("admins-own"),
        "{said}"
    );

    // Readable by others, and a line systemd ignores: warnings.
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o644)).unwrap();
    let report = diagnose(&config, &[&skip[..], &["--env-file", env_arg]].concat())
        .ok()
        .json();
    assert_eq!(status(&report, &applied), "warning", "{report:#}");
    assert!(message(&report, &applied).contains("mode 0644, readable by others"));
    std::fs::write(
        &env,
        "STRONGROOM_PG_CONNECTION_URL=postgres://a@127.0.0.1:1/db\nnot a setting\n",
    )
    .unwrap();
    let report = diagnose(&config, &[&skip[..], &["--env-file", env_arg]].concat())
        .ok()
        .json();
    assert!(
        message(&report, &applied).contains("line 2 is not NAME=VALUE"),
        "{report:#}"
    );

    // Without it, the configuration lacks its connection URL.
    let run = diagnose(&config, &[&skip[..], &["--no-env-file"]].concat()).code(64);
    assert!(run.stderr.contains("connection_url"), "{}", run.stderr);
    assert_eq!(status(&run.json(), &applied), "skipped");
    // A file named and missing is a usage error, in one sentence.
    let run = diagnose(&config, &["--env-file", "/nonexistent/strongroom.env"]).code(64);
    assert_eq!(
        run.stderr.trim(),
        "error: --env-file: /nonexistent/strongroom.env cannot be read: No such file or directory (os error 2)"
    );
}

#[test]
fn diagnose_config_a_misspelt_skip_is_said_and_skips_nothing() {
    let dir = tempdir();
    let config = write_config(
        dir.path(),
        "storage \"inmem\" {}\nlistener \"tcp\" { address = \"127.0.0.1:0\" }\ndisable_mlock = true\n",
    );
    let run = diagnose(
        &config,
        &["--skip", "storage,seal,listener,process,audit,setings"],
    )
    .ok();
    assert_eq!(
        run.stderr.trim(),
        "warning: --skip \"setings\": no area or check of this run has that name, so it skipped nothing"
    );
    assert_eq!(status(&run.json(), &["config", "settings"]), "success");
    // Names match in any case; a real one is not mentioned.
    let run = diagnose(
        &config,
        &["--skip", "STORAGE,seal,listener,process,audit,Settings"],
    )
    .ok();
    assert_eq!(run.stderr, "", "{}", run.stderr);
    assert_eq!(status(&run.json(), &["config", "settings"]), "skipped");
}
