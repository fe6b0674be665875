//! KMS transport failures as operators read them, with the real binary:
//! refused and dropped connections and an invalid region each read as one
//! sentence naming the endpoint and the OS's reason, in Status, in the CLI's
//! error and in the log; never the SDK's Debug dump. And Status keeps why
//! the last quorum of recovery keys did not unseal (after an operator's seal
//! nothing else would say it).

use std::path::Path;

use serde_json::Value;
use strongroom_test_support::eventually;
use strongroom_test_support::kms::Fault;

use crate::support::cli::{Run, status};
use crate::support::daemon::{Daemon, config, tempdir};
use crate::support::kms::{ALIAS, SOON, init_recovery, kms, start_daemon};

/// What the SDK's errors looked like before: none of it may reach an operator.
const DUMPS: [&str; 6] = [
    "DispatchFailure",
    "ConnectorError",
    "ConstructionFailure",
    "hyper_util",
    "{",
    "Error(",
];

#[track_caller]
fn assert_plain(text: &str) {
    for dump in DUMPS {
        assert!(!text.contains(dump), "{dump:?} in {text}");
    }
}

/// A loopback endpoint that refuses connections: a socket bound, held, and
/// never listening (the kernel answers SYN with RST), so no other process
/// can take the port meanwhile.
fn refusing_endpoint() -> (tokio::net::TcpSocket, String) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let endpoint = format!("http://{}", socket.local_addr().unwrap());
    (socket, endpoint)
}

/// The daemon's JSON log lines that mention `text`.
fn log_lines_with(daemon: &Daemon, text: &str) -> Vec<String> {
    daemon
        .stderr
        .all()
        .into_iter()
        .filter(|line| line.contains(text))
        .collect()
}

/// The one error line of a failed CLI run, with its `error: ` prefix.
#[track_caller]
fn cli_error(run: Run) -> String {
    let run = run.code(1);
    assert_plain(&run.stderr);
    run.stderr.trim_end().to_string()
}

#[test]
fn a_dropped_connection_reads_as_a_sentence_in_the_log_the_cli_and_status() {
    let kms = kms();
    let dir = tempdir();
    let endpoint = kms.proxy.endpoint();
    let daemon = start_daemon(dir.path(), &endpoint, "health_check_interval = \"1s\"");
    let init = init_recovery(&daemon);

    // KMS drops every connection: the health check says so in Status and the log.
    kms.proxy.fault(None, Fault::Drop);
    let unreachable = format!("KMS at {endpoint} is unreachable for DescribeKey: ");
    let mut warnings = Value::Null;
    eventually("the failed health check in Status", SOON, || {
        warnings = status(&daemon)["warnings"].clone();
        warnings.to_string().contains(&unreachable)
    });
    let warning = warnings[0].as_str().unwrap();
    assert!(
        warning.starts_with(&format!(
            "the health check of KMS key {} failed: {unreachable}",
            kms.key
        )),
        "{warning}"
    );
    assert_plain(warning);
    let logged = log_lines_with(&daemon, &unreachable);
    assert!(!logged.is_empty(), "{}", daemon.stderr.text());
    for line in &logged {
        let event: Value = serde_json::from_str(line).unwrap();
        for text in event.as_object().unwrap().values() {
            assert_plain(text.as_str().unwrap_or_default());
        }
    }

    // An operator seals; the recovery keys cannot be checked while KMS drops.
    daemon.cli().token(&init.root_token).run(&["seal"]).ok();
    for key in &init.recovery_hex[..2] {
        daemon.cli().run(&["unseal", key]).ok();
    }
    let error = cli_error(daemon.cli().run(&["unseal", &init.recovery_hex[2]]));
    let sentence = error.strip_prefix("error: ").unwrap();
    assert!(
        sentence.starts_with(&format!("KMS at {endpoint} is unreachable for Decrypt: ")),
        "{error}"
    );
    assert!(!sentence.contains('\n'), "{error}");

    // Status says what the last quorum failed on, and the state is unchanged.
    let sealed = status(&daemon);
    assert_eq!(sealed["sealed"], true);
    assert_eq!(sealed["auto_unseal"]["state"], "stopped");
    assert_eq!(
        sealed["auto_unseal"]["last_error"],
        format!(
            "a quorum of recovery keys was entered but did not unseal (enter it again): {sentence}"
        )
    );
    let table = daemon.cli().run(&["status"]).code(2).stdout;
    assert!(table.contains(sentence), "{table}");

    // KMS answers again: the same keys unseal, and the error is gone.
    kms.proxy.clear_fault();
    for key in &init.recovery_hex[2..5] {
        daemon.cli().run(&["unseal", key]).ok();
    }
    let unsealed = status(&daemon);
    assert_eq!(unsealed["sealed"], false);
    assert_eq!(unsealed["auto_unseal"]["last_error"], "");
}

#[test]
fn a_refused_connection_names_the_endpoint_and_the_os_error() {
    let kms = kms();
    let dir = tempdir();
    let mut daemon = start_daemon(dir.path(), &kms.proxy.endpoint(), "");
    init_recovery(&daemon);
    daemon.stop();

    // The same store, its KMS now at an address that refuses connections.
    let (_held, refusing) = refusing_endpoint();
    let daemon = start_daemon(dir.path(), &refusing, "");
    let expected =
        format!("KMS at {refusing} is unreachable for Decrypt: Connection refused (os error 111)");
    eventually("the refused connection in Status", SOON, || {
        status(&daemon)["auto_unseal"]["last_error"] == expected.as_str()
    });
    assert_eq!(status(&daemon)["auto_unseal"]["state"], "in_progress");
    // The table says it in words; the JSON above keeps the documented value.
    let table = daemon.cli().run(&["status"]).code(2).stdout;
    let row = table
        .lines()
        .find(|l| l.starts_with("Auto-Unseal "))
        .unwrap();
    assert!(row.ends_with(" in progress"), "{table}");
    assert!(table.contains(&expected), "{table}");
    let logged = log_lines_with(&daemon, "auto-unseal failed");
    assert!(!logged.is_empty(), "{}", daemon.stderr.text());
    for line in &logged {
        let event: Value = serde_json::from_str(line).unwrap();
        assert_eq!(event["error"], expected.as_str(), "{line}");
    }

    // Init against a KMS that refuses: the CLI's error is the same sentence.
    let fresh = tempdir();
    let daemon = start_daemon(fresh.path(), &refusing, "");
    let error = cli_error(daemon.cli().run(&["init"]));
    assert_eq!(
        error,
        format!(
            "error: KMS at {refusing} is unreachable for Encrypt: Connection refused (os error 111)"
        )
    );
}

/// A seal block without a region, so `AWS_REGION` decides it.
fn seal_without_region(dir: &Path, endpoint: &str) -> String {
    config(
        dir,
        &format!(
            r#"
seal "awskms" {{
  kms_key_id = "{ALIAS}"
  endpoint   = "{endpoint}"
  access_key = "AKIDSTRONGROOMTEST"
  secret_key = "sr-test-aws-secret-key-4711"
}}
"#
        ),
    )
}

#[test]
fn an_invalid_region_reads_as_one_sentence_at_init() {
    let kms = kms();
    let dir = tempdir();
    let daemon = Daemon::start_with(
        dir.path(),
        &seal_without_region(dir.path(), &kms.proxy.endpoint()),
        &[("AWS_REGION", "eu west 1")],
    );
    let error = cli_error(daemon.cli().run(&["init"]));
    assert_eq!(
        error,
        "error: no Encrypt request can be made: the AWS region \"eu west 1\" is not a valid region name (like eu-west-1)"
    );
    assert!(
        kms.proxy.requests().is_empty(),
        "{:?}",
        kms.proxy.requests()
    );
}
