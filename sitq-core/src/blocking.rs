//! The client for programs that are not async: the same typed API, each call
//! blocking until done.
//!
//! It owns a small tokio runtime. Do not call it from inside an async
//! runtime (tokio panics on nested blocking); use [`crate::Queue`] there.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::runtime::Runtime;

use crate::options::{ConnectOptions, EnqueueOptions};
use crate::record::{TaskId, TaskRecord, TaskStatus};
use crate::task::Task;
use crate::{Error, Result};

/// A blocking queue client.
#[derive(Clone, Debug)]
pub struct Queue {
    runtime: Arc<Runtime>,
    queue: crate::Queue,
}

impl Queue {
    /// Connects to the queue at `url`; see [`crate::Queue::connect`].
    pub fn connect(url: &str) -> Result<Queue> {
        Queue::connect_with(url, ConnectOptions::new())
    }

    /// [`connect`](Queue::connect) with options.
    pub fn connect_with(url: &str, options: ConnectOptions) -> Result<Queue> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sitq-blocking")
            .enable_all()
            .build()
            .map_err(|source| Error::Io {
                op: "starting the blocking client's runtime",
                source,
            })?;
        let queue = runtime.block_on(crate::Queue::connect_with(url, options))?;
        Ok(Queue {
            runtime: Arc::new(runtime),
            queue,
        })
    }

    /// The async client underneath.
    pub fn as_async(&self) -> &crate::Queue {
        &self.queue
    }

    /// Enqueues `task` with its defaults.
    pub fn enqueue<T: Task>(&self, task: T) -> Result<TaskHandle<T::Output>> {
        self.enqueue_with(task, EnqueueOptions::new())
    }

    /// Enqueues `task` with `options`.
    pub fn enqueue_with<T: Task>(
        &self,
        task: T,
        options: EnqueueOptions,
    ) -> Result<TaskHandle<T::Output>> {
        let handle = self
            .runtime
            .block_on(self.queue.enqueue_with(task, options))?;
        Ok(self.wrap(handle))
    }

    /// Enqueues many tasks in one transaction.
    pub fn enqueue_many<T: Task>(
        &self,
        tasks: impl IntoIterator<Item = T>,
    ) -> Result<Vec<TaskHandle<T::Output>>> {
        let handles = self.runtime.block_on(self.queue.enqueue_many(tasks))?;
        Ok(handles
            .into_iter()
            .map(|handle| self.wrap(handle))
            .collect())
    }

    /// A typed handle to an existing task.
    pub fn handle<T>(&self, id: TaskId) -> TaskHandle<T> {
        self.wrap(self.queue.handle(id))
    }

    /// The status of a task.
    pub fn status(&self, id: TaskId) -> Result<TaskStatus> {
        self.runtime.block_on(self.queue.status(id))
    }

    /// The full record of a task.
    pub fn get(&self, id: TaskId) -> Result<TaskRecord> {
        self.runtime.block_on(self.queue.get(id))
    }

    /// Cancels a task; see [`Queue::cancel_with`](crate::Queue::cancel_with).
    pub fn cancel(&self, id: TaskId) -> Result<crate::CancelOutcome> {
        self.runtime.block_on(self.queue.cancel(id))
    }

    /// Cancels a task recording who and why; see
    /// [`Queue::cancel_with`](crate::Queue::cancel_with).
    pub fn cancel_with(
        &self,
        id: TaskId,
        request: crate::CancelRequest,
    ) -> Result<crate::CancelOutcome> {
        self.runtime.block_on(self.queue.cancel_with(id, request))
    }

    /// Runs a failed or cancelled task again; see
    /// [`Queue::retry`](crate::Queue::retry).
    pub fn retry(&self, id: TaskId) -> Result<()> {
        self.runtime.block_on(self.queue.retry(id))
    }

    /// A task's failure history; see [`Queue::failures`](crate::Queue::failures).
    pub fn failures(&self, id: TaskId) -> Result<Vec<crate::AttemptFailure>> {
        self.runtime.block_on(self.queue.failures(id))
    }

    fn wrap<T>(&self, inner: crate::TaskHandle<T>) -> TaskHandle<T> {
        TaskHandle {
            runtime: self.runtime.clone(),
            inner,
        }
    }
}

/// A blocking typed handle to an enqueued task.
#[derive(Debug)]
pub struct TaskHandle<T> {
    runtime: Arc<Runtime>,
    inner: crate::TaskHandle<T>,
}

impl<T: DeserializeOwned> TaskHandle<T> {
    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.inner.id()
    }

    /// Whether the enqueue found the task's unique key held; see
    /// [`crate::TaskHandle::is_duplicate`].
    pub fn is_duplicate(&self) -> bool {
        self.inner.is_duplicate()
    }

    /// The task's current status.
    pub fn status(&self) -> Result<TaskStatus> {
        self.runtime.block_on(self.inner.status())
    }

    /// Blocks until the task finishes; see [`crate::TaskHandle::wait`].
    pub fn wait(&self) -> Result<T> {
        self.runtime.block_on(self.inner.wait())
    }

    /// Blocks at most `timeout`; see [`crate::TaskHandle::wait_timeout`].
    pub fn wait_timeout(&self, timeout: Duration) -> Result<T> {
        self.runtime.block_on(self.inner.wait_timeout(timeout))
    }
}
