//! Claims come in order: highest priority, then earliest run_at, then enqueue order.

mod support;

use chrono::{Duration, Utc};
use sitq_core::Backend;
use support::{TestDb, claim_all, label, request, task};

#[tokio::test]
async fn priority_then_run_at_then_id() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    let base = Utc::now() - Duration::minutes(10);
    // (label, priority, minutes after base)
    let spec = [
        ("low-early", 0, 0),
        ("high-late", 5, 3),
        ("mid-late", 1, 2),
        ("high-early", 5, 1),
        ("mid-early-a", 1, 1),
        ("mid-early-b", 1, 1),
        ("negative", -3, 0),
    ];
    let tasks = spec
        .iter()
        .map(|(label, priority, minutes)| {
            let mut task = task(label);
            task.priority = *priority;
            task.run_at = base + Duration::minutes(*minutes);
            task
        })
        .collect();
    backend.enqueue(tasks).await.expect("enqueue");

    // One at a time: each claim must pick the next in order.
    let one_by_one: Vec<String> = claim_all(&backend, "w")
        .await
        .into_iter()
        .map(|claimed| label(&claimed))
        .collect();
    let expected = [
        "high-early",
        "high-late",
        "mid-early-a",
        "mid-early-b",
        "mid-late",
        "low-early",
        "negative",
    ];
    assert_eq!(one_by_one, expected);
    backend.close().await;
    db.drop().await;
}

#[tokio::test]
async fn a_batch_claim_is_returned_in_order() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    let tasks = (0..50)
        .map(|i| {
            let mut task = task(&format!("t{i}"));
            task.priority = i % 5;
            task
        })
        .collect();
    let ids = backend.enqueue(tasks).await.expect("enqueue");
    let claimed = backend.claim(request("w", 20)).await.expect("claim");
    assert_eq!(claimed.len(), 20);
    // The 20 best: priorities 4 and 3 (10 each), each group in enqueue order.
    let mut expected: Vec<_> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 5 >= 3)
        .map(|(i, id)| (std::cmp::Reverse(i % 5), *id))
        .collect();
    expected.sort();
    let expected: Vec<_> = expected.into_iter().map(|(_, id)| id).collect();
    assert_eq!(claimed.iter().map(|c| c.id).collect::<Vec<_>>(), expected);
    backend.close().await;
    db.drop().await;
}
