//! The SQLite ceiling: SQLite's C library driven directly (rusqlite, the same
//! `libsqlite3-sys` sitq links), from one thread, with cached prepared
//! statements and no async driver in between.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use rusqlite::types::Value;
use rusqlite::{Connection, params, params_from_iter};

use super::{MAX_ATTEMPTS, NAME, PAYLOAD, QUEUE, RESULT, UserTimes, WORKER_ID};
use crate::Result;
use crate::progress::Progress;
use crate::tasks::now_micros;

/// sitq's table on SQLite, renamed, with the same columns, constraints and
/// indexes (`sitq-sqlite/migrations/0001_create_tasks.sql`).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL CHECK (name <> ''),
    queue        TEXT    NOT NULL CHECK (queue <> ''),
    payload      BLOB    NOT NULL,
    status       TEXT    NOT NULL DEFAULT 'pending',
    priority     INTEGER NOT NULL DEFAULT 0,
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL CHECK (max_attempts >= 1),
    created_at   INTEGER NOT NULL,
    run_at       INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER,
    lease_until  INTEGER,
    worker_id    TEXT,
    error_kind   TEXT,
    error        TEXT,
    result       BLOB
);
CREATE INDEX IF NOT EXISTS jobs_claim ON jobs (priority DESC, run_at, id)
    WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS jobs_pending_run_at ON jobs (run_at)
    WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS jobs_lease ON jobs (lease_until)
    WHERE status = 'running';
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at)
    WHERE finished_at IS NOT NULL;
";

const INSERT_ONE: &str = "INSERT INTO jobs \
     (created_at, name, queue, payload, priority, max_attempts, run_at) \
     VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6)";

const CLAIM: &str = "UPDATE jobs \
     SET status = 'running', attempts = attempts + 1, started_at = ?1, \
         lease_until = ?2, worker_id = ?3 \
     WHERE id IN (SELECT id FROM jobs WHERE status = 'pending' AND run_at <= ?1 \
                  ORDER BY priority DESC, run_at, id LIMIT ?4) \
     RETURNING id";

const READ: &str = "SELECT status, result FROM jobs WHERE id = ?1";

const TALLY: &str = "SELECT COALESCE(SUM(CASE WHEN status = 'succeeded' AND attempts = 1 \
     THEN 1 ELSE 0 END), 0), COUNT(*) FROM jobs";

/// How long a claim's lease runs (only stored, never acted on here).
const LEASE_MICROS: i64 = 30_000_000;

/// One connection to the ceiling's job table; blocking calls, meant for
/// one thread.
#[derive(Debug)]
pub struct SqliteJobs {
    conn: Connection,
}

impl SqliteJobs {
    /// Opens `path` with sitq's settings (WAL, `synchronous`, a busy
    /// timeout, foreign keys) and creates the job table.
    pub fn open(path: &str, synchronous: &str) -> Result<SqliteJobs> {
        let conn = Connection::open(path).map_err(|err| format!("opening {path}: {err}"))?;
        conn.busy_timeout(Duration::from_secs(30))?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(format!("{path}: journal_mode is {mode}, not WAL").into());
        }
        let synchronous = synchronous.to_ascii_uppercase();
        if !["NORMAL", "FULL"].contains(&synchronous.as_str()) {
            return Err(format!("synchronous={synchronous}: expected NORMAL or FULL").into());
        }
        conn.pragma_update(None, "synchronous", &synchronous)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteJobs { conn })
    }

    /// Inserts one job in its own transaction (autocommit).
    fn insert_one(&self) -> Result<()> {
        let now = now_micros();
        self.conn.prepare_cached(INSERT_ONE)?.execute(params![
            now,
            NAME,
            QUEUE,
            &PAYLOAD[..],
            MAX_ATTEMPTS,
            now
        ])?;
        Ok(())
    }

    /// Inserts `count` jobs with one multi-row `INSERT` (one transaction).
    fn insert_many(&self, count: usize) -> Result<()> {
        let mut sql = String::from(
            "INSERT INTO jobs (created_at, name, queue, payload, priority, max_attempts, run_at) VALUES ",
        );
        for row in 0..count {
            let at = row * 6;
            let _ = write!(
                sql,
                "{}(?{}, ?{}, ?{}, ?{}, 0, ?{}, ?{})",
                if row == 0 { "" } else { ", " },
                at + 1,
                at + 2,
                at + 3,
                at + 4,
                at + 5,
                at + 6
            );
        }
        let now = now_micros();
        let row = [
            Value::Integer(now),
            Value::Text(NAME.to_owned()),
            Value::Text(QUEUE.to_owned()),
            Value::Blob(PAYLOAD.to_vec()),
            Value::Integer(MAX_ATTEMPTS),
            Value::Integer(now),
        ];
        let values = (0..count).flat_map(|_| row.iter());
        self.conn
            .prepare_cached(&sql)?
            .execute(params_from_iter(values))?;
        Ok(())
    }

    /// Claims up to `limit` ready jobs in one statement (its own
    /// transaction); their ids in claim order.
    fn claim(&self, limit: usize) -> Result<Vec<i64>> {
        let now = now_micros();
        let limit = i64::try_from(limit)?;
        let mut statement = self.conn.prepare_cached(CLAIM)?;
        let rows = statement
            .query_map(params![now, now + LEASE_MICROS, WORKER_ID, limit], |row| {
                row.get::<_, i64>(0)
            })?;
        let mut ids = rows.collect::<rusqlite::Result<Vec<i64>>>()?;
        // RETURNING has no defined order; the claim order is the id order here.
        ids.sort_unstable();
        Ok(ids)
    }

    /// Marks `ids` succeeded with a result, in one statement (its own
    /// transaction).
    fn complete(&self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut sql = String::from(
            "UPDATE jobs SET status = 'succeeded', finished_at = ?1, result = ?2, \
             lease_until = NULL WHERE status = 'running' AND id IN (",
        );
        for i in 0..ids.len() {
            let _ = write!(sql, "{}?{}", if i == 0 { "" } else { ", " }, i + 3);
        }
        sql.push(')');
        let now = Value::Integer(now_micros());
        let result = Value::Blob(RESULT.to_vec());
        let values = [now, result]
            .into_iter()
            .chain(ids.iter().map(|id| Value::Integer(*id)));
        let changed = self
            .conn
            .prepare_cached(&sql)?
            .execute(params_from_iter(values))?;
        if changed != ids.len() {
            return Err(format!("completing {} jobs changed {changed} rows", ids.len()).into());
        }
        Ok(())
    }

    /// Reads one job's status and result, as a waiter must; an error unless
    /// it succeeded.
    fn read(&self, id: i64) -> Result<()> {
        let (status, result): (String, Option<Vec<u8>>) = self
            .conn
            .prepare_cached(READ)?
            .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))?;
        if status != "succeeded" || result.as_deref() != Some(&RESULT[..]) {
            return Err(format!("job {id} is {status}, not succeeded with its result").into());
        }
        Ok(())
    }

    /// `n` single-row commits, one after another; the time they took.
    /// Progress counts from `offset`.
    pub fn enqueue_single(&self, n: usize, progress: &Progress, offset: usize) -> Result<Duration> {
        let start = Instant::now();
        for i in 0..n {
            self.insert_one()?;
            progress.set(offset + i + 1);
        }
        Ok(start.elapsed())
    }

    /// `n` jobs in multi-row inserts of `batch`; the time they took.
    pub fn enqueue_batch(&self, n: usize, batch: usize, progress: &Progress) -> Result<Duration> {
        let start = Instant::now();
        let mut done = 0;
        while done < n {
            let take = batch.min(n - done);
            self.insert_many(take)?;
            done += take;
            progress.set(done);
        }
        Ok(start.elapsed())
    }

    /// Claims and completes in batches of `claim` until `n` pending jobs
    /// are done, reading each job's result after its batch when `read`;
    /// the time it took. Progress counts from `offset`.
    pub fn drain(
        &self,
        n: usize,
        claim: usize,
        read: bool,
        progress: &Progress,
        offset: usize,
    ) -> Result<Duration> {
        let start = Instant::now();
        let mut done = 0;
        while done < n {
            let ids = self.claim(claim)?;
            if ids.is_empty() {
                return Err(format!("nothing left to claim after {done} of {n}").into());
            }
            self.complete(&ids)?;
            if read {
                for id in &ids {
                    self.read(*id)?;
                }
            }
            done += ids.len();
            progress.set(offset + done);
        }
        Ok(start.elapsed())
    }

    /// A producer inserting `n` jobs one commit at a time and a consumer
    /// claiming and completing a batch whenever `claim` jobs are pending,
    /// interleaved on this one thread (SQLite has one writer); the time
    /// until the last is done.
    pub fn end_to_end(&self, n: usize, claim: usize, progress: &Progress) -> Result<Duration> {
        let start = Instant::now();
        let mut done = 0;
        for i in 0..n {
            self.insert_one()?;
            let pending = i + 1 - done;
            if pending >= claim || i + 1 == n {
                while done < i + 1 {
                    let ids = self.claim(claim)?;
                    if ids.is_empty() {
                        return Err(format!("nothing left to claim after {done}").into());
                    }
                    self.complete(&ids)?;
                    done += ids.len();
                }
                progress.set(done);
            }
        }
        Ok(start.elapsed())
    }

    /// The user's workload in plain SQL: `n` single-row commits, then
    /// claim and complete batches of `claim`, reading each job's result in
    /// order. Progress counts to `2 n`.
    pub fn user(&self, n: usize, claim: usize, progress: &Progress) -> Result<UserTimes> {
        let enqueue = self.enqueue_single(n, progress, 0)?;
        let drain = self.drain(n, claim, true, progress, n)?;
        Ok(UserTimes { enqueue, drain })
    }

    /// Jobs succeeded at their first attempt, and jobs in all.
    pub fn tally(&self) -> Result<(i64, i64)> {
        Ok(self
            .conn
            .query_row(TALLY, [], |row| Ok((row.get(0)?, row.get(1)?)))?)
    }
}
