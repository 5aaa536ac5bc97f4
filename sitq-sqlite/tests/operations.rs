//! Operations on SQLite: the worker registry, task lists, statistics, the
//! audit log, `diagnose`, failure history with start times, and purge by
//! status.

mod common;

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

// ---- the worker registry -------------------------------------------------

#[tokio::test]
async fn a_beat_registers_a_worker_and_refreshes_it() {
    let queue = queue().await;
    let backend = backend(&queue);
    assert!(backend.workers().await.expect("workers").is_empty());

    let before = Utc::now();
    let control = backend
        .worker_beat(&beat("w1", Duration::from_secs(15)))
        .await
        .expect("first beat");
    assert!(!control.drain);
    let workers = backend.workers().await.expect("workers");
    assert_eq!(workers.len(), 1);
    let first = &workers[0];
    assert_eq!(first.id, "w1");
    assert_eq!(first.host, "host-1");
    assert_eq!(first.pid, 4242);
    assert_eq!(first.version, "0.1.0");
    assert_eq!(first.queues, vec!["default", "mail"]);
    assert_eq!(first.tasks, vec!["a", "b"]);
    assert_eq!(first.concurrency, 8);
    assert_eq!(first.running, 0);
    assert!(!first.draining);
    assert!(first.started_at >= before - chrono::Duration::seconds(1));
    assert_eq!(first.last_seen, first.started_at);
    assert_eq!(
        first.expires_at - first.last_seen,
        chrono::Duration::seconds(15)
    );
    assert!(first.runs("mail", "a") && !first.runs("other", "a") && !first.runs("mail", "z"));

    // The next beat overwrites every field but the first beat's time.
    let mut next = beat("w1", Duration::from_secs(30));
    next.running = 3;
    next.concurrency = 4;
    next.queues = Vec::new();
    next.tasks = vec!["c".to_owned()];
    backend.worker_beat(&next).await.expect("second beat");
    let workers = backend.workers().await.expect("workers");
    let second = &workers[0];
    assert_eq!(
        second.started_at, first.started_at,
        "kept from the first beat"
    );
    assert!(second.last_seen >= first.last_seen);
    assert_eq!(
        second.expires_at - second.last_seen,
        chrono::Duration::seconds(30)
    );
    assert_eq!((second.running, second.concurrency), (3, 4));
    assert!(second.queues.is_empty());
    assert_eq!(second.tasks, vec!["c"]);

    // Several workers are listed by id.
    backend
        .worker_beat(&beat("w0", Duration::from_secs(15)))
        .await
        .expect("another worker");
    let ids: Vec<String> = backend
        .workers()
        .await
        .expect("workers")
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(ids, vec!["w0", "w1"]);

    // A clean stop removes the row; an unknown id is a no-op.
    backend.remove_worker("w1").await.expect("remove");
    backend
        .remove_worker("nobody")
        .await
        .expect("remove unknown");
    let ids: Vec<String> = backend
        .workers()
        .await
        .expect("workers")
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(ids, vec!["w0"]);
}

#[tokio::test]
async fn a_drain_request_reaches_the_next_beat_and_this_process_at_once() {
    let queue = queue().await;
    let backend = backend(&queue);
    backend
        .worker_beat(&beat("w1", Duration::from_secs(15)))
        .await
        .expect("beat");

    let mut control = backend.signals().subscribe_control();
    control.borrow_and_update();
    assert!(
        !backend.drain_worker("nobody").await.expect("drain unknown"),
        "an unknown worker is not drained"
    );
    assert!(
        !control.has_changed().expect("signals alive"),
        "nothing changed, nothing told"
    );
    assert!(
        matches!(queue.drain_worker("nobody").await, Err(Error::WorkerNotFound(id)) if id == "nobody")
    );

    assert!(backend.drain_worker("w1").await.expect("drain"));
    tokio::time::timeout(sitq_core::testing::WAIT, control.changed())
        .await
        .expect("this process's workers are told within the wait")
        .expect("signals alive");
    assert!(backend.workers().await.expect("workers")[0].draining);

    // The request is kept across beats until the worker stops.
    for _ in 0..2 {
        let answer = backend
            .worker_beat(&beat("w1", Duration::from_secs(15)))
            .await
            .expect("beat");
        assert!(answer.drain, "the beat carries the drain request");
    }
    // Draining twice is fine.
    assert!(backend.drain_worker("w1").await.expect("drain again"));
}

#[tokio::test]
async fn an_expired_worker_is_not_listed_and_the_next_beat_of_another_deletes_it() {
    let queue = queue().await;
    let backend = backend(&queue);
    // "live" beats first: its beat would delete an already expired row.
    backend
        .worker_beat(&beat("live", Duration::from_secs(15)))
        .await
        .expect("beat");
    backend
        .worker_beat(&beat("gone", Duration::ZERO))
        .await
        .expect("beat");
    // A zero TTL expires at its own beat: any later instant is past it.
    eventually("the zero-TTL worker to expire", || async {
        backend.workers().await.expect("workers").len() == 1
    })
    .await;
    assert_eq!(backend.workers().await.expect("workers")[0].id, "live");
    assert!(
        !backend.drain_worker("gone").await.expect("drain expired"),
        "an expired worker cannot be drained"
    );

    let rows = || async {
        transaction(&queue, |tx| {
            tx.query_row("SELECT count(*) FROM sitq_workers", [], |row| {
                row.get::<_, i64>(0)
            })
        })
        .await
        .expect("count rows")
    };
    assert_eq!(rows().await, 2, "expired, but not deleted yet");
    backend
        .worker_beat(&beat("live", Duration::from_secs(15)))
        .await
        .expect("beat");
    assert_eq!(
        rows().await,
        1,
        "another worker's beat deleted the expired row"
    );
}

// ---- task lists ----------------------------------------------------------

#[tokio::test]
async fn task_lists_filter_and_page_newest_first() {
    let queue = queue().await;
    let backend = backend(&queue);
    let ids = backend
        .enqueue(vec![
            on("default", "a"),
            on("default", "b"),
            on("other", "a"),
            on("other", "c"),
            on("default", "a"),
        ])
        .await
        .expect("enqueue");
    let claimed = claim_named(&queue, "b", common::LEASE).await;
    assert_eq!(claimed.id, ids[1]);
    finish(&queue, &claimed, failed("boom")).await;

    let list = |filter: TaskFilter| async move {
        backend
            .tasks(&filter)
            .await
            .expect("tasks")
            .into_iter()
            .map(|t| t.id)
            .collect::<Vec<TaskId>>()
    };
    let all = TaskFilter {
        limit: 100,
        ..TaskFilter::default()
    };
    let pick = |i: &[usize]| i.iter().map(|&i| ids[i]).collect::<Vec<_>>();
    assert_eq!(list(all.clone()).await, pick(&[4, 3, 2, 1, 0]));
    assert_eq!(
        list(TaskFilter {
            statuses: vec![TaskStatus::Failed],
            ..all.clone()
        })
        .await,
        pick(&[1])
    );
    assert_eq!(
        list(TaskFilter {
            statuses: vec![TaskStatus::Pending, TaskStatus::Failed],
            ..all.clone()
        })
        .await,
        pick(&[4, 3, 2, 1, 0])
    );
    assert!(
        list(TaskFilter {
            statuses: vec![TaskStatus::Running],
            ..all.clone()
        })
        .await
        .is_empty()
    );
    assert_eq!(
        list(TaskFilter {
            queue: Some("other".into()),
            ..all.clone()
        })
        .await,
        pick(&[3, 2])
    );
    assert_eq!(
        list(TaskFilter {
            name: Some("a".into()),
            ..all.clone()
        })
        .await,
        pick(&[4, 2, 0])
    );
    assert_eq!(
        list(TaskFilter {
            queue: Some("default".into()),
            name: Some("a".into()),
            ..all.clone()
        })
        .await,
        pick(&[4, 0])
    );

    // `since`: the two oldest were enqueued an hour ago.
    sql(
        &queue,
        "UPDATE sitq_tasks SET created_at = created_at - ?1 WHERE id IN (?2, ?3)",
        vec![60 * MINUTE, ids[0].0, ids[1].0],
    )
    .await;
    assert_eq!(
        list(TaskFilter {
            since: Some(Utc::now() - chrono::Duration::minutes(30)),
            ..all.clone()
        })
        .await,
        pick(&[4, 3, 2])
    );

    // Keyset pages: `before` is the last id of the previous page.
    let page = |before: Option<TaskId>| TaskFilter {
        before,
        limit: 2,
        ..TaskFilter::default()
    };
    assert_eq!(list(page(None)).await, pick(&[4, 3]));
    assert_eq!(list(page(Some(ids[3]))).await, pick(&[2, 1]));
    assert_eq!(list(page(Some(ids[1]))).await, pick(&[0]));
    assert!(list(page(Some(ids[0]))).await.is_empty());
    assert!(list(TaskFilter::default()).await.is_empty(), "limit 0");

    // The summary carries the row without payload or result.
    let failed = &backend
        .tasks(&TaskFilter {
            statuses: vec![TaskStatus::Failed],
            ..all
        })
        .await
        .expect("tasks")[0];
    assert_eq!(failed.name, "b");
    assert_eq!(failed.queue, "default");
    assert_eq!(failed.attempts, 1);
    assert_eq!(failed.max_attempts, 3);
    assert_eq!(failed.worker_id.as_deref(), Some("w1"));
    assert_eq!(failed.error_kind, Some(FailureKind::Error));
    assert_eq!(failed.error.as_deref(), Some("boom"));
    assert!(failed.started_at.is_some() && failed.finished_at.is_some());
}

#[tokio::test]
async fn a_listed_error_is_cut_to_its_summary_length_in_characters() {
    let queue = queue().await;
    let backend = backend(&queue);
    let id = backend.enqueue(vec![task("a")]).await.expect("enqueue")[0];
    let long = "é".repeat(3 * sitq_core::inspect::SUMMARY_ERROR_CHARS);
    let claimed = claim_named(&queue, "a", common::LEASE).await;
    finish(&queue, &claimed, failed(&long)).await;
    let listed = backend
        .tasks(&TaskFilter {
            limit: 1,
            ..TaskFilter::default()
        })
        .await
        .expect("tasks");
    assert_eq!(listed[0].id, id);
    assert_eq!(
        listed[0].error.as_deref(),
        Some("é".repeat(sitq_core::inspect::SUMMARY_ERROR_CHARS).as_str())
    );
    let record = backend.get(id).await.expect("get").expect("stored");
    assert_eq!(
        record.failure.map(|f| f.message),
        Some(long),
        "the record keeps it whole"
    );
}

// ---- statistics ----------------------------------------------------------

#[tokio::test]
async fn stats_count_by_queue_name_and_status_with_time_windows() {
    let queue = queue().await;
    let backend = backend(&queue);
    let now = Utc::now();
    let due_early = now - chrono::Duration::seconds(30);
    let ids = backend
        .enqueue(vec![
            common::task_at("a", 0, due_early),
            common::task_at("a", 0, now - chrono::Duration::seconds(5)),
            common::task_at("a", 0, now + chrono::Duration::hours(1)),
            NewTask {
                run_at: now + chrono::Duration::hours(1),
                ..on("later", "c")
            },
            on("mail", "b"),
            on("mail", "b"),
            on("mail", "b"),
            on("mail", "d"),
        ])
        .await
        .expect("enqueue");
    // Three successes of b: now, ten minutes ago, two hours ago.
    for _ in 0..3 {
        let claimed = claim_named(&queue, "b", common::LEASE).await;
        finish(&queue, &claimed, Outcome::Succeeded(vec![0xc0])).await;
    }
    sql(
        &queue,
        "UPDATE sitq_tasks SET finished_at = finished_at - ?1 WHERE id = ?2",
        vec![10 * MINUTE, ids[5].0],
    )
    .await;
    sql(
        &queue,
        "UPDATE sitq_tasks SET finished_at = finished_at - ?1 WHERE id = ?2",
        vec![120 * MINUTE, ids[6].0],
    )
    .await;
    // d fails twice (retried, then for good); one failure was 30 minutes ago.
    let claimed = claim_named(&queue, "d", common::LEASE).await;
    finish(
        &queue,
        &claimed,
        Outcome::Retry {
            failure: TaskFailure::new(FailureKind::Error, "first"),
            delay: Duration::ZERO,
        },
    )
    .await;
    sql(
        &queue,
        "UPDATE sitq_failures SET failed_at = failed_at - ?1",
        vec![30 * MINUTE],
    )
    .await;
    let claimed = claim_named(&queue, "d", common::LEASE).await;
    finish(&queue, &claimed, failed("second")).await;
    // An old failure outside the hour counts nowhere.
    sql(
        &queue,
        "INSERT INTO sitq_failures (task_id, attempt, kind, message, failed_at) \
         VALUES (?1, 9, 'error', 'old', ?2)",
        vec![ids[7].0, now.timestamp_micros() - 90 * MINUTE],
    )
    .await;

    let stats = backend.stats().await.expect("stats");
    assert!(stats.now >= now);
    let count = |queue_name: &str, name: &str, status: TaskStatus| {
        stats
            .counts
            .iter()
            .find(|c| c.queue == queue_name && c.name == name && c.status == status)
            .unwrap_or_else(|| panic!("a count for {queue_name}/{name}/{status}"))
    };
    let a = count("default", "a", TaskStatus::Pending);
    assert_eq!(a.count, 3);
    assert_eq!(
        micros(a.oldest_due),
        Some(due_early.timestamp_micros()),
        "the earliest due run_at; the future one does not count"
    );
    let c = count("later", "c", TaskStatus::Pending);
    assert_eq!((c.count, c.oldest_due), (1, None), "nothing due yet");
    let b = count("mail", "b", TaskStatus::Succeeded);
    assert_eq!((b.count, b.oldest_due), (3, None));
    assert_eq!(count("mail", "d", TaskStatus::Failed).count, 1);
    assert_eq!(stats.counts.len(), 4, "{:?}", stats.counts);

    let finished: Vec<_> = stats
        .finished
        .iter()
        .map(|f| (f.queue.as_str(), f.status, f.last_minute, f.last_hour))
        .collect();
    assert_eq!(
        finished,
        vec![
            ("mail", TaskStatus::Failed, 1, 1),
            ("mail", TaskStatus::Succeeded, 1, 2),
        ]
    );
    assert_eq!(stats.failed_attempts_last_minute, 1);
    assert_eq!(stats.failed_attempts_last_hour, 2);

    // An empty database has nothing to count.
    let empty = self::queue().await;
    let stats = backend_stats(&empty).await;
    assert!(stats.counts.is_empty() && stats.finished.is_empty());
    assert_eq!(
        (
            stats.failed_attempts_last_minute,
            stats.failed_attempts_last_hour
        ),
        (0, 0)
    );
}

async fn backend_stats(queue: &Queue) -> sitq_core::Stats {
    queue.stats().await.expect("stats")
}

// ---- the audit log -------------------------------------------------------

#[tokio::test]
async fn the_audit_log_is_newest_first_and_pages_by_id() {
    let queue = queue().await;
    let backend = backend(&queue);
    assert!(backend.audit_log(10, None).await.expect("log").is_empty());
    let before = Utc::now();
    for (action, detail) in [
        ("pause", None),
        ("retry", Some("was failed")),
        ("purge", Some("older than 7d")),
    ] {
        backend
            .record_audit(&NewAuditEntry {
                actor: "alice".into(),
                action: action.into(),
                target: format!("target of {action}"),
                detail: detail.map(str::to_owned),
            })
            .await
            .expect("record");
    }
    let log = backend.audit_log(10, None).await.expect("log");
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["purge", "retry", "pause"]);
    assert!(log.windows(2).all(|w| w[0].id > w[1].id));
    assert!(
        log.iter()
            .all(|e| e.actor == "alice" && e.at >= before - chrono::Duration::seconds(1))
    );
    assert_eq!(log[2].detail, None);
    assert_eq!(log[2].target, "target of pause");
    assert_eq!(log[0].detail.as_deref(), Some("older than 7d"));

    let first_page = backend.audit_log(2, None).await.expect("page");
    assert_eq!(first_page, log[..2].to_vec());
    let next = backend
        .audit_log(2, Some(first_page[1].id))
        .await
        .expect("next page");
    assert_eq!(next, log[2..].to_vec());
    assert!(
        backend
            .audit_log(2, Some(log[2].id))
            .await
            .expect("past the end")
            .is_empty()
    );
    assert!(backend.audit_log(0, None).await.expect("none").is_empty());

    // Audited admin actions write the same log.
    queue
        .audited("bob")
        .pause("mail")
        .await
        .expect("audited pause");
    let newest = &backend.audit_log(1, None).await.expect("log")[0];
    assert_eq!(
        (newest.actor.as_str(), newest.action.as_str()),
        ("bob", "pause")
    );
}

// ---- diagnose ------------------------------------------------------------

#[tokio::test]
async fn diagnose_finds_oversized_rows_and_expired_leases() {
    let queue = queue().await;
    let backend = backend(&queue);
    let big = NewTask {
        payload: vec![7; 3000],
        ..task("a")
    };
    let bigger = NewTask {
        payload: vec![7; 5000],
        ..task("b")
    };
    let ids = backend
        .enqueue(vec![task("a"), big, bigger, task("c")])
        .await
        .expect("enqueue");
    // c succeeds with a large result.
    let claimed = claim_named(&queue, "c", common::LEASE).await;
    finish(&queue, &claimed, Outcome::Succeeded(vec![1; 4000])).await;

    let diagnosis = backend.diagnose(2000).await.expect("diagnose");
    assert_eq!(diagnosis.location, "sqlite::memory:");
    assert_eq!(diagnosis.schema_version, 8);
    assert_eq!(diagnosis.expected_schema_version, 8);
    assert_eq!(diagnosis.expired_leases, 0);
    let oversized: Vec<(TaskId, u64, u64)> = diagnosis
        .oversized
        .iter()
        .map(|o| (o.id, o.payload_bytes, o.result_bytes))
        .collect();
    assert_eq!(
        oversized,
        vec![(ids[2], 5000, 0), (ids[3], 1, 4000), (ids[1], 3000, 0)],
        "largest first; the small one left out"
    );
    assert_eq!(diagnosis.oversized[0].name, "b");
    let journal = diagnosis
        .checks
        .iter()
        .find(|c| c.name == "journal mode")
        .expect("a journal mode check");
    assert_eq!(
        journal.level,
        CheckLevel::Warn,
        "memory: {}",
        journal.detail
    );

    // A lease that ran out and was not recovered yet.
    claim_named(&queue, "a", Duration::ZERO).await;
    eventually("the zero lease to be counted as expired", || async {
        backend
            .diagnose(2000)
            .await
            .expect("diagnose")
            .expired_leases
            == 1
    })
    .await;
    assert_eq!(backend.recover_expired().await.expect("recover"), 1);
    assert_eq!(
        backend
            .diagnose(2000)
            .await
            .expect("diagnose")
            .expired_leases,
        0
    );

    // At most 20 oversized rows.
    let many: Vec<NewTask> = (0..25)
        .map(|_| NewTask {
            payload: vec![1; 100],
            ..task("a")
        })
        .collect();
    backend.enqueue(many).await.expect("enqueue");
    assert_eq!(
        backend
            .diagnose(50)
            .await
            .expect("diagnose")
            .oversized
            .len(),
        20
    );
}

#[tokio::test]
async fn diagnose_checks_the_file_its_mode_and_its_settings() {
    let db = TempDb::new("doctor");
    let backend = db.connect().await;
    backend.enqueue(vec![task("a")]).await.expect("enqueue");
    let canonical = std::fs::canonicalize(&db.path).expect("canonical");
    let diagnosis = backend.diagnose(1 << 20).await.expect("diagnose");
    assert_eq!(
        diagnosis.location,
        format!("sqlite://{}", canonical.display())
    );
    let check = |name: &str| {
        diagnosis
            .checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("a {name} check in {:?}", diagnosis.checks))
            .clone()
    };
    assert_eq!(check("journal mode").level, CheckLevel::Ok);
    assert!(check("journal mode").detail.starts_with("wal"));
    assert_eq!(check("synchronous").level, CheckLevel::Ok);
    assert!(check("synchronous").detail.starts_with("NORMAL"));
    assert_eq!(check("file permissions").level, CheckLevel::Ok);
    assert!(check("file permissions").detail.contains("0600"));
    assert_eq!(check("size").level, CheckLevel::Ok);
    assert!(check("size").detail.contains("free"));
    check("directory permissions");

    // A world-readable file is a warning that says what to do.
    std::fs::set_permissions(&db.path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let diagnosis = backend.diagnose(1 << 20).await.expect("diagnose");
    let permissions = diagnosis
        .checks
        .iter()
        .find(|c| c.name == "file permissions")
        .expect("a permissions check");
    assert_eq!(permissions.level, CheckLevel::Warn);
    assert!(
        permissions
            .detail
            .contains(&format!("chmod 600 {}", db.path.display())),
        "{}",
        permissions.detail
    );
    backend.close().await;

    // synchronous=FULL says what it buys.
    let full = SqliteBackend::connect(
        &format!("{}?synchronous=FULL", db.url()),
        ConnectOptions::new(),
    )
    .await
    .expect("connect FULL");
    let diagnosis = full.diagnose(1 << 20).await.expect("diagnose");
    let synchronous = diagnosis
        .checks
        .iter()
        .find(|c| c.name == "synchronous")
        .expect("a synchronous check");
    assert!(
        synchronous.detail.starts_with("FULL"),
        "{}",
        synchronous.detail
    );
    full.close().await;
}

// ---- failure history -----------------------------------------------------

#[tokio::test]
async fn failure_rows_carry_the_attempt_start() {
    let queue = queue().await;
    let backend = backend(&queue);
    let id = backend
        .enqueue(vec![NewTask {
            max_attempts: 4,
            ..task("a")
        }])
        .await
        .expect("enqueue")[0];

    // Attempt 1: retried.
    let claimed = claim_named(&queue, "a", common::LEASE).await;
    let started_1 = backend
        .get(id)
        .await
        .expect("get")
        .and_then(|r| r.started_at)
        .expect("started");
    finish(
        &queue,
        &claimed,
        Outcome::Retry {
            failure: TaskFailure::new(FailureKind::Error, "first"),
            delay: Duration::ZERO,
        },
    )
    .await;

    // Attempt 2: its lease runs out.
    claim_named(&queue, "a", Duration::ZERO).await;
    let started_2 = backend
        .get(id)
        .await
        .expect("get")
        .and_then(|r| r.started_at)
        .expect("started");
    eventually("the lease to be recovered", || async {
        backend.recover_expired().await.expect("recover") == 1
    })
    .await;

    // Attempt 3: failed for good.
    let claimed = claim_named(&queue, "a", common::LEASE).await;
    let started_3 = backend
        .get(id)
        .await
        .expect("get")
        .and_then(|r| r.started_at)
        .expect("started");
    finish(&queue, &claimed, failed("third")).await;

    let failures = backend.failures(id).await.expect("failures");
    let seen: Vec<(u32, FailureKind, Option<i64>)> = failures
        .iter()
        .map(|f| (f.attempt, f.kind, micros(f.started_at)))
        .collect();
    assert_eq!(
        seen,
        vec![
            (1, FailureKind::Error, Some(started_1.timestamp_micros())),
            (
                2,
                FailureKind::LeaseExpired,
                Some(started_2.timestamp_micros())
            ),
            (3, FailureKind::Error, Some(started_3.timestamp_micros())),
        ]
    );
    assert!(failures.iter().all(|f| f.started_at <= Some(f.failed_at)));

    // The attempt history shows the start and the duration of each.
    let attempts = queue.attempts(id).await.expect("attempts");
    assert_eq!(attempts.len(), 3);
    assert!(attempts.iter().all(|a| a.duration().is_some()));
}

// ---- purge ---------------------------------------------------------------

#[tokio::test]
async fn purge_by_status_leaves_the_other_statuses() {
    let queue = queue().await;
    let backend = backend(&queue);
    let ids = backend
        .enqueue(vec![
            task("a"),
            task("b"),
            task("c"),
            task("d"),
            task("now"),
        ])
        .await
        .expect("enqueue");
    let claimed = claim_named(&queue, "a", common::LEASE).await;
    finish(&queue, &claimed, Outcome::Succeeded(vec![0xc0])).await;
    let claimed = claim_named(&queue, "b", common::LEASE).await;
    finish(&queue, &claimed, failed("no")).await;
    backend
        .cancel(ids[2], &sitq_core::CancelRequest::new())
        .await
        .expect("cancel");
    // d stays pending; `now` fails too.
    let claimed = claim_named(&queue, "now", common::LEASE).await;
    finish(&queue, &claimed, failed("no")).await;
    let later = Utc::now() + chrono::Duration::minutes(1);

    let exists = |id: TaskId| async move { backend.status(id).await.expect("status").is_some() };

    // Only finished states are deleted, whatever is asked.
    assert_eq!(
        backend
            .purge(later, &[TaskStatus::Pending, TaskStatus::Running])
            .await
            .expect("purge unfinished"),
        0
    );
    // A cut-off before they finished deletes nothing.
    assert_eq!(
        backend
            .purge(Utc::now() - chrono::Duration::hours(1), &[])
            .await
            .expect("purge old"),
        0
    );
    assert_eq!(
        backend
            .purge(later, &[TaskStatus::Failed])
            .await
            .expect("purge failed"),
        2
    );
    assert!(!exists(ids[1]).await && !exists(ids[4]).await);
    assert!(exists(ids[0]).await && exists(ids[2]).await && exists(ids[3]).await);
    assert!(backend.failures(ids[1]).await.expect("failures").is_empty());

    assert_eq!(
        backend
            .purge(later, &[TaskStatus::Cancelled, TaskStatus::Pending])
            .await
            .expect("purge cancelled"),
        1
    );
    assert!(!exists(ids[2]).await && exists(ids[0]).await);

    // Empty: every finished state; `prune` is the same.
    assert_eq!(backend.prune(later).await.expect("prune"), 1);
    assert!(!exists(ids[0]).await);
    assert!(exists(ids[3]).await, "pending is never purged");
}

#[tokio::test]
async fn an_audited_purge_is_recorded_with_its_count() {
    let queue = queue().await;
    let backend = backend(&queue);
    backend.enqueue(vec![task("a")]).await.expect("enqueue");
    let claimed = claim_named(&queue, "a", common::LEASE).await;
    finish(&queue, &claimed, failed("no")).await;
    sql(
        &queue,
        "UPDATE sitq_tasks SET finished_at = finished_at - ?1",
        vec![120 * MINUTE],
    )
    .await;
    let deleted = queue
        .audited("carol")
        .purge(Duration::from_secs(3600), &[TaskStatus::Failed])
        .await
        .expect("audited purge");
    assert_eq!(deleted, 1);
    let entry = &backend.audit_log(1, None).await.expect("log")[0];
    assert_eq!(
        (entry.actor.as_str(), entry.action.as_str()),
        ("carol", "purge")
    );
}
