//! Leases: heartbeats extend them, and expired ones return the task.

mod support;

use std::time::Duration;

use sitq_core::{Backend, ClaimRequest, TaskStatus};
use sqlx::Connection;
use support::{TestDb, expire_leases, request, task};

#[tokio::test]
async fn heartbeats_keep_claims_and_report_lost_ones() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    backend
        .enqueue(vec![task("a"), task("b")])
        .await
        .expect("enqueue");
    let claimed = backend.claim(request("w", 2)).await.expect("claim");
    let claims: Vec<_> = claimed.iter().map(|c| c.claim_ref()).collect();

    let lost = backend
        .heartbeat("w", &claims, Duration::from_secs(600))
        .await
        .expect("heartbeat");
    assert!(lost.is_empty(), "both claims held: {lost:?}");

    let lost = backend
        .heartbeat("someone-else", &claims, Duration::from_secs(600))
        .await
        .expect("heartbeat");
    assert_eq!(lost, claims, "another worker holds no claim");

    // The first task's lease runs out and it is claimed again.
    let mut connection = db.connection().await;
    sqlx::query("UPDATE sitq_tasks SET lease_until = now() - interval '1 second' WHERE id = $1")
        .bind(claims[0].id.0)
        .execute(&mut connection)
        .await
        .expect("expire one lease");
    connection.close().await.ok();
    assert_eq!(backend.recover_expired().await.expect("recover"), 1);
    let lost = backend
        .heartbeat("w", &claims, Duration::from_secs(600))
        .await
        .expect("heartbeat");
    assert_eq!(lost, [claims[0]], "the recovered claim is lost");
    let again = backend.claim(request("w", 1)).await.expect("claim");
    assert_eq!(again[0].claim_ref().attempt, 2);
    let lost = backend
        .heartbeat("w", &claims, Duration::from_secs(600))
        .await
        .expect("heartbeat");
    assert_eq!(lost, [claims[0]], "attempt 1 stays lost under attempt 2");

    backend.close().await;
    db.drop().await;
}

#[tokio::test]
async fn a_heartbeat_moves_the_lease_forward() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    backend.enqueue(vec![task("t")]).await.expect("enqueue");
    // A lease already over when granted; the heartbeat renews it.
    let claimed = backend
        .claim(ClaimRequest {
            lease: Duration::ZERO,
            ..request("w", 1)
        })
        .await
        .expect("claim");
    let lost = backend
        .heartbeat("w", &[claimed[0].claim_ref()], Duration::from_secs(600))
        .await
        .expect("heartbeat");
    assert!(lost.is_empty());
    assert_eq!(
        backend.recover_expired().await.expect("recover"),
        0,
        "the renewed lease holds"
    );
    backend.close().await;
    db.drop().await;
}

#[tokio::test]
async fn expired_leases_retry_or_fail_with_a_lease_expired_error() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    let mut last_chance = task("last-chance");
    last_chance.max_attempts = 1;
    let ids = backend
        .enqueue(vec![task("again"), last_chance])
        .await
        .expect("enqueue");
    let claimed = backend
        .claim(request("vanished-7", 2))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2);
    assert_eq!(
        backend.recover_expired().await.expect("recover"),
        0,
        "live leases stay"
    );

    expire_leases(&db).await;
    assert_eq!(backend.recover_expired().await.expect("recover"), 2);
    assert_eq!(
        backend.status(ids[0]).await.expect("status"),
        Some(TaskStatus::Pending),
        "attempts left: back to pending"
    );
    assert_eq!(
        backend.status(ids[1]).await.expect("status"),
        Some(TaskStatus::Failed),
        "no attempts left: failed"
    );

    let mut connection = db.connection().await;
    let rows: Vec<(i64, String, String, Option<chrono::DateTime<chrono::Utc>>)> =
        sqlx::query_as("SELECT id, error_kind, error, finished_at FROM sitq_tasks ORDER BY id")
            .fetch_all(&mut connection)
            .await
            .expect("read errors");
    connection.close().await.ok();
    for (_, kind, message, _) in &rows {
        assert_eq!(kind, sitq_core::FailureKind::LeaseExpired.as_str());
        assert!(
            message.contains("vanished-7") && message.contains("attempt 1 of"),
            "names the worker and attempt: {message}"
        );
    }
    assert!(
        rows[0].3.is_none() && rows[1].3.is_some(),
        "only the failed one finished"
    );

    let again = backend.claim(request("w", 10)).await.expect("claim");
    assert_eq!(again.len(), 1, "the recovered task is ready at once");
    assert_eq!((again[0].id, again[0].attempt), (ids[0], 2));
    backend.close().await;
    db.drop().await;
}
