//! Schedules: their registration, the once-only firing of a tick, listing.
//!
//! A tick fires once because its `(schedule, tick)` row is the primary key
//! of `sitq_schedule_ticks`: of several workers inserting it at once, one
//! inserts and the others' `ON CONFLICT DO NOTHING` wait for its commit and
//! then find it (or insert it themselves, should it roll back). The task is
//! enqueued in the same transaction.

use chrono::{DateTime, Utc};
use sitq_core::schedule::{ScheduleDefinition, TICK_RETENTION, TickFire};
use sitq_core::{Error, Result, ScheduleInfo, TaskId};
use sqlx::Row;
use sqlx::postgres::{PgPool, PgRow};

use crate::connect::db_error;

use super::to_int;

/// The columns [`info`] reads, for `concat!` (sqlx takes only static SQL).
macro_rules! columns {
    () => {
        "name, task, queue, expression, zone, catch_up, defined_at, last_fire, next_fire, last_seen"
    };
}

/// Inserts or updates `schedules` by name in one transaction; the stored rows.
pub(super) async fn register(
    pool: &PgPool,
    mut schedules: Vec<ScheduleDefinition>,
) -> Result<Vec<ScheduleInfo>> {
    const OP: &str = "registering schedules";
    // One order for every worker, so two registrations never deadlock.
    schedules.sort_by(|a, b| a.name.cmp(&b.name));
    const SQL: &str = concat!(
        "
INSERT INTO sitq_schedules AS s
    (name, task, queue, expression, zone, catch_up, defined_at, next_fire, last_seen)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7)
ON CONFLICT (name) DO UPDATE SET
    defined_at = CASE WHEN s.expression <> excluded.expression OR s.zone <> excluded.zone
        THEN excluded.defined_at ELSE s.defined_at END,
    task = excluded.task, queue = excluded.queue, expression = excluded.expression,
    zone = excluded.zone, catch_up = excluded.catch_up,
    next_fire = excluded.next_fire, last_seen = excluded.last_seen
RETURNING ",
        columns!()
    );
    let mut tx = pool.begin().await.map_err(db_error(OP))?;
    let mut stored = Vec::with_capacity(schedules.len());
    for schedule in &schedules {
        let row = sqlx::query(SQL)
            .bind(&schedule.name)
            .bind(&schedule.task)
            .bind(&schedule.queue)
            .bind(&schedule.expression)
            .bind(&schedule.zone)
            .bind(schedule.catch_up.as_str())
            .bind(schedule.now)
            .bind(schedule.next_fire)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error(OP))?;
        stored.push(info(&row, OP)?);
    }
    tx.commit().await.map_err(db_error(OP))?;
    Ok(stored)
}

/// The rest of a fire, once its tick row is in: the task (whose id the tick
/// row gets), pruning, the schedule's bookkeeping and the wake-up, in one
/// statement. Data-modifying CTEs run whether or not anything reads them.
const ENQUEUE_TICK: &str = "
WITH task AS (
    INSERT INTO sitq_tasks (name, queue, payload, priority, max_attempts, run_at)
    VALUES ($3, $4, $5, $6, $7, $2)
    RETURNING id
), linked AS (
    UPDATE sitq_schedule_ticks SET task_id = (SELECT id FROM task)
    WHERE schedule = $1 AND tick = $2
), pruned AS (
    DELETE FROM sitq_schedule_ticks WHERE schedule = $1 AND tick < $8
), stored AS (
    UPDATE sitq_schedules SET
        last_fire = GREATEST(last_fire, $2),
        next_fire = CASE WHEN last_fire IS NULL OR last_fire <= $2 THEN $9 ELSE next_fire END,
        last_seen = $10,
        pruned_before = GREATEST(pruned_before, $8)
    WHERE name = $1
), notified AS MATERIALIZED (
    SELECT pg_notify('sitq_work', '')
)
SELECT task.id FROM task CROSS JOIN (SELECT count(*) FROM notified) AS notified";

/// Fires `fire.tick` unless it was fired (or pruned) already; the new task's id.
pub(super) async fn fire_tick(pool: &PgPool, fire: TickFire) -> Result<Option<TaskId>> {
    const OP: &str = "firing a schedule's tick";
    let mut tx = pool.begin().await.map_err(db_error(OP))?;
    let claimed: Option<DateTime<Utc>> = sqlx::query_scalar(
        "
INSERT INTO sitq_schedule_ticks (schedule, tick)
SELECT $1, $2
WHERE NOT EXISTS (SELECT 1 FROM sitq_schedules WHERE name = $1 AND pruned_before > $2)
ON CONFLICT DO NOTHING
RETURNING tick",
    )
    .bind(&fire.schedule)
    .bind(fire.tick)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_error(OP))?;
    if claimed.is_none() {
        // Fired already: nothing to keep (the transaction rolls back on drop).
        return Ok(None);
    }
    let horizon = fire.tick - TICK_RETENTION;
    let task = fire.task;
    let id: i64 = sqlx::query_scalar(ENQUEUE_TICK)
        .bind(&fire.schedule)
        .bind(fire.tick)
        .bind(task.name)
        .bind(task.queue)
        .bind(task.payload)
        .bind(task.priority)
        .bind(to_int(task.max_attempts))
        .bind(horizon)
        .bind(fire.next_fire)
        .bind(fire.now)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error(OP))?;
    tx.commit().await.map_err(db_error(OP))?;
    Ok(Some(TaskId(id)))
}

/// Every stored schedule, by name.
pub(super) async fn list(pool: &PgPool) -> Result<Vec<ScheduleInfo>> {
    const OP: &str = "listing schedules";
    let rows = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM sitq_schedules ORDER BY name"
    ))
    .fetch_all(pool)
    .await
    .map_err(db_error(OP))?;
    rows.iter().map(|row| info(row, OP)).collect()
}

fn info(row: &PgRow, op: &'static str) -> Result<ScheduleInfo> {
    let decode = |err: sqlx::Error| Error::database(op, err);
    let catch_up: String = row.try_get("catch_up").map_err(decode)?;
    Ok(ScheduleInfo {
        name: row.try_get("name").map_err(decode)?,
        task: row.try_get("task").map_err(decode)?,
        queue: row.try_get("queue").map_err(decode)?,
        expression: row.try_get("expression").map_err(decode)?,
        zone: row.try_get("zone").map_err(decode)?,
        catch_up: catch_up.parse()?,
        defined_at: row.try_get("defined_at").map_err(decode)?,
        last_fire: row.try_get("last_fire").map_err(decode)?,
        next_fire: row.try_get("next_fire").map_err(decode)?,
        last_seen: row.try_get("last_seen").map_err(decode)?,
    })
}
