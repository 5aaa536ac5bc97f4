//! The vocabulary of sitq: what a task is, how it is enqueued and awaited, and
//! what a storage backend must provide.
//!
//! Users depend on the `sitq` facade rather than on this crate; backends and
//! the worker runtime depend on it directly.

mod backend;
pub mod blocking;
pub mod codec;
mod error;
mod handle;
mod options;
mod queue;
mod queue_settings;
mod record;
mod registry;
mod signals;
mod task;
mod wait;

#[cfg(feature = "testing")]
pub mod testing;

pub use backend::{
    Backend, BackendConnector, ClaimRef, ClaimRequest, ClaimedTask, Completion, ConnectFuture,
    Finished, NewTask, Outcome,
};
pub use error::{BoxError, Error, Result};
pub use handle::TaskHandle;
pub use options::{Backoff, ConnectOptions, EnqueueOptions};
pub use queue::Queue;
pub use queue_settings::{
    MAX_PERIOD, MIN_PERIOD, QueueInfo, QueueLimits, RateLimit, validate_queue_name,
};
pub use record::{FailureKind, TaskFailure, TaskId, TaskRecord, TaskStatus};
pub use registry::Registry;
pub use signals::{FinishedWatch, Signals};
pub use task::{Task, TaskDefaults, TaskFuture, TaskRegistration};

#[doc(hidden)]
pub use inventory;
