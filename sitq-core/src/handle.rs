use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::queue::Queue;
use crate::record::{TaskId, TaskStatus};
use crate::{Error, Result, codec};

/// A typed handle to an enqueued task whose result is a `T`.
pub struct TaskHandle<T> {
    queue: Queue,
    id: TaskId,
    _output: PhantomData<fn() -> T>,
}

impl<T> Clone for TaskHandle<T> {
    fn clone(&self) -> Self {
        TaskHandle::new(self.queue.clone(), self.id)
    }
}

impl<T> fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle").field("id", &self.id).finish()
    }
}

impl<T> TaskHandle<T> {
    pub(crate) fn new(queue: Queue, id: TaskId) -> Self {
        TaskHandle {
            queue,
            id,
            _output: PhantomData,
        }
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The task's current status.
    pub async fn status(&self) -> Result<TaskStatus> {
        self.queue.status(self.id).await
    }
}

impl<T: DeserializeOwned> TaskHandle<T> {
    /// Waits until the task finishes; its result, or
    /// [`Error::TaskFailed`] / [`Error::TaskCancelled`].
    ///
    /// Woken by the backend's notification when the task finishes in this
    /// process (or, on PostgreSQL, anywhere); otherwise it polls, starting
    /// at 1 ms and backing off to the backend's poll interval.
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
        let deadline = timeout.map(|timeout| Instant::now() + timeout);
        let max_poll = backend.poll_interval();
        let mut poll = Duration::from_millis(1).min(max_poll);
        loop {
            let finished = backend.signals().watch_finished(self.id);
            let status = self.queue.status(self.id).await?;
            if status.is_finished() {
                return self.outcome().await;
            }
            let mut sleep_until = Instant::now() + poll;
            if let Some(deadline) = deadline {
                if Instant::now() >= deadline {
                    return Err(Error::WaitTimeout {
                        id: self.id,
                        waited: timeout.unwrap_or_default(),
                        status,
                    });
                }
                sleep_until = sleep_until.min(deadline);
            }
            tokio::select! {
                () = finished.notified() => {}
                () = tokio::time::sleep_until(sleep_until) => {
                    poll = (poll * 2).min(max_poll);
                }
            }
        }
    }

    async fn outcome(&self) -> Result<T> {
        let record = self.queue.get(self.id).await?;
        match record.status {
            TaskStatus::Succeeded => {
                let bytes = record.result.unwrap_or_default();
                codec::decode(
                    &bytes,
                    &format!("result of task {} ({})", record.id, record.name),
                )
            }
            TaskStatus::Cancelled => Err(Error::TaskCancelled(record.id)),
            _ => {
                let failure = record.failure.unwrap_or_else(|| {
                    crate::TaskFailure::new(crate::FailureKind::Error, "no error was recorded")
                });
                Err(Error::TaskFailed {
                    id: record.id,
                    name: record.name,
                    attempts: record.attempts,
                    kind: failure.kind,
                    message: failure.message,
                })
            }
        }
    }
}
