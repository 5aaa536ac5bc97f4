//! The PostgreSQL ceiling: tokio-postgres, the leanest plain client, with
//! statements prepared once per connection and one statement per round
//! trip.

use std::time::{Duration, Instant, SystemTime};

use tokio_postgres::{Client, NoTls, Statement};

use super::{MAX_ATTEMPTS, NAME, PAYLOAD, QUEUE, RESULT, UserTimes, WORKER_ID};
use crate::Result;
use crate::progress::Progress;

/// sitq's table on PostgreSQL, renamed, with the same columns, constraints
/// and indexes (`sitq-postgres/migrations/0001_create_tasks.sql`).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         TEXT        NOT NULL,
    queue        TEXT        NOT NULL,
    payload      BYTEA       NOT NULL,
    status       TEXT        NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'blocked', 'running', 'succeeded', 'failed', 'cancelled')),
    priority     INT         NOT NULL DEFAULT 0,
    attempts     INT         NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts INT         NOT NULL CHECK (max_attempts >= 1),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    run_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at   TIMESTAMPTZ,
    finished_at  TIMESTAMPTZ,
    lease_until  TIMESTAMPTZ,
    worker_id    TEXT,
    error_kind   TEXT,
    error        TEXT,
    result       BYTEA
);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (priority DESC, run_at, id)
    WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS jobs_leases ON jobs (lease_until)
    WHERE status = 'running';
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at)
    WHERE status IN ('succeeded', 'failed', 'cancelled');
";

const INSERT_ONE: &str = "INSERT INTO jobs (name, queue, payload, priority, max_attempts, run_at) \
     VALUES ($1, $2, $3, 0, $4, $5)";

const INSERT_MANY: &str = "INSERT INTO jobs (name, queue, payload, priority, max_attempts, run_at) \
     SELECT $1, $2, payload, 0, $3, $4 FROM UNNEST($5::bytea[]) AS payload";

const CLAIM: &str = "WITH picked AS MATERIALIZED ( \
         SELECT id FROM jobs WHERE status = 'pending' AND run_at <= now() \
         ORDER BY priority DESC, run_at, id LIMIT $1 FOR UPDATE SKIP LOCKED) \
     UPDATE jobs AS t SET status = 'running', attempts = t.attempts + 1, started_at = now(), \
         lease_until = now() + interval '30 seconds', worker_id = $2 \
     FROM picked WHERE t.id = picked.id RETURNING t.id";

const COMPLETE: &str = "UPDATE jobs SET status = 'succeeded', finished_at = now(), result = $1, \
     lease_until = NULL WHERE status = 'running' AND id = ANY($2)";

const READ: &str = "SELECT status, result FROM jobs WHERE id = $1";

const TALLY: &str = "SELECT COALESCE(SUM(CASE WHEN status = 'succeeded' AND attempts = 1 \
     THEN 1 ELSE 0 END), 0)::bigint, COUNT(*) FROM jobs";

/// How long a drain waits for a job to claim before it gives up.
const STALLED: Duration = Duration::from_secs(60);

/// One connection to the ceiling's job table, its statements prepared.
#[derive(Debug)]
pub struct PgJobs {
    client: Client,
    insert_one: Statement,
    insert_many: Statement,
    claim: Statement,
    complete: Statement,
    read: Statement,
    /// The task driving the connection.
    connection: tokio::task::JoinHandle<()>,
}

impl PgJobs {
    /// Connects to `url`, creates the job table if missing and prepares the statements.
    pub async fn connect(url: &str) -> Result<PgJobs> {
        let (client, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .map_err(|err| format!("connecting to {url}: {err}"))?;
        let connection = tokio::spawn(async move {
            if let Err(err) = connection.await {
                eprintln!("sitq-bench: ceiling connection: {err}");
            }
        });
        client.batch_execute(SCHEMA).await?;
        Ok(PgJobs {
            insert_one: client.prepare(INSERT_ONE).await?,
            insert_many: client.prepare(INSERT_MANY).await?,
            claim: client.prepare(CLAIM).await?,
            complete: client.prepare(COMPLETE).await?,
            read: client.prepare(READ).await?,
            client,
            connection,
        })
    }

    /// Closes the connection.
    pub async fn close(self) {
        drop(self.client);
        let _ = self.connection.await;
    }

    async fn insert_one(&self) -> Result<()> {
        self.client
            .execute(
                &self.insert_one,
                &[
                    &NAME,
                    &QUEUE,
                    &&PAYLOAD[..],
                    &MAX_ATTEMPTS_I32,
                    &SystemTime::now(),
                ],
            )
            .await?;
        Ok(())
    }

    async fn insert_many(&self, count: usize) -> Result<()> {
        let payloads = vec![&PAYLOAD[..]; count];
        self.client
            .execute(
                &self.insert_many,
                &[
                    &NAME,
                    &QUEUE,
                    &MAX_ATTEMPTS_I32,
                    &SystemTime::now(),
                    &payloads,
                ],
            )
            .await?;
        Ok(())
    }

    async fn claim(&self, limit: usize) -> Result<Vec<i64>> {
        let limit = i64::try_from(limit)?;
        let rows = self
            .client
            .query(&self.claim, &[&limit, &WORKER_ID])
            .await?;
        let mut ids = rows
            .iter()
            .map(|row| row.try_get::<_, i64>(0))
            .collect::<std::result::Result<Vec<i64>, _>>()?;
        // RETURNING comes in no particular order.
        ids.sort_unstable();
        Ok(ids)
    }

    async fn complete(&self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let changed = self
            .client
            .execute(&self.complete, &[&&RESULT[..], &ids])
            .await?;
        if usize::try_from(changed)? != ids.len() {
            return Err(format!("completing {} jobs changed {changed} rows", ids.len()).into());
        }
        Ok(())
    }

    async fn read(&self, id: i64) -> Result<()> {
        let row = self.client.query_one(&self.read, &[&id]).await?;
        let status: &str = row.try_get(0)?;
        let result: Option<&[u8]> = row.try_get(1)?;
        if status != "succeeded" || result != Some(&RESULT[..]) {
            return Err(format!("job {id} is {status}, not succeeded with its result").into());
        }
        Ok(())
    }

    /// `n` single-row commits, one after another; the time they took.
    /// Progress counts from `offset`.
    pub async fn enqueue_single(
        &self,
        n: usize,
        progress: &Progress,
        offset: usize,
    ) -> Result<Duration> {
        let start = Instant::now();
        for i in 0..n {
            self.insert_one().await?;
            progress.set(offset + i + 1);
        }
        Ok(start.elapsed())
    }

    /// `n` jobs in multi-row inserts of `batch`; the time they took.
    pub async fn enqueue_batch(
        &self,
        n: usize,
        batch: usize,
        progress: &Progress,
    ) -> Result<Duration> {
        let start = Instant::now();
        let mut done = 0;
        while done < n {
            let take = batch.min(n - done);
            self.insert_many(take).await?;
            done += take;
            progress.set(done);
        }
        Ok(start.elapsed())
    }

    /// Claims and completes in batches of `claim` until `n` jobs are done,
    /// reading each job's result after its batch when `read`; the time it
    /// took. Waits (1 ms naps) while another connection still fills the
    /// table, up to a minute without a job. Progress counts from `offset`.
    pub async fn drain(
        &self,
        n: usize,
        claim: usize,
        read: bool,
        progress: &Progress,
        offset: usize,
    ) -> Result<Duration> {
        let start = Instant::now();
        let mut done = 0;
        let mut last_claim = Instant::now();
        while done < n {
            let ids = self.claim(claim).await?;
            if ids.is_empty() {
                if last_claim.elapsed() > STALLED {
                    return Err(
                        format!("nothing to claim for {STALLED:?} after {done} of {n}").into(),
                    );
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
            last_claim = Instant::now();
            self.complete(&ids).await?;
            if read {
                for id in &ids {
                    self.read(*id).await?;
                }
            }
            done += ids.len();
            progress.set(offset + done);
        }
        Ok(start.elapsed())
    }

    /// The user's workload in plain SQL: `n` single-row commits, then
    /// claim and complete batches of `claim`, reading each job's result in
    /// order. Progress counts to `2 n`.
    pub async fn user(&self, n: usize, claim: usize, progress: &Progress) -> Result<UserTimes> {
        let enqueue = self.enqueue_single(n, progress, 0).await?;
        let drain = self.drain(n, claim, true, progress, n).await?;
        Ok(UserTimes { enqueue, drain })
    }

    /// Jobs succeeded at their first attempt, and jobs in all.
    pub async fn tally(&self) -> Result<(i64, i64)> {
        let row = self.client.query_one(TALLY, &[]).await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }
}

/// [`MAX_ATTEMPTS`] as PostgreSQL's `INT`.
const MAX_ATTEMPTS_I32: i32 = MAX_ATTEMPTS as i32;

/// A producer on `producer` inserting `n` jobs one commit at a time while
/// `consumer`, on its own connection, claims and completes batches of
/// `claim`; the time until the last is done.
pub async fn end_to_end(
    producer: PgJobs,
    consumer: &PgJobs,
    n: usize,
    claim: usize,
    progress: &Progress,
) -> Result<Duration> {
    let start = Instant::now();
    let produce = tokio::spawn(async move {
        let hidden = Progress::hidden();
        let outcome = producer.enqueue_single(n, &hidden, 0).await;
        producer.close().await;
        outcome
    });
    consumer.drain(n, claim, false, progress, 0).await?;
    produce.await.map_err(|err| format!("producer: {err}"))??;
    Ok(start.elapsed())
}
