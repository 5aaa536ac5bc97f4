//! Waiting for tasks to finish, batched per backend.
//!
//! Every [`TaskHandle::wait`](crate::TaskHandle::wait) of a process on one
//! backend registers here, and one lookup loop serves them all: a wake-up or
//! a poll tick costs one [`Backend::finished`] query for every waited task
//! that needs a look, not a query per handle; an outcome the backend hands
//! over in-process ([`Signals::notify_outcomes`](crate::Signals::notify_outcomes))
//! costs no query at all.
//!
//! The loop runs as a Tokio task only while someone waits, and is started
//! again by the next waiter. Each waiter's registration is removed when it
//! goes away (finished, timed out, or its future dropped), so the registry
//! holds only live waiters.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, oneshot, watch};
use tokio::time::Instant;

use crate::backend::{Backend, Finished};
use crate::record::TaskId;
use crate::{Error, Result};

/// The first poll back-off of a new waiter; it doubles up to the backend's
/// poll interval.
const FIRST_POLL: Duration = Duration::from_millis(1);

/// The most ids in one [`Backend::finished`] query: one round looks up more
/// in several, keeping each within every database's limit on parameters.
const MAX_LOOKUP: usize = 1000;

/// The most recent outcomes kept for waiters that come later, by count and
/// by the bytes of their results and errors.
const RECENT_MAX: usize = 65_536;
const RECENT_MAX_BYTES: usize = 16 << 20;

/// What the lookup loop hands a waiter.
#[derive(Debug)]
pub(crate) enum Delivery {
    /// The task finished.
    Finished(Finished),
    /// The lookup failed; shared by every waiter of that round.
    Failed(Arc<Error>),
}

impl Delivery {
    /// The outcome, or the lookup's error as this waiter's error.
    pub(crate) fn into_result(self) -> Result<Finished> {
        match self {
            Delivery::Finished(finished) => Ok(finished),
            Delivery::Failed(err) => Err(Error::database("waiting for tasks to finish", err)),
        }
    }
}

/// The registry of waiters of one backend; lives in its
/// [`Signals`](crate::Signals).
pub(crate) struct Waits {
    state: Mutex<State>,
    /// Wakes the lookup loop: a new waiter, or an id notified as finished.
    lookup: Notify,
    /// Bumped when the lookup loop stopped with waiters left (its runtime
    /// shut down): they start another one.
    stopped: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    entries: HashMap<TaskId, Entry>,
    /// Outcome waiters over all entries.
    waiting: usize,
    next_key: u64,
    /// The generation of the lookup loop running now, if one is.
    service: Option<u64>,
    generations: u64,
    /// Outcomes handed over in-process that nobody waited for yet: a
    /// handle that waits later (a producer awaiting its handles in order
    /// while the worker runs ahead) gets its outcome without a query.
    /// Finished is final, so a kept outcome never goes stale.
    recent: Recent,
    /// Tasks retried from this process: an outcome handed over for one of
    /// them may come from the run before the retry (a completion that
    /// committed before it and is reported after), so it is looked up in the
    /// database instead of being trusted. Bounded like `recent`.
    retried: Retried,
}

/// A bounded set of retried task ids, oldest dropped first.
#[derive(Default)]
struct Retried {
    ids: std::collections::HashSet<TaskId>,
    order: VecDeque<TaskId>,
}

impl Retried {
    fn insert(&mut self, id: TaskId) {
        if !self.ids.insert(id) {
            return;
        }
        self.order.push_back(id);
        while self.order.len() > RECENT_MAX {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
    }

    fn contains(&self, id: TaskId) -> bool {
        self.ids.contains(&id)
    }
}

/// A bounded map of recent outcomes, oldest evicted first.
#[derive(Default)]
struct Recent {
    outcomes: HashMap<TaskId, Finished>,
    order: VecDeque<TaskId>,
    bytes: usize,
}

impl Recent {
    fn size(finished: &Finished) -> usize {
        finished.result.as_ref().map_or(0, Vec::len)
            + finished.failure.as_ref().map_or(0, |f| f.message.len())
            + finished.name.len()
            + 64
    }

    /// Drops the outcome of `id`, if kept (its slot in `order` goes when it
    /// comes up for eviction).
    fn remove(&mut self, id: TaskId) {
        if let Some(old) = self.outcomes.remove(&id) {
            self.bytes -= Recent::size(&old);
        }
    }

    fn insert(&mut self, finished: Finished) {
        let size = Recent::size(&finished);
        if size > RECENT_MAX_BYTES / 16 {
            return; // a large result is read from the database when wanted
        }
        while self.order.len() >= RECENT_MAX || self.bytes + size > RECENT_MAX_BYTES {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(old) = self.outcomes.remove(&old) {
                self.bytes -= Recent::size(&old);
            }
        }
        self.bytes += size;
        self.order.push_back(finished.id);
        if let Some(replaced) = self.outcomes.insert(finished.id, finished) {
            self.bytes -= Recent::size(&replaced);
        }
    }
}

/// Who waits for one task.
struct Entry {
    /// Waiters for the outcome (task handles), served by the lookup loop.
    outcomes: Vec<(u64, oneshot::Sender<Delivery>)>,
    /// Plain wake-ups ([`Signals::watch_finished`](crate::Signals::watch_finished)).
    wakes: Vec<(u64, Arc<Notify>)>,
    /// Look it up in the next round: new, or notified as finished.
    check: bool,
    /// The current poll back-off.
    interval: Duration,
    /// When to look again if nothing notifies.
    next_check: Instant,
}

impl Entry {
    fn new() -> Entry {
        Entry {
            outcomes: Vec::new(),
            wakes: Vec::new(),
            check: false,
            interval: FIRST_POLL,
            next_check: Instant::now(),
        }
    }

    fn is_empty(&self) -> bool {
        self.outcomes.is_empty() && self.wakes.is_empty()
    }

    /// Hands `finished` to every waiter of the task.
    fn deliver(self, finished: Finished) {
        for (_, notify) in self.wakes {
            notify.notify_one();
        }
        let mut outcomes = self.outcomes;
        // The last waiter (usually the only one) takes the outcome uncloned.
        if let Some((_, last)) = outcomes.pop() {
            for (_, sender) in outcomes {
                // A waiter that went away meanwhile does not mind.
                let _ = sender.send(Delivery::Finished(finished.clone()));
            }
            let _ = last.send(Delivery::Finished(finished));
        }
    }

    /// Fails the outcome waiters with `err`; plain wake-ups stay.
    fn fail(&mut self, err: &Arc<Error>) {
        for (_, sender) in self.outcomes.drain(..) {
            let _ = sender.send(Delivery::Failed(err.clone()));
        }
    }
}

/// What the lookup loop does next.
enum Round {
    /// No one waits for an outcome: the loop has stopped.
    Stop,
    /// Look these ids up now.
    Lookup(Vec<TaskId>),
    /// Nothing is due before this instant.
    Sleep(Instant),
}

impl Waits {
    pub(crate) fn new() -> Waits {
        Waits {
            state: Mutex::new(State::default()),
            lookup: Notify::new(),
            stopped: watch::Sender::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent at every await-free step; a panic
        // elsewhere while holding the lock leaves nothing half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waiters and watches registered now (for tests: zero once all are gone).
    pub(crate) fn registered(&self) -> usize {
        self.lock()
            .entries
            .values()
            .map(|entry| entry.outcomes.len() + entry.wakes.len())
            .sum()
    }

    /// Whether anyone waits for an outcome.
    pub(crate) fn has_waiters(&self) -> bool {
        self.lock().waiting > 0
    }

    /// Hands full outcomes to their waiters; those nobody waits for yet are
    /// kept (bounded) for waiters to come.
    pub(crate) fn notify_outcomes(&self, outcomes: impl IntoIterator<Item = Finished>) {
        let mut state = self.lock();
        let mut lookup = false;
        for finished in outcomes {
            // Only a finished task has an outcome; anything else is a
            // backend's mistake and is looked up instead.
            if !finished.status.is_finished() {
                continue;
            }
            if state.retried.contains(finished.id) {
                // Maybe the run before a retry: ask the database.
                if let Some(entry) = state.entries.get_mut(&finished.id)
                    && !entry.outcomes.is_empty()
                {
                    entry.check = true;
                    lookup = true;
                }
                continue;
            }
            match state.take(finished.id) {
                Some(entry) => entry.deliver(finished),
                None => state.recent.insert(finished),
            }
        }
        let idle = state.waiting == 0;
        drop(state);
        if idle || lookup {
            // Lets the lookup loop stop now rather than at its next poll.
            self.lookup.notify_one();
        }
    }

    /// Forgets the kept outcome of `id` (the task was retried).
    pub(crate) fn forget(&self, id: TaskId) {
        let mut state = self.lock();
        state.recent.remove(id);
        state.retried.insert(id);
    }

    /// Marks `ids` for the next lookup round and wakes plain watches.
    pub(crate) fn notify_finished(&self, ids: impl IntoIterator<Item = TaskId>) {
        let mut state = self.lock();
        if state.entries.is_empty() {
            return;
        }
        let mut lookup = false;
        for id in ids {
            let Some(entry) = state.entries.get_mut(&id) else {
                continue;
            };
            for (_, notify) in entry.wakes.drain(..) {
                notify.notify_one();
            }
            if entry.outcomes.is_empty() {
                state.entries.remove(&id);
            } else {
                entry.check = true;
                lookup = true;
            }
        }
        drop(state);
        if lookup {
            self.lookup.notify_one();
        }
    }

    /// Another process changed the database: every waiter is looked up in
    /// the next round (still one query), every plain watch woken.
    pub(crate) fn notify_all(&self) {
        let mut state = self.lock();
        let mut lookup = false;
        for entry in state.entries.values_mut() {
            for (_, notify) in &entry.wakes {
                notify.notify_one();
            }
            if !entry.outcomes.is_empty() {
                entry.check = true;
                lookup = true;
            }
        }
        drop(state);
        if lookup {
            self.lookup.notify_one();
        }
    }

    /// Registers a plain wake-up for `id` finishing.
    pub(crate) fn add_watch(&self, id: TaskId) -> (u64, Arc<Notify>) {
        let notify = Arc::new(Notify::new());
        let mut state = self.lock();
        let key = state.next_key();
        state
            .entries
            .entry(id)
            .or_insert_with(Entry::new)
            .wakes
            .push((key, notify.clone()));
        (key, notify)
    }

    /// Removes registration `key` of `id`, if still there.
    pub(crate) fn remove(&self, id: TaskId, key: u64) {
        let mut state = self.lock();
        let Some(entry) = state.entries.get_mut(&id) else {
            return;
        };
        let before = entry.outcomes.len();
        entry.outcomes.retain(|(k, _)| *k != key);
        let removed = before - entry.outcomes.len();
        entry.wakes.retain(|(k, _)| *k != key);
        if entry.is_empty() {
            state.entries.remove(&id);
        }
        state.waiting -= removed;
        let idle = removed > 0 && state.waiting == 0;
        drop(state);
        if idle {
            // Lets the lookup loop stop now rather than at its next poll.
            self.lookup.notify_one();
        }
    }

    /// Marks `id` for the next lookup round.
    fn recheck(&self, id: TaskId) {
        if let Some(entry) = self.lock().entries.get_mut(&id) {
            entry.check = true;
        }
        self.lookup.notify_one();
    }

    /// Claims the right to run the lookup loop if none runs and someone
    /// waits; returns its generation.
    fn claim_service(&self, state: &mut State) -> Option<u64> {
        if state.service.is_some() || state.waiting == 0 {
            return None;
        }
        state.generations += 1;
        state.service = Some(state.generations);
        state.service
    }

    /// The ids to look up now, or when to look next; stops the loop when no
    /// one waits. An entry due within half its back-off is looked up with
    /// the others, so waiters converge on shared rounds.
    fn round(&self, generation: u64) -> Round {
        let mut state = self.lock();
        if state.service != Some(generation) {
            return Round::Stop;
        }
        let now = Instant::now();
        let mut batch = Vec::new();
        let mut next: Option<Instant> = None;
        for (id, entry) in &mut state.entries {
            if entry.outcomes.is_empty() {
                continue;
            }
            if entry.check || entry.next_check <= now + entry.interval / 2 {
                entry.check = false;
                batch.push(*id);
            } else {
                next = Some(next.map_or(entry.next_check, |at| at.min(entry.next_check)));
            }
        }
        match next {
            _ if !batch.is_empty() => Round::Lookup(batch),
            Some(at) => Round::Sleep(at),
            None => {
                state.service = None;
                Round::Stop
            }
        }
    }

    /// Hands out what a lookup of `batch` found; backs off the rest.
    fn settle(&self, batch: &[TaskId], found: Result<Vec<Finished>>, max_poll: Duration) {
        let mut state = self.lock();
        match found {
            Ok(found) => {
                for finished in found {
                    if let Some(entry) = state.take(finished.id) {
                        entry.deliver(finished);
                    }
                }
                let now = Instant::now();
                for id in batch {
                    if let Some(entry) = state.entries.get_mut(id) {
                        entry.next_check = now + entry.interval;
                        entry.interval = (entry.interval * 2).min(max_poll);
                    }
                }
            }
            Err(err) => {
                let err = Arc::new(err);
                for &id in batch {
                    state.fail(id, &err);
                }
            }
        }
    }
}

impl fmt::Debug for Waits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waits")
            .field("registered", &self.registered())
            .finish_non_exhaustive()
    }
}

impl State {
    fn next_key(&mut self) -> u64 {
        self.next_key += 1;
        self.next_key
    }

    /// Removes the entry of `id`, with its waiters.
    fn take(&mut self, id: TaskId) -> Option<Entry> {
        let entry = self.entries.remove(&id)?;
        self.waiting -= entry.outcomes.len();
        Some(entry)
    }

    /// Fails the outcome waiters of `id` with `err`.
    fn fail(&mut self, id: TaskId, err: &Arc<Error>) {
        if let Some(entry) = self.entries.get_mut(&id) {
            self.waiting -= entry.outcomes.len();
            entry.fail(err);
            if entry.is_empty() {
                self.entries.remove(&id);
            }
        }
    }

    /// Fails every outcome waiter with `err`.
    fn fail_all(&mut self, err: &Arc<Error>) {
        self.entries.retain(|_, entry| {
            entry.fail(err);
            !entry.is_empty()
        });
        self.waiting = 0;
    }
}

/// Starts the lookup loop of `backend` if none runs and someone waits.
/// The caller is inside a Tokio runtime ([`Waiter::register`] checks).
fn ensure_service(backend: &Arc<dyn Backend>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let waits = backend.signals().waits().clone();
    let Some(generation) = waits.claim_service(&mut waits.lock()) else {
        return;
    };
    runtime.spawn(serve(backend.clone(), waits, generation));
}

/// The lookup loop: one round per wake-up or due poll, one query per round.
async fn serve(backend: Arc<dyn Backend>, waits: Arc<Waits>, generation: u64) {
    let _running = Running {
        waits: &waits,
        generation,
    };
    let max_poll = backend.poll_interval().max(FIRST_POLL);
    loop {
        match waits.round(generation) {
            Round::Stop => return,
            Round::Lookup(batch) => {
                for ids in batch.chunks(MAX_LOOKUP) {
                    let found = backend.finished(ids).await;
                    waits.settle(ids, found, max_poll);
                }
            }
            Round::Sleep(until) => {
                tokio::select! {
                    () = waits.lookup.notified() => {}
                    () = tokio::time::sleep_until(until) => {}
                }
            }
        }
    }
}

/// Clears the running mark when the lookup loop ends other than by
/// finding no one waiting: its runtime shut down (the waiters left start
/// another one on theirs) or the backend panicked (they fail).
struct Running<'a> {
    waits: &'a Waits,
    generation: u64,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut state = self.waits.lock();
        if state.service != Some(self.generation) {
            return;
        }
        state.service = None;
        if std::thread::panicking() {
            // Restarting would panic again: fail the waiters instead.
            let err = Arc::new(Error::database(
                "waiting for tasks to finish",
                "the backend panicked while looking up finished tasks",
            ));
            state.fail_all(&err);
        } else {
            drop(state);
            self.waits
                .stopped
                .send_modify(|generation| *generation = generation.wrapping_add(1));
        }
    }
}

/// One waiter for one task's outcome; deregisters when dropped.
pub(crate) struct Waiter {
    backend: Arc<dyn Backend>,
    waits: Arc<Waits>,
    id: TaskId,
    key: u64,
    delivery: oneshot::Receiver<Delivery>,
    stopped: watch::Receiver<u64>,
}

impl Waiter {
    /// Registers for `id`'s outcome; its first lookup is batched with
    /// whatever else is due. Fails outside a Tokio runtime, which the
    /// lookup loop needs.
    pub(crate) fn register(backend: &Arc<dyn Backend>, id: TaskId) -> Result<Waiter> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::Config(
                "TaskHandle::wait must run inside a Tokio runtime (or use sitq::blocking)".into(),
            ));
        }
        let waits = backend.signals().waits().clone();
        let (sender, delivery) = oneshot::channel();
        let stopped = waits.stopped.subscribe();
        let key = {
            let mut state = waits.lock();
            let key = state.next_key();
            if let Some(finished) = state.recent.outcomes.get(&id) {
                // Finished here already: no lookup, no registration.
                let _ = sender.send(Delivery::Finished(finished.clone()));
                drop(state);
                return Ok(Waiter {
                    backend: backend.clone(),
                    waits,
                    id,
                    key,
                    delivery,
                    stopped,
                });
            }
            let entry = state.entries.entry(id).or_insert_with(Entry::new);
            entry.outcomes.push((key, sender));
            entry.check = true;
            state.waiting += 1;
            key
        };
        ensure_service(backend);
        waits.lookup.notify_one();
        Ok(Waiter {
            backend: backend.clone(),
            waits,
            id,
            key,
            delivery,
            stopped,
        })
    }

    /// The outcome, once the lookup loop has it.
    pub(crate) async fn outcome(&mut self) -> Result<Finished> {
        loop {
            tokio::select! {
                delivery = &mut self.delivery => {
                    return match delivery {
                        Ok(delivery) => delivery.into_result(),
                        // Every path that drops an entry delivers first; this
                        // is a bug, reported rather than hung on.
                        Err(_) => Err(Error::database(
                            "waiting for tasks to finish",
                            "the waiter was dropped without an outcome",
                        )),
                    };
                }
                Ok(()) = self.stopped.changed() => ensure_service(&self.backend),
            }
        }
    }

    /// The outcome if it has already been delivered.
    pub(crate) fn try_outcome(&mut self) -> Option<Result<Finished>> {
        self.delivery.try_recv().ok().map(Delivery::into_result)
    }

    /// Asks for a lookup of this task in the next round.
    pub(crate) fn recheck(&self) {
        self.waits.recheck(self.id);
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.waits.remove(self.id, self.key);
    }
}

#[cfg(test)]
mod tests;
