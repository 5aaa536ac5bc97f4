//! An in-memory backend for the worker's own tests (the real backends live
//! in crates the worker does not depend on): enough to claim tasks, hold
//! them and store outcomes. Shared by the unit tests (through `#[path]`)
//! and the integration tests.

#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sitq_core::{
    AttemptFailure, Backend, CancelOutcome, CancelRequest, Cancellation, ClaimRef, ClaimRequest,
    ClaimedTask, Completion, Error, Finished, NewTask, Outcome, Result, Signals, TaskDefaults,
    TaskFuture, TaskId, TaskRecord, TaskRegistration, TaskStatus,
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
}

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
                max_attempts: record.max_attempts,
                created_at: record.created_at,
                inputs: None,
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
