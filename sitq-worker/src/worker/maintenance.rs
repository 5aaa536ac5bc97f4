//! Periodic work beside the claim loop: heartbeats, recovering tasks whose
//! workers died, and pruning old finished tasks.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sitq_core::{Backend, ClaimRef};
use tokio::sync::{mpsc, watch};
use tokio::time::{MissedTickBehavior, interval};

use super::completer::{Held, lock};

pub(crate) struct Maintenance {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) worker_id: String,
    pub(crate) held: Held,
    pub(crate) lease: Duration,
    pub(crate) retention: Option<Duration>,
    /// Claims a heartbeat found lost: the claim loop aborts their attempts.
    pub(crate) lost: mpsc::UnboundedSender<Vec<ClaimRef>>,
}

const PRUNE_EVERY: Duration = Duration::from_secs(60);

impl Maintenance {
    /// Runs until `stop` turns true.
    pub(crate) async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut heartbeat = interval(self.lease / 3);
        let mut recover = interval((self.lease / 2).min(Duration::from_secs(5)));
        let mut prune = interval(PRUNE_EVERY);
        for timer in [&mut heartbeat, &mut recover, &mut prune] {
            timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        }
        loop {
            tokio::select! {
                () = stopped(&mut stop) => return,
                _ = heartbeat.tick() => self.heartbeat().await,
                _ = recover.tick() => self.recover().await,
                _ = prune.tick() => self.prune().await,
            }
        }
    }

    async fn heartbeat(&self) {
        let claims: Vec<ClaimRef> = lock(&self.held).held();
        if claims.is_empty() {
            return;
        }
        match self
            .backend
            .heartbeat(&self.worker_id, &claims, self.lease)
            .await
        {
            Ok(missed) if missed.is_empty() => {}
            Ok(missed) => {
                // A claim completed while the heartbeat ran is missed, not lost.
                let lost = lock(&self.held).really_lost(missed);
                if lost.is_empty() {
                    return;
                }
                tracing::warn!(
                    count = lost.len(),
                    "lost claims (leases expired); abandoning those attempts"
                );
                let _ = self.lost.send(lost);
            }
            Err(err) => tracing::warn!(error = %err, "heartbeat failed; will retry"),
        }
    }

    async fn recover(&self) {
        match self.backend.recover_expired().await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "returned tasks with expired leases to the queue"),
            Err(err) => tracing::warn!(error = %err, "could not recover expired leases"),
        }
    }

    async fn prune(&self) {
        let Some(retention) = self.retention else {
            return;
        };
        let Some(before) = chrono::Duration::from_std(retention)
            .ok()
            .and_then(|retention| Utc::now().checked_sub_signed(retention))
        else {
            return;
        };
        match self.backend.prune(before).await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "pruned finished tasks past retention"),
            Err(err) => tracing::warn!(error = %err, "could not prune finished tasks"),
        }
    }
}

pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard wait_for returns is not Send: drop it here.
    let _ = stop.wait_for(|stop| *stop).await.map(|_| ());
}
