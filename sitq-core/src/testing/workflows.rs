//! Conformance cases for dependencies, result passing and workflows: a
//! dependent is blocked until its dependencies succeed; a dependency that
//! fails for good or is cancelled cancels its dependents transitively (but
//! not one that is `after_finished`); results reach the dependent when it is
//! claimed, in order for a fan-in; a workflow is stored whole or not at all,
//! listed, cancelled and awaited as one.

use std::time::Duration;

use chrono::Utc;

use super::cancel_tasks::{Linger, OnCancel};
use super::cases::wait;
use super::tasks::{Add, Fail, Record, count, log, unique};
use super::workflow_tasks::{
    Collect, Double, add_collect_after, add_double_after, collect_after, double_after,
};
use super::{Harness, eventually, open, worker_config};
use crate::{
    CancelOutcome, ClaimRequest, ClaimedTask, Completion, DEPENDENCY_CANCELLED_BY, DepTarget,
    EnqueueOptions, Error, FailureKind, InputMode, Outcome, Queue, Task, TaskFailure, TaskHandle,
    TaskId, TaskStatus, Workflow, WorkflowId, codec,
};

/// Claims every ready task among `names` (started), in claim order.
async fn claim(queue: &Queue, names: &[&str]) -> Vec<ClaimedTask> {
    let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
    queue
        .backend()
        .claim(ClaimRequest {
            worker_id: "conformance",
            queues: &[],
            names: &names,
            limit: 100,
            start: 100,
            lease: Duration::from_secs(60),
        })
        .await
        .expect("claim")
}

fn ids(claimed: &[ClaimedTask]) -> Vec<TaskId> {
    let mut ids: Vec<TaskId> = claimed.iter().map(|task| task.id).collect();
    ids.sort();
    ids
}

async fn finish(queue: &Queue, claimed: &ClaimedTask, outcome: Outcome) {
    let applied = queue
        .backend()
        .complete(vec![Completion {
            claim: claimed.claim_ref(),
            outcome,
        }])
        .await
        .expect("complete");
    assert_eq!(applied, [true], "completing task {}", claimed.id);
}

fn succeeded(value: i64) -> Outcome {
    Outcome::Succeeded(codec::encode(&value, "result").expect("encode"))
}

fn failed() -> Outcome {
    Outcome::Failed(TaskFailure::new(FailureKind::Error, "boom"))
}

async fn status(queue: &Queue, id: TaskId) -> TaskStatus {
    queue.status(id).await.expect("status")
}

async fn add(queue: &Queue, options: EnqueueOptions) -> TaskHandle<i64> {
    queue
        .enqueue_with(Add { a: 1, b: 2 }, options)
        .await
        .expect("enqueue")
}

/// The reason a dependent cancelled because of `dep` records.
fn reason(dep: TaskId, name: &str, failed: bool) -> String {
    let how = if failed { "failed" } else { "was cancelled" };
    format!("dependency {dep} ({name}) {how}")
}

/// Asserts `id` was cancelled by the dependency rule with `want` as reason.
async fn assert_cancelled_by_dependency(queue: &Queue, id: TaskId, want: &str) {
    let record = queue.get(id).await.expect("get");
    assert_eq!(record.status, TaskStatus::Cancelled, "task {id}");
    let cancellation = record.cancellation.expect("a cancellation is recorded");
    assert_eq!(cancellation.by, DEPENDENCY_CANCELLED_BY, "task {id}");
    assert_eq!(cancellation.reason.as_deref(), Some(want), "task {id}");
    let failure = record.failure.expect("the cancellation is the error");
    assert_eq!(failure.kind, FailureKind::Cancelled);
    assert!(failure.message.contains(want), "{}", failure.message);
    assert!(record.finished_at.is_some(), "task {id} has finished");
}

/// A dependent is blocked (never claimed) until its dependency succeeds,
/// then pending; `after_all` waits for every dependency, and one listed
/// twice is one dependency.
pub async fn workflow_dependent_is_blocked_until_its_dependencies_succeed(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let first = add(&queue, EnqueueOptions::new()).await;
    let second = add(&queue, EnqueueOptions::new()).await;
    let one = add(&queue, EnqueueOptions::new().after(&first)).await;
    let both = add(
        &queue,
        EnqueueOptions::new().after_all([&first, &second, &first]),
    )
    .await;
    assert_eq!(status(&queue, one.id()).await, TaskStatus::Blocked);
    assert_eq!(status(&queue, both.id()).await, TaskStatus::Blocked);

    let claimed = claim(&queue, &[Add::NAME]).await;
    assert_eq!(
        ids(&claimed),
        [first.id(), second.id()],
        "blocked tasks are not claimed"
    );
    let by_id = |id: TaskId| claimed.iter().find(|task| task.id == id).expect("claimed");
    finish(&queue, by_id(first.id()), succeeded(3)).await;
    assert_eq!(status(&queue, one.id()).await, TaskStatus::Pending);
    assert_eq!(
        status(&queue, both.id()).await,
        TaskStatus::Blocked,
        "one of two left"
    );

    let claimed_one = claim(&queue, &[Add::NAME]).await;
    assert_eq!(ids(&claimed_one), [one.id()]);
    finish(&queue, by_id(second.id()), succeeded(3)).await;
    assert_eq!(status(&queue, both.id()).await, TaskStatus::Pending);
    assert_eq!(ids(&claim(&queue, &[Add::NAME]).await), [both.id()]);
}

/// Depending on a finished task resolves at once: after a success the
/// dependent is pending; after a failure or a cancel it is cancelled with a
/// reason naming the dependency, unless `after_finished`, when it is pending.
pub async fn workflow_dependency_that_finished_resolves_at_once(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let ok = add(&queue, EnqueueOptions::new()).await;
    let bad = queue
        .enqueue(Fail {
            message: "no".into(),
        })
        .await
        .expect("enqueue");
    let gone = add(&queue, EnqueueOptions::new()).await;
    assert_eq!(
        gone.cancel().await.expect("cancel"),
        CancelOutcome::Cancelled
    );
    let claimed = claim(&queue, &[Add::NAME, Fail::NAME]).await;
    assert_eq!(ids(&claimed), [ok.id(), bad.id()]);
    for task in &claimed {
        let outcome = if task.id == ok.id() {
            succeeded(3)
        } else {
            failed()
        };
        finish(&queue, task, outcome).await;
    }
    let after_ok = add(&queue, EnqueueOptions::new().after(&ok)).await;
    assert_eq!(status(&queue, after_ok.id()).await, TaskStatus::Pending);
    let after_bad = add(&queue, EnqueueOptions::new().after(&ok).after(&bad)).await;
    assert_cancelled_by_dependency(&queue, after_bad.id(), &reason(bad.id(), Fail::NAME, true))
        .await;
    let after_gone = add(&queue, EnqueueOptions::new().after(&gone)).await;
    assert_cancelled_by_dependency(
        &queue,
        after_gone.id(),
        &reason(gone.id(), Add::NAME, false),
    )
    .await;
    let cleanup = add(
        &queue,
        EnqueueOptions::new()
            .after(&bad)
            .after(&gone)
            .after_finished(),
    )
    .await;
    assert_eq!(status(&queue, cleanup.id()).await, TaskStatus::Pending);
    // A wait on the cancelled dependent says who and why.
    match wait(&after_bad).await {
        Err(Error::Cancelled {
            id,
            by,
            reason: why,
        }) => {
            assert_eq!(id, after_bad.id());
            assert_eq!(by, DEPENDENCY_CANCELLED_BY);
            assert_eq!(why, Some(reason(bad.id(), Fail::NAME, true)));
        }
        other => panic!("expected a cancellation, got {other:?}"),
    }
}

/// A dependency that fails for good mid-graph cancels its dependents and
/// theirs, each naming its own dependency; a dependent that opted in with
/// `after_finished` becomes pending once all its dependencies finished; a
/// waiter on a cancelled dependent is woken.
pub async fn workflow_failure_mid_graph_cancels_dependents_transitively(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let root = add(&queue, EnqueueOptions::new()).await;
    let mid = add(&queue, EnqueueOptions::new().after(&root)).await;
    let child = add(&queue, EnqueueOptions::new().after(&mid)).await;
    let grandchild = add(&queue, EnqueueOptions::new().after(&child)).await;
    let other = add(&queue, EnqueueOptions::new()).await;
    let cleanup = add(
        &queue,
        EnqueueOptions::new()
            .after(&child)
            .after(&other)
            .after_finished(),
    )
    .await;
    let waiting = {
        let grandchild = grandchild.clone();
        tokio::spawn(async move { wait(&grandchild).await })
    };

    let claimed = claim(&queue, &[Add::NAME]).await;
    assert_eq!(ids(&claimed), [root.id(), other.id()]);
    for task in &claimed {
        finish(&queue, task, succeeded(3)).await;
    }
    let claimed = claim(&queue, &[Add::NAME]).await;
    assert_eq!(
        ids(&claimed),
        [mid.id()],
        "the root's success released mid only"
    );
    finish(&queue, &claimed[0], failed()).await;

    assert_eq!(status(&queue, mid.id()).await, TaskStatus::Failed);
    assert_cancelled_by_dependency(&queue, child.id(), &reason(mid.id(), Add::NAME, true)).await;
    assert_cancelled_by_dependency(
        &queue,
        grandchild.id(),
        &reason(child.id(), Add::NAME, false),
    )
    .await;
    assert_eq!(
        status(&queue, cleanup.id()).await,
        TaskStatus::Pending,
        "after_finished runs anyway"
    );
    match waiting.await.expect("waiter") {
        Err(Error::Cancelled { by, .. }) => assert_eq!(by, DEPENDENCY_CANCELLED_BY),
        other => panic!("expected a cancellation, got {other:?}"),
    }
    assert_eq!(ids(&claim(&queue, &[Add::NAME]).await), [cleanup.id()]);
}

/// With a worker: a task that fails for good mid-chain cancels the rest of
/// the chain, and an `after_finished` clean-up step runs.
pub async fn workflow_worker_runs_cleanup_after_a_failed_dependency(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let log_key = unique("cleanup");
    let record = |tag: &str| Record {
        log: log_key.clone(),
        tag: tag.to_owned(),
    };
    let first = queue.enqueue(record("first")).await.expect("enqueue");
    let failing = queue
        .enqueue_with(
            Fail {
                message: "mid-graph".into(),
            },
            EnqueueOptions::new().after(&first),
        )
        .await
        .expect("enqueue");
    let never = queue
        .enqueue_with(record("never"), EnqueueOptions::new().after(&failing))
        .await
        .expect("enqueue");
    let cleanup = queue
        .enqueue_with(
            record("cleanup"),
            EnqueueOptions::new().after(&failing).after_finished(),
        )
        .await
        .expect("enqueue");
    let worker = h.start_worker(&queue, worker_config());
    wait(&cleanup).await.expect("the clean-up step runs");
    assert!(matches!(
        wait(&failing).await,
        Err(Error::TaskFailed { .. })
    ));
    assert!(matches!(wait(&never).await, Err(Error::Cancelled { .. })));
    worker.shutdown().await;
    assert_eq!(log(&log_key), ["first", "cleanup"]);
    assert_eq!(count(&format!("{log_key}/never")), 0);
}

/// A result reaches the dependent as its first argument, read from the
/// dependency's stored result when the dependent is claimed (not copied at
/// enqueue); a fan-in receives its dependencies' results in the order given.
pub async fn workflow_results_pass_to_dependents_in_order(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let a = queue.enqueue(Add { a: 1, b: 1 }).await.expect("enqueue");
    let b = queue.enqueue(Add { a: 2, b: 3 }).await.expect("enqueue");
    let doubled = double_after(&queue, &a, EnqueueOptions::new())
        .await
        .expect("enqueue");
    let record = queue.get(doubled.id()).await.expect("get");
    assert_eq!(record.status, TaskStatus::Blocked);
    let gathered = collect_after(&queue, &[b.clone(), a.clone(), b.clone()], "fan-in")
        .await
        .expect("enqueue");

    // Claimed by hand: the inputs are the results stored at claim time.
    let claimed = claim(&queue, &[Add::NAME]).await;
    for task in &claimed {
        let value = if task.id == a.id() { 2 } else { 5 };
        finish(&queue, task, succeeded(value)).await;
    }
    // Reserved, not started, so that `release` gives it back untouched.
    let names = [Double::NAME.to_owned()];
    let claimed = queue
        .backend()
        .claim(ClaimRequest {
            worker_id: "conformance",
            queues: &[],
            names: &names,
            limit: 1,
            start: 0,
            lease: Duration::from_secs(60),
        })
        .await
        .expect("claim");
    assert_eq!(ids(&claimed), [doubled.id()]);
    let inputs = claimed[0].inputs.clone().expect("a result input");
    assert_eq!(inputs.mode, InputMode::One);
    assert_eq!(
        inputs.results,
        [(a.id(), Some(codec::encode(&2i64, "r").expect("encode")))]
    );
    assert_eq!(inputs.decode::<i64>(Double::NAME).expect("decode"), 2);
    queue
        .backend()
        .release(vec![claimed[0].claim_ref()])
        .await
        .expect("release");
    assert_eq!(status(&queue, doubled.id()).await, TaskStatus::Pending);

    let worker = h.start_worker(&queue, worker_config());
    assert_eq!(wait(&doubled).await.expect("doubled"), 4);
    assert_eq!(
        wait(&gathered).await.expect("gathered"),
        ("fan-in".to_owned(), vec![5, 2, 5])
    );
    worker.shutdown().await;
    // A plain claim carries no inputs.
    let plain = queue.enqueue(Add { a: 0, b: 0 }).await.expect("enqueue");
    let claimed = claim(&queue, &[Add::NAME]).await;
    assert_eq!(ids(&claimed), [plain.id()]);
    assert_eq!(claimed[0].inputs, None);
}

/// Cancelling a blocked task cancels it at once and its dependents with a
/// reason naming it; its own dependencies run on.
pub async fn workflow_cancelling_a_blocked_task_cancels_its_dependents(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let root = add(&queue, EnqueueOptions::new()).await;
    let blocked = add(&queue, EnqueueOptions::new().after(&root)).await;
    let dependent = add(&queue, EnqueueOptions::new().after(&blocked)).await;
    assert_eq!(
        queue.cancel(blocked.id()).await.expect("cancel"),
        CancelOutcome::Cancelled
    );
    assert_cancelled_by_dependency(
        &queue,
        dependent.id(),
        &reason(blocked.id(), Add::NAME, false),
    )
    .await;
    assert_eq!(status(&queue, root.id()).await, TaskStatus::Pending);
    let claimed = claim(&queue, &[Add::NAME]).await;
    assert_eq!(ids(&claimed), [root.id()]);
    finish(&queue, &claimed[0], succeeded(3)).await;
    assert_eq!(status(&queue, blocked.id()).await, TaskStatus::Cancelled);
    assert!(claim(&queue, &[Add::NAME]).await.is_empty());
}

/// Retrying a dependent cancelled by a failed dependency blocks it until
/// that dependency succeeds (after its own retry); then it runs.
pub async fn workflow_retried_dependent_waits_for_its_dependency_again(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let dep = add(&queue, EnqueueOptions::new()).await;
    let dependent = add(&queue, EnqueueOptions::new().after(&dep)).await;
    let claimed = claim(&queue, &[Add::NAME]).await;
    finish(&queue, &claimed[0], failed()).await;
    assert_eq!(status(&queue, dependent.id()).await, TaskStatus::Cancelled);

    queue.retry(dependent.id()).await.expect("retry dependent");
    assert_eq!(status(&queue, dependent.id()).await, TaskStatus::Blocked);
    queue.retry(dep.id()).await.expect("retry dependency");
    let claimed = claim(&queue, &[Add::NAME]).await;
    assert_eq!(ids(&claimed), [dep.id()], "the dependent is still blocked");
    finish(&queue, &claimed[0], succeeded(3)).await;
    assert_eq!(status(&queue, dependent.id()).await, TaskStatus::Pending);
}

/// Retrying a dependency that an `after_finished` dependent had counted as
/// finished makes the dependent wait for it again: it runs only once every
/// dependency has finished, counting the retried one's new run.
pub async fn workflow_retried_dependency_is_waited_for_again(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let first = add(&queue, EnqueueOptions::new()).await;
    let second = add(
        &queue,
        EnqueueOptions::new().delay(Duration::from_secs(3600)),
    )
    .await;
    let cleanup = add(
        &queue,
        EnqueueOptions::new()
            .after(&first)
            .after(&second)
            .after_finished(),
    )
    .await;
    let claimed = claim(&queue, &[Add::NAME]).await;
    assert_eq!(ids(&claimed), [first.id()]);
    finish(&queue, &claimed[0], failed()).await;
    assert_eq!(status(&queue, cleanup.id()).await, TaskStatus::Blocked);

    queue.retry(first.id()).await.expect("retry");
    // The second dependency finishes: the retried first one has not yet.
    assert_eq!(
        queue.cancel(second.id()).await.expect("cancel"),
        CancelOutcome::Cancelled
    );
    assert_eq!(
        status(&queue, cleanup.id()).await,
        TaskStatus::Blocked,
        "the retried dependency is unfinished again"
    );
    let claimed = claim(&queue, &[Add::NAME]).await;
    assert_eq!(ids(&claimed), [first.id()]);
    finish(&queue, &claimed[0], succeeded(3)).await;
    assert_eq!(status(&queue, cleanup.id()).await, TaskStatus::Pending);
}

/// A dependency on an unknown task, or any invalid option, stores nothing.
pub async fn workflow_bad_dependencies_are_refused(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let name = unique("refused");
    let dep = add(&queue, EnqueueOptions::new().queue(&name)).await;
    let unknown = queue.handle::<i64>(TaskId(i64::MAX - 7));
    let refused = queue
        .enqueue_many_with(
            [Add { a: 1, b: 1 }, Add { a: 2, b: 2 }],
            EnqueueOptions::new()
                .queue(&name)
                .after(&dep)
                .after(&unknown),
        )
        .await;
    assert!(
        matches!(refused, Err(Error::NotFound(id)) if id == unknown.id()),
        "{refused:?}"
    );
    let invalid = [
        EnqueueOptions::new()
            .after(&dep)
            .after_finished()
            .result_inputs(InputMode::One, vec![DepTarget::Task(dep.id())]),
        EnqueueOptions::new().after_finished(),
        EnqueueOptions::new().after(&dep).unique_key("k"),
    ];
    for options in invalid {
        let result = queue
            .enqueue_with(Add { a: 1, b: 1 }, options.queue(&name))
            .await;
        assert!(
            matches!(result, Err(Error::InvalidOptions(_))),
            "{result:?}"
        );
    }
    let mut flow = Workflow::new("elsewhere");
    let node = flow.add(Add { a: 1, b: 1 });
    let result = queue
        .enqueue_with(Add { a: 1, b: 1 }, EnqueueOptions::new().after(&node))
        .await;
    assert!(
        matches!(result, Err(Error::InvalidOptions(_))),
        "{result:?}"
    );
    let queues = queue.queues().await.expect("queues");
    let mine = queues
        .iter()
        .find(|info| info.name == name)
        .expect("listed");
    assert_eq!(mine.pending, 1, "only the dependency is stored");
}

/// A workflow is stored whole: typed handles for its nodes, every node
/// listed with status and dependencies, `wait` for its final node; fan-out
/// and fan-in inside it pass results.
pub async fn workflow_runs_as_one_unit(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let mut flow = Workflow::new("etl");
    let sources: Vec<_> = (1..=3).map(|a| flow.add(Add { a, b: 10 })).collect();
    let doubled: Vec<_> = sources
        .iter()
        .map(|node| add_double_after(&mut flow, node))
        .collect();
    let total = add_collect_after(&mut flow, &doubled, "total");
    let run = flow.enqueue(&queue).await.expect("enqueue workflow");
    assert_eq!(run.task_ids().len(), 7);
    assert_eq!(run.final_task(), run.task_ids()[6]);

    let info = queue.workflow(run.id()).await.expect("workflow");
    assert_eq!(info.name, "etl");
    assert_eq!(info.final_task, run.final_task());
    assert_eq!(info.status(), TaskStatus::Pending);
    let listed: Vec<TaskId> = info.tasks.iter().map(|task| task.id).collect();
    assert_eq!(listed, run.task_ids());
    assert_eq!(info.count(TaskStatus::Pending), 3);
    assert_eq!(info.count(TaskStatus::Blocked), 4);
    assert_eq!(info.tasks[3].dependencies, [run.task_ids()[0]]);
    assert_eq!(info.tasks[6].dependencies, run.task_ids()[3..6]);
    assert_eq!(info.tasks[6].name, Collect::NAME);

    let worker = h.start_worker(&queue, worker_config());
    run.wait().await.expect("the final task succeeds");
    let total = wait(&run.handle(&total).expect("handle"))
        .await
        .expect("total");
    assert_eq!(total, ("total".to_owned(), vec![22, 24, 26]));
    assert_eq!(
        wait(&run.handle(&doubled[1]).expect("handle"))
            .await
            .expect("doubled"),
        24
    );
    worker.shutdown().await;
    let info = run.info().await.expect("workflow");
    assert_eq!(info.status(), TaskStatus::Succeeded);
    assert_eq!(info.count(TaskStatus::Succeeded), 7);

    let missing = queue.workflow(WorkflowId(i64::MAX - 3)).await;
    assert!(
        matches!(missing, Err(Error::WorkflowNotFound(_))),
        "{missing:?}"
    );
}

/// A workflow with an invalid task, or a dependency on an unknown task,
/// stores none of its tasks; a node of another workflow is refused.
pub async fn workflow_is_stored_whole_or_not_at_all(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let name = unique("all-or-nothing");
    let unknown = queue.handle::<i64>(TaskId(i64::MAX - 11));
    let mut flow = Workflow::new("half");
    let first = flow.add_with(Add { a: 1, b: 1 }, EnqueueOptions::new().queue(&name));
    flow.add_with(
        Add { a: 1, b: 1 },
        EnqueueOptions::new()
            .queue(&name)
            .after(&first)
            .after(&unknown),
    );
    let result = flow.enqueue(&queue).await;
    assert!(matches!(result, Err(Error::NotFound(_))), "{result:?}");

    let mut flow = Workflow::new("invalid");
    let first = flow.add_with(Add { a: 1, b: 1 }, EnqueueOptions::new().queue(&name));
    flow.add_with(
        Add { a: 1, b: 1 },
        EnqueueOptions::new()
            .queue(&name)
            .after(&first)
            .max_attempts(0),
    );
    let result = flow.enqueue(&queue).await;
    assert!(
        matches!(result, Err(Error::InvalidOptions(_))),
        "{result:?}"
    );

    let mut other = Workflow::new("other");
    let foreign = other.add(Add { a: 1, b: 1 });
    let mut flow = Workflow::new("mixed");
    flow.add_with(
        Add { a: 1, b: 1 },
        EnqueueOptions::new().queue(&name).after(&foreign),
    );
    let result = flow.enqueue(&queue).await;
    assert!(
        matches!(result, Err(Error::InvalidOptions(_))),
        "{result:?}"
    );

    let empty = Workflow::new("empty").enqueue(&queue).await;
    assert!(matches!(empty, Err(Error::InvalidOptions(_))), "{empty:?}");
    let queues = queue.queues().await.expect("queues");
    assert!(
        queues.iter().all(|info| info.name != name),
        "nothing was stored: {queues:?}"
    );
}

/// Cancelling a workflow cancels every unfinished task (a running one is
/// asked to stop); its wait reports the cancellation.
pub async fn workflow_cancel_workflow_cancels_every_unfinished_task(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let key = unique("cancel-workflow");
    let mut flow = Workflow::new("to-cancel");
    let done = flow.add(Add { a: 1, b: 1 });
    let running = flow.add_with(
        Linger {
            key: key.clone(),
            on_cancel: OnCancel::Stop,
        },
        EnqueueOptions::new().after(&done),
    );
    let blocked = flow.add_with(Add { a: 2, b: 2 }, EnqueueOptions::new().after(&running));
    let run = flow.enqueue(&queue).await.expect("enqueue");
    let worker = h.start_worker(&queue, worker_config());
    wait(&run.handle(&done).expect("handle"))
        .await
        .expect("first step");
    eventually(&format!("linger task {key} to start"), || async {
        (count(&format!("linger-started/{key}")) > 0).then_some(())
    })
    .await;
    let outcomes = run.cancel().await.expect("cancel workflow");
    let ids = run.task_ids();
    assert_eq!(
        outcomes,
        [
            (ids[1], CancelOutcome::Requested),
            (ids[2], CancelOutcome::Cancelled)
        ]
    );
    assert!(matches!(run.wait().await, Err(Error::Cancelled { .. })));
    let linger = run.handle(&running).expect("handle");
    assert!(matches!(wait(&linger).await, Err(Error::Cancelled { .. })));
    worker.shutdown().await;
    let info = queue.workflow(run.id()).await.expect("workflow");
    assert_eq!(info.status(), TaskStatus::Cancelled);
    assert_eq!(status(&queue, ids[0]).await, TaskStatus::Succeeded);
    assert_eq!(status(&queue, ids[2]).await, TaskStatus::Cancelled);
    let _ = blocked;
}

/// Pruning keeps a succeeded task whose result a blocked dependent still
/// needs; the dependent receives it later.
pub async fn workflow_prune_keeps_a_result_a_dependent_needs(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let source = queue.enqueue(Add { a: 20, b: 1 }).await.expect("enqueue");
    let gate = add(
        &queue,
        EnqueueOptions::new().delay(Duration::from_secs(3600)),
    )
    .await;
    let doubled = double_after(&queue, &source, EnqueueOptions::new().after(&gate))
        .await
        .expect("enqueue");
    let claimed = claim(&queue, &[Add::NAME]).await;
    assert_eq!(ids(&claimed), [source.id()]);
    finish(&queue, &claimed[0], succeeded(21)).await;
    let pruned = queue
        .backend()
        .prune(Utc::now() + chrono::Duration::hours(1))
        .await
        .expect("prune");
    assert_eq!(pruned, 0, "the source's result is still needed");
    assert_eq!(status(&queue, source.id()).await, TaskStatus::Succeeded);
    assert_eq!(status(&queue, doubled.id()).await, TaskStatus::Blocked);
}

/// Dependents become pending and run when their dependencies finish in
/// another client's worker: the wake-up reaches workers like a new task's.
pub async fn workflow_chain_runs_across_clients(h: &impl Harness) {
    let (producer, url) = open(h).await;
    let consumer = crate::Queue::connect(&url).await.expect("connect");
    let mut previous = producer.enqueue(Add { a: 1, b: 0 }).await.expect("enqueue");
    for _ in 0..5 {
        previous = double_after(&producer, &previous, EnqueueOptions::new())
            .await
            .expect("enqueue");
    }
    let worker = h.start_worker(&consumer, worker_config());
    assert_eq!(wait(&previous).await.expect("chain"), 32);
    worker.shutdown().await;
}
