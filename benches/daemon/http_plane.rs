//! Vault's HTTP API on both peers, the same protocol and the same load
//! generator: `wrk` over HTTP/1.1 at 16 clients against `sys/seal-status`,
//! a kv v2 read, kv v2 writes to distinct keys, transit encrypt and
//! decrypt of 100 bytes, the server pinned to CPU 0 and `wrk` to CPU 1.
//! The kv and transit rows run again with a file audit device on both
//! peers (strongroom's `audit "file"`, OpenBao's declarative `audit
//! "file"`), since production runs with one and every strongroom call
//! waits for its audit line.

use std::path::PathBuf;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::data::{Prepared, VALUE, prepare_over_http};
use crate::grpc_load::Load;
use crate::peers::{Instance, Peer, answering};
use crate::process::pin_self;
use crate::results::Results;
use crate::wrk::{WrkTarget, wrk_load};
use crate::{CLIENT_CPU, LOAD_ROUNDS, SERVER_CPU};

/// The operations measured over HTTP.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum HttpOp {
    SealStatus,
    KvRead,
    KvWrite,
    Encrypt,
    Decrypt,
}

impl HttpOp {
    const ALL: [HttpOp; 5] = [
        HttpOp::SealStatus,
        HttpOp::KvRead,
        HttpOp::KvWrite,
        HttpOp::Encrypt,
        HttpOp::Decrypt,
    ];

    fn id(self, audit: bool) -> String {
        let op = match self {
            HttpOp::SealStatus => "seal_status",
            HttpOp::KvRead => "kv_read",
            HttpOp::KvWrite => "kv_write",
            HttpOp::Encrypt => "encrypt",
            HttpOp::Decrypt => "decrypt",
        };
        format!("http_{op}_16{}", if audit { "_audit" } else { "" })
    }

    fn name(self, audit: bool) -> String {
        let op = match self {
            HttpOp::SealStatus => "HTTP GET sys/seal-status",
            HttpOp::KvRead => "HTTP kv v2 read of a 100-byte value",
            HttpOp::KvWrite => "HTTP kv v2 write of a 100-byte value to distinct keys",
            HttpOp::Encrypt => "HTTP transit encrypt of 100 bytes",
            HttpOp::Decrypt => "HTTP transit decrypt of 100 bytes",
        };
        let audit = if audit { ", file audit device on" } else { "" };
        format!("{op}, 16 clients (wrk, both peers){audit}")
    }
}

/// The `wrk` target of `op`: the same path and script for both peers.
fn target(op: HttpOp, prepared: &Prepared, dir: &std::path::Path) -> WrkTarget {
    let token = &prepared.token;
    let post = |body: String| {
        format!(
            "wrk.method = \"POST\"\nwrk.headers[\"X-Vault-Token\"] = \"{token}\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = '{body}'\n"
        )
    };
    let (path, lua) = match op {
        HttpOp::SealStatus => ("/v1/sys/seal-status".to_string(), None),
        HttpOp::KvRead => (
            "/v1/secret/data/bench/read".to_string(),
            Some(format!("wrk.headers[\"X-Vault-Token\"] = \"{token}\"\n")),
        ),
        HttpOp::KvWrite => (
            "/v1/secret/data/bench/write".to_string(),
            Some(format!(
                "wrk.method = \"POST\"\nwrk.headers[\"X-Vault-Token\"] = \"{token}\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nlocal body = '{{\"data\":{{\"v\":\"{VALUE}\"}}}}'\nlocal n = 0\nrequest = function()\n  n = n + 1\n  return wrk.format(nil, \"/v1/secret/data/bench/write/\" .. n, nil, body)\nend\n"
            )),
        ),
        HttpOp::Encrypt => (
            "/v1/transit/encrypt/bench".to_string(),
            Some(post(format!(
                "{{\"plaintext\":\"{}\"}}",
                STANDARD.encode(VALUE)
            ))),
        ),
        HttpOp::Decrypt => (
            "/v1/transit/decrypt/bench".to_string(),
            Some(post(format!(
                "{{\"ciphertext\":\"{}\"}}",
                prepared.ciphertext
            ))),
        ),
    };
    let script = lua.map(|lua| {
        let script = dir.join(format!("{}.lua", op.id(false)));
        std::fs::write(&script, lua).expect("write a wrk script");
        script
    });
    WrkTarget { path, script }
}

/// Appends a file audit device to `instance`'s config.
fn with_audit(instance: &Instance) {
    let log = instance.dir.path().join("audit.log");
    let block = match instance.peer {
        Peer::Strongroom => format!("\naudit \"file\" {{\n  path = \"{}\"\n}}\n", log.display()),
        Peer::OpenBao => format!(
            "\naudit \"file\" \"file\" {{\n  options {{\n    file_path = \"{}\"\n  }}\n}}\n",
            log.display()
        ),
    };
    let mut config = std::fs::read_to_string(&instance.config).expect("read the config");
    config.push_str(&block);
    std::fs::write(&instance.config, config).expect("write the config");
}

/// Every [`HttpOp`] on both peers with `wrk`, audit off then on (the
/// audited rows leave out seal-status, which neither peer audits), over
/// [`LOAD_ROUNDS`] rounds with each peer alone on a fresh store.
pub(crate) fn http_plane(
    runtime: &tokio::runtime::Runtime,
    peers: &[(Peer, PathBuf)],
    seconds: u64,
    results: &mut Results,
) {
    for audit in [false, true] {
        let ops: Vec<HttpOp> = HttpOp::ALL
            .into_iter()
            .filter(|op| !audit || *op != HttpOp::SealStatus)
            .collect();
        let mut loads: Vec<(HttpOp, Peer, Load)> = Vec::new();
        for _ in 0..LOAD_ROUNDS {
            for (peer, binary) in peers {
                let instance = Instance::new(*peer, binary, None, false);
                if audit {
                    with_audit(&instance);
                }
                pin_self(Some(CLIENT_CPU));
                let proc = instance.spawn_on(Some(SERVER_CPU));
                runtime.block_on(answering(&instance, Instant::now()));
                let prepared = prepare_over_http(&instance, "secret");
                for op in &ops {
                    let target = target(*op, &prepared, instance.dir.path());
                    let load = wrk_load(&instance.addr(), 16, seconds, proc.pid(), &target);
                    loads.push((*op, *peer, load));
                }
                proc.stop();
            }
        }
        pin_self(None);
        for op in ops {
            let of: Vec<(Peer, Load)> = loads
                .iter()
                .filter(|(o, _, _)| *o == op)
                .map(|(_, p, l)| (*p, Load { ..*l }))
                .collect();
            results.load(&op.id(audit), &op.name(audit), &of);
        }
    }
}
