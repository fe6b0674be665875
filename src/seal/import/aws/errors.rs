//! A distribution's KMS errors as one sentence naming the KMS key or alias
//! and AWS's error code, with what the operator can do: the permission an
//! AccessDeniedException lacks, the quota a LimitExceededException hit.
//! Other failures (transport, throttling, credentials) keep the seal's
//! sentences.

use aws_sdk_kms::config::http::HttpResponse;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};

use crate::seal::awskms::AwsKms;
use crate::seal::kms::{KmsError, KmsErrorKind};

/// Longest part of KMS's own message quoted in a sentence.
const MAX_MESSAGE: usize = 200;

impl AwsKms {
    /// The sentence for `action` on `subject` ("KMS key <id>", "alias
    /// alias/<name> (to KMS key <id>)") that failed with `err`.
    pub(super) fn distribution_error<E>(
        &self,
        action: &str,
        subject: &str,
        err: SdkError<E, HttpResponse>,
    ) -> KmsError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        if let SdkError::ServiceError(service) = &err {
            let code = service.err().code().unwrap_or("");
            let message = service.err().message().unwrap_or("no reason given");
            if let Some(e) = distribution_sentence(action, subject, code, message) {
                return e;
            }
        }
        self.error(action, subject, err)
    }
}

/// The permission `action` needs, as the README's IAM policy names it.
pub(super) fn permission(action: &str) -> String {
    match action {
        // CreateKey with tags is also authorised as TagResource.
        "CreateKey" => "kms:CreateKey and kms:TagResource".to_string(),
        _ => format!("kms:{action}"),
    }
}

/// The sentence for KMS's answer `code` to `action` on `subject`, for the
/// codes a distribution meets; `None` for the others.
pub(super) fn distribution_sentence(
    action: &str,
    subject: &str,
    code: &str,
    message: &str,
) -> Option<KmsError> {
    use KmsErrorKind::*;
    let message = bounded(message);
    let (kind, why) = match code {
        "AccessDeniedException" => (
            Denied,
            format!(
                "the provider's credentials lack {} (the README's IAM policy for Key Management lists what they need): {message}",
                permission(action)
            ),
        ),
        // A quota of keys or aliases: waiting does not help, an operator does.
        "LimitExceededException" => (
            Denied,
            format!(
                "an AWS KMS quota of the account in this region is reached (keys, aliases or requests); free some or ask AWS to raise it: {message}"
            ),
        ),
        "KMSInvalidStateException" if message.contains("pending deletion") => {
            (KeyUnusable, "the key is pending deletion".to_string())
        }
        "KMSInvalidStateException" => (
            KeyUnusable,
            format!("the key's state does not allow it: {message}"),
        ),
        "NotFoundException" => (
            KeyUnusable,
            format!("it was not found in this region: {message}"),
        ),
        "AlreadyExistsException" => (Rejected, format!("it already exists: {message}")),
        _ => return None,
    };
    Some(KmsError::new(
        kind,
        format!("KMS refused {action} on {subject}: {code}, {why}"),
    ))
}

/// `message` cut to [`MAX_MESSAGE`] characters.
fn bounded(message: &str) -> String {
    match message.char_indices().nth(MAX_MESSAGE) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message.to_string(),
    }
}
