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
