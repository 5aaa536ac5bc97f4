//! Tasks with dependencies: storing them (and workflows), retrying them,
//! and the results they receive when claimed.
//!
//! Tasks without dependencies never come here: their enqueue, claim and
//! completion keep their one statement.

use std::collections::{BTreeMap, HashMap};

use sitq_core::{
    ClaimedTask, DepRef, Error, NewTask, NewWorkflow, Result, StoredWorkflow, TaskId, TaskInputs,
    TaskStatus, WorkflowId, WorkflowInfo, WorkflowTask,
};
use sqlx::postgres::{PgConnection, PgPool};

use crate::connect::db_error;

use super::failure::{Failure, failure};
use crate::notify::notified_cte;

use super::resolve::{self, Resolution};
use super::to_int;

const OP: &str = "enqueueing tasks with dependencies";

/// Step 1 of an enqueue with dependencies: marks the stored dependencies
/// as having dependents and reads their state. The row lock this takes
/// orders the enqueue with a concurrent finish of a dependency: a finish
/// that comes first is read here (READ COMMITTED re-reads the row it waited
/// for), one that comes later waits for this transaction and then sees
/// `has_dependents`, and its follow-up resolution sees the new edges.
/// The rows are locked in id order, so two such enqueues sharing
/// dependencies queue up rather than deadlock; `RETURNING` gives the
/// newest version of each row.
const LOCK_DEPENDENCIES: &str = "
WITH locked AS MATERIALIZED (
    SELECT id FROM sitq_tasks WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE
)
UPDATE sitq_tasks AS t SET has_dependents = true
FROM locked
WHERE t.id = locked.id
RETURNING t.id, t.name, t.status, t.dependents_resolved";

/// Ids for the new rows, drawn before inserting them: dependents need their
/// dependencies' ids, and a cancel reason names them.
const NEXT_IDS: &str = "
SELECT nextval(pg_get_serial_sequence('sitq_tasks', 'id'))
FROM generate_series(1, $1)";

/// The rows, their edges and the `NOTIFY`, in one statement. A row with a
/// reason is stored cancelled by that dependency; `$17` is the error
/// message with `%s` for the reason, `$18` who cancelled, `$21` the trace
/// contexts.
const INSERT: &str = concat!(
    "
WITH changed AS (
    INSERT INTO sitq_tasks (id, name, queue, payload, priority, max_attempts, run_at, sequence,
        status, deps_pending, after_finished, input_mode, has_dependents, dependents_resolved,
        workflow_id, finished_at, error_kind, error, cancel_requested_at, cancelled_by,
        cancel_reason, trace_context)
    OVERRIDING SYSTEM VALUE
    SELECT id, name, queue, payload, priority, max_attempts, run_at, sequence,
        CASE WHEN reason IS NOT NULL THEN 'cancelled'
             WHEN deps_pending > 0 THEN 'blocked' ELSE 'pending' END,
        deps_pending, after_finished, input_mode, has_dependents, reason IS NOT NULL,
        $16,
        CASE WHEN reason IS NOT NULL THEN now() END,
        CASE WHEN reason IS NOT NULL THEN 'cancelled' END,
        CASE WHEN reason IS NOT NULL THEN format($17, reason) END,
        CASE WHEN reason IS NOT NULL THEN now() END,
        CASE WHEN reason IS NOT NULL THEN $18 END,
        reason, trace_context
    FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bytea[], $5::int[], $6::int[],
                $7::timestamptz[], $8::text[], $9::int[], $10::bool[], $11::smallint[],
                $12::bool[], $13::text[], $21::text[])
        AS new(id, name, queue, payload, priority, max_attempts, run_at, sequence,
               deps_pending, after_finished, input_mode, has_dependents, reason, trace_context)
    RETURNING id, status
), edges AS (
    INSERT INTO sitq_deps (task_id, ord, dep_id, input)
    SELECT * FROM UNNEST($14::bigint[], $19::int[], $15::bigint[], $20::bool[])
), ",
    notified_cte!(),
    "
SELECT count(*) FROM changed CROSS JOIN (SELECT count(*) FROM notified) AS notified"
);

/// What an enqueue with dependencies stored and changed.
#[derive(Debug, Default)]
pub(crate) struct Stored {
    /// The new tasks' ids, in order.
    pub(crate) ids: Vec<TaskId>,
    /// The workflow's id, for a workflow.
    pub(crate) workflow: Option<WorkflowId>,
    /// New pending tasks (work), tasks stored cancelled (finished), and
    /// what resolving finished dependencies on the way changed.
    pub(crate) resolution: Resolution,
}

/// A stored dependency as [`LOCK_DEPENDENCIES`] read it.
struct DepState {
    name: String,
    status: String,
}

/// How one new task is stored.
struct Plan {
    deps_pending: i32,
    /// Set when a dependency failed or was cancelled: stored cancelled.
    reason: Option<String>,
}

/// Attempts of a whole transaction that PostgreSQL aborted as a deadlock.
const MAX_DEADLOCK_RETRIES: usize = 3;

/// Stores `tasks` (some with dependencies; none with a unique key) in one
/// transaction, as a workflow called `workflow` when given.
pub(crate) async fn enqueue(
    pool: &PgPool,
    tasks: &[NewTask],
    workflow: Option<&str>,
) -> Result<Stored> {
    if tasks.iter().any(|task| task.unique.is_some()) {
        return Err(Error::InvalidOptions(
            "a batch with dependencies cannot also hold tasks with unique keys; enqueue them \
             separately"
                .into(),
        ));
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut tx = pool.begin().await.map_err(db_error(OP))?;
        match enqueue_on(&mut tx, tasks, workflow).await {
            Ok(stored) => {
                tx.commit().await.map_err(db_error(OP))?;
                return Ok(stored);
            }
            Err(Failure::Deadlock { .. }) if attempt < MAX_DEADLOCK_RETRIES => drop(tx),
            Err(failure) => return Err(failure.into_error()),
        }
    }
}

/// Stores `tasks` on `conn`, which must be inside a transaction (the
/// caller's, or [`enqueue`]'s); see `Backend::enqueue` for the rules.
pub(crate) async fn enqueue_on(
    conn: &mut PgConnection,
    tasks: &[NewTask],
    workflow: Option<&str>,
) -> std::result::Result<Stored, Failure> {
    let mut stored = Stored::default();
    if tasks.is_empty() {
        return Ok(stored);
    }
    // 1. Lock the stored dependencies, and read them.
    let mut external: Vec<i64> = tasks
        .iter()
        .flat_map(|task| task.deps.edges())
        .filter_map(|(dep, _)| match dep {
            DepRef::Task(id) => Some(id.0),
            DepRef::Batch(_) => None,
        })
        .collect();
    external.sort_unstable();
    external.dedup();
    let mut states: HashMap<i64, DepState> = HashMap::with_capacity(external.len());
    if !external.is_empty() {
        let rows: Vec<(i64, String, String, bool)> = sqlx::query_as(LOCK_DEPENDENCIES)
            .bind(&external)
            .fetch_all(&mut *conn)
            .await
            .map_err(failure(OP))?;
        // A finished dependency whose dependents are not resolved yet (its
        // follow-up statement is still to run, or never ran) is resolved
        // now, under our lock: the new tasks count it as finished, so its
        // resolution must not count it for them again.
        let unresolved: Vec<i64> = rows
            .iter()
            .filter(|(_, _, status, resolved)| is_finished(status) && !resolved)
            .map(|(id, ..)| *id)
            .collect();
        for (id, name, status, _) in rows {
            states.insert(id, DepState { name, status });
        }
        if let Some(missing) = external.iter().find(|id| !states.contains_key(id)) {
            return Err(Failure::Other(Error::NotFound(TaskId(*missing))));
        }
        if !unresolved.is_empty() {
            let resolution = resolve::resolve_on(conn, unresolved)
                .await
                .map_err(failure(OP))?;
            stored.resolution.merge(resolution);
        }
    }

    // 2. Ids for the new rows, in batch order.
    let count = i64::try_from(tasks.len()).unwrap_or(i64::MAX);
    let mut ids: Vec<i64> = sqlx::query_scalar(NEXT_IDS)
        .bind(count)
        .fetch_all(&mut *conn)
        .await
        .map_err(failure(OP))?;
    ids.sort_unstable();
    if ids.len() != tasks.len() {
        return Err(Failure::Other(Error::database(
            OP,
            format!("drew {} ids for {} tasks", ids.len(), tasks.len()),
        )));
    }

    // 3. Each task's status, in batch order (a batch dependency is earlier).
    let mut plans: Vec<Plan> = Vec::with_capacity(tasks.len());
    let mut has_dependents = vec![false; tasks.len()];
    for (i, task) in tasks.iter().enumerate() {
        // Distinct dependencies by id, lowest first (the reason names the lowest).
        let mut deps: BTreeMap<i64, Option<usize>> = BTreeMap::new();
        for (dep, _) in task.deps.edges() {
            match dep {
                DepRef::Task(id) => {
                    deps.insert(id.0, None);
                }
                DepRef::Batch(j) if j < i => {
                    has_dependents[j] = true;
                    deps.insert(ids[j], Some(j));
                }
                DepRef::Batch(j) => {
                    return Err(Failure::Other(Error::InvalidOptions(format!(
                        "task {i} ({}) of the batch depends on task {j} of the batch, which \
                         does not come before it",
                        task.name
                    ))));
                }
            }
        }
        let mut plan = Plan {
            deps_pending: 0,
            reason: None,
        };
        for (id, batch) in deps {
            let (name, status) = match batch {
                Some(j) => (
                    tasks[j].name.as_str(),
                    if plans[j].reason.is_some() {
                        "cancelled"
                    } else {
                        "blocked"
                    },
                ),
                None => match states.get(&id) {
                    Some(state) => (state.name.as_str(), state.status.as_str()),
                    None => return Err(Failure::Other(Error::NotFound(TaskId(id)))),
                },
            };
            match status {
                "succeeded" => {}
                "failed" | "cancelled" if task.deps.after_finished => {}
                "failed" | "cancelled" => {
                    if plan.reason.is_none() {
                        let how = if status == "failed" {
                            "failed"
                        } else {
                            "was cancelled"
                        };
                        plan.reason = Some(format!("dependency {id} ({name}) {how}"));
                    }
                }
                _ => plan.deps_pending += 1,
            }
        }
        plans.push(plan);
    }

    // 4. The workflow row, then the tasks and their edges.
    let workflow_id = match workflow {
        Some(name) => {
            let final_task = ids.last().copied().unwrap_or_default();
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO sitq_workflows (name, final_task) VALUES ($1, $2) RETURNING id",
            )
            .bind(name)
            .bind(final_task)
            .fetch_one(&mut *conn)
            .await
            .map_err(failure(OP))?;
            stored.workflow = Some(WorkflowId(id));
            Some(id)
        }
        None => None,
    };
    insert(conn, tasks, &ids, &plans, &has_dependents, workflow_id).await?;
    stored
        .resolution
        .notices
        .add(
            ids.iter()
                .zip(&plans)
                .map(|(id, plan)| match (&plan.reason, plan.deps_pending) {
                    (Some(_), _) => (*id, "cancelled"),
                    (None, 0) => (*id, "pending"),
                    (None, _) => (*id, "blocked"),
                }),
        );
    stored.ids = ids.into_iter().map(TaskId).collect();
    Ok(stored)
}

/// Step 4: the rows and their edges, in one statement ([`INSERT`]).
async fn insert(
    conn: &mut PgConnection,
    tasks: &[NewTask],
    ids: &[i64],
    plans: &[Plan],
    has_dependents: &[bool],
    workflow_id: Option<i64>,
) -> std::result::Result<(), Failure> {
    let count = tasks.len();
    let mut names = Vec::with_capacity(count);
    let mut queues = Vec::with_capacity(count);
    let mut payloads: Vec<&[u8]> = Vec::with_capacity(count);
    let mut priorities = Vec::with_capacity(count);
    let mut max_attempts = Vec::with_capacity(count);
    let mut run_ats = Vec::with_capacity(count);
    let mut sequences = Vec::with_capacity(count);
    let mut pending = Vec::with_capacity(count);
    let mut after_finished = Vec::with_capacity(count);
    let mut input_modes = Vec::with_capacity(count);
    let mut reasons = Vec::with_capacity(count);
    let mut traces: Vec<Option<&str>> = Vec::with_capacity(count);
    let mut edge_tasks = Vec::new();
    let mut edge_ords = Vec::new();
    let mut edge_deps = Vec::new();
    let mut edge_inputs = Vec::new();
    for ((task, id), plan) in tasks.iter().zip(ids).zip(plans) {
        names.push(task.name.as_str());
        queues.push(task.queue.as_str());
        payloads.push(task.payload.as_slice());
        priorities.push(task.priority);
        max_attempts.push(to_int(task.max_attempts));
        run_ats.push(task.run_at);
        sequences.push(task.sequence.as_deref());
        pending.push(plan.deps_pending);
        after_finished.push(task.deps.after_finished);
        input_modes.push(task.deps.input_mode.as_i16());
        reasons.push(plan.reason.as_deref());
        traces.push(task.trace.as_deref());
        for (ord, (dep, input)) in task.deps.edges().enumerate() {
            let dep_id = match dep {
                DepRef::Task(dep) => dep.0,
                // Checked while planning: an earlier task of the batch.
                DepRef::Batch(j) => ids.get(j).copied().unwrap_or_default(),
            };
            edge_tasks.push(*id);
            edge_ords.push(i32::try_from(ord).unwrap_or(i32::MAX));
            edge_deps.push(dep_id);
            edge_inputs.push(input);
        }
    }
    let template = resolve::message_template();
    sqlx::query(INSERT)
        .bind(ids)
        .bind(names)
        .bind(queues)
        .bind(payloads)
        .bind(priorities)
        .bind(max_attempts)
        .bind(run_ats)
        .bind(sequences)
        .bind(pending)
        .bind(after_finished)
        .bind(input_modes)
        .bind(has_dependents)
        .bind(reasons)
        .bind(edge_tasks)
        .bind(edge_deps)
        .bind(workflow_id)
        .bind(template)
        .bind(sitq_core::DEPENDENCY_CANCELLED_BY)
        .bind(edge_ords)
        .bind(edge_inputs)
        .bind(traces)
        .execute(&mut *conn)
        .await
        .map_err(failure(OP))?;
    Ok(())
}

fn is_finished(status: &str) -> bool {
    matches!(status, "succeeded" | "failed" | "cancelled")
}

/// Stores `workflow` (see `Backend::enqueue_workflow`).
pub(crate) async fn enqueue_workflow(
    pool: &PgPool,
    workflow: NewWorkflow,
) -> Result<(StoredWorkflow, Resolution)> {
    if workflow.tasks.is_empty() {
        return Err(Error::InvalidOptions(format!(
            "workflow {:?} has no tasks",
            workflow.name
        )));
    }
    let stored = enqueue(pool, &workflow.tasks, Some(&workflow.name)).await?;
    let id = stored
        .workflow
        .ok_or_else(|| Error::database(OP, "the workflow row was not stored"))?;
    Ok((
        StoredWorkflow {
            id,
            tasks: stored.ids,
        },
        stored.resolution,
    ))
}

/// A workflow's task as [`workflow`] reads it.
type TaskRow = (i64, String, String, Vec<i64>);

/// Workflow `id` and its tasks (see `Backend::workflow`).
pub(crate) async fn workflow(pool: &PgPool, id: WorkflowId) -> Result<Option<WorkflowInfo>> {
    const OP: &str = "reading a workflow";
    let mut tx = pool.begin().await.map_err(db_error(OP))?;
    let row: Option<(String, chrono::DateTime<chrono::Utc>, i64)> =
        sqlx::query_as("SELECT name, created_at, final_task FROM sitq_workflows WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error(OP))?;
    let Some((name, created_at, final_task)) = row else {
        return Ok(None);
    };
    let rows: Vec<TaskRow> = sqlx::query_as(
        "
SELECT t.id, t.name, t.status,
       ARRAY(SELECT DISTINCT d.dep_id FROM sitq_deps AS d WHERE d.task_id = t.id ORDER BY d.dep_id)
FROM sitq_tasks AS t
WHERE t.workflow_id = $1
ORDER BY t.id",
    )
    .bind(id.0)
    .fetch_all(&mut *tx)
    .await
    .map_err(db_error(OP))?;
    tx.commit().await.map_err(db_error(OP))?;
    let tasks = rows
        .into_iter()
        .map(|(id, name, status, deps)| {
            Ok(WorkflowTask {
                id: TaskId(id),
                name,
                status: status
                    .parse::<TaskStatus>()
                    .map_err(|error| Error::database(OP, format!("stored status: {error}")))?,
                dependencies: deps.into_iter().map(TaskId).collect(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(WorkflowInfo {
        id,
        name,
        created_at,
        final_task: TaskId(final_task),
        tasks,
    }))
}

/// One input of a claimed task: the dependency and its result, if any.
type Input = (TaskId, Option<Vec<u8>>);

/// Fills in the inputs of the claimed `tasks` that receive results (marked
/// by the claim with `inputs` of no results): one query for all of them,
/// none when no task receives any.
pub(crate) async fn load_inputs(pool: &PgPool, tasks: &mut [ClaimedTask]) -> Result<()> {
    const OP: &str = "reading the results claimed tasks receive";
    let ids: Vec<i64> = tasks
        .iter()
        .filter(|task| task.inputs.is_some())
        .map(|task| task.id.0)
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    // One primary-key lookup per input (a subquery, not a join), whatever
    // the statistics of a table that just grew by a burst say.
    let rows: Vec<(i64, i64, Option<Vec<u8>>)> = sqlx::query_as(
        "
SELECT d.task_id, d.dep_id,
       (SELECT x.result FROM sitq_tasks AS x WHERE x.id = d.dep_id AND x.status = 'succeeded')
FROM sitq_deps AS d
WHERE d.task_id = ANY($1) AND d.input
ORDER BY d.task_id, d.ord",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
    .map_err(db_error(OP))?;
    let mut by_task: HashMap<i64, Vec<Input>> = HashMap::new();
    for (task, dep, result) in rows {
        by_task.entry(task).or_default().push((TaskId(dep), result));
    }
    for task in tasks {
        if let Some(inputs) = &mut task.inputs {
            inputs.results = by_task.remove(&task.id.0).unwrap_or_default();
        }
    }
    Ok(())
}

/// The claim's mark for a task that receives results: its mode, results
/// still to read ([`load_inputs`]).
pub(crate) fn input_mark(mode: i16) -> Option<TaskInputs> {
    match sitq_core::InputMode::from_i16(mode) {
        sitq_core::InputMode::None => None,
        mode => Some(TaskInputs {
            mode,
            results: Vec::new(),
        }),
    }
}
