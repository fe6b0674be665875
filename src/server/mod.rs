//! The daemon process: storage, the node, listeners, signals and systemd.
//!
//! [`run`] does the start-up work and then [`serve`]s until a shutdown
//! future resolves, so the serving loop can be driven with any listeners and
//! any shutdown trigger (mini-redis's `run(listener, shutdown)` shape).

mod cluster;
mod drain;
pub mod hardening;
mod listener;
pub mod logging;
pub mod migrate;
mod notify;
mod preflight;
mod tls;

use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::server::HealthReporter;
use tower::util::{MapResponseLayer, option_layer};

pub use listener::{Bound, ListenerError};
pub use preflight::tls_files_problem;

use crate::api::forward::{Forwarder, Origin};
use crate::api::identity::MetricsAccess;
use crate::api::{self, Identities, grpc};
use crate::audit::Auditor;
use crate::config::{self, Config, Listener, StorageConfig};
use crate::error::Error;
use crate::ha;
use crate::lifecycle::{
    AutoUnsealState, InitParams, InitResult, Lifecycle, Options, Phase, RotationPolicy,
};
use crate::node::Node;
use crate::seal::Seal;
use crate::seal::awskms::AwsKms;
use crate::seal::set::{Member, SealSet};
use crate::storage::{self, Backend, OpenError, PostgresBackend};
use logging::LogLevelHandle;
use notify::Notifier;

/// How long in-flight requests get to finish after SIGTERM before the
/// process exits anyway.
const DRAIN_DEADLINE: Duration = Duration::from_millis(500);
/// How long the HA role's release may take at shutdown (docs/HA.md).
const RELEASE_DEADLINE: Duration = Duration::from_secs(3);
/// After the last request finished, how long connections get to flush
/// responses and close before the process exits without them.
const CLOSE_GRACE: Duration = Duration::from_millis(20);

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Storage could not be opened.
    #[error(transparent)]
    Storage(#[from] OpenError),
    /// The stored seal data could not be read, or dev init failed.
    #[error("{0}")]
    Start(#[from] Error),
    /// A listener could not start.
    #[error(transparent)]
    Bind(#[from] ListenerError),
    /// A listener stopped while serving; the daemon sealed and exited.
    #[error("{0}")]
    Listener(String),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// An audit file could not be opened.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
}

/// What start-up (and `server --check`) verifies before touching
/// anything: every file the config names opens as it will be used, and
/// every TLS listener's files load. One `FILE:LINE: KEY: sentence` per problem.
pub fn check(config: &Config) -> Vec<String> {
    preflight::check(config)
}

/// Starts the daemon described by `config` and serves until SIGTERM or SIGINT.
/// With `dev`, initialises with one share and unseals at once, printing the
/// share and root token.
pub async fn run(config: Config, log_level: LogLevelHandle, dev: bool) -> Result<(), ServerError> {
    log_settings(&config);
    if let StorageConfig::File { path, cache_size } = &config.storage.value {
        tracing::info!(path = %path.display(), cache_size, "storage: file");
    }
    if let StorageConfig::Postgresql(pg) = &config.storage.value {
        // The URL's Display hides its password.
        let url = pg.connection_url.as_ref().map(ToString::to_string);
        tracing::info!(connection_url = url.as_deref().unwrap_or(""), source = %pg.url_source, table = %pg.table, max_parallel = pg.max_parallel, skip_create_table = pg.skip_create_table, "storage: postgresql");
        if let Some(warning) = pg
            .connection_url
            .as_ref()
            .and_then(|u| u.unverified_remote())
        {
            tracing::warn!("{warning}");
        }
    }
    let seal = match (&config.multiseal, &config.seal) {
        (Some(multiseal), _) => Seal::Multi(Arc::new(seal_set(multiseal))),
        (None, None) => Seal::Shamir,
        (None, Some(settings)) => Seal::AwsKms(kms_client(settings, "seal: awskms")),
    };
    let migrate_from = config.disabled_seal.as_ref().map(|settings| {
        kms_client(
            settings,
            "seal: awskms, disabled (the seal a migration leaves)",
        )
    });
    // Before storage: a daemon that cannot audit must not serve.
    make_audit_files_private(&config.audit);
    let auditor = Auditor::open(&config.audit)?;
    let (storage, election) = open_storage(&config).await?;
    #[cfg(feature = "failpoints")]
    let storage = storage::failpoint::wrap(storage);
    let options = Options {
        cluster_name: config.cluster_name.value.clone(),
        rotation: RotationPolicy {
            max_encryptions: config.barrier.rotation_max_encryptions,
            interval: config.barrier.rotation_interval,
        },
        migrate_from,
        ha: election.as_ref().map(|_| advertised(&config)),
    };
    let node = Node::open(storage, seal, options, config.kv, auditor).await?;
    let ha = election
        .map(|(backend, settings)| ha::spawn(Arc::clone(&node.lifecycle), backend, settings));
    let dev_keys = match dev {
        true => Some(dev_init(&node.lifecycle).await?),
        false => None,
    };
    // Auto-unseal runs beside the listeners: Status answers at once,
    // "sealed, auto-unseal in progress", while KMS is asked.
    let health_check_interval = config
        .seal
        .as_ref()
        .map_or(Duration::ZERO, |s| s.health_check_interval);
    node.spawn_background(health_check_interval);

    let mut bound = Vec::with_capacity(config.listeners.len());
    for listener in &config.listeners {
        bound.push(listener::bind(listener).await?);
    }
    log_listeners(&config.listeners, &bound);
    if let Some(keys) = dev_keys {
        print_dev_banner(&keys, &bound);
    }

    let mut terminate = signal(SignalKind::terminate()).map_err(ServerError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(ServerError::Signals)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(ServerError::Signals)?;

    let notifier = Arc::new(Notifier::from_env());
    tokio::spawn(track_systemd_status(
        Arc::clone(&node.lifecycle),
        Arc::clone(&notifier),
    ));

    let reload = Reloader {
        running: config.clone(),
        node: Arc::clone(&node),
        log_level,
        tls: bound
            .iter()
            .filter_map(|b| match b {
                Bound::Tcp {
                    tls: Some(handle),
                    address,
                    ..
                } => Some((*address, Arc::clone(handle))),
                _ => None,
            })
            .collect(),
    };
    let shutdown = async move {
        loop {
            tokio::select! {
                _ = terminate.recv() => break "SIGTERM",
                _ = interrupt.recv() => break "SIGINT",
                _ = hangup.recv() => reload.reload(),
            }
        }
    };
    // The sockets are listening: connections queue until serve() accepts them.
    notifier.notify(&format!(
        "READY=1\nSTATUS={}",
        systemd_status(&node.lifecycle)
    ));
    let metrics_served = config.telemetry.prometheus_enabled();
    let result = serve(node, bound, shutdown, ha, metrics_served).await;
    notifier.notify("STOPPING=1");
    result
}

/// Serves `listeners` until `shutdown` resolves, then seals and drains:
/// in-flight strongroom requests get `DRAIN_DEADLINE` to finish.
/// `sys/metrics` is served when `metrics_served` (telemetry's retention).
pub async fn serve(
    node: Arc<Node>,
    listeners: Vec<Bound>,
    shutdown: impl Future<Output = &'static str>,
    ha: Option<ha::Handle>,
    metrics_served: bool,
) -> Result<(), ServerError> {
    let health = HealthReporter::new();
    tokio::spawn(grpc::track_health(
        Arc::clone(&node.lifecycle),
        health.clone(),
    ));

    let (stop, stopped) = watch::channel(false);
    let in_flight = drain::InFlight::default();
    let mut servers = JoinSet::new();
    let mut sockets = Vec::new();
    let shared = grpc::shared_routes(&health);
    // With HA: standbys forward, and the active takes forwarded calls.
    let forwarder = node
        .lifecycle
        .is_ha()
        .then(|| Forwarder::new(Arc::clone(&node)));
    let cluster = cluster::bind(&node)
        .await?
        .map(|bound| (bound, cluster::accept(&shared, &node, &listeners)));
    for (index, bound) in listeners.into_iter().enumerate() {
        let max_request_size = bound.max_request_size();
        let origin = Origin {
            index,
            kind: cluster::kind(&bound),
        };
        let routes = api::routes(
            &shared,
            &node,
            max_request_size,
            Identities::new(bound.identities())
                .with_allow_init(bound.allow_init())
                .with_metrics(MetricsAccess {
                    served: metrics_served,
                    unauthenticated: bound.unauthenticated_metrics_access(),
                }),
        );
        // HTTP/1.1 too: Vault's API beside gRPC on the same listener.
        let router = Server::builder()
            .accept_http1(true)
            .layer(in_flight.layer())
            .layer(MapResponseLayer::new(grpc::size_limit_status(
                max_request_size,
            )))
            .layer(option_layer(forwarder.as_ref().map(|f| f.layer(origin))))
            .add_routes(routes);
        let mut stopped = stopped.clone();
        let signal = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        match bound {
            Bound::Tcp {
                listener,
                tls: None,
                ..
            } => {
                let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
                servers.spawn(router.serve_with_incoming_shutdown(incoming, signal));
            }
            Bound::Tcp {
                listener,
                tls: Some(tls),
                ..
            } => {
                let incoming = listener::tls_incoming(listener, tls);
                servers.spawn(router.serve_with_incoming_shutdown(incoming, signal));
            }
            Bound::Unix { listener, path, .. } => {
                sockets.push(path);
                let incoming = UnixListenerStream::new(listener);
                servers.spawn(router.serve_with_incoming_shutdown(incoming, signal));
            }
        }
    }
    if let Some((bound, accept)) = cluster {
        let mut stopped = stopped.clone();
        let signal = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        let node = Arc::clone(&node);
        let in_flight = in_flight.clone();
        servers.spawn(cluster::serve(bound, node, accept, in_flight, signal));
    }

    let failed = tokio::select! {
        signal = shutdown => {
            tracing::info!(signal, "shutting down");
            None
        }
        Some(result) = servers.join_next() => Some(result),
    };
    // Keys go first, before waiting on anything; the encryption count is
    // recorded with them (one small write).
    node.lifecycle.seal().await;
    let _ = stop.send(true);
    let running = in_flight.settle(DRAIN_DEADLINE).await;
    if running > 0 {
        tracing::warn!(
            running,
            "requests still running after {DRAIN_DEADLINE:?}; exiting anyway"
        );
    }
    // The seal above gave the active role up: wait for the release, so a
    // standby takes over now rather than when the lease runs out.
    if let Some(ha) = ha
        && !ha.released(RELEASE_DEADLINE).await
    {
        tracing::warn!(
            "the active role was not released in time; a standby takes over when the lease runs out"
        );
    }
    // Connections that close promptly are waited for; idle ones that do not
    // answer GOAWAY are dropped with the process.
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while servers.join_next().await.is_some() {}
    })
    .await;
    for path in &sockets {
        listener::remove_socket(path);
    }
    match failed {
        None => Ok(()),
        Some(Ok(Ok(()))) => Err(ServerError::Listener(
            "a listener stopped unexpectedly".into(),
        )),
        Some(Ok(Err(e))) => Err(ServerError::Listener(format!("a listener failed: {e}"))),
        Some(Err(e)) => Err(ServerError::Listener(format!(
            "a listener task failed: {e}"
        ))),
    }
}

/// Opens the configured storage; with HA also what the election needs:
/// the PostgreSQL backend itself (to set its term) and its settings.
async fn open_storage(
    config: &Config,
) -> Result<
    (
        Arc<dyn Backend>,
        Option<(Arc<PostgresBackend>, ha::Settings)>,
    ),
    ServerError,
> {
    let StorageConfig::Postgresql(pg) = &config.storage.value else {
        return Ok((storage::open(&config.storage.value).await?, None));
    };
    if !pg.ha_enabled {
        let backend = PostgresBackend::open_lazily(pg, None)?;
        prepare(&backend, pg).await?;
        return Ok((Arc::new(backend), None));
    }
    let identity = storage::Identity::random().map_err(|e| ServerError::Start(e.into()))?;
    tracing::info!(identity = identity.as_str(), lease_ttl_ms = pg.ha_lease_ttl.as_millis() as u64, ha_table = %pg.ha_table, "HA enabled: this node stands by once unsealed, until it takes the active role");
    let backend = PostgresBackend::open_lazily(pg, Some((&identity, pg.ha_lease_ttl)))?;
    prepare(&backend, pg).await?;
    let backend = Arc::new(backend);
    let settings = ha::Settings {
        postgres: pg.clone(),
        identity,
        lease_ttl: pg.ha_lease_ttl,
    };
    Ok((
        Arc::clone(&backend) as Arc<dyn Backend>,
        Some((backend, settings)),
    ))
}

/// Connects to the database and checks its tables. Tables a newer
/// strongroom wrote stop the start; a database that cannot be reached,
/// refuses the credentials or lacks its tables does not: the daemon
/// serves Status, sealed, and every storage call tries again.
async fn prepare(
    backend: &PostgresBackend,
    pg: &config::PostgresConfig,
) -> Result<(), ServerError> {
    match backend.prepare().await {
        Ok(()) => Ok(()),
        Err(e) if e.fatal => Err(ServerError::Storage(OpenError::Database {
            target: pg
                .connection_url
                .as_ref()
                .map_or_else(String::new, |u| u.redacted()),
            reason: e.reason,
        })),
        Err(e) => {
            tracing::warn!(reason = %e.reason, "the database is not ready; strongroom starts sealed and tries again");
            Ok(())
        }
    }
}

/// What this node advertises when it is active.
fn advertised(config: &Config) -> crate::lifecycle::Leader {
    // Checked before start (preflight): with HA there is an address.
    let api_addr = config
        .advertised_api_addr()
        .ok()
        .flatten()
        .unwrap_or_default();
    let cluster_addr = config.cluster_addr.value.clone().unwrap_or_default();
    tracing::info!(api_addr = %api_addr, cluster_addr = %cluster_addr, "HA: addresses advertised when active");
    crate::lifecycle::Leader {
        api_addr,
        cluster_addr,
        active_since_unix_ms: 0,
    }
}

/// What `--dev` prints: its only unseal key and its root token.
struct DevKeys {
    key: zeroize::Zeroizing<String>,
    init: InitResult,
}

/// `--dev`: init with one share and unseal with it.
async fn dev_init(lifecycle: &Lifecycle) -> Result<DevKeys, ServerError> {
    let init = lifecycle.init_and_confirm(InitParams::shamir(1, 1)).await?;
    let key = zeroize::Zeroizing::new(STANDARD.encode(init.shares[0].expose()));
    lifecycle.unseal(&key).await?;
    Ok(DevKeys { key, init })
}

/// Printed once the dev listener is bound, so the address is the real one
/// (port 0 included) and the lines can be pasted as `vault server -dev`'s.
fn print_dev_banner(keys: &DevKeys, bound: &[Bound]) {
    let address = bound.iter().find_map(|b| match b {
        Bound::Tcp { address, .. } => Some(*address),
        Bound::Unix { .. } => None,
    });
    let exports = address.map_or_else(String::new, |address| {
        format!(
            "You may need to set the following environment variables:\n\
             \n\
             export STRONGROOM_ADDR='http://{address}'\n\
             export STRONGROOM_TOKEN='{}'\n\
             \n",
            keys.init.root_token.expose()
        )
    });
    // A reader that went away (`server --dev | head`) must not panic the
    // daemon: the lines are for a human, and the daemon serves on.
    let _ = writeln!(
        std::io::stdout(),
        "\n\
         WARNING! dev mode is enabled. strongroom keeps everything in memory, is already\n\
         initialized and unsealed, and prints its only unseal key and its root token\n\
         below. Everything is lost when it stops. Never use dev mode for real secrets.\n\
         \n\
         {exports}\
         Unseal Key: {}\n\
         Root Token: {}\n",
        keys.key.as_str(),
        keys.init.root_token.expose()
    );
}

/// An audit file keeps the mode it was created with; an older one (or one
/// made by hand) readable by others is made 0600, as Vault's file device does.
fn make_audit_files_private(devices: &[config::AuditDevice]) {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    for device in devices {
        let config::AuditDevice::File { path } = device else {
            continue;
        };
        // The mode is read and changed on the file opened, never through a
        // path a symlink could redirect between the two.
        let Ok(file) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
        else {
            continue;
        };
        let Ok(meta) = file.metadata() else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        if !meta.is_file() || mode & 0o077 == 0 {
            continue;
        }
        match file.set_permissions(std::fs::Permissions::from_mode(0o600)) {
            Ok(()) => {
                tracing::warn!(path = %path.display(), was = format!("{mode:04o}"), "the audit file was open to other users; made it 0600")
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), mode = format!("{mode:04o}"), error = %e, "the audit file is open to other users and its mode could not be changed")
            }
        }
    }
}

fn log_settings(config: &Config) {
    let file = config
        .file
        .as_deref()
        .map_or_else(|| "(none: dev mode)".into(), |f| f.display().to_string());
    let cluster_name = config
        .cluster_name
        .value
        .as_deref()
        .unwrap_or("(from init)");
    tracing::info!(config = %file, version = env!("CARGO_PKG_VERSION"), "starting strongroom");
    tracing::info!(setting = "cluster_name", value = cluster_name, source = %config.cluster_name.source, "setting");
    tracing::info!(setting = "disable_mlock", value = config.disable_mlock.value, source = %config.disable_mlock.source, "setting");
    tracing::info!(setting = "log_level", value = config.log_level.value.as_str(), source = %config.log_level.source, "setting");
    tracing::info!(setting = "log_format", value = config.log_format.value.as_str(), source = %config.log_format.source, "setting");
    tracing::info!(setting = "storage", value = config.storage.value.kind(), source = %config.storage.source, "setting");
}

fn log_listeners(configured: &[Listener], bound: &[Bound]) {
    for (listener, bound) in configured.iter().zip(bound) {
        match (listener, bound) {
            (Listener::Tcp(tcp), Bound::Tcp { address, .. }) => {
                let tls = match &tcp.tls {
                    None => "off",
                    Some(files) if files.client_ca.is_some() => "mutual",
                    Some(_) => "on",
                };
                tracing::info!(transport = "tcp", address = %address, tls, "listening");
            }
            (_, Bound::Unix { path, .. }) => {
                tracing::info!(transport = "unix", address = %path.display(), "listening");
            }
            _ => {}
        }
    }
}

fn systemd_status(lifecycle: &Lifecycle) -> String {
    let status = lifecycle.status();
    match lifecycle.phase() {
        Phase::Uninitialized => "uninitialized; waiting for init".into(),
        Phase::Sealed => match status.auto_unseal {
            Some(auto) if auto.state == AutoUnsealState::Stopped => format!(
                "sealed by an operator; {}/{} recovery keys entered",
                status.progress, status.threshold
            ),
            Some(_) => "sealed; auto-unseal in progress".into(),
            None => format!(
                "sealed; {}/{} unseal keys entered",
                status.progress, status.threshold
            ),
        },
        Phase::Unsealed if lifecycle.is_ha() => "unsealed; active".into(),
        Phase::Unsealed => "unsealed".into(),
        Phase::Standby => "unsealed; standing by".into(),
    }
}

/// A KMS client for a seal block; its settings are logged under `label`.
/// Building it (the AWS config chain, the system trust store: ≈ 5 ms)
/// starts now and overlaps opening storage and binding listeners.
fn kms_client(settings: &config::AwsKmsSeal, label: &str) -> Arc<dyn crate::seal::kms::Kms> {
    let kms = Arc::new(AwsKms::new(settings.clone()));
    kms.log_settings(|var| std::env::var(var).ok(), label);
    tokio::spawn({
        let kms = Arc::clone(&kms);
        async move { kms.warm_up().await }
    });
    #[cfg(feature = "failpoints")]
    let kms = crate::seal::failpoint::wrap(kms);
    kms
}

/// The seals of an `enable_multiseal` config, each with its KMS client.
fn seal_set(multiseal: &config::Multiseal) -> SealSet {
    let members = multiseal
        .seals
        .iter()
        .map(|named| {
            let label = format!(
                // Names are checked by the config: letters, digits, - and _.
                "seal: awskms \"{}\" (priority {}{})",
                named.name,
                named.priority,
                if named.disabled {
                    ", disabled: decrypt-only"
                } else {
                    ""
                }
            );
            Member::new(
                named.name.clone(),
                named.priority,
                named.disabled,
                named.seal.health_check_interval,
                kms_client(&named.seal, &label),
            )
        })
        .collect();
    SealSet::new(
        members,
        multiseal.emergency.as_ref().map(|e| e.name.clone()),
    )
}

/// Keeps systemd's STATUS= line in step with the seal state.
async fn track_systemd_status(lifecycle: Arc<Lifecycle>, notifier: Arc<Notifier>) {
    let mut phases = lifecycle.subscribe();
    while phases.changed().await.is_ok() {
        notifier.notify(&format!("STATUS={}", systemd_status(&lifecycle)));
    }
}

/// What SIGHUP reloads: the log level and TLS certificates; it also
/// reopens audit files (after logrotate moved them).
struct Reloader {
    /// The settings the daemon started with.
    running: Config,
    node: Arc<Node>,
    log_level: LogLevelHandle,
    tls: Vec<(std::net::SocketAddr, listener::TlsHandle)>,
}

impl Reloader {
    fn reload(&self) {
        self.node.audit.reopen();
        let Some(file) = &self.running.file else {
            tracing::info!("SIGHUP: no config file to reload (dev mode)");
            return;
        };
        tracing::info!(config = %file.display(), "SIGHUP: reloading the config file");
        let config = match config::load(file, |var| std::env::var(var).ok()) {
            Ok(config) => config,
            Err(errors) => {
                tracing::error!(errors = %errors, "reload failed; the running settings stay in force");
                return;
            }
        };
        let changed = self.running.restart_needed(&config);
        if !changed.is_empty() {
            tracing::warn!(
                settings = %changed.join(", "),
                "SIGHUP: these settings changed in the file but take effect only after a restart"
            );
        }
        self.log_level.set(config.log_level.value);
        tracing::info!(level = config.log_level.value.as_str(), source = %config.log_level.source, "log level set");
        for listener in &config.listeners {
            let Listener::Tcp(tcp) = listener else {
                continue;
            };
            let running = self.tls.iter().find(|(address, _)| {
                address == &tcp.address
                    || (tcp.address.port() == 0 && address.ip() == tcp.address.ip())
            });
            match (running, &tcp.tls) {
                (Some((address, handle)), Some(files)) => match tls::server_config(files) {
                    Ok(new) => {
                        handle.store(new);
                        tracing::info!(address = %address, "TLS certificate reloaded");
                    }
                    Err(e) => {
                        tracing::error!(address = %address, error = %e, "TLS reload failed; the old certificate stays in use")
                    }
                },
                (None, None) => {}
                _ => {
                    tracing::warn!(address = %tcp.address, "TLS was turned on or off for this listener; that takes a restart")
                }
            }
        }
    }
}
