//! Runs the real `strongroom` binary as an operator would: a config file in a
//! temporary directory, listeners on port 0 and a unix socket, and the JSON
//! log read back to learn the bound addresses. Every daemon is killed by
//! PID when its handle is dropped.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use super::cli::{Cli, Init, init, unseal};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_strongroom");
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Lines a process wrote, kept as they arrive.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>, Arc<std::sync::atomic::AtomicBool>);

impl Lines {
    /// Collects the lines of `stream` in a background thread.
    pub fn follow(self, stream: impl std::io::Read + Send + 'static) -> Self {
        let lines = self.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                lines.0.lock().unwrap().push(line);
            }
            lines.1.store(true, std::sync::atomic::Ordering::Release);
        });
        self
    }

    /// Waits (bounded) until the stream ended: after the process exited,
    /// every line it wrote is here.
    pub fn wait_closed(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while !self.1.load(std::sync::atomic::Ordering::Acquire) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    pub fn text(&self) -> String {
        self.all().join("\n")
    }

    /// Waits until some line satisfies `found`, returning it.
    pub fn wait_for(&self, what: &str, found: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(line) = self.all().into_iter().find(|l| found(l)) {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; output so far:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The JSON log events, parsed.
    pub fn events(&self) -> Vec<Value> {
        self.all()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// A config for a test daemon: file storage in `dir/data`, a TCP listener on
/// loopback port 0 and a unix socket, JSON logs, mlock off.
pub fn config(dir: &Path, extra: &str) -> String {
    format!(
        r#"
storage "file" {{
  path = "{data}"
}}

listener "tcp" {{
  address = "127.0.0.1:0"
}}

listener "unix" {{
  path = "{socket}"
  socket_mode = "0660"
}}

log_format    = "json"
disable_mlock = true
{extra}
"#,
        data = dir.join("data").display(),
        socket = dir.join("strongroom.sock").display(),
    )
}

/// A running daemon.
pub struct Daemon {
    child: Option<Child>,
    pub config_path: PathBuf,
    /// `http://127.0.0.1:PORT` (or https) of the first TCP listener.
    pub addr: String,
    /// Unix socket path, if there is a unix listener.
    pub socket: Option<PathBuf>,
    pub stderr: Lines,
    pub stdout: Lines,
    /// Environment for CLI runs against this daemon.
    pub env: HashMap<String, String>,
    /// Environment the daemon was started with, kept for restarts.
    spawn_env: Vec<(String, String)>,
}

impl Daemon {
    /// Writes `config_text` to `dir/strongroom.hcl` and starts the daemon on it.
    pub fn start(dir: &Path, config_text: &str) -> Self {
        Self::start_with(dir, config_text, &[])
    }

    pub fn start_with(dir: &Path, config_text: &str, env: &[(&str, &str)]) -> Self {
        let config_path = dir.join("strongroom.hcl");
        std::fs::write(&config_path, config_text).unwrap();
        let mut daemon = Self::spawn(&config_path, env);
        daemon.wait_listening();
        daemon
    }

    /// Starts the daemon on an existing config, without waiting. No AWS
    /// setting leaks in from the caller's environment, and the AWS SDK never
    /// probes instance metadata off loopback.
    pub fn spawn(config_path: &Path, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(BIN);
        command
            .args(["server", "--config"])
            .arg(config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("NOTIFY_SOCKET");
        for (var, _) in std::env::vars() {
            if var.starts_with("AWS_") || var.starts_with("STRONGROOM_AWSKMS_") {
                command.env_remove(var);
            }
        }
        command.env("AWS_EC2_METADATA_DISABLED", "true");
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("start strongroom");
        let stderr = Lines::default().follow(child.stderr.take().unwrap());
        let stdout = Lines::default().follow(child.stdout.take().unwrap());
        Self {
            child: Some(child),
            config_path: config_path.to_path_buf(),
            addr: String::new(),
            socket: None,
            stderr,
            stdout,
            env: HashMap::new(),
            spawn_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Waits for the "listening" events and records the addresses.
    fn wait_listening(&mut self) {
        let config = std::fs::read_to_string(&self.config_path).unwrap();
        let expected = config.matches("listener \"").count();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let listening: Vec<Value> = self
                .stderr
                .events()
                .into_iter()
                .filter(|e| e["message"] == "listening")
                .collect();
            if listening.len() >= expected {
                for event in listening {
                    let address = event["address"].as_str().unwrap().to_string();
                    match event["transport"].as_str().unwrap() {
                        "tcp" if self.addr.is_empty() => {
                            let scheme = if event["tls"] == "off" {
                                "http"
                            } else {
                                "https"
                            };
                            self.addr = format!("{scheme}://{address}");
                        }
                        "unix" => self.socket = Some(PathBuf::from(address)),
                        _ => {}
                    }
                }
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "strongroom exited with {status} before listening:\n{}",
                    self.stderr.text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "strongroom did not start:\n{}",
                self.stderr.text()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The CLI, pointed at this daemon's TCP listener.
    pub fn cli(&self) -> Cli {
        let mut cli = Cli::new();
        cli.env("STRONGROOM_ADDR", &self.addr);
        for (k, v) in &self.env {
            cli.env(k, v);
        }
        cli
    }

    /// The CLI, pointed at this daemon's unix socket.
    pub fn cli_unix(&self) -> Cli {
        let mut cli = Cli::new();
        let socket = self.socket.as_ref().expect("a unix listener");
        cli.env("STRONGROOM_ADDR", &format!("unix://{}", socket.display()));
        cli
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid() as i32), signal).unwrap();
    }

    /// Waits for the process to exit on its own, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                // Everything the process wrote before it exited is read.
                self.stderr.wait_closed();
                self.stdout.wait_closed();
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// SIGTERM, then waits; panics if it takes over 5 s.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(Signal::SIGTERM);
        self.wait_exit(Duration::from_secs(5))
            .expect("strongroom did not stop within 5 s of SIGTERM")
    }

    /// Stops and starts the daemon again on the same config.
    pub fn restart(&mut self) {
        let status = self.stop();
        assert!(status.success(), "exit status {status}");
        self.start_again();
    }

    /// Starts the stopped daemon again on the same config (after a test
    /// looked at its store, say).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the daemon is still running");
        let env = std::mem::take(&mut self.env);
        let spawn_env: Vec<(&str, &str)> = self
            .spawn_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut next = Self::spawn(&self.config_path, &spawn_env);
        next.wait_listening();
        next.env = env;
        // Keep earlier output too, so log checks see the whole run.
        let earlier = self.stderr.all();
        next.stderr.0.lock().unwrap().splice(0..0, earlier);
        let earlier = self.stdout.all();
        next.stdout.0.lock().unwrap().splice(0..0, earlier);
        *self = next;
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

/// A fresh temporary directory.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("strongroom-test-")
        .tempdir()
        .unwrap()
}

/// Initializes `daemon` with three keys (threshold two), unseals it with
/// the first two and sets the root token for its CLI.
pub fn open(daemon: &mut Daemon) -> Init {
    let init = init(daemon, &["--key-shares", "3", "--key-threshold", "2"]);
    unseal(daemon, &[&init.keys_hex[0], &init.keys_hex[1]]);
    daemon
        .env
        .insert("STRONGROOM_TOKEN".into(), init.root_token.clone());
    init
}

/// A daemon on the test config plus `extra`, [`open`]ed.
pub fn unsealed(dir: &Path, extra: &str) -> (Daemon, Init) {
    let mut daemon = Daemon::start(dir, &config(dir, extra));
    let init = open(&mut daemon);
    (daemon, init)
}
