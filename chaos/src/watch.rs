//! Measuring recovery from each fault, through sitq's own API.
//!
//! - After a worker is killed: the claims it held (tasks `running` under its
//!   worker id, read just after it was reaped, started or only reserved)
//!   until each is running under another worker or finished. Its leases
//!   have to expire first, so this is about the lease plus the time to
//!   notice and re-claim.
//! - After a server restart or a backend termination: a probe task of the
//!   workload, enqueued (retried until acknowledged) once the fault is done,
//!   at a priority above the backlog, until the queue says it succeeded:
//!   producers, workers and their connections all working again.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sitq::admin::{TaskFilter, TaskSummary};
use sitq::{Queue, TaskId, TaskStatus};

use crate::Result;
use crate::check::Cause;
use crate::report::Recovery;
use crate::run::{Shared, lock};
use crate::runlog::{WORK, work};

/// How long one call to the queue may take: during a restart a call can
/// wait on the connection pool.
const CALL_LIMIT: Duration = Duration::from_secs(10);

/// How long [`retrying`] keeps trying.
const RETRY_FOR: Duration = Duration::from_secs(120);

/// How often a watcher looks.
const POLL: Duration = Duration::from_millis(50);

/// The first sequence number of probe tasks (producers count from 0).
const PROBE_SEQ: u64 = 1 << 40;

/// How long a unique key stays taken after its task succeeded: longer
/// than any run, so a retried enqueue never makes a second task.
pub const UNIQUE_FOR: Duration = Duration::from_secs(24 * 3600);

/// `call`, failed after [`CALL_LIMIT`].
pub async fn with_limit<T>(call: impl Future<Output = sitq::Result<T>>) -> Result<T> {
    match tokio::time::timeout(CALL_LIMIT, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(format!("no answer within {CALL_LIMIT:?}").into()),
    }
}

/// `call` until it succeeds, for up to [`RETRY_FOR`].
pub async fn retrying<T, F, Fut>(mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = sitq::Result<T>>,
{
    let began = Instant::now();
    loop {
        match with_limit(call()).await {
            Ok(value) => return Ok(value),
            Err(error) if began.elapsed() > RETRY_FOR => return Err(error),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The workload's running tasks.
async fn running(queue: &Queue) -> Result<Vec<TaskSummary>> {
    let filter = TaskFilter {
        statuses: vec![TaskStatus::Running],
        name: Some(WORK.to_owned()),
        limit: 10_000,
        ..TaskFilter::default()
    };
    with_limit(queue.tasks(&filter)).await
}

/// Watches the claims of killed worker `dead` until each is re-claimed or
/// finished, and records how long that took from `killed`.
pub async fn after_kill(
    queue: Queue,
    shared: Arc<Shared>,
    dead: String,
    label: String,
    killed: Instant,
) {
    let held_by = |task: &TaskSummary, worker: &str| task.worker_id.as_deref() == Some(worker);
    let held: Vec<TaskId> = loop {
        if let Ok(tasks) = running(&queue).await {
            break tasks
                .iter()
                .filter(|task| held_by(task, &dead))
                .map(|task| task.id)
                .collect();
        }
        tokio::time::sleep(POLL).await;
    };
    let mut left: HashSet<TaskId> = held.iter().copied().collect();
    while !left.is_empty() {
        tokio::time::sleep(POLL).await;
        let Ok(tasks) = running(&queue).await else {
            continue;
        };
        let still_held: HashSet<TaskId> = tasks
            .iter()
            .filter(|task| held_by(task, &dead))
            .map(|task| task.id)
            .collect();
        let taken_over: HashSet<TaskId> = tasks
            .iter()
            .filter(|task| !held_by(task, &dead))
            .map(|task| task.id)
            .collect();
        for id in left.clone() {
            // Re-claimed by another worker, or (not running) finished.
            let resolved = taken_over.contains(&id)
                || (!still_held.contains(&id)
                    && with_limit(queue.status(id))
                        .await
                        .is_ok_and(TaskStatus::is_finished));
            if resolved {
                left.remove(&id);
            }
        }
    }
    let took = killed.elapsed();
    if held.is_empty() {
        shared.say(&format!("{label}: it held no claims"));
    } else {
        shared.say(&format!(
            "{label}: its {} claims re-claimed or finished {:.1}s after the kill",
            held.len(),
            took.as_secs_f64()
        ));
    }
    finish(&shared, label, Cause::WorkerKill, held.len(), took);
}

/// Enqueues a probe task after a server fault and records how long after
/// `began` the queue said it succeeded.
pub async fn after_server_fault(
    queue: Queue,
    shared: Arc<Shared>,
    cause: Cause,
    label: String,
    began: Instant,
) {
    let number = shared.probes.fetch_add(1, Ordering::Relaxed);
    let id = loop {
        let enqueue = work::with()
            .priority(100)
            .unique_key(format!("probe:{number}"))
            .unique_for(UNIQUE_FOR)
            .enqueue(&queue, PROBE_SEQ + number, 0);
        if let Ok(handle) = with_limit(enqueue).await {
            break handle.id();
        }
        tokio::time::sleep(POLL).await;
    };
    lock(&shared.acks).push(id);
    loop {
        if let Ok(TaskStatus::Succeeded) = with_limit(queue.status(id)).await {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let took = began.elapsed();
    shared.say(&format!(
        "{label}: a probe task enqueued after it succeeded {:.1}s after the fault began",
        took.as_secs_f64()
    ));
    finish(&shared, label, cause, 1, took);
}

/// Records a recovery and stops counting its fault as watched.
fn finish(shared: &Shared, label: String, cause: Cause, held: usize, took: Duration) {
    lock(&shared.watching).remove(&label);
    lock(&shared.recoveries).push(Recovery {
        label,
        cause,
        held,
        took,
    });
}
