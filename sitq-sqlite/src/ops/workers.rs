//! The worker registry: each worker process's row, written by its beat.

use rusqlite::{Connection, params};
use sitq_core::{WorkerBeat, WorkerControl, WorkerInfo};

use super::count;
use crate::time;

/// Stores `beat` (inserting the worker's row or refreshing it: every field,
/// `last_seen` = now, `expires_at` = now + ttl, `started_at` and a drain
/// request kept), deletes the rows of other workers that expired, and
/// returns the drain request. Two statements: run in a savepoint.
pub(crate) fn beat(
    conn: &Connection,
    beat: &WorkerBeat,
    now: i64,
) -> rusqlite::Result<WorkerControl> {
    let drain: bool = conn
        .prepare_cached(
            "INSERT INTO sitq_workers (id, host, pid, version, queues, tasks, concurrency, \
                 running, started_at, last_seen, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10) \
             ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, \
                 version = excluded.version, queues = excluded.queues, tasks = excluded.tasks, \
                 concurrency = excluded.concurrency, running = excluded.running, \
                 last_seen = excluded.last_seen, expires_at = excluded.expires_at \
             RETURNING drain_requested",
        )?
        .query_row(
            params![
                beat.id,
                beat.host,
                beat.pid,
                beat.version,
                json(&beat.queues),
                json(&beat.tasks),
                beat.concurrency,
                beat.running,
                now,
                time::add(now, beat.ttl),
            ],
            |row| row.get(0),
        )?;
    conn.prepare_cached("DELETE FROM sitq_workers WHERE expires_at < ?1 AND id <> ?2")?
        .execute(params![now, beat.id])?;
    Ok(WorkerControl { drain })
}

/// Deletes worker `id`'s row, if there is one.
pub(crate) fn remove(conn: &Connection, id: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM sitq_workers WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

/// Asks live worker `id` to drain; whether it has a live row.
pub(crate) fn drain(conn: &Connection, id: &str, now: i64) -> rusqlite::Result<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE sitq_workers SET drain_requested = 1 WHERE id = ?1 AND expires_at >= ?2",
        )?
        .execute(params![id, now])?;
    Ok(changed > 0)
}

/// Every live worker, by id.
pub(crate) fn list(conn: &Connection, now: i64) -> rusqlite::Result<Vec<WorkerInfo>> {
    let mut statement = conn.prepare_cached(
        "SELECT id, host, pid, version, queues, tasks, concurrency, running, started_at, \
             last_seen, expires_at, drain_requested \
         FROM sitq_workers WHERE expires_at >= ?1 ORDER BY id",
    )?;
    let rows = statement.query_map([now], |row| {
        Ok(WorkerInfo {
            id: row.get(0)?,
            host: row.get(1)?,
            pid: count(row.get(2)?),
            version: row.get(3)?,
            queues: strings(row, 4)?,
            tasks: strings(row, 5)?,
            concurrency: count(row.get(6)?),
            running: count(row.get(7)?),
            started_at: time::from_micros(row.get(8)?),
            last_seen: time::from_micros(row.get(9)?),
            expires_at: time::from_micros(row.get(10)?),
            draining: row.get(11)?,
        })
    })?;
    rows.collect()
}

/// A list of strings as stored: a JSON array.
fn json(values: &[String]) -> String {
    // Serialising strings cannot fail; the fallback is never used.
    serde_json::to_string(values).unwrap_or_else(|_| "[]".to_owned())
}

/// A stored JSON array of strings.
fn strings(row: &rusqlite::Row<'_>, column: usize) -> rusqlite::Result<Vec<String>> {
    let text: String = row.get(column)?;
    serde_json::from_str(&text).map_err(|err| {
        rusqlite::Error::FromSqlConversionFailure(
            column,
            rusqlite::types::Type::Text,
            Box::new(err),
        )
    })
}
