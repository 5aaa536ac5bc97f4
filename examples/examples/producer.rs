//! A producer: enqueues tasks defined in `sitq-example-tasks` and waits for
//! the results computed by the `worker` example running in another process.
//!
//! ```text
//! cargo run --example worker   -- sqlite://sitq-example.db   # terminal 1
//! cargo run --example producer -- sqlite://sitq-example.db   # terminal 2
//! ```

#![allow(clippy::print_stdout)] // an example prints its results

use std::time::Duration;

use sitq::Queue;
use sitq_example_tasks::{checksum, thumbnail};

#[tokio::main]
async fn main() -> sitq::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sqlite://sitq-example.db".to_owned());
    let queue = Queue::connect(&url).await?;

    let thumbs = queue
        .enqueue_many((1..=5).map(|i| thumbnail {
            path: format!("photos/{i}.png"),
            width: 320,
        }))
        .await?;
    let sum = checksum::enqueue(&queue, b"hello sitq".to_vec()).await?;

    for handle in thumbs {
        println!("{}", handle.wait_timeout(Duration::from_secs(60)).await?);
    }
    println!(
        "checksum = {:#x}",
        sum.wait_timeout(Duration::from_secs(60)).await?
    );
    Ok(())
}
