//! `bao agent` (OpenBao 2.6.2's agent, the same binary as the CLI) as a
//! sidecar does its job with Vault Agent: it logs in with a token file,
//! finds the kv v2 mount (`sys/internal/ui/mounts/…`), renders a template
//! from a secret, and renders it again after the secret changes, on a
//! periodic token.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

use crate::support::daemon::{Daemon, config, tempdir};
use crate::support::vault::{bao_binary, request};

/// How long the agent may take to render.
const RENDER: Duration = Duration::from_secs(30);

/// The agent's process, killed by PID when dropped.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.0.id() as i32), Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// Waits, bounded, until `file` holds `expected`; the agent's log on failure.
fn wait_rendered(file: &Path, expected: &str, log: &Path) {
    let deadline = Instant::now() + RENDER;
    loop {
        if std::fs::read_to_string(file).is_ok_and(|text| text == expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not render {expected:?} into {} within {RENDER:?}; its log:\n{}",
            file.display(),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn bao_agent_renders_a_kv_v2_secret_and_renders_it_again_after_a_change() {
    let dir = tempdir();
    let d = dir.path();
    let daemon = Daemon::start(d, &config(d, ""));
    let addr = daemon.addr.as_str();
    let init = request(
        addr,
        "PUT",
        "sys/init",
        None,
        Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
    );
    let key = init.body["keys"][0].as_str().unwrap();
    request(
        addr,
        "PUT",
        "sys/unseal",
        None,
        Some(&json!({ "key": key })),
    );
    let root = init.body["root_token"].as_str().unwrap();
    let put = |password: &str| {
        let body = json!({"data": {"password": password, "port": 5432}});
        let written = request(addr, "POST", "secret/data/app/db", Some(root), Some(&body));
        assert_eq!(written.status, 200, "{:?}", written.body);
    };
    put("first");
    // The agent's own token: periodic, as long-running agents need.
    let created = request(
        addr,
        "POST",
        "auth/token/create",
        Some(root),
        Some(&json!({"period": "1h", "display_name": "agent"})),
    );
    assert_eq!(created.status, 200, "{:?}", created.body);
    let token = created.body["auth"]["client_token"].as_str().unwrap();
    std::fs::write(d.join("agent-token"), token).unwrap();

    let rendered = d.join("db.conf");
    let log = d.join("agent.log");
    let agent_config = d.join("agent.hcl");
    std::fs::write(
        &agent_config,
        format!(
            r#"pid_file = "{pid}"
vault {{
  address = "{addr}"
}}
auto_auth {{
  method "token_file" {{
    config = {{
      token_file_path = "{token}"
    }}
  }}
}}
template_config {{
  static_secret_render_interval = "1s"
}}
template {{
  contents    = "{{{{ with secret \"secret/data/app/db\" }}}}{{{{ .Data.data.password }}}}:{{{{ .Data.data.port }}}}{{{{ end }}}}"
  destination = "{out}"
}}
"#,
            pid = d.join("agent.pid").display(),
            token = d.join("agent-token").display(),
            out = rendered.display(),
        ),
    )
    .unwrap();
    let output = std::fs::File::create(&log).unwrap();
    let _agent = Agent(
        Command::new(bao_binary())
            .arg("agent")
            .arg(format!("-config={}", agent_config.display()))
            .env_clear()
            .env("HOME", d)
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .expect("start bao agent"),
    );
    wait_rendered(&rendered, "first:5432", &log);
    put("second");
    wait_rendered(&rendered, "second:5432", &log);
    // It logged in with the periodic token, which the agent keeps
    // renewing (at two thirds of its period: not within this test).
    let agent_log = std::fs::read_to_string(&log).unwrap();
    assert!(
        agent_log.contains("authentication successful"),
        "{agent_log}"
    );
    let looked_up = request(addr, "GET", "auth/token/lookup-self", Some(token), None);
    assert_eq!(
        looked_up.body["data"]["period"], 3600,
        "{:?}",
        looked_up.body
    );
}
