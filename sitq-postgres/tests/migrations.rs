//! The schema is created on connect, once, even when many processes connect at once.

mod support;

use sitq_core::Backend;
use sqlx::Connection;
use support::{TestDb, task};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_connects_migrate_once() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backends = futures_join_all(&db, 6).await;
    let mut connection = db.connection().await;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM sitq_migrations")
        .fetch_one(&mut connection)
        .await
        .expect("read the migrations table");
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .expect("the migrations directory")
        .count();
    assert_eq!(applied, i64::try_from(migrations).expect("a few"));
    let sqlx_default: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
            .fetch_one(&mut connection)
            .await
            .expect("look for sqlx's default table");
    assert_eq!(sqlx_default, None, "sitq keeps its own migrations table");
    connection.close().await.ok();

    for backend in &backends {
        backend.enqueue(vec![task("t")]).await.expect("enqueue");
    }
    for backend in backends {
        backend.close().await;
    }
    db.drop().await;
}

/// Connects `count` backends at the same time.
async fn futures_join_all(db: &TestDb, count: usize) -> Vec<sitq_postgres::PostgresBackend> {
    let mut connecting = tokio::task::JoinSet::new();
    for _ in 0..count {
        let url = db.url.clone();
        connecting.spawn(async move {
            sitq_postgres::PostgresBackend::connect(&url, sitq_core::ConnectOptions::new()).await
        });
    }
    let mut backends = Vec::new();
    while let Some(joined) = connecting.join_next().await {
        backends.push(joined.expect("no panic").expect("every connect succeeds"));
    }
    backends
}
