//! Every refusal: a clear sentence, the documented code, and nothing changed.

use std::collections::HashMap;

use strongroom::proto::{self, kv_client::KvClient, sys_client::SysClient};
use tonic::Code;

use crate::support::cli::{Cli, init, status};
use crate::support::daemon::{Daemon, config, tempdir};
use crate::support::grpc::with_token;

async fn sys(daemon: &Daemon) -> SysClient<tonic::transport::Channel> {
    SysClient::connect(daemon.addr.clone()).await.unwrap()
}

#[test]
fn bad_unseal_keys_are_refused_at_once_and_progress_is_kept() {
    let dir = tempdir();
    let daemon = Daemon::start(dir.path(), &config(dir.path(), ""));
    let keys = init(&daemon, &[]);
    daemon.cli().run(&["unseal", &keys.keys_hex[0]]).ok();
    let nonce = status(&daemon)["nonce"].as_str().unwrap().to_string();

    // Not hex or base64.
    daemon
        .cli()
        .run(&["unseal", "not a key!"])
        .code(1)
        .error_says("the unseal key is neither hex nor base64");
    // Wrong length.
    daemon
        .cli()
        .run(&["unseal", &keys.keys_hex[1][..64]])
        .code(1)
        .error_says("the unseal key is 32 bytes long, but this store's unseal keys are 33 bytes");
    // A well-formed share that was never issued: a typo in one character.
    let mut typo = keys.keys_hex[1].clone().into_bytes();
    typo[20] = if typo[20] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();
    daemon
        .cli()
        .run(&["unseal", &typo])
        .code(1)
        .error_says("this unseal key was never issued for this store");
    // A share of another store.
    let other_dir = tempdir();
    let other = Daemon::start(other_dir.path(), &config(other_dir.path(), ""));
    let foreign = init(&other, &[]);
    daemon
        .cli()
        .run(&["unseal", &foreign.keys_b64[1]])
        .code(1)
        .error_says("never issued");
    // A duplicate: accepted as harmless, flagged, progress unchanged.
    let dup = daemon
        .cli()
        .run(&["unseal", &keys.keys_b64[0], "--format", "json"])
        .ok();
    assert!(
        dup.stderr.contains("already been entered"),
        "{}",
        dup.stderr
    );
    assert_eq!(dup.json()["progress"], 1);

    let now = status(&daemon);
    assert_eq!(now["progress"], 1, "progress changed: {now}");
    assert_eq!(now["nonce"], nonce.as_str(), "the attempt was restarted");
    // The quorum still completes with the real keys.
    daemon.cli().run(&["unseal", &keys.keys_hex[1]]).ok();
    daemon.cli().run(&["unseal", &keys.keys_hex[2]]).ok();
    assert_eq!(status(&daemon)["sealed"], false);
}

#[test]
fn grpc_codes_match_the_contract() {
    let dir = tempdir();
    let daemon = Daemon::start(dir.path(), &config(dir.path(), ""));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut sys = sys(&daemon).await;
        // Uninitialized: unseal and kv are FAILED_PRECONDITION.
        let err = sys
            .unseal(proto::UnsealRequest {
                key: "00".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert_eq!(
            err.message(),
            "strongroom is not initialized; run `strongroom init` first"
        );
        let mut kv = KvClient::connect(daemon.addr.clone()).await.unwrap();
        let err = kv
            .get(proto::GetRequest {
                path: "a".into(),
                version: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);

        // Invalid init parameters change nothing.
        for (shares, threshold) in [(0, 0), (5, 6), (256, 3), (3, 1)] {
            let err = sys
                .init(proto::InitRequest {
                    key_shares: Some(shares),
                    key_threshold: Some(threshold),
                    ..Default::default()
                })
                .await
                .unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "{shares}/{threshold}");
            assert!(
                err.message().contains("is not possible"),
                "{}",
                err.message()
            );
        }
        assert!(
            !sys.status(proto::StatusRequest {})
                .await
                .unwrap()
                .into_inner()
                .initialized
        );

        let init = sys
            .init(proto::InitRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!((init.shares, init.threshold), (5, 3));
        // Nothing is written until the receiver confirms.
        let status = sys
            .status(proto::StatusRequest {})
            .await
            .unwrap()
            .into_inner();
        assert!(!status.initialized);
        let err = sys
            .init_confirm(proto::InitConfirmRequest {
                nonce: "not-the-nonce".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        sys.init_confirm(proto::InitConfirmRequest {
            nonce: init.confirmation_nonce.clone(),
        })
        .await
        .unwrap();
        let err = sys.init(proto::InitRequest::default()).await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert_eq!(err.message(), "strongroom is already initialized");

        // Sealed: kv is UNAVAILABLE, seal is UNAVAILABLE.
        let err = kv
            .get(proto::GetRequest {
                path: "a".into(),
                version: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);
        let err = sys.seal(proto::SealRequest {}).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);

        let err = sys
            .unseal(proto::UnsealRequest {
                key: init.keys[0].clone(),
                migrate: true,
                reset: false,
                seal: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains("no seal migration is pending"));
        let err = sys
            .unseal(proto::UnsealRequest::default())
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), err.message()),
            (Code::InvalidArgument, "no unseal key was given")
        );

        for key in &init.keys[..3] {
            sys.unseal(proto::UnsealRequest {
                key: key.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        }

        // Unsealed: tokens.
        let put = |path: &str| proto::PutRequest {
            path: path.into(),
            data: HashMap::from([("k".to_string(), "v".to_string())]),
            cas: None,
            data_json: String::new(),
        };
        let err = kv.put(put("a")).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
        let err = kv.put(with_token(put("a"), "garbage")).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
        assert!(err.message().contains("malformed"), "{}", err.message());
        let err = kv
            .put(with_token(put("a"), "sr.0000000000000000000000000000000A"))
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), err.message()),
            (
                Code::Unauthenticated,
                "the token is not valid (unknown, expired or revoked)"
            )
        );

        // Bad paths.
        for path in ["", "/abs", "a//b", "a/../b", "trailing/"] {
            let err = kv
                .put(with_token(put(path), &init.root_token))
                .await
                .unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "{path:?}");
        }
        let err = kv
            .get(with_token(
                proto::GetRequest {
                    path: "missing".into(),
                    version: 0,
                },
                &init.root_token,
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound);

        // Over max_request_size (4 MiB by default): RESOURCE_EXHAUSTED.
        let big = proto::PutRequest {
            path: "big".into(),
            data: HashMap::from([("k".to_string(), "x".repeat(5 * 1024 * 1024))]),
            cas: None,
            data_json: String::new(),
        };
        let err = kv.put(with_token(big, &init.root_token)).await.unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{}", err.message());
        assert_eq!(
            err.message(),
            "the request is larger than this listener's max_request_size of 4194304 bytes"
        );
        // The daemon is still fine.
        kv.put(with_token(put("small"), &init.root_token))
            .await
            .unwrap();
    });
}

#[test]
fn a_smaller_max_request_size_is_enforced_per_listener() {
    let dir = tempdir();
    let text = config(dir.path(), "").replace(
        "address = \"127.0.0.1:0\"",
        "address = \"127.0.0.1:0\"\n  max_request_size = 1024",
    );
    let daemon = Daemon::start(dir.path(), &text);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut sys = sys(&daemon).await;
        let err = sys
            .unseal(proto::UnsealRequest {
                key: "a".repeat(2000),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted);
        // A streamed restore's chunk over the limit: the same status and
        // sentence (a restore before init needs no token).
        let chunk = proto::SnapshotChunk {
            data: vec![0; 2000],
            ..Default::default()
        };
        let err = sys
            .snapshot_restore(tokio_stream::iter([chunk]))
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), err.message()),
            (
                Code::ResourceExhausted,
                "the request is larger than this listener's max_request_size of 1024 bytes"
            )
        );
        // Under the limit it is an ordinary (refused) request.
        let err = sys
            .unseal(proto::UnsealRequest {
                key: "a".repeat(100),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
    });
}

#[test]
fn usage_errors_exit_64_and_runtime_errors_exit_1() {
    let run = Cli::new().run(&["frobnicate"]);
    assert_eq!(run.code, 64, "{run:?}");
    let run = Cli::new().run(&["init", "--key-shares", "many"]);
    assert_eq!(run.code, 64, "{run:?}");
    let run = Cli::new().run(&[]);
    assert_eq!(run.code, 64, "{run:?}");
    Cli::new().run(&["--help"]).ok();
    Cli::new().run(&["--version"]).ok();
    Cli::new()
        .run(&["kv", "put", "path", "novalue"])
        .code(64)
        .error_says("each field must be NAME=VALUE");
    Cli::new()
        .run(&["status", "--address", "ftp://x"])
        .code(64)
        .error_says("must start with http://, https:// or unix://");

    // Nothing listens on this port (held by the test, never listened on):
    // one sentence, exit 1.
    let hold = strongroom_test_support::PortHold::new();
    let address = hold.endpoint();
    let run = Cli::new().run(&["status", "--address", &address]).code(1);
    let run = run.error_says(&format!("cannot reach strongroom at {address}"));
    assert!(run.stderr.contains("refused"), "{}", run.stderr);
}

/// The code of a refusal.
fn code<T>(result: Result<T, tonic::Status>) -> Code {
    match result {
        Ok(_) => panic!("expected a refusal"),
        Err(status) => status.code(),
    }
}

#[test]
fn quorum_operations_answer_with_the_documented_codes() {
    let dir = tempdir();
    let daemon = Daemon::start(dir.path(), &config(dir.path(), ""));
    let keys = init(&daemon, &["--key-shares", "3", "--key-threshold", "2"]);
    for key in &keys.keys_hex[..2] {
        daemon.cli().run(&["unseal", key]).ok();
    }
    let token = keys.root_token.clone();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut sys = sys(&daemon).await;

        let init = || proto::RekeyInitRequest::default();
        assert_eq!(code(sys.rekey_init(init()).await), Code::Unauthenticated);
        let started = sys
            .rekey_init(with_token(init(), &token))
            .await
            .unwrap()
            .into_inner();
        let nonce = started.quorum.unwrap().nonce;
        assert_eq!(
            code(sys.rekey_init(with_token(init(), &token)).await),
            Code::FailedPrecondition
        );
        // Status shows the nonce to a root token only.
        let public = sys
            .rekey_status(proto::RekeyStatusRequest {})
            .await
            .unwrap();
        assert_eq!(public.into_inner().quorum.unwrap().nonce, "");

        let update = |nonce: &str, key: &str| proto::RekeyUpdateRequest {
            nonce: nonce.into(),
            key: key.into(),
        };
        assert_eq!(
            code(sys.rekey_update(update("wrong", &keys.keys_hex[0])).await),
            Code::InvalidArgument
        );
        assert_eq!(
            code(
                sys.rekey_update(update(&nonce, &hex::encode([5u8; 33])))
                    .await
            ),
            Code::InvalidArgument
        );
        sys.rekey_update(update(&nonce, &keys.keys_hex[0]))
            .await
            .unwrap();
        let duplicate = sys
            .rekey_update(update(&nonce, &keys.keys_b64[0]))
            .await
            .unwrap_err();
        assert_eq!(duplicate.code(), Code::InvalidArgument);
        assert_eq!(
            duplicate.message(),
            "this key was already entered for the rekey under way; progress is unchanged"
        );
        let status = sys
            .rekey_status(with_token(proto::RekeyStatusRequest {}, &token))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(status.quorum.unwrap().progress, 1, "refusals kept progress");
        assert_eq!(
            code(
                sys.rekey_cancel(with_token(
                    proto::RekeyCancelRequest {
                        nonce: "wrong".into()
                    },
                    &token
                ))
                .await
            ),
            Code::InvalidArgument
        );
        assert_eq!(
            code(
                sys.rekey_confirm(proto::RekeyConfirmRequest {
                    nonce: "anything".into()
                })
                .await
            ),
            Code::FailedPrecondition
        );
        assert_eq!(
            code(
                sys.rotate_root_update(proto::RotateRootUpdateRequest {
                    nonce: nonce.clone(),
                    key: keys.keys_hex[1].clone(),
                })
                .await
            ),
            Code::FailedPrecondition,
            "no rotate-root is under way"
        );
        let short_pad = sys
            .generate_root_init(proto::GenerateRootInitRequest {
                otp: "c2hvcnQ=".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(short_pad.code(), Code::InvalidArgument);

        // Sealed: every quorum operation is UNAVAILABLE.
        sys.seal(with_token(proto::SealRequest {}, &token))
            .await
            .unwrap();
        assert_eq!(
            code(sys.rekey_init(with_token(init(), &token)).await),
            Code::Unavailable
        );
        assert_eq!(
            code(
                sys.generate_root_init(proto::GenerateRootInitRequest::default())
                    .await
            ),
            Code::InvalidArgument,
            "a bad pad is refused before the seal state matters"
        );
    });
}
