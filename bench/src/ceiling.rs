//! The ceiling: the same enqueue and burn-down done with plain SQL on the
//! same database settings, so every sitq figure can be read as a fraction of
//! what the database itself allows.
//!
//! The job table is the minimum a queue needs (payload, status, run time,
//! attempts, result) with a partial index on ready jobs. Enqueues are
//! single-row commits or one multi-row `INSERT` of `batch` rows; claims are
//! one `UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING` (with `FOR UPDATE
//! SKIP LOCKED` on PostgreSQL); completes are one `UPDATE` per claimed batch.

use std::time::{Duration, Instant};

use sqlx::QueryBuilder;
use sqlx::sqlite::SqlitePool;

use crate::Result;
use crate::db::Raw;
use crate::progress::Progress;
use crate::tasks::now_micros;

/// The payload every job carries: the size of a no-op task's MessagePack arguments.
const PAYLOAD: [u8; 10] = [0x91, 0xcf, 0, 0, 0, 0, 0, 0, 0, 1];

/// The result every job stores (MessagePack `nil`, a no-op's `()`).
const RESULT: [u8; 1] = [0xc0];

const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id          INTEGER PRIMARY KEY,
    payload     BLOB    NOT NULL,
    status      INTEGER NOT NULL DEFAULT 0, -- 0 pending, 1 running, 2 done
    run_at      INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    started_at  INTEGER,
    finished_at INTEGER,
    result      BLOB
);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (run_at, id) WHERE status = 0;
";

const POSTGRES_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payload     BYTEA       NOT NULL,
    status      SMALLINT    NOT NULL DEFAULT 0, -- 0 pending, 1 running, 2 done
    run_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts    INT         NOT NULL DEFAULT 0,
    started_at  TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    result      BYTEA
);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (run_at, id) WHERE status = 0;
";

/// A connection to the job table.
#[derive(Clone, Debug)]
pub struct Jobs(Raw);

impl Jobs {
    /// Creates the job table in `raw`'s database.
    pub async fn create(raw: Raw) -> Result<Jobs> {
        match &raw {
            Raw::Sqlite(pool) => {
                sqlx::raw_sql(SQLITE_SCHEMA).execute(pool).await?;
            }
            Raw::Postgres(pool) => {
                sqlx::raw_sql(POSTGRES_SCHEMA).execute(pool).await?;
            }
        }
        Ok(Jobs(raw))
    }

    /// Inserts one job in its own transaction (autocommit).
    pub async fn insert_one(&self) -> Result<()> {
        match &self.0 {
            Raw::Sqlite(pool) => {
                sqlx::query("INSERT INTO jobs (payload, run_at) VALUES (?1, ?2)")
                    .bind(&PAYLOAD[..])
                    .bind(now_micros())
                    .execute(pool)
                    .await?;
            }
            Raw::Postgres(pool) => {
                sqlx::query("INSERT INTO jobs (payload) VALUES ($1)")
                    .bind(&PAYLOAD[..])
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Inserts `count` jobs in one statement (one transaction).
    pub async fn insert_many(&self, count: usize) -> Result<()> {
        match &self.0 {
            Raw::Sqlite(pool) => insert_many_sqlite(pool, count).await,
            Raw::Postgres(pool) => {
                let payloads = vec![PAYLOAD.to_vec(); count];
                sqlx::query("INSERT INTO jobs (payload) SELECT * FROM UNNEST($1::bytea[])")
                    .bind(payloads)
                    .execute(pool)
                    .await?;
                Ok(())
            }
        }
    }

    /// Claims up to `limit` ready jobs: running, `attempts + 1`, started now.
    pub async fn claim(&self, limit: usize) -> Result<Vec<i64>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let ids = match &self.0 {
            Raw::Sqlite(pool) => {
                sqlx::query_scalar(
                    "UPDATE jobs SET status = 1, attempts = attempts + 1, started_at = ?1 \
                     WHERE id IN (SELECT id FROM jobs WHERE status = 0 AND run_at <= ?1 \
                                  ORDER BY run_at, id LIMIT ?2) \
                     RETURNING id",
                )
                .bind(now_micros())
                .bind(limit)
                .fetch_all(pool)
                .await?
            }
            Raw::Postgres(pool) => {
                sqlx::query_scalar(
                    "WITH picked AS MATERIALIZED ( \
                         SELECT id FROM jobs WHERE status = 0 AND run_at <= now() \
                         ORDER BY run_at, id LIMIT $1 FOR UPDATE SKIP LOCKED) \
                     UPDATE jobs SET status = 1, attempts = jobs.attempts + 1, started_at = now() \
                     FROM picked WHERE jobs.id = picked.id RETURNING jobs.id",
                )
                .bind(limit)
                .fetch_all(pool)
                .await?
            }
        };
        Ok(ids)
    }

    /// Marks `ids` done with a result, in one statement.
    pub async fn complete(&self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        match &self.0 {
            Raw::Sqlite(pool) => {
                let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
                sqlx::query(
                    "UPDATE jobs SET status = 2, finished_at = ?1, result = ?2 \
                     WHERE status = 1 AND id IN (SELECT value FROM json_each(?3))",
                )
                .bind(now_micros())
                .bind(&RESULT[..])
                .bind(format!("[{list}]"))
                .execute(pool)
                .await?;
            }
            Raw::Postgres(pool) => {
                sqlx::query(
                    "UPDATE jobs SET status = 2, finished_at = now(), result = $1 \
                     WHERE status = 1 AND id = ANY($2)",
                )
                .bind(&RESULT[..])
                .bind(ids)
                .execute(pool)
                .await?;
            }
        }
        Ok(())
    }

    /// Jobs done at their first attempt, and jobs in all.
    pub async fn tally(&self) -> Result<(i64, i64)> {
        const SQL: &str = "SELECT COALESCE(SUM(CASE WHEN status = 2 AND attempts = 1 \
                           THEN 1 ELSE 0 END), 0), COUNT(*) FROM jobs";
        let tally = match &self.0 {
            Raw::Sqlite(pool) => sqlx::query_as(SQL).fetch_one(pool).await?,
            Raw::Postgres(pool) => {
                // SUM of INT is BIGINT, COALESCE keeps it; COUNT is BIGINT.
                sqlx::query_as(SQL).fetch_one(pool).await?
            }
        };
        Ok(tally)
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.0.close().await;
    }
}

async fn insert_many_sqlite(pool: &SqlitePool, count: usize) -> Result<()> {
    let run_at = now_micros();
    let mut insert = QueryBuilder::new("INSERT INTO jobs (payload, run_at) ");
    insert.push_values(0..count, |mut row, _| {
        row.push_bind(&PAYLOAD[..]).push_bind(run_at);
    });
    insert.build().execute(pool).await?;
    Ok(())
}

/// `n` single-row commits, one after another; the time they took.
pub async fn enqueue_single(jobs: &Jobs, n: usize, progress: &Progress) -> Result<Duration> {
    let start = Instant::now();
    for i in 0..n {
        jobs.insert_one().await?;
        progress.set(i + 1);
    }
    Ok(start.elapsed())
}

/// `n` jobs in multi-row inserts of `batch`; the time they took.
pub async fn enqueue_batch(
    jobs: &Jobs,
    n: usize,
    batch: usize,
    progress: &Progress,
) -> Result<Duration> {
    let start = Instant::now();
    let mut done = 0;
    while done < n {
        let take = batch.min(n - done);
        jobs.insert_many(take).await?;
        done += take;
        progress.set(done);
    }
    Ok(start.elapsed())
}

/// Claims and completes in batches of `claim` until `n` jobs are done; the
/// time it took. `n` jobs must be (or become) pending.
pub async fn drain(jobs: &Jobs, n: usize, claim: usize, progress: &Progress) -> Result<Duration> {
    let start = Instant::now();
    let mut done = 0;
    while done < n {
        let ids = jobs.claim(claim).await?;
        if ids.is_empty() {
            // Only while a producer is still filling the table.
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        jobs.complete(&ids).await?;
        done += ids.len();
        progress.set(done);
    }
    Ok(start.elapsed())
}

/// A producer inserting `n` jobs one commit at a time while a consumer on
/// its own connection drains them; the time until the last is done.
pub async fn end_to_end(
    producer: Jobs,
    consumer: Jobs,
    n: usize,
    claim: usize,
    progress: &Progress,
) -> Result<Duration> {
    let start = Instant::now();
    let produce = tokio::spawn(async move {
        for _ in 0..n {
            producer.insert_one().await?;
        }
        Ok::<_, crate::Error>(())
    });
    drain(&consumer, n, claim, progress).await?;
    produce.await.map_err(|err| format!("producer: {err}"))??;
    Ok(start.elapsed())
}
