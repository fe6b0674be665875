//! What an endpoint answers, in Vault's shapes: a JSON object as is (most
//! of `sys/`), a logical response (`data`, `auth` and the fields around
//! them) or nothing (204); an error as `{"errors":["…"]}` with Vault's
//! status code.

use axum::body::Body;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::error::Error;
use crate::text;

/// A successful answer.
pub struct Reply {
    status: StatusCode,
    body: Option<Value>,
    /// A body that is not JSON, with its content type (`sys/metrics`).
    text: Option<(&'static str, String)>,
}

impl Reply {
    /// `body` as is, with `status`.
    pub fn json(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            body: Some(body),
            text: None,
        }
    }

    /// 200 with `text` as `content_type` (not JSON: `sys/metrics`).
    pub fn text(content_type: &'static str, text: String) -> Self {
        Self {
            status: StatusCode::OK,
            body: None,
            text: Some((content_type, text)),
        }
    }

    /// `body` as is, 200.
    pub fn ok(body: Value) -> Self {
        Self::json(StatusCode::OK, body)
    }

    /// 204, no body.
    pub fn no_content() -> Self {
        Self {
            status: StatusCode::NO_CONTENT,
            body: None,
            text: None,
        }
    }

    /// A logical response with `data` (a secret engine's read).
    pub fn data(data: Value) -> Self {
        Self::ok(logical(data, Value::Null))
    }

    /// A logical response with `data`, sent with `status` (a transit batch
    /// with failed items: 400 with every item's result, as Vault answers).
    pub fn data_with_status(status: StatusCode, data: Value) -> Self {
        Self::json(status, logical(data, Value::Null))
    }

    /// A logical response of a `sys/` endpoint: `data`'s fields both at
    /// the top level and under `data`, as Vault answers `sys/key-status`
    /// and the like.
    pub fn sys(data: Value) -> Self {
        let mut body = logical(data.clone(), Value::Null);
        if let (Value::Object(top), Value::Object(fields)) = (&mut body, data) {
            for (name, value) in fields {
                top.entry(name).or_insert(value);
            }
        }
        Self::ok(body)
    }

    /// A logical response with an `auth` block (token create, renew), its
    /// `data` null.
    pub fn auth(auth: Value) -> Self {
        Self::ok(logical(Value::Null, auth))
    }

    /// A logical response with Vault's `warnings` added (none: as it was).
    pub fn warn(mut self, warnings: Vec<String>) -> Self {
        if let Some(body) = self.body.as_mut().filter(|_| !warnings.is_empty()) {
            match &mut body["warnings"] {
                Value::Array(earlier) => earlier.extend(warnings.into_iter().map(Value::from)),
                slot => *slot = json!(warnings),
            }
        }
        self
    }

    /// The status the reply is sent with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The HTTP response.
    pub fn into_response(self) -> http::Response<Body> {
        let Some((content_type, text)) = self.text else {
            return respond(self.status, self.body.as_ref());
        };
        let mut response = respond(self.status, None);
        *response.body_mut() = Body::from(text);
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    }
}

/// Vault's envelope around a logical response.
fn logical(data: Value, auth: Value) -> Value {
    json!({
        "request_id": request_id(),
        "lease_id": "",
        "renewable": false,
        "lease_duration": 0,
        "data": data,
        "wrap_info": null,
        "warnings": null,
        "auth": auth,
    })
}

/// A random id in the shape of Vault's request ids (a version 4 UUID).
fn request_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// A refused or failed request.
#[derive(Debug)]
pub struct HttpError {
    status: StatusCode,
    errors: Vec<String>,
    /// No endpoint serves the path (a different answer while sealed).
    no_route: bool,
}

impl HttpError {
    /// `status` with one sentence (cut to a bounded length).
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            errors: vec![text::bounded(message.into())],
            no_route: false,
        }
    }

    /// 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404 with no sentence, as Vault answers a read of nothing.
    pub fn not_found() -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            errors: Vec::new(),
            no_route: false,
        }
    }

    /// 404 for a path no endpoint serves.
    pub fn no_route(path: &str) -> Self {
        Self {
            no_route: true,
            ..Self::new(
                StatusCode::NOT_FOUND,
                format!("no handler for route {}", text::quote(path)),
            )
        }
    }

    /// 405 for a method Vault's API does not know (`TRACE`).
    pub fn method(method: &http::Method) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "unsupported operation: Vault's API takes no {} requests",
                text::quote(method.as_str())
            ),
        )
    }

    /// 405 for an operation the path does not take (GET on `sys/seal`).
    pub fn unsupported() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "unsupported operation: this path does not take that method",
        )
    }

    /// Whether this is [`HttpError::no_route`]'s answer.
    pub fn is_no_route(&self) -> bool {
        self.no_route
    }

    /// The status the error is sent with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The HTTP response.
    pub fn into_response(self) -> http::Response<Body> {
        respond(self.status, Some(&json!({ "errors": self.errors })))
    }
}

impl From<Error> for HttpError {
    /// The status Vault gives for the same kind of failure, with the
    /// error's sentence.
    fn from(err: Error) -> Self {
        let status = match &err {
            Error::InvalidArgument(_)
            | Error::AlreadyInitialized
            | Error::FailedPrecondition(_) => StatusCode::BAD_REQUEST,
            // Vault answers a missing or unknown token 403, as a refusal.
            Error::Unauthenticated(_) | Error::PermissionDenied(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Sealed
            | Error::NotInitialized
            | Error::KmsUnavailable(_)
            | Error::AuditUnavailable(_)
            | Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::KmsRefused(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %err, "request failed");
        }
        // Vault's clients recognise a sealed server by these words (`bao
        // status` reads a sealed node's leader error so).
        if let Error::Sealed = err {
            return Self::new(status, format!("Vault is sealed: {err}"));
        }
        Self::new(status, err.to_string())
    }
}

fn respond(status: StatusCode, body: Option<&Value>) -> http::Response<Body> {
    // Answers may carry keys and tokens: the encoded body is wiped once
    // sent (the JSON values it came from are not: see docs/SECRETS.md).
    let mut response = http::Response::new(match body {
        Some(value) => Body::from(bytes::Bytes::from_owner(Zeroizing::new(
            value.to_string().into_bytes(),
        ))),
        None => Body::empty(),
    });
    *response.status_mut() = status;
    let headers = response.headers_mut();
    // Answers carry secrets: no cache keeps them.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if body.is_some() {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_vaults_codes() {
        let cases = [
            (Error::InvalidArgument("x".into()), 400),
            (Error::Unauthenticated("x".into()), 403),
            (Error::PermissionDenied("x".into()), 403),
            (Error::Sealed, 503),
            (Error::NotInitialized, 503),
            (Error::AlreadyInitialized, 400),
            (Error::FailedPrecondition("x".into()), 400),
            (Error::NotFound("x".into()), 404),
            (Error::TooLarge("x".into()), 413),
            (Error::Internal("x".into()), 500),
            (Error::KmsUnavailable("x".into()), 503),
            (Error::AuditUnavailable("x".into()), 503),
            (Error::Unavailable("x".into()), 503),
            (Error::KmsRefused("x".into()), 500),
        ];
        for (err, code) in cases {
            assert_eq!(HttpError::from(err).status().as_u16(), code);
        }
    }

    #[test]
    fn request_ids_look_like_uuids() {
        let id = request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
    }

    #[test]
    fn long_sentences_are_cut() {
        let e = HttpError::bad_request("x".repeat(100_000));
        assert!(e.errors[0].len() <= text::MESSAGE_BYTES);
    }
}
