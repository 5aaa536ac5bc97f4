use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::sync::{Notify, watch};

use crate::record::TaskId;

/// In-process wake-ups a backend raises after its commits.
///
/// Workers watch for new work; task handles wait for their own task to
/// finish, so a completion wakes only the waiters of that task.
#[derive(Debug)]
pub struct Signals {
    work: watch::Sender<u64>,
    finished: Mutex<HashMap<TaskId, Vec<Weak<Notify>>>>,
}

impl Signals {
    /// Signals with no one listening yet.
    pub fn new() -> Self {
        Signals {
            work: watch::Sender::new(0),
            finished: Mutex::new(HashMap::new()),
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

    /// Wakes the waiters of tasks that finished.
    pub fn notify_finished(&self, ids: impl IntoIterator<Item = TaskId>) {
        let mut waiters = self.finished.lock().unwrap_or_else(PoisonError::into_inner);
        if waiters.is_empty() {
            return;
        }
        for id in ids {
            for waiter in waiters.remove(&id).into_iter().flatten() {
                if let Some(notify) = waiter.upgrade() {
                    notify.notify_one();
                }
            }
        }
    }

    /// Wakes the waiters of tasks that finished in this process, with their
    /// outcomes.
    pub fn notify_outcomes(&self, finished: Vec<crate::Finished>) {
        self.notify_finished(finished.into_iter().map(|finished| finished.id));
    }

    /// Another process changed the database: waiters look again.
    pub fn notify_external(&self) {
        let waiters = self.finished.lock().unwrap_or_else(PoisonError::into_inner);
        for waiter in waiters.values().flatten() {
            if let Some(notify) = waiter.upgrade() {
                notify.notify_one();
            }
        }
    }

    /// Registers interest in `id` finishing. Register before checking the
    /// task's status: a notification that comes in between is kept.
    pub fn watch_finished(&self, id: TaskId) -> Arc<Notify> {
        let notify = Arc::new(Notify::new());
        let mut waiters = self.finished.lock().unwrap_or_else(PoisonError::into_inner);
        let list = waiters.entry(id).or_default();
        list.retain(|waiter| waiter.strong_count() > 0);
        list.push(Arc::downgrade(&notify));
        notify
    }
}

impl Default for Signals {
    fn default() -> Self {
        Self::new()
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
}
