//! What the admin tools read: task lists, statistics, activity by time
//! bucket and a task's dependency links.

use rusqlite::{Connection, OptionalExtension, params};
use sitq_core::inspect::{
    FinishedCount, MAX_LIST, SUMMARY_ERROR_CHARS, StatusCount, activity_buckets,
};
use sitq_core::{
    ActivityBucket, FailureKind, Stats, TaskFilter, TaskId, TaskLinks, TaskSummary, WorkflowId,
};

use super::{count, json_strings, status};
use crate::time;

/// One minute and one hour, in stored units.
const MINUTE: i64 = 60_000_000;
const HOUR: i64 = 60 * MINUTE;

/// Tasks matching `filter`, newest first. One fixed statement, every value
/// bound (an absent filter is a NULL that lets every row through), so its
/// plan is cached; the error is cut in SQL so a huge one is never read.
pub(crate) fn tasks(conn: &Connection, filter: &TaskFilter) -> rusqlite::Result<Vec<TaskSummary>> {
    let limit = filter.limit.min(MAX_LIST);
    if limit == 0 {
        return Ok(Vec::new());
    }
    let statuses = (!filter.statuses.is_empty()).then(|| {
        let names: Vec<String> = filter
            .statuses
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        json_strings(&names)
    });
    // `id < coalesce(?, max)` rather than `? IS NULL OR id < ?`: a plain
    // range SQLite seeks to, so a late page starts where the last one ended.
    let mut statement = conn.prepare_cached(
        "SELECT id, name, queue, status, priority, attempts, max_attempts, created_at, \
             run_at, started_at, finished_at, worker_id, error_kind, substr(error, 1, ?7) \
         FROM sitq_tasks \
         WHERE id < coalesce(?5, 9223372036854775807) \
           AND (?1 IS NULL OR status IN (SELECT value FROM json_each(?1))) \
           AND (?2 IS NULL OR queue = ?2) \
           AND (?3 IS NULL OR name = ?3) \
           AND (?4 IS NULL OR created_at >= ?4) \
         ORDER BY id DESC LIMIT ?6 + 0",
    )?;
    let rows = statement.query_map(
        params![
            statuses,
            filter.queue,
            filter.name,
            filter.since.map(time::to_micros),
            filter.before.map(|id| id.0),
            i64::try_from(limit).unwrap_or(i64::MAX),
            i64::try_from(SUMMARY_ERROR_CHARS).unwrap_or(i64::MAX),
        ],
        summary,
    )?;
    rows.collect()
}

fn summary(row: &rusqlite::Row<'_>) -> rusqlite::Result<TaskSummary> {
    let status_text: String = row.get(3)?;
    let priority: i64 = row.get(4)?;
    let time = |micros: Option<i64>| micros.map(time::from_micros);
    Ok(TaskSummary {
        id: TaskId(row.get(0)?),
        name: row.get(1)?,
        queue: row.get(2)?,
        status: status(&status_text, 3)?,
        priority: i32::try_from(priority).unwrap_or(if priority < 0 { i32::MIN } else { i32::MAX }),
        attempts: count(row.get(5)?),
        max_attempts: count(row.get(6)?),
        created_at: time::from_micros(row.get(7)?),
        run_at: time::from_micros(row.get(8)?),
        started_at: time(row.get(9)?),
        finished_at: time(row.get(10)?),
        worker_id: row.get(11)?,
        error_kind: row
            .get::<_, Option<String>>(12)?
            .map(|kind| FailureKind::parse(&kind)),
        error: row.get(13)?,
    })
}

/// The figures of [`Stats`] at `now`, read in one read transaction (the
/// caller's, when there is one) so that they agree with each other.
pub(crate) fn stats(conn: &Connection, now: i64) -> rusqlite::Result<Stats> {
    let own = conn.is_autocommit();
    if own {
        conn.execute_batch("BEGIN")?;
    }
    let result = read_stats(conn, now);
    if own {
        let _ = conn.execute_batch("COMMIT");
    }
    result
}

fn read_stats(conn: &Connection, now: i64) -> rusqlite::Result<Stats> {
    let mut statement = conn.prepare_cached(
        "SELECT queue, name, status, count(*), \
             min(CASE WHEN status = 'pending' AND run_at <= ?1 THEN run_at END) \
         FROM sitq_tasks GROUP BY queue, name, status ORDER BY queue, name, status",
    )?;
    let counts = statement
        .query_map([now], |row| {
            let status_text: String = row.get(2)?;
            Ok(StatusCount {
                queue: row.get(0)?,
                name: row.get(1)?,
                status: status(&status_text, 2)?,
                count: row.get::<_, i64>(3)?.max(0).unsigned_abs(),
                oldest_due: row.get::<_, Option<i64>>(4)?.map(time::from_micros),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;

    // `finished_at >= ?` implies `finished_at IS NOT NULL`: the partial
    // index sitq_tasks_finished serves it.
    let mut statement = conn.prepare_cached(
        "SELECT queue, status, sum(finished_at >= ?2), count(*) FROM sitq_tasks \
         WHERE finished_at >= ?1 AND status IN ('succeeded', 'failed', 'cancelled') \
         GROUP BY queue, status ORDER BY queue, status",
    )?;
    let finished = statement
        .query_map(params![now - HOUR, now - MINUTE], |row| {
            let status_text: String = row.get(1)?;
            Ok(FinishedCount {
                queue: row.get(0)?,
                status: status(&status_text, 1)?,
                last_minute: row.get::<_, i64>(2)?.max(0).unsigned_abs(),
                last_hour: row.get::<_, i64>(3)?.max(0).unsigned_abs(),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;

    let (last_minute, last_hour): (Option<i64>, i64) = conn
        .prepare_cached(
            "SELECT sum(failed_at >= ?2), count(*) FROM sitq_failures WHERE failed_at >= ?1",
        )?
        .query_row(params![now - HOUR, now - MINUTE], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    Ok(Stats {
        now: time::from_micros(now),
        counts,
        finished,
        failed_attempts_last_minute: last_minute.unwrap_or(0).max(0).unsigned_abs(),
        failed_attempts_last_hour: last_hour.max(0).unsigned_abs(),
    })
}

/// What finished from `since` on, by bucket `width` wide (both in stored
/// units): one range over the partial index on `finished_at` and one over
/// the failure history's `failed_at`, merged by bucket.
pub(crate) fn activity(
    conn: &Connection,
    since: i64,
    width: i64,
) -> rusqlite::Result<Vec<ActivityBucket>> {
    let mut statement = conn.prepare_cached(
        "SELECT (finished_at - ?1) / ?2, sum(status = 'succeeded'), sum(status = 'failed'), \
             sum(status = 'cancelled'), \
             avg(CASE WHEN started_at IS NOT NULL THEN max(started_at - run_at, 0) END) \
         FROM sitq_tasks \
         WHERE finished_at >= ?1 AND status IN ('succeeded', 'failed', 'cancelled') \
         GROUP BY 1",
    )?;
    let finished = statement
        .query_map(params![since, width], |row| {
            let counts = [
                unsigned(row.get(1)?),
                unsigned(row.get(2)?),
                unsigned(row.get(3)?),
            ];
            let wait = row.get::<_, Option<f64>>(4)?.map(|wait| wait as u64);
            Ok((row.get(0)?, counts, wait))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut statement = conn.prepare_cached(
        "SELECT (failed_at - ?1) / ?2, count(*) FROM sitq_failures \
         WHERE failed_at >= ?1 GROUP BY 1",
    )?;
    let failed = statement
        .query_map(params![since, width], |row| {
            Ok((row.get(0)?, unsigned(row.get(1)?)))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let width = std::time::Duration::from_micros(width.max(0).unsigned_abs());
    Ok(activity_buckets(
        time::from_micros(since),
        width,
        finished,
        failed,
    ))
}

fn unsigned(count: i64) -> u64 {
    count.max(0).unsigned_abs()
}

/// The columns [`summary`] decodes, for a query over `sitq_tasks AS t`
/// (the error cut to [`SUMMARY_ERROR_CHARS`]).
const SUMMARY_COLUMNS: &str = "t.id, t.name, t.queue, t.status, t.priority, t.attempts, \
     t.max_attempts, t.created_at, t.run_at, t.started_at, t.finished_at, t.worker_id, \
     t.error_kind, substr(t.error, 1, 500)";

/// Task `id`'s workflow, dependencies (in declared order) and dependents;
/// `None` when there is no such task.
pub(crate) fn links(conn: &Connection, id: TaskId) -> rusqlite::Result<Option<TaskLinks>> {
    let workflow: Option<Option<i64>> = conn
        .prepare_cached("SELECT workflow_id FROM sitq_tasks WHERE id = ?1")?
        .query_row([id.0], |row| row.get(0))
        .optional()?;
    let Some(workflow) = workflow else {
        return Ok(None);
    };
    let dependencies = conn
        .prepare_cached(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM sitq_deps AS d JOIN sitq_tasks AS t ON t.id = d.dep_id \
             WHERE d.task_id = ?1 ORDER BY d.ord"
        ))?
        .query_map([id.0], summary)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut dependents = conn
        .prepare_cached(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM sitq_tasks AS t \
             WHERE t.id IN (SELECT task_id FROM sitq_deps WHERE dep_id = ?1) ORDER BY t.id"
        ))?
        .query_map([id.0], summary)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    dependents.dedup_by_key(|task| task.id);
    const _: () = assert!(SUMMARY_ERROR_CHARS == 500, "SUMMARY_COLUMNS cuts at 500");
    Ok(Some(TaskLinks {
        workflow: workflow.map(WorkflowId),
        dependencies,
        dependents,
    }))
}
