//! A worker binary: an ordinary `main` that links the crate defining the
//! tasks and runs them. Stop it with Ctrl-C: in-flight tasks finish first.
//!
//! ```text
//! cargo run --example worker -- sqlite://sitq-example.db
//! ```

#![allow(clippy::print_stdout)] // an example prints its results

use sitq::{Queue, Worker};
// Naming the task crate links it, and with it its #[sitq::task] registrations.
use sitq_example_tasks as _;

#[tokio::main]
async fn main() -> sitq::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sqlite://sitq-example.db".to_owned());
    let queue = Queue::connect(&url).await?;
    let worker = Worker::new(queue).concurrency(16);
    eprintln!("worker {} on {url}; Ctrl-C to stop", worker.id());
    worker.run().await
}
