//! Dependencies between tasks: enqueue with dependencies, the resolution of
//! dependents when a task finishes, retries, claim inputs, workflows.
//!
//! Tasks without dependencies never come here: the plain enqueue, claim and
//! completion statements stay as they were, and a finishing row looks for
//! dependents only when its `has_dependents` flag is set. Every write runs
//! in the writer's transaction, so the status read at enqueue and the
//! resolution at finish are serialised with each other across processes.

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, params};
use sitq_core::{
    CancelRequest, ClaimedTask, DEPENDENCY_CANCELLED_BY, DepRef, Enqueued, Error, FailureKind,
    Finished, InputMode, NewTask, NewWorkflow, StoredWorkflow, TaskFailure, TaskId, TaskInputs,
    TaskStatus, WorkflowId, WorkflowInfo, WorkflowTask,
};

use super::write::{Effects, insert_unique};
use super::{count, json_ids, status};
use crate::time;

/// A task as its dependents see it.
#[derive(Clone, Debug)]
struct DepInfo {
    name: String,
    status: TaskStatus,
}

/// A task that just finished and has dependents to resolve.
#[derive(Clone, Debug)]
pub(crate) struct Done {
    pub(crate) id: TaskId,
    pub(crate) name: String,
    pub(crate) status: TaskStatus,
}

/// Every column a task with dependencies (or in a workflow) is stored with.
const INSERT: &str = "INSERT INTO sitq_tasks \
     (created_at, name, queue, payload, priority, max_attempts, run_at, sequence, status, \
      workflow_id, deps_pending, after_finished, input_mode, has_dependents, \
      dependents_resolved, finished_at, error_kind, error, cancel_requested_at, cancelled_by, \
      cancel_reason, trace_context) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, \
      ?16, ?19, ?20, ?21)";

/// Whether `tasks` need this module's insert: some has dependencies.
pub(crate) fn any_deps(tasks: &[NewTask]) -> bool {
    tasks.iter().any(|task| !task.deps.is_empty())
}

/// Stores `tasks` with their dependencies (`Backend::enqueue`, rule 1), in
/// the workflow `workflow` when given; unique keys are honoured as by
/// `insert_unique`. The inner error (an unknown dependency, a `Batch`
/// index that is not earlier) is found before anything is written.
pub(crate) fn insert(
    conn: &Connection,
    tasks: &[NewTask],
    now: i64,
    workflow: Option<WorkflowId>,
    effects: &mut Effects,
) -> rusqlite::Result<sitq_core::Result<Vec<Enqueued>>> {
    // Checks first, so that a refusal leaves nothing behind.
    let mut external: Vec<i64> = Vec::new();
    let mut seen = HashSet::new();
    let mut needed = vec![false; tasks.len()];
    for (position, task) in tasks.iter().enumerate() {
        for (dep, _) in task.deps.edges() {
            match dep {
                DepRef::Task(id) => {
                    if seen.insert(id.0) {
                        external.push(id.0);
                    }
                }
                DepRef::Batch(index) if index < position => needed[index] = true,
                DepRef::Batch(index) => {
                    return Ok(Err(Error::InvalidOptions(format!(
                        "task {position} ({}) depends on task {index} of the same batch, which is not an earlier one",
                        task.name
                    ))));
                }
            }
        }
    }
    let mut known: HashMap<i64, DepInfo> = HashMap::with_capacity(external.len());
    if !external.is_empty() {
        let ids = json_ids(external.iter().copied());
        let mut statement = conn.prepare_cached(
            "SELECT id, name, status FROM sitq_tasks WHERE id IN (SELECT value FROM json_each(?1))",
        )?;
        let rows = statement.query_map([&ids], |row| {
            let text: String = row.get(2)?;
            Ok((
                row.get::<_, i64>(0)?,
                DepInfo {
                    name: row.get(1)?,
                    status: status(&text, 2)?,
                },
            ))
        })?;
        for row in rows {
            let (id, info) = row?;
            known.insert(id, info);
        }
        if let Some(missing) = external.iter().find(|id| !known.contains_key(id)) {
            return Ok(Err(Error::NotFound(TaskId(*missing))));
        }
        // A finished row that had no dependents had none to resolve (it may
        // predate migration 7, when nothing marked that): mark it resolved,
        // or the repair sweep would count it for the new dependents again.
        conn.prepare_cached(
            "UPDATE sitq_tasks SET has_dependents = 1, \
                 dependents_resolved = CASE \
                     WHEN status IN ('succeeded', 'failed', 'cancelled') THEN 1 \
                     ELSE dependents_resolved END \
             WHERE id IN (SELECT value FROM json_each(?1)) AND has_dependents = 0",
        )?
        .execute([&ids])?;
    }

    let mut insert = conn.prepare_cached(INSERT)?;
    let mut edge = conn.prepare_cached(
        "INSERT INTO sitq_deps (task_id, ord, dep_id, input) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut stored: Vec<Enqueued> = Vec::with_capacity(tasks.len());
    for (position, task) in tasks.iter().enumerate() {
        if task.unique.is_some() {
            // A unique task has no dependencies (`Queue` refuses both); its
            // row (or its key holder's) may still be a dependency.
            let [one] = insert_unique(conn, std::slice::from_ref(task), now)?[..] else {
                return Err(rusqlite::Error::StatementChangedRows(0));
            };
            if needed[position] {
                conn.prepare_cached("UPDATE sitq_tasks SET has_dependents = 1 WHERE id = ?1")?
                    .execute([one.id.0])?;
                let info = lookup(conn, one.id)?;
                known.insert(one.id.0, info);
            }
            effects.work |= !one.duplicate;
            stored.push(one);
            continue;
        }
        // The distinct dependencies, in the order first given.
        let mut distinct: Vec<i64> = Vec::new();
        let mut edges: Vec<(i64, bool)> =
            Vec::with_capacity(task.deps.after.len() + task.deps.inputs.len());
        let mut once = HashSet::new();
        for (dep, input) in task.deps.edges() {
            let id = match dep {
                DepRef::Task(id) => id.0,
                // Checked above: an earlier task of this call.
                DepRef::Batch(index) => stored.get(index).map_or(0, |e| e.id.0),
            };
            edges.push((id, input));
            if once.insert(id) {
                distinct.push(id);
            }
        }
        let after_finished = task.deps.after_finished;
        let mut waiting = 0_i64;
        let mut failed: Option<String> = None;
        for id in &distinct {
            let Some(info) = known.get(id) else {
                return Err(rusqlite::Error::QueryReturnedNoRows);
            };
            let resolved = match info.status {
                TaskStatus::Succeeded => true,
                TaskStatus::Failed | TaskStatus::Cancelled if after_finished => true,
                TaskStatus::Failed | TaskStatus::Cancelled => {
                    if failed.is_none() {
                        failed = Some(reason(TaskId(*id), &info.name, info.status));
                    }
                    true
                }
                _ => false,
            };
            if !resolved {
                waiting += 1;
            }
        }
        let status = match (&failed, waiting) {
            (Some(_), _) => TaskStatus::Cancelled,
            (None, 0) => TaskStatus::Pending,
            (None, _) => TaskStatus::Blocked,
        };
        let error = failed
            .as_deref()
            .map(|reason| CancelRequest::message(DEPENDENCY_CANCELLED_BY, Some(reason)));
        let finished_at = failed.is_some().then_some(now);
        insert.execute(params![
            now,
            task.name,
            task.queue,
            task.payload,
            task.priority,
            task.max_attempts,
            time::to_micros(task.run_at),
            task.sequence,
            status.as_str(),
            workflow.map(|w| w.0),
            if status == TaskStatus::Blocked {
                waiting
            } else {
                0
            },
            after_finished,
            task.deps.input_mode.as_i16(),
            needed[position],
            // Its dependents in this call are computed here.
            failed.is_some(),
            finished_at,
            failed.as_ref().map(|_| FailureKind::Cancelled.as_str()),
            error,
            failed.as_ref().map(|_| DEPENDENCY_CANCELLED_BY),
            failed,
            task.trace,
        ])?;
        let id = TaskId(conn.last_insert_rowid());
        for (ord, (dep, input)) in edges.iter().enumerate() {
            edge.execute(params![id.0, ord as i64, dep, input])?;
        }
        match status {
            TaskStatus::Pending => effects.work = true,
            TaskStatus::Cancelled => effects.finished.push(Finished {
                id,
                name: task.name.clone(),
                status,
                attempts: 0,
                result: None,
                failure: error
                    .clone()
                    .map(|message| TaskFailure::new(FailureKind::Cancelled, message)),
            }),
            _ => {}
        }
        if needed[position] {
            known.insert(
                id.0,
                DepInfo {
                    name: task.name.clone(),
                    status,
                },
            );
        }
        stored.push(Enqueued {
            id,
            duplicate: false,
        });
    }
    Ok(Ok(stored))
}

/// Name and status of one stored task.
fn lookup(conn: &Connection, id: TaskId) -> rusqlite::Result<DepInfo> {
    conn.prepare_cached("SELECT name, status FROM sitq_tasks WHERE id = ?1")?
        .query_row([id.0], |row| {
            let text: String = row.get(1)?;
            Ok(DepInfo {
                name: row.get(0)?,
                status: status(&text, 1)?,
            })
        })
}

/// The cancel reason of a dependent of `id`, which failed or was cancelled.
fn reason(id: TaskId, name: &str, status: TaskStatus) -> String {
    match status {
        TaskStatus::Failed => format!("dependency {id} ({name}) failed"),
        _ => format!("dependency {id} ({name}) was cancelled"),
    }
}

/// Stores a workflow (rule 6): its row, then its tasks as by [`insert`],
/// each marked with its id; the final task is the last one.
pub(crate) fn insert_workflow(
    conn: &Connection,
    workflow: &NewWorkflow,
    now: i64,
    effects: &mut Effects,
) -> rusqlite::Result<sitq_core::Result<StoredWorkflow>> {
    if workflow.tasks.is_empty() {
        return Ok(Err(Error::InvalidOptions(format!(
            "workflow {:?} has no tasks",
            workflow.name
        ))));
    }
    if let Some((position, task)) = workflow
        .tasks
        .iter()
        .enumerate()
        .find(|(_, task)| task.unique.is_some())
    {
        return Ok(Err(Error::InvalidOptions(format!(
            "task {position} ({}) of workflow {:?} has a unique key; workflow tasks cannot be deduplicated",
            task.name, workflow.name
        ))));
    }
    conn.prepare_cached(
        "INSERT INTO sitq_workflows (name, created_at, final_task) VALUES (?1, ?2, 0)",
    )?
    .execute(params![workflow.name, now])?;
    let id = WorkflowId(conn.last_insert_rowid());
    let mut mine = Effects::default();
    let stored = match insert(conn, &workflow.tasks, now, Some(id), &mut mine)? {
        Ok(stored) => stored,
        Err(err) => {
            // Refused before any task was written: only the row to undo.
            conn.prepare_cached("DELETE FROM sitq_workflows WHERE id = ?1")?
                .execute([id.0])?;
            return Ok(Err(err));
        }
    };
    let tasks: Vec<TaskId> = stored.iter().map(|e| e.id).collect();
    let last = tasks.last().map_or(0, |id| id.0);
    conn.prepare_cached("UPDATE sitq_workflows SET final_task = ?2 WHERE id = ?1")?
        .execute(params![id.0, last])?;
    effects.absorb(mine);
    Ok(Ok(StoredWorkflow { id, tasks }))
}

/// Resolves the blocked dependents of tasks that just finished (rule 2),
/// transitively, in a savepoint of its own: should it fail, the finish
/// stands and the rows keep `dependents_resolved` unset, for the sweep in
/// [`sweep`] (run by `recover_expired`) to repair.
pub(crate) fn resolve(conn: &Connection, finished: Vec<Done>, now: i64, effects: &mut Effects) {
    if finished.is_empty() {
        return;
    }
    let mut mine = Effects::default();
    let result = (|| {
        conn.execute_batch("SAVEPOINT sitq_resolve")?;
        match resolve_rounds(conn, finished, now, &mut mine) {
            Ok(()) => conn.execute_batch("RELEASE sitq_resolve"),
            Err(err) => {
                let _ = conn.execute_batch("ROLLBACK TO sitq_resolve; RELEASE sitq_resolve");
                Err(err)
            }
        }
    })();
    match result {
        Ok(()) => effects.absorb(mine),
        Err(err) => tracing::warn!(
            error = %err,
            "could not resolve the dependents of finished tasks; recover_expired will"
        ),
    }
}

/// Blocked dependents of the tasks in `?1` (a JSON array of ids).
macro_rules! dependents_of {
    () => {
        "id IN (SELECT task_id FROM sitq_deps WHERE dep_id IN (SELECT value FROM json_each(?1)))"
    };
}

fn resolve_rounds(
    conn: &Connection,
    finished: Vec<Done>,
    now: i64,
    effects: &mut Effects,
) -> rusqlite::Result<()> {
    let mut round = finished;
    while !round.is_empty() {
        let succeeded = json_ids(
            round
                .iter()
                .filter(|done| done.status == TaskStatus::Succeeded)
                .map(|done| done.id.0),
        );
        let failed: Vec<&Done> = round
            .iter()
            .filter(|done| done.status != TaskStatus::Succeeded)
            .collect();
        if failed.len() < round.len() {
            effects.work |= release(conn, &succeeded, false)?;
        }
        let mut next = Vec::new();
        if !failed.is_empty() {
            let ids = json_ids(failed.iter().map(|done| done.id.0));
            effects.work |= release(conn, &ids, true)?;
            let mut cancel = conn.prepare_cached(
                "UPDATE sitq_tasks SET status = 'cancelled', finished_at = ?2, \
                     lease_until = NULL, cancel_requested_at = ?2, cancelled_by = ?3, \
                     cancel_reason = ?4, error_kind = ?5, error = ?6, unique_key = NULL, \
                     dependents_resolved = NOT has_dependents \
                 WHERE status = 'blocked' AND after_finished = 0 \
                   AND id IN (SELECT task_id FROM sitq_deps WHERE dep_id = ?1) \
                 RETURNING id, name, attempts, has_dependents",
            )?;
            for done in failed {
                let reason = reason(done.id, &done.name, done.status);
                let message = CancelRequest::message(DEPENDENCY_CANCELLED_BY, Some(&reason));
                let rows = cancel
                    .query_map(
                        params![
                            done.id.0,
                            now,
                            DEPENDENCY_CANCELLED_BY,
                            reason,
                            FailureKind::Cancelled.as_str(),
                            message,
                        ],
                        |row| {
                            Ok((
                                TaskId(row.get(0)?),
                                row.get::<_, String>(1)?,
                                row.get::<_, i64>(2)?,
                                row.get::<_, bool>(3)?,
                            ))
                        },
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                for (id, name, attempts, has_dependents) in rows {
                    // A blocked task of a sequence holds the later ones.
                    effects.work = true;
                    if has_dependents {
                        next.push(Done {
                            id,
                            name: name.clone(),
                            status: TaskStatus::Cancelled,
                        });
                    }
                    effects.finished.push(Finished {
                        id,
                        name,
                        status: TaskStatus::Cancelled,
                        attempts: count(attempts),
                        result: None,
                        failure: Some(TaskFailure::new(FailureKind::Cancelled, message.clone())),
                    });
                }
            }
        }
        conn.prepare_cached(
            "UPDATE sitq_tasks SET dependents_resolved = 1 \
             WHERE id IN (SELECT value FROM json_each(?1))",
        )?
        .execute([json_ids(round.iter().map(|done| done.id.0))])?;
        round = next;
    }
    Ok(())
}

/// Counts the finishing tasks `ids` (JSON) as resolved for their blocked
/// dependents (only those `after_finished` when `only_after_finished`),
/// each distinct one once; those left with none pending become pending.
/// Whether any did.
fn release(conn: &Connection, ids: &str, only_after_finished: bool) -> rusqlite::Result<bool> {
    conn.prepare_cached(concat!(
        "UPDATE sitq_tasks SET deps_pending = deps_pending - \
             (SELECT count(DISTINCT d.dep_id) FROM sitq_deps AS d INDEXED BY sitq_deps_dep \
              WHERE d.dep_id IN (SELECT value FROM json_each(?1)) AND d.task_id = sitq_tasks.id) \
         WHERE status = 'blocked' AND (?2 = 0 OR after_finished = 1) AND ",
        dependents_of!()
    ))?
    .execute(params![ids, only_after_finished])?;
    let ready = conn
        .prepare_cached(concat!(
            "UPDATE sitq_tasks SET status = 'pending', deps_pending = 0 \
             WHERE status = 'blocked' AND deps_pending <= 0 AND ",
            dependents_of!()
        ))?
        .execute([ids])?;
    Ok(ready > 0)
}

/// Finished tasks whose dependents were never resolved (their resolution
/// failed): resolves them now. Part of `recover_expired`.
pub(crate) fn sweep(conn: &Connection, now: i64, effects: &mut Effects) -> rusqlite::Result<()> {
    let unresolved = conn
        .prepare_cached(
            "SELECT id, name, status FROM sitq_tasks \
             WHERE has_dependents = 1 AND dependents_resolved = 0 \
               AND status IN ('succeeded', 'failed', 'cancelled')",
        )?
        .query_map([], |row| {
            let text: String = row.get(2)?;
            Ok(Done {
                id: TaskId(row.get(0)?),
                name: row.get(1)?,
                status: status(&text, 2)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    resolve(conn, unresolved, now, effects);
    Ok(())
}

/// After `retry` made task `id` pending again (rule 3): blocked again
/// while a dependency of its own is unresolved, and its blocked dependents
/// count it as unresolved again (it has not finished any more).
pub(crate) fn after_retry(conn: &Connection, id: TaskId) -> rusqlite::Result<()> {
    // Dependencies pruned since count as resolved: they finished long ago.
    const UNRESOLVED: &str = "(SELECT count(DISTINCT d.dep_id) FROM sitq_deps AS d \
         JOIN sitq_tasks AS t ON t.id = d.dep_id \
         WHERE d.task_id = sitq_tasks.id AND t.status <> 'succeeded' \
           AND (sitq_tasks.after_finished = 0 OR t.status NOT IN ('failed', 'cancelled')))";
    conn.prepare_cached(&format!(
        "UPDATE sitq_tasks SET deps_pending = {UNRESOLVED} \
         WHERE id = ?1 AND EXISTS (SELECT 1 FROM sitq_deps WHERE task_id = ?1)"
    ))?
    .execute([id.0])?;
    conn.prepare_cached(
        "UPDATE sitq_tasks SET status = 'blocked' \
         WHERE id = ?1 AND status = 'pending' AND deps_pending > 0",
    )?
    .execute([id.0])?;
    conn.prepare_cached(&format!(
        "UPDATE sitq_tasks SET deps_pending = {UNRESOLVED} \
         WHERE status = 'blocked' \
           AND id IN (SELECT task_id FROM sitq_deps WHERE dep_id = ?1)"
    ))?
    .execute([id.0])?;
    Ok(())
}

/// One input of a claimed task: the dependency and its result.
type Input = (TaskId, Option<Vec<u8>>);

/// Fills in the inputs of claimed tasks that receive results (rule 4): one
/// query for all of them. `picked` marks them with an empty [`TaskInputs`].
pub(crate) fn load_inputs(conn: &Connection, tasks: &mut [ClaimedTask]) -> rusqlite::Result<()> {
    let ids = json_ids(
        tasks
            .iter()
            .filter(|task| task.inputs.is_some())
            .map(|task| task.id.0),
    );
    let mut statement = conn.prepare_cached(
        "SELECT d.task_id, d.dep_id, CASE WHEN t.status = 'succeeded' THEN t.result END \
         FROM sitq_deps AS d LEFT JOIN sitq_tasks AS t ON t.id = d.dep_id \
         WHERE d.task_id IN (SELECT value FROM json_each(?1)) AND d.input = 1 \
         ORDER BY d.task_id, d.ord",
    )?;
    let rows = statement.query_map([ids], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            TaskId(row.get(1)?),
            row.get::<_, Option<Vec<u8>>>(2)?,
        ))
    })?;
    let mut results: HashMap<i64, Vec<Input>> = HashMap::new();
    for row in rows {
        let (task, dep, result) = row?;
        results.entry(task).or_default().push((dep, result));
    }
    for task in tasks.iter_mut() {
        if let Some(inputs) = &mut task.inputs {
            inputs.results = results.remove(&task.id.0).unwrap_or_default();
        }
    }
    Ok(())
}

/// The inputs marker `picked` puts on a task stored with `input_mode`.
pub(crate) fn inputs_marker(input_mode: i16) -> Option<TaskInputs> {
    match InputMode::from_i16(input_mode) {
        InputMode::None => None,
        mode => Some(TaskInputs {
            mode,
            results: Vec::new(),
        }),
    }
}

/// A workflow and its tasks (rule 7), read in one snapshot.
pub(crate) fn workflow(
    conn: &Connection,
    id: WorkflowId,
) -> rusqlite::Result<Option<WorkflowInfo>> {
    conn.execute_batch("SAVEPOINT sitq_workflow_read")?;
    let info = workflow_rows(conn, id);
    let _ = conn.execute_batch("RELEASE sitq_workflow_read");
    info
}

fn workflow_rows(conn: &Connection, id: WorkflowId) -> rusqlite::Result<Option<WorkflowInfo>> {
    let Some((name, created_at, final_task)) = conn
        .prepare_cached("SELECT name, created_at, final_task FROM sitq_workflows WHERE id = ?1")?
        .query_row([id.0], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })
        .optional()?
    else {
        return Ok(None);
    };
    let mut tasks = conn
        .prepare_cached(
            "SELECT id, name, status FROM sitq_tasks WHERE workflow_id = ?1 ORDER BY id",
        )?
        .query_map([id.0], |row| {
            let text: String = row.get(2)?;
            Ok(WorkflowTask {
                id: TaskId(row.get(0)?),
                name: row.get(1)?,
                status: status(&text, 2)?,
                dependencies: Vec::new(),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut statement = conn.prepare_cached(
        "SELECT DISTINCT d.task_id, d.dep_id FROM sitq_deps AS d \
         WHERE d.task_id IN (SELECT id FROM sitq_tasks WHERE workflow_id = ?1) \
         ORDER BY d.task_id, d.dep_id",
    )?;
    let rows = statement.query_map([id.0], |row| {
        Ok((row.get::<_, i64>(0)?, TaskId(row.get(1)?)))
    })?;
    let position: HashMap<i64, usize> = tasks
        .iter()
        .enumerate()
        .map(|(i, task)| (task.id.0, i))
        .collect();
    for row in rows {
        let (task, dep) = row?;
        if let Some(&i) = position.get(&task) {
            tasks[i].dependencies.push(dep);
        }
    }
    Ok(Some(WorkflowInfo {
        id,
        name,
        created_at: time::from_micros(created_at),
        final_task: TaskId(final_task),
        tasks,
    }))
}

/// After `prune` deleted the tasks `ids` (JSON): their dependency rows, and
/// the workflows among `workflows` left with no task.
pub(crate) fn pruned(
    conn: &Connection,
    ids: &str,
    workflows: impl Iterator<Item = i64>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "DELETE FROM sitq_deps WHERE task_id IN (SELECT value FROM json_each(?1))",
    )?
    .execute([ids])?;
    let mut workflows: Vec<i64> = workflows.collect();
    if workflows.is_empty() {
        return Ok(());
    }
    workflows.sort_unstable();
    workflows.dedup();
    conn.prepare_cached(
        "DELETE FROM sitq_workflows WHERE id IN (SELECT value FROM json_each(?1)) \
           AND NOT EXISTS (SELECT 1 FROM sitq_tasks WHERE workflow_id = sitq_workflows.id)",
    )?
    .execute([json_ids(workflows)])?;
    Ok(())
}
