//! Conformance cases for what operators read and do: the worker registry
//! and drain requests, task lists, statistics, attempt history, the audit
//! log and enqueue by name from JSON (purge and diagnosis: `maintenance.rs`).

use std::time::Duration;

use chrono::Utc;

use super::cases::wait;
use super::tasks::{Add, Fail};
use super::{Harness, eventually, open, worker_config};
use crate::inspect::SUMMARY_ERROR_CHARS;
use crate::{
    AttemptOutcome, CancelOutcome, ClaimRequest, ClaimedTask, Completion, EnqueueOptions, Error,
    FailureKind, Outcome, Queue, Task, TaskFailure, TaskFilter, TaskId, TaskStatus, WorkerBeat,
    WorkerControl,
};

/// Claims (and starts) every due task named `name` as `worker_id`.
pub(super) async fn claim(
    queue: &Queue,
    worker_id: &str,
    name: &str,
    lease: Duration,
) -> Vec<ClaimedTask> {
    let names = [name.to_owned()];
    queue
        .backend()
        .claim(ClaimRequest {
            worker_id,
            queues: &[],
            names: &names,
            limit: 100,
            start: 100,
            lease,
        })
        .await
        .expect("claim")
}

/// Records `outcome` for `task`, checking that it applied.
pub(super) async fn complete(queue: &Queue, task: &ClaimedTask, outcome: Outcome) {
    let applied = queue
        .backend()
        .complete(vec![Completion {
            claim: task.claim_ref(),
            outcome,
        }])
        .await
        .expect("complete");
    assert_eq!(
        applied,
        [true],
        "the completion of task {} applies",
        task.id
    );
}

fn beat(id: &str, running: u32, ttl: Duration) -> WorkerBeat {
    WorkerBeat {
        id: id.to_owned(),
        host: "test-host".to_owned(),
        pid: 4242,
        version: "0.0.0-test".to_owned(),
        queues: vec!["default".to_owned(), "mail".to_owned()],
        tasks: vec![Add::NAME.to_owned(), Fail::NAME.to_owned()],
        concurrency: 8,
        running,
        ttl,
    }
}

pub(super) const LIVE: Duration = Duration::from_secs(60);

/// A worker's beat registers it with every field; a later beat refreshes
/// it (running, last seen) and keeps its start; a removed worker is gone.
pub async fn ops_worker_beats_register_and_refresh(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let backend = queue.backend();
    let control = backend
        .worker_beat(&beat("w-a", 0, LIVE))
        .await
        .expect("beat");
    assert_eq!(
        control,
        WorkerControl::default(),
        "nothing asked of a new worker"
    );
    backend
        .worker_beat(&beat("w-b", 1, LIVE))
        .await
        .expect("beat");

    let workers = queue.workers().await.expect("workers");
    let ids: Vec<&str> = workers.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(ids, ["w-a", "w-b"], "live workers by id");
    let a = &workers[0];
    assert_eq!(
        (
            a.host.as_str(),
            a.pid,
            a.version.as_str(),
            a.concurrency,
            a.running
        ),
        ("test-host", 4242, "0.0.0-test", 8, 0)
    );
    assert_eq!(a.queues, ["default", "mail"]);
    assert_eq!(a.tasks, [Add::NAME, Fail::NAME]);
    assert!(!a.draining);
    assert!(
        a.expires_at > a.last_seen,
        "a live row expires after its last beat"
    );
    assert!(a.runs("mail", Add::NAME) && !a.runs("other", Add::NAME));

    backend
        .worker_beat(&beat("w-a", 5, LIVE))
        .await
        .expect("beat");
    let again = queue.workers().await.expect("workers");
    assert_eq!(again[0].running, 5, "a beat refreshes the row");
    assert_eq!(
        again[0].started_at, a.started_at,
        "the start is the first beat's"
    );
    assert!(again[0].last_seen >= a.last_seen);

    backend.remove_worker("w-a").await.expect("remove");
    backend
        .remove_worker("never-there")
        .await
        .expect("removing an unknown worker is a no-op");
    let left: Vec<String> = queue
        .workers()
        .await
        .expect("workers")
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(left, ["w-b"]);
}

/// A worker that stops beating expires: it is no longer listed, it cannot
/// be drained, and another worker's beat deletes its row.
pub async fn ops_stale_workers_expire(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let backend = queue.backend();
    backend
        .worker_beat(&beat("stale", 0, Duration::from_millis(1)))
        .await
        .expect("beat");
    eventually("the stale worker to expire", || async {
        queue
            .workers()
            .await
            .expect("workers")
            .iter()
            .all(|w| w.id != "stale")
            .then_some(())
    })
    .await;
    assert!(matches!(
        queue.drain_worker("stale").await,
        Err(Error::WorkerNotFound(id)) if id == "stale"
    ));
    backend
        .worker_beat(&beat("fresh", 0, LIVE))
        .await
        .expect("beat");
    let ids: Vec<String> = queue
        .workers()
        .await
        .expect("workers")
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(ids, ["fresh"]);
}

/// A drain request (from another client) is stored in the worker's row:
/// its next beat answers `drain`, the listing shows it draining, and this
/// process's workers are told at once. An unknown id is refused.
pub async fn ops_drain_request_reaches_the_worker(h: &impl Harness) {
    let (queue, url) = open(h).await;
    let admin = Queue::connect(&url).await.expect("second client");
    queue
        .backend()
        .worker_beat(&beat("w-drain", 2, LIVE))
        .await
        .expect("beat");
    queue
        .backend()
        .worker_beat(&beat("w-other", 0, LIVE))
        .await
        .expect("beat");

    let mut control = admin.backend().signals().subscribe_control();
    control.mark_unchanged();
    admin.drain_worker("w-drain").await.expect("drain");
    assert!(
        control.has_changed().unwrap_or(false),
        "this process's workers are told at once"
    );

    let answer = queue
        .backend()
        .worker_beat(&beat("w-drain", 1, LIVE))
        .await
        .expect("beat");
    assert!(answer.drain, "the worker's next beat sees the request");
    let other = queue
        .backend()
        .worker_beat(&beat("w-other", 0, LIVE))
        .await
        .expect("beat");
    assert!(!other.drain, "only the named worker drains");
    let listed = admin.workers().await.expect("workers");
    assert!(listed.iter().any(|w| w.id == "w-drain" && w.draining));
    assert!(listed.iter().any(|w| w.id == "w-other" && !w.draining));

    assert!(matches!(
        admin.drain_worker("no-such-worker").await,
        Err(Error::WorkerNotFound(_))
    ));
}

/// Task lists: newest first, each filter narrows, `before` pages, and a
/// long error is cut.
pub async fn ops_task_list_filters_and_pages(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let mut ids = Vec::new();
    for (i, q) in ["default", "mail", "mail"].into_iter().enumerate() {
        let handle = queue
            .enqueue_with(Add { a: i as i64, b: 1 }, EnqueueOptions::new().queue(q))
            .await
            .expect("enqueue");
        ids.push(handle.id());
    }
    let failing = queue
        .enqueue(Fail {
            message: "x".repeat(2 * SUMMARY_ERROR_CHARS),
        })
        .await
        .expect("enqueue");
    let claimed = claim(&queue, "w-list", Fail::NAME, LIVE).await;
    let long = format!("é{}", "y".repeat(3 * SUMMARY_ERROR_CHARS));
    complete(
        &queue,
        &claimed[0],
        Outcome::Failed(TaskFailure::new(FailureKind::Error, long)),
    )
    .await;

    let all = queue
        .tasks(&TaskFilter {
            limit: 100,
            ..TaskFilter::default()
        })
        .await
        .expect("list");
    let listed: Vec<TaskId> = all.iter().map(|t| t.id).collect();
    assert_eq!(
        listed,
        [failing.id(), ids[2], ids[1], ids[0]],
        "newest first"
    );

    let failed = &all[0];
    assert_eq!(failed.status, TaskStatus::Failed);
    assert_eq!(failed.error_kind, Some(FailureKind::Error));
    assert_eq!(failed.worker_id.as_deref(), Some("w-list"));
    let error = failed.error.as_deref().expect("the error is listed");
    assert_eq!(
        error.chars().count(),
        SUMMARY_ERROR_CHARS,
        "the error is cut"
    );
    assert!(error.starts_with('é'), "cut on characters, not bytes");

    let by = |filter: TaskFilter| {
        let queue = queue.clone();
        async move {
            queue
                .tasks(&filter)
                .await
                .expect("list")
                .into_iter()
                .map(|t| t.id)
                .collect::<Vec<_>>()
        }
    };
    let base = TaskFilter {
        limit: 100,
        ..TaskFilter::default()
    };
    assert_eq!(
        by(TaskFilter {
            statuses: vec![TaskStatus::Pending],
            ..base.clone()
        })
        .await,
        [ids[2], ids[1], ids[0]]
    );
    assert_eq!(
        by(TaskFilter {
            statuses: vec![TaskStatus::Failed, TaskStatus::Succeeded],
            ..base.clone()
        })
        .await,
        [failing.id()]
    );
    assert_eq!(
        by(TaskFilter {
            queue: Some("mail".into()),
            ..base.clone()
        })
        .await,
        [ids[2], ids[1]]
    );
    assert_eq!(
        by(TaskFilter {
            name: Some(Fail::NAME.into()),
            ..base.clone()
        })
        .await,
        [failing.id()]
    );
    assert_eq!(
        by(TaskFilter {
            name: Some("no-such-task".into()),
            ..base.clone()
        })
        .await,
        [] as [TaskId; 0]
    );
    assert_eq!(
        by(TaskFilter {
            since: Some(Utc::now() + chrono::Duration::hours(1)),
            ..base.clone()
        })
        .await,
        [] as [TaskId; 0],
        "nothing was enqueued in the future"
    );
    assert_eq!(
        by(TaskFilter {
            since: Some(Utc::now() - chrono::Duration::hours(1)),
            ..base.clone()
        })
        .await
        .len(),
        4
    );
    // Pages of two.
    let first = by(TaskFilter {
        limit: 2,
        ..base.clone()
    })
    .await;
    assert_eq!(first, [failing.id(), ids[2]]);
    let second = by(TaskFilter {
        limit: 2,
        before: Some(ids[2]),
        ..base.clone()
    })
    .await;
    assert_eq!(second, [ids[1], ids[0]]);
    assert!(
        by(TaskFilter {
            limit: 2,
            before: Some(ids[0]),
            ..base.clone()
        })
        .await
        .is_empty()
    );

    assert!(
        matches!(
            queue
                .tasks(&TaskFilter {
                    limit: crate::inspect::MAX_LIST + 1,
                    ..base
                })
                .await,
            Err(Error::Config(_))
        ),
        "an over-long page is refused"
    );
}

/// Statistics: counts by queue, name and state with the oldest due pending
/// task, recent finishes by outcome, failed attempts.
pub async fn ops_stats_count_states_and_recent_finishes(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let before = Utc::now() - chrono::Duration::seconds(5);
    for _ in 0..3 {
        queue
            .enqueue_with(Add { a: 1, b: 1 }, EnqueueOptions::new().queue("stats"))
            .await
            .expect("enqueue");
    }
    queue
        .enqueue_with(
            Add { a: 1, b: 1 },
            EnqueueOptions::new()
                .queue("stats")
                .delay(Duration::from_secs(3600)),
        )
        .await
        .expect("enqueue");
    queue
        .enqueue_with(
            Fail {
                message: "no".into(),
            },
            EnqueueOptions::new().queue("stats"),
        )
        .await
        .expect("enqueue");
    // One Add succeeds, one is running; the Fail fails once (retried) then for good.
    let names = [Add::NAME.to_owned()];
    let adds = queue
        .backend()
        .claim(ClaimRequest {
            worker_id: "w-stats",
            queues: &[],
            names: &names,
            limit: 2,
            start: 2,
            lease: LIVE,
        })
        .await
        .expect("claim");
    assert_eq!(adds.len(), 2);
    complete(
        &queue,
        &adds[0],
        Outcome::Succeeded(crate::codec::encode(&2i64, "r").expect("encode")),
    )
    .await;
    let fail = claim(&queue, "w-stats", Fail::NAME, LIVE).await;
    complete(
        &queue,
        &fail[0],
        Outcome::Retry {
            failure: TaskFailure::new(FailureKind::Error, "no"),
            delay: Duration::ZERO,
        },
    )
    .await;
    let fail = claim(&queue, "w-stats", Fail::NAME, LIVE).await;
    complete(
        &queue,
        &fail[0],
        Outcome::Failed(TaskFailure::new(FailureKind::Error, "no")),
    )
    .await;

    let stats = queue.stats().await.expect("stats");
    assert!(stats.now >= before, "read at the database's clock");
    let count = |name: &str, status: TaskStatus| {
        stats
            .counts
            .iter()
            .find(|c| c.queue == "stats" && c.name == name && c.status == status)
            .map(|c| (c.count, c.oldest_due))
    };
    let (pending, oldest) = count(Add::NAME, TaskStatus::Pending).expect("pending adds counted");
    assert_eq!(pending, 2, "one due, one delayed");
    let oldest = oldest.expect("the due one has waited");
    assert!(
        oldest >= before && oldest <= stats.now,
        "the oldest due task's run_at"
    );
    assert_eq!(count(Add::NAME, TaskStatus::Running).map(|c| c.0), Some(1));
    assert_eq!(
        count(Add::NAME, TaskStatus::Running).and_then(|c| c.1),
        None
    );
    assert_eq!(
        count(Add::NAME, TaskStatus::Succeeded).map(|c| c.0),
        Some(1)
    );
    assert_eq!(count(Fail::NAME, TaskStatus::Failed).map(|c| c.0), Some(1));
    assert_eq!(stats.counts.iter().map(|c| c.count).sum::<u64>(), 5);

    let finished = |status: TaskStatus| {
        stats
            .finished
            .iter()
            .find(|f| f.queue == "stats" && f.status == status)
            .map(|f| (f.last_minute, f.last_hour))
    };
    assert_eq!(finished(TaskStatus::Succeeded), Some((1, 1)));
    assert_eq!(finished(TaskStatus::Failed), Some((1, 1)));
    assert_eq!(finished(TaskStatus::Cancelled), None);
    assert_eq!(
        stats.failed_attempts_last_minute, 2,
        "the retried attempt and the last"
    );
    assert_eq!(stats.failed_attempts_last_hour, 2);
}

/// A task's attempts: each failed one with its worker, start, end and
/// error, then the one that succeeded; a running attempt is listed while it
/// runs.
pub async fn ops_attempt_history_lists_every_try(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let handle = queue.enqueue(Add { a: 1, b: 2 }).await.expect("enqueue");
    let first = claim(&queue, "w-one", Add::NAME, LIVE).await;
    let running = queue.attempts(handle.id()).await.expect("attempts");
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].outcome, AttemptOutcome::Running);
    assert_eq!(running[0].worker_id.as_deref(), Some("w-one"));
    assert!(running[0].started_at.is_some() && running[0].finished_at.is_none());

    complete(
        &queue,
        &first[0],
        Outcome::Retry {
            failure: TaskFailure::new(FailureKind::Error, "connection reset: peer closed"),
            delay: Duration::ZERO,
        },
    )
    .await;
    let second = claim(&queue, "w-two", Add::NAME, LIVE).await;
    complete(
        &queue,
        &second[0],
        Outcome::Succeeded(crate::codec::encode(&3i64, "r").expect("encode")),
    )
    .await;

    let attempts = queue.attempts(handle.id()).await.expect("attempts");
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    let failed = &attempts[0];
    assert_eq!(
        (failed.attempt, failed.outcome),
        (1, AttemptOutcome::Failed)
    );
    assert_eq!(failed.worker_id.as_deref(), Some("w-one"));
    let error = failed.error.as_ref().expect("its error");
    assert_eq!(error.message, "connection reset: peer closed");
    assert!(
        failed.started_at.is_some(),
        "a failed attempt keeps its start"
    );
    assert!(failed.duration().is_some());
    let succeeded = &attempts[1];
    assert_eq!(
        (succeeded.attempt, succeeded.outcome),
        (2, AttemptOutcome::Succeeded)
    );
    assert_eq!(succeeded.worker_id.as_deref(), Some("w-two"));
    assert!(succeeded.duration().is_some() && succeeded.error.is_none());
    assert!(failed.finished_at <= succeeded.started_at, "in order");

    assert!(matches!(
        queue.attempts(TaskId(i64::MAX - 7)).await,
        Err(Error::NotFound(_))
    ));
}

/// Audited admin actions are logged newest first with who, what and on
/// what; a failed action logs nothing; the log pages with `before`.
pub async fn ops_audit_log_records_admin_actions(h: &impl Harness) {
    let (queue, url) = open(h).await;
    let admin = Queue::connect(&url)
        .await
        .expect("second client")
        .audited("alice");
    admin.pause("audited").await.expect("pause");
    admin.resume("audited").await.expect("resume");
    let pending = queue
        .enqueue_with(
            Add { a: 1, b: 1 },
            EnqueueOptions::new().delay(Duration::from_secs(3600)),
        )
        .await
        .expect("enqueue");
    let outcome = admin
        .cancel(pending.id(), Some("not needed".into()))
        .await
        .expect("cancel");
    assert_eq!(outcome, CancelOutcome::Cancelled);
    let record = queue.get(pending.id()).await.expect("record");
    assert_eq!(
        record.cancellation.map(|c| c.by),
        Some("alice".to_owned()),
        "cancelled by the actor"
    );
    admin.retry(pending.id()).await.expect("retry");
    assert!(
        admin.retry(TaskId(i64::MAX - 3)).await.is_err(),
        "an unknown task is refused"
    );
    assert!(
        admin.pause("").await.is_err(),
        "a bad queue name is refused"
    );

    let log = queue.audit_log(100, None).await.expect("audit log");
    let actions: Vec<(&str, &str)> = log
        .iter()
        .map(|e| (e.action.as_str(), e.target.as_str()))
        .collect();
    let task = format!("task {}", pending.id());
    assert_eq!(
        actions,
        [
            ("retry", task.as_str()),
            ("cancel", task.as_str()),
            ("resume", "queue audited"),
            ("pause", "queue audited")
        ],
        "newest first; failed actions are not logged"
    );
    assert!(log.iter().all(|e| e.actor == "alice"));
    assert!(
        log[1]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("not needed"))
    );
    assert!(
        log.windows(2)
            .all(|w| w[0].id > w[1].id && w[0].at >= w[1].at)
    );

    let page = queue.audit_log(2, Some(log[1].id)).await.expect("page");
    let ids: Vec<i64> = page.iter().map(|e| e.id).collect();
    assert_eq!(ids, [log[2].id, log[3].id]);
}

/// A task enqueued by name with JSON arguments (an object by name, or an
/// array in order) runs like a typed one; arguments that are neither are
/// refused, and arguments of the wrong shape fail the task when it runs,
/// kept with a decode error.
pub async fn ops_enqueue_by_name_with_json_arguments(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let admin = queue.audited("tool");
    let worker = h.start_worker(&queue, worker_config());
    let by_name = admin
        .enqueue_json(
            Add::NAME,
            &serde_json::json!({"a": 2, "b": 3}),
            EnqueueOptions::new(),
        )
        .await
        .expect("enqueue by name");
    assert_eq!(wait(&queue.handle::<i64>(by_name)).await.expect("runs"), 5);
    let in_order = admin
        .enqueue_json(
            Add::NAME,
            &serde_json::json!([40, 2]),
            EnqueueOptions::new().priority(3),
        )
        .await
        .expect("enqueue in order");
    assert_eq!(
        wait(&queue.handle::<i64>(in_order)).await.expect("runs"),
        42
    );
    assert_eq!(queue.get(in_order).await.expect("record").priority, 3);

    for bad in [
        serde_json::json!("text"),
        serde_json::json!(7),
        serde_json::Value::Null,
    ] {
        assert!(
            matches!(
                admin
                    .enqueue_json(Add::NAME, &bad, EnqueueOptions::new())
                    .await,
                Err(Error::InvalidOptions(_))
            ),
            "{bad} is refused"
        );
    }
    let wrong = admin
        .enqueue_json(
            Add::NAME,
            &serde_json::json!({"a": "two"}),
            EnqueueOptions::new(),
        )
        .await
        .expect("stored: only the worker knows the types");
    match wait(&queue.handle::<i64>(wrong)).await {
        Err(Error::TaskFailed {
            kind: FailureKind::Decode,
            ..
        }) => {}
        other => panic!("expected a decode failure, got {other:?}"),
    }
    let log = queue.audit_log(10, None).await.expect("audit log");
    assert_eq!(log.iter().filter(|e| e.action == "enqueue").count(), 3);
    worker.shutdown().await;
}
