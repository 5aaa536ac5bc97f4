//! Looking at tasks, cancelling and pruning them.

use chrono::{DateTime, Utc};
use sitq_core::{Error, Result, TaskFailure, TaskId, TaskRecord, TaskStatus};
use sqlx::Row;
use sqlx::postgres::PgPool;

use crate::connect::db_error;

use crate::notify::Notices;

/// The full record of task `id`.
pub(super) async fn get(pool: &PgPool, id: TaskId) -> Result<Option<TaskRecord>> {
    const OP: &str = "reading a task";
    let row = sqlx::query(
        "
SELECT id, name, queue, status, priority, attempts, max_attempts, created_at, run_at,
       started_at, finished_at, worker_id, error_kind, error, payload, result
FROM sitq_tasks WHERE id = $1",
    )
    .bind(id.0)
    .fetch_optional(pool)
    .await
    .map_err(db_error(OP))?;
    let Some(row) = row else { return Ok(None) };
    let decode = |err: sqlx::Error| Error::database(OP, err);
    let status: String = row.try_get("status").map_err(decode)?;
    let error_kind: Option<String> = row.try_get("error_kind").map_err(decode)?;
    let error: Option<String> = row.try_get("error").map_err(decode)?;
    let failure = TaskFailure::from_columns(error_kind.as_deref(), error);
    let count = |column: &str| -> Result<u32> {
        let value: i32 = row.try_get(column).map_err(decode)?;
        Ok(u32::try_from(value).unwrap_or(0))
    };
    Ok(Some(TaskRecord {
        id: TaskId(row.try_get("id").map_err(decode)?),
        name: row.try_get("name").map_err(decode)?,
        queue: row.try_get("queue").map_err(decode)?,
        status: parse_status(&status, OP)?,
        priority: row.try_get("priority").map_err(decode)?,
        attempts: count("attempts")?,
        max_attempts: count("max_attempts")?,
        created_at: row
            .try_get::<DateTime<Utc>, _>("created_at")
            .map_err(decode)?,
        run_at: row.try_get::<DateTime<Utc>, _>("run_at").map_err(decode)?,
        started_at: row.try_get("started_at").map_err(decode)?,
        finished_at: row.try_get("finished_at").map_err(decode)?,
        worker_id: row.try_get("worker_id").map_err(decode)?,
        failure,
        payload: row.try_get("payload").map_err(decode)?,
        result: row.try_get("result").map_err(decode)?,
    }))
}

/// The status of task `id`.
pub(super) async fn status(pool: &PgPool, id: TaskId) -> Result<Option<TaskStatus>> {
    const OP: &str = "reading a task's status";
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM sitq_tasks WHERE id = $1")
        .bind(id.0)
        .fetch_optional(pool)
        .await
        .map_err(db_error(OP))?;
    status.map(|status| parse_status(&status, OP)).transpose()
}

/// Cancels task `id` if it has not started, notifying its waiters everywhere.
pub(super) async fn cancel(pool: &PgPool, id: TaskId) -> Result<bool> {
    const OP: &str = "cancelling a task";
    let mut tx = pool.begin().await.map_err(db_error(OP))?;
    let cancelled = sqlx::query(
        "
UPDATE sitq_tasks
SET status = 'cancelled', finished_at = now(), lease_until = NULL
WHERE id = $1 AND status IN ('pending', 'blocked')",
    )
    .bind(id.0)
    .execute(&mut *tx)
    .await
    .map_err(db_error(OP))?
    .rows_affected()
        > 0;
    if cancelled {
        let notices = Notices {
            work: false,
            finished: vec![id],
        };
        notices.send(&mut tx, OP).await?;
    }
    tx.commit().await.map_err(db_error(OP))?;
    Ok(cancelled)
}

/// Deletes finished tasks that finished before `before`.
pub(super) async fn prune(pool: &PgPool, before: DateTime<Utc>) -> Result<u64> {
    let deleted = sqlx::query(
        "
DELETE FROM sitq_tasks
WHERE status IN ('succeeded', 'failed', 'cancelled') AND finished_at < $1",
    )
    .bind(before)
    .execute(pool)
    .await
    .map_err(db_error("pruning finished tasks"))?;
    Ok(deleted.rows_affected())
}

fn parse_status(status: &str, op: &'static str) -> Result<TaskStatus> {
    status
        .parse()
        .map_err(|error| Error::database(op, format!("stored status: {error}")))
}
