use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use crate::dependency::{DepTarget, Dependency, InputMode};
use crate::{Error, Result};

/// Per-enqueue options; anything left unset takes the task's defaults.
///
/// Built by the generated `task::with()` builder, or directly for
/// [`Queue::enqueue_with`](crate::Queue::enqueue_with).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EnqueueOptions {
    run_at: Option<DateTime<Utc>>,
    delay: Option<Duration>,
    priority: Option<i32>,
    queue: Option<String>,
    max_attempts: Option<u32>,
    unique_key: Option<String>,
    unique_for: Option<Duration>,
    sequence: Option<String>,
    after: Vec<DepTarget>,
    inputs: Option<(InputMode, Vec<DepTarget>)>,
    after_finished: bool,
    trace: Option<String>,
}

impl EnqueueOptions {
    /// Options that change nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Run no earlier than `delay` from the moment of enqueueing.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self.run_at = None;
        self
    }

    /// Run no earlier than `at`, an instant in any time zone (stored as UTC).
    pub fn run_at<Tz: TimeZone>(mut self, at: DateTime<Tz>) -> Self {
        self.run_at = Some(at.with_timezone(&Utc));
        self.delay = None;
        self
    }

    /// Priority: higher runs first.
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = Some(priority);
        self
    }

    /// The queue to put the task on.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Attempts allowed before the task is failed for good (at least 1).
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = Some(max_attempts);
        self
    }

    /// Makes this enqueue unique under `key`: while a task of the same name
    /// holds the key (pending, blocked or running, or succeeded within its
    /// window), enqueueing returns that task's handle instead of a new one
    /// ([`TaskHandle::is_duplicate`](crate::TaskHandle::is_duplicate)).
    /// Keys are scoped by task name. At most
    /// [`MAX_UNIQUE_KEY_BYTES`](crate::MAX_UNIQUE_KEY_BYTES), not empty.
    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }

    /// Makes this enqueue unique (by its arguments, unless a
    /// [`unique_key`](Self::unique_key) is given), and keeps the key blocked
    /// for `window` after the task succeeded (overrides the task's `unique_for`).
    pub fn unique_for(mut self, window: Duration) -> Self {
        self.unique_for = Some(window);
        self
    }

    /// The explicit unique key set, if any.
    pub fn get_unique_key(&self) -> Option<&str> {
        self.unique_key.as_deref()
    }

    /// The unique window set, if any.
    pub fn get_unique_for(&self) -> Option<Duration> {
        self.unique_for
    }

    /// Runs the task in the sequence `key`: tasks sharing a key run one at a
    /// time, in enqueue order, across every worker. A task is claimed only
    /// when no task of the same key with a smaller id is pending, blocked,
    /// running (or waiting to retry) or failed for good, and none is running.
    /// A task that failed for good holds its sequence until it is retried,
    /// cancelled or pruned.
    pub fn sequence(mut self, key: impl Into<String>) -> Self {
        self.sequence = Some(key.into());
        self
    }

    /// Runs the task only after `dependency` (a
    /// [`TaskHandle`](crate::TaskHandle) or a workflow
    /// [`Node`](crate::Node)) has succeeded: until then it is `blocked`,
    /// then `pending`, woken like a new task. If the dependency fails for
    /// good or is cancelled, this task is cancelled (by
    /// [`DEPENDENCY_CANCELLED_BY`](crate::DEPENDENCY_CANCELLED_BY), with a
    /// reason naming the dependency), unless
    /// [`after_finished`](Self::after_finished) is set. Depending on a task
    /// that has finished already resolves at once. May be called again to
    /// add dependencies.
    pub fn after(mut self, dependency: &impl Dependency) -> Self {
        self.after.push(dependency.target());
        self
    }

    /// [`after`](Self::after) every one of `dependencies`.
    pub fn after_all<'a, D: Dependency + 'a>(
        mut self,
        dependencies: impl IntoIterator<Item = &'a D>,
    ) -> Self {
        self.after
            .extend(dependencies.into_iter().map(Dependency::target));
        self
    }

    /// Runs the task once all its dependencies have finished, whatever their
    /// outcome (succeeded, failed or cancelled), instead of cancelling it
    /// when one fails: for clean-up steps. Not for a task that receives a
    /// dependency's result (there may be none to pass).
    pub fn after_finished(mut self) -> Self {
        self.after_finished = true;
        self
    }

    /// Passes the results of `inputs` as the task's first argument; set by
    /// the generated `task::after_result(..)`, which checks the types.
    #[doc(hidden)]
    pub fn result_inputs(mut self, mode: InputMode, inputs: Vec<DepTarget>) -> Self {
        self.inputs = Some((mode, inputs));
        self
    }

    /// The dependencies set with [`after`](Self::after) and
    /// [`after_all`](Self::after_all).
    pub fn get_after(&self) -> &[DepTarget] {
        &self.after
    }

    /// The dependencies whose results are passed, and how, if set.
    pub fn get_inputs(&self) -> Option<(InputMode, &[DepTarget])> {
        self.inputs
            .as_ref()
            .map(|(mode, inputs)| (*mode, inputs.as_slice()))
    }

    /// Carries this trace context with the task (see [`crate::trace`])
    /// instead of what the queue's [`TracePropagation`](crate::TracePropagation)
    /// injects; at most [`MAX_TRACE_CONTEXT`](crate::trace::MAX_TRACE_CONTEXT) bytes.
    pub fn trace_context(mut self, context: impl Into<String>) -> Self {
        self.trace = Some(context.into());
        self
    }

    /// The trace context set, if any.
    pub fn get_trace_context(&self) -> Option<&str> {
        self.trace.as_deref()
    }

    /// Whether [`after_finished`](Self::after_finished) is set.
    pub fn get_after_finished(&self) -> bool {
        self.after_finished
    }

    /// The sequence key set, if any.
    pub fn get_sequence(&self) -> Option<&str> {
        self.sequence.as_deref()
    }

    /// The priority set, if any.
    pub fn get_priority(&self) -> Option<i32> {
        self.priority
    }

    /// The queue set, if any.
    pub fn get_queue(&self) -> Option<&str> {
        self.queue.as_deref()
    }

    /// The attempt limit set, if any.
    pub fn get_max_attempts(&self) -> Option<u32> {
        self.max_attempts
    }

    /// When the task may first run, given the current time; validates the options.
    pub fn resolve_run_at(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
        match (self.run_at, self.delay) {
            (Some(at), _) => Ok(at),
            (None, Some(delay)) => chrono::Duration::from_std(delay)
                .ok()
                .and_then(|delay| now.checked_add_signed(delay))
                .ok_or_else(|| Error::InvalidOptions(format!("delay {delay:?} is out of range"))),
            (None, None) => Ok(now),
        }
    }
}

/// How long to wait before retrying a failed attempt.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Backoff {
    /// `base * 2^(attempt-1)`, capped at `max`, with full jitter in the upper half
    /// (so retries of many tasks failing together spread out).
    Exponential {
        /// The delay after the first failure.
        base: Duration,
        /// The largest delay.
        max: Duration,
    },
    /// The same delay after every failure.
    Fixed(Duration),
}

impl Backoff {
    /// The default: exponential from 1 s, capped at 1 h.
    pub const DEFAULT: Backoff = Backoff::Exponential {
        base: Duration::from_secs(1),
        max: Duration::from_secs(3600),
    };

    /// The delay after failed attempt number `attempt` (1-based); `jitter` in `[0, 1)`.
    pub fn delay(self, attempt: u32, jitter: f64) -> Duration {
        match self {
            Backoff::Fixed(delay) => delay,
            Backoff::Exponential { base, max } => {
                let exp = attempt.saturating_sub(1).min(32);
                let full = base.saturating_mul(1u32 << exp.min(31)).min(max);
                // Keep at least half the delay so backoff still grows; jitter the rest.
                full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
            }
        }
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::DEFAULT
    }
}

/// Options for [`Queue::connect_with`](crate::Queue::connect_with).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectOptions {
    /// How tasks carry the producer's trace context (default: they carry
    /// none unless an enqueue sets one); see [`crate::trace`].
    pub trace_propagation: Option<crate::TracePropagation>,
    /// The largest encoded payload accepted at enqueue, in bytes (default 1 MiB).
    pub max_payload_bytes: usize,
    /// The largest encoded result a worker stores, in bytes (default 1 MiB):
    /// an attempt whose result is larger fails, saying so, and is not retried.
    pub max_result_bytes: usize,
    /// Connections in the backend's pool (default: the backend's choice).
    pub max_connections: Option<u32>,
    /// How often a waiter or idle worker looks at the database when no
    /// notification can reach it (another process on SQLite). Default 50 ms.
    pub poll_interval: Duration,
    /// Whether connecting creates a database that does not exist (default
    /// true). Admin tools turn it off, so a mistyped SQLite path is an
    /// error instead of a new, empty database.
    pub create_missing: bool,
    /// Encryption at rest (default none): with a keyring, task arguments
    /// and results are stored sealed with its active key, and opened with
    /// whichever key sealed them; see [`crate::encryption`].
    pub encryption: Option<std::sync::Arc<crate::Keyring>>,
}

impl ConnectOptions {
    /// The default limit on an encoded payload: 1 MiB.
    pub const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;

    /// The default limit on an encoded result: 1 MiB.
    pub const DEFAULT_MAX_RESULT: usize = 1024 * 1024;

    /// The defaults.
    pub fn new() -> Self {
        ConnectOptions {
            max_payload_bytes: Self::DEFAULT_MAX_PAYLOAD,
            max_result_bytes: Self::DEFAULT_MAX_RESULT,
            max_connections: None,
            poll_interval: Duration::from_millis(50),
            create_missing: true,
            trace_propagation: None,
            encryption: None,
        }
    }

    /// Seals task arguments and results with `keyring` (see
    /// [`crate::encryption`]). Producers, workers and admin tools of one
    /// database need the keys that sealed what they read: a worker without
    /// the key fails the task (kept, and retryable once the key is added),
    /// and the admin tools show `<encrypted>`.
    pub fn encryption(mut self, keyring: crate::Keyring) -> Self {
        self.encryption = Some(std::sync::Arc::new(keyring));
        self
    }

    /// Sets the payload limit.
    pub fn max_payload_bytes(mut self, bytes: usize) -> Self {
        self.max_payload_bytes = bytes;
        self
    }

    /// Sets the result limit.
    pub fn max_result_bytes(mut self, bytes: usize) -> Self {
        self.max_result_bytes = bytes;
        self
    }

    /// Sets the pool size.
    pub fn max_connections(mut self, connections: u32) -> Self {
        self.max_connections = Some(connections);
        self
    }

    /// Sets whether connecting creates a missing database (see
    /// [`create_missing`](ConnectOptions::create_missing)).
    pub fn create_missing(mut self, create: bool) -> Self {
        self.create_missing = create;
        self
    }

    /// Carries the producer's trace context with every task enqueued through
    /// this queue, and links each attempt's span to it (see [`crate::trace`]).
    pub fn trace_propagation(mut self, propagation: crate::TracePropagation) -> Self {
        self.trace_propagation = Some(propagation);
        self
    }

    /// Sets the fallback poll interval.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_backoff_grows_and_caps() {
        let backoff = Backoff::Exponential {
            base: Duration::from_secs(1),
            max: Duration::from_secs(10),
        };
        assert_eq!(backoff.delay(1, 1.0), Duration::from_secs(1));
        assert_eq!(backoff.delay(3, 1.0), Duration::from_secs(4));
        assert_eq!(backoff.delay(30, 1.0), Duration::from_secs(10));
        assert_eq!(backoff.delay(3, 0.0), Duration::from_secs(2));
    }

    #[test]
    fn run_at_keeps_the_instant_of_any_offset() {
        let at = chrono::FixedOffset::east_opt(5 * 3600)
            .and_then(|tz| tz.with_ymd_and_hms(2030, 1, 1, 12, 0, 0).single())
            .map(|at| at.with_timezone(&Utc));
        let expected = Utc.with_ymd_and_hms(2030, 1, 1, 7, 0, 0).single();
        assert_eq!(at, expected);
    }

    #[test]
    fn absurd_delay_is_an_error() {
        let options = EnqueueOptions::new().delay(Duration::MAX);
        assert!(matches!(
            options.resolve_run_at(Utc::now()),
            Err(Error::InvalidOptions(_))
        ));
    }
}
