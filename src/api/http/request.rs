//! One HTTP request as Vault reads it: the operation its method names, the
//! path after `/v1/`, the query, the token, and the body, read whole up to
//! the listener's `max_request_size`.

use axum::body::Body;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use super::HttpError;
use crate::access::Caller;
use crate::api::Gate;
use crate::api::actions::{Action, Auth};
use crate::api::gate::Call;
use crate::api::identity::bearer;
use crate::error::Error;
use crate::text;

/// What a request asks of its path, as Vault's logical operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// GET (and HEAD).
    Read,
    /// LIST, or GET with `?list=true`.
    List,
    /// PUT and POST alike.
    Update,
    /// DELETE.
    Delete,
    /// PATCH.
    Patch,
}

/// A request, read.
pub struct Request {
    /// The operation.
    pub op: Op,
    /// A GET made a list by `?list=true` (paths that take no LIST read it
    /// as the GET it is, as Vault does).
    pub listed_by_query: bool,
    /// The path after `/v1/`, percent-decoded.
    pub path: String,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    extensions: http::Extensions,
    /// Wiped when the request is dropped: it may hold keys and shares.
    body: Zeroizing<Vec<u8>>,
}

impl Request {
    /// Reads `request`, refusing a method Vault does not take, a path
    /// outside `/v1/` or with `..` in it, and a body over `max_body` bytes.
    pub async fn read(request: http::Request<Body>, max_body: usize) -> Result<Self, HttpError> {
        let (parts, body) = request.into_parts();
        let query: Vec<(String, String)> = parts
            .uri
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let listing = query
            .iter()
            .any(|(k, v)| k == "list" && parse_bool(v) == Some(true));
        let op = match parts.method.as_str() {
            "GET" if listing => Op::List,
            "GET" | "HEAD" => Op::Read,
            "PUT" | "POST" => Op::Update,
            "DELETE" => Op::Delete,
            "LIST" => Op::List,
            "PATCH" => Op::Patch,
            _ => return Err(HttpError::method(&parts.method)),
        };
        let path = decode_path(parts.uri.path())?;
        let too_large = || {
            HttpError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request body is larger than this listener's max_request_size of {max_body} bytes"
                ),
            )
        };
        let declared = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max_body as u64) {
            return Err(too_large());
        }
        let body = match Limited::new(body, max_body).collect().await {
            Ok(collected) => Zeroizing::new(collected.to_bytes().to_vec()),
            Err(e) if e.is::<LengthLimitError>() => return Err(too_large()),
            Err(_) => {
                return Err(HttpError::bad_request(
                    "the request body could not be read to its end",
                ));
            }
        };
        Ok(Self {
            op,
            listed_by_query: listing && parts.method == http::Method::GET,
            path,
            query,
            headers: parts.headers,
            extensions: parts.extensions,
            body,
        })
    }

    /// The value of query parameter `name`, if given.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether query parameter `name` is given as true (`?standbyok=true`,
    /// `=1`); absent or empty (`?standbyok`) is false, as OpenBao reads
    /// it; a value that is not a boolean is refused.
    pub fn query_flag(&self, name: &str) -> Result<bool, HttpError> {
        match self.query(name) {
            None | Some("") => Ok(false),
            Some(v) => parse_bool(v).ok_or_else(|| {
                HttpError::bad_request(format!(
                    "the query parameter {name} must be true or false, not {}",
                    text::quote(v)
                ))
            }),
        }
    }

    /// The body as JSON of type `T`; an empty body is `{}`. A body that
    /// does not decode is an invalid argument (400) naming why.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let body: &[u8] = if self.body.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &self.body
        };
        serde_json::from_slice(body).map_err(|e| Error::InvalidArgument(decode_error(&e)))
    }

    /// A call of `action` about `resource` with the body decoded as `T`: a
    /// body that does not decode refuses the call at the gate's argument
    /// checks (two bounded audit lines, 400), and `T::default()` stands in
    /// for it, never used.
    pub fn call_json<'g, T: DeserializeOwned + Default>(
        &self,
        gate: &'g Gate,
        action: &'static Action,
        resource: &str,
    ) -> (Call<'g>, T) {
        let (checked, body) = match self.json::<T>() {
            Ok(body) => (Ok(()), body),
            Err(e) => (Err(e), T::default()),
        };
        (self.call(gate, action, resource).check(checked), body)
    }

    /// As [`Request::call_json`] for a body decoded as any JSON and then
    /// read by `parse` (Vault's loose decoding: a number as a string, and
    /// sentences that name a field's type, never its value): a body that
    /// does not decode or that `parse` refuses refuses the call at the
    /// gate, and `T::default()` stands in for it, never used.
    pub fn call_parsed<'g, T: Default>(
        &self,
        gate: &'g Gate,
        action: &'static Action,
        resource: &str,
        parse: impl FnOnce(serde_json::Value) -> Result<T, Error>,
    ) -> (Call<'g>, T) {
        let (checked, body) = match self.json::<serde_json::Value>().and_then(parse) {
            Ok(body) => (Ok(()), body),
            Err(e) => (Err(e), T::default()),
        };
        (self.call(gate, action, resource).check(checked), body)
    }

    /// The `content-type` header without its parameters, if given.
    pub fn content_type(&self) -> Option<&str> {
        let value = self
            .headers
            .get(http::header::CONTENT_TYPE)?
            .to_str()
            .ok()?;
        value.split(';').next().map(str::trim)
    }

    /// The raw body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The token the request carries: `X-Vault-Token`, else the bearer
    /// token of `Authorization`.
    pub fn token(&self) -> Option<&str> {
        if let Some(value) = self.headers.get("x-vault-token") {
            return Some(value.to_str().map(str::trim).unwrap_or(""));
        }
        bearer(
            self.headers
                .get(http::header::AUTHORIZATION)
                .map(|v| v.as_bytes()),
        )
    }

    /// The request's caller: its token and the connection's identity.
    pub fn caller(&self, gate: &Gate) -> Caller {
        crate::api::caller::caller(gate, self.token(), &self.extensions)
    }

    /// A call of `action` about `resource` by this request's caller (not
    /// looked for when the action asks nobody who they are).
    pub fn call<'g>(&self, gate: &'g Gate, action: &'static Action, resource: &str) -> Call<'g> {
        let caller = match action.auth {
            Auth::None => Caller::default(),
            _ => self.caller(gate),
        };
        gate.call(action, resource, caller)
    }
}

/// Go's `strconv.ParseBool`, which Vault's query flags use.
fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// The path after `/v1/`, percent-decoded; `..` and `.` segments refused.
pub(super) fn decode_path(raw: &str) -> Result<String, HttpError> {
    let Some(rest) = raw.strip_prefix("/v1/") else {
        return Err(HttpError::no_route(raw));
    };
    let decoded = percent_encoding::percent_decode_str(rest)
        .decode_utf8()
        .map_err(|_| HttpError::bad_request("the request path is not UTF-8 once decoded"))?;
    if decoded
        .split('/')
        .any(|segment| segment == ".." || segment == ".")
    {
        return Err(HttpError::bad_request(
            "the request path may not contain '.' or '..' segments",
        ));
    }
    Ok(decoded.into_owned())
}

/// Why a body did not decode, in words that never quote it: serde's text
/// for a value of the wrong type quotes the value (`invalid type: string
/// "s.…"`), which may be a token, a plaintext or a key share, and the
/// answer and the refused call's audit line carry this sentence. Syntax
/// errors name only a position.
fn decode_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let text = e.to_string();
    match e.classify() {
        Category::Io | Category::Syntax | Category::Eof => {
            format!("failed to decode JSON input: {text}")
        }
        Category::Data if text.starts_with("missing field ") => {
            format!("failed to decode JSON input: {text}")
        }
        Category::Data => {
            // serde's words after "expected" name the type wanted, from
            // our own types, never the input.
            let wanted = text
                .rsplit_once(", expected ")
                .map(|(_, rest)| {
                    rest.rsplit_once(" at line ")
                        .map_or(rest, |(wanted, _)| wanted)
                })
                .map(|wanted| format!(" where {} was expected", text::prefix(wanted, 120)))
                .unwrap_or_default();
            format!(
                "failed to decode JSON input: a value of the wrong type or form{wanted}, at line {} column {}",
                e.line(),
                e.column()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use http::Method;

    use super::*;

    #[test]
    fn a_body_that_does_not_decode_is_never_quoted() {
        #[derive(serde::Deserialize, Debug)]
        struct Shares {
            #[allow(dead_code)]
            n: u32,
        }
        let message = |body: &str| decode_error(&serde_json::from_str::<Shares>(body).unwrap_err());
        // A bare string where an object is wanted: serde's own text quotes it.
        let said = message(r#""s.HiddenToken123""#);
        assert!(!said.contains("HiddenToken"), "{said}");
        assert!(
            said.starts_with("failed to decode JSON input: a value of the wrong type"),
            "{said}"
        );
        // A field of the wrong type.
        let said = message(r#"{"n": "HiddenShare"}"#);
        assert!(
            !said.contains("HiddenShare") && said.contains("u32"),
            "{said}"
        );
        // A value that itself reads ", expected …": the words after the
        // last one are serde's, from our type.
        let said = message(r#"{"n": "x, expected HiddenTail"}"#);
        assert!(
            !said.contains("HiddenTail") && said.contains("u32"),
            "{said}"
        );
        // Syntax errors and missing fields keep serde's words (a position,
        // a field name of ours).
        assert!(message(r#"{"n": "#).contains("EOF while parsing"));
        assert!(message("{}").contains("missing field `n`"));
    }

    fn read(method: &str, uri: &str, body: &'static str) -> Result<Request, HttpError> {
        let request = http::Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(uri)
            .body(Body::from(body))
            .unwrap();
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(Request::read(request, 64))
    }

    #[test]
    fn methods_map_to_vaults_operations() {
        assert_eq!(read("GET", "/v1/a", "").unwrap().op, Op::Read);
        assert_eq!(read("GET", "/v1/a?list=true", "").unwrap().op, Op::List);
        assert_eq!(read("LIST", "/v1/a", "").unwrap().op, Op::List);
        assert_eq!(read("POST", "/v1/a", "").unwrap().op, Op::Update);
        assert_eq!(read("PUT", "/v1/a", "").unwrap().op, Op::Update);
        assert_eq!(read("PATCH", "/v1/a", "").unwrap().op, Op::Patch);
        assert_eq!(read("DELETE", "/v1/a", "").unwrap().op, Op::Delete);
        let refused = read("TRACE", "/v1/a", "").err().unwrap();
        assert_eq!(refused.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn paths_are_decoded_and_dot_segments_refused() {
        assert_eq!(read("GET", "/v1/a%20b/c", "").unwrap().path, "a b/c");
        assert_eq!(
            read("GET", "/v1/a/../b", "").err().unwrap().status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            read("GET", "/v1/a/%2e%2e/b", "").err().unwrap().status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            read("GET", "/v2/a", "").err().unwrap().status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn bodies_over_the_limit_are_413() {
        let big = "x".repeat(65).leak();
        assert_eq!(
            read("PUT", "/v1/a", big).err().unwrap().status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    #[test]
    fn bad_json_is_400_and_empty_is_an_empty_object() {
        #[derive(serde::Deserialize, Debug)]
        struct Shares {
            #[serde(default)]
            n: u32,
        }
        let empty = read("PUT", "/v1/a", "").unwrap();
        assert_eq!(empty.json::<Shares>().unwrap().n, 0);
        let wrong = read("PUT", "/v1/a", "{\"n\":\"x\"}").unwrap();
        let e = wrong.json::<Shares>().err().unwrap();
        assert_eq!(HttpError::from(e).status(), StatusCode::BAD_REQUEST);
        let request = read("PUT", "/v1/a?standbyok&perfstandbyok=false&x=yes&y=t", "").unwrap();
        assert!(!request.query_flag("standbyok").unwrap());
        assert!(request.query_flag("y").unwrap());
        assert!(!request.query_flag("perfstandbyok").unwrap());
        assert!(request.query_flag("x").is_err());
    }
}
