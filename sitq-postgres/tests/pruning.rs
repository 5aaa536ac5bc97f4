//! Pruning deletes old finished tasks in bounded steps, however many there are.

mod support;

use sitq_core::Backend;
use sqlx::{Connection, Executor};
use support::TestDb;

#[tokio::test]
async fn prune_deletes_a_large_backlog_in_bounded_steps() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    let mut connection = db.connection().await;
    // Every DELETE statement logs how many rows it took.
    connection
        .execute(
            "
CREATE TABLE prune_steps (deleted bigint NOT NULL);
CREATE FUNCTION log_prune_step() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO prune_steps SELECT count(*) FROM gone;
    RETURN NULL;
END $$;
CREATE TRIGGER log_prune_step AFTER DELETE ON sitq_tasks
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION log_prune_step();
INSERT INTO sitq_tasks (name, queue, payload, status, attempts, max_attempts, finished_at)
SELECT 'old', 'default', '', (ARRAY['succeeded', 'failed', 'cancelled'])[1 + i % 3], 1, 1,
       now() - interval '2 days'
FROM generate_series(1, 12345) AS i;
INSERT INTO sitq_tasks (name, queue, payload, status, attempts, max_attempts, finished_at)
SELECT 'recent', 'default', '', 'succeeded', 1, 1, now() FROM generate_series(1, 10);
INSERT INTO sitq_tasks (name, queue, payload, max_attempts)
SELECT 'waiting', 'default', '', 1 FROM generate_series(1, 10);",
        )
        .await
        .expect("set up the backlog");

    let pruned = backend
        .prune(chrono::Utc::now() - chrono::Duration::days(1))
        .await
        .expect("prune");
    assert_eq!(pruned, 12_345);

    let steps: Vec<i64> = sqlx::query_scalar("SELECT deleted FROM prune_steps")
        .fetch_all(&mut connection)
        .await
        .expect("read the steps");
    assert_eq!(steps.iter().sum::<i64>(), 12_345);
    assert!(
        steps.len() >= 3 && steps.iter().all(|deleted| *deleted <= 5_000),
        "at most 5,000 rows per statement: {steps:?}"
    );
    let left: Vec<(String, i64)> =
        sqlx::query_as("SELECT name, count(*) FROM sitq_tasks GROUP BY name ORDER BY name")
            .fetch_all(&mut connection)
            .await
            .expect("count what is left");
    assert_eq!(
        left,
        [("recent".to_owned(), 10), ("waiting".to_owned(), 10)],
        "recent and unfinished tasks stay"
    );
    connection.close().await.ok();
    backend.close().await;
    db.drop().await;
}
