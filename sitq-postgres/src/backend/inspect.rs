//! Looking at tasks, cancelling and retrying them.

use chrono::{DateTime, Utc};
use sitq_core::{
    AttemptFailure, CancelOutcome, CancelRequest, Cancellation, Error, FailureKind, Finished,
    Result, TaskFailure, TaskId, TaskRecord, TaskStatus,
};
use sqlx::Row;
use sqlx::postgres::PgPool;

use crate::connect::db_error;
use crate::notify::{Notices, notified_cte, releases_column};

/// The full record of task `id`.
pub(super) async fn get(pool: &PgPool, id: TaskId) -> Result<Option<TaskRecord>> {
    const OP: &str = "reading a task";
    let row = sqlx::query(
        "
SELECT id, name, queue, status, priority, attempts, max_attempts, created_at, run_at,
       started_at, finished_at, worker_id, error_kind, error, payload, result, snoozes,
       cancel_requested_at, cancelled_by, cancel_reason
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
        snoozes: count("snoozes")?,
        cancellation: match row
            .try_get::<Option<DateTime<Utc>>, _>("cancel_requested_at")
            .map_err(decode)?
        {
            Some(requested_at) => Some(Cancellation {
                requested_at,
                by: row
                    .try_get::<Option<String>, _>("cancelled_by")
                    .map_err(decode)?
                    .unwrap_or_default(),
                reason: row.try_get("cancel_reason").map_err(decode)?,
            }),
            None => None,
        },
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

/// Cancels a task (see `Backend::cancel`) and notifies, in one statement.
///
/// A task that has not started (pending, blocked, or reserved: running
/// with `started_at` unset) becomes `cancelled`, giving a reserved attempt
/// back; a started one keeps running with the request stored (the first
/// request is kept). `SET` expressions see the row before the update, and
/// PostgreSQL re-evaluates them on the latest row version when a concurrent
/// update (a start mark, a completion) got there first. Every cancel
/// notifies `sitq_cancel` with the id, so the worker holding the task (if
/// any) stops it, and `notified` tells waiters of a task that finished.
const CANCEL: &str = concat!(
    "
WITH changed AS (
    UPDATE sitq_tasks AS t
    SET status = CASE WHEN status = 'running' AND started_at IS NOT NULL
            THEN status ELSE 'cancelled' END,
        finished_at = CASE WHEN status = 'running' AND started_at IS NOT NULL
            THEN finished_at ELSE now() END,
        lease_until = CASE WHEN status = 'running' AND started_at IS NOT NULL
            THEN lease_until END,
        attempts = CASE WHEN status = 'running' AND started_at IS NULL
            THEN attempts - 1 ELSE attempts END,
        error_kind = CASE WHEN status = 'running' AND started_at IS NOT NULL
            THEN error_kind ELSE 'cancelled' END,
        error = CASE WHEN status = 'running' AND started_at IS NOT NULL
            THEN error ELSE $4 END,
        cancelled_by = CASE WHEN cancel_requested_at IS NULL THEN $2 ELSE cancelled_by END,
        cancel_reason = CASE WHEN cancel_requested_at IS NULL THEN $3 ELSE cancel_reason END,
        cancel_requested_at = coalesce(cancel_requested_at, now()),
        unique_key = CASE WHEN status = 'running' AND started_at IS NOT NULL
            THEN unique_key END,
        dependents_resolved = CASE WHEN status = 'running' AND started_at IS NOT NULL
            THEN dependents_resolved ELSE NOT has_dependents END
    WHERE id = $1 AND status IN ('pending', 'blocked', 'running')
    RETURNING id, status, name, attempts, error_kind, error, has_dependents, ",
    releases_column!(),
    "
), cancel_notice AS MATERIALIZED (
    SELECT pg_notify('",
    crate::notify::CANCEL_CHANNEL!(),
    "', changed.id::text) FROM changed
), ",
    notified_cte!(releasing),
    "
SELECT changed.status, changed.name, changed.attempts, changed.error_kind, changed.error,
       changed.has_dependents
FROM changed
    CROSS JOIN (SELECT count(*) FROM notified) AS notified
    CROSS JOIN (SELECT count(*) FROM cancel_notice) AS cancel_notice"
);

/// A cancelled or requested task as [`CANCEL`] returns it.
type CancelRow = (String, String, i32, Option<String>, Option<String>, bool);

/// Cancels task `id` for `request`: what happened, and the outcomes of the
/// tasks that finished by it (for this process's waiters): the task, and
/// its dependents cancelled in turn (their notices too).
pub(super) async fn cancel(
    pool: &PgPool,
    id: TaskId,
    request: &CancelRequest,
) -> Result<(CancelOutcome, Vec<Finished>, Notices)> {
    const OP: &str = "cancelling a task";
    let message = CancelRequest::message(request.get_by(), request.get_reason());
    // A miss is looked at again: a task retried or released in between
    // is cancellable after all. Each round trip sees a newer state, and a
    // task changes state only a few times, so this ends.
    for _ in 0..5 {
        let row: Option<CancelRow> = sqlx::query_as(CANCEL)
            .bind(id.0)
            .bind(request.get_by())
            .bind(request.get_reason())
            .bind(&message)
            .fetch_optional(pool)
            .await
            .map_err(db_error(OP))?;
        if let Some((status, name, attempts, error_kind, error, has_dependents)) = row {
            if status == "running" {
                return Ok((CancelOutcome::Requested, Vec::new(), Notices::default()));
            }
            let finished = Finished {
                id,
                name,
                status: TaskStatus::Cancelled,
                attempts: u32::try_from(attempts).unwrap_or(0),
                result: None,
                failure: TaskFailure::from_columns(error_kind.as_deref(), error),
            };
            let mut outcomes = vec![finished];
            let mut notices = Notices::default();
            if has_dependents {
                let resolution = super::resolve::resolve(pool, vec![id.0]).await;
                notices = resolution.notices;
                outcomes.extend(resolution.outcomes);
            }
            return Ok((CancelOutcome::Cancelled, outcomes, notices));
        }
        match status(pool, id).await? {
            None => return Err(Error::NotFound(id)),
            Some(status) if status.is_finished() => {
                return Ok((
                    CancelOutcome::AlreadyFinished(status),
                    Vec::new(),
                    Notices::default(),
                ));
            }
            Some(_) => continue,
        }
    }
    Err(Error::database(
        OP,
        format!("task {id} kept changing state while being cancelled"),
    ))
}

/// Runs a failed or cancelled task again (see `Backend::retry`) and
/// notifies workers (`sitq_work`) and every process's waiters
/// (`sitq_retry`: forget the old outcome), in one statement. A task with
/// dependencies waits for them again: `blocked` while some has not
/// succeeded (with `after_finished`: not finished), counting each once
/// (`waiting`: nothing for a task without dependencies). Its dependents
/// are resolved again when it finishes again.
const RETRY: &str = concat!(
    "
WITH waiting AS (
    SELECT count(DISTINCT d.dep_id)::int AS deps
    FROM sitq_tasks AS me
        JOIN sitq_deps AS d ON d.task_id = me.id
        JOIN sitq_tasks AS x ON x.id = d.dep_id
    WHERE me.id = $1
      AND NOT (x.status = 'succeeded'
          OR (me.after_finished AND x.status IN ('failed', 'cancelled')))
), changed AS (
    UPDATE sitq_tasks
    SET status = CASE WHEN waiting.deps > 0 THEN 'blocked' ELSE 'pending' END,
        deps_pending = waiting.deps, dependents_resolved = false,
        attempts = 0, run_at = now(), worker_id = NULL,
        lease_until = NULL, started_at = NULL, finished_at = NULL, result = NULL,
        cancel_requested_at = NULL, cancelled_by = NULL, cancel_reason = NULL
    FROM waiting
    WHERE id = $1 AND status IN ('failed', 'cancelled')
    RETURNING id, status
), retry_notice AS MATERIALIZED (
    SELECT pg_notify('",
    crate::notify::RETRY_CHANNEL!(),
    "', changed.id::text) FROM changed
), ",
    notified_cte!(),
    "
SELECT changed.id
FROM changed
    CROSS JOIN (SELECT count(*) FROM notified) AS notified
    CROSS JOIN (SELECT count(*) FROM retry_notice) AS retry_notice"
);

/// Locks the blocked dependents of task `$1`, in id order.
const LOCK_DEPENDENTS: &str = "
SELECT id FROM sitq_tasks
WHERE status = 'blocked' AND id IN (SELECT task_id FROM sitq_deps WHERE dep_id = $1)
ORDER BY id
FOR NO KEY UPDATE";

/// Recounts the dependencies the blocked tasks `$1` wait for. One counts as
/// resolved only once its resolution has been applied (`dependents_resolved`):
/// a resolution still to come will count it down then. Pruned ones finished
/// long ago and count as resolved.
const RECOUNT_DEPENDENTS: &str = "
UPDATE sitq_tasks AS t
SET deps_pending = (
    SELECT count(DISTINCT d.dep_id)::int
    FROM sitq_deps AS d JOIN sitq_tasks AS x ON x.id = d.dep_id
    WHERE d.task_id = t.id
      AND NOT ((x.status = 'succeeded'
                OR (t.after_finished AND x.status IN ('failed', 'cancelled')))
               AND x.dependents_resolved))
WHERE t.id = ANY($1) AND t.status = 'blocked'";

/// Locks the dependencies of task `$1` (in id order), and reads which of
/// them finished with their dependents not resolved yet.
const LOCK_DEPENDENCIES: &str = "
SELECT id, status IN ('succeeded', 'failed', 'cancelled') AND has_dependents
       AND NOT dependents_resolved
FROM sitq_tasks
WHERE id IN (SELECT dep_id FROM sitq_deps WHERE task_id = $1)
ORDER BY id
FOR NO KEY UPDATE";

/// Runs task `id` again; see [`RETRY`]. In one transaction that first locks
/// its dependencies, so that their statuses hold while it counts them; a
/// dependency whose follow-up resolution has not run yet is resolved
/// first, so that it cannot count for the task twice.
pub(super) async fn retry(pool: &PgPool, id: TaskId) -> Result<()> {
    const OP: &str = "retrying a task";
    let mut tx = pool.begin().await.map_err(db_error(OP))?;
    let deps: Vec<(i64, bool)> = sqlx::query_as(LOCK_DEPENDENCIES)
        .bind(id.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error(OP))?;
    let unresolved: Vec<i64> = deps
        .into_iter()
        .filter(|(_, unresolved)| *unresolved)
        .map(|(id, _)| id)
        .collect();
    if !unresolved.is_empty() {
        super::resolve::resolve_on(&mut tx, unresolved)
            .await
            .map_err(db_error(OP))?;
    }
    let retried: Option<i64> = sqlx::query_scalar(RETRY)
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error(OP))?;
    if retried.is_some() {
        // Its blocked dependents may have counted its finish (after_finished
        // ones): count them afresh, under their row locks, so a resolution
        // in flight elsewhere either committed before (seen) or waits and
        // then applies to the new count.
        let dependents: Vec<i64> = sqlx::query_scalar(LOCK_DEPENDENTS)
            .bind(id.0)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error(OP))?;
        if !dependents.is_empty() {
            sqlx::query(RECOUNT_DEPENDENTS)
                .bind(dependents)
                .execute(&mut *tx)
                .await
                .map_err(db_error(OP))?;
        }
    }
    tx.commit().await.map_err(db_error(OP))?;
    if retried.is_some() {
        return Ok(());
    }
    match status(pool, id).await? {
        None => Err(Error::NotFound(id)),
        Some(status) => Err(Error::NotRetryable { id, status }),
    }
}

/// A failure history row: attempt, kind, message, worker, when it started
/// and when it failed.
type FailureRow = (
    i32,
    String,
    String,
    Option<String>,
    Option<DateTime<Utc>>,
    DateTime<Utc>,
);

/// The failure history of task `id`, oldest first.
pub(super) async fn failures(pool: &PgPool, id: TaskId) -> Result<Vec<AttemptFailure>> {
    const OP: &str = "reading a task's failure history";
    let rows: Vec<FailureRow> = sqlx::query_as(
        "
SELECT attempt, kind, message, worker_id, started_at, failed_at
FROM sitq_failures WHERE task_id = $1 ORDER BY seq",
    )
    .bind(id.0)
    .fetch_all(pool)
    .await
    .map_err(db_error(OP))?;
    Ok(rows
        .into_iter()
        .map(
            |(attempt, kind, message, worker_id, started_at, failed_at)| AttemptFailure {
                attempt: u32::try_from(attempt).unwrap_or(0),
                kind: FailureKind::parse(&kind),
                message,
                worker_id,
                started_at,
                failed_at,
            },
        )
        .collect())
}

/// The ids of `ids` with a cancel request while running, or cancelled.
pub(super) async fn cancel_requested(pool: &PgPool, ids: &[TaskId]) -> Result<Vec<TaskId>> {
    let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
    let found: Vec<i64> = sqlx::query_scalar(
        "
SELECT id FROM sitq_tasks
WHERE id = ANY($1) AND cancel_requested_at IS NOT NULL AND status IN ('running', 'cancelled')",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
    .map_err(db_error("checking tasks for cancel requests"))?;
    Ok(found.into_iter().map(TaskId).collect())
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

/// A stored status; an unknown one means a corrupt row (or a newer sitq).
pub(super) fn parse_status(status: &str, op: &'static str) -> Result<TaskStatus> {
    status
        .parse()
        .map_err(|error| Error::database(op, format!("stored status: {error}")))
}
