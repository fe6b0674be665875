//! The election and the fence of docs/HA.md in the PostgreSQL backend, on
//! the shared test cluster (a fresh database per test): two elections in
//! one process stand for two nodes; a third connection plays the operator
//! (or the kernel, for kill -9). Times are printed, never asserted.

use std::time::{Duration, Instant};

use strongroom::config::{ConnectionUrl, PostgresConfig, Source};
use strongroom::storage::{
    Backend, Batch, Election, Identity, PostgresBackend, Renewal, StorageError, Term, fence_sql,
};
use strongroom_test_support::postgres::{self, Database};

/// Every wait for a take-over gives up after this.
const DEADLINE: Duration = Duration::from_secs(20);

fn settings(db: &Database) -> PostgresConfig {
    PostgresConfig {
        connection_url: Some(ConnectionUrl::parse(&db.url()).unwrap()),
        url_source: Source::Default,
        line: 1,
        table: "strongroom_kv_store".into(),
        ha_enabled: false,
        ha_table: "strongroom_ha_locks".into(),
        ha_lease_ttl: std::time::Duration::from_secs(5),
        max_parallel: 4,
        skip_create_table: false,
    }
}

/// A plain connection to `db` named `application_name`.
async fn connect(db: &Database, application_name: &str) -> tokio_postgres::Client {
    let url = format!("{}&application_name={application_name}", db.url());
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

fn put(key: &str) -> Batch {
    let mut batch = Batch::new();
    batch.put(key, b"v".to_vec());
    batch
}

/// Waits (up to [`DEADLINE`]) until a session of `node` waits for a lock;
/// fails with `never` otherwise.
async fn wait_for_a_lock_wait(admin: &tokio_postgres::Client, node: &Identity, never: &str) {
    let waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND application_name = $1";
    let started = Instant::now();
    while admin
        .query_one(waiting, &[&node.application_name()])
        .await
        .unwrap()
        .get::<_, i64>(0)
        == 0
    {
        assert!(started.elapsed() < DEADLINE, "{never}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Starts `election`'s campaign in the background.
fn campaign(mut election: Election) -> tokio::task::JoinHandle<(Election, Term)> {
    tokio::spawn(async move {
        let term = match election
            .campaign(&|| "{\"node\":\"b\"}".into(), &mut |_| {})
            .await
        {
            Ok(term) => term,
            Err(e) => panic!("the campaign failed: {e}"),
        };
        (election, term)
    })
}

#[tokio::test]
async fn postgres_ha_standby_takes_over_when_the_holders_lock_session_ends() {
    let db = postgres::database();
    let config = settings(&db);
    let ttl = Duration::from_secs(5);
    let (a, b) = (Identity::random().unwrap(), Identity::random().unwrap());
    let _tables = PostgresBackend::open_ha(&config, &a, ttl).await.unwrap();
    let mut first = Election::connect(&config, &a, ttl).await.unwrap();
    let term = first
        .campaign(&|| "{\"node\":\"a\"}".into(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(
        term,
        Term {
            epoch: 1,
            identity: a.as_str().into()
        }
    );
    assert_eq!(first.renew().await.unwrap(), Renewal::Renewed);
    let second = campaign(Election::connect(&config, &b, ttl).await.unwrap());
    // The lease is valid for 5 s: the second waits.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!second.is_finished(), "the standby took a held role");

    // What PostgreSQL sees of a kill -9: the lock session ends.
    let admin = connect(&db, "test-admin").await;
    let killed = Instant::now();
    admin
        .execute("SELECT pg_terminate_backend($1)", &[&first.pid()])
        .await
        .unwrap();
    let (_second, term) = tokio::time::timeout(DEADLINE, second)
        .await
        .expect("the standby takes over once the holder's lock session ends")
        .unwrap();
    println!(
        "take-over after the holder's lock session ended: {:?}",
        killed.elapsed()
    );
    assert_eq!(term.epoch, 2);
    assert_eq!(term.identity, b.as_str());
    assert_eq!(first.renew().await.unwrap(), Renewal::Lost);
    assert_eq!(
        db.psql("SELECT ha_identity || ' ' || epoch FROM strongroom_ha_locks_epoch"),
        format!("{} 2", b.as_str())
    );
}

#[tokio::test]
async fn postgres_ha_paused_holder_is_fenced_out() {
    let db = postgres::database();
    let config = settings(&db);
    let ttl = Duration::from_secs(1);
    let (a, b) = (Identity::random().unwrap(), Identity::random().unwrap());
    let node_a = PostgresBackend::open_ha(&config, &a, ttl).await.unwrap();
    let mut election_a = Election::connect(&config, &a, ttl).await.unwrap();
    let term_a = election_a
        .campaign(&|| "{}".into(), &mut |_| {})
        .await
        .unwrap();
    node_a.set_term(Some(term_a.clone()));
    node_a.write(put("k/before")).await.unwrap();

    // A write of A's, past its fence, then A pauses: the transaction is
    // left open on a session named as A's data sessions are.
    let paused = connect(&db, &a.application_name()).await;
    paused.batch_execute("BEGIN").await.unwrap();
    let fence = paused
        .query_one(
            fence_sql(&config.ha_table).as_str(),
            &[&term_a.epoch, &term_a.identity],
        )
        .await
        .unwrap();
    assert_eq!(fence.get::<_, i64>(0), 1);
    paused
        .execute(
            "INSERT INTO strongroom_kv_store (key, value) VALUES ('k/in-flight', 'x')",
            &[],
        )
        .await
        .unwrap();

    // A's lock session, its data session and the paused one carry its name.
    let sessions_of_a = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{}'",
        a.application_name()
    );
    assert_eq!(db.psql(&sessions_of_a), "3");

    // A renews no more; B waits out the lease, ends A's sessions, takes over.
    let node_b = PostgresBackend::open_ha(&config, &b, ttl).await.unwrap();
    let mut election_b = Election::connect(&config, &b, ttl).await.unwrap();
    let started = Instant::now();
    let term_b = tokio::time::timeout(DEADLINE, election_b.campaign(&|| "{}".into(), &mut |_| {}))
        .await
        .expect("B takes over from a paused holder within the deadline")
        .unwrap();
    println!(
        "take-over from a paused holder (ttl 1 s; from the campaign's start, the lease taken just before): {:?}",
        started.elapsed()
    );
    assert_eq!(term_b.epoch, 2);

    let ended = Instant::now();
    while db.psql(&sessions_of_a) != "0" {
        assert!(ended.elapsed() < DEADLINE, "A's sessions were not ended");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // A wakes: its open write cannot commit, nor can its next one.
    assert!(paused.batch_execute("COMMIT").await.is_err());
    assert_eq!(
        db.psql("SELECT count(*) FROM strongroom_kv_store WHERE key = 'k/in-flight'"),
        "0"
    );
    let refused = node_a.write(put("k/after")).await.unwrap_err();
    assert!(matches!(refused, StorageError::NotActive), "{refused}");
    assert_eq!(
        refused.to_string(),
        "this node is no longer the active node; the write was not made"
    );
    assert_eq!(
        db.psql("SELECT string_agg(key, ',' ORDER BY key) FROM strongroom_kv_store"),
        "k/before"
    );
    assert_eq!(election_a.renew().await.unwrap(), Renewal::Lost);

    // B writes under its term.
    node_b.set_term(Some(term_b));
    node_b.write(put("k/b")).await.unwrap();
    assert_eq!(
        db.psql("SELECT string_agg(key, ',' ORDER BY key) FROM strongroom_kv_store"),
        "k/b,k/before"
    );
}

#[tokio::test]
async fn postgres_ha_release_hands_over_at_once_and_a_stale_renewal_is_lost() {
    let db = postgres::database();
    let config = settings(&db);
    let ttl = Duration::from_secs(5);
    let (a, b) = (Identity::random().unwrap(), Identity::random().unwrap());
    let node_a = PostgresBackend::open_ha(&config, &a, ttl).await.unwrap();
    let mut first = Election::connect(&config, &a, ttl).await.unwrap();
    let term_a = first.campaign(&|| "{}".into(), &mut |_| {}).await.unwrap();
    node_a.set_term(Some(term_a));
    let second = campaign(Election::connect(&config, &b, ttl).await.unwrap());
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!second.is_finished(), "the standby took a held role");

    let released = Instant::now();
    first.release().await.unwrap();
    let (second, term_b) = tokio::time::timeout(DEADLINE, second)
        .await
        .expect("a waiting standby takes over after a release")
        .unwrap();
    println!(
        "take-over after a release (ttl 5 s): {:?}",
        released.elapsed()
    );
    assert_eq!(term_b.epoch, 2);
    // The released node's storage is fenced at once.
    assert!(matches!(
        node_a.write(put("k/a")).await,
        Err(StorageError::NotActive)
    ));

    // A renewal that matches no row (another term) says the role is lost.
    assert_eq!(second.renew().await.unwrap(), Renewal::Renewed);
    db.psql("UPDATE strongroom_ha_locks SET epoch = 99");
    assert_eq!(second.renew().await.unwrap(), Renewal::Lost);
}

#[tokio::test]
async fn postgres_ha_write_waiting_on_an_uncommitted_take_over_is_fenced_out() {
    let db = postgres::database();
    let config = settings(&db);
    let ttl = Duration::from_secs(5);
    let a = Identity::random().unwrap();
    let node_a = std::sync::Arc::new(PostgresBackend::open_ha(&config, &a, ttl).await.unwrap());
    let mut election_a = Election::connect(&config, &a, ttl).await.unwrap();
    node_a.set_term(Some(
        election_a
            .campaign(&|| "{}".into(), &mut |_| {})
            .await
            .unwrap(),
    ));

    // Another node's take-over, between its epoch UPDATE and its COMMIT.
    let other = connect(&db, "strongroom/other").await;
    other.batch_execute("BEGIN").await.unwrap();
    other
        .execute(
            "UPDATE strongroom_ha_locks_epoch SET epoch = epoch + 1, ha_identity = 'other'",
            &[],
        )
        .await
        .unwrap();
    // A's write reaches its fence and waits for that row lock.
    let writer = std::sync::Arc::clone(&node_a);
    let write = tokio::spawn(async move { writer.write(put("k/a")).await });
    let admin = connect(&db, "test-admin").await;
    wait_for_a_lock_wait(&admin, &a, "A's write never waited at its fence").await;
    other.batch_execute("COMMIT").await.unwrap();
    // SERIALIZABLE: the fence first fails to serialize and is run again,
    // then finds no row: refused, not made.
    let refused = tokio::time::timeout(DEADLINE, write)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(refused, Err(StorageError::NotActive)),
        "{refused:?}"
    );
    assert_eq!(db.psql("SELECT count(*) FROM strongroom_kv_store"), "0");
}

#[tokio::test]
async fn postgres_ha_a_lock_holder_that_never_takes_over_is_ended() {
    let db = postgres::database();
    let config = settings(&db);
    let ttl = Duration::from_secs(1);
    let b = Identity::random().unwrap();
    let _tables = PostgresBackend::open_ha(&config, &b, ttl).await.unwrap();
    // A node granted the advisory lock, then stuck before its take-over:
    // the lease stays free (at -infinity), the lock stays held.
    let stuck = connect(&db, "strongroom/stuck").await;
    stuck
        .execute(
            "SELECT pg_advisory_lock(hashtextextended('strongroom-ha:' || to_regclass('strongroom_ha_locks_epoch')::oid::text, 0))",
            &[],
        )
        .await
        .unwrap();
    let mut election = Election::connect(&config, &b, ttl).await.unwrap();
    let started = Instant::now();
    let term = tokio::time::timeout(DEADLINE, election.campaign(&|| "{}".into(), &mut |_| {}))
        .await
        .expect("a stuck lock holder is ended after the lease has been expired for a ttl")
        .unwrap();
    println!(
        "take-over past a lock holder stuck before its take-over (ttl 1 s): {:?}",
        started.elapsed()
    );
    assert_eq!(term.epoch, 1);
    assert!(stuck.is_closed() || stuck.simple_query("SELECT 1").await.is_err());
}

#[tokio::test]
async fn postgres_ha_take_over_waits_for_a_write_holding_the_fence() {
    let db = postgres::database();
    let config = settings(&db);
    let ttl = Duration::from_secs(5);
    let (a, b) = (Identity::random().unwrap(), Identity::random().unwrap());
    let _tables = PostgresBackend::open_ha(&config, &a, ttl).await.unwrap();
    let mut first = Election::connect(&config, &a, ttl).await.unwrap();
    let term_a = first.campaign(&|| "{}".into(), &mut |_| {}).await.unwrap();
    // A write of term 1 past its fence, on a session the take-over cannot
    // find by name (as one opened after the take-over ended A's sessions).
    let writer = connect(&db, "unnamed").await;
    writer.batch_execute("BEGIN").await.unwrap();
    writer
        .query_one(
            fence_sql(&config.ha_table).as_str(),
            &[&term_a.epoch, &term_a.identity],
        )
        .await
        .unwrap();
    writer
        .execute(
            "INSERT INTO strongroom_kv_store (key, value) VALUES ('k/term-1', 'x')",
            &[],
        )
        .await
        .unwrap();
    let second = campaign(Election::connect(&config, &b, ttl).await.unwrap());
    let admin = connect(&db, "test-admin").await;
    admin
        .execute("SELECT pg_terminate_backend($1)", &[&first.pid()])
        .await
        .unwrap();
    // B holds the advisory lock now, and its epoch UPDATE waits (500 ms
    // turns) for the write: it has not taken the term while the write is open.
    wait_for_a_lock_wait(&admin, &b, "B's take-over never waited for the write").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        !second.is_finished(),
        "B took the term past a write holding the fence"
    );
    assert_eq!(db.psql("SELECT epoch FROM strongroom_ha_locks_epoch"), "1");
    // The write commits within term 1; then B takes term 2.
    writer.batch_execute("COMMIT").await.unwrap();
    let (_second, term_b) = tokio::time::timeout(DEADLINE, second)
        .await
        .expect("B takes over once the write has ended")
        .unwrap();
    assert_eq!(term_b.epoch, 2);
    assert_eq!(
        db.psql("SELECT count(*) FROM strongroom_kv_store WHERE key = 'k/term-1'"),
        "1"
    );
}

#[tokio::test]
async fn postgres_ha_lock_connection_refused_says_why_without_the_password() {
    let db = postgres::database();
    let mut config = settings(&db);
    config.connection_url =
        Some(ConnectionUrl::parse(&db.url_with_password("pw-not-this-one")).unwrap());
    let identity = Identity::random().unwrap();
    let Err(refused) = Election::connect(&config, &identity, Duration::from_secs(5)).await else {
        panic!("a wrong password opened the lock connection");
    };
    let text = refused.to_string();
    assert!(text.contains("password authentication failed"), "{text}");
    assert!(!text.contains("pw-not-this-one"), "{text}");
    assert!(!text.contains("Error {"), "{text}");
}

#[tokio::test]
async fn postgres_ha_a_node_without_a_term_writes_nothing_and_a_lost_epoch_is_not_reborn() {
    let db = postgres::database();
    let config = settings(&db);
    let ttl = Duration::from_secs(5);
    let a = Identity::random().unwrap();
    let node_a = PostgresBackend::open_ha(&config, &a, ttl).await.unwrap();
    // A standby (no term yet, or stepped down) refuses, before the database.
    assert!(matches!(
        node_a.write(put("k")).await,
        Err(StorageError::NotActive)
    ));
    let mut election = Election::connect(&config, &a, ttl).await.unwrap();
    node_a.set_term(Some(
        election
            .campaign(&|| "{}".into(), &mut |_| {})
            .await
            .unwrap(),
    ));
    node_a.write(put("k")).await.unwrap();
    node_a.set_term(None);
    assert!(matches!(
        node_a.write(put("k2")).await,
        Err(StorageError::NotActive)
    ));
    assert_eq!(node_a.get("k2").await.unwrap(), None);
    election.release().await.unwrap();

    // An epoch row deleted by hand is not put back at 0 by a node's start,
    // so no term number is ever reused: a take-over refuses instead.
    let admin = connect(&db, "test-admin").await;
    admin
        .execute("DELETE FROM strongroom_ha_locks_epoch", &[])
        .await
        .unwrap();
    let b = Identity::random().unwrap();
    let _node_b = PostgresBackend::open_ha(&config, &b, ttl).await.unwrap();
    let rows = admin
        .query_one("SELECT count(*) FROM strongroom_ha_locks_epoch", &[])
        .await
        .unwrap();
    assert_eq!(rows.get::<_, i64>(0), 0);
    let mut election = Election::connect(&config, &b, ttl).await.unwrap();
    let refused = election
        .campaign(&|| "{}".into(), &mut |_| {})
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(refused.contains("epoch row is missing"), "{refused}");
}
