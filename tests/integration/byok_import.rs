//! The KMS calls of a key distribution (issue 17, `seal::import`) against
//! LocalStack's KMS, which imports key material and enforces key states as
//! AWS does: a key made for imported material waits for it, takes strongroom's
//! wrapped material, answers through its alias, and behaves as the tutorial
//! shows after a rotation, a disable and a scheduled deletion. The KMS side
//! is checked with plain KMS requests, as `aws kms encrypt` sends them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use strongroom::seal::awskms::AwsKms;
use strongroom::seal::kms::Kms;
use strongroom::secret::{SecretKey, random_uuid};
use strongroom_test_support::localstack::{LocalStack, localstack};

/// The seal's client, pointed at LocalStack (any credentials do).
fn client(ls: &LocalStack) -> AwsKms {
    let hcl = format!(
        "storage \"inmem\" {{}}\nlistener \"tcp\" {{ address = \"127.0.0.1:0\" }}\nseal \"awskms\" {{\n  region = \"us-east-1\"\n  kms_key_id = \"alias/unused\"\n  endpoint = \"{}\"\n  access_key = \"test\"\n  secret_key = \"test\"\n}}\n",
        ls.endpoint()
    );
    let settings = strongroom::config::parse(&hcl, std::path::Path::new("byok.hcl"))
        .unwrap()
        .seal
        .unwrap();
    AwsKms::new(settings)
}

/// Encrypt `plaintext` under `key` (id or alias): the ciphertext, or the
/// error's `__type`.
fn encrypt(ls: &LocalStack, key: &str, plaintext: &[u8]) -> Result<String, String> {
    let (status, body) = ls.call(
        "Encrypt",
        json!({"KeyId": key, "Plaintext": STANDARD.encode(plaintext)}),
    );
    answer(status, &body, "CiphertextBlob")
}

/// Decrypt `ciphertext` naming `key`: the plaintext, or the error's type.
fn decrypt(ls: &LocalStack, key: &str, ciphertext: &str) -> Result<Vec<u8>, String> {
    let (status, body) = ls.call(
        "Decrypt",
        json!({"KeyId": key, "CiphertextBlob": ciphertext}),
    );
    answer(status, &body, "Plaintext").map(|p| STANDARD.decode(p).unwrap())
}

fn answer(status: u16, body: &Value, field: &str) -> Result<String, String> {
    if status == 200 {
        Ok(body[field].as_str().unwrap().to_string())
    } else {
        Err(body["__type"].as_str().unwrap_or("?").to_string())
    }
}

fn key_state(ls: &LocalStack, key_id: &str) -> String {
    let (_, body) = ls.call("DescribeKey", json!({"KeyId": key_id}));
    body["KeyMetadata"]["KeyState"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_distributed_key_answers_through_its_alias_and_follows_its_states() {
    let ls = localstack();
    let kms = client(ls);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let distribution = random_uuid();
    let alias = format!("alias/strongroom-test-{distribution}");
    let (v1, v2) = (SecretKey::generate(), SecretKey::generate());

    // Version 1: a key waiting for its material, the import, the alias.
    let key1 = runtime
        .block_on(kms.create_external_key("strongroom test", &distribution))
        .unwrap();
    assert!(key1.arn.ends_with(&key1.key_id), "{}", key1.arn);
    assert_eq!(key_state(ls, &key1.key_id), "PendingImport");
    runtime
        .block_on(kms.import_material(&key1.key_id, &v1))
        .unwrap();
    assert_eq!(key_state(ls, &key1.key_id), "Enabled");
    assert_eq!(runtime.block_on(kms.alias_target(&alias)).unwrap(), None);
    runtime
        .block_on(kms.point_alias(&alias, &key1.key_id, false))
        .unwrap();
    let target = runtime.block_on(kms.alias_target(&alias)).unwrap().unwrap();
    assert_eq!(target.key_id.as_deref(), Some(key1.key_id.as_str()));
    let first = encrypt(ls, &alias, b"made under version 1").unwrap();
    assert_eq!(
        decrypt(ls, &alias, &first).unwrap(),
        b"made under version 1"
    );

    // An alias that exists is not taken over by CreateAlias: a sentence
    // naming the key and AWS's error code.
    let err = runtime
        .block_on(kms.point_alias(&alias, &key1.key_id, false))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("AlreadyExists") && err.contains(&key1.key_id),
        "{err}"
    );

    // Version 2 (a rotation): a new key with new material, the alias moved.
    let key2 = runtime
        .block_on(kms.create_external_key("strongroom test", &distribution))
        .unwrap();
    runtime
        .block_on(kms.import_material(&key2.key_id, &v2))
        .unwrap();
    runtime
        .block_on(kms.point_alias(&alias, &key2.key_id, true))
        .unwrap();
    let second = encrypt(ls, &alias, b"made under version 2").unwrap();
    assert_eq!(
        decrypt(ls, &key2.key_id, &second).unwrap(),
        b"made under version 2"
    );
    assert_eq!(
        decrypt(ls, &key2.key_id, &first).unwrap_err(),
        "IncorrectKeyException"
    );
    assert_eq!(
        decrypt(ls, &key1.key_id, &first).unwrap(),
        b"made under version 1"
    );

    // A crash between CreateKey and ImportKeyMaterial is found by its tag.
    let mut tagged = runtime
        .block_on(kms.keys_of_distribution(&distribution))
        .unwrap();
    tagged.sort();
    let mut made = vec![key1.key_id.clone(), key2.key_id.clone()];
    made.sort();
    assert_eq!(tagged, made);
    assert!(
        runtime
            .block_on(kms.keys_of_distribution(&random_uuid()))
            .unwrap()
            .is_empty()
    );

    // Below the minimum version: disabled, and enabled again.
    runtime
        .block_on(kms.set_enabled(&key1.key_id, false))
        .unwrap();
    assert_eq!(
        encrypt(ls, &key1.key_id, b"x").unwrap_err(),
        "DisabledException"
    );
    let described = runtime.block_on(kms.describe_key(&key1.key_id)).unwrap();
    assert_eq!(described.arn, key1.arn);
    runtime
        .block_on(kms.set_enabled(&key1.key_id, true))
        .unwrap();
    assert_eq!(
        decrypt(ls, &key1.key_id, &first).unwrap(),
        b"made under version 1"
    );

    // Removed: pending deletion (7 days), the alias gone.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for key in [&key1, &key2] {
        let deletion = runtime
            .block_on(kms.schedule_deletion(&key.key_id, 7))
            .unwrap();
        assert!((deletion - now - 7 * 86_400).abs() < 3_600, "{deletion}");
        assert_eq!(key_state(ls, &key.key_id), "PendingDeletion");
    }
    assert_eq!(
        encrypt(ls, &key2.key_id, b"x").unwrap_err(),
        "KMSInvalidStateException"
    );
    runtime.block_on(kms.delete_alias(&alias)).unwrap();
    assert_eq!(runtime.block_on(kms.alias_target(&alias)).unwrap(), None);
}

#[test]
fn material_for_an_unknown_key_is_refused_in_a_sentence() {
    let ls = localstack();
    let kms = client(ls);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let missing = random_uuid();
    let err = runtime
        .block_on(kms.import_material(&missing, &SecretKey::generate()))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&missing) && err.contains("not found"), "{err}");
    assert!(!err.contains('{'), "{err}");
}

/// What makes the import above a check of strongroom's wrapping: the
/// emulator unwraps the material with the private half of its wrapping key
/// and refuses bytes that do not unwrap.
#[test]
fn the_emulator_refuses_material_that_does_not_unwrap() {
    let ls = localstack();
    let (status, created) = ls.call(
        "CreateKey",
        json!({"Origin": "EXTERNAL", "KeyUsage": "ENCRYPT_DECRYPT"}),
    );
    assert_eq!(status, 200, "{created}");
    let key_id = created["KeyMetadata"]["KeyId"].as_str().unwrap();
    let (status, parameters) = ls.call(
        "GetParametersForImport",
        json!({"KeyId": key_id, "WrappingAlgorithm": "RSAES_OAEP_SHA_256", "WrappingKeySpec": "RSA_4096"}),
    );
    assert_eq!(status, 200, "{parameters}");
    let import = |material: Vec<u8>| {
        ls.call(
            "ImportKeyMaterial",
            json!({
                "KeyId": key_id,
                "ImportToken": parameters["ImportToken"],
                "EncryptedKeyMaterial": STANDARD.encode(material),
                "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE",
            }),
        )
    };
    let (status, refused) = import(vec![7u8; 512]);
    assert_eq!(status, 500, "{refused}");
    assert_eq!(key_state(ls, key_id), "PendingImport");
    // The same request with strongroom's wrap of real material is taken:
    // the refusal above was the unwrap's, not the request's.
    let public_key = STANDARD
        .decode(parameters["PublicKey"].as_str().unwrap())
        .unwrap();
    let wrapped =
        strongroom::seal::import::wrap::wrap_for_import(&public_key, &SecretKey::generate())
            .unwrap();
    let (status, taken) = import(wrapped);
    assert_eq!(status, 200, "{taken}");
    assert_eq!(key_state(ls, key_id), "Enabled");
}
