//! Unique tasks: `cargo run --example unique` (or pass a `postgres://` URL
//! with `--features postgres`).
//!
//! A duplicate enqueue returns the handle of the task already holding the
//! key and stores nothing. The key blocks while its task is pending or
//! running, and for the `unique_for` window after it succeeded; a failed
//! task lets go of it at once.

#![allow(clippy::print_stdout)] // an example prints its results

use std::time::Duration;

use sitq::{Queue, TaskHandle, Worker};

/// Exports a user's data; unique by its argument, and for 1 s after it succeeded.
#[sitq::task(unique, unique_for = "1s")]
async fn export(user: u64) -> String {
    format!("export-{user}.zip")
}

/// Sends a digest; made unique per enqueue with an explicit key. Fails for user 0.
#[sitq::task(max_attempts = 1)]
async fn digest(user: u64, note: String) -> Result<String, String> {
    if user == 0 {
        return Err("no such user".into());
    }
    Ok(format!("digest for {user}: {note}"))
}

fn describe<T>(what: &str, handle: &TaskHandle<T>) {
    let verdict = if handle.is_duplicate() {
        "duplicate of"
    } else {
        "new task"
    };
    println!("{what:<44} -> {verdict} {}", handle.id());
}

#[tokio::main]
async fn main() -> sitq::Result<()> {
    let url = match std::env::args().nth(1) {
        Some(url) => url,
        None => {
            let path = std::env::temp_dir().join("sitq-unique-example.db");
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            format!("sqlite://{}", path.display())
        }
    };
    let queue = Queue::connect(&url).await?;

    println!("-- unique by arguments: #[sitq::task(unique, unique_for = \"1s\")]");
    let first = export::enqueue(&queue, 42).await?;
    describe("export(42)", &first);
    describe("export(42) again", &export::enqueue(&queue, 42).await?);
    describe("export(7)", &export::enqueue(&queue, 7).await?);
    let batch = queue
        .enqueue_many([42, 8, 8].map(|user| export { user }))
        .await?;
    for (user, handle) in [42, 8, 8].iter().zip(&batch) {
        describe(&format!("export({user}) in a batch"), handle);
    }

    println!("-- explicit keys: digest::with().unique_key(..)");
    let digest_key = |user: u64| format!("digest:{user}");
    let monday = digest::with()
        .unique_key(digest_key(1))
        .enqueue(&queue, 1, "monday".into())
        .await?;
    describe("digest(1, \"monday\") key digest:1", &monday);
    let tuesday = digest::with()
        .unique_key(digest_key(1))
        .enqueue(&queue, 1, "tuesday".into())
        .await?;
    describe("digest(1, \"tuesday\") key digest:1", &tuesday);
    let doomed = digest::with()
        .unique_key(digest_key(0))
        .enqueue(&queue, 0, "fails".into())
        .await?;
    describe("digest(0) key digest:0", &doomed);

    let worker = Worker::new(queue.clone()).concurrency(4);
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());

    println!("-- after the worker ran them");
    println!("export(42) = {}", first.wait().await?);
    println!(
        "the duplicate digest's handle waits for the holder: {}",
        tuesday.wait().await?
    );
    if let Err(err) = doomed.wait().await {
        println!("digest(0) failed: {err}");
    }
    describe(
        "export(42) within 1 s of its success",
        &export::enqueue(&queue, 42).await?,
    );
    describe(
        "digest(0) after its holder failed",
        &digest::with()
            .unique_key(digest_key(0))
            .enqueue(&queue, 0, "again".into())
            .await?,
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let later = export::enqueue(&queue, 42).await?;
    describe("export(42) once its 1 s window ran out", &later);
    println!("export(42) = {}", later.wait().await?);

    stop.shutdown().await;
    running
        .await
        .map_err(|err| sitq::Error::Config(format!("worker task: {err}")))??;
    Ok(())
}
