//! Many callers at once share group commits; one bad command fails alone.

mod common;

use std::collections::HashSet;

use common::{TempDb, task};
use sitq_core::{Backend, NewTask, TaskStatus};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_enqueue_among_many_fails_alone() {
    let db = TempDb::new("group");
    let backend = std::sync::Arc::new(db.connect().await);
    let mut calls = Vec::new();
    for i in 0..64 {
        let backend = backend.clone();
        calls.push(tokio::spawn(async move {
            let tasks = if i == 20 {
                // 300 rows take two statements; the bad row is in the second,
                // so only a savepoint keeps the first from being stored.
                let mut tasks: Vec<NewTask> = (0..300).map(|_| task("ok")).collect();
                tasks[299].max_attempts = 0; // violates the schema's CHECK
                tasks
            } else {
                vec![task("ok"), task("ok")]
            };
            (i, backend.enqueue(tasks).await)
        }));
    }
    let mut ids = HashSet::new();
    for call in calls {
        let (i, result) = call.await.expect("task");
        match result {
            Ok(batch) => {
                assert_ne!(i, 20, "the bad batch must fail");
                assert_eq!(batch.len(), 2);
                assert!(batch[0] < batch[1], "ids in order");
                ids.extend(batch);
            }
            Err(err) => {
                assert_eq!(i, 20, "call {i} failed: {err}");
                assert!(err.to_string().contains("enqueueing"), "{err}");
            }
        }
    }
    assert_eq!(ids.len(), 126);
    for id in &ids {
        assert_eq!(
            backend.status(*id).await.expect("status"),
            Some(TaskStatus::Pending)
        );
    }
    // Nothing of the bad batch was stored: the claimable tasks are exactly the good ones.
    let claimed = common::claim(&backend, "w", 1_000).await;
    let claimed: HashSet<_> = claimed.into_iter().map(|t| t.id).collect();
    assert_eq!(claimed, ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enqueues_get_distinct_ordered_ids() {
    let db = TempDb::new("ids");
    let backend = std::sync::Arc::new(db.connect().await);
    let calls: Vec<_> = (0..100)
        .map(|_| {
            let backend = backend.clone();
            tokio::spawn(
                async move { backend.enqueue(vec![task("a"), task("b"), task("c")]).await },
            )
        })
        .collect();
    let mut all = HashSet::new();
    for call in calls {
        let ids = call.await.expect("task").expect("enqueue");
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        all.extend(ids);
    }
    assert_eq!(all.len(), 300);
}

#[tokio::test]
async fn enqueueing_many_rows_spans_several_statements() {
    let backend = common::memory().await;
    let ids = backend
        .enqueue((0..1_000).map(|_| task("t")).collect())
        .await
        .expect("enqueue");
    assert_eq!(ids.len(), 1_000);
    assert!(
        ids.windows(2).all(|w| w[1].0 == w[0].0 + 1),
        "consecutive ids in order"
    );
}
