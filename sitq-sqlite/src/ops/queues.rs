//! Queue settings (pause, global limits) and what they mean for claims.
//!
//! Every claim reads `sitq_queues` inside the writer's `BEGIN IMMEDIATE`
//! transaction, which serialises it with the claims of every other process:
//! a pause or a limit holds from the commit that stored it. With no row (the
//! common case) that read is one step over an empty table, and the claim
//! takes its usual path.

use std::collections::HashMap;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use sitq_core::{ClaimedTask, QueueInfo, QueueLimits, TaskId};

use super::{count, json_strings};
use crate::time;

/// One queue's stored settings.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) queue: String,
    pub(crate) paused: bool,
    pub(crate) concurrency: Option<i64>,
    /// Claims per window, and the window in microseconds.
    pub(crate) rate: Option<(i64, i64)>,
}

impl Settings {
    fn limited(&self) -> bool {
        self.concurrency.is_some() || self.rate.is_some()
    }

    fn limits(&self) -> QueueLimits {
        let mut limits = QueueLimits::new();
        if let Some(concurrency) = self.concurrency {
            limits = limits.concurrency(count(concurrency));
        }
        if let Some((claims, period)) = self.rate {
            let period = Duration::from_micros(u64::try_from(period).unwrap_or(0));
            limits = limits.rate(count(claims), period);
        }
        limits
    }
}

/// The settings of the queues a worker takes from (`scope`; every queue when
/// empty).
pub(crate) fn load(conn: &Connection, scope: &[String]) -> rusqlite::Result<Vec<Settings>> {
    let mut statement = conn.prepare_cached(
        "SELECT queue, paused, concurrency, rate_count, rate_period FROM sitq_queues",
    )?;
    let rows = statement.query_map([], |row| {
        let rate_count: Option<i64> = row.get(3)?;
        let rate_period: Option<i64> = row.get(4)?;
        Ok(Settings {
            queue: row.get(0)?,
            paused: row.get(1)?,
            concurrency: row.get(2)?,
            rate: rate_count.zip(rate_period),
        })
    })?;
    let mut settings = Vec::new();
    for row in rows {
        let row = row?;
        if scope.is_empty() || scope.contains(&row.queue) {
            settings.push(row);
        }
    }
    Ok(settings)
}

/// Pauses or resumes `queue`.
pub(crate) fn set_paused(
    conn: &Connection,
    queue: &str,
    paused: bool,
    now: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO sitq_queues (queue, paused, updated_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (queue) DO UPDATE SET paused = excluded.paused, updated_at = excluded.updated_at",
    )?
    .execute(params![queue, paused, now])?;
    tidy(conn, queue)
}

/// Sets (or clears) `queue`'s limits.
pub(crate) fn set_limits(
    conn: &Connection,
    queue: &str,
    limits: &QueueLimits,
    now: i64,
) -> rusqlite::Result<()> {
    let rate = limits.get_rate();
    conn.prepare_cached(
        "INSERT INTO sitq_queues (queue, concurrency, rate_count, rate_period, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (queue) DO UPDATE SET concurrency = excluded.concurrency, \
             rate_count = excluded.rate_count, rate_period = excluded.rate_period, \
             updated_at = excluded.updated_at",
    )?
    .execute(params![
        queue,
        limits.get_concurrency(),
        rate.map(|rate| rate.count),
        rate.map(|rate| micros(rate.period)),
        now
    ])?;
    if rate.is_none() {
        // Only rate-limited queues keep a log of their claims.
        conn.prepare_cached("DELETE FROM sitq_queue_claims WHERE queue = ?1")?
            .execute([queue])?;
    }
    tidy(conn, queue)
}

/// Removes a queue's row once it holds no setting, so that a database
/// whose settings were all undone claims on the fast path again.
fn tidy(conn: &Connection, queue: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "DELETE FROM sitq_queues WHERE queue = ?1 AND paused = 0 \
             AND concurrency IS NULL AND rate_count IS NULL",
    )?
    .execute([queue])
    .map(drop)
}

/// Every queue with settings or with pending or running tasks.
pub(crate) fn list(conn: &Connection) -> rusqlite::Result<Vec<QueueInfo>> {
    let mut queues: HashMap<String, QueueInfo> = HashMap::new();
    let entry = |queues: &mut HashMap<String, QueueInfo>, name: String| {
        queues
            .entry(name.clone())
            .or_insert_with(|| QueueInfo {
                name,
                paused: false,
                limits: QueueLimits::new(),
                pending: 0,
                running: 0,
            })
            .clone()
    };
    for settings in load(conn, &[])? {
        let mut info = entry(&mut queues, settings.queue.clone());
        info.paused = settings.paused;
        info.limits = settings.limits();
        queues.insert(settings.queue, info);
    }
    let mut statement = conn.prepare_cached(
        // One branch per state, so each walks its partial index and the
        // finished rows (most of a large table) are never read.
        "SELECT queue, sum(pending), sum(running) FROM ( \
           SELECT queue, 1 AS pending, 0 AS running FROM sitq_tasks WHERE status = 'pending' \
           UNION ALL \
           SELECT queue, 0, 1 FROM sitq_tasks WHERE status = 'running' \
         ) GROUP BY queue",
    )?;
    let rows = statement.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (name, pending, running) = row?;
        let mut info = entry(&mut queues, name.clone());
        info.pending = u64::try_from(pending).unwrap_or(0);
        info.running = u64::try_from(running).unwrap_or(0);
        queues.insert(name, info);
    }
    let mut queues: Vec<QueueInfo> = queues.into_values().collect();
    queues.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(queues)
}

/// A ready task as a claim picks it, with what orders it.
#[derive(Debug)]
pub(crate) struct Picked {
    pub(crate) task: ClaimedTask,
    priority: i64,
    run_at: i64,
}

/// Decodes a row of the pick statements in `write`.
pub(crate) fn picked(row: &rusqlite::Row<'_>) -> rusqlite::Result<Picked> {
    Ok(Picked {
        task: ClaimedTask {
            id: TaskId(row.get(0)?),
            name: row.get(1)?,
            queue: row.get(2)?,
            payload: row.get(3)?,
            attempt: count(row.get::<_, i64>(4)?.saturating_add(1)),
            // The claim raises the count; this is its value after.
            fence: count(row.get::<_, i64>(11)?.saturating_add(1)),
            max_attempts: count(row.get(5)?),
            created_at: time::from_micros(row.get(6)?),
            // Marks a task that receives results; filled in after the claim.
            inputs: super::deps::inputs_marker(row.get(9)?),
            trace: row.get(10)?,
        },
        priority: row.get(7)?,
        run_at: row.get(8)?,
    })
}

/// A task of a sequence is claimable only when no earlier task of its key
/// is unfinished (pending, blocked, running or failed) and none at all is
/// running. Evaluated only for rows with a sequence (SQLite stops an `OR`
/// at its first true term), through the partial index of unfinished
/// sequenced tasks.
macro_rules! sequence_free {
    () => {
        "AND (sequence IS NULL OR NOT EXISTS (SELECT 1 FROM sitq_tasks AS s \
             WHERE s.sequence = sitq_tasks.sequence \
               AND s.status IN ('pending', 'blocked', 'running', 'failed') \
               AND s.id <> sitq_tasks.id \
               AND (s.id < sitq_tasks.id OR s.status = 'running'))) "
    };
}
pub(crate) use sequence_free;

/// The claim's choice of ready tasks in claim order (priority desc, run_at,
/// id), with `$filters` on queues. ?1 now, ?2 the names (JSON), ?3 the
/// limit, ?4 the worker's queues (JSON) or one queue, ?5 the queues left to
/// the limited path (JSON).
macro_rules! pick_sql {
    ($filters:literal) => {
        concat!(
            "SELECT id, name, queue, payload, attempts, max_attempts, created_at, priority, run_at, \
                 input_mode, trace_context, claims \
             FROM sitq_tasks \
             WHERE status = 'pending' AND run_at <= ?1 \
               AND name IN (SELECT value FROM json_each(?2)) ",
            $filters,
            $crate::ops::queues::sequence_free!(),
            // `?3 + 0`, not `?3`: SQLite plans with a bare bound LIMIT's
            // value, so every claim of another size re-prepared the
            // statement (a tenth of the writer thread's time in a
            // burn-down); the plan is the same claim-index scan either way.
            "ORDER BY priority DESC, run_at, id LIMIT ?3 + 0"
        )
    };
}
pub(crate) use pick_sql;

const PICK_ANY_EXCEPT: &str = pick_sql!("AND queue NOT IN (SELECT value FROM json_each(?5)) ");
const PICK_FROM_EXCEPT: &str = pick_sql!(
    "AND queue IN (SELECT value FROM json_each(?4)) \
     AND queue NOT IN (SELECT value FROM json_each(?5)) "
);
const PICK_ONE: &str = pick_sql!("AND queue = ?4 ");

/// How many tasks of a limited queue one claim may take, and whether they
/// must start now (rate-limited: every claim counted is a start).
struct Allowance {
    tasks: usize,
    rated: bool,
}

/// The claim's choice when some queues in its scope have settings: none
/// from paused queues, at most each limited queue's allowance from it, a
/// rate-limited queue's tasks only among the first `start` (started now),
/// all in claim order. Prunes the claim logs of rate-limited queues.
pub(crate) fn pick_limited(
    conn: &Connection,
    claim: &super::write::Claim,
    settings: &[Settings],
    now: i64,
) -> rusqlite::Result<Vec<ClaimedTask>> {
    let limit = i64::try_from(claim.limit).unwrap_or(i64::MAX);
    let excluded: Vec<String> = settings.iter().map(|s| s.queue.clone()).collect();
    let excluded = json_strings(&excluded);
    let mut candidates: Vec<Picked> = match &claim.queues {
        Some(queues) => conn
            .prepare_cached(PICK_FROM_EXCEPT)?
            .query_map(params![now, claim.names, limit, queues, excluded], picked)?
            .collect::<rusqlite::Result<_>>()?,
        None => conn
            .prepare_cached(PICK_ANY_EXCEPT)?
            .query_map(
                params![now, claim.names, limit, None::<String>, excluded],
                picked,
            )?
            .collect::<rusqlite::Result<_>>()?,
    };
    let mut rated: Vec<&str> = Vec::new();
    for queue in settings.iter().filter(|s| !s.paused && s.limited()) {
        let allowance = allowance(conn, queue, claim.limit, claim.start, now)?;
        if allowance.rated {
            rated.push(&queue.queue);
        }
        if allowance.tasks == 0 {
            continue;
        }
        let tasks = i64::try_from(allowance.tasks).unwrap_or(i64::MAX);
        let rows = conn
            .prepare_cached(PICK_ONE)?
            .query_map(params![now, claim.names, tasks, queue.queue], picked)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        candidates.extend(rows);
    }
    candidates.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(a.run_at.cmp(&b.run_at))
            .then(a.task.id.cmp(&b.task.id))
    });
    let mut chosen = Vec::with_capacity(claim.limit.min(candidates.len()));
    for candidate in candidates {
        if chosen.len() == claim.limit {
            break;
        }
        // A reserved claim starts later, when a slot frees: counting it as a
        // start would let starts bunch beyond the rate.
        if chosen.len() >= claim.start && rated.contains(&candidate.task.queue.as_str()) {
            continue;
        }
        chosen.push(candidate.task);
    }
    if !rated.is_empty() {
        let mut log =
            conn.prepare_cached("INSERT INTO sitq_queue_claims (queue, at) VALUES (?1, ?2)")?;
        for task in chosen
            .iter()
            .filter(|task| rated.contains(&task.queue.as_str()))
        {
            log.execute(params![task.queue, now])?;
        }
    }
    Ok(chosen)
}

/// What one claim may take from a limited queue now; first deletes the
/// queue's claim log entries that left the window.
fn allowance(
    conn: &Connection,
    queue: &Settings,
    limit: usize,
    start: usize,
    now: i64,
) -> rusqlite::Result<Allowance> {
    let mut tasks = limit;
    if let Some(concurrency) = queue.concurrency {
        let running = running(conn, &queue.queue)?;
        tasks = tasks.min(usize::try_from(concurrency - running).unwrap_or(0));
    }
    if let Some((claims, period)) = queue.rate {
        let used = used(conn, &queue.queue, now - period, true)?;
        tasks = tasks
            .min(usize::try_from(claims - used).unwrap_or(0))
            .min(start);
    }
    Ok(Allowance {
        tasks,
        rated: queue.rate.is_some(),
    })
}

/// Claims of `queue` logged after `since` (within the window).
fn used(conn: &Connection, queue: &str, since: i64, prune: bool) -> rusqlite::Result<i64> {
    if prune {
        conn.prepare_cached("DELETE FROM sitq_queue_claims WHERE queue = ?1 AND at <= ?2")?
            .execute(params![queue, since])?;
    }
    conn.prepare_cached("SELECT count(*) FROM sitq_queue_claims WHERE queue = ?1 AND at > ?2")?
        .query_row(params![queue, since], |row| row.get(0))
}

/// The earliest instant a claim in `scope` could take a task: the earliest
/// `run_at` of pending tasks that no sequence holds, in queues that are not
/// paused, and of limited queues only when below their concurrency limit,
/// no earlier than a rate-limited queue's next free slot.
pub(crate) fn next_run_at(conn: &Connection, scope: &[String]) -> rusqlite::Result<Option<i64>> {
    let settings = load(conn, scope)?;
    let excluded: Vec<String> = settings.iter().map(|s| s.queue.clone()).collect();
    let excluded = json_strings(&excluded);
    // ORDER BY run_at LIMIT 1 walks the pending run_at index from its start,
    // stopping at the first row that passes the filters.
    let mut next: Option<i64> = if scope.is_empty() {
        conn.prepare_cached(concat!(
            "SELECT run_at FROM sitq_tasks WHERE status = 'pending' \
             AND queue NOT IN (SELECT value FROM json_each(?1)) ",
            sequence_free!(),
            "ORDER BY run_at LIMIT 1"
        ))?
        .query_row([excluded], |row| row.get(0))
        .optional()?
    } else {
        conn.prepare_cached(concat!(
            "SELECT run_at FROM sitq_tasks WHERE status = 'pending' \
             AND queue IN (SELECT value FROM json_each(?1)) \
             AND queue NOT IN (SELECT value FROM json_each(?2)) ",
            sequence_free!(),
            "ORDER BY run_at LIMIT 1"
        ))?
        .query_row(params![json_strings(scope), excluded], |row| row.get(0))
        .optional()?
    };
    let now = time::now_micros();
    for queue in settings.iter().filter(|s| !s.paused && s.limited()) {
        if concurrency_full(conn, queue)? {
            continue; // a completion in the queue wakes the workers
        }
        let Some(run_at) = conn
            .prepare_cached(concat!(
                "SELECT run_at FROM sitq_tasks WHERE status = 'pending' AND queue = ?1 ",
                sequence_free!(),
                "ORDER BY run_at LIMIT 1"
            ))?
            .query_row([&queue.queue], |row| row.get::<_, i64>(0))
            .optional()?
        else {
            continue;
        };
        let at = match queue.rate {
            Some((claims, period)) => {
                run_at.max(next_slot(conn, &queue.queue, claims, period, now)?)
            }
            None => run_at,
        };
        next = Some(next.map_or(at, |next| next.min(at)));
    }
    Ok(next)
}

fn concurrency_full(conn: &Connection, queue: &Settings) -> rusqlite::Result<bool> {
    match queue.concurrency {
        Some(concurrency) => Ok(running(conn, &queue.queue)? >= concurrency),
        None => Ok(false),
    }
}

/// Tasks of `queue` running (reserved ones included). Walks the partial
/// index of running tasks, which holds only what workers hold now.
fn running(conn: &Connection, queue: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT count(*) FROM sitq_tasks WHERE status = 'running' AND queue = ?1")?
        .query_row([queue], |row| row.get(0))
}

/// When a claim of a rate-limited queue whose window is full is next
/// allowed: once enough of the window's claims have left it.
fn next_slot(
    conn: &Connection,
    queue: &str,
    claims: i64,
    period: i64,
    now: i64,
) -> rusqlite::Result<i64> {
    let used = used(conn, queue, now - period, false)?;
    if used < claims {
        return Ok(now);
    }
    let leaving = used - claims;
    let oldest: Option<i64> = conn
        .prepare_cached(
            "SELECT at FROM sitq_queue_claims WHERE queue = ?1 AND at > ?2 \
             ORDER BY at LIMIT 1 OFFSET ?3",
        )?
        .query_row(params![queue, now - period, leaving], |row| row.get(0))
        .optional()?;
    Ok(oldest.map_or(now, |at| at.saturating_add(period)))
}

/// A duration in stored form (microseconds).
fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}
