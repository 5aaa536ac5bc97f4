//! Operations on PostgreSQL: the worker registry and drain requests (with
//! their `NOTIFY`), task lists, statistics, the audit log, `diagnose`,
//! purges by state, and the start time of failed attempts. The tests are
//! in `operations/`, by subject; the helpers they share are here.

mod support;

#[path = "operations/lists.rs"]
mod lists;
#[path = "operations/upkeep.rs"]
mod upkeep;
#[path = "operations/workers.rs"]
mod workers;

use std::time::Duration;

use chrono::{SubsecRound, Utc};
use sitq_core::{
    Backend, ClaimRequest, ClaimedTask, Completion, FailureKind, NewTask, Outcome, TaskFailure,
    WorkerBeat,
};
use sitq_postgres::PostgresBackend;
use sqlx::{Connection, Executor};

use support::{TestDb, request, task};

/// A beat of worker `id` that keeps its row for a minute.
fn beat(id: &str) -> WorkerBeat {
    WorkerBeat {
        id: id.to_owned(),
        host: "box-1".to_owned(),
        pid: 4242,
        version: "0.1.0".to_owned(),
        queues: vec!["mail".to_owned(), "reports".to_owned()],
        tasks: vec!["a::send".to_owned(), "b::render".to_owned()],
        concurrency: 8,
        running: 3,
        ttl: Duration::from_secs(60),
    }
}

/// Runs `statement` on a connection of its own, for what the API does not
/// do (moving clocks back, corrupting a row).
async fn sql(db: &TestDb, statement: &str) {
    let mut connection = db.connection().await;
    connection
        .execute(sqlx::AssertSqlSafe(statement.to_owned()))
        .await
        .unwrap_or_else(|error| panic!("{statement}: {error}"));
    connection.close().await.ok();
}

/// A task named `name` for `queue`, ready `ago` in the past.
fn task_in(queue: &str, name: &str, ago: chrono::Duration) -> NewTask {
    NewTask {
        queue: queue.to_owned(),
        name: name.to_owned(),
        run_at: Utc::now().trunc_subsecs(0) - ago,
        ..task(queue)
    }
}

/// Claims (and starts) up to `limit` ready tasks of `queue`.
async fn claim_from(backend: &PostgresBackend, queue: &str, limit: usize) -> Vec<ClaimedTask> {
    let queues = [queue.to_owned()];
    backend
        .claim(ClaimRequest {
            queues: &queues,
            ..request("w-1", limit)
        })
        .await
        .expect("claim")
}

/// Completes `claimed` with `outcome`; panics unless it applied.
async fn finish(backend: &PostgresBackend, claimed: &ClaimedTask, outcome: Outcome) {
    let applied = backend
        .complete(vec![Completion {
            claim: claimed.claim_ref(),
            outcome,
        }])
        .await
        .expect("complete");
    assert_eq!(applied, [true], "completing task {}", claimed.id);
}

fn failed(message: &str) -> Outcome {
    Outcome::Failed(TaskFailure::new(FailureKind::Error, message))
}
