use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::backend::Finished;
use crate::cancel::{CancelOutcome, CancelRequest};
use crate::queue::Queue;
use crate::record::{AttemptFailure, TaskId, TaskStatus};
use crate::wait::Waiter;
use crate::{Error, Result, codec};

/// A waiter whose task was enqueued through its handle checks once, after
/// this many poll intervals, that the task still exists (it could have
/// finished and been pruned before the wait began; nothing would ever
/// report it finished).
const VERIFY_AFTER_POLLS: u32 = 20;

/// A typed handle to an enqueued task whose result is a `T`.
pub struct TaskHandle<T> {
    queue: Queue,
    id: TaskId,
    /// Made by an enqueue, so the task existed: waiting need not check first.
    enqueued: bool,
    /// The enqueue found the unique key held: this is the holder's handle.
    duplicate: bool,
    _output: PhantomData<fn() -> T>,
}

impl<T> Clone for TaskHandle<T> {
    fn clone(&self) -> Self {
        TaskHandle {
            queue: self.queue.clone(),
            id: self.id,
            enqueued: self.enqueued,
            duplicate: self.duplicate,
            _output: PhantomData,
        }
    }
}

impl<T> fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle")
            .field("id", &self.id)
            .field("duplicate", &self.duplicate)
            .finish()
    }
}

impl<T> TaskHandle<T> {
    /// The handle of a task just enqueued.
    pub(crate) fn new(queue: Queue, id: TaskId) -> Self {
        TaskHandle {
            queue,
            id,
            enqueued: true,
            duplicate: false,
            _output: PhantomData,
        }
    }

    /// The handle an enqueue returned: a new task, or (`duplicate`) the
    /// holder of its unique key.
    pub(crate) fn enqueued(queue: Queue, id: TaskId, duplicate: bool) -> Self {
        TaskHandle {
            duplicate,
            ..TaskHandle::new(queue, id)
        }
    }

    /// The handle of an enqueue that may not have committed (a
    /// transaction's): checked like a stored id on its first wait.
    pub(crate) fn stored_enqueued(queue: Queue, id: TaskId, duplicate: bool) -> Self {
        TaskHandle {
            enqueued: false,
            ..TaskHandle::enqueued(queue, id, duplicate)
        }
    }

    /// The handle of a stored id, which may name no task.
    pub(crate) fn stored(queue: Queue, id: TaskId) -> Self {
        TaskHandle {
            enqueued: false,
            ..TaskHandle::new(queue, id)
        }
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// Whether the enqueue that made this handle found the task's unique key
    /// held: nothing new was stored and this is the handle of the task that
    /// holds the key (it may have been enqueued with other arguments or
    /// options). False for a new task and for handles made from an id.
    pub fn is_duplicate(&self) -> bool {
        self.duplicate
    }

    /// The task's current status.
    pub async fn status(&self) -> Result<TaskStatus> {
        self.queue.status(self.id).await
    }

    /// Cancels the task; see [`Queue::cancel_with`].
    pub async fn cancel(&self) -> Result<CancelOutcome> {
        self.queue.cancel(self.id).await
    }

    /// Cancels the task recording who and why; see [`Queue::cancel_with`].
    pub async fn cancel_with(&self, request: CancelRequest) -> Result<CancelOutcome> {
        self.queue.cancel_with(self.id, request).await
    }

    /// Runs a failed or cancelled task again; see [`Queue::retry`].
    pub async fn retry(&self) -> Result<()> {
        self.queue.retry(self.id).await
    }

    /// The task's failure history; see [`Queue::failures`].
    pub async fn failures(&self) -> Result<Vec<AttemptFailure>> {
        self.queue.failures(self.id).await
    }
}

impl<T: DeserializeOwned> TaskHandle<T> {
    /// Waits until the task finishes; its result, or
    /// [`Error::TaskFailed`] / [`Error::Cancelled`] (with who and why);
    /// [`Error::NotFound`] if no such task exists.
    ///
    /// All the waits of a process on one backend are served together: a
    /// task finished in this process hands its outcome over with no query,
    /// a notification (PostgreSQL's `NOTIFY`) costs one lookup for every
    /// task notified at once, and tasks that can finish unnoticed (in
    /// another process on SQLite) are polled in one batched query per tick,
    /// each starting at 1 ms and backing off to the backend's poll interval.
    pub async fn wait(&self) -> Result<T> {
        self.wait_until(None).await
    }

    /// [`wait`](TaskHandle::wait), giving up with [`Error::WaitTimeout`] after
    /// `timeout` (the task itself goes on).
    pub async fn wait_timeout(&self, timeout: Duration) -> Result<T> {
        self.wait_until(Some(timeout)).await
    }

    async fn wait_until(&self, timeout: Option<Duration>) -> Result<T> {
        let backend = self.queue.backend();
        let start = Instant::now();
        // A timeout too long to represent is no timeout.
        let deadline = timeout.and_then(|timeout| start.checked_add(timeout));
        let mut waiter = Waiter::register(backend, self.id)?;
        // A stored id may name no task: learn that at once. A task just
        // enqueued exists; check once later in case it was pruned already.
        let mut verify_at = if self.enqueued {
            start.checked_add(backend.poll_interval().saturating_mul(VERIFY_AFTER_POLLS))
        } else {
            Some(start)
        };
        loop {
            let wake_at = match (verify_at, deadline) {
                (Some(verify), Some(deadline)) => Some(verify.min(deadline)),
                (at, None) | (None, at) => at,
            };
            tokio::select! {
                finished = waiter.outcome() => return self.outcome(finished?).await,
                () = sleep_until(wake_at) => {}
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                if let Some(finished) = waiter.try_outcome() {
                    return self.outcome(finished?).await;
                }
                drop(waiter);
                return self.timed_out(timeout.unwrap_or_default()).await;
            }
            if verify_at.take().is_some() {
                match self.queue.backend().status(self.id).await? {
                    None => return Err(Error::NotFound(self.id)),
                    // Finished meanwhile: look it up now rather than at the next poll.
                    Some(status) if status.is_finished() => waiter.recheck(),
                    Some(_) => {}
                }
            }
        }
    }

    /// The error (or, if it finished just then, the outcome) of a wait that
    /// ran out of time: one status query.
    async fn timed_out(&self, waited: Duration) -> Result<T> {
        let backend = self.queue.backend();
        match backend.status(self.id).await? {
            None => Err(Error::NotFound(self.id)),
            Some(status) if status.is_finished() => {
                match backend.finished(&[self.id]).await?.into_iter().next() {
                    Some(finished) => self.outcome(finished).await,
                    // Pruned in between.
                    None => Err(Error::NotFound(self.id)),
                }
            }
            Some(status) => Err(Error::WaitTimeout {
                id: self.id,
                waited,
                status,
            }),
        }
    }

    /// The result or error of a finished task. A cancelled one costs one
    /// more read, for who cancelled it and why.
    async fn outcome(&self, finished: Finished) -> Result<T> {
        match finished.status {
            TaskStatus::Succeeded => {
                let bytes = self
                    .queue
                    .open_result(finished.id, finished.result.unwrap_or_default())?;
                codec::decode(
                    &bytes,
                    &format!("result of task {} ({})", finished.id, finished.name),
                )
            }
            TaskStatus::Cancelled => {
                let cancellation = self
                    .queue
                    .backend()
                    .get(finished.id)
                    .await?
                    .and_then(|record| record.cancellation);
                let (by, reason) = match cancellation {
                    Some(cancellation) => (cancellation.by, cancellation.reason),
                    // Pruned or retried meanwhile, or cancelled by hand in SQL.
                    None => ("(unknown)".to_owned(), None),
                };
                Err(Error::Cancelled {
                    id: finished.id,
                    by,
                    reason,
                })
            }
            _ => {
                let failure = finished.failure.unwrap_or_else(|| {
                    crate::TaskFailure::new(crate::FailureKind::Error, "no error was recorded")
                });
                Err(Error::TaskFailed {
                    id: finished.id,
                    name: finished.name,
                    attempts: finished.attempts,
                    kind: failure.kind,
                    message: failure.message,
                })
            }
        }
    }
}

/// Sleeps until `at`, or forever.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
