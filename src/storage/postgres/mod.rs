//! A PostgreSQL database as the store: one table of entries (key text,
//! value bytea) and one of metadata holding the storage format version.
//!
//! Every [`Batch`] is one SERIALIZABLE transaction, so its `RequireAbsent`
//! checks and its writes are atomic against every other batch, as the file
//! backend's single writer makes them; a transaction that loses a
//! serialization race is run again (a few times, then an error). Reads are
//! single statements; [`Backend::export`] reads in one REPEATABLE READ
//! transaction, one snapshot of the database. Keys sort as bytes
//! (`COLLATE "C"`), as every backend's `list` must.
//!
//! Connections come from a bounded pool (deadpool-postgres, `max_parallel`);
//! TLS through rustls ([`tls`]) as libpq's `sslmode` says.
//!
//! With HA ([`ha`], docs/HA.md) the connections carry the node's identity
//! in `application_name`, and while the backend holds a [`Term`] every
//! batch starts with the fence, so a deposed node's writes cannot commit.

mod ha;
mod notify;
mod tls;

pub use ha::{DEFAULT_LEASE_TTL, Election, Identity, Renewal, Term, fence_sql};
pub use notify::{Change, listen};
pub use tls::Unverified;

use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::{IsolationLevel, NoTls};

use super::file::FORMAT_VERSION;
use super::{Backend, Batch, Op, OpenError, StorageError};
use crate::config::{ConnectionUrl, PostgresConfig, SslMode, with_causes};
use crate::metrics;

/// How long a connection attempt, or a wait for a free pooled connection,
/// may take before the call fails with a sentence.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Runs of a batch that keeps losing serialization races.
const MAX_ATTEMPTS: u32 = 16;
const FORMAT_KEY: &str = "format_version";

/// The PostgreSQL backend.
pub struct PostgresBackend {
    pool: Pool,
    /// The tables to create and check before the first call.
    tables: Tables,
    /// Set once the tables are there and their format checked.
    ready: tokio::sync::OnceCell<()>,
    sql: Statements,
    /// The fence statement; `Some` when opened for HA.
    fence: Option<String>,
    /// With HA: the `ha_table`, whose channel every fenced write notifies.
    ha_table: Option<String>,
    /// The term this node holds, when active: every write is fenced by it.
    term: RwLock<Option<Term>>,
    /// The epoch of the last term whose fence refused a write (0: none):
    /// the election loop steps down at once on its own epoch.
    fenced_out: tokio::sync::watch::Sender<i64>,
}

/// Why one run of a batch did not commit.
enum Attempt {
    /// The transaction did not start: nothing was sent that could commit.
    /// On a pooled connection that turned out closed (a take-over ended
    /// this node's sessions, the database restarted), it is run again on
    /// another.
    NotStarted(tokio_postgres::Error),
    /// Before COMMIT: nothing was written; a serialization failure may be
    /// run again.
    Failed(tokio_postgres::Error),
    /// The final answer (a conflict, the fence, an unknown outcome).
    Done(StorageError),
}

/// The tables a backend checks (and creates) before its first call.
struct Tables {
    table: String,
    skip_create_table: bool,
    /// With HA: the lease table (its `_epoch` sibling is made with it).
    ha_table: Option<String>,
}

/// Why the tables are not ready.
#[derive(Debug)]
pub struct NotReady {
    /// Waiting will not help: tables written by a newer strongroom, or
    /// tables strongroom did not make.
    pub fatal: bool,
    /// One sentence.
    pub reason: String,
}

/// The statements, with the configured table names in them.
struct Statements {
    get: String,
    list: String,
    exists: String,
    put: String,
    delete: String,
    clear: String,
    export: String,
}

impl Statements {
    fn new(table: &str) -> Self {
        Self {
            get: format!("SELECT value FROM {table} WHERE key = $1"),
            list: format!("SELECT key FROM {table} WHERE key LIKE $1 ORDER BY key"),
            exists: format!("SELECT 1 FROM {table} WHERE key = $1"),
            put: format!(
                "INSERT INTO {table} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            ),
            delete: format!("DELETE FROM {table} WHERE key = $1"),
            clear: format!("DELETE FROM {table}"),
            export: format!("SELECT key, value FROM {table} ORDER BY key"),
        }
    }
}

/// A driver error as one plain sentence: the server's own message for a
/// refusal (wrong password, missing table), else the driver's (refused
/// connection). Neither repeats the connection URL.
fn plain(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => db.message().to_string(),
        None => with_causes(err),
    }
}

fn pool_sentence(err: &PoolError) -> String {
    match err {
        PoolError::Backend(e) => plain(e),
        PoolError::Timeout(_) => {
            format!(
                "no database connection within {}s",
                CONNECT_TIMEOUT.as_secs()
            )
        }
        other => other.to_string(),
    }
}

/// A driver error: [`StorageError::Unavailable`] when the connection is
/// gone or the server is shutting down or starting, else a backend failure.
fn backend(err: &tokio_postgres::Error) -> StorageError {
    let message = format!("PostgreSQL: {}", plain(err));
    let unreachable = err.is_closed()
        || matches!(
            err.code(),
            Some(
                &SqlState::ADMIN_SHUTDOWN
                    | &SqlState::CRASH_SHUTDOWN
                    | &SqlState::CANNOT_CONNECT_NOW
                    | &SqlState::CONNECTION_FAILURE
                    | &SqlState::CONNECTION_EXCEPTION
                    | &SqlState::CONNECTION_DOES_NOT_EXIST
            )
        )
        || (err.as_db_error().is_none() && std::error::Error::source(err).is_some());
    if unreachable {
        StorageError::Unavailable(message)
    } else {
        StorageError::Backend(message)
    }
}

impl PostgresBackend {
    /// Connects, creates the tables unless `skip_create_table`, and checks
    /// the format version; refuses tables written by a newer strongroom.
    pub async fn open(config: &PostgresConfig) -> Result<Self, OpenError> {
        Self::open_with(config, None).await
    }

    /// As [`PostgresBackend::open`], for a node taking part in HA: its data
    /// sessions carry `application_name = strongroom/<identity>` (so a
    /// take-over can end them) and end a transaction left idle for
    /// `lease_ttl`; the HA tables are created with the data table; writes
    /// are fenced once [`PostgresBackend::set_term`] gives a term.
    pub async fn open_ha(
        config: &PostgresConfig,
        identity: &Identity,
        lease_ttl: Duration,
    ) -> Result<Self, OpenError> {
        Self::open_with(config, Some((identity, lease_ttl))).await
    }

    async fn open_with(
        config: &PostgresConfig,
        ha: Option<(&Identity, Duration)>,
    ) -> Result<Self, OpenError> {
        Self::build(config, ha)?.opened(&target(config)).await
    }

    /// The pool and statements, connecting nothing.
    fn build(
        config: &PostgresConfig,
        ha: Option<(&Identity, Duration)>,
    ) -> Result<Self, OpenError> {
        let target = target(config);
        let failed = |reason: String| OpenError::Database {
            target: target.clone(),
            reason,
        };
        let (mut pg, url) = driver_config(config).map_err(failed)?;
        if let Some((identity, ttl)) = ha {
            pg.application_name(identity.application_name());
            let ours = format!(
                "-c idle_in_transaction_session_timeout={} -c lock_timeout=2s",
                ttl.as_millis().max(1)
            );
            // Added to the URL's own `options` (a search_path, say), not
            // in their place, so HA sessions see the tables the others do.
            let options = pg
                .get_options()
                .map_or_else(|| ours.clone(), |theirs| format!("{theirs} {ours}"));
            pg.options(options);
        }
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match url.ssl_mode {
            SslMode::Disable => Manager::from_config(pg, NoTls, manager_config),
            mode => {
                let tls =
                    tls::RustlsConnect::new(mode, url.ssl_root_cert.as_deref()).map_err(failed)?;
                Manager::from_config(pg, tls, manager_config)
            }
        };
        let pool = Pool::builder(manager)
            .max_size(config.max_parallel)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| failed(e.to_string()))?;
        Ok(Self {
            pool,
            tables: Tables {
                table: config.table.clone(),
                skip_create_table: config.skip_create_table,
                ha_table: ha.map(|_| config.ha_table.clone()),
            },
            ready: tokio::sync::OnceCell::new(),
            sql: Statements::new(&config.table),
            fence: ha.map(|_| fence_sql(&config.ha_table)),
            ha_table: ha.map(|_| config.ha_table.clone()),
            term: RwLock::new(None),
            fenced_out: tokio::sync::watch::Sender::new(0),
        })
    }

    /// Connects and prepares the tables now: `open`'s second half.
    async fn opened(self, target: &str) -> Result<Self, OpenError> {
        self.prepare().await.map_err(|e| OpenError::Database {
            target: target.to_string(),
            reason: e.reason,
        })?;
        Ok(self)
    }

    /// The daemon's way in: the pool is made (a malformed setting is an
    /// error now) but nothing connects yet; [`PostgresBackend::prepare`]
    /// then creates and checks the tables, and every call retries it until
    /// it succeeds, so a database that is down, refuses the credentials or
    /// lacks its tables keeps the daemon up and answering.
    pub fn open_lazily(
        config: &PostgresConfig,
        ha: Option<(&Identity, Duration)>,
    ) -> Result<Self, OpenError> {
        Self::build(config, ha)
    }

    /// Creates the tables (unless `skip_create_table`) and checks their
    /// format, once: later calls return at once.
    pub async fn prepare(&self) -> Result<(), NotReady> {
        self.ready
            .get_or_try_init(|| async {
                let retry = |reason: String| NotReady {
                    fatal: false,
                    reason,
                };
                let mut client = self
                    .pool
                    .get()
                    .await
                    .map_err(|e| retry(pool_sentence(&e)))?;
                let tables = &self.tables;
                let meta = format!("{}_meta", tables.table);
                check_format(&mut client, &tables.table, &meta, tables.skip_create_table).await?;
                if let (Some(ha_table), false) = (&tables.ha_table, tables.skip_create_table) {
                    ha::create_tables(&client, ha_table).await.map_err(retry)?;
                }
                Ok(())
            })
            .await
            .map(|_| ())
    }

    /// [`PostgresBackend::prepare`] for a storage call.
    async fn ready(&self) -> Result<(), StorageError> {
        self.prepare().await.map_err(|e| match e.fatal {
            true => StorageError::Backend(format!("PostgreSQL: {}", e.reason)),
            false => StorageError::Unavailable(format!("PostgreSQL: {}", e.reason)),
        })
    }

    /// The term this node holds (`None`: not active, and every write is
    /// refused with [`StorageError::NotActive`]). While a term is set,
    /// every write starts with the fence and fails, unmade, once another
    /// node has taken a newer term.
    pub fn set_term(&self, term: Option<Term>) {
        *self.term.write().unwrap_or_else(PoisonError::into_inner) = term;
    }

    /// Follows the epochs whose fence refused a write.
    pub fn fenced_out(&self) -> tokio::sync::watch::Receiver<i64> {
        self.fenced_out.subscribe()
    }

    fn term(&self) -> Option<Term> {
        self.term
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StorageError> {
        self.pool
            .get()
            .await
            .map_err(|e| StorageError::Unavailable(format!("PostgreSQL: {}", pool_sentence(&e))))
    }

    /// One run of `batch` in one transaction, fenced when a term is set.
    async fn try_write(
        &self,
        client: &mut deadpool_postgres::Object,
        batch: &Batch,
        term: Option<&Term>,
    ) -> Result<(), Attempt> {
        let txn = client
            .build_transaction()
            .isolation_level(IsolationLevel::Serializable)
            .start()
            .await
            .map_err(Attempt::NotStarted)?;
        if let (Some(fence), Some(term)) = (&self.fence, term) {
            // Each statement is awaited before the next is sent, so a
            // failed fence is seen here and no COMMIT follows it.
            if let Err(e) = txn
                .query_one(fence.as_str(), &[&term.epoch, &term.identity])
                .await
            {
                return Err(match e.code() {
                    Some(&SqlState::DIVISION_BY_ZERO) => Attempt::Done(StorageError::NotActive),
                    _ => Attempt::Failed(e),
                });
            }
        }
        for op in batch.ops() {
            if let Op::RequireAbsent { key } = op
                && txn
                    .query_opt(&self.sql.exists, &[key])
                    .await
                    .map_err(Attempt::Failed)?
                    .is_some()
            {
                txn.rollback().await.map_err(Attempt::Failed)?;
                return Err(Attempt::Done(StorageError::Conflict(key.clone())));
            }
        }
        for op in batch.ops() {
            match op {
                Op::Put { key, value } => txn.execute(&self.sql.put, &[key, value]).await,
                Op::Delete { key } => txn.execute(&self.sql.delete, &[key]).await,
                Op::Clear => txn.execute(&self.sql.clear, &[]).await,
                Op::RequireAbsent { .. } => Ok(0),
            }
            .map_err(Attempt::Failed)?;
        }
        if let (Some(ha_table), Some(term)) = (&self.ha_table, term) {
            // Delivered only if this transaction commits (docs/HA.md).
            let payload = notify::payload(ha_table, term.epoch, batch);
            txn.execute(
                "SELECT pg_notify($1, $2)",
                &[&notify::channel(ha_table), &payload],
            )
            .await
            .map_err(Attempt::Failed)?;
        }
        // The HA fault tests hold a fenced write here (docs/TESTING.md).
        #[cfg(feature = "failpoints")]
        if term.is_some() {
            crate::failpoint::pause_before_commit().await;
        }
        txn.commit().await.map_err(|e| match e.code() {
            // The server answered that it rolled back: nothing was made.
            Some(&SqlState::T_R_SERIALIZATION_FAILURE | &SqlState::T_R_DEADLOCK_DETECTED) => {
                Attempt::Failed(e)
            }
            _ => Attempt::Done(StorageError::OutcomeUnknown(format!(
                "PostgreSQL: {}",
                plain(&e)
            ))),
        })
    }
}

/// One connection made as the pool makes them (the URL, its timeouts and
/// keepalives, TLS as `sslmode` says), outside any pool: `strongroom
/// diagnose` asks the server its own questions on it. The error is one
/// sentence that does not repeat the URL.
pub async fn connect_once(config: &PostgresConfig) -> Result<tokio_postgres::Client, String> {
    let (pg, url) = driver_config(config)?;
    let client = match url.ssl_mode {
        SslMode::Disable => {
            let (client, connection) = pg.connect(NoTls).await.map_err(|e| plain(&e))?;
            tokio::spawn(connection);
            client
        }
        mode => {
            let tls = tls::RustlsConnect::new(mode, url.ssl_root_cert.as_deref())?;
            let (client, connection) = pg.connect(tls).await.map_err(|e| plain(&e))?;
            tokio::spawn(connection);
            client
        }
    };
    Ok(client)
}

/// Where the backend connects, as errors name it (password redacted).
fn target(config: &PostgresConfig) -> String {
    config
        .connection_url
        .as_ref()
        .map_or_else(|| "(no connection_url)".to_string(), |u| u.redacted())
}

/// The driver's settings from the block: URL, timeouts, keepalives, TLS
/// mode and the default `application_name`.
fn driver_config(
    config: &PostgresConfig,
) -> Result<(tokio_postgres::Config, &ConnectionUrl), String> {
    let url = config
        .connection_url
        .as_ref()
        .ok_or("storage.postgresql.connection_url is not set")?;
    let mut pg: tokio_postgres::Config = url
        .expose()
        .parse()
        .map_err(|e| format!("not a valid PostgreSQL URL ({})", with_causes(&e)))?;
    pg.connect_timeout(CONNECT_TIMEOUT);
    // A silent network cut must not hang a request for the kernel's
    // 15 minutes: keepalives after 10 s idle, and unacknowledged data
    // gives up after 30 s.
    pg.keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .keepalives_interval(Duration::from_secs(5))
        .keepalives_retries(3)
        .tcp_user_timeout(Duration::from_secs(30));
    pg.ssl_mode(match url.ssl_mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    });
    if pg.get_application_name().is_none() {
        pg.application_name("strongroom");
    }
    Ok((pg, url))
}

/// Creates the tables (unless told not to), then records this build's
/// format in a new or older store and refuses a newer one.
async fn check_format(
    client: &mut deadpool_postgres::Object,
    table: &str,
    meta: &str,
    skip_create: bool,
) -> Result<(), NotReady> {
    let retry = |reason: String| NotReady {
        fatal: false,
        reason,
    };
    let fatal = |reason: String| NotReady {
        fatal: true,
        reason,
    };
    let txn = client.transaction().await.map_err(|e| retry(plain(&e)))?;
    if !skip_create {
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {table} (key TEXT COLLATE \"C\" PRIMARY KEY, value BYTEA NOT NULL);
             CREATE TABLE IF NOT EXISTS {meta} (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        );
        txn.batch_execute(&create).await.map_err(|e| {
            retry(format!(
                "cannot create the tables {table} and {meta}: {}",
                plain(&e)
            ))
        })?;
    }
    let missing = |e: tokio_postgres::Error| {
        retry(match e.code() {
            Some(&SqlState::UNDEFINED_TABLE) => format!(
                "{} (skip_create_table is set: create the tables {table} and {meta} first, as docs/STORAGE.md shows)",
                plain(&e)
            ),
            _ => plain(&e),
        })
    };
    txn.execute(&format!("SELECT 1 FROM {table} LIMIT 1"), &[])
        .await
        .map_err(missing)?;
    let found: Option<i32> = txn
        .query_opt(
            &format!("SELECT value FROM {meta} WHERE name = $1"),
            &[&FORMAT_KEY],
        )
        .await
        .map_err(missing)?
        .map(|row| row.try_get(0))
        .transpose()
        .map_err(|e| {
            fatal(format!(
                "table {meta} is not one strongroom made: {}",
                with_causes(&e)
            ))
        })?;
    let supported = i64::from(FORMAT_VERSION);
    match found.map(i64::from) {
        Some(found) if found > supported => {
            return Err(fatal(format!(
                "table {table} was written by a newer strongroom (storage format {found}; this build reads format {supported} and older)"
            )));
        }
        Some(found) if found == supported => {}
        _ => {
            let upsert = format!(
                "INSERT INTO {meta} (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value"
            );
            let version = i32::try_from(FORMAT_VERSION).map_err(|e| fatal(e.to_string()))?;
            txn.execute(&upsert, &[&FORMAT_KEY, &version])
                .await
                .map_err(|e| retry(plain(&e)))?;
        }
    }
    txn.commit().await.map_err(|e| retry(plain(&e)))
}

/// A row of the wrong shape: a table strongroom did not make.
fn shape(e: &tokio_postgres::Error) -> StorageError {
    StorageError::Backend(format!(
        "PostgreSQL: the table holds a row of another shape than strongroom writes: {}",
        with_causes(e)
    ))
}

/// `prefix` as a LIKE pattern that matches it literally, then anything.
fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[async_trait]
impl Backend for PostgresBackend {
    fn kind(&self) -> &'static str {
        "postgresql"
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.ready().await?;
        let client = self.client().await?;
        let row = client
            .query_opt(&self.sql.get, &[&key])
            .await
            .map_err(|e| backend(&e))?;
        row.map(|row| row.try_get(0))
            .transpose()
            .map_err(|e| shape(&e))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        self.ready().await?;
        let client = self.client().await?;
        let rows = client
            .query(&self.sql.list, &[&like_prefix(prefix)])
            .await
            .map_err(|e| backend(&e))?;
        rows.iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()
            .map_err(|e| shape(&e))
    }

    async fn write(&self, batch: Batch) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        let term = self.term();
        // An HA backend without a term is a standby, or a node that stepped
        // down: it writes nothing (failing closed, so no write of a deposed
        // node slips through unfenced).
        // The store's first write is the exception: conditional on the
        // seal config being absent, it can be made only once, by any node.
        if self.fence.is_some() && term.is_none() && !batch.is_first_write() {
            return Err(StorageError::NotActive);
        }
        let started = Instant::now();
        self.ready().await?;
        let mut client = self.client().await?;
        let mut attempt = 1;
        loop {
            match self.try_write(&mut client, &batch, term.as_ref()).await {
                Ok(()) => {
                    metrics::commit("postgres", started);
                    return Ok(());
                }
                Err(Attempt::Done(StorageError::NotActive)) => {
                    if let Some(term) = &term {
                        self.fenced_out.send_replace(term.epoch);
                    }
                    return Err(StorageError::NotActive);
                }
                Err(Attempt::Done(e)) => return Err(e),
                Err(Attempt::Failed(e))
                    if attempt < MAX_ATTEMPTS
                        && matches!(
                            e.code(),
                            Some(
                                &SqlState::T_R_SERIALIZATION_FAILURE
                                    | &SqlState::T_R_DEADLOCK_DETECTED
                            )
                        ) =>
                {
                    // Writers of one key serialize: back off a little,
                    // with jitter, so they do not collide again at once.
                    let jitter = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| u64::from(d.subsec_nanos()) % 8);
                    let wait = Duration::from_millis((1 << attempt.min(6)) + jitter);
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(Attempt::NotStarted(e)) if attempt < MAX_ATTEMPTS && client.is_closed() => {
                    tracing::debug!(error = %e, "a pooled PostgreSQL connection was closed; writing on another");
                    // The closed one is not recycled: the pool checks.
                    drop(client);
                    client = self.client().await?;
                    attempt += 1;
                }
                Err(Attempt::NotStarted(e) | Attempt::Failed(e)) => return Err(backend(&e)),
            }
        }
    }

    async fn export(&self) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        self.ready().await?;
        let mut client = self.client().await?;
        let txn = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(|e| backend(&e))?;
        let rows = txn
            .query(&self.sql.export, &[])
            .await
            .map_err(|e| backend(&e))?;
        txn.commit().await.map_err(|e| backend(&e))?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(|e| shape(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::like_prefix;

    #[test]
    fn prefixes_match_literally() {
        assert_eq!(like_prefix("kv/a_b%c\\"), "kv/a\\_b\\%c\\\\%");
        assert_eq!(like_prefix(""), "%");
    }
}
