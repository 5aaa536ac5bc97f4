//! The shared backend conformance suite (`sitq_core::testing`) on PostgreSQL, one fresh database per test on the server named by `SITQ_TEST_POSTGRES_URL`.

use async_trait::async_trait;
use sitq_core::Queue;
use sitq_core::testing::{Harness, RunningWorker, WorkerConfig};
use sitq_worker::{ShutdownHandle, Worker};
// Links the backend, which registers the `postgres` scheme.
use sitq_postgres as _;

mod support;

struct Postgres;

#[async_trait]
impl Harness for Postgres {
    async fn fresh_url(&self) -> String {
        // The databases live as long as the throw-away server of the test run.
        support::TestDb::create()
            .await
            .expect("checked by unavailable")
            .url
    }

    fn unavailable(&self) -> Option<String> {
        support::server_unavailable()
    }

    fn start_worker(&self, queue: &Queue, config: WorkerConfig) -> Box<dyn RunningWorker> {
        let worker = Worker::new(queue.clone())
            .concurrency(config.concurrency)
            .lease(config.lease)
            .registry(config.registry)
            .handle_signals(false);
        let handle = worker.shutdown_handle();
        let running = tokio::spawn(worker.run());
        Box::new(Started { handle, running })
    }
}

struct Started {
    handle: ShutdownHandle,
    running: tokio::task::JoinHandle<sitq_core::Result<()>>,
}

#[async_trait]
impl RunningWorker for Started {
    async fn shutdown(self: Box<Self>) {
        self.handle.shutdown().await;
        self.running
            .await
            .expect("worker task")
            .expect("worker run");
    }
}

sitq_core::conformance_tests!(Postgres);
