//! The worker: configuration and the claim loop.

mod completer;
mod execute;
mod maintenance;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sitq_core::{ClaimRef, ClaimRequest, ClaimedTask, Completion, Error, Queue, Registry, Result};
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;
use tracing::Instrument;

use crate::shutdown::{self, ShutdownHandle, ShutdownSignal};
use completer::Held;
use maintenance::Maintenance;

/// Runs registered tasks from a queue.
///
/// ```no_run
/// # async fn demo(queue: sitq_core::Queue) -> sitq_core::Result<()> {
/// let worker = sitq_worker::Worker::new(queue).concurrency(8).queues(["default", "mail"]);
/// worker.run().await // until SIGINT/SIGTERM or a ShutdownHandle
/// # }
/// ```
#[derive(Debug)]
pub struct Worker {
    queue: Queue,
    concurrency: usize,
    queues: Vec<String>,
    lease: Duration,
    shutdown_timeout: Option<Duration>,
    retention: Option<Duration>,
    handle_signals: bool,
    worker_id: String,
    registry: Option<Registry>,
    shutdown: ShutdownSignal,
    handle: ShutdownHandle,
}

impl Worker {
    /// A worker for every task linked into this program, on all queues.
    pub fn new(queue: Queue) -> Worker {
        let (handle, shutdown) = shutdown::channel();
        Worker {
            queue,
            concurrency: 16,
            queues: Vec::new(),
            lease: Duration::from_secs(30),
            shutdown_timeout: Some(Duration::from_secs(30)),
            retention: Some(Duration::from_secs(7 * 24 * 3600)),
            handle_signals: true,
            worker_id: default_worker_id(),
            registry: None,
            shutdown,
            handle,
        }
    }

    /// How many tasks run at once (default 16; at least 1).
    pub fn concurrency(mut self, concurrency: usize) -> Worker {
        self.concurrency = concurrency.max(1);
        self
    }

    /// Takes tasks only from these queues (default: every queue).
    pub fn queues<I, S>(mut self, queues: I) -> Worker
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.queues = queues.into_iter().map(Into::into).collect();
        self
    }

    /// How long a claim holds without a heartbeat (default 30 s). Heartbeats
    /// run every third of it; a worker killed mid-task has its tasks rerun
    /// elsewhere once this has passed.
    pub fn lease(mut self, lease: Duration) -> Worker {
        self.lease = lease.max(Duration::from_millis(30));
        self
    }

    /// How long a graceful shutdown waits for in-flight tasks before abandoning
    /// them to be rerun after their leases expire (default 30 s; `None` waits forever).
    pub fn shutdown_timeout(mut self, timeout: Option<Duration>) -> Worker {
        self.shutdown_timeout = timeout;
        self
    }

    /// How long finished tasks are kept before pruning (default 7 days; `None` keeps them).
    pub fn retention(mut self, retention: Option<Duration>) -> Worker {
        self.retention = retention;
        self
    }

    /// Whether [`run`](Worker::run) stops gracefully on SIGINT/SIGTERM (default true).
    pub fn handle_signals(mut self, handle: bool) -> Worker {
        self.handle_signals = handle;
        self
    }

    /// The id stored with every attempt this worker runs (default `host:pid:random`).
    pub fn worker_id(mut self, id: impl Into<String>) -> Worker {
        self.worker_id = id.into();
        self
    }

    /// Runs exactly these tasks instead of every linked one.
    pub fn registry(mut self, registry: Registry) -> Worker {
        self.registry = Some(registry);
        self
    }

    /// The id stored with every attempt this worker runs.
    pub fn id(&self) -> &str {
        &self.worker_id
    }

    /// A handle that stops this worker gracefully.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// Runs until shut down; returns once in-flight tasks are finished and
    /// stored. Fails at once if two linked tasks share a name.
    pub async fn run(self) -> Result<()> {
        let collected = match &self.registry {
            Some(registry) => Ok(registry.clone()),
            None => Registry::collect(),
        };
        let registry = match collected.map(Arc::new) {
            Ok(registry) => registry,
            Err(err) => {
                self.shutdown.finish();
                return Err(err);
            }
        };
        tracing::info!(worker.id = %self.worker_id, tasks = registry.len(), concurrency = self.concurrency, "worker starting");
        let shutdown = &self.shutdown;
        let result = Runner::new(&self, registry).run(shutdown).await;
        shutdown.finish();
        tracing::info!(worker.id = %self.worker_id, "worker stopped");
        result
    }
}

/// The state of one [`Worker::run`].
struct Runner<'w> {
    worker: &'w Worker,
    registry: Arc<Registry>,
    held: Held,
    attempts: JoinSet<Completion>,
    aborts: HashMap<ClaimRef, AbortHandle>,
    ids: HashMap<tokio::task::Id, ClaimRef>,
}

impl<'w> Runner<'w> {
    fn new(worker: &'w Worker, registry: Arc<Registry>) -> Self {
        Runner {
            worker,
            registry,
            held: Held::default(),
            attempts: JoinSet::new(),
            aborts: HashMap::new(),
            ids: HashMap::new(),
        }
    }

    async fn run(mut self, shutdown: &ShutdownSignal) -> Result<()> {
        let worker = self.worker;
        let backend = worker.queue.backend().clone();
        let poll = backend.poll_interval();

        let (outcomes_tx, outcomes_rx) = mpsc::channel(worker.concurrency * 2 + 16);
        let completer = tokio::spawn(completer::run(
            backend.clone(),
            outcomes_rx,
            self.held.clone(),
            worker.lease,
        ));
        let (lost_tx, mut lost_rx) = mpsc::unbounded_channel();
        let (stop_maintenance, maintenance_stop) = watch::channel(false);
        let maintenance = tokio::spawn(
            Maintenance {
                backend: backend.clone(),
                worker_id: worker.worker_id.clone(),
                held: self.held.clone(),
                lease: worker.lease,
                retention: worker.retention,
                lost: lost_tx,
            }
            .run(maintenance_stop),
        );
        if worker.handle_signals {
            spawn_signal_listener(shutdown);
        }

        let mut stop = shutdown.subscribe();
        let mut work = backend.signals().subscribe_work();
        let mut maybe_work = true;
        let mut wake_at = Instant::now() + poll;
        let mut claim_pause = Duration::from_millis(50);

        while !*stop.borrow() {
            let free = worker.concurrency - self.attempts.len();
            if maybe_work && free > 0 {
                work.borrow_and_update();
                let request = ClaimRequest {
                    worker_id: &worker.worker_id,
                    queues: &worker.queues,
                    limit: free,
                    lease: worker.lease,
                };
                match backend.claim(request).await {
                    Ok(claimed) => {
                        claim_pause = Duration::from_millis(50);
                        if claimed.len() < free {
                            // Drained for now: wait for a signal, a due task, or the poll.
                            maybe_work = false;
                            wake_at = Instant::now() + poll;
                            if claimed.is_empty() {
                                wake_at = self.next_due(wake_at).await;
                            }
                        }
                        for task in claimed {
                            self.start(task);
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "claim failed; retrying");
                        maybe_work = false;
                        wake_at = Instant::now() + claim_pause;
                        claim_pause = (claim_pause * 2).min(Duration::from_secs(5));
                    }
                }
                continue;
            }
            tokio::select! {
                _ = stop.changed() => {}
                Some(joined) = self.attempts.join_next_with_id() => {
                    if let Some(completion) = self.finished(joined)
                        && outcomes_tx.send(completion).await.is_err()
                    {
                        return Err(Error::Config("the result writer stopped unexpectedly".into()));
                    }
                }
                Some(lost) = lost_rx.recv() => self.abandon(&lost),
                Ok(()) = work.changed() => maybe_work = true,
                () = tokio::time::sleep_until(wake_at), if !maybe_work => {
                    let fallback = Instant::now() + poll;
                    wake_at = self.next_due(fallback).await;
                    maybe_work = wake_at <= Instant::now();
                    if !maybe_work {
                        wake_at = wake_at.min(fallback);
                    }
                }
            }
        }

        self.drain(&outcomes_tx).await;
        drop(outcomes_tx);
        if completer.await.is_err() {
            tracing::error!("the result writer panicked");
        }
        let _ = stop_maintenance.send(true);
        let _ = maintenance.await;
        Ok(())
    }

    /// When the earliest scheduled task is due, capped at `fallback`.
    async fn next_due(&self, fallback: Instant) -> Instant {
        let backend = self.worker.queue.backend();
        match backend.next_run_at(&self.worker.queues).await {
            Ok(Some(at)) => {
                let wait = (at - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO);
                (Instant::now() + wait).min(fallback)
            }
            Ok(None) => fallback,
            Err(err) => {
                tracing::warn!(error = %err, "could not read the next scheduled time");
                fallback
            }
        }
    }

    fn start(&mut self, task: ClaimedTask) {
        let claim = task.claim_ref();
        completer::lock(&self.held).insert(claim);
        let registry = self.registry.clone();
        let worker_id = self.worker.worker_id.clone();
        let span = tracing::info_span!("run", task.name = %task.name, task.id = %task.id, attempt = task.attempt);
        let abort = self.attempts.spawn(
            async move {
                let outcome = execute::run_attempt(&registry, &task, &worker_id).await;
                log_outcome(&outcome);
                Completion { claim, outcome }
            }
            .instrument(span),
        );
        self.ids.insert(abort.id(), claim);
        self.aborts.insert(claim, abort);
    }

    /// Bookkeeping for a finished attempt; its completion, unless it was aborted.
    fn finished(
        &mut self,
        joined: std::result::Result<(tokio::task::Id, Completion), tokio::task::JoinError>,
    ) -> Option<Completion> {
        let (id, completion) = match joined {
            Ok((id, completion)) => (id, Some(completion)),
            Err(err) => (err.id(), None),
        };
        if let Some(claim) = self.ids.remove(&id) {
            self.aborts.remove(&claim);
            if completion.is_none() {
                // Aborted (lease lost) or a bug in the runtime: the lease decides what happens next.
                completer::lock(&self.held).remove(&claim);
            }
        }
        completion
    }

    fn abandon(&mut self, lost: &[ClaimRef]) {
        for claim in lost {
            if let Some(abort) = self.aborts.get(claim) {
                tracing::warn!(task.id = %claim.id, attempt = claim.attempt, "lease lost; abandoning the attempt");
                abort.abort();
            }
        }
    }

    /// Waits for in-flight attempts and hands their outcomes to the writer.
    async fn drain(&mut self, outcomes: &mpsc::Sender<Completion>) {
        if self.attempts.is_empty() {
            return;
        }
        tracing::info!(in_flight = self.attempts.len(), "draining in-flight tasks");
        let deadline = self
            .worker
            .shutdown_timeout
            .map(|timeout| Instant::now() + timeout);
        loop {
            let next = match deadline {
                Some(deadline) => {
                    match tokio::time::timeout_at(deadline, self.attempts.join_next_with_id()).await
                    {
                        Ok(next) => next,
                        Err(_) => {
                            tracing::warn!(
                                abandoned = self.attempts.len(),
                                "shutdown timeout passed; abandoning in-flight tasks (they run again once their leases expire)"
                            );
                            self.attempts.abort_all();
                            return;
                        }
                    }
                }
                None => self.attempts.join_next_with_id().await,
            };
            let Some(joined) = next else { return };
            if let Some(completion) = self.finished(joined)
                && outcomes.send(completion).await.is_err()
            {
                return;
            }
        }
    }
}

fn log_outcome(outcome: &sitq_core::Outcome) {
    match outcome {
        sitq_core::Outcome::Succeeded(_) => tracing::debug!("succeeded"),
        sitq_core::Outcome::Retry { failure, delay } => {
            tracing::warn!(error.kind = %failure.kind, error = %failure.message, retry_in = ?delay, "attempt failed; will retry");
        }
        sitq_core::Outcome::Failed(failure) => {
            tracing::error!(error.kind = %failure.kind, error = %failure.message, "task failed");
        }
    }
}

fn spawn_signal_listener(shutdown: &ShutdownSignal) {
    let mut stop = shutdown.subscribe();
    let requested = shutdown.requester();
    tokio::spawn(async move {
        tokio::select! {
            () = termination() => {
                tracing::info!("termination signal received; shutting down gracefully");
                requested.send_replace(true);
            }
            () = maintenance::stopped(&mut stop) => {}
        }
    });
}

#[cfg(unix)]
async fn termination() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!(
            "could not install signal handlers; stop the worker with its ShutdownHandle"
        );
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}

#[cfg(not(unix))]
async fn termination() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|host| host.trim().to_owned())
        .filter(|host| !host.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or(0);
    format!("{host}:{}:{nanos:08x}", std::process::id())
}
