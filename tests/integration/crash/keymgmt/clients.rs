//! The clients of the Key Management crash cases: the daemon's KeyMgmt
//! service over gRPC, and LocalStack's KMS as an account of the test's own.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};
use strongroom::proto::{self, key_mgmt_client::KeyMgmtClient};
use strongroom_test_support::localstack::localstack;

use super::{DELETION_DAYS, PROVIDER, TAG};
use crate::support::daemon::Daemon;
use crate::support::grpc::{channel, with_token};

/// How long one gRPC call may take (a distribution makes a dozen KMS calls).
const CALL_DEADLINE: Duration = Duration::from_secs(60);

/// A 12-digit account id no other test of the run uses.
pub(super) fn unique_account() -> String {
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
pub(super) struct KmsKey {
    pub(super) id: String,
    pub(super) arn: String,
    /// The strongroom key version its description names.
    pub(super) version: u32,
    pub(super) state: String,
    pub(super) origin: String,
    /// Its `strongroom-distribution` tag.
    pub(super) tag: Option<String>,
}

/// LocalStack's KMS as the account `.0`.
pub(super) struct Account(pub(super) String);

impl Account {
    /// One KMS JSON request: the HTTP status and the answer.
    pub(super) fn call(&self, action: &str, body: Value) -> (u16, Value) {
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
    pub(super) fn keys_of(&self, key: &str) -> Vec<KmsKey> {
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
    pub(super) fn alias_target(&self, alias: &str) -> Option<String> {
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
pub(super) struct Rpc {
    runtime: tokio::runtime::Runtime,
    addr: String,
    token: String,
}

impl Rpc {
    pub(super) fn new(daemon: &Daemon, token: &str) -> Self {
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

    /// The provider `aws`: KMS at `endpoint`, as `account`.
    pub(super) fn write_provider(&self, account: &str, endpoint: &str) {
        let request = self.request(proto::WriteProviderRequest {
            name: PROVIDER.into(),
            provider: "awskms".into(),
            key_collection: "us-east-1".into(),
            endpoint: Some(endpoint.into()),
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

    pub(super) fn write_key(&self, key: &str) {
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

    pub(super) fn distribute(&self, key: &str) -> Result<proto::DistributionInfo, tonic::Status> {
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

    pub(super) fn rotate(&self, key: &str) -> Result<(), tonic::Status> {
        let request = self.request(proto::RotateKeyMgmtKeyRequest { name: key.into() });
        self.runtime
            .block_on(self.client().rotate_key(request))
            .map(|_| ())
    }

    pub(super) fn remove(&self, key: &str) -> Result<proto::DistributionInfo, tonic::Status> {
        let request = self.request(proto::RemoveDistributionRequest {
            provider: PROVIDER.into(),
            key: key.into(),
            deletion_window_days: DELETION_DAYS,
        });
        self.runtime
            .block_on(self.client().remove_distribution(request))
            .map(tonic::Response::into_inner)
    }

    pub(super) fn delete_key(&self, key: &str) -> Result<(), tonic::Status> {
        let request = self.request(proto::DeleteKeyMgmtKeyRequest {
            name: key.into(),
            deletion_window_days: DELETION_DAYS,
        });
        self.runtime
            .block_on(self.client().delete_key(request))
            .map(|_| ())
    }

    /// ReadKey's refusal (the key is expected gone).
    pub(super) fn read_key(&self, key: &str) -> tonic::Status {
        let request = self.request(proto::ReadKeyMgmtKeyRequest { name: key.into() });
        self.runtime
            .block_on(self.client().read_key(request))
            .expect_err("the key is deleted")
    }

    pub(super) fn read(&self, key: &str) -> proto::DistributionInfo {
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
