//! Writes. Each runs inside the writer's open `BEGIN IMMEDIATE` transaction
//! and is one statement per chunk of rows: no per-row round trips.

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Duration;

use sitq_core::{ClaimRef, ClaimedTask, Completion, FailureKind, NewTask, Outcome, TaskId};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row as _, SqliteConnection};

use super::{MAX_ROWS, SqlBySize, chunk_sizes, padded_size, placeholders};
use crate::time;

/// What finishing or requeueing rows means for in-process waiters.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    /// Tasks that reached a finished state.
    pub(crate) finished: Vec<TaskId>,
    /// Whether some task became pending (workers should look again).
    pub(crate) work: bool,
}

impl Effects {
    /// Folds `other` into `self`.
    pub(crate) fn merge(&mut self, other: Effects) {
        self.finished.extend(other.finished);
        self.work |= other.work;
    }

    fn record(&mut self, id: i64, status: &str) {
        match status {
            "pending" => self.work = true,
            "succeeded" | "failed" | "cancelled" => self.finished.push(TaskId(id)),
            _ => {}
        }
    }
}

static INSERT: SqlBySize = SqlBySize::new(|rows| {
    format!(
        "INSERT INTO sitq_tasks (name, queue, payload, priority, max_attempts, run_at, created_at) \
         VALUES {} RETURNING id",
        placeholders(rows, 7, 1)
    )
});

/// Inserts `tasks` as pending; their ids, in order.
pub(crate) async fn insert(
    conn: &mut SqliteConnection,
    tasks: &[&NewTask],
    now: i64,
) -> sqlx::Result<Vec<TaskId>> {
    let mut ids = Vec::with_capacity(tasks.len());
    let mut rest = tasks;
    for size in chunk_sizes(tasks.len()) {
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        let mut query = sqlx::query(INSERT.get(size));
        for task in chunk {
            query = query
                .bind(task.name.as_str())
                .bind(task.queue.as_str())
                .bind(task.payload.as_slice())
                .bind(task.priority)
                .bind(i64::from(task.max_attempts))
                .bind(time::to_micros(task.run_at))
                .bind(now);
        }
        let first = ids.len();
        for row in query.fetch_all(&mut *conn).await? {
            ids.push(TaskId(row.try_get(0)?));
        }
        // RETURNING's order is unspecified; ids grow in VALUES order (one
        // writer holds the lock, AUTOINCREMENT only counts up), so sorting
        // restores the callers' order.
        ids[first..].sort_unstable();
    }
    Ok(ids)
}

/// What a worker asked for, owned so that it can travel to the writer task.
#[derive(Debug)]
pub(crate) struct Claim {
    pub(crate) worker_id: String,
    pub(crate) queues: Vec<String>,
    pub(crate) limit: usize,
    pub(crate) lease: Duration,
}

const CLAIM_HEAD: &str = "UPDATE sitq_tasks \
     SET status = 'running', attempts = attempts + 1, worker_id = ?1, started_at = ?2, \
         lease_until = ?3, finished_at = NULL \
     WHERE id IN (SELECT id FROM sitq_tasks WHERE status = 'pending' AND run_at <= ?2";
const CLAIM_TAIL: &str = " ORDER BY priority DESC, run_at, id LIMIT ?4) \
     RETURNING id, name, queue, payload, attempts, max_attempts, created_at, priority, run_at";

fn claim_sql(queues: usize) -> String {
    let mut sql = String::from(CLAIM_HEAD);
    if queues > 0 {
        sql.push_str(" AND queue IN ");
        sql.push_str(&placeholders(1, queues, 5));
    }
    sql.push_str(CLAIM_TAIL);
    sql
}

/// Claim texts for up to this many queues are built once; more are rare.
const CACHED_QUEUE_COUNTS: usize = 8;
static CLAIM: OnceLock<Vec<String>> = OnceLock::new();

/// The cached claim text filtering on `queues` queues, if that count is cached.
fn cached_claim_sql(queues: usize) -> Option<&'static str> {
    CLAIM
        .get_or_init(|| (0..=CACHED_QUEUE_COUNTS).map(claim_sql).collect())
        .get(queues)
        .map(String::as_str)
}

/// Claims up to `claim.limit` ready tasks in order (priority desc, run_at, id)
/// with one `UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING`.
pub(crate) async fn claim(
    conn: &mut SqliteConnection,
    claim: &Claim,
    now: i64,
) -> sqlx::Result<Vec<ClaimedTask>> {
    if claim.limit == 0 {
        return Ok(Vec::new());
    }
    let query = match cached_claim_sql(claim.queues.len()) {
        Some(sql) => sqlx::query(sql),
        None => sqlx::query(sqlx::AssertSqlSafe(claim_sql(claim.queues.len()))),
    };
    let mut query = query
        .bind(claim.worker_id.as_str())
        .bind(now)
        .bind(time::add(now, claim.lease))
        .bind(i64::try_from(claim.limit).unwrap_or(i64::MAX));
    for queue in &claim.queues {
        query = query.bind(queue.as_str());
    }
    let rows = query.fetch_all(&mut *conn).await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for row in rows {
        let priority: i64 = row.try_get(7)?;
        let run_at: i64 = row.try_get(8)?;
        claimed.push(((priority, run_at), claimed_task(&row)?));
    }
    // RETURNING's order is unspecified: restore the claim order.
    claimed.sort_unstable_by(|((pa, ra), a), ((pb, rb), b)| {
        pb.cmp(pa).then(ra.cmp(rb)).then(a.id.cmp(&b.id))
    });
    Ok(claimed.into_iter().map(|(_, task)| task).collect())
}

fn claimed_task(row: &SqliteRow) -> sqlx::Result<ClaimedTask> {
    Ok(ClaimedTask {
        id: TaskId(row.try_get(0)?),
        name: row.try_get(1)?,
        queue: row.try_get(2)?,
        payload: row.try_get(3)?,
        attempt: count(row.try_get(4)?),
        max_attempts: count(row.try_get(5)?),
        created_at: time::from_micros(row.try_get(6)?),
    })
}

/// A stored counter; sitq writes only values that came from a `u32`.
pub(crate) fn count(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}

static HEARTBEAT: SqlBySize = SqlBySize::new(|rows| {
    format!(
        "UPDATE sitq_tasks SET lease_until = ?1 FROM (VALUES {}) AS v \
         WHERE sitq_tasks.id = v.column1 AND sitq_tasks.attempts = v.column2 \
           AND sitq_tasks.status = 'running' AND sitq_tasks.worker_id = ?2 \
         RETURNING id, attempts",
        placeholders(rows, 2, 3)
    )
});

/// Extends the leases of `claims` held by `worker_id`; returns the lost ones.
pub(crate) async fn heartbeat(
    conn: &mut SqliteConnection,
    worker_id: &str,
    claims: &[ClaimRef],
    lease_until: i64,
) -> sqlx::Result<Vec<ClaimRef>> {
    let mut kept = HashSet::with_capacity(claims.len());
    for chunk in claims.chunks(MAX_ROWS) {
        let size = padded_size(chunk.len());
        let mut query = sqlx::query(HEARTBEAT.get(size))
            .bind(lease_until)
            .bind(worker_id);
        for claim in chunk {
            query = query.bind(claim.id.0).bind(i64::from(claim.attempt));
        }
        // Padding rows of NULLs match nothing; they keep the statement count at nine.
        for _ in chunk.len()..size {
            query = query.bind(None::<i64>).bind(None::<i64>);
        }
        for row in query.fetch_all(&mut *conn).await? {
            kept.insert((row.try_get::<i64, _>(0)?, row.try_get::<i64, _>(1)?));
        }
    }
    Ok(claims
        .iter()
        .filter(|claim| !kept.contains(&(claim.id.0, i64::from(claim.attempt))))
        .copied()
        .collect())
}

static COMPLETE: SqlBySize = SqlBySize::new(|rows| {
    format!(
        "UPDATE sitq_tasks SET status = v.column3, result = v.column4, error_kind = v.column5, \
             error = v.column6, run_at = coalesce(v.column7, sitq_tasks.run_at), \
             finished_at = v.column8, lease_until = NULL \
         FROM (VALUES {}) AS v \
         WHERE sitq_tasks.id = v.column1 AND sitq_tasks.attempts = v.column2 \
           AND sitq_tasks.status = 'running' \
         RETURNING id, attempts, status",
        placeholders(rows, 8, 1)
    )
});

/// Records outcomes, fenced on (id, attempt, running); per completion whether it applied.
pub(crate) async fn complete(
    conn: &mut SqliteConnection,
    completions: &[&Completion],
    now: i64,
) -> sqlx::Result<(Vec<bool>, Effects)> {
    // A claim completed twice in one call applies at most once: the first
    // completion ends the attempt, so the later one is stale. Only the first
    // of each claim goes to SQLite (one UPDATE … FROM row per task).
    let mut seen = HashSet::with_capacity(completions.len());
    let mut first = Vec::with_capacity(completions.len());
    let mut rows: Vec<&Completion> = Vec::with_capacity(completions.len());
    for completion in completions {
        let fresh = seen.insert(completion.claim);
        first.push(fresh);
        if fresh {
            rows.push(completion);
        }
    }

    let mut effects = Effects::default();
    let mut applied_set = HashSet::with_capacity(rows.len());
    for chunk in rows.chunks(MAX_ROWS) {
        let size = padded_size(chunk.len());
        let mut query = sqlx::query(COMPLETE.get(size));
        for completion in chunk {
            let (status, result, failure, run_at, finished_at) = match &completion.outcome {
                Outcome::Succeeded(result) => {
                    ("succeeded", Some(result.as_slice()), None, None, Some(now))
                }
                Outcome::Retry { failure, delay } => (
                    "pending",
                    None,
                    Some(failure),
                    Some(time::add(now, *delay)),
                    None,
                ),
                Outcome::Failed(failure) => ("failed", None, Some(failure), None, Some(now)),
            };
            query = query
                .bind(completion.claim.id.0)
                .bind(i64::from(completion.claim.attempt))
                .bind(status)
                .bind(result)
                .bind(failure.map(|failure| failure.kind.as_str()))
                .bind(failure.map(|failure| failure.message.as_str()))
                .bind(run_at)
                .bind(finished_at);
        }
        for _ in chunk.len()..size {
            for _ in 0..8 {
                query = query.bind(None::<i64>);
            }
        }
        for row in query.fetch_all(&mut *conn).await? {
            let id: i64 = row.try_get(0)?;
            let attempt: i64 = row.try_get(1)?;
            let status: &str = row.try_get(2)?;
            effects.record(id, status);
            applied_set.insert((id, attempt));
        }
    }
    let applied = completions
        .iter()
        .zip(first)
        .map(|(completion, first)| {
            first
                && applied_set
                    .contains(&(completion.claim.id.0, i64::from(completion.claim.attempt)))
        })
        .collect();
    Ok((applied, effects))
}

/// Returns running tasks whose lease ran out to pending (or to failed when
/// they have no attempts left) with a `LeaseExpired` failure; how many.
pub(crate) async fn recover_expired(
    conn: &mut SqliteConnection,
    now: i64,
) -> sqlx::Result<(u64, Effects)> {
    // The message is built in SQL so that recovery stays one statement
    // however many tasks expired at once.
    let rows = sqlx::query(
        "UPDATE sitq_tasks SET \
             status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'pending' END, \
             run_at = CASE WHEN attempts >= max_attempts THEN run_at ELSE ?1 END, \
             finished_at = CASE WHEN attempts >= max_attempts THEN ?1 ELSE NULL END, \
             lease_until = NULL, \
             error_kind = ?2, \
             error = 'worker ' || coalesce(worker_id, '(unknown)') \
                 || ' stopped renewing its lease during attempt ' || attempts \
                 || ' (killed or cut off)' \
         WHERE status = 'running' AND lease_until < ?1 \
         RETURNING id, status",
    )
    .bind(now)
    .bind(FailureKind::LeaseExpired.as_str())
    .fetch_all(&mut *conn)
    .await?;
    let mut effects = Effects::default();
    for row in &rows {
        effects.record(row.try_get(0)?, row.try_get(1)?);
    }
    Ok((rows.len() as u64, effects))
}

/// Cancels a pending or blocked task; whether it was.
pub(crate) async fn cancel(
    conn: &mut SqliteConnection,
    id: TaskId,
    now: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE sitq_tasks SET status = 'cancelled', finished_at = ?1, lease_until = NULL \
         WHERE id = ?2 AND status IN ('pending', 'blocked')",
    )
    .bind(now)
    .bind(id.0)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Deletes at most `limit` finished tasks that finished before `before`; how many.
///
/// Bounded so that pruning a large backlog never holds the write lock for
/// long: the writer calls it again in its next transactions.
pub(crate) async fn prune_some(
    conn: &mut SqliteConnection,
    before: i64,
    limit: i64,
) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "DELETE FROM sitq_tasks WHERE id IN (SELECT id FROM sitq_tasks \
             WHERE finished_at < ?1 AND status IN ('succeeded', 'failed', 'cancelled') \
             LIMIT ?2)",
    )
    .bind(before)
    .bind(limit)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}
