//! A running worker rides out connection trouble: a killed listening
//! connection only costs a reconnect, and a server outage shorter than the
//! lease loses no task and runs none twice.

mod support;

use std::time::{Duration, Instant};

use sitq_core::{EnqueueOptions, Error, Queue, TaskHandle, TaskStatus};
use sitq_worker::{ShutdownHandle, Worker};
use sqlx::{Connection, PgConnection};
use support::proxy::Proxy;
use support::tasks::{self, Hold, Tally, count, open_gate, unique};
use support::{PATIENCE, TestDb, chain, until, within};

/// A worker running in this process with the test tasks.
struct Running {
    handle: ShutdownHandle,
    task: tokio::task::JoinHandle<sitq_core::Result<()>>,
}

impl Running {
    fn start(queue: &Queue, concurrency: usize, lease: Duration) -> Running {
        let worker = Worker::new(queue.clone())
            .concurrency(concurrency)
            .lease(lease)
            .registry(tasks::registry())
            .handle_signals(false);
        let handle = worker.shutdown_handle();
        Running {
            handle,
            task: tokio::spawn(worker.run()),
        }
    }

    async fn stop(self) {
        within("the worker stopping", self.handle.shutdown()).await;
        self.task.await.expect("worker task").expect("worker run");
    }
}

/// Waits for every handle to succeed, within `bound`.
async fn all_succeed(what: &str, bound: Duration, handles: &[TaskHandle<()>]) {
    tokio::time::timeout(bound, async {
        for handle in handles {
            handle
                .wait()
                .await
                .unwrap_or_else(|error| panic!("task {} failed: {error}", handle.id()));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} did not all succeed within {bound:?}"));
}

/// What a call may take while the server is gone: the proxied URL's
/// `connect_timeout` (2 s) and some slack.
const CALL_BOUND: Duration = Duration::from_secs(6);

/// Awaits `call`, made while the server is unreachable: it must fail within
/// [`CALL_BOUND`] with a database error that names `op` and says what the
/// failure likely means.
async fn fails_clearly<T: std::fmt::Debug>(
    op: &str,
    call: impl Future<Output = sitq_core::Result<T>>,
) {
    let started = Instant::now();
    let error = within(op, call)
        .await
        .expect_err("the server is unreachable");
    let took = started.elapsed();
    let text = chain(&error);
    assert!(matches!(error, Error::Database { .. }), "{text}");
    assert!(text.contains(op), "names the call: {text}");
    assert!(
        text.contains("down or unreachable"),
        "says what it likely means: {text}"
    );
    assert!(
        took < CALL_BOUND,
        "{op} failed after {took:?}, not within connect_timeout"
    );
}

/// The server pids of sitq's listening connections to this test's database.
async fn listener_pids(admin: &mut PgConnection) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity
         WHERE application_name = 'sitq-listener' AND datname = current_database()
         ORDER BY pid",
    )
    .fetch_all(admin)
    .await
    .expect("list the listeners")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_continues_after_the_listening_connection_is_killed() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let worker_queue = Queue::connect(&db.url).await.expect("connect the worker");
    // Another client, so that its enqueues reach the worker only through the
    // database (a notification or the worker's poll), never in-process.
    let producer = Queue::connect(&db.url).await.expect("connect the producer");
    let worker = Running::start(&worker_queue, 4, Duration::from_secs(30));
    let key = unique("listener");
    let warm_up = producer
        .enqueue(Tally {
            key: format!("{key}/warm-up"),
        })
        .await
        .expect("enqueue");
    all_succeed("the warm-up task", PATIENCE, &[warm_up]).await;

    let mut admin = db.connection().await;
    let mut killed = Vec::new();
    for round in 0..3 {
        // Both clients listen again (after the previous round's kill).
        let pids = within("both clients listening", async {
            loop {
                let pids = listener_pids(&mut admin).await;
                if pids.len() == 2 && pids.iter().all(|pid| !killed.contains(pid)) {
                    return pids;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        let terminated: Vec<bool> =
            sqlx::query_scalar("SELECT pg_terminate_backend(pid) FROM UNNEST($1::int[]) AS p(pid)")
                .bind(&pids)
                .fetch_all(&mut admin)
                .await
                .expect("terminate the listeners");
        assert_eq!(
            terminated,
            [true, true],
            "round {round}: both listeners killed"
        );
        killed.extend(pids);

        let handles = producer
            .enqueue_many((0..20).map(|i| Tally {
                key: format!("{key}/{round}/{i}"),
            }))
            .await
            .expect("enqueue after the kill");
        all_succeed(
            &format!("round {round}'s tasks after the kill"),
            PATIENCE,
            &handles,
        )
        .await;
    }
    for round in 0..3 {
        for i in 0..20 {
            assert_eq!(
                count(&format!("{key}/{round}/{i}")),
                1,
                "round {round}, task {i}"
            );
        }
    }

    worker.stop().await;
    worker_queue.close().await;
    producer.close().await;
    admin.close().await.ok();
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_outage_shorter_than_the_lease_loses_nothing_and_repeats_nothing() {
    const LEASE: Duration = Duration::from_secs(10);
    const CONCURRENCY: usize = 8;
    const TASKS: usize = 500;
    let Some(db) = TestDb::create().await else {
        return;
    };
    let mut proxy = Proxy::to(&db.url).await;
    let producer = Queue::connect(&proxy.url(2))
        .await
        .expect("connect the producer through the proxy");
    let worker_queue = Queue::connect(&proxy.url(2))
        .await
        .expect("connect the worker through the proxy");
    let key = unique("outage");

    // The gated tasks come first (higher priority) and fill every slot, so at
    // the cut exactly CONCURRENCY tasks are in flight and TASKS are waiting.
    let held = producer
        .enqueue_many_with(
            (0..CONCURRENCY).map(|_| Hold { key: key.clone() }),
            EnqueueOptions::new().priority(10),
        )
        .await
        .expect("enqueue the gated tasks");
    let waiting = producer
        .enqueue_many((0..TASKS).map(|i| Tally {
            key: format!("{key}/{i}"),
        }))
        .await
        .expect("enqueue the counted tasks");
    let worker = Running::start(&worker_queue, CONCURRENCY, LEASE);
    let started = format!("started/{key}");
    until("every gated task to start", || {
        count(&started) == CONCURRENCY as u32
    })
    .await;

    proxy.down().await;
    let cut = Instant::now();
    // The in-flight tasks finish while the server is gone: the worker must
    // keep their results until it can store them.
    open_gate(&key);
    let finished = format!("finished/{key}");
    until("the gated tasks to finish during the outage", || {
        count(&finished) == CONCURRENCY as u32
    })
    .await;

    // Calls fail clearly and within connect_timeout, not hang. Made at once,
    // they also set the outage's length: about connect_timeout.
    tokio::join!(
        fails_clearly(
            "enqueueing tasks",
            producer.enqueue(Tally {
                key: format!("{key}/during"),
            }),
        ),
        fails_clearly("reading a task's status", producer.status(held[0].id())),
    );

    proxy.up().await;
    let outage = cut.elapsed();
    assert!(
        outage < LEASE / 2,
        "the outage ({outage:?}) must be well inside the lease"
    );

    all_succeed("the gated tasks", PATIENCE, &held).await;
    all_succeed("the counted tasks", PATIENCE, &waiting).await;
    for handle in &held {
        let record = producer.get(handle.id()).await.expect("record");
        assert_eq!(
            (record.status, record.attempts),
            (TaskStatus::Succeeded, 1),
            "the in-flight task's first attempt was stored: {record:?}"
        );
    }
    assert_eq!(
        count(&started),
        CONCURRENCY as u32,
        "no gated task ran twice"
    );
    let wrong: Vec<(usize, u32)> = (0..TASKS)
        .map(|i| (i, count(&format!("{key}/{i}"))))
        .filter(|&(_, runs)| runs != 1)
        .collect();
    assert!(
        wrong.is_empty(),
        "tasks not run exactly once (index, runs): {wrong:?}"
    );
    let mut admin = db.connection().await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM sitq_tasks")
        .fetch_one(&mut admin)
        .await
        .expect("count the tasks");
    assert_eq!(
        stored,
        (CONCURRENCY + TASKS) as i64,
        "the refused enqueue stored nothing"
    );
    admin.close().await.ok();

    worker.stop().await;
    worker_queue.close().await;
    producer.close().await;
    proxy.down().await;
    db.drop().await;
}
