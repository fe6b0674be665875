//! Bring your own key to AWS KMS (issue 17) as an operator runs it: the
//! tutorial's steps through `strongroom keymgmt …` and over gRPC, each
//! checked on the KMS side the way the tutorial checks it, against the
//! run's shared LocalStack (it imports key material and enforces key states
//! as AWS does). Tests share the emulator: every key name is unique.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use strongroom::proto::{self, key_mgmt_client::KeyMgmtClient};
use strongroom_test_support::localstack::localstack;

use crate::support::cli::{Run, create_token, write_policy};
use crate::support::daemon::{Daemon, tempdir, unsealed};
use crate::support::grpc::{channel, with_token};

/// The provider every test registers, in its own daemon.
const PROVIDER: &str = "aws";

/// A name no other test of the run uses (KMS aliases are per region).
fn unique(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A daemon with an audit file and provider [`PROVIDER`] registered
/// through the CLI, its secret key (a distinctive value) from a file.
struct Byok {
    daemon: Daemon,
    audit: PathBuf,
    secret: String,
    dir: tempfile::TempDir,
}

impl Byok {
    fn start() -> Self {
        let dir = tempdir();
        let audit = dir.path().join("audit.log");
        let (daemon, _) = unsealed(
            dir.path(),
            &format!("audit \"file\" {{ path = \"{}\" }}\n", audit.display()),
        );
        // LocalStack takes any secret; the access key `test` names the
        // account the harness's own requests see.
        let secret = format!("Zq7-provider-secret-{}", unique("x"));
        let byok = Self {
            daemon,
            audit,
            secret,
            dir,
        };
        let file = byok.file("secret-key", &format!("{}\n", byok.secret));
        let written = byok.run(&[
            "keymgmt",
            "kms",
            "write",
            PROVIDER,
            "--key-collection",
            "us-east-1",
            "--endpoint",
            &localstack().endpoint(),
            "--access-key",
            "test",
            "--secret-key-file",
            &file,
        ]);
        let written = written.ok();
        assert!(
            written
                .stdout
                .contains("Success! Wrote KMS provider aws: awskms in us-east-1."),
            "{}",
            written.stdout
        );
        byok
    }

    /// Writes `text` to a file of the test's directory; returns its path.
    fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    }

    fn run(&self, args: &[&str]) -> Run {
        self.daemon.cli().run(args)
    }

    /// `keymgmt distribution read aws KEY --format json`.
    fn distribution(&self, key: &str) -> Value {
        self.run(&[
            "keymgmt",
            "distribution",
            "read",
            PROVIDER,
            key,
            "--format",
            "json",
        ])
        .ok()
        .json()
    }

    /// The table `keymgmt distribution read aws KEY` prints.
    fn distribution_table(&self, key: &str) -> String {
        self.run(&["keymgmt", "distribution", "read", PROVIDER, key])
            .ok()
            .stdout
    }

    fn write_key(&self, key: &str, flags: &[&str]) -> Run {
        let mut args = vec!["keymgmt", "key", "write", key];
        args.extend_from_slice(flags);
        self.run(&args)
    }

    /// Makes `key` and distributes it to [`PROVIDER`] (the tutorial's
    /// flags); returns version 1's KMS key id.
    fn distributed(&self, key: &str) -> String {
        self.write_key(key, &[]).ok();
        let out = self
            .run(&[
                "keymgmt",
                "distribute",
                PROVIDER,
                key,
                "--purpose",
                "encrypt,decrypt",
                "--protection",
                "hsm",
            ])
            .ok();
        let d = self.distribution(key);
        let v1 = d["versions"][0]["kms_key_id"].as_str().unwrap().to_string();
        assert!(
            out.stdout
                .contains(&format!("alias/{key} points at version 1's KMS key {v1}.")),
            "{}",
            out.stdout
        );
        v1
    }
}

/// One KMS request to the emulator: the answer, or the error's `__type`.
fn kms(action: &str, body: Value) -> Result<Value, String> {
    let (status, answer) = localstack().call(action, body);
    if status == 200 {
        Ok(answer)
    } else {
        Err(answer["__type"].as_str().unwrap_or("?").to_string())
    }
}

fn encrypt(key: &str) -> Result<String, String> {
    kms(
        "Encrypt",
        json!({"KeyId": key, "Plaintext": STANDARD.encode(b"order 66")}),
    )
    .map(|a| a["CiphertextBlob"].as_str().unwrap().to_string())
}

/// Decrypts `ciphertext` naming `key`; checks the plaintext came back.
fn decrypt(key: &str, ciphertext: &str) -> Result<(), String> {
    let answer = kms(
        "Decrypt",
        json!({"KeyId": key, "CiphertextBlob": ciphertext}),
    )?;
    assert_eq!(answer["Plaintext"], STANDARD.encode(b"order 66"));
    Ok(())
}

/// The KMS key id alias/`key` points at.
fn alias_target(key: &str) -> Result<String, String> {
    kms("DescribeKey", json!({"KeyId": format!("alias/{key}")}))
        .map(|a| a["KeyMetadata"]["KeyId"].as_str().unwrap().to_string())
}

fn key_state(id: &str) -> Value {
    kms("DescribeKey", json!({"KeyId": id})).unwrap()["KeyMetadata"].clone()
}

/// The KMS keys strongroom made for each of `names` (their descriptions
/// name the key), over every key of the emulator's account.
fn kms_keys_made_for(names: &[&str]) -> Vec<String> {
    let mut made = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let mut body = json!({"Limit": 1000});
        if let Some(marker) = &marker {
            body["Marker"] = json!(marker);
        }
        let page = kms("ListKeys", body).unwrap();
        for entry in page["Keys"].as_array().unwrap() {
            let meta = key_state(entry["KeyId"].as_str().unwrap());
            let description = meta["Description"].as_str().unwrap_or_default();
            if names
                .iter()
                .any(|n| description.starts_with(&format!("strongroom keymgmt key {n} version ")))
            {
                made.push(description.to_string());
            }
        }
        if page["Truncated"] != true {
            return made;
        }
        marker = page["NextMarker"].as_str().map(str::to_string);
    }
}

#[test]
fn the_tutorial_through_the_cli_as_kms_sees_it() {
    let byok = Byok::start();
    let key = unique("tutorial");
    let alias = format!("alias/{key}");

    // Create the key and distribute it: KMS encrypts and decrypts with it.
    let v1 = byok.distributed(&key);
    let first = byok.distribution(&key);
    assert_eq!(first["alias"], alias.as_str());
    assert_eq!(first["alias_version"], 1);
    assert_eq!(first["purpose"], json!(["encrypt", "decrypt"]));
    assert_eq!(first["protection"], "hsm");
    assert_eq!(first["pending_deletion_until"], Value::Null);
    assert_eq!(first["versions"][0]["state"], "enabled");
    let meta = key_state(&v1);
    assert_eq!(meta["Origin"], "EXTERNAL");
    assert_eq!(meta["KeyState"], "Enabled");
    assert_eq!(first["versions"][0]["arn"], meta["Arn"]);
    let c1 = encrypt(&alias).unwrap();
    decrypt(&alias, &c1).unwrap();
    decrypt(&v1, &c1).unwrap();
    let table = byok.distribution_table(&key);
    assert!(table.contains(&format!("1          {v1}")), "{table}");
    assert!(table.contains("status           distributed"), "{table}");

    // Rotate: version 2's KMS key, the alias on it; version 1's
    // ciphertext is bound to version 1's key.
    let rotated = byok.run(&["keymgmt", "key", "rotate", &key]).ok();
    assert!(rotated.stdout.contains("version 2"), "{}", rotated.stdout);
    let second = byok.distribution(&key);
    assert_eq!(second["alias_version"], 2);
    let v2 = second["versions"][1]["kms_key_id"].as_str().unwrap();
    assert_ne!(v1, v2);
    assert_eq!(alias_target(&key).unwrap(), v2);
    assert_eq!(decrypt(v2, &c1).unwrap_err(), "IncorrectKeyException");
    decrypt(&v1, &c1).unwrap();
    let c2 = encrypt(&alias).unwrap();
    decrypt(v2, &c2).unwrap();

    // min_enabled_version 2 disables version 1's KMS key; 0 enables it.
    byok.write_key(&key, &["--min-enabled-version", "2"]).ok();
    assert_eq!(encrypt(&v1).unwrap_err(), "DisabledException");
    assert_eq!(decrypt(&v1, &c1).unwrap_err(), "DisabledException");
    encrypt(&alias).unwrap();
    let limited = byok.distribution(&key);
    assert_eq!(limited["versions"][0]["state"], "disabled");
    assert_eq!(limited["versions"][1]["state"], "enabled");
    byok.write_key(&key, &["--min-enabled-version", "0"]).ok();
    decrypt(&v1, &c1).unwrap();
    let read = byok
        .run(&["keymgmt", "key", "read", &key, "--format", "json"])
        .ok()
        .json();
    assert_eq!(read["type"], "aes256-gcm96");
    assert_eq!(read["latest_version"], 2);
    assert_eq!(read["min_enabled_version"], 0);
    assert!(read["versions"]["2"]["creation_time"].is_string(), "{read}");
    let providers = byok
        .run(&["keymgmt", "key", "providers", &key, "--format", "json"])
        .ok()
        .json();
    assert_eq!(providers, json!([PROVIDER]));
    let listed = byok
        .run(&["keymgmt", "distribution", "list", PROVIDER])
        .ok();
    assert!(listed.stdout.lines().any(|l| l == key), "{}", listed.stdout);

    // Remove the distribution: both KMS keys pending deletion (7 days),
    // the alias gone, strongroom's record says until when.
    let removed = byok
        .run(&[
            "keymgmt",
            "distribution",
            "remove",
            PROVIDER,
            &key,
            "--deletion-window-days",
            "7",
        ])
        .ok();
    assert!(
        removed.stdout.contains("pending deletion until"),
        "{}",
        removed.stdout
    );
    for id in [v1.as_str(), v2] {
        assert_eq!(encrypt(id).unwrap_err(), "KMSInvalidStateException");
        assert_eq!(key_state(id)["KeyState"], "PendingDeletion");
    }
    assert_eq!(decrypt(&v1, &c1).unwrap_err(), "KMSInvalidStateException");
    assert_eq!(alias_target(&key).unwrap_err(), "NotFoundException");
    let kms_date = key_state(&v1)["DeletionDate"].as_f64().unwrap() as i64;
    let now = strongroom::time::now_unix() as i64;
    assert!((kms_date - now - 7 * 86_400).abs() < 3_600, "{kms_date}");
    let gone = byok.distribution(&key);
    let until = gone["pending_deletion_until"].as_str().unwrap();
    // Strongroom's date and KMS's are taken moments apart.
    assert!(
        (-300..=300).any(|d| strongroom::time::format_unix((kms_date + d) as u64) == until),
        "strongroom says {until}, KMS {kms_date}"
    );
    assert_eq!(gone["versions"][1]["state"], "pending_deletion");
    let table = byok.distribution_table(&key);
    assert!(
        table.contains(&format!("{v2}    "))
            && table.contains(&format!("pending deletion until {until}")),
        "{table}"
    );

    // Deleting the key needs deletion_allowed.
    byok.run(&["keymgmt", "key", "delete", &key])
        .code(1)
        .error_says("does not allow deletion: set deletion_allowed first");
    byok.write_key(&key, &["--deletion-allowed", "true"]).ok();
    let deleted = byok.run(&["keymgmt", "key", "delete", &key]).ok();
    assert!(
        deleted.stdout.contains("Success! Deleted key"),
        "{}",
        deleted.stdout
    );
    let keys = byok
        .run(&["keymgmt", "key", "list", "--format", "json"])
        .ok()
        .json();
    assert!(!keys.as_array().unwrap().contains(&json!(key)), "{keys}");
}

#[test]
fn deleting_a_distributed_key_needs_deletion_allowed_then_removes_its_distribution() {
    let byok = Byok::start();
    let key = unique("delete");
    let v1 = byok.distributed(&key);

    byok.run(&["keymgmt", "key", "delete", &key])
        .code(1)
        .error_says("does not allow deletion");
    // Nothing changed on either side.
    assert_eq!(key_state(&v1)["KeyState"], "Enabled");
    assert_eq!(alias_target(&key).unwrap(), v1);
    byok.run(&["keymgmt", "key", "read", &key]).ok();

    byok.write_key(&key, &["--deletion-allowed", "true"]).ok();
    let deleted = byok
        .run(&[
            "keymgmt",
            "key",
            "delete",
            &key,
            "--deletion-window-days",
            "10",
        ])
        .ok();
    assert!(
        deleted.stdout.contains("after 10 days"),
        "{}",
        deleted.stdout
    );
    let meta = key_state(&v1);
    assert_eq!(meta["KeyState"], "PendingDeletion");
    let days = (meta["DeletionDate"].as_f64().unwrap() as i64
        - strongroom::time::now_unix() as i64)
        / 86_400;
    assert!((9..=10).contains(&days), "{days} days");
    assert_eq!(alias_target(&key).unwrap_err(), "NotFoundException");
    byok.run(&["keymgmt", "key", "read", &key])
        .code(1)
        .error_says("no key named");
    // The removed distribution's record stays until the deletion date.
    let table = byok.distribution_table(&key);
    assert!(table.contains("pending deletion until"), "{table}");
}

#[test]
fn bad_input_is_one_sentence_and_changes_nothing_on_either_side() {
    let byok = Byok::start();
    let endpoint = localstack().endpoint();

    // An unknown provider.
    let orphan = unique("orphan");
    byok.write_key(&orphan, &[]).ok();
    byok.run(&["keymgmt", "distribute", "nowhere", &orphan])
        .code(1)
        .error_says("no KMS provider named \"nowhere\"");
    byok.run(&["keymgmt", "kms", "read", "nowhere"])
        .code(1)
        .error_says("no KMS provider named \"nowhere\"");

    // A wrong region: unknown to AWS, or not a region at all.
    byok.run(&[
        "keymgmt",
        "kms",
        "write",
        "mars",
        "--key-collection",
        "mars-central-1",
    ])
    .code(1)
    .error_says("key_collection \"mars-central-1\" is not an AWS region strongroom knows");
    byok.run(&[
        "keymgmt",
        "kms",
        "write",
        "shouting",
        "--key-collection",
        "US_EAST_1",
        "--endpoint",
        &endpoint,
    ])
    .code(1)
    .error_says("expected an AWS region such as \"eu-west-1\"");

    // An access key without its secret, or a secret without an access key:
    // refused before the daemon is asked.
    byok.run(&[
        "keymgmt",
        "kms",
        "write",
        "halfway",
        "--key-collection",
        "us-east-1",
        "--access-key",
        "AKIAEXAMPLE",
    ])
    .code(64)
    .error_says("--access-key needs its secret key: give --secret-key-file FILE");
    let secret = byok.file("orphan-secret", "s3cr3t\n");
    byok.run(&[
        "keymgmt",
        "kms",
        "write",
        "halfway",
        "--key-collection",
        "us-east-1",
        "--secret-key-file",
        &secret,
    ])
    .code(64)
    .error_says("--secret-key-file and --session-token-file need --access-key");
    byok.run(&[
        "keymgmt",
        "kms",
        "write",
        "halfway",
        "--key-collection",
        "us-east-1",
        "--access-key",
        "AKIAEXAMPLE",
        "--secret-key-file",
        "/nonexistent/secret",
    ])
    .code(64)
    .error_says("cannot read the secret key from /nonexistent/secret");
    let providers = byok
        .run(&["keymgmt", "kms", "list", "--format", "json"])
        .ok()
        .json();
    assert_eq!(providers, json!([PROVIDER]), "only the one registered");

    // A type AWS KMS cannot import.
    let rsa = unique("rsa");
    byok.write_key(&rsa, &["--type", "rsa-2048"])
        .code(1)
        .error_says("type \"rsa-2048\" cannot be distributed to AWS KMS");
    byok.run(&["keymgmt", "key", "read", &rsa])
        .code(1)
        .error_says("no key named");

    // A second distribution of a complete one.
    let twice = unique("twice");
    let v1 = byok.distributed(&twice);
    let before = byok.distribution(&twice);
    byok.run(&["keymgmt", "distribute", PROVIDER, &twice])
        .code(1)
        .error_says("is already distributed to KMS provider \"aws\", every version up to date; nothing was changed");
    assert_eq!(byok.distribution(&twice), before);
    assert_eq!(alias_target(&twice).unwrap(), v1);

    // An alias someone else's key holds.
    let taken = unique("taken");
    let foreign = kms("CreateKey", json!({"Description": "not strongroom's"})).unwrap();
    let foreign = foreign["KeyMetadata"]["KeyId"].as_str().unwrap();
    kms(
        "CreateAlias",
        json!({"AliasName": format!("alias/{taken}"), "TargetKeyId": foreign}),
    )
    .unwrap();
    byok.write_key(&taken, &[]).ok();
    byok.run(&["keymgmt", "distribute", PROVIDER, &taken])
        .code(1)
        .error_says(&format!(
            "already points at key {foreign}, which strongroom did not make"
        ));
    assert_eq!(alias_target(&taken).unwrap(), foreign);
    byok.run(&["keymgmt", "distribution", "read", PROVIDER, &taken])
        .code(1);

    // On the KMS side: no key for the refused ones, one for the twice.
    assert_eq!(alias_target(&orphan).unwrap_err(), "NotFoundException");
    assert_eq!(alias_target(&rsa).unwrap_err(), "NotFoundException");
    let made = kms_keys_made_for(&[&orphan, &rsa, &taken, &twice]);
    assert_eq!(
        made,
        vec![format!("strongroom keymgmt key {twice} version 1")]
    );
}

#[test]
fn the_providers_secret_key_is_never_shown_logged_or_audited_in_the_clear() {
    let byok = Byok::start();
    for format in ["table", "json"] {
        let read = byok
            .run(&["keymgmt", "kms", "read", PROVIDER, "--format", format])
            .ok();
        assert!(!read.stdout.contains(&byok.secret), "{}", read.stdout);
        assert!(!read.stdout.contains("Zq7-"), "{}", read.stdout);
        assert!(read.stdout.contains("us-east-1"), "{}", read.stdout);
    }
    let json = byok
        .run(&["keymgmt", "kms", "read", PROVIDER, "--format", "json"])
        .ok()
        .json();
    assert_eq!(json["static_credentials"], true);
    assert_eq!(json["endpoint"], localstack().endpoint().as_str());

    // Written again from this shell's AWS variables, then cleared.
    let mut cli = byok.daemon.cli();
    cli.env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", &format!("{}-env", byok.secret));
    let endpoint = localstack().endpoint();
    let write = |cli: &mut crate::support::cli::Cli, flag: &str| {
        cli.run(&[
            "keymgmt",
            "kms",
            "write",
            PROVIDER,
            "--key-collection",
            "us-east-1",
            "--endpoint",
            &endpoint,
            flag,
        ])
    };
    write(&mut cli, "--credentials-from-env").ok();
    // The environment's credentials work: a distribution goes through.
    let key = unique("envcreds");
    let v1 = byok.distributed(&key);
    assert_eq!(key_state(&v1)["KeyState"], "Enabled");
    write(&mut byok.daemon.cli(), "--clear-credentials").ok();
    let cleared = byok
        .run(&["keymgmt", "kms", "read", PROVIDER, "--format", "json"])
        .ok()
        .json();
    assert_eq!(cleared["static_credentials"], false);
    let mut bare = byok.daemon.cli();
    bare.env("AWS_ACCESS_KEY_ID", "test");
    write(&mut bare, "--credentials-from-env")
        .code(64)
        .error_says("--credentials-from-env needs AWS_SECRET_ACCESS_KEY set");

    // Neither log holds a secret; the audit log holds its HMAC.
    let audit = std::fs::read_to_string(&byok.audit).unwrap();
    let log = byok.daemon.stderr.text();
    assert!(audit.contains("keymgmt.WriteProvider"), "{audit}");
    assert!(log.contains("KMS provider written"), "{log}");
    for text in [&audit, &log] {
        assert!(!text.contains("Zq7-provider-secret"));
    }
    let hashed = byok
        .daemon
        .cli()
        .run_stdin(&["audit-hash"], &byok.secret)
        .ok();
    let hmac = hashed.stdout.trim();
    assert!(hmac.starts_with("hmac-sha256:"), "{hmac}");
    assert!(audit.contains(hmac), "the secret key's HMAC is audited");
}

#[test]
fn a_token_that_may_only_read_a_distribution_reads_it_over_grpc_and_cannot_remove_it() {
    let byok = Byok::start();
    let key = unique("grpc");
    let v1 = byok.distributed(&key);
    let path = format!("keymgmt/kms/{PROVIDER}/key/{key}");
    write_policy(
        &mut byok.daemon.cli(),
        "reader",
        &format!("path \"{path}\" {{ capabilities = [\"read\"] }}"),
    );
    let (token, _) = create_token(&mut byok.daemon.cli(), &["--policy", "reader"]);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (read, removed) = runtime.block_on(async {
        let mut client = KeyMgmtClient::new(channel(&byok.daemon.addr).await);
        let read = client
            .read_distribution(with_token(
                proto::ReadDistributionRequest {
                    provider: PROVIDER.into(),
                    key: key.clone(),
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner();
        let removed = client
            .remove_distribution(with_token(
                proto::RemoveDistributionRequest {
                    provider: PROVIDER.into(),
                    key: key.clone(),
                    deletion_window_days: 7,
                },
                &token,
            ))
            .await
            .unwrap_err();
        (read, removed)
    });
    assert_eq!(read.alias, format!("alias/{key}"));
    assert_eq!(read.alias_version, 1);
    assert_eq!(read.versions[0].kms_key_id, v1);
    assert_eq!(read.versions[0].state, "enabled");
    assert_eq!(removed.code(), tonic::Code::PermissionDenied);
    assert!(removed.message().contains(&path), "{}", removed.message());

    // The CLI with that token: the same refusal, in one sentence.
    byok.daemon
        .cli()
        .token(&token)
        .run(&["keymgmt", "distribution", "remove", PROVIDER, &key])
        .code(1)
        .error_says("permission denied");
    // KMS still encrypts with the key.
    assert_eq!(key_state(&v1)["KeyState"], "Enabled");
    encrypt(&format!("alias/{key}")).unwrap();
}
