//! A real KMS for the tests: moto's server mode, started on loopback port
//! 0, and a small fault-injecting proxy in front of it.
//!
//! moto implements KMS faithfully enough (ARNs in answers, aliases,
//! encryption context checks, key states in DescribeKey) but keeps
//! encrypting and decrypting with a disabled or pending-deletion key. The
//! proxy answers those calls as AWS does (`DisabledException`,
//! `KMSInvalidStateException`), and injects delays, 5xx, throttling and
//! dropped connections on demand. It also counts requests by action.
//!
//! The integration tests use all of it; the benchmark counts KMS requests
//! per start and per init with the proxy.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};

use crate::PortHold;

/// The moto server installed by `scripts/test` into the project's
/// virtualenv, at the workspace root above this crate.
fn moto_server() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/moto_server");
    assert!(
        path.exists(),
        "{} is missing: run scripts/test, which installs moto into .venv",
        path.display()
    );
    path
}

/// A running moto server.
pub struct Moto {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Moto {
    /// Starts moto's server on loopback port 0 and reads the port it got (bounded: 30 s).
    pub fn start() -> Self {
        let mut child = Command::new(moto_server())
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start moto_server");
        // Read moto's log to learn its port, and keep draining it so moto
        // never blocks on a full pipe.
        let stderr = child.stderr.take().unwrap();
        let (found, address) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("Running on http://").nth(1) {
                    let _ = found.send(rest.trim().trim_end_matches('/').to_string());
                }
            }
        });
        let addr = address
            .recv_timeout(Duration::from_secs(30))
            .expect("moto_server did not start within 30 s");
        Self { child, addr }
    }

    /// Calls a KMS action directly on moto; panics on an error answer.
    pub fn call(&self, action: &str, body: Value) -> Value {
        let (status, answer) = kms_request(&self.addr, action, &body);
        assert_eq!(status, 200, "moto {action}: {answer}");
        answer
    }

    /// Creates a symmetric key; returns its ARN.
    pub fn create_key(&self) -> String {
        self.call("CreateKey", json!({}))["KeyMetadata"]["Arn"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Points `alias` (created if needed) at `arn`.
    pub fn alias(&self, alias: &str, arn: &str) {
        let target = json!({"AliasName": alias, "TargetKeyId": key_id(arn)});
        let (status, _) = kms_request(&self.addr, "UpdateAlias", &target);
        if status != 200 {
            self.call("CreateAlias", target);
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One KMS JSON request over plain HTTP; returns the status and the JSON answer.
pub fn kms_request(addr: &str, action: &str, body: &Value) -> (u16, Value) {
    let body = serde_json::to_vec(body).unwrap();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: TrentService.{action}\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=test/20261124/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(&body).unwrap();
    let mut reader = BufReader::new(stream);
    let response = read_message(&mut reader, true).unwrap().expect("an answer");
    let status = response.status();
    let answer = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    (status, answer)
}

/// An HTTP/1.1 message: start line, headers, body.
struct Message {
    start: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn status(&self) -> u16 {
        self.start
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        let mut head = format!("{}\r\n", self.start);
        for (k, v) in &self.headers {
            if ["connection", "content-length", "transfer-encoding"]
                .iter()
                .any(|h| k.eq_ignore_ascii_case(h))
            {
                continue;
            }
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        // One write: with Nagle's algorithm, a second small write would wait
        // for the peer's delayed ACK (40 ms on Linux).
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        out.write_all(&bytes)?;
        out.flush()
    }
}

/// Reads one message; `None` at a clean end of stream. A response without a
/// Content-Length is read to the end (`to_eof`).
fn read_message(reader: &mut impl BufRead, to_eof: bool) -> std::io::Result<Option<Message>> {
    let mut start = String::new();
    if reader.read_line(&mut start)? == 0 {
        return Ok(None);
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut message = Message {
        start: start.trim_end().to_string(),
        headers,
        body: Vec::new(),
    };
    match message.header("content-length").map(|v| v.parse::<usize>()) {
        Some(Ok(len)) => {
            message.body.resize(len, 0);
            reader.read_exact(&mut message.body)?;
        }
        _ if to_eof => {
            reader.read_to_end(&mut message.body)?;
        }
        _ => {}
    }
    Ok(Some(message))
}

/// What the proxy does to matching requests.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with an AWS error instead of forwarding.
    Error {
        /// The HTTP status.
        status: u16,
        /// The AWS error type (`__type`), as `ThrottlingException`.
        kind: &'static str,
        /// The error's message.
        message: String,
    },
    /// Close the connection without answering.
    Drop,
    /// Wait, then forward.
    Delay(Duration),
}

impl Fault {
    /// AWS's answer to too many requests.
    pub fn throttling() -> Self {
        Self::Error {
            status: 400,
            kind: "ThrottlingException",
            message: "Rate exceeded".into(),
        }
    }

    /// KMS failing on its side.
    pub fn server_error() -> Self {
        Self::Error {
            status: 500,
            kind: "KMSInternalException",
            message: "We encountered an internal error. Please try again.".into(),
        }
    }

    /// An IAM policy without `kms:<action>`.
    pub fn access_denied(action: &str) -> Self {
        Self::Error {
            status: 400,
            kind: "AccessDeniedException",
            message: format!(
                "User: arn:aws:iam::123456789012:user/strongroom is not authorized to perform: kms:{action} because no identity-based policy allows the kms:{action} action"
            ),
        }
    }
}

#[derive(Default)]
struct ProxyState {
    requests: Vec<String>,
    /// A fault for one action, or for every action (`None`).
    fault: Option<(Option<String>, Fault)>,
    /// Keys answered as AWS would for a disabled (false) or pending-deletion (true) key.
    unusable: HashMap<String, bool>,
    /// Rewrites the KeyId of Decrypt answers.
    decrypt_key_id: Option<String>,
}

/// The fault-injecting, request-counting proxy in front of moto.
pub struct KmsProxy {
    /// The loopback port it listens on.
    pub port: u16,
    state: Arc<Mutex<ProxyState>>,
    stop: Arc<AtomicBool>,
    /// The accept loop, which owns the listener.
    accept: Option<JoinHandle<()>>,
}

impl KmsProxy {
    /// Starts on a port the kernel picks.
    pub fn start(upstream: &str) -> Self {
        Self::serve_on(upstream, TcpListener::bind("127.0.0.1:0").unwrap())
    }

    /// Starts on the port `hold` keeps, to play a KMS that goes away (the
    /// proxy dropped: connections refused) and comes back on the same address.
    pub fn start_on(upstream: &str, hold: &PortHold) -> Self {
        Self::serve_on(upstream, hold.listen())
    }

    fn serve_on(upstream: &str, listener: TcpListener) -> Self {
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (upstream, accept_state, accept_stop) =
            (upstream.to_string(), Arc::clone(&state), Arc::clone(&stop));
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (upstream, state, stop) = (
                    upstream.clone(),
                    Arc::clone(&accept_state),
                    Arc::clone(&accept_stop),
                );
                std::thread::spawn(move || serve(stream, &upstream, &state, &stop));
            }
        });
        Self {
            port,
            state,
            stop,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:PORT`, for a seal block's `endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The actions seen so far, in order (`Decrypt`, `Encrypt`, …).
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Forgets the actions seen so far.
    pub fn clear_requests(&self) {
        self.state.lock().unwrap().requests.clear();
    }

    /// Applies `fault` to `action`, or to every action when `None`.
    pub fn fault(&self, action: Option<&str>, fault: Fault) {
        self.state.lock().unwrap().fault = Some((action.map(str::to_string), fault));
    }

    /// Forwards every request again.
    pub fn clear_fault(&self) {
        self.state.lock().unwrap().fault = None;
    }

    /// Encrypt and Decrypt with `arn` fail as on AWS for a disabled key.
    pub fn disable(&self, arn: &str) {
        self.state
            .lock()
            .unwrap()
            .unusable
            .insert(arn.into(), false);
    }

    /// Encrypt and Decrypt with `arn` fail as on AWS for a key pending deletion.
    pub fn pending_deletion(&self, arn: &str) {
        self.state.lock().unwrap().unusable.insert(arn.into(), true);
    }

    /// `arn` works again.
    pub fn enable(&self, arn: &str) {
        self.state.lock().unwrap().unusable.remove(arn);
    }

    /// Decrypt answers name `key_id` instead of the key that decrypted.
    pub fn rewrite_decrypt_key_id(&self, key_id: Option<&str>) {
        self.state.lock().unwrap().decrypt_key_id = key_id.map(str::to_string);
    }
}

impl Drop for KmsProxy {
    /// Closes the listener before returning, so a connection made after
    /// the drop is refused.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag and closes the listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        // Bounded, and without a panic (a drop may run while a test unwinds).
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while self.accept.as_ref().is_some_and(|a| !a.is_finished())
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn error_answer(status: u16, kind: &str, message: &str) -> Message {
    let reason = if status >= 500 {
        "Internal Server Error"
    } else {
        "Bad Request"
    };
    Message {
        start: format!("HTTP/1.1 {status} {reason}"),
        headers: vec![
            ("Content-Type".into(), "application/x-amz-json-1.1".into()),
            ("x-amzn-RequestId".into(), "strongroom-test-proxy".into()),
        ],
        body: serde_json::to_vec(&json!({"__type": kind, "message": message})).unwrap(),
    }
}

/// Serves one client connection, request after request (keep-alive).
fn serve(client: TcpStream, upstream: &str, state: &Mutex<ProxyState>, stop: &AtomicBool) {
    let _ = client.set_nodelay(true);
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut writer = client;
    while let Ok(Some(request)) = read_message(&mut reader, false) {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let action = request
            .header("x-amz-target")
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or("?")
            .to_string();
        let fault = {
            let mut state = state.lock().unwrap();
            state.requests.push(action.clone());
            match &state.fault {
                Some((None, fault)) => Some(fault.clone()),
                Some((Some(only), fault)) if *only == action => Some(fault.clone()),
                _ => None,
            }
        };
        let answer = match fault {
            Some(Fault::Drop) => {
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
            Some(Fault::Error {
                status,
                kind,
                message,
            }) => error_answer(status, kind, &message),
            Some(Fault::Delay(delay)) => {
                std::thread::sleep(delay);
                forward(&request, upstream, &action, state)
            }
            None => forward(&request, upstream, &action, state),
        };
        if answer.write_to(&mut writer).is_err() {
            return;
        }
    }
}

/// Sends `request` to moto and applies the key-state emulation to the answer.
fn forward(request: &Message, upstream: &str, action: &str, state: &Mutex<ProxyState>) -> Message {
    let Ok(mut stream) = TcpStream::connect(upstream) else {
        return error_answer(503, "ServiceUnavailable", "moto is not running");
    };
    let mut head = format!("{}\r\n", request.start);
    for (k, v) in &request.headers {
        if !k.eq_ignore_ascii_case("connection") && !k.eq_ignore_ascii_case("content-length") {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        request.body.len()
    ));
    let _ = stream.set_nodelay(true);
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&request.body);
    stream.write_all(&bytes).unwrap();
    let mut answer = read_message(&mut BufReader::new(stream), true)
        .unwrap()
        .expect("moto answered");
    if answer.status() != 200 || !matches!(action, "Encrypt" | "Decrypt" | "GenerateDataKey") {
        return answer;
    }
    let mut body: Value = serde_json::from_slice(&answer.body).unwrap();
    let key = body["KeyId"].as_str().unwrap_or_default().to_string();
    let state = state.lock().unwrap();
    if let Some(pending) = state.unusable.get(&key) {
        return if *pending {
            error_answer(
                400,
                "KMSInvalidStateException",
                &format!("{key} is pending deletion."),
            )
        } else {
            error_answer(400, "DisabledException", &format!("{key} is disabled."))
        };
    }
    if let (Some(other), "Decrypt") = (&state.decrypt_key_id, action) {
        body["KeyId"] = Value::String(other.clone());
        answer.body = serde_json::to_vec(&body).unwrap();
    }
    answer
}

/// The key id part of a key ARN (moto's key-state actions want the id).
pub fn key_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap()
}
