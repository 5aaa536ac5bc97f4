//! Stores outcomes in batches (group commit), retrying through database
//! outages until stored or until the lease must have run out.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sitq_core::{Backend, ClaimRef, Completion};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Claims this worker holds: running, or finished with the outcome not yet stored.
/// Heartbeats extend exactly these.
pub(crate) type Held = Arc<Mutex<HashSet<ClaimRef>>>;

pub(crate) fn lock(held: &Held) -> std::sync::MutexGuard<'_, HashSet<ClaimRef>> {
    held.lock().unwrap_or_else(PoisonError::into_inner)
}

const MAX_BATCH: usize = 512;

/// Runs until the channel closes and every received outcome is stored or given up.
pub(crate) async fn run(
    backend: Arc<dyn Backend>,
    mut outcomes: mpsc::Receiver<Completion>,
    held: Held,
    lease: Duration,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while outcomes.recv_many(&mut batch, MAX_BATCH).await > 0 {
        store(&*backend, &batch, lease).await;
        let mut held = lock(&held);
        for completion in batch.drain(..) {
            held.remove(&completion.claim);
        }
    }
}

async fn store(backend: &dyn Backend, batch: &[Completion], lease: Duration) {
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
