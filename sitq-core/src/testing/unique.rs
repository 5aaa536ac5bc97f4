//! Conformance cases for unique tasks: a key blocks while its task is
//! pending, blocked or running and within its window after success; a
//! duplicate enqueue returns the holder's handle, marked, and stores nothing.
//!
//! Most cases drive the task's life through the backend (claim, complete,
//! cancel, recover) rather than a worker, so each state is reached exactly
//! when the case wants it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::cases::wait;
use super::tasks::{Add, BlockingAdd};
use super::{Harness, WAIT, eventually, open, worker_config};
use crate::{
    ClaimRequest, ClaimedTask, Completion, EnqueueOptions, Error, FailureKind,
    MAX_UNIQUE_KEY_BYTES, NewTask, Outcome, Queue, Task, TaskDefaults, TaskFailure, TaskHandle,
    TaskId, TaskStatus, UniqueKey, codec,
};

/// A task unique by its arguments, as `#[sitq::task(unique)]` declares it.
/// No worker runs it: the cases claim and complete it themselves.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Export {
    /// The user to export.
    pub user: u64,
}

impl Task for Export {
    const NAME: &'static str = "sitq::testing::unique_export";
    const DEFAULTS: TaskDefaults = TaskDefaults {
        unique: true,
        ..TaskDefaults::DEFAULT
    };
    type Output = ();
}

/// Claims the next ready task named `name`, started, with `lease`.
async fn claim(queue: &Queue, name: &str, lease: Duration) -> ClaimedTask {
    let names = [name.to_owned()];
    let mut claimed = queue
        .backend()
        .claim(ClaimRequest {
            worker_id: "unique-case",
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

/// Finishes `task`'s attempt with `outcome`.
async fn complete(queue: &Queue, task: &ClaimedTask, outcome: Outcome) {
    let applied = queue
        .backend()
        .complete(vec![Completion {
            claim: task.claim_ref(),
            outcome,
        }])
        .await
        .expect("complete");
    assert_eq!(applied, [true], "the completion applies");
}

fn succeeded() -> Outcome {
    Outcome::Succeeded(codec::encode(&(), "unit").expect("encode"))
}

fn failed() -> Outcome {
    Outcome::Failed(TaskFailure::new(FailureKind::Error, "failed for good"))
}

async fn add_keyed(queue: &Queue, a: i64, options: EnqueueOptions) -> TaskHandle<i64> {
    queue
        .enqueue_with(Add { a, b: 1 }, options)
        .await
        .expect("enqueue")
}

fn key(k: &str) -> EnqueueOptions {
    EnqueueOptions::new().unique_key(k)
}

fn assert_new<T>(handle: &TaskHandle<T>, what: &str) {
    assert!(!handle.is_duplicate(), "{what}: expected a new task");
}

fn assert_duplicate_of<T>(handle: &TaskHandle<T>, holder: TaskId, what: &str) {
    assert!(handle.is_duplicate(), "{what}: expected a duplicate");
    assert_eq!(handle.id(), holder, "{what}: the holder's id");
}

/// A duplicate enqueue returns the existing task's handle, says so, and
/// stores nothing: the holder keeps its own arguments, and waiting on the
/// duplicate's handle gives the holder's result.
pub async fn unique_duplicate_returns_the_existing_task(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let first = add_keyed(&queue, 1, key("report")).await;
    assert_new(&first, "the first enqueue");
    let again = add_keyed(&queue, 41, key("report").priority(5)).await;
    assert_duplicate_of(&again, first.id(), "the second enqueue");
    let record = queue.get(first.id()).await.expect("record");
    let stored: Add = codec::decode(&record.payload, "arguments").expect("decode");
    assert_eq!(
        (stored.a, record.priority),
        (1, 0),
        "the holder is unchanged"
    );
    // Nothing else was stored: a plain task is the next id after the holder.
    let plain = queue.enqueue(Add { a: 0, b: 0 }).await.expect("enqueue");
    let between = (first.id().0 + 1..plain.id().0).map(TaskId);
    for id in between {
        assert!(
            matches!(queue.status(id).await, Err(Error::NotFound(_))),
            "no task {id} was stored by the duplicate"
        );
    }
    let worker = h.start_worker(&queue, worker_config());
    assert_eq!(wait(&again).await.expect("result"), 2);
    worker.shutdown().await;
}

/// A key blocks while its task is pending (also waiting for a retry) and
/// while it runs.
pub async fn unique_key_blocks_while_pending_or_running(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let holder = add_keyed(&queue, 1, key("k").max_attempts(3)).await;
    assert_duplicate_of(
        &add_keyed(&queue, 2, key("k")).await,
        holder.id(),
        "pending",
    );
    let task = claim(&queue, Add::NAME, WAIT).await;
    assert_duplicate_of(
        &add_keyed(&queue, 3, key("k")).await,
        holder.id(),
        "running",
    );
    complete(
        &queue,
        &task,
        Outcome::Retry {
            failure: TaskFailure::new(FailureKind::Error, "try again"),
            delay: Duration::from_secs(3600),
        },
    )
    .await;
    assert_eq!(holder.status().await.expect("status"), TaskStatus::Pending);
    assert_duplicate_of(
        &add_keyed(&queue, 4, key("k")).await,
        holder.id(),
        "pending for a retry",
    );
}

/// A succeeded task blocks its key only within its window: not at all
/// without one, for the window with one, and no longer once it ran out.
pub async fn unique_succeeded_blocks_only_within_its_window(h: &impl Harness) {
    let (queue, _) = open(h).await;
    // No window.
    let none = add_keyed(&queue, 1, key("none")).await;
    complete(&queue, &claim(&queue, Add::NAME, WAIT).await, succeeded()).await;
    let after = add_keyed(&queue, 1, key("none")).await;
    assert_new(&after, "after success without a window");
    assert_ne!(after.id(), none.id());
    queue.cancel(after.id()).await.expect("cancel");

    // A long window.
    let hour = add_keyed(&queue, 1, key("hour").unique_for(Duration::from_secs(3600))).await;
    complete(&queue, &claim(&queue, Add::NAME, WAIT).await, succeeded()).await;
    assert_eq!(hour.status().await.expect("status"), TaskStatus::Succeeded);
    assert_duplicate_of(
        &add_keyed(&queue, 2, key("hour")).await,
        hour.id(),
        "succeeded within its window",
    );

    // A short window runs out; the next enqueue takes the key over.
    let short = add_keyed(
        &queue,
        1,
        key("short").unique_for(Duration::from_millis(200)),
    )
    .await;
    complete(&queue, &claim(&queue, Add::NAME, WAIT).await, succeeded()).await;
    let next = eventually("the 200 ms window to run out", || async {
        let handle = add_keyed(&queue, 3, key("short")).await;
        (!handle.is_duplicate()).then_some(handle)
    })
    .await;
    assert_ne!(next.id(), short.id());
    assert_duplicate_of(
        &add_keyed(&queue, 4, key("short")).await,
        next.id(),
        "the new holder blocks",
    );
}

/// Failed and cancelled tasks never block, window or not, whichever way
/// they ended: a failed completion, a cancel, a lease that ran out on the
/// last attempt.
pub async fn unique_failed_and_cancelled_do_not_block(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let window = Duration::from_secs(3600);

    let failed_task = add_keyed(&queue, 1, key("f").unique_for(window)).await;
    complete(&queue, &claim(&queue, Add::NAME, WAIT).await, failed()).await;
    let after = add_keyed(&queue, 1, key("f")).await;
    assert_new(&after, "after a failure");
    assert_ne!(after.id(), failed_task.id());
    queue.cancel(after.id()).await.expect("cancel");

    let cancelled = add_keyed(&queue, 1, key("c").unique_for(window)).await;
    assert_eq!(
        queue.cancel(cancelled.id()).await.expect("cancel"),
        crate::CancelOutcome::Cancelled
    );
    let after = add_keyed(&queue, 1, key("c")).await;
    assert_new(&after, "after a cancel");
    queue.cancel(after.id()).await.expect("cancel");

    let lost = add_keyed(&queue, 1, key("l").unique_for(window).max_attempts(1)).await;
    claim(&queue, Add::NAME, Duration::ZERO).await;
    eventually("the lost lease to fail the task", || async {
        queue
            .backend()
            .recover_expired()
            .await
            .expect("recover_expired");
        (lost.status().await.ok() == Some(TaskStatus::Failed)).then_some(())
    })
    .await;
    assert_new(
        &add_keyed(&queue, 1, key("l")).await,
        "after a lease ran out on the last attempt",
    );
}

/// A batch respects keys against stored rows and within itself; tasks
/// without keys in the same batch are stored in order.
pub async fn unique_batch_with_duplicates(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let stored = queue.enqueue(Export { user: 1 }).await.expect("enqueue");
    let handles = queue
        .enqueue_many([1, 2, 2, 3, 1].map(|user| Export { user }))
        .await
        .expect("enqueue_many");
    let flags: Vec<bool> = handles.iter().map(TaskHandle::is_duplicate).collect();
    assert_eq!(flags, [true, false, true, false, true]);
    assert_eq!(handles[0].id(), stored.id());
    assert_eq!(handles[4].id(), stored.id());
    assert_eq!(handles[2].id(), handles[1].id());
    assert!(
        handles[1].id() < handles[3].id(),
        "new tasks in batch order"
    );

    // Keyed and plain tasks mixed, through the backend.
    let task = |key: Option<&str>| NewTask {
        unique: key.map(|key| UniqueKey::explicit(key.to_owned(), None).expect("key")),
        ..queue
            .new_task(&Add { a: 1, b: 1 }, &EnqueueOptions::new())
            .expect("new task")
    };
    let enqueued = queue
        .backend()
        .enqueue_unique(vec![
            task(None),
            task(Some("x")),
            task(None),
            task(Some("x")),
        ])
        .await
        .expect("enqueue_unique");
    let flags: Vec<bool> = enqueued.iter().map(|e| e.duplicate).collect();
    assert_eq!(flags, [false, false, false, true]);
    assert!(enqueued[0].id < enqueued[1].id && enqueued[1].id < enqueued[2].id);
    assert_eq!(enqueued[3].id, enqueued[1].id);
    // `enqueue` honours keys too, answering with the holder's id.
    let ids = queue
        .backend()
        .enqueue(vec![task(Some("x")), task(None)])
        .await
        .expect("enqueue");
    assert_eq!(ids[0], enqueued[1].id);
    assert!(ids[1] > enqueued[2].id);
}

/// A task declared unique (`#[sitq::task(unique)]`) is keyed by its
/// arguments: equal arguments are duplicates, others are not; an explicit
/// key replaces the arguments' key.
pub async fn unique_by_arguments(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let first = queue.enqueue(Export { user: 7 }).await.expect("enqueue");
    assert_new(&first, "the first export of user 7");
    let again = queue.enqueue(Export { user: 7 }).await.expect("enqueue");
    assert_duplicate_of(&again, first.id(), "user 7 again");
    let other = queue.enqueue(Export { user: 8 }).await.expect("enqueue");
    assert_new(&other, "user 8");
    let explicit = queue
        .enqueue_with(Export { user: 7 }, key("export:7"))
        .await
        .expect("enqueue");
    assert_new(&explicit, "an explicit key instead of the arguments");
    // Once the holder fails, the same arguments make a new task.
    let task = claim(&queue, Export::NAME, WAIT).await;
    assert_eq!(task.id, first.id());
    complete(&queue, &task, failed()).await;
    assert_new(
        &queue.enqueue(Export { user: 7 }).await.expect("enqueue"),
        "user 7 after its export failed",
    );
}

/// Keys are scoped by task name: two task types may use the same key.
pub async fn unique_keys_are_scoped_by_task_name(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let add = add_keyed(&queue, 1, key("shared")).await;
    let blocking = queue
        .enqueue_with(BlockingAdd { a: 1, b: 1 }, key("shared"))
        .await
        .expect("enqueue");
    assert_new(&add, "Add with the key");
    assert_new(&blocking, "BlockingAdd with the same key");
    assert_ne!(add.id(), blocking.id());
    let raw = queue
        .enqueue_raw(Add::NAME, add_payload(), key("shared"))
        .await
        .expect("enqueue_raw");
    assert_eq!(raw, add.id(), "a raw enqueue of the same name and key");
}

fn add_payload() -> Vec<u8> {
    codec::encode(&Add { a: 9, b: 9 }, "arguments").expect("encode")
}

/// An empty or overlong key is refused with a clear error; nothing is stored.
pub async fn unique_key_is_checked(h: &impl Harness) {
    let (queue, _) = open(h).await;
    for (bad, what) in [
        (String::new(), "empty"),
        ("k".repeat(MAX_UNIQUE_KEY_BYTES + 1), "too long"),
    ] {
        match queue.enqueue_with(Add { a: 1, b: 1 }, key(&bad)).await {
            Err(Error::InvalidOptions(message)) => {
                assert!(message.contains("unique key"), "{what}: {message}");
            }
            other => panic!("{what} key: expected InvalidOptions, got {other:?}"),
        }
    }
    let first = queue.enqueue(Add { a: 1, b: 1 }).await.expect("enqueue");
    assert_eq!(first.id(), TaskId(1), "the refused enqueues stored nothing");
    let longest = add_keyed(&queue, 1, key(&"k".repeat(MAX_UNIQUE_KEY_BYTES))).await;
    assert_new(&longest, "a key of the longest length");
}
