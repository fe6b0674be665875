//! What a sidecar sees: gRPC health, reflection (v1 and v1alpha), and a
//! daemon that stops promptly on SIGTERM and SIGINT.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio_stream::StreamExt;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::support::cli::init;
use crate::support::daemon::{Daemon, config, tempdir};

async fn health(
    client: &mut HealthClient<tonic::transport::Channel>,
    service: &str,
) -> ServingStatus {
    let response = client
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner();
    ServingStatus::try_from(response.status).unwrap()
}

/// Polls until `service` reports `wanted` (the health task follows the seal
/// state asynchronously).
async fn await_health(
    client: &mut HealthClient<tonic::transport::Channel>,
    service: &str,
    wanted: ServingStatus,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = health(client, service).await;
        if now == wanted {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{service:?} stayed {now:?}, wanted {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[test]
fn health_is_readiness_for_the_server_and_liveness_for_sys() {
    let dir = tempdir();
    let daemon = Daemon::start(dir.path(), &config(dir.path(), ""));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut client = HealthClient::new(crate::support::grpc::channel(&daemon.addr).await);
        await_health(&mut client, "", ServingStatus::NotServing).await;
        assert_eq!(
            health(&mut client, "strongroom.v1.Sys").await,
            ServingStatus::Serving
        );

        let keys = init(&daemon, &["--key-shares", "1"]);
        assert_eq!(health(&mut client, "").await, ServingStatus::NotServing);
        daemon.cli().run(&["unseal", &keys.keys_hex[0]]).ok();
        await_health(&mut client, "", ServingStatus::Serving).await;

        daemon.cli().token(&keys.root_token).run(&["seal"]).ok();
        await_health(&mut client, "", ServingStatus::NotServing).await;
        assert_eq!(
            health(&mut client, "strongroom.v1.Sys").await,
            ServingStatus::Serving
        );

        let err = client
            .check(HealthCheckRequest {
                service: "no.such.Service".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
    });
}

#[test]
fn reflection_lists_the_api_in_v1_and_v1alpha() {
    use tonic_reflection::pb::{v1, v1alpha};

    let dir = tempdir();
    let daemon = Daemon::start(dir.path(), &config(dir.path(), ""));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let expected = [
            "strongroom.v1.Sys",
            "strongroom.v1.Kv",
            "grpc.health.v1.Health",
        ];

        let mut client = v1::server_reflection_client::ServerReflectionClient::new(
            crate::support::grpc::channel(&daemon.addr).await,
        );
        let request = v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            )),
        };
        let mut responses = client
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        let response = responses.next().await.unwrap().unwrap();
        let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
            response.message_response
        else {
            panic!("unexpected v1 response {response:?}");
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        for name in expected {
            assert!(
                names.iter().any(|n| n == name),
                "v1 lacks {name}: {names:?}"
            );
        }

        let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(
            crate::support::grpc::channel(&daemon.addr).await,
        );
        let requests = [
            v1alpha::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(
                    v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
                ),
            },
            v1alpha::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(
                    v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
                        "strongroom.v1.Sys".into(),
                    ),
                ),
            },
        ];
        let mut responses = client
            .server_reflection_info(tokio_stream::iter(requests))
            .await
            .unwrap()
            .into_inner();
        let first = responses.next().await.unwrap().unwrap();
        let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
            first.message_response
        else {
            panic!("unexpected v1alpha response {first:?}");
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        for name in expected {
            assert!(
                names.iter().any(|n| n == name),
                "v1alpha lacks {name}: {names:?}"
            );
        }
        let second = responses.next().await.unwrap().unwrap();
        let Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(
            files,
        )) = second.message_response
        else {
            panic!("unexpected v1alpha response {second:?}");
        };
        let descriptor = <prost_types_like::FileDescriptorProto as prost::Message>::decode(
            files.file_descriptor_proto[0].as_slice(),
        )
        .unwrap();
        assert_eq!(descriptor.name.as_deref(), Some("strongroom/v1/sys.proto"));
        assert_eq!(descriptor.package.as_deref(), Some("strongroom.v1"));
    });
}

/// The two fields of `google.protobuf.FileDescriptorProto` this test reads,
/// declared here so the test needs no extra crate.
mod prost_types_like {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FileDescriptorProto {
        #[prost(string, optional, tag = "1")]
        pub name: Option<String>,
        #[prost(string, optional, tag = "2")]
        pub package: Option<String>,
    }
}

/// Stops on `signal` while a client holds a connection open; the keys are
/// dropped first. The 3 s bound only catches a hang (a drain that waits for
/// idle connections); docs/BENCHMARKS.md has the measured time.
fn stops_on(signal: Signal) {
    let dir = tempdir();
    let mut daemon = Daemon::start(dir.path(), &config(dir.path(), ""));
    let keys = init(&daemon, &["--key-shares", "1"]);
    daemon.cli().run(&["unseal", &keys.keys_hex[0]]).ok();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _open = runtime.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(daemon.addr.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut sys = strongroom::proto::sys_client::SysClient::new(channel.clone());
        sys.status(strongroom::proto::StatusRequest {})
            .await
            .unwrap();
        channel
    });
    daemon.signal(signal);
    let status = daemon
        .wait_exit(Duration::from_secs(3))
        .expect("still running 3 s after the signal");
    assert!(status.success(), "exit status {status}");
    let log = daemon.stderr.text();
    assert!(
        log.contains("sealed: root key and keyring dropped from memory"),
        "{log}"
    );
    assert!(
        !dir.path().join("strongroom.sock").exists(),
        "the socket file was left behind"
    );
}

#[test]
fn sigterm_seals_and_exits_0() {
    stops_on(Signal::SIGTERM);
}

#[test]
fn sigint_seals_and_exits_0() {
    stops_on(Signal::SIGINT);
}
