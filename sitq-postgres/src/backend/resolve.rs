//! Resolving dependents when their dependencies finish.
//!
//! Every statement that finishes a task sets `dependents_resolved = NOT
//! has_dependents` and returns `has_dependents`; for the finished rows that
//! have dependents, a follow-up statement ([`RESOLVE`]) claims the right to
//! resolve them (`dependents_resolved = true`, under their row locks, so
//! exactly one resolver does it for each finish) and updates their blocked
//! dependents in the same statement. It must be a statement of its own: one
//! that started before a concurrent enqueue of a dependent committed would
//! not see that dependent's edges (see `deps::enqueue_on` for the other
//! side of that race).
//!
//! A dependent cancelled by a failed dependency may have dependents of its
//! own: they are resolved by the next statement, and so on down the graph.
//! Each statement commits a consistent state (a finished row with
//! `has_dependents AND NOT dependents_resolved` is simply still to do), so a
//! crash or error in between is repaired by the sweep of lease recovery
//! (`complete::RECOVER`).

use sitq_core::{
    CancelRequest, DEPENDENCY_CANCELLED_BY, Finished, TaskFailure, TaskId, TaskStatus,
};
use sqlx::postgres::{PgConnection, PgPool};

use crate::connect::db_error;
use crate::notify::{Notices, notified_cte, releases_column};

const OP: &str = "resolving the dependents of finished tasks";

/// Resolves the blocked dependents of the finished tasks `$1` that have
/// dependents not yet resolved. Per dependent, the distinct finishing
/// dependencies count: succeeded ones (with `after_finished`, all of them)
/// are subtracted from `deps_pending`, and at 0 it becomes pending; a failed
/// or cancelled one (without `after_finished`) cancels it, the reason
/// naming the lowest such dependency. Only blocked dependents change: one a
/// user cancelled (or that already runs) is left alone.
///
/// `$2` is the error message with `%s` for the reason, `$3` who cancels.
const RESOLVE: &str = concat!(
    "
WITH done AS (
    UPDATE sitq_tasks
    SET dependents_resolved = true
    WHERE id = ANY($1) AND has_dependents AND NOT dependents_resolved
      AND status IN ('succeeded', 'failed', 'cancelled')
    RETURNING id, name, status
), edges AS (
    SELECT DISTINCT d.task_id, done.id AS dep_id, done.name, done.status
    FROM done JOIN sitq_deps AS d ON d.dep_id = done.id
), counts AS (
    SELECT task_id,
           count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
           count(*) AS finished
    FROM edges GROUP BY task_id
), bad AS (
    SELECT DISTINCT ON (task_id) task_id,
           format('dependency %s (%s) %s', dep_id, name,
                  CASE status WHEN 'failed' THEN 'failed' ELSE 'was cancelled' END) AS reason
    FROM edges WHERE status <> 'succeeded'
    ORDER BY task_id, dep_id
), resolving AS (
    SELECT counts.task_id, counts.succeeded, counts.finished, bad.reason
    FROM counts LEFT JOIN bad ON bad.task_id = counts.task_id
), changed AS (
    UPDATE sitq_tasks AS t
    SET status = CASE
            WHEN r.reason IS NOT NULL AND NOT t.after_finished THEN 'cancelled'
            WHEN t.deps_pending
                <= CASE WHEN t.after_finished THEN r.finished ELSE r.succeeded END THEN 'pending'
            ELSE 'blocked' END,
        deps_pending = CASE
            WHEN r.reason IS NOT NULL AND NOT t.after_finished THEN t.deps_pending
            ELSE greatest(0, t.deps_pending
                - CASE WHEN t.after_finished THEN r.finished ELSE r.succeeded END) END,
        finished_at = CASE WHEN r.reason IS NOT NULL AND NOT t.after_finished
            THEN now() ELSE t.finished_at END,
        error_kind = CASE WHEN r.reason IS NOT NULL AND NOT t.after_finished
            THEN 'cancelled' ELSE t.error_kind END,
        error = CASE WHEN r.reason IS NOT NULL AND NOT t.after_finished
            THEN format($2, r.reason) ELSE t.error END,
        cancel_requested_at = CASE WHEN r.reason IS NOT NULL AND NOT t.after_finished
            THEN now() ELSE t.cancel_requested_at END,
        cancelled_by = CASE WHEN r.reason IS NOT NULL AND NOT t.after_finished
            THEN $3 ELSE t.cancelled_by END,
        cancel_reason = CASE WHEN r.reason IS NOT NULL AND NOT t.after_finished
            THEN r.reason ELSE t.cancel_reason END,
        dependents_resolved = CASE WHEN r.reason IS NOT NULL AND NOT t.after_finished
            THEN NOT t.has_dependents ELSE t.dependents_resolved END
    FROM resolving AS r
    -- The id list steers the plan to the primary key whatever the table's
    -- statistics say (a burst of new rows not yet analysed made it scan).
    WHERE t.id = ANY(ARRAY(SELECT task_id FROM counts))
      AND t.id = r.task_id AND t.status = 'blocked'
    RETURNING t.id, t.status, t.name, t.attempts, t.error_kind, t.error, t.has_dependents, ",
    releases_column!(),
    "
), ",
    notified_cte!(releasing),
    "
SELECT changed.id, changed.status, changed.name, changed.attempts, changed.error_kind,
       changed.error, changed.has_dependents
FROM changed CROSS JOIN (SELECT count(*) FROM notified) AS notified"
);

/// [`RESOLVE`] committing asynchronously (`synchronous_commit = off` for its
/// own transaction only), for a resolution that runs as statements of its
/// own after the finish committed. Safe to lose in a crash: the finished
/// rows are then unresolved again, and lease recovery's sweep redoes it;
/// and anything that acted on it durably (a claim of a released dependent)
/// committed later in the WAL, which flushes it first. It spares every
/// completion batch with dependents a second WAL flush.
static RESOLVE_ASYNC: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    RESOLVE
        .replacen(
            "\nWITH done AS (",
            "\nWITH async_commit AS MATERIALIZED (\n    SELECT set_config('synchronous_commit', 'off', true)\n), done AS (",
            1,
        )
        .replacen(
            "FROM changed CROSS JOIN (SELECT count(*) FROM notified) AS notified",
            "FROM changed CROSS JOIN (SELECT count(*) FROM notified) AS notified\n    CROSS JOIN (SELECT count(*) FROM async_commit) AS async_commit",
            1,
        )
});

/// A dependent as [`RESOLVE`] changed it.
type Changed = (
    i64,
    String,
    String,
    i32,
    Option<String>,
    Option<String>,
    bool,
);

/// What resolutions changed, for this process's signals.
#[derive(Debug, Default)]
pub(crate) struct Resolution {
    /// Dependents that became pending (work) or were cancelled (finished).
    pub(crate) notices: Notices,
    /// The outcomes of the dependents that were cancelled.
    pub(crate) outcomes: Vec<Finished>,
}

impl Resolution {
    /// Adds `other`'s changes.
    pub(crate) fn merge(&mut self, other: Resolution) {
        self.notices.add_notices(other.notices);
        self.outcomes.extend(other.outcomes);
    }
}

/// The error message of a task cancelled by a dependency, with `%s` where
/// the reason goes (for SQL `format`).
pub(crate) fn message_template() -> String {
    const MARK: &str = "\u{1}";
    CancelRequest::message(DEPENDENCY_CANCELLED_BY, Some(MARK))
        .replace('%', "%%")
        .replace(MARK, "%s")
}

/// Resolves the dependents of the finished tasks `ids` (those with
/// dependents not resolved yet; others are skipped), and transitively the
/// dependents of the dependents it cancels, one statement per level, on
/// `conn` (inside the caller's transaction, or each statement on its own).
pub(crate) async fn resolve_on(
    conn: &mut PgConnection,
    ids: Vec<i64>,
) -> Result<Resolution, sqlx::Error> {
    resolve_with(conn, ids, RESOLVE).await
}

/// [`resolve_on`] with `statement`: [`RESOLVE`], or [`RESOLVE_ASYNC`] when
/// each statement is a transaction of its own.
async fn resolve_with(
    conn: &mut PgConnection,
    ids: Vec<i64>,
    statement: &'static str,
) -> Result<Resolution, sqlx::Error> {
    let template = message_template();
    let mut resolution = Resolution::default();
    let mut next = ids;
    while !next.is_empty() {
        let changed: Vec<Changed> = sqlx::query_as(statement)
            .bind(&next)
            .bind(&template)
            .bind(DEPENDENCY_CANCELLED_BY)
            .fetch_all(&mut *conn)
            .await?;
        resolution.notices.add(
            changed
                .iter()
                .map(|(id, status, ..)| (*id, status.as_str())),
        );
        next = Vec::new();
        for (id, status, name, attempts, error_kind, error, has_dependents) in changed {
            if status != "cancelled" {
                continue;
            }
            if has_dependents {
                next.push(id);
            }
            resolution.outcomes.push(Finished {
                id: TaskId(id),
                name,
                status: TaskStatus::Cancelled,
                attempts: u32::try_from(attempts).unwrap_or(0),
                result: None,
                failure: TaskFailure::from_columns(error_kind.as_deref(), error),
            });
        }
    }
    Ok(resolution)
}

/// Attempts of a resolution that PostgreSQL aborted as a deadlock (two
/// resolvers locking shared dependents in different orders).
const MAX_DEADLOCK_RETRIES: usize = 3;

/// [`resolve_on`] with a pooled connection, each statement committing on
/// its own, after the statement that finished `ids` committed. A failure is
/// logged, not returned: the finish itself is stored, and lease recovery's
/// sweep resolves what is left.
pub(crate) async fn resolve(pool: &PgPool, ids: Vec<i64>) -> Resolution {
    if ids.is_empty() {
        return Resolution::default();
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = match pool.acquire().await {
            Ok(mut conn) => resolve_with(&mut conn, ids.clone(), &RESOLVE_ASYNC).await,
            Err(error) => Err(error),
        };
        match result {
            Ok(resolution) => return resolution,
            Err(error) if is_deadlock(&error) && attempt < MAX_DEADLOCK_RETRIES => continue,
            Err(error) => {
                let error = db_error(OP)(error);
                tracing::warn!(%error, tasks = ids.len(), "resolving dependents failed; lease recovery resolves them later");
                return Resolution::default();
            }
        }
    }
}

/// Whether PostgreSQL chose `error`'s transaction as a deadlock's victim.
pub(crate) fn is_deadlock(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|error| error.code())
        .is_some_and(|code| code == "40P01")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_async_resolution_differs_only_by_its_commit() {
        assert!(RESOLVE_ASYNC.contains("set_config('synchronous_commit', 'off', true)"));
        assert!(RESOLVE_ASYNC.contains("FROM async_commit"));
        let plain = RESOLVE_ASYNC
            .replace("\nWITH async_commit AS MATERIALIZED (\n    SELECT set_config('synchronous_commit', 'off', true)\n), done AS (", "\nWITH done AS (")
            .replace("\n    CROSS JOIN (SELECT count(*) FROM async_commit) AS async_commit", "");
        assert_eq!(plain, RESOLVE);
    }

    #[test]
    fn the_template_formats_to_the_cancel_message() {
        let template = message_template();
        assert_eq!(
            template.replace("%s", "dependency 7 (fetch) failed"),
            CancelRequest::message(DEPENDENCY_CANCELLED_BY, Some("dependency 7 (fetch) failed"))
        );
        assert_eq!(template.matches('%').count(), 1);
    }
}
