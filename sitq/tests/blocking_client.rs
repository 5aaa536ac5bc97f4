//! `sitq::blocking::Queue`: the typed API from a program that is not async.

use std::time::Duration;

use sitq::{Error, Queue, TaskStatus, Worker};

#[sitq::task]
async fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[test]
fn enqueue_and_wait_without_async() {
    let path = std::env::temp_dir().join(format!("sitq-blocking-{}.db", std::process::id()));
    let url = format!("sqlite://{}", path.display());
    let client = sitq::blocking::Queue::connect(&url).expect("connect");

    let pending = client.enqueue(add { a: 1, b: 2 }).expect("enqueue");
    assert_eq!(pending.status().expect("status"), TaskStatus::Pending);
    assert!(matches!(
        pending.wait_timeout(Duration::from_millis(20)),
        Err(Error::WaitTimeout { .. })
    ));

    // A worker in another thread with its own runtime and connections.
    let (stop_tx, stop_rx) = std::sync::mpsc::channel();
    let worker_url = url.clone();
    let worker = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async move {
            let queue = Queue::connect(&worker_url).await.expect("connect");
            let worker = Worker::new(queue).handle_signals(false);
            stop_tx.send(worker.shutdown_handle()).expect("send handle");
            worker.run().await.expect("worker");
        });
    });
    let stop = stop_rx.recv().expect("worker started");

    assert_eq!(
        pending
            .wait_timeout(Duration::from_secs(30))
            .expect("result"),
        3
    );
    let many = client
        .enqueue_many((0..10).map(|i| add { a: i, b: i }))
        .expect("enqueue_many");
    for (i, handle) in (0..).zip(&many) {
        assert_eq!(
            handle
                .wait_timeout(Duration::from_secs(30))
                .expect("result"),
            2 * i
        );
    }
    stop.request();
    worker.join().expect("worker thread");
    let _ = std::fs::remove_file(path);
}

#[test]
fn a_duplicate_enqueue_says_so_without_async() {
    let client = sitq::blocking::Queue::connect("sqlite::memory:").expect("connect");
    let options = sitq::EnqueueOptions::new().unique_key("once");
    let first = client
        .enqueue_with(add { a: 1, b: 1 }, options.clone())
        .expect("enqueue");
    let again = client
        .enqueue_with(add { a: 2, b: 2 }, options)
        .expect("enqueue");
    assert!(!first.is_duplicate());
    assert!(again.is_duplicate());
    assert_eq!(again.id(), first.id());
}
