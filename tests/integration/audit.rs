//! The audit log as an operator meets it: lines on every device, a device
//! that cannot write stopping calls before they act, identities and
//! accessors in the lines, secrets left out while sealed, and the file
//! reopened on SIGHUP for logrotate.

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::cli::{init, status, unseal};
use crate::support::daemon::{Daemon, config, tempdir};

/// The audit lines of the file at `path`, which must exist.
fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn audit_block(path: &std::path::Path) -> String {
    format!("audit \"file\" {{ path = \"{}\" }}\n", path.display())
}

#[test]
fn a_call_no_device_can_record_is_refused_before_it_acts() {
    let dir = tempdir();
    let daemon = Daemon::start(
        dir.path(),
        &config(dir.path(), "audit \"file\" { path = \"/dev/full\" }"),
    );
    daemon
        .cli()
        .run(&["init", "--key-shares", "1", "--key-threshold", "1"])
        .code(1)
        .error_says("no audit device could record the request");
    assert_eq!(status(&daemon)["initialized"], false, "init did not act");

    // With a second device that works, calls go on and it gets every line.
    let dir = tempdir();
    let good = dir.path().join("audit.log");
    let extra = format!(
        "{}audit \"file\" {{ path = \"/dev/full\" }}",
        audit_block(&good)
    );
    let daemon = Daemon::start(dir.path(), &config(dir.path(), &extra));
    let keys = init(&daemon, &["--key-shares", "1", "--key-threshold", "1"]);
    unseal(&daemon, &[&keys.keys_hex[0]]);
    let written = lines(&good);
    let operations: Vec<&str> = written
        .iter()
        .map(|l| l["operation"].as_str().unwrap())
        .collect();
    assert_eq!(
        operations,
        [
            "sys.Init",
            "sys.Init",
            "sys.InitConfirm",
            "sys.InitConfirm",
            "sys.Unseal",
            "sys.Unseal"
        ]
    );
    assert!(
        daemon.stderr.text().contains("an audit device failed"),
        "the failing device is named in the log"
    );
}

#[test]
fn lines_name_the_identity_and_leave_secrets_out_while_sealed() {
    let dir = tempdir();
    let audit_log = dir.path().join("audit.log");
    let socket = dir.path().join("sidecar.sock");
    let uid = nix::unistd::getuid().as_raw();
    let extra = format!(
        "{}listener \"unix\" {{\n  path = \"{}\"\n  identity {{\n    uid = {uid}\n    policies = [\"reader\"]\n  }}\n}}",
        audit_block(&audit_log),
        socket.display()
    );
    let daemon = Daemon::start(dir.path(), &config(dir.path(), &extra));
    let keys = init(&daemon, &["--key-shares", "1", "--key-threshold", "1"]);
    unseal(&daemon, &[&keys.keys_hex[0]]);
    let root = keys.root_token.clone();
    daemon
        .cli()
        .token(&root)
        .run_stdin(
            &["policy", "write", "reader", "-"],
            "path \"secret/data/app/*\" { capabilities = [\"read\"] }\npath \"auth/token/create\" { capabilities = [\"create\"] }",
        )
        .ok();
    daemon
        .cli()
        .token(&root)
        .run(&["kv", "put", "app/db", "password=sealed-away"])
        .ok();
    let mut sidecar = crate::support::cli::Cli::new();
    sidecar.env("STRONGROOM_ADDR", &format!("unix://{}", socket.display()));
    sidecar.run(&["kv", "get", "app/db"]).ok();
    // Its tokens would be orphans: without sudo it mints none.
    let mut sidecar_tokens = crate::support::cli::Cli::new();
    sidecar_tokens.env("STRONGROOM_ADDR", &format!("unix://{}", socket.display()));
    sidecar_tokens
        .run(&["token", "create", "--policy", "reader"])
        .code(1)
        .error_says("auth/token/create needs the sudo capability");

    let written = lines(&audit_log);
    let get = written
        .iter()
        .find(|l| l["operation"] == "kv.Get" && l["type"] == "request")
        .unwrap();
    assert_eq!(get["identity"], format!("unix:uid={uid}"));
    assert_eq!(get["accessor"], Value::Null);
    let response = written
        .iter()
        .find(|l| l["operation"] == "kv.Get" && l["type"] == "response")
        .unwrap();
    assert_eq!(response["id"], get["id"]);
    assert!(
        response["data"]["data"]["password"]
            .as_str()
            .unwrap()
            .starts_with("hmac-sha256:")
    );

    // Sealed: the salt is behind the barrier, so secret values are left out.
    daemon.cli().token(&root).run(&["seal"]).ok();
    daemon
        .cli()
        .token(&root)
        .run(&["kv", "put", "--cas", "1", "app/db", "password=while-sealed"])
        .code(1)
        .error_says("strongroom is sealed");
    let written = lines(&audit_log);
    let sealed_put = written
        .iter()
        .rev()
        .find(|l| l["operation"] == "kv.Put" && l["type"] == "request")
        .unwrap();
    assert_eq!(
        sealed_put["data"],
        serde_json::json!({ "cas": 1 }),
        "{sealed_put}"
    );
    let text = std::fs::read_to_string(&audit_log).unwrap();
    assert!(!text.contains("while-sealed") && !text.contains("sealed-away"));
}

#[test]
fn sighup_reopens_the_audit_file_for_logrotate() {
    let dir = tempdir();
    let audit_log = dir.path().join("audit.log");
    let daemon = Daemon::start(dir.path(), &config(dir.path(), &audit_block(&audit_log)));
    let keys = init(&daemon, &["--key-shares", "1", "--key-threshold", "1"]);
    let rotated = dir.path().join("audit.log.1");
    std::fs::rename(&audit_log, &rotated).unwrap();
    daemon.signal(Signal::SIGHUP);
    daemon
        .stderr
        .wait_for("the reload", |l| l.contains("SIGHUP: reloading"));
    unseal(&daemon, &[&keys.keys_hex[0]]);
    // The rotated file keeps init's lines and gets nothing more; the new
    // one has the unseal's request and response.
    let operations = |lines: Vec<Value>| -> Vec<String> {
        lines
            .iter()
            .map(|l| {
                format!(
                    "{} {}",
                    l["type"].as_str().unwrap(),
                    l["operation"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(
        operations(lines(&rotated)),
        [
            "request sys.Init",
            "response sys.Init",
            "request sys.InitConfirm",
            "response sys.InitConfirm"
        ]
    );
    assert_eq!(
        operations(lines(&audit_log)),
        ["request sys.Unseal", "response sys.Unseal"]
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&audit_log).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}
