//! A workflow run by worker processes: three processes share a fan-out of
//! slow tasks, a fan-in of their results and a chain after it. Dependents
//! released by a completion in one process are claimed by whichever
//! process is free (the wake-up crosses processes), every task runs once,
//! and the results arrive in order. On SQLite, and on PostgreSQL with the
//! `postgres` feature and a server named by `SITQ_TEST_POSTGRES_URL`.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use sitq::{Queue, TaskStatus, Worker, Workflow};
use support::ChildTest;

const CHILD_URL: &str = "SITQ_TEST_CHILD_URL";
const WORKERS: usize = 3;
const BRANCHES: u64 = 24;
const CHAIN: u64 = 4;

/// A slow branch, so the fan-out spreads over the processes.
#[sitq::task]
async fn square(n: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(20)).await;
    n * n
}

/// The fan-in.
#[sitq::task]
async fn sum(values: Vec<u64>) -> Vec<u64> {
    let total = values.iter().sum();
    let mut out = values;
    out.push(total);
    out
}

/// A step after the fan-in: the running total plus one.
#[sitq::task]
async fn next(values: Vec<u64>) -> Vec<u64> {
    let mut out = values;
    let last = out.last().copied().unwrap_or(0);
    out.push(last + 1);
    out
}

/// Not a test on its own: the body of a worker process, run only when the
/// parent test sets `SITQ_TEST_CHILD_URL`. Works until its stdin closes.
#[test]
fn child_worker() {
    let Ok(url) = std::env::var(CHILD_URL) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let queue = Queue::connect(&url).await.expect("connect");
        let worker = Worker::new(queue).concurrency(2).handle_signals(false);
        let stop = worker.shutdown_handle();
        let running = tokio::spawn(worker.run());
        let mut out = std::io::stdout().lock();
        writeln!(out, "workflow-worker-ready")
            .and_then(|()| out.flush())
            .expect("stdout");
        drop(out);
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
        let mut sink = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut stdin, &mut sink)
            .await
            .expect("stdin");
        stop.shutdown().await;
        running.await.expect("join").expect("worker");
    });
}

async fn workflow_across_processes(url: &str) {
    let queue = Queue::connect(url).await.expect("connect");
    let mut workers: Vec<ChildTest> = (0..WORKERS)
        .map(|_| ChildTest::spawn("child_worker", &[(CHILD_URL, url)]))
        .collect();
    for worker in &mut workers {
        worker.line("workflow-worker-ready").await;
    }

    let mut flow = Workflow::new("across-processes");
    let squares: Vec<_> = (1..=BRANCHES).map(|n| square::add(&mut flow, n)).collect();
    let mut last = sum::after_result(&squares).add(&mut flow);
    for _ in 0..CHAIN {
        last = next::after_result(&last).add(&mut flow);
    }
    let run = flow.enqueue(&queue).await.expect("enqueue the workflow");
    let result = run
        .handle(&last)
        .expect("handle")
        .wait_timeout(support::CHILD_WAIT)
        .await
        .expect("the workflow's result");

    let mut want: Vec<u64> = (1..=BRANCHES).map(|n| n * n).collect();
    let total: u64 = want.iter().sum();
    want.push(total);
    for step in 1..=CHAIN {
        want.push(total + step);
    }
    assert_eq!(
        result, want,
        "results in order, through the fan-in and the chain"
    );

    let info = run.info().await.expect("workflow");
    assert_eq!(info.status(), TaskStatus::Succeeded);
    let mut by_worker: BTreeMap<String, usize> = BTreeMap::new();
    for task in &info.tasks {
        let record = queue.get(task.id).await.expect("get");
        assert_eq!(record.status, TaskStatus::Succeeded, "task {}", task.id);
        assert_eq!(record.attempts, 1, "task {} ran once", task.id);
        *by_worker
            .entry(record.worker_id.unwrap_or_default())
            .or_default() += 1;
    }
    eprintln!("tasks per worker: {by_worker:?}");
    for worker in workers {
        worker.finish().await;
    }
}

#[tokio::test]
async fn sqlite_worker_processes_run_a_workflow() {
    workflow_across_processes(&support::sqlite_url("workflow.db")).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_worker_processes_run_a_workflow() {
    let Some(db) = support::TestDb::create("workflow_processes").await else {
        return;
    };
    workflow_across_processes(&db.url).await;
    db.drop().await;
}
