//! The `NOTIFY` side of wake-ups: channel names, payload format, and the SQL
//! that sends them from inside the statement that made the change.
//!
//! `sitq_work` carries no payload: any enqueue, retry or released claim wakes
//! idle workers, which then claim. `sitq_finished` carries the ids of
//! finished tasks as comma-separated decimals, so only their waiters wake.
//! `sitq_cancel`, `sitq_retry` and `sitq_control` (a drain request) tell
//! workers and waiters of the other changes they act on.
//!
//! Every statement that changes tasks notifies by itself (a `pg_notify` in a
//! CTE), so a change and its notification cost one round trip together, and
//! PostgreSQL delivers the notification at commit (never for a rollback).

use sitq_core::TaskId;

/// New or newly ready work.
pub(crate) const WORK: &str = "sitq_work";

/// Tasks that finished; the payload lists their ids.
pub(crate) const FINISHED: &str = "sitq_finished";

/// Tasks cancelled or asked to be; the payload is one id. The worker
/// holding the task (if any) stops it.
pub(crate) const CANCEL: &str = CANCEL_CHANNEL!();

/// Tasks retried; the payload is one id. Every process forgets the outcome
/// it kept for the task's waiters.
pub(crate) const RETRY: &str = RETRY_CHANNEL!();

/// Worker control: a worker was asked to drain; the payload is its id
/// (listeners do not read it: every worker of the process checks its own
/// row).
pub(crate) const CONTROL: &str = CONTROL_CHANNEL!();

/// The name of [`CONTROL`], for SQL text built with `concat!`.
macro_rules! CONTROL_CHANNEL {
    () => {
        "sitq_control"
    };
}

/// The name of [`CANCEL`], for SQL text built with `concat!`.
macro_rules! CANCEL_CHANNEL {
    () => {
        "sitq_cancel"
    };
}

/// The name of [`RETRY`], for SQL text built with `concat!`.
macro_rules! RETRY_CHANNEL {
    () => {
        "sitq_retry"
    };
}

pub(crate) use {CANCEL_CHANNEL, CONTROL_CHANNEL, RETRY_CHANNEL};

/// PostgreSQL rejects payloads of 8000 bytes or more; stay well below.
#[cfg(test)]
const MAX_PAYLOAD: usize = 7900;

/// How many ids one `sitq_finished` payload lists: an id is at most 19
/// digits and a comma, so 300 of them stay under [`MAX_PAYLOAD`].
macro_rules! ids_per_notice {
    () => {
        "300"
    };
}

/// A CTE named `notified` that notifies about the rows of a CTE named
/// `changed` (columns `id` and `status`, the status after the change):
/// `sitq_work` once when any became pending, and `sitq_finished` with the
/// ids of those that finished, [`ids_per_notice!`] ids per notification.
///
/// `MATERIALIZED` (and `pg_notify` being volatile) makes PostgreSQL run it
/// in full once; the statement must still read it, e.g. with
/// `CROSS JOIN (SELECT count(*) FROM notified) AS notified`, since a CTE
/// nothing reads is never run.
///
/// `notified_cte!(releasing)` also wakes workers when a changed row has
/// `releases` true (a column `changed` must then have): a task that stopped
/// running or finished in a sequence or in a concurrency-limited queue may
/// let another one run.
macro_rules! notified_cte {
    () => {
        $crate::notify::notified_cte!(@work "changed.status = 'pending'")
    };
    (releasing) => {
        $crate::notify::notified_cte!(@work "(changed.status = 'pending' OR changed.releases)")
    };
    (@work $work:literal) => {
        concat!(
            "
notified AS MATERIALIZED (
    SELECT pg_notify(notice.channel, notice.payload)
    FROM (
        SELECT 'sitq_work' AS channel, '' AS payload
        WHERE EXISTS (SELECT 1 FROM changed WHERE ",
            $work,
            ")
        UNION ALL
        SELECT 'sitq_finished', string_agg(done.id::text, ',')
        FROM (
            SELECT changed.id,
                   (row_number() OVER (ORDER BY changed.id) - 1) / ",
            $crate::notify::ids_per_notice!(),
            " AS chunk
            FROM changed
            WHERE changed.status IN ('succeeded', 'failed', 'cancelled')
        ) AS done
        GROUP BY done.chunk
    ) AS notice
)"
        )
    };
}

/// The `releases` column of a `changed` CTE for [`notified_cte!(releasing)`]:
/// whether the row (alias `t`) is in a sequence or in a queue with a
/// concurrency limit. The subquery does not depend on the row, so it runs
/// once per statement, over a table that is usually empty.
macro_rules! releases_column {
    () => {
        "(t.sequence IS NOT NULL OR t.queue IN \
         (SELECT queue FROM sitq_queues WHERE concurrency IS NOT NULL)) AS releases"
    };
}

pub(crate) use {ids_per_notice, notified_cte, releases_column};

/// What a committed statement notified, for this process's own signals.
#[derive(Debug, Default)]
pub(crate) struct Notices {
    /// Whether tasks became pending.
    pub(crate) work: bool,
    /// Tasks that finished.
    pub(crate) finished: Vec<TaskId>,
}

impl Notices {
    /// The notices for changed rows given as (id, status after the change).
    pub(crate) fn for_rows<'a>(rows: impl IntoIterator<Item = (i64, &'a str)>) -> Notices {
        let mut notices = Notices::default();
        notices.add(rows);
        notices
    }

    /// Adds the notices for more changed rows.
    pub(crate) fn add<'a>(&mut self, rows: impl IntoIterator<Item = (i64, &'a str)>) {
        for (id, status) in rows {
            match status {
                "pending" => self.work = true,
                "succeeded" | "failed" | "cancelled" => self.finished.push(TaskId(id)),
                _ => {}
            }
        }
    }
}

impl Notices {
    /// Adds `other`'s notices.
    pub(crate) fn add_notices(&mut self, other: Notices) {
        self.work |= other.work;
        self.finished.extend(other.finished);
    }
}

/// The ids in a `sitq_finished` payload; malformed entries (from a newer
/// or foreign sender) are skipped.
pub(crate) fn parse_finished(payload: &str) -> impl Iterator<Item = TaskId> + '_ {
    payload
        .split(',')
        .filter_map(|id| id.trim().parse::<TaskId>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_notice_of_the_longest_ids_stays_under_the_limit() {
        let per_notice: usize = ids_per_notice!().parse().expect("a number");
        let longest = i64::MAX.to_string().len();
        assert!(per_notice * (longest + 1) <= MAX_PAYLOAD);
    }

    #[test]
    fn payloads_parse_leniently() {
        assert_eq!(parse_finished("").count(), 0);
        assert_eq!(
            parse_finished("7,x,9").collect::<Vec<_>>(),
            [TaskId(7), TaskId(9)]
        );
    }

    #[test]
    fn notices_follow_the_new_status() {
        let notices = Notices::for_rows([(1, "pending"), (2, "succeeded"), (3, "running")]);
        assert!(notices.work);
        assert_eq!(notices.finished, [TaskId(2)]);
        assert!(!Notices::for_rows([(4, "failed")]).work);
    }
}
