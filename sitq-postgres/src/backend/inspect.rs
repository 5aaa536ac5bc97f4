//! Looking at tasks, cancelling and pruning them.

use chrono::{DateTime, Utc};
use sitq_core::{Error, Finished, Result, TaskFailure, TaskId, TaskRecord, TaskStatus};
use sqlx::Row;
use sqlx::postgres::PgPool;

use crate::connect::db_error;
use crate::notify::{notified_cte, releases_column};

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

/// Cancels a pending or blocked task and notifies its waiters everywhere,
/// in one statement.
const CANCEL: &str = concat!(
    "
WITH changed AS (
    UPDATE sitq_tasks AS t
    SET status = 'cancelled', finished_at = now(), lease_until = NULL
    WHERE id = $1 AND status IN ('pending', 'blocked')
    RETURNING id, status, name, attempts, error_kind, error, ",
    releases_column!(),
    "
), ",
    notified_cte!(releasing),
    "
SELECT changed.name, changed.attempts, changed.error_kind, changed.error
FROM changed CROSS JOIN (SELECT count(*) FROM notified) AS notified"
);

/// Cancels task `id` if it has not started; its outcome when it did.
pub(super) async fn cancel(pool: &PgPool, id: TaskId) -> Result<Option<Finished>> {
    let cancelled: Option<(String, i32, Option<String>, Option<String>)> = sqlx::query_as(CANCEL)
        .bind(id.0)
        .fetch_optional(pool)
        .await
        .map_err(db_error("cancelling a task"))?;
    Ok(
        cancelled.map(|(name, attempts, error_kind, error)| Finished {
            id,
            name,
            status: TaskStatus::Cancelled,
            attempts: u32::try_from(attempts).unwrap_or(0),
            result: None,
            failure: TaskFailure::from_columns(error_kind.as_deref(), error),
        }),
    )
}

/// The outcomes of those of `ids` that finished, in one query.
pub(super) async fn finished(pool: &PgPool, ids: &[TaskId]) -> Result<Vec<Finished>> {
    const OP: &str = "reading finished tasks";
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
    let rows = sqlx::query(
        "
SELECT id, name, status, attempts, result, error_kind, error
FROM sitq_tasks
WHERE id = ANY($1) AND status IN ('succeeded', 'failed', 'cancelled')",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
    .map_err(db_error(OP))?;
    rows.iter()
        .map(|row| {
            let decode = |err: sqlx::Error| Error::database(OP, err);
            let status: String = row.try_get("status").map_err(decode)?;
            let attempts: i32 = row.try_get("attempts").map_err(decode)?;
            let error_kind: Option<String> = row.try_get("error_kind").map_err(decode)?;
            let error: Option<String> = row.try_get("error").map_err(decode)?;
            Ok(Finished {
                id: TaskId(row.try_get("id").map_err(decode)?),
                name: row.try_get("name").map_err(decode)?,
                status: parse_status(&status, OP)?,
                attempts: u32::try_from(attempts).unwrap_or(0),
                result: row.try_get("result").map_err(decode)?,
                failure: TaskFailure::from_columns(error_kind.as_deref(), error),
            })
        })
        .collect()
}

/// The most rows one pruning statement deletes: a large backlog is deleted
/// in steps, each a short transaction, instead of one that holds its locks
/// (and bloats the WAL) for as long as it takes.
const PRUNE_STEP: i64 = 5_000;

/// Deletes finished tasks that finished before `before`, [`PRUNE_STEP`] rows
/// per statement. The outer `WHERE` repeats the filter so that a row changed
/// since the subquery picked it (retried, say) is rechecked, not deleted.
pub(super) async fn prune(pool: &PgPool, before: DateTime<Utc>) -> Result<u64> {
    let mut total = 0;
    loop {
        let deleted = sqlx::query(
            "
DELETE FROM sitq_tasks
WHERE id IN (
    SELECT id FROM sitq_tasks
    WHERE status IN ('succeeded', 'failed', 'cancelled') AND finished_at < $1
    LIMIT $2
) AND status IN ('succeeded', 'failed', 'cancelled') AND finished_at < $1",
        )
        .bind(before)
        .bind(PRUNE_STEP)
        .execute(pool)
        .await
        .map_err(db_error("pruning finished tasks"))?
        .rows_affected();
        total += deleted;
        if deleted < u64::try_from(PRUNE_STEP).unwrap_or(u64::MAX) {
            return Ok(total);
        }
    }
}

fn parse_status(status: &str, op: &'static str) -> Result<TaskStatus> {
    status
        .parse()
        .map_err(|error| Error::database(op, format!("stored status: {error}")))
}
