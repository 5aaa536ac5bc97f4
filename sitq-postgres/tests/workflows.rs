//! Dependencies, result inputs and workflows on PostgreSQL, through the
//! `Backend` API: what the shared conformance suite does not reach (batch
//! dependencies, retries, pruning, a large fan-in, the sweep after a crash,
//! and the race between an enqueue and its dependency's completion).

mod support;

use std::sync::Arc;

use sitq_core::{
    Backend, CancelRequest, ClaimRef, ClaimedTask, Completion, DepRef, Dependencies, Error,
    FailureKind, InputMode, NewTask, NewWorkflow, Outcome, TaskFailure, TaskId, TaskStatus,
};
use sitq_postgres::PostgresBackend;
use sqlx::Executor;
use support::{TestDb, claim_all, request, task};
use tokio::sync::Barrier;

/// A task after `deps` (no results passed).
fn after(label: &str, deps: &[DepRef]) -> NewTask {
    NewTask {
        deps: Dependencies {
            after: deps.to_vec(),
            ..Dependencies::default()
        },
        ..task(label)
    }
}

/// A task after `deps` that runs whatever their outcome.
fn after_finished(label: &str, deps: &[DepRef]) -> NewTask {
    let mut new = after(label, deps);
    new.deps.after_finished = true;
    new
}

/// A task receiving the results of `inputs` as a list.
fn with_inputs(label: &str, inputs: &[DepRef]) -> NewTask {
    NewTask {
        deps: Dependencies {
            inputs: inputs.to_vec(),
            input_mode: InputMode::Many,
            ..Dependencies::default()
        },
        ..task(label)
    }
}

fn on(id: TaskId) -> DepRef {
    DepRef::Task(id)
}

async fn status(backend: &PostgresBackend, id: TaskId) -> TaskStatus {
    backend
        .status(id)
        .await
        .expect("status")
        .expect("the task exists")
}

async fn succeed(backend: &PostgresBackend, claim: ClaimRef, result: &[u8]) {
    let applied = backend
        .complete(vec![Completion {
            claim,
            outcome: Outcome::Succeeded(result.to_vec()),
        }])
        .await
        .expect("complete");
    assert_eq!(applied, [true], "the completion of {claim:?} applied");
}

async fn fail(backend: &PostgresBackend, claim: ClaimRef) {
    let applied = backend
        .complete(vec![Completion {
            claim,
            outcome: Outcome::Failed(TaskFailure::new(FailureKind::Error, "boom")),
        }])
        .await
        .expect("complete");
    assert_eq!(applied, [true], "the failure of {claim:?} applied");
}

/// Claims the one ready task, which must be `id`.
async fn claim_only(backend: &PostgresBackend, id: TaskId) -> ClaimedTask {
    let claimed = claim_all(backend, "w").await;
    let ids: Vec<TaskId> = claimed.iter().map(|task| task.id).collect();
    assert_eq!(ids, [id], "only task {id} is ready");
    claimed.into_iter().next().expect("one task")
}

#[tokio::test]
async fn batch_dependencies_resolve_in_order_and_failures_cancel_transitively() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    let ids = backend
        .enqueue(vec![
            task("a"),
            after("b", &[DepRef::Batch(0)]),
            after("c", &[DepRef::Batch(1), DepRef::Batch(0), DepRef::Batch(1)]),
            after_finished("cleanup", &[DepRef::Batch(1)]),
            after("d", &[DepRef::Batch(0)]),
        ])
        .await
        .expect("enqueue");
    let [a, b, c, cleanup, d] = ids[..] else {
        panic!("five ids: {ids:?}")
    };
    assert!(
        a < b && b < c && c < cleanup && cleanup < d,
        "ids in order: {ids:?}"
    );
    for id in [b, c, cleanup, d] {
        assert_eq!(status(&backend, id).await, TaskStatus::Blocked);
    }

    let claimed = claim_only(&backend, a).await;
    succeed(&backend, claimed.claim_ref(), b"A").await;
    assert_eq!(status(&backend, b).await, TaskStatus::Pending);
    assert_eq!(status(&backend, d).await, TaskStatus::Pending);
    assert_eq!(
        status(&backend, c).await,
        TaskStatus::Blocked,
        "c waits for b too"
    );

    let claimed = claim_all(&backend, "w").await;
    let b_claim = claimed.iter().find(|t| t.id == b).expect("b claimed");
    fail(&backend, b_claim.claim_ref()).await;

    let record = backend.get(c).await.expect("get").expect("c exists");
    assert_eq!(record.status, TaskStatus::Cancelled);
    let cancellation = record.cancellation.expect("c has a cancellation");
    assert_eq!(cancellation.by, sitq_core::DEPENDENCY_CANCELLED_BY);
    let reason = format!("dependency {b} ({}) failed", support::TASK_NAME);
    assert_eq!(cancellation.reason.as_deref(), Some(reason.as_str()));
    let failure = record.failure.expect("c has an error");
    assert_eq!(failure.kind, FailureKind::Cancelled);
    assert_eq!(
        failure.message,
        CancelRequest::message(sitq_core::DEPENDENCY_CANCELLED_BY, Some(&reason))
    );
    assert_eq!(
        status(&backend, cleanup).await,
        TaskStatus::Pending,
        "after_finished runs anyway"
    );

    backend.close().await;
    db.drop().await;
}

#[tokio::test]
async fn a_batch_task_cancelled_at_enqueue_cancels_its_batch_dependents() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    let [failed] = backend.enqueue(vec![task("f")]).await.expect("enqueue")[..] else {
        panic!("one id")
    };
    let claimed = claim_only(&backend, failed).await;
    fail(&backend, claimed.claim_ref()).await;

    let ids = backend
        .enqueue(vec![
            after("x", &[on(failed)]),
            after("y", &[DepRef::Batch(0)]),
            after_finished("z", &[DepRef::Batch(1), on(failed)]),
        ])
        .await
        .expect("enqueue");
    let [x, y, z] = ids[..] else {
        panic!("three ids")
    };
    let x_record = backend.get(x).await.expect("get").expect("x");
    assert_eq!(x_record.status, TaskStatus::Cancelled);
    let expected = format!("dependency {failed} ({}) failed", support::TASK_NAME);
    assert_eq!(x_record.cancellation.and_then(|c| c.reason), Some(expected));
    let y_record = backend.get(y).await.expect("get").expect("y");
    assert_eq!(y_record.status, TaskStatus::Cancelled);
    let expected = format!("dependency {x} ({}) was cancelled", support::TASK_NAME);
    assert_eq!(y_record.cancellation.and_then(|c| c.reason), Some(expected));
    assert_eq!(status(&backend, z).await, TaskStatus::Pending);

    // A succeeded dependency resolves at once; an unknown one stores nothing.
    let [ok] = backend.enqueue(vec![task("ok")]).await.expect("enqueue")[..] else {
        panic!("one id")
    };
    let claimed = claim_all(&backend, "w").await;
    let ids: Vec<TaskId> = claimed.iter().map(|task| task.id).collect();
    assert_eq!(ids, [z, ok]);
    for task in claimed {
        succeed(&backend, task.claim_ref(), b"").await;
    }
    let [next] = backend
        .enqueue(vec![after("next", &[on(ok), on(z)])])
        .await
        .expect("enqueue")[..]
    else {
        panic!("one id")
    };
    assert_eq!(status(&backend, next).await, TaskStatus::Pending);
    let unknown = TaskId(next.0 + 1_000);
    let error = backend
        .enqueue(vec![
            task("lost"),
            after("dangling", &[on(ok), on(unknown)]),
        ])
        .await
        .expect_err("an unknown dependency");
    assert!(
        matches!(error, Error::NotFound(id) if id == unknown),
        "{error:?}"
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM sitq_tasks WHERE id > $1")
        .bind(next.0)
        .fetch_one(&mut db.connection().await)
        .await
        .expect("count");
    assert_eq!(count, 0, "nothing stored");

    backend.close().await;
    db.drop().await;
}

#[tokio::test]
async fn retry_waits_for_the_dependencies_again() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    let ids = backend
        .enqueue(vec![
            task("a"),
            task("b"),
            after("c", &[DepRef::Batch(0), DepRef::Batch(1)]),
        ])
        .await
        .expect("enqueue");
    let [a, b, c] = ids[..] else {
        panic!("three ids")
    };
    let claimed = claim_all(&backend, "w").await;
    let claim_of = |id: TaskId| {
        claimed
            .iter()
            .find(|task| task.id == id)
            .expect("claimed")
            .claim_ref()
    };
    succeed(&backend, claim_of(b), b"").await;
    fail(&backend, claim_of(a)).await;
    assert_eq!(status(&backend, c).await, TaskStatus::Cancelled);

    // c again: a has not succeeded, so c waits for it (and only for it).
    backend.retry(c).await.expect("retry c");
    assert_eq!(status(&backend, c).await, TaskStatus::Blocked);
    backend.retry(a).await.expect("retry a");
    assert_eq!(status(&backend, a).await, TaskStatus::Pending);
    let claimed = claim_only(&backend, a).await;
    succeed(&backend, claimed.claim_ref(), b"").await;
    assert_eq!(
        status(&backend, c).await,
        TaskStatus::Pending,
        "a was c's last dependency"
    );

    // Once every dependency succeeded, a retry is pending at once.
    let claimed = claim_only(&backend, c).await;
    fail(&backend, claimed.claim_ref()).await;
    backend.retry(c).await.expect("retry c again");
    assert_eq!(status(&backend, c).await, TaskStatus::Pending);

    backend.close().await;
    db.drop().await;
}

#[tokio::test]
async fn claims_receive_results_in_order_and_prune_keeps_what_is_needed() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    let ids = backend
        .enqueue(vec![task("a"), task("b")])
        .await
        .expect("enqueue");
    let [a, b] = ids[..] else { panic!("two ids") };
    for claimed in claim_all(&backend, "w").await {
        let result = format!("result of {}", support::label(&claimed));
        succeed(&backend, claimed.claim_ref(), result.as_bytes()).await;
    }
    // A blocker that runs later keeps the fan-in blocked.
    let [blocker] = backend
        .enqueue(vec![task("blocker")])
        .await
        .expect("enqueue")[..]
    else {
        panic!("one id")
    };
    let [fan_in] = backend
        .enqueue(vec![NewTask {
            deps: Dependencies {
                inputs: vec![on(b), on(a), on(b)],
                after: vec![on(blocker)],
                input_mode: InputMode::Many,
                after_finished: false,
            },
            ..task("fan-in")
        }])
        .await
        .expect("enqueue")[..]
    else {
        panic!("one id")
    };
    assert_eq!(status(&backend, fan_in).await, TaskStatus::Blocked);

    let far_future = chrono::Utc::now() + chrono::Duration::days(1);
    assert_eq!(
        backend.prune(far_future).await.expect("prune"),
        0,
        "a and b are needed"
    );
    let claimed = claim_only(&backend, blocker).await;
    succeed(&backend, claimed.claim_ref(), b"").await;
    // The blocker has no dependents needing it... but it has one (fan_in), still unfinished.
    assert_eq!(
        backend.prune(far_future).await.expect("prune"),
        0,
        "fan-in unfinished"
    );

    let claimed = claim_only(&backend, fan_in).await;
    let inputs = claimed.inputs.clone().expect("fan-in receives results");
    assert_eq!(inputs.mode, InputMode::Many);
    assert_eq!(
        inputs.results,
        [
            (b, Some(b"result of b".to_vec())),
            (a, Some(b"result of a".to_vec())),
            (b, Some(b"result of b".to_vec())),
        ]
    );
    succeed(&backend, claimed.claim_ref(), b"").await;
    assert_eq!(backend.prune(far_future).await.expect("prune"), 4);
    let mut conn = db.connection().await;
    let edges: i64 = sqlx::query_scalar("SELECT count(*) FROM sitq_deps")
        .fetch_one(&mut conn)
        .await
        .expect("count");
    assert_eq!(edges, 0, "the edges go with their task");

    backend.close().await;
    db.drop().await;
}

#[tokio::test]
async fn workflows_are_listed_and_pruned_with_their_tasks() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    let [outside] = backend
        .enqueue(vec![task("outside")])
        .await
        .expect("enqueue")[..]
    else {
        panic!("one id")
    };
    let stored = backend
        .enqueue_workflow(NewWorkflow {
            name: "etl".into(),
            tasks: vec![
                task("fetch"),
                task("fetch"),
                with_inputs("sum", &[DepRef::Batch(1), DepRef::Batch(0)]),
                after("report", &[DepRef::Batch(2), on(outside)]),
            ],
        })
        .await
        .expect("enqueue a workflow");
    let [f1, f2, sum, report] = stored.tasks[..] else {
        panic!("four ids")
    };
    let info = backend
        .workflow(stored.id)
        .await
        .expect("workflow")
        .expect("stored");
    assert_eq!(info.name, "etl");
    assert_eq!(info.final_task, report);
    let listed: Vec<(TaskId, TaskStatus, Vec<TaskId>)> = info
        .tasks
        .iter()
        .map(|t| (t.id, t.status, t.dependencies.clone()))
        .collect();
    assert_eq!(
        listed,
        [
            (f1, TaskStatus::Pending, vec![]),
            (f2, TaskStatus::Pending, vec![]),
            (sum, TaskStatus::Blocked, vec![f1, f2]),
            (report, TaskStatus::Blocked, vec![outside, sum]),
        ]
    );
    let unknown = sitq_core::WorkflowId(stored.id.0 + 100);
    assert!(backend.workflow(unknown).await.expect("workflow").is_none());

    loop {
        let claimed = claim_all(&backend, "w").await;
        if claimed.is_empty() {
            break;
        }
        for task in claimed {
            succeed(&backend, task.claim_ref(), b"").await;
        }
    }
    for id in stored.tasks.iter().chain([&outside]) {
        assert_eq!(status(&backend, *id).await, TaskStatus::Succeeded);
    }
    let far_future = chrono::Utc::now() + chrono::Duration::days(1);
    assert_eq!(backend.prune(far_future).await.expect("prune"), 5);
    assert!(
        backend
            .workflow(stored.id)
            .await
            .expect("workflow")
            .is_none(),
        "a workflow without tasks goes"
    );

    backend.close().await;
    db.drop().await;
}

#[tokio::test]
async fn cancelling_a_blocked_task_cancels_its_dependents() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    let ids = backend
        .enqueue(vec![
            task("a"),
            after("b", &[DepRef::Batch(0)]),
            after("c", &[DepRef::Batch(1)]),
            after("d", &[DepRef::Batch(2)]),
        ])
        .await
        .expect("enqueue");
    let [a, b, c, d] = ids[..] else {
        panic!("four ids")
    };
    backend
        .cancel(b, &CancelRequest::new())
        .await
        .expect("cancel b");
    for id in [b, c, d] {
        assert_eq!(status(&backend, id).await, TaskStatus::Cancelled);
    }
    let reason = backend
        .get(d)
        .await
        .expect("get")
        .and_then(|record| record.cancellation)
        .and_then(|c| c.reason);
    let expected = format!("dependency {c} ({}) was cancelled", support::TASK_NAME);
    assert_eq!(reason, Some(expected));
    assert_eq!(status(&backend, a).await, TaskStatus::Pending);
    // b's resolution is done: a finishing later changes nothing for it.
    let claimed = claim_only(&backend, a).await;
    succeed(&backend, claimed.claim_ref(), b"").await;
    assert_eq!(status(&backend, b).await, TaskStatus::Cancelled);

    backend.close().await;
    db.drop().await;
}

#[tokio::test]
async fn lease_recovery_resolves_what_a_crash_left_unresolved() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    let ids = backend
        .enqueue(vec![task("a"), after("b", &[DepRef::Batch(0)])])
        .await
        .expect("enqueue");
    let [a, b] = ids[..] else { panic!("two ids") };
    // As if a completion committed and its process died before the follow-up.
    let mut conn = db.connection().await;
    conn.execute(
        sqlx::query(
            "UPDATE sitq_tasks SET status = 'succeeded', finished_at = now(), result = '\\x'
             WHERE id = $1",
        )
        .bind(a.0),
    )
    .await
    .expect("finish a behind the backend's back");
    assert_eq!(status(&backend, b).await, TaskStatus::Blocked);
    assert_eq!(backend.recover_expired().await.expect("recover"), 0);
    assert_eq!(status(&backend, b).await, TaskStatus::Pending);

    backend.close().await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_in_of_ten_thousand_results() {
    const FAN: usize = 10_000;
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    let ids = backend
        .enqueue(vec![task("leaf"); FAN])
        .await
        .expect("enqueue the leaves");
    let deps: Vec<DepRef> = ids.iter().map(|id| on(*id)).collect();
    let [fan_in] = backend
        .enqueue(vec![with_inputs("fan-in", &deps)])
        .await
        .expect("enqueue the fan-in")[..]
    else {
        panic!("one id")
    };
    assert_eq!(status(&backend, fan_in).await, TaskStatus::Blocked);
    let mut done = 0;
    loop {
        let claimed = backend.claim(request("w", 500)).await.expect("claim");
        if claimed.is_empty() {
            break;
        }
        assert!(claimed.iter().all(|task| task.id != fan_in || done == FAN));
        let completions: Vec<Completion> = claimed
            .iter()
            .filter(|task| task.id != fan_in)
            .map(|task| Completion {
                claim: task.claim_ref(),
                outcome: Outcome::Succeeded(task.id.0.to_le_bytes().to_vec()),
            })
            .collect();
        if completions.is_empty() {
            // The fan-in itself.
            let inputs = claimed[0].inputs.clone().expect("inputs");
            assert_eq!(inputs.results.len(), FAN);
            for ((dep, result), id) in inputs.results.iter().zip(&ids) {
                assert_eq!(dep, id);
                assert_eq!(result.as_deref(), Some(&id.0.to_le_bytes()[..]));
            }
            succeed(&backend, claimed[0].claim_ref(), b"").await;
            break;
        }
        done += completions.len();
        let applied = backend.complete(completions).await.expect("complete");
        assert!(applied.iter().all(|applied| *applied));
        if done < FAN {
            assert_eq!(status(&backend, fan_in).await, TaskStatus::Blocked);
        }
    }
    assert_eq!(done, FAN);
    assert_eq!(status(&backend, fan_in).await, TaskStatus::Succeeded);

    backend.close().await;
    db.drop().await;
}

/// A dependent enqueued while its dependency completes, with real
/// concurrency and separate pools: whichever commits first, the dependent
/// ends pending (after a success) or cancelled (after a failure), never
/// blocked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_enqueue_racing_its_dependencys_completion_is_never_left_blocked() {
    const ROUNDS: usize = 300;
    let Some(db) = TestDb::create().await else {
        return;
    };
    let completer = Arc::new(db.backend().await);
    let producer = Arc::new(db.backend().await);
    for round in 0..ROUNDS {
        let [dep] = producer.enqueue(vec![task("dep")]).await.expect("enqueue")[..] else {
            panic!("one id")
        };
        let claimed = claim_only(&completer, dep).await;
        let succeeds = round % 2 == 0;
        let barrier = Arc::new(Barrier::new(2));
        let complete = {
            let (backend, barrier) = (completer.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let outcome = if succeeds {
                    Outcome::Succeeded(Vec::new())
                } else {
                    Outcome::Failed(TaskFailure::new(FailureKind::Error, "boom"))
                };
                backend
                    .complete(vec![Completion {
                        claim: claimed.claim_ref(),
                        outcome,
                    }])
                    .await
                    .expect("complete")
            })
        };
        let enqueue = {
            let (backend, barrier) = (producer.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                backend
                    .enqueue(vec![after("dependent", &[on(dep)])])
                    .await
                    .expect("enqueue the dependent")
            })
        };
        let applied = complete.await.expect("the completion task");
        assert_eq!(applied, [true]);
        let ids = enqueue.await.expect("the enqueue task");
        let expected = if succeeds {
            TaskStatus::Pending
        } else {
            TaskStatus::Cancelled
        };
        assert_eq!(
            status(&completer, ids[0]).await,
            expected,
            "round {round}: the dependent of {dep}"
        );
        // Out of the way of the next round's claim.
        if succeeds {
            let claimed = claim_only(&completer, ids[0]).await;
            succeed(&completer, claimed.claim_ref(), b"").await;
        }
    }
    completer.close().await;
    producer.close().await;
    db.drop().await;
}

/// A dependent enqueued on a finished task at the moment prune deletes it
/// either comes first (the task stays, and the dependent gets its result)
/// or after (the enqueue says `NotFound`): never a dependent whose
/// dependency is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_enqueue_racing_prune_never_loses_its_result() {
    const ROUNDS: usize = 150;
    let Some(db) = TestDb::create().await else {
        return;
    };
    let pruner = Arc::new(db.backend().await);
    let producer = Arc::new(db.backend().await);
    let (mut kept, mut gone) = (0, 0);
    for round in 0..ROUNDS {
        let [dep] = producer.enqueue(vec![task("dep")]).await.expect("enqueue")[..] else {
            panic!("one id")
        };
        let claimed = claim_only(&pruner, dep).await;
        succeed(&pruner, claimed.claim_ref(), b"result").await;
        let barrier = Arc::new(Barrier::new(2));
        let prune = {
            let (backend, barrier) = (pruner.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let later = chrono::Utc::now() + chrono::Duration::hours(1);
                backend.prune(later).await.expect("prune")
            })
        };
        let enqueue = {
            let (backend, barrier) = (producer.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                backend
                    .enqueue(vec![with_inputs("dependent", &[on(dep)])])
                    .await
            })
        };
        prune.await.expect("the prune task");
        match enqueue.await.expect("the enqueue task") {
            Ok(ids) => {
                kept += 1;
                let claimed = claim_only(&pruner, ids[0]).await;
                let inputs = claimed.inputs.clone().expect("inputs");
                assert_eq!(
                    inputs.results,
                    [(dep, Some(b"result".to_vec()))],
                    "round {round}: the dependent of {dep} gets its result"
                );
                succeed(&pruner, claimed.claim_ref(), b"").await;
            }
            Err(Error::NotFound(id)) => {
                gone += 1;
                assert_eq!(id, dep, "round {round}");
                assert_eq!(pruner.status(dep).await.expect("status"), None);
            }
            Err(other) => panic!("round {round}: {other}"),
        }
    }
    eprintln!("{kept} dependents came first, {gone} enqueues found the task pruned");
    pruner.close().await;
    producer.close().await;
    db.drop().await;
}

#[tokio::test]
async fn enqueue_in_a_transaction_takes_dependencies() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let queue = sitq_core::Queue::connect(&db.url)
        .await
        .expect("connect a queue");
    let [dep] = queue
        .backend()
        .enqueue(vec![task("dep")])
        .await
        .expect("enqueue")[..]
    else {
        panic!("one id")
    };
    let pool = sqlx::PgPool::connect(&db.url).await.expect("pool");
    let mut tx = pool.begin().await.expect("begin");
    let handle = sitq_postgres::enqueue_in_with(
        &mut tx,
        &queue,
        support::tasks::Tally { key: "tx".into() },
        sitq_core::EnqueueOptions::new().after(&queue.enqueued_handle::<()>(sitq_core::Enqueued {
            id: dep,
            duplicate: false,
        })),
    )
    .await
    .expect("enqueue in the transaction");
    tx.commit().await.expect("commit");
    assert_eq!(
        queue.status(handle.id()).await.expect("status"),
        TaskStatus::Blocked
    );
    pool.close().await;
    queue.close().await;
    db.drop().await;
}
