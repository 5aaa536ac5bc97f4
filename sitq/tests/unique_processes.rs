//! Eight producer processes race to enqueue the same unique task: exactly
//! one task is stored and every producer gets a handle to it. Several
//! rounds, each a new key, each released to all producers at once. On
//! SQLite, and on PostgreSQL with the `postgres` feature and a server named
//! by `SITQ_TEST_POSTGRES_URL`.
//!
//! The producers are this test binary re-run with `child_producer` as the
//! only test: each connects, says it is ready, then enqueues `report(n)` for
//! every `n` it reads from stdin and answers with the handle it got.

mod support;

use std::io::{BufRead, Write};
use std::process::Stdio;
use std::time::Duration;

use sitq::{Queue, TaskId, Worker};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Unique by its argument.
#[sitq::task(unique)]
async fn report(day: u64) -> u64 {
    day
}

const CHILD_URL: &str = "SITQ_TEST_CHILD_URL";
const PRODUCERS: usize = 8;
const ROUNDS: u64 = 5;
const WAIT: Duration = Duration::from_secs(60);

/// Not a test on its own: the body of a producer process, run only when the
/// parent test sets `SITQ_TEST_CHILD_URL`.
#[test]
fn child_producer() {
    let Ok(url) = std::env::var(CHILD_URL) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let queue = runtime.block_on(Queue::connect(&url)).expect("connect");
    let mut out = std::io::stdout().lock();
    writeln!(out, "unique-ready")
        .and_then(|()| out.flush())
        .expect("stdout");
    for line in std::io::stdin().lock().lines() {
        let day: u64 = line.expect("stdin").trim().parse().expect("a day");
        let handle = runtime
            .block_on(report::enqueue(&queue, day))
            .expect("enqueue");
        writeln!(
            out,
            "unique-result {day} {} {}",
            handle.id(),
            handle.is_duplicate()
        )
        .and_then(|()| out.flush())
        .expect("stdout");
    }
}

/// A producer process, killed when dropped.
struct Producer {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Producer {
    fn spawn(url: &str) -> Producer {
        let exe = std::env::current_exe().expect("test binary path");
        let mut child = Command::new(exe)
            .args([
                "child_producer",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_URL, url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn producer process");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        Producer {
            child,
            stdin,
            stdout,
        }
    }

    /// The next line of ours (the test harness prints its own lines too, and
    /// may begin one of ours with `test child_producer ... `).
    async fn line(&mut self, prefix: &str) -> String {
        let read = async {
            while let Some(line) = self.stdout.next_line().await.expect("read the producer") {
                if let Some(at) = line.find(prefix) {
                    return line[at + prefix.len()..].trim().to_owned();
                }
            }
            panic!("the producer exited before printing {prefix:?}");
        };
        tokio::time::timeout(WAIT, read)
            .await
            .unwrap_or_else(|_| panic!("no {prefix:?} from a producer within {WAIT:?}"))
    }
}

/// Runs the race on `url`; returns the holder of each round's key.
async fn race(url: &str) -> Vec<TaskId> {
    let queue = Queue::connect(url).await.expect("connect");
    let mut producers: Vec<Producer> = (0..PRODUCERS).map(|_| Producer::spawn(url)).collect();
    for producer in &mut producers {
        producer.line("unique-ready").await;
    }
    let mut holders = Vec::new();
    for day in 1..=ROUNDS {
        // Everyone is connected and waiting on stdin: release them together.
        for producer in &mut producers {
            let go = format!("{day}\n");
            producer
                .stdin
                .write_all(go.as_bytes())
                .await
                .expect("write");
            producer.stdin.flush().await.expect("flush");
        }
        let mut answers = Vec::new();
        for producer in &mut producers {
            let line = producer.line("unique-result").await;
            let fields: Vec<&str> = line.split(' ').collect();
            let [answered_day, id, duplicate] = fields[..] else {
                panic!("malformed answer {line:?}");
            };
            assert_eq!(answered_day, day.to_string());
            let id: TaskId = id.parse().expect("an id");
            answers.push((id, duplicate == "true"));
        }
        let holder = answers[0].0;
        assert!(
            answers.iter().all(|(id, _)| *id == holder),
            "day {day}: every producer gets the one task: {answers:?}"
        );
        let created = answers.iter().filter(|(_, duplicate)| !duplicate).count();
        assert_eq!(
            created, 1,
            "day {day}: exactly one producer created it: {answers:?}"
        );
        holders.push(holder);
    }
    for mut producer in producers {
        drop(producer.stdin);
        let status = tokio::time::timeout(WAIT, producer.child.wait())
            .await
            .expect("the producer exits")
            .expect("wait");
        assert!(status.success(), "a producer failed: {status}");
    }
    // The task each handle names runs and gives its result.
    let worker = Worker::new(queue.clone()).concurrency(2);
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    for (day, holder) in (1..=ROUNDS).zip(&holders) {
        let result = queue
            .handle::<u64>(*holder)
            .wait_timeout(WAIT)
            .await
            .expect("the unique task's result");
        assert_eq!(result, day);
    }
    stop.shutdown().await;
    running.await.expect("join").expect("worker");
    holders
}

#[tokio::test]
async fn sqlite_racing_producer_processes_create_one_task_per_key() {
    let url = format!("sqlite://{}", support::temp_path("unique.db").display());
    let holders = race(&url).await;
    // SQLite hands out ids without gaps: one row per round, nothing more.
    let expected: Vec<TaskId> = (1..=ROUNDS as i64).map(TaskId).collect();
    assert_eq!(holders, expected, "one task per round, and no other rows");
    let queue = Queue::connect(&url).await.expect("connect");
    let next = report::with()
        .unique_key("another")
        .enqueue(&queue, 0)
        .await
        .expect("enqueue");
    assert_eq!(next.id(), TaskId(ROUNDS as i64 + 1));
}

/// The same on PostgreSQL, in a fresh database on the server named by
/// `SITQ_TEST_POSTGRES_URL`.
#[cfg(feature = "postgres")]
mod postgres {
    use sitq::Task;
    use sqlx::{Connection, PgConnection};

    use super::{ROUNDS, race, report};
    use crate::support::TestDb;

    #[tokio::test]
    async fn racing_producer_processes_create_one_task_per_key() {
        let Some(test_db) = TestDb::create("unique_processes").await else {
            return;
        };
        race(&test_db.url).await;
        let mut db = PgConnection::connect(&test_db.url).await.expect("connect");
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM sitq_tasks WHERE name = $1")
            .bind(<report as Task>::NAME)
            .fetch_one(&mut db)
            .await
            .expect("count");
        assert_eq!(rows, ROUNDS as i64, "one task per round");
        db.close().await.ok();
        test_db.drop().await;
    }
}
