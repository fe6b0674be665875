//! AWS SDK errors as the one plain sentence an operator reads in Status, the
//! CLI and the log: KMS's own answers by their meaning, and failures on the
//! way (refused or dropped connections, timeouts, a request that cannot be
//! built) naming the endpoint and the OS's reason. Never the SDK's Debug
//! dump, which `DisplayErrorContext` appends.

use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};

use super::kms::{KmsError, KmsErrorKind};

/// Turns a failed SDK call into a [`KmsError`]. `at` names the endpoint
/// ("KMS at https://…"), `region` is the client's, `key` the key the call
/// was about.
pub(super) fn sdk_error<E>(
    at: &str,
    region: &str,
    action: &str,
    key: &str,
    err: SdkError<E, aws_sdk_kms::config::http::HttpResponse>,
) -> KmsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let cause = root_cause(&err);
    match &err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code().unwrap_or("");
            let message = service.err().message().unwrap_or("no reason given");
            classify(action, key, status, code, message)
        }
        SdkError::TimeoutError(_) => KmsError::new(
            KmsErrorKind::Unavailable,
            format!("{at} did not answer {action} in time"),
        ),
        // The chain found no credentials: nothing was sent, and a retry
        // finds none either.
        SdkError::DispatchFailure(_) if cause.starts_with("no credentials found") => KmsError::new(
            KmsErrorKind::Denied,
            format!(
                "no AWS credentials were found for {action} at {at}: give static credentials, or give the daemon some through its environment, shared files, web identity or instance role"
            ),
        ),
        SdkError::DispatchFailure(failure) => {
            let text = match failure.as_connector_error() {
                Some(c) if c.is_timeout() => {
                    format!("{at} did not answer {action} in time: {cause}")
                }
                Some(c) if c.is_user() => {
                    format!("the {action} request to {at} could not be sent: {cause}")
                }
                _ => format!("{at} is unreachable for {action}: {cause}"),
            };
            KmsError::new(KmsErrorKind::Unavailable, text)
        }
        SdkError::ResponseError(_) => KmsError::new(
            KmsErrorKind::Unavailable,
            format!("{at} sent an unreadable answer to {action}"),
        ),
        // Retrying cannot fix the region: a Config error, retried rarely.
        SdkError::ConstructionFailure(_) if names_region(&err) => KmsError::new(
            KmsErrorKind::Config,
            format!(
                "no {action} request can be made: the AWS region {region:?} is not a valid region name (like eu-west-1)"
            ),
        ),
        _ => KmsError::new(
            KmsErrorKind::Denied,
            format!("the {action} request to {at} could not be made: {cause}"),
        ),
    }
}

/// How the sentence of KMS's AccessDeniedException begins (diagnose names
/// the missing permission from it).
pub(super) const DENIED: &str = "KMS denied";

/// Longest cause quoted in an error sentence.
const MAX_CAUSE: usize = 200;

/// The innermost error of `err`'s `source()` chain, which says what the
/// OS or the SDK found ("Connection refused (os error 111)"); the outer
/// layers only say which layer passed it on. Bounded in size.
pub(super) fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = err;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    // One line: some causes go on to list what was tried, line by line.
    let text = innermost.to_string();
    let text = text
        .lines()
        .next()
        .unwrap_or_default()
        .trim_end_matches(['.', ' ']);
    match text.char_indices().nth(MAX_CAUSE) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// Whether the request could not be built because of the region (the SDK's
/// endpoint parameters refused it).
fn names_region(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.downcast_ref::<aws_sdk_kms::config::endpoint::InvalidParams>()
            .is_some_and(|p| p.to_string().contains("`region`"))
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// Turns a KMS error answer into a kind and one plain sentence.
fn classify(action: &str, key: &str, status: u16, code: &str, message: &str) -> KmsError {
    use KmsErrorKind::*;
    let (kind, text) = match code {
        "DisabledException" => (KeyUnusable, format!("KMS key {key} is disabled")),
        "KMSInvalidStateException" if message.contains("pending deletion") => {
            (KeyUnusable, format!("KMS key {key} is pending deletion"))
        }
        "KMSInvalidStateException" => (
            KeyUnusable,
            format!("KMS key {key} cannot be used in its current state: {message}"),
        ),
        "NotFoundException" => (
            KeyUnusable,
            format!("KMS key {key} was not found: {message}"),
        ),
        "KeyUnavailableException" => (
            Unavailable,
            format!("KMS key {key} is unavailable: {message}"),
        ),
        "ThrottlingException"
        | "Throttling"
        | "RequestLimitExceeded"
        | "LimitExceededException" => (
            Throttled,
            format!("KMS is throttling {action} requests: {message}"),
        ),
        "AccessDeniedException" => (Denied, format!("{DENIED} {action} on key {key}: {message}")),
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "ExpiredTokenException"
        | "IncompleteSignature"
        | "InvalidClientTokenId" => (
            Denied,
            format!("KMS refused the credentials for {action}: {code}: {message}"),
        ),
        "InvalidCiphertextException" | "IncorrectKeyException" => (
            Rejected,
            format!("KMS refused to decrypt the stored data key under {key}: {code}: {message}"),
        ),
        _ if status >= 500 => (
            Unavailable,
            format!("KMS answered {action} with HTTP {status}: {code} {message}"),
        ),
        _ => (
            Denied,
            format!("KMS refused {action} on key {key}: {code}: {message}"),
        ),
    };
    KmsError::new(kind, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_and_name_the_key() {
        let key = "arn:aws:kms:eu-west-1:111122223333:key/k";
        let e = classify("Decrypt", key, 400, "DisabledException", "x");
        assert_eq!(
            (e.kind, e.message.as_str()),
            (
                KmsErrorKind::KeyUnusable,
                "KMS key arn:aws:kms:eu-west-1:111122223333:key/k is disabled"
            )
        );
        let e = classify(
            "Decrypt",
            key,
            400,
            "KMSInvalidStateException",
            "arn:… is pending deletion.",
        );
        assert_eq!(e.message, format!("KMS key {key} is pending deletion"));
        assert!(e.is_transient());
        let e = classify("Encrypt", key, 400, "ThrottlingException", "Rate exceeded");
        assert_eq!(e.kind, KmsErrorKind::Throttled);
        let e = classify(
            "Encrypt",
            key,
            400,
            "AccessDeniedException",
            "no kms:Encrypt",
        );
        assert_eq!(e.kind, KmsErrorKind::Denied);
        assert!(e.message.contains("no kms:Encrypt"));
        let e = classify("Decrypt", key, 400, "InvalidCiphertextException", "");
        assert!(!e.is_transient());
        let e = classify("Decrypt", key, 503, "", "busy");
        assert_eq!(e.kind, KmsErrorKind::Unavailable);
    }

    #[derive(Debug)]
    struct Layer(std::io::Error);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("io error")
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_is_the_innermost_error_and_bounded() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "x".repeat(500));
        let cause = root_cause(&Layer(io));
        assert_eq!(cause.chars().count(), MAX_CAUSE + 1);
        assert!(cause.starts_with("xxx") && cause.ends_with('…'), "{cause}");
    }
}
