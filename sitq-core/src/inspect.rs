//! What the admin tools read: task lists, statistics, attempt history and
//! a health check of the database.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::record::{
    AttemptFailure, Cancellation, FailureKind, TaskFailure, TaskId, TaskRecord, TaskStatus,
};

/// The most tasks one [`Backend::tasks`](crate::Backend::tasks) call returns.
pub const MAX_LIST: usize = 10_000;

/// The most characters of an error a [`TaskSummary`] carries.
pub const SUMMARY_ERROR_CHARS: usize = 500;

/// Which tasks to list, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskFilter {
    /// Only tasks in one of these states; every state when empty.
    pub statuses: Vec<TaskStatus>,
    /// Only tasks of this queue.
    pub queue: Option<String>,
    /// Only tasks of this name.
    pub name: Option<String>,
    /// Only tasks enqueued at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Only tasks with a smaller id (keyset pagination: the last id of the
    /// previous page).
    pub before: Option<TaskId>,
    /// The most tasks to return (capped at [`MAX_LIST`]).
    pub limit: usize,
}

/// One row of a task list: the record without payload and result, its
/// error cut to [`SUMMARY_ERROR_CHARS`] characters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TaskSummary {
    /// The task's id.
    pub id: TaskId,
    /// The registered name.
    pub name: String,
    /// The queue.
    pub queue: String,
    /// Where it is.
    pub status: TaskStatus,
    /// Higher runs first.
    pub priority: i32,
    /// Attempts spent.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// The earliest instant it may run.
    pub run_at: DateTime<Utc>,
    /// When its current or last attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// The worker of its current or last attempt.
    pub worker_id: Option<String>,
    /// The kind of its last failure.
    pub error_kind: Option<FailureKind>,
    /// Its last error, cut to [`SUMMARY_ERROR_CHARS`] characters.
    pub error: Option<String>,
}

/// Tasks counted by queue, name and state ([`Stats::counts`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatusCount {
    /// The queue.
    pub queue: String,
    /// The task name.
    pub name: String,
    /// The state.
    pub status: TaskStatus,
    /// How many.
    pub count: u64,
    /// For pending tasks: the earliest `run_at` among those already due
    /// (how long the oldest ready task has waited); `None` otherwise.
    pub oldest_due: Option<DateTime<Utc>>,
}

/// Tasks finished recently, by queue and outcome ([`Stats::finished`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FinishedCount {
    /// The queue.
    pub queue: String,
    /// `succeeded`, `failed` or `cancelled`.
    pub status: TaskStatus,
    /// Finished in the last minute.
    pub last_minute: u64,
    /// Finished in the last hour.
    pub last_hour: u64,
}

/// The figures [`Backend::stats`](crate::Backend::stats) reads, in a few
/// grouped queries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// The database's clock when they were read.
    pub now: DateTime<Utc>,
    /// Every task counted by queue, name and state.
    pub counts: Vec<StatusCount>,
    /// Tasks finished in the last hour, by queue and outcome.
    pub finished: Vec<FinishedCount>,
    /// Failed attempts (retried or not) in the last minute.
    pub failed_attempts_last_minute: u64,
    /// Failed attempts (retried or not) in the last hour.
    pub failed_attempts_last_hour: u64,
}

/// How one attempt ended ([`Attempt::outcome`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// It is running now.
    Running,
    /// It succeeded.
    Succeeded,
    /// It failed (see [`Attempt::error`] for how).
    Failed,
}

/// One try of a task: every failed one from the failure history, and the
/// one running now or the one that succeeded from the task's own row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// The attempt's number (they start again at 1 after a retry).
    pub attempt: u32,
    /// The worker that ran it.
    pub worker_id: Option<String>,
    /// When it started (unknown for failures stored before sitq recorded it).
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended; `None` while it runs.
    pub finished_at: Option<DateTime<Utc>>,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// Its error, when it failed: the kind and the message with its source
    /// chain or panic message.
    pub error: Option<crate::record::TaskFailure>,
}

impl Attempt {
    /// How long it ran, when both ends are known.
    pub fn duration(&self) -> Option<Duration> {
        (self.finished_at? - self.started_at?).to_std().ok()
    }

    /// A task's attempts, oldest first, from its failure history and record.
    pub fn history(record: &TaskRecord, failures: &[AttemptFailure]) -> Vec<Attempt> {
        let mut attempts: Vec<Attempt> = failures
            .iter()
            .map(|failure| Attempt {
                attempt: failure.attempt,
                worker_id: failure.worker_id.clone(),
                started_at: failure.started_at,
                finished_at: Some(failure.failed_at),
                outcome: AttemptOutcome::Failed,
                error: Some(crate::record::TaskFailure::new(
                    failure.kind,
                    failure.message.clone(),
                )),
            })
            .collect();
        let current = match record.status {
            TaskStatus::Running if record.started_at.is_some() => Some(AttemptOutcome::Running),
            TaskStatus::Succeeded => Some(AttemptOutcome::Succeeded),
            _ => None,
        };
        if let Some(outcome) = current {
            attempts.push(Attempt {
                attempt: record.attempts,
                worker_id: record.worker_id.clone(),
                started_at: record.started_at,
                finished_at: record.finished_at,
                outcome,
                error: None,
            });
        }
        attempts
    }
}

/// A task whose stored payload or result is large ([`Diagnosis::oversized`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OversizedRow {
    /// The task's id.
    pub id: TaskId,
    /// Its name.
    pub name: String,
    /// Its payload's size in bytes.
    pub payload_bytes: u64,
    /// Its result's size in bytes.
    pub result_bytes: u64,
}

/// How a [`Check`] came out.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckLevel {
    /// Fine.
    Ok,
    /// Works, but worth a look.
    Warn,
    /// Broken: something will not work.
    Fail,
}

/// One finding of `doctor`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked, e.g. `journal mode`.
    pub name: String,
    /// How it came out.
    pub level: CheckLevel,
    /// What was found, and what to do when it is not `Ok`.
    pub detail: String,
}

impl Check {
    /// A finding.
    pub fn new(name: impl Into<String>, level: CheckLevel, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            level,
            detail: detail.into(),
        }
    }
}

/// What [`Backend::diagnose`](crate::Backend::diagnose) finds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    /// Where the database is: the SQLite file's absolute path, or the
    /// PostgreSQL host, port and database (never a password).
    pub location: String,
    /// The newest migration applied.
    pub schema_version: i64,
    /// The newest migration this build knows.
    pub expected_schema_version: i64,
    /// Running tasks whose lease has expired (lease recovery will return them).
    pub expired_leases: u64,
    /// Up to 20 tasks whose payload or result is larger than asked, largest first.
    pub oversized: Vec<OversizedRow>,
    /// The backend's own checks (journal mode, file permissions, …).
    pub checks: Vec<Check>,
}

/// What finished in one time bucket ([`Queue::activity`](crate::Queue::activity)):
/// the figures behind a dashboard's throughput, failure-rate and queue-wait charts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ActivityBucket {
    /// When the bucket starts; it ends where the next one starts.
    pub start: DateTime<Utc>,
    /// Tasks that succeeded in the bucket.
    pub succeeded: u64,
    /// Tasks that failed for good in the bucket.
    pub failed: u64,
    /// Tasks cancelled in the bucket.
    pub cancelled: u64,
    /// Attempts that failed in the bucket, retried or not (from the failure
    /// history, so a task that failed twice then succeeded counts two).
    pub failed_attempts: u64,
    /// The mean wait from due (`run_at`) to the start of the last attempt,
    /// in microseconds, over the tasks that finished in the bucket after
    /// running; `None` when none did.
    pub mean_wait_micros: Option<u64>,
}

impl ActivityBucket {
    /// The share of attempts that failed: failed attempts over failed
    /// attempts plus successes; `None` when there was neither.
    pub fn failure_rate(&self) -> Option<f64> {
        let total = self.failed_attempts + self.succeeded;
        (total > 0).then(|| self.failed_attempts as f64 / total as f64)
    }

    /// [`mean_wait_micros`](Self::mean_wait_micros) as a duration.
    pub fn mean_wait(&self) -> Option<Duration> {
        self.mean_wait_micros.map(Duration::from_micros)
    }
}

/// A task's place in a dependency graph ([`Queue::links`](crate::Queue::links)).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TaskLinks {
    /// The workflow the task belongs to, if any.
    pub workflow: Option<crate::WorkflowId>,
    /// The tasks it depends on, in the order it declared them (a task that
    /// was purged since is left out).
    pub dependencies: Vec<TaskSummary>,
    /// The tasks that depend on it, by id.
    pub dependents: Vec<TaskSummary>,
}

/// The error a backend's [`delete`](crate::Backend::delete) returns for a
/// task that is `status` (when it has not finished) or that an unfinished
/// dependent waits for, so both backends say the same.
pub fn not_deletable(id: TaskId, status: TaskStatus) -> crate::Error {
    let reason = if status.is_finished() {
        "an unfinished task depends on it (delete or finish that one first)".to_owned()
    } else {
        format!("it is {status}; only finished tasks can be deleted (cancel it first)")
    };
    crate::Error::NotDeletable { id, reason }
}

/// Finished tasks in one activity bucket, as a backend reads them: the
/// bucket's number `k` (it starts at `since + k * width`), the counts of
/// succeeded, failed and cancelled tasks, and the mean wait in microseconds.
pub type FinishedInBucket = (i64, [u64; 3], Option<u64>);

/// The [`ActivityBucket`]s a backend's [`activity`](crate::Backend::activity)
/// returns, from its two grouped reads: `finished` tasks and `failed`
/// attempts (bucket number, count) per bucket. Oldest first, one per
/// bucket with anything in it.
pub fn activity_buckets(
    since: DateTime<Utc>,
    width: Duration,
    finished: impl IntoIterator<Item = FinishedInBucket>,
    failed: impl IntoIterator<Item = (i64, u64)>,
) -> Vec<ActivityBucket> {
    let micros = i64::try_from(width.as_micros()).unwrap_or(i64::MAX);
    let mut buckets: std::collections::BTreeMap<i64, ActivityBucket> = Default::default();
    let empty = |k: i64| ActivityBucket {
        start: since + chrono::Duration::microseconds(k.saturating_mul(micros)),
        ..ActivityBucket::default()
    };
    for (k, [succeeded, failed, cancelled], wait) in finished {
        let bucket = buckets.entry(k).or_insert_with(|| empty(k));
        bucket.succeeded = succeeded;
        bucket.failed = failed;
        bucket.cancelled = cancelled;
        bucket.mean_wait_micros = wait;
    }
    for (k, attempts) in failed {
        buckets.entry(k).or_insert_with(|| empty(k)).failed_attempts = attempts;
    }
    buckets.into_values().collect()
}

/// A task as the admin tools show it: its record without the encoded
/// payload and result ([`TaskDetail`] carries those as JSON).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TaskView {
    /// Its id.
    pub id: TaskId,
    /// Its registered name.
    pub name: String,
    /// Its queue.
    pub queue: String,
    /// Its status.
    pub status: TaskStatus,
    /// Its priority.
    pub priority: i32,
    /// Attempts started.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Times it snoozed.
    pub snoozes: u32,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When it is (or was) due.
    pub run_at: DateTime<Utc>,
    /// When its last attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// The worker of its last attempt.
    pub worker_id: Option<String>,
    /// Its last failure.
    pub failure: Option<TaskFailure>,
    /// The request to cancel it, if any.
    pub cancellation: Option<Cancellation>,
}

impl From<&TaskRecord> for TaskView {
    fn from(record: &TaskRecord) -> TaskView {
        TaskView {
            id: record.id,
            name: record.name.clone(),
            queue: record.queue.clone(),
            status: record.status,
            priority: record.priority,
            attempts: record.attempts,
            max_attempts: record.max_attempts,
            snoozes: record.snoozes,
            created_at: record.created_at,
            run_at: record.run_at,
            started_at: record.started_at,
            finished_at: record.finished_at,
            worker_id: record.worker_id.clone(),
            failure: record.failure.clone(),
            cancellation: record.cancellation.clone(),
        }
    }
}

/// One task whole, as `sitq show --json` and the dashboard's
/// `GET /api/tasks/{id}` give it: the record, the arguments and result
/// decoded to JSON without the task's Rust types, and every attempt.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TaskDetail {
    /// The record.
    pub task: TaskView,
    /// The arguments as JSON, or `None` when they could not be read.
    pub arguments: Option<serde_json::Value>,
    /// Why the arguments could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments_error: Option<String>,
    /// The result as JSON once the task succeeded, else `None`.
    pub result: Option<serde_json::Value>,
    /// Why the result could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_error: Option<String>,
    /// Every attempt, oldest first.
    pub attempts: Vec<Attempt>,
}

impl TaskDetail {
    /// The detail of `record` with its `attempts`; a payload or result that
    /// does not decode is named, never an error for the whole task.
    pub fn new(record: &TaskRecord, attempts: Vec<Attempt>) -> TaskDetail {
        let split = |value: crate::Result<Option<serde_json::Value>>| match value {
            Ok(value) => (value, None),
            Err(err) => (None, Some(one_line(&err))),
        };
        let (arguments, arguments_error) = split(record.arguments_json().map(Some));
        let (result, result_error) = split(record.result_json());
        TaskDetail {
            task: TaskView::from(record),
            arguments,
            arguments_error,
            result,
            result_error,
            attempts,
        }
    }
}

/// An error and its sources on one line, each source once (some errors
/// repeat their source in their own message), whitespace collapsed.
pub fn one_line(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A duration as operators type it: `90s`, `30m`, `1h30m`, `7d`, `250ms`,
/// `2w`; a bare number is seconds. `None` for anything else (no sign, no
/// fraction, no overflow). The admin tool and the dashboard read their
/// durations with this, so both accept the same.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_ms: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.checked_add(Duration::from_millis(number.checked_mul(unit_ms)?))?;
    }
    Some(total)
}

/// An instant as operators type it: a [`parse_duration`] ago (`1h`) or an
/// RFC 3339 time. `None` for anything else or a time before the epoch.
pub fn parse_since(text: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text.trim()) {
        return Some(at.with_timezone(&Utc));
    }
    let ago = chrono::Duration::from_std(parse_duration(text)?).ok()?;
    now.checked_sub_signed(ago)
}

/// Task states given as a comma list (`failed,pending`), each once in the
/// order given; `Err` names the first unknown one.
pub fn parse_statuses<'a>(
    texts: impl IntoIterator<Item = &'a str>,
) -> std::result::Result<Vec<TaskStatus>, String> {
    let mut statuses = Vec::new();
    for part in texts
        .into_iter()
        .flat_map(|text| text.split(','))
        .map(str::trim)
        .filter(|part| !part.is_empty())
    {
        let status = part.parse::<TaskStatus>().map_err(|_| part.to_owned())?;
        if !statuses.contains(&status) {
            statuses.push(status);
        }
    }
    Ok(statuses)
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(7 * 86_400)));
        for bad in ["", "h", "1x", "1.5h", "-1h", "99999999999999999999w"] {
            assert_eq!(parse_duration(bad), None, "{bad:?} parsed");
        }
    }

    #[test]
    fn instants_and_states() {
        let now = Utc::now();
        assert_eq!(
            parse_since("1h", now),
            Some(now - chrono::Duration::hours(1))
        );
        assert!(parse_since("2026-01-31T12:00:00Z", now).is_some());
        assert_eq!(parse_since("yesterday", now), None);
        assert_eq!(
            parse_statuses(["failed,pending", "failed"]),
            Ok(vec![TaskStatus::Failed, TaskStatus::Pending])
        );
        assert_eq!(parse_statuses(["done"]), Err("done".to_owned()));
    }
}
