//! The audit log of admin actions.

use rusqlite::{Connection, params};
use sitq_core::{AuditEntry, NewAuditEntry};

use crate::time;

/// Adds `entry` at `now`.
pub(crate) fn record(conn: &Connection, entry: &NewAuditEntry, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO sitq_audit (at, actor, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        now,
        entry.actor,
        entry.action,
        entry.target,
        entry.detail
    ])?;
    Ok(())
}

/// At most `limit` entries with an id below `before` (all when `None`), newest first.
pub(crate) fn log(
    conn: &Connection,
    limit: usize,
    before: Option<i64>,
) -> rusqlite::Result<Vec<AuditEntry>> {
    let mut statement = conn.prepare_cached(
        "SELECT id, at, actor, action, target, detail FROM sitq_audit \
         WHERE id < coalesce(?1, 9223372036854775807) ORDER BY id DESC LIMIT ?2 + 0",
    )?;
    let rows = statement.query_map(
        params![before, i64::try_from(limit).unwrap_or(i64::MAX)],
        |row| {
            Ok(AuditEntry {
                id: row.get(0)?,
                at: time::from_micros(row.get(1)?),
                actor: row.get(2)?,
                action: row.get(3)?,
                target: row.get(4)?,
                detail: row.get(5)?,
            })
        },
    )?;
    rows.collect()
}
