//! The AWS KMS client against local sockets: errors as sentences, and
//! `decrypt_once`'s single attempt.

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
