//! Each seal's health (issue 16) on a daemon of one seal: Vault's
//! unauthenticated `sys/seal-backend-status` and the gRPC
//! `Sys.SealBackendStatus`, one backend named after the seal type.
//! Several seals' answers are tested once the config can name them.

use serde_json::{Value, json};
use strongroom::proto::{self, sys_client::SysClient};
use strongroom_test_support::eventually;
use strongroom_test_support::kms::key_id;

use crate::support::cli::status;
use crate::support::daemon::{Daemon, config, tempdir};
use crate::support::grpc::channel;
use crate::support::kms::{SOON, init_recovery, kms, start_daemon};
use crate::support::vault::request;

/// `Sys.SealBackendStatus` without a token.
fn grpc_backends(daemon: &Daemon) -> proto::SealBackendStatusResponse {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        SysClient::new(channel(&daemon.addr).await)
            .seal_backend_status(proto::SealBackendStatusRequest {})
            .await
            .unwrap()
            .into_inner()
    })
}

/// `GET sys/seal-backend-status` without a token; it answers 200.
fn http_backends(daemon: &Daemon) -> Value {
    let answer = request(&daemon.addr, "GET", "sys/seal-backend-status", None, None);
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.body
}

#[test]
fn a_shamir_daemon_has_one_healthy_backend_for_anyone_and_is_not_audited() {
    let dir = tempdir();
    let audit_log = dir.path().join("audit.log");
    let daemon = Daemon::start(
        dir.path(),
        &config(
            dir.path(),
            &format!("audit \"file\" {{ path = \"{}\" }}\n", audit_log.display()),
        ),
    );
    let shamir = json!({
        "healthy": true,
        "fully_wrapped": true,
        "backends": [{"name": "shamir", "healthy": true, "configured": true,
                      "disabled": false, "type": "shamir", "priority": 1,
                      "fully_wrapped": true}],
    });
    assert_eq!(http_backends(&daemon), shamir);
    for method in ["PUT", "POST", "DELETE"] {
        let answer = request(&daemon.addr, method, "sys/seal-backend-status", None, None);
        assert_eq!(answer.status, 405, "{method}: {:?}", answer.body);
    }

    let grpc = grpc_backends(&daemon);
    assert!(grpc.healthy && grpc.fully_wrapped);
    assert_eq!(grpc.unhealthy_since, "");
    let names: Vec<(&str, &str, bool, bool)> = grpc
        .backends
        .iter()
        .map(|b| (b.name.as_str(), b.r#type.as_str(), b.healthy, b.configured))
        .collect();
    assert_eq!(names, [("shamir", "shamir", true, true)]);

    // Initialized (and sealed): the same answer. The audited init is in
    // the log; neither status call is.
    let init = request(
        &daemon.addr,
        "PUT",
        "sys/init",
        None,
        Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
    );
    assert_eq!(init.status, 200, "{:?}", init.body);
    assert_eq!(http_backends(&daemon), shamir);
    assert_eq!(grpc_backends(&daemon).backends.len(), 1);
    let audit = std::fs::read_to_string(&audit_log).unwrap();
    assert!(audit.contains("\"sys.Init\""), "{audit}");
    assert!(!audit.contains("sys.SealBackendStatus"), "{audit}");

    // One seal: `status` lists no seals, as before.
    let status = status(&daemon);
    assert_eq!(status["type"], "shamir");
    assert!(status.get("seals").is_none(), "{status}");
}

#[test]
fn one_awskms_seal_is_unhealthy_while_its_key_is_pending_deletion() {
    let kms = kms();
    let dir = tempdir();
    let daemon = start_daemon(
        dir.path(),
        &kms.proxy.endpoint(),
        "health_check_interval = \"1s\"",
    );
    init_recovery(&daemon);
    let healthy = http_backends(&daemon);
    assert_eq!(healthy["healthy"], true, "{healthy}");
    assert_eq!(healthy["backends"][0]["name"], "awskms");
    assert_eq!(healthy["backends"][0]["type"], "awskms");
    assert!(healthy["backends"][0].get("last_error").is_none());

    let key = kms.key.as_str();
    kms.moto.call(
        "ScheduleKeyDeletion",
        json!({"KeyId": key_id(key), "PendingWindowInDays": 7}),
    );
    eventually("the seal unhealthy", SOON, || {
        http_backends(&daemon)["healthy"] == false
    });
    let unhealthy = http_backends(&daemon);
    let backend = &unhealthy["backends"][0];
    assert_eq!(backend["healthy"], false, "{unhealthy}");
    assert!(
        backend["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("is pending deletion")),
        "{unhealthy}"
    );
    // One seal's health keeps no time: no unhealthy_since rather than a
    // made-up one.
    assert!(unhealthy.get("unhealthy_since").is_none(), "{unhealthy}");
    let grpc = grpc_backends(&daemon);
    assert!(!grpc.healthy);
    assert!(grpc.backends[0].last_error.contains("is pending deletion"));

    kms.moto
        .call("CancelKeyDeletion", json!({"KeyId": key_id(key)}));
    kms.moto.call("EnableKey", json!({"KeyId": key_id(key)}));
    eventually("the seal healthy again", SOON, || {
        grpc_backends(&daemon).healthy
    });
}
