//! A running daemon holds the store: instead of touching it, ask the daemon
//! how it is, with Vault's `GET /v1/sys/health` over one of its configured
//! listeners (a unix socket first, else a TCP listener on a fixed port:
//! plaintext, else TLS without client certificates). A daemon whose TCP
//! listeners all want a client certificate is left to `strongroom status`,
//! which has the operator's.

use std::time::Duration;

use crate::config::{Config, Listener};
use crate::diagnose::{Finding, health};

const NAME: &str = "running daemon";
/// How long connecting and answering may take together.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Where the daemon can be asked.
enum Target {
    Unix(std::path::PathBuf),
    /// The address, and whether it speaks TLS.
    Tcp(std::net::SocketAddr, bool),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Unix(path) => write!(f, "unix:{}", path.display()),
            Target::Tcp(addr, false) => write!(f, "http://{addr}"),
            Target::Tcp(addr, true) => write!(f, "https://{addr}"),
        }
    }
}

/// The status of the daemon with `pid`, asked over its listener.
pub async fn status(config: &Config, pid: &str) -> Finding {
    let Some(target) = target(config) else {
        return Finding::skipped(
            NAME,
            format!(
                "a strongroom daemon (pid {pid}) holds the store; its TCP listeners all want a client certificate or use port 0, so ask it with `strongroom status` (the round trip is not made while it runs)"
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

/// The first unix listener, else the first TCP listener with a fixed port
/// that wants no client certificate, plaintext before TLS (a wildcard
/// address is asked on loopback, by [`health::tcp`]).
fn target(config: &Config) -> Option<Target> {
    let unix = config.listeners.iter().find_map(|l| match l {
        Listener::Unix(unix) => Some(Target::Unix(unix.path.clone())),
        Listener::Tcp(_) => None,
    });
    let tcp = |tls: bool| {
        config.listeners.iter().find_map(|l| match l {
            Listener::Tcp(tcp)
                if tcp.address.port() != 0
                    && tcp.tls.is_some() == tls
                    && tcp.tls.as_ref().is_none_or(|t| t.client_ca.is_none()) =>
            {
                Some(Target::Tcp(tcp.address, tls))
            }
            _ => None,
        })
    };
    unix.or_else(|| tcp(false)).or_else(|| tcp(true))
}

async fn ask(target: &Target) -> Result<serde_json::Value, String> {
    match target {
        Target::Unix(path) => health::unix(path).await,
        Target::Tcp(addr, tls) => health::tcp(*addr, *tls).await,
    }
}
