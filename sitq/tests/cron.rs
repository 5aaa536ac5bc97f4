//! Cron schedules through the public API, in one process on SQLite: a
//! declared schedule registers and fires, the builder schedules tasks with
//! arguments, a bad schedule stops `run` with an error naming it, and a
//! worker runs the declared schedules of its own tasks only.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sitq::__private::TaskRegistration;
use sitq::{CatchUp, Error, Queue, Registry, Schedule, Worker};

static BEATS: AtomicU32 = AtomicU32::new(0);

/// Counts its runs.
#[sitq::task(cron = "* * * * * *", name = "cron_test::beat")]
async fn beat() {
    BEATS.fetch_add(1, Ordering::SeqCst);
}

/// Adds; scheduled with arguments by the builder.
#[sitq::task(name = "cron_test::add")]
async fn add(a: i64, b: i64) -> i64 {
    a + b
}

const WAIT: Duration = Duration::from_secs(30);

async fn queue() -> Queue {
    Queue::connect("sqlite::memory:").await.expect("connect")
}

/// Polls `check` until it holds, failing with `what` after [`WAIT`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Only the registrations of `names`.
fn registry(names: &[&str]) -> Registry {
    Registry::from_registrations(
        sitq::__private::inventory::iter::<TaskRegistration>()
            .filter(|registration| names.contains(&registration.name)),
    )
    .expect("registry")
}

#[tokio::test]
async fn a_declared_schedule_registers_and_fires_every_tick() {
    let queue = queue().await;
    let worker = Worker::new(queue.clone())
        .registry(registry(&["cron_test::beat"]))
        .handle_signals(false);
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    let before = BEATS.load(Ordering::SeqCst);
    eventually("two beats", || async {
        BEATS.load(Ordering::SeqCst) >= before + 2
    })
    .await;
    let schedules = queue.schedules().await.expect("schedules");
    assert_eq!(schedules.len(), 1, "{schedules:?}");
    let beat = &schedules[0];
    assert_eq!(
        (
            beat.name.as_str(),
            beat.task.as_str(),
            beat.expression.as_str()
        ),
        ("cron_test::beat", "cron_test::beat", "* * * * * *")
    );
    assert_eq!(
        (beat.zone.as_str(), beat.catch_up),
        ("UTC", CatchUp::Latest)
    );
    let last = beat.last_fire.expect("fired");
    assert!(beat.next_fire.is_some_and(|next| next > last), "{beat:?}");
    stop.shutdown().await;
    running.await.expect("join").expect("worker");
}

#[tokio::test]
async fn the_builder_schedules_a_task_with_arguments() {
    let queue = queue().await;
    let worker = Worker::new(queue.clone())
        .registry(registry(&["cron_test::add"]))
        .schedule_with(
            Schedule::new("sums", add { a: 20, b: 22 }, "* * * * * *")
                .tz("Europe/Berlin")
                .catch_up(CatchUp::None),
        )
        .handle_signals(false);
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    eventually("a scheduled sum", || async {
        queue
            .schedules()
            .await
            .expect("schedules")
            .first()
            .is_some_and(|sums| sums.last_fire.is_some())
    })
    .await;
    // The first fired task is the first one stored.
    let first = queue.handle::<i64>(sitq::TaskId(1));
    assert_eq!(first.wait_timeout(WAIT).await.expect("sum"), 42);
    let record = queue.get(sitq::TaskId(1)).await.expect("record");
    assert_eq!(record.name, "cron_test::add");
    assert_eq!(
        record.run_at.timestamp_subsec_micros(),
        0,
        "run_at is the tick"
    );
    let listed = queue.schedules().await.expect("schedules");
    assert_eq!(
        listed.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["sums"],
        "the declared schedule of a task this worker does not run is not run"
    );
    assert_eq!(
        (listed[0].zone.as_str(), listed[0].catch_up),
        ("Europe/Berlin", CatchUp::None)
    );
    stop.shutdown().await;
    running.await.expect("join").expect("worker");
}

/// `run` fails at once with the schedule's name and the reason.
async fn refused(worker: Worker) -> (String, String) {
    let result = tokio::time::timeout(WAIT, worker.handle_signals(false).run())
        .await
        .expect("run returns at once");
    match result {
        Err(Error::InvalidSchedule { name, reason }) => (name, reason),
        other => panic!("expected InvalidSchedule, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_schedules_stop_the_worker_before_it_starts() {
    let queue = queue().await;
    let (name, reason) = refused(Worker::new(queue.clone()).schedule(
        "nightly-report",
        add { a: 1, b: 2 },
        "0 0 25 * * *",
    ))
    .await;
    assert_eq!(name, "nightly-report");
    assert!(
        reason.contains("bad cron expression \"0 0 25 * * *\""),
        "{reason}"
    );

    let (name, reason) = refused(Worker::new(queue.clone()).schedule_with(
        Schedule::new("berlin", add { a: 1, b: 2 }, "0 0 2 * * *").tz("Europe/Berln"),
    ))
    .await;
    assert_eq!(name, "berlin");
    assert!(
        reason.contains("unknown time zone \"Europe/Berln\""),
        "{reason}"
    );

    let (name, reason) = refused(
        Worker::new(queue.clone())
            .schedule("twice", add { a: 1, b: 2 }, "0 0 2 * * *")
            .schedule("twice", add { a: 3, b: 4 }, "0 0 3 * * *"),
    )
    .await;
    assert_eq!(name, "twice");
    assert!(reason.contains("two schedules have this name"), "{reason}");

    let message = Error::InvalidSchedule { name, reason }.to_string();
    assert!(
        message.starts_with("invalid schedule \"twice\": "),
        "{message}"
    );
    assert!(
        queue.schedules().await.expect("schedules").is_empty(),
        "nothing stored"
    );
}
