//! Telling standbys what the active node changed (docs/HA.md, "Standbys
//! and cache invalidation"): every fenced write notifies, inside its own
//! transaction, on the channel named as `ha_table`, so PostgreSQL delivers
//! the notification only if the write commits, in commit order; each node
//! listens on a connection of its own.
//!
//! Notifications make standbys fresh sooner; correctness never depends on
//! them (a take-over reloads everything): a listener that reconnects
//! reports [`Change::Missed`], since it may have missed some.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, NoTls};

use super::{Identity, driver_config, plain, tls};
use crate::config::{PostgresConfig, SslMode};
use crate::storage::{Batch, Op};

/// PostgreSQL refuses payloads of 8000 bytes or more; past this the
/// payload says only that everything may have changed.
const MAX_PAYLOAD: usize = 7000;
/// The longest wait between two attempts to listen again.
const RECONNECT_CAP: Duration = Duration::from_secs(5);

/// What a standby hears.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Entries under these prefixes (the first two segments of each key)
    /// changed; `["*"]`: any may have.
    Paths(Vec<String>),
    /// The store was cleared and refilled: a snapshot restore.
    Restored,
    /// The listen connection was (re)made: notifications may have been lost.
    Missed,
    /// A node took the active role; what it advertises (`ha_value`).
    Leader(String),
}

/// The channel for `ha_table`: its name, made an identifier PostgreSQL
/// keeps whole (at most 63 bytes, no dot).
pub(super) fn channel(ha_table: &str) -> String {
    let name = ha_table.replace('.', "_");
    // Table names are ASCII (config checks them); `get` stays safe anyway.
    name.get(..63).unwrap_or(&name).to_string()
}

/// The payload of one notification.
#[derive(Serialize, Deserialize)]
struct Payload {
    /// The `ha_table` of the cluster that wrote it (two clusters whose
    /// channel names were cut to the same 63 bytes do not mix).
    table: String,
    epoch: i64,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    restored: bool,
    /// A take-over's: the new active node's advertisement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    leader: Option<String>,
}

/// The payload for `batch`, written by the holder of `epoch`.
pub(super) fn payload(ha_table: &str, epoch: i64, batch: &Batch) -> String {
    let restored = batch.ops().iter().any(|op| matches!(op, Op::Clear));
    let mut paths = BTreeSet::new();
    for op in batch.ops() {
        if let Op::Put { key, .. } | Op::Delete { key } = op {
            paths.insert(prefix(key));
        }
    }
    let mut payload = Payload {
        table: ha_table.to_string(),
        epoch,
        paths: paths.into_iter().collect(),
        restored,
        leader: None,
    };
    let mut text = serde_json::to_string(&payload).unwrap_or_default();
    if text.len() > MAX_PAYLOAD || restored {
        payload.paths = vec!["*".into()];
        text = serde_json::to_string(&payload).unwrap_or_default();
    }
    text
}

/// The payload of a take-over by the holder of `epoch`, which advertises
/// `advertised`.
pub(super) fn leader_payload(ha_table: &str, epoch: i64, advertised: &str) -> String {
    serde_json::to_string(&Payload {
        table: ha_table.to_string(),
        epoch,
        paths: Vec::new(),
        restored: false,
        leader: Some(advertised.to_string()),
    })
    .unwrap_or_default()
}

/// The key's first two segments (`sys/policy/app` → `sys/policy`).
fn prefix(key: &str) -> String {
    let mut parts = key.splitn(3, '/');
    match (parts.next(), parts.next()) {
        (Some(first), Some(second)) => format!("{first}/{second}"),
        _ => key.to_string(),
    }
}

/// The change a notification's payload describes, if it is about
/// `ha_table`'s cluster.
fn change(ha_table: &str, payload: &str) -> Option<Change> {
    match serde_json::from_str::<Payload>(payload) {
        Ok(p) if p.table != ha_table => None,
        Ok(Payload {
            leader: Some(leader),
            ..
        }) => Some(Change::Leader(leader)),
        Ok(p) if p.restored => Some(Change::Restored),
        Ok(p) => Some(Change::Paths(p.paths)),
        Err(_) => Some(Change::Paths(vec!["*".into()])),
    }
}

/// Listens on `config`'s HA channel for as long as the returned receiver's
/// sender lives (the task ends when nobody subscribes any more), making the
/// connection again with backoff when it fails.
pub fn listen(config: &PostgresConfig, identity: &Identity) -> broadcast::Receiver<Change> {
    let (sender, receiver) = broadcast::channel(256);
    let config = config.clone();
    let identity = identity.clone();
    tokio::spawn(async move {
        let mut wait = Duration::from_millis(250);
        while sender.receiver_count() > 0 {
            match listen_once(&config, &identity, &sender).await {
                Ok(()) => wait = Duration::from_millis(250),
                Err(e) => {
                    tracing::debug!(error = %e, "the listen connection failed; making it again");
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(RECONNECT_CAP);
        }
    });
    receiver
}

/// One listen connection, until it fails.
async fn listen_once(
    config: &PostgresConfig,
    identity: &Identity,
    sender: &broadcast::Sender<Change>,
) -> Result<(), String> {
    let (mut pg, url) = driver_config(config)?;
    pg.application_name(identity.application_name());
    let table = config.ha_table.as_str();
    match url.ssl_mode {
        SslMode::Disable => {
            let (client, connection) = pg.connect(NoTls).await.map_err(|e| plain(&e))?;
            serve(client, connection, table, sender).await
        }
        mode => {
            let tls = tls::RustlsConnect::new(mode, url.ssl_root_cert.as_deref())?;
            let (client, connection) = pg.connect(tls).await.map_err(|e| plain(&e))?;
            serve(client, connection, table, sender).await
        }
    }
}

/// Drives `connection`, LISTENs on `ha_table`'s channel and forwards what
/// it hears.
async fn serve<S, T>(
    client: tokio_postgres::Client,
    mut connection: tokio_postgres::Connection<S, T>,
    ha_table: &str,
    sender: &broadcast::Sender<Change>,
) -> Result<(), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    // The messages arrive through the connection, which must be polled
    // while LISTEN is sent on the client.
    let (messages, mut incoming) = tokio::sync::mpsc::unbounded_channel();
    let driver = async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(message)) => {
                    if messages.send(message).is_err() {
                        return Ok(());
                    }
                }
                Some(Err(e)) => return Err(plain(&e)),
                None => return Err("the listen connection closed".to_string()),
            }
        }
    };
    let channel = channel(ha_table);
    let listening = async {
        // The channel is letters, digits and `_`.
        client
            .batch_execute(&format!("LISTEN \"{channel}\""))
            .await
            .map_err(|e| plain(&e))?;
        // Made (again): what happened before may have been missed.
        let _ = sender.send(Change::Missed);
        while let Some(message) = incoming.recv().await {
            if let AsyncMessage::Notification(n) = message
                && n.channel() == channel
                && let Some(change) = change(ha_table, n.payload())
            {
                let _ = sender.send(change);
            }
        }
        Ok::<(), String>(())
    };
    tokio::select! {
        driven = driver => driven,
        listened = listening => listened,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_prefixes_and_restores() {
        let mut batch = Batch::new();
        batch
            .put("sys/policy/app", vec![1])
            .put("sys/policy/ops", vec![1])
            .delete("core/keyring");
        let t = "locks";
        assert_eq!(
            change(t, &payload(t, 7, &batch)),
            Some(Change::Paths(vec![
                "core/keyring".into(),
                "sys/policy".into()
            ]))
        );
        // Another cluster's notification on a channel cut to the same name.
        assert_eq!(change("other", &payload(t, 7, &batch)), None);
        let mut restore = Batch::new();
        restore.clear().put("core/seal-config", vec![1]);
        assert_eq!(change(t, &payload(t, 7, &restore)), Some(Change::Restored));
        let mut big = Batch::new();
        for i in 0..2000 {
            big.put(format!("kv/{i}/x"), vec![]);
        }
        let big = payload(t, 7, &big);
        assert!(big.len() < MAX_PAYLOAD, "{}", big.len());
        assert_eq!(change(t, &big), Some(Change::Paths(vec!["*".into()])));
        assert_eq!(change(t, "not json"), Some(Change::Paths(vec!["*".into()])));
        assert_eq!(
            change(t, &leader_payload(t, 8, "{\"api_addr\":\"x\"}")),
            Some(Change::Leader("{\"api_addr\":\"x\"}".into()))
        );
        assert_eq!(
            channel("public.strongroom_ha_locks"),
            "public_strongroom_ha_locks"
        );
        assert_eq!(channel(&"x".repeat(80)).len(), 63);
    }
}
