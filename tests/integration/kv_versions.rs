//! Versioned KV with the real binary: check-and-set, pruning past
//! `max_versions`, soft delete, undelete and destroy, size limits, and data
//! that outlives restarts, rekeys and keyring rotations.

use std::collections::HashMap;

use serde_json::{Value, json};
use strongroom::proto::{GetRequest, MetadataRequest, PutRequest, kv_client::KvClient};

use crate::support::cli::{Init, unseal};
use crate::support::daemon::{Daemon, tempdir, unsealed};
use crate::support::grpc::{channel, with_token};
use crate::support::quorum::{enter, start};

/// `kv get [--version N] PATH --format json`: the envelope's `data`, which holds
/// the secret's `data` and `metadata`.
fn get(daemon: &Daemon, path: &str, version: u64) -> Value {
    daemon
        .cli()
        .run(&[
            "kv",
            "get",
            "--version",
            &version.to_string(),
            path,
            "--format",
            "json",
        ])
        .ok()
        .json()["data"]
        .clone()
}

fn metadata(daemon: &Daemon, path: &str) -> Value {
    daemon
        .cli()
        .run(&["kv", "metadata", "get", path, "--format", "json"])
        .ok()
        .json()
}

fn put_request(path: &str, pairs: &[(&str, &str)], cas: Option<u64>) -> PutRequest {
    PutRequest {
        path: path.into(),
        data: pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect::<HashMap<_, _>>(),
        cas,
        data_json: String::new(),
    }
}

#[test]
fn check_and_set_refuses_stale_writes_and_cas_0_only_creates() {
    let dir = tempdir();
    let (
        daemon,
        Init {
            root_token: token, ..
        },
    ) = unsealed(dir.path(), "");
    let put = |args: &[&str]| {
        let mut full = vec!["kv", "put"];
        full.extend_from_slice(args);
        daemon.cli().run(&full)
    };

    let out = put(&["--cas", "0", "app/db", "v=1"]).ok();
    assert_eq!(
        out.stdout.trim_end(),
        "Success! Data written to: app/db (version 1)"
    );
    put(&["--cas", "1", "app/db", "v=2"]).ok();
    put(&["app/db", "v=3"]).ok();
    put(&["--cas", "1", "app/db", "v=stale"]).code(1).error_says(
        "check-and-set parameter did not match the current version: the write expected version 1 of kv path \"app/db\", but the current version is 3",
    );
    put(&["--cas", "0", "app/db", "v=again"]).code(1).error_says(
        "check-and-set parameter did not match the current version: cas = 0 writes only a new secret, but kv path \"app/db\" is at version 3",
    );
    put(&["--cas", "2", "app/none", "v=1"]).code(1).error_says(
        "check-and-set parameter did not match the current version: the write expected version 2 of kv path \"app/none\", but the current version is 0",
    );
    // Nothing of the refused writes landed.
    assert_eq!(metadata(&daemon, "app/db")["current_version"], 3);
    assert_eq!(get(&daemon, "app/db", 0)["data"]["v"], "3");
    daemon
        .cli()
        .run(&["kv", "get", "app/none"])
        .code(1)
        .error_says("no secret at kv path \"app/none\"");
    let out = put(&["--cas", "3", "app/db", "v=4"]).ok();
    assert!(out.stdout.contains("(version 4)"), "{}", out.stdout);

    // Over gRPC: FAILED_PRECONDITION.
    let code = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut kv = KvClient::new(channel(&daemon.addr).await);
        let request = put_request("app/db", &[("v", "x")], Some(0));
        kv.put(with_token(request, &token))
            .await
            .unwrap_err()
            .code()
    });
    assert_eq!(code, tonic::Code::FailedPrecondition);
}

#[test]
fn a_thousand_versions_keep_the_last_ten() {
    let dir = tempdir();
    let (
        daemon,
        Init {
            root_token: token, ..
        },
    ) = unsealed(dir.path(), "kv {\n  max_versions = 10\n}\n");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut kv = KvClient::new(channel(&daemon.addr).await);
        for n in 1..=1000u64 {
            let request = put_request("app/many", &[("n", &n.to_string())], None);
            let written = kv.put(with_token(request, &token)).await.unwrap();
            assert_eq!(written.into_inner().version, n);
        }
        let meta = kv
            .metadata(with_token(
                MetadataRequest {
                    path: "app/many".into(),
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (meta.current_version, meta.oldest_version, meta.max_versions),
            (1000, 991, 10)
        );
        let kept: Vec<u64> = meta.versions.iter().map(|v| v.version).collect();
        assert_eq!(kept, (991..=1000).collect::<Vec<_>>());
        let gone = kv
            .get(with_token(
                GetRequest {
                    path: "app/many".into(),
                    version: 990,
                },
                &token,
            ))
            .await
            .unwrap_err();
        assert_eq!(gone.code(), tonic::Code::NotFound);
        assert_eq!(
            gone.message(),
            "kv path \"app/many\" has no version 990 (versions kept: 991 to 1000)"
        );
    });

    // The CLI shows the same.
    let meta = metadata(&daemon, "app/many");
    assert_eq!(meta["current_version"], 1000);
    assert_eq!(meta["oldest_version"], 991);
    assert_eq!(meta["max_versions"], 10);
    let versions: Vec<&String> = meta["versions"].as_object().unwrap().keys().collect();
    assert_eq!(versions.len(), 10, "{meta}");
    assert!(
        versions
            .iter()
            .all(|v| (991..=1000).contains(&v.parse::<u64>().unwrap())),
        "{meta}"
    );
    assert_eq!(get(&daemon, "app/many", 991)["data"]["n"], "991");
    let current = get(&daemon, "app/many", 0);
    assert_eq!(current["data"]["n"], "1000");
    assert_eq!(current["metadata"]["version"], 1000);
    daemon
        .cli()
        .run(&["kv", "get", "--version", "1", "app/many"])
        .code(1)
        .error_says("kv path \"app/many\" has no version 1 (versions kept: 991 to 1000)");
}

#[test]
fn delete_undelete_and_destroy_round_trip_through_the_cli() {
    let dir = tempdir();
    let (daemon, _) = unsealed(dir.path(), "");
    for v in 1..=3 {
        daemon
            .cli()
            .run(&["kv", "put", "app/x", &format!("v={v}")])
            .ok();
    }
    let kv = |args: &[&str]| {
        let mut full = vec!["kv"];
        full.extend_from_slice(args);
        daemon.cli().run(&full)
    };

    // Soft delete of the current version; older ones still read.
    let out = kv(&["delete", "app/x"]).ok();
    assert!(out.stdout.contains("app/x"), "{}", out.stdout);
    kv(&["get", "app/x"])
        .code(1)
        .error_says("version 3 of kv path \"app/x\" is deleted; ");
    assert_eq!(get(&daemon, "app/x", 2)["data"]["v"], "2");
    let meta = metadata(&daemon, "app/x");
    assert_ne!(meta["versions"]["3"]["deletion_time"], "", "{meta}");
    assert_eq!(meta["versions"]["2"]["deletion_time"], "", "{meta}");
    assert_eq!(meta["current_version"], 3);

    kv(&["undelete", "--versions", "3", "app/x"]).ok();
    let back = get(&daemon, "app/x", 0);
    assert_eq!(
        (&back["data"], &back["metadata"]["version"]),
        (&json!({"v": "3"}), &json!(3))
    );

    // Several versions at once.
    kv(&["delete", "--versions", "1,2", "app/x"]).ok();
    for v in ["1", "2"] {
        kv(&["get", "--version", v, "app/x"])
            .code(1)
            .error_says(&format!("version {v} of kv path \"app/x\" is deleted"));
    }
    kv(&["undelete", "--versions", "1", "app/x"]).ok();
    assert_eq!(get(&daemon, "app/x", 1)["data"]["v"], "1");

    // Destroyed is for good: undelete does not bring it back.
    kv(&["destroy", "--versions", "2", "app/x"]).ok();
    kv(&["get", "--version", "2", "app/x"])
        .code(1)
        .error_says("version 2 of kv path \"app/x\" was destroyed");
    kv(&["undelete", "--versions", "2", "app/x"]).ok();
    kv(&["get", "--version", "2", "app/x"])
        .code(1)
        .error_says("version 2 of kv path \"app/x\" was destroyed");
    let meta = metadata(&daemon, "app/x");
    assert_eq!(meta["versions"]["2"]["destroyed"], true, "{meta}");
    assert_eq!(meta["versions"]["1"]["destroyed"], false, "{meta}");
    assert_eq!(get(&daemon, "app/x", 0)["data"]["v"], "3");

    // Versions that do not exist, and the flags undelete and destroy need.
    kv(&["destroy", "--versions", "7", "app/x"])
        .code(1)
        .error_says("kv path \"app/x\" has no version 7 (versions kept: 1 to 3)");
    kv(&["undelete", "app/x"]).code(64);
    kv(&["destroy", "app/x"]).code(64);

    // A new write after deletes continues the numbering.
    let out = kv(&["put", "app/x", "v=4"]).ok();
    assert!(out.stdout.contains("(version 4)"), "{}", out.stdout);

    // Metadata delete removes every version.
    kv(&["metadata", "delete", "app/x"]).ok();
    kv(&["get", "app/x"])
        .code(1)
        .error_says("no secret at kv path \"app/x\"");
    kv(&["metadata", "get", "app/x"])
        .code(1)
        .error_says("no secret at kv path \"app/x\"");
    let listed = kv(&["list", "app/", "--format", "json"]).ok().json();
    assert_eq!(listed, json!([]));
    let out = kv(&["put", "app/x", "v=new"]).ok();
    assert!(out.stdout.contains("(version 1)"), "{}", out.stdout);
}

#[test]
fn versions_survive_a_restart_a_keyring_rotation_and_a_rekey() {
    let dir = tempdir();
    let (mut daemon, init) = unsealed(dir.path(), "");
    daemon.cli().run(&["kv", "put", "app/db", "v=1"]).ok();
    daemon.cli().run(&["kv", "put", "app/db", "v=2"]).ok();
    daemon.cli().run(&["kv", "delete", "app/db"]).ok();
    let expect = |daemon: &Daemon, current: u64| {
        assert_eq!(get(daemon, "app/db", 1)["data"]["v"], "1");
        daemon
            .cli()
            .run(&["kv", "get", "--version", "2", "app/db"])
            .code(1)
            .error_says("version 2 of kv path \"app/db\" is deleted");
        for v in 3..=current {
            assert_eq!(get(daemon, "app/db", v)["data"]["v"], v.to_string());
        }
        let meta = metadata(daemon, "app/db");
        assert_eq!(meta["current_version"], current, "{meta}");
        assert_eq!(meta["oldest_version"], 1, "{meta}");
    };

    daemon.restart();
    unseal(&daemon, &[&init.keys_hex[1], &init.keys_hex[2]]);
    expect(&daemon, 2);

    let rotated = daemon
        .cli()
        .run(&["rotate", "--format", "json"])
        .ok()
        .json();
    assert_eq!(rotated["term"], 2);
    daemon.cli().run(&["kv", "put", "app/db", "v=3"]).ok();
    expect(&daemon, 3);

    let (nonce, _) = start(
        &daemon,
        "rekey",
        &["--key-shares", "3", "--key-threshold", "2"],
    );
    let done = enter(
        &daemon,
        "rekey",
        &nonce,
        &[&init.keys_hex[0], &init.keys_hex[2]],
    );
    assert_eq!(done["complete"], true, "{done}");
    let new = crate::support::cli::strings(&done["keys"]);
    daemon.cli().run(&["kv", "put", "app/db", "v=4"]).ok();
    expect(&daemon, 4);

    daemon.restart();
    daemon
        .cli()
        .run(&["unseal", &init.keys_hex[0]])
        .code(1)
        .error_says("never issued");
    unseal(&daemon, &[&new[2], &new[0]]);
    expect(&daemon, 4);
}

#[test]
fn a_value_over_max_value_size_is_refused_naming_the_field() {
    let dir = tempdir();
    let (
        daemon,
        Init {
            root_token: token, ..
        },
    ) = unsealed(dir.path(), "kv {\n  max_value_size = 64\n}\n");
    // {"edge":"<40>","small":"ok"} is 64 bytes: the whole document at the limit.
    let sixteen = "x".repeat(40);
    let seventeen = "x".repeat(65);
    daemon
        .cli()
        .run(&["kv", "put", "app/x", "small=ok", &format!("edge={sixteen}")])
        .ok();
    daemon
        .cli()
        .run(&[
            "kv",
            "put",
            "app/x",
            "small=ok",
            &format!("big={seventeen}"),
        ])
        .code(1)
        .error_says(
            "field \"big\" of kv path \"app/x\" is larger than the 64 byte limit (kv { max_value_size })",
        );
    // Fields each under the limit, the document over it.
    daemon
        .cli()
        .run(&["kv", "put", "app/x", &format!("a={sixteen}"), &format!("b={sixteen}")])
        .code(1)
        .error_says(
            "the secret for kv path \"app/x\" is 95 bytes as JSON, larger than the 64 byte limit (kv { max_value_size })",
        );
    // From a file, too.
    let file = dir.path().join("cert.pem");
    std::fs::write(&file, "-----BEGIN CERTIFICATE-----\n".repeat(3)).unwrap();
    daemon
        .cli()
        .run(&["kv", "put", "app/y", &format!("cert=@{}", file.display())])
        .code(1)
        .error_says("field \"cert\" of kv path \"app/y\" is larger than the 64 byte limit");
    // Nothing was written by the refusals.
    let meta = metadata(&daemon, "app/x");
    assert_eq!(meta["current_version"], 1);
    assert_eq!(
        get(&daemon, "app/x", 0)["data"],
        json!({"small": "ok", "edge": sixteen})
    );
    daemon
        .cli()
        .run(&["kv", "get", "app/y"])
        .code(1)
        .error_says("no secret at kv path \"app/y\"");

    let code = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut kv = KvClient::new(channel(&daemon.addr).await);
        let request = put_request("app/x", &[("big", &seventeen)], None);
        kv.put(with_token(request, &token))
            .await
            .unwrap_err()
            .code()
    });
    assert_eq!(code, tonic::Code::InvalidArgument);
}

#[test]
fn concurrent_writers_with_the_same_cas_have_exactly_one_winner() {
    let dir = tempdir();
    let (
        daemon,
        Init {
            root_token: token, ..
        },
    ) = unsealed(dir.path(), "");
    daemon.cli().run(&["kv", "put", "app/db", "v=0"]).ok();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let outcomes = runtime.block_on(async {
        let mut writers = Vec::new();
        for writer in 0..8 {
            let channel = crate::support::grpc::channel(&daemon.addr).await;
            let token = token.clone();
            writers.push(tokio::spawn(async move {
                let put = PutRequest {
                    path: "app/db".into(),
                    data: [("v".to_string(), format!("writer {writer}"))].into(),
                    cas: Some(1),
                    data_json: String::new(),
                };
                KvClient::new(channel)
                    .put(crate::support::grpc::with_token(put, &token))
                    .await
            }));
        }
        let mut outcomes = Vec::new();
        for writer in writers {
            outcomes.push(writer.await.unwrap());
        }
        outcomes
    });
    let won: Vec<_> = outcomes.iter().filter(|o| o.is_ok()).collect();
    assert_eq!(won.len(), 1, "{outcomes:?}");
    assert_eq!(won[0].as_ref().unwrap().get_ref().version, 2);
    for lost in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert_eq!(lost.code(), tonic::Code::FailedPrecondition);
        assert!(
            lost.message().contains("expected version 1")
                && lost.message().contains("current version is 2"),
            "{}",
            lost.message()
        );
    }
    assert_eq!(get(&daemon, "app/db", 0)["metadata"]["version"], 2);
}
