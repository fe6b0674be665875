//! The operator's day: init, unseal, write, restart, unseal again, read, seal.

use crate::support::cli::{init, status, unseal};
use crate::support::daemon::{Daemon, config, tempdir};

#[test]
fn init_unseal_restart_and_read_back() {
    let dir = tempdir();
    let mut daemon = Daemon::start(dir.path(), &config(dir.path(), ""));

    // Before init: status exits 2 and says so.
    let before = daemon
        .cli()
        .run(&["status", "--format", "json"])
        .code(2)
        .json();
    assert_eq!(before["initialized"], false);
    assert_eq!(before["sealed"], true);
    assert_eq!(before["type"], "shamir");
    assert_eq!(before["storage_type"], "file");

    let keys = init(&daemon, &[]);
    assert_eq!(keys.keys_hex.len(), 5);
    assert_eq!(keys.keys_b64.len(), 5);
    assert!(
        keys.keys_hex.iter().all(|k| k.len() == 66),
        "33-byte shares"
    );
    assert!(keys.root_token.starts_with("sr.") && keys.root_token.len() == 35);

    // Sealed after init, with the bao status fields.
    let sealed = daemon
        .cli()
        .run(&["status", "--format", "json"])
        .code(2)
        .json();
    for field in [
        "type",
        "initialized",
        "sealed",
        "t",
        "n",
        "progress",
        "nonce",
        "version",
        "storage_type",
        "cluster_name",
        "cluster_id",
        "recovery_seal",
        "migration",
    ] {
        assert!(
            sealed.get(field).is_some(),
            "status JSON lacks {field}: {sealed}"
        );
    }
    assert_eq!(
        (sealed["t"].as_u64(), sealed["n"].as_u64()),
        (Some(3), Some(5))
    );
    assert_eq!(sealed["recovery_seal"], false);
    let cluster_id = sealed["cluster_id"].as_str().unwrap().to_string();
    assert_eq!(cluster_id.len(), 36);

    // Any 3 of 5, mixing hex and base64; progress shows in between.
    daemon.cli().run(&["unseal", &keys.keys_hex[4]]).ok();
    assert_eq!(status(&daemon)["progress"], 1);
    daemon.cli().run(&["unseal", &keys.keys_b64[1]]).ok();
    assert_eq!(status(&daemon)["progress"], 2);
    daemon.cli().run(&["unseal", &keys.keys_hex[2]]).ok();
    let unsealed = daemon
        .cli()
        .run(&["status", "--format", "json"])
        .ok()
        .json();
    assert_eq!(unsealed["sealed"], false);
    assert_eq!(unsealed["progress"], 0);

    let kv = |d: &Daemon| {
        let mut cli = d.cli();
        cli.token(&keys.root_token);
        cli
    };
    kv(&daemon)
        .run(&["kv", "put", "app/db", "user=admin", "password=s3cr=t"])
        .ok();
    kv(&daemon)
        .run(&["kv", "put", "app/cache/redis", "url=redis://x"])
        .ok();
    kv(&daemon).run(&["kv", "put", "top", "a=1"]).ok();
    let listed = kv(&daemon)
        .run(&["kv", "list", "--format", "json"])
        .ok()
        .json();
    assert_eq!(listed, serde_json::json!(["app/", "top"]));
    let listed = kv(&daemon)
        .run(&["kv", "list", "app/", "--format", "json"])
        .ok()
        .json();
    assert_eq!(listed, serde_json::json!(["cache/", "db"]));

    // A restart seals; the data stays; a different 3 of 5 unseal.
    daemon.restart();
    let after = daemon
        .cli()
        .run(&["status", "--format", "json"])
        .code(2)
        .json();
    assert_eq!(
        (after["initialized"].as_bool(), after["sealed"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(after["cluster_id"], cluster_id.as_str());
    kv(&daemon)
        .run(&["kv", "get", "app/db"])
        .code(1)
        .error_says("strongroom is sealed");
    unseal(
        &daemon,
        &[&keys.keys_b64[0], &keys.keys_hex[3], &keys.keys_b64[4]],
    );
    let secret = kv(&daemon)
        .run(&["kv", "get", "app/db", "--format", "json"])
        .ok()
        .json();
    assert_eq!(secret["data"]["data"]["user"], "admin");
    assert_eq!(secret["data"]["data"]["password"], "s3cr=t");
    let table = kv(&daemon).run(&["kv", "get", "app/db"]).ok().stdout;
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("user") && l.ends_with("admin")),
        "{table}"
    );

    kv(&daemon).run(&["kv", "delete", "top"]).ok();
    kv(&daemon)
        .run(&["kv", "get", "top"])
        .code(1)
        .error_says("version 1 of kv path \"top\" is deleted");
    kv(&daemon).run(&["kv", "metadata", "delete", "top"]).ok();
    kv(&daemon)
        .run(&["kv", "get", "top"])
        .code(1)
        .error_says("no secret at kv path \"top\"");

    // Seal: refused without a token, done with the root token.
    daemon
        .cli()
        .run(&["seal"])
        .code(1)
        .error_says("needs a token");
    daemon
        .cli()
        .token("sr.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        .run(&["seal"])
        .code(1)
        .error_says("not valid");
    assert_eq!(status(&daemon)["sealed"], false);
    kv(&daemon).run(&["seal"]).ok();
    daemon.cli().run(&["status"]).code(2);

    // Init again is refused, sealed or not.
    daemon
        .cli()
        .run(&["init"])
        .code(1)
        .error_says("already initialized");

    // Unsealing again after a seal works with any quorum.
    unseal(
        &daemon,
        &[&keys.keys_hex[0], &keys.keys_hex[1], &keys.keys_hex[2]],
    );
    assert!(daemon.stop().success());
}

#[test]
fn unseal_reads_the_key_from_stdin_and_reset_clears_progress() {
    let dir = tempdir();
    let daemon = Daemon::start(dir.path(), &config(dir.path(), ""));
    let keys = init(&daemon, &["--key-shares", "3", "--key-threshold", "2"]);
    let out = daemon
        .cli()
        .run_stdin(
            &["unseal", "--format", "json"],
            &format!("{}\n", keys.keys_b64[0]),
        )
        .ok();
    assert_eq!(out.json()["progress"], 1);
    let reset = daemon
        .cli()
        .run(&["unseal", "--reset", "--format", "json"])
        .ok()
        .json();
    assert_eq!(reset["progress"], 0);
    assert_eq!(reset["nonce"], "");
    daemon.cli().run_stdin(&["unseal"], &keys.keys_hex[1]).ok();
    daemon.cli().run_stdin(&["unseal"], &keys.keys_hex[2]).ok();
    assert_eq!(status(&daemon)["sealed"], false);
}

#[test]
fn the_unix_socket_serves_the_same_api() {
    let dir = tempdir();
    let daemon = Daemon::start(dir.path(), &config(dir.path(), ""));
    let socket = daemon.socket.clone().unwrap();
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&socket).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o660);
    let keys = init(&daemon, &["--key-shares", "1"]);
    assert_eq!(keys.keys_hex.len(), 1);
    assert_eq!(
        keys.keys_hex[0].len(),
        64,
        "with one share the key is the 32-byte unseal key"
    );
    daemon.cli_unix().run(&["unseal", &keys.keys_b64[0]]).ok();
    let over_unix = daemon
        .cli_unix()
        .run(&["status", "--format", "json"])
        .ok()
        .json();
    assert_eq!(over_unix["sealed"], false);
    assert_eq!(
        (over_unix["t"].as_u64(), over_unix["n"].as_u64()),
        (Some(1), Some(1))
    );
    daemon
        .cli_unix()
        .token(&keys.root_token)
        .run(&["kv", "put", "a", "b=c"])
        .ok();
    let read = daemon
        .cli()
        .token(&keys.root_token)
        .run(&["kv", "get", "a", "--format", "json"])
        .ok()
        .json();
    assert_eq!(read["data"]["data"]["b"], "c");
}

#[test]
fn dev_mode_starts_unsealed_and_prints_its_key_and_token() {
    let dir = tempdir();
    // Port 0: the daemon binds and logs the address (it prints its token
    // before it binds, so the token line says nothing about the listener).
    let mut child = KilledOnDrop(
        std::process::Command::new(crate::support::daemon::BIN)
            .args(["server", "--dev", "--dev-listen-address", "127.0.0.1:0"])
            .current_dir(dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = crate::support::daemon::Lines::default().follow(child.0.stdout.take().unwrap());
    let stderr = crate::support::daemon::Lines::default().follow(child.0.stderr.take().unwrap());
    let listening = stderr.wait_for("the dev listener", |l| {
        l.contains("listening") && l.contains("transport=\"tcp\"")
    });
    let address = listening
        .split_whitespace()
        .find_map(|field| field.strip_prefix("address="))
        .expect("the bound address in the listening line")
        .trim_matches('"')
        .to_string();
    let token_line = stdout.wait_for("the root token", |l| l.starts_with("Root Token: "));
    let key_line = stdout.wait_for("the unseal key", |l| l.starts_with("Unseal Key: "));
    assert!(stdout.text().contains("WARNING! dev mode is enabled"));
    let token = token_line.trim_start_matches("Root Token: ");
    let key = key_line.trim_start_matches("Unseal Key: ");
    use base64::Engine;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(key)
            .unwrap()
            .len(),
        32
    );

    let mut cli = crate::support::cli::Cli::new();
    cli.env("STRONGROOM_ADDR", &format!("http://{address}"));
    let st = cli.run(&["status", "--format", "json"]).ok().json();
    assert_eq!(st["storage_type"], "inmem");
    assert_eq!(st["sealed"], false);
    let mut cli = crate::support::cli::Cli::new();
    cli.env("STRONGROOM_ADDR", &format!("http://{address}"))
        .token(token);
    cli.run(&["kv", "put", "x", "y=z"]).ok();
    // Nothing was written to the working directory.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.0.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let mut exit = None;
    strongroom_test_support::eventually(
        "the dev daemon to stop",
        std::time::Duration::from_secs(5),
        || {
            exit = child.0.try_wait().unwrap();
            exit.is_some()
        },
    );
    assert!(exit.unwrap().success(), "{exit:?}");
}

/// A process the test started, killed if the test ends before it stopped.
struct KilledOnDrop(std::process::Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
