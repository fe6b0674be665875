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
    let targets = targets(config);
    if targets.is_empty() {
        return Finding::skipped(
            NAME,
            format!(
                "a strongroom daemon (pid {pid}) holds the store; its TCP listeners all want a client certificate or use port 0, so ask it with `strongroom status` (the round trip is not made while it runs)"
            ),
        );
    }
    // Each listener in turn: a socket this user may not open (the
    // package's is 0660) leaves the TCP listener to answer.
    let mut first_failure = None;
    let mut answered = None;
    for target in targets {
        match tokio::time::timeout(TIMEOUT, ask(&target)).await {
            Ok(Ok(body)) => {
                answered = Some((target, body));
                break;
            }
            Ok(Err(e)) => {
                first_failure.get_or_insert((target, e));
            }
            Err(_) => {
                let why = format!("no answer within {}s", TIMEOUT.as_secs());
                first_failure.get_or_insert((target, why));
            }
        }
    }
    let (target, body) = match (answered, first_failure) {
        (Some(answered), _) => answered,
        (None, Some((target, why))) => return not_answering(pid, &target, &why),
        (None, None) => return Finding::skipped(NAME, "no listener was asked"),
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

/// The listeners to ask, in order: unix sockets, then TCP listeners with a
/// fixed port that want no client certificate, plaintext before TLS (a
/// wildcard address is asked on loopback, by [`health::tcp`]).
fn targets(config: &Config) -> Vec<Target> {
    let unix = config.listeners.iter().filter_map(|l| match l {
        Listener::Unix(unix) => Some(Target::Unix(unix.path.clone())),
        Listener::Tcp(_) => None,
    });
    let tcp = |tls: bool| {
        config.listeners.iter().filter_map(move |l| match l {
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
    unix.chain(tcp(false)).chain(tcp(true)).collect()
}

async fn ask(target: &Target) -> Result<serde_json::Value, String> {
    match target {
        Target::Unix(path) => health::unix(path).await,
        Target::Tcp(addr, tls) => health::tcp(*addr, *tls).await,
    }
}
