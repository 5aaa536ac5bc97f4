//! Noticing cancellations of the tasks this worker holds.
//!
//! Beside the claim loop, one task looks up which held claims have a cancel
//! request: at once for the ids a [`CancelNotice`] names (a cancel in this
//! process, or PostgreSQL's `NOTIFY`), soon after a notice that another
//! process may have cancelled something (SQLite's signal file, a listener
//! that reconnected), and about once a second regardless while claims are
//! held, so a lost notice costs at most a second. The claim loop then
//! cancels the attempts' contexts.

use std::sync::Arc;
use std::time::Duration;

use sitq_core::{Backend, CancelNotice, ClaimRef};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;

use super::completer::{Held, lock};
use super::maintenance::stopped;

/// The longest a cancel request waits to be noticed when no notice names it.
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The least time between two checks of every held claim caused by notices
/// (a busy neighbour process commits often; each commit may be a cancel).
const MIN_GAP: Duration = Duration::from_millis(50);

pub(crate) struct Cancels {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) held: Held,
    /// Claims found cancelled: the claim loop stops their attempts.
    pub(crate) found: mpsc::UnboundedSender<Vec<ClaimRef>>,
    /// Subscribed to before the claim loop starts, so a cancel sent between
    /// the first claim and this task's first poll is not missed.
    pub(crate) notices: broadcast::Receiver<CancelNotice>,
}

impl Cancels {
    /// Runs until `stop` turns true.
    pub(crate) async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut listening = true;
        let mut last = Instant::now();
        let mut due = last + CHECK_EVERY;
        loop {
            tokio::select! {
                () = stopped(&mut stop) => return,
                notice = self.notices.recv(), if listening => match notice {
                    Ok(CancelNotice::Tasks(ids)) => {
                        let claims: Vec<ClaimRef> = lock(&self.held)
                            .held()
                            .into_iter()
                            .filter(|claim| ids.contains(&claim.id))
                            .collect();
                        self.check(claims).await;
                    }
                    Ok(CancelNotice::Check) | Err(RecvError::Lagged(_)) => {
                        due = due.min(last + MIN_GAP);
                    }
                    // The backend's signals are gone: only the periodic check is left.
                    Err(RecvError::Closed) => listening = false,
                },
                () = tokio::time::sleep_until(due) => {
                    last = Instant::now();
                    due = last + CHECK_EVERY;
                    let claims = lock(&self.held).held();
                    self.check(claims).await;
                }
            }
        }
    }

    /// Looks `claims` up (one query) and hands the cancelled ones over.
    async fn check(&self, claims: Vec<ClaimRef>) {
        if claims.is_empty() {
            return;
        }
        match self.backend.cancel_requested(&claims).await {
            Ok(found) if found.is_empty() => {}
            Ok(found) => {
                let _ = self.found.send(found);
            }
            Err(err) => tracing::warn!(error = %err, "could not check tasks for cancel requests"),
        }
    }
}
