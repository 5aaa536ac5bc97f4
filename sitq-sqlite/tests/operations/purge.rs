//! Purge by status.

use super::*;

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
