//! The database's health and upkeep: location, `diagnose`, the start
//! time of failed attempts, and purges.

use std::time::Duration;

use chrono::Utc;
use sitq_core::{
    Backend, CheckLevel, ClaimRequest, Completion, FailureKind, NewTask, Outcome, Queue,
    TaskFailure, TaskId, TaskStatus,
};

use crate::support::{self, TestDb, expire_leases, request, task};
use crate::{failed, finish, sql};

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
    assert_eq!(diagnosis.schema_version, 9);
    assert_eq!(diagnosis.expected_schema_version, 9);
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
