//! What the dashboard tests share: a fresh database per test on each
//! backend (`sitq/tests/support` makes them), seeded by a worker in this
//! process, and the dashboard served on a loopback port.
#![allow(dead_code)] // each test file uses part of it

#[path = "../../../sitq/tests/support/mod.rs"]
mod shared;

pub use shared::Backend;

#[allow(unused_imports)] // the browser test uses it
pub use shared::temp_path;

use std::net::SocketAddr;
use std::time::Duration;

use sitq::{Queue, TaskId, Workflow, WorkflowId};
use sitq_web::Dashboard;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a seeded task, the server or the browser has.
pub const WAIT: Duration = Duration::from_secs(60);

/// The error a seeded task fails with: markup the pages must show as text.
pub const XSS: &str = "<script>document.title='pwned'</script><b id=\"injected\">bold?</b>";

/// Adds.
#[sitq::task(name = "add")]
pub async fn add(a: i64, b: i64) -> i64 {
    a + b
}

/// Fails at once with `why`.
#[sitq::task(name = "boom", max_attempts = 1)]
pub async fn boom(why: String) -> Result<(), String> {
    Err(why)
}

/// Runs an hour from now, on queue `reports`.
#[sitq::task(name = "report", queue = "reports")]
pub async fn report(month: u32) -> u32 {
    month
}

/// A fresh database and a queue on it.
pub struct Db {
    pub url: String,
    pub queue: Queue,
    pg: Option<shared::TestDb>,
}

impl Db {
    /// A fresh database, or `None` when PostgreSQL is not available (and
    /// CI is not set).
    pub async fn create(backend: Backend, test: &str) -> Option<Db> {
        let (url, pg) = match backend {
            Backend::Sqlite => (shared::sqlite_url(&format!("web-{test}.db")), None),
            Backend::Postgres => {
                let db = shared::TestDb::create(&format!("web_{test}")).await?;
                (db.url.clone(), Some(db))
            }
        };
        let queue = Queue::connect(&url).await.expect("connect");
        Some(Db { url, queue, pg })
    }

    /// Closes the queue and drops the database.
    pub async fn finish(self) {
        self.queue.close().await;
        if let Some(path) = self.url.clone().strip_prefix("sqlite://") {
            for suffix in ["", "-wal", "-shm", "-sitq"] {
                let _ = std::fs::remove_file(format!("{path}{suffix}"));
            }
        }
        if let Some(pg) = self.pg {
            pg.drop().await;
        }
    }
}

/// What [`seed`] made.
pub struct Seeded {
    /// `add(2, 3)`, succeeded.
    pub added: TaskId,
    /// `boom(XSS)`, failed after one attempt.
    pub failed: TaskId,
    /// `report(11)`, pending an hour from now on queue `reports`.
    pub delayed: TaskId,
    /// A workflow of three `add`s (a, then b and c after a), succeeded.
    pub workflow: WorkflowId,
    /// The workflow's first task.
    pub first: TaskId,
    /// The workflow's last task (after the first).
    pub last: TaskId,
}

/// Seeds the database through a worker in this process, then stops it (so
/// nothing runs what a test retries).
pub async fn seed(queue: &Queue) -> Seeded {
    let worker = sitq::Worker::new(queue.clone())
        .handle_signals(false)
        .concurrency(4);
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    let added = add::enqueue(queue, 2, 3).await.expect("enqueue add");
    let failed = boom::enqueue(queue, XSS.to_owned())
        .await
        .expect("enqueue boom")
        .id();
    let delayed = report::with()
        .delay(Duration::from_secs(3600))
        .enqueue(queue, 11)
        .await
        .expect("enqueue report")
        .id();
    let mut workflow = Workflow::new("month-end");
    let a = add::add(&mut workflow, 1, 1);
    let _b = add::with().after(&a).add(&mut workflow, 2, 2);
    let c = add::with().after(&a).add(&mut workflow, 3, 3);
    let workflow = workflow.enqueue(queue).await.expect("enqueue workflow");
    let first = workflow.handle(&a).expect("node").id();
    let last = workflow.handle(&c).expect("node").id();
    tokio::time::timeout(WAIT, workflow.wait())
        .await
        .expect("the workflow finishes in time")
        .expect("the workflow succeeds");
    added.wait_timeout(WAIT).await.expect("add succeeds");
    let handle = queue.handle::<()>(failed);
    assert!(handle.wait_timeout(WAIT).await.is_err(), "boom fails");
    stop.shutdown().await;
    tokio::time::timeout(WAIT, running)
        .await
        .expect("the worker stops")
        .expect("join")
        .expect("the worker ran");
    Seeded {
        added: added.id(),
        failed,
        delayed,
        workflow: workflow.id(),
        first,
        last,
    }
}

/// The dashboard served on a loopback port until dropped.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `dashboard` on 127.0.0.1, any free port.
    pub async fn start(dashboard: Dashboard) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, dashboard.router())
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
        });
        Server {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops serving and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(WAIT, task)
                .await
                .expect("the server stops")
                .expect("join");
        }
    }
}

/// An HTTP client that keeps cookies off and follows no redirects, so
/// tests see each response as it is.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(WAIT)
        .build()
        .expect("client")
}
