//! A worker binary: an ordinary `main` that links the crate defining the
//! tasks and runs them. Stop it with Ctrl-C: in-flight tasks finish first.
//!
//! ```text
//! cargo run --example worker -- sqlite://sitq-example.db
//! RUST_LOG=sitq=debug cargo run --example worker   # every claim and attempt
//! ```

use sitq::{Queue, Worker};
// Naming the task crate links it, and with it its #[sitq::task] registrations.
use sitq_example_tasks as _;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> sitq::Result<()> {
    // sitq logs through `tracing`: without a subscriber a worker prints
    // nothing. This one prints `info` and above, or what RUST_LOG asks for.
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sqlite://sitq-example.db".to_owned());
    let queue = Queue::connect(&url).await?;
    // The worker logs one line at start: the database (the SQLite file's
    // absolute path), the task names it runs, its queues and concurrency.
    Worker::new(queue).concurrency(16).run().await
}
