//! Shared by the PostgreSQL tests: a throw-away database per test, and small helpers.
//!
//! (`support/mod.rs` rather than `support.rs`: Cargo would build a file
//! directly in `tests/` as a test binary of its own.)

#![allow(dead_code)] // each test binary uses a different part

pub mod proxy;
pub mod tasks;
pub mod wire;

use std::future::Future;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use sitq_core::{ClaimRequest, ClaimedTask, ConnectOptions, NewTask};
use sitq_postgres::PostgresBackend;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

/// How long any single expected event may take before a test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Why no PostgreSQL test can run here, or `None` when a server is configured.
///
/// Panics when none is configured and `CI=true`: there, skipping would hide
/// that the tests never ran.
pub fn server_unavailable() -> Option<String> {
    match std::env::var("SITQ_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => None,
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "SITQ_TEST_POSTGRES_URL is not set but CI=true: the PostgreSQL tests must run in CI \
             (`cargo xtask test` starts a server and sets it)"
        ),
        _ => Some(
            "PostgreSQL tests skipped: set SITQ_TEST_POSTGRES_URL (or run `cargo xtask test`)"
                .into(),
        ),
    }
}

/// A database of its own for one test, on the server named by
/// `SITQ_TEST_POSTGRES_URL`; so tests run in parallel.
pub struct TestDb {
    admin_url: String,
    name: String,
    /// The URL of this test's database.
    pub url: String,
}

impl TestDb {
    /// A fresh database, or `None` (after saying so) when no server is configured.
    ///
    /// Panics when none is configured and `CI=true`: there, skipping would
    /// hide that the tests never ran.
    pub async fn create() -> Option<TestDb> {
        Self::create_with("").await
    }

    /// [`create`](TestDb::create) with `options` appended to `CREATE DATABASE`
    /// (e.g. an encoding).
    pub async fn create_with(options: &str) -> Option<TestDb> {
        if let Some(reason) = server_unavailable() {
            eprintln!("skipped: {reason}");
            return None;
        }
        let admin_url = std::env::var("SITQ_TEST_POSTGRES_URL").ok()?;
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| since.subsec_nanos())
            .unwrap_or_default();
        let name = format!(
            "sitq_test_{}_{}_{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .expect("connect to SITQ_TEST_POSTGRES_URL");
        admin
            .execute(AssertSqlSafe(format!("CREATE DATABASE {name} {options}")))
            .await
            .expect("create the test database");
        admin.close().await.ok();
        let url = with_database(&admin_url, &name);
        Some(TestDb {
            admin_url,
            name,
            url,
        })
    }

    /// A backend on this database with default options.
    pub async fn backend(&self) -> PostgresBackend {
        PostgresBackend::connect(&self.url, ConnectOptions::new())
            .await
            .expect("connect the backend")
    }

    /// A plain connection to this database, for what the API does not do
    /// (expiring a lease, killing a connection).
    pub async fn connection(&self) -> PgConnection {
        PgConnection::connect(&self.url)
            .await
            .expect("connect to the test database")
    }

    /// Drops the database (forcing out any connection left).
    pub async fn drop(self) {
        let mut admin = PgConnection::connect(&self.admin_url)
            .await
            .expect("connect to SITQ_TEST_POSTGRES_URL");
        admin
            .execute(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .await
            .expect("drop the test database");
        admin.close().await.ok();
    }
}

/// `url` pointing at database `name` instead, keeping its query string.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |at| at + 3);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |at| authority_start + at);
    let mut url = format!("{}/{name}", &base[..authority_end]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// The name of the tasks [`task`] makes, which [`request`] claims.
pub const TASK_NAME: &str = "sitq_postgres_tests::task";

/// [`TASK_NAME`] as the list of names a claim takes.
pub static NAMES: LazyLock<Vec<String>> = LazyLock::new(|| vec![TASK_NAME.to_owned()]);

/// A task named [`TASK_NAME`] for the default queue, ready now, with `label`
/// as its payload.
pub fn task(label: &str) -> NewTask {
    NewTask {
        name: TASK_NAME.to_owned(),
        queue: "default".to_owned(),
        payload: label.as_bytes().to_vec(),
        priority: 0,
        run_at: Utc::now() - chrono::Duration::seconds(1),
        max_attempts: 3,
        unique: None,
        sequence: None,
        deps: Default::default(),
        trace: None,
    }
}

/// A claim request for `limit` tasks named [`TASK_NAME`] from any queue,
/// all started, with a generous lease.
pub fn request(worker_id: &str, limit: usize) -> ClaimRequest<'_> {
    ClaimRequest {
        worker_id,
        queues: &[],
        names: &NAMES,
        limit,
        start: limit,
        lease: Duration::from_secs(60),
    }
}

/// The label [`task`] put in a claimed task's payload.
pub fn label(claimed: &ClaimedTask) -> String {
    String::from_utf8_lossy(&claimed.payload).into_owned()
}

/// Claims everything ready, one task at a time; the order of claims.
pub async fn claim_all(backend: &PostgresBackend, worker_id: &str) -> Vec<ClaimedTask> {
    use sitq_core::Backend;
    let mut claimed = Vec::new();
    loop {
        let batch = backend.claim(request(worker_id, 1)).await.expect("claim");
        if batch.is_empty() {
            return claimed;
        }
        claimed.extend(batch);
    }
}

/// Moves every running task's lease into the past, as if its worker vanished.
pub async fn expire_leases(db: &TestDb) {
    let mut connection = db.connection().await;
    connection
        .execute("UPDATE sitq_tasks SET lease_until = now() - interval '1 minute' WHERE status = 'running'")
        .await
        .expect("expire leases");
    connection.close().await.ok();
}

/// The server's clock.
pub async fn server_now(db: &TestDb) -> DateTime<Utc> {
    let mut connection = db.connection().await;
    let now = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut connection)
        .await
        .expect("read the server clock");
    connection.close().await.ok();
    now
}

/// Awaits `future`, failing the test with `what` if it takes longer than [`PATIENCE`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {PATIENCE:?}"))
}

/// Polls `condition` until it holds, failing the test with `what` after [`PATIENCE`].
pub async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    within(what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// The whole chain of an error, for assertions on its wording.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
