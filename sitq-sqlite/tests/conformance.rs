//! The shared backend conformance suite (`sitq_core::testing`) on SQLite.

use async_trait::async_trait;
use sitq_core::Queue;
use sitq_core::testing::{Harness, RunningWorker, WorkerConfig};
// Links the backend, which registers the `sqlite` scheme.
use sitq_sqlite as _;

/// Each test gets a fresh database file, which a second client can open
/// again with its own connections, as another process would.
struct Sqlite;

#[async_trait]
impl Harness for Sqlite {
    async fn fresh_url(&self) -> String {
        let name = sitq_core::testing::unique("sitq-conformance") + ".db";
        format!("sqlite://{}", std::env::temp_dir().join(name).display())
    }

    fn start_worker(&self, queue: &Queue, config: WorkerConfig) -> Box<dyn RunningWorker> {
        sitq_worker::testing::start(queue, config)
    }
}

sitq_core::conformance_tests!(Sqlite);
