//! Reads: one statement each, on any connection.

use rusqlite::{Connection, OptionalExtension};
use sitq_core::{Finished, TaskFailure, TaskId, TaskRecord, TaskStatus};

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
    /// Every queue with settings or pending or running tasks.
    Queues,
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
    /// From [`Read::Queues`].
    Queues(Vec<sitq_core::QueueInfo>),
}

impl Read {
    /// What is being done, for error messages.
    pub(crate) fn op(&self) -> &'static str {
        match self {
            Read::Get(_) => "reading a task",
            Read::Status(_) => "reading a task's status",
            Read::Finished(_) => "reading finished tasks",
            Read::NextRunAt(_) => "finding the next scheduled task",
            Read::Queues => "listing queues",
        }
    }

    /// Runs the read on `conn`.
    pub(crate) fn run(&self, conn: &Connection) -> rusqlite::Result<Found> {
        match self {
            Read::Get(id) => {
                let mut statement = conn.prepare_cached(
                    "SELECT id, name, queue, status, priority, attempts, max_attempts, \
                         created_at, run_at, started_at, finished_at, worker_id, \
                         error_kind, error, payload, result \
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
            Read::Queues => super::queues::list(conn).map(Found::Queues),
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
    })
}
