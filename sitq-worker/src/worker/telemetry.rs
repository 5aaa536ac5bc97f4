//! The worker's metrics, through the [`metrics`] facade: whatever recorder
//! the program installs (or [`Worker::metrics_listener`]'s Prometheus
//! exporter) receives them; without one they cost next to nothing.
//!
//! [`Worker::metrics_listener`]: crate::Worker

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use sitq_core::{Backend, ClaimedTask, Outcome, Stats, TaskStatus};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

/// Attempts started, by `queue` and `task`.
pub(crate) const STARTED: &str = "sitq_tasks_started_total";
/// Attempts ended, by `queue`, `task` and `outcome`.
pub(crate) const COMPLETED: &str = "sitq_tasks_completed_total";
/// How long attempts ran, by `queue` and `task`.
pub(crate) const DURATION: &str = "sitq_task_duration_seconds";
/// From enqueue to the start of an attempt, by `queue` and `task` (a
/// delay, and a retried task's earlier attempts and backoff, included).
pub(crate) const QUEUE_WAIT: &str = "sitq_task_queue_wait_seconds";
/// This worker's slots, by `state` (`busy`, `idle`).
pub(crate) const SLOTS: &str = "sitq_worker_slots";
/// Tasks in the database, by `queue` and `status`.
pub(crate) const QUEUE_DEPTH: &str = "sitq_queue_depth";
/// How long the oldest due pending task of a `queue` has waited.
pub(crate) const OLDEST_PENDING: &str = "sitq_queue_oldest_pending_seconds";

/// How often [`QueueGauges`] reads the database's counts.
pub(crate) const QUEUE_GAUGES_EVERY: Duration = Duration::from_secs(5);

/// Describes the metrics to the recorder (units and help texts).
pub(crate) fn describe() {
    describe_counter!(STARTED, "Task attempts started by sitq workers.");
    describe_counter!(
        COMPLETED,
        "Task attempts ended, by outcome (succeeded, failed, retried, cancelled, snoozed)."
    );
    describe_histogram!(DURATION, Unit::Seconds, "How long task attempts ran.");
    describe_histogram!(
        QUEUE_WAIT,
        Unit::Seconds,
        "Time from enqueue to the start of an attempt (delays and earlier attempts included)."
    );
    describe_gauge!(SLOTS, "This worker's task slots, busy or idle.");
    describe_gauge!(QUEUE_DEPTH, "Tasks in the database by queue and status.");
    describe_gauge!(
        OLDEST_PENDING,
        Unit::Seconds,
        "How long the oldest due pending task of a queue has waited."
    );
}

/// An attempt of `task` starts now.
pub(crate) fn attempt_started(task: &ClaimedTask) {
    let labels = [("queue", task.queue.clone()), ("task", task.name.clone())];
    counter!(STARTED, &labels).increment(1);
    let waited = (Utc::now() - task.created_at)
        .to_std()
        .unwrap_or(Duration::ZERO);
    histogram!(QUEUE_WAIT, &labels).record(waited.as_secs_f64());
}

/// An attempt of `task` ended with `outcome` after `ran`.
pub(crate) fn attempt_finished(task: &ClaimedTask, outcome: &Outcome, ran: Duration) {
    let labels = [("queue", task.queue.clone()), ("task", task.name.clone())];
    histogram!(DURATION, &labels).record(ran.as_secs_f64());
    let [queue, name] = labels;
    counter!(
        COMPLETED,
        &[queue, name, ("outcome", outcome_label(outcome).to_owned())]
    )
    .increment(1);
}

/// The `outcome` label of an attempt's end.
pub(crate) fn outcome_label(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Succeeded(_) => "succeeded",
        Outcome::Retry { .. } => "retried",
        Outcome::Failed(_) => "failed",
        Outcome::Cancelled(_) => "cancelled",
        Outcome::Snooze { .. } => "snoozed",
    }
}

/// A worker went from `before` to `after` (slots, busy). The gauges move
/// by the difference, so several workers in one process add up.
pub(crate) fn slots_changed(before: (usize, usize), after: (usize, usize)) {
    let idle = |(slots, busy): (usize, usize)| slots.saturating_sub(busy) as f64;
    let busy = after.1 as f64 - before.1 as f64;
    if busy != 0.0 {
        gauge!(SLOTS, "state" => "busy").increment(busy);
    }
    let idle = idle(after) - idle(before);
    if idle != 0.0 {
        gauge!(SLOTS, "state" => "idle").increment(idle);
    }
}

/// Sets the queue gauges from [`Backend::stats`] every few seconds: tasks
/// by queue and status, and the age of each queue's oldest due pending
/// task. Only when metrics are wanted (a listener, or
/// [`Worker::queue_metrics`](crate::Worker::queue_metrics)): each read
/// counts the whole table.
pub(crate) struct QueueGauges {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) every: Duration,
}

impl QueueGauges {
    /// Runs until `stop` turns true.
    pub(crate) async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut shown = Shown::default();
        let mut failing = false;
        loop {
            tokio::select! {
                () = super::maintenance::stopped(&mut stop) => return,
                _ = tick.tick() => match self.backend.stats().await {
                    Ok(stats) => {
                        failing = false;
                        shown = shown.update(&stats);
                    }
                    // Once per streak: a backend without statistics would
                    // say so every few seconds.
                    Err(err) if !failing => {
                        failing = true;
                        tracing::warn!(error = %err, "could not read queue statistics for the queue metrics; retrying");
                    }
                    Err(err) => tracing::debug!(error = %err, "could not read queue statistics"),
                },
            }
        }
    }
}

/// The queue gauges last set, so a queue or status that is gone reads 0
/// instead of its last value.
#[derive(Default)]
struct Shown {
    depth: BTreeMap<(String, &'static str), u64>,
    oldest: BTreeMap<String, f64>,
}

impl Shown {
    fn update(self, stats: &Stats) -> Shown {
        let next = Shown::from_stats(stats);
        for key in self
            .depth
            .keys()
            .filter(|key| !next.depth.contains_key(*key))
        {
            gauge!(QUEUE_DEPTH, "queue" => key.0.clone(), "status" => key.1).set(0.0);
        }
        for queue in self
            .oldest
            .keys()
            .filter(|queue| !next.oldest.contains_key(*queue))
        {
            gauge!(OLDEST_PENDING, "queue" => queue.clone()).set(0.0);
        }
        for ((queue, status), count) in &next.depth {
            gauge!(QUEUE_DEPTH, "queue" => queue.clone(), "status" => *status).set(*count as f64);
        }
        for (queue, age) in &next.oldest {
            gauge!(OLDEST_PENDING, "queue" => queue.clone()).set(*age);
        }
        next
    }

    fn from_stats(stats: &Stats) -> Shown {
        let mut shown = Shown::default();
        let mut oldest: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
        for count in &stats.counts {
            *shown
                .depth
                .entry((count.queue.clone(), status_label(count.status)))
                .or_default() += count.count;
            if let Some(due) = count.oldest_due {
                let entry = oldest.entry(count.queue.clone()).or_insert(due);
                *entry = (*entry).min(due);
            }
        }
        // Every queue with tasks gets every status (0 when none: a series
        // that is there reads better in PromQL than one that is absent) and
        // an age, 0 when no pending task is due.
        let queues: BTreeSet<String> = shown.depth.keys().map(|(queue, _)| queue.clone()).collect();
        for queue in &queues {
            for status in TaskStatus::ALL {
                shown
                    .depth
                    .entry((queue.clone(), status_label(status)))
                    .or_default();
            }
        }
        for queue in queues {
            let age = oldest
                .get(&queue)
                .and_then(|due| (stats.now - *due).to_std().ok())
                .map_or(0.0, |age| age.as_secs_f64());
            shown.oldest.insert(queue, age);
        }
        shown
    }
}

fn status_label(status: TaskStatus) -> &'static str {
    status.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sitq_core::StatusCount;

    fn count(queue: &str, name: &str, status: TaskStatus, n: u64, due: Option<i64>) -> StatusCount {
        StatusCount {
            queue: queue.into(),
            name: name.into(),
            status,
            count: n,
            oldest_due: due.map(|secs| DateTime::from_timestamp(secs, 0).expect("time")),
        }
    }

    #[test]
    fn queue_gauges_sum_names_and_take_the_oldest_due_task() {
        let stats = Stats {
            now: DateTime::from_timestamp(1_000, 0).expect("time"),
            counts: vec![
                count("mail", "send", TaskStatus::Pending, 3, Some(990)),
                count("mail", "bounce", TaskStatus::Pending, 2, Some(960)),
                count("mail", "send", TaskStatus::Failed, 1, None),
                count("default", "report", TaskStatus::Succeeded, 7, None),
            ],
            finished: Vec::new(),
            failed_attempts_last_minute: 0,
            failed_attempts_last_hour: 0,
        };
        let shown = Shown::from_stats(&stats);
        assert_eq!(shown.depth.get(&("mail".into(), "pending")), Some(&5));
        assert_eq!(shown.depth.get(&("mail".into(), "failed")), Some(&1));
        assert_eq!(shown.depth.get(&("default".into(), "succeeded")), Some(&7));
        assert_eq!(shown.depth.get(&("default".into(), "pending")), Some(&0));
        assert_eq!(shown.depth.get(&("mail".into(), "running")), Some(&0));
        assert_eq!(shown.depth.len(), 2 * TaskStatus::ALL.len());
        assert_eq!(shown.oldest.get("mail"), Some(&40.0));
        assert_eq!(shown.oldest.get("default"), Some(&0.0));
    }
}
