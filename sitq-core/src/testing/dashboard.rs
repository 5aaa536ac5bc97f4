//! Conformance cases for what a dashboard reads and does beyond the admin
//! tool: activity by time bucket, a task's dependency links, and deleting
//! one finished task.

use std::time::Duration;

use super::operations::{LIVE, claim, complete};
use super::tasks::{Add, Fail, unique};
use super::{Harness, open};
use crate::{
    EnqueueOptions, Error, FailureKind, Outcome, Task, TaskFailure, TaskStatus, Workflow, codec,
};

fn succeeded() -> Outcome {
    Outcome::Succeeded(codec::encode(&1i64, "result").expect("encode"))
}

fn failed() -> Outcome {
    Outcome::Failed(TaskFailure::new(FailureKind::Error, "boom"))
}

/// Activity counts what finished, by outcome, and failed attempts (retried
/// or not) in aligned buckets covering the window, empty ones included;
/// bad bucket sizes are refused.
pub async fn ops_activity_counts_finishes_by_bucket(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let hour = Duration::from_secs(3600);
    let minute = Duration::from_secs(60);
    let empty = queue.activity(hour, minute).await.expect("activity");
    assert!(
        (60..=61).contains(&empty.len()),
        "an hour of minutes, both ends included: {}",
        empty.len()
    );
    assert!(
        empty
            .iter()
            .all(|b| b.succeeded + b.failed + b.cancelled + b.failed_attempts == 0),
        "nothing finished yet: {empty:?}"
    );
    assert!(empty.iter().all(|b| b.start.timestamp() % 60 == 0));
    assert!(
        empty
            .windows(2)
            .all(|w| w[1].start - w[0].start == chrono::Duration::minutes(1))
    );

    for _ in 0..2 {
        queue.enqueue(Add { a: 1, b: 1 }).await.expect("enqueue");
    }
    let claimed = claim(&queue, "w-activity", Add::NAME, LIVE).await;
    assert_eq!(claimed.len(), 2);
    for task in &claimed {
        complete(&queue, task, succeeded()).await;
    }
    // Fails twice: once retried (a failed attempt), once for good.
    queue
        .enqueue_with(
            Fail {
                message: unique("activity"),
            },
            EnqueueOptions::new().max_attempts(2),
        )
        .await
        .expect("enqueue");
    let retry = Outcome::Retry {
        failure: TaskFailure::new(FailureKind::Error, "boom"),
        delay: Duration::ZERO,
    };
    for outcome in [retry, failed()] {
        let claimed = claim(&queue, "w-activity", Fail::NAME, LIVE).await;
        assert_eq!(claimed.len(), 1, "the failing task is due again at once");
        complete(&queue, &claimed[0], outcome).await;
    }
    let cancelled = queue.enqueue(Add { a: 9, b: 9 }).await.expect("enqueue");
    queue.cancel(cancelled.id()).await.expect("cancel");

    let buckets = queue.activity(hour, minute).await.expect("activity");
    let sum = |f: fn(&crate::ActivityBucket) -> u64| buckets.iter().map(f).sum::<u64>();
    assert_eq!(sum(|b| b.succeeded), 2, "{buckets:?}");
    assert_eq!(sum(|b| b.failed), 1, "{buckets:?}");
    assert_eq!(sum(|b| b.cancelled), 1, "{buckets:?}");
    assert_eq!(sum(|b| b.failed_attempts), 2, "{buckets:?}");
    let busy: Vec<_> = buckets.iter().filter(|b| b.succeeded > 0).collect();
    assert!(
        busy.iter().all(|b| b.mean_wait_micros.is_some()),
        "tasks that ran have a wait: {busy:?}"
    );
    let rate = buckets
        .iter()
        .filter_map(|b| b.failure_rate())
        .fold(0.0, f64::max);
    assert!(rate > 0.0 && rate <= 1.0, "a failure rate: {rate}");
    let day = queue
        .activity(Duration::from_secs(86_400), hour)
        .await
        .expect("activity by hour");
    assert_eq!(day.iter().map(|b| b.succeeded).sum::<u64>(), 2);

    for (window, bucket) in [
        (hour, Duration::from_millis(10)),
        (hour * 24, Duration::from_secs(1)),
    ] {
        assert!(
            matches!(queue.activity(window, bucket).await, Err(Error::Config(_))),
            "{bucket:?} buckets over {window:?} are refused"
        );
    }
}

/// A task's links name its workflow, its dependencies in declared order
/// and its dependents; an unknown id is not found.
pub async fn ops_links_list_dependencies_and_dependents(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let first = queue.enqueue(Add { a: 1, b: 0 }).await.expect("enqueue");
    let second = queue.enqueue(Add { a: 2, b: 0 }).await.expect("enqueue");
    let after = queue
        .enqueue_with(
            Add { a: 3, b: 0 },
            EnqueueOptions::new().after(&second).after(&first),
        )
        .await
        .expect("enqueue");
    let links = queue.links(after.id()).await.expect("links");
    let ids: Vec<_> = links.dependencies.iter().map(|t| t.id).collect();
    assert_eq!(ids, [second.id(), first.id()], "in declared order");
    assert!(links.dependents.is_empty());
    assert_eq!(links.workflow, None);
    assert_eq!(links.dependencies[0].status, TaskStatus::Pending);
    let links = queue.links(first.id()).await.expect("links");
    assert!(links.dependencies.is_empty());
    let ids: Vec<_> = links.dependents.iter().map(|t| t.id).collect();
    assert_eq!(ids, [after.id()]);
    assert_eq!(links.dependents[0].status, TaskStatus::Blocked);

    let mut flow = Workflow::new("linked");
    let root = flow.add(Add { a: 4, b: 0 });
    let _leaf = flow.add_with(Add { a: 5, b: 0 }, EnqueueOptions::new().after(&root));
    let stored = flow.enqueue(&queue).await.expect("workflow");
    let root_id = stored.handle(&root).expect("root").id();
    let links = queue.links(root_id).await.expect("links");
    assert_eq!(links.workflow, Some(stored.id()));
    assert_eq!(links.dependents.len(), 1);

    let unknown = crate::TaskId(after.id().0 + 1_000_000);
    assert!(matches!(queue.links(unknown).await, Err(Error::NotFound(id)) if id == unknown));
}

/// Delete removes one finished task with its history, recorded in the
/// audit log; it refuses an unfinished task, a finished one an unfinished
/// dependent waits for, and an unknown id, changing nothing.
pub async fn ops_delete_removes_one_finished_task(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let admin = queue.audited("dash");
    let done = queue.enqueue(Add { a: 1, b: 1 }).await.expect("enqueue");
    let bad = queue
        .enqueue(Fail {
            message: unique("delete"),
        })
        .await
        .expect("enqueue");
    let claimed = claim(&queue, "w-delete", Add::NAME, LIVE).await;
    complete(&queue, &claimed[0], succeeded()).await;
    let claimed = claim(&queue, "w-delete", Fail::NAME, LIVE).await;
    complete(&queue, &claimed[0], failed()).await;
    let pending = queue.enqueue(Add { a: 2, b: 2 }).await.expect("enqueue");

    admin.delete(bad.id()).await.expect("delete a failed task");
    assert!(matches!(queue.get(bad.id()).await, Err(Error::NotFound(_))));
    assert!(
        queue.attempts(bad.id()).await.is_err(),
        "its history went with it"
    );
    assert!(matches!(
        admin.delete(bad.id()).await,
        Err(Error::NotFound(id)) if id == bad.id()
    ));
    match admin.delete(pending.id()).await {
        Err(Error::NotDeletable { id, reason }) => {
            assert_eq!(id, pending.id());
            assert!(reason.contains("pending"), "{reason}");
        }
        other => panic!("a pending task is not deleted: {other:?}"),
    }
    assert_eq!(
        queue.status(pending.id()).await.expect("kept"),
        TaskStatus::Pending
    );
    // A finished task whose dependent has not run yet keeps its result for it.
    let dependent = queue
        .enqueue_with(Add { a: 3, b: 3 }, EnqueueOptions::new().after(&done))
        .await
        .expect("enqueue");
    match admin.delete(done.id()).await {
        Err(Error::NotDeletable { reason, .. }) => {
            assert!(reason.contains("depends on it"), "{reason}")
        }
        other => panic!("a task a dependent waits for is kept: {other:?}"),
    }
    assert_eq!(
        queue.status(done.id()).await.expect("kept"),
        TaskStatus::Succeeded
    );
    queue.cancel(dependent.id()).await.expect("cancel");
    admin
        .delete(done.id())
        .await
        .expect("nothing waits for it now");
    let log = queue.audit_log(10, None).await.expect("audit log");
    let deletes: Vec<_> = log.iter().filter(|e| e.action == "delete").collect();
    assert_eq!(deletes.len(), 2, "{log:?}");
    assert!(deletes.iter().all(|e| e.actor == "dash"));
    assert_eq!(deletes[0].target, format!("task {}", done.id()));
}
