//! Dependencies, result inputs and workflows on SQLite, through the
//! `Backend` API: what the conformance suite leaves out (batch dependencies,
//! retries that recount, prune, a 10,000-dependency fan-in, the repair sweep).

mod common;

use std::time::Duration;

use chrono::Utc;
use common::{TempDb, memory, task};
use sitq_core::{
    Backend, CancelRequest, ClaimRequest, ClaimedTask, Completion, DepRef, Dependencies, Error,
    FailureKind, InputMode, NewTask, NewWorkflow, Outcome, TaskFailure, TaskId, TaskStatus,
    WorkflowId,
};
use sitq_sqlite::SqliteBackend;

/// A task named `name` depending on `after` (and receiving the results of `inputs`).
fn dependent(name: &str, after: Vec<DepRef>, inputs: Vec<DepRef>) -> NewTask {
    let input_mode = match inputs.len() {
        0 => InputMode::None,
        1 => InputMode::One,
        _ => InputMode::Many,
    };
    NewTask {
        deps: Dependencies {
            after,
            inputs,
            input_mode,
            after_finished: false,
        },
        ..task(name)
    }
}

fn after(name: &str, deps: &[DepRef]) -> NewTask {
    dependent(name, deps.to_vec(), Vec::new())
}

fn after_finished(name: &str, deps: &[DepRef]) -> NewTask {
    let mut task = after(name, deps);
    task.deps.after_finished = true;
    task
}

fn dep(id: TaskId) -> DepRef {
    DepRef::Task(id)
}

async fn claim_names(backend: &SqliteBackend, names: &[&str], limit: usize) -> Vec<ClaimedTask> {
    let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
    backend
        .claim(ClaimRequest {
            worker_id: "w",
            queues: &[],
            names: &names,
            limit,
            start: limit,
            lease: Duration::from_secs(60),
        })
        .await
        .expect("claim")
}

async fn finish(backend: &SqliteBackend, claimed: &ClaimedTask, outcome: Outcome) {
    let applied = backend
        .complete(vec![Completion {
            claim: claimed.claim_ref(),
            outcome,
        }])
        .await
        .expect("complete");
    assert_eq!(applied, [true], "completing task {}", claimed.id);
}

/// Claims the one ready task named `name` and completes it with `outcome`.
async fn run(backend: &SqliteBackend, name: &str, outcome: Outcome) -> TaskId {
    let claimed = claim_names(backend, &[name], 10).await;
    assert_eq!(claimed.len(), 1, "one ready {name}");
    finish(backend, &claimed[0], outcome).await;
    claimed[0].id
}

fn ok(value: u32) -> Outcome {
    Outcome::Succeeded(value.to_be_bytes().to_vec())
}

fn failed() -> Outcome {
    Outcome::Failed(TaskFailure::new(FailureKind::Error, "boom"))
}

async fn status(backend: &SqliteBackend, id: TaskId) -> TaskStatus {
    backend
        .status(id)
        .await
        .expect("status")
        .unwrap_or_else(|| panic!("task {id} exists"))
}

async fn cancel_reason(backend: &SqliteBackend, id: TaskId) -> Option<String> {
    let record = backend.get(id).await.expect("get").expect("task exists");
    assert_eq!(record.status, TaskStatus::Cancelled);
    let cancellation = record.cancellation.expect("a cancellation");
    assert_eq!(cancellation.by, sitq_core::DEPENDENCY_CANCELLED_BY);
    cancellation.reason
}

#[tokio::test]
async fn batch_dependencies_point_within_the_call() {
    let backend = memory().await;
    let ids = backend
        .enqueue(vec![
            task("a"),
            after("b", &[DepRef::Batch(0)]),
            after("c", &[DepRef::Batch(1), DepRef::Batch(0), DepRef::Batch(1)]),
        ])
        .await
        .expect("enqueue");
    assert_eq!(status(&backend, ids[0]).await, TaskStatus::Pending);
    assert_eq!(status(&backend, ids[1]).await, TaskStatus::Blocked);
    assert_eq!(status(&backend, ids[2]).await, TaskStatus::Blocked);
    run(&backend, "a", ok(1)).await;
    assert_eq!(status(&backend, ids[1]).await, TaskStatus::Pending);
    // c still waits for b; a listed once or twice counts once.
    assert_eq!(status(&backend, ids[2]).await, TaskStatus::Blocked);
    run(&backend, "b", ok(2)).await;
    assert_eq!(status(&backend, ids[2]).await, TaskStatus::Pending);

    // A Batch index that is not earlier is refused, nothing stored.
    let err = backend
        .enqueue(vec![task("a"), after("b", &[DepRef::Batch(1)])])
        .await
        .expect_err("a forward batch dependency");
    assert!(matches!(err, Error::InvalidOptions(_)), "{err}");
    assert!(claim_names(&backend, &["a"], 10).await.is_empty());
}

#[tokio::test]
async fn a_failed_dependency_cancels_the_batch_transitively_at_enqueue() {
    let backend = memory().await;
    let ids = backend.enqueue(vec![task("a")]).await.expect("enqueue");
    run(&backend, "a", failed()).await;
    let batch = backend
        .enqueue(vec![
            after("b", &[dep(ids[0])]),
            after("c", &[DepRef::Batch(0)]),
            after_finished("d", &[DepRef::Batch(1), dep(ids[0])]),
        ])
        .await
        .expect("enqueue");
    assert_eq!(
        cancel_reason(&backend, batch[0]).await.as_deref(),
        Some(format!("dependency {} (a) failed", ids[0]).as_str())
    );
    assert_eq!(
        cancel_reason(&backend, batch[1]).await.as_deref(),
        Some(format!("dependency {} (b) was cancelled", batch[0]).as_str())
    );
    let record = backend.get(batch[1]).await.expect("get").expect("task");
    let failure = record.failure.expect("a failure");
    assert_eq!(failure.kind, FailureKind::Cancelled);
    assert_eq!(
        failure.message,
        format!(
            "cancelled by dependency: dependency {} (b) was cancelled",
            batch[0]
        )
    );
    // after_finished: every dependency finished, whatever the outcome.
    assert_eq!(status(&backend, batch[2]).await, TaskStatus::Pending);
}

#[tokio::test]
async fn an_unknown_dependency_stores_nothing() {
    let backend = memory().await;
    let err = backend
        .enqueue(vec![task("a"), after("b", &[dep(TaskId(999))])])
        .await
        .expect_err("an unknown dependency");
    assert!(matches!(err, Error::NotFound(TaskId(999))), "{err}");
    assert!(claim_names(&backend, &["a", "b"], 10).await.is_empty());

    let err = backend
        .enqueue_workflow(NewWorkflow {
            name: "flow".into(),
            tasks: vec![task("a"), after("b", &[dep(TaskId(999))])],
        })
        .await
        .expect_err("an unknown dependency");
    assert!(matches!(err, Error::NotFound(TaskId(999))), "{err}");
    assert!(claim_names(&backend, &["a", "b"], 10).await.is_empty());
    assert_eq!(backend.workflow(WorkflowId(1)).await.expect("read"), None);
}

#[tokio::test]
async fn retry_recounts_dependencies() {
    let backend = memory().await;
    let ids = backend
        .enqueue(vec![task("a"), task("d")])
        .await
        .expect("enqueue");
    let (a, d) = (ids[0], ids[1]);
    let more = backend
        .enqueue(vec![
            after("b", &[dep(a)]),
            after_finished("c", &[dep(a), dep(d)]),
        ])
        .await
        .expect("enqueue");
    let (b, c) = (more[0], more[1]);
    run(&backend, "a", failed()).await;
    assert_eq!(status(&backend, b).await, TaskStatus::Cancelled);
    assert_eq!(status(&backend, c).await, TaskStatus::Blocked);

    // b waits for a again; a, running again, counts as unfinished for c.
    backend.retry(b).await.expect("retry b");
    assert_eq!(status(&backend, b).await, TaskStatus::Blocked);
    backend.retry(a).await.expect("retry a");
    assert_eq!(status(&backend, a).await, TaskStatus::Pending);
    run(&backend, "a", failed()).await;
    assert_eq!(
        cancel_reason(&backend, b).await.as_deref(),
        Some(format!("dependency {a} (a) failed").as_str())
    );
    // a finished twice, counted once: c still waits for d.
    assert_eq!(status(&backend, c).await, TaskStatus::Blocked);
    run(&backend, "d", ok(1)).await;
    assert_eq!(status(&backend, c).await, TaskStatus::Pending);

    // A retried dependent whose dependencies all succeeded is pending at once.
    backend.retry(a).await.expect("retry a");
    run(&backend, "a", ok(2)).await;
    backend.retry(b).await.expect("retry b");
    assert_eq!(status(&backend, b).await, TaskStatus::Pending);
}

#[tokio::test]
async fn cancel_and_lease_recovery_resolve_dependents() {
    let backend = memory().await;
    let ids = backend
        .enqueue(vec![
            NewTask {
                max_attempts: 1,
                ..task("a")
            },
            task("b"),
        ])
        .await
        .expect("enqueue");
    let more = backend
        .enqueue(vec![
            after("c", &[dep(ids[0])]),
            after("d", &[dep(ids[1])]),
            after("e", &[DepRef::Batch(1)]),
        ])
        .await
        .expect("enqueue");
    let finished = backend.signals().watch_finished(more[2]);
    // a's lease runs out with no attempt left: failed, c cancelled.
    let claimed = backend
        .claim(ClaimRequest {
            worker_id: "w",
            queues: &[],
            names: &["a".to_owned()],
            limit: 1,
            start: 1,
            lease: Duration::ZERO,
        })
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    common::eventually("a's lease to expire", || async {
        backend.recover_expired().await.expect("recover") > 0
    })
    .await;
    assert_eq!(status(&backend, ids[0]).await, TaskStatus::Failed);
    assert!(cancel_reason(&backend, more[0]).await.is_some());
    // b cancelled by hand: d, then e, cancelled; e's waiter is told.
    backend
        .cancel(ids[1], &CancelRequest::new())
        .await
        .expect("cancel");
    assert_eq!(
        cancel_reason(&backend, more[2]).await.as_deref(),
        Some(format!("dependency {} (d) was cancelled", more[1]).as_str())
    );
    tokio::time::timeout(Duration::from_secs(10), finished.notified())
        .await
        .expect("e's waiter is told it finished");
}

#[tokio::test]
async fn prune_keeps_what_an_unfinished_dependent_needs() {
    let db = TempDb::new("workflow-prune");
    let backend = db.connect().await;
    let ids = backend
        .enqueue(vec![task("a"), task("x"), task("lone")])
        .await
        .expect("enqueue");
    let b = backend
        .enqueue(vec![dependent("b", vec![dep(ids[1])], vec![dep(ids[0])])])
        .await
        .expect("enqueue")[0];
    run(&backend, "a", ok(7)).await;
    run(&backend, "lone", ok(0)).await;
    let later = Utc::now() + chrono::Duration::seconds(5);
    assert_eq!(backend.prune(later).await.expect("prune"), 1, "only lone");
    run(&backend, "x", ok(0)).await;
    let claimed = claim_names(&backend, &["b"], 10).await;
    let inputs = claimed[0].inputs.clone().expect("inputs");
    assert_eq!(inputs.mode, InputMode::One);
    assert_eq!(
        inputs.results,
        [(ids[0], Some(7u32.to_be_bytes().to_vec()))]
    );
    // Running, b still needs a and x.
    assert_eq!(backend.prune(later).await.expect("prune"), 0);
    finish(&backend, &claimed[0], ok(1)).await;
    assert_eq!(backend.prune(later).await.expect("prune"), 3);
    let conn = rusqlite::Connection::open(&db.path).expect("open");
    let edges: i64 = conn
        .query_row("SELECT count(*) FROM sitq_deps", [], |row| row.get(0))
        .expect("count");
    assert_eq!(edges, 0, "the pruned dependent's edges go with it");
    let _ = b;
}

#[tokio::test]
async fn ten_thousand_dependency_fan_in() {
    const N: usize = 10_000;
    let backend = memory().await;
    let ids = backend
        .enqueue((0..N).map(|_| task("m")).collect())
        .await
        .expect("enqueue");
    // Inputs in reverse order, the first one twice.
    let mut inputs: Vec<DepRef> = ids.iter().rev().map(|id| dep(*id)).collect();
    inputs.push(dep(ids[N - 1]));
    let fan_in = backend
        .enqueue(vec![dependent("t", Vec::new(), inputs)])
        .await
        .expect("enqueue")[0];
    assert_eq!(status(&backend, fan_in).await, TaskStatus::Blocked);
    let mut done = 0;
    loop {
        let claimed = claim_names(&backend, &["m"], 500).await;
        if claimed.is_empty() {
            break;
        }
        let completions = claimed
            .iter()
            .map(|task| Completion {
                claim: task.claim_ref(),
                outcome: Outcome::Succeeded(task.id.0.to_be_bytes().to_vec()),
            })
            .collect();
        backend.complete(completions).await.expect("complete");
        done += claimed.len();
        let expected = if done == N {
            TaskStatus::Pending
        } else {
            TaskStatus::Blocked
        };
        assert_eq!(status(&backend, fan_in).await, expected, "after {done}");
    }
    assert_eq!(done, N);
    let claimed = claim_names(&backend, &["t"], 1).await;
    let inputs = claimed[0].inputs.clone().expect("inputs");
    assert_eq!(inputs.mode, InputMode::Many);
    assert_eq!(inputs.results.len(), N + 1);
    for (i, (id, result)) in inputs.results.iter().enumerate() {
        let expected = if i == N { ids[N - 1] } else { ids[N - 1 - i] };
        assert_eq!(*id, expected, "input {i}");
        assert_eq!(result.as_deref(), Some(&expected.0.to_be_bytes()[..]));
    }
}

#[tokio::test]
async fn workflows_are_read_back_and_pruned_whole() {
    let backend = memory().await;
    let stored = backend
        .enqueue_workflow(NewWorkflow {
            name: "etl".into(),
            tasks: vec![
                task("a"),
                task("b"),
                after("c", &[DepRef::Batch(1), DepRef::Batch(0), DepRef::Batch(1)]),
            ],
        })
        .await
        .expect("enqueue");
    let info = backend
        .workflow(stored.id)
        .await
        .expect("read")
        .expect("the workflow");
    assert_eq!(info.name, "etl");
    assert_eq!(info.final_task, stored.tasks[2]);
    let tasks: Vec<_> = info
        .tasks
        .iter()
        .map(|task| (task.id, task.status, task.dependencies.clone()))
        .collect();
    assert_eq!(
        tasks,
        [
            (stored.tasks[0], TaskStatus::Pending, vec![]),
            (stored.tasks[1], TaskStatus::Pending, vec![]),
            (
                stored.tasks[2],
                TaskStatus::Blocked,
                vec![stored.tasks[0], stored.tasks[1]]
            ),
        ]
    );
    assert_eq!(
        backend
            .workflow(WorkflowId(stored.id.0 + 1))
            .await
            .expect("read"),
        None
    );
    for name in ["a", "b", "c"] {
        run(&backend, name, ok(0)).await;
    }
    let later = Utc::now() + chrono::Duration::seconds(5);
    assert_eq!(backend.prune(later).await.expect("prune"), 3);
    assert_eq!(backend.workflow(stored.id).await.expect("read"), None);
}

#[tokio::test]
async fn recover_expired_repairs_an_unresolved_finish() {
    let db = TempDb::new("workflow-sweep");
    let backend = db.connect().await;
    let a = backend.enqueue(vec![task("a")]).await.expect("enqueue")[0];
    let b = backend
        .enqueue(vec![after("b", &[dep(a)])])
        .await
        .expect("enqueue")[0];
    run(&backend, "a", ok(0)).await;
    // As if the resolution had failed after a's completion committed.
    let conn = rusqlite::Connection::open(&db.path).expect("open");
    conn.execute_batch(&format!(
        "UPDATE sitq_tasks SET status = 'blocked', deps_pending = 1 WHERE id = {b}; \
         UPDATE sitq_tasks SET dependents_resolved = 0 WHERE id = {a};"
    ))
    .expect("break the resolution");
    backend.recover_expired().await.expect("recover");
    assert_eq!(status(&backend, b).await, TaskStatus::Pending);
    // Resolved once: a second sweep changes nothing.
    backend.recover_expired().await.expect("recover");
    assert_eq!(status(&backend, b).await, TaskStatus::Pending);
}

/// A task that finished before migration 7 (nothing marked its dependents
/// resolved) and gains a dependent later is not counted twice: the repair
/// sweep leaves the new dependent waiting for its other dependency.
#[tokio::test]
async fn old_finished_dependency_is_not_swept_twice() {
    let db = TempDb::new("workflow-old-row");
    let backend = db.connect().await;
    let old = backend.enqueue(vec![task("old")]).await.expect("enqueue")[0];
    run(&backend, "old", ok(0)).await;
    let conn = rusqlite::Connection::open(&db.path).expect("open");
    conn.execute_batch(&format!(
        "UPDATE sitq_tasks SET dependents_resolved = 0 WHERE id = {old}"
    ))
    .expect("make it look older than migration 7");
    let other = backend.enqueue(vec![task("other")]).await.expect("enqueue")[0];
    let dependent = backend
        .enqueue(vec![after("dependent", &[dep(old), dep(other)])])
        .await
        .expect("enqueue")[0];
    assert_eq!(status(&backend, dependent).await, TaskStatus::Blocked);
    backend.recover_expired().await.expect("recover");
    assert_eq!(
        status(&backend, dependent).await,
        TaskStatus::Blocked,
        "still waiting for `other`"
    );
    run(&backend, "other", ok(0)).await;
    assert_eq!(status(&backend, dependent).await, TaskStatus::Pending);
}
