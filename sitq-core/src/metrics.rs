//! The client's metrics, through the `metrics` facade: a no-op unless the
//! program installs a recorder (e.g. the worker's Prometheus exporter).

use std::collections::HashMap;

use crate::backend::NewTask;

/// `sitq_tasks_enqueued_total{queue, task}`: tasks stored by enqueue
/// (duplicates of a unique key not counted), across every enqueue path.
pub(crate) const ENQUEUED: &str = "sitq_tasks_enqueued_total";

/// Tasks of one enqueue call counted by queue and name, recorded once the
/// call has stored them (one increment per pair, not per task).
pub(crate) struct Enqueued(HashMap<(String, String), u64>);

impl Enqueued {
    /// Counts `tasks` before they are handed to the backend.
    pub(crate) fn count(tasks: &[NewTask]) -> Enqueued {
        Enqueued::count_stored(
            tasks
                .iter()
                .map(|task| (task.queue.as_str(), task.name.as_str())),
        )
    }

    /// Counts `(queue, name)` pairs of stored tasks.
    pub(crate) fn count_stored<'a>(tasks: impl Iterator<Item = (&'a str, &'a str)>) -> Enqueued {
        let mut counts: HashMap<(&str, &str), u64> = HashMap::new();
        for pair in tasks {
            *counts.entry(pair).or_default() += 1;
        }
        Enqueued(
            counts
                .into_iter()
                .map(|((queue, name), count)| ((queue.to_owned(), name.to_owned()), count))
                .collect(),
        )
    }

    /// Adds the counts to the counter.
    pub(crate) fn record(self) {
        for ((queue, task), count) in self.0 {
            metrics::counter!(ENQUEUED, "queue" => queue, "task" => task).increment(count);
        }
    }
}
