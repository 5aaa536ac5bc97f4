//! Wake-ups across processes: a NOTIFY from one backend reaches the waiters
//! of another, and keeps doing so after the listening connection is killed.

mod support;

use std::time::Duration;

use sitq_core::{Backend, ClaimRequest, Completion, FailureKind, Outcome, TaskFailure};
use sitq_postgres::PostgresBackend;
use sqlx::{Connection, PgConnection};
use support::{TestDb, expire_leases, request, task, within};

async fn succeed_all(backend: &PostgresBackend, limit: usize) {
    let claimed = backend.claim(request("w", limit)).await.expect("claim");
    let completions = claimed
        .iter()
        .map(|claimed| Completion {
            claim: claimed.claim_ref(),
            outcome: Outcome::Succeeded(Vec::new()),
        })
        .collect();
    let applied = backend.complete(completions).await.expect("complete");
    assert!(applied.iter().all(|applied| *applied));
}

#[tokio::test]
async fn an_enqueue_wakes_workers_of_another_backend() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let producer = db.backend().await;
    let consumer = db.backend().await;
    let mut work = consumer.signals().subscribe_work();
    work.borrow_and_update();
    producer.enqueue(vec![task("t")]).await.expect("enqueue");
    within("the work notification", work.changed())
        .await
        .expect("the consumer's signals are alive");
    producer.close().await;
    consumer.close().await;
    db.drop().await;
}

#[tokio::test]
async fn finishing_or_cancelling_wakes_waiters_of_another_backend() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let worker = db.backend().await;
    let client = db.backend().await;

    let done = worker.enqueue(vec![task("done")]).await.expect("enqueue")[0];
    let finished = client.signals().watch_finished(done);
    succeed_all(&worker, 1).await;
    within("the finished notification", finished.notified()).await;

    let cancelled = worker
        .enqueue(vec![task("cancelled")])
        .await
        .expect("enqueue")[0];
    let finished = client.signals().watch_finished(cancelled);
    assert_eq!(
        worker
            .cancel(cancelled, &sitq_core::CancelRequest::new())
            .await
            .expect("cancel"),
        sitq_core::CancelOutcome::Cancelled
    );
    within("the cancel notification", finished.notified()).await;

    worker.close().await;
    client.close().await;
    db.drop().await;
}

#[tokio::test]
async fn a_large_batch_is_announced_in_several_notifications() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let worker = db.backend().await;
    let client = db.backend().await;
    // 2,000 ids of 4+ digits are over PostgreSQL's 8,000-byte payload limit.
    let mut tasks = vec![task("warm-up"); 1_000];
    tasks.extend((0..2_000).map(|i| task(&format!("t{i}"))));
    let ids = worker.enqueue(tasks).await.expect("enqueue");
    succeed_all(&worker, 1_000).await;
    let batch = &ids[1_000..];
    let first = client.signals().watch_finished(batch[0]);
    let last = client.signals().watch_finished(batch[batch.len() - 1]);
    succeed_all(&worker, 2_000).await;
    within("the first id's notification", first.notified()).await;
    within("the last id's notification", last.notified()).await;
    worker.close().await;
    client.close().await;
    db.drop().await;
}

#[tokio::test]
async fn every_way_back_to_pending_wakes_workers_of_another_backend() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let worker = db.backend().await;
    let client = db.backend().await;
    let mut work = client.signals().subscribe_work();
    work.borrow_and_update();
    worker
        .enqueue(vec![task("a"), task("b"), task("c")])
        .await
        .expect("enqueue");
    within("the enqueue's notification", work.changed())
        .await
        .expect("signals alive");
    let claimed = worker
        .claim(ClaimRequest {
            start: 1,
            ..request("w", 3)
        })
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 3);

    // A retry.
    work.borrow_and_update();
    let retry = Completion {
        claim: claimed[0].claim_ref(),
        outcome: Outcome::Retry {
            failure: TaskFailure::new(FailureKind::Error, "again"),
            delay: Duration::ZERO,
        },
    };
    assert_eq!(
        worker.complete(vec![retry]).await.expect("complete"),
        [true]
    );
    within("the retry's notification", work.changed())
        .await
        .expect("signals alive");

    // A released reservation.
    work.borrow_and_update();
    let released = worker
        .release(vec![claimed[1].claim_ref()])
        .await
        .expect("release");
    assert_eq!(released, 1);
    within("the release's notification", work.changed())
        .await
        .expect("signals alive");

    // A reservation whose lease ran out.
    work.borrow_and_update();
    expire_leases(&db).await;
    assert_eq!(worker.recover_expired().await.expect("recover"), 1);
    within("the recovery's notification", work.changed())
        .await
        .expect("signals alive");

    worker.close().await;
    client.close().await;
    db.drop().await;
}

/// Listening connections of sitq in this test's database.
async fn listeners(connection: &mut PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE application_name = 'sitq-listener' AND datname = current_database()",
    )
    .fetch_one(connection)
    .await
    .expect("count listeners")
}

/// Waits (bounded) until `count` listeners are connected.
async fn until_listeners(connection: &mut PgConnection, count: i64, what: &str) {
    within(what, async {
        while listeners(connection).await != count {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn notifications_resume_after_the_listener_is_killed() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let worker = db.backend().await;
    let client = db.backend().await;
    let mut admin = db.connection().await;
    let mut work = client.signals().subscribe_work();
    work.borrow_and_update();

    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE application_name = 'sitq-listener' AND datname = current_database()",
    )
    .fetch_all(&mut admin)
    .await
    .expect("terminate the listeners");
    assert_eq!(killed, [true, true], "both backends' listeners were killed");

    // After reconnecting, the listener signals work: what was enqueued
    // meanwhile went unheard.
    within("the work signal after reconnecting", work.changed())
        .await
        .expect("signals alive");

    // Notifications flow again: each round waits briefly, since one sent
    // before the new LISTEN took effect is lost by design.
    within("a finished notification after the kill", async {
        loop {
            let id = worker.enqueue(vec![task("t")]).await.expect("enqueue")[0];
            let finished = client.signals().watch_finished(id);
            succeed_all(&worker, 1).await;
            if tokio::time::timeout(Duration::from_millis(500), finished.notified())
                .await
                .is_ok()
            {
                return;
            }
        }
    })
    .await;

    worker.close().await;
    client.close().await;
    admin.close().await.ok();
    db.drop().await;
}

#[tokio::test]
async fn close_and_drop_stop_the_listener() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let mut admin = db.connection().await;
    let closed = db.backend().await;
    let dropped = db.backend().await;
    assert_eq!(
        listeners(&mut admin).await,
        2,
        "connect returns once listening"
    );

    closed.close().await;
    until_listeners(&mut admin, 1, "the closed backend's listener going away").await;
    drop(dropped);
    until_listeners(&mut admin, 0, "the dropped backend's listener going away").await;

    admin.close().await.ok();
    db.drop().await;
}
