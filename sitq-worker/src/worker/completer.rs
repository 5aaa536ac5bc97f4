//! Stores outcomes in batches (group commit), retrying through database
//! outages until stored or until the lease must have run out; marks
//! reserved claims started in the same batches.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sitq_core::{Backend, ClaimRef, Completion};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

/// Claims this worker holds: claimed and not yet finished, or finished with
/// the outcome not yet stored. Heartbeats extend exactly these.
pub(crate) type Held = Arc<Mutex<Claims>>;

/// The claims a worker holds, and which of them are being completed now.
#[derive(Debug, Default)]
pub(crate) struct Claims {
    held: HashSet<ClaimRef>,
    /// Held claims whose outcome is being stored: a heartbeat that misses
    /// one of these raced the completion, and the claim is not lost.
    completing: HashSet<ClaimRef>,
}

impl Claims {
    /// Holds `claim` from now on.
    pub(crate) fn insert(&mut self, claim: ClaimRef) {
        self.held.insert(claim);
    }

    /// Lets go of `claim`.
    pub(crate) fn remove(&mut self, claim: &ClaimRef) {
        self.held.remove(claim);
        self.completing.remove(claim);
    }

    /// The claims to heartbeat.
    pub(crate) fn held(&self) -> Vec<ClaimRef> {
        self.held.iter().copied().collect()
    }

    /// Of the claims a heartbeat did not extend, those really lost: still
    /// held, and not finished in the meantime.
    pub(crate) fn really_lost(&self, missed: Vec<ClaimRef>) -> Vec<ClaimRef> {
        missed
            .into_iter()
            .filter(|claim| self.held.contains(claim) && !self.completing.contains(claim))
            .collect()
    }
}

pub(crate) fn lock(held: &Held) -> std::sync::MutexGuard<'_, Claims> {
    held.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the claim loop hands the result writer.
#[derive(Debug)]
pub(crate) enum Message {
    /// A reserved claim started running.
    Started(ClaimRef),
    /// An attempt finished.
    Done(Completion),
}

/// Queues the start mark of a reserved claim (never waits).
pub(crate) fn send_start(outcomes: &mpsc::UnboundedSender<Message>, claim: ClaimRef) {
    // A closed channel means the worker is stopping; the lease decides.
    let _ = outcomes.send(Message::Started(claim));
}

const MAX_BATCH: usize = 512;

/// Runs until the channel closes and every received outcome is stored or given up.
pub(crate) async fn run(
    backend: Arc<dyn Backend>,
    mut messages: mpsc::UnboundedReceiver<Message>,
    held: Held,
    lease: Duration,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut started = Vec::new();
    let mut done = Vec::new();
    while messages.recv_many(&mut batch, MAX_BATCH).await > 0 {
        for message in batch.drain(..) {
            match message {
                Message::Started(claim) => started.push(claim),
                Message::Done(completion) => done.push(completion),
            }
        }
        {
            let mut held = lock(&held);
            for completion in &done {
                held.completing.insert(completion.claim);
            }
        }
        // A reserved task that started and finished within one batch needs
        // no start mark: its completion records that it started.
        if !started.is_empty() && !done.is_empty() {
            let finished: HashSet<ClaimRef> = done.iter().map(|c| c.claim).collect();
            started.retain(|claim| !finished.contains(claim));
        }
        let span = tracing::debug_span!(
            "sitq.complete",
            completed = done.len(),
            started = started.len()
        );
        // One round trip each, side by side (on SQLite, one group commit).
        async {
            tokio::join!(
                mark_started(&*backend, std::mem::take(&mut started)),
                store(&*backend, &done, lease),
            )
        }
        .instrument(span)
        .await;
        let mut held = lock(&held);
        for completion in done.drain(..) {
            held.remove(&completion.claim);
        }
    }
}

/// Marks reserved claims started. A failure is only logged: the claim
/// still runs, and should the worker die before its outcome is stored, the
/// attempt is not counted.
async fn mark_started(backend: &dyn Backend, claims: Vec<ClaimRef>) {
    if claims.is_empty() {
        return;
    }
    if let Err(err) = backend.start(claims).await {
        tracing::warn!(error = %err, "could not mark reserved tasks started");
    }
}

async fn store(backend: &dyn Backend, batch: &[Completion], lease: Duration) {
    if batch.is_empty() {
        return;
    }
    let started = Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        match backend.complete(batch.to_vec()).await {
            Ok(applied) => {
                for (completion, applied) in batch.iter().zip(applied) {
                    if !applied {
                        tracing::warn!(
                            task.id = %completion.claim.id,
                            attempt = completion.claim.attempt,
                            "result discarded: the claim was lost (lease expired) and the task will run again"
                        );
                    }
                }
                return;
            }
            // Past the lease the claims are void anyway: another worker reruns them.
            Err(err) if started.elapsed() > lease => {
                tracing::error!(error = %err, count = batch.len(), "could not store results before the lease ran out; the tasks will run again");
                return;
            }
            Err(err) => {
                tracing::warn!(error = %err, count = batch.len(), "could not store results; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sitq_core::TaskId;

    fn claim(id: i64) -> ClaimRef {
        ClaimRef {
            id: TaskId(id),
            attempt: 1,
            fence: 1,
        }
    }

    #[test]
    fn a_claim_completed_while_the_heartbeat_ran_is_not_lost() {
        let mut claims = Claims::default();
        for id in 1..=3 {
            claims.insert(claim(id));
        }
        // 1 is being stored now; 2 was stored and let go; 3 is still held.
        claims.completing.insert(claim(1));
        claims.remove(&claim(2));
        let missed = vec![claim(1), claim(2), claim(3)];
        assert_eq!(claims.really_lost(missed), vec![claim(3)]);
    }
}
