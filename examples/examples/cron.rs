//! Cron schedules: a task declared with `cron = "..."` and a task with
//! arguments scheduled by the worker's builder. Every worker that runs a
//! schedule fires each tick once between them (the database decides), so
//! this program could run on any number of machines.
//!
//! ```text
//! cargo run --example cron
//! ```
//!
//! It runs four ticks of an every-second schedule, prints them, lists the
//! stored schedules and stops.

#![allow(clippy::print_stdout)] // an example prints its results

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sitq::{CatchUp, Queue, Schedule, Worker};

static RUNS: AtomicU32 = AtomicU32::new(0);
static RAN: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Every second, on the second (six fields: seconds first).
#[sitq::task(cron = "* * * * * *", tz = "Europe/Berlin")]
async fn heartbeat() {
    RUNS.fetch_add(1, Ordering::SeqCst);
    RAN.notify_one();
}

/// A task with arguments: scheduled with `Worker::schedule_with` below.
#[sitq::task]
async fn report(title: String, day: u32) -> String {
    format!("{title} for day {day}")
}

#[tokio::main]
async fn main() -> sitq::Result<()> {
    let queue = Queue::connect("sqlite::memory:").await?;
    let worker = Worker::new(queue.clone()).schedule_with(
        // 02:00 every night, Berlin time; skip nights missed while down.
        Schedule::new(
            "nightly-report",
            report {
                title: "Sales".into(),
                day: 1,
            },
            "0 0 2 * * *",
        )
        .tz("Europe/Berlin")
        .catch_up(CatchUp::None),
    );
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());

    let mut printed = None;
    while RUNS.load(Ordering::SeqCst) < 4 {
        if tokio::time::timeout(Duration::from_secs(30), RAN.notified())
            .await
            .is_err()
        {
            eprintln!("no tick within 30 s");
            std::process::exit(1);
        }
        let schedules = queue.schedules().await?;
        let Some(beat) = schedules.iter().find(|s| s.task.ends_with("::heartbeat")) else {
            continue;
        };
        if beat.last_fire != printed {
            printed = beat.last_fire;
            if let Some(tick) = beat.last_fire {
                println!(
                    "tick {tick} ran (heartbeat run {})",
                    RUNS.load(Ordering::SeqCst)
                );
            }
        }
    }

    println!("\nstored schedules:");
    for schedule in queue.schedules().await? {
        println!(
            "  {:<40} {:<14} {:<14} catch-up {:<6} last {} next {}",
            schedule.name,
            schedule.expression,
            schedule.zone,
            schedule.catch_up.to_string(),
            schedule.last_fire.map_or("-".into(), |at| at.to_string()),
            schedule.next_fire.map_or("-".into(), |at| at.to_string()),
        );
    }
    stop.shutdown().await;
    running
        .await
        .map_err(|err| sitq::Error::Config(err.to_string()))??;
    Ok(())
}
