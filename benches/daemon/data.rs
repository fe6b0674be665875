//! The data plane side by side: KV read, KV write to distinct keys, encrypt
//! and decrypt of 100 bytes, at 16 clients (strongroom's Kv and Keys
//! services; OpenBao's kv-v2 and transit engines).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use strongroom::proto::{InitRequest, StatusRequest, UnsealRequest};
use tonic::transport::Endpoint;

use crate::grpc_load::{Load, NextRpc, Rpc, grpc_load, same};
use crate::peers::{Client, Http, Instance, Peer, answering, grpc_init};
use crate::process::{bounded, pin_self};
use crate::results::Results;
use crate::wrk::{WrkTarget, wrk_load};
use crate::{BOUND, CLIENT_CPU, LOAD_ROUNDS, SERVER_CPU};

/// The data-plane operations measured side by side.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataOp {
    KvRead,
    KvWrite,
    Encrypt,
    Decrypt,
}

impl DataOp {
    const ALL: [DataOp; 4] = [
        DataOp::KvRead,
        DataOp::KvWrite,
        DataOp::Encrypt,
        DataOp::Decrypt,
    ];

    pub(crate) fn id(self) -> &'static str {
        match self {
            DataOp::KvRead => "kv_read_16",
            DataOp::KvWrite => "kv_write_16",
            DataOp::Encrypt => "encrypt_16",
            DataOp::Decrypt => "decrypt_16",
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            DataOp::KvRead => "KV read of a 100-byte value, 16 clients (OpenBao kv-v2)",
            DataOp::KvWrite => {
                "KV write of a 100-byte value to distinct keys, 16 clients (OpenBao kv-v2)"
            }
            DataOp::Encrypt => "encrypt 100 bytes, 16 clients (OpenBao transit)",
            DataOp::Decrypt => "decrypt 100 bytes, 16 clients (OpenBao transit)",
        }
    }
}

/// The value both peers store and encrypt: 100 printable bytes.
pub(crate) const VALUE: &str = "v7Qe2LmX9pRt4KzW1nBc8YhJ3sDf6GaU0oIl5VxMqTe2RwNy7CkZ4bHj9PuLd1SgFa8Xi3OmEv6QnT0rKp5WzYc2BhJ7DlMa";

/// What the loads need from a prepared store.
pub(crate) struct Prepared {
    pub(crate) token: String,
    /// The one unseal key (init 1/1), for the other nodes of a cluster.
    pub(crate) unseal_key: String,
    pub(crate) ciphertext: String,
}

/// strongroom: init 1/1 and unseal, a key `bench`, the value at
/// `bench/read`, and one ciphertext of it.
pub(crate) async fn prepare_strongroom(instance: &Instance) -> Prepared {
    use strongroom::proto::{
        CreateKeyRequest, EncryptRequest, PutRequest, keys_client::KeysClient, kv_client::KvClient,
    };
    let (client, _) = answering(instance, Instant::now()).await;
    let Client::Grpc(mut sys) = client else {
        unreachable!("strongroom answers gRPC")
    };
    let init = grpc_init(
        &mut sys,
        InitRequest {
            key_shares: Some(1),
            key_threshold: Some(1),
            ..Default::default()
        },
    )
    .await;
    let unseal = UnsealRequest {
        key: init.keys[0].clone(),
        ..Default::default()
    };
    bounded("Unseal", sys.unseal(unseal)).await.expect("unseal");
    // With HA on, the node serves once it took the role.
    let deadline = Instant::now() + BOUND;
    loop {
        let status = bounded("Status", sys.status(StatusRequest {}))
            .await
            .expect("status")
            .into_inner();
        if !status.ha_enabled || status.is_self {
            break;
        }
        assert!(Instant::now() < deadline, "the node never became active");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let token = init.root_token.clone();
    fn with<T>(token: &str, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        request
    }
    let channel = Endpoint::from_shared(format!("http://{}", instance.addr()))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut keys = KeysClient::new(channel.clone());
    let mut kv = KvClient::new(channel);
    let create = CreateKeyRequest {
        name: "bench".into(),
    };
    bounded("CreateKey", keys.create_key(with(&token, create)))
        .await
        .expect("create key");
    let put = PutRequest {
        path: "bench/read".into(),
        data: [("v".to_string(), VALUE.to_string())].into(),
        cas: None,
        data_json: String::new(),
    };
    bounded("Put", kv.put(with(&token, put)))
        .await
        .expect("put");
    let encrypt = EncryptRequest {
        name: "bench".into(),
        plaintext: VALUE.as_bytes().to_vec(),
        context: Vec::new(),
    };
    let ciphertext = bounded("Encrypt", keys.encrypt(with(&token, encrypt)))
        .await
        .expect("encrypt")
        .into_inner()
        .ciphertext;
    Prepared {
        token,
        unseal_key: init.keys[0].clone(),
        ciphertext,
    }
}

/// OpenBao: init 1/1 and unseal, kv-v2 at `kvbench/`, transit at `transit/`
/// with a key `bench`, the value at `kvbench/bench/read`, one ciphertext.
pub(crate) fn prepare_openbao(instance: &Instance) -> Prepared {
    prepare_over_http(instance, "kvbench")
}

/// Over Vault's HTTP API, on either peer: init 1/1 and unseal; on OpenBao
/// kv v2 mounted at `kv_mount` and transit at `transit/` (strongroom has
/// kv v2 at `secret/` and transit); a transit key `bench`, the value at
/// `<kv_mount>/data/bench/read` and one ciphertext.
pub(crate) fn prepare_over_http(instance: &Instance, kv_mount: &str) -> Prepared {
    use base64::Engine;
    let mut http = Http::connect(&instance.addr()).expect("connect");
    let init = http
        .call(
            "PUT",
            "/v1/sys/init",
            Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
        )
        .expect("init");
    let key = init["keys"][0].as_str().expect("a key").to_string();
    let token = init["root_token"].as_str().expect("a token").to_string();
    http.call("PUT", "/v1/sys/unseal", Some(&json!({"key": key})))
        .expect("unseal");
    http.token = Some(token.clone());
    let deadline = Instant::now() + BOUND;
    // Retried: right after unseal OpenBao may still be becoming active, and
    // its kv v2 upgrades a new mount in the background (writes fail until then).
    let retry = |http: &mut Http, method: &str, path: &str, body: serde_json::Value| loop {
        match http.call(method, path, Some(&body)) {
            Ok(answer) => return answer,
            Err(e) => {
                assert!(Instant::now() < deadline, "{method} {path}: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    if instance.peer == Peer::OpenBao {
        let kv = json!({"type": "kv", "options": {"version": "2"}});
        retry(&mut http, "POST", &format!("/v1/sys/mounts/{kv_mount}"), kv);
        let transit = json!({"type": "transit"});
        retry(&mut http, "POST", "/v1/sys/mounts/transit", transit);
    }
    retry(&mut http, "POST", "/v1/transit/keys/bench", json!({}));
    let value = json!({"data": {"v": VALUE}});
    retry(
        &mut http,
        "POST",
        &format!("/v1/{kv_mount}/data/bench/read"),
        value,
    );
    let plaintext = base64::engine::general_purpose::STANDARD.encode(VALUE);
    let encrypted = retry(
        &mut http,
        "POST",
        "/v1/transit/encrypt/bench",
        json!({ "plaintext": plaintext }),
    );
    let ciphertext = encrypted["data"]["ciphertext"]
        .as_str()
        .expect("a ciphertext")
        .to_string();
    Prepared {
        token,
        unseal_key: key,
        ciphertext,
    }
}

/// strongroom's call for `op`.
pub(crate) fn strongroom_rpc(op: DataOp, prepared: &Prepared) -> NextRpc {
    use strongroom::proto::{DecryptRequest, EncryptRequest, GetRequest, PutRequest};
    let token = prepared.token.clone();
    match op {
        DataOp::KvRead => {
            let get = GetRequest {
                path: "bench/read".into(),
                version: 0,
            };
            same(Rpc::new(
                "http://127.0.0.1/strongroom.v1.Kv/Get",
                Some(&token),
                &get,
            ))
        }
        DataOp::KvWrite => std::sync::Arc::new(move |task, n| {
            let put = PutRequest {
                path: format!("bench/write/{task}/{n}"),
                data: [("v".to_string(), VALUE.to_string())].into(),
                cas: None,
                data_json: String::new(),
            };
            Rpc::new("http://127.0.0.1/strongroom.v1.Kv/Put", Some(&token), &put)
        }),
        DataOp::Encrypt => {
            let encrypt = EncryptRequest {
                name: "bench".into(),
                plaintext: VALUE.as_bytes().to_vec(),
                context: Vec::new(),
            };
            same(Rpc::new(
                "http://127.0.0.1/strongroom.v1.Keys/Encrypt",
                Some(&token),
                &encrypt,
            ))
        }
        DataOp::Decrypt => {
            let decrypt = DecryptRequest {
                name: "bench".into(),
                ciphertext: prepared.ciphertext.clone(),
                context: Vec::new(),
            };
            same(Rpc::new(
                "http://127.0.0.1/strongroom.v1.Keys/Decrypt",
                Some(&token),
                &decrypt,
            ))
        }
    }
}

/// OpenBao's `wrk` target for `op`, its Lua script written to `dir`.
pub(crate) fn openbao_target(op: DataOp, prepared: &Prepared, dir: &Path) -> WrkTarget {
    use base64::Engine;
    let token = &prepared.token;
    let (path, lua) = match op {
        DataOp::KvRead => (
            "/v1/kvbench/data/bench/read".to_string(),
            format!("wrk.headers[\"X-Vault-Token\"] = \"{token}\"\n"),
        ),
        DataOp::KvWrite => (
            "/v1/kvbench/data/bench/write".to_string(),
            format!(
                "wrk.method = \"POST\"\nwrk.headers[\"X-Vault-Token\"] = \"{token}\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nlocal body = '{{\"data\":{{\"v\":\"{VALUE}\"}}}}'\nlocal n = 0\nrequest = function()\n  n = n + 1\n  return wrk.format(nil, \"/v1/kvbench/data/bench/write/\" .. n, nil, body)\nend\n"
            ),
        ),
        DataOp::Encrypt => (
            "/v1/transit/encrypt/bench".to_string(),
            format!(
                "wrk.method = \"POST\"\nwrk.headers[\"X-Vault-Token\"] = \"{token}\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = '{{\"plaintext\":\"{}\"}}'\n",
                base64::engine::general_purpose::STANDARD.encode(VALUE)
            ),
        ),
        DataOp::Decrypt => (
            "/v1/transit/decrypt/bench".to_string(),
            format!(
                "wrk.method = \"POST\"\nwrk.headers[\"X-Vault-Token\"] = \"{token}\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = '{{\"ciphertext\":\"{}\"}}'\n",
                prepared.ciphertext
            ),
        ),
    };
    let script = dir.join(format!("{}.lua", op.id()));
    std::fs::write(&script, lua).expect("write a wrk script");
    WrkTarget {
        path,
        script: Some(script),
    }
}

/// KV read, KV write to distinct keys, encrypt and decrypt of 100 bytes at
/// 16 clients, server on CPU 0 and load on CPU 1, over [`LOAD_ROUNDS`]
/// rounds with each peer alone on a fresh store; audit off on both.
pub(crate) fn data_plane(
    runtime: &tokio::runtime::Runtime,
    peers: &[(Peer, PathBuf)],
    seconds: u64,
    wrk: bool,
    results: &mut Results,
) {
    let mut loads: Vec<(DataOp, Peer, Load)> = Vec::new();
    for _ in 0..LOAD_ROUNDS {
        for (peer, binary) in peers {
            if *peer == Peer::OpenBao && !wrk {
                continue;
            }
            let instance = Instance::new(*peer, binary, None, false);
            pin_self(Some(CLIENT_CPU));
            let proc = instance.spawn_on(Some(SERVER_CPU));
            let prepared = match peer {
                Peer::Strongroom => runtime.block_on(prepare_strongroom(&instance)),
                Peer::OpenBao => {
                    runtime.block_on(answering(&instance, Instant::now()));
                    prepare_openbao(&instance)
                }
            };
            for op in DataOp::ALL {
                let load = match peer {
                    Peer::Strongroom => runtime.block_on(grpc_load(
                        &instance,
                        false,
                        16,
                        seconds,
                        proc.pid(),
                        strongroom_rpc(op, &prepared),
                    )),
                    Peer::OpenBao => {
                        let target = openbao_target(op, &prepared, instance.dir.path());
                        wrk_load(&instance.addr(), 16, seconds, proc.pid(), &target)
                    }
                };
                loads.push((op, *peer, load));
            }
            proc.stop();
        }
    }
    pin_self(None);
    for op in DataOp::ALL {
        let of: Vec<(Peer, Load)> = loads
            .iter()
            .filter(|(o, _, _)| *o == op)
            .map(|(_, p, l)| (*p, Load { ..*l }))
            .collect();
        results.load(op.id(), op.name(), &of);
    }
}
