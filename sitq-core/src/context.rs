//! What a running task knows about itself: [`Context`], injected by the worker.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::backend::ClaimedTask;
use crate::record::TaskId;

/// The running attempt's own view: who it is, whether it was cancelled, and a
/// way to run again later.
///
/// A task fn receives it when its first parameter has type `sitq::Context`:
///
/// ```ignore
/// #[sitq::task]
/// async fn sync_account(ctx: sitq::Context, account: u64) -> Result<(), MyError> {
///     if ctx.is_cancelled() { /* stop early */ }
///     // ...
/// }
/// ```
///
/// The context is not part of the payload and not an argument of `enqueue`.
/// Cheap to clone.
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

struct Inner {
    id: TaskId,
    name: String,
    queue: String,
    attempt: u32,
    max_attempts: u32,
    cancelled: watch::Receiver<bool>,
    snooze: watch::Sender<Option<Duration>>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("id", &self.inner.id)
            .field("name", &self.inner.name)
            .field("queue", &self.inner.queue)
            .field("attempt", &self.inner.attempt)
            .field("max_attempts", &self.inner.max_attempts)
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl Context {
    /// A context for one attempt of `task`, and the worker's side of it.
    pub fn for_attempt(task: &ClaimedTask) -> (Context, ContextControl) {
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let (snooze_tx, snooze_rx) = watch::channel(None);
        let context = Context {
            inner: Arc::new(Inner {
                id: task.id,
                name: task.name.clone(),
                queue: task.queue.clone(),
                attempt: task.attempt,
                max_attempts: task.max_attempts,
                cancelled: cancel_rx,
                snooze: snooze_tx,
            }),
        };
        let control = ContextControl {
            cancel: Arc::new(cancel_tx),
            snooze: snooze_rx,
        };
        (context, control)
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.inner.id
    }

    /// The task's registered name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The queue the task was claimed from.
    pub fn queue(&self) -> &str {
        &self.inner.queue
    }

    /// This attempt's number: 1 for the first.
    pub fn attempt(&self) -> u32 {
        self.inner.attempt
    }

    /// Attempts allowed before the task fails for good.
    pub fn max_attempts(&self) -> u32 {
        self.inner.max_attempts
    }

    /// Whether someone asked to cancel this task. The worker drops the
    /// attempt's future after the cancel grace period; a task that checks
    /// this can stop cleanly before then.
    pub fn is_cancelled(&self) -> bool {
        *self.inner.cancelled.borrow()
    }

    /// Resolves when someone asks to cancel this task (at once if they
    /// already did). Use it in a `tokio::select!` beside the task's work.
    pub async fn cancelled(&self) {
        let mut cancelled = self.inner.cancelled.clone();
        // An error means the worker dropped its side: the attempt is over and
        // will never be cancelled; wait forever like an uncancelled task.
        if cancelled.wait_for(|cancelled| *cancelled).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// The longest snooze: 100 years. [`snooze`](Context::snooze) shortens
    /// longer delays (`Duration::MAX` included) to this, so the stored
    /// `run_at` stays a valid instant on every backend.
    pub const MAX_SNOOZE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

    /// Ends this attempt and runs the task again after `delay`, without
    /// spending an attempt (the task's snooze count goes up instead).
    ///
    /// ```ignore
    /// #[sitq::task]
    /// async fn poll_export(ctx: sitq::Context, job: String) -> Result<(), MyError> {
    ///     if !export_ready(&job).await? {
    ///         return ctx.snooze(Duration::from_secs(30)).await;
    ///     }
    ///     // ...
    /// }
    /// ```
    ///
    /// Never returns: the worker drops the attempt's future once it sees the
    /// request, so `return ctx.snooze(delay).await;` fits any return type.
    /// The task becomes pending with `run_at` = now + `delay` (the backend's
    /// clock; at most [`MAX_SNOOZE`](Context::MAX_SNOOZE)) and its next run
    /// has the same attempt number. `max_attempts` does not limit snoozes: a
    /// task may snooze any number of times, and [`TaskRecord::snoozes`](crate::TaskRecord::snoozes)
    /// counts them. A snooze before the task's timeout is a snooze, not a
    /// timeout. Like any outcome it is fenced: if the worker lost the task's
    /// lease meanwhile, the snooze is discarded and the lease recovery decides.
    pub async fn snooze<T>(&self, delay: Duration) -> T {
        self.inner
            .snooze
            .send_replace(Some(delay.min(Self::MAX_SNOOZE)));
        std::future::pending().await
    }
}

/// The worker's side of a [`Context`]: cancels it and sees snooze requests.
/// Clones control the same context.
#[derive(Clone, Debug)]
pub struct ContextControl {
    cancel: Arc<watch::Sender<bool>>,
    snooze: watch::Receiver<Option<Duration>>,
}

impl ContextControl {
    /// Tells the task it was cancelled (`is_cancelled`, `cancelled()`).
    pub fn cancel(&self) {
        self.cancel.send_replace(true);
    }

    /// Whether the task was told it was cancelled.
    pub fn is_cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// Resolves with the delay once the task calls [`Context::snooze`].
    /// Never resolves if it does not (or the context is gone).
    pub async fn snoozed(&mut self) -> Duration {
        // The borrow of the value ends here, before any await: it holds a
        // lock and would make this future `!Send`.
        let delay = self
            .snooze
            .wait_for(Option::is_some)
            .await
            .map(|delay| delay.unwrap_or_default());
        match delay {
            Ok(delay) => delay,
            Err(_) => std::future::pending().await,
        }
    }

    /// The snooze the task asked for, if it did.
    pub fn snooze_requested(&self) -> Option<Duration> {
        *self.snooze.borrow()
    }

    /// Resolves once [`cancel`](ContextControl::cancel) was called (at once
    /// if it was already).
    pub async fn cancel_requested(&self) {
        let mut cancelled = self.cancel.subscribe();
        // This control holds the sender: the channel cannot close under us.
        let _ = cancelled.wait_for(|cancelled| *cancelled).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn claimed() -> ClaimedTask {
        ClaimedTask {
            id: TaskId(7),
            name: "t".into(),
            queue: "q".into(),
            payload: Vec::new(),
            attempt: 2,
            fence: 2,
            max_attempts: 3,
            created_at: Utc::now(),
            inputs: None,
            trace: None,
        }
    }

    #[tokio::test]
    async fn cancel_reaches_the_task() {
        let (context, control) = Context::for_attempt(&claimed());
        assert!(!context.is_cancelled());
        let waiting = tokio::spawn({
            let context = context.clone();
            async move { context.cancelled().await }
        });
        control.cancel();
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("cancelled() resolves after cancel")
            .expect("no panic");
        assert!(context.is_cancelled());
        assert_eq!((context.id(), context.attempt()), (TaskId(7), 2));
    }

    #[tokio::test]
    async fn snooze_reaches_the_worker() {
        let (context, mut control) = Context::for_attempt(&claimed());
        let task = tokio::spawn(async move {
            let never: u32 = context.snooze(Duration::from_secs(9)).await;
            never
        });
        let delay = tokio::time::timeout(Duration::from_secs(5), control.snoozed())
            .await
            .expect("the worker sees the snooze");
        assert_eq!(delay, Duration::from_secs(9));
        task.abort();
    }

    #[tokio::test]
    async fn an_absurd_snooze_is_capped() {
        let (context, mut control) = Context::for_attempt(&claimed());
        let task = tokio::spawn(async move {
            let never: () = context.snooze(Duration::MAX).await;
            never
        });
        let delay = tokio::time::timeout(Duration::from_secs(5), control.snoozed())
            .await
            .expect("the worker sees the snooze");
        assert_eq!(delay, Context::MAX_SNOOZE);
        task.abort();
    }
}
