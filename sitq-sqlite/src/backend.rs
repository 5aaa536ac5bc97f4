//! [`SqliteBackend`]: the `Backend` trait over the writer thread and reader threads.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
use tokio::sync::{mpsc, oneshot};

use crate::connect::Target;
use crate::guard::FileGuard;
use crate::ops::read::{Found, Read};
use crate::ops::write::Claim;
use crate::ops::{deps, json_strings};
use crate::readers::Readers;
use crate::time;
use crate::watch::{self, FileWatch};
use crate::writer::{self, command::Command, command::Reply, command::writer_gone};

/// sitq's storage in one SQLite file (or in memory, for tests).
///
/// Writes go through one writer thread per backend that batches them into
/// group commits; reads use a few reader threads beside it. Several processes may
/// share one file: each claim, completion and lease check is atomic in its
/// `BEGIN IMMEDIATE` transaction.
///
/// ```no_run
/// # async fn demo() -> sitq_core::Result<()> {
/// use sitq_core::ConnectOptions;
/// use sitq_sqlite::SqliteBackend;
///
/// let backend = SqliteBackend::connect("sqlite://tasks.db", ConnectOptions::new()).await?;
/// let queue = sitq_core::Queue::from_backend(std::sync::Arc::new(backend), ConnectOptions::new());
/// # drop(queue);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct SqliteBackend {
    writer: mpsc::Sender<Command>,
    /// `None` for an in-memory database, whose reads go through the writer.
    readers: Option<Readers>,
    signals: Arc<Signals>,
    poll_interval: Duration,
    closed: AtomicBool,
    /// Wakes this process when another one commits (file databases only).
    _watch: Option<FileWatch>,
    /// `sqlite:///abs/path` or `sqlite::memory:`.
    location: String,
    /// The database file (`None` in memory), for `diagnose`.
    path: Option<PathBuf>,
}

impl SqliteBackend {
    /// Opens the database at `url` (`sqlite://tasks.db`, `sqlite:///abs/path.db`,
    /// `sqlite:tasks.db`, `sqlite::memory:`), creating the file (mode 0600)
    /// and applying migrations as needed.
    ///
    /// Every connection uses WAL, a 30 s busy timeout, foreign keys and
    /// `synchronous=NORMAL`: a commit survives a crash of the process, and
    /// the last commits before a power loss may be lost. Add
    /// `?synchronous=FULL` to the URL to keep those too, at the cost of an
    /// fsync per group commit.
    ///
    /// Each `sqlite::memory:` connect is a fresh, private database.
    ///
    /// With [`ConnectOptions::create_missing`] off, a file that does not
    /// exist is an [`Error::Config`] naming its absolute path, and nothing
    /// is created.
    pub async fn connect(url: &str, options: ConnectOptions) -> Result<SqliteBackend> {
        let target = Target::parse(url)?;
        if !options.create_missing {
            target.require_existing(url)?;
        }
        target.create_file()?;
        let guard = target
            .path
            .as_deref()
            .map(FileGuard::new)
            .transpose()?
            .map(Arc::new);
        let signals = Arc::new(Signals::new());
        let writer = writer::spawn(target.clone(), signals.clone(), guard.clone()).await?;
        let (readers, watch) = match &target.path {
            Some(path) => {
                let count = options
                    .max_connections
                    .map_or(DEFAULT_READERS, |n| n as usize);
                let readers = Readers::start(&target, count, guard).await?;
                let watch =
                    watch::watch(path, writer.sender.clone(), writer.external_pending.clone());
                (Some(readers), watch)
            }
            None => (None, None),
        };
        Ok(SqliteBackend {
            writer: writer.sender,
            readers,
            signals,
            poll_interval: options.poll_interval,
            closed: AtomicBool::new(false),
            _watch: watch,
            location: target.location(),
            path: target.path.clone(),
        })
    }

    /// Sends a command built around its reply channel; waits for the answer.
    async fn call<T>(
        &self,
        op: &'static str,
        command: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T> {
        if self.closed.load(Ordering::Acquire) {
            return Err(closed(op));
        }
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(command(reply))
            .await
            .map_err(|_| writer_gone(op))?;
        // A dropped reply means the writer stopped before answering.
        answer.await.map_err(|_| writer_gone(op))?
    }

    /// Sends a command that answers through its own channel.
    pub(crate) async fn send(&self, command: Command) -> Result<()> {
        let op = "running a sitq transaction";
        if self.closed.load(Ordering::Acquire) {
            return Err(closed(op));
        }
        self.writer.send(command).await.map_err(|_| writer_gone(op))
    }

    async fn read(&self, read: Read) -> Result<Found> {
        let op = read.op();
        match &self.readers {
            Some(readers) => {
                if self.closed.load(Ordering::Acquire) {
                    return Err(closed(op));
                }
                readers.read(read).await
            }
            None => self.call(op, |reply| Command::Read { read, reply }).await,
        }
    }
}

/// Reader threads beside the writer when `ConnectOptions::max_connections` is unset.
const DEFAULT_READERS: usize = 2;

fn closed(op: &'static str) -> Error {
    Error::database(op, "the SQLite backend was closed")
}

fn unexpected(op: &'static str) -> Error {
    Error::database(
        op,
        "internal error: the read returned another kind of answer",
    )
}

#[async_trait]
impl Backend for SqliteBackend {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn signals(&self) -> &Signals {
        &self.signals
    }

    fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    async fn enqueue(&self, tasks: Vec<NewTask>) -> Result<Vec<TaskId>> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        if tasks.iter().any(|task| task.unique.is_some()) || deps::any_deps(&tasks) {
            let enqueued = self.enqueue_unique(tasks).await?;
            return Ok(enqueued.into_iter().map(|e| e.id).collect());
        }
        self.call("enqueueing tasks", |reply| Command::Enqueue {
            tasks,
            reply,
        })
        .await
    }

    async fn claim(&self, request: ClaimRequest<'_>) -> Result<Vec<ClaimedTask>> {
        if request.limit == 0 || request.names.is_empty() {
            return Ok(Vec::new());
        }
        let claim = Claim::new(&request);
        self.call("claiming tasks", |reply| Command::Claim { claim, reply })
            .await
    }

    async fn start(&self, claims: Vec<ClaimRef>) -> Result<()> {
        if claims.is_empty() {
            return Ok(());
        }
        self.call("marking tasks started", |reply| Command::Start {
            claims,
            reply,
        })
        .await
    }

    async fn release(&self, claims: Vec<ClaimRef>) -> Result<u64> {
        if claims.is_empty() {
            return Ok(0);
        }
        self.call("releasing reserved tasks", |reply| Command::Release {
            claims,
            reply,
        })
        .await
    }

    async fn next_run_at(&self, queues: &[String]) -> Result<Option<DateTime<Utc>>> {
        match self.read(Read::NextRunAt(queues.to_vec())).await? {
            Found::NextRunAt(next) => Ok(next.map(time::from_micros)),
            _ => Err(unexpected("finding the next scheduled task")),
        }
    }

    async fn heartbeat(
        &self,
        worker_id: &str,
        claims: &[ClaimRef],
        lease: Duration,
    ) -> Result<Vec<ClaimRef>> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let worker_id = worker_id.to_owned();
        let claims = claims.to_vec();
        self.call("extending leases", |reply| Command::Heartbeat {
            worker_id,
            claims,
            lease,
            reply,
        })
        .await
    }

    async fn complete(&self, completions: Vec<Completion>) -> Result<Vec<bool>> {
        if completions.is_empty() {
            return Ok(Vec::new());
        }
        self.call("recording task outcomes", |reply| Command::Complete {
            completions,
            reply,
        })
        .await
    }

    async fn recover_expired(&self) -> Result<u64> {
        self.call("recovering expired leases", |reply| Command::Recover {
            reply,
        })
        .await
    }

    async fn get(&self, id: TaskId) -> Result<Option<TaskRecord>> {
        match self.read(Read::Get(id)).await? {
            Found::Record(record) => Ok(record.map(|record| *record)),
            _ => Err(unexpected("reading a task")),
        }
    }

    async fn status(&self, id: TaskId) -> Result<Option<TaskStatus>> {
        match self.read(Read::Status(id)).await? {
            Found::Status(status) => Ok(status),
            _ => Err(unexpected("reading a task's status")),
        }
    }

    async fn finished(&self, ids: &[TaskId]) -> Result<Vec<Finished>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        match self.read(Read::Finished(ids.to_vec())).await? {
            Found::Finished(finished) => Ok(finished),
            _ => Err(unexpected("reading finished tasks")),
        }
    }

    async fn cancel(&self, id: TaskId, request: &CancelRequest) -> Result<CancelOutcome> {
        let request = request.clone();
        self.call("cancelling a task", |reply| Command::Cancel {
            id,
            request,
            reply,
        })
        .await
    }

    async fn purge(&self, before: DateTime<Utc>, statuses: &[TaskStatus]) -> Result<u64> {
        // Only finished states are ever deleted, whatever the caller asked.
        let finished: Vec<String> = if statuses.is_empty() {
            TaskStatus::ALL.to_vec()
        } else {
            statuses.to_vec()
        }
        .into_iter()
        .filter(|status| status.is_finished())
        .map(|status| status.as_str().to_owned())
        .collect();
        if finished.is_empty() {
            return Ok(0);
        }
        let statuses = json_strings(&finished);
        let before = time::to_micros(before);
        self.call("purging finished tasks", |reply| Command::Purge {
            before,
            statuses,
            reply,
        })
        .await
    }

    async fn set_queue_paused(&self, queue: &str, paused: bool) -> Result<()> {
        sitq_core::validate_queue_name(queue)?;
        let queue = queue.to_owned();
        self.call("pausing or resuming a queue", |reply| Command::SetPaused {
            queue,
            paused,
            reply,
        })
        .await
    }

    async fn set_queue_limits(&self, queue: &str, limits: QueueLimits) -> Result<()> {
        sitq_core::validate_queue_name(queue)?;
        limits.validate()?;
        let queue = queue.to_owned();
        self.call("setting a queue's limits", |reply| Command::SetLimits {
            queue,
            limits,
            reply,
        })
        .await
    }

    async fn queues(&self) -> Result<Vec<QueueInfo>> {
        match self.read(Read::Queues).await? {
            Found::Queues(queues) => Ok(queues),
            _ => Err(unexpected("listing queues")),
        }
    }

    async fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        // The writer finishes the commands it already has, then closes its connection.
        let (reply, done) = oneshot::channel();
        if self.writer.send(Command::Close { reply }).await.is_ok() {
            let _ = done.await;
        }
    }

    async fn cancel_requested(&self, claims: &[ClaimRef]) -> Result<Vec<ClaimRef>> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let ids = claims.iter().map(|claim| claim.id).collect();
        match self.read(Read::CancelRequested(ids)).await? {
            Found::CancelRequested(ids) => Ok(claims
                .iter()
                .filter(|claim| ids.contains(&claim.id))
                .copied()
                .collect()),
            _ => Err(unexpected("checking tasks for cancel requests")),
        }
    }

    async fn retry(&self, id: TaskId) -> Result<()> {
        self.call("retrying a task", |reply| Command::Retry { id, reply })
            .await
    }

    async fn failures(&self, id: TaskId) -> Result<Vec<AttemptFailure>> {
        match self.read(Read::Failures(id)).await? {
            Found::Failures(failures) => Ok(failures),
            _ => Err(unexpected("reading a task's failure history")),
        }
    }

    async fn enqueue_unique(&self, tasks: Vec<NewTask>) -> Result<Vec<Enqueued>> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        if deps::any_deps(&tasks) {
            return self
                .call("enqueueing tasks", |reply| Command::EnqueueDeps {
                    tasks,
                    reply,
                })
                .await;
        }
        self.call("enqueueing tasks", |reply| Command::EnqueueUnique {
            tasks,
            reply,
        })
        .await
    }

    async fn register_schedules(
        &self,
        schedules: Vec<ScheduleDefinition>,
    ) -> Result<Vec<ScheduleInfo>> {
        if schedules.is_empty() {
            return Ok(Vec::new());
        }
        self.call("registering schedules", |reply| {
            Command::RegisterSchedules { schedules, reply }
        })
        .await
    }

    async fn fire_tick(&self, fire: TickFire) -> Result<Option<TaskId>> {
        self.call("firing a schedule's tick", |reply| Command::FireTick {
            fire: Box::new(fire),
            reply,
        })
        .await
    }

    async fn enqueue_workflow(&self, workflow: NewWorkflow) -> Result<StoredWorkflow> {
        let workflow = Box::new(workflow);
        self.call("enqueueing a workflow", |reply| Command::EnqueueWorkflow {
            workflow,
            reply,
        })
        .await
    }

    async fn workflow(&self, id: WorkflowId) -> Result<Option<WorkflowInfo>> {
        match self.read(Read::Workflow(id)).await? {
            Found::Workflow(info) => Ok(info.map(|info| *info)),
            _ => Err(unexpected("reading a workflow")),
        }
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    async fn schedules(&self) -> Result<Vec<ScheduleInfo>> {
        match self.read(Read::Schedules).await? {
            Found::Schedules(schedules) => Ok(schedules),
            _ => Err(unexpected("listing schedules")),
        }
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    async fn worker_beat(&self, beat: &WorkerBeat) -> Result<WorkerControl> {
        let beat = Box::new(beat.clone());
        self.call("registering a worker", |reply| Command::WorkerBeat {
            beat,
            reply,
        })
        .await
    }

    async fn remove_worker(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        self.call("removing a worker", |reply| Command::RemoveWorker {
            id,
            reply,
        })
        .await
    }

    async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        match self.read(Read::Workers).await? {
            Found::Workers(workers) => Ok(workers),
            _ => Err(unexpected("listing workers")),
        }
    }

    async fn drain_worker(&self, id: &str) -> Result<bool> {
        // Workers in other processes read the request at their next beat.
        let id = id.to_owned();
        self.call("draining a worker", |reply| Command::DrainWorker {
            id,
            reply,
        })
        .await
    }

    async fn tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskSummary>> {
        if filter.limit == 0 {
            return Ok(Vec::new());
        }
        match self.read(Read::Tasks(Box::new(filter.clone()))).await? {
            Found::Tasks(tasks) => Ok(tasks),
            _ => Err(unexpected("listing tasks")),
        }
    }

    async fn stats(&self) -> Result<Stats> {
        match self.read(Read::Stats).await? {
            Found::Stats(stats) => Ok(*stats),
            _ => Err(unexpected("reading statistics")),
        }
    }

    async fn activity(
        &self,
        since: DateTime<Utc>,
        bucket: Duration,
    ) -> Result<Vec<ActivityBucket>> {
        let width = i64::try_from(bucket.as_micros()).unwrap_or(i64::MAX).max(1);
        let read = Read::Activity {
            since: time::to_micros(since),
            width,
        };
        match self.read(read).await? {
            Found::Activity(buckets) => Ok(buckets),
            _ => Err(unexpected("reading recent activity")),
        }
    }

    async fn links(&self, id: TaskId) -> Result<Option<TaskLinks>> {
        match self.read(Read::Links(id)).await? {
            Found::Links(links) => Ok(links),
            _ => Err(unexpected("reading a task's dependencies")),
        }
    }

    async fn delete(&self, id: TaskId) -> Result<()> {
        self.call("deleting a task", |reply| Command::Delete { id, reply })
            .await
    }

    /// SQLite has no roles: whoever opens the file may write the audit log.
    async fn check_audit(&self) -> Result<()> {
        Ok(())
    }

    async fn record_audit(&self, entry: &NewAuditEntry) -> Result<()> {
        let entry = Box::new(entry.clone());
        self.call("recording an audit entry", |reply| Command::RecordAudit {
            entry,
            reply,
        })
        .await
    }

    async fn audit_log(&self, limit: usize, before: Option<i64>) -> Result<Vec<AuditEntry>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        match self.read(Read::AuditLog { limit, before }).await? {
            Found::AuditLog(entries) => Ok(entries),
            _ => Err(unexpected("reading the audit log")),
        }
    }

    async fn diagnose(&self, oversized_bytes: usize) -> Result<Diagnosis> {
        let read = Read::Diagnose {
            location: self.location.clone(),
            path: self.path.clone(),
            oversized_bytes,
        };
        match self.read(read).await? {
            Found::Diagnosis(diagnosis) => Ok(*diagnosis),
            _ => Err(unexpected("diagnosing the database")),
        }
    }
}
