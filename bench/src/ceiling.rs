//! The ceiling: the same work done with plain SQL on the same database
//! settings, so every sitq figure can be read as a fraction of what the
//! database itself allows.
//!
//! The job table has sitq's columns, constraints and indexes. Enqueues are
//! single-row commits or one multi-row `INSERT` of `batch` rows; claims are
//! one `UPDATE … WHERE id IN (SELECT … ORDER BY priority DESC, run_at, id
//! LIMIT n) RETURNING` (with `FOR UPDATE SKIP LOCKED` on PostgreSQL);
//! completes are one `UPDATE` per claimed batch; each statement is its own
//! transaction.
//!
//! On SQLite the ceiling is SQLite's C library itself (rusqlite, on the
//! same `libsqlite3-sys` as sitq) driven from one thread, with no async
//! driver in between; on PostgreSQL it is tokio-postgres with prepared
//! statements, one statement per round trip.

mod postgres;
mod sqlite;

use std::time::Duration;

use crate::Result;
use crate::db::{Fresh, Kind};
use crate::progress::Progress;

use postgres::PgJobs;
use sqlite::SqliteJobs;

/// What drives the database in the ceiling, for the report.
pub const CLIENTS: &str = "sqlite:rusqlite(C library, one thread),postgres:tokio-postgres";

/// The task name every job carries (as long as the no-op task's).
const NAME: &str = "sitq_bench::noop";

/// The queue every job is in (sitq's default queue).
const QUEUE: &str = "default";

/// The attempts every job is allowed (sitq's default).
const MAX_ATTEMPTS: i64 = 3;

/// The worker id claims record.
const WORKER_ID: &str = "ceiling";

/// The payload every job carries: the size of a no-op task's MessagePack arguments.
const PAYLOAD: [u8; 10] = [0x91, 0xcf, 0, 0, 0, 0, 0, 0, 0, 1];

/// The result every job stores (MessagePack `nil`, a no-op's `()`).
const RESULT: [u8; 1] = [0xc0];

/// How long the user's workload took in plain SQL.
#[derive(Copy, Clone, Debug)]
pub struct UserTimes {
    /// `n` single-row commits.
    pub enqueue: Duration,
    /// Claiming, completing and reading back every job.
    pub drain: Duration,
}

impl UserTimes {
    /// Both phases.
    pub fn total(&self) -> Duration {
        self.enqueue + self.drain
    }
}

/// A connection to the ceiling's job table in a fresh database.
#[derive(Debug)]
pub enum Jobs {
    /// SQLite's C library; every operation runs on the calling thread,
    /// taken out of the async runtime's pool while it does.
    Sqlite(SqliteJobs),
    /// tokio-postgres.
    Postgres(PgJobs),
}

impl Jobs {
    /// Opens `fresh` with the benchmark's settings and creates the job table.
    pub async fn create(fresh: &Fresh, synchronous: &str) -> Result<Jobs> {
        match fresh.kind {
            Kind::Sqlite => {
                let path = fresh.path();
                let jobs = blocking(|| SqliteJobs::open(path, synchronous))?;
                Ok(Jobs::Sqlite(jobs))
            }
            Kind::Postgres => Ok(Jobs::Postgres(PgJobs::connect(&fresh.url).await?)),
        }
    }

    /// Closes the connection.
    pub async fn close(self) {
        match self {
            Jobs::Sqlite(jobs) => drop(jobs),
            Jobs::Postgres(jobs) => jobs.close().await,
        }
    }

    /// `n` single-row commits, one after another; the time they took.
    pub async fn enqueue_single(&self, n: usize, progress: &Progress) -> Result<Duration> {
        match self {
            Jobs::Sqlite(jobs) => blocking(|| jobs.enqueue_single(n, progress, 0)),
            Jobs::Postgres(jobs) => jobs.enqueue_single(n, progress, 0).await,
        }
    }

    /// `n` jobs in multi-row inserts of `batch`; the time they took.
    pub async fn enqueue_batch(
        &self,
        n: usize,
        batch: usize,
        progress: &Progress,
    ) -> Result<Duration> {
        match self {
            Jobs::Sqlite(jobs) => blocking(|| jobs.enqueue_batch(n, batch, progress)),
            Jobs::Postgres(jobs) => jobs.enqueue_batch(n, batch, progress).await,
        }
    }

    /// Claims and completes in batches of `claim` until the `n` pending
    /// jobs are done; the time it took.
    pub async fn drain(&self, n: usize, claim: usize, progress: &Progress) -> Result<Duration> {
        match self {
            Jobs::Sqlite(jobs) => blocking(|| jobs.drain(n, claim, false, progress, 0)),
            Jobs::Postgres(jobs) => jobs.drain(n, claim, false, progress, 0).await,
        }
    }

    /// The user's workload in plain SQL: `n` single-row commits, then
    /// claims and completes of `claim`, reading each job's result in
    /// order. `progress` counts to `2 n`.
    pub async fn user(&self, n: usize, claim: usize, progress: &Progress) -> Result<UserTimes> {
        match self {
            Jobs::Sqlite(jobs) => blocking(|| jobs.user(n, claim, progress)),
            Jobs::Postgres(jobs) => jobs.user(n, claim, progress).await,
        }
    }

    /// Jobs succeeded at their first attempt, and jobs in all.
    pub async fn tally(&self) -> Result<(i64, i64)> {
        match self {
            Jobs::Sqlite(jobs) => blocking(|| jobs.tally()),
            Jobs::Postgres(jobs) => jobs.tally().await,
        }
    }
}

/// `n` jobs produced one commit at a time while they are claimed and
/// completed in batches of `claim`; the time until the last is done, and
/// the connection left to check the table with.
///
/// On SQLite one thread interleaves both (SQLite has one writer: a second
/// connection would only wait for the lock); on PostgreSQL a producer and
/// a consumer run at once, each on its own connection.
pub async fn end_to_end(
    fresh: &Fresh,
    synchronous: &str,
    n: usize,
    claim: usize,
    progress: &Progress,
) -> Result<(Duration, Jobs)> {
    match fresh.kind {
        Kind::Sqlite => {
            let jobs = blocking(|| SqliteJobs::open(fresh.path(), synchronous))?;
            let elapsed = blocking(|| jobs.end_to_end(n, claim, progress))?;
            Ok((elapsed, Jobs::Sqlite(jobs)))
        }
        Kind::Postgres => {
            let producer = PgJobs::connect(&fresh.url).await?;
            let consumer = PgJobs::connect(&fresh.url).await?;
            let elapsed = postgres::end_to_end(producer, &consumer, n, claim, progress).await?;
            Ok((elapsed, Jobs::Postgres(consumer)))
        }
    }
}

/// Runs blocking work on this thread, which the runtime replaces in its
/// pool meanwhile (so the work is not interrupted by, or run beside, other
/// tasks on this thread).
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(work)
}
