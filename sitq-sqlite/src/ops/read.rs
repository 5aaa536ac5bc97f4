//! Reads: one statement each, on any connection.

use std::str::FromStr;

use sitq_core::{Result, TaskFailure, TaskId, TaskRecord, TaskStatus};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row as _, SqliteConnection};

use super::placeholders;
use super::write::count;
use crate::time;

/// A read, owned so that it can travel to the writer task (in-memory databases).
#[derive(Debug)]
pub(crate) enum Read {
    /// [`get`].
    Get(TaskId),
    /// [`status`].
    Status(TaskId),
    /// [`next_run_at`].
    NextRunAt(Vec<String>),
}

/// What a [`Read`] found.
#[derive(Debug)]
pub(crate) enum Found {
    /// From [`Read::Get`].
    Record(Option<Box<TaskRecord>>),
    /// From [`Read::Status`].
    Status(Option<TaskStatus>),
    /// From [`Read::NextRunAt`], in stored form.
    NextRunAt(Option<i64>),
}

impl Read {
    /// What is being done, for error messages.
    pub(crate) fn op(&self) -> &'static str {
        match self {
            Read::Get(_) => "reading a task",
            Read::Status(_) => "reading a task's status",
            Read::NextRunAt(_) => "finding the next scheduled task",
        }
    }

    /// Runs the read on `conn`.
    pub(crate) async fn run(&self, conn: &mut SqliteConnection) -> Result<Found> {
        let op = self.op();
        let db = |err| sitq_core::Error::database(op, err);
        match self {
            Read::Get(id) => {
                let row = sqlx::query(
                    "SELECT id, name, queue, status, priority, attempts, max_attempts, \
                         created_at, run_at, started_at, finished_at, worker_id, \
                         error_kind, error, payload, result \
                     FROM sitq_tasks WHERE id = ?1",
                )
                .bind(id.0)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db)?;
                match row {
                    None => Ok(Found::Record(None)),
                    Some(row) => Ok(Found::Record(Some(Box::new(stored(&row).map_err(db)??)))),
                }
            }
            Read::Status(id) => {
                let status: Option<String> =
                    sqlx::query_scalar("SELECT status FROM sitq_tasks WHERE id = ?1")
                        .bind(id.0)
                        .fetch_optional(&mut *conn)
                        .await
                        .map_err(db)?;
                status
                    .map(|status| TaskStatus::from_str(&status))
                    .transpose()
                    .map(Found::Status)
            }
            Read::NextRunAt(queues) => {
                // ORDER BY run_at LIMIT 1 walks the pending run_at index from
                // its start, stopping at the first row in one of `queues`.
                let query = if queues.is_empty() {
                    sqlx::query_scalar(
                        "SELECT run_at FROM sitq_tasks WHERE status = 'pending' \
                         ORDER BY run_at LIMIT 1",
                    )
                } else {
                    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT run_at FROM sitq_tasks WHERE status = 'pending' \
                         AND queue IN {} ORDER BY run_at LIMIT 1",
                        placeholders(1, queues.len(), 1)
                    )))
                };
                let query = queues
                    .iter()
                    .fold(query, |query, queue| query.bind(queue.as_str()));
                let next: Option<i64> = query.fetch_optional(&mut *conn).await.map_err(db)?;
                Ok(Found::NextRunAt(next))
            }
        }
    }
}

/// Decodes every column of one task.
fn stored(row: &SqliteRow) -> sqlx::Result<Result<TaskRecord>> {
    let time = |micros: Option<i64>| micros.map(time::from_micros);
    let status: String = row.try_get(3)?;
    let status = match TaskStatus::from_str(&status) {
        Ok(status) => status,
        Err(err) => return Ok(Err(err)),
    };
    let error_kind: Option<String> = row.try_get(12)?;
    let error: Option<String> = row.try_get(13)?;
    let failure = TaskFailure::from_columns(error_kind.as_deref(), error);
    let priority: i64 = row.try_get(4)?;
    Ok(Ok(TaskRecord {
        id: TaskId(row.try_get(0)?),
        name: row.try_get(1)?,
        queue: row.try_get(2)?,
        status,
        // Stored from an i32; clamping only guards against foreign writers.
        priority: i32::try_from(priority).unwrap_or(if priority < 0 { i32::MIN } else { i32::MAX }),
        attempts: count(row.try_get(5)?),
        max_attempts: count(row.try_get(6)?),
        created_at: time::from_micros(row.try_get(7)?),
        run_at: time::from_micros(row.try_get(8)?),
        started_at: time(row.try_get(9)?),
        finished_at: time(row.try_get(10)?),
        worker_id: row.try_get(11)?,
        failure,
        payload: row.try_get(14)?,
        result: row.try_get(15)?,
    }))
}
