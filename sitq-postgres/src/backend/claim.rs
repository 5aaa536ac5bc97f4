//! Taking work: claims, their heartbeats, and when the next task is due.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sitq_core::{ClaimRef, ClaimRequest, ClaimedTask, Error, Result, TaskId};
use sqlx::postgres::PgPool;

use crate::connect::db_error;

use super::{count, micros, to_int};

/// The claim statement, with `$filter` restricting queues or not. Two
/// statements rather than one with `cardinality($n) = 0 OR …`, so each gets
/// a plan that fits.
///
/// `picked` walks the partial ready index in claim order and stops after
/// `LIMIT` rows; the name filter is checked on each row it passes (a worker
/// usually knows most names), so many names cost no sort. The name test is
/// written `NULLIF(name = ANY($4), false) IS NOT NULL` (the same rows as
/// `name = ANY($4)`; likewise the queue, pause and sequence tests) so that the planner cannot estimate it and assumes it
/// passes nearly every row: estimated as `name = ANY($4)`, without fresh
/// statistics (a table just filled, before autovacuum analyzed it) one name
/// counts as 0.5% of the rows, the planner expects a handful of ready rows,
/// and it reads and sorts every ready row instead of stopping after `LIMIT`
/// (32 ms instead of 1 ms for a claim of 32 among 10k ready tasks next to
/// 990k finished ones). The picked ids
/// are a `MATERIALIZED` CTE rather than `id IN (SELECT …)`: a locking
/// subquery that the planner may re-scan inside a join can return more than
/// `LIMIT` rows; a materialized CTE is run exactly once. `ranked` numbers
/// those few rows in claim order (window functions cannot share a query
/// level with `FOR UPDATE`) so that the first `$5` start now and the rest
/// are reserved (`started_at` NULL). It is still one statement: atomic, one
/// round trip.
///
/// Queue settings cost two looks at `sitq_queues` (empty unless a queue was
/// paused or limited), each run once per statement: paused queues are left
/// out, and when a queue in scope has a limit the statement claims nothing
/// and returns one row with `limited` true instead, telling the caller to
/// take the limited path ([`super::queues::claim_limited`]).
macro_rules! claim_sql {
    ($filter:literal, $scope:literal) => {
        concat!(
            "
WITH picked AS MATERIALIZED (
    SELECT id, priority, run_at FROM sitq_tasks AS t
    WHERE status = 'pending' AND run_at <= now()
      AND NULLIF(name = ANY($4), false) IS NOT NULL ",
            $filter,
            "
      AND NULLIF(queue <> ALL (ARRAY(SELECT queue FROM sitq_queues WHERE paused)), false)
          IS NOT NULL
      AND ",
            $crate::backend::queues::sequence_free!(),
            "
      AND NOT EXISTS (SELECT 1 FROM sitq_queues AS q WHERE ",
            $crate::backend::queues::limited!(),
            $scope,
            ")
    ORDER BY priority DESC, run_at, id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), ranked AS (
    SELECT id, row_number() OVER (ORDER BY priority DESC, run_at, id) AS place
    FROM picked
), claimed AS (
    UPDATE sitq_tasks AS t
    SET status = 'running',
        attempts = t.attempts + 1,
        claims = t.claims + 1,
        worker_id = $1,
        started_at = CASE WHEN ranked.place <= $5 THEN now() END,
        lease_until = now() + $2 * interval '1 microsecond',
        finished_at = NULL
    FROM ranked
    WHERE t.id = ranked.id
    RETURNING t.id, t.name, t.queue, t.payload, t.attempts, t.max_attempts, t.created_at,
              t.priority, t.run_at, t.input_mode, t.trace_context, t.claims
)
SELECT id, name, queue, payload, attempts, max_attempts, created_at, priority, run_at,
       input_mode, trace_context, claims, false AS limited
FROM claimed
UNION ALL
(SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true
 FROM sitq_queues AS q WHERE ",
            $crate::backend::queues::limited!(),
            $scope,
            " LIMIT 1)"
        )
    };
}

const CLAIM_ANY_QUEUE: &str = claim_sql!("", "");
const CLAIM_FROM_QUEUES: &str = claim_sql!(
    "AND NULLIF(queue = ANY($6), false) IS NOT NULL",
    " AND q.queue = ANY($6)"
);

/// A row of the claim statements: a claimed task, or (all `None`,
/// `limited` true) the sign that a queue in scope has limits.
#[derive(sqlx::FromRow)]
pub(super) struct ClaimedRow {
    id: Option<i64>,
    name: Option<String>,
    queue: Option<String>,
    payload: Option<Vec<u8>>,
    attempts: Option<i32>,
    max_attempts: Option<i32>,
    created_at: Option<DateTime<Utc>>,
    priority: Option<i32>,
    run_at: Option<DateTime<Utc>>,
    input_mode: Option<i16>,
    trace_context: Option<String>,
    claims: Option<i32>,
    pub(super) limited: bool,
}

/// Claims up to `request.limit` ready tasks named in `request.names`, in
/// claim order; the first `request.start` start now, the rest are reserved.
///
/// `limits_seen` remembers that a queue had limits at the last claim: the
/// limited path is then taken at once (it finds out, and clears the flag,
/// when no limits are left), saving the fast statement's round trip.
pub(super) async fn claim(
    pool: &PgPool,
    request: ClaimRequest<'_>,
    limits_seen: &AtomicBool,
) -> Result<Vec<ClaimedTask>> {
    const OP: &str = "claiming tasks";
    if request.limit == 0 || request.names.is_empty() {
        return Ok(Vec::new());
    }
    if limits_seen.load(Ordering::Relaxed) {
        return super::queues::claim_limited(pool, request, limits_seen).await;
    }
    let limit = i64::try_from(request.limit).unwrap_or(i64::MAX);
    let start = i64::try_from(request.start).unwrap_or(i64::MAX);
    let query = if request.queues.is_empty() {
        sqlx::query_as::<_, ClaimedRow>(CLAIM_ANY_QUEUE)
    } else {
        sqlx::query_as::<_, ClaimedRow>(CLAIM_FROM_QUEUES)
    };
    let query = query
        .bind(request.worker_id)
        .bind(micros(request.lease))
        .bind(limit)
        .bind(request.names)
        .bind(start);
    let query = if request.queues.is_empty() {
        query
    } else {
        query.bind(request.queues)
    };
    let rows = query.fetch_all(pool).await.map_err(db_error(OP))?;
    if rows.iter().any(|row| row.limited) {
        limits_seen.store(true, Ordering::Relaxed);
        return super::queues::claim_limited(pool, request, limits_seen).await;
    }
    let mut tasks = claimed(rows)?;
    super::deps::load_inputs(pool, &mut tasks).await?;
    Ok(tasks)
}

/// The claimed tasks of `rows`, in claim order.
pub(super) fn claimed(rows: Vec<ClaimedRow>) -> Result<Vec<ClaimedTask>> {
    const OP: &str = "claiming tasks";
    let mut tasks = Vec::with_capacity(rows.len());
    for row in rows.into_iter().filter(|row| !row.limited) {
        let missing = || Error::database(OP, "a claimed row has NULL columns");
        tasks.push((
            row.priority.ok_or_else(missing)?,
            row.run_at.ok_or_else(missing)?,
            ClaimedTask {
                id: TaskId(row.id.ok_or_else(missing)?),
                name: row.name.ok_or_else(missing)?,
                queue: row.queue.ok_or_else(missing)?,
                payload: row.payload.ok_or_else(missing)?,
                attempt: count(row.attempts.ok_or_else(missing)?, OP)?,
                fence: count(row.claims.ok_or_else(missing)?, OP)?,
                max_attempts: count(row.max_attempts.ok_or_else(missing)?, OP)?,
                created_at: row.created_at.ok_or_else(missing)?,
                inputs: super::deps::input_mark(row.input_mode.unwrap_or(0)),
                trace: row.trace_context,
            },
        ));
    }
    // RETURNING comes in no particular order.
    tasks.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.id.cmp(&b.2.id)));
    Ok(tasks.into_iter().map(|(_, _, task)| task).collect())
}

/// Extends the leases still held by `worker_id` under the same claim, in one
/// statement; returns the claims that were not extended (lost).
pub(super) async fn heartbeat(
    pool: &PgPool,
    worker_id: &str,
    claims: &[ClaimRef],
    lease: Duration,
) -> Result<Vec<ClaimRef>> {
    const OP: &str = "extending task leases";
    if claims.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = claims.iter().map(|claim| claim.id.0).collect();
    let fences: Vec<i32> = claims.iter().map(|claim| to_int(claim.fence)).collect();
    let extended: Vec<(i64, i32)> = sqlx::query_as(
        "
UPDATE sitq_tasks AS t
SET lease_until = now() + $2 * interval '1 microsecond'
FROM UNNEST($3::bigint[], $4::int[]) AS held(id, fence)
WHERE t.id = held.id AND t.claims = held.fence
  AND t.status = 'running' AND t.worker_id = $1
RETURNING t.id, t.claims",
    )
    .bind(worker_id)
    .bind(micros(lease))
    .bind(ids)
    .bind(fences)
    .fetch_all(pool)
    .await
    .map_err(db_error(OP))?;
    let extended: HashSet<(i64, i32)> = extended.into_iter().collect();
    Ok(claims
        .iter()
        .filter(|claim| !extended.contains(&(claim.id.0, to_int(claim.fence))))
        .copied()
        .collect())
}

#[cfg(test)]
mod tests;
