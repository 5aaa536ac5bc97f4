//! A task fn whose first parameter is `sitq::Context` gets the running
//! attempt's context from the worker; the context is not an argument of
//! `enqueue` and not part of the payload.

use std::time::Duration;

use sitq::{Context, Queue, Worker};

/// Reports what its context says about it.
#[sitq::task(queue = "ctx", max_attempts = 4)]
async fn whoami(ctx: Context, tag: String) -> (i64, String, u32, u32, String) {
    (
        ctx.id().0,
        ctx.queue().to_owned(),
        ctx.attempt(),
        ctx.max_attempts(),
        tag,
    )
}

/// The same from a plain (blocking) fn, with a path-qualified type.
#[sitq::task(queue = "ctx")]
fn whoami_blocking(ctx: sitq::Context) -> i64 {
    ctx.id().0
}

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn the_worker_passes_the_attempts_context() {
    let queue = Queue::connect("sqlite::memory:").await.expect("connect");
    let worker = Worker::new(queue.clone())
        .queues(["ctx"])
        .handle_signals(false);
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());

    let handle = whoami::enqueue(&queue, "t".into()).await.expect("enqueue");
    let (id, queue_name, attempt, max_attempts, tag) =
        handle.wait_timeout(WAIT).await.expect("result");
    assert_eq!(id, handle.id().0);
    assert_eq!(
        (queue_name.as_str(), attempt, max_attempts, tag.as_str()),
        ("ctx", 1, 4, "t")
    );

    let blocking = whoami_blocking::enqueue(&queue).await.expect("enqueue");
    assert_eq!(
        blocking.wait_timeout(WAIT).await.expect("result"),
        blocking.id().0
    );

    stop.shutdown().await;
    running.await.expect("join").expect("worker");
}
