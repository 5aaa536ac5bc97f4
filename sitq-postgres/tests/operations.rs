//! Operations on PostgreSQL: the worker registry and drain requests (with
//! their `NOTIFY`), task lists, statistics, the audit log, `diagnose`,
//! purges by state, and the start time of failed attempts.

mod support;

use std::time::Duration;

use chrono::{SubsecRound, Utc};
use sitq_core::inspect::{MAX_LIST, SUMMARY_ERROR_CHARS};
use sitq_core::{
    Backend, CheckLevel, ClaimRequest, ClaimedTask, Completion, Error, FailureKind, NewTask,
    Outcome, Queue, TaskFailure, TaskFilter, TaskId, TaskStatus, WorkerBeat,
};
use sitq_postgres::PostgresBackend;
use sqlx::{Connection, Executor};

use support::{TestDb, chain, expire_leases, request, server_now, task, within};

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

#[tokio::test]
async fn the_location_names_host_port_and_database_but_no_credentials() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    let location = backend.location();
    // The test URL is `postgres://user@host:port/database`.
    let (_, server) = db.url.split_once('@').expect("a user in the test URL");
    assert_eq!(location, format!("postgres://{server}"));
    let diagnosis = backend.diagnose(1 << 20).await.expect("diagnose");
    assert_eq!(diagnosis.location, location);
    backend.close().await;
    db.drop().await;
}

#[tokio::test]
async fn a_beat_registers_then_refreshes_a_worker_keeping_its_start() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    let before = server_now(&db).await;
    let control = backend.worker_beat(&beat("w-1")).await.expect("beat");
    assert!(!control.drain);
    let listed = backend.workers().await.expect("workers");
    assert_eq!(listed.len(), 1);
    let first = &listed[0];
    assert_eq!(
        (first.id.as_str(), first.host.as_str(), first.pid),
        ("w-1", "box-1", 4242)
    );
    assert_eq!(first.version, "0.1.0");
    assert_eq!(first.queues, ["mail", "reports"]);
    assert_eq!(first.tasks, ["a::send", "b::render"]);
    assert_eq!((first.concurrency, first.running), (8, 3));
    assert!(first.started_at >= before && first.last_seen == first.started_at);
    assert_eq!(
        first.expires_at - first.last_seen,
        chrono::Duration::seconds(60)
    );
    assert!(!first.draining);
    assert!(first.runs("mail", "a::send") && !first.runs("other", "a::send"));

    let changed = WorkerBeat {
        queues: Vec::new(),
        running: 7,
        concurrency: 16,
        ttl: Duration::from_secs(15),
        ..beat("w-1")
    };
    backend.worker_beat(&changed).await.expect("second beat");
    backend.worker_beat(&beat("w-2")).await.expect("other beat");
    let listed = backend.workers().await.expect("workers");
    let ids: Vec<&str> = listed.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(ids, ["w-1", "w-2"], "by id");
    let again = &listed[0];
    assert_eq!(
        again.started_at, first.started_at,
        "set at the first beat only"
    );
    assert!(again.last_seen > first.last_seen);
    assert_eq!(
        again.expires_at - again.last_seen,
        chrono::Duration::seconds(15)
    );
    assert!(again.queues.is_empty() && again.runs("any", "b::render"));
    assert_eq!((again.concurrency, again.running), (16, 7));
    backend.close().await;
    db.drop().await;
}

#[tokio::test]
async fn a_drain_is_stored_answered_by_every_later_beat_and_listed() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    backend.worker_beat(&beat("w-1")).await.expect("beat");
    backend.worker_beat(&beat("w-2")).await.expect("beat");
    let control = backend.signals().subscribe_control();

    assert!(!backend.drain_worker("nobody").await.expect("drain"));
    assert!(
        !control.has_changed().expect("signals alive"),
        "an unknown worker wakes nobody"
    );
    assert!(backend.drain_worker("w-1").await.expect("drain"));
    assert!(
        control.has_changed().expect("signals alive"),
        "a drain wakes this process's workers at once"
    );
    for _ in 0..2 {
        assert!(backend.worker_beat(&beat("w-1")).await.expect("beat").drain);
        assert!(!backend.worker_beat(&beat("w-2")).await.expect("beat").drain);
    }
    let draining: Vec<(String, bool)> = backend
        .workers()
        .await
        .expect("workers")
        .into_iter()
        .map(|w| (w.id, w.draining))
        .collect();
    assert_eq!(
        draining,
        [("w-1".to_owned(), true), ("w-2".to_owned(), false)]
    );

    // Through the queue, an unknown worker is an error naming it.
    let queue = Queue::connect(&db.url).await.expect("connect");
    let error = queue.drain_worker("nobody").await.expect_err("unknown");
    assert!(
        matches!(&error, Error::WorkerNotFound(id) if id == "nobody"),
        "{error:?}"
    );
    queue.drain_worker("w-2").await.expect("drain w-2");
    assert!(backend.worker_beat(&beat("w-2")).await.expect("beat").drain);
    queue.close().await;
    backend.close().await;
    db.drop().await;
}

#[tokio::test]
async fn a_drain_through_one_connection_wakes_another_process_at_once() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let admin = Queue::connect(&db.url).await.expect("connect the admin");
    let worker = Queue::connect(&db.url).await.expect("connect the worker");
    worker
        .backend()
        .worker_beat(&beat("w-1"))
        .await
        .expect("beat");
    let mut control = worker.backend().signals().subscribe_control();
    admin.drain_worker("w-1").await.expect("drain");
    within(
        "the drain's NOTIFY reaching the other connection's listener",
        control.changed(),
    )
    .await
    .expect("signals alive");
    assert!(
        worker
            .backend()
            .worker_beat(&beat("w-1"))
            .await
            .expect("beat")
            .drain
    );
    admin.close().await;
    worker.close().await;
    db.drop().await;
}

#[tokio::test]
async fn an_expired_worker_is_not_listed_nor_drained_and_the_next_beat_deletes_it() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    backend.worker_beat(&beat("gone")).await.expect("beat");
    backend.worker_beat(&beat("live")).await.expect("beat");
    sql(
        &db,
        "UPDATE sitq_workers SET expires_at = now() - interval '1 second' WHERE id = 'gone'",
    )
    .await;
    let listed: Vec<String> = backend
        .workers()
        .await
        .expect("workers")
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(listed, ["live"]);
    assert!(!backend.drain_worker("gone").await.expect("drain"));

    backend.worker_beat(&beat("live")).await.expect("beat");
    let mut connection = db.connection().await;
    let rows: Vec<String> = sqlx::query_scalar("SELECT id FROM sitq_workers ORDER BY id")
        .fetch_all(&mut connection)
        .await
        .expect("read the rows");
    assert_eq!(
        rows,
        ["live"],
        "another worker's beat deleted the expired row"
    );

    // A worker that comes back after expiring registers afresh.
    backend.worker_beat(&beat("gone")).await.expect("beat");
    assert_eq!(backend.workers().await.expect("workers").len(), 2);
    connection.close().await.ok();
    backend.close().await;
    db.drop().await;
}

#[tokio::test]
async fn removing_a_worker_deletes_its_row_and_an_unknown_id_is_a_no_op() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    backend.worker_beat(&beat("w-1")).await.expect("beat");
    backend
        .remove_worker("nobody")
        .await
        .expect("remove unknown");
    assert_eq!(backend.workers().await.expect("workers").len(), 1);
    backend.remove_worker("w-1").await.expect("remove");
    assert!(backend.workers().await.expect("workers").is_empty());
    assert!(!backend.drain_worker("w-1").await.expect("drain"));
    backend.close().await;
    db.drop().await;
}

#[tokio::test]
async fn a_corrupt_worker_row_is_an_error_naming_the_worker() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    backend.worker_beat(&beat("w-1")).await.expect("beat");
    sql(&db, "UPDATE sitq_workers SET tasks = 'not json'").await;
    let error = backend.workers().await.expect_err("corrupt tasks");
    let text = chain(&error);
    assert!(
        text.contains("worker w-1") && text.contains("tasks"),
        "{text}"
    );
    sql(&db, "UPDATE sitq_workers SET tasks = '[]', pid = -1").await;
    let error = backend.workers().await.expect_err("corrupt pid");
    assert!(chain(&error).contains("pid -1"), "{}", chain(&error));
    backend.close().await;
    db.drop().await;
}

#[tokio::test]
async fn a_worker_id_with_a_nul_character_beats_and_drains() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    let odd = beat("w\0odd");
    backend.worker_beat(&odd).await.expect("beat");
    assert!(backend.drain_worker("w\0odd").await.expect("drain"));
    assert!(backend.worker_beat(&odd).await.expect("beat").drain);
    backend.remove_worker("w\0odd").await.expect("remove");
    assert!(backend.workers().await.expect("workers").is_empty());
    backend.close().await;
    db.drop().await;
}

#[tokio::test]
async fn task_lists_filter_by_each_field_page_by_id_and_cut_errors() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    let hour = chrono::Duration::hours(1);
    let ids = backend
        .enqueue(vec![
            task_in("mail", support::TASK_NAME, hour),
            task_in("mail", "other::name", hour),
            task_in("reports", support::TASK_NAME, hour),
            task_in("mail", support::TASK_NAME, hour),
        ])
        .await
        .expect("enqueue");
    let claimed = claim_from(&backend, "reports", 1).await;
    let long = "é".repeat(SUMMARY_ERROR_CHARS + 100);
    finish(&backend, &claimed[0], failed(&long)).await;
    sql(
        &db,
        &format!(
            "UPDATE sitq_tasks SET created_at = now() - interval '1 day' WHERE id = {}",
            ids[0].0
        ),
    )
    .await;

    let list = |filter: TaskFilter| {
        let backend = &backend;
        async move {
            backend
                .tasks(&TaskFilter {
                    limit: filter.limit.max(1),
                    ..filter
                })
                .await
                .expect("list tasks")
                .into_iter()
                .map(|summary| summary.id)
                .collect::<Vec<TaskId>>()
        }
    };
    let all = TaskFilter {
        limit: 100,
        ..TaskFilter::default()
    };
    let newest_first: Vec<TaskId> = ids.iter().rev().copied().collect();
    assert_eq!(list(all.clone()).await, newest_first);
    assert_eq!(
        list(TaskFilter {
            statuses: vec![TaskStatus::Failed],
            ..all.clone()
        })
        .await,
        [ids[2]]
    );
    assert_eq!(
        list(TaskFilter {
            statuses: vec![TaskStatus::Failed, TaskStatus::Pending],
            queue: Some("mail".into()),
            ..all.clone()
        })
        .await,
        [ids[3], ids[1], ids[0]]
    );
    assert_eq!(
        list(TaskFilter {
            queue: Some("mail".into()),
            name: Some(support::TASK_NAME.into()),
            ..all.clone()
        })
        .await,
        [ids[3], ids[0]]
    );
    assert_eq!(
        list(TaskFilter {
            since: Some(Utc::now() - hour),
            ..all.clone()
        })
        .await,
        [ids[3], ids[2], ids[1]],
        "since leaves out the task created a day ago"
    );
    // Pages of two, each after the last id of the one before.
    let first = list(TaskFilter {
        limit: 2,
        ..all.clone()
    })
    .await;
    assert_eq!(first, [ids[3], ids[2]]);
    let second = list(TaskFilter {
        limit: 2,
        before: first.last().copied(),
        ..all.clone()
    })
    .await;
    assert_eq!(second, [ids[1], ids[0]]);
    assert!(
        list(TaskFilter {
            before: Some(ids[0]),
            ..all.clone()
        })
        .await
        .is_empty()
    );
    assert!(
        list(TaskFilter {
            queue: Some("q\0nul".into()),
            ..all.clone()
        })
        .await
        .is_empty(),
        "a NUL in a filter matches nothing rather than failing"
    );

    let summaries = backend.tasks(&all).await.expect("list");
    let failed = summaries
        .iter()
        .find(|summary| summary.id == ids[2])
        .expect("the failed task");
    assert_eq!(failed.status, TaskStatus::Failed);
    assert_eq!(failed.error_kind, Some(FailureKind::Error));
    assert_eq!(failed.worker_id.as_deref(), Some("w-1"));
    assert!(failed.started_at.is_some() && failed.finished_at.is_some());
    assert_eq!((failed.attempts, failed.max_attempts), (1, 3));
    let error = failed.error.as_deref().expect("an error");
    assert_eq!(
        error.chars().count(),
        SUMMARY_ERROR_CHARS,
        "cut in characters"
    );
    assert!(long.starts_with(error));
    let pending = summaries
        .iter()
        .find(|summary| summary.id == ids[1])
        .expect("a pending task");
    assert_eq!(
        (pending.name.as_str(), pending.queue.as_str()),
        ("other::name", "mail")
    );
    assert_eq!((pending.error.as_deref(), pending.started_at), (None, None));

    // The backend caps a limit beyond MAX_LIST; the queue refuses it.
    let capped = TaskFilter {
        limit: MAX_LIST + 1,
        ..TaskFilter::default()
    };
    assert_eq!(backend.tasks(&capped).await.expect("capped").len(), 4);
    let queue = Queue::connect(&db.url).await.expect("connect");
    let refused = queue.tasks(&capped).await.expect_err("over MAX_LIST");
    assert!(matches!(refused, Error::Config(_)), "{refused:?}");
    queue.close().await;
    backend.close().await;
    db.drop().await;
}

#[tokio::test]
async fn stats_count_states_recent_finishes_and_failed_attempts_at_one_instant() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    let name = support::TASK_NAME;
    backend
        .enqueue(vec![
            task_in("due", name, chrono::Duration::seconds(30)),
            task_in("due", name, chrono::Duration::seconds(10)),
            task_in("due", name, chrono::Duration::hours(-1)),
            task_in("later", name, chrono::Duration::hours(-1)),
            task_in("done", name, chrono::Duration::seconds(1)),
            task_in("done", name, chrono::Duration::seconds(1)),
            task_in("done", name, chrono::Duration::seconds(1)),
            task_in("done", name, chrono::Duration::seconds(1)),
            task_in("busy", name, chrono::Duration::seconds(1)),
        ])
        .await
        .expect("enqueue");
    let done = claim_from(&backend, "done", 4).await;
    for claimed in &done[..3] {
        finish(&backend, claimed, Outcome::Succeeded(Vec::new())).await;
    }
    let retry = Outcome::Retry {
        failure: TaskFailure::new(FailureKind::Error, "again"),
        delay: Duration::from_secs(3600),
    };
    finish(&backend, &done[3], retry).await;
    claim_from(&backend, "busy", 1).await;
    // One success half an hour ago, one two hours ago; one failed attempt
    // half an hour ago is added by hand.
    sql(
        &db,
        &format!(
            "UPDATE sitq_tasks SET finished_at = now() - interval '30 minutes' WHERE id = {};
             UPDATE sitq_tasks SET finished_at = now() - interval '2 hours' WHERE id = {};
             INSERT INTO sitq_failures (task_id, attempt, kind, message, failed_at)
             VALUES ({}, 1, 'error', 'old', now() - interval '30 minutes'),
                    ({}, 1, 'error', 'older', now() - interval '2 hours')",
            done[1].id.0, done[2].id.0, done[3].id.0, done[3].id.0
        ),
    )
    .await;

    let before = server_now(&db).await;
    let stats = backend.stats().await.expect("stats");
    assert!(stats.now >= before);
    let count = |queue: &str, status: TaskStatus| {
        stats
            .counts
            .iter()
            .find(|c| c.queue == queue && c.status == status)
            .unwrap_or_else(|| panic!("no {queue}/{status} count in {:?}", stats.counts))
    };
    let due = count("due", TaskStatus::Pending);
    assert_eq!((due.name.as_str(), due.count), (name, 3));
    let oldest = Utc::now().trunc_subsecs(0) - chrono::Duration::seconds(30);
    let oldest_due = due.oldest_due.expect("due tasks wait");
    assert!(
        (oldest_due - oldest).num_seconds().abs() <= 1,
        "the earliest run_at of the due tasks ({oldest_due}), not of the later one"
    );
    assert_eq!(count("later", TaskStatus::Pending).oldest_due, None);
    assert_eq!(count("busy", TaskStatus::Running).count, 1);
    assert_eq!(count("busy", TaskStatus::Running).oldest_due, None);
    assert_eq!(count("done", TaskStatus::Succeeded).count, 3);
    assert_eq!(
        count("done", TaskStatus::Pending).count,
        1,
        "the retried one"
    );
    assert_eq!(stats.counts.len(), 5, "{:?}", stats.counts);

    assert_eq!(stats.finished.len(), 1, "{:?}", stats.finished);
    let finished = &stats.finished[0];
    assert_eq!(
        (finished.queue.as_str(), finished.status),
        ("done", TaskStatus::Succeeded)
    );
    assert_eq!((finished.last_minute, finished.last_hour), (1, 2));
    assert_eq!(stats.failed_attempts_last_minute, 1);
    assert_eq!(stats.failed_attempts_last_hour, 2);
    backend.close().await;
    db.drop().await;
}

#[tokio::test]
async fn audit_entries_list_newest_first_page_by_id_and_record_only_what_succeeded() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let queue = Queue::connect(&db.url).await.expect("connect");
    let before = server_now(&db).await;
    let audited = queue.audited("alice");
    audited.pause("mail").await.expect("pause");
    audited.resume("mail").await.expect("resume");
    let missing = audited
        .retry(TaskId(424_242))
        .await
        .expect_err("unknown task");
    assert!(matches!(missing, Error::NotFound(_)), "{missing:?}");
    let refused = audited
        .purge(Duration::ZERO, &[TaskStatus::Pending])
        .await
        .expect_err("pending tasks are not purged");
    assert!(matches!(refused, Error::Config(_)), "{refused:?}");
    queue
        .backend()
        .record_audit(&sitq_core::NewAuditEntry {
            actor: "bob\0".into(),
            action: "note".into(),
            target: "queue mail".into(),
            detail: Some("checked".into()),
        })
        .await
        .expect("record");

    let log = queue.audit_log(10, None).await.expect("audit log");
    let actions: Vec<(&str, &str, &str)> = log
        .iter()
        .map(|e| (e.actor.as_str(), e.action.as_str(), e.target.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("bob\\0", "note", "queue mail"),
            ("alice", "resume", "queue mail"),
            ("alice", "pause", "queue mail"),
        ],
        "newest first; failed actions left nothing"
    );
    assert!(log.windows(2).all(|pair| pair[0].id > pair[1].id));
    assert!(log.iter().all(|entry| entry.at >= before));
    assert_eq!(log[0].detail.as_deref(), Some("checked"));
    let page = queue.audit_log(1, Some(log[0].id)).await.expect("page");
    assert_eq!(page, log[1..2]);
    let rest = queue.audit_log(10, Some(log[1].id)).await.expect("rest");
    assert_eq!(rest, log[2..]);
    assert!(
        queue
            .audit_log(10, Some(log[2].id))
            .await
            .expect("none")
            .is_empty()
    );
    assert!(queue.audit_log(0, None).await.expect("zero").is_empty());
    queue.close().await;
    db.drop().await;
}

#[tokio::test]
async fn diagnose_reports_the_schema_expired_leases_oversized_rows_and_server_checks() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    let big = NewTask {
        payload: vec![7; 5_000],
        ..task("big")
    };
    let ids = backend
        .enqueue(vec![task("small"), big, task("result"), task("held")])
        .await
        .expect("enqueue");
    let claimed = support::claim_all(&backend, "w-1").await;
    let by_id = |id: TaskId| claimed.iter().find(|c| c.id == id).expect("claimed");
    finish(&backend, by_id(ids[0]), Outcome::Succeeded(vec![1; 10])).await;
    finish(&backend, by_id(ids[1]), Outcome::Succeeded(Vec::new())).await;
    finish(&backend, by_id(ids[2]), Outcome::Succeeded(vec![1; 7_000])).await;
    expire_leases(&db).await;

    let diagnosis = backend.diagnose(1_000).await.expect("diagnose");
    assert_eq!(diagnosis.schema_version, 8);
    assert_eq!(diagnosis.expected_schema_version, 8);
    assert_eq!(diagnosis.expired_leases, 1, "the held task");
    let oversized: Vec<(TaskId, u64, u64)> = diagnosis
        .oversized
        .iter()
        .map(|row| (row.id, row.payload_bytes, row.result_bytes))
        .collect();
    assert_eq!(
        oversized,
        [(ids[2], 6, 7_000), (ids[1], 5_000, 0)],
        "largest first"
    );
    assert_eq!(diagnosis.oversized[0].name, support::TASK_NAME);
    let names: Vec<&str> = diagnosis.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "server version",
            "database size",
            "synchronous_commit",
            "connections"
        ]
    );
    let version = &diagnosis.checks[0];
    assert!(version.detail.starts_with("PostgreSQL "), "{version:?}");
    assert!(
        diagnosis.checks[..2]
            .iter()
            .all(|c| c.level == CheckLevel::Ok)
    );
    assert!(diagnosis.checks[1].detail.contains("bytes"));

    assert!(
        backend
            .diagnose(100_000)
            .await
            .expect("diagnose")
            .oversized
            .is_empty()
    );
    backend.recover_expired().await.expect("recover");
    assert_eq!(
        backend
            .diagnose(1_000)
            .await
            .expect("diagnose")
            .expired_leases,
        0
    );
    backend.close().await;
    db.drop().await;
}

#[tokio::test]
async fn failure_rows_carry_when_their_attempt_started() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    let ids = backend
        .enqueue(vec![task("retried"), task("lost"), task("reserved")])
        .await
        .expect("enqueue");
    let claimed = backend
        .claim(ClaimRequest {
            start: 2,
            ..request("w-1", 3)
        })
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 3);
    let started = backend
        .get(ids[0])
        .await
        .expect("get")
        .and_then(|record| record.started_at)
        .expect("started");
    let retry = Outcome::Retry {
        failure: TaskFailure::new(FailureKind::Panic, "first"),
        delay: Duration::ZERO,
    };
    finish(&backend, &claimed[0], retry).await;
    let lost_started = backend
        .get(ids[1])
        .await
        .expect("get")
        .and_then(|record| record.started_at)
        .expect("started");
    expire_leases(&db).await;
    assert_eq!(backend.recover_expired().await.expect("recover"), 2);

    let history = backend.failures(ids[0]).await.expect("failures");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].started_at, Some(started));
    assert!(history[0].failed_at >= started);
    let lost = backend.failures(ids[1]).await.expect("failures");
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0].kind, FailureKind::LeaseExpired);
    assert_eq!(lost[0].started_at, Some(lost_started));
    assert!(
        backend.failures(ids[2]).await.expect("failures").is_empty(),
        "a reserved task that never started failed no attempt"
    );

    // The second attempt fails for good; the history spans both, and the
    // queue's attempt list reads the start times.
    let again = support::claim_all(&backend, "w-2").await;
    let second = again
        .iter()
        .find(|c| c.id == ids[0])
        .expect("claimed again");
    finish(&backend, second, failed("second")).await;
    let queue = Queue::connect(&db.url).await.expect("connect");
    let attempts = queue.attempts(ids[0]).await.expect("attempts");
    assert_eq!(attempts.len(), 2);
    assert!(
        attempts
            .iter()
            .all(|a| a.started_at.is_some() && a.duration().is_some())
    );
    assert_eq!(attempts[1].worker_id.as_deref(), Some("w-2"));
    queue.close().await;
    backend.close().await;
    db.drop().await;
}

#[tokio::test]
async fn purge_deletes_only_the_states_asked_and_keeps_what_a_dependent_needs() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    let ids = backend
        .enqueue(vec![task("ok"), task("bad"), task("off"), task("needed")])
        .await
        .expect("enqueue");
    let cancel = sitq_core::CancelRequest::new();
    backend.cancel(ids[2], &cancel).await.expect("cancel");
    let claimed = support::claim_all(&backend, "w-1").await;
    let by_id = |id: TaskId| claimed.iter().find(|c| c.id == id).expect("claimed");
    finish(&backend, by_id(ids[0]), Outcome::Succeeded(Vec::new())).await;
    finish(&backend, by_id(ids[1]), failed("bad")).await;
    finish(&backend, by_id(ids[3]), Outcome::Succeeded(Vec::new())).await;
    // A dependent, not yet run, that waits for the result of `needed`.
    let dependent = backend
        .enqueue(vec![NewTask {
            deps: sitq_core::Dependencies {
                inputs: vec![sitq_core::DepRef::Task(ids[3])],
                input_mode: sitq_core::InputMode::Many,
                ..Default::default()
            },
            run_at: Utc::now() + chrono::Duration::hours(1),
            ..task("dependent")
        }])
        .await
        .expect("enqueue the dependent")[0];
    let later = Utc::now() + chrono::Duration::seconds(5);
    let exists = |id: TaskId| {
        let backend = &backend;
        async move { backend.status(id).await.expect("status").is_some() }
    };

    assert_eq!(
        backend
            .purge(later, &[TaskStatus::Pending])
            .await
            .expect("purge"),
        0,
        "unfinished states are never deleted"
    );
    assert_eq!(
        backend
            .purge(Utc::now() - chrono::Duration::hours(1), &[])
            .await
            .expect("purge"),
        0,
        "nothing finished that long ago"
    );
    assert_eq!(
        backend
            .purge(later, &[TaskStatus::Failed])
            .await
            .expect("purge"),
        1
    );
    assert!(!exists(ids[1]).await);
    assert!(backend.failures(ids[1]).await.expect("failures").is_empty());
    assert!(exists(ids[0]).await && exists(ids[2]).await && exists(ids[3]).await);
    assert_eq!(
        backend
            .purge(later, &[TaskStatus::Cancelled, TaskStatus::Succeeded])
            .await
            .expect("purge"),
        2,
        "ok and off; needed stays while its dependent has not run"
    );
    assert!(exists(ids[3]).await && exists(dependent).await);
    backend
        .cancel(dependent, &cancel)
        .await
        .expect("cancel the dependent");
    assert_eq!(
        backend
            .purge(later, &[TaskStatus::Succeeded])
            .await
            .expect("purge"),
        1
    );
    assert!(!exists(ids[3]).await && exists(dependent).await);
    assert_eq!(
        backend.prune(later).await.expect("prune"),
        1,
        "the dependent"
    );
    backend.close().await;
    db.drop().await;
}

/// A purge through the queue is audited with what it deleted.
#[tokio::test]
async fn an_audited_purge_records_its_cut_off_and_count() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let queue = Queue::connect(&db.url).await.expect("connect");
    let backend = queue.backend();
    backend
        .enqueue(vec![task("a"), task("b")])
        .await
        .expect("enqueue");
    let claimed = backend.claim(request("w-1", 2)).await.expect("claim");
    for claimed in &claimed {
        backend
            .complete(vec![Completion {
                claim: claimed.claim_ref(),
                outcome: failed("x"),
            }])
            .await
            .expect("complete");
    }
    // Finished in the past, so a purge of what is older than a minute takes them.
    sql(
        &db,
        "UPDATE sitq_tasks SET finished_at = now() - interval '1 hour'",
    )
    .await;
    let deleted = queue
        .audited("ops")
        .purge(Duration::from_secs(60), &[TaskStatus::Failed])
        .await
        .expect("purge");
    assert_eq!(deleted, 2);
    let log = queue.audit_log(1, None).await.expect("log");
    assert_eq!(
        (log[0].action.as_str(), log[0].target.as_str()),
        ("purge", "failed tasks")
    );
    let detail = log[0].detail.as_deref().unwrap_or_default();
    assert!(detail.ends_with("2 deleted"), "{detail}");
    queue.close().await;
    db.drop().await;
}
