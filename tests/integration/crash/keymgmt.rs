//! Key Management's crash points (issue 17): a distribution, the rotation
//! of a distributed key and a removal, each crashed at every named step of
//! its scope (`keymgmt-distribute`, `keymgmt-remove`). For each step: the
//! daemon runs with the crash point, the call makes it abort there, it is
//! started again without it, the same call is made again (Distribute with
//! the same purpose and protection completes an interrupted distribution;
//! RemoveDistribution completes a removal), and the KMS side is checked in
//! LocalStack as the tutorial checks it: one KMS key per version, tagged,
//! recorded and enabled, none left untracked, the alias on the newest
//! (Encrypt through it works); after a removal every key pending deletion,
//! the alias gone and the record's deletion date KMS's own.
//!
//! Each test talks to KMS as an account of its own (LocalStack takes a
//! 12-digit access key as the account id), so its listings hold only its
//! keys; the keys of one step are told from the others' by their
//! description, which names the strongroom key.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::ExitStatusExt;

use serde_json::json;
use strongroom::proto::{self, key_mgmt_client::KeyMgmtClient};
use strongroom_test_support::localstack::localstack;

use super::*;
use crate::support::daemon::open;
use crate::support::grpc::{channel, with_token};

/// The provider's name in every test's store.
const PROVIDER: &str = "aws";
/// The tag that ties a KMS key to its distribution step.
const TAG: &str = "strongroom-distribution";
/// How long one gRPC call may take (a distribution makes a dozen KMS calls).
const CALL_DEADLINE: Duration = Duration::from_secs(60);
/// The waiting period a removal asks for.
const DELETION_DAYS: u32 = 7;

/// What a case does at its crash point.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Case {
    /// A first distribution of a key with one version.
    Distribute,
    /// A rotation of a key distributed with one version: version 2's KMS
    /// key, import and the alias moved to it.
    Rotate,
    /// The removal of a distribution of one version.
    Remove,
}

impl Case {
    /// The named steps of the operation (`failpoint::step` in src/).
    fn steps(self) -> &'static [&'static str] {
        match self {
            Self::Distribute | Self::Rotate => &[
                "after-create-key",
                "after-key-id-recorded",
                "after-import",
                "before-alias-moves",
                "after-alias-moves",
            ],
            Self::Remove => &["after-alias-deleted", "after-keys-scheduled"],
        }
    }
}

#[test]
fn keymgmt_distribute() {
    keymgmt_crash_matrix("keymgmt-distribute", Case::Distribute);
}

#[test]
fn keymgmt_rotate() {
    keymgmt_crash_matrix("keymgmt-distribute", Case::Rotate);
}

#[test]
fn keymgmt_remove() {
    keymgmt_crash_matrix("keymgmt-remove", Case::Remove);
}

/// Runs `case` crashed at each of its steps of `operation`, one store
/// throughout (a key of its own per step), and checks KMS after each retry.
fn keymgmt_crash_matrix(operation: &str, case: Case) {
    let account = unique_account();
    let dir = tempdir();
    let text = config(dir.path(), "");
    let mut daemon = Daemon::start(dir.path(), &text);
    let init = open(&mut daemon);
    let keys = [&init.keys_hex[0], &init.keys_hex[1]];
    let token = init.root_token.clone();
    Rpc::new(&daemon, &token).write_provider(&account);
    for step in case.steps() {
        let key = format!("crash-{}-{step}", std::process::id());
        let rpc = Rpc::new(&daemon, &token);
        rpc.write_key(&key);
        if case != Case::Distribute {
            rpc.distribute(&key).unwrap();
        }
        drop(rpc);
        assert!(daemon.stop().success());

        let target = format!("{operation}:{step}");
        let mut crashing =
            Daemon::start_with(dir.path(), &text, &[("STRONGROOM_FAILPOINT", &target)]);
        unseal(&crashing, &keys);
        let rpc = Rpc::new(&crashing, &token);
        let answer = match case {
            Case::Distribute => rpc.distribute(&key).map(|_| ()),
            Case::Rotate => rpc.rotate(&key),
            Case::Remove => rpc.remove(&key).map(|_| ()),
        };
        assert!(answer.is_err(), "{target}: the call answered");
        drop(rpc);
        let exit = crashing
            .wait_exit(Duration::from_secs(20))
            .unwrap_or_else(|| panic!("{target}: the daemon did not crash"));
        assert_eq!(exit.signal(), Some(Signal::SIGABRT as i32), "{target}");
        assert!(
            crashing
                .stderr
                .text()
                .contains(&format!("failpoint {target}: aborting")),
            "{target}: aborted elsewhere"
        );

        daemon = Daemon::start(dir.path(), &text);
        unseal(&daemon, &keys);
        let rpc = Rpc::new(&daemon, &token);
        let kms = Account(account.clone());
        match case {
            Case::Distribute | Case::Rotate => {
                let versions = if case == Case::Rotate { 2 } else { 1 };
                let done = rpc
                    .distribute(&key)
                    .unwrap_or_else(|e| panic!("{target}: distributing again: {e}"));
                distributed(&kms, &key, &done, versions, &target);
                assert_eq!(rpc.read(&key), done, "{target}");
            }
            Case::Remove => {
                let done = rpc
                    .remove(&key)
                    .unwrap_or_else(|e| panic!("{target}: removing again: {e}"));
                removed(&kms, &key, &done, &target);
                assert_eq!(rpc.read(&key), done, "{target}");
            }
        }
    }
    assert!(daemon.stop().success());
}

/// One KMS key per version of `key`, each tagged, recorded in `seen` and
/// enabled; no other key of `key` in the account; the alias on the newest,
/// and Encrypt through it answered by that key.
fn distributed(
    kms: &Account,
    key: &str,
    seen: &proto::DistributionInfo,
    versions: u32,
    target: &str,
) {
    assert_eq!(seen.pending_deletion_until, 0, "{target}");
    assert_eq!(seen.alias, format!("alias/{key}"), "{target}");
    assert_eq!(seen.alias_version, versions, "{target}");
    assert_eq!(seen.versions.len(), versions as usize, "{target}");
    let made = kms.keys_of(key);
    assert_eq!(
        made.len(),
        versions as usize,
        "{target}: one KMS key per version, no more: {made:?}"
    );
    let mut tags = Vec::new();
    for (version, recorded) in (1..=versions).zip(&seen.versions) {
        assert_eq!(recorded.version, version, "{target}");
        assert_eq!(recorded.state, "enabled", "{target}");
        let found: Vec<&KmsKey> = made.iter().filter(|k| k.version == version).collect();
        assert_eq!(found.len(), 1, "{target}: version {version}: {made:?}");
        let found = found[0];
        assert_eq!(found.id, recorded.kms_key_id, "{target}: version {version}");
        assert_eq!(found.arn, recorded.arn, "{target}");
        assert_eq!(found.state, "Enabled", "{target}: version {version}");
        assert_eq!(found.origin, "EXTERNAL", "{target}");
        let tag = found.tag.clone().unwrap_or_else(|| {
            panic!("{target}: version {version}'s KMS key carries no {TAG} tag")
        });
        assert!(!tag.is_empty(), "{target}");
        tags.push(tag);
    }
    tags.sort();
    tags.dedup();
    assert_eq!(
        tags.len(),
        versions as usize,
        "{target}: one tag per version"
    );

    let newest = &seen.versions[versions as usize - 1];
    assert_eq!(
        kms.alias_target(&seen.alias).as_deref(),
        Some(newest.kms_key_id.as_str()),
        "{target}: the alias is not on the newest version's key"
    );
    let (status, answer) = kms.call(
        "Encrypt",
        json!({"KeyId": seen.alias, "Plaintext": "c2VjcmV0"}),
    );
    assert_eq!(status, 200, "{target}: Encrypt through the alias: {answer}");
    assert_eq!(answer["KeyId"], newest.arn.as_str(), "{target}");
}

/// Every KMS key of `key` pending deletion, the alias gone, the record
/// removed with KMS's deletion date.
fn removed(kms: &Account, key: &str, seen: &proto::DistributionInfo, target: &str) {
    let made = kms.keys_of(key);
    assert_eq!(made.len(), 1, "{target}: {made:?}");
    for found in &made {
        assert_eq!(found.state, "PendingDeletion", "{target}: {found:?}");
        assert!(found.tag.is_some(), "{target}: {found:?}");
        assert_eq!(found.id, seen.versions[0].kms_key_id, "{target}");
    }
    assert_eq!(seen.versions[0].state, "pending_deletion", "{target}");
    assert_eq!(seen.alias_version, 0, "{target}");
    assert_eq!(kms.alias_target(&seen.alias), None, "{target}: the alias");
    // KMS's date, a week ahead: not the time of the retry.
    let now = strongroom::time::now_unix() as i64;
    let days = i64::from(DELETION_DAYS - 1) * 86_400;
    assert!(
        seen.pending_deletion_until > now + days,
        "{target}: pending deletion until {} (now {now})",
        seen.pending_deletion_until
    );
    let (status, answer) = kms.call(
        "Encrypt",
        json!({"KeyId": seen.alias, "Plaintext": "c2VjcmV0"}),
    );
    assert_eq!(status, 400, "{target}: {answer}");
    assert_eq!(answer["__type"], "NotFoundException", "{target}");
}

/// A 12-digit account id no other test of the run uses.
fn unique_account() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{:06}{:06}",
        std::process::id() % 1_000_000,
        nanos % 1_000_000
    )
}

/// A KMS key of the account, as the checks see it.
#[derive(Debug)]
struct KmsKey {
    id: String,
    arn: String,
    /// The strongroom key version its description names.
    version: u32,
    state: String,
    origin: String,
    /// Its `strongroom-distribution` tag.
    tag: Option<String>,
}

/// LocalStack's KMS as the account `.0`.
struct Account(String);

impl Account {
    /// One KMS JSON request: the HTTP status and the answer.
    fn call(&self, action: &str, body: Value) -> (u16, Value) {
        let addr = format!("127.0.0.1:{}", localstack().port);
        let body = serde_json::to_vec(&body).unwrap();
        let mut stream = TcpStream::connect(&addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let head = format!(
            "POST / HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/x-amz-json-1.1\r\n\
             X-Amz-Target: TrentService.{action}\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential={}/20261206/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=0\r\n\
             Content-Length: {}\r\n\r\n",
            self.0,
            body.len()
        );
        stream
            .write_all(&[head.as_bytes(), &body].concat())
            .unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        let text = String::from_utf8(answer).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_string()
        };
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    fn ok(&self, action: &str, body: Value) -> Value {
        let (status, answer) = self.call(action, body);
        assert_eq!(status, 200, "{action}: {answer}");
        answer
    }

    /// The KMS keys strongroom made for `key` (by their description).
    fn keys_of(&self, key: &str) -> Vec<KmsKey> {
        let prefix = format!("strongroom keymgmt key {key} version ");
        let mut found = Vec::new();
        let mut marker = None::<String>;
        loop {
            let mut request = json!({"Limit": 1000});
            if let Some(marker) = &marker {
                request["Marker"] = json!(marker);
            }
            let page = self.ok("ListKeys", request);
            for entry in page["Keys"].as_array().unwrap() {
                let id = entry["KeyId"].as_str().unwrap();
                let metadata = self.ok("DescribeKey", json!({"KeyId": id}))["KeyMetadata"].clone();
                let Some(version) = metadata["Description"]
                    .as_str()
                    .and_then(|d| d.strip_prefix(&prefix))
                else {
                    continue;
                };
                let tags = self.ok("ListResourceTags", json!({"KeyId": id}));
                found.push(KmsKey {
                    id: id.to_string(),
                    arn: metadata["Arn"].as_str().unwrap().to_string(),
                    version: version.parse().unwrap(),
                    state: metadata["KeyState"].as_str().unwrap().to_string(),
                    origin: metadata["Origin"].as_str().unwrap().to_string(),
                    tag: tags["Tags"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|t| t["TagKey"] == TAG)
                        .map(|t| t["TagValue"].as_str().unwrap().to_string()),
                });
            }
            match page["NextMarker"].as_str() {
                Some(next) if page["Truncated"] == true => marker = Some(next.to_string()),
                _ => return found,
            }
        }
    }

    /// The key id `alias` points at, if the alias exists.
    fn alias_target(&self, alias: &str) -> Option<String> {
        let mut marker = None::<String>;
        loop {
            let mut request = json!({"Limit": 100});
            if let Some(marker) = &marker {
                request["Marker"] = json!(marker);
            }
            let page = self.ok("ListAliases", request);
            if let Some(found) = page["Aliases"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["AliasName"] == alias)
            {
                return found["TargetKeyId"].as_str().map(str::to_string);
            }
            match page["NextMarker"].as_str() {
                Some(next) if page["Truncated"] == true => marker = Some(next.to_string()),
                _ => return None,
            }
        }
    }
}

/// The body of a chunked HTTP answer.
fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        body.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    body
}

/// The KeyMgmt service of a daemon, as the root token.
struct Rpc {
    runtime: tokio::runtime::Runtime,
    addr: String,
    token: String,
}

impl Rpc {
    fn new(daemon: &Daemon, token: &str) -> Self {
        Self {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            addr: daemon.addr.clone(),
            token: token.to_string(),
        }
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = with_token(message, &self.token);
        request.set_timeout(CALL_DEADLINE);
        request
    }

    fn client(&self) -> KeyMgmtClient<tonic::transport::Channel> {
        self.runtime
            .block_on(async { KeyMgmtClient::new(channel(&self.addr).await) })
    }

    /// The provider `aws`: LocalStack, as `account`.
    fn write_provider(&self, account: &str) {
        let request = self.request(proto::WriteProviderRequest {
            name: PROVIDER.into(),
            provider: "awskms".into(),
            key_collection: "us-east-1".into(),
            endpoint: localstack().endpoint(),
            credentials: Some(proto::ProviderCredentials {
                access_key: account.into(),
                secret_key: "test".into(),
                session_token: String::new(),
                clear: false,
            }),
        });
        self.runtime
            .block_on(self.client().write_provider(request))
            .unwrap();
    }

    fn write_key(&self, key: &str) {
        let request = self.request(proto::WriteKeyRequest {
            name: key.into(),
            r#type: "aes256-gcm96".into(),
            deletion_allowed: Some(true),
            min_enabled_version: None,
        });
        self.runtime
            .block_on(self.client().write_key(request))
            .unwrap();
    }

    fn distribute(&self, key: &str) -> Result<proto::DistributionInfo, tonic::Status> {
        let request = self.request(proto::DistributeRequest {
            provider: PROVIDER.into(),
            key: key.into(),
            purpose: vec!["encrypt".into(), "decrypt".into()],
            protection: "hsm".into(),
        });
        self.runtime
            .block_on(self.client().distribute(request))
            .map(tonic::Response::into_inner)
    }

    fn rotate(&self, key: &str) -> Result<(), tonic::Status> {
        let request = self.request(proto::RotateKeyMgmtKeyRequest { name: key.into() });
        self.runtime
            .block_on(self.client().rotate_key(request))
            .map(|_| ())
    }

    fn remove(&self, key: &str) -> Result<proto::DistributionInfo, tonic::Status> {
        let request = self.request(proto::RemoveDistributionRequest {
            provider: PROVIDER.into(),
            key: key.into(),
            deletion_window_days: DELETION_DAYS,
        });
        self.runtime
            .block_on(self.client().remove_distribution(request))
            .map(tonic::Response::into_inner)
    }

    fn read(&self, key: &str) -> proto::DistributionInfo {
        let request = self.request(proto::ReadDistributionRequest {
            provider: PROVIDER.into(),
            key: key.into(),
        });
        self.runtime
            .block_on(self.client().read_distribution(request))
            .unwrap()
            .into_inner()
    }
}
