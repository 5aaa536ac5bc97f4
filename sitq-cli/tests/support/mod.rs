//! What the CLI tests share: a fresh database per test on each backend
//! (a SQLite file, or a PostgreSQL database of its own when
//! `SITQ_TEST_POSTGRES_URL` is set), an in-process worker to seed it, and
//! the `sitq` binary run against it. The databases come from
//! `sitq/tests/support/mod.rs`.
#![allow(dead_code)] // each test file uses part of it

#[path = "../../../sitq/tests/support/mod.rs"]
mod shared;

pub use shared::Backend;

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use sitq::{Queue, ShutdownHandle, Worker};
use tokio::task::JoinHandle;

/// How long a seeded task, a worker or the binary has.
pub const WAIT: Duration = Duration::from_secs(60);

/// A path in the temp directory no other test (or run) uses.
pub fn temp_path(name: &str) -> PathBuf {
    shared::temp_path(&format!("cli-{name}"))
}

/// A fresh database and a queue connected to it.
pub struct Db {
    pub url: String,
    pub queue: Queue,
    pub backend: Backend,
    pg: Option<shared::TestDb>,
}

impl Db {
    /// A fresh database, or `None` when the backend is not available
    /// (PostgreSQL without a server, outside CI).
    pub async fn create(backend: Backend, test: &str) -> Option<Db> {
        let (url, pg) = match backend {
            Backend::Sqlite => (
                format!(
                    "sqlite://{}",
                    temp_path(test).with_extension("db").display()
                ),
                None,
            ),
            Backend::Postgres => {
                let db = shared::TestDb::create(&format!("cli_{test}")).await?;
                (db.url.clone(), Some(db))
            }
        };
        let queue = Queue::connect(&url)
            .await
            .expect("connect to the test database");
        Some(Db {
            url,
            queue,
            backend,
            pg,
        })
    }

    /// Runs `sitq ARGS --url URL` to completion.
    pub async fn sitq(&self, args: &[&str]) -> Output {
        sitq(&self.url, args).await
    }

    /// Runs `sitq ARGS --url URL`, expecting success; its stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let output = self.sitq(args).await;
        assert!(
            output.status.success(),
            "sitq {args:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("stdout is UTF-8")
    }

    /// Runs `sitq ARGS --json --url URL`, expecting success; its JSON.
    pub async fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut args = args.to_vec();
        args.push("--json");
        let stdout = self.ok(&args).await;
        serde_json::from_str(&stdout).unwrap_or_else(|err| panic!("{err} in {stdout}"))
    }

    /// The SQLite file's path.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        self.url.strip_prefix("sqlite://").map(PathBuf::from)
    }

    /// Closes the queue and drops the database (the SQLite file and its
    /// companions, or the PostgreSQL database).
    pub async fn finish(self) {
        self.queue.close().await;
        if let Some(path) = self.sqlite_path() {
            for suffix in ["", "-wal", "-shm", "-sitq"] {
                let mut file = path.clone().into_os_string();
                file.push(suffix);
                let _ = std::fs::remove_file(file);
            }
        }
        if let Some(pg) = self.pg {
            pg.drop().await;
        }
    }
}

/// Runs the `sitq` binary with `args` and `--url url` (and no
/// `SITQ_DATABASE_URL` from the environment), from a blocking thread.
pub async fn sitq(url: &str, args: &[&str]) -> Output {
    let mut all: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    all.extend(["--url".to_owned(), url.to_owned()]);
    run(all, &[]).await
}

/// Runs the `sitq` binary with exactly `args` and `env`.
pub async fn run(args: Vec<String>, env: &[(&str, &str)]) -> Output {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect();
    let call = tokio::task::spawn_blocking(move || {
        let mut command = assert_cmd::Command::cargo_bin("sitq").expect("the sitq binary");
        command
            .env_remove("SITQ_DATABASE_URL")
            .envs(env)
            .args(&args)
            .timeout(WAIT);
        command.output().expect("run sitq")
    });
    call.await.expect("the sitq run")
}

/// A worker running every task of this test binary, with its stop handle.
pub struct Running {
    pub id: String,
    pub stop: ShutdownHandle,
    pub task: JoinHandle<sitq::Result<()>>,
}

/// Starts a worker on `queue` in this process.
pub fn start_worker(queue: &Queue) -> Running {
    let worker = Worker::new(queue.clone())
        .handle_signals(false)
        .concurrency(4);
    let id = worker.id().to_owned();
    let stop = worker.shutdown_handle();
    let task = tokio::spawn(worker.run());
    Running { id, stop, task }
}

impl Running {
    /// Stops the worker and waits for it.
    pub async fn stop(self) {
        self.stop.shutdown().await;
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the worker stops")
            .expect("join")
            .expect("the worker ran");
    }
}

/// Waits (bounded) until task `id` is finished, however it ended.
pub async fn wait_finished(queue: &Queue, id: sitq::TaskId) {
    let handle = queue.handle::<serde_json::Value>(id);
    if let Err(sitq::Error::WaitTimeout { .. }) = handle.wait_timeout(WAIT).await {
        panic!("task {id} did not finish within {WAIT:?}");
    }
}

/// Every line of `text` fits 80 columns.
pub fn assert_fits(text: &str) {
    for line in text.lines() {
        assert!(
            line.chars().count() <= 80,
            "a line wider than 80 columns ({}): {line:?}",
            line.chars().count()
        );
    }
}
