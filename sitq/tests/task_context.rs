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

/// Snoozes on its first two runs, then returns its attempt and run count.
#[sitq::task(queue = "ctx-snooze", max_attempts = 1)]
async fn patient(ctx: Context, key: String) -> Result<(u32, u32), String> {
    let runs = {
        let mut runs = RUNS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = runs.entry(key).or_default();
        *count += 1;
        *count
    };
    if runs <= 2 {
        return ctx.snooze(Duration::ZERO).await;
    }
    Ok((ctx.attempt(), runs))
}

static RUNS: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, u32>>> =
    std::sync::LazyLock::new(Default::default);

#[tokio::test]
async fn a_task_fn_snoozes_without_spending_its_one_attempt() {
    let queue = Queue::connect("sqlite::memory:").await.expect("connect");
    let worker = Worker::new(queue.clone())
        .queues(["ctx-snooze"])
        .handle_signals(false);
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());

    let handle = patient::enqueue(&queue, "p".into()).await.expect("enqueue");
    assert_eq!(handle.wait_timeout(WAIT).await.expect("result"), (1, 3));
    let record = queue.get(handle.id()).await.expect("record");
    assert_eq!((record.attempts, record.snoozes), (1, 2));

    stop.shutdown().await;
    running.await.expect("join").expect("worker");
}
