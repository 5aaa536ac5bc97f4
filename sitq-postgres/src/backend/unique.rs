//! Storing tasks with unique keys (and any tasks inside a caller's transaction).
//!
//! The partial unique index on `(name, unique_key)` decides who holds a key:
//! `INSERT ... ON CONFLICT ... DO NOTHING` either stores the row or finds a
//! holder, waiting for a concurrent producer's insert of the same key to
//! commit or roll back first. Around it, in the same transaction:
//!
//! 1. holders of the batch's keys that no longer block (succeeded and past
//!    their window; or finished by a path that did not clear the key) let
//!    go of them, under their row locks;
//! 2. the insert;
//! 3. the holders of the keys that conflicted are read (a fresh snapshot in
//!    READ COMMITTED, so a holder committed by another producer is seen).
//!    A holder that let go between 2 and 3 (it failed just then) sends its
//!    task round again.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sitq_core::{Enqueued, Error, NewTask, Result, TaskId};
use sqlx::postgres::{PgConnection, PgPool};

use crate::connect::db_error;

use super::failure::{Failure, failure};

use super::to_int;

const OP: &str = "enqueueing tasks";

/// Step 1: keys whose holder no longer blocks are released.
const RELEASE: &str = "
UPDATE sitq_tasks SET unique_key = NULL
WHERE unique_key IS NOT NULL
  AND (name, unique_key) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))
  AND NOT (status IN ('pending', 'blocked', 'running')
      OR (status = 'succeeded' AND unique_for IS NOT NULL
          AND finished_at + unique_for * interval '1 microsecond' > now()))";

/// Step 2: the rows, in batch order; keyed rows whose key is held are skipped.
const INSERT: &str = "
INSERT INTO sitq_tasks
    (name, queue, payload, priority, max_attempts, run_at, unique_key, unique_for, sequence,
     trace_context)
SELECT name, queue, payload, priority, max_attempts, run_at, unique_key, unique_for, sequence,
    trace_context
FROM UNNEST($1::text[], $2::text[], $3::bytea[], $4::int[], $5::int[], $6::timestamptz[],
            $7::text[], $8::bigint[], $9::text[], $10::text[])
    WITH ORDINALITY AS new(name, queue, payload, priority, max_attempts, run_at, unique_key,
                           unique_for, sequence, trace_context, ord)
ORDER BY ord
ON CONFLICT (name, unique_key) WHERE unique_key IS NOT NULL DO NOTHING
RETURNING id, name, unique_key";

/// Step 3: who holds the keys that conflicted.
const HOLDERS: &str = "
SELECT id, name, unique_key FROM sitq_tasks
WHERE unique_key IS NOT NULL
  AND (name, unique_key) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))";

/// Rounds of steps 1-3 before giving up: each further round needs a holder
/// that failed or was cancelled between two statements of this transaction.
const MAX_ROUNDS: usize = 16;

/// Attempts of a whole transaction that PostgreSQL aborted as a deadlock
/// (two batches taking the same keys in different orders).
const MAX_DEADLOCK_RETRIES: usize = 3;

/// `enqueue_unique` in its own transaction: commits, or rolls back on error.
pub(super) async fn enqueue(pool: &PgPool, tasks: &[NewTask]) -> Result<Vec<Enqueued>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut tx = pool.begin().await.map_err(db_error(OP))?;
        match enqueue_on(&mut tx, tasks).await {
            Ok(enqueued) => {
                tx.commit().await.map_err(db_error(OP))?;
                return Ok(enqueued);
            }
            Err(Failure::Deadlock { .. }) if attempt < MAX_DEADLOCK_RETRIES => {
                drop(tx); // rolls back
            }
            Err(failure) => return Err(failure.into_error()),
        }
    }
}

/// Stores `tasks` on `conn`, which must be inside a transaction (the
/// caller's, or [`enqueue`]'s), honouring unique keys; notifies
/// `sitq_work` (delivered at commit) when anything was stored.
pub(crate) async fn enqueue_on(
    conn: &mut PgConnection,
    tasks: &[NewTask],
) -> std::result::Result<Vec<Enqueued>, Failure> {
    let mut answers: Vec<Option<Enqueued>> = vec![None; tasks.len()];
    // A later task with the key of an earlier one in the batch is its duplicate.
    let mut first: HashMap<(&str, &str), usize> = HashMap::new();
    let mut aliases: Vec<(usize, usize)> = Vec::new();
    let mut todo: Vec<usize> = Vec::with_capacity(tasks.len());
    for (i, task) in tasks.iter().enumerate() {
        match &task.unique {
            Some(unique) => match first.get(&(task.name.as_str(), unique.key.as_str())) {
                Some(&earlier) => aliases.push((i, earlier)),
                None => {
                    first.insert((&task.name, &unique.key), i);
                    todo.push(i);
                }
            },
            None => todo.push(i),
        }
    }
    let mut stored = false;
    for _ in 0..MAX_ROUNDS {
        if todo.is_empty() {
            break;
        }
        let (names, keys) = keys_of(tasks, &todo);
        if !keys.is_empty() {
            sqlx::query(RELEASE)
                .bind(&names)
                .bind(&keys)
                .execute(&mut *conn)
                .await
                .map_err(failure(OP))?;
        }
        let inserted = insert(conn, tasks, &todo).await?;
        stored |= !inserted.is_empty();
        let mut by_key: HashMap<(String, String), i64> = HashMap::new();
        let mut plain_ids: Vec<i64> = Vec::new();
        for (id, name, key) in inserted {
            match key {
                Some(key) => {
                    by_key.insert((name, key), id);
                }
                None => plain_ids.push(id),
            }
        }
        // One INSERT draws its identity values in row order.
        plain_ids.sort_unstable();
        let mut plain_ids = plain_ids.into_iter();
        let mut conflicted = Vec::new();
        for &i in &todo {
            let task = &tasks[i];
            let id = match &task.unique {
                Some(unique) => by_key.remove(&(task.name.clone(), unique.key.clone())),
                None => plain_ids.next(),
            };
            match (id, &task.unique) {
                (Some(id), _) => {
                    answers[i] = Some(Enqueued {
                        id: TaskId(id),
                        duplicate: false,
                    });
                }
                (None, Some(_)) => conflicted.push(i),
                (None, None) => {
                    return Err(Failure::Other(Error::database(
                        OP,
                        "PostgreSQL returned fewer rows than it stored",
                    )));
                }
            }
        }
        todo.clear();
        if conflicted.is_empty() {
            break;
        }
        let (names, keys) = keys_of(tasks, &conflicted);
        let holders: Vec<(i64, String, String)> = sqlx::query_as(HOLDERS)
            .bind(&names)
            .bind(&keys)
            .fetch_all(&mut *conn)
            .await
            .map_err(failure(OP))?;
        let holders: HashMap<(String, String), i64> = holders
            .into_iter()
            .map(|(id, name, key)| ((name, key), id))
            .collect();
        for i in conflicted {
            let task = &tasks[i];
            let key = task
                .unique
                .as_ref()
                .map(|u| u.key.clone())
                .unwrap_or_default();
            match holders.get(&(task.name.clone(), key)) {
                Some(&id) => {
                    answers[i] = Some(Enqueued {
                        id: TaskId(id),
                        duplicate: true,
                    });
                }
                // Released since the insert: try again.
                None => todo.push(i),
            }
        }
    }
    if !todo.is_empty() {
        return Err(Failure::Other(Error::database(
            OP,
            format!(
                "the unique keys of {} task(s) kept changing hands; try again",
                todo.len()
            ),
        )));
    }
    for (i, earlier) in aliases {
        answers[i] = answers[earlier].map(|holder| Enqueued {
            id: holder.id,
            duplicate: true,
        });
    }
    if stored {
        sqlx::query("SELECT pg_notify('sitq_work', '')")
            .execute(&mut *conn)
            .await
            .map_err(failure(OP))?;
    }
    answers
        .into_iter()
        .map(|answer| {
            answer.ok_or_else(|| {
                Failure::Other(Error::database(OP, "internal error: a task got no answer"))
            })
        })
        .collect()
}

/// Names and keys of the keyed tasks among `indices`.
fn keys_of(tasks: &[NewTask], indices: &[usize]) -> (Vec<String>, Vec<String>) {
    indices
        .iter()
        .filter_map(|&i| {
            let task = &tasks[i];
            task.unique
                .as_ref()
                .map(|unique| (task.name.clone(), unique.key.clone()))
        })
        .unzip()
}

/// Step 2 for the tasks at `indices`: the stored rows' id, name and key.
async fn insert(
    conn: &mut PgConnection,
    tasks: &[NewTask],
    indices: &[usize],
) -> std::result::Result<Vec<(i64, String, Option<String>)>, Failure> {
    let count = indices.len();
    let mut names = Vec::with_capacity(count);
    let mut queues = Vec::with_capacity(count);
    let mut payloads: Vec<&[u8]> = Vec::with_capacity(count);
    let mut priorities = Vec::with_capacity(count);
    let mut max_attempts = Vec::with_capacity(count);
    let mut run_ats: Vec<DateTime<Utc>> = Vec::with_capacity(count);
    let mut keys: Vec<Option<&str>> = Vec::with_capacity(count);
    let mut windows: Vec<Option<i64>> = Vec::with_capacity(count);
    let mut sequences: Vec<Option<&str>> = Vec::with_capacity(count);
    let mut traces: Vec<Option<&str>> = Vec::with_capacity(count);
    for &i in indices {
        let task = &tasks[i];
        names.push(task.name.as_str());
        queues.push(task.queue.as_str());
        payloads.push(&task.payload);
        priorities.push(task.priority);
        max_attempts.push(to_int(task.max_attempts));
        run_ats.push(task.run_at);
        keys.push(task.unique.as_ref().map(|unique| unique.key.as_str()));
        windows.push(
            task.unique
                .as_ref()
                .and_then(|unique| unique.window_micros()),
        );
        sequences.push(task.sequence.as_deref());
        traces.push(task.trace.as_deref());
    }
    sqlx::query_as(INSERT)
        .bind(names)
        .bind(queues)
        .bind(payloads)
        .bind(priorities)
        .bind(max_attempts)
        .bind(run_ats)
        .bind(keys)
        .bind(windows)
        .bind(sequences)
        .bind(traces)
        .fetch_all(&mut *conn)
        .await
        .map_err(failure(OP))
}
