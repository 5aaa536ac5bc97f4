//! Queue settings (pause, global limits) and the claims they shape.
//!
//! A change of settings takes `sitq_queues` in `ACCESS EXCLUSIVE` mode for
//! its short transaction. Every claim reads that table, so the change waits
//! for the claims already under way to commit, and later claims wait for the
//! change and then see it: once `pause` returns, no claim of any process
//! takes the queue's tasks. Claims of limited queues lock those queues'
//! settings rows (`FOR UPDATE`, in name order) before they count, so
//! concurrent claimers on any number of connections take turns and never
//! exceed a limit; the counting statement runs after the lock is granted, so
//! its snapshot sees every claim committed before.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sitq_core::{ClaimRequest, ClaimedTask, QueueInfo, QueueLimits, Result};
use sqlx::postgres::PgPool;

use crate::connect::db_error;

use super::claim::{ClaimedRow, claimed};
use super::micros;

/// Settings that limit a queue `q` (and are not paused).
macro_rules! limited {
    () => {
        "NOT q.paused AND (q.concurrency IS NOT NULL OR q.rate_count IS NOT NULL)"
    };
}
pub(crate) use limited;

/// A task (alias `t`) of a sequence is claimable only when no earlier task
/// of its key is unfinished (pending, blocked, running or failed) and none
/// at all is running. Evaluated only for rows with a sequence (the `OR`
/// stops at `t.sequence IS NULL`), through the partial index of unfinished
/// sequenced tasks; wrapped like the other filters so that the planner
/// assumes it passes every row.
macro_rules! sequence_free {
    () => {
        "NULLIF(t.sequence IS NULL OR NOT EXISTS (SELECT 1 FROM sitq_tasks AS s
             WHERE s.sequence = t.sequence
               AND s.status IN ('pending', 'blocked', 'running', 'failed')
               AND s.id <> t.id
               AND (s.id < t.id OR s.status = 'running')), false) IS NOT NULL"
    };
}
pub(crate) use sequence_free;

/// The claim when queues in scope have limits, after their rows are
/// locked. `lim` is what each limited queue allows now: its concurrency
/// limit less its running tasks, and for a rate limit its count less its
/// claims in the window, and no more than start now (`$5`): a reserved
/// claim would start later, and starts could bunch beyond the rate.
/// `free` takes from queues without settings, `held` from each limited
/// queue up to its allowance; `chosen` keeps claim order and leaves out
/// rate-limited rows that would be reserved. Claims of rate-limited queues
/// are logged, and the log entries that left the window deleted.
macro_rules! claim_limited_sql {
    ($filter:literal, $scope:literal) => {
        concat!(
            "
WITH lim AS MATERIALIZED (
    SELECT q.queue, q.rate_count IS NOT NULL AS rated, q.rate_period,
           LEAST($3::bigint,
                 COALESCE(q.concurrency - (SELECT count(*) FROM sitq_tasks AS r
                                           WHERE r.status = 'running' AND r.queue = q.queue),
                          $3::bigint),
                 CASE WHEN q.rate_count IS NULL THEN $3::bigint
                      ELSE LEAST($5::bigint, q.rate_count - (
                          SELECT count(*) FROM sitq_queue_claims AS c
                          WHERE c.queue = q.queue
                            AND c.at > now() - q.rate_period * interval '1 microsecond'))
                 END) AS allowance
    FROM sitq_queues AS q
    WHERE ",
            limited!(),
            $scope,
            "
), free AS MATERIALIZED (
    SELECT id, priority, run_at, false AS rated FROM sitq_tasks AS t
    WHERE status = 'pending' AND run_at <= now()
      AND NULLIF(name = ANY($4), false) IS NOT NULL ",
            $filter,
            "
      AND NULLIF(queue <> ALL (ARRAY(SELECT queue FROM sitq_queues)), false) IS NOT NULL
      AND ",
            sequence_free!(),
            "
    ORDER BY priority DESC, run_at, id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), held AS MATERIALIZED (
    SELECT p.id, p.priority, p.run_at, lim.rated
    FROM lim CROSS JOIN LATERAL (
        SELECT t.id, t.priority, t.run_at FROM sitq_tasks AS t
        WHERE t.status = 'pending' AND t.run_at <= now() AND t.queue = lim.queue
          AND NULLIF(t.name = ANY($4), false) IS NOT NULL
          AND ",
            sequence_free!(),
            "
        ORDER BY t.priority DESC, t.run_at, t.id
        LIMIT greatest(lim.allowance, 0)
        FOR UPDATE SKIP LOCKED
    ) AS p
), ranked AS (
    SELECT id, rated, row_number() OVER (ORDER BY priority DESC, run_at, id) AS place
    FROM (SELECT * FROM free UNION ALL SELECT * FROM held) AS candidates
), chosen AS (
    SELECT id, row_number() OVER (ORDER BY place) AS place
    FROM ranked
    WHERE NOT (rated AND place > $5)
), claimed AS (
    UPDATE sitq_tasks AS t
    SET status = 'running',
        attempts = t.attempts + 1,
        claims = t.claims + 1,
        worker_id = $1,
        started_at = CASE WHEN chosen.place <= $5 THEN now() END,
        lease_until = now() + $2 * interval '1 microsecond',
        finished_at = NULL
    FROM chosen
    WHERE t.id = chosen.id AND chosen.place <= $3
    RETURNING t.id, t.name, t.queue, t.payload, t.attempts, t.max_attempts, t.created_at,
              t.priority, t.run_at, t.input_mode, t.trace_context, t.claims
), logged AS (
    INSERT INTO sitq_queue_claims (queue, at)
    SELECT claimed.queue, now() FROM claimed JOIN lim ON lim.queue = claimed.queue
    WHERE lim.rated
), pruned AS (
    DELETE FROM sitq_queue_claims AS c USING lim
    WHERE c.queue = lim.queue AND lim.rated
      AND c.at <= now() - lim.rate_period * interval '1 microsecond'
)
SELECT id, name, queue, payload, attempts, max_attempts, created_at, priority, run_at,
       input_mode, trace_context, claims, false AS limited
FROM claimed"
        )
    };
}

const CLAIM_LIMITED_ANY_QUEUE: &str = claim_limited_sql!("", "");
const CLAIM_LIMITED_FROM_QUEUES: &str = claim_limited_sql!(
    "AND NULLIF(queue = ANY($6), false) IS NOT NULL",
    " AND q.queue = ANY($6)"
);

/// Locks the settings rows of the limited queues in scope, in name order
/// (so claimers never deadlock), for the rest of the transaction.
const LOCK_ANY_QUEUE: &str = concat!(
    "SELECT q.queue FROM sitq_queues AS q WHERE ",
    limited!(),
    " ORDER BY q.queue FOR UPDATE"
);
const LOCK_FROM_QUEUES: &str = concat!(
    "SELECT q.queue FROM sitq_queues AS q WHERE ",
    limited!(),
    " AND q.queue = ANY($1) ORDER BY q.queue FOR UPDATE"
);

/// The claim when queues in scope may have limits: one transaction that
/// locks their settings rows, then claims (see [`claim_limited_sql!`]).
/// Clears `limits_seen` when no queue in scope has limits any more.
pub(super) async fn claim_limited(
    pool: &PgPool,
    request: ClaimRequest<'_>,
    limits_seen: &AtomicBool,
) -> Result<Vec<ClaimedTask>> {
    const OP: &str = "claiming tasks of limited queues";
    let all = request.queues.is_empty();
    let mut tx = pool.begin().await.map_err(db_error(OP))?;
    let locked: Vec<String> = if all {
        sqlx::query_scalar(LOCK_ANY_QUEUE).fetch_all(&mut *tx).await
    } else {
        sqlx::query_scalar(LOCK_FROM_QUEUES)
            .bind(request.queues)
            .fetch_all(&mut *tx)
            .await
    }
    .map_err(db_error(OP))?;
    if locked.is_empty() {
        limits_seen.store(false, Ordering::Relaxed);
    }
    let limit = i64::try_from(request.limit).unwrap_or(i64::MAX);
    let start = i64::try_from(request.start.min(request.limit)).unwrap_or(i64::MAX);
    let query = sqlx::query_as::<_, ClaimedRow>(if all {
        CLAIM_LIMITED_ANY_QUEUE
    } else {
        CLAIM_LIMITED_FROM_QUEUES
    })
    .bind(request.worker_id)
    .bind(micros(request.lease))
    .bind(limit)
    .bind(request.names)
    .bind(start);
    let query = if all {
        query
    } else {
        query.bind(request.queues)
    };
    let rows = query.fetch_all(&mut *tx).await.map_err(db_error(OP))?;
    tx.commit().await.map_err(db_error(OP))?;
    let mut tasks = claimed(rows)?;
    super::deps::load_inputs(pool, &mut tasks).await?;
    Ok(tasks)
}

/// Pauses or resumes `queue`; a resume wakes idle workers everywhere.
pub(super) async fn set_paused(pool: &PgPool, queue: &str, paused: bool) -> Result<()> {
    const OP: &str = "pausing or resuming a queue";
    let mut tx = pool.begin().await.map_err(db_error(OP))?;
    lock_settings(&mut tx, OP).await?;
    sqlx::query(
        "INSERT INTO sitq_queues (queue, paused) VALUES ($1, $2)
         ON CONFLICT (queue) DO UPDATE SET paused = excluded.paused, updated_at = now()",
    )
    .bind(queue)
    .bind(paused)
    .execute(&mut *tx)
    .await
    .map_err(db_error(OP))?;
    finish(tx, queue, !paused, OP).await
}

/// Sets or clears `queue`'s limits; wakes idle workers everywhere.
pub(super) async fn set_limits(pool: &PgPool, queue: &str, limits: &QueueLimits) -> Result<()> {
    const OP: &str = "setting a queue's limits";
    let rate = limits.get_rate();
    let mut tx = pool.begin().await.map_err(db_error(OP))?;
    lock_settings(&mut tx, OP).await?;
    sqlx::query(
        "INSERT INTO sitq_queues (queue, concurrency, rate_count, rate_period)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (queue) DO UPDATE SET concurrency = excluded.concurrency,
             rate_count = excluded.rate_count, rate_period = excluded.rate_period,
             updated_at = now()",
    )
    .bind(queue)
    .bind(limits.get_concurrency().map(super::to_int))
    .bind(rate.map(|rate| super::to_int(rate.count)))
    .bind(rate.map(|rate| micros(rate.period)))
    .execute(&mut *tx)
    .await
    .map_err(db_error(OP))?;
    if rate.is_none() {
        // Only rate-limited queues keep a log of their claims.
        sqlx::query("DELETE FROM sitq_queue_claims WHERE queue = $1")
            .bind(queue)
            .execute(&mut *tx)
            .await
            .map_err(db_error(OP))?;
    }
    finish(tx, queue, true, OP).await
}

/// Waits for the claims under way and holds back new ones until commit.
async fn lock_settings(tx: &mut sqlx::PgConnection, op: &'static str) -> Result<()> {
    sqlx::query("LOCK TABLE sitq_queues IN ACCESS EXCLUSIVE MODE")
        .execute(tx)
        .await
        .map(drop)
        .map_err(db_error(op))
}

/// Removes the queue's row if it holds no setting any more (claims are
/// then on the fast path again), notifies `sitq_work` when `wake`, commits.
async fn finish(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    queue: &str,
    wake: bool,
    op: &'static str,
) -> Result<()> {
    sqlx::query(
        "DELETE FROM sitq_queues WHERE queue = $1 AND NOT paused
             AND concurrency IS NULL AND rate_count IS NULL",
    )
    .bind(queue)
    .execute(&mut *tx)
    .await
    .map_err(db_error(op))?;
    if wake {
        sqlx::query("SELECT pg_notify('sitq_work', '')")
            .execute(&mut *tx)
            .await
            .map_err(db_error(op))?;
    }
    tx.commit().await.map_err(db_error(op))
}

/// One queue's stored settings.
#[derive(sqlx::FromRow)]
struct Stored {
    queue: String,
    paused: bool,
    concurrency: Option<i32>,
    rate_count: Option<i32>,
    rate_period: Option<i64>,
}

impl Stored {
    fn limited(&self) -> bool {
        !self.paused && (self.concurrency.is_some() || self.rate_count.is_some())
    }

    fn limits(&self) -> QueueLimits {
        let mut limits = QueueLimits::new();
        if let Some(concurrency) = self.concurrency {
            limits = limits.concurrency(u32::try_from(concurrency).unwrap_or(0));
        }
        if let (Some(count), Some(period)) = (self.rate_count, self.rate_period) {
            limits = limits.rate(
                u32::try_from(count).unwrap_or(0),
                Duration::from_micros(u64::try_from(period).unwrap_or(0)),
            );
        }
        limits
    }
}

async fn stored(pool: &PgPool, op: &'static str) -> Result<Vec<Stored>> {
    sqlx::query_as(
        "SELECT queue, paused, concurrency, rate_count, rate_period FROM sitq_queues
         ORDER BY queue",
    )
    .fetch_all(pool)
    .await
    .map_err(db_error(op))
}

/// Every queue with settings or with pending or running tasks.
pub(super) async fn list(pool: &PgPool) -> Result<Vec<QueueInfo>> {
    const OP: &str = "listing queues";
    let mut queues: BTreeMap<String, QueueInfo> = BTreeMap::new();
    let blank = |name: &str| QueueInfo {
        name: name.to_owned(),
        paused: false,
        limits: QueueLimits::new(),
        pending: 0,
        running: 0,
    };
    for settings in stored(pool, OP).await? {
        let mut info = blank(&settings.queue);
        info.paused = settings.paused;
        info.limits = settings.limits();
        queues.insert(settings.queue, info);
    }
    let counts: Vec<(String, i64, i64)> = sqlx::query_as(
        // One branch per state, so each walks its partial index and the
        // finished rows (most of a large table) are never read.
        "SELECT queue, sum(pending)::bigint, sum(running)::bigint FROM (
           SELECT queue, 1 AS pending, 0 AS running FROM sitq_tasks WHERE status = 'pending'
           UNION ALL
           SELECT queue, 0, 1 FROM sitq_tasks WHERE status = 'running'
         ) AS live GROUP BY queue",
    )
    .fetch_all(pool)
    .await
    .map_err(db_error(OP))?;
    for (name, pending, running) in counts {
        let info = queues.entry(name.clone()).or_insert_with(|| blank(&name));
        info.pending = u64::try_from(pending).unwrap_or(0);
        info.running = u64::try_from(running).unwrap_or(0);
    }
    Ok(queues.into_values().collect())
}

/// The earliest instant a claim in `scope` could take a task: the earliest
/// `run_at` of pending tasks that no sequence holds, in queues that are not
/// paused, and of limited queues only when below their concurrency limit,
/// no earlier than a rate-limited queue's next free slot.
pub(super) async fn next_run_at(pool: &PgPool, scope: &[String]) -> Result<Option<DateTime<Utc>>> {
    const OP: &str = "finding the next scheduled task";
    // One statement when no queue in scope has settings (the common case):
    // the earliest task outside such queues, and whether there are any.
    let (free, has_settings): (Option<DateTime<Utc>>, bool) = if scope.is_empty() {
        sqlx::query_as(concat!(
            "SELECT min(run_at), EXISTS (SELECT 1 FROM sitq_queues)
             FROM sitq_tasks AS t WHERE status = 'pending'
             AND queue <> ALL (ARRAY(SELECT queue FROM sitq_queues)) AND ",
            sequence_free!()
        ))
        .fetch_one(pool)
        .await
    } else {
        sqlx::query_as(concat!(
            "SELECT min(run_at), EXISTS (SELECT 1 FROM sitq_queues WHERE queue = ANY($1))
             FROM sitq_tasks AS t WHERE status = 'pending' AND queue = ANY($1)
             AND queue <> ALL (ARRAY(SELECT queue FROM sitq_queues)) AND ",
            sequence_free!()
        ))
        .bind(scope)
        .fetch_one(pool)
        .await
    }
    .map_err(db_error(OP))?;
    if !has_settings {
        return Ok(free);
    }
    let mut next = free;
    let settings: Vec<Stored> = stored(pool, OP)
        .await?
        .into_iter()
        .filter(|s| scope.is_empty() || scope.contains(&s.queue))
        .collect();
    for queue in settings.iter().filter(|s| s.limited()) {
        if let Some(concurrency) = queue.concurrency {
            let running: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM sitq_tasks WHERE status = 'running' AND queue = $1",
            )
            .bind(&queue.queue)
            .fetch_one(pool)
            .await
            .map_err(db_error(OP))?;
            if running >= i64::from(concurrency) {
                continue; // a completion in the queue wakes the workers
            }
        }
        let run_at: Option<DateTime<Utc>> = sqlx::query_scalar(concat!(
            "SELECT min(run_at) FROM sitq_tasks AS t WHERE status = 'pending' AND queue = $1 AND ",
            sequence_free!()
        ))
        .bind(&queue.queue)
        .fetch_one(pool)
        .await
        .map_err(db_error(OP))?;
        let Some(mut at) = run_at else { continue };
        if let (Some(count), Some(period)) = (queue.rate_count, queue.rate_period) {
            // Full window: free once enough of its claims have left it.
            let slot: Option<DateTime<Utc>> = sqlx::query_scalar(
                "WITH window_claims AS (
                     SELECT at FROM sitq_queue_claims
                     WHERE queue = $1 AND at > now() - $2 * interval '1 microsecond'
                 )
                 SELECT at + $2 * interval '1 microsecond' FROM window_claims
                 WHERE (SELECT count(*) FROM window_claims) >= $3
                 ORDER BY at
                 OFFSET greatest((SELECT count(*) FROM window_claims) - $3, 0)
                 LIMIT 1",
            )
            .bind(&queue.queue)
            .bind(period)
            .bind(i64::from(count))
            .fetch_optional(pool)
            .await
            .map_err(db_error(OP))?;
            if let Some(slot) = slot {
                at = at.max(slot);
            }
        }
        next = Some(next.map_or(at, |next| next.min(at)));
    }
    Ok(next)
}
