use std::ops::Deref;
use std::sync::Arc;

use tokio::sync::{Notify, broadcast, watch};

use crate::backend::Finished;
use crate::record::TaskId;
use crate::wait::Waits;

/// In-process wake-ups a backend raises after its commits.
///
/// Workers watch for new work. Task handles waiting in this process are
/// served together (see [`TaskHandle::wait`](crate::TaskHandle::wait)): a
/// backend hands them finished tasks' outcomes with
/// [`notify_outcomes`](Signals::notify_outcomes) (no query at all), or just
/// the ids with [`notify_finished`](Signals::notify_finished) (one batched
/// [`Backend::finished`](crate::Backend::finished) lookup for all of them).
#[derive(Debug)]
pub struct Signals {
    work: watch::Sender<u64>,
    waits: Arc<Waits>,
    cancels: broadcast::Sender<CancelNotice>,
    control: watch::Sender<u64>,
}

/// What workers hear about cancellations ([`Signals::subscribe_cancels`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CancelNotice {
    /// These tasks were cancelled, or asked to be.
    Tasks(Arc<[TaskId]>),
    /// Another process may have cancelled tasks: check the ones you hold.
    Check,
}

/// Cancel notices kept for a slow subscriber; one that falls further behind
/// sees `Lagged` and checks everything it holds.
const CANCEL_BACKLOG: usize = 256;

impl Signals {
    /// Signals with no one listening yet.
    pub fn new() -> Self {
        Signals {
            work: watch::Sender::new(0),
            waits: Arc::new(Waits::new()),
            cancels: broadcast::Sender::new(CANCEL_BACKLOG),
            control: watch::Sender::new(0),
        }
    }

    /// Wakes idle workers: tasks were enqueued or became ready.
    pub fn notify_work(&self) {
        self.work
            .send_modify(|generation| *generation = generation.wrapping_add(1));
    }

    /// A receiver that changes whenever [`notify_work`](Signals::notify_work) is called.
    pub fn subscribe_work(&self) -> watch::Receiver<u64> {
        self.work.subscribe()
    }

    /// Hands the outcomes of tasks that finished to their waiters in this
    /// process, which then need no query. Call it after the commit that
    /// finished them, with every outcome the backend knows in full (e.g.
    /// from `RETURNING`); entries whose status is not finished are ignored.
    /// Outcomes nobody waits for yet are kept (bounded, newest first) for
    /// waiters that come later, such as a producer awaiting its handles in
    /// order behind a worker that runs ahead.
    pub fn notify_outcomes(&self, outcomes: impl IntoIterator<Item = Finished>) {
        self.waits.notify_outcomes(outcomes);
    }

    /// Tells the waiters of `ids` that those tasks finished, when only the
    /// ids are known (a PostgreSQL `NOTIFY`, a cancel): they are looked up
    /// in the next round, one [`Backend::finished`](crate::Backend::finished)
    /// query for all. Also wakes [`watch_finished`](Signals::watch_finished)
    /// watches.
    pub fn notify_finished(&self, ids: impl IntoIterator<Item = TaskId>) {
        self.waits.notify_finished(ids);
    }

    /// Whether a task handle in this process is waiting for an outcome now.
    /// A backend may skip gathering outcomes for
    /// [`notify_outcomes`](Signals::notify_outcomes) when it is false (a
    /// waiter that registers later looks its task up itself).
    pub fn has_waiters(&self) -> bool {
        self.waits.has_waiters()
    }

    /// Registers interest in `id` finishing: the watch is woken by
    /// [`notify_finished`](Signals::notify_finished) or
    /// [`notify_outcomes`](Signals::notify_outcomes) for `id`. Register
    /// before checking the task's status: a notification that comes in
    /// between is kept. Dropping the watch deregisters it.
    pub fn watch_finished(&self, id: TaskId) -> FinishedWatch {
        let (key, notify) = self.waits.add_watch(id);
        FinishedWatch {
            waits: self.waits.clone(),
            id,
            key,
            notify,
        }
    }

    /// Tells this process's workers to read their registry rows now (a
    /// worker was asked to drain), instead of at their next beat.
    pub fn notify_control(&self) {
        self.control.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver of [`notify_control`](Signals::notify_control).
    pub fn subscribe_control(&self) -> watch::Receiver<u64> {
        self.control.subscribe()
    }

    /// Another process changed the database (a backend that learns of
    /// outside commits, e.g. SQLite's file watch): every waiter here looks
    /// its task up again in the next round, one query for all.
    pub fn notify_external(&self) {
        self.waits.notify_all();
    }

    /// How many waiters and watches are registered now: zero once every
    /// one has gone, however it ended. For tests.
    #[doc(hidden)]
    pub fn registered_waiters(&self) -> usize {
        self.waits.registered()
    }

    /// Tells this process's workers that `ids` were cancelled or asked to
    /// be (after the commit): a worker holding one checks it and stops it.
    pub fn notify_cancel(&self, ids: impl IntoIterator<Item = TaskId>) {
        let ids: Arc<[TaskId]> = ids.into_iter().collect();
        if !ids.is_empty() {
            // No subscriber (no worker here) is fine.
            let _ = self.cancels.send(CancelNotice::Tasks(ids));
        }
    }

    /// Tells this process's workers that tasks may have been cancelled
    /// elsewhere (a commit by another process, a lost notification): each
    /// checks the tasks it holds.
    pub fn notify_cancel_check(&self) {
        if self.cancels.receiver_count() > 0 {
            let _ = self.cancels.send(CancelNotice::Check);
        }
    }

    /// A receiver of [`notify_cancel`](Signals::notify_cancel) and
    /// [`notify_cancel_check`](Signals::notify_cancel_check).
    pub fn subscribe_cancels(&self) -> broadcast::Receiver<CancelNotice> {
        self.cancels.subscribe()
    }

    /// Forgets the kept outcome of `id` (it was retried: a new wait must
    /// wait for the new run). Call it after the commit.
    pub fn forget_outcome(&self, id: TaskId) {
        self.waits.forget(id);
    }

    pub(crate) fn waits(&self) -> &Arc<Waits> {
        &self.waits
    }
}

impl Default for Signals {
    fn default() -> Self {
        Self::new()
    }
}

/// A registration from [`Signals::watch_finished`]: await
/// [`notified()`](Notify::notified) on it. Deregisters when dropped.
#[derive(Debug)]
pub struct FinishedWatch {
    waits: Arc<Waits>,
    id: TaskId,
    key: u64,
    notify: Arc<Notify>,
}

impl Deref for FinishedWatch {
    type Target = Notify;

    fn deref(&self) -> &Notify {
        &self.notify
    }
}

impl Drop for FinishedWatch {
    fn drop(&mut self) {
        self.waits.remove(self.id, self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_finish_before_waiting_is_not_lost() {
        let signals = Signals::new();
        let waiter = signals.watch_finished(TaskId(7));
        signals.notify_finished([TaskId(7)]);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter.notified())
            .await
            .expect("the notification sent before waiting must be kept");
    }

    #[test]
    fn a_dropped_watch_leaves_no_entry() {
        let signals = Signals::new();
        let first = signals.watch_finished(TaskId(1));
        let second = signals.watch_finished(TaskId(1));
        let other = signals.watch_finished(TaskId(2));
        assert_eq!(signals.registered_waiters(), 3);
        drop(first);
        drop(other);
        assert_eq!(signals.registered_waiters(), 1);
        signals.notify_finished([TaskId(1)]);
        assert_eq!(signals.registered_waiters(), 0, "a woken watch is removed");
        drop(second);
        assert_eq!(signals.registered_waiters(), 0);
    }
}
