//! Listeners: TCP (with TLS or mutual TLS) and unix sockets, and the
//! `identity` blocks that map a connection's peer to policies.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Default and documented limit on one gRPC request.
pub const DEFAULT_MAX_REQUEST_SIZE: usize = 4 * 1024 * 1024;

/// Certificate files of a TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// PEM bundle of CAs whose client certificates are accepted; turns on mutual TLS.
    pub client_ca: Option<PathBuf>,
}

/// What an `identity` block matches on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySelector {
    /// A unix peer whose SO_PEERCRED uid is this.
    Uid(u32),
    /// A unix peer whose SO_PEERCRED (primary) gid is this.
    Gid(u32),
    /// A client certificate with this URI subject alternative name.
    CertSan(String),
    /// A client certificate with this DNS subject alternative name.
    CertDnsSan(String),
    /// A client certificate whose subject common name is this.
    CertCn(String),
}

impl IdentitySelector {
    /// How the identity is named in logs, errors and audit lines.
    pub fn label(&self) -> String {
        match self {
            Self::Uid(uid) => format!("unix:uid={uid}"),
            Self::Gid(gid) => format!("unix:gid={gid}"),
            Self::CertSan(san) => format!("tls:san={san}"),
            Self::CertDnsSan(name) => format!("tls:dns={name}"),
            Self::CertCn(cn) => format!("tls:cn={cn}"),
        }
    }
}

/// An `identity` block inside a listener: callers it recognises get its
/// policies without a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRule {
    /// What it matches.
    pub selector: IdentitySelector,
    /// The policies it grants.
    pub policies: Vec<String>,
    /// Line of the block, for messages.
    pub line: usize,
}

/// A `listener "tcp"` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpListener {
    /// Address to bind.
    pub address: SocketAddr,
    /// TLS certificate files; `None` serves plaintext (loopback, or `tls_disable = true`).
    pub tls: Option<TlsFiles>,
    /// Largest accepted request, in bytes.
    pub max_request_size: usize,
    /// Client certificates mapped to policies (mutual TLS only).
    pub identities: Vec<IdentityRule>,
    /// Whether Init may be called through this listener.
    pub allow_init: bool,
    /// Whether `sys/metrics` is served here without a token (Vault's
    /// `telemetry { unauthenticated_metrics_access = true }`).
    pub unauthenticated_metrics_access: bool,
    /// Line of the block, for messages.
    pub line: usize,
}

/// A `listener "unix"` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixListener {
    /// Socket path (absolute once loaded).
    pub path: PathBuf,
    /// Permission bits for the socket file.
    pub mode: Option<u32>,
    /// Owner of the socket file (numeric uid, resolved when loading).
    pub uid: Option<u32>,
    /// Group of the socket file (numeric gid, resolved when loading).
    pub gid: Option<u32>,
    /// Largest accepted request, in bytes.
    pub max_request_size: usize,
    /// Peer uids and gids mapped to policies.
    pub identities: Vec<IdentityRule>,
    /// Whether Init may be called through this listener.
    pub allow_init: bool,
    /// Whether `sys/metrics` is served here without a token (Vault's
    /// `telemetry { unauthenticated_metrics_access = true }`).
    pub unauthenticated_metrics_access: bool,
    /// Line of the block, for messages.
    pub line: usize,
}

/// One listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listener {
    /// gRPC over TCP, with or without TLS.
    Tcp(TcpListener),
    /// gRPC over a unix socket, for sidecars on the host.
    Unix(UnixListener),
}

impl Listener {
    /// Largest accepted request, in bytes.
    pub fn max_request_size(&self) -> usize {
        match self {
            Self::Tcp(l) => l.max_request_size,
            Self::Unix(l) => l.max_request_size,
        }
    }

    /// The identity blocks of this listener.
    pub fn identities(&self) -> &[IdentityRule] {
        match self {
            Self::Tcp(l) => &l.identities,
            Self::Unix(l) => &l.identities,
        }
    }

    /// Whether Init may be called through this listener (`allow_init`).
    pub fn allow_init(&self) -> bool {
        match self {
            Self::Tcp(l) => l.allow_init,
            Self::Unix(l) => l.allow_init,
        }
    }

    /// Whether `sys/metrics` is served here without a token.
    pub fn unauthenticated_metrics_access(&self) -> bool {
        match self {
            Self::Tcp(l) => l.unauthenticated_metrics_access,
            Self::Unix(l) => l.unauthenticated_metrics_access,
        }
    }
}
