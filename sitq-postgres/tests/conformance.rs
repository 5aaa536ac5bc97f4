//! The shared backend conformance suite (`sitq_core::testing`) on PostgreSQL, one fresh database per test on the server named by `SITQ_TEST_POSTGRES_URL`.

use async_trait::async_trait;
use sitq_core::Queue;
use sitq_core::testing::{Harness, RunningWorker, WorkerConfig};
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
        sitq_worker::testing::start(queue, config)
    }
}

sitq_core::conformance_tests!(Postgres);
