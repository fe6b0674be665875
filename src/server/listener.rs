//! Binding listeners and turning them into streams of connections for tonic.

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;

use super::tls::{self, TlsError};
use crate::config;

/// A slow or stalled client gets this long to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// bind(2) or socket setup failed.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// Address or socket path.
        address: String,
        /// The OS error.
        source: io::Error,
    },
    /// The socket path is taken.
    #[error("cannot listen on {0}: another process is already serving on that socket")]
    SocketInUse(String),
    /// Something other than a socket is at the path.
    #[error("cannot listen on {0}: the path exists and is not a socket")]
    NotASocket(String),
    /// The socket could not be given to its configured owner or group.
    #[error("cannot give the socket {path} to {target}: {reason}")]
    Chown {
        /// The socket.
        path: String,
        /// `group app (gid 1001)`, `user … (uid …)`.
        target: String,
        /// Why, and what to do.
        reason: String,
    },
    /// The TLS files are unusable.
    #[error("listener on {address}: {source}")]
    Tls {
        /// The listener's address.
        address: String,
        /// What is wrong.
        source: TlsError,
    },
}

/// A TLS configuration that SIGHUP can replace.
pub type TlsHandle = Arc<ArcSwap<ServerConfig>>;

/// A bound listener, ready to serve.
pub enum Bound {
    /// TCP, with TLS when `tls` is set.
    Tcp {
        /// The socket.
        listener: TcpListener,
        /// Current TLS settings.
        tls: Option<TlsHandle>,
        /// The address actually bound (the port is real even if 0 was asked for).
        address: SocketAddr,
        /// Request size limit.
        max_request_size: usize,
        /// Client certificates mapped to policies.
        identities: Vec<config::IdentityRule>,
        /// Whether Init may be called here.
        allow_init: bool,
        /// Whether `sys/metrics` is served here without a token.
        unauthenticated_metrics_access: bool,
    },
    /// A unix socket.
    Unix {
        /// The socket.
        listener: UnixListener,
        /// Its path, removed at shutdown.
        path: PathBuf,
        /// Request size limit.
        max_request_size: usize,
        /// Peer uids and gids mapped to policies.
        identities: Vec<config::IdentityRule>,
        /// Whether Init may be called here.
        allow_init: bool,
        /// Whether `sys/metrics` is served here without a token.
        unauthenticated_metrics_access: bool,
    },
}

impl Bound {
    /// Request size limit of this listener.
    pub fn max_request_size(&self) -> usize {
        match self {
            Bound::Tcp {
                max_request_size, ..
            }
            | Bound::Unix {
                max_request_size, ..
            } => *max_request_size,
        }
    }

    /// The listener's identity blocks.
    pub fn identities(&self) -> &[config::IdentityRule] {
        match self {
            Bound::Tcp { identities, .. } | Bound::Unix { identities, .. } => identities,
        }
    }

    /// Whether Init may be called through this listener (`allow_init`).
    pub fn allow_init(&self) -> bool {
        match self {
            Bound::Tcp { allow_init, .. } | Bound::Unix { allow_init, .. } => *allow_init,
        }
    }

    /// Whether `sys/metrics` is served here without a token.
    pub fn unauthenticated_metrics_access(&self) -> bool {
        match self {
            Bound::Tcp {
                unauthenticated_metrics_access,
                ..
            }
            | Bound::Unix {
                unauthenticated_metrics_access,
                ..
            } => *unauthenticated_metrics_access,
        }
    }
}

/// Binds one configured listener.
pub async fn bind(listener: &config::Listener) -> Result<Bound, ListenerError> {
    match listener {
        config::Listener::Tcp(tcp) => {
            let tls = match &tcp.tls {
                Some(files) => Some(Arc::new(ArcSwap::new(tls::server_config(files).map_err(
                    |source| ListenerError::Tls {
                        address: tcp.address.to_string(),
                        source,
                    },
                )?))),
                None => None,
            };
            let socket =
                TcpListener::bind(tcp.address)
                    .await
                    .map_err(|source| ListenerError::Bind {
                        address: tcp.address.to_string(),
                        source,
                    })?;
            let address = socket.local_addr().map_err(|source| ListenerError::Bind {
                address: tcp.address.to_string(),
                source,
            })?;
            Ok(Bound::Tcp {
                listener: socket,
                tls,
                address,
                max_request_size: tcp.max_request_size,
                identities: tcp.identities.clone(),
                allow_init: tcp.allow_init,
                unauthenticated_metrics_access: tcp.unauthenticated_metrics_access,
            })
        }
        config::Listener::Unix(unix) => Ok(Bound::Unix {
            listener: bind_unix(unix)?,
            path: unix.path.clone(),
            max_request_size: unix.max_request_size,
            identities: unix.identities.clone(),
            allow_init: unix.allow_init,
            unauthenticated_metrics_access: unix.unauthenticated_metrics_access,
        }),
    }
}

/// Binds a unix socket, replacing a stale socket file left by a crash but
/// never one that a live process still answers on.
fn bind_unix(config: &config::UnixListener) -> Result<UnixListener, ListenerError> {
    let path = &config.path;
    let shown = path.display().to_string();
    let bind_error = |source| ListenerError::Bind {
        address: shown.clone(),
        source,
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(ListenerError::NotASocket(shown));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ListenerError::SocketInUse(shown));
        }
        std::fs::remove_file(path).map_err(bind_error)?;
    }
    let listener = UnixListener::bind(path).map_err(bind_error)?;
    if let Some(mode) = config.mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(bind_error)?;
    }
    if config.uid.is_some() || config.gid.is_some() {
        std::os::unix::fs::chown(path, config.uid, config.gid)
            .map_err(|e| chown_error(&shown, config.uid, config.gid, &e))?;
    }
    Ok(listener)
}

/// Names why chown(2) failed: without CAP_CHOWN a process may only give
/// its own files to a group it is in, and never to another user.
fn chown_error(path: &str, uid: Option<u32>, gid: Option<u32>, e: &io::Error) -> ListenerError {
    use nix::unistd::{Gid, Group, Uid, User, getegid, geteuid, getgroups};
    let me = geteuid();
    let group_name = |gid: u32| {
        Group::from_gid(Gid::from_raw(gid))
            .ok()
            .flatten()
            .map_or_else(|| gid.to_string(), |g| g.name)
    };
    let user_name = |uid: u32| {
        User::from_uid(Uid::from_raw(uid))
            .ok()
            .flatten()
            .map_or_else(|| uid.to_string(), |u| u.name)
    };
    let (target, reason) = match (uid, gid) {
        (Some(uid), _) if uid != me.as_raw() && e.kind() == io::ErrorKind::PermissionDenied => (
            format!("user {} (uid {uid})", user_name(uid)),
            format!(
                "{e}: only a process with CAP_CHOWN may give a file to another user, and the daemon runs as {} without it (the packaged unit grants only CAP_IPC_LOCK); leave socket_user out and give access through socket_group",
                user_name(me.as_raw())
            ),
        ),
        (_, Some(gid)) if e.kind() == io::ErrorKind::PermissionDenied => {
            let name = group_name(gid);
            let member = getegid().as_raw() == gid
                || getgroups().is_ok_and(|groups| groups.iter().any(|g| g.as_raw() == gid));
            let why = if member {
                "the daemon is in that group, yet the file system refused".to_string()
            } else {
                format!(
                    "the daemon (user {}) is not in group {name} and lacks CAP_CHOWN; add it to the group: under systemd, SupplementaryGroups={name} in a drop-in (systemctl edit strongroom)",
                    user_name(me.as_raw())
                )
            };
            (format!("group {name} (gid {gid})"), format!("{e}: {why}"))
        }
        (uid, gid) => (
            match (uid, gid) {
                (Some(uid), _) => format!("user {} (uid {uid})", user_name(uid)),
                (None, Some(gid)) => format!("group {} (gid {gid})", group_name(gid)),
                (None, None) => "its owner".into(),
            },
            e.to_string(),
        ),
    };
    ListenerError::Chown {
        path: path.to_string(),
        target,
        reason,
    }
}

/// Removes a unix socket file at shutdown.
pub fn remove_socket(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        tracing::debug!(path = %path.display(), error = %e, "could not remove the socket file");
    }
}

/// Accepts TCP connections and completes TLS handshakes concurrently (one
/// slow client cannot hold up the others), yielding finished TLS streams.
/// The accept loop ends when the server drops the stream.
pub fn tls_incoming(
    listener: TcpListener,
    tls: TlsHandle,
) -> impl Stream<Item = io::Result<TlsStream<TcpStream>>> {
    let acceptor = move |_| {
        let acceptor = TlsAcceptor::from(tls.load_full());
        async move { Some(acceptor) }
    };
    accept_tls(listener, "listener", tracing::Level::DEBUG, acceptor)
}

/// The accept loop of a TLS listener called `name`: each connection gets
/// the acceptor `acceptor_for` gives for its peer (none: it is dropped) and
/// its handshake runs in a task of its own, within [`HANDSHAKE_TIMEOUT`]; a
/// refused handshake is logged at `refused` level.
pub(super) fn accept_tls<F, Fut>(
    listener: TcpListener,
    name: &'static str,
    refused: tracing::Level,
    acceptor_for: F,
) -> impl Stream<Item = io::Result<TlsStream<TcpStream>>>
where
    F: Fn(SocketAddr) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Option<TlsAcceptor>> + Send + 'static,
{
    let (ready, incoming) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = ready.closed() => return,
            };
            let (stream, peer) = match accepted {
                Ok(connection) => connection,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly.
                    tracing::warn!(error = %e, listener = name, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let acceptor = acceptor_for(peer);
            let ready = ready.clone();
            tokio::spawn(async move {
                let Some(acceptor) = acceptor.await else {
                    return;
                };
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        let _ = ready.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) if refused == tracing::Level::INFO => {
                        tracing::info!(%peer, error = %e, "{name}: TLS handshake refused")
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "{name}: TLS handshake refused")
                    }
                    Err(_) => tracing::debug!(%peer, "{name}: TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(incoming)
}
