//! An in-memory backend for the worker's own tests (the real backends live
//! in crates the worker does not depend on): enough to claim tasks, hold
//! them and store outcomes. Shared by the unit tests (through `#[path]`)
//! and the integration tests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sitq_core::{
    AttemptFailure, Backend, CancelOutcome, CancelRequest, Cancellation, ClaimRef, ClaimRequest,
    ClaimedTask, Completion, Error, Finished, NewTask, Outcome, Result, Signals, Stats,
    StatusCount, TaskDefaults, TaskFuture, TaskId, TaskRecord, TaskRegistration, TaskStatus,
    WorkerBeat, WorkerControl, WorkerInfo,
};

/// Tasks in a vector, claimed in order.
#[derive(Debug, Default)]
pub struct Memory {
    signals: Signals,
    tasks: Mutex<Vec<TaskRecord>>,
    /// Claims asked for so far.
    pub claims: std::sync::atomic::AtomicUsize,
    /// Whether `next_run_at` says a task is due now (else it knows of none).
    pub due_now: std::sync::atomic::AtomicBool,
    /// The worker registry.
    workers: Mutex<BTreeMap<String, Registered>>,
    /// Every beat received, oldest first.
    beats: Mutex<Vec<WorkerBeat>>,
    /// Workers removed from the registry, in order.
    removed: Mutex<Vec<String>>,
    /// When set, `worker_beat` fails (a database outage).
    pub fail_beats: std::sync::atomic::AtomicBool,
    /// How many claims were made before the first beat came.
    claims_at_first_beat: Mutex<Option<usize>>,
}

/// A worker's last beat, when it first came, when it expires, and whether
/// it was asked to drain.
type Registered = (WorkerBeat, DateTime<Utc>, DateTime<Utc>, bool);

impl Memory {
    fn tasks(&self) -> MutexGuard<'_, Vec<TaskRecord>> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a pending task named `name` with `payload`.
    pub fn add(&self, name: &str, payload: &[u8]) -> TaskId {
        let mut tasks = self.tasks();
        let id = TaskId(tasks.len() as i64 + 1);
        let now = Utc::now();
        tasks.push(TaskRecord {
            id,
            name: name.to_owned(),
            queue: "default".into(),
            status: TaskStatus::Pending,
            priority: 0,
            attempts: 0,
            max_attempts: 3,
            created_at: now,
            run_at: now,
            started_at: None,
            finished_at: None,
            worker_id: None,
            failure: None,
            payload: payload.to_vec(),
            result: None,
            snoozes: 0,
            cancellation: None,
        });
        drop(tasks);
        self.signals.notify_work();
        id
    }

    /// Every beat received so far, oldest first.
    pub fn beats(&self) -> Vec<WorkerBeat> {
        lock(&self.beats).clone()
    }

    /// How many claims were made before the first beat came (`None`
    /// before it).
    pub fn claims_at_first_beat(&self) -> Option<usize> {
        *lock(&self.claims_at_first_beat)
    }

    /// Workers removed from the registry so far.
    pub fn removed(&self) -> Vec<String> {
        lock(&self.removed).clone()
    }

    /// The stored status of `id`.
    pub fn status_of(&self, id: TaskId) -> Option<TaskStatus> {
        self.find(id, |record| record.status)
    }

    fn find<T>(&self, id: TaskId, f: impl FnOnce(&mut TaskRecord) -> T) -> Option<T> {
        self.tasks()
            .iter_mut()
            .find(|record| record.id == id)
            .map(f)
    }

    fn running(record: &TaskRecord, claim: &ClaimRef) -> bool {
        record.id == claim.id
            && record.status == TaskStatus::Running
            && record.attempts == claim.attempt
    }
}

#[async_trait]
impl Backend for Memory {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn signals(&self) -> &Signals {
        &self.signals
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis(20)
    }

    async fn enqueue(&self, tasks: Vec<NewTask>) -> Result<Vec<TaskId>> {
        Ok(tasks
            .iter()
            .map(|task| self.add(&task.name, &task.payload))
            .collect())
    }

    async fn claim(&self, request: ClaimRequest<'_>) -> Result<Vec<ClaimedTask>> {
        self.claims
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut claimed = Vec::new();
        for record in self.tasks().iter_mut() {
            if claimed.len() == request.limit {
                break;
            }
            if record.status != TaskStatus::Pending || !request.names.contains(&record.name) {
                continue;
            }
            record.status = TaskStatus::Running;
            record.attempts += 1;
            record.worker_id = Some(request.worker_id.to_owned());
            if claimed.len() < request.start {
                record.started_at = Some(Utc::now());
            }
            claimed.push(ClaimedTask {
                id: record.id,
                name: record.name.clone(),
                queue: record.queue.clone(),
                payload: record.payload.clone(),
                attempt: record.attempts,
                fence: record.attempts,
                max_attempts: record.max_attempts,
                created_at: record.created_at,
                inputs: None,
                trace: None,
            });
        }
        Ok(claimed)
    }

    async fn start(&self, claims: Vec<ClaimRef>) -> Result<()> {
        for record in self.tasks().iter_mut() {
            if claims.iter().any(|claim| Self::running(record, claim)) {
                record.started_at.get_or_insert_with(Utc::now);
            }
        }
        Ok(())
    }

    async fn release(&self, claims: Vec<ClaimRef>) -> Result<u64> {
        let mut released = 0;
        for record in self.tasks().iter_mut() {
            if record.started_at.is_none()
                && claims.iter().any(|claim| Self::running(record, claim))
            {
                record.status = TaskStatus::Pending;
                record.attempts -= 1;
                record.worker_id = None;
                released += 1;
            }
        }
        Ok(released)
    }

    async fn next_run_at(&self, _: &[String]) -> Result<Option<DateTime<Utc>>> {
        let due = self.due_now.load(std::sync::atomic::Ordering::Relaxed);
        Ok(due.then(|| Utc::now() - chrono::Duration::seconds(1)))
    }

    async fn heartbeat(&self, _: &str, claims: &[ClaimRef], _: Duration) -> Result<Vec<ClaimRef>> {
        let tasks = self.tasks();
        Ok(claims
            .iter()
            .filter(|claim| !tasks.iter().any(|record| Self::running(record, claim)))
            .copied()
            .collect())
    }

    async fn complete(&self, completions: Vec<Completion>) -> Result<Vec<bool>> {
        let mut applied = Vec::new();
        let mut finished = Vec::new();
        let mut tasks = self.tasks();
        for completion in completions {
            let Some(record) = tasks
                .iter_mut()
                .find(|record| Self::running(record, &completion.claim))
            else {
                applied.push(false);
                continue;
            };
            match completion.outcome {
                Outcome::Succeeded(result) => {
                    record.status = TaskStatus::Succeeded;
                    record.result = Some(result);
                }
                Outcome::Retry { failure, .. } => {
                    record.status = TaskStatus::Pending;
                    record.failure = Some(failure);
                }
                Outcome::Failed(failure) => {
                    record.status = TaskStatus::Failed;
                    record.failure = Some(failure);
                }
                Outcome::Snooze { .. } => {
                    record.status = TaskStatus::Pending;
                    record.attempts -= 1;
                    record.snoozes += 1;
                    record.worker_id = None;
                    record.started_at = None;
                }
                Outcome::Cancelled(failure) => {
                    record.status = TaskStatus::Cancelled;
                    record.failure = Some(failure);
                }
            }
            if record.status.is_finished() {
                record.finished_at = Some(Utc::now());
                finished.push(Finished::from(record.clone()));
            }
            applied.push(true);
        }
        drop(tasks);
        self.signals.notify_outcomes(finished);
        self.signals.notify_work();
        Ok(applied)
    }

    async fn recover_expired(&self) -> Result<u64> {
        Ok(0)
    }

    async fn get(&self, id: TaskId) -> Result<Option<TaskRecord>> {
        Ok(self.find(id, |record| record.clone()))
    }

    async fn status(&self, id: TaskId) -> Result<Option<TaskStatus>> {
        Ok(self.status_of(id))
    }

    async fn cancel(&self, id: TaskId, request: &CancelRequest) -> Result<CancelOutcome> {
        let outcome = self
            .find(id, |record| {
                let cancellation = Cancellation {
                    requested_at: Utc::now(),
                    by: request.get_by().to_owned(),
                    reason: request.get_reason().map(str::to_owned),
                };
                match record.status {
                    TaskStatus::Running if record.started_at.is_some() => {
                        record.cancellation.get_or_insert(cancellation);
                        CancelOutcome::Requested
                    }
                    TaskStatus::Pending | TaskStatus::Blocked | TaskStatus::Running => {
                        record.status = TaskStatus::Cancelled;
                        record.cancellation = Some(cancellation);
                        CancelOutcome::Cancelled
                    }
                    status => CancelOutcome::AlreadyFinished(status),
                }
            })
            .ok_or(Error::NotFound(id))?;
        if outcome == CancelOutcome::Cancelled {
            self.signals.notify_finished([id]);
        }
        self.signals.notify_cancel([id]);
        Ok(outcome)
    }

    async fn prune(&self, _: DateTime<Utc>) -> Result<u64> {
        Ok(0)
    }

    async fn close(&self) {}

    async fn cancel_requested(&self, claims: &[ClaimRef]) -> Result<Vec<ClaimRef>> {
        let tasks = self.tasks();
        Ok(claims
            .iter()
            .filter(|claim| {
                tasks
                    .iter()
                    .any(|record| record.id == claim.id && record.cancellation.is_some())
            })
            .copied()
            .collect())
    }

    async fn retry(&self, id: TaskId) -> Result<()> {
        Err(Error::Config(format!(
            "the memory backend cannot retry task {id}"
        )))
    }

    async fn failures(&self, _: TaskId) -> Result<Vec<AttemptFailure>> {
        Ok(Vec::new())
    }

    fn location(&self) -> String {
        "memory".to_owned()
    }

    async fn worker_beat(&self, beat: &WorkerBeat) -> Result<WorkerControl> {
        if self.fail_beats.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Error::Config(
                "the memory backend's registry is down".into(),
            ));
        }
        lock(&self.beats).push(beat.clone());
        lock(&self.claims_at_first_beat)
            .get_or_insert_with(|| self.claims.load(std::sync::atomic::Ordering::Relaxed));
        let now = Utc::now();
        let expires = now + chrono::Duration::from_std(beat.ttl).unwrap_or_default();
        let mut workers = lock(&self.workers);
        workers.retain(|id, (_, _, expires_at, _)| id == &beat.id || *expires_at >= now);
        let entry = workers
            .entry(beat.id.clone())
            .or_insert_with(|| (beat.clone(), now, expires, false));
        entry.0 = beat.clone();
        entry.2 = expires;
        Ok(WorkerControl { drain: entry.3 })
    }

    async fn remove_worker(&self, id: &str) -> Result<()> {
        lock(&self.workers).remove(id);
        lock(&self.removed).push(id.to_owned());
        Ok(())
    }

    async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        let now = Utc::now();
        Ok(lock(&self.workers)
            .values()
            .filter(|(_, _, expires_at, _)| *expires_at >= now)
            .map(|(beat, started_at, expires_at, draining)| WorkerInfo {
                id: beat.id.clone(),
                host: beat.host.clone(),
                pid: beat.pid,
                version: beat.version.clone(),
                queues: beat.queues.clone(),
                tasks: beat.tasks.clone(),
                concurrency: beat.concurrency,
                running: beat.running,
                started_at: *started_at,
                last_seen: now,
                expires_at: *expires_at,
                draining: *draining,
            })
            .collect())
    }

    async fn drain_worker(&self, id: &str) -> Result<bool> {
        let now = Utc::now();
        let found = match lock(&self.workers).get_mut(id) {
            Some(entry) if entry.2 >= now => {
                entry.3 = true;
                true
            }
            _ => false,
        };
        if found {
            self.signals.notify_control();
        }
        Ok(found)
    }

    async fn stats(&self) -> Result<Stats> {
        let now = Utc::now();
        let mut counts: BTreeMap<(String, String, &'static str), StatusCount> = BTreeMap::new();
        for record in self.tasks().iter() {
            let count = counts
                .entry((
                    record.queue.clone(),
                    record.name.clone(),
                    record.status.as_str(),
                ))
                .or_insert_with(|| StatusCount {
                    queue: record.queue.clone(),
                    name: record.name.clone(),
                    status: record.status,
                    count: 0,
                    oldest_due: None,
                });
            count.count += 1;
            if record.status == TaskStatus::Pending && record.run_at <= now {
                let due = count.oldest_due.get_or_insert(record.run_at);
                *due = (*due).min(record.run_at);
            }
        }
        Ok(Stats {
            now,
            counts: counts.into_values().collect(),
            finished: Vec::new(),
            failed_attempts_last_minute: 0,
            failed_attempts_last_hour: 0,
        })
    }

    async fn register_schedules(
        &self,
        _: Vec<sitq_core::schedule::ScheduleDefinition>,
    ) -> sitq_core::Result<Vec<sitq_core::ScheduleInfo>> {
        Err(sitq_core::Error::Config(
            "this test double has no schedules".into(),
        ))
    }

    async fn fire_tick(
        &self,
        _: sitq_core::schedule::TickFire,
    ) -> sitq_core::Result<Option<TaskId>> {
        Err(sitq_core::Error::Config(
            "this test double has no schedules".into(),
        ))
    }

    async fn schedules(&self) -> sitq_core::Result<Vec<sitq_core::ScheduleInfo>> {
        Ok(Vec::new())
    }
    async fn set_queue_paused(&self, _: &str, _: bool) -> Result<()> {
        Err(unsupported())
    }

    async fn set_queue_limits(&self, _: &str, _: sitq_core::QueueLimits) -> Result<()> {
        Err(unsupported())
    }

    async fn queues(&self) -> Result<Vec<sitq_core::QueueInfo>> {
        Err(unsupported())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The error of what this test double does not do.
fn unsupported() -> sitq_core::Error {
    sitq_core::Error::Config("the in-memory test backend has no queue settings".into())
}

/// A task that never returns; its payload, if not empty, is the path of a
/// file it creates when it starts.
pub static HANG: TaskRegistration = TaskRegistration {
    name: "hang",
    file: file!(),
    line: line!(),
    defaults: TaskDefaults::DEFAULT,
    run: hang,
};

fn hang(
    payload: &[u8],
    _: Option<&sitq_core::TaskInputs>,
    _: sitq_core::Context,
) -> Result<TaskFuture> {
    let marker = String::from_utf8_lossy(payload).into_owned();
    Ok(Box::pin(async move {
        if !marker.is_empty() {
            std::fs::write(&marker, b"started").map_err(|err| err.to_string())?;
        }
        std::future::pending().await
    }))
}

/// A task that runs until its gate opens; its payload names the gate (see
/// [`Gate`]).
pub static GATED: TaskRegistration = TaskRegistration {
    name: "gated",
    file: file!(),
    line: line!(),
    defaults: TaskDefaults::DEFAULT,
    run: gated,
};

/// Holds [`GATED`] tasks until opened, counting how many run at once.
/// Named, so tests running side by side each have their own.
#[derive(Debug)]
pub struct Gate {
    open: tokio::sync::watch::Sender<bool>,
    running: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
    finished: std::sync::atomic::AtomicUsize,
}

static GATES: Mutex<BTreeMap<String, std::sync::Arc<Gate>>> = Mutex::new(BTreeMap::new());

impl Gate {
    /// A closed gate named `name` (the payload of its tasks).
    pub fn new(name: &str) -> std::sync::Arc<Gate> {
        let gate = std::sync::Arc::new(Gate {
            open: tokio::sync::watch::Sender::new(false),
            running: Default::default(),
            peak: Default::default(),
            finished: Default::default(),
        });
        lock(&GATES).insert(name.to_owned(), gate.clone());
        gate
    }

    /// Lets every task through, now and later.
    pub fn open(&self) {
        self.open.send_replace(true);
    }

    /// The most tasks that ran at once.
    pub fn peak(&self) -> usize {
        self.peak.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How many tasks run now.
    pub fn running(&self) -> usize {
        self.running.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How many tasks went through.
    pub fn finished(&self) -> usize {
        self.finished.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn gated(
    payload: &[u8],
    _: Option<&sitq_core::TaskInputs>,
    _: sitq_core::Context,
) -> Result<TaskFuture> {
    use std::sync::atomic::Ordering::SeqCst;
    let name = String::from_utf8_lossy(payload).into_owned();
    let gate = lock(&GATES)
        .get(&name)
        .cloned()
        .ok_or_else(|| Error::Config(format!("no gate named {name:?}")))?;
    Ok(Box::pin(async move {
        let now = gate.running.fetch_add(1, SeqCst) + 1;
        gate.peak.fetch_max(now, SeqCst);
        let mut open = gate.open.subscribe();
        let _ = open.wait_for(|open| *open).await;
        gate.running.fetch_sub(1, SeqCst);
        gate.finished.fetch_add(1, SeqCst);
        Ok(Vec::new())
    }))
}
