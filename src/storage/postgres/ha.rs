//! The election and the fence of docs/HA.md: a node's own lock connection
//! (never from the data pool) waits on a session advisory lock, looks at
//! the lease when its wait times out, ends the sessions of a holder whose
//! lease ran out, and takes the role by bumping the epoch row, which every
//! write of the active node locks `FOR SHARE` (the fence, [`fence_sql`]).

use std::time::{Duration, Instant};

use rand::TryRng;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use super::{StorageError, driver_config, plain, tls};
use crate::config::{PostgresConfig, SslMode, with_causes};

/// `ha_lease_ttl` by default.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(5);
/// The one lock row's key (Vault's).
const LOCK_KEY: &str = "core/lock";
/// Every call on the lock connection answers within this, or the
/// connection is taken as dead.
const CALL_DEADLINE: Duration = Duration::from_millis(1500);

/// This process's identity in the election: 32 random hex digits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity(String);

impl Identity {
    /// A new random identity.
    pub fn random() -> Result<Self, StorageError> {
        let mut bytes = [0u8; 16];
        rand::rngs::SysRng.try_fill_bytes(&mut bytes).map_err(|e| {
            StorageError::Backend(format!("no randomness for the HA identity: {e}"))
        })?;
        Ok(Self(hex::encode(bytes)))
    }

    /// The 32 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `strongroom/<identity>`, on every connection of this node.
    pub fn application_name(&self) -> String {
        format!("strongroom/{}", self.0)
    }
}

/// A term of the active role: the epoch a take-over committed, and who took it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Term {
    /// The epoch row's number after the take-over.
    pub epoch: i64,
    /// The identity that took it.
    pub identity: String,
}

/// What a renewal found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// The lease was extended by `ha_lease_ttl` from the database's now.
    Renewed,
    /// The role is gone (another term, or the lock session ended): step down.
    Lost,
}

/// The fence: the first statement of every write transaction while a term
/// is held. `$1` the term's epoch, `$2` its identity; no row divides by
/// zero (SQLSTATE 22012), which aborts the transaction on the server.
pub fn fence_sql(ha_table: &str) -> String {
    format!(
        "SELECT 1 / count(*) FROM (
    SELECT 1 FROM {ha_table}_epoch
     WHERE ha_key = 'core/lock' AND epoch = $1 AND ha_identity = $2
       FOR SHARE
) AS fence"
    )
}

/// Creates the lease and epoch tables and their one row each. The epoch
/// row is inserted only with its table: a row deleted by hand is never
/// recreated at 0 (a reused epoch would let an old term's writes pass the
/// fence); the take-over then refuses with a sentence.
pub(super) async fn create_tables(
    client: &deadpool_postgres::Object,
    ha_table: &str,
) -> Result<(), String> {
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS {ha_table} (
            ha_key TEXT COLLATE \"C\" PRIMARY KEY, ha_identity TEXT COLLATE \"C\" NOT NULL,
            ha_value TEXT COLLATE \"C\" NOT NULL, valid_until TIMESTAMPTZ NOT NULL,
            holder_pid INTEGER NOT NULL, epoch BIGINT NOT NULL);
         INSERT INTO {ha_table} VALUES ('{LOCK_KEY}', '', '', '-infinity', 0, 0) ON CONFLICT DO NOTHING;
         DO $$ BEGIN
           IF to_regclass('{ha_table}_epoch') IS NULL THEN
             CREATE TABLE {ha_table}_epoch (
               ha_key TEXT COLLATE \"C\" PRIMARY KEY, epoch BIGINT NOT NULL,
               ha_identity TEXT COLLATE \"C\" NOT NULL);
             INSERT INTO {ha_table}_epoch VALUES ('{LOCK_KEY}', 0, '');
           END IF;
         END $$;"
    );
    client.batch_execute(&sql).await.map_err(|e| {
        format!(
            "cannot create the HA tables {ha_table} and {ha_table}_epoch: {}",
            plain(&e)
        )
    })
}

/// The election's statements, with the configured `ha_table` in them.
struct Statements {
    read_lease: String,
    end_sessions: String,
    end_lock_holder: String,
    end_previous: String,
    bump_epoch: String,
    write_lease: String,
    renew: String,
    release_epoch: String,
    release_lease: String,
}

impl Statements {
    fn new(t: &str) -> Self {
        let same_db = "AND usename = current_user AND datname = current_database()
               AND pid <> pg_backend_pid()";
        Self {
            read_lease: format!(
                "SELECT ha_identity, valid_until < now(),
                        valid_until < now() - make_interval(secs => $1), ha_value
                   FROM {t} WHERE ha_key = '{LOCK_KEY}'"
            ),
            end_sessions: format!(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE application_name = 'strongroom/' || $1 {same_db}"
            ),
            end_lock_holder: format!(
                "SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l
                 WHERE l.locktype = 'advisory' AND l.granted
                   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                   AND l.classid = (($1::bigint >> 32) & 4294967295)::oid
                   AND l.objid = ($1::bigint & 4294967295)::oid AND l.objsubid = 1
                   AND l.pid <> pg_backend_pid()
                   AND l.pid <> (SELECT holder_pid FROM {t} WHERE ha_key = '{LOCK_KEY}')
                   AND l.pid IN (SELECT pid FROM pg_stat_activity WHERE usename = current_user)"
            ),
            end_previous: format!(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE application_name = 'strongroom/' ||
                       (SELECT ha_identity FROM {t}
                         WHERE ha_key = '{LOCK_KEY}' AND ha_identity <> $1 AND ha_identity <> '')
                   {same_db}"
            ),
            bump_epoch: format!(
                "UPDATE {t}_epoch SET epoch = epoch + 1, ha_identity = $1
                 WHERE ha_key = '{LOCK_KEY}' RETURNING epoch"
            ),
            write_lease: format!(
                "UPDATE {t} SET ha_identity = $1, ha_value = $2, holder_pid = pg_backend_pid(),
                        epoch = $3, valid_until = now() + make_interval(secs => $4)
                 WHERE ha_key = '{LOCK_KEY}'"
            ),
            renew: format!(
                "UPDATE {t} SET valid_until = now() + make_interval(secs => $3)
                 WHERE ha_key = '{LOCK_KEY}' AND ha_identity = $1 AND epoch = $2
                   AND holder_pid = pg_backend_pid()
                   AND valid_until >= now()"
            ),
            release_epoch: format!(
                "UPDATE {t}_epoch SET ha_identity = ''
                 WHERE ha_key = '{LOCK_KEY}' AND ha_identity = $1 AND epoch = $2"
            ),
            release_lease: format!(
                "UPDATE {t} SET ha_identity = '', ha_value = '', holder_pid = 0,
                        valid_until = '-infinity'
                 WHERE ha_key = '{LOCK_KEY}' AND ha_identity = $1 AND epoch = $2"
            ),
        }
    }
}

/// One node's place in the election, on its own lock connection.
pub struct Election {
    client: Client,
    identity: Identity,
    /// `ha_lease_ttl` in seconds, as `make_interval` takes it.
    ttl: f64,
    key: i64,
    pid: i32,
    sql: Statements,
    /// `ha_table`, whose channel a take-over notifies.
    ha_table: String,
    term: Option<Term>,
    /// When the last take-over transaction began (before `now()` was
    /// read for the lease): the holder's local deadline counts from here.
    began: Option<Instant>,
}

/// The lock connection's error as a sentence.
fn lock_error(e: &tokio_postgres::Error) -> StorageError {
    StorageError::Backend(format!("PostgreSQL lock connection: {}", plain(e)))
}

/// A column of the HA tables read as `T`, or a sentence when an operator
/// made the table with another type.
fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a tokio_postgres::Row,
    index: usize,
) -> Result<T, StorageError> {
    row.try_get(index).map_err(|e| {
        StorageError::Backend(format!(
            "PostgreSQL: the HA tables hold a column of another type than strongroom made (docs/HA.md, Tables): {}",
            with_causes(&e)
        ))
    })
}

/// Runs `call` within [`CALL_DEADLINE`].
async fn timely<T>(
    call: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, StorageError> {
    match tokio::time::timeout(CALL_DEADLINE, call).await {
        Ok(result) => result.map_err(|e| lock_error(&e)),
        Err(_) => Err(lock_error_deadline()),
    }
}

/// A connection attempt, handshake and authentication included (the
/// driver's `connect_timeout` covers only the TCP connect), within
/// [`CALL_DEADLINE`].
async fn connect_in_time<T>(
    connect: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(CALL_DEADLINE, connect).await {
        Ok(result) => result.map_err(|e| plain(&e)),
        Err(_) => Err(format!(
            "the lock connection was not made within {} ms",
            CALL_DEADLINE.as_millis()
        )),
    }
}

impl Election {
    /// Opens the lock connection (`lock_timeout = 250ms`, keepalives of
    /// 1 s, `tcp_user_timeout` 2 s) and computes the advisory lock's key.
    pub async fn connect(
        config: &PostgresConfig,
        identity: &Identity,
        lease_ttl: Duration,
    ) -> Result<Self, StorageError> {
        let failed = |reason: String| StorageError::Backend(format!("PostgreSQL: {reason}"));
        let (mut pg, url) = driver_config(config).map_err(failed)?;
        // Added to the URL's own `options`, not in their place.
        let options = pg.get_options().map_or_else(
            || "-c lock_timeout=250ms".to_string(),
            |theirs| format!("{theirs} -c lock_timeout=250ms"),
        );
        pg.application_name(identity.application_name())
            .options(&options)
            .keepalives_idle(Duration::from_secs(1))
            .keepalives_interval(Duration::from_secs(1))
            .keepalives_retries(2)
            .tcp_user_timeout(Duration::from_secs(2));
        let client = match url.ssl_mode {
            SslMode::Disable => {
                let (client, connection) =
                    connect_in_time(pg.connect(NoTls)).await.map_err(failed)?;
                tokio::spawn(connection);
                client
            }
            mode => {
                let tls =
                    tls::RustlsConnect::new(mode, url.ssl_root_cert.as_deref()).map_err(failed)?;
                let (client, connection) =
                    connect_in_time(pg.connect(tls)).await.map_err(failed)?;
                tokio::spawn(connection);
                client
            }
        };
        let row = timely(client.query_one(
            // The key names the table as resolved (its oid), so every
            // spelling of it (`locks`, `Locks`, `public.locks`) is one lock.
            "SELECT hashtextextended('strongroom-ha:' || to_regclass($1)::oid::text, 0),
                    pg_backend_pid()",
            &[&format!("{}_epoch", config.ha_table)],
        ))
        .await?;
        Ok(Self {
            client,
            identity: identity.clone(),
            ttl: lease_ttl.as_secs_f64(),
            key: column(&row, 0)?,
            pid: column(&row, 1)?,
            sql: Statements::new(&config.ha_table),
            ha_table: config.ha_table.clone(),
            term: None,
            began: None,
        })
    }

    /// When the transaction of the last take-over began: the lease it
    /// wrote ends `ha_lease_ttl` after a moment later than this.
    pub fn lease_began(&self) -> Option<Instant> {
        self.began
    }

    /// The lock session's server process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The standby loop: returns once this node has taken the role, with
    /// its term, advertising what `addresses` gives at that moment in the
    /// lease. Each turn it looks
    /// at the lease it tells `observe` what the holder advertised (`None`:
    /// the lease is free or ran out). On an error, drop this election
    /// (ending its session frees the advisory lock if it was granted) and
    /// connect again.
    pub async fn campaign(
        &mut self,
        addresses: &(dyn Fn() -> String + Sync),
        observe: &mut (dyn FnMut(Option<&str>) + Send),
    ) -> Result<Term, StorageError> {
        // Since when this node has seen the lease expired while someone
        // else held the lock (its own clock: liveness only, never safety).
        let mut expired_since: Option<Instant> = None;
        loop {
            let waited = tokio::time::timeout(
                CALL_DEADLINE,
                self.client
                    .execute("SELECT pg_advisory_lock($1)", &[&self.key]),
            )
            .await;
            match waited {
                Ok(Ok(_)) => return self.take_over(addresses).await,
                // lock_timeout: this standby's turn to look at the lease.
                Ok(Err(e)) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {}
                Ok(Err(e)) => return Err(lock_error(&e)),
                Err(_) => return Err(lock_error_deadline()),
            }
            let row = timely(self.client.query_one(&self.sql.read_lease, &[&self.ttl])).await?;
            let holder: String = column(&row, 0)?;
            let (expired, long_expired): (bool, bool) = (column(&row, 1)?, column(&row, 2)?);
            let advertised: String = column(&row, 3)?;
            observe((!expired && !advertised.is_empty()).then_some(advertised.as_str()));
            if !expired {
                expired_since = None;
                continue;
            }
            let since = *expired_since.get_or_insert_with(Instant::now);
            if !holder.is_empty() {
                timely(self.client.query_one(&self.sql.end_sessions, &[&holder])).await?;
            }
            if long_expired && since.elapsed().as_secs_f64() > self.ttl {
                timely(
                    self.client
                        .query_one(&self.sql.end_lock_holder, &[&self.key]),
                )
                .await?;
                expired_since = None;
            }
        }
    }

    /// What the lease's holder advertised, without campaigning: `None`
    /// when the lease is free or ran out.
    pub async fn holder(&self) -> Result<Option<String>, StorageError> {
        let row = timely(self.client.query_one(&self.sql.read_lease, &[&self.ttl])).await?;
        let expired: bool = column(&row, 1)?;
        let advertised: String = column(&row, 3)?;
        Ok((!expired && !advertised.is_empty()).then_some(advertised))
    }

    /// Holding the advisory lock: end the previous holder's sessions, bump
    /// the epoch (waiting at most 500 ms for the writes holding the fence;
    /// then end them again), write the lease.
    async fn take_over(
        &mut self,
        addresses: &(dyn Fn() -> String + Sync),
    ) -> Result<Term, StorageError> {
        let me = self.identity.as_str().to_string();
        loop {
            timely(self.client.query_one(&self.sql.end_previous, &[&me])).await?;
            let addresses = addresses();
            self.began = Some(Instant::now());
            let txn = timely(self.client.transaction()).await?;
            timely(txn.batch_execute("SET LOCAL lock_timeout = '500ms'")).await?;
            let epoch: i64 = match tokio::time::timeout(
                CALL_DEADLINE,
                txn.query_opt(&self.sql.bump_epoch, &[&me]),
            )
            .await
            {
                Ok(Ok(Some(row))) => column(&row, 0)?,
                Ok(Ok(None)) => {
                    return Err(StorageError::Backend(
                        "PostgreSQL: the HA epoch row is missing, so no node can take the active role; restore it (docs/HA.md, Tables) with the highest epoch ever used"
                            .into(),
                    ));
                }
                Ok(Err(e)) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => continue,
                Ok(Err(e)) => return Err(lock_error(&e)),
                Err(_) => return Err(lock_error_deadline()),
            };
            let leased =
                timely(txn.execute(&self.sql.write_lease, &[&me, &addresses, &epoch, &self.ttl]))
                    .await?;
            if leased != 1 {
                return Err(StorageError::Backend(
                    "PostgreSQL: the HA lease row is missing, so the active role cannot be taken; restart a node to recreate it (docs/HA.md, Tables)".into(),
                ));
            }
            // Standbys learn the new active node now, not at their next
            // turn (delivered only if the take-over commits).
            timely(txn.execute(
                "SELECT pg_notify($1, $2)",
                &[
                    &super::notify::channel(&self.ha_table),
                    &super::notify::leader_payload(&self.ha_table, epoch, &addresses),
                ],
            ))
            .await?;
            timely(txn.commit()).await?;
            let term = Term {
                epoch,
                identity: me,
            };
            self.term = Some(term.clone());
            return Ok(term);
        }
    }

    /// Extends the lease by `ha_lease_ttl`: [`Renewal::Lost`] when no row
    /// matched or the lock session is gone.
    pub async fn renew(&self) -> Result<Renewal, StorageError> {
        let Some(term) = &self.term else {
            return Ok(Renewal::Lost);
        };
        if self.client.is_closed() {
            return Ok(Renewal::Lost);
        }
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&term.identity, &term.epoch, &self.ttl];
        let renewed = timely(self.client.execute(&self.sql.renew, &params)).await;
        match renewed {
            Ok(1) => Ok(Renewal::Renewed),
            Ok(_) => Ok(Renewal::Lost),
            Err(_) if self.client.is_closed() => Ok(Renewal::Lost),
            Err(e) => Err(e),
        }
    }

    /// Gives the role up: clears the epoch row's identity (waiting for the
    /// writes still holding the fence), frees the lease, and closes the
    /// lock connection, which frees the advisory lock at once.
    pub async fn release(mut self) -> Result<(), StorageError> {
        if let Some(term) = self.term.take() {
            let txn = timely(self.client.transaction()).await?;
            // Wait a little longer than a turn for writes still past their
            // fence; if they outlast it, dropping the connection still frees
            // the lock, and the next take-over ends this node's sessions.
            timely(txn.batch_execute("SET LOCAL lock_timeout = '1s'")).await?;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] =
                [&term.identity, &term.epoch];
            timely(txn.execute(&self.sql.release_epoch, &params)).await?;
            timely(txn.execute(&self.sql.release_lease, &params)).await?;
            timely(txn.commit()).await?;
        }
        Ok(())
    }
}

fn lock_error_deadline() -> StorageError {
    StorageError::Backend(format!(
        "PostgreSQL lock connection: no answer within {} ms",
        CALL_DEADLINE.as_millis()
    ))
}

#[cfg(test)]
mod tests {
    use super::fence_sql;

    /// The fence as docs/HA.md gives it ("The fence"), with the
    /// parameters in place of `$mine` and `$me`.
    #[test]
    fn fence_statement_is_the_designs() {
        let design = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/HA.md"))
            .unwrap_or_default();
        let start = design.find("SELECT 1 / count(*)").unwrap_or(0);
        let end = design[start..]
            .find(") AS fence")
            .map_or(0, |e| start + e + 10);
        let from_design = design[start..end]
            .replace("$mine", "$1")
            .replace("$me", "$2");
        assert_eq!(fence_sql("strongroom_ha_locks"), from_design);
    }
}
