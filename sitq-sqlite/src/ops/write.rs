//! Writes. Each runs inside the writer's open `BEGIN IMMEDIATE` transaction.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use sitq_core::{
    ClaimRef, ClaimedTask, Completion, FailureKind, Finished, NewTask, Outcome, TaskId, TaskStatus,
};

use super::queues::{self, pick_sql};
use super::{count, finished_row, json_strings};
use crate::time;

/// What a group's writes mean for this process's workers and waiters.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    /// Tasks that reached a finished state, with their outcomes.
    pub(crate) finished: Vec<Finished>,
    /// Whether some task became pending (workers should look again).
    pub(crate) work: bool,
}

const INSERT: &str = "INSERT INTO sitq_tasks \
     (created_at, name, queue, payload, priority, max_attempts, run_at, sequence) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

/// Inserts `tasks` as pending; their ids, in order.
pub(crate) fn insert(
    conn: &Connection,
    tasks: &[NewTask],
    now: i64,
) -> rusqlite::Result<Vec<TaskId>> {
    let mut statement = conn.prepare_cached(INSERT)?;
    let mut ids = Vec::with_capacity(tasks.len());
    for task in tasks {
        statement.execute(params![
            now,
            task.name,
            task.queue,
            task.payload,
            task.priority,
            task.max_attempts,
            time::to_micros(task.run_at),
            task.sequence,
        ])?;
        ids.push(TaskId(conn.last_insert_rowid()));
    }
    Ok(ids)
}

/// What a worker asked for, owned so that it can travel to the writer thread.
#[derive(Debug)]
pub(crate) struct Claim {
    pub(crate) worker_id: String,
    /// JSON array of queue names; `None` for every queue.
    pub(crate) queues: Option<String>,
    /// The same queues as a list (empty for every queue), to find their settings.
    pub(crate) scope: Vec<String>,
    /// JSON array of task names.
    pub(crate) names: String,
    pub(crate) limit: usize,
    pub(crate) start: usize,
    pub(crate) lease: Duration,
}

impl Claim {
    /// The claim a [`sitq_core::ClaimRequest`] asks for.
    pub(crate) fn new(request: &sitq_core::ClaimRequest<'_>) -> Claim {
        Claim {
            worker_id: request.worker_id.to_owned(),
            queues: (!request.queues.is_empty()).then(|| json_strings(request.queues)),
            scope: request.queues.to_vec(),
            names: json_strings(request.names),
            limit: request.limit,
            start: request.start.min(request.limit),
            lease: request.lease,
        }
    }
}

/// The claim's choice: ready tasks in claim order. The subquery-free
/// `SELECT` walks the pending index in order and stops after `LIMIT` rows;
/// the name and queue filters are probes into small lists built once per
/// statement, and the sequence filter is evaluated only for rows that have a
/// sequence. (An `UPDATE … WHERE id IN (SELECT …) RETURNING` does the same
/// in one statement, but SQLite's `RETURNING` costs a fixed ~200 µs there,
/// more than the whole claim.)
const PICK_ANY_QUEUE: &str = pick_sql!("");
const PICK_FROM_QUEUES: &str = pick_sql!("AND queue IN (SELECT value FROM json_each(?4)) ");

/// Claims up to `claim.limit` ready tasks in order (priority desc, run_at,
/// id): the first `claim.start` started now, the rest reserved. The writer
/// holds the write lock (`BEGIN IMMEDIATE`), so choosing and then updating
/// is as atomic as one statement: no other connection can write between.
pub(crate) fn claim(
    conn: &Connection,
    claim: &Claim,
    now: i64,
) -> rusqlite::Result<Vec<ClaimedTask>> {
    if claim.limit == 0 {
        return Ok(Vec::new());
    }
    // Read in this transaction, so a pause or limit another process just
    // committed holds; with no settings (the common case) one step over an
    // empty table.
    let settings = queues::load(conn, &claim.scope)?;
    let picked = if settings.is_empty() {
        let limit = i64::try_from(claim.limit).unwrap_or(i64::MAX);
        let map = |row: &rusqlite::Row<'_>| queues::picked(row).map(|picked| picked.task);
        match &claim.queues {
            Some(queues) => conn
                .prepare_cached(PICK_FROM_QUEUES)?
                .query_map(params![now, claim.names, limit, queues], map)?
                .collect::<rusqlite::Result<Vec<_>>>()?,
            None => conn
                .prepare_cached(PICK_ANY_QUEUE)?
                .query_map(params![now, claim.names, limit], map)?
                .collect::<rusqlite::Result<Vec<_>>>()?,
        }
    } else {
        queues::pick_limited(conn, claim, &settings, now)?
    };
    let lease_until = time::add(now, claim.lease);
    let mut update = conn.prepare_cached(
        "UPDATE sitq_tasks SET status = 'running', attempts = ?2, worker_id = ?3, \
             started_at = ?4, lease_until = ?5, finished_at = NULL \
         WHERE id = ?1 AND status = 'pending'",
    )?;
    for (i, task) in picked.iter().enumerate() {
        let started_at = (i < claim.start).then_some(now);
        let changed = update.execute(params![
            task.id.0,
            task.attempt,
            claim.worker_id,
            started_at,
            lease_until
        ])?;
        if changed != 1 {
            // Impossible under the write lock; refuse rather than hand out
            // a claim that is not in the database.
            return Err(rusqlite::Error::StatementChangedRows(changed));
        }
    }
    Ok(picked)
}

/// Marks reserved claims started.
pub(crate) fn start(conn: &Connection, claims: &[ClaimRef], now: i64) -> rusqlite::Result<()> {
    let mut statement = conn.prepare_cached(
        "UPDATE sitq_tasks SET started_at = ?1 \
         WHERE id = ?2 AND attempts = ?3 AND status = 'running' AND started_at IS NULL",
    )?;
    for claim in claims {
        statement.execute(params![now, claim.id.0, claim.attempt])?;
    }
    Ok(())
}

/// Gives reserved claims that never started back; how many went back.
pub(crate) fn release(conn: &Connection, claims: &[ClaimRef]) -> rusqlite::Result<u64> {
    let mut statement = conn.prepare_cached(
        "UPDATE sitq_tasks SET status = 'pending', attempts = attempts - 1, worker_id = NULL, \
             lease_until = NULL \
         WHERE id = ?1 AND attempts = ?2 AND status = 'running' AND started_at IS NULL",
    )?;
    let mut released = 0;
    for claim in claims {
        released += statement.execute(params![claim.id.0, claim.attempt])? as u64;
    }
    Ok(released)
}

/// Extends the leases of `claims` held by `worker_id`; returns the lost ones.
pub(crate) fn heartbeat(
    conn: &Connection,
    worker_id: &str,
    claims: &[ClaimRef],
    lease_until: i64,
) -> rusqlite::Result<Vec<ClaimRef>> {
    let mut statement = conn.prepare_cached(
        "UPDATE sitq_tasks SET lease_until = ?1 \
         WHERE id = ?2 AND attempts = ?3 AND status = 'running' AND worker_id = ?4",
    )?;
    let mut lost = Vec::new();
    for claim in claims {
        if statement.execute(params![lease_until, claim.id.0, claim.attempt, worker_id])? == 0 {
            lost.push(*claim);
        }
    }
    Ok(lost)
}

/// Records outcomes, fenced on (id, attempt, running); per completion
/// whether it applied. A claim completed twice applies once: the first
/// completion ends the attempt.
pub(crate) fn complete(
    conn: &Connection,
    completions: &[Completion],
    now: i64,
    effects: &mut Effects,
) -> rusqlite::Result<Vec<bool>> {
    let mut statement = conn.prepare_cached(
        "UPDATE sitq_tasks SET status = ?3, result = ?4, error_kind = ?5, error = ?6, \
             run_at = coalesce(?7, run_at), finished_at = ?8, lease_until = NULL, \
             started_at = coalesce(started_at, ?9) \
         WHERE id = ?1 AND attempts = ?2 AND status = 'running'",
    )?;
    // Without `RETURNING` (a fixed cost per statement in SQLite): the count
    // says whether it applied, and the name is read only for a finished task.
    let mut name_of = conn
        .prepare_cached("SELECT name, queue, sequence IS NOT NULL FROM sitq_tasks WHERE id = ?1")?;
    // Queues whose concurrency limit a finished task frees a slot of; read
    // once per batch, when a task finished.
    let mut limited: Option<Vec<String>> = None;
    let mut applied = Vec::with_capacity(completions.len());
    for completion in completions {
        let (status, result, failure, run_at, finished_at) = match &completion.outcome {
            Outcome::Succeeded(result) => {
                (TaskStatus::Succeeded, Some(result), None, None, Some(now))
            }
            Outcome::Retry { failure, delay } => (
                TaskStatus::Pending,
                None,
                Some(failure),
                Some(time::add(now, *delay)),
                None,
            ),
            Outcome::Failed(failure) => (TaskStatus::Failed, None, Some(failure), None, Some(now)),
        };
        let changed = statement.execute(params![
            completion.claim.id.0,
            completion.claim.attempt,
            status.as_str(),
            result,
            failure.map(|failure| failure.kind.as_str()),
            failure.map(|failure| failure.message.as_str()),
            run_at,
            finished_at,
            now,
        ])?;
        applied.push(changed > 0);
        if changed == 0 {
            continue;
        }
        if status == TaskStatus::Pending {
            effects.work = true;
        } else {
            let (name, queue, sequenced): (String, String, bool) = name_of
                .query_row([completion.claim.id.0], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })?;
            if !effects.work {
                // A finished task may free its sequence or a slot of its
                // queue's concurrency limit: workers waiting on it look again.
                let limited = match &mut limited {
                    Some(limited) => limited,
                    None => limited.insert(concurrency_limited(conn)?),
                };
                effects.work = sequenced || limited.contains(&queue);
            }
            effects.finished.push(Finished {
                id: completion.claim.id,
                name,
                status,
                attempts: completion.claim.attempt,
                result: result.cloned(),
                failure: failure.cloned(),
            });
        }
    }
    Ok(applied)
}

/// Returns running tasks whose lease ran out: a reserved one (never
/// started) to pending with its attempt given back and no failure; a started
/// one to pending, or to failed when it has no attempts left, with a
/// `LeaseExpired` failure. How many.
pub(crate) fn recover_expired(
    conn: &Connection,
    now: i64,
    effects: &mut Effects,
) -> rusqlite::Result<u64> {
    // The message is built in SQL so that recovery stays one statement
    // however many tasks expired at once. SET expressions see the old row.
    let mut statement = conn.prepare_cached(
        "UPDATE sitq_tasks SET \
             status = CASE WHEN started_at IS NOT NULL AND attempts >= max_attempts \
                 THEN 'failed' ELSE 'pending' END, \
             attempts = CASE WHEN started_at IS NULL THEN attempts - 1 ELSE attempts END, \
             run_at = CASE WHEN started_at IS NULL OR attempts >= max_attempts \
                 THEN run_at ELSE ?1 END, \
             finished_at = CASE WHEN started_at IS NOT NULL AND attempts >= max_attempts \
                 THEN ?1 END, \
             lease_until = NULL, \
             worker_id = CASE WHEN started_at IS NULL THEN NULL ELSE worker_id END, \
             error_kind = CASE WHEN started_at IS NULL THEN error_kind ELSE ?2 END, \
             error = CASE WHEN started_at IS NULL THEN error ELSE \
                 'worker ' || coalesce(worker_id, '(unknown)') \
                 || ' stopped renewing its lease during attempt ' || attempts \
                 || ' (killed or cut off)' END \
         WHERE status = 'running' AND lease_until < ?1 \
         RETURNING id, name, status, attempts, result, error_kind, error",
    )?;
    let rows = statement.query_map(
        params![now, FailureKind::LeaseExpired.as_str()],
        finished_row,
    )?;
    let mut recovered = 0;
    for row in rows {
        let finished = row?;
        recovered += 1;
        // Either way a running task stopped: a sequence or a concurrency
        // limit it held may let others run.
        effects.work = true;
        if finished.status != TaskStatus::Pending {
            effects.finished.push(finished);
        }
    }
    Ok(recovered)
}

/// Cancels a pending or blocked task; whether it was.
pub(crate) fn cancel(
    conn: &Connection,
    id: TaskId,
    now: i64,
    effects: &mut Effects,
) -> rusqlite::Result<bool> {
    let mut statement = conn.prepare_cached(
        "UPDATE sitq_tasks SET status = 'cancelled', finished_at = ?1, lease_until = NULL \
         WHERE id = ?2 AND status IN ('pending', 'blocked') \
         RETURNING name, attempts",
    )?;
    let row: Option<(String, i64)> = statement
        .query_row(params![now, id.0], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let Some((name, attempts)) = row else {
        return Ok(false);
    };
    // A cancelled task releases its sequence: the next one may run.
    effects.work = true;
    effects.finished.push(Finished {
        id,
        name,
        status: TaskStatus::Cancelled,
        attempts: count(attempts),
        result: None,
        failure: None,
    });
    Ok(true)
}

/// The queues that have a concurrency limit.
fn concurrency_limited(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    conn.prepare_cached("SELECT queue FROM sitq_queues WHERE concurrency IS NOT NULL")?
        .query_map([], |row| row.get(0))?
        .collect()
}

/// Deletes at most `limit` finished tasks that finished before `before`; how many.
///
/// Bounded so that pruning a large backlog never holds the write lock for
/// long: the writer calls it again in its next transactions.
pub(crate) fn prune_some(conn: &Connection, before: i64, limit: i64) -> rusqlite::Result<u64> {
    let mut statement = conn.prepare_cached(
        "DELETE FROM sitq_tasks WHERE id IN (SELECT id FROM sitq_tasks \
             WHERE finished_at < ?1 AND status IN ('succeeded', 'failed', 'cancelled') \
             LIMIT ?2)",
    )?;
    Ok(statement.execute(params![before, limit])? as u64)
}
