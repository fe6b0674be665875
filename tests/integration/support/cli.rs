//! The `strongroom` CLI, run as an operator runs it, and what it prints.

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::daemon::{BIN, Daemon};

/// A CLI invocation.
pub struct Cli {
    command: Command,
}

/// What a CLI run printed and returned.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts the exit code and returns self.
    #[track_caller]
    pub fn code(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code; stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn ok(self) -> Self {
        self.code(0)
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }

    /// Asserts stderr is exactly one `error: …` line containing `text`.
    #[track_caller]
    pub fn error_says(self, text: &str) -> Self {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one error line, got:\n{}",
            self.stderr
        );
        assert!(lines[0].starts_with("error: "), "{}", self.stderr);
        assert!(
            lines[0].contains(text),
            "expected {text:?} in:\n{}",
            self.stderr
        );
        self
    }
}

impl Cli {
    pub fn new() -> Self {
        let mut command = Command::new(BIN);
        for var in [
            "STRONGROOM_ADDR",
            "STRONGROOM_TOKEN",
            "STRONGROOM_CACERT",
            "STRONGROOM_CLIENT_CERT",
            "STRONGROOM_CLIENT_KEY",
        ] {
            command.env_remove(var);
        }
        command.stdin(Stdio::null());
        Self { command }
    }

    pub fn env(&mut self, key: &str, value: &str) -> &mut Self {
        self.command.env(key, value);
        self
    }

    /// Leaves `key` out of the command's environment.
    pub fn env_remove(&mut self, key: &str) -> &mut Self {
        self.command.env_remove(key);
        self
    }

    pub fn token(&mut self, token: &str) -> &mut Self {
        self.env("STRONGROOM_TOKEN", token)
    }

    pub fn run(&mut self, args: &[&str]) -> Run {
        Run::from(bounded(self.command.args(args), None, CLI_TIMEOUT))
    }

    /// Runs with `input` on stdin.
    pub fn run_stdin(&mut self, args: &[&str], input: &str) -> Run {
        Run::from(bounded(self.command.args(args), Some(input), CLI_TIMEOUT))
    }
}

/// How long one CLI run may take: far more than any should.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `command` to its end, `input` on its stdin; killed (by its own
/// handle) and failing the test after `limit`, so a process that never
/// answers cannot hang the test.
pub fn bounded(command: &mut Command, input: Option<&str>, limit: Duration) -> Output {
    if input.is_some() {
        command.stdin(Stdio::piped());
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", command.get_program()));
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        let input = input.to_string();
        std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    }
    let drain = |mut stream: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = stream.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let what = command.get_args().next().unwrap_or_default().to_os_string();
            panic!(
                "{:?} {what:?} did not finish within {limit:?}",
                command.get_program()
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

impl Cli {
    /// Runs with stdout a pipe whose reader has already gone (`strongroom
    /// status | head -0`, without the race): every write to stdout fails
    /// with EPIPE.
    pub fn run_stdout_closed(&mut self, args: &[&str]) -> Run {
        let (reader, writer) = nix::unistd::pipe().unwrap();
        drop(reader);
        let output = self
            .command
            .args(args)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        Run::from(output)
    }

    /// Runs the CLI as another user, as a sidecar under its own uid would
    /// (the tests run as root; std drops the supplementary groups).
    pub fn as_user(&mut self, uid: u32, gid: u32) -> &mut Self {
        use std::os::unix::process::CommandExt;
        self.command.uid(uid).gid(gid);
        self
    }
}

/// What `strongroom init --format json` printed.
pub struct Init {
    pub keys_hex: Vec<String>,
    pub keys_b64: Vec<String>,
    pub recovery_hex: Vec<String>,
    pub recovery_b64: Vec<String>,
    pub root_token: String,
    /// The whole JSON answer.
    pub json: Value,
}

pub fn init(daemon: &Daemon, args: &[&str]) -> Init {
    let mut full = vec!["init", "--format", "json"];
    full.extend_from_slice(args);
    let out = daemon.cli().run(&full).ok().json();
    Init {
        keys_hex: strings(&out["unseal_keys_hex"]),
        keys_b64: strings(&out["unseal_keys_b64"]),
        recovery_hex: strings(&out["recovery_keys_hex"]),
        recovery_b64: strings(&out["recovery_keys_b64"]),
        root_token: out["root_token"].as_str().unwrap().to_string(),
        json: out,
    }
}

/// A JSON array of strings (keys, shares) as a vector.
pub fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// `strongroom status --format json`.
pub fn status(daemon: &Daemon) -> Value {
    daemon.cli().run(&["status", "--format", "json"]).json()
}

/// Enters `keys` one by one and asserts the daemon ends unsealed.
pub fn unseal(daemon: &Daemon, keys: &[&String]) {
    for key in keys {
        daemon.cli().run(&["unseal", key]).ok();
    }
    assert_eq!(
        status(daemon)["sealed"],
        false,
        "still sealed after {} keys",
        keys.len()
    );
}

/// Writes policy `name` with `text` (from stdin) through `cli`.
pub fn write_policy(cli: &mut Cli, name: &str, text: &str) {
    cli.run_stdin(&["policy", "write", name, "-"], text).ok();
}

/// Creates a token through `cli` (`token create --format json` with
/// `args`); returns the token and its `auth` object.
pub fn create_token(cli: &mut Cli, args: &[&str]) -> (String, Value) {
    let mut full = vec!["token", "create", "--format", "json"];
    full.extend_from_slice(args);
    let auth = cli.run(&full).ok().json()["auth"].clone();
    let token = auth["client_token"].as_str().unwrap().to_string();
    (token, auth)
}

/// Writes each `(path, value)` as the secret `v=<value>` through the CLI.
pub fn put_secrets(daemon: &Daemon, token: &str, secrets: &[(&str, &str)]) {
    for (path, value) in secrets {
        daemon
            .cli()
            .token(token)
            .run(&["kv", "put", path, &format!("v={value}")])
            .ok();
    }
}

/// Asserts that each `(path, value)` written by [`put_secrets`] reads back.
#[track_caller]
pub fn secrets_read_back(daemon: &Daemon, token: &str, secrets: &[(&str, &str)]) {
    for (path, value) in secrets {
        let out = daemon
            .cli()
            .token(token)
            .run(&["kv", "get", path, "--format", "json"])
            .ok();
        assert_eq!(out.json()["data"]["data"]["v"], *value, "{path}");
    }
}
