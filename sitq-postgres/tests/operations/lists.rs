//! Task lists, statistics and the audit log.

use std::time::Duration;

use chrono::{SubsecRound, Utc};
use sitq_core::inspect::{MAX_LIST, SUMMARY_ERROR_CHARS};
use sitq_core::{
    Backend, Error, FailureKind, Outcome, Queue, TaskFailure, TaskFilter, TaskId, TaskStatus,
};

use crate::support::{self, TestDb, server_now};
use crate::{claim_from, failed, finish, sql, task_in};

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
