//! Workflows: a graph of tasks enqueued as one unit.
//!
//! A [`Workflow`] collects tasks (`task::add(&mut workflow, ..)`,
//! `task::with()..add(&mut workflow, ..)`, `task::after_result(&node)..`)
//! whose dependencies may only be nodes added before them, so the graph is
//! acyclic by construction. [`Workflow::enqueue`] stores all of it in one
//! transaction (a crash never leaves half a workflow) and returns a
//! [`WorkflowHandle`] with typed handles for its nodes.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::IgnoredAny;

use crate::backend::NewTask;
use crate::cancel::{CancelOutcome, CancelRequest};
use crate::dependency::{DepTarget, Node};
use crate::handle::TaskHandle;
use crate::options::EnqueueOptions;
use crate::queue::Queue;
use crate::record::{TaskId, TaskStatus};
use crate::task::{Task, TaskDefaults};
use crate::{Error, Result, codec};

/// The most tasks one workflow may hold.
pub const MAX_WORKFLOW_TASKS: usize = 100_000;

/// Identifies a stored workflow.
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct WorkflowId(pub i64);

impl fmt::Display for WorkflowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Builder identities, so a node of one builder is never taken for another's.
static BUILDERS: AtomicU64 = AtomicU64::new(1);

/// A graph of tasks to enqueue as one unit.
///
/// ```ignore
/// let mut flow = sitq::Workflow::new("etl");
/// let pages: Vec<_> = urls.into_iter().map(|url| fetch::add(&mut flow, url)).collect();
/// let parsed: Vec<_> = pages.iter().map(|page| parse::after_result(page).add(&mut flow)).collect();
/// let total = aggregate::after_result(&parsed).add(&mut flow);
/// let run = flow.enqueue(&queue).await?;
/// let report = run.handle(&total)?.wait().await?;
/// ```
pub struct Workflow {
    builder: u64,
    name: String,
    nodes: Vec<Pending>,
}

/// A task added to a workflow, stored when the workflow is enqueued.
struct Pending {
    name: &'static str,
    payload: Result<Vec<u8>>,
    defaults: TaskDefaults,
    options: EnqueueOptions,
}

impl fmt::Debug for Workflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workflow")
            .field("name", &self.name)
            .field("tasks", &self.nodes.len())
            .finish()
    }
}

impl Workflow {
    /// An empty workflow called `name` (shown by the admin tools).
    pub fn new(name: impl Into<String>) -> Workflow {
        Workflow {
            builder: BUILDERS.fetch_add(1, Ordering::Relaxed),
            name: name.into(),
            nodes: Vec::new(),
        }
    }

    /// The workflow's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many tasks it holds.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether it holds no task.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Adds `task` with its defaults; its node is a dependency for later ones.
    pub fn add<T: Task>(&mut self, task: T) -> Node<T::Output> {
        self.add_with(task, EnqueueOptions::new())
    }

    /// Adds `task` with `options`, whose dependencies may be stored tasks or
    /// nodes added before it (of this workflow).
    pub fn add_with<T: Task>(&mut self, task: T, options: EnqueueOptions) -> Node<T::Output> {
        let payload = codec::encode(&task, &format!("arguments of task {}", T::NAME));
        self.push::<T, T::Output>(payload, options)
    }

    /// Adds an encoded task; for generated code (`after_result`, whose
    /// payload lacks its first argument).
    #[doc(hidden)]
    pub fn push<T: Task, O>(
        &mut self,
        payload: Result<Vec<u8>>,
        options: EnqueueOptions,
    ) -> Node<O> {
        let index = self.nodes.len();
        self.nodes.push(Pending {
            name: T::NAME,
            payload,
            defaults: T::DEFAULTS,
            options,
        });
        Node {
            workflow: self.builder,
            index,
            _output: PhantomData,
        }
    }

    /// Stores every task in one transaction: all or none. Its final task
    /// (what [`WorkflowHandle::wait`] waits for) is the last one added.
    ///
    /// [`Error::InvalidOptions`] for an empty workflow, a node of another
    /// workflow, a unique key (workflow tasks cannot be deduplicated), or
    /// any task's invalid options; an encoding error for arguments that
    /// cannot be encoded. Nothing is stored then.
    pub async fn enqueue(self, queue: &Queue) -> Result<WorkflowHandle> {
        if self.nodes.is_empty() {
            return Err(Error::InvalidOptions(format!(
                "workflow {:?} has no tasks",
                self.name
            )));
        }
        if self.nodes.len() > MAX_WORKFLOW_TASKS {
            return Err(Error::InvalidOptions(format!(
                "workflow {:?} has {} tasks, more than the limit of {MAX_WORKFLOW_TASKS}",
                self.name,
                self.nodes.len()
            )));
        }
        let builder = self.builder;
        let mut tasks = Vec::with_capacity(self.nodes.len());
        for (position, node) in self.nodes.into_iter().enumerate() {
            let resolve = |target: DepTarget| match target {
                DepTarget::Task(id) => Ok(crate::DepRef::Task(id)),
                DepTarget::Node { workflow, index } if workflow == builder && index < position => {
                    Ok(crate::DepRef::Batch(index))
                }
                DepTarget::Node { .. } => Err(Error::InvalidOptions(format!(
                    "task {position} ({}) of workflow {:?} depends on a node of another workflow",
                    node.name, self.name
                ))),
            };
            let task: NewTask = queue.build_task(
                node.name,
                node.payload?,
                node.defaults,
                &node.options,
                &resolve,
            )?;
            if task.unique.is_some() {
                return Err(Error::InvalidOptions(format!(
                    "task {position} ({}) of workflow {:?} has a unique key; workflow tasks cannot be deduplicated",
                    node.name, self.name
                )));
            }
            tasks.push(task);
        }
        let counts = crate::metrics::Enqueued::count(&tasks);
        let stored = queue
            .backend()
            .enqueue_workflow(NewWorkflow {
                name: self.name,
                tasks,
            })
            .await?;
        counts.record();
        tracing::debug!(workflow.id = %stored.id, tasks = stored.tasks.len(), "workflow enqueued");
        Ok(WorkflowHandle {
            queue: queue.clone(),
            builder,
            id: stored.id,
            tasks: stored.tasks,
        })
    }
}

/// A workflow to store: [`Backend::enqueue_workflow`](crate::Backend::enqueue_workflow).
#[derive(Clone, Debug, PartialEq)]
pub struct NewWorkflow {
    /// Its name.
    pub name: String,
    /// Its tasks, dependencies before dependents; the last is the final one.
    pub tasks: Vec<NewTask>,
}

/// What [`Backend::enqueue_workflow`](crate::Backend::enqueue_workflow) stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredWorkflow {
    /// The workflow's id.
    pub id: WorkflowId,
    /// Its tasks' ids, in the order given.
    pub tasks: Vec<TaskId>,
}

/// An enqueued workflow: typed handles for its nodes, its status, cancel, wait.
#[derive(Clone)]
pub struct WorkflowHandle {
    queue: Queue,
    builder: u64,
    id: WorkflowId,
    tasks: Vec<TaskId>,
}

impl fmt::Debug for WorkflowHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkflowHandle")
            .field("id", &self.id)
            .field("tasks", &self.tasks.len())
            .finish()
    }
}

impl WorkflowHandle {
    /// The workflow's id, for [`Queue::workflow`].
    pub fn id(&self) -> WorkflowId {
        self.id
    }

    /// Its tasks' ids, in the order they were added.
    pub fn task_ids(&self) -> &[TaskId] {
        &self.tasks
    }

    /// The id of the final task (the last added).
    pub fn final_task(&self) -> TaskId {
        // Never empty: an empty workflow is refused.
        self.tasks.last().copied().unwrap_or(TaskId(0))
    }

    /// The typed handle of `node`; [`Error::InvalidOptions`] for a node of
    /// another workflow.
    pub fn handle<T>(&self, node: &Node<T>) -> Result<TaskHandle<T>> {
        match self.tasks.get(node.index) {
            Some(id) if node.workflow == self.builder => {
                Ok(crate::queue::handle_of(&self.queue, *id, true))
            }
            _ => Err(Error::InvalidOptions(format!(
                "node {} is not a node of workflow {}",
                node.index, self.id
            ))),
        }
    }

    /// Every task with its status; see [`Queue::workflow`].
    pub async fn info(&self) -> Result<WorkflowInfo> {
        self.queue.workflow(self.id).await
    }

    /// Cancels every unfinished task; see [`Queue::cancel_workflow`].
    pub async fn cancel(&self) -> Result<Vec<(TaskId, CancelOutcome)>> {
        self.queue.cancel_workflow(self.id).await
    }

    /// Waits until the final task finishes: `Ok` when it succeeded,
    /// otherwise its error ([`Error::TaskFailed`], or [`Error::Cancelled`]
    /// naming the dependency that failed). Its typed result is
    /// `handle(&node)?.wait()`.
    pub async fn wait(&self) -> Result<()> {
        crate::queue::handle_of::<IgnoredAny>(&self.queue, self.final_task(), true)
            .wait()
            .await
            .map(|_| ())
    }
}

/// A stored workflow and its tasks: [`Queue::workflow`].
#[derive(Clone, Debug, PartialEq)]
pub struct WorkflowInfo {
    /// Its id.
    pub id: WorkflowId,
    /// Its name.
    pub name: String,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// Its final task (the last added), what [`WorkflowHandle::wait`] waits for.
    pub final_task: TaskId,
    /// Its tasks, in id order (the order they were added); pruned ones are
    /// left out.
    pub tasks: Vec<WorkflowTask>,
}

impl WorkflowInfo {
    /// The workflow's status: that of its final task once it finished
    /// (`succeeded`, `failed` or `cancelled`); before that `running` if any
    /// task runs or has finished, else `pending` (or `blocked` when every
    /// task is blocked, which only a dependency outside the workflow causes).
    pub fn status(&self) -> TaskStatus {
        let last = self.tasks.iter().find(|task| task.id == self.final_task);
        match last.map(|task| task.status) {
            Some(status) if status.is_finished() => status,
            _ if self
                .tasks
                .iter()
                .any(|task| task.status == TaskStatus::Running || task.status.is_finished()) =>
            {
                TaskStatus::Running
            }
            _ if self
                .tasks
                .iter()
                .all(|task| task.status == TaskStatus::Blocked) =>
            {
                TaskStatus::Blocked
            }
            _ => TaskStatus::Pending,
        }
    }

    /// How many of its tasks are in `status`.
    pub fn count(&self, status: TaskStatus) -> usize {
        self.tasks
            .iter()
            .filter(|task| task.status == status)
            .count()
    }
}

/// One task of a workflow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkflowTask {
    /// The task's id.
    pub id: TaskId,
    /// Its registered name.
    pub name: String,
    /// Its status.
    pub status: TaskStatus,
    /// The tasks it depends on, each once, in id order.
    pub dependencies: Vec<TaskId>,
}

/// Cancels every unfinished task of a workflow, dependents first so each
/// records `request` rather than a cancelled dependency.
pub(crate) async fn cancel_workflow(
    queue: &Queue,
    id: WorkflowId,
    request: CancelRequest,
) -> Result<Vec<(TaskId, CancelOutcome)>> {
    request.validate()?;
    let info = queue
        .backend()
        .workflow(id)
        .await?
        .ok_or(Error::WorkflowNotFound(id))?;
    let mut outcomes = Vec::new();
    for task in info.tasks.iter().rev() {
        if task.status.is_finished() {
            continue;
        }
        match queue.backend().cancel(task.id, &request).await {
            Ok(outcome) => outcomes.push((task.id, outcome)),
            // Pruned meanwhile: nothing left to cancel.
            Err(Error::NotFound(_)) => {}
            Err(err) => return Err(err),
        }
    }
    outcomes.reverse();
    tracing::debug!(workflow.id = %id, tasks = outcomes.len(), "workflow cancelled");
    Ok(outcomes)
}
