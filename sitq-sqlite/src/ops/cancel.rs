//! Cancel, retry and delete: the admin's writes on one task. Each runs inside the
//! writer's open `BEGIN IMMEDIATE` transaction.

use rusqlite::{Connection, OptionalExtension, params};
use sitq_core::{
    CancelOutcome, CancelRequest, FailureKind, Finished, TaskFailure, TaskId, TaskStatus,
};

use super::count;
use super::deps::{self, Done};
use super::write::{Effects, status_of};

/// Cancels task `id` for `request` (see `Backend::cancel`); `None` when
/// there is no such task.
pub(crate) fn cancel(
    conn: &Connection,
    id: TaskId,
    request: &CancelRequest,
    now: i64,
    effects: &mut Effects,
) -> rusqlite::Result<Option<CancelOutcome>> {
    let row: Option<(String, bool, bool)> = conn
        .prepare_cached(
            "SELECT status, started_at IS NOT NULL, cancel_requested_at IS NOT NULL \
             FROM sitq_tasks WHERE id = ?1",
        )?
        .query_row([id.0], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()?;
    let Some((current, started, requested)) = row else {
        return Ok(None);
    };
    let current = status_of(&current)?;
    let by = request.get_by();
    let reason = request.get_reason();
    match current {
        TaskStatus::Running if started => {
            if !requested {
                conn.prepare_cached(
                    "UPDATE sitq_tasks SET cancel_requested_at = ?2, cancelled_by = ?3, \
                         cancel_reason = ?4 \
                     WHERE id = ?1",
                )?
                .execute(params![id.0, now, by, reason])?;
            }
            effects.cancelled.push(id);
            Ok(Some(CancelOutcome::Requested))
        }
        TaskStatus::Pending | TaskStatus::Blocked | TaskStatus::Running => {
            // A reserved claim (running, never started) gives its attempt back.
            let (name, attempts, has_dependents): (String, i64, bool) = conn
                .prepare_cached(
                    "UPDATE sitq_tasks SET status = 'cancelled', finished_at = ?2, \
                         lease_until = NULL, \
                         attempts = CASE WHEN status = 'running' THEN attempts - 1 \
                             ELSE attempts END, \
                         cancel_requested_at = ?2, cancelled_by = ?3, cancel_reason = ?4, \
                         error_kind = ?5, error = ?6, unique_key = NULL, \
                         dependents_resolved = NOT has_dependents \
                     WHERE id = ?1 \
                     RETURNING name, attempts, has_dependents",
                )?
                .query_row(
                    params![
                        id.0,
                        now,
                        by,
                        reason,
                        FailureKind::Cancelled.as_str(),
                        CancelRequest::message(by, reason)
                    ],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )?;
            if has_dependents {
                let done = Done {
                    id,
                    name: name.clone(),
                    status: TaskStatus::Cancelled,
                };
                deps::resolve(conn, vec![done], now, effects);
            }
            if current == TaskStatus::Running {
                effects.cancelled.push(id);
            }
            // A cancelled task releases its sequence or concurrency slot.
            effects.work = true;
            effects.finished.push(Finished {
                id,
                name,
                status: TaskStatus::Cancelled,
                attempts: count(attempts),
                result: None,
                failure: Some(TaskFailure::new(
                    FailureKind::Cancelled,
                    CancelRequest::message(by, reason),
                )),
            });
            Ok(Some(CancelOutcome::Cancelled))
        }
        finished => Ok(Some(CancelOutcome::AlreadyFinished(finished))),
    }
}

/// What [`retry`] found.
#[derive(Debug)]
pub(crate) enum Retried {
    /// Pending again.
    Done,
    /// No such task.
    NotFound,
    /// Neither failed nor cancelled.
    Refused(TaskStatus),
}

/// Runs a failed or cancelled task again with fresh attempts.
pub(crate) fn retry(
    conn: &Connection,
    id: TaskId,
    now: i64,
    effects: &mut Effects,
) -> rusqlite::Result<Retried> {
    let changed = conn
        .prepare_cached(
            "UPDATE sitq_tasks SET status = 'pending', attempts = 0, run_at = ?2, \
                 worker_id = NULL, lease_until = NULL, started_at = NULL, finished_at = NULL, \
                 result = NULL, cancel_requested_at = NULL, cancelled_by = NULL, \
                 cancel_reason = NULL, dependents_resolved = 0 \
             WHERE id = ?1 AND status IN ('failed', 'cancelled')",
        )?
        .execute(params![id.0, now])?;
    if changed > 0 {
        deps::after_retry(conn, id)?;
        effects.work = true;
        effects.retried.push(id);
        return Ok(Retried::Done);
    }
    let current: Option<String> = conn
        .prepare_cached("SELECT status FROM sitq_tasks WHERE id = ?1")?
        .query_row([id.0], |row| row.get(0))
        .optional()?;
    match current {
        None => Ok(Retried::NotFound),
        Some(text) => Ok(Retried::Refused(status_of(&text)?)),
    }
}

/// What [`delete`] found.
#[derive(Debug)]
pub(crate) enum Deleted {
    /// Gone, with its history.
    Done,
    /// No such task.
    NotFound,
    /// Unfinished, or finished with an unfinished dependent waiting for it.
    Refused(TaskStatus),
}

/// Deletes one finished task with its failure history and dependency rows
/// (and its workflow, when it was the last task of one).
pub(crate) fn delete(conn: &Connection, id: TaskId) -> rusqlite::Result<Deleted> {
    let found: Option<(String, Option<i64>)> = conn
        .prepare_cached("SELECT status, workflow_id FROM sitq_tasks WHERE id = ?1")?
        .query_row([id.0], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let Some((text, workflow)) = found else {
        return Ok(Deleted::NotFound);
    };
    let status = status_of(&text)?;
    let waited_for = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM sitq_deps AS d JOIN sitq_tasks AS t ON t.id = d.task_id \
                 WHERE d.dep_id = ?1 AND t.status IN ('pending', 'blocked', 'running'))",
        )?
        .query_row([id.0], |row| row.get::<_, bool>(0))?;
    if !status.is_finished() || waited_for {
        return Ok(Deleted::Refused(status));
    }
    conn.prepare_cached("DELETE FROM sitq_tasks WHERE id = ?1")?
        .execute([id.0])?;
    conn.prepare_cached("DELETE FROM sitq_failures WHERE task_id = ?1")?
        .execute([id.0])?;
    deps::pruned(conn, &format!("[{}]", id.0), workflow.into_iter())?;
    Ok(Deleted::Done)
}
