//! Reads: one statement each, on any connection.

use rusqlite::{Connection, OptionalExtension};
use sitq_core::{
    AttemptFailure, Cancellation, FailureKind, Finished, TaskFailure, TaskId, TaskRecord,
    TaskStatus,
};

use super::{count, finished_row, json_ids, status};
use crate::time;

/// A read, owned so that it can travel to a reader thread.
#[derive(Debug)]
pub(crate) enum Read {
    /// The full record of a task.
    Get(TaskId),
    /// A task's status.
    Status(TaskId),
    /// The outcomes of those tasks that finished.
    Finished(Vec<TaskId>),
    /// The earliest pending `run_at` in these queues (all when empty).
    NextRunAt(Vec<String>),
    /// A task's failure history.
    Failures(TaskId),
    /// Which of these tasks have a cancel request while running, or were cancelled.
    CancelRequested(Vec<TaskId>),
    /// Every stored schedule.
    Schedules,
    /// Every queue with settings or pending or running tasks.
    Queues,
    /// A workflow and its tasks.
    Workflow(sitq_core::WorkflowId),
    /// Every live worker.
    Workers,
    /// A task list.
    Tasks(Box<sitq_core::TaskFilter>),
    /// Counts and recent activity.
    Stats,
    /// What finished from `since` on, by bucket `width` wide (stored units).
    Activity { since: i64, width: i64 },
    /// A task's workflow, dependencies and dependents.
    Links(TaskId),
    /// A page of the audit log.
    AuditLog { limit: usize, before: Option<i64> },
    /// `doctor`'s checks.
    Diagnose {
        location: String,
        path: Option<std::path::PathBuf>,
        oversized_bytes: usize,
    },
}

/// What a [`Read`] found.
#[derive(Debug)]
pub(crate) enum Found {
    /// From [`Read::Get`].
    Record(Option<Box<TaskRecord>>),
    /// From [`Read::Status`].
    Status(Option<TaskStatus>),
    /// From [`Read::Finished`].
    Finished(Vec<Finished>),
    /// From [`Read::NextRunAt`], in stored form.
    NextRunAt(Option<i64>),
    /// From [`Read::Failures`].
    Failures(Vec<AttemptFailure>),
    /// From [`Read::CancelRequested`].
    CancelRequested(Vec<TaskId>),
    /// From [`Read::Schedules`].
    Schedules(Vec<sitq_core::ScheduleInfo>),
    /// From [`Read::Queues`].
    Queues(Vec<sitq_core::QueueInfo>),
    /// From [`Read::Workflow`].
    Workflow(Option<Box<sitq_core::WorkflowInfo>>),
    /// From [`Read::Workers`].
    Workers(Vec<sitq_core::WorkerInfo>),
    /// From [`Read::Tasks`].
    Tasks(Vec<sitq_core::TaskSummary>),
    /// From [`Read::Stats`].
    Stats(Box<sitq_core::Stats>),
    /// From [`Read::Activity`].
    Activity(Vec<sitq_core::ActivityBucket>),
    /// From [`Read::Links`].
    Links(Option<sitq_core::TaskLinks>),
    /// From [`Read::AuditLog`].
    AuditLog(Vec<sitq_core::AuditEntry>),
    /// From [`Read::Diagnose`].
    Diagnosis(Box<sitq_core::Diagnosis>),
}

impl Read {
    /// What is being done, for error messages.
    pub(crate) fn op(&self) -> &'static str {
        match self {
            Read::Get(_) => "reading a task",
            Read::Status(_) => "reading a task's status",
            Read::Finished(_) => "reading finished tasks",
            Read::NextRunAt(_) => "finding the next scheduled task",
            Read::Failures(_) => "reading a task's failure history",
            Read::CancelRequested(_) => "checking tasks for cancel requests",
            Read::Schedules => "listing schedules",
            Read::Queues => "listing queues",
            Read::Workflow(_) => "reading a workflow",
            Read::Workers => "listing workers",
            Read::Tasks(_) => "listing tasks",
            Read::Stats => "reading statistics",
            Read::Activity { .. } => "reading recent activity",
            Read::Links(_) => "reading a task's dependencies",
            Read::AuditLog { .. } => "reading the audit log",
            Read::Diagnose { .. } => "diagnosing the database",
        }
    }

    /// Runs the read on `conn`.
    pub(crate) fn run(&self, conn: &Connection) -> rusqlite::Result<Found> {
        match self {
            Read::Get(id) => {
                let mut statement = conn.prepare_cached(
                    "SELECT id, name, queue, status, priority, attempts, max_attempts, \
                         created_at, run_at, started_at, finished_at, worker_id, \
                         error_kind, error, payload, result, snoozes, \
                         cancel_requested_at, cancelled_by, cancel_reason \
                     FROM sitq_tasks WHERE id = ?1",
                )?;
                let record = statement.query_row([id.0], stored).optional()?;
                Ok(Found::Record(record.map(Box::new)))
            }
            Read::Status(id) => {
                let mut statement =
                    conn.prepare_cached("SELECT status FROM sitq_tasks WHERE id = ?1")?;
                let found: Option<String> =
                    statement.query_row([id.0], |row| row.get(0)).optional()?;
                found
                    .map(|text| status(&text, 0))
                    .transpose()
                    .map(Found::Status)
            }
            Read::Finished(ids) => {
                let mut statement = conn.prepare_cached(
                    "SELECT id, name, status, attempts, result, error_kind, error \
                     FROM sitq_tasks \
                     WHERE id IN (SELECT value FROM json_each(?1)) \
                       AND status IN ('succeeded', 'failed', 'cancelled')",
                )?;
                let rows =
                    statement.query_map([json_ids(ids.iter().map(|id| id.0))], finished_row)?;
                rows.collect::<rusqlite::Result<_>>().map(Found::Finished)
            }
            Read::NextRunAt(queues) => {
                super::queues::next_run_at(conn, queues).map(Found::NextRunAt)
            }
            Read::Failures(id) => {
                let mut statement = conn.prepare_cached(
                    "SELECT attempt, kind, message, worker_id, failed_at, started_at FROM sitq_failures \
                     WHERE task_id = ?1 ORDER BY seq",
                )?;
                let rows = statement.query_map([id.0], |row| {
                    let kind: String = row.get(1)?;
                    Ok(AttemptFailure {
                        attempt: count(row.get(0)?),
                        kind: FailureKind::parse(&kind),
                        message: row.get(2)?,
                        worker_id: row.get(3)?,
                        started_at: row.get::<_, Option<i64>>(5)?.map(time::from_micros),
                        failed_at: time::from_micros(row.get(4)?),
                    })
                })?;
                rows.collect::<rusqlite::Result<_>>().map(Found::Failures)
            }
            Read::CancelRequested(ids) => {
                let mut statement = conn.prepare_cached(
                    "SELECT id FROM sitq_tasks \
                     WHERE id IN (SELECT value FROM json_each(?1)) \
                       AND cancel_requested_at IS NOT NULL \
                       AND status IN ('running', 'cancelled')",
                )?;
                let rows = statement.query_map([json_ids(ids.iter().map(|id| id.0))], |row| {
                    Ok(TaskId(row.get(0)?))
                })?;
                rows.collect::<rusqlite::Result<_>>()
                    .map(Found::CancelRequested)
            }
            Read::Schedules => super::schedules::list(conn).map(Found::Schedules),
            Read::Queues => super::queues::list(conn).map(Found::Queues),
            Read::Workflow(id) => {
                super::deps::workflow(conn, *id).map(|info| Found::Workflow(info.map(Box::new)))
            }
            Read::Workers => super::workers::list(conn, time::now_micros()).map(Found::Workers),
            Read::Tasks(filter) => super::inspect::tasks(conn, filter).map(Found::Tasks),
            Read::Stats => super::inspect::stats(conn, time::now_micros())
                .map(|stats| Found::Stats(Box::new(stats))),
            Read::Activity { since, width } => {
                super::inspect::activity(conn, *since, *width).map(Found::Activity)
            }
            Read::Links(id) => super::inspect::links(conn, *id).map(Found::Links),
            Read::AuditLog { limit, before } => {
                super::audit::log(conn, *limit, *before).map(Found::AuditLog)
            }
            Read::Diagnose {
                location,
                path,
                oversized_bytes,
            } => super::diagnose::diagnose(
                conn,
                location,
                path.as_deref(),
                *oversized_bytes,
                time::now_micros(),
            )
            .map(|diagnosis| Found::Diagnosis(Box::new(diagnosis))),
        }
    }
}

/// Decodes every column of one task.
fn stored(row: &rusqlite::Row<'_>) -> rusqlite::Result<TaskRecord> {
    let time = |micros: Option<i64>| micros.map(time::from_micros);
    let status_text: String = row.get(3)?;
    let priority: i64 = row.get(4)?;
    Ok(TaskRecord {
        id: TaskId(row.get(0)?),
        name: row.get(1)?,
        queue: row.get(2)?,
        status: status(&status_text, 3)?,
        // Stored from an i32; clamping only guards against foreign writers.
        priority: i32::try_from(priority).unwrap_or(if priority < 0 { i32::MIN } else { i32::MAX }),
        attempts: count(row.get(5)?),
        max_attempts: count(row.get(6)?),
        created_at: time::from_micros(row.get(7)?),
        run_at: time::from_micros(row.get(8)?),
        started_at: time(row.get(9)?),
        finished_at: time(row.get(10)?),
        worker_id: row.get(11)?,
        failure: TaskFailure::from_columns(
            row.get::<_, Option<String>>(12)?.as_deref(),
            row.get(13)?,
        ),
        payload: row.get(14)?,
        result: row.get(15)?,
        snoozes: count(row.get(16)?),
        cancellation: match time(row.get(17)?) {
            Some(requested_at) => Some(Cancellation {
                requested_at,
                by: row.get::<_, Option<String>>(18)?.unwrap_or_default(),
                reason: row.get(19)?,
            }),
            None => None,
        },
    })
}
