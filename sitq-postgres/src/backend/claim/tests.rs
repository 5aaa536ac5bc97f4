//! The claim statement's plan: it must walk the partial ready index and stop
//! after `LIMIT` rows, however many names the worker knows, instead of
//! scanning or sorting the table. Needs a server (`SITQ_TEST_POSTGRES_URL`).

use sqlx::{Connection, Executor, PgConnection};

use super::{CLAIM_ANY_QUEUE, CLAIM_FROM_QUEUES};
use crate::connect::{Settings, migrate};

/// A fresh, migrated database holding 5,000 ready tasks of 20 names over 3
/// queues and 20,000 finished ones, analyzed; `None` without a server.
async fn seeded() -> Option<(PgConnection, String)> {
    seeded_with(
        "
INSERT INTO sitq_tasks (name, queue, payload, max_attempts, priority, run_at)
SELECT 'task' || i % 20, 'q' || i % 3, '', 3, i % 4, now() - i * interval '1 ms'
FROM generate_series(1, 5000) AS i;
INSERT INTO sitq_tasks (name, queue, payload, status, max_attempts, finished_at)
SELECT 'task' || i % 20, 'default', '', 'succeeded', 3, now()
FROM generate_series(1, 20000) AS i;
ANALYZE sitq_tasks;",
    )
    .await
}

/// A fresh, migrated database filled by `seed`; `None` without a server.
async fn seeded_with(seed: &str) -> Option<(PgConnection, String)> {
    let Ok(admin_url) = std::env::var("SITQ_TEST_POSTGRES_URL") else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "SITQ_TEST_POSTGRES_URL must be set in CI"
        );
        eprintln!("skipped: set SITQ_TEST_POSTGRES_URL (or run `cargo xtask test`)");
        return None;
    };
    let name = format!(
        "sitq_plan_{}_{}",
        std::process::id(),
        SEEDED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let mut admin = PgConnection::connect(&admin_url).await.expect("connect");
    for statement in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        admin
            .execute(sqlx::AssertSqlSafe(statement))
            .await
            .expect("create the database");
    }
    admin.close().await.ok();
    let url = match admin_url.split_once('?') {
        Some((base, query)) => format!("{}/{name}?{query}", base.rsplit_once('/')?.0),
        None => format!("{}/{name}", admin_url.rsplit_once('/')?.0),
    };
    let pool = Settings::parse(&url).expect("URL").pool(Some(1));
    migrate(&pool).await.expect("migrate");
    pool.close().await;
    let mut connection = PgConnection::connect(&url).await.expect("connect");
    connection
        .execute(sqlx::AssertSqlSafe(seed))
        .await
        .expect("seed");
    Some((connection, name))
}

/// Numbers the databases of one test process.
static SEEDED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The stored names among 3,000 others: a worker that knows every task of
/// the application, and of others.
fn many_names() -> Vec<String> {
    (0..3000)
        .map(|i| format!("other{i}"))
        .chain((0..20).map(|i| format!("task{i}")))
        .collect()
}

/// `EXPLAIN` of the claim statement `sql` with real parameters (so the plan
/// PostgreSQL makes for each execution), as text.
async fn explain(connection: &mut PgConnection, sql: &str, queues: Option<&[String]>) -> String {
    explain_for(connection, sql, &many_names(), queues).await
}

/// `EXPLAIN` of the claim statement `sql` for `names`.
async fn explain_for(
    connection: &mut PgConnection,
    sql: &str,
    names: &[String],
    queues: Option<&[String]>,
) -> String {
    let query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
        .bind("w")
        .bind(60_000_000_i64)
        .bind(32_i64)
        .bind(names)
        .bind(16_i64);
    let query = match queues {
        Some(queues) => query.bind(queues),
        None => query,
    };
    let lines = query.fetch_all(connection).await.expect("explain");
    // Without the 3,000 names, so that a failure stays readable.
    lines
        .iter()
        .map(|line| match line.find("'{other0,") {
            Some(at) => format!("{}'{{…}}'…", &line[..at]),
            None => line.clone(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_index_driven(plan: &str) {
    assert!(
        plan.contains("Index Scan using sitq_tasks_ready on sitq_tasks"),
        "walks the ready index:\n{plan}"
    );
    // The queue settings table (empty, or a few rows) may be scanned: once
    // per statement, as an InitPlan.
    assert!(
        !plan.lines().any(|line| {
            (line.contains("Seq Scan") || line.contains("Bitmap")) && line.contains("sitq_tasks")
        }),
        "scans no task table:\n{plan}"
    );
    for line in plan.lines().filter(|line| line.contains("Sort Key")) {
        assert!(
            line.contains("picked."),
            "sorts only the picked rows:\n{plan}"
        );
    }
}

#[tokio::test]
async fn claims_walk_the_ready_index_with_many_names() {
    let Some((mut connection, name)) = seeded().await else {
        return;
    };
    let plan = explain(&mut connection, CLAIM_ANY_QUEUE, None).await;
    assert_index_driven(&plan);
    let queues = ["q1".to_owned()];
    let plan = explain(&mut connection, CLAIM_FROM_QUEUES, Some(&queues)).await;
    assert_index_driven(&plan);

    // sqlx prepares the statement once per connection; PostgreSQL must keep
    // planning it per execution (a generic plan knows neither the LIMIT nor
    // the names, and would join against the whole table).
    let names = many_names();
    for _ in 0..20 {
        sqlx::query(CLAIM_ANY_QUEUE)
            .bind("w")
            .bind(60_000_000_i64)
            .bind(1_i64)
            .bind(&names)
            .bind(1_i64)
            .execute(&mut connection)
            .await
            .expect("claim");
    }
    let (generic, custom): (i64, i64) = sqlx::query_as(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements
         WHERE statement = $1",
    )
    .bind(CLAIM_ANY_QUEUE)
    .fetch_one(&mut connection)
    .await
    .expect("read the statement's plan counts");
    assert_eq!((generic, custom), (0, 20), "planned per execution");

    drop_database(connection, &name).await;
}

/// Closes `connection` and drops its database `name`.
async fn drop_database(connection: PgConnection, name: &str) {
    connection.close().await.ok();
    let admin_url = std::env::var("SITQ_TEST_POSTGRES_URL").expect("checked");
    let mut admin = PgConnection::connect(&admin_url).await.expect("connect");
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {name} WITH (FORCE)"
        )))
        .await
        .expect("drop the database");
    admin.close().await.ok();
}

/// Right after a bulk insert, before autovacuum analyzed the table, the
/// planner guesses selectivities: `name = ANY('{one}')` alone would count
/// as 0.5% of the rows, so it expected fewer ready rows than `LIMIT` and
/// read and sorted all 2,000 of them. The claim must still walk the index
/// and stop after `LIMIT` rows.
#[tokio::test]
async fn claims_walk_the_ready_index_with_one_name_and_stale_statistics() {
    let Some((mut connection, name)) = seeded_with(
        "
ALTER TABLE sitq_tasks SET (autovacuum_enabled = false);
INSERT INTO sitq_tasks (name, queue, payload, status, max_attempts, finished_at)
SELECT 'task', 'default', '', 'succeeded', 3, now()
FROM generate_series(1, 200000) AS i;
INSERT INTO sitq_tasks (name, queue, payload, max_attempts)
SELECT 'task', 'default', '', 3
FROM generate_series(1, 2000) AS i;",
    )
    .await
    else {
        return;
    };
    let names = ["task".to_owned()];
    let plan = explain_for(&mut connection, CLAIM_ANY_QUEUE, &names, None).await;
    assert_index_driven(&plan);
    let queues = ["default".to_owned()];
    let plan = explain_for(&mut connection, CLAIM_FROM_QUEUES, &names, Some(&queues)).await;
    assert_index_driven(&plan);
    drop_database(connection, &name).await;
}
