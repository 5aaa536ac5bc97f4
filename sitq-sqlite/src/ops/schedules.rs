//! Schedules: their registration, the once-only firing of a tick, listing.
//! The writes run inside the writer's `BEGIN IMMEDIATE` transaction, so
//! checking for a fired tick and recording it cannot interleave with another
//! process doing the same.

use rusqlite::{Connection, OptionalExtension, params};
use sitq_core::schedule::{ScheduleDefinition, TICK_RETENTION, TickFire};
use sitq_core::{CatchUp, ScheduleInfo, TaskId};

use super::write::{self, Effects};
use crate::time;

const COLUMNS: &str =
    "name, task, queue, expression, zone, catch_up, defined_at, last_fire, next_fire, last_seen";

/// Inserts or updates `schedules` by name; the stored rows.
pub(crate) fn register(
    conn: &Connection,
    schedules: &[ScheduleDefinition],
) -> rusqlite::Result<Vec<ScheduleInfo>> {
    // A changed expression or zone is a new definition: its ticks start now.
    let mut statement = conn.prepare_cached(&format!(
        "INSERT INTO sitq_schedules \
             (name, task, queue, expression, zone, catch_up, defined_at, next_fire, last_seen) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?7) \
         ON CONFLICT (name) DO UPDATE SET \
             defined_at = CASE WHEN expression IS NOT excluded.expression \
                 OR zone IS NOT excluded.zone THEN excluded.defined_at ELSE defined_at END, \
             task = excluded.task, queue = excluded.queue, expression = excluded.expression, \
             zone = excluded.zone, catch_up = excluded.catch_up, \
             next_fire = excluded.next_fire, last_seen = excluded.last_seen \
         RETURNING {COLUMNS}"
    ))?;
    let mut stored = Vec::with_capacity(schedules.len());
    for schedule in schedules {
        stored.push(statement.query_row(
            params![
                schedule.name,
                schedule.task,
                schedule.queue,
                schedule.expression,
                schedule.zone,
                schedule.catch_up.as_str(),
                time::to_micros(schedule.now),
                schedule.next_fire.map(time::to_micros),
            ],
            info,
        )?);
    }
    Ok(stored)
}

/// Fires `fire.tick` unless it was fired (or pruned) already; the new task's id.
pub(crate) fn fire_tick(
    conn: &Connection,
    fire: &TickFire,
    now: i64,
    effects: &mut Effects,
) -> rusqlite::Result<Option<TaskId>> {
    let tick = time::to_micros(fire.tick);
    let pruned_before: Option<i64> = conn
        .prepare_cached("SELECT pruned_before FROM sitq_schedules WHERE name = ?1")?
        .query_row([&fire.schedule], |row| row.get(0))
        .optional()?
        .flatten();
    if pruned_before.is_some_and(|horizon| tick < horizon) {
        return Ok(None);
    }
    let fired: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM sitq_schedule_ticks WHERE schedule = ?1 AND tick = ?2)",
        )?
        .query_row(params![fire.schedule, tick], |row| row.get(0))?;
    if fired {
        return Ok(None);
    }
    let ids = write::insert(conn, std::slice::from_ref(&fire.task), now)?;
    let Some(&id) = ids.first() else {
        return Err(rusqlite::Error::StatementChangedRows(0));
    };
    conn.prepare_cached(
        "INSERT INTO sitq_schedule_ticks (schedule, tick, task_id) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![fire.schedule, tick, id.0])?;
    let horizon = tick.saturating_sub(TICK_RETENTION.num_microseconds().unwrap_or(i64::MAX));
    conn.prepare_cached("DELETE FROM sitq_schedule_ticks WHERE schedule = ?1 AND tick < ?2")?
        .execute(params![fire.schedule, horizon])?;
    // SET expressions see the old row: next_fire follows the latest tick.
    conn.prepare_cached(
        "UPDATE sitq_schedules SET \
             last_fire = max(coalesce(last_fire, ?2), ?2), \
             next_fire = CASE WHEN last_fire IS NULL OR last_fire <= ?2 THEN ?3 ELSE next_fire END, \
             last_seen = ?4, \
             pruned_before = max(coalesce(pruned_before, ?5), ?5) \
         WHERE name = ?1",
    )?
    .execute(params![
        fire.schedule,
        tick,
        fire.next_fire.map(time::to_micros),
        time::to_micros(fire.now),
        horizon,
    ])?;
    effects.work = true;
    Ok(Some(id))
}

/// Every stored schedule, by name.
pub(crate) fn list(conn: &Connection) -> rusqlite::Result<Vec<ScheduleInfo>> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM sitq_schedules ORDER BY name"
    ))?;
    let rows = statement.query_map([], info)?;
    rows.collect()
}

/// A row of [`COLUMNS`].
fn info(row: &rusqlite::Row<'_>) -> rusqlite::Result<ScheduleInfo> {
    let catch_up: String = row.get(5)?;
    let catch_up: CatchUp = catch_up.parse().map_err(|err: sitq_core::Error| {
        rusqlite::Error::FromSqlConversionFailure(5, rusqlite::types::Type::Text, Box::new(err))
    })?;
    Ok(ScheduleInfo {
        name: row.get(0)?,
        task: row.get(1)?,
        queue: row.get(2)?,
        expression: row.get(3)?,
        zone: row.get(4)?,
        catch_up,
        defined_at: time::from_micros(row.get(6)?),
        last_fire: row.get::<_, Option<i64>>(7)?.map(time::from_micros),
        next_fire: row.get::<_, Option<i64>>(8)?.map(time::from_micros),
        last_seen: time::from_micros(row.get(9)?),
    })
}
