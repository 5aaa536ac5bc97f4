use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::Result;
use crate::audit::{AuditEntry, NewAuditEntry};
use crate::cancel::{CancelOutcome, CancelRequest};
use crate::dependency::{Dependencies, TaskInputs};
use crate::inspect::{ActivityBucket, Diagnosis, Stats, TaskFilter, TaskLinks, TaskSummary};
use crate::options::ConnectOptions;
use crate::queue_settings::{QueueInfo, QueueLimits};
use crate::record::{AttemptFailure, TaskFailure, TaskId, TaskRecord, TaskStatus};
use crate::schedule::{ScheduleDefinition, ScheduleInfo, TickFire};
use crate::signals::Signals;
use crate::unique::{Enqueued, UniqueKey};
use crate::workers::{WorkerBeat, WorkerControl, WorkerInfo};
use crate::workflow::{NewWorkflow, StoredWorkflow, WorkflowId, WorkflowInfo};

/// Storage for tasks. Implemented by `sitq-sqlite` and `sitq-postgres`.
///
/// Every implementation keeps the semantics in DESIGN.md and passes the
/// conformance suite in `sitq_core::testing`. Times that matter for ordering
/// and leases are taken from the backend's own clock (the database server's,
/// where there is one), which is why the worker passes durations, not instants.
#[async_trait]
pub trait Backend: Send + Sync + fmt::Debug + 'static {
    /// A short name for logs: `"sqlite"`, `"postgres"`.
    fn name(&self) -> &'static str;

    /// In-process wake-ups: new work, finished tasks.
    fn signals(&self) -> &Signals;

    /// How often waiters and idle workers look at the database when no
    /// notification can reach them.
    fn poll_interval(&self) -> Duration;

    /// Stores `tasks` in one transaction, all or nothing; returns their ids in order.
    /// Signals new work after the commit. Tasks with a unique key are
    /// deduplicated as by [`enqueue_unique`](Backend::enqueue_unique) (a
    /// duplicate's id is its key holder's).
    ///
    /// A task with [`NewTask::deps`] is stored with them (a `Batch(i)`
    /// dependency is the `i`-th task of this call, always an earlier one)
    /// and its status follows from theirs, read under a lock that orders
    /// this enqueue with their completion (none is missed):
    /// - a dependency that failed or was cancelled cancels it at once (by
    ///   [`DEPENDENCY_CANCELLED_BY`](crate::DEPENDENCY_CANCELLED_BY), reason
    ///   `dependency {id} ({name}) failed` / `was cancelled`, error kind
    ///   `cancelled`), unless `after_finished`; a task cancelled so cancels
    ///   its own dependents in the batch the same way;
    /// - otherwise it is `blocked` while some dependency has not succeeded
    ///   (with `after_finished`: has not finished), counting each distinct
    ///   dependency once, and `pending` when none is left.
    ///
    /// When a dependency finishes later (by [`complete`](Backend::complete),
    /// [`recover_expired`](Backend::recover_expired) or
    /// [`cancel`](Backend::cancel)), its blocked dependents are resolved the
    /// same way, transitively, without scanning other blocked rows: a
    /// dependent left with nothing to wait for becomes `pending` and
    /// workers are woken; one cancelled is signalled to waiters like any
    /// finish. [`prune`](Backend::prune) keeps a succeeded task while a
    /// dependent that receives its result has not finished.
    async fn enqueue(&self, tasks: Vec<NewTask>) -> Result<Vec<TaskId>>;

    /// Stores a workflow: a row for it, then its tasks as by
    /// [`enqueue`](Backend::enqueue) (their `Batch` dependencies point
    /// within it), each marked with the workflow's id, all in one
    /// transaction. Its final task is the last one.
    ///
    /// The default refuses with [`Error::InvalidOptions`](crate::Error::InvalidOptions).
    async fn enqueue_workflow(&self, workflow: NewWorkflow) -> Result<StoredWorkflow> {
        let _ = workflow;
        Err(crate::Error::InvalidOptions(format!(
            "the {} backend does not support workflows",
            self.name()
        )))
    }

    /// A workflow and every task of it (id, name, status, dependencies),
    /// in id order; `None` for an unknown id. Tasks pruned since are left out.
    async fn workflow(&self, id: WorkflowId) -> Result<Option<WorkflowInfo>> {
        let _ = id;
        Ok(None)
    }

    /// Atomically claims up to `request.limit` pending tasks whose `run_at` has
    /// come and whose name is in `request.names`, in order (priority desc,
    /// run_at, id), from `request.queues` (all queues when empty): each
    /// becomes running, `attempts + 1`, with the worker id and a lease of
    /// `request.lease`. The first `request.start` of them (in that order)
    /// start now (`started_at` = now); the rest are *reserved*: held by the
    /// worker with `started_at` unset until [`start`](Backend::start) marks
    /// them, and given back by [`release`](Backend::release) or by lease
    /// recovery without spending an attempt. Queue settings and sequences
    /// restrict what is claimable: see
    /// [`set_queue_paused`](Backend::set_queue_paused),
    /// [`set_queue_limits`](Backend::set_queue_limits) and
    /// [`EnqueueOptions::sequence`](crate::EnqueueOptions::sequence).
    /// Blocked tasks are never claimed. A claimed task enqueued to receive
    /// its dependencies' results carries them in [`ClaimedTask::inputs`],
    /// read in the claim (one more query for all such tasks of a claim).
    async fn claim(&self, request: ClaimRequest<'_>) -> Result<Vec<ClaimedTask>>;

    /// Marks reserved claims as started (`started_at` = now), fenced: only
    /// claims still running under that attempt and not yet started change.
    async fn start(&self, claims: Vec<ClaimRef>) -> Result<()>;

    /// Gives reserved claims that never started back: pending again, the
    /// attempt not spent (`attempts - 1`), no worker, no lease. Fenced like
    /// [`start`](Backend::start); a claim that started is left alone.
    /// Returns how many went back.
    async fn release(&self, claims: Vec<ClaimRef>) -> Result<u64>;

    /// The earliest `run_at` of pending tasks in `queues` (all when empty), if any.
    async fn next_run_at(&self, queues: &[String]) -> Result<Option<DateTime<Utc>>>;

    /// Extends the leases of `claims` (still running under that attempt and
    /// worker) to now + `lease`; returns the claims that were lost.
    async fn heartbeat(
        &self,
        worker_id: &str,
        claims: &[ClaimRef],
        lease: Duration,
    ) -> Result<Vec<ClaimRef>>;

    /// Records outcomes, fenced: each applies only if its task is still running
    /// under the same attempt. Returns, per completion, whether it applied.
    /// Signals finished tasks after the commit.
    ///
    /// Failure outcomes (`Retry`, `Failed`, `Cancelled`) also add a row to
    /// the task's failure history, and a `Retry` or `Failed` of a task with
    /// a cancel request makes it `cancelled` (a cancel is never retried).
    /// A batch of successes only pays for none of this.
    async fn complete(&self, completions: Vec<Completion>) -> Result<Vec<bool>>;

    /// Returns tasks whose lease expired to pending (or to failed when they
    /// have no attempts left, or to cancelled when they have a cancel
    /// request), recording a `LeaseExpired` failure (in the record and the
    /// failure history). A reserved task that never started goes back to
    /// pending with its attempt not spent and no failure recorded. Returns
    /// how many.
    async fn recover_expired(&self) -> Result<u64>;

    /// The full record of a task.
    async fn get(&self, id: TaskId) -> Result<Option<TaskRecord>>;

    /// Just the status of a task (cheaper than [`get`](Backend::get)).
    async fn status(&self, id: TaskId) -> Result<Option<TaskStatus>>;

    /// The outcomes of those of `ids` that have finished (succeeded, failed
    /// or cancelled), in any order; unfinished and unknown ids are left out.
    /// One query for all of them, for the waiters of one process.
    async fn finished(&self, ids: &[TaskId]) -> Result<Vec<Finished>> {
        let mut finished = Vec::new();
        for &id in ids {
            if let Some(record) = self.get(id).await?
                && record.status.is_finished()
            {
                finished.push(Finished::from(record));
            }
        }
        Ok(finished)
    }

    /// Cancels task `id` on behalf of `request` (already validated), in one
    /// transaction:
    /// - pending, blocked, or running but reserved (`started_at` unset: the
    ///   worker holding it has not started it, and its start mark is
    ///   fenced): `cancelled` at once, `finished_at` = now, the reserved
    ///   attempt not spent, `error_kind` `cancelled` with
    ///   [`CancelRequest::message`] as the error, the request stored
    ///   (`cancel_requested_at`, `cancelled_by`, `cancel_reason`); waiters
    ///   are signalled like for any finish. [`CancelOutcome::Cancelled`].
    /// - running (started): only the request is stored (a second request
    ///   keeps the first) and the workers are told
    ///   ([`Signals::notify_cancel`], and the backend's cross-process
    ///   signal); [`CancelOutcome::Requested`].
    /// - finished: nothing changes; [`CancelOutcome::AlreadyFinished`].
    ///
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown id.
    async fn cancel(&self, id: TaskId, request: &CancelRequest) -> Result<CancelOutcome>;

    /// Deletes finished tasks that finished before `before`; returns how many.
    /// The same as [`purge`](Backend::purge) of every finished state.
    async fn prune(&self, before: DateTime<Utc>) -> Result<u64> {
        self.purge(before, &[]).await
    }

    /// Deletes tasks in `statuses` (every finished state when empty; only
    /// finished states are ever deleted, the caller checks) that finished
    /// before `before`, with their failure history and dependency rows,
    /// keeping a succeeded task while a dependent that receives its result
    /// has not finished (as [`prune`](Backend::prune) always did); returns
    /// how many were deleted.
    async fn purge(&self, before: DateTime<Utc>, statuses: &[TaskStatus]) -> Result<u64> {
        let _ = (before, statuses);
        Err(unsupported(self.name(), "purge"))
    }

    /// Closes connections; further calls fail.
    async fn close(&self);

    /// Of `claims` (held by one worker), those whose task has a stored
    /// cancel request while running, or was cancelled (a reserved claim
    /// cancelled before it started). One query; the worker calls it when
    /// told of cancellations and about once a second while it runs tasks.
    async fn cancel_requested(&self, claims: &[ClaimRef]) -> Result<Vec<ClaimRef>>;

    /// Runs a `failed` or `cancelled` task again with fresh attempts: in one
    /// statement it becomes pending with `attempts` = 0, `run_at` = now, and
    /// no worker, lease, start, finish, result or cancel request (the last
    /// error stays in the record, every earlier one in its failure
    /// history). Signals work after the commit, and forgets the task's
    /// outcome in this process's [`Signals`] so that a new wait sees the new
    /// run.
    ///
    /// A task with dependencies becomes `blocked` instead while any of
    /// them has not succeeded (with `after_finished`: not finished),
    /// counted afresh; a failed or cancelled dependency keeps it blocked
    /// until that dependency is retried and succeeds. A retried task's own
    /// dependents are resolved again when it finishes.
    ///
    /// [`Error::NotRetryable`](crate::Error::NotRetryable) for another
    /// status, [`Error::NotFound`](crate::Error::NotFound) for an unknown id.
    async fn retry(&self, id: TaskId) -> Result<()>;

    /// The failure history of task `id`, oldest first (empty for an unknown
    /// id). Written by [`complete`](Backend::complete) for `Retry`, `Failed`
    /// and `Cancelled` outcomes and by
    /// [`recover_expired`](Backend::recover_expired) for a started attempt
    /// whose lease ran out; deleted with the task by
    /// [`prune`](Backend::prune).
    async fn failures(&self, id: TaskId) -> Result<Vec<AttemptFailure>>;

    /// [`enqueue`](Backend::enqueue), honouring unique keys; one answer per task, in order.
    ///
    /// A task whose [`NewTask::unique`] key (scoped by its name) is held by a
    /// task that blocks it (pending, blocked or running, or succeeded less
    /// than its window ago; see [`holder_blocks`](crate::holder_blocks)) is
    /// not stored: its answer is the holder's id with `duplicate` set. A
    /// holder that no longer blocks is released in the same transaction, and
    /// the new task takes the key. Within one batch, a later task with the
    /// key of an earlier one is a duplicate of it. A unique index on
    /// `(name, unique_key)` makes this hold for any number of concurrent
    /// producers: exactly one task holds a key at a time. All or nothing, like `enqueue`.
    ///
    /// The default serves backends without unique keys: tasks without one
    /// are enqueued, a key is refused with [`Error::InvalidOptions`](crate::Error::InvalidOptions).
    async fn enqueue_unique(&self, tasks: Vec<NewTask>) -> Result<Vec<Enqueued>> {
        if tasks.iter().any(|task| task.unique.is_some()) {
            return Err(crate::Error::InvalidOptions(format!(
                "the {} backend does not support unique keys",
                self.name()
            )));
        }
        let ids = self.enqueue(tasks).await?;
        Ok(ids
            .into_iter()
            .map(|id| Enqueued {
                id,
                duplicate: false,
            })
            .collect())
    }

    /// The backend as [`Any`](std::any::Any), for backend crates' own entry
    /// points (e.g. a transaction on a [`Queue`](crate::Queue)'s database);
    /// `None` unless the backend offers it.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
    /// Stores `schedules` in one transaction, each inserted or updated by
    /// name (names are distinct): task, queue, expression, zone and catch-up
    /// are overwritten, `next_fire` too, and `last_seen` becomes the
    /// definition's `now`; `defined_at` is that `now` for a new schedule and
    /// for one whose expression or zone changed, and kept otherwise;
    /// `last_fire` is kept. Returns the stored rows, in any order.
    async fn register_schedules(
        &self,
        schedules: Vec<ScheduleDefinition>,
    ) -> Result<Vec<ScheduleInfo>>;

    /// Fires one tick, once across every caller: in one transaction, unless
    /// the tick `(fire.schedule, fire.tick)` was fired already (or is older
    /// than the deduplication horizon, [`TICK_RETENTION`](crate::schedule::TICK_RETENTION)
    /// before the newest tick fired), records it, enqueues `fire.task` and
    /// returns its id; otherwise changes nothing and returns `None`. A fired
    /// tick also sets the schedule's `last_fire` (to the later of it and the
    /// stored one; `next_fire` with it when it is the latest), `last_seen`,
    /// and deletes the schedule's ticks older than the horizon. Signals new
    /// work after the commit, like [`enqueue`](Backend::enqueue).
    async fn fire_tick(&self, fire: TickFire) -> Result<Option<TaskId>>;

    /// Every stored schedule, by name.
    async fn schedules(&self) -> Result<Vec<ScheduleInfo>>;

    /// Pauses (`paused`) or resumes `queue`, stored in the database. From the
    /// moment this returns, no claim of any process takes a task of a paused
    /// queue (the claim reads the setting in its own statement or write
    /// transaction); tasks already claimed run on. Resuming wakes idle
    /// workers, in this process and in others. A queue with no settings left
    /// (resumed, no limits) has its settings row removed.
    async fn set_queue_paused(&self, queue: &str, paused: bool) -> Result<()>;

    /// Sets (or, with [`QueueLimits::new`], clears) `queue`'s global limits,
    /// stored in the database and enforced by every claim of every process:
    /// a claim takes at most `concurrency - running` tasks of the queue
    /// (reserved claims count as running), and at most `count - claimed`
    /// where `claimed` counts the queue's claims in the last `period` (an
    /// exact sliding window); claims of a rate-limited queue are never
    /// reserved (they are among the first [`ClaimRequest::start`]), so every
    /// claim counted is a start. [`next_run_at`](Backend::next_run_at) leaves
    /// out tasks that paused queues, full concurrency limits or sequences
    /// hold, and reports a rate-limited queue's due tasks no earlier than its
    /// next free slot. Finishing a task of a concurrency-limited queue, or of
    /// a sequence, wakes idle workers. Invalid limits are an
    /// [`Error::InvalidQueueSettings`](crate::Error::InvalidQueueSettings).
    async fn set_queue_limits(&self, queue: &str, limits: QueueLimits) -> Result<()>;

    /// Every queue with settings or with pending or running tasks, by name,
    /// with its settings and those counts.
    async fn queues(&self) -> Result<Vec<QueueInfo>>;

    /// Where the database is, for logs and `doctor`: the SQLite file's
    /// absolute path (`sqlite:///abs/path`), or the PostgreSQL
    /// `postgres://host:port/database` (never a password).
    fn location(&self) -> String {
        self.name().to_owned()
    }

    /// Registers worker `beat.id` or refreshes its row (in one statement or
    /// transaction): every field of `beat` is stored, `last_seen` = now and
    /// `expires_at` = now + `beat.ttl` (the database's clock), `started_at`
    /// set at the first beat only, a drain request kept; rows of other
    /// workers that expired are deleted. Returns what the worker is asked
    /// to do.
    async fn worker_beat(&self, beat: &WorkerBeat) -> Result<WorkerControl> {
        let _ = beat;
        Err(unsupported(self.name(), "a worker registry"))
    }

    /// Removes worker `id`'s row (its clean stop); a no-op for an unknown id.
    async fn remove_worker(&self, id: &str) -> Result<()> {
        let _ = id;
        Err(unsupported(self.name(), "a worker registry"))
    }

    /// Every live worker (its row not expired), by id.
    async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        Err(unsupported(self.name(), "a worker registry"))
    }

    /// Asks live worker `id` to drain: stored in its row, which its next
    /// beat reads (within [`WORKER_BEAT`](crate::WORKER_BEAT)), and told
    /// at once to workers in this process ([`Signals::notify_control`])
    /// and, where the backend can, in others (PostgreSQL: `NOTIFY`).
    /// Returns `false` when no live worker has that id.
    async fn drain_worker(&self, id: &str) -> Result<bool> {
        let _ = id;
        Err(unsupported(self.name(), "a worker registry"))
    }

    /// Tasks matching `filter`, newest (highest id) first, at most
    /// `filter.limit` (capped at [`MAX_LIST`](crate::inspect::MAX_LIST)).
    async fn tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskSummary>> {
        let _ = filter;
        Err(unsupported(self.name(), "task lists"))
    }

    /// Counts by queue, name and state, recent finishes and failed
    /// attempts, at the database's clock (see [`Stats`]).
    async fn stats(&self) -> Result<Stats> {
        Err(unsupported(self.name(), "statistics"))
    }

    /// Whether this connection may add to the audit log, checked before an
    /// admin action ([`Audited`](crate::Audited)) so that one it could not
    /// record is refused rather than done unrecorded:
    /// [`Error::PermissionDenied`](crate::Error::PermissionDenied) when the
    /// database role may not write the audit log.
    async fn check_audit(&self) -> Result<()> {
        Err(unsupported(self.name(), "an audit log"))
    }

    /// Adds `entry` to the audit log at the database's clock.
    async fn record_audit(&self, entry: &NewAuditEntry) -> Result<()> {
        let _ = entry;
        Err(unsupported(self.name(), "an audit log"))
    }

    /// The audit log, newest first: at most `limit` entries with an id
    /// below `before` (all when `None`).
    async fn audit_log(&self, limit: usize, before: Option<i64>) -> Result<Vec<AuditEntry>> {
        let _ = (limit, before);
        Err(unsupported(self.name(), "an audit log"))
    }

    /// What finished from `since` on, in buckets `bucket` wide (bucket `k`
    /// starts at `since + k * bucket`), at most one entry per bucket and
    /// none for a bucket where nothing finished, oldest first (see
    /// [`ActivityBucket`]). Served by indexes on the finish and failure
    /// times, so it costs what the window holds, not the table.
    async fn activity(
        &self,
        since: DateTime<Utc>,
        bucket: Duration,
    ) -> Result<Vec<ActivityBucket>> {
        let _ = (since, bucket);
        Err(unsupported(self.name(), "activity charts"))
    }

    /// The task's workflow, the tasks it depends on and those that depend
    /// on it; `None` for an unknown id.
    async fn links(&self, id: TaskId) -> Result<Option<TaskLinks>> {
        let _ = id;
        Err(unsupported(self.name(), "dependency links"))
    }

    /// Deletes one finished task with its failure history and dependency
    /// rows, in one transaction. Refuses ([`Error::NotDeletable`](crate::Error::NotDeletable))
    /// a task that has not finished, and a finished one that an unfinished
    /// dependent still waits for; [`Error::NotFound`](crate::Error::NotFound)
    /// for an unknown id.
    async fn delete(&self, id: TaskId) -> Result<()> {
        let _ = id;
        Err(unsupported(self.name(), "deleting a task"))
    }

    /// Checks the database for `doctor`: schema version, expired leases,
    /// tasks whose payload or result is over `oversized_bytes`, and the
    /// backend's own settings.
    async fn diagnose(&self, oversized_bytes: usize) -> Result<Diagnosis> {
        let _ = oversized_bytes;
        Err(unsupported(self.name(), "diagnosis"))
    }
}

/// What the operations methods' defaults refuse with: a backend without
/// them (a test double) still serves queues and workers. Both of sitq's
/// backends implement every one, checked by the conformance suite.
fn unsupported(backend: &str, what: &str) -> crate::Error {
    crate::Error::InvalidOptions(format!("the {backend} backend does not support {what}"))
}

/// A task to store.
#[derive(Clone, Debug, PartialEq)]
pub struct NewTask {
    /// The registered name.
    pub name: String,
    /// The queue.
    pub queue: String,
    /// The encoded arguments.
    pub payload: Vec<u8>,
    /// Higher runs first.
    pub priority: i32,
    /// The earliest instant it may run.
    pub run_at: DateTime<Utc>,
    /// Attempts allowed (at least 1).
    pub max_attempts: u32,
    /// The unique key the task takes, if any (see [`Backend::enqueue_unique`]).
    pub unique: Option<UniqueKey>,
    /// The sequence key: tasks sharing one run one at a time in id order
    /// (see [`EnqueueOptions::sequence`](crate::EnqueueOptions::sequence)).
    pub sequence: Option<String>,
    /// The tasks it waits for, and whether it receives their results (see
    /// [`Backend::enqueue`]). Empty for most tasks.
    pub deps: Dependencies,
    /// The producer's trace context (see [`crate::trace`]), stored as is
    /// and handed back in [`ClaimedTask::trace`].
    pub trace: Option<String>,
}

/// What a worker asks [`Backend::claim`] for.
#[derive(Copy, Clone, Debug)]
pub struct ClaimRequest<'a> {
    /// Who claims: stored with the task, and checked by heartbeats.
    pub worker_id: &'a str,
    /// Queues to take from; all when empty.
    pub queues: &'a [String],
    /// The task names the worker can run: only these are claimed. A worker
    /// with no tasks does not claim at all; an empty list claims nothing.
    pub names: &'a [String],
    /// The most tasks to claim.
    pub limit: usize,
    /// How many of the claimed tasks start now; the rest are reserved
    /// (prefetched), see [`Backend::claim`].
    pub start: usize,
    /// How long the claim holds without a heartbeat.
    pub lease: Duration,
}

/// A claimed task, ready to run.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimedTask {
    /// The task's id.
    pub id: TaskId,
    /// The registered name.
    pub name: String,
    /// The queue.
    pub queue: String,
    /// The encoded arguments.
    pub payload: Vec<u8>,
    /// This attempt's number (1 for the first).
    pub attempt: u32,
    /// The claim's fencing token: the task's claim count, which every claim
    /// raises by one and nothing lowers (see [`ClaimRef::fence`]).
    pub fence: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// The dependencies' results it receives as its first argument, read
    /// when it was claimed; `None` for a task enqueued without
    /// `after_result`.
    pub inputs: Option<TaskInputs>,
    /// The trace context stored with the task at enqueue ([`NewTask::trace`]).
    pub trace: Option<String>,
}

impl ClaimedTask {
    /// The fencing token of this claim.
    pub fn claim_ref(&self) -> ClaimRef {
        ClaimRef {
            id: self.id,
            attempt: self.attempt,
            fence: self.fence,
        }
    }
}

/// Identifies one claim of one task: its id, attempt number and fence.
///
/// Heartbeats, starts, releases and completions apply only while the task
/// is still running under this claim. The attempt number alone cannot say
/// so: a snooze, a released or recovered reservation, or an admin retry
/// gives attempts back, so a later claim can carry the same number. The
/// fence is the task's claim count, which every claim raises and nothing
/// lowers, so a claim from before any of those matches no row.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClaimRef {
    /// The task's id.
    pub id: TaskId,
    /// The attempt the claim started.
    pub attempt: u32,
    /// The task's claim count at this claim (1 for its first claim).
    pub fence: u32,
}

/// The outcome of one attempt, for [`Backend::complete`].
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// Which claim finished.
    pub claim: ClaimRef,
    /// What happened.
    pub outcome: Outcome,
}

/// What happened in one attempt.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Succeeded with this encoded result.
    Succeeded(Vec<u8>),
    /// Failed; run again after `delay`.
    Retry {
        /// The attempt's error.
        failure: TaskFailure,
        /// The backoff before the next attempt.
        delay: Duration,
    },
    /// Failed for good.
    Failed(TaskFailure),
    /// The task asked to run again after `delay` (`Context::snooze`): it
    /// becomes pending with `run_at` = now + `delay` (capped at
    /// [`Context::MAX_SNOOZE`](crate::Context::MAX_SNOOZE)), the attempt is
    /// not spent (`attempts - 1`), `snoozes + 1`, no worker, lease or start
    /// time, and the previous failure (if any) kept. Fenced like the others.
    Snooze {
        /// How long to wait before the next run.
        delay: Duration,
    },
    /// Cancelled while it ran (the task had a cancel request): the task
    /// becomes `cancelled` and is not retried. The failure (kind
    /// `Cancelled`) says how the attempt ended; it goes to the history.
    Cancelled(TaskFailure),
}

/// A finished task's outcome: what a waiter needs, without the payload.
#[derive(Clone, Debug, PartialEq)]
pub struct Finished {
    /// The task's id.
    pub id: TaskId,
    /// The registered name.
    pub name: String,
    /// `Succeeded`, `Failed` or `Cancelled`.
    pub status: TaskStatus,
    /// Attempts spent.
    pub attempts: u32,
    /// The encoded result, when it succeeded.
    pub result: Option<Vec<u8>>,
    /// The last failure, when it failed (or was cancelled with a reason).
    pub failure: Option<TaskFailure>,
}

impl From<TaskRecord> for Finished {
    fn from(record: TaskRecord) -> Self {
        Finished {
            id: record.id,
            name: record.name,
            status: record.status,
            attempts: record.attempts,
            result: record.result,
            failure: record.failure,
        }
    }
}

/// The future a [`BackendConnector`] returns.
pub type ConnectFuture = Pin<Box<dyn Future<Output = Result<Arc<dyn Backend>>> + Send>>;

/// A backend's entry point, found by URL scheme by [`Queue::connect`](crate::Queue::connect).
///
/// Each backend crate submits one with `inventory`.
pub struct BackendConnector {
    /// URL schemes handled, without `:` (e.g. `["sqlite"]`).
    pub schemes: &'static [&'static str],
    /// Connects (creating and migrating the database as needed).
    pub connect: fn(url: String, options: ConnectOptions) -> ConnectFuture,
}

impl fmt::Debug for BackendConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendConnector")
            .field("schemes", &self.schemes)
            .finish_non_exhaustive()
    }
}

inventory::collect!(BackendConnector);
