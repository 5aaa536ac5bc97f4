//! Writes. Each runs inside the writer's open `BEGIN IMMEDIATE` transaction.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use sitq_core::{
    ClaimRef, ClaimedTask, Completion, Enqueued, FailureKind, Finished, NewTask, Outcome,
    TaskFailure, TaskId, TaskStatus, holder_blocks,
};

use super::deps::{self, Done};
use super::queues::{self, pick_sql};
use super::{finished_row, json_ids, json_strings, status};
use crate::time;

/// What a group's writes mean for this process's workers and waiters.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    /// Tasks that reached a finished state, with their outcomes.
    pub(crate) finished: Vec<Finished>,
    /// Whether some task became pending (workers should look again).
    pub(crate) work: bool,
    /// Tasks cancelled or asked to be while a worker held them: the
    /// workers holding them should look.
    pub(crate) cancelled: Vec<TaskId>,
    /// Tasks retried: outcomes kept for waiters must be forgotten.
    pub(crate) retried: Vec<TaskId>,
    /// A worker was asked to drain: this process's workers look.
    pub(crate) control: bool,
}

impl Effects {
    /// Adds what `other` (a command's own effects) means.
    pub(crate) fn absorb(&mut self, other: Effects) {
        self.finished.extend(other.finished);
        self.work |= other.work;
        self.cancelled.extend(other.cancelled);
        self.retried.extend(other.retried);
        self.control |= other.control;
    }
}

const INSERT: &str = "INSERT INTO sitq_tasks \
     (created_at, name, queue, payload, priority, max_attempts, run_at, sequence, trace_context) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

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
            task.trace,
        ])?;
        ids.push(TaskId(conn.last_insert_rowid()));
    }
    Ok(ids)
}

const INSERT_UNIQUE: &str = "INSERT INTO sitq_tasks \
     (created_at, name, queue, payload, priority, max_attempts, run_at, sequence, unique_key, \
      unique_for, trace_context) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

/// Inserts `tasks`, honouring unique keys (see `Backend::enqueue_unique`):
/// a task whose key is held by a row that blocks it is not stored, and its
/// answer is that row's id. The writer holds the write lock, so looking the
/// holder up and inserting are as atomic as one statement across every
/// process; the unique index on `(name, unique_key)` stands behind it. A
/// later task of the same batch finds an earlier one's row like any other.
pub(crate) fn insert_unique(
    conn: &Connection,
    tasks: &[NewTask],
    now: i64,
) -> rusqlite::Result<Vec<Enqueued>> {
    let mut plain = conn.prepare_cached(INSERT)?;
    let mut keyed = conn.prepare_cached(INSERT_UNIQUE)?;
    let mut holder = conn.prepare_cached(
        "SELECT id, status, finished_at, unique_for FROM sitq_tasks \
         WHERE name = ?1 AND unique_key = ?2",
    )?;
    let mut release =
        conn.prepare_cached("UPDATE sitq_tasks SET unique_key = NULL WHERE id = ?1")?;
    let at = time::from_micros(now);
    let mut enqueued = Vec::with_capacity(tasks.len());
    for task in tasks {
        let run_at = time::to_micros(task.run_at);
        let Some(unique) = &task.unique else {
            plain.execute(params![
                now,
                task.name,
                task.queue,
                task.payload,
                task.priority,
                task.max_attempts,
                run_at,
                task.sequence,
                task.trace,
            ])?;
            enqueued.push(Enqueued {
                id: TaskId(conn.last_insert_rowid()),
                duplicate: false,
            });
            continue;
        };
        let held: Option<(i64, String, Option<i64>, Option<i64>)> = holder
            .query_row(params![task.name, unique.key], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .optional()?;
        if let Some((id, status, finished_at, window)) = held {
            // A status this version does not know is taken to block.
            let blocks = status.parse::<TaskStatus>().map_or(true, |status| {
                holder_blocks(
                    status,
                    finished_at.map(time::from_micros),
                    window.map(|micros| Duration::from_micros(micros.max(0).unsigned_abs())),
                    at,
                )
            });
            if blocks {
                enqueued.push(Enqueued {
                    id: TaskId(id),
                    duplicate: true,
                });
                continue;
            }
            release.execute([id])?;
        }
        keyed.execute(params![
            now,
            task.name,
            task.queue,
            task.payload,
            task.priority,
            task.max_attempts,
            run_at,
            task.sequence,
            unique.key,
            unique.window_micros(),
            task.trace,
        ])?;
        enqueued.push(Enqueued {
            id: TaskId(conn.last_insert_rowid()),
            duplicate: false,
        });
    }
    Ok(enqueued)
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
             started_at = ?4, lease_until = ?5, finished_at = NULL, claims = ?6 \
         WHERE id = ?1 AND status = 'pending'",
    )?;
    for (i, task) in picked.iter().enumerate() {
        let started_at = (i < claim.start).then_some(now);
        let changed = update.execute(params![
            task.id.0,
            task.attempt,
            claim.worker_id,
            started_at,
            lease_until,
            task.fence
        ])?;
        if changed != 1 {
            // Impossible under the write lock; refuse rather than hand out
            // a claim that is not in the database.
            return Err(rusqlite::Error::StatementChangedRows(changed));
        }
    }
    let mut picked = picked;
    if picked.iter().any(|task| task.inputs.is_some()) {
        deps::load_inputs(conn, &mut picked)?;
    }
    Ok(picked)
}

/// Marks reserved claims started.
pub(crate) fn start(conn: &Connection, claims: &[ClaimRef], now: i64) -> rusqlite::Result<()> {
    let mut statement = conn.prepare_cached(
        "UPDATE sitq_tasks SET started_at = ?1 \
         WHERE id = ?2 AND claims = ?3 AND status = 'running' AND started_at IS NULL",
    )?;
    for claim in claims {
        statement.execute(params![now, claim.id.0, claim.fence])?;
    }
    Ok(())
}

/// Gives reserved claims that never started back; how many went back.
pub(crate) fn release(conn: &Connection, claims: &[ClaimRef]) -> rusqlite::Result<u64> {
    let mut statement = conn.prepare_cached(
        "UPDATE sitq_tasks SET status = 'pending', attempts = attempts - 1, worker_id = NULL, \
             lease_until = NULL \
         WHERE id = ?1 AND claims = ?2 AND status = 'running' AND started_at IS NULL",
    )?;
    let mut released = 0;
    for claim in claims {
        released += statement.execute(params![claim.id.0, claim.fence])? as u64;
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
         WHERE id = ?2 AND claims = ?3 AND status = 'running' AND worker_id = ?4",
    )?;
    let mut lost = Vec::new();
    for claim in claims {
        if statement.execute(params![lease_until, claim.id.0, claim.fence, worker_id])? == 0 {
            lost.push(*claim);
        }
    }
    Ok(lost)
}

/// Records outcomes, fenced on (id, claim fence, running); per completion
/// whether it applied. A claim completed twice applies once: the first
/// completion ends the attempt. A success is one statement; a failure also
/// goes to the failure history, and becomes a cancellation when the task
/// has a cancel request (see [`complete_failure`]).
pub(crate) fn complete(
    conn: &Connection,
    completions: &[Completion],
    now: i64,
    effects: &mut Effects,
) -> rusqlite::Result<Vec<bool>> {
    let mut statement = conn.prepare_cached(
        "UPDATE sitq_tasks SET status = ?3, result = ?4, error_kind = ?5, error = ?6, \
             run_at = coalesce(?7, run_at), finished_at = ?8, lease_until = NULL, \
             started_at = coalesce(started_at, ?9), dependents_resolved = NOT has_dependents, \
             unique_key = CASE WHEN ?3 = 'failed' OR (?3 = 'succeeded' AND unique_for IS NULL) \
                 THEN NULL ELSE unique_key END \
         WHERE id = ?1 AND claims = ?2 AND status = 'running'",
    )?;
    // A task that failed for good (or succeeded with no window) releases
    // its unique key in the same statement: one CASE, no index work for the
    // rows without a key (they are not in the partial index).
    // Without `RETURNING` (a fixed cost per statement in SQLite): the count
    // says whether it applied, and the name is read only for a finished task.
    let mut name_of = conn.prepare_cached(
        "SELECT name, queue, sequence IS NOT NULL, has_dependents FROM sitq_tasks WHERE id = ?1",
    )?;
    // Finished tasks whose dependents wait for them (rare).
    let mut resolve: Vec<Done> = Vec::new();
    // Queues whose concurrency limit a finished task frees a slot of; read
    // once per batch, when a task finished.
    let mut limited: Option<Vec<String>> = None;
    let mut applied = Vec::with_capacity(completions.len());
    for completion in completions {
        let result = match &completion.outcome {
            Outcome::Succeeded(result) => result,
            Outcome::Snooze { delay } => {
                let run_at = time::add(now, snooze_delay(*delay));
                if snooze(conn, completion.claim, run_at)? {
                    effects.work = true;
                    applied.push(true);
                    continue;
                }
                // Not applied: a stale claim (then this does nothing either),
                // or a task with a cancel request, which ends cancelled.
                let cancelled = Completion {
                    claim: completion.claim,
                    outcome: Outcome::Cancelled(TaskFailure::new(
                        FailureKind::Cancelled,
                        "cancelled while it ran; the task snoozed after the request",
                    )),
                };
                applied.push(complete_failure(
                    conn,
                    &cancelled,
                    now,
                    effects,
                    &mut resolve,
                )?);
                continue;
            }
            _ => {
                applied.push(complete_failure(
                    conn,
                    completion,
                    now,
                    effects,
                    &mut resolve,
                )?);
                continue;
            }
        };
        let status = TaskStatus::Succeeded;
        let no_text: Option<&str> = None;
        let changed = statement.execute(params![
            completion.claim.id.0,
            completion.claim.fence,
            status.as_str(),
            result,
            no_text,
            no_text,
            None::<i64>,
            now,
            now,
        ])?;
        applied.push(changed > 0);
        if changed == 0 {
            continue;
        }
        let (name, queue, sequenced, has_dependents): (String, String, bool, bool) = name_of
            .query_row([completion.claim.id.0], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })?;
        if has_dependents {
            resolve.push(Done {
                id: completion.claim.id,
                name: name.clone(),
                status,
            });
        }
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
            result: Some(result.clone()),
            failure: None,
        });
    }
    deps::resolve(conn, resolve, now, effects);
    Ok(applied)
}

/// Stores a snooze, fenced like any outcome: pending again at `run_at`,
/// the attempt given back, one more snooze, no worker, lease or start time;
/// the previous error kept. Whether it applied.
fn snooze(conn: &Connection, claim: ClaimRef, run_at: i64) -> rusqlite::Result<bool> {
    // A statement of its own, prepared only when a task snoozes: the other
    // outcomes' statement stays as it was.
    let mut statement = conn.prepare_cached(
        "UPDATE sitq_tasks SET status = 'pending', attempts = attempts - 1, \
             snoozes = snoozes + 1, run_at = ?3, worker_id = NULL, lease_until = NULL, \
             started_at = NULL \
         WHERE id = ?1 AND claims = ?2 AND status = 'running' \
             AND cancel_requested_at IS NULL",
    )?;
    Ok(statement.execute(params![claim.id.0, claim.fence, run_at])? > 0)
}

/// A snooze's delay as stored: at most [`sitq_core::Context::MAX_SNOOZE`]
/// (the worker caps it already; a direct caller of `complete` may not).
fn snooze_delay(delay: Duration) -> Duration {
    delay.min(sitq_core::Context::MAX_SNOOZE)
}

/// What a failure outcome's update returns: the stored status, the name,
/// the worker, whether the task has dependents, and when the attempt started.
type FailedRow = (String, String, Option<String>, bool, Option<i64>);

/// Records a failure outcome (`Retry`, `Failed`, `Cancelled`) and adds it to
/// the failure history; whether it applied. A task with a cancel request
/// ends `cancelled` whatever the outcome said: a cancel is never retried.
fn complete_failure(
    conn: &Connection,
    completion: &Completion,
    now: i64,
    effects: &mut Effects,
    resolve: &mut Vec<Done>,
) -> rusqlite::Result<bool> {
    let (status, failure, run_at) = match &completion.outcome {
        Outcome::Retry { failure, delay } => {
            (TaskStatus::Pending, failure, Some(time::add(now, *delay)))
        }
        Outcome::Failed(failure) => (TaskStatus::Failed, failure, None),
        Outcome::Cancelled(failure) => (TaskStatus::Cancelled, failure, None),
        Outcome::Succeeded(_) | Outcome::Snooze { .. } => return Ok(false),
    };
    let mut statement = conn.prepare_cached(
        "UPDATE sitq_tasks SET \
             status = CASE WHEN cancel_requested_at IS NULL THEN ?3 ELSE 'cancelled' END, \
             result = NULL, error_kind = ?4, error = ?5, \
             run_at = CASE WHEN cancel_requested_at IS NULL THEN coalesce(?6, run_at) \
                 ELSE run_at END, \
             finished_at = CASE WHEN ?3 = 'pending' AND cancel_requested_at IS NULL \
                 THEN NULL ELSE ?7 END, \
             lease_until = NULL, started_at = coalesce(started_at, ?7), \
             unique_key = CASE WHEN ?3 = 'pending' AND cancel_requested_at IS NULL \
                 THEN unique_key END, \
             dependents_resolved = CASE WHEN ?3 = 'pending' AND cancel_requested_at IS NULL \
                 THEN dependents_resolved ELSE NOT has_dependents END \
         WHERE id = ?1 AND claims = ?2 AND status = 'running' \
         RETURNING status, name, worker_id, has_dependents, started_at",
    )?;
    let row: Option<FailedRow> = statement
        .query_row(
            params![
                completion.claim.id.0,
                completion.claim.fence,
                status.as_str(),
                failure.kind.as_str(),
                failure.message,
                run_at,
                now,
            ],
            |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                ))
            },
        )
        .optional()?;
    let Some((stored, name, worker_id, has_dependents, started_at)) = row else {
        return Ok(false);
    };
    record_failure(
        conn,
        Attempt {
            id: completion.claim.id,
            attempt: completion.claim.attempt,
            worker_id: worker_id.as_deref(),
            started_at,
        },
        failure,
        now,
    )?;
    let stored = status_of(&stored)?;
    // Pending again, or finished: either way a sequence or a concurrency
    // slot it held may let others run (failures are rare: no finer check).
    effects.work = true;
    if stored != TaskStatus::Pending && has_dependents {
        resolve.push(Done {
            id: completion.claim.id,
            name: name.clone(),
            status: stored,
        });
    }
    if stored != TaskStatus::Pending {
        effects.finished.push(Finished {
            id: completion.claim.id,
            name,
            status: stored,
            attempts: completion.claim.attempt,
            result: None,
            failure: Some(failure.clone()),
        });
    }
    Ok(true)
}

pub(crate) fn status_of(text: &str) -> rusqlite::Result<TaskStatus> {
    status(text, 0)
}

/// Which attempt failed, for [`record_failure`].
struct Attempt<'a> {
    id: TaskId,
    attempt: u32,
    worker_id: Option<&'a str>,
    /// The task row's `started_at`: when this attempt started.
    started_at: Option<i64>,
}

/// Adds one failed attempt to the failure history.
fn record_failure(
    conn: &Connection,
    attempt: Attempt<'_>,
    failure: &TaskFailure,
    now: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO sitq_failures \
             (task_id, attempt, kind, message, worker_id, started_at, failed_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        attempt.id.0,
        attempt.attempt,
        failure.kind.as_str(),
        failure.message,
        attempt.worker_id,
        attempt.started_at,
        now
    ])?;
    Ok(())
}

/// Returns running tasks whose lease ran out: a reserved one (never
/// started) to pending with its attempt given back and no failure; a started
/// one to pending, or to failed when it has no attempts left, or to
/// cancelled when it has a cancel request, with a `LeaseExpired` failure
/// (also in the failure history). How many.
pub(crate) fn recover_expired(
    conn: &Connection,
    now: i64,
    effects: &mut Effects,
) -> rusqlite::Result<u64> {
    // The message is built in SQL so that recovery stays one statement
    // however many tasks expired at once. SET expressions see the old row.
    let mut statement = conn.prepare_cached(
        "UPDATE sitq_tasks SET \
             status = CASE WHEN started_at IS NULL THEN 'pending' \
                 WHEN cancel_requested_at IS NOT NULL THEN 'cancelled' \
                 WHEN attempts >= max_attempts THEN 'failed' ELSE 'pending' END, \
             attempts = CASE WHEN started_at IS NULL THEN attempts - 1 ELSE attempts END, \
             run_at = CASE WHEN started_at IS NULL OR attempts >= max_attempts \
                     OR cancel_requested_at IS NOT NULL \
                 THEN run_at ELSE ?1 END, \
             finished_at = CASE WHEN started_at IS NOT NULL \
                     AND (attempts >= max_attempts OR cancel_requested_at IS NOT NULL) \
                 THEN ?1 END, \
             lease_until = NULL, \
             unique_key = CASE WHEN started_at IS NOT NULL \
                     AND (attempts >= max_attempts OR cancel_requested_at IS NOT NULL) \
                 THEN NULL ELSE unique_key END, \
             worker_id = CASE WHEN started_at IS NULL THEN NULL ELSE worker_id END, \
             dependents_resolved = CASE WHEN started_at IS NOT NULL \
                     AND (attempts >= max_attempts OR cancel_requested_at IS NOT NULL) \
                 THEN NOT has_dependents ELSE dependents_resolved END, \
             error_kind = CASE WHEN started_at IS NULL THEN error_kind ELSE ?2 END, \
             error = CASE WHEN started_at IS NULL THEN error ELSE \
                 'worker ' || coalesce(worker_id, '(unknown)') \
                 || ' stopped renewing its lease during attempt ' || attempts \
                 || ' (killed or cut off)' END \
         WHERE status = 'running' AND lease_until < ?1 \
         RETURNING id, name, status, attempts, result, error_kind, error, \
             started_at IS NOT NULL, worker_id, has_dependents, started_at",
    )?;
    let rows = statement.query_map(params![now, FailureKind::LeaseExpired.as_str()], |row| {
        Ok((
            finished_row(row)?,
            row.get::<_, bool>(7)?,
            row.get::<_, Option<String>>(8)?,
            row.get::<_, bool>(9)?,
            row.get::<_, Option<i64>>(10)?,
        ))
    })?;
    let rows = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    let mut recovered = 0;
    let mut resolve = Vec::new();
    for (finished, started, worker_id, has_dependents, started_at) in rows {
        recovered += 1;
        if started && let Some(failure) = &finished.failure {
            let attempt = Attempt {
                id: finished.id,
                attempt: finished.attempts,
                worker_id: worker_id.as_deref(),
                started_at,
            };
            record_failure(conn, attempt, failure, now)?;
        }
        // Either way a running task stopped: a sequence or a concurrency
        // limit it held may let others run.
        effects.work = true;
        if finished.status != TaskStatus::Pending {
            if has_dependents {
                resolve.push(Done {
                    id: finished.id,
                    name: finished.name.clone(),
                    status: finished.status,
                });
            }
            effects.finished.push(finished);
        }
    }
    deps::resolve(conn, resolve, now, effects);
    // Repairs resolutions that failed after their task finished.
    deps::sweep(conn, now, effects)?;
    Ok(recovered)
}

/// The queues that have a concurrency limit.
fn concurrency_limited(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    conn.prepare_cached("SELECT queue FROM sitq_queues WHERE concurrency IS NOT NULL")?
        .query_map([], |row| row.get(0))?
        .collect()
}

/// Deletes at most `limit` tasks in `statuses` (a JSON array of finished
/// states) that finished before `before`, with their failure history; how many.
///
/// Bounded so that purging a large backlog never holds the write lock for
/// long: the writer calls it again in its next transactions.
pub(crate) fn purge_some(
    conn: &Connection,
    before: i64,
    statuses: &str,
    limit: i64,
) -> rusqlite::Result<u64> {
    // A task some unfinished dependent waits for stays: its result may be
    // an input, and its status what the dependent's retry counts. Asked
    // only of rows with dependents (SQLite stops an OR at its first true term).
    let mut statement = conn.prepare_cached(
        "DELETE FROM sitq_tasks WHERE id IN (SELECT id FROM sitq_tasks \
             WHERE finished_at < ?1 AND status IN ('succeeded', 'failed', 'cancelled') \
               AND status IN (SELECT value FROM json_each(?3)) \
               AND (has_dependents = 0 OR NOT EXISTS (SELECT 1 FROM sitq_deps AS d \
                   JOIN sitq_tasks AS t ON t.id = d.task_id \
                   WHERE d.dep_id = sitq_tasks.id \
                     AND t.status IN ('pending', 'blocked', 'running'))) \
             LIMIT ?2) \
         RETURNING id, workflow_id",
    )?;
    let rows = statement
        .query_map(params![before, limit, statuses], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, Option<i64>>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if !rows.is_empty() {
        let ids = json_ids(rows.iter().map(|(id, _)| *id));
        conn.prepare_cached(
            "DELETE FROM sitq_failures WHERE task_id IN (SELECT value FROM json_each(?1))",
        )?
        .execute([&ids])?;
        deps::pruned(
            conn,
            &ids,
            rows.iter().filter_map(|(_, workflow)| *workflow),
        )?;
    }
    Ok(rows.len() as u64)
}
