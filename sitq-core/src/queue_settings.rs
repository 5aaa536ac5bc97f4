//! Per-queue settings stored in the database: pause and global limits.
//!
//! A queue has no settings until one is set; the claim then costs one look
//! at an empty table. Settings hold for every worker of every process that
//! shares the database, because the claim checks them in its own statement
//! (PostgreSQL) or write transaction (SQLite).

use std::time::Duration;

use crate::{Error, Result};

/// Global limits of one queue, for
/// [`Queue::set_queue_limits`](crate::Queue::set_queue_limits).
///
/// `QueueLimits::new()` has no limit: setting it clears the queue's limits.
///
/// ```
/// use std::time::Duration;
/// use sitq_core::QueueLimits;
///
/// // At most 3 tasks of the queue running at once, and at most 10 starts per second.
/// let limits = QueueLimits::new().concurrency(3).rate(10, Duration::from_secs(1));
/// assert_eq!(limits.get_concurrency(), Some(3));
/// ```
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueLimits {
    concurrency: Option<u32>,
    rate: Option<RateLimit>,
}

/// At most `count` claims of a queue's tasks in any window of `period`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Claims allowed per window (at least 1).
    pub count: u32,
    /// The window's length (at least 1 ms).
    pub period: Duration,
}

impl QueueLimits {
    /// No limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// At most `tasks` tasks of the queue running at once, across every
    /// worker and process (at least 1). Tasks a worker claimed ahead of a
    /// free slot (prefetched) count as running: they are held.
    pub fn concurrency(mut self, tasks: u32) -> Self {
        self.concurrency = Some(tasks);
        self
    }

    /// At most `count` tasks of the queue claimed (started) in any window of
    /// length `period` (a sliding window, not fixed buckets), across every
    /// worker and process. `count` at least 1, `period` at least 1 ms.
    pub fn rate(mut self, count: u32, period: Duration) -> Self {
        self.rate = Some(RateLimit { count, period });
        self
    }

    /// The concurrency limit, if any.
    pub fn get_concurrency(&self) -> Option<u32> {
        self.concurrency
    }

    /// The rate limit, if any.
    pub fn get_rate(&self) -> Option<RateLimit> {
        self.rate
    }

    /// Whether no limit is set.
    pub fn is_empty(&self) -> bool {
        self.concurrency.is_none() && self.rate.is_none()
    }

    /// Checks the values; [`Error::InvalidQueueSettings`] says which is wrong.
    pub fn validate(&self) -> Result<()> {
        if self.concurrency == Some(0) {
            return Err(invalid(
                "the concurrency limit is 0; use at least 1, or pause the queue to stop it".into(),
            ));
        }
        if let Some(rate) = self.rate {
            if rate.count == 0 {
                return Err(invalid(
                    "the rate limit allows 0 tasks per period; use at least 1, or pause the queue to stop it".into(),
                ));
            }
            if rate.period < MIN_PERIOD {
                return Err(invalid(format!(
                    "the rate limit's period {:?} is shorter than the minimum of {MIN_PERIOD:?}",
                    rate.period
                )));
            }
            if rate.period > MAX_PERIOD {
                return Err(invalid(format!(
                    "the rate limit's period {:?} is longer than the maximum of {MAX_PERIOD:?} (366 days)",
                    rate.period
                )));
            }
        }
        Ok(())
    }
}

/// The shortest rate-limit period: finer windows are not meaningful for a
/// queue whose claims are database transactions.
pub const MIN_PERIOD: Duration = Duration::from_millis(1);

/// The longest rate-limit period (366 days).
pub const MAX_PERIOD: Duration = Duration::from_secs(366 * 24 * 3600);

/// What [`Queue::queues`](crate::Queue::queues) reports about one queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueInfo {
    /// The queue's name.
    pub name: String,
    /// Whether workers skip it.
    pub paused: bool,
    /// Its global limits.
    pub limits: QueueLimits,
    /// Tasks waiting in it (ready or scheduled).
    pub pending: u64,
    /// Tasks of it claimed by a worker (started or prefetched).
    pub running: u64,
}

/// Checks a queue name given to a queue-settings call.
pub fn validate_queue_name(queue: &str) -> Result<()> {
    if queue.is_empty() {
        return Err(invalid("the queue name is empty".into()));
    }
    Ok(())
}

fn invalid(message: String) -> Error {
    Error::InvalidQueueSettings(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_validated() {
        assert!(QueueLimits::new().validate().is_ok());
        assert!(QueueLimits::new().concurrency(1).validate().is_ok());
        assert!(QueueLimits::new().concurrency(0).validate().is_err());
        assert!(
            QueueLimits::new()
                .rate(0, Duration::from_secs(1))
                .validate()
                .is_err()
        );
        assert!(
            QueueLimits::new()
                .rate(1, Duration::ZERO)
                .validate()
                .is_err()
        );
        assert!(
            QueueLimits::new()
                .rate(1, Duration::from_secs(400 * 24 * 3600))
                .validate()
                .is_err()
        );
        assert!(validate_queue_name("").is_err());
    }
}
