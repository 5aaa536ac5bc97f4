//! Task lists: filters, keyset pages, cut errors.

use super::*;

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
