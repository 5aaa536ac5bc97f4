//! The worker registry: beats, clean stops, the list of live workers, and
//! drain requests (stored in the row, and told to every process with
//! `NOTIFY sitq_control`).

use chrono::{DateTime, Utc};
use sitq_core::{Error, Result, WorkerBeat, WorkerControl, WorkerInfo};
use sqlx::postgres::PgPool;

use crate::connect::db_error;

use super::{count, micros, to_int};

/// Registers or refreshes worker `$1` and deletes the rows of other
/// workers that expired, in one statement. `started_at` is set by the
/// insert only, and an update keeps `drain_requested`. Expired rows are
/// taken with `SKIP LOCKED`: one locked right now is being refreshed by its
/// own worker (or deleted by another beat), and waiting for it could
/// deadlock two beats that each delete what the other holds.
const BEAT: &str = "
WITH gone AS (
    DELETE FROM sitq_workers
    WHERE id IN (
        SELECT id FROM sitq_workers
        WHERE expires_at < now() AND id <> $1
        FOR UPDATE SKIP LOCKED
    ) AND expires_at < now()
)
INSERT INTO sitq_workers AS w
    (id, host, pid, version, queues, tasks, concurrency, running, started_at, last_seen,
     expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now(), now(), now() + $9 * interval '1 microsecond')
ON CONFLICT (id) DO UPDATE SET
    host = excluded.host, pid = excluded.pid, version = excluded.version,
    queues = excluded.queues, tasks = excluded.tasks, concurrency = excluded.concurrency,
    running = excluded.running, last_seen = excluded.last_seen,
    expires_at = excluded.expires_at
RETURNING w.drain_requested";

/// Stores `beat` (see [`BEAT`]); what the worker is asked to do.
pub(super) async fn beat(pool: &PgPool, beat: &WorkerBeat) -> Result<WorkerControl> {
    const OP: &str = "recording a worker's beat";
    let queues = to_json(&beat.queues, OP)?;
    let tasks = to_json(&beat.tasks, OP)?;
    let drain: bool = sqlx::query_scalar(BEAT)
        .bind(text(&beat.id))
        .bind(text(&beat.host))
        .bind(i64::from(beat.pid))
        .bind(text(&beat.version))
        .bind(queues)
        .bind(tasks)
        .bind(to_int(beat.concurrency))
        .bind(to_int(beat.running))
        .bind(micros(beat.ttl))
        .fetch_one(pool)
        .await
        .map_err(db_error(OP))?;
    Ok(WorkerControl { drain })
}

/// Deletes worker `id`'s row, if any.
pub(super) async fn remove(pool: &PgPool, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM sitq_workers WHERE id = $1")
        .bind(text(id))
        .execute(pool)
        .await
        .map_err(db_error("removing a worker"))?;
    Ok(())
}

/// A worker row as [`list`] reads it.
type WorkerRow = (
    String,
    String,
    i64,
    String,
    String,
    String,
    i32,
    i32,
    DateTime<Utc>,
    DateTime<Utc>,
    DateTime<Utc>,
    bool,
);

/// Every worker whose row has not expired, by id.
pub(super) async fn list(pool: &PgPool) -> Result<Vec<WorkerInfo>> {
    const OP: &str = "listing workers";
    let rows: Vec<WorkerRow> = sqlx::query_as(
        "
SELECT id, host, pid, version, queues, tasks, concurrency, running, started_at, last_seen,
       expires_at, drain_requested
FROM sitq_workers WHERE expires_at >= now() ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .map_err(db_error(OP))?;
    rows.into_iter()
        .map(
            |(
                id,
                host,
                pid,
                version,
                queues,
                tasks,
                concurrency,
                running,
                started_at,
                last_seen,
                expires_at,
                draining,
            )| {
                Ok(WorkerInfo {
                    pid: u32::try_from(pid).map_err(|_| {
                        Error::database(OP, format!("worker {id}: stored pid {pid} is invalid"))
                    })?,
                    queues: from_json(&queues, &id, "queues")?,
                    tasks: from_json(&tasks, &id, "tasks")?,
                    concurrency: count(concurrency, OP)?,
                    running: count(running, OP)?,
                    id,
                    host,
                    version,
                    started_at,
                    last_seen,
                    expires_at,
                    draining,
                })
            },
        )
        .collect()
}

/// Asks live worker `$1` to drain and notifies `sitq_control` (the payload
/// is its id, cut well below `NOTIFY`'s limit: listeners do not read it),
/// in one statement. Returns whether a live row changed.
const DRAIN: &str = concat!(
    "
WITH drained AS (
    UPDATE sitq_workers SET drain_requested = true
    WHERE id = $1 AND expires_at >= now()
    RETURNING id
), notice AS MATERIALIZED (
    SELECT pg_notify('",
    crate::notify::CONTROL_CHANNEL!(),
    "', left(drained.id, 1000)) FROM drained
)
SELECT EXISTS (SELECT 1 FROM drained), (SELECT count(*) FROM notice)"
);

/// Stores a drain request for live worker `id`; whether there was one.
pub(super) async fn drain(pool: &PgPool, id: &str) -> Result<bool> {
    let (drained, _notified): (bool, i64) = sqlx::query_as(DRAIN)
        .bind(text(id))
        .fetch_one(pool)
        .await
        .map_err(db_error("asking a worker to drain"))?;
    Ok(drained)
}

/// `list` as the JSON text stored in a worker row.
fn to_json(list: &[String], op: &'static str) -> Result<String> {
    serde_json::to_string(list).map_err(|error| Error::database(op, error))
}

/// A stored JSON list of worker `id`'s `column`.
fn from_json(stored: &str, id: &str, column: &str) -> Result<Vec<String>> {
    serde_json::from_str(stored).map_err(|error| {
        Error::database(
            "listing workers",
            format!(
                "worker {id}: stored {column} {stored:?} is not a JSON list of strings: {error}"
            ),
        )
    })
}

/// `value` as PostgreSQL text can hold it (no NUL character).
fn text(value: &str) -> std::borrow::Cow<'_, str> {
    super::without_nul(value)
}
