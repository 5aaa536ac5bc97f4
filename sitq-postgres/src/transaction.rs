//! Enqueueing inside the caller's own transaction (the outbox pattern).

use sitq_core::{EnqueueOptions, Enqueued, Error, Queue, Result, Task, TaskHandle};
use sqlx::{Postgres, Transaction};
use tracing::Instrument;

use crate::backend::failure::Failure;
use crate::backend::{PostgresBackend, deps, unique};

/// Enqueues `task` inside the caller's transaction `tx`: the task exists if
/// and only if `tx` commits, together with the caller's own writes.
///
/// `queue` must be connected to the same PostgreSQL database as `tx` (sitq
/// cannot check that; a task stored elsewhere would be invisible to the
/// queue's workers). Workers are woken when `tx` commits (the `NOTIFY`
/// issued inside it is delivered then). Unique keys work as in
/// [`Queue::enqueue_with`]: a duplicate's handle is the holder's, marked
/// [`is_duplicate`](TaskHandle::is_duplicate); a concurrent producer of the
/// same key waits for `tx` to end. The handle's first wait checks that the
/// task exists, so after a rollback it reports [`Error::NotFound`].
///
/// `tx` must be at the default READ COMMITTED isolation level when unique
/// keys are involved: at REPEATABLE READ or SERIALIZABLE, a key taken by a
/// concurrent transaction is a serialization error (retry the transaction).
/// On an error, the transaction is left as the failed statement left it
/// (PostgreSQL aborts it): roll it back.
///
/// ```no_run
/// # async fn demo(pool: sitq_postgres::sqlx::PgPool, queue: sitq_core::Queue) -> Result<(), Box<dyn std::error::Error>> {
/// # #[derive(serde::Serialize, serde::Deserialize)] struct receipt { order: i64 }
/// # impl sitq_core::Task for receipt { const NAME: &'static str = "receipt"; type Output = (); }
/// let mut tx = pool.begin().await?;
/// sitq_postgres::sqlx::query("INSERT INTO orders (id) VALUES ($1)")
///     .bind(7_i64)
///     .execute(&mut *tx)
///     .await?;
/// let handle = sitq_postgres::enqueue_in(&mut tx, &queue, receipt { order: 7 }).await?;
/// tx.commit().await?; // the order and its receipt task, or neither
/// # drop(handle);
/// # Ok(())
/// # }
/// ```
pub async fn enqueue_in<T: Task>(
    tx: &mut Transaction<'_, Postgres>,
    queue: &Queue,
    task: T,
) -> Result<TaskHandle<T::Output>> {
    enqueue_in_with(tx, queue, task, EnqueueOptions::new()).await
}

/// [`enqueue_in`] with options (delay, priority, queue, unique key, ...).
pub async fn enqueue_in_with<T: Task>(
    tx: &mut Transaction<'_, Postgres>,
    queue: &Queue,
    task: T,
    options: EnqueueOptions,
) -> Result<TaskHandle<T::Output>> {
    let is_postgres = queue
        .backend()
        .as_any()
        .is_some_and(|backend| backend.is::<PostgresBackend>());
    if !is_postgres {
        return Err(Error::InvalidOptions(format!(
            "enqueue_in needs a queue connected to PostgreSQL, not to {}",
            queue.backend().name()
        )));
    }
    let new = queue.new_task(&task, &options)?;
    let span = tracing::debug_span!("enqueue", task.name = %new.name, transaction = true);
    if !new.deps.is_empty() {
        // Its dependencies stay locked until `tx` ends: their completions wait for it.
        let stored = deps::enqueue_on(tx, std::slice::from_ref(&new), None)
            .instrument(span)
            .await
            .map_err(Failure::into_error)?;
        return match stored.ids.as_slice() {
            [id] => Ok(queue.enqueued_handle(Enqueued {
                id: *id,
                duplicate: false,
            })),
            _ => Err(Error::database(
                "enqueueing tasks",
                format!("stored {} ids for one task", stored.ids.len()),
            )),
        };
    }
    let enqueued = unique::enqueue_on(tx, std::slice::from_ref(&new))
        .instrument(span)
        .await
        .map_err(Failure::into_error)?;
    match enqueued.as_slice() {
        [one] => Ok(queue.enqueued_handle(*one)),
        _ => Err(Error::database(
            "enqueueing tasks",
            format!("stored {} answers for one task", enqueued.len()),
        )),
    }
}
