//! Writes. Each runs inside the writer's open `BEGIN IMMEDIATE` transaction.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use sitq_core::{
    ClaimRef, ClaimedTask, Completion, FailureKind, Finished, NewTask, Outcome, TaskFailure,
    TaskId, TaskStatus,
};

use super::{count, json_strings, status};
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
     (created_at, name, queue, payload, priority, max_attempts, run_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

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
            names: json_strings(request.names),
            limit: request.limit,
            start: request.start.min(request.limit),
            lease: request.lease,
        }
    }
}

/// The claim statement; `started_at` is bound (now, or NULL for a
/// reservation). The subquery walks the pending index in claim order and
/// stops after `LIMIT` rows; the name and queue filters are probes into
/// small lists built once per statement.
macro_rules! claim_sql {
    ($queues:literal) => {
        concat!(
            "UPDATE sitq_tasks \
             SET status = 'running', attempts = attempts + 1, worker_id = ?1, started_at = ?5, \
                 lease_until = ?3, finished_at = NULL \
             WHERE id IN (SELECT id FROM sitq_tasks \
                 WHERE status = 'pending' AND run_at <= ?2 \
                   AND name IN (SELECT value FROM json_each(?6)) ",
            $queues,
            " ORDER BY priority DESC, run_at, id LIMIT ?4) \
             RETURNING id, name, queue, payload, attempts, max_attempts, created_at, priority, run_at"
        )
    };
}

const CLAIM_ANY_QUEUE: &str = claim_sql!("");
const CLAIM_FROM_QUEUES: &str = claim_sql!("AND queue IN (SELECT value FROM json_each(?7))");

/// Claims up to `claim.limit` ready tasks in order (priority desc, run_at,
/// id): the first `claim.start` started now, the rest reserved. One
/// statement for each of the two parts.
pub(crate) fn claim(
    conn: &Connection,
    claim: &Claim,
    now: i64,
) -> rusqlite::Result<Vec<ClaimedTask>> {
    let lease_until = time::add(now, claim.lease);
    let mut claimed = claim_part(conn, claim, now, lease_until, claim.start, Some(now))?;
    if claimed.len() == claim.start && claim.limit > claim.start {
        claimed.extend(claim_part(
            conn,
            claim,
            now,
            lease_until,
            claim.limit - claim.start,
            None,
        )?);
    }
    Ok(claimed)
}

fn claim_part(
    conn: &Connection,
    claim: &Claim,
    now: i64,
    lease_until: i64,
    limit: usize,
    started_at: Option<i64>,
) -> rusqlite::Result<Vec<ClaimedTask>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let sql = if claim.queues.is_some() {
        CLAIM_FROM_QUEUES
    } else {
        CLAIM_ANY_QUEUE
    };
    let mut statement = conn.prepare_cached(sql)?;
    let map = |row: &rusqlite::Row<'_>| {
        let key: (i64, i64) = (row.get(7)?, row.get(8)?);
        Ok((
            key,
            ClaimedTask {
                id: TaskId(row.get(0)?),
                name: row.get(1)?,
                queue: row.get(2)?,
                payload: row.get(3)?,
                attempt: count(row.get(4)?),
                max_attempts: count(row.get(5)?),
                created_at: time::from_micros(row.get(6)?),
            },
        ))
    };
    let rows = match &claim.queues {
        Some(queues) => statement.query_map(
            params![
                claim.worker_id,
                now,
                lease_until,
                limit,
                started_at,
                claim.names,
                queues
            ],
            map,
        )?,
        None => statement.query_map(
            params![
                claim.worker_id,
                now,
                lease_until,
                limit,
                started_at,
                claim.names
            ],
            map,
        )?,
    };
    let mut claimed = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    // RETURNING's order is unspecified: restore the claim order.
    claimed.sort_unstable_by(|((pa, ra), a), ((pb, rb), b)| {
        pb.cmp(pa).then(ra.cmp(rb)).then(a.id.cmp(&b.id))
    });
    Ok(claimed.into_iter().map(|(_, task)| task).collect())
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
         WHERE id = ?1 AND attempts = ?2 AND status = 'running' \
         RETURNING name",
    )?;
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
        let name: Option<String> = statement
            .query_row(
                params![
                    completion.claim.id.0,
                    completion.claim.attempt,
                    status.as_str(),
                    result,
                    failure.map(|failure| failure.kind.as_str()),
                    failure.map(|failure| failure.message.as_str()),
                    run_at,
                    finished_at,
                    now,
                ],
                |row| row.get(0),
            )
            .optional()?;
        let Some(name) = name else {
            applied.push(false);
            continue;
        };
        applied.push(true);
        if status == TaskStatus::Pending {
            effects.work = true;
        } else {
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
         RETURNING id, name, status, attempts, error_kind, error",
    )?;
    let rows = statement.query_map(params![now, FailureKind::LeaseExpired.as_str()], |row| {
        let status_text: String = row.get(2)?;
        Ok(Finished {
            id: TaskId(row.get(0)?),
            name: row.get(1)?,
            status: status(&status_text, 2)?,
            attempts: count(row.get(3)?),
            result: None,
            failure: TaskFailure::from_columns(
                row.get::<_, Option<String>>(4)?.as_deref(),
                row.get(5)?,
            ),
        })
    })?;
    let mut recovered = 0;
    for row in rows {
        let finished = row?;
        recovered += 1;
        if finished.status == TaskStatus::Pending {
            effects.work = true;
        } else {
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
