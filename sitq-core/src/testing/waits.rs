//! Conformance cases for batched waits: many waiters in one process are
//! served together, and none stays registered once its wait ends.

use std::time::Duration;

use super::tasks::Add;
use super::{Harness, WAIT, open, worker_config};
use crate::{Error, Queue, TaskStatus};

fn registered(queue: &Queue) -> usize {
    queue.backend().signals().registered_waiters()
}

/// Hundreds of handles waiting at once in one process all get their results,
/// and leave no registration behind.
pub async fn many_waits_are_served_together(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let handles = queue
        .enqueue_many((0..300).map(|i| Add { a: i, b: i }))
        .await
        .expect("enqueue");
    let waits: Vec<_> = handles
        .iter()
        .cloned()
        .map(|handle| tokio::spawn(async move { handle.wait_timeout(WAIT).await }))
        .collect();
    let worker = h.start_worker(&queue, worker_config());
    for (i, wait) in (0..).zip(waits) {
        let value = wait.await.expect("the wait task").expect("result");
        assert_eq!(value, 2 * i, "the result of task {i}");
    }
    worker.shutdown().await;
    assert_eq!(registered(&queue), 0, "waiters left registered");
}

/// A wait that times out, and one whose task finishes through another
/// client (found by polling on backends without cross-process
/// notification), leave no registration behind.
pub async fn ended_waits_leave_no_waiters(h: &impl Harness) {
    let (queue, url) = open(h).await;
    let handle = queue.enqueue(Add { a: 1, b: 2 }).await.expect("enqueue");
    match handle.wait_timeout(Duration::from_millis(20)).await {
        Err(Error::WaitTimeout { status, .. }) => assert_eq!(status, TaskStatus::Pending),
        other => panic!("expected a timeout with no worker running, got {other:?}"),
    }
    assert_eq!(registered(&queue), 0, "a timed-out wait stayed registered");

    let other = Queue::connect(&url).await.expect("second client");
    let worker = h.start_worker(&other, worker_config());
    assert_eq!(
        handle.wait_timeout(WAIT).await.expect("result"),
        3,
        "the result through another client"
    );
    worker.shutdown().await;
    assert_eq!(registered(&queue), 0, "a satisfied wait stayed registered");
}
