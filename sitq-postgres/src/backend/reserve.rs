//! Reserved claims (prefetched, not yet started): marking them started, and
//! giving back those that never will be.

use sitq_core::{ClaimRef, Result};
use sqlx::postgres::PgPool;

use crate::connect::db_error;
use crate::notify::{Notices, notified_cte};

use super::to_int;

/// The fence shared by both statements: the task is still running under
/// that claim (its claim count is the claim's fence) and has not started.
macro_rules! reserved_claims {
    () => {
        "
    FROM UNNEST($1::bigint[], $2::int[]) AS c(id, fence)
    WHERE t.id = c.id AND t.claims = c.fence
      AND t.status = 'running' AND t.started_at IS NULL"
    };
}

const START: &str = concat!(
    "
UPDATE sitq_tasks AS t
SET started_at = now()",
    reserved_claims!()
);

/// Back to pending with the attempt not spent; `run_at` stays, so the task
/// keeps its place in claim order. Notifies `sitq_work` when any went back.
const RELEASE: &str = concat!(
    "
WITH changed AS (
    UPDATE sitq_tasks AS t
    SET status = 'pending', attempts = t.attempts - 1, worker_id = NULL, lease_until = NULL",
    reserved_claims!(),
    "
    RETURNING t.id, t.status
), ",
    notified_cte!(),
    "
SELECT changed.id FROM changed CROSS JOIN (SELECT count(*) FROM notified) AS notified"
);

/// The ids and fences of `claims`, as the statements bind them.
fn columns(claims: &[ClaimRef]) -> (Vec<i64>, Vec<i32>) {
    claims
        .iter()
        .map(|claim| (claim.id.0, to_int(claim.fence)))
        .unzip()
}

/// Marks reserved `claims` started, in one statement.
pub(super) async fn start(pool: &PgPool, claims: Vec<ClaimRef>) -> Result<()> {
    if claims.is_empty() {
        return Ok(());
    }
    let (ids, fences) = columns(&claims);
    sqlx::query(START)
        .bind(ids)
        .bind(fences)
        .execute(pool)
        .await
        .map_err(db_error("marking reserved tasks started"))?;
    Ok(())
}

/// Gives reserved `claims` that never started back, in one statement; how
/// many went back, and what to signal.
pub(super) async fn release(pool: &PgPool, claims: Vec<ClaimRef>) -> Result<(u64, Notices)> {
    if claims.is_empty() {
        return Ok((0, Notices::default()));
    }
    let (ids, fences) = columns(&claims);
    let released: Vec<i64> = sqlx::query_scalar(RELEASE)
        .bind(ids)
        .bind(fences)
        .fetch_all(pool)
        .await
        .map_err(db_error("giving reserved tasks back"))?;
    let notices = Notices::for_rows(released.iter().map(|id| (*id, "pending")));
    Ok((u64::try_from(released.len()).unwrap_or(u64::MAX), notices))
}
