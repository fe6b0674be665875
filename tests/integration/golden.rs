//! Golden vectors: a store written by strongroom's first storage format
//! (tests/golden/v1: the redb data directory, and the root-key, keyring and
//! KV blobs exported from it, with the shares and token that opened it). These
//! must keep opening, so the on-disk format can never change silently.

use std::path::{Path, PathBuf};

use strongroom::barrier::{self, entry};
use strongroom::core::SealConfig;
use strongroom::seal::shamir;
use strongroom::secret::{SecretBytes, SecretKey};

use crate::harness::{Daemon, tempdir};

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/v1")
}

fn keys() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(golden().join("keys.json")).unwrap()).unwrap()
}

fn share(i: usize) -> String {
    keys()["unseal_keys_hex"][i].as_str().unwrap().to_string()
}

#[test]
fn the_v1_blobs_open_layer_by_layer() {
    let read = |name: &str| std::fs::read(golden().join(name)).unwrap();

    let config = SealConfig::decode(&read("seal-config.json")).unwrap();
    assert_eq!((config.secret_shares, config.secret_threshold), (3, 2));
    for i in 0..3 {
        assert!(
            config
                .share_check
                .is_issued(&hex::decode(share(i)).unwrap()),
            "share {i}"
        );
    }

    let shares: Vec<SecretBytes> = [0, 2]
        .iter()
        .map(|&i| SecretBytes::new(hex::decode(share(i)).unwrap()))
        .collect();
    let unseal_key = shamir::combine(&shares).unwrap();
    let root_key = entry::open(&unseal_key, "core/root-key", &read("root-key.bin")).unwrap();
    let root_key = SecretKey::from_slice(root_key.expose()).unwrap();
    let keyring = barrier::open_keyring(&root_key, &read("keyring.bin")).unwrap();

    let kv = read("kv-app-db.bin");
    let term = entry::term_of(&kv).unwrap();
    assert_eq!(term, 1);
    let plaintext = entry::open(keyring.key(term).unwrap(), "kv/app/db", &kv).unwrap();
    let secret: serde_json::Value = serde_json::from_slice(plaintext.expose()).unwrap();
    assert_eq!(
        secret,
        serde_json::json!({"password": "vector-v1", "user": "golden"})
    );
}

#[test]
fn the_v1_data_directory_unseals_and_reads_back() {
    let dir = tempdir();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::copy(
        golden().join("data/strongroom.redb"),
        data.join("strongroom.redb"),
    )
    .unwrap();
    let daemon = Daemon::start(dir.path(), &crate::harness::config(dir.path(), ""));

    let status = crate::harness::status(&daemon);
    assert_eq!(status["initialized"], true);
    assert_eq!(
        (status["t"].as_u64(), status["n"].as_u64()),
        (Some(2), Some(3))
    );
    assert_eq!(status["cluster_name"], "golden");
    daemon.cli().run(&["unseal", &share(1)]).ok();
    daemon.cli().run(&["unseal", &share(2)]).ok();
    let token = keys()["root_token"].as_str().unwrap().to_string();
    let secret = daemon
        .cli()
        .token(&token)
        .run(&["kv", "get", "app/db", "--format", "json"])
        .ok()
        .json();
    assert_eq!(secret["data"]["password"], "vector-v1");
}
