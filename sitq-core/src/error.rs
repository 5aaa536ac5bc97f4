use std::time::Duration;

use crate::record::{FailureKind, TaskId};

/// A boxed error from a lower layer (the database driver, the codec).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with sitq's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when using sitq.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL given to [`Queue::connect`](crate::Queue::connect) could not be parsed.
    #[error("invalid queue URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No backend linked into this program handles the URL's scheme.
    #[error(
        "no backend for URL scheme {scheme:?}; available: {available:?} (enable the matching sitq feature, e.g. `postgres`)"
    )]
    UnsupportedScheme {
        /// The scheme of the URL.
        scheme: String,
        /// The schemes the linked backends handle.
        available: Vec<String>,
    },
    /// The database failed while doing `op` (the driver's reason follows
    /// in the message, so a log line of the error alone says why).
    #[error("database error while {op}: {source}")]
    Database {
        /// What sitq was doing.
        op: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// The database refused `op` because the role the process connects as
    /// lacks a privilege it needs (PostgreSQL's `insufficient_privilege`):
    /// e.g. a producer's role asked to claim or delete tasks.
    #[error(
        "permission denied while {op}: {reason} (the database role this process connects as may not do this; for PostgreSQL, `sitq postgres roles` prints what the producer, worker and admin roles may do)"
    )]
    PermissionDenied {
        /// What sitq was doing.
        op: &'static str,
        /// The database's reason, e.g. `permission denied for table sitq_tasks`.
        reason: String,
    },
    /// A value could not be encoded with the codec.
    #[error("could not encode {what}")]
    Encode {
        /// What was being encoded (a task's arguments or result).
        what: String,
        /// The codec's error.
        #[source]
        source: BoxError,
    },
    /// Stored bytes could not be decoded into the expected type.
    #[error("could not decode {what}")]
    Decode {
        /// What was being decoded.
        what: String,
        /// The codec's error.
        #[source]
        source: BoxError,
    },
    /// An encoded payload is larger than the queue's limit; nothing was stored.
    #[error(
        "payload of task {task:?} is {size} bytes, over the limit of {limit} bytes; pass large data by reference (a path or key) or raise ConnectOptions::max_payload_bytes"
    )]
    PayloadTooLarge {
        /// The task's registered name.
        task: String,
        /// The encoded size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// Enqueue options that cannot be honoured; nothing was stored.
    #[error("invalid enqueue options: {0}")]
    InvalidOptions(String),
    /// Encryption at rest: a keyring that cannot be read, or a sealed value
    /// that cannot be opened (its key id is not in the keyring, or it does
    /// not verify). The message names the key id, never key material.
    #[error("encryption: {0}")]
    Encryption(String),
    /// No task with this id exists (never enqueued, or pruned after its retention).
    #[error("task {0} not found (never enqueued, or pruned after the retention period)")]
    NotFound(TaskId),
    /// No workflow with this id exists (never enqueued, or all its tasks pruned).
    #[error("workflow {0} not found (never enqueued, or pruned after the retention period)")]
    WorkflowNotFound(crate::WorkflowId),
    /// The task finished as failed; its error is kept in its record.
    #[error("task {id} ({name}) failed after {attempts} attempt(s): {kind}: {message}")]
    TaskFailed {
        /// The task's id.
        id: TaskId,
        /// The task's registered name.
        name: String,
        /// Attempts made.
        attempts: u32,
        /// Why the last attempt failed.
        kind: FailureKind,
        /// The error message of the last attempt.
        message: String,
    },
    /// The task was cancelled (`Queue::cancel`), before or while it ran.
    #[error("task {id} was cancelled by {by}{}", reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    Cancelled {
        /// The task's id.
        id: TaskId,
        /// Who cancelled it (`CancelRequest::by`; `"api"` by default).
        by: String,
        /// Why, if they said.
        reason: Option<String>,
    },
    /// [`TaskHandle::wait_timeout`](crate::TaskHandle::wait_timeout) gave up; the task keeps running.
    #[error("task {id} did not finish within {waited:?}; it is still {status}")]
    WaitTimeout {
        /// The task's id.
        id: TaskId,
        /// How long the caller waited.
        waited: Duration,
        /// The task's status when waiting stopped.
        status: crate::TaskStatus,
    },
    /// Two registered tasks share one name.
    #[error(
        "task name {name:?} is registered twice, at {first} and at {second}; give one of them #[sitq::task(name = \"...\")]"
    )]
    DuplicateTask {
        /// The shared name.
        name: String,
        /// Where the first registration is (`file:line`).
        first: String,
        /// Where the second registration is (`file:line`).
        second: String,
    },
    /// A worker was stopped at once instead of draining: a second
    /// SIGINT/SIGTERM during its graceful shutdown, or
    /// `ShutdownHandle::force`. Its in-flight tasks were abandoned; they run
    /// again once their leases expire.
    #[error(
        "the worker was stopped before its in-flight tasks finished (a second SIGINT/SIGTERM, or ShutdownHandle::force); they run again once their leases expire"
    )]
    ForcedShutdown,
    /// [`Queue::retry`](crate::Queue::retry) of a task that is neither
    /// failed nor cancelled; nothing changed.
    #[error("task {id} is {status}; only failed or cancelled tasks can be retried")]
    NotRetryable {
        /// The task's id.
        id: TaskId,
        /// Its status.
        status: crate::TaskStatus,
    },
    /// [`Audited::delete`](crate::Audited::delete) of a task that cannot
    /// be deleted; nothing changed.
    #[error("task {id} cannot be deleted: {reason}")]
    NotDeletable {
        /// The task's id.
        id: TaskId,
        /// Why: it has not finished (cancel it first), or an unfinished
        /// dependent still waits for it.
        reason: String,
    },
    /// No live worker has this id (it stopped, or its registry row expired).
    #[error("no live worker with id {0:?}; `sitq workers` lists the live ones")]
    WorkerNotFound(String),
    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An I/O error, with what sitq was doing and the operating system's reason.
    #[error("I/O error while {op}: {source}")]
    Io {
        /// What sitq was doing.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The database file was deleted or replaced while this process had it
    /// open (SQLite). Every later call fails the same way and a worker
    /// stops: the process would otherwise work on a file nobody else sees.
    #[error(
        "the SQLite database {location} {reason} while this process had it open; nothing more is read or written (and no new file is created): restore the file and restart the process"
    )]
    DatabaseGone {
        /// `sqlite:///abs/path`.
        location: String,
        /// `was deleted`, `was replaced by another file`, …
        reason: String,
    },
    /// A schedule that cannot run (bad cron expression or time zone, a
    /// duplicate name); the worker refuses to start.
    #[error("invalid schedule {name:?}: {reason}")]
    InvalidSchedule {
        /// The schedule's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Queue settings that cannot be honoured (an empty queue name, a zero
    /// limit or period); nothing was changed.
    #[error("invalid queue settings: {0}")]
    InvalidQueueSettings(String),
}

impl Error {
    /// Whether no retry can help: the process should stop (a worker does).
    pub fn is_fatal(&self) -> bool {
        matches!(self, Error::DatabaseGone { .. })
    }

    /// Wraps a driver error that happened while doing `op`.
    pub fn database(op: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Database {
            op,
            source: source.into(),
        }
    }
}
