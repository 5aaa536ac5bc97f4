//! A task defined in another crate (`sitq-example-tasks`) is registered in a
//! binary that links it, and a worker here runs it.

use std::time::Duration;

use sitq::{Queue, Registry, Task, Worker};
use sitq_example_tasks::{checksum, thumbnail};

#[test]
fn tasks_of_a_linked_crate_are_registered() {
    let registry = Registry::collect().expect("no duplicate names");
    for name in [<thumbnail as Task>::NAME, <checksum as Task>::NAME] {
        assert!(
            registry.get(name).is_some(),
            "{name} missing from {:?}",
            registry.names()
        );
    }
    assert_eq!(<thumbnail as Task>::NAME, "sitq_example_tasks::thumbnail");
}

#[tokio::test]
async fn a_worker_runs_a_task_from_another_crate() {
    let queue = Queue::connect("sqlite::memory:").await.expect("connect");
    let worker = Worker::new(queue.clone()).handle_signals(false);
    let stop = worker.shutdown_handle();
    tokio::spawn(worker.run());
    let handle = thumbnail::enqueue(&queue, "cat.png".into(), 64)
        .await
        .expect("enqueue");
    let result = handle
        .wait_timeout(Duration::from_secs(30))
        .await
        .expect("result");
    assert_eq!(result, "cat.png@64w.jpg");
    stop.shutdown().await;
}
