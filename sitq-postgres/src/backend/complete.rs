//! Finishing attempts: completions from workers, and leases that ran out.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use sitq_core::{Completion, Finished, Outcome, Result, TaskFailure, TaskId, TaskStatus};
use sqlx::postgres::PgPool;

use crate::connect::db_error;
use crate::notify::{Notices, notified_cte, releases_column};

use super::resolve;
use super::{micros, to_int};

const OP: &str = "completing tasks";

/// Applies every completion of a batch, and notifies, in one statement. The
/// join on `id` and the claim count, with `status = 'running'`, is the
/// fence: a completion from a claim that expired (and maybe was claimed
/// again) matches no row. A reserved claim may complete before its start mark
/// lands, hence `coalesce` on `started_at`. A snooze gives its attempt back
/// (`attempts - 1`), so the statement returns the claim's attempt, which
/// for every other outcome is the stored one.
/// A task that failed for good (or succeeded with no unique window)
/// releases its unique key here; rows without one are in no extra index.
const COMPLETE: &str = concat!(
    "
WITH changed AS (
    UPDATE sitq_tasks AS t
    SET status = CASE WHEN c.outcome IN ('retry', 'snooze') THEN 'pending' ELSE c.outcome END,
        result = c.result,
        error_kind = CASE c.outcome WHEN 'snooze' THEN t.error_kind ELSE c.error_kind END,
        error = CASE c.outcome WHEN 'snooze' THEN t.error ELSE c.error END,
        started_at = CASE c.outcome WHEN 'snooze' THEN NULL
            ELSE coalesce(t.started_at, now()) END,
        finished_at = CASE WHEN c.outcome IN ('retry', 'snooze') THEN NULL ELSE now() END,
        run_at = CASE WHEN c.outcome IN ('retry', 'snooze')
            THEN now() + c.delay * interval '1 microsecond'
            ELSE t.run_at END,
        lease_until = NULL,
        attempts = CASE c.outcome WHEN 'snooze' THEN t.attempts - 1 ELSE t.attempts END,
        snoozes = CASE c.outcome WHEN 'snooze' THEN t.snoozes + 1 ELSE t.snoozes END,
        worker_id = CASE c.outcome WHEN 'snooze' THEN NULL ELSE t.worker_id END,
        unique_key = CASE WHEN c.outcome = 'failed'
                OR (c.outcome = 'succeeded' AND t.unique_for IS NULL) THEN NULL
            ELSE t.unique_key END,
        dependents_resolved = CASE WHEN c.outcome IN ('retry', 'snooze')
            THEN t.dependents_resolved ELSE NOT t.has_dependents END
    FROM UNNEST($1::bigint[], $2::int[], $3::text[], $4::bytea[], $5::text[], $6::text[],
                $7::bigint[], $8::int[])
        AS c(id, attempt, outcome, result, error_kind, error, delay, fence)
    WHERE t.id = c.id AND t.claims = c.fence AND t.status = 'running'
    RETURNING t.id, c.attempt AS attempts, c.fence, t.status, t.name, t.has_dependents, ",
    releases_column!(),
    "
), ",
    notified_cte!(releasing),
    "
SELECT changed.id, changed.attempts, changed.fence, changed.status, changed.name,
       changed.has_dependents
FROM changed CROSS JOIN (SELECT count(*) FROM notified) AS notified"
);

/// [`COMPLETE`] for a batch with anything but successes (`retry`, `failed`,
/// `cancelled`, `snooze`), so that a batch of successes pays for none of
/// this: each failure also goes to the failure history with the attempt's
/// start (the `history` CTE, which PostgreSQL runs whether or not it is
/// read), and a task with a
/// cancel request ends `cancelled` whatever its outcome other than success
/// (a cancel is never retried, nor snoozed). A snooze gives its attempt back
/// and keeps the previous error. `SET` expressions see the row before the
/// update.
const COMPLETE_FAILURES: &str = concat!(
    "
WITH changed AS (
    UPDATE sitq_tasks AS t
    SET status = CASE
            WHEN c.outcome <> 'succeeded' AND t.cancel_requested_at IS NOT NULL THEN 'cancelled'
            WHEN c.outcome IN ('retry', 'snooze') THEN 'pending'
            ELSE c.outcome END,
        result = c.result,
        error_kind = CASE
            WHEN c.outcome <> 'snooze' THEN c.error_kind
            WHEN t.cancel_requested_at IS NULL THEN t.error_kind
            ELSE 'cancelled' END,
        error = CASE
            WHEN c.outcome <> 'snooze' THEN c.error
            WHEN t.cancel_requested_at IS NULL THEN t.error
            ELSE 'cancelled while it ran; the task snoozed after the request' END,
        started_at = CASE
            WHEN c.outcome = 'snooze' AND t.cancel_requested_at IS NULL THEN NULL
            ELSE coalesce(t.started_at, now()) END,
        finished_at = CASE
            WHEN c.outcome IN ('retry', 'snooze') AND t.cancel_requested_at IS NULL THEN NULL
            ELSE now() END,
        run_at = CASE
            WHEN c.outcome IN ('retry', 'snooze') AND t.cancel_requested_at IS NULL
                THEN now() + c.delay * interval '1 microsecond'
            ELSE t.run_at END,
        lease_until = NULL,
        attempts = CASE
            WHEN c.outcome = 'snooze' AND t.cancel_requested_at IS NULL THEN t.attempts - 1
            ELSE t.attempts END,
        snoozes = CASE
            WHEN c.outcome = 'snooze' AND t.cancel_requested_at IS NULL THEN t.snoozes + 1
            ELSE t.snoozes END,
        worker_id = CASE
            WHEN c.outcome = 'snooze' AND t.cancel_requested_at IS NULL THEN NULL
            ELSE t.worker_id END,
        unique_key = CASE
            WHEN c.outcome IN ('failed', 'cancelled')
                OR (c.outcome <> 'succeeded' AND t.cancel_requested_at IS NOT NULL)
                OR (c.outcome = 'succeeded' AND t.unique_for IS NULL) THEN NULL
            ELSE t.unique_key END,
        dependents_resolved = CASE
            WHEN c.outcome IN ('retry', 'snooze') AND t.cancel_requested_at IS NULL
                THEN t.dependents_resolved
            ELSE NOT t.has_dependents END
    FROM UNNEST($1::bigint[], $2::int[], $3::text[], $4::bytea[], $5::text[], $6::text[],
                $7::bigint[], $8::int[])
        AS c(id, attempt, outcome, result, error_kind, error, delay, fence)
    WHERE t.id = c.id AND t.claims = c.fence AND t.status = 'running'
    RETURNING t.id, c.attempt AS attempts, c.fence, t.status, t.name, c.outcome, t.error_kind,
              t.error,
              t.worker_id, t.started_at, t.has_dependents, ",
    releases_column!(),
    "
), history AS (
    INSERT INTO sitq_failures (task_id, attempt, kind, message, worker_id, started_at)
    SELECT changed.id, changed.attempts, changed.error_kind, coalesce(changed.error, ''),
           changed.worker_id, changed.started_at
    FROM changed
    WHERE changed.error_kind IS NOT NULL
      AND (changed.outcome NOT IN ('succeeded', 'snooze') OR changed.status = 'cancelled')
), ",
    notified_cte!(releasing),
    "
SELECT changed.id, changed.attempts, changed.fence, changed.status, changed.name,
       changed.has_dependents
FROM changed CROSS JOIN (SELECT count(*) FROM notified) AS notified"
);

/// An applied completion as the statement returns it: id, the claim's
/// attempt and fence, new status, name, and whether it has dependents.
type Applied = (i64, i32, i32, String, String, bool);

/// One completion as [`COMPLETE`] binds it.
#[derive(Clone, Debug)]
struct Row<'a> {
    id: i64,
    attempt: i32,
    fence: i32,
    outcome: &'static str,
    result: Option<&'a [u8]>,
    error_kind: Option<&'static str>,
    error: Option<Cow<'a, str>>,
    delay: i64,
}

impl<'a> Row<'a> {
    fn new(completion: &'a Completion) -> Row<'a> {
        let (outcome, result, failure, delay) = match &completion.outcome {
            Outcome::Succeeded(result) => ("succeeded", Some(result.as_slice()), None, 0),
            Outcome::Retry { failure, delay } => ("retry", None, Some(failure), micros(*delay)),
            Outcome::Failed(failure) => ("failed", None, Some(failure), 0),
            Outcome::Snooze { delay } => (
                "snooze",
                None,
                None,
                micros((*delay).min(sitq_core::Context::MAX_SNOOZE)),
            ),
            Outcome::Cancelled(failure) => ("cancelled", None, Some(failure), 0),
        };
        Row {
            id: completion.claim.id.0,
            attempt: to_int(completion.claim.attempt),
            fence: to_int(completion.claim.fence),
            outcome,
            result,
            error_kind: failure.map(|failure| failure.kind.as_str()),
            // PostgreSQL's text cannot hold NUL; an error message may.
            error: failure.map(|failure| match failure.message.contains('\0') {
                true => Cow::Owned(failure.message.replace('\0', "\\0")),
                false => Cow::Borrowed(failure.message.as_str()),
            }),
            delay,
        }
    }

    /// What to store instead once the database refused this row with
    /// `refusal`: the error text in plain ASCII (which every server encoding
    /// holds), or, for a success, a failure saying its result could not be
    /// stored.
    fn fallback(&self, refusal: &sqlx::Error) -> Row<'a> {
        let refusal = ascii(&refusal.to_string());
        let error = match (self.outcome, &self.error) {
            ("succeeded", _) | (_, None) => format!(
                "the task finished, but the database refused to store its outcome: {refusal}"
            ),
            (_, Some(error)) => format!(
                "{} (stored with non-ASCII characters escaped: the database refused the \
                 original text: {refusal})",
                ascii(error)
            ),
        };
        Row {
            outcome: if self.outcome == "succeeded" {
                "failed"
            } else {
                self.outcome
            },
            result: None,
            error_kind: self
                .error_kind
                .or(Some(sitq_core::FailureKind::Error.as_str())),
            error: Some(Cow::Owned(error)),
            ..self.clone()
        }
    }
}

/// `text` with every character outside printable ASCII written as a Rust
/// escape (`\u{1f525}`), except line breaks and tabs.
fn ascii(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_graphic() || matches!(c, ' ' | '\n' | '\r' | '\t') {
            escaped.push(c);
        } else {
            escaped.extend(c.escape_unicode());
        }
    }
    escaped
}

/// Whether the server refused `error`'s statement for what a row holds
/// (data exceptions, constraint violations, size limits), rather than for a
/// lost connection or a transient conflict: retrying the same rows cannot
/// help, but the batch's other rows may be fine.
fn refuses_a_row(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Encode(_) => true,
        sqlx::Error::Database(error) => error
            .code()
            .is_some_and(|code| matches!(code.get(..2), Some("22" | "23" | "54"))),
        _ => false,
    }
}

/// Runs [`COMPLETE`] for `rows`.
async fn apply(pool: &PgPool, rows: &[Row<'_>]) -> std::result::Result<Vec<Applied>, sqlx::Error> {
    let count = rows.len();
    let mut ids = Vec::with_capacity(count);
    let mut attempts = Vec::with_capacity(count);
    let mut outcomes = Vec::with_capacity(count);
    let mut results = Vec::with_capacity(count);
    let mut error_kinds = Vec::with_capacity(count);
    let mut errors = Vec::with_capacity(count);
    let mut delays = Vec::with_capacity(count);
    let mut fences = Vec::with_capacity(count);
    for row in rows {
        ids.push(row.id);
        attempts.push(row.attempt);
        outcomes.push(row.outcome);
        results.push(row.result);
        error_kinds.push(row.error_kind);
        errors.push(row.error.as_deref());
        delays.push(row.delay);
        fences.push(row.fence);
    }
    let statement = if rows.iter().all(|row| row.outcome == "succeeded") {
        COMPLETE
    } else {
        COMPLETE_FAILURES
    };
    sqlx::query_as(statement)
        .bind(ids)
        .bind(attempts)
        .bind(outcomes)
        .bind(results)
        .bind(error_kinds)
        .bind(errors)
        .bind(delays)
        .bind(fences)
        .fetch_all(pool)
        .await
}

/// Records `completions` in one statement; per completion whether it
/// applied, what to signal, and the outcomes of those that finished (for
/// this process's waiters, which then need no query).
///
/// When the server refuses the batch for what a row holds, the rows are
/// stored one by one so the others are not held hostage, and a row refused
/// again is stored in [`Row::fallback`] form.
pub(super) async fn complete(
    pool: &PgPool,
    completions: Vec<Completion>,
) -> Result<(Vec<bool>, Notices, Vec<Finished>)> {
    if completions.is_empty() {
        return Ok((Vec::new(), Notices::default(), Vec::new()));
    }
    // A claim completed twice in one batch applies once: the first one wins,
    // as it would have in two batches.
    let mut seen = HashSet::new();
    let first: Vec<bool> = completions
        .iter()
        .map(|completion| seen.insert(completion.claim))
        .collect();
    let mut rows: Vec<Row<'_>> = completions
        .iter()
        .zip(&first)
        .filter(|(_, first)| **first)
        .map(|(completion, _)| Row::new(completion))
        .collect();
    // Rows in id order, the order in which an enqueue with dependencies
    // locks them, so the two wait for each other rather than deadlock.
    rows.sort_by_key(|row| row.id);

    let stored: Vec<(Applied, Row<'_>)> = match apply(pool, &rows).await {
        Ok(applied) => {
            let by_claim: HashMap<(i64, i32), &Row<'_>> =
                rows.iter().map(|row| ((row.id, row.fence), row)).collect();
            applied
                .into_iter()
                .filter_map(|applied| {
                    let row = by_claim.get(&(applied.0, applied.2))?;
                    Some((applied, (*row).clone()))
                })
                .collect()
        }
        Err(error) if refuses_a_row(&error) => {
            tracing::warn!(%error, count = rows.len(), "the database refused a batch of outcomes; storing them one by one");
            one_by_one(pool, &rows).await?
        }
        Err(error) => return Err(db_error(OP)(error)),
    };

    let mut notices = Notices::for_rows(
        stored
            .iter()
            .map(|((id, _, _, status, ..), _)| (*id, status.as_str())),
    );
    let applied: HashSet<(i64, i32)> = stored
        .iter()
        .map(|((id, _, fence, ..), _)| (*id, *fence))
        .collect();
    let with_dependents: Vec<i64> = stored
        .iter()
        .filter(|((_, _, _, status, _, has_dependents), _)| *has_dependents && finished(status))
        .map(|((id, ..), _)| *id)
        .collect();
    let flags = completions
        .iter()
        .zip(first)
        .map(|(completion, first)| {
            let claim = (completion.claim.id.0, to_int(completion.claim.fence));
            first && applied.contains(&claim)
        })
        .collect();
    let mut outcomes: Vec<Finished> = stored
        .into_iter()
        .filter_map(|(applied, row)| outcome(applied, &row))
        .collect();
    // The follow-up for finished tasks with dependents; see `resolve`.
    let resolution = resolve::resolve(pool, with_dependents).await;
    notices.add_notices(resolution.notices);
    outcomes.extend(resolution.outcomes);
    Ok((flags, notices, outcomes))
}

fn finished(status: &str) -> bool {
    matches!(status, "succeeded" | "failed" | "cancelled")
}

/// The outcome of a completion the statement applied, from what it returned
/// and the row as stored (a fallback row holds the stored failure); `None`
/// when the task did not finish (a retry).
fn outcome((id, attempts, _, status, name, _): Applied, row: &Row<'_>) -> Option<Finished> {
    let status = match status.as_str() {
        "succeeded" => TaskStatus::Succeeded,
        "failed" => TaskStatus::Failed,
        "cancelled" => TaskStatus::Cancelled,
        _ => return None,
    };
    Some(Finished {
        id: TaskId(id),
        name,
        status,
        attempts: u32::try_from(attempts).ok()?,
        result: row.result.map(<[u8]>::to_vec),
        failure: TaskFailure::from_columns(row.error_kind, row.error.as_deref().map(str::to_owned)),
    })
}

/// Stores `rows` one statement each, falling back for a row the server
/// refuses. A failure of another kind (the connection) ends it with an
/// error; the rows stored until then stay stored, and a retry of the whole
/// batch finds them fenced.
async fn one_by_one<'a>(pool: &PgPool, rows: &[Row<'a>]) -> Result<Vec<(Applied, Row<'a>)>> {
    let mut applied = Vec::with_capacity(rows.len());
    for row in rows {
        let refusal = match apply(pool, std::slice::from_ref(row)).await {
            Ok(done) => {
                applied.extend(done.into_iter().map(|done| (done, row.clone())));
                continue;
            }
            Err(error) if refuses_a_row(&error) => error,
            Err(error) => return Err(db_error(OP)(error)),
        };
        let fallback = row.fallback(&refusal);
        match apply(pool, std::slice::from_ref(&fallback)).await {
            Ok(done) => {
                tracing::warn!(task.id = row.id, error = %refusal, "the database refused a task's outcome; stored it with its text escaped");
                applied.extend(done.into_iter().map(|done| (done, fallback.clone())));
            }
            Err(again) if refuses_a_row(&again) => {
                tracing::error!(task.id = row.id, error = %again, first_error = %refusal, "the database refused a task's outcome, escaped too; the task runs again once its lease expires");
            }
            Err(error) => return Err(db_error(OP)(error)),
        }
    }
    Ok(applied)
}

/// Returns running tasks whose lease ran out, in one statement.
///
/// A started task goes back to pending with a `LeaseExpired` failure (also
/// added to the failure history), or to failed when it has no attempts
/// left, or to cancelled when it has a cancel request. A reserved task
/// (never started) goes back to pending with its attempt not spent, its
/// place in claim order (`run_at`) and its previous error kept.
///
/// `SKIP LOCKED`: a row locked right now is being completed or heartbeated,
/// so it is not abandoned; the next recovery looks again.
///
/// The same statement sweeps up (through their partial index) finished
/// tasks whose dependents are not resolved: normally none, but a crash or
/// an error between a finish and its follow-up leaves some. At most 1,000
/// per recovery; the next one takes more.
const RECOVER: &str = concat!(
    "
WITH expired AS MATERIALIZED (
    SELECT id FROM sitq_tasks
    WHERE status = 'running' AND lease_until < now()
    FOR UPDATE SKIP LOCKED
), changed AS (
    UPDATE sitq_tasks AS t
    SET status = CASE
            WHEN t.started_at IS NULL THEN 'pending'
            WHEN t.cancel_requested_at IS NOT NULL THEN 'cancelled'
            WHEN t.attempts >= t.max_attempts THEN 'failed'
            ELSE 'pending' END,
        attempts = CASE WHEN t.started_at IS NULL THEN t.attempts - 1 ELSE t.attempts END,
        run_at = CASE
            WHEN t.started_at IS NULL OR t.attempts >= t.max_attempts
                OR t.cancel_requested_at IS NOT NULL THEN t.run_at
            ELSE now() END,
        finished_at = CASE
            WHEN t.started_at IS NOT NULL
                AND (t.attempts >= t.max_attempts OR t.cancel_requested_at IS NOT NULL)
            THEN now() END,
        lease_until = NULL,
        unique_key = CASE
            WHEN t.started_at IS NOT NULL
                AND (t.attempts >= t.max_attempts OR t.cancel_requested_at IS NOT NULL)
            THEN NULL
            ELSE t.unique_key END,
        worker_id = CASE WHEN t.started_at IS NULL THEN NULL ELSE t.worker_id END,
        dependents_resolved = CASE
            WHEN t.started_at IS NOT NULL
                AND (t.attempts >= t.max_attempts OR t.cancel_requested_at IS NOT NULL)
            THEN NOT t.has_dependents
            ELSE t.dependents_resolved END,
        error_kind = CASE WHEN t.started_at IS NULL THEN t.error_kind ELSE 'lease_expired' END,
        error = CASE WHEN t.started_at IS NULL THEN t.error ELSE format(
            'worker %s stopped heartbeating during attempt %s of %s; its lease expired at %s',
            coalesce(t.worker_id, '(unknown)'), t.attempts, t.max_attempts, t.lease_until) END
    FROM expired
    WHERE t.id = expired.id
    RETURNING t.id, t.status, t.name, t.attempts, t.error_kind, t.error,
              t.started_at, t.worker_id, t.has_dependents, ",
    releases_column!(),
    "
), history AS (
    INSERT INTO sitq_failures (task_id, attempt, kind, message, worker_id, started_at)
    SELECT changed.id, changed.attempts, changed.error_kind, coalesce(changed.error, ''),
           changed.worker_id, changed.started_at
    FROM changed
    WHERE changed.started_at IS NOT NULL
), ",
    notified_cte!(releasing),
    "
SELECT changed.id, changed.status, changed.name, changed.attempts, changed.error_kind,
       changed.error, changed.has_dependents, false AS swept
FROM changed CROSS JOIN (SELECT count(*) FROM notified) AS notified
UNION ALL
(SELECT id, status, name, attempts, NULL, NULL, true, true
 FROM sitq_tasks
 WHERE has_dependents AND NOT dependents_resolved
   AND status IN ('succeeded', 'failed', 'cancelled')
 ORDER BY id LIMIT 1000)"
);

/// A row of [`RECOVER`]: a recovered lease (id, new status, name,
/// attempts, error kind and error, whether it has dependents), or a
/// finished task with dependents to resolve (`swept`).
type Recovered = (
    i64,
    String,
    String,
    i32,
    Option<String>,
    Option<String>,
    bool,
    bool,
);

/// Recovers expired leases (see [`RECOVER`]); how many, what to signal, and
/// the outcomes of the tasks that failed for good or were cancelled. Then
/// resolves the dependents of those with dependents, and of the finished
/// tasks the statement swept up, in a follow-up (none when there are none).
pub(super) async fn recover_expired(pool: &PgPool) -> Result<(u64, Notices, Vec<Finished>)> {
    let rows: Vec<Recovered> = sqlx::query_as(RECOVER)
        .fetch_all(pool)
        .await
        .map_err(db_error("recovering expired leases"))?;
    let (swept, recovered): (Vec<Recovered>, Vec<Recovered>) =
        rows.into_iter().partition(|row| row.7);
    let mut to_resolve: Vec<i64> = swept.iter().map(|row| row.0).collect();
    to_resolve.extend(
        recovered
            .iter()
            .filter(|row| row.6 && finished(&row.1))
            .map(|row| row.0),
    );
    let mut notices = Notices::for_rows(
        recovered
            .iter()
            .map(|(id, status, ..)| (*id, status.as_str())),
    );
    let count = u64::try_from(recovered.len()).unwrap_or(u64::MAX);
    let mut outcomes: Vec<Finished> = recovered
        .into_iter()
        .filter_map(|(id, status, name, attempts, error_kind, error, ..)| {
            let status = match status.as_str() {
                "failed" => TaskStatus::Failed,
                "cancelled" => TaskStatus::Cancelled,
                _ => return None,
            };
            Some(Finished {
                id: TaskId(id),
                name,
                status,
                attempts: u32::try_from(attempts).ok()?,
                result: None,
                failure: TaskFailure::from_columns(error_kind.as_deref(), error),
            })
        })
        .collect();
    to_resolve.sort_unstable();
    to_resolve.dedup();
    let resolution = resolve::resolve(pool, to_resolve).await;
    notices.add_notices(resolution.notices);
    outcomes.extend(resolution.outcomes);
    Ok((count, notices, outcomes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_escapes_what_an_encoding_may_lack() {
        assert_eq!(ascii("plain: 42\n"), "plain: 42\n");
        assert_eq!(
            ascii("hot \u{1f525} caf\u{e9}"),
            "hot \\u{1f525} caf\\u{e9}"
        );
        assert_eq!(ascii("nul\0"), "nul\\u{0}");
    }

    #[test]
    fn a_refused_success_falls_back_to_a_failure_saying_so() {
        let completion = Completion {
            claim: sitq_core::ClaimRef {
                id: sitq_core::TaskId(7),
                attempt: 2,
                fence: 2,
            },
            outcome: Outcome::Succeeded(vec![1, 2, 3]),
        };
        let row = Row::new(&completion);
        let fallback = row.fallback(&sqlx::Error::Protocol("row too big".into()));
        assert_eq!((fallback.id, fallback.attempt), (7, 2));
        assert_eq!(fallback.outcome, "failed");
        assert_eq!(fallback.result, None);
        assert_eq!(fallback.error_kind, Some("error"));
        let error = fallback.error.as_deref().unwrap_or_default();
        assert!(error.contains("refused to store its outcome"), "{error}");
        assert!(error.contains("row too big"), "{error}");
    }

    #[test]
    fn a_refused_failure_keeps_its_kind_and_escapes_its_text() {
        let completion = Completion {
            claim: sitq_core::ClaimRef {
                id: sitq_core::TaskId(7),
                attempt: 1,
                fence: 1,
            },
            outcome: Outcome::Retry {
                failure: sitq_core::TaskFailure::new(sitq_core::FailureKind::Panic, "\u{1f525}"),
                delay: std::time::Duration::from_secs(1),
            },
        };
        let fallback = Row::new(&completion).fallback(&sqlx::Error::PoolClosed);
        assert_eq!(fallback.outcome, "retry");
        assert_eq!(fallback.error_kind, Some("panic"));
        assert_eq!(fallback.delay, 1_000_000);
        let error = fallback.error.as_deref().unwrap_or_default();
        assert!(error.starts_with("\\u{1f525} (stored with"), "{error}");
    }
}
