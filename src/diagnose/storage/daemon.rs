//! A running daemon holds the store: instead of touching it, ask the daemon
//! how it is, with Vault's `GET /v1/sys/health` over one of its configured
//! listeners (a unix socket first, else a plaintext TCP listener on a fixed
//! port). A TLS-only daemon is left to `strongroom status`, which has the
//! CA and client certificate the listener may want.

use std::time::Duration;

use crate::config::{Config, Listener};
use crate::diagnose::{Finding, health};

const NAME: &str = "running daemon";
/// How long connecting and answering may take together.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Where the daemon can be asked.
enum Target {
    Unix(std::path::PathBuf),
    Tcp(std::net::SocketAddr),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Unix(path) => write!(f, "unix:{}", path.display()),
            Target::Tcp(addr) => write!(f, "http://{addr}"),
        }
    }
}

/// The status of the daemon with `pid`, asked over its listener.
pub async fn status(config: &Config, pid: &str) -> Finding {
    let Some(target) = target(config) else {
        return Finding::skipped(
            NAME,
            format!(
                "a strongroom daemon (pid {pid}) holds the store; its listeners all use TLS or port 0, so ask it with `strongroom status` (the round trip is not made while it runs)"
            ),
        );
    };
    let answer = tokio::time::timeout(TIMEOUT, ask(&target)).await;
    let body = match answer {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => return not_answering(pid, &target, &e),
        Err(_) => {
            return not_answering(
                pid,
                &target,
                &format!("no answer within {}s", TIMEOUT.as_secs()),
            );
        }
    };
    let flag = |name: &str| body.get(name).and_then(serde_json::Value::as_bool);
    let (Some(initialized), Some(sealed)) = (flag("initialized"), flag("sealed")) else {
        return not_answering(pid, &target, "its answer is not a health answer");
    };
    let state = if !initialized {
        "not initialized"
    } else if sealed {
        "sealed"
    } else if flag("standby") == Some(true) {
        "unsealed, standby"
    } else {
        "unsealed, active"
    };
    Finding::success(
        NAME,
        format!(
            "a strongroom daemon (pid {pid}) holds the store and answers on {target}: {state} (the round trip is not made while it runs)"
        ),
    )
}

fn not_answering(pid: &str, target: &Target, why: &str) -> Finding {
    Finding::warning(
        NAME,
        format!(
            "a strongroom process (pid {pid}) holds the store but does not answer on {target}: {why}"
        ),
        "look at its log (journalctl -u strongroom); stop it before moving or restoring the store",
    )
}

/// The first unix listener, else the first plaintext TCP listener with a
/// fixed port (a wildcard address asked on loopback).
fn target(config: &Config) -> Option<Target> {
    let unix = config.listeners.iter().find_map(|l| match l {
        Listener::Unix(unix) => Some(Target::Unix(unix.path.clone())),
        Listener::Tcp(_) => None,
    });
    unix.or_else(|| {
        config.listeners.iter().find_map(|l| match l {
            Listener::Tcp(tcp) if tcp.tls.is_none() && tcp.address.port() != 0 => {
                let mut addr = tcp.address;
                if addr.ip().is_unspecified() {
                    addr.set_ip(match addr {
                        std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                        std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                    });
                }
                Some(Target::Tcp(addr))
            }
            _ => None,
        })
    })
}

async fn ask(target: &Target) -> Result<serde_json::Value, String> {
    match target {
        Target::Unix(path) => {
            let stream = tokio::net::UnixStream::connect(path)
                .await
                .map_err(|e| e.to_string())?;
            health::ask(stream, "localhost").await
        }
        Target::Tcp(addr) => {
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| e.to_string())?;
            health::ask(stream, &addr.to_string()).await
        }
    }
}
