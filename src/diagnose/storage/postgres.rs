//! `storage "postgresql"`: connect as the daemon does, TLS, the server's
//! version, the tables and the format row, a scratch round trip through the
//! backend itself, and the pooling proxy check ([`super::pooling`]).

use tokio_postgres::{Client, SimpleQueryMessage};

use super::round_trip;
use crate::config::{PostgresConfig, SslMode};
use crate::diagnose::{Context, Finding};
use crate::storage::{FORMAT_VERSION, PostgresBackend, connect_once};

/// PostgreSQL's oldest version the README supports (`server_version_num`).
const MIN_VERSION_NUM: i64 = 130_000;

/// The checks of a PostgreSQL store.
pub async fn checks(context: &Context, pg: &PostgresConfig) -> Vec<Finding> {
    let target = pg
        .connection_url
        .as_ref()
        .map_or_else(|| "(no connection_url)".into(), |u| u.redacted());
    let client = match connect_once(pg).await {
        Ok(client) => client,
        Err(e) => {
            return vec![Finding::failure(
                "connection",
                format!("cannot connect to {target}: {e}"),
                "check the host, port, database, user and password of connection_url (or STRONGROOM_PG_CONNECTION_URL), and that the server lets this host in (pg_hba.conf)",
            )];
        }
    };
    let mut found = vec![Finding::success(
        "connection",
        format!("connected to {target}"),
    )];
    if !context.skipped("tls") {
        found.push(tls(&client, pg).await);
    }
    if !context.skipped("server version") {
        found.push(version(&client).await);
    }
    let tables = tables(&client, pg).await;
    let ready = matches!(&tables, Ok(Some(FORMAT_VERSION)));
    found.push(context.unless_skipped("tables", || tables_finding(pg, &tables)));
    if context.skipped("round trip") {
        found.push(Finding::skipped("round trip", "skipped (--skip)"));
    } else if ready {
        found.push(match PostgresBackend::open(pg).await {
            Ok(backend) => round_trip(&backend, &format!("table {}", pg.table)).await,
            Err(e) => Finding::failure(
                "round trip",
                format!("the store cannot be opened: {e}"),
                "the daemon could not open it either: fix the error above",
            ),
        });
    } else {
        found.push(Finding::skipped(
            "round trip",
            "not made: the tables are not there with this build's format yet, and diagnose does not create or change them",
        ));
    }
    if !context.skipped("pooling proxy") {
        found.push(super::pooling::check(&client).await);
    }
    found
}

/// The rows of `sql` (simple protocol: a transaction-pooling proxy passes
/// it, where prepared statements may not), each as its text columns.
pub(super) async fn rows(client: &Client, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
    let messages = client
        .simple_query(sql)
        .await
        .map_err(|e| crate::config::with_causes(&e))?;
    Ok(messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            _ => None,
        })
        .collect())
}

/// The first column of the first row.
pub(super) async fn value(client: &Client, sql: &str) -> Result<Option<String>, String> {
    Ok(rows(client, sql)
        .await?
        .into_iter()
        .next()
        .and_then(|row| row.into_iter().next().flatten()))
}

async fn tls(client: &Client, pg: &PostgresConfig) -> Finding {
    const NAME: &str = "tls";
    let mode = pg
        .connection_url
        .as_ref()
        .map_or(SslMode::Prefer, |u| u.ssl_mode);
    let answer = rows(
        client,
        "SELECT ssl::text, coalesce(version, '') FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )
    .await;
    let (on, version) = match answer.as_deref() {
        Ok([row, ..]) => (
            row.first().cloned().flatten().as_deref() == Some("true"),
            row.get(1).cloned().flatten().unwrap_or_default(),
        ),
        Ok([]) | Err(_) => {
            return Finding::skipped(
                NAME,
                "the server does not say whether this connection uses TLS (pg_stat_ssl)",
            );
        }
    };
    let remote = pg
        .connection_url
        .as_ref()
        .and_then(|u| u.unverified_remote());
    tls_verdict(on, &version, mode, remote)
}

/// TLS on or off, and whether the server is remote and unverified.
fn tls_verdict(on: bool, version: &str, mode: SslMode, remote: Option<String>) -> Finding {
    const NAME: &str = "tls";
    match (on, remote) {
        (false, Some(_)) => Finding::warning(
            NAME,
            format!(
                "the connection is not encrypted (sslmode={}) and the server is not on this host: the password and every entry cross the network in the clear",
                mode.as_str()
            ),
            "use sslmode=verify-full with sslrootcert=FILE in connection_url",
        ),
        (false, None) => Finding::success(
            NAME,
            format!(
                "the connection is not encrypted (sslmode={}); the server is on this host",
                mode.as_str()
            ),
        ),
        (true, Some(unverified)) => Finding::warning(
            NAME,
            format!("the connection uses {version}, but {unverified}"),
            "use sslmode=verify-full with sslrootcert=FILE in connection_url",
        ),
        (true, None) => Finding::success(
            NAME,
            format!("the connection uses {version} (sslmode={})", mode.as_str()),
        ),
    }
}

async fn version(client: &Client) -> Finding {
    const NAME: &str = "server version";
    let answer = rows(client, "SHOW server_version; SHOW server_version_num").await;
    let found = answer.ok().and_then(|rows| {
        let text = rows.first()?.first()?.clone()?;
        let num: i64 = rows.get(1)?.first()?.as_deref()?.parse().ok()?;
        Some((text, num))
    });
    match found {
        Some((text, num)) if num >= MIN_VERSION_NUM => {
            Finding::success(NAME, format!("PostgreSQL {text}"))
        }
        Some((text, _)) => Finding::warning(
            NAME,
            format!("PostgreSQL {text} is older than 13, the oldest strongroom is tested with"),
            "upgrade the server to a supported PostgreSQL",
        ),
        None => Finding::skipped(NAME, "the server does not say its version"),
    }
}

/// Whether the tables are there, and the format row's value: `Ok(None)`
/// for tables there without a format row; `Err` with what is missing.
async fn tables(client: &Client, pg: &PostgresConfig) -> Result<Option<u32>, Missing> {
    let meta = format!("{}_meta", pg.table);
    let mut wanted = vec![pg.table.clone(), meta.clone()];
    if pg.ha_enabled {
        wanted.push(pg.ha_table.clone());
        wanted.push(format!("{}_epoch", pg.ha_table));
    }
    let mut absent = Vec::new();
    for table in &wanted {
        // The names are checked identifiers (config/parse), so they can be
        // quoted as literals here.
        match value(client, &format!("SELECT to_regclass('{table}')::text")).await {
            Ok(Some(_)) => {}
            Ok(None) => absent.push(table.clone()),
            Err(e) => return Err(Missing::Error(e)),
        }
    }
    if !absent.is_empty() {
        let can_create = value(
            client,
            "SELECT has_schema_privilege(current_schema(), 'CREATE')::text",
        )
        .await
        .ok()
        .flatten()
        .as_deref()
            == Some("true");
        return Err(Missing::Tables { absent, can_create });
    }
    let format = value(
        client,
        &format!("SELECT value::text FROM {meta} WHERE name = 'format_version'"),
    )
    .await
    .map_err(Missing::Error)?;
    match format {
        None => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| {
            Missing::Error(format!("table {meta} holds a format that is not a number"))
        }),
    }
}

/// Why the tables are not ready.
enum Missing {
    /// These tables are not there.
    Tables {
        absent: Vec<String>,
        /// The user may create tables in its schema.
        can_create: bool,
    },
    /// A query failed.
    Error(String),
}

fn tables_finding(pg: &PostgresConfig, tables: &Result<Option<u32>, Missing>) -> Finding {
    const NAME: &str = "tables";
    let table = &pg.table;
    match tables {
        Ok(Some(FORMAT_VERSION)) => Finding::success(
            NAME,
            format!("the tables exist ({table} and its _meta), storage format {FORMAT_VERSION}"),
        ),
        Ok(Some(found)) if *found > FORMAT_VERSION => Finding::failure(
            NAME,
            format!(
                "table {table} was written by a newer strongroom (storage format {found}; this build reads format {FORMAT_VERSION} and older)"
            ),
            "run the strongroom version that wrote it, or a newer one",
        ),
        Ok(Some(found)) => Finding::warning(
            NAME,
            format!(
                "storage format {found}: the daemon raises it to {FORMAT_VERSION} at its next start, after which older builds refuse it"
            ),
            "take a snapshot before starting this version",
        ),
        Ok(None) => Finding::success(
            NAME,
            format!(
                "the tables exist ({table} and its _meta) but hold no format yet: not initialized yet"
            ),
        ),
        Err(Missing::Tables { absent, .. }) if pg.skip_create_table => Finding::failure(
            NAME,
            format!("{} missing, and skip_create_table is set", names(absent)),
            "create the tables as docs/STORAGE.md shows, or remove skip_create_table",
        ),
        Err(Missing::Tables {
            absent,
            can_create: true,
        }) => Finding::success(
            NAME,
            format!(
                "{} missing: the daemon creates them at its first start (not initialized yet)",
                names(absent)
            ),
        ),
        Err(Missing::Tables {
            absent,
            can_create: false,
        }) => Finding::failure(
            NAME,
            format!(
                "{} missing, and this user may not create tables in its schema",
                names(absent)
            ),
            "GRANT CREATE ON SCHEMA to the user, or create the tables as docs/STORAGE.md shows and set skip_create_table",
        ),
        Err(Missing::Error(e)) => Finding::failure(
            NAME,
            format!("the tables cannot be read: {e}"),
            "grant the user SELECT, INSERT, UPDATE and DELETE on the tables",
        ),
    }
}

/// `table a is` / `tables a, b are`.
fn names(tables: &[String]) -> String {
    match tables {
        [one] => format!("table {one} is"),
        many => format!("tables {} are", many.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::Status;

    #[test]
    fn plaintext_to_another_host_is_a_warning() {
        let remote = Some("the PostgreSQL server at db is not on this host".to_string());
        assert_eq!(
            tls_verdict(false, "", SslMode::Disable, remote.clone()).status,
            Status::Warning
        );
        assert_eq!(
            tls_verdict(true, "TLSv1.3", SslMode::Require, remote).status,
            Status::Warning
        );
        assert_eq!(
            tls_verdict(false, "", SslMode::Disable, None).status,
            Status::Success
        );
        let verified = tls_verdict(true, "TLSv1.3", SslMode::VerifyFull, None);
        assert_eq!(verified.status, Status::Success);
        assert!(verified.message.contains("TLSv1.3"), "{}", verified.message);
    }
}
