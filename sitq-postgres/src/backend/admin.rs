//! What the admin tools read: task lists, statistics, activity by time
//! bucket, a task's dependency links and the audit log.

use chrono::{DateTime, Utc};
use sitq_core::inspect::{MAX_LIST, SUMMARY_ERROR_CHARS, activity_buckets};
use sitq_core::{
    ActivityBucket, AuditEntry, Error, FailureKind, FinishedCount, NewAuditEntry, Result, Stats,
    StatusCount, TaskFilter, TaskId, TaskLinks, TaskSummary, WorkflowId,
};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Postgres, QueryBuilder, Row};

use crate::connect::db_error;

use super::inspect::parse_status;
use super::{count, without_nul};

/// Tasks matching `filter`, newest first. The `WHERE` clause holds only the
/// filter's conditions (each value bound), so PostgreSQL plans each shape
/// of list for what it asks. The error is cut in SQL (`substr` reads only
/// the start of a large stored value), and payload and result are not read.
pub(super) async fn tasks(pool: &PgPool, filter: &TaskFilter) -> Result<Vec<TaskSummary>> {
    const OP: &str = "listing tasks";
    let mut query = QueryBuilder::<Postgres>::new(
        "
SELECT id, name, queue, status, priority, attempts, max_attempts, created_at, run_at,
       started_at, finished_at, worker_id, error_kind, substr(error, 1, ",
    );
    query.push_bind(i32::try_from(SUMMARY_ERROR_CHARS).unwrap_or(i32::MAX));
    query.push(") AS error FROM sitq_tasks WHERE true");
    if !filter.statuses.is_empty() {
        let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
        query
            .push(" AND status = ANY(")
            .push_bind(statuses)
            .push(")");
    }
    if let Some(queue) = &filter.queue {
        query.push(" AND queue = ").push_bind(without_nul(queue));
    }
    if let Some(name) = &filter.name {
        query.push(" AND name = ").push_bind(without_nul(name));
    }
    if let Some(since) = filter.since {
        query.push(" AND created_at >= ").push_bind(since);
    }
    if let Some(before) = filter.before {
        query.push(" AND id < ").push_bind(before.0);
    }
    let limit = i64::try_from(filter.limit.min(MAX_LIST)).unwrap_or(0);
    query.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
    let rows = query.build().fetch_all(pool).await.map_err(db_error(OP))?;
    rows.iter().map(|row| summary(row, OP)).collect()
}

fn summary(row: &PgRow, op: &'static str) -> Result<TaskSummary> {
    let decode = |error: sqlx::Error| Error::database(op, error);
    let status: String = row.try_get("status").map_err(decode)?;
    let error_kind: Option<String> = row.try_get("error_kind").map_err(decode)?;
    Ok(TaskSummary {
        id: TaskId(row.try_get("id").map_err(decode)?),
        name: row.try_get("name").map_err(decode)?,
        queue: row.try_get("queue").map_err(decode)?,
        status: parse_status(&status, op)?,
        priority: row.try_get("priority").map_err(decode)?,
        attempts: count(row.try_get("attempts").map_err(decode)?, op)?,
        max_attempts: count(row.try_get("max_attempts").map_err(decode)?, op)?,
        created_at: row.try_get("created_at").map_err(decode)?,
        run_at: row.try_get("run_at").map_err(decode)?,
        started_at: row.try_get("started_at").map_err(decode)?,
        finished_at: row.try_get("finished_at").map_err(decode)?,
        worker_id: row.try_get("worker_id").map_err(decode)?,
        error_kind: error_kind.as_deref().map(FailureKind::parse),
        error: row.try_get("error").map_err(decode)?,
    })
}

/// Every task by queue, name and state; for pending ones the earliest
/// `run_at` among those due.
const COUNTS: &str = "
SELECT queue, name, status, count(*),
       min(run_at) FILTER (WHERE status = 'pending' AND run_at <= now())
FROM sitq_tasks
GROUP BY queue, name, status
ORDER BY queue, name, status";

/// A row of [`COUNTS`]: queue, name, status, count, oldest due `run_at`.
type CountRow = (String, String, String, i64, Option<DateTime<Utc>>);

/// Tasks finished in the last hour (through `sitq_tasks_finished`), by
/// queue and outcome, with those of the last minute.
const FINISHED: &str = "
SELECT queue, status,
       count(*) FILTER (WHERE finished_at >= now() - interval '1 minute'), count(*)
FROM sitq_tasks
WHERE status IN ('succeeded', 'failed', 'cancelled') AND finished_at >= now() - interval '1 hour'
GROUP BY queue, status
ORDER BY queue, status";

/// Failed attempts of the last minute and hour (through `sitq_failures_failed_at`).
const FAILED_ATTEMPTS: &str = "
SELECT count(*) FILTER (WHERE failed_at >= now() - interval '1 minute'), count(*)
FROM sitq_failures
WHERE failed_at >= now() - interval '1 hour'";

/// The figures of [`Stats`], read in one read-only transaction at
/// `REPEATABLE READ`: one snapshot, and one `now()` (the transaction's
/// start) for every window.
pub(super) async fn stats(pool: &PgPool) -> Result<Stats> {
    const OP: &str = "reading statistics";
    let mut tx = pool.begin().await.map_err(db_error(OP))?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(db_error(OP))?;
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error(OP))?;
    let counts: Vec<CountRow> = sqlx::query_as(COUNTS)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error(OP))?;
    let finished: Vec<(String, String, i64, i64)> = sqlx::query_as(FINISHED)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error(OP))?;
    let (failed_minute, failed_hour): (i64, i64) = sqlx::query_as(FAILED_ATTEMPTS)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error(OP))?;
    tx.commit().await.map_err(db_error(OP))?;
    Ok(Stats {
        now,
        counts: counts
            .into_iter()
            .map(|(queue, name, status, count, oldest_due)| {
                Ok(StatusCount {
                    queue,
                    name,
                    status: parse_status(&status, OP)?,
                    count: unsigned(count),
                    oldest_due,
                })
            })
            .collect::<Result<_>>()?,
        finished: finished
            .into_iter()
            .map(|(queue, status, last_minute, last_hour)| {
                Ok(FinishedCount {
                    queue,
                    status: parse_status(&status, OP)?,
                    last_minute: unsigned(last_minute),
                    last_hour: unsigned(last_hour),
                })
            })
            .collect::<Result<_>>()?,
        failed_attempts_last_minute: unsigned(failed_minute),
        failed_attempts_last_hour: unsigned(failed_hour),
    })
}

/// [`Error::PermissionDenied`] unless the role this pool connects as may
/// insert into the audit log (directly or through a role it belongs to).
pub(super) async fn check_audit(pool: &PgPool) -> Result<()> {
    const OP: &str = "recording an admin action";
    let allowed: bool = sqlx::query_scalar("SELECT has_table_privilege('sitq_audit', 'INSERT')")
        .fetch_one(pool)
        .await
        .map_err(db_error(OP))?;
    if allowed {
        Ok(())
    } else {
        Err(Error::PermissionDenied {
            op: OP,
            reason: "permission denied for table sitq_audit, so the action was not done \
                     (an admin action that cannot be recorded is refused)"
                .to_owned(),
        })
    }
}

/// Adds `entry` to the audit log, at the server's clock.
pub(super) async fn record_audit(pool: &PgPool, entry: &NewAuditEntry) -> Result<()> {
    sqlx::query("INSERT INTO sitq_audit (actor, action, target, detail) VALUES ($1, $2, $3, $4)")
        .bind(without_nul(&entry.actor))
        .bind(without_nul(&entry.action))
        .bind(without_nul(&entry.target))
        .bind(entry.detail.as_deref().map(without_nul))
        .execute(pool)
        .await
        .map_err(db_error("recording an admin action"))?;
    Ok(())
}

/// An audit row as [`audit_log`] reads it.
type AuditRow = (i64, DateTime<Utc>, String, String, String, Option<String>);

/// At most `limit` audit entries with an id below `before`, newest first.
pub(super) async fn audit_log(
    pool: &PgPool,
    limit: usize,
    before: Option<i64>,
) -> Result<Vec<AuditEntry>> {
    let rows: Vec<AuditRow> = sqlx::query_as(
        "
SELECT id, at, actor, action, target, detail FROM sitq_audit
WHERE $1::bigint IS NULL OR id < $1
ORDER BY id DESC LIMIT $2",
    )
    .bind(before)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
    .map_err(db_error("reading the audit log"))?;
    Ok(rows
        .into_iter()
        .map(|(id, at, actor, action, target, detail)| AuditEntry {
            id,
            at,
            actor,
            action,
            target,
            detail,
        })
        .collect())
}

/// A count from SQL (never negative) as the API's `u64`.
fn unsigned(count: i64) -> u64 {
    u64::try_from(count).unwrap_or(0)
}

/// Tasks finished from `$1` on by bucket of `$2` seconds (through
/// `sitq_tasks_finished`): the bucket's number, its counts by outcome and
/// the mean wait in microseconds from due to the last attempt's start.
const ACTIVITY_TASKS: &str = "
SELECT floor(extract(epoch FROM finished_at - $1) / $2)::bigint AS k,
       count(*) FILTER (WHERE status = 'succeeded'),
       count(*) FILTER (WHERE status = 'failed'),
       count(*) FILTER (WHERE status = 'cancelled'),
       avg(greatest(extract(epoch FROM started_at - run_at), 0) * 1000000)
           FILTER (WHERE started_at IS NOT NULL)::float8
FROM sitq_tasks
WHERE status IN ('succeeded', 'failed', 'cancelled') AND finished_at >= $1
GROUP BY 1";

/// Failed attempts from `$1` on by bucket of `$2` seconds (through
/// `sitq_failures_failed_at`).
const ACTIVITY_FAILURES: &str = "
SELECT floor(extract(epoch FROM failed_at - $1) / $2)::bigint AS k, count(*)
FROM sitq_failures WHERE failed_at >= $1 GROUP BY 1";

/// A row of [`ACTIVITY_TASKS`].
type ActivityRow = (i64, i64, i64, i64, Option<f64>);

/// What finished from `since` on, by bucket `width` wide, read in one
/// snapshot.
pub(super) async fn activity(
    pool: &PgPool,
    since: DateTime<Utc>,
    width: std::time::Duration,
) -> Result<Vec<ActivityBucket>> {
    const OP: &str = "reading recent activity";
    let seconds = width.as_secs_f64().max(1e-6);
    let mut tx = pool.begin().await.map_err(db_error(OP))?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(db_error(OP))?;
    let tasks: Vec<ActivityRow> = sqlx::query_as(ACTIVITY_TASKS)
        .bind(since)
        .bind(seconds)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error(OP))?;
    let failures: Vec<(i64, i64)> = sqlx::query_as(ACTIVITY_FAILURES)
        .bind(since)
        .bind(seconds)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error(OP))?;
    tx.commit().await.map_err(db_error(OP))?;
    let unsigned = |n: i64| n.max(0).unsigned_abs();
    Ok(activity_buckets(
        since,
        width,
        tasks
            .into_iter()
            .map(|(k, succeeded, failed, cancelled, wait)| {
                let counts = [unsigned(succeeded), unsigned(failed), unsigned(cancelled)];
                (k, counts, wait.map(|wait| wait as u64))
            }),
        failures.into_iter().map(|(k, count)| (k, unsigned(count))),
    ))
}

/// The columns [`summary`] decodes, the error cut to 500 characters
/// ([`SUMMARY_ERROR_CHARS`]), for a query over `sitq_tasks AS t`.
macro_rules! summary_columns {
    () => {
        "SELECT t.id, t.name, t.queue, t.status, t.priority, t.attempts, t.max_attempts,
       t.created_at, t.run_at, t.started_at, t.finished_at, t.worker_id, t.error_kind,
       substr(t.error, 1, 500) AS error"
    };
}

/// A task's dependencies, in the order it declared them.
const DEPENDENCIES: &str = concat!(
    summary_columns!(),
    "
FROM sitq_deps AS d JOIN sitq_tasks AS t ON t.id = d.dep_id
WHERE d.task_id = $1 ORDER BY d.ord"
);

/// The tasks that depend on a task, by id.
const DEPENDENTS: &str = concat!(
    summary_columns!(),
    "
FROM sitq_tasks AS t
WHERE t.id IN (SELECT task_id FROM sitq_deps WHERE dep_id = $1) ORDER BY t.id"
);

/// Task `id`'s workflow, dependencies (in declared order) and dependents,
/// read in one snapshot; `None` when there is no such task.
pub(super) async fn links(pool: &PgPool, id: TaskId) -> Result<Option<TaskLinks>> {
    const OP: &str = "reading a task's dependencies";
    const _: () = assert!(SUMMARY_ERROR_CHARS == 500, "summary_columns! cuts at 500");
    let mut tx = pool.begin().await.map_err(db_error(OP))?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(db_error(OP))?;
    let workflow: Option<Option<i64>> =
        sqlx::query_scalar("SELECT workflow_id FROM sitq_tasks WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error(OP))?;
    let Some(workflow) = workflow else {
        return Ok(None);
    };
    let dependencies = sqlx::query(DEPENDENCIES)
        .bind(id.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error(OP))?;
    let dependents = sqlx::query(DEPENDENTS)
        .bind(id.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error(OP))?;
    tx.commit().await.map_err(db_error(OP))?;
    Ok(Some(TaskLinks {
        workflow: workflow.map(WorkflowId),
        dependencies: dependencies
            .iter()
            .map(|row| summary(row, OP))
            .collect::<Result<_>>()?,
        dependents: dependents
            .iter()
            .map(|row| summary(row, OP))
            .collect::<Result<_>>()?,
    }))
}
