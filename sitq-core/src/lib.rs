//! The vocabulary of sitq: what a task is, how it is enqueued and awaited, and
//! what a storage backend must provide.
//!
//! Users depend on the `sitq` facade rather than on this crate; backends and
//! the worker runtime depend on it directly.

mod admin;
pub mod audit;
mod backend;
pub mod blocking;
mod cancel;
pub mod codec;
mod context;
mod dependency;
pub mod encryption;
mod error;
mod handle;
pub mod inspect;
mod metrics;
mod options;
mod queue;
mod queue_settings;
mod record;
mod registry;
pub mod schedule;
mod signals;
mod task;
pub mod trace;
mod unique;
mod wait;
mod workers;
mod workflow;

#[cfg(feature = "testing")]
pub mod testing;

pub use admin::Audited;
pub use audit::{AuditEntry, NewAuditEntry};
pub use backend::{
    Backend, BackendConnector, ClaimRef, ClaimRequest, ClaimedTask, Completion, ConnectFuture,
    Finished, NewTask, Outcome,
};
pub use cancel::{CancelOutcome, CancelRequest, DEFAULT_CANCELLED_BY, MAX_CANCEL_TEXT};
pub use context::{Context, ContextControl};
pub use dependency::{
    DEPENDENCY_CANCELLED_BY, DepRef, DepTarget, Dependencies, Dependency, InputMode,
    MAX_DEPENDENCIES, Node, ResultOf, TaskInputs,
};
pub use encryption::Keyring;
pub use error::{BoxError, Error, Result};
pub use handle::TaskHandle;
pub use inspect::{
    ActivityBucket, Attempt, AttemptOutcome, Check, CheckLevel, Diagnosis, FinishedCount,
    OversizedRow, Stats, StatusCount, TaskDetail, TaskFilter, TaskLinks, TaskSummary, TaskView,
};
pub use options::{Backoff, ConnectOptions, EnqueueOptions};
pub use queue::Queue;
pub use queue_settings::{
    MAX_PERIOD, MIN_PERIOD, QueueInfo, QueueLimits, RateLimit, validate_queue_name,
};
pub use record::{
    AttemptFailure, Cancellation, FailureKind, MAX_ERROR_BYTES, MAX_LOGGED_ERROR_BYTES,
    TaskFailure, TaskId, TaskRecord, TaskStatus,
};
pub use registry::Registry;
pub use schedule::{CatchUp, Schedule, ScheduleInfo};
pub use signals::{CancelNotice, FinishedWatch, Signals};
pub use task::{Task, TaskDefaults, TaskFuture, TaskRegistration};
pub use trace::TracePropagation;
pub use unique::{Enqueued, MAX_UNIQUE_KEY_BYTES, UniqueKey, holder_blocks};
pub use workers::{WORKER_BEAT, WORKER_TTL, WorkerBeat, WorkerControl, WorkerInfo};
pub use workflow::{
    MAX_WORKFLOW_TASKS, NewWorkflow, StoredWorkflow, Workflow, WorkflowHandle, WorkflowId,
    WorkflowInfo, WorkflowTask,
};

#[doc(hidden)]
pub use inventory;
