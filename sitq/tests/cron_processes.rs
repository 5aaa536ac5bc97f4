//! Three worker processes run one every-second schedule for several seconds,
//! one of them killed (SIGKILL) midway: each tick between the first and the
//! last fired is fired exactly once (one task, `run_at` = the tick), none is
//! missed, and every fired task that ran, ran once. On SQLite, and on
//! PostgreSQL with the `postgres` feature and a server named by
//! `SITQ_TEST_POSTGRES_URL`.
//!
//! The worker processes are this test binary re-run with `child_worker` as
//! the only test; they stop gracefully on SIGTERM, finishing what runs.

mod support;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sitq::{Error, Queue, TaskId, TaskRecord, TaskStatus, Worker};

const CHILD_URL: &str = "SITQ_TEST_CRON_CHILD_URL";
const CHILD_LOG: &str = "SITQ_TEST_CRON_CHILD_LOG";
const WAIT: Duration = Duration::from_secs(120);
const TASK: &str = "cron_processes::beat";

/// Appends one line (its process id) to the file named by `CHILD_LOG` per run.
#[sitq::task(cron = "* * * * * *", name = "cron_processes::beat")]
async fn beat() -> Result<(), std::io::Error> {
    let log = std::env::var(CHILD_LOG).map_err(std::io::Error::other)?;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)?;
    file.write_all(format!("{}\n", std::process::id()).as_bytes())
}

/// Not a test on its own: the body of a worker process, run only when the
/// parent test sets `CHILD_URL`.
#[test]
fn child_worker() {
    let Ok(url) = std::env::var(CHILD_URL) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime
        .block_on(async {
            let queue = Queue::connect(&url).await?;
            Worker::new(queue).concurrency(4).run().await
        })
        .expect("child worker failed");
}

/// A worker process, killed when dropped.
struct WorkerProcess(Child);

impl WorkerProcess {
    fn spawn(url: &str, log: &str) -> WorkerProcess {
        let exe = std::env::current_exe().expect("test binary path");
        let child = Command::new(exe)
            .args(["child_worker", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_URL, url)
            .env(CHILD_LOG, log)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn worker process");
        WorkerProcess(child)
    }

    /// SIGKILL, and reap.
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// SIGTERM: a graceful stop that finishes running tasks.
    fn terminate(&self) {
        let pid = self.0.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every task stored (the database holds only the schedule's): ids are
/// handed out in order, so the scan stops after a run of missing ones.
async fn all_tasks(queue: &Queue) -> Vec<TaskRecord> {
    let mut records = Vec::new();
    let mut missing = 0;
    let mut id = 1;
    while missing < 50 {
        match queue.get(TaskId(id)).await {
            Ok(record) => {
                missing = 0;
                records.push(record);
            }
            Err(Error::NotFound(_)) => missing += 1,
            Err(err) => panic!("reading task {id}: {err}"),
        }
        id += 1;
    }
    records
}

/// Waits until at least `count` fired tasks have succeeded; how many have.
async fn succeeded_at_least(queue: &Queue, count: usize) -> usize {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let succeeded = all_tasks(queue)
            .await
            .iter()
            .filter(|record| record.status == TaskStatus::Succeeded)
            .count();
        if succeeded >= count {
            return succeeded;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {succeeded} of {count} scheduled runs within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn one_run_per_tick(url: &str, processes: usize) {
    let queue = Queue::connect(url).await.expect("connect");
    let log = support::temp_path("cron-beats.log");
    let log_str = log.display().to_string();
    let mut workers: Vec<_> = (0..processes)
        .map(|_| WorkerProcess::spawn(url, &log_str))
        .collect();

    // Several seconds of ticks, all processes running them; then one dies
    // at an arbitrary instant and the others carry on.
    succeeded_at_least(&queue, 3).await;
    let mut killed = workers.remove(0);
    let killed_pid = killed.0.id();
    killed.kill();
    let after_kill = succeeded_at_least(&queue, 0).await + 4;
    succeeded_at_least(&queue, after_kill).await;
    let stopping_at = Utc::now();
    for worker in &workers {
        worker.terminate();
    }
    for mut worker in workers {
        let status = tokio::task::spawn_blocking(move || {
            let status = worker.0.wait();
            (worker, status)
        })
        .await
        .expect("join")
        .1
        .expect("wait for a worker");
        assert!(
            status.success(),
            "a worker exited with {status} after SIGTERM"
        );
    }

    let records = all_tasks(&queue).await;
    let mut ticks: Vec<DateTime<Utc>> = records.iter().map(|record| record.run_at).collect();
    ticks.sort_unstable();
    assert!(ticks.len() >= 7, "{ticks:?}");
    for pair in ticks.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            chrono::Duration::seconds(1),
            "one task per tick, no tick missed: {ticks:?}"
        );
    }
    let (mut ran, mut held_by_the_killed) = (0, 0);
    let killed_id = format!(":{killed_pid}:");
    for record in &records {
        assert_eq!(record.name, TASK);
        assert_eq!(record.run_at.timestamp_subsec_micros(), 0, "{record:?}");
        match record.status {
            TaskStatus::Succeeded => {
                assert_eq!(record.attempts, 1, "ran once: {record:?}");
                ran += 1;
            }
            // Fired just before the stop, never claimed.
            TaskStatus::Pending => assert!(
                record.run_at > stopping_at - chrono::Duration::seconds(3),
                "a fired tick left unrun while workers ran: {record:?}"
            ),
            // Claimed by the killed worker: it runs again once its lease
            // expires (30 s, longer than this test).
            TaskStatus::Running
                if record
                    .worker_id
                    .as_deref()
                    .is_some_and(|worker| worker.contains(&killed_id)) =>
            {
                held_by_the_killed += 1;
            }
            _ => panic!("unexpected state: {record:?}"),
        }
    }
    // A run killed after its line was written has no outcome.
    let lines = std::fs::read_to_string(&log)
        .expect("read the log")
        .lines()
        .count();
    assert!(
        (ran..=ran + held_by_the_killed).contains(&lines),
        "{lines} runs logged for {ran} succeeded tasks ({held_by_the_killed} held by the killed worker)"
    );
    let info = queue.schedules().await.expect("schedules");
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(info[0].last_fire, ticks.last().copied());
    let _ = std::fs::remove_file(log);
}

#[tokio::test]
async fn sqlite_three_worker_processes_fire_each_tick_once() {
    let path = support::temp_path("cron.db");
    one_run_per_tick(&format!("sqlite://{}", path.display()), 3).await;
    for suffix in ["", "-wal", "-shm", "-sitq"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// The same on PostgreSQL, in a fresh database on the server named by
/// `SITQ_TEST_POSTGRES_URL`.
#[cfg(feature = "postgres")]
mod postgres {
    use crate::support::TestDb;

    #[tokio::test]
    async fn three_worker_processes_fire_each_tick_once() {
        let Some(db) = TestDb::create("cron_processes").await else {
            return;
        };
        super::one_run_per_tick(&db.url, 3).await;
        db.drop().await;
    }
}
