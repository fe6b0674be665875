//! The AWS KMS client against local sockets: errors as sentences, and
//! `decrypt_once`'s single attempt. The IAM action lists against the SDK
//! calls in the source and the README.

use std::collections::BTreeSet;

use super::*;

/// A client for `endpoint` in `region`, with static keys so nothing
/// looks for credentials off this host.
fn client_for(region: &str, endpoint: &str) -> AwsKms {
    use crate::config::{AwsCredentialSettings, Setting};
    use crate::secret::SecretString;
    AwsKms::new(AwsKmsSeal {
        kms_key_id: Setting::default_value("alias/k".into()),
        region: Some(Setting::default_value(region.into())),
        endpoint: Some(Setting::default_value(endpoint.into())),
        credentials: AwsCredentialSettings {
            access_key: Some("AKIDTEST".into()),
            secret_key: Some(SecretString::new("test-secret".into())),
            ..AwsCredentialSettings::default()
        },
        health_check_interval: Duration::ZERO,
        kms_timeout: crate::config::DEFAULT_KMS_TIMEOUT,
        line: 1,
    })
}

fn context() -> EncryptionContext {
    EncryptionContext {
        seal: None,
        purpose: "root-key",
        cluster_id: "c".into(),
    }
}

/// No SDK type names, no Debug structs: a sentence.
fn assert_plain(message: &str) {
    for dump in [
        "DispatchFailure",
        "ConnectorError",
        "ConstructionFailure",
        "{",
        "Error(",
    ] {
        assert!(!message.contains(dump), "{dump} in {message}");
    }
}

#[tokio::test]
async fn a_refused_connection_names_the_endpoint_and_the_os_error() {
    // Bound but not listening, and held: connections are refused, and
    // no other process can take the port meanwhile.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let endpoint = format!("http://{}", socket.local_addr().unwrap());
    let kms = client_for("us-east-1", &endpoint);
    let err = kms
        .decrypt(b"blob", &context(), "arn:k")
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind, KmsErrorKind::Unavailable);
    assert_eq!(
        err.message,
        format!("KMS at {endpoint} is unreachable for Decrypt: Connection refused (os error 111)")
    );
    assert_plain(&err.message);
}

#[tokio::test]
async fn a_kms_that_never_answers_is_named_with_the_call_that_timed_out() {
    // Listening but never accepting: the kernel completes the handshake,
    // the request is sent, no answer comes (the operation timeout ends it).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let kms = client_for("us-east-1", &endpoint);
    let err = kms.describe_key("alias/k").await.err().unwrap();
    assert_eq!(err.kind, KmsErrorKind::Unavailable);
    assert_eq!(
        err.message,
        format!("KMS at {endpoint} did not answer DescribeKey in time")
    );
}

#[tokio::test]
async fn decrypt_once_makes_one_attempt_and_gives_up_after_kms_timeout() {
    // Accepts connections, counts them, reads the request and never
    // answers: the SDK's retries would open more connections.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let server = tokio::spawn({
        let accepted = std::sync::Arc::clone(&accepted);
        async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = silent.accept().await {
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(stream);
            }
        }
    });
    let mut kms = client_for("us-east-1", &endpoint);
    kms.settings.kms_timeout = Duration::from_secs(1);
    let started = Instant::now();
    let err = kms
        .decrypt_once(b"blob", &context(), "arn:k")
        .await
        .err()
        .unwrap();
    let took = started.elapsed();
    assert_eq!(err.kind, KmsErrorKind::Unavailable);
    assert_eq!(
        err.message,
        format!("KMS at {endpoint} did not answer within 1s (kms_timeout): Decrypt with key arn:k")
    );
    assert_plain(&err.message);
    // A deadline, not a measurement: the default retries alone would
    // take 3 attempts of 5 s.
    assert!(took < Duration::from_secs(4), "gave up after {took:?}");
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    server.abort();
}

#[test]
fn without_an_endpoint_url_the_region_names_the_endpoint() {
    let mut kms = client_for("eu-west-1", "");
    kms.endpoint.clear();
    assert_eq!(kms.endpoint_label(), "KMS in region eu-west-1");
}

#[tokio::test]
async fn an_invalid_region_reads_as_one_sentence() {
    let kms = client_for("eu west 1", "http://127.0.0.1:9");
    let err = kms.encrypt(b"k", &context()).await.err().unwrap();
    assert_eq!(err.kind, KmsErrorKind::Config);
    assert_eq!(
        err.message,
        "no Encrypt request can be made: the AWS region \"eu west 1\" is not a valid region name (like eu-west-1)"
    );
    assert!(!err.is_transient());
    assert_plain(&err.message);
}

#[test]
fn arn_scope_reads_partition_region_account() {
    assert_eq!(
        arn_scope("arn:aws:kms:eu-west-1:111122223333:key/abc"),
        Some(("aws", "eu-west-1", "111122223333"))
    );
    assert_eq!(arn_scope("alias/x"), None);
    assert_eq!(arn_scope("arn:aws:s3:::bucket"), None);
}

/// The KMS actions the SDK calls in `source` name: `.client().await?.encrypt()`
/// and `client.enable_key()` become `kms:Encrypt` and `kms:EnableKey`.
fn sdk_actions(source: &str) -> BTreeSet<String> {
    let flat: String = source.split_whitespace().collect();
    let mut actions = BTreeSet::new();
    for (at, _) in flat.match_indices("client") {
        // A call on the client, not the struct's `self.client` field.
        let before = flat[..at].chars().next_back();
        let rest = &flat[at + "client".len()..];
        let call = if before == Some('.') {
            rest.strip_prefix("().await?.")
        } else if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            None
        } else {
            rest.strip_prefix('.')
        };
        let Some(call) = call else { continue };
        let name: String = call
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        if name.is_empty() || !call[name.len()..].starts_with("()") {
            continue;
        }
        let pascal: String = name
            .split('_')
            .map(|word| {
                let mut chars = word.chars();
                chars.next().map_or(String::new(), |first| {
                    first.to_ascii_uppercase().to_string() + chars.as_str()
                })
            })
            .collect();
        actions.insert(format!("kms:{pascal}"));
    }
    actions
}

fn set(actions: &[&str]) -> BTreeSet<String> {
    let set: BTreeSet<String> = actions.iter().map(|a| a.to_string()).collect();
    assert_eq!(set.len(), actions.len(), "{actions:?} lists one twice");
    set
}

#[test]
fn sdk_actions_reads_chained_and_bound_calls_only() {
    let source = "let x = self\n .client()\n .await?\n .describe_key()\n .key_id(k);\n\
                  let page = client\n .list_resource_tags()\n .send();\n\
                  self.client.get_or_try_init(|| b); my_client.other_call(); self.client().await;";
    assert_eq!(
        sdk_actions(source),
        set(&["kms:DescribeKey", "kms:ListResourceTags"])
    );
}

/// A KMS call added to the seal without its action in [`SEAL_ACTIONS`]
/// (or an action left in the list after its call went) fails here; the
/// list is what the README and `deploy/terraform/` are checked against.
#[test]
fn seal_actions_are_exactly_the_calls_of_the_seal() {
    // Every file of the seal's client, a new one too: diagnose's probe
    // calls through it as well.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/seal/awskms");
    let mut calls = sdk_actions(include_str!("../awskms.rs"));
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("tests.rs") {
            calls.extend(sdk_actions(&std::fs::read_to_string(&path).unwrap()));
        }
    }
    assert_eq!(calls, set(SEAL_ACTIONS));
}

/// The same for Key Management: every call's action is in `BYOK_ACTIONS`,
/// and every action there is a call but kms:TagResource, which CreateKey
/// needs for the tags it is sent with.
#[test]
fn byok_actions_are_exactly_the_calls_of_a_distribution() {
    use crate::seal::import::aws::BYOK_ACTIONS;
    let mut calls = sdk_actions(include_str!("../import/aws.rs"));
    calls.insert("kms:TagResource".to_string());
    assert_eq!(calls, set(BYOK_ACTIONS));
}

/// The README's IAM paragraph for the seal and its policy's `Action`s
/// list exactly [`SEAL_ACTIONS`].
#[test]
fn the_readme_seal_policy_lists_exactly_the_seal_actions() {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find("**IAM**: strongroom calls")
        .expect("the README has the seal's IAM paragraph");
    let section = &readme[start..];
    let open = section.find("```json").expect("the seal's IAM policy");
    let (prose, snippet) = section.split_at(open);
    let snippet = &snippet[3..];
    let snippet = &snippet[..snippet.find("```").expect("the snippet ends")];

    let named: BTreeSet<String> = prose
        .split('`')
        .filter(|word| word.starts_with("kms:"))
        .map(str::to_string)
        .collect();
    assert_eq!(named, set(SEAL_ACTIONS), "the paragraph");

    let granted: BTreeSet<String> = snippet
        .lines()
        .filter_map(|line| line.trim().strip_prefix("\"Action\":"))
        .flat_map(|values| values.split('"'))
        .filter(|word| word.starts_with("kms:"))
        .map(str::to_string)
        .collect();
    assert_eq!(granted, set(SEAL_ACTIONS), "the policy");
}
