//! Golden vectors: a store written by strongroom's first storage format
//! (tests/golden/v1: the redb data directory, and the root-key, keyring and
//! KV blobs exported from it, with the shares and token that opened it). These
//! must keep opening, so the on-disk format can never change silently.

use std::path::{Path, PathBuf};

use strongroom::barrier::{self, entry};
use strongroom::lifecycle::SealConfig;
use strongroom::seal::shamir;
use strongroom::secret::{SecretBytes, SecretKey};

use crate::support::daemon::{Daemon, tempdir};

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
    assert_eq!(config.format_version, 1);
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
    let daemon = Daemon::start(dir.path(), &crate::support::daemon::config(dir.path(), ""));

    let status = crate::support::cli::status(&daemon);
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
    assert_eq!(secret["data"]["data"]["password"], "vector-v1");
}

/// The awskms vectors (tests/golden/awskms-v1): envelopes of the root key and
/// recovery key made by a real KMS (moto), the keyring, the seal config, and
/// what KMS answered to each Decrypt of a wrapped data key. A recorded KMS
/// replays those answers, so the envelope format is checked without a KMS.
mod awskms {
    use std::sync::{Arc, Mutex};

    use serde_json::{Value, json};
    use strongroom::barrier;
    use strongroom::lifecycle::SealConfig;
    use strongroom::seal::envelope::{Envelope, Purpose};
    use strongroom::seal::kms::{
        EncryptionContext, KeyInfo, Kms, KmsError, KmsErrorKind, Unwrapped, Wrapped,
    };
    use strongroom::seal::shamir;
    use strongroom::secret::SecretBytes;

    fn dir() -> std::path::PathBuf {
        super::golden().parent().unwrap().join("awskms-v1")
    }

    fn read(name: &str) -> Vec<u8> {
        std::fs::read(dir().join(name)).unwrap()
    }

    /// Answers Decrypt from the recorded KMS answers; refuses anything else.
    struct RecordedKms(Vec<Value>);

    #[async_trait::async_trait]
    impl Kms for RecordedKms {
        fn key_id(&self) -> &str {
            "alias/strongroom-golden"
        }
        fn endpoint(&self) -> String {
            String::new()
        }
        async fn encrypt(&self, _: &[u8], _: &EncryptionContext) -> Result<Wrapped, KmsError> {
            Err(KmsError::new(
                KmsErrorKind::Denied,
                "recorded KMS: no Encrypt",
            ))
        }
        async fn decrypt(
            &self,
            ciphertext: &[u8],
            context: &EncryptionContext,
            _: &str,
        ) -> Result<Unwrapped, KmsError> {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::STANDARD.encode(ciphertext);
            let answer = self
                .0
                .iter()
                .find(|a| a["ciphertext"] == b64.as_str())
                .ok_or_else(|| {
                    KmsError::new(KmsErrorKind::Rejected, "not a recorded ciphertext")
                })?;
            if answer["context"]
                != json!({"purpose": context.purpose, "cluster_id": context.cluster_id})
            {
                return Err(KmsError::new(
                    KmsErrorKind::Rejected,
                    "InvalidCiphertextException",
                ));
            }
            Ok(Unwrapped {
                plaintext: SecretBytes::new(
                    hex::decode(answer["plaintext_hex"].as_str().unwrap()).unwrap(),
                ),
                key_arn: answer["key_arn"].as_str().unwrap().to_string(),
            })
        }
        async fn describe_key(&self, _: &str) -> Result<KeyInfo, KmsError> {
            Err(KmsError::new(
                KmsErrorKind::Denied,
                "recorded KMS: no DescribeKey",
            ))
        }
    }

    #[tokio::test]
    async fn the_awskms_v1_envelopes_open() {
        let answers: Vec<Value> = serde_json::from_slice(&read("kms-decrypts.json")).unwrap();
        let kms = RecordedKms(answers);
        let config = SealConfig::decode(&read("seal-config.json")).unwrap();
        assert_eq!(config.format_version, 2);
        assert_eq!(config.seal_type, "awskms");
        assert_eq!((config.secret_shares, config.secret_threshold), (3, 2));
        assert_eq!(config.cluster_id, "adf92d96-581a-498e-b7dd-0b0049651c3b");

        // What the envelopes hold is fixed: keys.json records both keys, as
        // worked out from docs/FORMATS.md (AES-256-GCM under the recorded
        // data key) without strongroom's code.
        let keys: Value = serde_json::from_slice(&read("keys.json")).unwrap();
        let arn = "arn:aws:kms:us-east-1:123456789012:key/cf005ae2-b372-4df6-a9b0-3e634fc58643";
        for blob in ["root-key.bin", "recovery-key.bin"] {
            assert_eq!(read(blob)[0], strongroom::seal::envelope::VERSION, "{blob}");
        }
        assert_eq!(strongroom::seal::envelope::VERSION, 1);

        let root = Envelope::decode(Purpose::RootKey, &read("root-key.bin")).unwrap();
        assert_eq!(root.key_arn, arn);
        let root_key = root
            .open(&kms, Purpose::RootKey, &config.cluster_id)
            .await
            .unwrap();
        assert_eq!(
            hex::encode(root_key.expose()),
            keys["root_key_hex"].as_str().unwrap()
        );
        let keyring = barrier::open_keyring(&root_key, &read("keyring.bin")).unwrap();
        assert_eq!(
            keyring
                .installed()
                .map(|(term, _)| term)
                .collect::<Vec<_>>(),
            [1]
        );

        let recovery = Envelope::decode(Purpose::RecoveryKey, &read("recovery-key.bin")).unwrap();
        assert_eq!(recovery.key_arn, arn);
        let recovery_key = recovery
            .open(&kms, Purpose::RecoveryKey, &config.cluster_id)
            .await
            .unwrap();
        assert_eq!(
            hex::encode(recovery_key.expose()),
            keys["recovery_key_hex"].as_str().unwrap()
        );
        let shares: Vec<SecretBytes> = [0, 2]
            .iter()
            .map(|&i| {
                SecretBytes::new(
                    hex::decode(keys["recovery_keys_hex"][i].as_str().unwrap()).unwrap(),
                )
            })
            .collect();
        for share in &shares {
            assert!(config.share_check.is_issued(share.expose()));
        }
        assert_eq!(
            shamir::combine(&shares).unwrap().expose(),
            recovery_key.expose()
        );

        // The purposes are bound: a root-key blob does not pass as a recovery key.
        assert!(
            Envelope::decode(Purpose::RecoveryKey, &read("root-key.bin"))
                .unwrap()
                .open(&kms, Purpose::RecoveryKey, &config.cluster_id)
                .await
                .is_err()
        );
    }

    /// Records every Decrypt answer of a real KMS.
    struct Recorder {
        inner: Arc<dyn Kms>,
        log: Mutex<Vec<Value>>,
    }

    #[async_trait::async_trait]
    impl Kms for Recorder {
        fn key_id(&self) -> &str {
            self.inner.key_id()
        }
        fn endpoint(&self) -> String {
            self.inner.endpoint()
        }
        async fn encrypt(&self, p: &[u8], c: &EncryptionContext) -> Result<Wrapped, KmsError> {
            self.inner.encrypt(p, c).await
        }
        async fn decrypt(
            &self,
            ciphertext: &[u8],
            context: &EncryptionContext,
            arn: &str,
        ) -> Result<Unwrapped, KmsError> {
            use base64::Engine;
            let answer = self.inner.decrypt(ciphertext, context, arn).await?;
            self.log.lock().unwrap().push(json!({
                "ciphertext": base64::engine::general_purpose::STANDARD.encode(ciphertext),
                "context": {"purpose": context.purpose, "cluster_id": context.cluster_id},
                "plaintext_hex": hex::encode(answer.plaintext.expose()),
                "key_arn": answer.key_arn,
            }));
            Ok(answer)
        }
        async fn describe_key(&self, key_id: &str) -> Result<KeyInfo, KmsError> {
            self.inner.describe_key(key_id).await
        }
    }

    /// Writes tests/golden/awskms-v1 from a real init against moto. Run by
    /// hand, once per new format: `cargo test --test integration regenerate_awskms_golden -- --ignored`.
    #[tokio::test]
    #[ignore = "writes the golden vectors; run by hand"]
    async fn regenerate_awskms_golden() {
        use strongroom::config;
        use strongroom::lifecycle::{InitParams, Lifecycle};
        use strongroom::seal::Seal;
        use strongroom::seal::awskms::AwsKms;
        use strongroom::storage::{Backend, InmemBackend};

        let moto = strongroom_test_support::kms::Moto::start();
        let arn = moto.create_key();
        let hcl = format!(
            "storage \"inmem\" {{}}\nlistener \"tcp\" {{ address = \"127.0.0.1:0\" }}\nseal \"awskms\" {{\n  region = \"us-east-1\"\n  kms_key_id = \"{arn}\"\n  endpoint = \"http://{}\"\n  access_key = \"test\"\n  secret_key = \"test\"\n}}\n",
            moto.addr
        );
        let settings = config::parse(&hcl, std::path::Path::new("golden.hcl"))
            .unwrap()
            .seal
            .unwrap();
        let recorder = Arc::new(Recorder {
            inner: Arc::new(AwsKms::new(settings)),
            log: Mutex::new(Vec::new()),
        });
        let storage: Arc<dyn Backend> = Arc::new(InmemBackend::new());
        let lifecycle = Lifecycle::open(
            Arc::clone(&storage),
            Seal::AwsKms(recorder.clone()),
            strongroom::lifecycle::Options {
                cluster_name: Some("golden".into()),
                ..Default::default()
            },
            Vec::new(),
        )
        .await
        .unwrap();
        let init = lifecycle
            .init_and_confirm(InitParams::recovery(3, 2))
            .await
            .unwrap();
        let config =
            SealConfig::decode(&storage.get("core/seal-config").await.unwrap().unwrap()).unwrap();
        let recovery = storage.get("core/recovery-key").await.unwrap().unwrap();
        let recovery_key = Envelope::decode(Purpose::RecoveryKey, &recovery)
            .unwrap()
            .open(recorder.as_ref(), Purpose::RecoveryKey, &config.cluster_id)
            .await
            .unwrap();
        let root = storage.get("core/root-key").await.unwrap().unwrap();
        let root_key = Envelope::decode(Purpose::RootKey, &root)
            .unwrap()
            .open(recorder.as_ref(), Purpose::RootKey, &config.cluster_id)
            .await
            .unwrap();

        let out = dir();
        std::fs::create_dir_all(&out).unwrap();
        for (name, path) in [
            ("seal-config.json", "core/seal-config"),
            ("root-key.bin", "core/root-key"),
            ("recovery-key.bin", "core/recovery-key"),
            ("keyring.bin", "core/keyring"),
        ] {
            std::fs::write(out.join(name), storage.get(path).await.unwrap().unwrap()).unwrap();
        }
        let log = recorder.log.lock().unwrap().clone();
        std::fs::write(
            out.join("kms-decrypts.json"),
            serde_json::to_vec_pretty(&log).unwrap(),
        )
        .unwrap();
        // The keys' plaintexts: check them against docs/FORMATS.md by hand
        // (decrypt each envelope with the recorded data key) before committing.
        let keys = json!({
            "recovery_keys_hex": init.shares.iter().map(|s| hex::encode(s.expose())).collect::<Vec<_>>(),
            "root_key_hex": hex::encode(root_key.expose()),
            "recovery_key_hex": hex::encode(recovery_key.expose()),
        });
        std::fs::write(
            out.join("keys.json"),
            serde_json::to_vec_pretty(&keys).unwrap(),
        )
        .unwrap();
    }
}

/// A store whose policies were written on strongroom's own paths
/// (tests/golden/policies-v1: `kv/…`, `keys/…`, `sys/policy/…`,
/// `sys/kv/config` and the capabilities `encrypt`, `decrypt`, `datakey`,
/// `rotate`; the texts in `policies/`, written by the build before Vault's
/// paths). Its first unseal rewrites them to Vault's paths, once; they grant
/// what they granted.
mod policies_v1 {
    use serde_json::{Value, json};

    use crate::support::daemon::{Daemon, config, tempdir};
    use crate::support::vault::request;

    fn dir() -> std::path::PathBuf {
        super::golden().parent().unwrap().join("policies-v1")
    }

    fn keys() -> Value {
        serde_json::from_slice(&std::fs::read(dir().join("keys.json")).unwrap()).unwrap()
    }

    fn unseal(daemon: &Daemon) {
        for i in [0, 2] {
            let share = keys()["unseal_keys_hex"][i].as_str().unwrap().to_string();
            daemon.cli().run(&["unseal", &share]).ok();
        }
    }

    fn policy_text(daemon: &Daemon, root: &str, name: &str) -> String {
        let answer = request(
            &daemon.addr,
            "GET",
            &format!("sys/policies/acl/{name}"),
            Some(root),
            None,
        );
        assert_eq!(answer.status, 200, "{name}: {:?}", answer.body);
        answer.body["data"]["policy"].as_str().unwrap().to_string()
    }

    fn token_with(daemon: &Daemon, root: &str, policy: &str) -> String {
        let answer = request(
            &daemon.addr,
            "POST",
            "auth/token/create",
            Some(root),
            Some(&json!({"policies": [policy]})),
        );
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        answer.body["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn the_policies_v1_store_rewrites_its_policies_to_vaults_paths_once() {
        let tmp = tempdir();
        let data = tmp.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::copy(
            dir().join("data/strongroom.redb"),
            data.join("strongroom.redb"),
        )
        .unwrap();
        let mut daemon = Daemon::start(tmp.path(), &config(tmp.path(), ""));
        unseal(&daemon);
        let root = keys()["root_token"].as_str().unwrap().to_string();

        let texts: Vec<String> = ["app", "writer", "admin"]
            .iter()
            .map(|name| policy_text(&daemon, &root, name))
            .collect();
        for text in &texts {
            assert!(text.starts_with("# Rewritten"), "{text}");
            for old in ["\"kv/", "\"keys/", "sys/policy/", "sys/kv/", "encrypt\""] {
                assert!(!text.contains(old), "{old} in {text}");
            }
        }
        assert!(
            texts[0].contains("path \"secret/data/app/*\""),
            "{}",
            texts[0]
        );
        assert!(
            texts[0].contains("path \"transit/encrypt/orders\""),
            "{}",
            texts[0]
        );

        let (addr, app) = (&daemon.addr.clone(), token_with(&daemon, &root, "app"));
        let call = |method: &str, path: &str, token: &str, body: Option<Value>| {
            request(addr, method, path, Some(token), body.as_ref()).status
        };
        // app: read and list its secrets, not the private one, nor write;
        // encrypt and decrypt with orders, not read the key.
        let read = request(addr, "GET", "secret/data/app/db", Some(&app), None);
        assert_eq!(read.status, 200, "{:?}", read.body);
        assert_eq!(read.body["data"]["data"]["password"], "vector-paths");
        assert_eq!(call("LIST", "secret/metadata/app", &app, None), 200);
        assert_eq!(call("GET", "secret/metadata/app/db", &app, None), 200);
        assert_eq!(call("GET", "secret/data/app/private", &app, None), 403);
        let write = Some(json!({"data": {"x": "y"}}));
        assert_eq!(call("POST", "secret/data/app/db", &app, write.clone()), 403);
        let old_ciphertext = std::fs::read_to_string(dir().join("orders-ciphertext.txt")).unwrap();
        let decrypted = request(
            addr,
            "POST",
            "transit/decrypt/orders",
            Some(&app),
            Some(&json!({"ciphertext": old_ciphertext.trim()})),
        );
        assert_eq!(decrypted.status, 200, "{:?}", decrypted.body);
        assert_eq!(decrypted.body["data"]["plaintext"], "b3JkZXIgNjY=");
        let plaintext = Some(json!({"plaintext": "aGk="}));
        assert_eq!(
            call("POST", "transit/encrypt/orders", &app, plaintext.clone()),
            200
        );
        assert_eq!(call("GET", "transit/keys/orders", &app, None), 403);

        // writer: create, update, delete and undelete its secrets, read the
        // kv config; not read secrets, nor destroy (no sudo).
        let writer = token_with(&daemon, &root, "writer");
        assert_eq!(
            call("POST", "secret/data/app/new", &writer, write.clone()),
            200
        );
        assert_eq!(
            call("POST", "secret/data/app/new", &writer, write.clone()),
            200
        );
        assert_eq!(call("GET", "secret/data/app/new", &writer, None), 403);
        assert_eq!(call("DELETE", "secret/data/app/new", &writer, None), 204);
        let versions = Some(json!({"versions": [1]}));
        assert_eq!(
            call("POST", "secret/delete/app/new", &writer, versions.clone()),
            204
        );
        assert_eq!(
            call("POST", "secret/undelete/app/new", &writer, versions.clone()),
            204
        );
        assert_eq!(
            call("POST", "secret/destroy/app/new", &writer, versions.clone()),
            403
        );
        assert_eq!(call("GET", "secret/config", &writer, None), 200);
        assert_eq!(
            call(
                "POST",
                "secret/config",
                &writer,
                Some(json!({"max_versions": 3}))
            ),
            403
        );

        // admin: keys' create, read, rotate, config and data keys, not
        // encryption; policies read and listed; destroy with delete and sudo.
        let admin = token_with(&daemon, &root, "admin");
        assert_eq!(call("GET", "transit/keys/orders", &admin, None), 200);
        assert_eq!(call("LIST", "transit/keys", &admin, None), 200);
        assert_eq!(
            call("POST", "transit/keys/orders/rotate", &admin, None),
            200
        );
        let config_body = Some(json!({"min_decryption_version": 1}));
        assert_eq!(
            call("POST", "transit/keys/orders/config", &admin, config_body),
            200
        );
        assert_eq!(
            call("POST", "transit/datakey/plaintext/orders", &admin, None),
            200
        );
        assert_eq!(
            call("POST", "transit/datakey/wrapped/orders", &admin, None),
            200
        );
        assert_eq!(call("POST", "transit/keys/fresh", &admin, None), 200);
        assert_eq!(
            call("POST", "transit/encrypt/orders", &admin, plaintext),
            403
        );
        assert_eq!(call("LIST", "sys/policies/acl", &admin, None), 200);
        assert_eq!(call("GET", "sys/policies/acl/app", &admin, None), 200);
        assert_eq!(
            call("POST", "secret/destroy/app/new", &admin, versions),
            204
        );
        assert_eq!(call("DELETE", "secret/metadata/app/new", &admin, None), 204);
        assert_eq!(call("GET", "secret/data/app/db", &admin, None), 403);

        // A policy written now is on Vault's paths, whatever it names.
        let legacy = r#"path "sys/policy/*" { capabilities = ["read"] }"#;
        let put = request(
            addr,
            "POST",
            "sys/policies/acl/legacy",
            Some(&root),
            Some(&json!({"policy": legacy})),
        );
        assert_eq!(put.status, 204, "{:?}", put.body);

        // Never twice: after a restart the texts are as they were.
        daemon.restart();
        unseal(&daemon);
        for (name, text) in ["app", "writer", "admin"].iter().zip(&texts) {
            assert_eq!(&policy_text(&daemon, &root, name), text, "{name}");
        }
        assert_eq!(policy_text(&daemon, &root, "legacy"), legacy);
    }
}
