//! Vault Enterprise's Key Management engine at `keymgmt/` on the HTTP
//! surface (issue 17): the tutorial end to end with hvac, checked on the
//! KMS side with boto3 and the harness's own KMS requests against the
//! run's shared LocalStack; bad input refused with one sentence and
//! nothing changed on either side; capabilities; credentials that reach
//! the audit log only as HMACs.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use strongroom_test_support::localstack::localstack;

use crate::support::cli::{create_token, write_policy};
use crate::support::daemon::{Daemon, tempdir, unsealed};
use crate::support::vault::{Answer, bao, request};

/// A name no other test of the run uses (tests share the emulator, and
/// an alias is unique per region).
fn unique(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn send(daemon: &Daemon, token: &str, method: &str, path: &str, body: Option<Value>) -> Answer {
    request(&daemon.addr, method, path, Some(token), body.as_ref())
}

/// Asserts `answer` is `status` with one plain sentence containing `says`.
#[track_caller]
fn refused(answer: &Answer, status: u16, says: &str) {
    assert_eq!(answer.status, status, "{:?}", answer.body);
    let errors = answer.body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let sentence = errors[0].as_str().unwrap();
    assert!(sentence.contains(says), "{sentence}");
    assert!(
        !sentence.contains("{ ") && !sentence.contains("Error(") && !sentence.contains('\n'),
        "{sentence}"
    );
}

/// The provider body the tests register, pointed at the emulator.
fn provider_body() -> Value {
    json!({
        "provider": "awskms",
        "key_collection": "us-east-1",
        "endpoint": localstack().endpoint(),
        "credentials": {"access_key": "test", "secret_key": "test"},
    })
}

/// The ids of the emulator's KMS keys strongroom made for key `name`
/// (their description names it): ListKeys, then DescribeKey each.
fn kms_keys_made_for(name: &str) -> Vec<String> {
    let wanted = format!("strongroom keymgmt key {name} version ");
    let mut found = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let mut body = json!({"Limit": 1000});
        if let Some(m) = &marker {
            body["Marker"] = json!(m);
        }
        let (status, listed) = localstack().call("ListKeys", body);
        assert_eq!(status, 200, "{listed}");
        for key in listed["Keys"].as_array().unwrap() {
            let id = key["KeyId"].as_str().unwrap();
            let (_, described) = localstack().call("DescribeKey", json!({"KeyId": id}));
            let description = described["KeyMetadata"]["Description"]
                .as_str()
                .unwrap_or("");
            if description.starts_with(&wanted) {
                found.push(id.to_string());
            }
        }
        match listed["NextMarker"].as_str() {
            Some(next) if listed["Truncated"] == true => marker = Some(next.to_string()),
            _ => return found,
        }
    }
}

/// Runs tests/python/keymgmt_hvac.py; returns what it saw.
fn tutorial_with_hvac(
    daemon: &Daemon,
    token: &str,
    provider: &str,
    key: &str,
    secret: &str,
) -> Value {
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python"))
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/keymgmt_hvac.py"
        ))
        .args([
            daemon.addr.as_str(),
            token,
            &localstack().endpoint(),
            provider,
            key,
            secret,
        ])
        .output()
        .expect("run .venv/bin/python (scripts/test makes .venv)");
    assert!(
        out.status.success(),
        "keymgmt_hvac.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn keymgmt_tutorial_through_hvac_with_the_kms_side_checked() {
    let dir = tempdir();
    let audit_log = dir.path().join("audit.log");
    let (daemon, init) = unsealed(
        dir.path(),
        &format!("audit \"file\" {{ path = \"{}\" }}\n", audit_log.display()),
    );
    let root = init.root_token.as_str();
    let (provider, key) = (unique("aws"), unique("tutorial"));
    let secret = unique("srsecretkey");
    let seen = tutorial_with_hvac(&daemon, root, &provider, &key, &secret);

    // The provider: Vault's fields, never its credentials.
    assert_eq!(
        seen["provider"],
        json!({
            "name": provider,
            "provider": "awskms",
            "key_collection": "us-east-1",
            "endpoint": localstack().endpoint(),
            "static_credentials": true,
        })
    );
    assert_eq!(seen["providers"], json!([provider]));
    // The key, in Vault's shape.
    let made = &seen["key"];
    assert_eq!(made["name"], key.as_str());
    assert_eq!(made["type"], "aes256-gcm96");
    assert_eq!(made["latest_version"], 1);
    assert_eq!(made["min_enabled_version"], 0);
    assert_eq!(made["deletion_allowed"], false);
    let created = made["versions"]["1"]["creation_time"].as_str().unwrap();
    assert!(created.len() == 20 && created.ends_with('Z'), "{created}");
    assert_eq!(seen["keys"], json!([key]));

    // Distributed: 204, then Vault's read with strongroom's extras.
    assert_eq!(seen["distribute_status"], 204);
    let dist = &seen["distribution"];
    assert_eq!(dist["name"], key.as_str());
    assert_eq!(dist["purpose"], "decrypt,encrypt");
    assert_eq!(dist["protection"], "hsm");
    assert_eq!(dist["alias"], format!("alias/{key}"));
    assert_eq!(dist["alias_version"], 1);
    let v1 = dist["versions"]["1"].as_str().unwrap().to_string();
    let v1_arn = dist["version_details"]["1"]["arn"].as_str().unwrap();
    assert!(v1_arn.ends_with(&v1), "{v1_arn}");
    assert_eq!(dist["version_details"]["1"]["kms_key_id"], v1.as_str());
    assert_eq!(dist["version_details"]["1"]["state"], "enabled");
    assert!(dist.get("pending_deletion_until").is_none(), "{dist}");
    assert_eq!(seen["distributed_keys"], json!([key]));
    assert_eq!(seen["key_providers"], json!([provider]));
    // `aws kms encrypt --key-id alias/<key>` and decrypt work.
    assert_eq!(seen["encrypt_key_arn"], v1_arn);
    assert_eq!(seen["alias_roundtrip"], true);

    // Rotated: a second KMS key with the alias on it; v1's ciphertext
    // decrypts naming v1 only.
    assert_eq!(seen["rotated_key"]["latest_version"], 2);
    let v2 = seen["rotated"]["versions"]["2"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(v1, v2);
    assert_eq!(seen["rotated"]["versions"]["1"], v1.as_str());
    assert_eq!(seen["rotated"]["alias_version"], 2);
    assert_eq!(seen["alias_target"], v2.as_str());
    assert_eq!(seen["v1_ciphertext_naming_v2"], "IncorrectKeyException");
    assert_eq!(seen["v1_ciphertext_naming_v1"], true);

    // min_enabled_version 2 disables v1 in KMS; 0 enables it again.
    assert_eq!(seen["min2_v1"], "DisabledException");
    assert_eq!(seen["min2_v2"], Value::Null);
    assert_eq!(
        seen["min2_states"],
        json!({"1": "disabled", "2": "enabled"})
    );
    assert_eq!(seen["min0_v1"], Value::Null);
    assert_eq!(seen["min0_kms_state"], "Enabled");

    // Removed (7 days): both keys pending deletion, the alias gone, and
    // the record shows until when.
    assert_eq!(seen["removed_v2"], "KMSInvalidStateException");
    assert_eq!(seen["removed_v1_decrypt"], "KMSInvalidStateException");
    assert_eq!(seen["removed_alias"], "NotFoundException");
    assert_eq!(
        seen["removed_kms_states"],
        json!(["PendingDeletion", "PendingDeletion"])
    );
    let removed = &seen["removed"];
    let until = removed["pending_deletion_until"].as_str().unwrap();
    let kms_date = seen["removed_deletion_date"].as_str().unwrap();
    assert_eq!(until[..10], kms_date[..10], "{until} vs {kms_date}");
    assert_eq!(removed["version_details"]["1"]["state"], "pending_deletion");
    assert_eq!(removed["version_details"]["2"]["state"], "pending_deletion");
    assert_eq!(removed["alias_version"], Value::Null);
    // The key: deletion refused until allowed, then gone.
    let refusal = seen["delete_refused"].as_str().unwrap();
    assert!(refusal.contains("deletion_allowed"), "{refusal}");
    assert_eq!(seen["deleted_read"], Value::Null);

    // The same state seen through the harness's own KMS requests.
    for id in [&v1, &v2] {
        let (status, described) = localstack().call("DescribeKey", json!({"KeyId": id}));
        assert_eq!(status, 200, "{described}");
        assert_eq!(described["KeyMetadata"]["KeyState"], "PendingDeletion");
        assert_eq!(described["KeyMetadata"]["Origin"], "EXTERNAL");
    }
    assert_eq!(kms_keys_made_for(&key).len(), 2);

    // The secret key reached the audit log only as its HMAC.
    let hash = daemon
        .cli()
        .token(root)
        .run_stdin(&["audit-hash"], &format!("{secret}\n"))
        .ok()
        .stdout
        .trim()
        .to_string();
    assert!(hash.starts_with("hmac-sha256:"), "{hash}");
    let text = std::fs::read_to_string(&audit_log).unwrap();
    assert!(
        !text.contains(&secret),
        "the audit log holds the secret key"
    );
    let write = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["operation"] == "keymgmt.WriteProvider" && l["type"] == "request")
        .unwrap();
    assert_eq!(write["data"]["secret_key"], hash.as_str(), "{write}");
    assert_eq!(write["data"]["key_collection"], "us-east-1", "{write}");
}

#[test]
fn keymgmt_credentials_are_audited_as_hmacs_in_either_form_and_never_read_back() {
    let dir = tempdir();
    let audit_log = dir.path().join("audit.log");
    let (daemon, init) = unsealed(
        dir.path(),
        &format!("audit \"file\" {{ path = \"{}\" }}\n", audit_log.display()),
    );
    let root = init.root_token.as_str();
    let (access, secret, session) = (
        unique("AKIDkeymgmtaccess"),
        unique("keymgmtsecretkey"),
        unique("keymgmtsessiontoken"),
    );
    // Vault's CLI form: `credentials=access_key=… credentials=secret_key=…`.
    let written = send(
        &daemon,
        root,
        "POST",
        "keymgmt/kms/listed",
        Some(json!({
            "provider": "awskms",
            "key_collection": "eu-west-1",
            "credentials": [
                format!("access_key={access}"),
                format!("secret_key={secret}"),
                format!("session_token={session}"),
            ],
        })),
    );
    assert_eq!(written.status, 204, "{:?}", written.body);
    // The map form, and a change of credentials alone keeps the rest.
    let (access2, secret2) = (unique("AKIDmapaccess"), unique("mapsecretkey"));
    let written = send(
        &daemon,
        root,
        "PUT",
        "keymgmt/kms/listed",
        Some(json!({"credentials": {"access_key": access2, "secret_key": secret2}})),
    );
    assert_eq!(written.status, 204, "{:?}", written.body);
    let read = send(&daemon, root, "GET", "keymgmt/kms/listed", None);
    assert_eq!(read.status, 200, "{:?}", read.body);
    assert_eq!(
        read.body["data"],
        json!({"name": "listed", "provider": "awskms", "key_collection": "eu-west-1", "static_credentials": true})
    );
    // Cleared: back to the AWS credential chain.
    let cleared = send(
        &daemon,
        root,
        "PUT",
        "keymgmt/kms/listed",
        Some(json!({"clear_credentials": true})),
    );
    assert_eq!(cleared.status, 204, "{:?}", cleared.body);
    let read = send(&daemon, root, "GET", "keymgmt/kms/listed", None);
    assert_eq!(read.body["data"]["static_credentials"], false);

    // The real `bao` CLI: repeated `credentials=KEY=VALUE`, the mount listed.
    let home = tempdir();
    let (access3, secret3) = (unique("AKIDbaoaccess"), unique("baosecretkey"));
    let written = bao(
        &daemon.addr,
        Some(root),
        home.path(),
        &[
            "write",
            "keymgmt/kms/from-cli",
            "provider=awskms",
            "key_collection=us-west-2",
            &format!("credentials=access_key={access3}"),
            &format!("credentials=secret_key={secret3}"),
        ],
    );
    assert!(
        written.status.success(),
        "{}",
        String::from_utf8_lossy(&written.stderr)
    );
    let read = bao(
        &daemon.addr,
        Some(root),
        home.path(),
        &["read", "-format=json", "keymgmt/kms/from-cli"],
    );
    let read: Value = serde_json::from_slice(&read.stdout).unwrap();
    assert_eq!(read["data"]["static_credentials"], true, "{read}");
    assert_eq!(read["data"]["key_collection"], "us-west-2", "{read}");
    let listed = bao(
        &daemon.addr,
        Some(root),
        home.path(),
        &["secrets", "list", "-format=json"],
    );
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed["keymgmt/"]["type"], "keymgmt", "{listed}");

    let text = std::fs::read_to_string(&audit_log).unwrap();
    let logs = format!("{}{}", daemon.stdout.text(), daemon.stderr.text());
    assert!(logs.contains("KMS provider written"), "{logs}");
    for clear in [
        &access, &secret, &session, &access2, &secret2, &access3, &secret3,
    ] {
        assert!(
            !text.contains(clear.as_str()),
            "the audit log holds {clear}"
        );
        assert!(!logs.contains(clear.as_str()), "the log holds {clear}");
    }
    let writes: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["operation"] == "keymgmt.WriteProvider" && l["type"] == "request")
        .collect();
    assert_eq!(writes.len(), 4);
    for field in ["access_key", "secret_key", "session_token"] {
        let audited = writes[0]["data"][field].as_str().unwrap();
        assert!(audited.starts_with("hmac-sha256:"), "{field}: {audited}");
    }
    assert_eq!(writes[2]["data"]["clear_credentials"], true);
}

#[test]
fn keymgmt_bad_input_is_one_sentence_and_changes_nothing_on_either_side() {
    let dir = tempdir();
    let (daemon, init) = unsealed(dir.path(), "");
    let root = init.root_token.as_str();
    let send = |method, path: &str, body| send(&daemon, root, method, path, body);
    let provider = unique("aws");
    assert_eq!(
        send(
            "POST",
            &format!("keymgmt/kms/{provider}"),
            Some(provider_body())
        )
        .status,
        204
    );

    // An unknown provider.
    let key = unique("nowhere");
    assert_eq!(
        send("POST", &format!("keymgmt/key/{key}"), None).status,
        204
    );
    let answer = send(
        "PUT",
        &format!("keymgmt/kms/{}/key/{key}", unique("absent")),
        Some(json!({"purpose": ["encrypt", "decrypt"]})),
    );
    refused(&answer, 404, "no KMS provider named");
    assert_eq!(
        send("LIST", &format!("keymgmt/key/{key}/kms"), None).status,
        404
    );

    // A wrong region; an access key without its secret key; nothing kept.
    let answer = send(
        "POST",
        "keymgmt/kms/wrong-region",
        Some(json!({"provider": "awskms", "key_collection": "eu-nowhere-9"})),
    );
    refused(&answer, 400, "key_collection");
    let answer = send(
        "POST",
        "keymgmt/kms/half-credentials",
        Some(
            json!({"provider": "awskms", "key_collection": "us-east-1", "credentials": {"access_key": "AKIDHALF"}}),
        ),
    );
    refused(&answer, 400, "access_key and secret_key go together");
    assert!(!answer.body.to_string().contains("AKIDHALF"));
    let answer = send(
        "POST",
        "keymgmt/kms/no-provider",
        Some(json!({"key_collection": "us-east-1"})),
    );
    refused(&answer, 400, "a new KMS provider needs provider");
    for name in ["wrong-region", "half-credentials", "no-provider"] {
        assert_eq!(
            send("GET", &format!("keymgmt/kms/{name}"), None).status,
            404
        );
    }
    assert_eq!(
        send("LIST", "keymgmt/kms", None).body["data"]["keys"],
        json!([provider])
    );

    // A type AWS KMS cannot import: no key made.
    let rsa = unique("rsa");
    let answer = send(
        "POST",
        &format!("keymgmt/key/{rsa}"),
        Some(json!({"type": "rsa-2048"})),
    );
    refused(&answer, 400, "cannot be distributed to AWS KMS");
    assert_eq!(send("GET", &format!("keymgmt/key/{rsa}"), None).status, 404);

    // A purpose an imported symmetric key cannot have: nothing distributed,
    // no KMS key made.
    let answer = send(
        "PUT",
        &format!("keymgmt/kms/{provider}/key/{key}"),
        Some(json!({"purpose": "sign"})),
    );
    refused(&answer, 400, "purpose \"sign\"");
    assert_eq!(
        send("GET", &format!("keymgmt/kms/{provider}/key/{key}"), None).status,
        404
    );
    assert!(kms_keys_made_for(&key).is_empty());

    // A second distribution of the same key to the same provider.
    let twice = unique("twice");
    assert_eq!(
        send("POST", &format!("keymgmt/key/{twice}"), None).status,
        204
    );
    let path = format!("keymgmt/kms/{provider}/key/{twice}");
    let purpose = json!({"purpose": "encrypt,decrypt"});
    assert_eq!(send("PUT", &path, Some(purpose.clone())).status, 204);
    let before = send("GET", &path, None).body["data"].clone();
    refused(
        &send("PUT", &path, Some(purpose.clone())),
        400,
        "already distributed",
    );
    assert_eq!(send("GET", &path, None).body["data"], before);
    assert_eq!(kms_keys_made_for(&twice).len(), 1);

    // An alias already taken by a key strongroom did not make.
    let taken = unique("taken");
    let (status, foreign) =
        localstack().call("CreateKey", json!({"Description": "not strongroom's"}));
    assert_eq!(status, 200, "{foreign}");
    let foreign = foreign["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let alias = format!("alias/{taken}");
    let (status, made) = localstack().call(
        "CreateAlias",
        json!({"AliasName": alias, "TargetKeyId": foreign}),
    );
    assert_eq!(status, 200, "{made}");
    assert_eq!(
        send("POST", &format!("keymgmt/key/{taken}"), None).status,
        204
    );
    let path = format!("keymgmt/kms/{provider}/key/{taken}");
    refused(
        &send("PUT", &path, Some(purpose)),
        400,
        &format!("the KMS alias {alias} in us-east-1 already points at key {foreign}"),
    );
    assert_eq!(send("GET", &path, None).status, 404);
    assert!(kms_keys_made_for(&taken).is_empty());
    let (_, target) = localstack().call("DescribeKey", json!({"KeyId": alias}));
    assert_eq!(target["KeyMetadata"]["KeyId"], foreign.as_str());

    // A deletion window out of range: refused before any KMS call.
    refused(
        &send(
            "DELETE",
            &format!("keymgmt/kms/{provider}/key/{twice}?deletion_window_days=3"),
            None,
        ),
        400,
        "deletion_window_days 3 is out of range",
    );
    assert_eq!(
        send("GET", &format!("keymgmt/kms/{provider}/key/{twice}"), None).body["data"],
        before
    );
    refused(
        &send(
            "DELETE",
            &format!("keymgmt/key/{twice}?deletion_window_days=soon"),
            None,
        ),
        400,
        "deletion_window_days",
    );
}

#[test]
fn keymgmt_read_only_token_cannot_write_and_the_mount_is_listed() {
    let dir = tempdir();
    let (daemon, init) = unsealed(dir.path(), "");
    let root = init.root_token.as_str();
    // Nothing yet: Vault's bare 404s.
    let empty = send(&daemon, root, "LIST", "keymgmt/key", None);
    assert_eq!((empty.status, &empty.body["errors"]), (404, &json!([])));
    assert_eq!(
        send(&daemon, root, "GET", "keymgmt/key/none", None).status,
        404
    );
    // Paths served with a method they do not take; paths not served.
    assert_eq!(send(&daemon, root, "POST", "keymgmt/key", None).status, 405);
    assert_eq!(
        send(&daemon, root, "GET", "keymgmt/key/k/rotate", None).status,
        405
    );
    assert_eq!(
        send(&daemon, root, "GET", "keymgmt/kms/p/key/", None).status,
        404
    );
    assert_eq!(
        send(&daemon, root, "GET", "keymgmt/other", None).status,
        404
    );

    assert_eq!(
        send(
            &daemon,
            root,
            "POST",
            "keymgmt/key/orders",
            Some(json!({"deletion_allowed": "true"}))
        )
        .status,
        204
    );
    write_policy(
        &mut daemon.cli(),
        "keymgmt-read",
        "path \"keymgmt/key/*\" { capabilities = [\"read\"] }\n",
    );
    let (reader, _) = create_token(&mut daemon.cli(), &["--policy", "keymgmt-read"]);
    let read = send(&daemon, &reader, "GET", "keymgmt/key/orders", None);
    assert_eq!(read.status, 200, "{:?}", read.body);
    assert_eq!(read.body["data"]["deletion_allowed"], true);
    for (method, path, body) in [
        (
            "PUT",
            "keymgmt/key/orders",
            Some(json!({"min_enabled_version": 1})),
        ),
        ("POST", "keymgmt/key/other", None),
        ("POST", "keymgmt/key/orders/rotate", None),
        ("DELETE", "keymgmt/key/orders", None),
        ("LIST", "keymgmt/key", None),
        ("POST", "keymgmt/kms/aws", Some(provider_body())),
    ] {
        let answer = send(&daemon, &reader, method, path, body);
        assert_eq!(answer.status, 403, "{method} {path}: {:?}", answer.body);
    }
    let after = send(&daemon, root, "GET", "keymgmt/key/orders", None);
    assert_eq!(after.body["data"], read.body["data"]);
    assert_eq!(
        send(&daemon, root, "GET", "keymgmt/key/other", None).status,
        404
    );

    // `bao secrets list` and Vault's CLI see the mount.
    let mounts = send(&daemon, root, "GET", "sys/mounts", None);
    assert_eq!(mounts.body["data"]["keymgmt/"]["type"], "keymgmt");
    let lookup = send(
        &daemon,
        root,
        "GET",
        "sys/internal/ui/mounts/keymgmt/key/orders",
        None,
    );
    assert_eq!(lookup.body["data"]["path"], "keymgmt/");
}
