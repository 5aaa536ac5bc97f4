//! The producers: tasks of the workload at a steady rate, each under the
//! unique key of its sequence number.
//!
//! An enqueue that fails (the server is restarting, a connection was
//! terminated, no answer in time) may or may not have been stored, so the
//! producer tries the same sequence number again until one call is
//! acknowledged: the unique key makes a second store impossible, and a
//! retry of a stored task returns that task's id. Only acknowledged ids
//! are counted; losing nothing the queue acknowledged is the guarantee.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sitq::{Queue, TaskId};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::Result;
use crate::run::{Shared, lock};
use crate::runlog::{sleep_ms, work};
use crate::watch::{UNIQUE_FOR, with_limit};

/// How long a producer keeps trying one enqueue (or to connect).
const GIVE_UP_AFTER: Duration = Duration::from_secs(120);

/// What producers did.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Produced {
    /// Acknowledged enqueues.
    pub tasks: u64,
    /// Enqueue calls that failed and were tried again.
    pub retries: u64,
}

impl Produced {
    /// Adds another producer's counts.
    pub fn add(&mut self, other: Produced) {
        self.tasks += other.tasks;
        self.retries += other.retries;
    }
}

/// Enqueues sequence numbers `first`, `first + step`, … one per `period`
/// until `stop` turns true, each until acknowledged.
pub async fn produce(
    url: String,
    first: u64,
    step: u64,
    period: Duration,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) -> Result<Produced> {
    let queue = connect(&url).await?;
    let mut produced = Produced::default();
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut seq = first;
    loop {
        tick.tick().await;
        if *stop.borrow() {
            break;
        }
        let id = enqueue(&queue, seq, &mut produced).await?;
        lock(&shared.acks).push(id);
        produced.tasks += 1;
        seq += step;
    }
    queue.close().await;
    Ok(produced)
}

/// Connects, retrying while the server is not there.
async fn connect(url: &str) -> Result<Queue> {
    let began = Instant::now();
    loop {
        match with_limit(Queue::connect(url)).await {
            Ok(queue) => return Ok(queue),
            Err(error) if began.elapsed() > GIVE_UP_AFTER => return Err(error),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Enqueues task `seq` until a call is acknowledged; its id.
async fn enqueue(queue: &Queue, seq: u64, produced: &mut Produced) -> Result<TaskId> {
    let began = Instant::now();
    loop {
        let call = work::with()
            .unique_key(format!("task:{seq}"))
            .unique_for(UNIQUE_FOR)
            .enqueue(queue, seq, sleep_ms(seq));
        match with_limit(call).await {
            Ok(handle) => return Ok(handle.id()),
            Err(error) if began.elapsed() > GIVE_UP_AFTER => {
                return Err(
                    format!("enqueueing task {seq} failed for {GIVE_UP_AFTER:?}: {error}").into(),
                );
            }
            Err(_) => {
                produced.retries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Test only (`--sabotage-lose`): one acknowledged task, delayed by an hour
/// and then cancelled, so that it never succeeds: the run must report it
/// lost and fail.
pub async fn sabotage_lose(queue: &Queue, shared: &Shared) -> Result<()> {
    let handle = work::with()
        .delay(Duration::from_secs(3600))
        .unique_key("sabotage")
        .unique_for(UNIQUE_FOR)
        .enqueue(queue, u64::MAX, 0)
        .await?;
    lock(&shared.acks).push(handle.id());
    queue.cancel(handle.id()).await?;
    shared.say(&format!(
        "sabotage: task {} was acknowledged, then cancelled; it must be reported lost",
        handle.id()
    ));
    Ok(())
}
