//! Deleting old finished tasks (pruning, and purges by state), in bounded
//! steps, and single finished tasks, keeping a task while an unfinished
//! dependent may need its result.

use chrono::{DateTime, Utc};
use sitq_core::inspect::not_deletable;
use sitq_core::{Error, Result, TaskId, TaskStatus};
use sqlx::postgres::PgPool;

use crate::connect::db_error;

use super::inspect::parse_status;

/// The most rows one pruning statement deletes: a large backlog is deleted
/// in steps, each a short transaction, instead of one that holds its locks
/// (and bloats the WAL) for as long as it takes.
const PRUNE_STEP: i64 = 5_000;

/// Every finished state: what a purge of no particular state deletes.
const FINISHED: [TaskStatus; 3] = [
    TaskStatus::Succeeded,
    TaskStatus::Failed,
    TaskStatus::Cancelled,
];

/// Deleting the tasks `deleted` returns drops their failure history, their
/// dependency edges, and workflows left without tasks, in the same
/// statement, which ends `SELECT count(*)`: the caller adds the rest.
macro_rules! pruned_ctes {
    () => {
        "
), history AS (
    DELETE FROM sitq_failures WHERE task_id IN (SELECT id FROM deleted)
), edges AS (
    DELETE FROM sitq_deps WHERE task_id IN (SELECT id FROM deleted)
), workflows AS (
    DELETE FROM sitq_workflows AS w
    WHERE w.id IN (SELECT workflow_id FROM deleted WHERE workflow_id IS NOT NULL)
      AND NOT EXISTS (
          SELECT 1 FROM sitq_tasks AS rest
          WHERE rest.workflow_id = w.id AND rest.id NOT IN (SELECT id FROM deleted))
)
SELECT count(*)"
    };
}

/// One step of [`purge`] for tasks in states `$3` (finished ones) that
/// nothing depends on; it also says whether tasks with dependents are due
/// (one probe of `sitq_tasks_depended`, so a purge with none stays one
/// statement). The `status IN (…)` next to `status = ANY($3)` lets
/// PostgreSQL use `sitq_tasks_finished`. The outer `WHERE` repeats the
/// filter, so a row changed since the subquery picked it is rechecked on
/// its new version, not deleted: retried, or given a dependent
/// (`has_dependents`, set under the row lock the enqueue of a dependent
/// takes) — those are for [`PRUNE_DEPENDED`].
const PRUNE_PLAIN: &str = concat!(
    "
WITH deleted AS (
    DELETE FROM sitq_tasks AS t
    WHERE id IN (
        SELECT id FROM sitq_tasks
        WHERE status IN ('succeeded', 'failed', 'cancelled') AND status = ANY($3)
          AND finished_at < $1 AND NOT has_dependents
        LIMIT $2
    ) AND status IN ('succeeded', 'failed', 'cancelled') AND status = ANY($3)
      AND finished_at < $1 AND NOT has_dependents
    RETURNING id, workflow_id",
    pruned_ctes!(),
    ",
       EXISTS (
           SELECT 1 FROM sitq_tasks
           WHERE has_dependents AND finished_at < $1
             AND status IN ('succeeded', 'failed', 'cancelled') AND status = ANY($3))
FROM deleted"
);

/// Locks up to `$2` tasks in states `$3` (finished ones) with dependents,
/// none of them unfinished (as far as this snapshot shows), in id order:
/// the order in which the enqueue of a dependent locks its dependencies.
const LOCK_DEPENDED: &str = "
SELECT id FROM sitq_tasks AS c
WHERE status IN ('succeeded', 'failed', 'cancelled') AND status = ANY($3)
  AND finished_at < $1 AND has_dependents
  AND NOT EXISTS (
      SELECT 1 FROM sitq_deps AS d JOIN sitq_tasks AS x ON x.id = d.task_id
      WHERE d.dep_id = c.id AND x.status IN ('pending', 'blocked', 'running'))
ORDER BY id
LIMIT $2
FOR UPDATE";

/// Deletes the locked tasks `$1` that still have no unfinished dependent: a
/// statement of its own, after the locks, so it sees every dependent whose
/// enqueue committed while the lock waited (one that was enqueued on a task
/// about to go would otherwise lose its result). The lock held since
/// [`LOCK_DEPENDED`] keeps their state.
const PRUNE_DEPENDED: &str = concat!(
    "
WITH deleted AS (
    DELETE FROM sitq_tasks AS t
    WHERE id = ANY($1)
      AND NOT EXISTS (
          SELECT 1 FROM sitq_deps AS d JOIN sitq_tasks AS x ON x.id = d.task_id
          WHERE d.dep_id = t.id AND x.status IN ('pending', 'blocked', 'running'))
    RETURNING id, workflow_id",
    pruned_ctes!(),
    " FROM deleted"
);

/// Deletes tasks in `statuses` (every finished state when empty; other
/// states are ignored) that finished before `before`, [`PRUNE_STEP`] rows
/// per statement: first those nothing depends on, one statement per step;
/// then, if any are due, those with dependents, a lock and a delete per
/// step. A task stays while a dependent of it is unfinished (it may need
/// its result).
pub(super) async fn purge(
    pool: &PgPool,
    before: DateTime<Utc>,
    statuses: &[TaskStatus],
) -> Result<u64> {
    const OP: &str = "deleting finished tasks";
    let statuses: Vec<&'static str> = if statuses.is_empty() {
        FINISHED.iter().map(|status| status.as_str()).collect()
    } else {
        statuses
            .iter()
            .filter(|status| status.is_finished())
            .map(|status| status.as_str())
            .collect()
    };
    if statuses.is_empty() {
        return Ok(0);
    }
    let step = u64::try_from(PRUNE_STEP).unwrap_or(u64::MAX);
    let mut total = 0;
    let depended = loop {
        let (deleted, depended): (i64, bool) = sqlx::query_as(PRUNE_PLAIN)
            .bind(before)
            .bind(PRUNE_STEP)
            .bind(&statuses)
            .fetch_one(pool)
            .await
            .map_err(db_error(OP))?;
        let deleted = u64::try_from(deleted).unwrap_or(0);
        total += deleted;
        if deleted < step {
            break depended;
        }
    };
    if !depended {
        return Ok(total);
    }
    loop {
        let mut tx = pool.begin().await.map_err(db_error(OP))?;
        let locked: Vec<i64> = sqlx::query_scalar(LOCK_DEPENDED)
            .bind(before)
            .bind(PRUNE_STEP)
            .bind(&statuses)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error(OP))?;
        if locked.is_empty() {
            return Ok(total);
        }
        let full = locked.len() as u64 >= step;
        let deleted: i64 = sqlx::query_scalar(PRUNE_DEPENDED)
            .bind(locked)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error(OP))?;
        tx.commit().await.map_err(db_error(OP))?;
        total += u64::try_from(deleted).unwrap_or(0);
        if !full {
            return Ok(total);
        }
    }
}

/// Deletes task `$1` with its history, edges and emptied workflow.
const DELETE_ONE: &str = concat!(
    "
WITH deleted AS (
    DELETE FROM sitq_tasks WHERE id = $1 RETURNING id, workflow_id",
    pruned_ctes!(),
    " FROM deleted"
);

/// Deletes one finished task that no unfinished task depends on (see
/// `Backend::delete`). The task's row is locked first, the lock the enqueue
/// of a dependent takes on its dependencies, so the check for unfinished
/// dependents, a statement of its own after the lock, sees every dependent
/// whose enqueue committed meanwhile.
pub(super) async fn delete(pool: &PgPool, id: TaskId) -> Result<()> {
    const OP: &str = "deleting a task";
    let mut tx = pool.begin().await.map_err(db_error(OP))?;
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM sitq_tasks WHERE id = $1 FOR UPDATE")
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error(OP))?;
    let Some(status) = status else {
        return Err(Error::NotFound(id));
    };
    let status = parse_status(&status, OP)?;
    let waited_for: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sitq_deps AS d JOIN sitq_tasks AS x ON x.id = d.task_id \
             WHERE d.dep_id = $1 AND x.status IN ('pending', 'blocked', 'running'))",
    )
    .bind(id.0)
    .fetch_one(&mut *tx)
    .await
    .map_err(db_error(OP))?;
    if !status.is_finished() || waited_for {
        return Err(not_deletable(id, status));
    }
    sqlx::query(DELETE_ONE)
        .bind(id.0)
        .execute(&mut *tx)
        .await
        .map_err(db_error(OP))?;
    tx.commit().await.map_err(db_error(OP))
}
