//! Finishing attempts: completions from workers, and leases that ran out.

use std::collections::HashSet;

use sitq_core::{Completion, Outcome, Result, TaskId};
use sqlx::postgres::PgPool;

use crate::connect::db_error;

use super::{micros, to_int};
use crate::notify::Notices;

/// Applies every completion of a batch in one statement. The join on `id`
/// and `attempts`, with `status = 'running'`, is the fence: a completion from
/// a claim that expired (and maybe was claimed again) matches no row.
const COMPLETE: &str = "
UPDATE sitq_tasks AS t
SET status = CASE c.outcome WHEN 'retry' THEN 'pending' ELSE c.outcome END,
    result = c.result,
    error_kind = c.error_kind,
    error = c.error,
    finished_at = CASE c.outcome WHEN 'retry' THEN NULL ELSE now() END,
    run_at = CASE c.outcome
        WHEN 'retry' THEN now() + c.delay * interval '1 microsecond'
        ELSE t.run_at END,
    lease_until = NULL
FROM UNNEST($1::bigint[], $2::int[], $3::text[], $4::bytea[], $5::text[], $6::text[], $7::bigint[])
    AS c(id, attempt, outcome, result, error_kind, error, delay)
WHERE t.id = c.id AND t.attempts = c.attempt AND t.status = 'running'
RETURNING t.id, t.attempts, t.status";

/// Records `completions` in one transaction; per completion whether it
/// applied, and what to signal once committed.
pub(super) async fn complete(
    pool: &PgPool,
    completions: Vec<Completion>,
) -> Result<(Vec<bool>, Notices)> {
    const OP: &str = "completing tasks";
    if completions.is_empty() {
        return Ok((Vec::new(), Notices::default()));
    }
    // A claim completed twice in one batch applies once: the first one wins,
    // as it would have in two batches.
    let mut seen = HashSet::new();
    let first: Vec<bool> = completions
        .iter()
        .map(|completion| seen.insert(completion.claim))
        .collect();

    let count = completions.len();
    let mut ids = Vec::with_capacity(count);
    let mut attempts = Vec::with_capacity(count);
    let mut outcomes = Vec::with_capacity(count);
    let mut results = Vec::with_capacity(count);
    let mut error_kinds = Vec::with_capacity(count);
    let mut errors = Vec::with_capacity(count);
    let mut delays = Vec::with_capacity(count);
    for (completion, _) in completions.iter().zip(&first).filter(|(_, first)| **first) {
        ids.push(completion.claim.id.0);
        attempts.push(to_int(completion.claim.attempt));
        let (outcome, result, failure, delay) = match &completion.outcome {
            Outcome::Succeeded(result) => ("succeeded", Some(result.as_slice()), None, 0),
            Outcome::Retry { failure, delay } => ("retry", None, Some(failure), micros(*delay)),
            Outcome::Failed(failure) => ("failed", None, Some(failure), 0),
        };
        outcomes.push(outcome);
        results.push(result);
        error_kinds.push(failure.map(|failure| failure.kind.as_str()));
        errors.push(failure.map(|failure| failure.message.as_str()));
        delays.push(delay);
    }

    let mut tx = pool.begin().await.map_err(db_error(OP))?;
    let applied: Vec<(i64, i32, String)> = sqlx::query_as(COMPLETE)
        .bind(&ids)
        .bind(&attempts)
        .bind(&outcomes)
        .bind(&results)
        .bind(&error_kinds)
        .bind(&errors)
        .bind(&delays)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error(OP))?;
    let notices = notices_for(applied.iter().map(|(id, _, status)| (*id, status.as_str())));
    notices.send(&mut tx, OP).await?;
    tx.commit().await.map_err(db_error(OP))?;

    let applied: HashSet<(i64, i32)> = applied
        .into_iter()
        .map(|(id, attempt, _)| (id, attempt))
        .collect();
    let flags = completions
        .iter()
        .zip(first)
        .map(|(completion, first)| {
            let claim = (completion.claim.id.0, to_int(completion.claim.attempt));
            first && applied.contains(&claim)
        })
        .collect();
    Ok((flags, notices))
}

/// Returns running tasks whose lease ran out to pending, or fails them when
/// they have no attempts left, recording a `LeaseExpired` failure.
pub(super) async fn recover_expired(pool: &PgPool) -> Result<(u64, Notices)> {
    const OP: &str = "recovering expired leases";
    let mut tx = pool.begin().await.map_err(db_error(OP))?;
    // SKIP LOCKED: a row locked right now is being completed or heartbeated,
    // so it is not abandoned; the next recovery looks again.
    let recovered: Vec<(i64, String)> = sqlx::query_as(
        "
WITH expired AS MATERIALIZED (
    SELECT id FROM sitq_tasks
    WHERE status = 'running' AND lease_until < now()
    FOR UPDATE SKIP LOCKED
)
UPDATE sitq_tasks AS t
SET status = CASE WHEN t.attempts >= t.max_attempts THEN 'failed' ELSE 'pending' END,
    run_at = CASE WHEN t.attempts >= t.max_attempts THEN t.run_at ELSE now() END,
    finished_at = CASE WHEN t.attempts >= t.max_attempts THEN now() ELSE NULL END,
    lease_until = NULL,
    error_kind = 'lease_expired',
    error = format(
        'worker %s stopped heartbeating during attempt %s of %s; its lease expired at %s',
        coalesce(t.worker_id, '(unknown)'), t.attempts, t.max_attempts, t.lease_until)
FROM expired
WHERE t.id = expired.id
RETURNING t.id, t.status",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(db_error(OP))?;
    let notices = notices_for(recovered.iter().map(|(id, status)| (*id, status.as_str())));
    notices.send(&mut tx, OP).await?;
    tx.commit().await.map_err(db_error(OP))?;
    let recovered = u64::try_from(recovered.len()).unwrap_or(u64::MAX);
    Ok((recovered, notices))
}

/// Work when any task went back to pending; the ids of those that finished.
fn notices_for<'a>(rows: impl Iterator<Item = (i64, &'a str)>) -> Notices {
    let mut notices = Notices::default();
    for (id, status) in rows {
        if status == "pending" {
            notices.work = true;
        } else {
            notices.finished.push(TaskId(id));
        }
    }
    notices
}
