//! What operators do: look at workers, tasks, statistics and history, and
//! act on them with every action written to the audit log.

use std::time::Duration;

use chrono::Utc;

use crate::audit::{AuditEntry, MAX_AUDIT_DETAIL, NewAuditEntry};
use crate::cancel::{CancelOutcome, CancelRequest};
use crate::inspect::{
    ActivityBucket, Attempt, Diagnosis, MAX_LIST, Stats, TaskFilter, TaskLinks, TaskSummary,
};
use crate::options::EnqueueOptions;
use crate::queue::Queue;
use crate::record::{TaskId, TaskStatus};
use crate::workers::WorkerInfo;
use crate::{Error, Result, codec};

impl Queue {
    /// Every live worker process (registered by its heartbeat, not expired), by id.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        self.backend().workers().await
    }

    /// Asks worker `id` to drain: it stops claiming and its `run()` returns
    /// once its running tasks are finished. It sees the request at once on
    /// PostgreSQL and in this process, and within about a second
    /// ([`WORKER_BEAT`](crate::WORKER_BEAT)) otherwise.
    /// [`Error::WorkerNotFound`] when no live worker has that id.
    pub async fn drain_worker(&self, id: &str) -> Result<()> {
        if self.backend().drain_worker(id).await? {
            Ok(())
        } else {
            Err(Error::WorkerNotFound(id.to_owned()))
        }
    }

    /// Tasks matching `filter`, newest first (see [`TaskFilter`]).
    pub async fn tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskSummary>> {
        if filter.limit > MAX_LIST {
            return Err(Error::Config(format!(
                "a task list holds at most {MAX_LIST} tasks; got a limit of {} (page with `before`)",
                filter.limit
            )));
        }
        self.backend().tasks(filter).await
    }

    /// Counts by queue, name and state, recent finishes and failures.
    pub async fn stats(&self) -> Result<Stats> {
        self.backend().stats().await
    }

    /// Every attempt of a task, oldest first: each failed one (from the
    /// failure history) and the one running now or the one that succeeded.
    /// [`Error::NotFound`] for an unknown id.
    pub async fn attempts(&self, id: TaskId) -> Result<Vec<Attempt>> {
        let record = self.get(id).await?;
        let failures = self.backend().failures(id).await?;
        Ok(Attempt::history(&record, &failures))
    }

    /// What finished over the last `window`, in buckets `bucket` wide:
    /// every bucket from the one holding `now - window` to the one holding
    /// now, oldest first, empty ones included. Buckets start at multiples
    /// of `bucket` since the Unix epoch, so they stay put from one call to
    /// the next. At most 1,000 buckets.
    pub async fn activity(
        &self,
        window: Duration,
        bucket: Duration,
    ) -> Result<Vec<ActivityBucket>> {
        let width = i64::try_from(bucket.as_micros()).unwrap_or(i64::MAX);
        let span = i64::try_from(window.as_micros()).unwrap_or(i64::MAX);
        if width < 1_000_000 || span / width > 1_000 {
            return Err(Error::Config(format!(
                "activity buckets are at least a second wide and at most 1000 to a window; got {bucket:?} over {window:?}"
            )));
        }
        let now = Utc::now().timestamp_micros();
        let first = (now.saturating_sub(span)).div_euclid(width) * width;
        let since = chrono::DateTime::from_timestamp_micros(first).ok_or_else(|| {
            Error::Config(format!("a window of {window:?} reaches before the epoch"))
        })?;
        let found = self.backend().activity(since, bucket).await?;
        let count = (now - first) / width + 1;
        let mut buckets: Vec<ActivityBucket> = (0..count)
            .filter_map(|k| chrono::DateTime::from_timestamp_micros(first + k * width))
            .map(|start| ActivityBucket {
                start,
                ..ActivityBucket::default()
            })
            .collect();
        for bucket in found {
            let k = (bucket.start.timestamp_micros() - first).div_euclid(width);
            if let Some(slot) = usize::try_from(k).ok().and_then(|k| buckets.get_mut(k)) {
                *slot = bucket;
            }
        }
        Ok(buckets)
    }

    /// The task's workflow, dependencies and dependents.
    /// [`Error::NotFound`] for an unknown id.
    pub async fn links(&self, id: TaskId) -> Result<TaskLinks> {
        self.backend().links(id).await?.ok_or(Error::NotFound(id))
    }

    /// The audit log, newest first: at most `limit` entries with an id
    /// below `before`.
    pub async fn audit_log(&self, limit: usize, before: Option<i64>) -> Result<Vec<AuditEntry>> {
        self.backend().audit_log(limit.min(MAX_LIST), before).await
    }

    /// Checks the database (see [`Diagnosis`]); rows over the queue's
    /// payload limit count as oversized.
    pub async fn diagnose(&self) -> Result<Diagnosis> {
        self.backend()
            .diagnose(self.options().max_payload_bytes)
            .await
    }

    /// Admin actions on behalf of `actor` (an OS user, a dashboard user),
    /// each written to the audit log once it is done.
    pub fn audited(&self, actor: impl Into<String>) -> Audited {
        Audited {
            queue: self.clone(),
            actor: actor.into(),
        }
    }
}

/// Admin actions written to the audit log ([`Queue::audited`]). Each one
/// first checks that it could be recorded ([`Backend::check_audit`](crate::Backend::check_audit):
/// a PostgreSQL role that may not write the audit log is refused before
/// anything is done), then acts, then records what was done; an action that
/// fails records nothing.
#[derive(Clone, Debug)]
pub struct Audited {
    queue: Queue,
    actor: String,
}

impl Audited {
    /// Who the actions are recorded for.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// [`Queue::retry`], recorded.
    pub async fn retry(&self, id: TaskId) -> Result<()> {
        self.may_record().await?;
        self.queue.retry(id).await?;
        self.record("retry", format!("task {id}"), None).await
    }

    /// Deletes a finished task with its history ([`Backend::delete`](crate::Backend::delete)),
    /// recorded. [`Error::NotDeletable`] for one that has not finished or
    /// that an unfinished dependent waits for.
    pub async fn delete(&self, id: TaskId) -> Result<()> {
        self.may_record().await?;
        self.queue.backend().delete(id).await?;
        self.record("delete", format!("task {id}"), None).await
    }

    /// [`Queue::cancel_with`] on behalf of the actor, with an optional
    /// reason; recorded with its outcome.
    pub async fn cancel(&self, id: TaskId, reason: Option<String>) -> Result<CancelOutcome> {
        let mut request = CancelRequest::new().by(self.actor.clone());
        if let Some(reason) = reason.clone() {
            request = request.reason(reason);
        }
        self.may_record().await?;
        let outcome = self.queue.cancel_with(id, request).await?;
        let detail = match &reason {
            Some(reason) => format!("{outcome:?}: {reason}"),
            None => format!("{outcome:?}"),
        };
        self.record("cancel", format!("task {id}"), Some(detail))
            .await?;
        Ok(outcome)
    }

    /// Deletes tasks in `statuses` (every finished state when empty) that
    /// finished more than `older_than` ago; returns how many. Unfinished
    /// states are refused with [`Error::Config`], nothing deleted.
    pub async fn purge(&self, older_than: Duration, statuses: &[TaskStatus]) -> Result<u64> {
        if let Some(status) = statuses.iter().find(|status| !status.is_finished()) {
            return Err(Error::Config(format!(
                "only finished tasks can be purged (succeeded, failed, cancelled), not {status} ones; cancel them first"
            )));
        }
        let before = chrono::Duration::from_std(older_than)
            .ok()
            .and_then(|age| Utc::now().checked_sub_signed(age))
            .ok_or_else(|| Error::Config(format!("purge age {older_than:?} is too large")))?;
        self.may_record().await?;
        let deleted = self.queue.backend().purge(before, statuses).await?;
        let which = if statuses.is_empty() {
            "finished".to_owned()
        } else {
            statuses
                .iter()
                .map(|status| status.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        self.record(
            "purge",
            format!("{which} tasks"),
            Some(format!(
                "finished before {}: {deleted} deleted",
                before.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )),
        )
        .await?;
        Ok(deleted)
    }

    /// [`Queue::pause`], recorded.
    pub async fn pause(&self, queue: &str) -> Result<()> {
        self.may_record().await?;
        self.queue.pause(queue).await?;
        self.record("pause", format!("queue {queue}"), None).await
    }

    /// [`Queue::resume`], recorded.
    pub async fn resume(&self, queue: &str) -> Result<()> {
        self.may_record().await?;
        self.queue.resume(queue).await?;
        self.record("resume", format!("queue {queue}"), None).await
    }

    /// [`Queue::drain_worker`], recorded.
    pub async fn drain_worker(&self, id: &str) -> Result<()> {
        self.may_record().await?;
        self.queue.drain_worker(id).await?;
        self.record("drain", format!("worker {id}"), None).await
    }

    /// Enqueues a task by name with its arguments as JSON: an object with
    /// the task's argument names (`{"a": 2, "b": 3}`), or an array of them
    /// in order. The name and arguments are not checked here (the worker
    /// that runs the task has its types): a mistake fails the task when it
    /// runs, and it is kept. Recorded.
    pub async fn enqueue_json(
        &self,
        name: &str,
        args: &serde_json::Value,
        options: EnqueueOptions,
    ) -> Result<TaskId> {
        if !(args.is_object() || args.is_array()) {
            return Err(Error::InvalidOptions(format!(
                "the arguments of a task are a JSON object (by name, e.g. {{\"a\": 2}}) or array (in order), not {args}"
            )));
        }
        let payload = codec::from_json(args, &format!("arguments of task {name}"))?;
        self.may_record().await?;
        let id = self.queue.enqueue_raw(name, payload, options).await?;
        self.record(
            "enqueue",
            format!("task {id}"),
            Some(format!("{name} {args}")),
        )
        .await?;
        Ok(id)
    }

    /// Refuses an action the audit log could not record, before it is done.
    async fn may_record(&self) -> Result<()> {
        self.queue.backend().check_audit().await
    }

    async fn record(&self, action: &str, target: String, detail: Option<String>) -> Result<()> {
        let entry = NewAuditEntry {
            actor: self.actor.clone(),
            action: action.to_owned(),
            target,
            detail: detail.map(|detail| cut(detail, MAX_AUDIT_DETAIL)),
        };
        self.queue.backend().record_audit(&entry).await
    }
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}
