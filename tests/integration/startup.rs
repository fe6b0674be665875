//! Starting the daemon (issue 13, items 9, 11, 16, 18-25): what it checks
//! before touching anything, what it makes private, what `server` accepts,
//! what `--dev` prints, and the packaged unit's socket for sidecars.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use crate::support::cli::Cli;
use crate::support::daemon::{BIN, Daemon, Lines, config, tempdir};

fn server(args: &[&str], dir: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("STRONGROOM_LOG_LEVEL")
        .env_remove("STRONGROOM_ADDR")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn check(dir: &Path, text: &str) -> Output {
    let path = dir.join("t.hcl");
    std::fs::write(&path, text).unwrap();
    server(
        &["server", "--config", path.to_str().unwrap(), "--check"],
        dir,
    )
}

/// A process started by a test, killed when the test ends, pass or fail.
struct Running {
    child: Child,
    stdout: Lines,
    stderr: Lines,
}

impl Running {
    fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("NOTIFY_SOCKET")
            .spawn()
            .unwrap();
        let stdout = Lines::default().follow(child.stdout.take().unwrap());
        let stderr = Lines::default().follow(child.stderr.take().unwrap());
        Self {
            child,
            stdout,
            stderr,
        }
    }

    /// The exit code, once the process ended (bounded by the lines' deadline).
    fn exit_code(&mut self) -> Option<i32> {
        self.stderr.wait_closed();
        self.child.wait().unwrap().code()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn files_the_config_names_are_checked_before_anything_is_created() {
    let dir = tempdir();
    let text = config(dir.path(), "audit \"file\" {\n  path = \"/nonexistent/audit.log\"\n}\n")
        .replace(
            "address = \"127.0.0.1:0\"",
            "address = \"127.0.0.1:0\"\n  tls_cert_file = \"/nonexistent/server.crt\"\n  tls_key_file = \"/nonexistent/server.key\"",
        );
    let path = dir.path().join("strongroom.hcl");
    std::fs::write(&path, &text).unwrap();
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let shown = path.display();
    for extra in [&[][..], &["--check"]] {
        let mut args = vec!["server", "--config", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = server(&args, dir.path());
        assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
        let lines: Vec<String> = stderr(&out).lines().map(str::to_string).collect();
        assert_eq!(
            lines,
            vec![
                format!(
                    "{shown}:{}: listener.tcp.tls_cert_file: cannot read /nonexistent/server.crt: No such file or directory (os error 2)",
                    line_of("tls_cert_file")
                ),
                format!(
                    "{shown}:{}: listener.tcp.tls_key_file: cannot read /nonexistent/server.key: No such file or directory (os error 2)",
                    line_of("tls_key_file")
                ),
                format!(
                    "{shown}:{}: audit.file.path: cannot create /nonexistent/audit.log: the directory /nonexistent does not exist",
                    line_of("audit.log")
                ),
            ]
        );
        // Nothing was touched: no data directory, no socket.
        assert!(!dir.path().join("data").exists());
        assert!(!dir.path().join("strongroom.sock").exists());
    }
}

#[test]
fn config_mistakes_are_named_with_key_and_line() {
    let dir = tempdir();
    let base = config(dir.path(), "");
    // A key set twice, at top level and in a block.
    let out = check(
        dir.path(),
        &format!("{base}log_level = \"debug\"\nlog_level = \"info\"\n"),
    );
    assert_eq!(out.status.code(), Some(64));
    let line = base.lines().count() + 2;
    assert!(
        stderr(&out).ends_with(&format!(
            ":{line}: log_level: is set twice in the same block; keep one of them\n"
        )),
        "{}",
        stderr(&out)
    );
    let twice = base.replace(
        "address = \"127.0.0.1:0\"",
        "address = \"127.0.0.1:0\"\n  address = \"127.0.0.1:1\"",
    );
    let line = twice
        .lines()
        .position(|l| l.contains("127.0.0.1:1"))
        .unwrap()
        + 1;
    let out = check(dir.path(), &twice);
    assert!(
        stderr(&out).ends_with(&format!(
            ":{line}: address: is set twice in the same block; keep one of them\n"
        )),
        "{}",
        stderr(&out)
    );
    // A byte order mark is accepted.
    let out = check(dir.path(), &format!("\u{feff}{base}"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Invalid UTF-8 inside a value: the line and the key.
    let path = dir.path().join("t.hcl");
    let mut bytes = base.clone().into_bytes();
    bytes.extend_from_slice(b"cluster_name = \"caf\xe9\"\n");
    std::fs::write(&path, &bytes).unwrap();
    let out = server(
        &["server", "--config", path.to_str().unwrap(), "--check"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(64));
    assert_eq!(
        stderr(&out),
        format!(
            "{}:{}: cluster_name: is not valid UTF-8 on this line (save the file as UTF-8)\n",
            path.display(),
            base.lines().count() + 1
        )
    );
    // Plaintext on a public address points at the address, tls_disable with
    // certificate files at tls_disable.
    let public = base.replace("127.0.0.1:0", "0.0.0.0:0");
    let line = public
        .lines()
        .position(|l| l.contains("0.0.0.0:0"))
        .unwrap()
        + 1;
    let out = check(dir.path(), &public);
    assert!(
        stderr(&out).contains(&format!(
            ":{line}: listener.tcp.address: listener on 0.0.0.0:0 has no TLS certificate"
        )),
        "{}",
        stderr(&out)
    );
    let both = base.replace(
        "address = \"127.0.0.1:0\"",
        "address = \"127.0.0.1:0\"\n  tls_cert_file = \"c\"\n  tls_key_file = \"k\"\n  tls_disable = true",
    );
    let line = both
        .lines()
        .position(|l| l.contains("tls_disable"))
        .unwrap()
        + 1;
    let out = check(dir.path(), &both);
    assert!(
        stderr(&out).contains(&format!(
            ":{line}: listener.tcp.tls_disable: is true, but TLS files are also set"
        )),
        "{}",
        stderr(&out)
    );
}

#[test]
fn at_most_fifty_config_errors_are_printed() {
    let dir = tempdir();
    let keys: String = (0..2000).map(|i| format!("bogus_{i} = 1\n")).collect();
    let out = check(dir.path(), &format!("{}{keys}", config(dir.path(), "")));
    assert_eq!(out.status.code(), Some(64));
    let text = stderr(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 51, "{text}");
    assert!(lines[49].contains("bogus_49"), "{}", lines[49]);
    assert_eq!(lines[50], "and 1950 more errors");
}

#[test]
fn vault_keys_that_change_nothing_warn_and_the_daemon_starts() {
    let dir = tempdir();
    let vault = "ui = true\npid_file = \"./pidfile\"\nlog_file = \"/var/log/vault.log\"\nplugin_directory = \"/p\"\ndisable_cache = true\nraw_storage_endpoint = true\ndisable_sealwrap = true\ndefault_lease_ttl = \"768h\"\nmax_lease_ttl = \"768h\"\n";
    let text = config(dir.path(), vault);
    let out = check(dir.path(), &text);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stderr(&out)
            .matches("is a Vault setting that strongroom does not use; ignored")
            .count(),
        9,
        "{}",
        stderr(&out)
    );
    let daemon = Daemon::start(dir.path(), &text);
    let warned = daemon
        .stderr
        .events()
        .into_iter()
        .filter(|e| e["level"] == "WARN")
        .filter(|e| {
            e["message"]
                .as_str()
                .unwrap_or_default()
                .contains(": ui: is a Vault setting")
        })
        .count();
    assert_eq!(warned, 1, "{}", daemon.stderr.text());
    // What would weaken or change what was asked stays refused.
    for refused in [
        "ha_storage \"raft\" {}\n",
        "storage \"raft\" {}\n",
        "log_levle = \"info\"\n",
    ] {
        let out = check(dir.path(), &format!("{}{refused}", config(dir.path(), "")));
        assert_eq!(out.status.code(), Some(64), "{refused}");
    }
    let out = check(
        dir.path(),
        &format!("{}log_levle = \"info\"\n", config(dir.path(), "")),
    );
    assert!(
        stderr(&out).contains("(did you mean \"log_level\"?)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_region_of_the_wrong_form_is_refused_and_an_unlisted_one_warned_about() {
    let dir = tempdir();
    let seal = |region: &str| {
        config(
            dir.path(),
            &format!(
                "seal \"awskms\" {{\n  region = \"{region}\"\n  kms_key_id = \"alias/x\"\n}}\n"
            ),
        )
    };
    let out = check(dir.path(), &seal("eu west 1"));
    assert_eq!(out.status.code(), Some(64));
    assert!(
        stderr(&out).contains(
            "seal.awskms.region: expected an AWS region such as \"eu-west-1\", got \"eu west 1\""
        ),
        "{}",
        stderr(&out)
    );
    let out = check(dir.path(), &seal("mars-north-9"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning: ")
            && stderr(&out).contains("\"mars-north-9\" is not a region AWS lists"),
        "{}",
        stderr(&out)
    );
    let out = check(dir.path(), &seal("eu-west-1"));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stderr(&out), "");
}

#[test]
fn cert_san_takes_a_uri_and_points_dns_names_at_cert_dns_san() {
    let dir = tempdir();
    let tls = |identity: &str| {
        config(dir.path(), "").replace(
            "address = \"127.0.0.1:0\"",
            &format!("address = \"127.0.0.1:0\"\n  tls_cert_file = \"c\"\n  tls_key_file = \"k\"\n  tls_client_ca_file = \"ca\"\n  identity {{\n    {identity}\n    policies = [\"app\"]\n  }}"),
        )
    };
    let out = check(dir.path(), &tls("cert_san = \"app.example.org\""));
    assert_eq!(out.status.code(), Some(64));
    assert!(
        stderr(&out).contains("listener.tcp.identity.cert_san: expected a URI such as \"spiffe://example.org/app\", got \"app.example.org\"; a DNS name goes in cert_dns_san"),
        "{}",
        stderr(&out)
    );
    // The DNS form parses (and then fails only on the missing files).
    let out = check(dir.path(), &tls("cert_dns_san = \"app.example.org\""));
    assert!(
        stderr(&out).contains("listener.tcp.tls_cert_file: cannot read"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn server_takes_only_its_own_flags_and_finds_its_default_config() {
    let dir = tempdir();
    let out = server(&["server", "--help"], dir.path());
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--dev-listen-address"), "{help}");
    for client in [
        "--address",
        "--token-file",
        "--ca-cert",
        "--client-cert",
        "--tls-server-name",
    ] {
        assert!(
            !help.contains(client),
            "server --help lists {client}:\n{help}"
        );
    }
    let out = server(
        &["server", "--dev", "--address", "http://127.0.0.1:9999"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(64));
    assert!(
        stderr(&out).contains("unexpected argument '--address'"),
        "{}",
        stderr(&out)
    );
    let out = server(
        &["--address", "http://127.0.0.1:9999", "server", "--dev"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(64));
    assert!(
        stderr(&out).contains("are client flags; `strongroom server` takes none of them"),
        "{}",
        stderr(&out)
    );

    // No --config: /etc/strongroom/strongroom.hcl, then config/strongroom.hcl here.
    let etc = Path::new("/etc/strongroom/strongroom.hcl");
    if !etc.exists() {
        let out = server(&["server", "--check"], dir.path());
        assert_eq!(out.status.code(), Some(64));
        assert_eq!(
            stderr(&out),
            format!(
                "error: no config file: give --config FILE (tried /etc/strongroom/strongroom.hcl and {}/config/strongroom.hcl)\n",
                dir.path().display()
            )
        );
        std::fs::create_dir(dir.path().join("config")).unwrap();
        std::fs::write(
            dir.path().join("config/strongroom.hcl"),
            config(dir.path(), ""),
        )
        .unwrap();
        let out = server(&["server", "--check"], dir.path());
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(String::from_utf8_lossy(&out.stdout).starts_with(&format!(
            "{}/config/strongroom.hcl: the configuration is valid",
            dir.path().display()
        )));
    }
}

#[test]
fn dev_mode_prints_lines_to_paste_and_never_says_sealed() {
    let dir = tempdir();
    let mut command = Command::new(BIN);
    command
        .args(["server", "--dev", "--dev-listen-address", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_remove("STRONGROOM_LOG_LEVEL");
    let running = Running::spawn(command);
    running
        .stdout
        .wait_for("the root token", |l| l.starts_with("Root Token: "));
    let out = running.stdout.text();
    let export = |var: &str| -> String {
        let prefix = format!("export {var}='");
        let line = out
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no {var} line in:\n{out}"));
        line[prefix.len()..].trim_end_matches('\'').to_string()
    };
    let address = export("STRONGROOM_ADDR");
    let token = export("STRONGROOM_TOKEN");
    assert!(
        address.starts_with("http://127.0.0.1:") && !address.ends_with(":0"),
        "{address}"
    );
    assert!(out.contains(&format!("Root Token: {token}")));
    // The pasted lines work: a write needs the token, and reaches the daemon.
    let cli = || {
        let mut cli = Cli::new();
        cli.env("STRONGROOM_ADDR", &address)
            .env("STRONGROOM_TOKEN", &token);
        cli
    };
    cli().run(&["kv", "put", "app/db", "user=admin"]).ok();
    let read = cli()
        .run(&["kv", "get", "app/db", "--format", "json"])
        .ok()
        .json();
    assert_eq!(read["data"]["data"]["user"], "admin");
    let log = running.stderr.text();
    assert!(log.contains("unsealed"), "{log}");
    assert!(!log.contains("sealed until"), "{log}");
}

#[test]
fn what_the_daemon_makes_is_private_whatever_the_umask() {
    let dir = tempdir();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let audit = dir.path().join("audit.log");
    std::fs::write(&audit, "").unwrap();
    std::fs::set_permissions(&audit, std::fs::Permissions::from_mode(0o644)).unwrap();
    let socket = dir.path().join("s.sock");
    let text = format!(
        "storage \"file\" {{\n  path = \"{}\"\n  cache_size = 4194304\n}}\nlistener \"unix\" {{\n  path = \"{}\"\n}}\naudit \"file\" {{\n  path = \"{}\"\n}}\nlog_format = \"json\"\ndisable_mlock = true\n",
        data.display(),
        socket.display(),
        audit.display()
    );
    let path = dir.path().join("strongroom.hcl");
    std::fs::write(&path, text).unwrap();
    // As a shell started by hand with a careless umask.
    let mut command = Command::new("sh");
    command.args([
        "-c",
        "umask 000; exec \"$0\" server --config \"$1\"",
        BIN,
        path.to_str().unwrap(),
    ]);
    let running = Running::spawn(command);
    running
        .stderr
        .wait_for("listening", |l| l.contains("\"listening\""));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&socket) & 0o077, 0, "socket mode {:o}", mode(&socket));
    assert_eq!(mode(&audit), 0o600);
    assert_eq!(mode(&data.join("strongroom.redb")), 0o600);
    assert_eq!(mode(&data.join("strongroom.lock")), 0o600);
    // The data directory's mode is the operator's: it is warned about.
    let log = running.stderr.text();
    assert!(
        log.contains("the storage directory is open to other users; chmod 0700 it"),
        "{log}"
    );
    assert!(log.contains("\"cache_size\":4194304"), "{log}");
    assert_eq!(mode(&data), 0o755);
}

/// The ids of the packaged unit's situation: the daemon's own user, the
/// sidecars' group (`app`), and a sidecar in it.
const DAEMON_UID: u32 = 61_001;
const APP_GID: u32 = 61_002;
const SIDECAR_UID: u32 = 61_003;

/// The README's sidecar example as the packaged unit runs it: the daemon as
/// its own user without CAP_CHOWN, the socket in `RuntimeDirectory=` with the
/// unit's `RuntimeDirectoryMode=`, `socket_group` set to the sidecars' group.
/// With `SupplementaryGroups=` (setpriv --groups does what it does) a sidecar
/// of that group connects; without, the error names the cause.
#[test]
fn the_readme_sidecar_socket_works_under_the_packaged_unit() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/strongroom.service"
    ))
    .unwrap();
    let runtime_mode = unit
        .lines()
        .find_map(|l| l.strip_prefix("RuntimeDirectoryMode="))
        .map(|m| u32::from_str_radix(m, 8).unwrap())
        .expect("the unit sets RuntimeDirectoryMode");
    let dir = tempdir();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let (run, state) = (dir.path().join("run"), dir.path().join("state"));
    for (path, mode) in [(&run, runtime_mode), (&state, 0o700)] {
        std::fs::create_dir(path).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        std::os::unix::fs::chown(path, Some(DAEMON_UID), Some(DAEMON_UID)).unwrap();
    }
    let socket = run.join("strongroom.sock");
    let text = format!(
        "storage \"file\" {{\n  path = \"{}\"\n}}\nlistener \"unix\" {{\n  path = \"{}\"\n  socket_mode = \"0660\"\n  socket_group = \"{APP_GID}\"\n}}\nlog_format = \"json\"\ndisable_mlock = true\n",
        state.display(),
        socket.display()
    );
    let path = dir.path().join("strongroom.hcl");
    let other_user = dir.path().join("other-user.hcl");
    let user_text = text.replace(
        &format!("socket_group = \"{APP_GID}\""),
        &format!("socket_user = \"{SIDECAR_UID}\""),
    );
    for (file, text) in [(&path, &text), (&other_user, &user_text)] {
        std::fs::write(file, text).unwrap();
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let daemon_on = |groups: &str, config: &Path| {
        let mut command = Command::new("setpriv");
        command
            .args([
                "--reuid",
                &DAEMON_UID.to_string(),
                "--regid",
                &DAEMON_UID.to_string(),
            ])
            .args(groups.split(' '))
            .args([BIN, "server", "--config", config.to_str().unwrap()])
            .current_dir(&state);
        Running::spawn(command)
    };
    let daemon = |groups: &str| daemon_on(groups, &path);

    // Another user for the socket: only CAP_CHOWN could, and the unit has none.
    let mut refused = daemon_on("--clear-groups", &other_user);
    assert_eq!(refused.exit_code(), Some(64), "{}", refused.stderr.text());
    let log = refused.stderr.text();
    assert!(
        log.contains(&format!(
            "to user {SIDECAR_UID} (uid {SIDECAR_UID}): Operation not permitted"
        )) && log.contains("only a process with CAP_CHOWN may give a file to another user"),
        "{log}"
    );
    drop(refused);

    // Not in the group: exit 64 (a restart cannot help), and the reason.
    let mut refused = daemon("--clear-groups");
    assert_eq!(refused.exit_code(), Some(64), "{}", refused.stderr.text());
    let log = refused.stderr.text();
    assert!(
        log.contains(&format!(
            "cannot give the socket {} to group {APP_GID} (gid {APP_GID}): Operation not permitted",
            socket.display()
        )) && log.contains("is not in group")
            && log.contains("lacks CAP_CHOWN")
            && log.contains(&format!("SupplementaryGroups={APP_GID}")),
        "{log}"
    );
    drop(refused);

    // With the group, as SupplementaryGroups= gives it: a sidecar of the
    // group (not the daemon's user, not in its group) gets through the
    // runtime directory to the socket.
    let running = daemon(&format!("--groups {APP_GID}"));
    running
        .stderr
        .wait_for("listening", |l| l.contains("\"listening\""));
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::gid(&meta), APP_GID);
    let mut sidecar = Cli::new();
    sidecar
        .env("STRONGROOM_ADDR", &format!("unix://{}", socket.display()))
        .as_user(SIDECAR_UID, APP_GID);
    let status = sidecar.run(&["status", "--format", "json"]).code(2).json();
    assert_eq!(status["initialized"], false);
}

/// A certificate whose DNS name reads like the SPIFFE URI a `cert_san`
/// block names gets nothing from it; `cert_dns_san` is how DNS names are
/// matched (item 9).
#[test]
fn cert_san_matches_uri_names_only_and_cert_dns_san_dns_names() {
    use rcgen::{ExtendedKeyUsagePurpose, SanType};

    use crate::support::cli::write_policy;
    use crate::support::daemon::open;
    use crate::support::tls::Ca;

    let dir = tempdir();
    let d = dir.path();
    let ca = Ca::new(d, "ca");
    let (server_cert, server_key) = ca.leaf(d, "server", ExtendedKeyUsagePurpose::ServerAuth);
    let clients = Ca::new(d, "clients");
    let client = |file: &str, sans: Vec<SanType>| {
        clients.leaf_with(d, file, file, sans, ExtendedKeyUsagePurpose::ClientAuth)
    };
    let dns = |name: &str| SanType::DnsName(name.try_into().unwrap());
    let spoof = client("spoof", vec![dns("spiffe://example.org/app")]);
    let uri = client(
        "uri",
        vec![SanType::URI("spiffe://example.org/app".try_into().unwrap())],
    );
    let by_dns = client("by-dns", vec![dns("reporter.example.org")]);
    let admin = client("admin", vec![]);
    let tls = format!(
        "address = \"127.0.0.1:0\"\n  tls_cert_file = \"{}\"\n  tls_key_file = \"{}\"\n  tls_client_ca_file = \"{}\"\n  identity {{\n    cert_san = \"spiffe://example.org/app\"\n    policies = [\"app\"]\n  }}\n  identity {{\n    cert_dns_san = \"reporter.example.org\"\n    policies = [\"app\"]\n  }}",
        server_cert.display(),
        server_key.display(),
        clients.pem_path.display()
    );
    let text = config(d, "").replace("address = \"127.0.0.1:0\"", &tls);
    let mut daemon = Daemon::start(d, &text);
    for (k, v) in [
        ("STRONGROOM_CACERT", &ca.pem_path),
        ("STRONGROOM_CLIENT_CERT", &admin.0),
        ("STRONGROOM_CLIENT_KEY", &admin.1),
    ] {
        daemon.env.insert(k.into(), v.display().to_string());
    }
    open(&mut daemon);
    write_policy(
        &mut daemon.cli(),
        "app",
        "path \"secret/data/app/*\" { capabilities = [\"read\"] }\n",
    );
    daemon
        .cli()
        .run(&["kv", "put", "app/db", "password=s3cret"])
        .ok();

    let read = |(cert, key): &(std::path::PathBuf, std::path::PathBuf)| {
        Cli::new()
            .env("STRONGROOM_ADDR", &daemon.addr)
            .env("STRONGROOM_CACERT", ca.pem_path.to_str().unwrap())
            .env("STRONGROOM_CLIENT_CERT", cert.to_str().unwrap())
            .env("STRONGROOM_CLIENT_KEY", key.to_str().unwrap())
            .run(&["kv", "get", "app/db", "--format", "json"])
    };
    assert_eq!(read(&uri).ok().json()["data"]["data"]["password"], "s3cret");
    assert_eq!(
        read(&by_dns).ok().json()["data"]["data"]["password"],
        "s3cret"
    );
    // The DNS name that spells the URI is no identity: no token, refused.
    read(&spoof).code(1).error_says("this call needs a token");
}

#[test]
fn dev_mode_with_a_closed_stdout_serves_on_and_stops_cleanly() {
    let dir = tempdir();
    let (reader, writer) = nix::unistd::pipe().unwrap();
    drop(reader);
    let mut child = Command::new(BIN)
        .args(["server", "--dev", "--dev-listen-address", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_remove("STRONGROOM_LOG_LEVEL")
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = Lines::default().follow(child.stderr.take().unwrap());
    // The lines to paste are written (and lost) right after the listener is
    // bound, before it serves: once Status answers, they were.
    let line = stderr.wait_for("the listener", |l| l.contains("listening"));
    let address = line
        .split_whitespace()
        .find_map(|word| word.strip_prefix("address="))
        .unwrap_or_else(|| panic!("no address in {line}"))
        .trim_matches('"')
        .to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let mut cli = Cli::new();
        cli.env("STRONGROOM_ADDR", &format!("http://{address}"));
        if cli.run(&["status"]).code == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Status never answered"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    stderr.wait_closed();
    let status = child.wait().unwrap();
    let log = stderr.text();
    assert!(!log.contains("panicked"), "{log}");
    assert_eq!(status.code(), Some(0), "{log}");
}
