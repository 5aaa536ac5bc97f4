//! `#[sitq::task]` end to end on SQLite: typed results, plain fns, the
//! `with()` builder, options, and queue selection.

use std::time::Duration;

use chrono::{FixedOffset, TimeZone, Utc};
use sitq::{Error, Queue, Task, TaskStatus, Worker};

#[sitq::task]
async fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[sitq::task]
fn multiply(a: i64, b: i64) -> i64 {
    a * b
}

#[sitq::task(name = "custom.fails", queue = "other", priority = 3, max_attempts = 1)]
async fn fails(message: String) -> Result<u8, String> {
    Err(message)
}

const WAIT: Duration = Duration::from_secs(30);

async fn queue() -> Queue {
    Queue::connect("sqlite::memory:").await.expect("connect")
}

fn worker(
    queue: &Queue,
) -> (
    sitq::ShutdownHandle,
    tokio::task::JoinHandle<sitq::Result<()>>,
) {
    let worker = Worker::new(queue.clone()).handle_signals(false);
    (worker.shutdown_handle(), tokio::spawn(worker.run()))
}

#[tokio::test]
async fn typed_results_from_async_and_plain_tasks() {
    let queue = queue().await;
    let (stop, running) = worker(&queue);
    let sum = add::enqueue(&queue, 2, 3).await.expect("enqueue");
    let product = multiply::enqueue(&queue, 6, 7).await.expect("enqueue");
    assert_eq!(sum.wait_timeout(WAIT).await.expect("sum"), 5);
    assert_eq!(product.wait_timeout(WAIT).await.expect("product"), 42);
    stop.shutdown().await;
    running.await.expect("join").expect("worker");
}

#[tokio::test]
async fn the_original_fns_stay_callable() {
    assert_eq!(add(1, 2).await, 3);
    assert_eq!(multiply(2, 3), 6);
}

#[tokio::test]
async fn names_and_defaults_come_from_the_attribute() {
    assert_eq!(<add as Task>::NAME, concat!(module_path!(), "::add"));
    assert_eq!(<fails as Task>::NAME, "custom.fails");
    let defaults = <fails as Task>::DEFAULTS;
    assert_eq!(
        (defaults.queue, defaults.priority, defaults.max_attempts),
        ("other", 3, 1)
    );
}

#[tokio::test]
async fn the_builder_sets_options() {
    let queue = queue().await;
    let at = FixedOffset::west_opt(5 * 3600)
        .and_then(|tz| tz.with_ymd_and_hms(2032, 2, 29, 23, 0, 0).single())
        .expect("time");
    let handle = add::with()
        .priority(-4)
        .queue("bulk")
        .max_attempts(9)
        .run_at(at)
        .enqueue(&queue, 1, 1)
        .await
        .expect("enqueue");
    let record = queue.get(handle.id()).await.expect("record");
    assert_eq!(
        (record.priority, record.queue.as_str(), record.max_attempts),
        (-4, "bulk", 9)
    );
    assert_eq!(
        record.run_at,
        Utc.with_ymd_and_hms(2032, 3, 1, 4, 0, 0)
            .single()
            .expect("time")
    );

    let delayed = add::with()
        .delay(Duration::from_secs(60))
        .enqueue(&queue, 1, 1)
        .await
        .expect("enqueue");
    let record = queue.get(delayed.id()).await.expect("record");
    assert!(record.run_at - record.created_at >= chrono::Duration::seconds(59));
}

#[tokio::test]
async fn an_err_result_carries_the_message() {
    let queue = queue().await;
    let (stop, _running) = worker(&queue);
    let handle = fails::enqueue(&queue, "bad input".into())
        .await
        .expect("enqueue");
    match handle.wait_timeout(WAIT).await {
        Err(Error::TaskFailed {
            message,
            attempts: 1,
            ..
        }) => assert_eq!(message, "bad input"),
        other => panic!("expected TaskFailed, got {other:?}"),
    }
    stop.shutdown().await;
}

#[tokio::test]
async fn a_worker_takes_only_its_queues() {
    let queue = queue().await;
    let worker = Worker::new(queue.clone())
        .queues(["default"])
        .handle_signals(false);
    let stop = worker.shutdown_handle();
    tokio::spawn(worker.run());
    let other = fails::enqueue(&queue, "x".into()).await.expect("enqueue");
    let mine = add::enqueue(&queue, 1, 1).await.expect("enqueue");
    assert_eq!(mine.wait_timeout(WAIT).await.expect("result"), 2);
    stop.shutdown().await;
    assert_eq!(other.status().await.expect("status"), TaskStatus::Pending);
}
