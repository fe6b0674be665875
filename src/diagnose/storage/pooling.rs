//! Whether a transaction-pooling proxy sits between strongroom and
//! PostgreSQL: PgBouncer's `pool_mode = transaction` hands each statement
//! to any server session, which breaks the session-level advisory lock and
//! LISTEN that HA relies on.

use tokio_postgres::Client;

use super::postgres::{rows, value};
use crate::diagnose::Finding;

/// A session setting and the backend pid, asked in two statements of one
/// session: behind a transaction-pooling proxy the second may run on
/// another server session, which then has neither.
pub async fn check(client: &Client) -> Finding {
    let marker = hex::encode(crate::secret::random_bytes(8));
    let first = value(client, "SELECT pg_backend_pid()::text").await;
    let set = client
        .simple_query(&format!("SET strongroom.diagnose = '{marker}'"))
        .await;
    let second = rows(
        client,
        "SELECT pg_backend_pid()::text, current_setting('strongroom.diagnose', true)",
    )
    .await;
    // PgBouncer answers its own SHOW on the console only, but some proxies
    // answer it on every connection; an ordinary server refuses it.
    let pool_mode = value(client, "SHOW pool_mode").await.ok().flatten();
    match (first, set, second) {
        (Ok(Some(first)), Ok(_), Ok(rows)) => {
            let row = rows.into_iter().next().unwrap_or_default();
            let second = row.first().cloned().flatten();
            let kept = row.get(1).cloned().flatten().as_deref() == Some(marker.as_str());
            pooling_verdict(
                second.as_deref() == Some(first.as_str()),
                kept,
                pool_mode.as_deref(),
            )
        }
        _ => Finding::skipped(
            "pooling proxy",
            "the server did not answer the session questions",
        ),
    }
}

/// The verdict on a transaction-pooling proxy from what one session saw.
fn pooling_verdict(same_backend: bool, setting_kept: bool, pool_mode: Option<&str>) -> Finding {
    const NAME: &str = "pooling proxy";
    let transaction_mode = matches!(pool_mode, Some("transaction" | "statement"));
    if same_backend && setting_kept && !transaction_mode {
        Finding::success(
            NAME,
            "two statements of one session ran on the same server session with its settings kept: no transaction-pooling proxy is in the way",
        )
    } else {
        let seen = if transaction_mode {
            format!(
                "the proxy says pool_mode = {}",
                pool_mode.unwrap_or_default()
            )
        } else if !same_backend {
            "two statements of one session ran on different server sessions".into()
        } else {
            "a session setting was lost between two statements".into()
        };
        Finding::warning(
            NAME,
            format!(
                "a transaction-pooling proxy is in the way ({seen}): HA's advisory lock and LISTEN need one server session per connection"
            ),
            "connect strongroom to PostgreSQL directly, or through a pool in session mode (PgBouncer pool_mode = session)",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::Status;

    #[test]
    fn a_pool_that_moves_statements_is_named() {
        assert_eq!(pooling_verdict(true, true, None).status, Status::Success);
        for (same, kept, mode) in [
            (false, true, None),
            (true, false, None),
            (true, true, Some("transaction")),
        ] {
            let found = pooling_verdict(same, kept, mode);
            assert_eq!(
                found.status,
                Status::Warning,
                "{same} {kept} {}",
                mode.unwrap_or("none")
            );
            assert!(
                found.message.contains("transaction-pooling"),
                "{}",
                found.message
            );
        }
    }
}
