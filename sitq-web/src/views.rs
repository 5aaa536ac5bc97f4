//! The JSON shapes of what the API returns beyond sitq's own serialisable
//! types (queues, schedules, workflows, a task with its links), built from
//! the queue's reads.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sitq_core::{
    QueueInfo, ScheduleInfo, TaskDetail, TaskId, TaskLinks, TaskStatus, WorkflowId, WorkflowInfo,
};

/// A queue: `GET /api/queues`.
#[derive(Clone, Debug, Serialize)]
pub struct QueueView {
    /// Its name.
    pub name: String,
    /// Whether workers skip it.
    pub paused: bool,
    /// Tasks waiting in it.
    pub pending: u64,
    /// Tasks of it claimed by a worker.
    pub running: u64,
    /// Tasks of it that may run at once, across workers.
    pub concurrency_limit: Option<u32>,
    /// Tasks of it that may start per period.
    pub rate_limit: Option<RateView>,
}

/// A queue's rate limit.
#[derive(Clone, Debug, Serialize)]
pub struct RateView {
    /// Starts allowed per period.
    pub count: u32,
    /// The period in milliseconds.
    pub period_ms: u128,
}

impl From<QueueInfo> for QueueView {
    fn from(queue: QueueInfo) -> QueueView {
        QueueView {
            concurrency_limit: queue.limits.get_concurrency(),
            rate_limit: queue.limits.get_rate().map(|rate| RateView {
                count: rate.count,
                period_ms: rate.period.as_millis(),
            }),
            name: queue.name,
            paused: queue.paused,
            pending: queue.pending,
            running: queue.running,
        }
    }
}

/// A cron schedule: `GET /api/schedules`.
#[derive(Clone, Debug, Serialize)]
pub struct ScheduleView {
    /// Its name.
    pub name: String,
    /// The task it enqueues.
    pub task: String,
    /// The queue it enqueues on.
    pub queue: String,
    /// The cron expression.
    pub expression: String,
    /// The time zone the expression is read in.
    pub zone: String,
    /// What it does about missed ticks: `latest`, `none` or `all`.
    pub catch_up: &'static str,
    /// When a worker last defined it.
    pub defined_at: DateTime<Utc>,
    /// Its last tick that fired.
    pub last_fire: Option<DateTime<Utc>>,
    /// Its next tick.
    pub next_fire: Option<DateTime<Utc>>,
    /// When a worker last saw it.
    pub last_seen: DateTime<Utc>,
}

impl From<ScheduleInfo> for ScheduleView {
    fn from(schedule: ScheduleInfo) -> ScheduleView {
        ScheduleView {
            catch_up: schedule.catch_up.as_str(),
            name: schedule.name,
            task: schedule.task,
            queue: schedule.queue,
            expression: schedule.expression,
            zone: schedule.zone,
            defined_at: schedule.defined_at,
            last_fire: schedule.last_fire,
            next_fire: schedule.next_fire,
            last_seen: schedule.last_seen,
        }
    }
}

/// A workflow and its graph: `GET /api/workflows/{id}`.
#[derive(Clone, Debug, Serialize)]
pub struct WorkflowView {
    /// Its id.
    pub id: WorkflowId,
    /// Its name.
    pub name: String,
    /// Its status (that of its final task once finished).
    pub status: TaskStatus,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// Its final task.
    pub final_task: TaskId,
    /// Its tasks with the ids each depends on.
    pub tasks: Vec<WorkflowTaskView>,
}

/// One task of a workflow.
#[derive(Clone, Debug, Serialize)]
pub struct WorkflowTaskView {
    /// The task's id.
    pub id: TaskId,
    /// Its name.
    pub name: String,
    /// Its status.
    pub status: TaskStatus,
    /// The ids it depends on.
    pub dependencies: Vec<TaskId>,
}

impl From<WorkflowInfo> for WorkflowView {
    fn from(workflow: WorkflowInfo) -> WorkflowView {
        WorkflowView {
            status: workflow.status(),
            id: workflow.id,
            name: workflow.name,
            created_at: workflow.created_at,
            final_task: workflow.final_task,
            tasks: workflow
                .tasks
                .into_iter()
                .map(|task| WorkflowTaskView {
                    id: task.id,
                    name: task.name,
                    status: task.status,
                    dependencies: task.dependencies,
                })
                .collect(),
        }
    }
}

/// One task whole with its dependency links: `GET /api/tasks/{id}`.
#[derive(Clone, Debug, Serialize)]
pub struct TaskPage {
    /// The record, arguments, result and attempts.
    #[serde(flatten)]
    pub detail: TaskDetail,
    /// Its workflow, dependencies and dependents.
    pub links: TaskLinks,
}
