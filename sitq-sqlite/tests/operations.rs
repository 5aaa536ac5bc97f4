//! Operations on SQLite: the worker registry, task lists, statistics, the
//! audit log, `diagnose`, failure history with start times, and purge by
//! status.

mod common;
// One file per part, in tests/operations/ (a test crate's root resolves
// modules beside it, hence the paths).
#[path = "operations/audit.rs"]
mod audit;
#[path = "operations/diagnose.rs"]
mod diagnose;
#[path = "operations/history.rs"]
mod history;
#[path = "operations/lists.rs"]
mod lists;
#[path = "operations/purge.rs"]
mod purge;
#[path = "operations/stats.rs"]
mod stats;
#[path = "operations/workers.rs"]
mod workers;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{TempDb, eventually, task};
use sitq_core::{
    Backend, CheckLevel, ClaimRequest, ClaimedTask, Completion, ConnectOptions, Error, FailureKind,
    NewAuditEntry, NewTask, Outcome, Queue, TaskFailure, TaskFilter, TaskId, TaskStatus,
    WorkerBeat,
};
use sitq_sqlite::{SqliteBackend, transaction};

const MINUTE: i64 = 60_000_000;

async fn queue() -> Queue {
    Queue::connect("sqlite::memory:").await.expect("connect")
}

fn backend(queue: &Queue) -> &Arc<dyn Backend> {
    queue.backend()
}

fn beat(id: &str, ttl: Duration) -> WorkerBeat {
    WorkerBeat {
        id: id.to_owned(),
        host: "host-1".to_owned(),
        pid: 4242,
        version: "0.1.0".to_owned(),
        queues: vec!["default".to_owned(), "mail".to_owned()],
        tasks: vec!["a".to_owned(), "b".to_owned()],
        concurrency: 8,
        running: 0,
        ttl,
    }
}

/// Runs SQL in sitq's write transaction (to backdate rows for time windows).
async fn sql(queue: &Queue, statement: &'static str, values: Vec<i64>) -> usize {
    transaction(queue, move |tx| {
        tx.execute(
            statement,
            sitq_sqlite::rusqlite::params_from_iter(values.iter()),
        )
    })
    .await
    .expect(statement)
}

async fn claim_named(queue: &Queue, name: &str, lease: Duration) -> ClaimedTask {
    let names = [name.to_owned()];
    let mut claimed = backend(queue)
        .claim(ClaimRequest {
            worker_id: "w1",
            queues: &[],
            names: &names,
            limit: 1,
            start: 1,
            lease,
        })
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1, "one {name} task to claim");
    claimed.remove(0)
}

async fn finish(queue: &Queue, claimed: &ClaimedTask, outcome: Outcome) {
    let applied = backend(queue)
        .complete(vec![Completion {
            claim: claimed.claim_ref(),
            outcome,
        }])
        .await
        .expect("complete");
    assert_eq!(applied, vec![true]);
}

fn failed(message: &str) -> Outcome {
    Outcome::Failed(TaskFailure::new(FailureKind::Error, message))
}

fn on(queue_name: &str, name: &str) -> NewTask {
    NewTask {
        queue: queue_name.to_owned(),
        ..task(name)
    }
}

fn micros(at: Option<DateTime<Utc>>) -> Option<i64> {
    at.map(|at| at.timestamp_micros())
}
