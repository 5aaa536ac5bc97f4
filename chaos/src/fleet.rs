//! The worker processes as a group: slots, each holding one live process
//! at a time. A killed worker's slot gets a new process with a new worker
//! id (`w<slot>-<generation>`), so every run log and every claim names the
//! process that made it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sitq::{Queue, TaskStatus};

use crate::run::Shared;
use crate::runlog::WORK;
use crate::worker::{ChildWorker, WorkerConfig};
use crate::{Result, watch};

/// How long a worker may take to stop gracefully at the end.
const STOP_WITHIN: Duration = Duration::from_secs(60);

/// The worker processes.
#[derive(Debug)]
pub struct Fleet {
    config: WorkerConfig,
    workers: Vec<ChildWorker>,
    generations: Vec<u32>,
    shared: Arc<Shared>,
    /// Workers that exited when nobody killed them.
    failures: Vec<String>,
}

impl Fleet {
    /// Starts `count` workers and waits until each is ready.
    pub async fn start(config: WorkerConfig, count: usize, shared: Arc<Shared>) -> Result<Fleet> {
        let mut workers = Vec::with_capacity(count);
        for slot in 0..count {
            workers.push(ChildWorker::start(&config, &worker_id(slot, 0)).await?);
        }
        Ok(Fleet {
            config,
            workers,
            generations: vec![0; count],
            shared,
            failures: Vec::new(),
        })
    }

    /// How many slots.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// SIGKILLs the worker in `slot` and waits until it is reaped; its id.
    pub async fn kill(&mut self, slot: usize) -> Result<String> {
        let worker = self
            .workers
            .get_mut(slot)
            .ok_or_else(|| format!("no worker slot {slot}"))?;
        let pid = worker
            .pid()
            .map_or("gone".to_owned(), |pid| pid.to_string());
        worker.kill().await?;
        self.shared
            .say(&format!("kill: SIGKILL worker {} (pid {pid})", worker.id));
        Ok(worker.id.clone())
    }

    /// Starts a new worker in `slot` (after its last one died).
    pub async fn replace(&mut self, slot: usize) -> Result<()> {
        let generation = self
            .generations
            .get_mut(slot)
            .ok_or_else(|| format!("no worker slot {slot}"))?;
        *generation += 1;
        let id = worker_id(slot, *generation);
        let began = Instant::now();
        let worker = ChildWorker::start(&self.config, &id).await?;
        self.shared.say(&format!(
            "worker {id} (pid {}) ready {:.1}s after its start",
            worker.pid().unwrap_or(0),
            began.elapsed().as_secs_f64()
        ));
        self.workers[slot] = worker;
        Ok(())
    }

    /// Replaces any worker that exited on its own, and remembers it as a
    /// failure: a database fault must not make a worker process give up.
    pub async fn check_exits(&mut self) -> Result<()> {
        for slot in 0..self.workers.len() {
            let Some(status) = self.workers[slot].exited()? else {
                continue;
            };
            let id = self.workers[slot].id.clone();
            let log = self.config.dir.join(format!("worker-{id}.log"));
            let failure = format!(
                "worker {id} exited on its own ({status}); its log: {}",
                log.display()
            );
            self.shared.say(&failure);
            self.failures.push(failure);
            self.replace(slot).await?;
        }
        Ok(())
    }

    /// Waits until no task of the workload is pending, running or blocked,
    /// for at most `limit`; whether it got there.
    pub async fn drain(&mut self, queue: &Queue, limit: Duration) -> Result<bool> {
        let began = Instant::now();
        let mut left = None;
        loop {
            self.check_exits().await?;
            match unfinished(queue).await {
                Ok(0) => {
                    self.shared.say(&format!(
                        "drained: every task finished {:.1}s after the faults stopped",
                        began.elapsed().as_secs_f64()
                    ));
                    return Ok(true);
                }
                Ok(count) => left = Some(count),
                Err(_) => {}
            }
            if began.elapsed() > limit {
                self.shared.say(&format!(
                    "not drained: {} tasks still unfinished after {limit:?}",
                    left.map_or("?".to_owned(), |count| count.to_string())
                ));
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops every worker gracefully; what went wrong.
    pub async fn stop(&mut self) -> Vec<String> {
        let mut failures = Vec::new();
        for worker in self.workers.drain(..) {
            let id = worker.id.clone();
            match worker.finish(STOP_WITHIN).await {
                Ok(status) if status.success() => {}
                Ok(status) => failures.push(format!("worker {id} stopped with {status}")),
                Err(error) => failures.push(format!("worker {id}: {error}")),
            }
        }
        failures
    }

    /// Workers that exited on their own.
    pub fn failures(&self) -> Vec<String> {
        self.failures.clone()
    }
}

/// The id of the `generation`-th worker process of `slot`.
fn worker_id(slot: usize, generation: u32) -> String {
    format!("w{slot}-{generation}")
}

/// Tasks of the workload not yet finished.
async fn unfinished(queue: &Queue) -> Result<u64> {
    let stats = watch::with_limit(queue.stats()).await?;
    Ok(stats
        .counts
        .iter()
        .filter(|count| {
            count.name == WORK
                && matches!(
                    count.status,
                    TaskStatus::Pending | TaskStatus::Running | TaskStatus::Blocked
                )
        })
        .map(|count| count.count)
        .sum())
}
