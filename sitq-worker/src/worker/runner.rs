//! The claim loop of one [`Worker::run`](crate::Worker::run).
//!
//! Claims run in the background and fill a small buffer of prefetched tasks,
//! so a slot freed by a finished attempt is refilled at once instead of
//! after a database round trip, and claims come in batches rather than one
//! task at a time.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use sitq_core::{
    Backend, CancelNotice, ClaimRef, ClaimRequest, ClaimedTask, Completion, ContextControl, Error,
    FailureKind, Outcome, Registry, Result, TaskFailure,
};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::{AbortHandle, JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::Instrument;

use super::cancels::Cancels;
use super::completer::{self, Held, Message};
use super::execute;
use super::maintenance::Maintenance;
use super::scaling::{Gauge, Load, Scaler};
use super::telemetry;
use crate::Worker;
use crate::shutdown::ShutdownSignal;

/// The state of one run.
pub(super) struct Runner<'w> {
    worker: &'w Worker,
    backend: Arc<dyn Backend>,
    registry: Arc<Registry>,
    held: Held,
    /// The task names this worker runs: it claims only these.
    names: Vec<String>,
    /// Claimed and waiting for a free slot; `true` for a reserved claim
    /// (prefetched, not yet marked started).
    ready: VecDeque<(ClaimedTask, bool)>,
    attempts: JoinSet<Completion>,
    aborts: HashMap<ClaimRef, AbortHandle>,
    ids: HashMap<tokio::task::Id, ClaimRef>,
    /// The worker's side of each running attempt's context.
    controls: HashMap<ClaimRef, ContextControl>,
    /// Cancel notices, looked at before a reserved claim starts.
    cancel_notices: broadcast::Receiver<CancelNotice>,
    /// How many attempts may run at once.
    scaler: Scaler,
    /// Tells the registry and the metrics the slots and how many are busy.
    gauge: Gauge,
    /// Whether the last claim got every task it asked for.
    last_claim_full: bool,
}

/// A claim under way: what it asked for, how many start at once, and what it got.
type Claiming = JoinHandle<(usize, usize, Result<Vec<ClaimedTask>>)>;

impl<'w> Runner<'w> {
    pub(super) fn new(worker: &'w Worker, registry: Arc<Registry>, gauge: Gauge) -> Self {
        Runner {
            worker,
            backend: worker.queue.backend().clone(),
            names: registry.names().into_iter().map(str::to_owned).collect(),
            registry,
            held: Held::default(),
            ready: VecDeque::new(),
            attempts: JoinSet::new(),
            aborts: HashMap::new(),
            ids: HashMap::new(),
            controls: HashMap::new(),
            cancel_notices: worker.queue.backend().signals().subscribe_cancels(),
            scaler: Scaler::new(worker.min_slots, worker.max_slots, worker.scale_timing),
            gauge,
            last_claim_full: false,
        }
    }

    fn load(&self) -> Load {
        Load {
            busy: self.attempts.len(),
            buffered: !self.ready.is_empty(),
            last_claim_full: self.last_claim_full,
        }
    }

    /// Starts buffered tasks, scaling the slots first when they are ranged,
    /// and tells the gauge.
    fn fill_and_scale(&mut self, outcomes: &mpsc::UnboundedSender<Message>) {
        self.fill_slots(outcomes);
        let before = self.scaler.slots();
        if self.scaler.observe(Instant::now(), self.load()) {
            let slots = self.scaler.slots();
            tracing::debug!(from = before, to = slots, "scaled the worker's slots");
            self.fill_slots(outcomes);
        }
        self.gauge.set(self.scaler.slots(), self.attempts.len());
    }

    /// Tasks to claim and hold now: slots plus their prefetch.
    fn capacity(&self) -> usize {
        let slots = self.scaler.slots();
        slots + self.worker.prefetch_for(slots)
    }

    pub(super) async fn run(mut self, shutdown: &ShutdownSignal) -> Result<()> {
        let worker = self.worker;
        let backend = self.backend.clone();
        let poll = backend.poll_interval();

        // Unbounded: each claim yields at most one start mark and one outcome.
        let (outcomes_tx, outcomes_rx) = mpsc::unbounded_channel();
        let completer = tokio::spawn(completer::run(
            backend.clone(),
            outcomes_rx,
            self.held.clone(),
            worker.lease,
        ));
        let (lost_tx, mut lost_rx) = mpsc::unbounded_channel();
        let (stop_maintenance, maintenance_stop) = watch::channel(false);
        let maintenance = tokio::spawn(
            Maintenance {
                backend: backend.clone(),
                worker_id: worker.worker_id.clone(),
                held: self.held.clone(),
                lease: worker.lease,
                retention: worker.retention,
                lost: lost_tx,
            }
            .run(maintenance_stop.clone()),
        );
        let (cancelled_tx, mut cancelled_rx) = mpsc::unbounded_channel();
        let cancels = tokio::spawn(
            Cancels {
                backend: backend.clone(),
                held: self.held.clone(),
                found: cancelled_tx,
                notices: backend.signals().subscribe_cancels(),
            }
            .run(maintenance_stop),
        );
        if worker.handle_signals {
            super::spawn_signal_listener(shutdown);
        }

        let mut stop = shutdown.subscribe();
        let mut work = backend.signals().subscribe_work();
        let mut maybe_work = true;
        let mut wake_at = Instant::now() + poll;
        let mut claim_pause = Duration::from_millis(50);
        let mut claiming: Option<Claiming> = None;

        while !*stop.borrow() {
            self.fill_and_scale(&outcomes_tx);
            let slots = self.scaler.slots();
            // Tasks claimed ahead of free slots, so claims come in batches.
            let wanted = self
                .capacity()
                .saturating_sub(self.attempts.len() + self.ready.len());
            // Claim when slots would otherwise idle, or when a worthwhile batch is free.
            if maybe_work
                && !self.names.is_empty()
                && claiming.is_none()
                && wanted > 0
                && (self.ready.is_empty() || wanted >= worker.prefetch_for(slots).div_ceil(2))
            {
                work.borrow_and_update();
                // Free slots start at once; the rest of the batch is reserved.
                let start = slots.saturating_sub(self.attempts.len());
                claiming = Some(self.claim(wanted, start.min(wanted)));
            }
            let rescale_at = self.scaler.next_check(self.load());
            tokio::select! {
                _ = stop.changed() => {}
                () = async {
                    match rescale_at {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {}
                Some(joined) = self.attempts.join_next_with_id() => {
                    if let Some(completion) = self.finished(joined)
                        && outcomes_tx.send(Message::Done(completion)).is_err()
                    {
                        return Err(Error::Config("the result writer stopped unexpectedly".into()));
                    }
                }
                claimed = async {
                    match claiming.as_mut() {
                        Some(claim) => claim.await,
                        None => std::future::pending().await,
                    }
                } => {
                    claiming = None;
                    match claimed {
                        Ok((requested, start, Ok(tasks))) => {
                            claim_pause = Duration::from_millis(50);
                            self.last_claim_full = tasks.len() >= requested;
                            if tasks.len() < requested {
                                // Drained for now: wait for a signal, a due task, or the poll.
                                maybe_work = false;
                                wake_at = Instant::now() + poll;
                                if tasks.is_empty() {
                                    wake_at = self.next_due(wake_at).await;
                                    // Due, yet this claim took nothing: not ours to
                                    // take now (a name this worker lacks, a
                                    // rate-limited task only a free slot may start).
                                    // Wait for a signal or the poll, never spin.
                                    let now = Instant::now();
                                    if wake_at <= now {
                                        wake_at = now + poll;
                                    }
                                }
                            }
                            self.take(tasks, start);
                        }
                        Ok((_, _, Err(err))) if err.is_fatal() => {
                            // Nothing can be claimed or stored again: stop
                            // (attempts under way are dropped with the loop).
                            tracing::error!(error = %err, "claim failed; stopping the worker");
                            return Err(err);
                        }
                        Ok((_, _, Err(err))) => {
                            tracing::warn!(error = %err, "claim failed; retrying");
                            maybe_work = false;
                            wake_at = Instant::now() + claim_pause;
                            claim_pause = (claim_pause * 2).min(Duration::from_secs(5));
                        }
                        Err(err) => {
                            tracing::error!(error = %err, "the claim task failed");
                            maybe_work = false;
                            wake_at = Instant::now() + claim_pause;
                        }
                    }
                }
                Some(lost) = lost_rx.recv() => self.abandon(&lost),
                Some(cancelled) = cancelled_rx.recv() => self.cancel(&cancelled, &outcomes_tx),
                Ok(()) = work.changed() => maybe_work = true,
                () = tokio::time::sleep_until(wake_at), if !maybe_work => {
                    let fallback = Instant::now() + poll;
                    wake_at = self.next_due(fallback).await;
                    maybe_work = wake_at <= Instant::now();
                    if !maybe_work {
                        wake_at = wake_at.min(fallback);
                    }
                }
            }
        }

        // A claim under way may still hand us tasks: those that started are
        // ours to run, the reserved ones go back below.
        if let Some(claim) = claiming
            && let Ok((_, start, Ok(tasks))) = claim.await
        {
            self.take(tasks, start);
        }
        self.release_reserved().await;
        self.drain(&outcomes_tx, &mut cancelled_rx).await;
        drop(outcomes_tx);
        if completer.await.is_err() {
            tracing::error!("the result writer panicked");
        }
        let _ = stop_maintenance.send(true);
        let _ = maintenance.await;
        let _ = cancels.await;
        Ok(())
    }

    /// Claims up to `limit` tasks in the background, the first `start` of
    /// them started at once.
    fn claim(&self, limit: usize, start: usize) -> Claiming {
        let backend = self.backend.clone();
        let worker_id = self.worker.worker_id.clone();
        let queues = self.worker.queues.clone();
        let names = self.names.clone();
        let lease = self.worker.lease;
        let span = tracing::debug_span!("sitq.claim", worker.id = %worker_id, limit, start, claimed = tracing::field::Empty);
        tokio::spawn(
            async move {
                let request = ClaimRequest {
                    worker_id: &worker_id,
                    queues: &queues,
                    names: &names,
                    limit,
                    start,
                    lease,
                };
                let claimed = backend.claim(request).await;
                if let Ok(tasks) = &claimed {
                    tracing::Span::current().record("claimed", tasks.len());
                }
                (limit, start, claimed)
            }
            .instrument(span),
        )
    }

    /// Holds freshly claimed tasks (their leases are heartbeated from now
    /// on) and buffers them; all but the first `start` are reserved.
    fn take(&mut self, tasks: Vec<ClaimedTask>, start: usize) {
        let mut held = completer::lock(&self.held);
        for task in &tasks {
            held.insert(task.claim_ref());
        }
        drop(held);
        self.ready.extend(
            tasks
                .into_iter()
                .enumerate()
                .map(|(i, task)| (task, i >= start)),
        );
    }

    /// Gives the reserved tasks still buffered back to the queue without
    /// spending their attempts (graceful shutdown): they never started.
    async fn release_reserved(&mut self) {
        let (reserved, started): (VecDeque<_>, VecDeque<_>) =
            self.ready.drain(..).partition(|(_, reserved)| *reserved);
        self.ready = started;
        if reserved.is_empty() {
            return;
        }
        let claims: Vec<ClaimRef> = reserved.iter().map(|(task, _)| task.claim_ref()).collect();
        match self.backend.release(claims.clone()).await {
            Ok(count) => tracing::info!(count, "gave reserved tasks back to the queue"),
            Err(err) => tracing::warn!(
                error = %err,
                count = claims.len(),
                "could not give reserved tasks back; they return once their leases expire, without spending an attempt"
            ),
        }
        let mut held = completer::lock(&self.held);
        for claim in &claims {
            held.remove(claim);
        }
    }

    /// Starts buffered tasks while slots are free; a reserved one is marked
    /// started through the result writer (batched, not awaited).
    fn fill_slots(&mut self, outcomes: &mpsc::UnboundedSender<Message>) {
        let mut notices_applied = false;
        while self.attempts.len() < self.scaler.slots() {
            if !notices_applied && self.ready.front().is_some_and(|(_, reserved)| *reserved) {
                self.drop_cancelled_reservations();
                notices_applied = true;
            }
            let Some((task, reserved)) = self.ready.pop_front() else {
                return;
            };
            if reserved {
                completer::send_start(outcomes, task.claim_ref());
            }
            self.start(task);
        }
    }

    /// Before a reserved claim starts: drops the buffered reserved claims
    /// that cancel notices received so far name, so a task cancelled before
    /// its slot came free is not started (an in-process cancel's notice is
    /// sent before `cancel` returns). They are given back with `release`:
    /// fenced, so a cancelled one stays cancelled, while one named by a
    /// stale notice (retried and claimed again since) goes back to pending
    /// without spending an attempt. Running and started claims wait for the
    /// checked path ([`Cancels`]), where a stale notice changes nothing.
    fn drop_cancelled_reservations(&mut self) {
        let mut named = Vec::new();
        loop {
            match self.cancel_notices.try_recv() {
                Ok(CancelNotice::Tasks(ids)) => named.extend(ids.iter().copied()),
                Ok(CancelNotice::Check) => {}
                Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(_) => break,
            }
        }
        if named.is_empty() {
            return;
        }
        let mut dropped = Vec::new();
        self.ready.retain(|(task, reserved)| {
            let cancelled = *reserved && named.contains(&task.id);
            if cancelled {
                dropped.push(task.claim_ref());
            }
            !cancelled
        });
        if dropped.is_empty() {
            return;
        }
        let mut held = completer::lock(&self.held);
        for claim in &dropped {
            tracing::info!(task.id = %claim.id, "cancelled while reserved here; not running it");
            held.remove(claim);
        }
        drop(held);
        let backend = self.backend.clone();
        tokio::spawn(async move {
            if let Err(err) = backend.release(dropped).await {
                tracing::debug!(error = %err, "could not release reserved claims named by cancel notices; their leases decide");
            }
        });
    }

    /// When the earliest scheduled task is due, capped at `fallback`.
    async fn next_due(&self, fallback: Instant) -> Instant {
        match self.backend.next_run_at(&self.worker.queues).await {
            Ok(Some(at)) => {
                let wait = (at - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO);
                (Instant::now() + wait).min(fallback)
            }
            Ok(None) => fallback,
            Err(err) => {
                tracing::warn!(error = %err, "could not read the next scheduled time");
                fallback
            }
        }
    }

    fn start(&mut self, task: ClaimedTask) {
        let claim = task.claim_ref();
        let registry = self.registry.clone();
        let worker_id = self.worker.worker_id.clone();
        let span = tracing::info_span!(
            "sitq.attempt",
            task.name = %task.name,
            task.id = %task.id,
            attempt = task.attempt,
            queue = %task.queue,
            worker.id = %worker_id,
            trace.parent = tracing::field::Empty,
        );
        // The producer's trace context, stored with the task: shown on the
        // span, and made its parent by the program's propagation.
        if let Some(context) = &task.trace {
            span.record("trace.parent", tracing::field::display(context));
            if let Some(propagation) = self.worker.queue.options().trace_propagation {
                (propagation.extract)(&span, context);
            }
        }
        let (context, control) = sitq_core::Context::for_attempt(&task);
        let grace = self.worker.cancel_grace;
        let max_result_bytes = self.worker.queue.options().max_result_bytes;
        let keyring = self.worker.queue.options().encryption.clone();
        let attempt_control = control.clone();
        let abort = self.attempts.spawn(
            async move {
                telemetry::attempt_started(&task);
                let began = std::time::Instant::now();
                let attempt = execute::run_attempt(
                    &registry,
                    &task,
                    &worker_id,
                    max_result_bytes,
                    keyring.as_deref(),
                    context,
                    attempt_control.clone(),
                );
                let outcome =
                    execute::cancellable(attempt, &attempt_control, grace, task.attempt).await;
                super::log_outcome(&outcome);
                telemetry::attempt_finished(&task, &outcome, began.elapsed());
                Completion { claim, outcome }
            }
            .instrument(span),
        );
        self.ids.insert(abort.id(), claim);
        self.aborts.insert(claim, abort);
        self.controls.insert(claim, control);
    }

    /// Stops claims found cancelled: a running attempt's context is
    /// cancelled (its future is dropped after the grace period); a buffered
    /// one never runs: a reserved claim was cancelled in the database
    /// already, a started one completes as cancelled now.
    fn cancel(&mut self, claims: &[ClaimRef], outcomes: &mpsc::UnboundedSender<Message>) {
        for claim in claims {
            if let Some(control) = self.controls.get(claim) {
                if !control.is_cancelled() {
                    tracing::info!(task.id = %claim.id, attempt = claim.attempt, grace = ?self.worker.cancel_grace, "cancel requested; telling the task");
                    control.cancel();
                }
                continue;
            }
            let Some(at) = self
                .ready
                .iter()
                .position(|(task, _)| task.claim_ref() == *claim)
            else {
                continue;
            };
            let Some((_, reserved)) = self.ready.remove(at) else {
                continue;
            };
            tracing::info!(task.id = %claim.id, attempt = claim.attempt, "cancelled before it started here; not running it");
            if reserved {
                completer::lock(&self.held).remove(claim);
            } else {
                let failure = TaskFailure::new(
                    FailureKind::Cancelled,
                    format!(
                        "cancelled during attempt {} before the worker began running it",
                        claim.attempt
                    ),
                );
                let completion = Completion {
                    claim: *claim,
                    outcome: Outcome::Cancelled(failure),
                };
                // A closed channel means the worker is stopping; the lease decides.
                let _ = outcomes.send(Message::Done(completion));
            }
        }
    }

    /// Bookkeeping for a finished attempt; its completion, unless it was aborted.
    fn finished(
        &mut self,
        joined: std::result::Result<(tokio::task::Id, Completion), tokio::task::JoinError>,
    ) -> Option<Completion> {
        let (id, completion) = match joined {
            Ok((id, completion)) => (id, Some(completion)),
            Err(err) => (err.id(), None),
        };
        if let Some(claim) = self.ids.remove(&id) {
            self.aborts.remove(&claim);
            self.controls.remove(&claim);
            if completion.is_none() {
                // Aborted (lease lost) or a bug in the runtime: the lease decides what happens next.
                completer::lock(&self.held).remove(&claim);
            }
        }
        completion
    }

    fn abandon(&mut self, lost: &[ClaimRef]) {
        for claim in lost {
            if let Some(abort) = self.aborts.get(claim) {
                tracing::warn!(task.id = %claim.id, attempt = claim.attempt, "lease lost; abandoning the attempt");
                abort.abort();
            }
        }
        self.ready
            .retain(|(task, _)| !lost.contains(&task.claim_ref()));
        let mut held = completer::lock(&self.held);
        for claim in lost {
            if !self.aborts.contains_key(claim) {
                held.remove(claim);
            }
        }
    }

    /// Runs the buffered tasks and waits for in-flight attempts, handing
    /// their outcomes to the writer.
    async fn drain(
        &mut self,
        outcomes: &mpsc::UnboundedSender<Message>,
        cancelled: &mut mpsc::UnboundedReceiver<Vec<ClaimRef>>,
    ) {
        self.fill_slots(outcomes);
        if self.attempts.is_empty() {
            return;
        }
        tracing::info!(
            in_flight = self.attempts.len(),
            buffered = self.ready.len(),
            "draining in-flight tasks"
        );
        let deadline = self
            .worker
            .shutdown_timeout
            .map(|timeout| Instant::now() + timeout);
        loop {
            // Cancel requests are still honoured while draining.
            let joined = async {
                loop {
                    tokio::select! {
                        next = self.attempts.join_next_with_id() => return next,
                        Some(claims) = cancelled.recv() => {
                            for claim in &claims {
                                if let Some(control) = self.controls.get(claim) {
                                    control.cancel();
                                }
                            }
                        }
                    }
                }
            };
            let next = match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, joined).await {
                    Ok(next) => next,
                    Err(_) => {
                        tracing::warn!(
                            abandoned = self.attempts.len() + self.ready.len(),
                            "shutdown timeout passed; abandoning in-flight tasks (they run again once their leases expire)"
                        );
                        self.attempts.abort_all();
                        return;
                    }
                },
                None => joined.await,
            };
            let Some(joined) = next else { return };
            if let Some(completion) = self.finished(joined)
                && outcomes.send(Message::Done(completion)).is_err()
            {
                return;
            }
            self.fill_slots(outcomes);
            self.gauge.set(self.scaler.slots(), self.attempts.len());
        }
    }
}
