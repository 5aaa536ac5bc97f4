//! The worker: configuration and the claim loop.

mod cancels;
mod completer;
mod execute;
mod maintenance;
#[cfg(feature = "prometheus")]
mod prometheus;
mod registry;
mod runner;
mod scaling;
mod scheduler;
mod telemetry;

#[cfg(all(test, feature = "testing"))]
#[path = "../tests/support/memory.rs"]
mod memory;
#[cfg(all(test, feature = "testing"))]
mod tests;

#[cfg(feature = "prometheus")]
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use sitq_core::schedule::{Firing, Schedule, ScheduleRegistration};
use sitq_core::{Error, Queue, Registry, Result, Task, WORKER_BEAT, WORKER_TTL, WorkerBeat};
use tokio::sync::watch;

use self::registry::Registration;
use self::scaling::{Gauge, ScaleTiming};
use self::telemetry::QueueGauges;
use crate::shutdown::{self, ShutdownHandle, ShutdownSignal};

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
    /// The bounds of the number of slots; equal for a fixed size.
    min_slots: usize,
    max_slots: usize,
    /// `None`: twice the current number of slots.
    prefetch: Option<usize>,
    queues: Vec<String>,
    lease: Duration,
    shutdown_timeout: Option<Duration>,
    retention: Option<Duration>,
    handle_signals: bool,
    worker_id: String,
    registry: Option<Registry>,
    shutdown: ShutdownSignal,
    handle: ShutdownHandle,
    cancel_grace: Duration,
    schedules: Vec<Schedule>,
    /// How often the registry row is refreshed ([`WORKER_BEAT`]; shorter in tests).
    beat_every: Duration,
    scale_timing: ScaleTiming,
    queue_metrics: bool,
    queue_gauges_every: Duration,
    #[cfg(feature = "prometheus")]
    metrics_listener: Option<SocketAddr>,
}

impl Worker {
    /// A worker for every task linked into this program, on all queues.
    pub fn new(queue: Queue) -> Worker {
        let (handle, shutdown) = shutdown::channel();
        Worker {
            queue,
            min_slots: 16,
            max_slots: 16,
            prefetch: None,
            queues: Vec::new(),
            lease: Duration::from_secs(30),
            shutdown_timeout: Some(Duration::from_secs(30)),
            retention: Some(Duration::from_secs(7 * 24 * 3600)),
            handle_signals: true,
            worker_id: default_worker_id(),
            registry: None,
            shutdown,
            handle,
            cancel_grace: DEFAULT_CANCEL_GRACE,
            schedules: Vec::new(),
            beat_every: WORKER_BEAT,
            scale_timing: ScaleTiming::default(),
            queue_metrics: false,
            queue_gauges_every: telemetry::QUEUE_GAUGES_EVERY,
            #[cfg(feature = "prometheus")]
            metrics_listener: None,
        }
    }

    /// How many tasks run at once (default 16; at least 1). Replaces a
    /// [`concurrency_range`](Worker::concurrency_range).
    pub fn concurrency(mut self, concurrency: usize) -> Worker {
        self.min_slots = concurrency.max(1);
        self.max_slots = self.min_slots;
        self
    }

    /// Lets the worker scale how many tasks it runs at once between the
    /// bounds, e.g. `2..=32`, starting at the lower one: it adds a slot
    /// about every 100 ms while its queues have a backlog (every slot busy,
    /// and claimed tasks waiting or the last claim full), and drops the
    /// slots that stayed unused for 30 s. The current number is in the
    /// worker registry and the `sitq_worker_slots` gauge. Replaces a fixed
    /// [`concurrency`](Worker::concurrency); a lower bound of 0 counts as 1.
    pub fn concurrency_range(mut self, range: RangeInclusive<usize>) -> Worker {
        let (min, max) = range.into_inner();
        self.min_slots = min.max(1);
        self.max_slots = max.max(self.min_slots);
        self
    }

    /// How many tasks to claim ahead of free slots (default twice the
    /// concurrency). Claims then come in batches and a finished task's slot is
    /// refilled without a database round trip; the cost is that a busy worker
    /// holds up to this many waiting tasks that another worker could have
    /// run. Set it low (even 0) for long tasks spread over many workers.
    /// With a [`concurrency_range`](Worker::concurrency_range) it is the
    /// prefetch at the upper bound, scaled down with the slots.
    pub fn prefetch(mut self, prefetch: usize) -> Worker {
        self.prefetch = Some(prefetch);
        self
    }

    /// How many tasks to claim ahead when `slots` slots run: proportional
    /// to them.
    pub(crate) fn prefetch_for(&self, slots: usize) -> usize {
        match self.prefetch {
            None => slots * 2,
            Some(prefetch) => (prefetch * slots).div_ceil(self.max_slots),
        }
    }

    /// Whether the worker sets the queue gauges `sitq_queue_depth{queue,status}`
    /// and `sitq_queue_oldest_pending_seconds{queue}` from the database's
    /// counts every 5 s (default: only with a `metrics_listener`, feature
    /// `prometheus`; turn it on when the program installs its own `metrics`
    /// recorder). Each read counts the tasks table: one worker per database
    /// is enough.
    pub fn queue_metrics(mut self, on: bool) -> Worker {
        self.queue_metrics = on;
        self
    }

    /// Serves the worker's metrics for Prometheus at `http://addr/metrics`
    /// (feature `prometheus`): [`run`](Worker::run) installs
    /// `metrics-exporter-prometheus` as the process's `metrics` recorder
    /// with an HTTP listener on `addr`, and turns on
    /// [`queue_metrics`](Worker::queue_metrics). It fails with
    /// [`Error::Config`] when `addr` cannot be bound or the process has a
    /// recorder already (install one exporter per process).
    ///
    /// The metrics: `sitq_tasks_started_total{queue,task}`,
    /// `sitq_tasks_completed_total{queue,task,outcome}` (outcome
    /// `succeeded`, `failed`, `retried`, `cancelled`, `snoozed`), the
    /// histograms `sitq_task_duration_seconds{queue,task}` and
    /// `sitq_task_queue_wait_seconds{queue,task}` (enqueue to start), and
    /// the gauges `sitq_worker_slots{state}` (`busy`, `idle`),
    /// `sitq_queue_depth{queue,status}` and
    /// `sitq_queue_oldest_pending_seconds{queue}`.
    #[cfg(feature = "prometheus")]
    pub fn metrics_listener(mut self, addr: SocketAddr) -> Worker {
        self.metrics_listener = Some(addr);
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

    /// Whether [`run`](Worker::run) stops gracefully on SIGINT/SIGTERM
    /// (default true). A second signal during the drain stops it at once,
    /// as [`ShutdownHandle::force`] does.
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

    /// How long a running task that was cancelled (`Queue::cancel`) may go
    /// on after its [`Context`](sitq_core::Context) says so, before the
    /// worker drops its future (default 5 s; zero drops it at once). A task
    /// that returns `Ok` within the grace period ends `succeeded` (the work
    /// was done); one that returns `Err`, panics or is dropped ends
    /// `cancelled`, never retried.
    pub fn cancel_grace(mut self, grace: Duration) -> Worker {
        self.cancel_grace = grace;
        self
    }

    /// The id stored with every attempt this worker runs, and its id in the
    /// worker registry.
    pub fn id(&self) -> &str {
        &self.worker_id
    }

    /// A handle that stops this worker gracefully.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// Enqueues `task` at every tick of the cron `expression` (UTC), under
    /// the schedule name `name`: each tick once across every worker that
    /// runs a schedule of that name. Five fields (minute hour day-of-month
    /// month day-of-week) or six, seconds first.
    ///
    /// ```no_run
    /// # async fn demo<T: sitq_core::Task>(queue: sitq_core::Queue, report: T) -> sitq_core::Result<()> {
    /// // `report` is a task value, e.g. `report { day: 1 }` from `#[sitq::task] async fn report(day: u32)`.
    /// sitq_worker::Worker::new(queue)
    ///     .schedule("nightly-report", report, "0 0 2 * * *")
    ///     .run()
    ///     .await
    /// # }
    /// ```
    ///
    /// A bad expression fails [`run`](Worker::run) at once with
    /// [`Error::InvalidSchedule`]; [`schedule_with`](Worker::schedule_with)
    /// sets a time zone and a catch-up policy.
    pub fn schedule<T: Task>(
        self,
        name: impl Into<String>,
        task: T,
        expression: impl Into<String>,
    ) -> Worker {
        self.schedule_with(Schedule::new(name, task, expression))
    }

    /// Runs `schedule` (see [`Schedule`]), e.g.
    /// `Schedule::new("nightly", report { day: 1 }, "0 0 2 * * *").tz("Europe/Berlin")`.
    /// Besides these, a worker runs the `#[sitq::task(cron = "...")]`
    /// schedules of the tasks it runs.
    pub fn schedule_with(mut self, schedule: Schedule) -> Worker {
        self.schedules.push(schedule);
        self
    }

    /// Runs until shut down; returns once in-flight tasks are finished and
    /// stored. Fails at once if two linked tasks share a name.
    ///
    /// A forced stop (a second SIGINT/SIGTERM, or
    /// [`ShutdownHandle::force`]) makes it return at once with
    /// [`Error::ForcedShutdown`], abandoning in-flight tasks: they run again
    /// once their leases expire.
    pub async fn run(mut self) -> Result<()> {
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
        let mut schedules = std::mem::take(&mut self.schedules);
        schedules.extend(
            inventory_schedules()
                .filter(|declared| registry.get(declared.task).is_some())
                .map(Schedule::from_registration),
        );
        let firing = match Firing::new(schedules, self.queue.options()) {
            Ok(firing) => firing,
            Err(err) => {
                self.shutdown.finish();
                return Err(err);
            }
        };
        if let Err(err) = self.install_exporter() {
            self.shutdown.finish();
            return Err(err);
        }
        telemetry::describe();
        let backend = self.queue.backend().clone();
        // Sorted, as the registry row wants them.
        let names: Vec<String> = registry.names().into_iter().map(str::to_owned).collect();
        tracing::info!(
            worker.id = %self.worker_id,
            database = %backend.location(),
            tasks = %names.join(", "),
            queues = %if self.queues.is_empty() { "all".to_owned() } else { self.queues.join(", ") },
            concurrency = %self.concurrency_text(),
            "worker starting"
        );
        let shutdown = &self.shutdown;
        let gauge = Gauge::default();
        gauge.set(self.min_slots, 0);
        let fatal = registry::Fatal::default();
        let mut registration = Registration::new(
            backend.clone(),
            WorkerBeat {
                id: self.worker_id.clone(),
                host: registry::hostname(),
                pid: std::process::id(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                queues: self.queues.clone(),
                tasks: names,
                concurrency: 0,
                running: 0,
                ttl: WORKER_TTL,
            },
            gauge.clone(),
            self.beat_every,
            shutdown.requester(),
            fatal.clone(),
        );
        // Before the first claim: a drain asked for already stops at once.
        // Bounded: a database that does not answer is the claim loop's to
        // report, and the next beats retry.
        if tokio::time::timeout(FIRST_BEAT_WITHIN, registration.beat())
            .await
            .is_err()
        {
            tracing::warn!(worker.id = %self.worker_id, "the first worker registry beat timed out; starting anyway");
        }
        let (stop_side, side_stop) = watch::channel(false);
        let beats = tokio::spawn(registration.run(side_stop.clone()));
        let queue_gauges = self.metrics_wanted().then(|| {
            tokio::spawn(
                QueueGauges {
                    backend: backend.clone(),
                    every: self.queue_gauges_every,
                }
                .run(side_stop),
            )
        });
        let scheduler =
            scheduler::spawn(self.queue.backend().clone(), firing, shutdown.subscribe());
        let mut forced = shutdown.subscribe_forced();
        let result = tokio::select! {
            result = runner::Runner::new(&self, registry, gauge.clone()).run(shutdown) => result,
            // Dropping the claim loop aborts its attempts (their JoinSet) and
            // lets the result writer and maintenance end on their own:
            // abandoned claims run again once their leases expire.
            () = shutdown::raised(&mut forced) => {
                tracing::warn!(worker.id = %self.worker_id, "stopped at once; in-flight tasks abandoned (they run again once their leases expire)");
                Err(Error::ForcedShutdown)
            }
        };
        if let Some(scheduler) = scheduler {
            // It stops on the stop request that ended the claim loop; a
            // forced stop, or a claim loop that ended on its own, does not
            // wait for a tick being fired (the database keeps each tick
            // whole: fired, or not at all).
            if matches!(result, Err(Error::ForcedShutdown)) || !*shutdown.subscribe().borrow() {
                scheduler.abort();
            }
            let _ = scheduler.await;
        }
        let _ = stop_side.send(true);
        // A stopped worker has no slots.
        gauge.set(0, 0);
        let side_tasks = std::iter::once(beats).chain(queue_gauges);
        for task in side_tasks {
            if matches!(result, Err(Error::ForcedShutdown)) {
                // At once: the registry row expires on its own within WORKER_TTL.
                task.abort();
            }
            let _ = task.await;
        }
        shutdown.finish();
        tracing::info!(worker.id = %self.worker_id, "worker stopped");
        // A side task that found the database gone stopped the worker.
        let fatal = fatal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match (result, fatal) {
            (Ok(()), Some(err)) => Err(err),
            (result, _) => result,
        }
    }

    /// `8`, or `2..=32` for a range.
    fn concurrency_text(&self) -> String {
        if self.min_slots == self.max_slots {
            self.min_slots.to_string()
        } else {
            format!("{}..={}", self.min_slots, self.max_slots)
        }
    }

    /// Whether the queue gauges are wanted.
    fn metrics_wanted(&self) -> bool {
        #[cfg(feature = "prometheus")]
        if self.metrics_listener.is_some() {
            return true;
        }
        self.queue_metrics
    }

    /// Installs the Prometheus exporter, if asked for.
    fn install_exporter(&self) -> Result<()> {
        #[cfg(feature = "prometheus")]
        if let Some(addr) = self.metrics_listener {
            prometheus::install(addr)?;
            tracing::info!(%addr, "serving metrics for Prometheus at http://{addr}/metrics");
        }
        Ok(())
    }
}

/// How long [`Worker::run`] waits for its first registry beat.
const FIRST_BEAT_WITHIN: Duration = Duration::from_secs(5);

/// [`Worker::cancel_grace`] unless set.
const DEFAULT_CANCEL_GRACE: Duration = Duration::from_secs(5);

pub(crate) fn log_outcome(outcome: &sitq_core::Outcome) {
    match outcome {
        sitq_core::Outcome::Succeeded(_) => tracing::debug!("succeeded"),
        sitq_core::Outcome::Retry { failure, delay } => {
            tracing::warn!(error.kind = %failure.kind, error = %failure.message_for_log(), retry_in = ?delay, "attempt failed; will retry");
        }
        sitq_core::Outcome::Failed(failure) => {
            tracing::error!(error.kind = %failure.kind, error = %failure.message_for_log(), "task failed");
        }
        sitq_core::Outcome::Snooze { delay } => {
            tracing::debug!(run_in = ?delay, "snoozed; will run again without spending an attempt");
        }
        sitq_core::Outcome::Cancelled(failure) => {
            tracing::info!(error = %failure.message_for_log(), "task cancelled");
        }
    }
}

/// Listens for SIGINT/SIGTERM (Ctrl-C elsewhere) until the worker stops:
/// the first asks for a graceful stop, a second forces it.
pub(crate) fn spawn_signal_listener(shutdown: &ShutdownSignal) {
    // Installed now, before the first claim, so a signal from here on is ours.
    let Some(mut termination) = Termination::install() else {
        tracing::warn!(
            "could not install signal handlers; stop the worker with its ShutdownHandle"
        );
        return;
    };
    let requested = shutdown.requester();
    let forcer = shutdown.forcer();
    let mut finished = shutdown.subscribe_finished();
    tokio::spawn(async move {
        let listen = async {
            termination.recv().await;
            tracing::info!(
                "termination signal received; shutting down gracefully (send another to stop at once)"
            );
            requested.send_replace(true);
            termination.recv().await;
            tracing::warn!(
                "second termination signal received; stopping at once, abandoning in-flight tasks"
            );
            forcer.force();
        };
        tokio::select! {
            () = listen => {}
            () = shutdown::raised(&mut finished) => {}
        }
    });
}

/// The process's termination signals. Tokio keeps its handler installed
/// once a signal came, so each one after the first is seen too.
#[cfg(unix)]
struct Termination {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Termination {
    fn install() -> Option<Termination> {
        use tokio::signal::unix::{SignalKind, signal};
        Some(Termination {
            interrupt: signal(SignalKind::interrupt()).ok()?,
            terminate: signal(SignalKind::terminate()).ok()?,
        })
    }

    /// The next SIGINT or SIGTERM.
    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

#[cfg(not(unix))]
struct Termination;

#[cfg(not(unix))]
impl Termination {
    fn install() -> Option<Termination> {
        Some(Termination)
    }

    /// The next Ctrl-C.
    async fn recv(&mut self) {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The schedules `#[sitq::task(cron = "...")]` declared in every linked crate.
fn inventory_schedules() -> impl Iterator<Item = &'static ScheduleRegistration> {
    sitq_core::inventory::iter::<ScheduleRegistration>()
}

fn default_worker_id() -> String {
    let host = registry::hostname();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or(0);
    format!("{host}:{}:{nanos:08x}", std::process::id())
}
