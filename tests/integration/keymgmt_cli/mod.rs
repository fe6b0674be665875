//! Bring your own key to AWS KMS (issue 17) as an operator runs it: the
//! tutorial's steps through `strongroom keymgmt …` and over gRPC, each
//! checked on the KMS side the way the tutorial checks it, against the
//! run's shared LocalStack (it imports key material and enforces key states
//! as AWS does). Tests share the emulator: every key name is unique.
//!
//! The helpers are here; the tutorial and key deletion in `workflow.rs`,
//! refusals (bad input, a read-only token over gRPC) in `refusals.rs`, the
//! provider's credentials in `secrets.rs`.

mod refusals;
mod secrets;
mod workflow;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use strongroom_test_support::localstack::localstack;

use crate::support::cli::Run;
use crate::support::daemon::{Daemon, tempdir, unsealed};

/// The provider every test registers, in its own daemon.
pub const PROVIDER: &str = "aws";

/// A name no other test of the run uses (KMS aliases are per region).
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A daemon with an audit file and provider [`PROVIDER`] registered
/// through the CLI, its secret key (a distinctive value) from a file.
pub struct Byok {
    pub daemon: Daemon,
    pub audit: PathBuf,
    pub secret: String,
    dir: tempfile::TempDir,
}

impl Byok {
    pub fn start() -> Self {
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
    pub fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.daemon.cli().run(args)
    }

    /// `keymgmt distribution read aws KEY --format json`.
    pub fn distribution(&self, key: &str) -> Value {
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
    pub fn distribution_table(&self, key: &str) -> String {
        self.run(&["keymgmt", "distribution", "read", PROVIDER, key])
            .ok()
            .stdout
    }

    pub fn write_key(&self, key: &str, flags: &[&str]) -> Run {
        let mut args = vec!["keymgmt", "key", "write", key];
        args.extend_from_slice(flags);
        self.run(&args)
    }

    /// Makes `key` and distributes it to [`PROVIDER`] (the tutorial's
    /// flags); returns version 1's KMS key id.
    pub fn distributed(&self, key: &str) -> String {
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
pub fn kms(action: &str, body: Value) -> Result<Value, String> {
    let (status, answer) = localstack().call(action, body);
    if status == 200 {
        Ok(answer)
    } else {
        Err(answer["__type"].as_str().unwrap_or("?").to_string())
    }
}

pub fn encrypt(key: &str) -> Result<String, String> {
    kms(
        "Encrypt",
        json!({"KeyId": key, "Plaintext": STANDARD.encode(b"order 66")}),
    )
    .map(|a| a["CiphertextBlob"].as_str().unwrap().to_string())
}

/// Decrypts `ciphertext` naming `key`; checks the plaintext came back.
pub fn decrypt(key: &str, ciphertext: &str) -> Result<(), String> {
    let answer = kms(
        "Decrypt",
        json!({"KeyId": key, "CiphertextBlob": ciphertext}),
    )?;
    assert_eq!(answer["Plaintext"], STANDARD.encode(b"order 66"));
    Ok(())
}

/// The KMS key id alias/`key` points at.
pub fn alias_target(key: &str) -> Result<String, String> {
    kms("DescribeKey", json!({"KeyId": format!("alias/{key}")}))
        .map(|a| a["KeyMetadata"]["KeyId"].as_str().unwrap().to_string())
}

pub fn key_state(id: &str) -> Value {
    kms("DescribeKey", json!({"KeyId": id})).unwrap()["KeyMetadata"].clone()
}

/// The KMS keys strongroom made for each of `names` (their descriptions
/// name the key), over every key of the emulator's account.
pub fn kms_keys_made_for(names: &[&str]) -> Vec<String> {
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
