//! The worker's row in the database's worker registry: written before the
//! first claim, refreshed every [`WORKER_BEAT`](sitq_core::WORKER_BEAT) (or
//! at once when told of a control change), removed at a clean stop. A
//! beat's answer may ask the worker to drain.

use std::sync::Arc;
use std::time::Duration;

use sitq_core::{Backend, Error, WorkerBeat};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use super::maintenance::stopped;
use super::scaling::Gauge;

/// Beats for one run of a worker.
pub(crate) struct Registration {
    backend: Arc<dyn Backend>,
    /// Every field but the ones [`Gauge`] tells.
    beat: WorkerBeat,
    gauge: Gauge,
    every: Duration,
    /// Raised to drain: the same graceful stop as a `ShutdownHandle`'s.
    drain: watch::Sender<bool>,
    /// Whether the last beat failed (a failure is logged once per streak).
    failing: bool,
    /// Whether a drain was asked for already.
    draining: bool,
    /// An error no retry can help (the database is gone): the worker
    /// stops and [`Worker::run`](crate::Worker::run) returns it.
    fatal: Fatal,
    /// Control notices (a drain asked for), subscribed to before the first
    /// beat: a notice sent after that beat and before [`Registration::run`]
    /// is first polled still wakes it.
    control: watch::Receiver<u64>,
}

/// Where a side task leaves an error that stops the worker.
pub(crate) type Fatal = std::sync::Arc<std::sync::Mutex<Option<Error>>>;

impl Registration {
    pub(crate) fn new(
        backend: Arc<dyn Backend>,
        beat: WorkerBeat,
        gauge: Gauge,
        every: Duration,
        drain: watch::Sender<bool>,
        fatal: Fatal,
    ) -> Registration {
        let control = backend.signals().subscribe_control();
        Registration {
            control,
            backend,
            beat,
            gauge,
            every,
            drain,
            failing: false,
            draining: false,
            fatal,
        }
    }

    /// Writes the row once; a drain it asks for raises the stop.
    pub(crate) async fn beat(&mut self) {
        self.beat.concurrency = saturate(self.gauge.concurrency());
        self.beat.running = saturate(self.gauge.running());
        match self.backend.worker_beat(&self.beat).await {
            Ok(control) => {
                if self.failing {
                    tracing::info!(worker.id = %self.beat.id, "worker registry beat works again");
                }
                self.failing = false;
                if control.drain && !self.draining {
                    self.draining = true;
                    tracing::info!(
                        worker.id = %self.beat.id,
                        running = self.beat.running,
                        "drain requested; stopping gracefully: no more claims, running tasks finish"
                    );
                    self.drain.send_replace(true);
                }
            }
            // The database is gone: nothing this worker does can be stored.
            Err(err) if err.is_fatal() => {
                tracing::error!(worker.id = %self.beat.id, error = %err, "stopping the worker");
                let mut fatal = self
                    .fatal
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                fatal.get_or_insert(err);
                self.drain.send_replace(true);
            }
            // Otherwise never fatal: the tasks run all the same, and the next beat retries.
            Err(err) if !self.failing => {
                self.failing = true;
                tracing::warn!(worker.id = %self.beat.id, error = %err, "could not write this worker's registry row; retrying at every beat");
            }
            Err(err) => {
                tracing::debug!(worker.id = %self.beat.id, error = %err, "worker registry beat failed again")
            }
        }
    }

    /// Beats every `every` and at every control notice until `stop` turns
    /// true, then removes the row (bounded: a stop never hangs on it).
    pub(crate) async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The first tick is immediate: the run's first beat was just written.
        tick.tick().await;
        // Not marked seen here: a notice since the subscription beats again
        // (once more than needed when the first beat read it already).
        loop {
            tokio::select! {
                () = stopped(&mut stop) => break,
                _ = tick.tick() => self.beat().await,
                Ok(()) = self.control.changed() => {
                    self.control.borrow_and_update();
                    self.beat().await;
                    tick.reset();
                }
            }
        }
        let id = &self.beat.id;
        match tokio::time::timeout(REMOVE_WITHIN, self.backend.remove_worker(id)).await {
            Ok(Ok(())) => tracing::debug!(worker.id = %id, "removed from the worker registry"),
            Ok(Err(err)) => {
                tracing::warn!(worker.id = %id, error = %err, "could not remove this worker's registry row; it expires on its own")
            }
            Err(_) => {
                tracing::warn!(worker.id = %id, "removing this worker's registry row timed out; it expires on its own")
            }
        }
    }
}

/// How long a stopping worker waits to remove its row.
const REMOVE_WITHIN: Duration = Duration::from_secs(5);

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The host name for the registry (the id's default starts with it too).
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|host| host.trim().to_owned())
        .filter(|host| !host.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned())
}
