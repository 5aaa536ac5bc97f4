//! The user's statements and enqueues in sitq's own write transaction (the
//! outbox pattern on SQLite): [`transaction`].
//!
//! SQLite has one writer, and sitq's writer thread holds it in group
//! commits; a user transaction on another connection would only queue
//! behind it (or hit `SQLITE_BUSY`). So the user's closure runs on the
//! writer thread instead, inside the group's `BEGIN IMMEDIATE`, in a
//! savepoint of its own: an `Err` (or a panic) rolls back its writes and its
//! enqueues and leaves the other commands of the group alone; `Ok` commits
//! with the group. An authorizer refuses `BEGIN`, `COMMIT`, `ROLLBACK` and
//! sitq's savepoints while the closure runs, so it cannot end the
//! transaction on its own.

use std::any::Any;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::{Connection, Params, Row, Statement};
use sitq_core::{EnqueueOptions, Error, Queue, Result, Task, TaskHandle};
use tokio::sync::oneshot;

use crate::backend::SqliteBackend;
use crate::connect::db;
use crate::ops::{deps, write};
use crate::writer::command::{Answer, Command, writer_gone};

/// The savepoint around a closure; the authorizer protects the name.
const SAVEPOINT: &str = "sitq_transaction";

/// What [`transaction`]'s closure works with: the user's statements and
/// sitq's enqueues, in one SQLite write transaction.
///
/// Statements go through [`execute`](Transaction::execute),
/// [`execute_batch`](Transaction::execute_batch),
/// [`query_row`](Transaction::query_row) and
/// [`prepare`](Transaction::prepare) (rusqlite's API; [`rusqlite`](crate::rusqlite)
/// is re-exported). Transaction control (`BEGIN`, `COMMIT`, `ROLLBACK`) is
/// refused: return `Err` from the closure to roll back.
pub struct Transaction<'c> {
    conn: &'c Connection,
    queue: &'c Queue,
    now: i64,
    /// Whether a task was stored (workers are woken after the commit).
    stored: bool,
}

impl fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction").finish_non_exhaustive()
    }
}

const OP: &str = "running a statement in a sitq transaction";

impl Transaction<'_> {
    /// Runs one statement; the number of rows it changed.
    pub fn execute<P: Params>(&self, sql: &str, params: P) -> Result<usize> {
        self.conn.execute(sql, params).map_err(db(OP))
    }

    /// Runs several statements separated by `;`, without parameters.
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        self.conn.execute_batch(sql).map_err(db(OP))
    }

    /// Runs a query expected to return at least one row; maps the first.
    pub fn query_row<T, P, F>(&self, sql: &str, params: P, f: F) -> Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    {
        self.conn.query_row(sql, params, f).map_err(db(OP))
    }

    /// Prepares a statement for repeated use or row iteration.
    pub fn prepare(&self, sql: &str) -> Result<Statement<'_>> {
        self.conn.prepare(sql).map_err(db(OP))
    }

    /// Enqueues `task` in this transaction: stored if and only if the
    /// closure returns `Ok` and the transaction commits. Unique keys hold as
    /// for [`Queue::enqueue`]. The handle's first wait checks that the task
    /// exists, so after a rollback it reports [`Error::NotFound`].
    pub fn enqueue<T: Task>(&mut self, task: T) -> Result<TaskHandle<T::Output>> {
        self.enqueue_with(task, EnqueueOptions::new())
    }

    /// [`enqueue`](Transaction::enqueue) with options.
    pub fn enqueue_with<T: Task>(
        &mut self,
        task: T,
        options: EnqueueOptions,
    ) -> Result<TaskHandle<T::Output>> {
        let new = self.queue.new_task(&task, &options)?;
        let enqueued = if new.deps.is_empty() {
            write::insert_unique(self.conn, std::slice::from_ref(&new), self.now)
                .map_err(db("enqueueing tasks"))?
        } else {
            // Its effects (a dependent pending at once, or cancelled) need
            // no signal of their own: `stored` wakes the workers.
            let mut effects = crate::ops::write::Effects::default();
            deps::insert(
                self.conn,
                std::slice::from_ref(&new),
                self.now,
                None,
                &mut effects,
            )
            .map_err(db("enqueueing tasks"))??
        };
        match enqueued.as_slice() {
            [one] => {
                self.stored |= !one.duplicate;
                Ok(self.queue.enqueued_handle(*one))
            }
            _ => Err(Error::database(
                "enqueueing tasks",
                format!("stored {} answers for one task", enqueued.len()),
            )),
        }
    }
}

/// Runs `f` in sitq's write transaction on `queue`'s SQLite database, with
/// the user's statements and enqueues together: all of them are stored, or
/// (when `f` returns `Err` or panics) none.
///
/// `f` runs on sitq's writer thread, between other commands of the same
/// group commit, so keep it short and never block in it: every write of
/// this process waits for it. A panic in `f` rolls back and is resumed in
/// the caller. The result arrives after the commit; a failed commit is an
/// `Err` (from [`Error`]).
///
/// ```no_run
/// # async fn demo(queue: sitq_core::Queue) -> sitq_core::Result<()> {
/// # #[derive(serde::Serialize, serde::Deserialize)] struct receipt { order: i64 }
/// # impl sitq_core::Task for receipt { const NAME: &'static str = "receipt"; type Output = (); }
/// use sitq_sqlite::rusqlite::params;
///
/// let handle = sitq_sqlite::transaction(&queue, |tx| {
///     tx.execute("INSERT INTO orders (id) VALUES (?1)", params![7])?;
///     tx.enqueue(receipt { order: 7 }) // the order and its receipt task, or neither
/// })
/// .await?;
/// # drop(handle);
/// # Ok(())
/// # }
/// ```
pub async fn transaction<R, E, F>(queue: &Queue, f: F) -> std::result::Result<R, E>
where
    F: FnOnce(&mut Transaction<'_>) -> std::result::Result<R, E> + Send + 'static,
    R: Send + 'static,
    E: From<Error> + Send + 'static,
{
    let backend = queue
        .backend()
        .as_any()
        .and_then(|backend| backend.downcast_ref::<SqliteBackend>())
        .ok_or_else(|| {
            Error::InvalidOptions(format!(
                "sitq_sqlite::transaction needs a queue connected to SQLite, not to {}",
                queue.backend().name()
            ))
        })?;
    let (reply, answer) = oneshot::channel();
    let job = Box::new(UserTransaction {
        f,
        queue: queue.clone(),
        reply,
    });
    backend
        .send(Command::Transaction { job })
        .await
        .map_err(E::from)?;
    let op = "running a sitq transaction";
    match answer.await.map_err(|_| E::from(writer_gone(op)))? {
        Ended::Done(result) => result,
        Ended::Panicked(panic) => resume_unwind(panic),
    }
}

/// How a user transaction ended.
enum Ended<R, E> {
    Done(std::result::Result<R, E>),
    Panicked(Box<dyn Any + Send>),
}

/// A user transaction as the writer runs it.
pub(crate) trait Job: Send {
    /// Runs inside the group's transaction: the answer to send after the
    /// commit, and whether tasks were stored.
    fn run(self: Box<Self>, conn: &Connection, now: i64) -> (Answer, bool);

    /// The group's transaction could not start: answers with `error`.
    fn fail(self: Box<Self>, error: Error);
}

impl fmt::Debug for dyn Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Job")
    }
}

struct UserTransaction<F, R, E> {
    f: F,
    queue: Queue,
    reply: oneshot::Sender<Ended<R, E>>,
}

impl<F, R, E> Job for UserTransaction<F, R, E>
where
    F: FnOnce(&mut Transaction<'_>) -> std::result::Result<R, E> + Send + 'static,
    R: Send + 'static,
    E: From<Error> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection, now: i64) -> (Answer, bool) {
        let UserTransaction { f, queue, reply } = *self;
        let op = "running a sitq transaction";
        if let Err(err) = conn.execute_batch(&format!("SAVEPOINT {SAVEPOINT}")) {
            let ended = Ended::Done(Err(E::from(Error::database(op, err))));
            return (send_now(reply, ended), false);
        }
        guard(conn, true);
        let mut tx = Transaction {
            conn,
            queue: &queue,
            now,
            stored: false,
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| f(&mut tx)));
        let stored = tx.stored;
        guard(conn, false);
        let ended = match outcome {
            Ok(Ok(value)) => match conn.execute_batch(&format!("RELEASE {SAVEPOINT}")) {
                Ok(()) => {
                    // Sent after the commit; a failed commit replaces it.
                    let answer: Answer = Box::new(move |failed_commit| {
                        let ended = match failed_commit {
                            Some(err) => Ended::Done(Err(E::from(Error::database(
                                "committing a group of writes",
                                err.clone(),
                            )))),
                            None => Ended::Done(Ok(value)),
                        };
                        let _ = reply.send(ended);
                    });
                    return (answer, stored);
                }
                Err(err) => {
                    roll_back(conn);
                    Ended::Done(Err(E::from(Error::database(op, err))))
                }
            },
            Ok(Err(err)) => {
                roll_back(conn);
                Ended::Done(Err(err))
            }
            Err(panic) => {
                roll_back(conn);
                Ended::Panicked(panic)
            }
        };
        (send_now(reply, ended), false)
    }

    fn fail(self: Box<Self>, error: Error) {
        let _ = self.reply.send(Ended::Done(Err(E::from(error))));
    }
}

/// An answer that does not depend on the commit: the closure's writes were
/// rolled back already.
fn send_now<R: Send + 'static, E: Send + 'static>(
    reply: oneshot::Sender<Ended<R, E>>,
    ended: Ended<R, E>,
) -> Answer {
    Box::new(move |_| {
        let _ = reply.send(ended);
    })
}

/// Undoes the closure's writes; the group goes on.
fn roll_back(conn: &Connection) {
    let _ = conn.execute_batch(&format!("ROLLBACK TO {SAVEPOINT}; RELEASE {SAVEPOINT}"));
}

/// Installs (or removes) the authorizer that keeps the closure from ending
/// sitq's transaction.
fn guard(conn: &Connection, on: bool) {
    let result = if on {
        conn.authorizer(Some(|context: AuthContext<'_>| match context.action {
            AuthAction::Transaction { .. } => Authorization::Deny,
            AuthAction::Savepoint { savepoint_name, .. } if savepoint_name.starts_with("sitq_") => {
                Authorization::Deny
            }
            _ => Authorization::Allow,
        }))
    } else {
        conn.authorizer(None::<fn(AuthContext<'_>) -> Authorization>)
    };
    if let Err(err) = result {
        tracing::warn!(error = %err, "could not set the SQLite authorizer");
    }
}
