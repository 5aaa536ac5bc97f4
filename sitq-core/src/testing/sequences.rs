//! Conformance cases for sequences: tasks sharing a key run one at a time,
//! in enqueue order, whatever their priorities; only success, cancellation
//! or pruning releases the next one.

use std::time::Duration;

use chrono::Utc;

use super::cases::wait;
use super::tasks::{Add, Record, log, unique};
use super::{Harness, open, worker_config};
use crate::{
    ClaimRequest, ClaimedTask, Completion, EnqueueOptions, Error, FailureKind, Outcome, Queue,
    Task, TaskFailure, TaskId, TaskStatus,
};

static ADD_NAMES: std::sync::LazyLock<Vec<String>> =
    std::sync::LazyLock::new(|| vec![Add::NAME.to_owned()]);

/// Claims up to 10 `Add` tasks from every queue, all started.
async fn claim(queue: &Queue) -> Vec<ClaimedTask> {
    queue
        .backend()
        .claim(ClaimRequest {
            worker_id: "conformance",
            queues: &[],
            names: &ADD_NAMES,
            limit: 10,
            start: 10,
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

async fn add(queue: &Queue, sequence: Option<&str>, priority: i32) -> TaskId {
    let mut options = EnqueueOptions::new().priority(priority);
    if let Some(key) = sequence {
        options = options.sequence(key);
    }
    queue
        .enqueue_with(Add { a: 1, b: 2 }, options)
        .await
        .expect("enqueue")
        .id()
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
    assert_eq!(applied, [true]);
}

fn failure() -> TaskFailure {
    TaskFailure {
        kind: FailureKind::Error,
        message: "boom".into(),
    }
}

/// Of the tasks of one key, only the earliest unfinished one is claimable,
/// whatever the priorities; other keys and tasks without a key are not
/// held; a success releases the next.
pub async fn sequence_claims_one_at_a_time_in_order(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let first = add(&queue, Some("account:42"), 0).await;
    let second = add(&queue, Some("account:42"), 10).await;
    let third = add(&queue, Some("account:42"), 20).await;
    let other = add(&queue, Some("account:7"), 0).await;
    let free = add(&queue, None, 5).await;

    let claimed = claim(&queue).await;
    assert_eq!(ids(&claimed), [first, other, free]);
    assert!(
        claim(&queue).await.is_empty(),
        "the running task holds its key"
    );
    assert_eq!(
        queue.backend().next_run_at(&[]).await.expect("next"),
        None,
        "held tasks are not due"
    );
    let running = claimed.iter().find(|t| t.id == first).expect("first");
    finish(&queue, running, Outcome::Succeeded(vec![0x03])).await;
    let next = claim(&queue).await;
    assert_eq!(ids(&next), [second]);
    finish(&queue, &next[0], Outcome::Succeeded(vec![0x03])).await;
    assert_eq!(ids(&claim(&queue).await), [third]);
}

/// A task waiting to retry after a failed attempt holds its key: the retry
/// runs before the next task.
pub async fn retrying_task_holds_its_sequence(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let first = add(&queue, Some("k"), 0).await;
    let second = add(&queue, Some("k"), 0).await;
    let claimed = claim(&queue).await;
    assert_eq!(ids(&claimed), [first]);
    finish(
        &queue,
        &claimed[0],
        Outcome::Retry {
            failure: failure(),
            delay: Duration::ZERO,
        },
    )
    .await;
    let retried = claim(&queue).await;
    assert_eq!(ids(&retried), [first], "the retry, not the next task");
    assert_eq!(retried[0].attempt, 2);
    finish(&queue, &retried[0], Outcome::Succeeded(vec![0x03])).await;
    assert_eq!(ids(&claim(&queue).await), [second]);
}

/// A task that failed for good holds its key; cancelling a later one does
/// not release the key, cancelling a pending one does, and pruning the
/// failed one does.
pub async fn failed_task_holds_its_sequence(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let failed = add(&queue, Some("k"), 0).await;
    let cancelled = add(&queue, Some("k"), 0).await;
    let last = add(&queue, Some("k"), 0).await;
    let claimed = claim(&queue).await;
    assert_eq!(ids(&claimed), [failed]);
    finish(&queue, &claimed[0], Outcome::Failed(failure())).await;
    assert!(
        claim(&queue).await.is_empty(),
        "the failed task holds its key"
    );
    assert_eq!(
        queue.cancel(cancelled).await.expect("cancel"),
        crate::CancelOutcome::Cancelled
    );
    assert!(
        claim(&queue).await.is_empty(),
        "still held by the failed task"
    );

    // A cancelled pending task releases its key at once.
    let doomed = add(&queue, Some("other"), 0).await;
    let after = add(&queue, Some("other"), 0).await;
    assert_eq!(
        queue.cancel(doomed).await.expect("cancel"),
        crate::CancelOutcome::Cancelled
    );
    assert_eq!(ids(&claim(&queue).await), [after]);

    // Pruning the failed task releases its key.
    let pruned = queue
        .backend()
        .prune(Utc::now() + chrono::Duration::seconds(60))
        .await
        .expect("prune");
    assert!(pruned >= 2, "the failed and the cancelled tasks: {pruned}");
    assert_eq!(ids(&claim(&queue).await), [last]);
    assert_eq!(
        queue.status(last).await.expect("status"),
        TaskStatus::Running
    );
}

/// A worker runs the tasks of a key in enqueue order, one at a time, even
/// with priorities that say otherwise and free slots to spare.
pub async fn sequence_runs_in_enqueue_order(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let key = unique("seq");
    let mut handles = Vec::new();
    for i in 0..8 {
        let handle = queue
            .enqueue_with(
                Record {
                    log: key.clone(),
                    tag: i.to_string(),
                },
                EnqueueOptions::new().sequence(&key).priority(i),
            )
            .await
            .expect("enqueue");
        handles.push(handle);
    }
    let worker = h.start_worker(&queue, worker_config());
    for handle in &handles {
        wait(handle).await.expect("record");
    }
    let expected: Vec<String> = (0..8).map(|i: i32| i.to_string()).collect();
    assert_eq!(log(&key), expected);
    // One at a time: each started after the previous one finished.
    let mut previous_end = None;
    for handle in &handles {
        let record = queue.get(handle.id()).await.expect("record");
        if let Some(end) = previous_end {
            assert!(record.started_at >= Some(end), "{record:?}");
        }
        previous_end = record.finished_at;
    }
    worker.shutdown().await;
}

/// An empty sequence key is refused and stores nothing.
pub async fn empty_sequence_key_is_refused(h: &impl Harness) {
    let (queue, _) = open(h).await;
    match queue
        .enqueue_with(Add { a: 1, b: 1 }, EnqueueOptions::new().sequence(""))
        .await
    {
        Err(Error::InvalidOptions(message)) => assert!(message.contains("sequence"), "{message}"),
        other => panic!("expected InvalidOptions, got {other:?}"),
    }
    assert!(claim(&queue).await.is_empty(), "nothing was stored");
}

/// A task with both a unique key and a sequence keeps its sequence: unique
/// enqueues take their own insert path, which must store the key too.
pub async fn sequence_holds_for_unique_tasks(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let options = || EnqueueOptions::new().sequence("account:7");
    let first = queue
        .enqueue_with(Add { a: 1, b: 1 }, options().unique_key("first"))
        .await
        .expect("enqueue")
        .id();
    let second = queue
        .enqueue_with(
            Add { a: 2, b: 2 },
            options().unique_key("second").priority(9),
        )
        .await
        .expect("enqueue")
        .id();
    let claimed = claim(&queue).await;
    assert_eq!(ids(&claimed), [first], "the second waits for the first");
    let result = crate::codec::encode(&2i64, "result").expect("encode");
    finish(&queue, &claimed[0], Outcome::Succeeded(result)).await;
    assert_eq!(ids(&claim(&queue).await), [second]);
}
