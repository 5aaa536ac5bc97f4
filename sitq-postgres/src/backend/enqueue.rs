//! Storing new tasks.

use sitq_core::{Error, NewTask, Result, TaskId};
use sqlx::postgres::PgPool;

use crate::connect::db_error;

use super::to_int;

/// One statement, hence one transaction: the rows and the `NOTIFY`
/// (delivered at commit) go together, in a single round trip however many
/// tasks there are. `WITH ORDINALITY … ORDER BY ord` makes the identity values
/// follow the batch's order. `notified` is materialized, so `pg_notify` runs
/// once per statement, not once per row; reading it is what makes
/// PostgreSQL run it.
const INSERT: &str = "
WITH inserted AS (
    INSERT INTO sitq_tasks (name, queue, payload, priority, max_attempts, run_at, sequence,
        trace_context)
    SELECT name, queue, payload, priority, max_attempts, run_at, sequence, trace_context
    FROM UNNEST($1::text[], $2::text[], $3::bytea[], $4::int[], $5::int[], $6::timestamptz[],
                $7::text[], $8::text[])
        WITH ORDINALITY AS new(name, queue, payload, priority, max_attempts, run_at, sequence,
                               trace_context, ord)
    ORDER BY ord
    RETURNING id
), notified AS MATERIALIZED (
    SELECT pg_notify('sitq_work', '')
)
SELECT inserted.id
FROM inserted CROSS JOIN (SELECT count(*) FROM notified) AS notified";

/// Inserts `tasks` all or nothing and notifies `sitq_work`; their ids in order.
pub(super) async fn enqueue(pool: &PgPool, tasks: Vec<NewTask>) -> Result<Vec<TaskId>> {
    if tasks.is_empty() {
        return Ok(Vec::new());
    }
    let count = tasks.len();
    let mut names = Vec::with_capacity(count);
    let mut queues = Vec::with_capacity(count);
    let mut payloads = Vec::with_capacity(count);
    let mut priorities = Vec::with_capacity(count);
    let mut max_attempts = Vec::with_capacity(count);
    let mut run_ats = Vec::with_capacity(count);
    let mut sequences = Vec::with_capacity(count);
    let mut traces = Vec::with_capacity(count);
    for task in tasks {
        names.push(task.name);
        queues.push(task.queue);
        payloads.push(task.payload);
        priorities.push(task.priority);
        max_attempts.push(to_int(task.max_attempts));
        run_ats.push(task.run_at);
        sequences.push(task.sequence);
        traces.push(task.trace);
    }
    let mut ids: Vec<i64> = sqlx::query_scalar(INSERT)
        .bind(names)
        .bind(queues)
        .bind(payloads)
        .bind(priorities)
        .bind(max_attempts)
        .bind(run_ats)
        .bind(sequences)
        .bind(traces)
        .fetch_all(pool)
        .await
        .map_err(db_error("enqueueing tasks"))?;
    // RETURNING has no defined order, but one INSERT draws its identity
    // values in row order, so ascending ids are the batch's order.
    ids.sort_unstable();
    if ids.len() != count {
        return Err(Error::database(
            "enqueueing tasks",
            format!("stored {} rows for {count} tasks", ids.len()),
        ));
    }
    Ok(ids.into_iter().map(TaskId).collect())
}
