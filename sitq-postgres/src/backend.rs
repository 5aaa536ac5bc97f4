//! [`PostgresBackend`]: the [`Backend`] trait on PostgreSQL.
//!
//! Each operation lives in its own module below; this one owns the pool, the
//! listener and the local signals, and raises local signals after commits
//! (the listener also hears this process's own notifications, which only
//! wakes a waiter twice).
//!
//! Every operation is one statement, hence one transaction and one round
//! trip; those that change tasks send their own `NOTIFY` from inside it.

mod admin;
mod claim;
mod complete;
pub(crate) mod deps;
mod diagnose;
mod enqueue;
pub(crate) mod failure;
mod inspect;
mod purge;
mod queues;
mod reserve;
mod resolve;
mod schedules;
pub(crate) mod unique;
mod workers;

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sitq_core::ScheduleInfo;
use sitq_core::schedule::{ScheduleDefinition, TickFire};
use sitq_core::{
    ActivityBucket, AttemptFailure, AuditEntry, Backend, CancelOutcome, CancelRequest, ClaimRef,
    ClaimRequest, ClaimedTask, Completion, ConnectOptions, Diagnosis, Enqueued, Error, Finished,
    NewAuditEntry, NewTask, NewWorkflow, QueueInfo, QueueLimits, Result, Signals, Stats,
    StoredWorkflow, TaskFilter, TaskId, TaskLinks, TaskRecord, TaskStatus, TaskSummary, WorkerBeat,
    WorkerControl, WorkerInfo, WorkflowId, WorkflowInfo,
};
use sqlx::postgres::PgPool;

use crate::connect::{self, Settings};
use crate::listener::Listener;
use crate::notify::Notices;

/// The PostgreSQL [`Backend`].
///
/// Holds a connection pool for calls and one more connection that listens
/// for notifications from every process sharing the database. Dropping it
/// (or calling [`Backend::close`]) stops the listener.
#[derive(Debug)]
pub struct PostgresBackend {
    pool: PgPool,
    signals: Arc<Signals>,
    poll_interval: Duration,
    listener: Listener,
    /// `postgres://host:port/database`, for [`Backend::location`].
    location: String,
    /// Whether the last claim found a queue with limits (see `claim::claim`).
    limits_seen: AtomicBool,
}

impl PostgresBackend {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`),
    /// applies sitq's migrations and starts listening for notifications.
    ///
    /// Fails with [`Error::Database`] when the server cannot be reached within
    /// the URL's `connect_timeout` (default 10 s), and with
    /// [`Error::InvalidUrl`] when the URL does not parse.
    pub async fn connect(url: &str, options: ConnectOptions) -> Result<PostgresBackend> {
        let settings = Settings::parse(url)?;
        settings.probe().await?;
        let pool = settings.pool(options.max_connections);
        connect::migrate(&pool).await?;
        let signals = Arc::new(Signals::new());
        let listener = Listener::start(settings.listener_pool(), signals.clone()).await?;
        Ok(PostgresBackend {
            pool,
            signals,
            poll_interval: options.poll_interval,
            listener,
            location: settings.location(),
            limits_seen: AtomicBool::new(false),
        })
    }

    /// Raises the local signals for what a committed transaction notified.
    fn signal(&self, notices: &Notices) {
        if notices.work {
            self.signals.notify_work();
        }
        if !notices.finished.is_empty() {
            self.signals
                .notify_finished(notices.finished.iter().copied());
        }
    }

    /// Raises the local signals for a committed transaction whose finished
    /// tasks are known in full: their waiters here get `outcomes` without a
    /// query (and so do waiters that come later).
    fn signal_outcomes(&self, notices: &Notices, outcomes: Vec<Finished>) {
        if notices.work {
            self.signals.notify_work();
        }
        if outcomes.len() < notices.finished.len() {
            // An outcome that did not convert is looked up instead.
            let known: HashSet<TaskId> = outcomes.iter().map(|finished| finished.id).collect();
            self.signals.notify_finished(
                notices
                    .finished
                    .iter()
                    .copied()
                    .filter(|id| !known.contains(id)),
            );
        }
        if !outcomes.is_empty() {
            self.signals.notify_outcomes(outcomes);
        }
    }
}

#[async_trait]
impl Backend for PostgresBackend {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn signals(&self) -> &Signals {
        &self.signals
    }

    fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    async fn enqueue(&self, tasks: Vec<NewTask>) -> Result<Vec<TaskId>> {
        if tasks.iter().any(|task| !task.deps.is_empty()) {
            let stored = deps::enqueue(&self.pool, &tasks, None).await?;
            self.signal_outcomes(&stored.resolution.notices, stored.resolution.outcomes);
            return Ok(stored.ids);
        }
        if tasks.iter().any(|task| task.unique.is_some()) {
            let enqueued = self.enqueue_unique(tasks).await?;
            return Ok(enqueued.into_iter().map(|e| e.id).collect());
        }
        let ids = enqueue::enqueue(&self.pool, tasks).await?;
        if !ids.is_empty() {
            self.signals.notify_work();
        }
        Ok(ids)
    }

    async fn enqueue_workflow(&self, workflow: NewWorkflow) -> Result<StoredWorkflow> {
        let (stored, resolution) = deps::enqueue_workflow(&self.pool, workflow).await?;
        self.signal_outcomes(&resolution.notices, resolution.outcomes);
        Ok(stored)
    }

    async fn workflow(&self, id: WorkflowId) -> Result<Option<WorkflowInfo>> {
        deps::workflow(&self.pool, id).await
    }

    async fn claim(&self, request: ClaimRequest<'_>) -> Result<Vec<ClaimedTask>> {
        claim::claim(&self.pool, request, &self.limits_seen).await
    }

    async fn start(&self, claims: Vec<ClaimRef>) -> Result<()> {
        reserve::start(&self.pool, claims).await
    }

    async fn release(&self, claims: Vec<ClaimRef>) -> Result<u64> {
        let (released, notices) = reserve::release(&self.pool, claims).await?;
        self.signal(&notices);
        Ok(released)
    }

    async fn next_run_at(&self, queues: &[String]) -> Result<Option<DateTime<Utc>>> {
        queues::next_run_at(&self.pool, queues).await
    }

    async fn heartbeat(
        &self,
        worker_id: &str,
        claims: &[ClaimRef],
        lease: Duration,
    ) -> Result<Vec<ClaimRef>> {
        claim::heartbeat(&self.pool, worker_id, claims, lease).await
    }

    async fn complete(&self, completions: Vec<Completion>) -> Result<Vec<bool>> {
        let (applied, notices, outcomes) = complete::complete(&self.pool, completions).await?;
        self.signal_outcomes(&notices, outcomes);
        Ok(applied)
    }

    async fn recover_expired(&self) -> Result<u64> {
        let (recovered, notices, outcomes) = complete::recover_expired(&self.pool).await?;
        self.signal_outcomes(&notices, outcomes);
        Ok(recovered)
    }

    async fn get(&self, id: TaskId) -> Result<Option<TaskRecord>> {
        inspect::get(&self.pool, id).await
    }

    async fn status(&self, id: TaskId) -> Result<Option<TaskStatus>> {
        inspect::status(&self.pool, id).await
    }

    async fn finished(&self, ids: &[TaskId]) -> Result<Vec<Finished>> {
        inspect::finished(&self.pool, ids).await
    }

    async fn cancel(&self, id: TaskId, request: &CancelRequest) -> Result<CancelOutcome> {
        let (outcome, finished, notices) = inspect::cancel(&self.pool, id, request).await?;
        if notices.work {
            self.signals.notify_work();
        }
        self.signals.notify_outcomes(finished);
        if !matches!(outcome, CancelOutcome::AlreadyFinished(_)) {
            // The listener hears it too; this one is sooner.
            self.signals.notify_cancel([id]);
        }
        Ok(outcome)
    }

    async fn purge(&self, before: DateTime<Utc>, statuses: &[TaskStatus]) -> Result<u64> {
        purge::purge(&self.pool, before, statuses).await
    }

    async fn set_queue_paused(&self, queue: &str, paused: bool) -> Result<()> {
        sitq_core::validate_queue_name(queue)?;
        queues::set_paused(&self.pool, queue, paused).await?;
        if !paused {
            self.signals.notify_work();
        }
        Ok(())
    }

    async fn set_queue_limits(&self, queue: &str, limits: QueueLimits) -> Result<()> {
        sitq_core::validate_queue_name(queue)?;
        limits.validate()?;
        queues::set_limits(&self.pool, queue, &limits).await?;
        self.signals.notify_work();
        Ok(())
    }

    async fn queues(&self) -> Result<Vec<QueueInfo>> {
        queues::list(&self.pool).await
    }

    async fn close(&self) {
        self.listener.stop().await;
        self.pool.close().await;
    }

    async fn cancel_requested(&self, claims: &[ClaimRef]) -> Result<Vec<ClaimRef>> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<TaskId> = claims.iter().map(|claim| claim.id).collect();
        let found = inspect::cancel_requested(&self.pool, &ids).await?;
        Ok(claims
            .iter()
            .filter(|claim| found.contains(&claim.id))
            .copied()
            .collect())
    }

    async fn retry(&self, id: TaskId) -> Result<()> {
        inspect::retry(&self.pool, id).await?;
        self.signals.forget_outcome(id);
        self.signals.notify_work();
        Ok(())
    }

    async fn failures(&self, id: TaskId) -> Result<Vec<AttemptFailure>> {
        inspect::failures(&self.pool, id).await
    }

    async fn enqueue_unique(&self, tasks: Vec<NewTask>) -> Result<Vec<Enqueued>> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let enqueued = unique::enqueue(&self.pool, &tasks).await?;
        if enqueued.iter().any(|e| !e.duplicate) {
            self.signals.notify_work();
        }
        Ok(enqueued)
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    async fn register_schedules(
        &self,
        schedules: Vec<ScheduleDefinition>,
    ) -> Result<Vec<ScheduleInfo>> {
        if schedules.is_empty() {
            return Ok(Vec::new());
        }
        schedules::register(&self.pool, schedules).await
    }

    async fn fire_tick(&self, fire: TickFire) -> Result<Option<TaskId>> {
        let fired = schedules::fire_tick(&self.pool, fire).await?;
        if fired.is_some() {
            self.signals.notify_work();
        }
        Ok(fired)
    }

    async fn schedules(&self) -> Result<Vec<ScheduleInfo>> {
        schedules::list(&self.pool).await
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    async fn worker_beat(&self, beat: &WorkerBeat) -> Result<WorkerControl> {
        workers::beat(&self.pool, beat).await
    }

    async fn remove_worker(&self, id: &str) -> Result<()> {
        workers::remove(&self.pool, id).await
    }

    async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        workers::list(&self.pool).await
    }

    async fn drain_worker(&self, id: &str) -> Result<bool> {
        let drained = workers::drain(&self.pool, id).await?;
        if drained {
            // The listener hears the NOTIFY too; this one is sooner.
            self.signals.notify_control();
        }
        Ok(drained)
    }

    async fn tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskSummary>> {
        admin::tasks(&self.pool, filter).await
    }

    async fn stats(&self) -> Result<Stats> {
        admin::stats(&self.pool).await
    }

    async fn activity(
        &self,
        since: DateTime<Utc>,
        bucket: Duration,
    ) -> Result<Vec<ActivityBucket>> {
        admin::activity(&self.pool, since, bucket).await
    }

    async fn links(&self, id: TaskId) -> Result<Option<TaskLinks>> {
        admin::links(&self.pool, id).await
    }

    async fn delete(&self, id: TaskId) -> Result<()> {
        purge::delete(&self.pool, id).await
    }

    async fn check_audit(&self) -> Result<()> {
        admin::check_audit(&self.pool).await
    }

    async fn record_audit(&self, entry: &NewAuditEntry) -> Result<()> {
        admin::record_audit(&self.pool, entry).await
    }

    async fn audit_log(&self, limit: usize, before: Option<i64>) -> Result<Vec<AuditEntry>> {
        admin::audit_log(&self.pool, limit, before).await
    }

    async fn diagnose(&self, oversized_bytes: usize) -> Result<Diagnosis> {
        diagnose::diagnose(&self.pool, self.location.clone(), oversized_bytes).await
    }
}

/// The longest lease or delay sent to the server: far beyond any real use,
/// and well inside PostgreSQL's timestamp range.
const MAX_INTERVAL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `duration` in whole microseconds (PostgreSQL's resolution), capped at
/// [`MAX_INTERVAL`]. SQL turns it into an interval with `$n * interval '1
/// microsecond'`: sqlx refuses to encode a `Duration` with nanoseconds, which
/// jittered backoffs have.
fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.min(MAX_INTERVAL).as_micros()).unwrap_or(i64::MAX)
}

/// A stored count as the API's `u32`; a negative one means a corrupt row.
fn count(value: i32, what: &'static str) -> Result<u32> {
    u32::try_from(value)
        .map_err(|_| Error::database(what, format!("stored count {value} is negative")))
}

/// An API count for an `INT` column; counts beyond `i32::MAX` mean "unlimited" anyway.
fn to_int(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// `text` as PostgreSQL's text can hold it: a NUL character (which it
/// refuses) written as `\0`.
fn without_nul(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\\0"))
    } else {
        Cow::Borrowed(text)
    }
}
