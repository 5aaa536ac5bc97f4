use std::fmt;
use std::sync::Arc;

use chrono::Utc;
use tracing::Instrument;

use crate::backend::{Backend, BackendConnector, NewTask};
use crate::cancel::{CancelOutcome, CancelRequest};
use crate::dependency::{DepRef, DepTarget, Dependencies, InputMode, MAX_DEPENDENCIES};
use crate::handle::TaskHandle;
use crate::options::{ConnectOptions, EnqueueOptions};
use crate::queue_settings::{QueueInfo, QueueLimits, validate_queue_name};
use crate::record::{AttemptFailure, TaskId, TaskRecord, TaskStatus};
use crate::schedule::ScheduleInfo;
use crate::task::{Task, TaskDefaults};
use crate::unique::{Enqueued, UniqueKey};
use crate::workflow::{WorkflowId, WorkflowInfo};
use crate::{Error, Result, codec};

/// The client handle: enqueue tasks, look at them, wait for them.
///
/// Cheap to clone; clones share one connection pool.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Arc<dyn Backend>,
    options: ConnectOptions,
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("backend", &self.inner.backend.name())
            .finish_non_exhaustive()
    }
}

impl Queue {
    /// Connects to the queue at `url` (`sqlite://tasks.db`, `sqlite::memory:`,
    /// `postgres://…`), creating and migrating the database as needed.
    pub async fn connect(url: &str) -> Result<Queue> {
        Queue::connect_with(url, ConnectOptions::new()).await
    }

    /// [`connect`](Queue::connect) with options.
    pub async fn connect_with(url: &str, options: ConnectOptions) -> Result<Queue> {
        let scheme = url
            .split_once(':')
            .map(|(scheme, _)| scheme)
            .filter(|scheme| !scheme.is_empty())
            .ok_or_else(|| Error::InvalidUrl {
                url: url.to_owned(),
                reason: "expected scheme:…, e.g. sqlite://tasks.db".into(),
            })?;
        let connector = inventory::iter::<BackendConnector>()
            .find(|connector| connector.schemes.contains(&scheme))
            .ok_or_else(|| Error::UnsupportedScheme {
                scheme: scheme.to_owned(),
                available: inventory::iter::<BackendConnector>()
                    .flat_map(|connector| connector.schemes.iter().map(|s| (*s).to_owned()))
                    .collect(),
            })?;
        let backend = (connector.connect)(url.to_owned(), options.clone()).await?;
        Ok(Queue::from_backend(backend, options))
    }

    /// A queue over a backend built by hand.
    pub fn from_backend(backend: Arc<dyn Backend>, options: ConnectOptions) -> Queue {
        Queue {
            inner: Arc::new(Inner { backend, options }),
        }
    }

    /// The backend, for the worker runtime and admin tooling.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.inner.backend
    }

    /// The options the queue was connected with.
    pub fn options(&self) -> &ConnectOptions {
        &self.inner.options
    }

    /// Enqueues `task` with its defaults.
    pub async fn enqueue<T: Task>(&self, task: T) -> Result<TaskHandle<T::Output>> {
        self.enqueue_with(task, EnqueueOptions::new()).await
    }

    /// Enqueues `task` with `options`.
    pub async fn enqueue_with<T: Task>(
        &self,
        task: T,
        options: EnqueueOptions,
    ) -> Result<TaskHandle<T::Output>> {
        let new = self.new_task::<T>(&task, &options)?;
        if new.unique.is_some() {
            let enqueued = single(self.insert_unique(vec![new]).await?)?;
            return Ok(TaskHandle::enqueued(
                self.clone(),
                enqueued.id,
                enqueued.duplicate,
            ));
        }
        let with_deps = !new.deps.is_empty();
        let id = single(self.insert(vec![new]).await?)?;
        Ok(handle_of(self, id, with_deps))
    }

    /// Enqueues an encoded payload as a task of type `T` whose handle gives an
    /// `O`; for generated code (`after_result`, whose payload lacks the
    /// first argument).
    #[doc(hidden)]
    pub async fn enqueue_payload<T: Task, O>(
        &self,
        payload: Result<Vec<u8>>,
        options: EnqueueOptions,
    ) -> Result<TaskHandle<O>> {
        let new = self.build(T::NAME, payload?, T::DEFAULTS, &options)?;
        let with_deps = !new.deps.is_empty();
        let id = single(self.insert(vec![new]).await?)?;
        Ok(handle_of(self, id, with_deps))
    }

    /// Enqueues many tasks of one type in one transaction: all are stored or none.
    /// Unique tasks whose key is held (also by an earlier task of the same
    /// batch) are not stored; their handles are the holders' ([`TaskHandle::is_duplicate`]).
    pub async fn enqueue_many<T: Task>(
        &self,
        tasks: impl IntoIterator<Item = T>,
    ) -> Result<Vec<TaskHandle<T::Output>>> {
        self.enqueue_many_with(tasks, EnqueueOptions::new()).await
    }

    /// [`enqueue_many`](Queue::enqueue_many) with one set of options for all.
    pub async fn enqueue_many_with<T: Task>(
        &self,
        tasks: impl IntoIterator<Item = T>,
        options: EnqueueOptions,
    ) -> Result<Vec<TaskHandle<T::Output>>> {
        let new = tasks
            .into_iter()
            .map(|task| self.new_task::<T>(&task, &options))
            .collect::<Result<Vec<_>>>()?;
        if new.iter().any(|task| task.unique.is_some()) {
            let enqueued = self.insert_unique(new).await?;
            return Ok(enqueued
                .into_iter()
                .map(|e| TaskHandle::enqueued(self.clone(), e.id, e.duplicate))
                .collect());
        }
        let with_deps = new.iter().any(|task| !task.deps.is_empty());
        let ids = self.insert(new).await?;
        Ok(ids
            .into_iter()
            .map(|id| handle_of(self, id, with_deps))
            .collect())
    }

    /// Enqueues an already-encoded payload under `name`, for tooling and other
    /// languages. The name is not checked against this program's tasks (the
    /// worker that runs it may link others); an unknown name or a bad payload
    /// fails the task at run time, and it is kept.
    pub async fn enqueue_raw(
        &self,
        name: &str,
        payload: Vec<u8>,
        options: EnqueueOptions,
    ) -> Result<TaskId> {
        let new = self.build(name, payload, TaskDefaults::DEFAULT, &options)?;
        single(self.insert(vec![new]).await?)
    }

    /// A typed handle to an existing task (from a stored id).
    pub fn handle<T>(&self, id: TaskId) -> TaskHandle<T> {
        TaskHandle::stored(self.clone(), id)
    }

    /// The status of a task.
    pub async fn status(&self, id: TaskId) -> Result<TaskStatus> {
        self.inner
            .backend
            .status(id)
            .await?
            .ok_or(Error::NotFound(id))
    }

    /// The full record of a task. With a keyring
    /// ([`ConnectOptions::encryption`]) its arguments and result are
    /// opened; a value the keyring cannot open stays sealed (see
    /// [`encryption::is_sealed`](crate::encryption::is_sealed)).
    pub async fn get(&self, id: TaskId) -> Result<TaskRecord> {
        let mut record = self
            .inner
            .backend
            .get(id)
            .await?
            .ok_or(Error::NotFound(id))?;
        if let Some(keyring) = &self.inner.options.encryption {
            let payload = std::mem::take(&mut record.payload);
            record.payload = keyring
                .open(
                    crate::encryption::Binding::Arguments(&record.name),
                    payload.clone(),
                )
                .unwrap_or(payload);
            if let Some(result) = record.result.take() {
                let binding = crate::encryption::Binding::Result(record.id);
                record.result = Some(keyring.open(binding, result.clone()).unwrap_or(result));
            }
        }
        Ok(record)
    }

    /// `stored`, a result of task `id`, opened with this queue's keyring; a
    /// sealed one without the key is an error naming it.
    pub(crate) fn open_result(&self, id: TaskId, stored: Vec<u8>) -> Result<Vec<u8>> {
        crate::encryption::open_with(
            self.inner.options.encryption.as_deref(),
            crate::encryption::Binding::Result(id),
            stored,
        )
    }

    /// Cancels a task, on behalf of `"api"` with no reason; see
    /// [`cancel_with`](Queue::cancel_with).
    pub async fn cancel(&self, id: TaskId) -> Result<CancelOutcome> {
        self.cancel_with(id, CancelRequest::new()).await
    }

    /// Cancels a task, recording who asked and why.
    ///
    /// - A task that has not started (pending, delayed, blocked, or reserved
    ///   by a worker that has not started it) is `cancelled` at once:
    ///   [`CancelOutcome::Cancelled`].
    /// - A running task is asked to stop: [`CancelOutcome::Requested`]. The
    ///   worker running it cancels its [`Context`](crate::Context) at once
    ///   on PostgreSQL (`NOTIFY`) and within about a second on SQLite, then
    ///   drops the attempt after its grace period
    ///   (`Worker::cancel_grace`). The task ends `cancelled`, unless it
    ///   returns `Ok` before it is dropped: the work is done, and it ends
    ///   `succeeded`. An `Err` or a panic after the request ends it
    ///   `cancelled`, never retried.
    /// - A finished task is left alone: [`CancelOutcome::AlreadyFinished`].
    ///
    /// Waiting on a cancelled task gives [`Error::Cancelled`] with `by` and
    /// `reason`. [`Error::NotFound`] for an unknown id,
    /// [`Error::InvalidOptions`] for a bad request (nothing changes).
    pub async fn cancel_with(&self, id: TaskId, request: CancelRequest) -> Result<CancelOutcome> {
        request.validate()?;
        let outcome = self.inner.backend.cancel(id, &request).await?;
        tracing::debug!(task.id = %id, by = request.get_by(), ?outcome, "cancel");
        Ok(outcome)
    }

    /// Runs a `failed` or `cancelled` task again with fresh attempts
    /// (attempts 0, due now). Its earlier failures stay readable with
    /// [`failures`](Queue::failures); a wait started after the retry waits
    /// for the new run. [`Error::NotRetryable`] for a task in another
    /// state, [`Error::NotFound`] for an unknown id.
    pub async fn retry(&self, id: TaskId) -> Result<()> {
        self.inner.backend.retry(id).await?;
        tracing::debug!(task.id = %id, "retried");
        Ok(())
    }

    /// The failure history of a task, oldest first: every attempt that
    /// failed (errors, panics, timeouts, expired leases, cancellations),
    /// across retries. [`Error::NotFound`] for an unknown id.
    pub async fn failures(&self, id: TaskId) -> Result<Vec<AttemptFailure>> {
        let failures = self.inner.backend.failures(id).await?;
        if failures.is_empty() && self.inner.backend.status(id).await?.is_none() {
            return Err(Error::NotFound(id));
        }
        Ok(failures)
    }

    /// Builds the row `task` is stored as with `options`: encoded, checked,
    /// its unique key resolved. For backend crates' own enqueue paths (a
    /// transactional enqueue); [`enqueue_with`](Queue::enqueue_with) does
    /// this and stores it.
    pub fn new_task<T: Task>(&self, task: &T, options: &EnqueueOptions) -> Result<NewTask> {
        let payload = codec::encode(task, &format!("arguments of task {}", T::NAME))?;
        self.build(T::NAME, payload, T::DEFAULTS, options)
    }

    /// The handle of a task stored by a backend crate's own enqueue path
    /// (see [`new_task`](Queue::new_task)). Its first wait checks that the
    /// task exists, so a handle from a transaction that rolled back reports
    /// [`Error::NotFound`].
    pub fn enqueued_handle<T>(&self, enqueued: Enqueued) -> TaskHandle<T> {
        TaskHandle::stored_enqueued(self.clone(), enqueued.id, enqueued.duplicate)
    }

    /// Every stored schedule, by name: what it enqueues, its expression and
    /// zone, its last and next fire, and when a worker last ran it (an old
    /// `last_seen` means no running worker has it any more).
    pub async fn schedules(&self) -> Result<Vec<ScheduleInfo>> {
        let mut schedules = self.inner.backend.schedules().await?;
        schedules.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(schedules)
    }

    /// Pauses `queue`: from the moment this returns, no worker of any
    /// process claims its tasks (tasks already running finish). Workers that
    /// take every queue skip it. Stored in the database, so it outlives this
    /// program; undo it with [`resume`](Queue::resume).
    pub async fn pause(&self, queue: &str) -> Result<()> {
        validate_queue_name(queue)?;
        self.inner.backend.set_queue_paused(queue, true).await
    }

    /// Resumes a paused queue and wakes idle workers; a no-op for a queue
    /// that is not paused.
    pub async fn resume(&self, queue: &str) -> Result<()> {
        validate_queue_name(queue)?;
        self.inner.backend.set_queue_paused(queue, false).await
    }

    /// Sets `queue`'s global limits (concurrency, rate), enforced by every
    /// worker of every process; [`QueueLimits::new()`] clears them.
    ///
    /// ```no_run
    /// # async fn demo(queue: sitq_core::Queue) -> sitq_core::Result<()> {
    /// use std::time::Duration;
    /// use sitq_core::QueueLimits;
    ///
    /// let limits = QueueLimits::new().concurrency(3).rate(10, Duration::from_secs(1));
    /// queue.set_queue_limits("mail", limits).await?;
    /// queue.set_queue_limits("mail", QueueLimits::new()).await?; // no limits again
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_queue_limits(&self, queue: &str, limits: QueueLimits) -> Result<()> {
        validate_queue_name(queue)?;
        limits.validate()?;
        self.inner.backend.set_queue_limits(queue, limits).await
    }

    /// Every queue that has settings or pending or running tasks, by name,
    /// with whether it is paused, its limits and those counts.
    pub async fn queues(&self) -> Result<Vec<QueueInfo>> {
        self.inner.backend.queues().await
    }

    /// A workflow and every task of it with its status and dependencies
    /// (tasks pruned since are left out); [`WorkflowInfo::status`] sums it
    /// up. [`Error::WorkflowNotFound`] for an unknown id.
    pub async fn workflow(&self, id: WorkflowId) -> Result<WorkflowInfo> {
        self.inner
            .backend
            .workflow(id)
            .await?
            .ok_or(Error::WorkflowNotFound(id))
    }

    /// Cancels every unfinished task of a workflow as by
    /// [`cancel`](Queue::cancel), dependents first (so each records this
    /// request rather than a cancelled dependency); one outcome per task
    /// cancelled or asked to stop. Tasks that finished are left alone.
    /// [`Error::WorkflowNotFound`] for an unknown id.
    pub async fn cancel_workflow(&self, id: WorkflowId) -> Result<Vec<(TaskId, CancelOutcome)>> {
        self.cancel_workflow_with(id, CancelRequest::new()).await
    }

    /// [`cancel_workflow`](Queue::cancel_workflow), recording who asked and why.
    pub async fn cancel_workflow_with(
        &self,
        id: WorkflowId,
        request: CancelRequest,
    ) -> Result<Vec<(TaskId, CancelOutcome)>> {
        crate::workflow::cancel_workflow(self, id, request).await
    }

    /// Closes the connection pool.
    pub async fn close(&self) {
        self.inner.backend.close().await;
    }

    fn build(
        &self,
        name: &str,
        payload: Vec<u8>,
        defaults: TaskDefaults,
        options: &EnqueueOptions,
    ) -> Result<NewTask> {
        let stored_only = |target: DepTarget| match target {
            DepTarget::Task(id) => Ok(DepRef::Task(id)),
            DepTarget::Node { index, .. } => Err(Error::InvalidOptions(format!(
                "task {name} depends on workflow node {index}: add it to that workflow (`.add(&mut workflow, ..)`), or depend on an enqueued task's handle"
            ))),
        };
        self.build_task(name, payload, defaults, options, &stored_only)
    }

    /// Builds a row, resolving its dependencies with `resolve`.
    pub(crate) fn build_task(
        &self,
        name: &str,
        payload: Vec<u8>,
        defaults: TaskDefaults,
        options: &EnqueueOptions,
        resolve: &dyn Fn(DepTarget) -> Result<DepRef>,
    ) -> Result<NewTask> {
        let limit = self.inner.options.max_payload_bytes;
        if payload.len() > limit {
            return Err(Error::PayloadTooLarge {
                task: name.to_owned(),
                size: payload.len(),
                limit,
            });
        }
        if name.is_empty() {
            return Err(Error::InvalidOptions("the task name is empty".into()));
        }
        let queue = options.get_queue().unwrap_or(defaults.queue);
        if queue.is_empty() {
            return Err(Error::InvalidOptions("the queue name is empty".into()));
        }
        let max_attempts = options.get_max_attempts().unwrap_or(defaults.max_attempts);
        if max_attempts == 0 {
            return Err(Error::InvalidOptions(
                "max_attempts must be at least 1".into(),
            ));
        }
        let window = options.get_unique_for().or(defaults.unique_for);
        let unique = match options.get_unique_key() {
            Some(key) => Some(UniqueKey::explicit(key.to_owned(), window)?),
            None if defaults.unique || options.get_unique_for().is_some() => {
                Some(UniqueKey::of_arguments(&payload, window))
            }
            None => None,
        };
        let sequence = options.get_sequence();
        if sequence == Some("") {
            return Err(Error::InvalidOptions("the sequence key is empty".into()));
        }
        let deps = dependencies(name, options, resolve)?;
        if unique.is_some() && !deps.is_empty() {
            return Err(Error::InvalidOptions(format!(
                "task {name} has both a unique key and dependencies; a task with dependencies cannot be deduplicated"
            )));
        }
        let trace = match options.get_trace_context() {
            Some(context) => {
                crate::trace::validate(context)?;
                Some(context.to_owned())
            }
            // What the program's propagation injects is trusted to be
            // valid; one that is not is left out rather than failing the enqueue.
            None => self
                .inner
                .options
                .trace_propagation
                .and_then(|propagation| (propagation.inject)())
                .filter(|context| crate::trace::validate(context).is_ok()),
        };
        let payload = match &self.inner.options.encryption {
            Some(keyring) => keyring.seal(crate::encryption::Binding::Arguments(name), &payload)?,
            None => payload,
        };
        Ok(NewTask {
            name: name.to_owned(),
            queue: queue.to_owned(),
            payload,
            priority: options.get_priority().unwrap_or(defaults.priority),
            run_at: options.resolve_run_at(Utc::now())?,
            max_attempts,
            unique,
            sequence: sequence.map(str::to_owned),
            deps,
            trace,
        })
    }

    async fn insert(&self, tasks: Vec<NewTask>) -> Result<Vec<TaskId>> {
        let span = match tasks.first() {
            Some(task) => {
                tracing::debug_span!("enqueue", task.name = %task.name, count = tasks.len())
            }
            None => return Ok(Vec::new()),
        };
        async {
            let counts = crate::metrics::Enqueued::count(&tasks);
            let ids = self.inner.backend.enqueue(tasks).await?;
            counts.record();
            if let [id] = ids.as_slice() {
                tracing::debug!(task.id = %id, "enqueued");
            }
            Ok(ids)
        }
        .instrument(span)
        .await
    }

    /// [`insert`](Queue::insert) for a batch with unique keys.
    async fn insert_unique(&self, tasks: Vec<NewTask>) -> Result<Vec<Enqueued>> {
        let span = match tasks.first() {
            Some(task) => {
                tracing::debug_span!("enqueue", task.name = %task.name, count = tasks.len())
            }
            None => return Ok(Vec::new()),
        };
        async {
            let names: Vec<(String, String)> = tasks
                .iter()
                .map(|task| (task.queue.clone(), task.name.clone()))
                .collect();
            let enqueued = self.inner.backend.enqueue_unique(tasks).await?;
            crate::metrics::Enqueued::count_stored(
                names
                    .iter()
                    .zip(&enqueued)
                    .filter(|(_, one)| !one.duplicate)
                    .map(|((queue, name), _)| (queue.as_str(), name.as_str())),
            )
            .record();
            if let [one] = enqueued.as_slice() {
                tracing::debug!(task.id = %one.id, duplicate = one.duplicate, "enqueued");
            }
            Ok(enqueued)
        }
        .instrument(span)
        .await
    }
}

/// The dependencies `options` set, resolved and checked.
fn dependencies(
    name: &str,
    options: &EnqueueOptions,
    resolve: &dyn Fn(DepTarget) -> Result<DepRef>,
) -> Result<Dependencies> {
    let after = options
        .get_after()
        .iter()
        .map(|target| resolve(*target))
        .collect::<Result<Vec<_>>>()?;
    let (input_mode, inputs) = match options.get_inputs() {
        Some((mode, inputs)) => (
            mode,
            inputs
                .iter()
                .map(|target| resolve(*target))
                .collect::<Result<Vec<_>>>()?,
        ),
        None => (InputMode::None, Vec::new()),
    };
    if input_mode == InputMode::One && inputs.len() != 1 {
        return Err(Error::InvalidOptions(format!(
            "task {name} receives one result but names {} inputs",
            inputs.len()
        )));
    }
    let deps = Dependencies {
        after,
        inputs,
        input_mode,
        after_finished: options.get_after_finished(),
    };
    if deps.after_finished && deps.input_mode != InputMode::None {
        return Err(Error::InvalidOptions(format!(
            "task {name} receives its dependencies' results, so it cannot run after they finished whatever their outcome (`after_finished`): a failed dependency has no result to pass"
        )));
    }
    if deps.after_finished && deps.is_empty() {
        return Err(Error::InvalidOptions(format!(
            "task {name} is `after_finished` but has no dependencies; add them with `after(..)`"
        )));
    }
    let count = deps.after.len() + deps.inputs.len();
    if count > MAX_DEPENDENCIES {
        return Err(Error::InvalidOptions(format!(
            "task {name} has {count} dependencies, more than the limit of {MAX_DEPENDENCIES}"
        )));
    }
    Ok(deps)
}

/// The handle of a task just enqueued. One with dependencies may have been
/// stored finished (cancelled: a dependency had failed), with no waiter to
/// tell: its first wait looks it up rather than only listening.
pub(crate) fn handle_of<T>(queue: &Queue, id: TaskId, with_deps: bool) -> TaskHandle<T> {
    if with_deps {
        TaskHandle::stored_enqueued(queue.clone(), id, false)
    } else {
        TaskHandle::new(queue.clone(), id)
    }
}

fn single<T: Copy>(ids: Vec<T>) -> Result<T> {
    match ids.as_slice() {
        [id] => Ok(*id),
        _ => Err(Error::database(
            "enqueueing",
            format!("backend returned {} ids for one task", ids.len()),
        )),
    }
}
