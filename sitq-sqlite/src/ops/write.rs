//! Writes. Each runs inside the writer's open `BEGIN IMMEDIATE` transaction
//! and is one statement per chunk of rows: no per-row round trips.

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Duration;

use sitq_core::{ClaimRef, ClaimedTask, Completion, FailureKind, NewTask, Outcome, TaskId};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row as _, SqliteConnection};

use super::{
    COMPLETE_MAX_ROWS, INSERT_MAX_ROWS, MAX_ROWS, SqlBySize, anonymous_placeholders, exec,
    padded_size, placeholders,
};
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
    // Anonymous placeholders, bound in order of appearance: `created_at`
    // (the group's clock) first, then six per row.
    if rows == 1 {
        return "INSERT INTO sitq_tasks \
                (created_at, name, queue, payload, priority, max_attempts, run_at) \
                VALUES (?, ?, ?, ?, ?, ?, ?)"
            .to_owned();
    }
    // Padding rows (all NULL) are filtered out; the literal ordinal in the
    // first column fixes the insertion order, hence the order of the ids.
    let mut values = String::with_capacity(rows * 32);
    for row in 0..rows {
        if row > 0 {
            values.push_str(", ");
        }
        values.push('(');
        values.push_str(&row.to_string());
        values.push_str(", ?, ?, ?, ?, ?, ?)");
    }
    format!(
        "INSERT INTO sitq_tasks \
             (created_at, name, queue, payload, priority, max_attempts, run_at) \
         SELECT ?, column2, column3, column4, column5, column6, column7 \
         FROM (VALUES {values}) WHERE column2 IS NOT NULL ORDER BY column1"
    )
});

/// Inserts `tasks` as pending; their ids, in order.
///
/// No `RETURNING` (each returned row would be one more message from the
/// connection's thread): inside the writer's `BEGIN IMMEDIATE` transaction
/// one statement gives its rows consecutive ids (AUTOINCREMENT, and nobody
/// else can write), so the ids are the `n` ending at the last inserted one.
pub(crate) async fn insert(
    conn: &mut SqliteConnection,
    tasks: &[&NewTask],
    now: i64,
) -> sqlx::Result<Vec<TaskId>> {
    let mut ids = Vec::with_capacity(tasks.len());
    for chunk in tasks.chunks(INSERT_MAX_ROWS) {
        let size = padded_size(chunk.len(), INSERT_MAX_ROWS);
        let mut query = sqlx::query(INSERT.get(size)).bind(now);
        for task in chunk {
            query = query
                .bind(task.name.as_str())
                .bind(task.queue.as_str())
                .bind(task.payload.as_slice())
                .bind(task.priority)
                .bind(i64::from(task.max_attempts))
                .bind(time::to_micros(task.run_at));
        }
        for _ in chunk.len()..size {
            for _ in 0..6 {
                query = query.bind(None::<i64>);
            }
        }
        let done = query.execute(&mut *conn).await?;
        let n = chunk.len() as i64;
        if done.rows_affected() != chunk.len() as u64 {
            return Err(sqlx::Error::Protocol(format!(
                "inserting {n} tasks stored {} rows",
                done.rows_affected()
            )));
        }
        let last = done.last_insert_rowid();
        ids.extend((last - n + 1..=last).map(TaskId));
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
        let size = padded_size(chunk.len(), MAX_ROWS);
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

fn complete_sql(rows: usize, returning: &str) -> String {
    format!(
        "UPDATE sitq_tasks SET status = v.column3, result = v.column4, error_kind = v.column5, \
             error = v.column6, run_at = coalesce(v.column7, sitq_tasks.run_at), \
             finished_at = v.column8, lease_until = NULL \
         FROM (VALUES {}) AS v \
         WHERE sitq_tasks.id = v.column1 AND sitq_tasks.attempts = v.column2 \
           AND sitq_tasks.status = 'running'{returning}",
        anonymous_placeholders(rows, 8)
    )
}

/// The fenced update, opening a savepoint first and counting after (one
/// round trip for all three), without `RETURNING`: when every row applied,
/// the count says so.
static COMPLETE: SqlBySize = SqlBySize::new(|rows| {
    format!(
        "SAVEPOINT sitq_complete; {}; SELECT changes()",
        complete_sql(rows, "")
    )
});

/// The same update, saying which rows applied (when some did not).
static COMPLETE_RETURNING: SqlBySize =
    SqlBySize::new(|rows| complete_sql(rows, " RETURNING id, attempts, status"));

/// The stored status an outcome leads to.
fn outcome_status(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Succeeded(_) => "succeeded",
        Outcome::Retry { .. } => "pending",
        Outcome::Failed(_) => "failed",
    }
}

/// The fenced update of `chunk` (its claims distinct), with `sql` for `size` rows.
fn complete_query<'q>(
    sql: &'static str,
    size: usize,
    chunk: &'q [&'q Completion],
    now: i64,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    let mut query = sqlx::query(sql);
    for completion in chunk {
        let (result, failure, run_at, finished_at) = match &completion.outcome {
            Outcome::Succeeded(result) => (Some(result.as_slice()), None, None, Some(now)),
            Outcome::Retry { failure, delay } => {
                (None, Some(failure), Some(time::add(now, *delay)), None)
            }
            Outcome::Failed(failure) => (None, Some(failure), None, Some(now)),
        };
        query = query
            .bind(completion.claim.id.0)
            .bind(i64::from(completion.claim.attempt))
            .bind(outcome_status(&completion.outcome))
            .bind(result)
            .bind(failure.map(|failure| failure.kind.as_str()))
            .bind(failure.map(|failure| failure.message.as_str()))
            .bind(run_at)
            .bind(finished_at);
    }
    // Padding rows of NULLs match nothing; they keep the statement count low.
    for _ in chunk.len()..size {
        for _ in 0..8 {
            query = query.bind(None::<i64>);
        }
    }
    query
}

/// Records outcomes, fenced on (id, attempt, running); per completion whether it applied.
pub(crate) async fn complete(
    conn: &mut SqliteConnection,
    completions: &[&Completion],
    now: i64,
) -> sqlx::Result<(Vec<bool>, Effects)> {
    // A claim completed twice in one call applies at most once: the first
    // completion ends the attempt, so the later one is stale. Only the first
    // of each claim goes to SQLite (one UPDATE … FROM row per task).
    let mut first = Vec::with_capacity(completions.len());
    let mut rows: Vec<&Completion> = Vec::with_capacity(completions.len());
    if completions.len() == 1 {
        first.push(true);
        rows.push(completions[0]);
    } else {
        let mut seen = HashSet::with_capacity(completions.len());
        for completion in completions {
            let fresh = seen.insert(completion.claim);
            first.push(fresh);
            if fresh {
                rows.push(completion);
            }
        }
    }

    let mut effects = Effects::default();
    // Claims that did not apply (only filled when some did not).
    let mut missed: Option<HashSet<(i64, i64)>> = None;
    for chunk in rows.chunks(COMPLETE_MAX_ROWS) {
        let size = padded_size(chunk.len(), COMPLETE_MAX_ROWS);
        let changes =
            complete_all(conn, complete_query(COMPLETE.get(size), size, chunk, now)).await?;
        if changes == chunk.len() as u64 {
            // Every row applied: the common case, one round trip.
            for completion in chunk {
                effects.record(completion.claim.id.0, outcome_status(&completion.outcome));
            }
            continue;
        }
        // Some were stale: undo, and run again saying which applied.
        exec(conn, "ROLLBACK TO sitq_complete").await?;
        let query = complete_query(COMPLETE_RETURNING.get(size), size, chunk, now);
        let mut applied = HashSet::with_capacity(chunk.len());
        for row in query.fetch_all(&mut *conn).await? {
            let id: i64 = row.try_get(0)?;
            let attempt: i64 = row.try_get(1)?;
            let status: &str = row.try_get(2)?;
            effects.record(id, status);
            applied.insert((id, attempt));
        }
        exec(conn, "RELEASE sitq_complete").await?;
        let missed = missed.get_or_insert_with(HashSet::new);
        for completion in chunk {
            let key = (completion.claim.id.0, i64::from(completion.claim.attempt));
            if !applied.contains(&key) {
                missed.insert(key);
            }
        }
    }
    let applied = completions
        .iter()
        .zip(first)
        .map(|(completion, first)| {
            first
                && missed.as_ref().is_none_or(|missed| {
                    !missed.contains(&(completion.claim.id.0, i64::from(completion.claim.attempt)))
                })
        })
        .collect();
    Ok((applied, effects))
}

/// Runs `SAVEPOINT sitq_complete; UPDATE …; SELECT changes()` in one round
/// trip; the rows the update changed. On success the savepoint stays open
/// (the group's `COMMIT`, or an enclosing savepoint's release, ends it)
/// unless the caller rolls back to it; on failure nothing of the update is
/// left.
async fn complete_all(
    conn: &mut SqliteConnection,
    query: sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
) -> sqlx::Result<u64> {
    match query.fetch_one(&mut *conn).await {
        Ok(row) => Ok(u64::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0)),
        Err(err) => {
            // The update failed after the savepoint opened (opening one
            // cannot fail short of running out of memory): undo the update.
            let _ = exec(conn, "ROLLBACK TO sitq_complete").await;
            let _ = exec(conn, "RELEASE sitq_complete").await;
            Err(err)
        }
    }
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
