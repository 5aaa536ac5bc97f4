use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The id a backend gives a task when it is enqueued.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskId(pub i64);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for TaskId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(TaskId)
    }
}

/// Where a task is in its life.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TaskStatus {
    /// Waiting to run: ready now, or scheduled for its `run_at` (a delay or a retry backoff).
    Pending,
    /// Claimed by a worker, under a lease.
    Running,
    /// Finished with a result.
    Succeeded,
    /// Out of attempts, or failed for good (unknown name, undecodable payload); kept for inspection.
    Failed,
    /// Cancelled: before it ran, or while it ran (see `Queue::cancel`).
    Cancelled,
    /// Waiting for the tasks it depends on.
    Blocked,
}

impl TaskStatus {
    /// Every status, in life order.
    pub const ALL: [TaskStatus; 6] = [
        TaskStatus::Pending,
        TaskStatus::Blocked,
        TaskStatus::Running,
        TaskStatus::Succeeded,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
    ];

    /// The name stored in the database and shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Running => "running",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
            TaskStatus::Blocked => "blocked",
        }
    }

    /// Whether the task will never run again on its own.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskStatus {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        TaskStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| crate::Error::Config(format!("unknown task status {s:?}")))
    }
}

/// Why an attempt failed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// The task returned `Err`.
    Error,
    /// The task panicked.
    Panic,
    /// The task ran past its timeout.
    Timeout,
    /// No task of this name is registered in the worker that claimed it.
    UnknownTask,
    /// The payload could not be decoded into the task's arguments.
    Decode,
    /// The worker running it stopped heartbeating (killed, or cut off) and the lease ran out.
    LeaseExpired,
    /// The attempt was cancelled while it ran (`Queue::cancel`).
    Cancelled,
}

impl FailureKind {
    /// Every kind.
    pub const ALL: [FailureKind; 7] = [
        FailureKind::Error,
        FailureKind::Panic,
        FailureKind::Timeout,
        FailureKind::UnknownTask,
        FailureKind::Decode,
        FailureKind::LeaseExpired,
        FailureKind::Cancelled,
    ];

    /// The name stored in the database and shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Error => "error",
            FailureKind::Panic => "panic",
            FailureKind::Timeout => "timeout",
            FailureKind::UnknownTask => "unknown_task",
            FailureKind::Decode => "decode",
            FailureKind::LeaseExpired => "lease_expired",
            FailureKind::Cancelled => "cancelled",
        }
    }

    /// Parses a stored name; unknown names (from a newer version) read as `Error`.
    pub fn parse(s: &str) -> FailureKind {
        FailureKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .unwrap_or(FailureKind::Error)
    }

    /// Whether another attempt could succeed (an unknown name or a bad
    /// payload never will); a cancelled attempt is never retried.
    pub fn is_retryable(self) -> bool {
        !matches!(
            self,
            FailureKind::UnknownTask | FailureKind::Decode | FailureKind::Cancelled
        )
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of a failed attempt, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFailure {
    /// Why it failed.
    pub kind: FailureKind,
    /// The message: the task's error (with its source chain), the panic message, or sitq's explanation.
    pub message: String,
}

/// The most bytes of a failure's message that are stored: a longer one is
/// cut (at a character boundary) and says how long it was.
pub const MAX_ERROR_BYTES: usize = 64 * 1024;

/// The most bytes of a failure's message that go into one log line.
pub const MAX_LOGGED_ERROR_BYTES: usize = 2 * 1024;

impl TaskFailure {
    /// A failure of `kind` with `message`, cut to [`MAX_ERROR_BYTES`].
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        TaskFailure {
            kind,
            message: bounded(message.into(), MAX_ERROR_BYTES),
        }
    }

    /// The message for a log line: at most [`MAX_LOGGED_ERROR_BYTES`] of it.
    pub fn message_for_log(&self) -> std::borrow::Cow<'_, str> {
        if self.message.len() <= MAX_LOGGED_ERROR_BYTES {
            std::borrow::Cow::Borrowed(&self.message)
        } else {
            std::borrow::Cow::Owned(bounded(self.message.clone(), MAX_LOGGED_ERROR_BYTES))
        }
    }

    /// Rebuilds a failure from a backend's `error_kind` and `error` columns;
    /// `None` when both are empty (the task has not failed).
    pub fn from_columns(kind: Option<&str>, message: Option<String>) -> Option<Self> {
        if kind.is_none() && message.is_none() {
            return None;
        }
        Some(TaskFailure::new(
            kind.map_or(FailureKind::Error, FailureKind::parse),
            message.unwrap_or_default(),
        ))
    }
}

/// `text` cut to at most `limit` bytes plus a note of its full length,
/// at a character boundary.
fn bounded(mut text: String, limit: usize) -> String {
    if text.len() <= limit {
        return text;
    }
    let full = text.len();
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(&format!(" … [cut: {full} bytes in all]"));
    text
}

/// Everything stored about one task.
///
/// Backends build it field by field, so it is not `#[non_exhaustive]`;
/// new fields come with a minor version bump.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRecord {
    /// The task's id.
    pub id: TaskId,
    /// The registered name.
    pub name: String,
    /// The queue it was enqueued on.
    pub queue: String,
    /// Where it is in its life.
    pub status: TaskStatus,
    /// Higher runs first.
    pub priority: i32,
    /// Attempts started so far.
    pub attempts: u32,
    /// Attempts allowed before the task is failed.
    pub max_attempts: u32,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When it may run next (or ran last).
    pub run_at: DateTime<Utc>,
    /// When the latest attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished (succeeded, failed or cancelled).
    pub finished_at: Option<DateTime<Utc>>,
    /// The worker that ran the latest attempt.
    pub worker_id: Option<String>,
    /// The latest attempt's error, if it failed (kept when a retry is
    /// pending, and after `Queue::retry`), or for a task cancelled before
    /// it ran, the cancel (`FailureKind::Cancelled`, "cancelled by …").
    /// Every failed attempt is in `Queue::failures`.
    pub failure: Option<TaskFailure>,
    /// The encoded arguments.
    pub payload: Vec<u8>,
    /// The encoded result, once succeeded.
    pub result: Option<Vec<u8>>,
    /// How often the task snoozed (`Context::snooze`); snoozes spend no attempt.
    pub snoozes: u32,
    /// Who asked to cancel the task, why and when, if someone did (kept
    /// when a task that was running succeeded anyway; cleared by a retry).
    pub cancellation: Option<Cancellation>,
}

impl TaskRecord {
    /// How long the latest attempt ran, once finished.
    pub fn duration(&self) -> Option<Duration> {
        let started = self.started_at?;
        let finished = self.finished_at?;
        (finished - started).to_std().ok()
    }

    /// The stored arguments as JSON, read without the task's Rust types
    /// (see [`codec::to_json`](crate::codec::to_json)). A task enqueued to
    /// receive a dependency's result holds the other arguments only.
    /// Arguments stored sealed ([`crate::encryption`]) and not opened (read
    /// without their key) are the string `"<encrypted>"`.
    pub fn arguments_json(&self) -> crate::Result<serde_json::Value> {
        if crate::encryption::is_sealed(&self.payload) {
            return Ok(serde_json::Value::String(
                crate::encryption::ENCRYPTED.to_owned(),
            ));
        }
        crate::codec::to_json(
            &self.payload,
            &format!("arguments of task {} ({})", self.id, self.name),
        )
    }

    /// The stored result as JSON, once it succeeded (see
    /// [`codec::to_json`](crate::codec::to_json)); `"<encrypted>"` when it is
    /// sealed and was read without its key.
    pub fn result_json(&self) -> crate::Result<Option<serde_json::Value>> {
        self.result
            .as_deref()
            .map(|bytes| {
                if crate::encryption::is_sealed(bytes) {
                    return Ok(serde_json::Value::String(
                        crate::encryption::ENCRYPTED.to_owned(),
                    ));
                }
                crate::codec::to_json(
                    bytes,
                    &format!("result of task {} ({})", self.id, self.name),
                )
            })
            .transpose()
    }
}

/// A request to cancel a task, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cancellation {
    /// When it was asked for (the backend's clock).
    pub requested_at: DateTime<Utc>,
    /// Who asked (`CancelRequest::by`; `"api"` by default).
    pub by: String,
    /// Why, if they said.
    pub reason: Option<String>,
}

/// One failed attempt in a task's failure history (`Queue::failures`).
///
/// Written for every attempt that failed: an error or panic that was
/// retried or failed the task, a timeout, a lease that ran out, a
/// cancellation while running. A retried task keeps its history, so the
/// same attempt number can appear once per run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptFailure {
    /// The attempt's number within its run (1 for the first).
    pub attempt: u32,
    /// Why it failed.
    pub kind: FailureKind,
    /// The error message.
    pub message: String,
    /// The worker that ran the attempt, when known.
    pub worker_id: Option<String>,
    /// When the attempt started; `None` when it never started (a cancel
    /// before it ran) or was stored before sitq recorded it.
    pub started_at: Option<DateTime<Utc>>,
    /// When the failure was recorded (the backend's clock).
    pub failed_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        let short = TaskFailure::new(FailureKind::Error, "disk full");
        assert_eq!(short.message, "disk full");
        // 3-byte characters, so the limit falls inside one.
        let long = "€".repeat(MAX_ERROR_BYTES);
        let failure = TaskFailure::new(FailureKind::Error, long.clone());
        assert!(failure.message.len() < MAX_ERROR_BYTES + 64);
        assert!(failure.message.starts_with("€€€"));
        assert!(
            failure
                .message
                .ends_with(&format!(" … [cut: {} bytes in all]", long.len())),
            "{}",
            &failure.message[failure.message.len() - 60..]
        );
        let logged = failure.message_for_log();
        assert!(logged.len() < MAX_LOGGED_ERROR_BYTES + 64);
        assert_eq!(short.message_for_log(), "disk full");
    }
}
