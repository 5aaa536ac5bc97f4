//! A stored task's arguments and result read as JSON without the task's
//! Rust types (`TaskRecord::arguments_json`, `result_json`): what the admin
//! tools show.

use std::time::Duration;

use serde_json::json;
use sitq::{Queue, Worker};

/// Sends a report; returns a summary.
#[sitq::task]
async fn report(to: String, days: Vec<u32>, urgent: bool) -> (String, u32) {
    let weight = if urgent { 1 } else { 0 };
    (to, days.iter().sum::<u32>() * weight)
}

#[tokio::test]
async fn arguments_and_result_read_as_json() {
    let queue = Queue::connect("sqlite::memory:").await.expect("connect");
    let handle = report::enqueue(&queue, "ops@example.com".into(), vec![1, 2, 3], true)
        .await
        .expect("enqueue");
    let record = queue.get(handle.id()).await.expect("get");
    assert_eq!(
        record.arguments_json().expect("arguments"),
        json!({"to": "ops@example.com", "days": [1, 2, 3], "urgent": true})
    );
    assert_eq!(record.result_json().expect("no result yet"), None);

    let worker = Worker::new(queue.clone()).handle_signals(false);
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    handle
        .wait_timeout(Duration::from_secs(30))
        .await
        .expect("result");
    stop.shutdown().await;
    running.await.expect("join").expect("worker");
    let record = queue.get(handle.id()).await.expect("get");
    assert_eq!(
        record.result_json().expect("result"),
        Some(json!(["ops@example.com", 6]))
    );
}

#[tokio::test]
async fn a_payload_that_is_not_messagepack_is_an_error_naming_the_task() {
    let queue = Queue::connect("sqlite::memory:").await.expect("connect");
    let id = queue
        .enqueue_raw("someone::else", vec![0xa5, b'a'], Default::default())
        .await
        .expect("enqueue raw");
    let record = queue.get(id).await.expect("get");
    let err = record.arguments_json().expect_err("not MessagePack");
    assert!(
        err.to_string()
            .contains(&format!("arguments of task {id} (someone::else)")),
        "{err}"
    );
}
