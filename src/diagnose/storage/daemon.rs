//! A running daemon holds the store: instead of touching it, ask the daemon
//! how it is, with Vault's `GET /v1/sys/health` over one of its configured
//! listeners (a unix socket first, else a plaintext TCP listener on a fixed
//! port). A TLS-only daemon is left to `strongroom status`, which has the
//! CA and client certificate the listener may want.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::{Config, Listener};
use crate::diagnose::Finding;

const NAME: &str = "running daemon";
/// How long connecting and answering may take together.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The most of an answer read: a health answer is a few hundred bytes.
const MAX_ANSWER: u64 = 64 * 1024;
/// Every state answers 200, so the body alone tells it.
const REQUEST: &str = "GET /v1/sys/health?standbyok=true&sealedcode=200&uninitcode=200 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

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
    let text = match target {
        Target::Unix(path) => {
            let stream = tokio::net::UnixStream::connect(path)
                .await
                .map_err(|e| e.to_string())?;
            exchange(stream).await?
        }
        Target::Tcp(addr) => {
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| e.to_string())?;
            exchange(stream).await?
        }
    };
    // The JSON body follows the headers; the daemon sends it whole, with a
    // length, so it is the text from the first brace to the last.
    let body = text
        .find('{')
        .zip(text.rfind('}'))
        .and_then(|(start, end)| text.get(start..=end))
        .ok_or("its answer has no JSON body")?;
    serde_json::from_str(body).map_err(|_| "its answer's body is not JSON".to_string())
}

async fn exchange(mut stream: impl AsyncRead + AsyncWrite + Unpin) -> Result<String, String> {
    stream
        .write_all(REQUEST.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    stream
        .take(MAX_ANSWER)
        .read_to_end(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}
